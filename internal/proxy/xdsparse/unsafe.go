package xdsparse

import "unsafe"

// unsafeString views b as a string without copying; the caller must not
// modify b while the string is in use and must not retain the string.
func unsafeString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}
