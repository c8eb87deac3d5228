// Package backup is the format of a holdfast backup file: a clear header
// that says how the key was derived and which state the file holds, then
// the replicated state (fsm's snapshot JSON) sealed with seal's STREAM.
// FORMAT.md specifies the bytes.
//
// The key is never stored. It is derived either from the cluster's unlock
// key (HKDF with its own label and a random salt, see
// autolock.Key.BackupKey) or from a passphrase (Argon2id with a random salt
// and the parameters in the header). The header names the derived key by
// its seal key ID, so a wrong key is told apart from a damaged file before
// anything is decrypted.
//
// # Caller's duties
//
//  1. Seal: make a header with ForUnlockKey or ForPassphrase, then write
//     through NewWriter and Close it; a backup without its last chunk is
//     refused on restore.
//  2. Open: ReadHeader, derive the key with Header.KeyFromUnlockKey or
//     Header.KeyFromPassphrase (ErrWrongKey when it is not the key the file
//     was sealed under), then read NewReader to io.EOF before acting on
//     anything: a stream yields each chunk as it authenticates, and only
//     io.EOF says the whole file is authentic (ErrTampered otherwise).
//  3. Never log or print the plaintext: it holds every secret, the CA key
//     and the join tokens of the cluster.
package backup
