package target

import (
	"net/netip"
	"strings"
	"testing"
)

func TestPublic(t *testing.T) {
	for addr, want := range map[string]bool{
		"93.184.216.34":          true,
		"8.8.8.8":                true,
		"2606:4700:4700::1111":   true,
		"127.0.0.1":              false,
		"127.1.2.3":              false,
		"10.1.2.3":               false,
		"172.16.0.1":             false,
		"172.31.255.255":         false,
		"192.168.1.1":            false,
		"169.254.169.254":        false,
		"100.64.0.1":             false,
		"100.127.255.254":        false,
		"0.0.0.0":                false,
		"255.255.255.255":        false,
		"224.0.0.1":              false,
		"198.18.0.1":             false,
		"::":                     false,
		"::1":                    false,
		"fd00::1":                false,
		"fc00::1":                false,
		"fe80::1":                false,
		"ff02::1":                false,
		"::ffff:127.0.0.1":       false,
		"::ffff:169.254.169.254": false,
		"::ffff:10.0.0.1":        false,
		"::ffff:93.184.216.34":   true,
		"64:ff9b::a00:1":         false, // NAT64 of 10.0.0.1
		"64:ff9b::5db8:d822":     true,  // NAT64 of 93.184.216.34
		"2002:7f00:1::1":         false, // 6to4 of 127.0.0.1
		"::ffff:0:a9fe:a9fe":     false, // IPv4-translated 169.254.169.254
		"::ffff:0:7f00:1":        false, // IPv4-translated 127.0.0.1
		"::ffff:0:a00:1":         false, // IPv4-translated 10.0.0.1
		"::ffff:0:5db8:d822":     true,  // IPv4-translated 93.184.216.34
		"2001:db8::1":            false,
	} {
		if got := Public(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Public(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestCheckAddr(t *testing.T) {
	for _, tc := range []struct {
		addr  string
		local bool
		ok    bool
	}{
		{"93.184.216.34:443", false, true},
		{"93.184.216.34:80", false, true},
		{"93.184.216.34:8080", false, false},
		{"127.0.0.1:443", false, false},
		{"127.0.0.1:8080", true, true},
		{"[::1]:9000", true, true},
		{"10.0.0.1:443", true, false}, // local mode allows loopback only
		{"169.254.169.254:80", true, false},
		{"[::ffff:127.0.0.1]:80", false, false},
		{"[::ffff:0:a9fe:a9fe]:80", false, false},
		{"[::ffff:0:7f00:1]:8080", true, false},
		{"10.42.1.7:443", false, false},
	} {
		ap := netip.MustParseAddrPort(tc.addr)
		err := CheckAddr(ap, tc.local)
		if (err == nil) != tc.ok {
			t.Errorf("CheckAddr(%s, local=%v) = %v", tc.addr, tc.local, err)
		}
		// The refusal is shown to the endpoint's owner: it must not tell
		// them what their host name resolved to.
		if err != nil && (strings.Contains(err.Error(), ap.Addr().String()) || strings.Contains(err.Error(), ap.Addr().Unmap().String())) {
			t.Errorf("CheckAddr(%s) names the address: %v", tc.addr, err)
		}
	}
}

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		url   string
		local bool
		want  string // "" = accepted, else a fragment of the problem
	}{
		{"https://helpdesk.example.com/hooks/ct", false, ""},
		{"https://hooks.zapier.com/hooks/catch/123/abc/?x=1", false, ""},
		{"http://example.com/", false, ""},
		{"http://example.com:80/", false, ""},
		{"https://example.com:443/x", false, ""},
		{"https://93.184.216.34/x", false, ""},
		{"HTTPS://EXAMPLE.COM/", false, ""},
		{"https://example.com:8443/", false, "only port 443"},
		{"http://example.com:8080/", false, "only port 80"},
		{"http://example.com:443/", false, "only port 80"},
		{"https://user:pw@example.com/", false, "user-info"},
		{"https://example.com/#frag", false, "fragment"},
		{"https://example.com/#", false, "fragment"},
		{"ftp://example.com/", false, "scheme"},
		{"example.com/hook", false, "absolute"},
		{"/relative", false, "absolute"},
		{"mailto:a@example.com", false, "scheme"},
		{"https:opaque", false, "absolute"},
		{"", false, "required"},
		{"https://example.com/" + strings.Repeat("a", 2048), false, "2048"},
		// Characters, not bytes: 2,048 characters of which most take two bytes.
		{"https://example.com/" + strings.Repeat("é", 2048-20), false, ""},
		{"https://example.com/" + strings.Repeat("é", 2048-19), false, "2048"},
		{"https://exa mple.com/", false, "spaces"},
		{"https://127.0.0.1/", false, "not a public address"},
		{"https://localhost/", false, "loopback"},
		{"https://api.localhost/", false, "loopback"},
		{"https://10.0.0.5/", false, "not a public address"},
		{"https://169.254.169.254/latest/meta-data", false, "not a public address"},
		{"https://100.64.1.1/", false, "not a public address"},
		{"https://[::1]/", false, "not a public address"},
		{"https://[fd12::1]/", false, "not a public address"},
		{"https://[fe80::1%25eth0]/", false, "zone"},
		{"https://[::ffff:127.0.0.1]/", false, "not a public address"},
		{"https://[::ffff:7f00:1]/", false, "not a public address"},
		{"http://[::ffff:0:a9fe:a9fe]/", false, "not a public address"},
		{"http://[::ffff:0:7f00:1]:8080/", true, "not a public address"},
		{"https://[::ffff:0:5db8:d822]/", false, ""},
		{"https://2130706433/", false, "non-standard notation"},
		{"https://0x7f000001/", false, "non-standard notation"},
		{"https://0177.0.0.1/", false, "non-standard notation"},
		{"https://127.1/", false, "non-standard notation"},
		{"https://0x7f.0.0.1/", false, "non-standard notation"},
		{"https://bücher.example/", false, "ASCII"},
		{"https://-bad.example.com/", false, "hyphen"},
		{"https://example.com:/", false, "port must not be empty"},
		{"http://127.0.0.1:8080/hook", true, ""},
		{"http://localhost:9000/hook", true, ""},
		{"http://[::1]:9000/hook", true, ""},
		{"http://10.0.0.1:8080/hook", true, "not a public address"},
		{"http://127.0.0.1:99999/hook", true, "port must be 1-65535"},
		{"http://127.0.0.1:0/hook", true, "port must be 1-65535"},
		{"http://localhost:65535/hook", true, ""},
		{"https://example.com:8443/", true, "only port 443"},
	} {
		problems := CheckURL(tc.url, tc.local)
		joined := strings.Join(problems, "; ")
		if tc.want == "" && len(problems) > 0 || tc.want != "" && !strings.Contains(joined, tc.want) {
			t.Errorf("CheckURL(%q, local=%v) = %q, want %q", tc.url, tc.local, joined, tc.want)
		}
	}
}
