//go:build !linux

package pageout

// Executable does nothing outside Linux.
func Executable() (Result, error) { return Result{}, nil }
