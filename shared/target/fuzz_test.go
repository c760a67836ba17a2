package target

import (
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// FuzzCheckURL: no input crashes the check, and whatever it accepts outside
// local mode is an absolute http(s) URL on its scheme's port, without
// user-info or fragment, whose host is a DNS name or a public address.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{
		"https://helpdesk.example.com/hooks/ct", "http://example.com:80/", "https://93.184.216.34/",
		"https://[2606:4700:4700::1111]/", "https://127.0.0.1/", "http://2130706433/", "https://[::ffff:10.0.0.1]/", "http://[::ffff:0:a9fe:a9fe]/",
		"https://user@example.com/", "https://example.com/#x", "https://example.com:8443/", "//example.com", "https:example.com",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, raw string, local bool) {
		problems := CheckURL(raw, local)
		if len(problems) > 0 || local {
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("accepted an unparsable URL %q", raw)
		}
		scheme := strings.ToLower(u.Scheme)
		if scheme != "http" && scheme != "https" || u.User != nil || u.Fragment != "" || len(raw) > MaxURLLength {
			t.Fatalf("accepted %q", raw)
		}
		if p := u.Port(); p != "" {
			n, _ := strconv.Atoi(p)
			if scheme == "https" && n != 443 || scheme == "http" && n != 80 {
				t.Fatalf("accepted port %s in %q", p, raw)
			}
		}
		host := u.Hostname()
		if ip, err := netip.ParseAddr(host); err == nil && !Public(ip) {
			t.Fatalf("accepted non-public address %s in %q", ip, raw)
		}
		// What a resolver would read as an IPv4 address must be public too.
		if ip := net.ParseIP(host); ip != nil {
			if a, ok := netip.AddrFromSlice(ip); ok && !Public(a.Unmap()) {
				t.Fatalf("accepted non-public address %s in %q", ip, raw)
			}
		}
		if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
			t.Fatalf("accepted localhost in %q", raw)
		}
	})
}
