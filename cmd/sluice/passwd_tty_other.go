//go:build !linux

package main

import "os"

// noEcho is not implemented here: the password is read as a plain line.
func noEcho(*os.File) (func(), bool) { return nil, false }
