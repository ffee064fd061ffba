package webhookchat_test

import (
	"strings"
	"testing"
	"time"

	"github.com/trestle-bridge/trestle/bridgev2/bridgeconfig"
	"github.com/trestle-bridge/trestle/connectors/webhookchat"
)

func TestExampleConfigFileParses(t *testing.T) {
	if !strings.HasSuffix(string(webhookchat.ExampleConfigFile), webhookchat.ExampleConfig) {
		t.Fatal("example-config.yaml must end with ExampleConfig verbatim; paste it again")
	}
	cfg, err := bridgeconfig.Parse(webhookchat.ExampleConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	n := webhookchat.New()
	defaults := *n.Config().(*webhookchat.Config)
	if err := cfg.Network.Decode(n.Config()); err != nil {
		t.Fatal(err)
	}
	if err := n.ValidateConfig(); err != nil {
		t.Fatal(err)
	}
	if got := *n.Config().(*webhookchat.Config); got != defaults {
		t.Errorf("the example says %+v but the defaults are %+v", got, defaults)
	}
}

func TestValidateConfigNamesTheKey(t *testing.T) {
	n := webhookchat.New()
	n.Config().(*webhookchat.Config).RequestTimeout = -time.Second
	if err := n.ValidateConfig(); err == nil || !strings.Contains(err.Error(), "network.request_timeout") {
		t.Errorf("ValidateConfig: %v", err)
	}
}
