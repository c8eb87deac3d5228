// Package ca is holdfast's certificate authority: the cluster's root CA
// (ECDSA P-256), node certificates, and join tokens. It knows nothing of
// raft or the network; callers own storage and replication.
//
// A node certificate says who a node is: CN = node ID, OU = role OU
// (OUManager or OUWorker), O = cluster ID. IdentityOf reads that strictly and
// Verify checks the chain before reading it.
//
// What the caller must do:
//
//  1. Create the root once per cluster with NewRoot, keep Root.KeyPEM secret
//     (it is the cluster's most valuable key: store it only sealed) and
//     reload it with ParseRoot.
//  2. Issue node certificates only after authenticating the request (a valid
//     join token, or an existing certificate for renewal). Issue takes the
//     subject from the Identity argument, never from the CSR, so the caller
//     decides who the node is; the CSR only contributes its public key.
//  3. Compare presented tokens with Token.Equal (constant time), never ==.
//     Token.String contains the secret: show it only to the operator and never
//     log it (Token implements slog.LogValuer with the secret redacted).
//  4. Check the cluster ID and role of the Identity returned by Verify against
//     what the link requires; Verify checks the chain, validity and key usage,
//     not which cluster or role is acceptable.
//  5. Pass the current time explicitly (now); nothing here reads the clock
//     except through the caller.
//  6. To rotate the root: make the next one with NewRotationRoot (or parse
//     an imported one), check and cross-sign it with NewRotation, keep the
//     Rotation's parts (both roots, CrossPEM) and rebuild it with
//     LoadRotation. While it runs, nodes trust TrustPEM, the new root
//     issues, and nodes present ChainPEM; IssuedBy tells which root issued
//     a certificate. When every node holds a new-root certificate, trust
//     the new root alone and issue new join tokens (they pin the root).
//  7. Take the decisions from the pure functions here, and do only the I/O
//     yourself: renew a certificate at RenewAt (a random point between
//     RenewFrom and RenewTo of its lifetime; pass the random source), the
//     normal way until Expired; follow a rotation by repeating
//     NextNodeStep (renew, then trust, then report) until StepNone; and,
//     on the leader, finish when NextLeaderStep says StepFinish. A node's
//     role follows the same pattern: OwnRecordTarget reads what a
//     manager's own record asks of it, and NextRoleStep says whether to
//     keep the role, wipe a removed node, add a manager to raft again, or
//     switch (renew for the new role, then start or stop raft).
//
// Formats:
//
//   - IDs (NewID): 16 bytes from crypto/rand, lowercase RFC 4648 base32
//     without padding: 26 characters of [a-z2-7], canonical (unused trailing
//     bits zero).
//   - Digests (DigestOf, Root.Digest): SHA-256 of the certificate DER,
//     lowercase hex, 64 characters.
//   - Join tokens: "HFTKN-1-<digest>-<secret>", where digest is the root
//     digest and secret is 32 bytes from crypto/rand in the same lowercase
//     base32 as IDs (52 characters). ParseToken accepts exactly what
//     Token.String produces.
//   - Keys: PKCS#8 PEM ("PRIVATE KEY"); ParseKey also reads SEC 1
//     ("EC PRIVATE KEY"). Only P-256 keys are accepted anywhere.
package ca
