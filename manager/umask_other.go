//go:build !unix

package manager

import "net"

func listenUnixPrivate(path string) (net.Listener, error) { return net.Listen("unix", path) }
