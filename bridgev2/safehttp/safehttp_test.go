package safehttp_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/trestle-bridge/trestle/bridgev2/safehttp"
)

func TestInternalAddressesAreRefusedAndPublicOnesAllowed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	if _, err := safehttp.Client(time.Second, false).Get(srv.URL); !errors.Is(err, safehttp.ErrPrivateAddress) {
		t.Fatalf("loopback service: %v, want ErrPrivateAddress", err)
	}
	resp, err := safehttp.Client(time.Second, true).Get(srv.URL)
	if err != nil {
		t.Fatalf("loopback with allowPrivate: %v", err)
	}
	resp.Body.Close()
	for addr, public := range map[string]bool{
		"8.8.8.8": true, "2001:4860:4860::8888": true,
		"127.0.0.1": false, "10.1.2.3": false, "192.168.0.1": false, "169.254.169.254": false,
		"::1": false, "fe80::1": false, "0.0.0.0": false, "::ffff:10.0.0.1": false, "fd00::1": false,
	} {
		if got := safehttp.IsPublic(netip.MustParseAddr(addr)); got != public {
			t.Errorf("IsPublic(%s) = %v, want %v", addr, got, public)
		}
	}
}
