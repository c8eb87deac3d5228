//go:build !failpoints

package main

import "github.com/holdfast/holdfast/manager"

// testTune changes nothing in a product build.
func testTune(*manager.Config) {}
