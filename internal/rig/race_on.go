//go:build race

package rig

// raceEnabled is true when the tests run with -race; the bridge binary is
// then built with the race detector too.
const raceEnabled = true
