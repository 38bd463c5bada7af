// SPDX-License-Identifier: MIT OR Apache-2.0

//go:build nointeractive

// Built with -tags nointeractive the program links no HTTP server, so its footprint is the
// self-directed experiment's alone (see interactive.go).
package main

func serveInteractive(listen string) {
	fail("-interactive: this binary was built with -tags nointeractive; build it without the tag to serve %s", listen)
}
