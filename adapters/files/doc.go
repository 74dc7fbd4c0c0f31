// Package files reaches the local file system for file transfers: LocalFiles
// reads what the user sends, Downloads is the folder received files land in.
//
// Every path that comes from a peer is re-checked with
// domain.SafeRelativePath, and everything under the downloads folder is
// opened through an os.Root, so neither a hostile name nor a symlink planted
// in the folder can make this package create, write or rename anything
// outside it. Parts are private (0600) and so are the received files: the
// user decides whom to share them with. A received file gets its final name
// only by an atomic rename that never replaces an existing file; when the
// name is taken it becomes "name (1).ext", "name (2).ext" and so on.
//
// The package must not decide policy: which transfers to accept, how much
// free space is enough and which hashes match belong to the use-cases.
package files
