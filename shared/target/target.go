// Package target decides where webhooks may be sent (API.md section 3,
// Targets). URLs are checked when an endpoint is configured, and every address
// is checked again when it is dialled, because a name that resolved to a
// public address yesterday may resolve to 169.254.169.254 today (DNS
// rebinding): only the dial-time check sees the address actually used.
package target

import (
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxURLLength is the longest endpoint URL accepted, in characters.
const MaxURLLength = 2048

// nonPublic lists the IPv4 and IPv6 ranges a webhook is never sent to:
// loopback, private, link-local (including the instance metadata address),
// carrier-grade NAT, unspecified, multicast, reserved and documentation
// ranges, unique-local and deprecated site-local IPv6.
var nonPublic = func() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
		"192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
		"198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
		"::/128", "::1/128", "::/96", "100::/64", "2001::/23", "2001:db8::/32", "fc00::/7",
		"fe80::/10", "fec0::/10", "ff00::/8", "64:ff9b:1::/48",
	} {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}()

// IPv6 ranges that carry an IPv4 address in their last 32 bits (NAT64, and
// the IPv4-translated addresses of SIIT, RFC 2765: ::ffff:0:a.b.c.d) or in
// bits 16-48 (6to4); the embedded address is judged too, so that
// ::ffff:0:a9fe:a9fe does not reach 169.254.169.254 through a translator.
var (
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	translated = netip.MustParsePrefix("::ffff:0:0:0/96")
	sixToFour  = netip.MustParsePrefix("2002::/16")
)

// Public reports whether a webhook may be sent to ip outside local mode.
func Public(ip netip.Addr) bool {
	if !ip.IsValid() || ip.Zone() != "" {
		return false
	}
	ip = ip.Unmap() // ::ffff:127.0.0.1 is 127.0.0.1
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	if ip.Is6() {
		b := ip.As16()
		if nat64.Contains(ip) || translated.Contains(ip) {
			return Public(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
		}
		if sixToFour.Contains(ip) {
			return Public(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
		}
	}
	return ip.IsGlobalUnicast()
}

// Error says why a target is refused. Its reason is shown to the endpoint's
// owner (test fire results, the delivery log), so it names only what the
// owner typed, never an address a name resolved to: that would let anyone
// who can configure an endpoint map the private DNS of the service's network.
type Error struct{ Reason string }

func (e *Error) Error() string { return e.Reason }

// NoPublicAddress is the reason given for a host name that resolves to no
// public address, and for one that does not resolve at all: the two must
// read alike, or an owner could tell which names the private DNS of the
// service's network holds.
const NoPublicAddress = "the host name has no public address"

// CheckAddr judges an address about to be dialled, which a host name in the
// URL resolved to. Outside local mode only public addresses on ports 80 and
// 443 pass; local mode also lets loopback addresses through on any port. The
// refusal does not name the address (see Error).
func CheckAddr(addr netip.AddrPort, localMode bool) error {
	ip := addr.Addr().Unmap()
	if localMode && ip.IsLoopback() {
		return nil
	}
	if !Public(ip) {
		return &Error{Reason: NoPublicAddress}
	}
	if p := addr.Port(); p != 80 && p != 443 {
		return &Error{Reason: fmt.Sprintf("target port %d is not allowed; only 80 and 443", p)}
	}
	return nil
}

// CheckURL returns every rule raw breaks as an endpoint URL (nil when it is
// acceptable). Names are not resolved here; the dial-time check covers them.
func CheckURL(raw string, localMode bool) []string {
	if raw == "" {
		return []string{"is required"}
	}
	if utf8.RuneCountInString(raw) > MaxURLLength {
		return []string{fmt.Sprintf("must be at most %d characters", MaxURLLength)}
	}
	if strings.ContainsAny(raw, " \t\r\n") || strings.IndexFunc(raw, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return []string{"must not contain spaces or control characters"}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return []string{"is not a valid URL"}
	}
	var problems []string
	scheme := strings.ToLower(u.Scheme)
	switch {
	case u.Scheme == "" || u.Host == "" && u.Opaque == "":
		return []string{"must be an absolute http:// or https:// URL"}
	case scheme != "http" && scheme != "https":
		return []string{"scheme must be http or https"}
	}
	if u.Opaque != "" {
		return []string{"must be an absolute http:// or https:// URL"}
	}
	if u.User != nil {
		problems = append(problems, "must not contain user-info (use basic_auth instead)")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		problems = append(problems, "must not contain a fragment")
	}
	host := u.Hostname()
	loopback := false
	if ip, err := netip.ParseAddr(host); err == nil {
		loopback = ip.Unmap().IsLoopback()
		if ip.Zone() != "" {
			problems = append(problems, "must not use an IPv6 zone")
		} else if !(localMode && loopback) && !Public(ip) {
			problems = append(problems, fmt.Sprintf("host %s is not a public address", ip))
		}
	} else if msg := checkName(host); msg != "" {
		problems = append(problems, msg)
	} else if h := strings.TrimSuffix(strings.ToLower(host), "."); h == "localhost" || strings.HasSuffix(h, ".localhost") {
		loopback = true
		if !localMode {
			problems = append(problems, "host "+host+" is a loopback name")
		}
	}
	if port := u.Port(); port != "" {
		n, err := strconv.Atoi(port)
		switch {
		case localMode && loopback:
			// Any port on this machine, but a port there can be.
			if err != nil || n < 1 || n > 65535 {
				problems = append(problems, "port must be 1-65535")
			}
		case err != nil:
			problems = append(problems, "port must be a number")
		case scheme == "https" && n != 443:
			problems = append(problems, "only port 443 is allowed for https")
		case scheme == "http" && n != 80:
			problems = append(problems, "only port 80 is allowed for http")
		}
	} else if strings.HasSuffix(u.Host, ":") {
		problems = append(problems, "port must not be empty")
	}
	return problems
}

// checkName validates a DNS host name, and refuses names that URL parsers in
// browsers and HTTP libraries read as IPv4 addresses in decimal, octal or hex
// ("2130706433", "0x7f.1", "0177.0.0.1", "127.1"): a host whose last label is
// a number is an address, not a name.
func checkName(host string) string {
	if host == "" {
		return "must have a host"
	}
	h := strings.TrimSuffix(host, ".")
	if len(h) > 253 {
		return "host name is longer than 253 characters"
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return "host name has an empty or over-long label"
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				if r > 0x7f {
					return "host name must be ASCII (use its xn-- form)"
				}
				return "host name has an invalid character"
			}
		}
		if strings.HasPrefix(l, "-") || strings.HasSuffix(l, "-") {
			return "host name label must not start or end with a hyphen"
		}
	}
	last := strings.ToLower(labels[len(labels)-1])
	if isNumber(last) {
		return fmt.Sprintf("host %s is an IPv4 address in a non-standard notation; use a name or a dotted-decimal public address", host)
	}
	return ""
}

func isNumber(s string) bool {
	if strings.HasPrefix(s, "0x") {
		s = s[2:]
		for _, r := range s {
			if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
				return false
			}
		}
		return true
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
