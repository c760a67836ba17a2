package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// exchangeOverhead is the allowance, per HTTP exchange through the NAT
// gateway, for what the counted HTTP bytes leave out: TLS record headers
// and tags (about 29 bytes a record, two records or more an exchange) and
// TCP/IP headers of the data and acknowledgement packets (40 to 60 bytes
// each, four or more an exchange). Assumed, not counted: the loopback
// carries neither TLS nor the NAT's packets. TLS handshakes are left out;
// the function's connections are kept alive.
const exchangeOverhead = 300.0

// natBytes counts the HTTP bytes of the function's requests that go
// through the NAT gateway (SQS and KMS; DynamoDB goes through the VPC's
// gateway endpoint) and of their answers.
type natBytes struct {
	next      aws.HTTPClient
	bytes     atomic.Int64
	exchanges atomic.Int64
}

func (c *natBytes) Do(r *http.Request) (*http.Response, error) {
	target := r.Header.Get("X-Amz-Target")
	if !strings.HasPrefix(target, "AmazonSQS.") && !strings.HasPrefix(target, "TrentService.") {
		return c.next.Do(r)
	}
	c.exchanges.Add(1)
	c.bytes.Add(int64(len(r.Method)+len(r.URL.RequestURI())+len(" HTTP/1.1\r\n")) + headerBytes(r.Header) + int64(len("Host: \r\n")+len(r.URL.Host)) + max(r.ContentLength, 0))
	resp, err := c.next.Do(r)
	if err != nil {
		return resp, err
	}
	c.bytes.Add(int64(len("HTTP/1.1 200 OK\r\n")) + headerBytes(resp.Header))
	resp.Body = &countingBody{ReadCloser: resp.Body, n: &c.bytes}
	return resp, nil
}

func headerBytes(h http.Header) int64 {
	n := int64(len("\r\n"))
	for k, vs := range h {
		for _, v := range vs {
			n += int64(len(k) + len(": ") + len(v) + len("\r\n"))
		}
	}
	return n
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// countingListener counts every byte a receiver's connections read and
// write: the webhooks' requests and the answers, as HTTP puts them on the
// wire.
type countingListener struct {
	net.Listener
	bytes *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	return countingConn{Conn: c, bytes: l.bytes}, nil
}

type countingConn struct {
	net.Conn
	bytes *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.bytes.Add(int64(n))
	return n, err
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.bytes.Add(int64(n))
	return n, err
}
