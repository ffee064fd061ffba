// Package trestle holds the files shipped at the repository root that the
// binaries embed: the example config, written out for a new install.
package trestle

import _ "embed"

// ExampleConfig is example-config.yaml: every key, documented.
//
//go:embed example-config.yaml
var ExampleConfig []byte
