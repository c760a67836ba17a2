package target

import (
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
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
		if len(problems) > 0 {
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("accepted an unparsable URL %q", raw)
		}
		scheme := strings.ToLower(u.Scheme)
		if scheme != "http" && scheme != "https" || u.User != nil || u.Fragment != "" || utf8.RuneCountInString(raw) > MaxURLLength {
			t.Fatalf("accepted %q", raw)
		}
		host := u.Hostname()
		// A host whose last label is a number is an address in some
		// spelling (2130706433, 0x7f.1, 0177.0.0.1): only the dotted or
		// bracketed forms are taken, in any mode.
		if _, err := netip.ParseAddr(host); err != nil {
			labels := strings.Split(strings.TrimSuffix(host, "."), ".")
			if last := labels[len(labels)-1]; last != "" && strings.IndexFunc(last, func(r rune) bool { return r < '0' || r > '9' }) < 0 {
				t.Fatalf("accepted the numeric host %q in %q", host, raw)
			}
		}
		if local {
			// Local mode adds loopback targets on any real port, and
			// nothing else.
			if ip, err := netip.ParseAddr(host); err == nil && !Public(ip) && !ip.Unmap().IsLoopback() {
				t.Fatalf("local mode accepted non-public, non-loopback %s in %q", ip, raw)
			}
			if p := u.Port(); p != "" {
				if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
					t.Fatalf("local mode accepted port %q in %q", p, raw)
				}
			}
			return
		}
		if p := u.Port(); p != "" {
			n, _ := strconv.Atoi(p)
			if scheme == "https" && n != 443 || scheme == "http" && n != 80 {
				t.Fatalf("accepted port %s in %q", p, raw)
			}
		}
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
