// Package transport is holdfast's network layer: one TCP port carrying three
// protocols chosen by TLS ALPN, all TLS 1.3, mutual TLS except for joining.
//
//   - ProtoRaft: raft NetworkTransport traffic. Both ends present node
//     certificates; both must be managers of the same cluster.
//   - ProtoAPI: the node-to-node HTTP API. Both ends present node
//     certificates; the client may be a manager or a worker, the server is a
//     manager.
//   - ProtoJoin: joining. The server does not ask for a client certificate;
//     the joiner checks the server's chain against the CA digest in its join
//     token before sending anything (DialJoin).
//
// Peers are identified by their certificate (see package ca: CN node ID, OU
// role, O cluster ID), never by host name. Every authenticated link checks
// the chain against the current roots, the cluster ID, the role the protocol
// requires, and finally Config.Authorize.
//
// What the caller must do:
//
//  1. Keep the node's TLS material in a CredStore and replace it with Store on
//     renewal or CA rotation. Every handshake reads the store once, so new
//     connections use the new material; existing connections are not closed.
//  2. Call Listen once per node, then Mux.Listener for each protocol it
//     serves, and Accept in a loop. A protocol is offered to clients only
//     while its listener is open: a node that does not accept joins never
//     calls Listener(ProtoJoin). A handshaken connection that no one accepts
//     within Config.HandshakeTimeout is closed.
//  3. Serve HTTP on Listener(ProtoAPI) and Listener(ProtoJoin) with a server
//     from NewHTTPServer (a plain http.Server closes connections whose ALPN
//     protocol it does not know). On ProtoAPI, PeerIdentity(r.TLS) names the
//     caller, authenticated during the handshake; ProtoJoin requests are
//     unauthenticated and must prove themselves with the join token secret.
//  4. Set Config.Authorize to decide, from the caller's state, whether a
//     peer may use a protocol now (removed, demoted, unknown nodes). It
//     runs on every handshake, in both directions, and again for every
//     raft RPC received; it must be fast and safe for concurrent use.
//     Raft connections from NewStreamLayer hand raft a request only after
//     its header's server ID has been found to be the certificate's CN
//     (ErrRPCRefused otherwise, and the connection is closed).
//  5. Set Config.Conns to a ConnTracker, and call its Revalidate whenever
//     what Authorize would answer may have changed, or the roots did: it
//     closes every open connection whose peer is no longer allowed.
//  6. Close the Mux last: it closes every sub-listener and waits for its
//     goroutines. Connections already accepted belong to the caller.
//
// In TLS 1.3 the client finishes its handshake before the server has checked
// the client certificate, so a client the server refuses sees the error on its
// first read rather than from Dial. The server never hands such a connection
// to a listener.
//
// Config.Limits bound what peers can hold of a node (limits.go):
// handshakes in progress, in all and per source IP (the excess closed
// before any TLS); a deadline on each handshake; the open connections and
// requests in progress of non-manager peers, in all and per peer (a node
// on ProtoAPI, an IP on ProtoJoin), answered 429 by Config.Refuse; and a
// deadline on writing each response and on reading each request body, so
// a peer that does not read, or withholds a body, loses its connection. Config.OnLimit hears of every refusal.
//
// Gossip (StartGossip) is the node's memberlist on its own address, UDP
// and TCP: encrypted with the cluster's gossip keyring (AES-GCM), labelled
// with the cluster ID (authenticated data, so another cluster's gossip is
// refused even with our key), refusing unencrypted messages, and telling
// which nodes are alive. The caller keeps its keyring equal to the
// cluster's with SetKeys (it adds new keys before it moves the primary and
// drops old ones last), and calls JoinMissing with the peers it knows.
package transport
