// Package safehttp is an HTTP client for URLs that users of the bridge
// supply (a service's send URL, an attachment's address): it refuses to
// connect to loopback, private, link-local and other internal addresses,
// so that a user who may log in cannot make the bridge reach hosts behind
// its firewall (cloud metadata, admin ports).
package safehttp

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ErrPrivateAddress is returned for connections to internal addresses.
var ErrPrivateAddress = errors.New("refusing to connect to a loopback, private or link-local address")

// Client returns an HTTP client with the given timeout that connects only
// to public addresses, unless allowPrivate is set (for services the admin
// runs on the same machine or network). The check runs on every address
// dialled, after DNS resolution, so a hostname that resolves to an internal
// address (or is made to, between two lookups) is refused like a literal
// one. No proxy is used, since a proxy would dial on the bridge's behalf.
func Client(timeout time.Duration, allowPrivate bool) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if !allowPrivate {
		dialer := &net.Dialer{Timeout: 10 * time.Second, Control: refusePrivate}
		tr.DialContext = dialer.DialContext
		tr.Proxy = nil
	}
	return &http.Client{Timeout: timeout, Transport: tr}
}

// IsPublic reports whether ip is an address on the public internet.
func IsPublic(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsValid() && !(ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast())
}

func refusePrivate(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return err
	}
	if !IsPublic(ip) {
		return ErrPrivateAddress
	}
	return nil
}
