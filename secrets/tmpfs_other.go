//go:build !linux

package secrets

import (
	"errors"
	"fmt"
)

// OnTmpfs reports whether path is on a tmpfs. Only Linux can tell; elsewhere
// it returns an error wrapping errors.ErrUnsupported.
func OnTmpfs(path string) (bool, error) {
	return false, fmt.Errorf("statfs %s: telling a tmpfs apart: %w", path, errors.ErrUnsupported)
}
