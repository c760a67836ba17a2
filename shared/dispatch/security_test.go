package dispatch

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/customerthermometer/webhooks/shared/target"
)

// dnsServer answers every A query with ip: a name that resolves to a
// private address, as a rebinding attacker's DNS would. With a nil ip it
// answers that no name exists (NXDOMAIN).
func dnsServer(t *testing.T, ip net.IP) string {
	t.Helper()
	addr, _ := dnsSequence(t, ip)
	return addr
}

// dnsSequence answers the nth A query with ips[n] (the last one from then
// on), as a rebinding attacker's DNS does: a harmless address for the
// check, then another for the connection. It counts the A queries.
func dnsSequence(t *testing.T, ips ...net.IP) (string, *atomic.Int32) {
	t.Helper()
	var queries atomic.Int32
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			q := buf[:n]
			if n < 12 {
				continue
			}
			// The question: labels up to a zero byte, then type and class.
			end := 12
			for end < n && q[end] != 0 {
				end += int(q[end]) + 1
			}
			if end+5 > n {
				continue
			}
			question := q[12 : end+5]
			qtype := binary.BigEndian.Uint16(q[end+1 : end+3])
			var ip net.IP
			if qtype == 1 {
				ip = ips[min(int(queries.Add(1))-1, len(ips)-1)]
			} else if len(ips) > 0 {
				ip = ips[0]
			}
			// Header: same id, a response, one question, one answer (A) or none.
			resp := append([]byte{}, q[:2]...)
			answers, rcode := uint16(0), byte(0)
			switch {
			case ip == nil:
				rcode = 3 // NXDOMAIN
			case qtype == 1:
				answers = 1
			}
			resp = append(resp, 0x81, 0x80|rcode, 0, 1, byte(answers>>8), byte(answers), 0, 0, 0, 0)
			resp = append(resp, question...)
			if answers == 1 {
				resp = append(resp, 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4)
				resp = append(resp, ip.To4()...)
			}
			_, _ = pc.WriteTo(resp, addr)
		}
	}()
	return pc.LocalAddr().String(), &queries
}

// TestSecurityBatteryTargets: every disallowed target form is refused
// outside local mode, at configuration (target.CheckURL) or, for what only
// shows when dialling, by the dial-time guard; none receives a byte.
func TestSecurityBatteryTargets(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
	}))
	defer srv.Close()

	configForms := []string{
		"http://127.0.0.1/", "http://127.1.2.3/", "http://localhost/", "http://10.0.0.1/", "http://172.16.5.4/",
		"http://192.168.1.1/", "http://169.254.169.254/latest/meta-data/", "http://169.254.1.1/", "http://100.64.0.1/",
		"http://0.0.0.0/", "http://[::1]/", "http://[fd00::1]/", "http://[fc00::2]/", "http://[fe80::1]/",
		"http://[::ffff:127.0.0.1]/", "http://[::ffff:169.254.169.254]/", "http://[::ffff:10.0.0.1]/",
		"http://[::ffff:0:a9fe:a9fe]/", "http://[::ffff:0:7f00:1]/", "http://[::ffff:0:a00:1]/", "http://[64:ff9b::a9fe:a9fe]/",
		"http://2130706433/", "http://017700000001/", "http://0x7f000001/", "http://0177.0.0.1/", "http://0x7f.0.0.1/",
		"http://127.1/", "http://example.com:8080/", "https://example.com:8443/", "http://example.com:443/",
		"http://example.com:22/", "http://user:pass@example.com/",
	}
	c := New(Options{})
	for _, u := range configForms {
		if len(target.CheckURL(u, false)) == 0 {
			t.Errorf("configuration accepts %s", u)
		}
		if res := c.Send(context.Background(), hook(u)); !res.Refused() || res.Delivered() {
			t.Errorf("send to %s: %+v", u, res)
		}
	}

	// The dial-time guard judges IPv4-translated and NAT64 forms by the
	// IPv4 address they carry, like their URL forms above.
	for _, addr := range []string{"[::ffff:0:a9fe:a9fe]:80", "[::ffff:0:7f00:1]:443", "[64:ff9b::a9fe:a9fe]:80"} {
		conn, err := c.tr.DialContext(context.Background(), "tcp", addr)
		if conn != nil {
			conn.Close()
		}
		var te *target.Error
		if !errors.As(err, &te) {
			t.Errorf("dial %s: %v, want a target refusal", addr, err)
		}
	}

	// A name that resolves to a private address passes configuration (names
	// are not resolved then) and is refused on the address dialled. The
	// refusal, shown to the endpoint's owner, says so without the address:
	// naming it would let an owner map the private DNS of the service's
	// network.
	for _, private := range []string{"127.0.0.1", "10.42.1.7", "169.254.169.254"} {
		resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", dnsServer(t, net.ParseIP(private)))
		}}
		rebinding := New(Options{Resolver: resolver})
		for _, u := range []string{"http://rebind.example.com/hook", "https://internal.example.net/"} {
			if problems := target.CheckURL(u, false); len(problems) > 0 {
				t.Fatalf("configuration refuses the name %s: %v", u, problems)
			}
			res := rebinding.Send(context.Background(), hook(u))
			if !res.Refused() || !strings.Contains(res.Err.Error(), "has no public address") {
				t.Errorf("name resolving to %s: %+v (%v)", private, res, res.Err)
			}
			// A name that does not exist gets the same answer: otherwise
			// the owner could tell which names the network's private DNS
			// has.
			nxResolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "udp", dnsServer(t, nil))
			}}
			nx := New(Options{Resolver: nxResolver}).Send(context.Background(), hook(u))
			if nx.Err == nil || res.Err == nil || nx.Err.Error() != res.Err.Error() {
				t.Errorf("a name that does not exist answers %v, one resolving to a private address %v", nx.Err, res.Err)
			}
			if res.Err != nil && strings.Contains(res.Err.Error(), private) {
				t.Errorf("the refusal names the resolved address: %v", res.Err)
			}
		}
	}

	// DNS rebinding: the name is resolved once, and the address the guard
	// checked is the one connected to. The name first resolves to this
	// machine (allowed in local mode, where the test's receiver listens),
	// then to a private address (refused in every mode): a guard that
	// checked one resolution and let the connection resolve again would
	// connect to the second.
	var reached atomic.Int32
	local := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1) }))
	defer local.Close()
	dns, queries := dnsSequence(t, net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1"))
	flipping := New(Options{LocalMode: true, Resolver: &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", dns)
	}}})
	flip := flipping.Send(context.Background(), hook("http://flip.localhost:"+strconv.Itoa(local.Listener.Addr().(*net.TCPAddr).Port)+"/hook"))
	if !flip.Delivered() || reached.Load() != 1 || queries.Load() != 1 {
		t.Errorf("rebinding name: %+v (%v), %d requests reached the checked address, %d A queries (want one)", flip, flip.Err, reached.Load(), queries.Load())
	}

	// A redirect to a private address is never followed (local mode lets
	// the test reach its own receiver on loopback).
	res := New(Options{LocalMode: true}).Send(context.Background(), hook(srv.URL))
	if res.Delivered() || res.StatusCode != http.StatusFound || hits.Load() != 1 {
		t.Errorf("redirect: %+v, receiver hit %d times", res, hits.Load())
	}
	if hits.Load() != 1 {
		t.Errorf("refused targets received %d requests", hits.Load()-1)
	}
}
