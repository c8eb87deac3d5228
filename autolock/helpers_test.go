package autolock

import "encoding/base32"

// b32std is standard (padded, upper-case) base32, an independent encoder
// for golden values.
func b32std(b []byte) string { return base32.StdEncoding.EncodeToString(b) }
