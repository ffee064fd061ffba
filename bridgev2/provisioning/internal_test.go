package provisioning

// Tests of internals that need no running bridge. The others are in
// package provisioning_test, because they run one with bridgetest, which
// assembles the bridge with this package.

import (
	"testing"

	"github.com/trestle-bridge/trestle/bridgev2"
	"github.com/trestle-bridge/trestle/bridgev2/networkid"
)

const alice = "@alice:example.com"

func TestTokenCacheIsBounded(t *testing.T) {
	c := newTokenChecker("http://127.0.0.1:1")
	for i := range maxCachedTokens * 2 {
		c.remember([32]byte{byte(i), byte(i >> 8)}, tokenEntry{owner: alice})
	}
	if n := len(c.cache); n > maxCachedTokens {
		t.Fatalf("cache holds %d entries, limit %d", n, maxCachedTokens)
	}
}

func TestCheckStep(t *testing.T) {
	bad := []*bridgev2.LoginStep{
		nil,
		{Type: bridgev2.LoginStepUserInput},
		{Type: bridgev2.LoginStepDisplayAndWait},
		{Type: bridgev2.LoginStepComplete},
		{Type: "cookies"},
	}
	for _, step := range bad {
		if checkStep(step) == nil {
			t.Errorf("checkStep accepted %+v", step)
		}
	}
	ok := &bridgev2.LoginStep{Type: bridgev2.LoginStepComplete, Complete: &bridgev2.LoginCompleteParams{UserLoginID: string(networkid.UserLoginID("x"))}}
	if err := checkStep(ok); err != nil {
		t.Errorf("checkStep refused a complete step: %v", err)
	}
}
