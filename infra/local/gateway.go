package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

// maxGatewayBody is API Gateway HTTP API's payload limit.
const maxGatewayBody = 10 << 20

type invoker interface {
	invoke(ctx context.Context, payload []byte) ([]byte, error)
}

// route is one HttpApi event of the template: a method (or ANY) and a path
// that may end in a greedy {name+} parameter.
type route struct {
	method string
	path   string
	fn     invoker
}

// gateway plays API Gateway HTTP API in front of the functions: payload format
// 2.0 events in, proxy responses out, and API Gateway's own answers for what
// never reaches a function.
type gateway struct {
	routes []route
	log    *lineLog
}

// defaultRoute is the path of an HttpApi event without path and method:
// API Gateway's $default route, which takes every request no other route
// matches.
const defaultRoute = "$default"

func (g *gateway) match(method, path string) (route, map[string]string, bool) {
	for _, rt := range g.routes {
		if rt.path == defaultRoute || rt.method != "ANY" && !strings.EqualFold(rt.method, method) {
			continue
		}
		if params, ok := matchPath(rt.path, path); ok {
			return rt, params, true
		}
	}
	for _, rt := range g.routes {
		if rt.path == defaultRoute {
			return rt, map[string]string{}, true
		}
	}
	return route{}, nil, false
}

// matchPath matches API Gateway route paths: literal segments, {name} for one
// segment and a final {name+} for the rest of the path.
func matchPath(pattern, path string) (map[string]string, bool) {
	ps := strings.Split(strings.Trim(pattern, "/"), "/")
	xs := strings.Split(strings.Trim(path, "/"), "/")
	params := map[string]string{}
	for i, p := range ps {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "+}") {
			rest := strings.Join(xs[min(i, len(xs)):], "/")
			if rest == "" {
				return nil, false
			}
			params[strings.TrimSuffix(strings.TrimPrefix(p, "{"), "+}")] = rest
			return params, true
		}
		if i >= len(xs) {
			return nil, false
		}
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			params[strings.Trim(p, "{}")] = xs[i]
			continue
		}
		if p != xs[i] {
			return nil, false
		}
	}
	return params, len(ps) == len(xs)
}

func gatewayError(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"message":"` + message + `"}`))
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt, params, ok := g.match(r.Method, r.URL.Path)
	if !ok {
		gatewayError(w, http.StatusNotFound, "Not Found")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxGatewayBody+1))
	if err != nil {
		gatewayError(w, http.StatusBadRequest, "Bad Request")
		return
	}
	if len(body) > maxGatewayBody {
		gatewayError(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large")
		return
	}
	payload, err := json.Marshal(toEvent(r, rt, params, body))
	if err != nil {
		gatewayError(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	// API Gateway gives an integration at most 30 s.
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	out, err := rt.fn.invoke(ctx, payload)
	if err != nil {
		g.log.printf("gateway: %s %s: %v", r.Method, r.URL.Path, err)
		if errors.Is(err, context.DeadlineExceeded) {
			gatewayError(w, http.StatusServiceUnavailable, "Service Unavailable")
			return
		}
		gatewayError(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(out, &resp); err != nil || resp.StatusCode == 0 {
		g.log.printf("gateway: %s %s: the function's response is not a proxy response: %s", r.Method, r.URL.Path, truncate(out))
		gatewayError(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	writeResponse(w, resp)
}

func toEvent(r *http.Request, rt route, params map[string]string, body []byte) events.APIGatewayV2HTTPRequest {
	headers := map[string]string{}
	for k, vs := range r.Header {
		if strings.EqualFold(k, "Cookie") {
			continue
		}
		headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	headers["host"] = r.Host
	var cookies []string
	for _, c := range r.Cookies() {
		cookies = append(cookies, c.String())
	}
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	headers["x-forwarded-for"] = ip
	headers["x-forwarded-proto"] = "http"
	now := time.Now().UTC()
	routeKey := rt.method + " " + rt.path
	if rt.path == defaultRoute {
		routeKey = defaultRoute
	}
	ev := events.APIGatewayV2HTTPRequest{
		Version:        "2.0",
		RouteKey:       routeKey,
		RawPath:        r.URL.EscapedPath(),
		RawQueryString: r.URL.RawQuery,
		Cookies:        cookies,
		Headers:        headers,
		PathParameters: params,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey:     routeKey,
			AccountID:    "123456789012",
			Stage:        "$default",
			RequestID:    requestID(),
			APIID:        "local",
			DomainName:   r.Host,
			DomainPrefix: strings.Split(r.Host, ".")[0],
			Time:         now.Format("02/Jan/2006:15:04:05 -0700"),
			TimeEpoch:    now.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method: r.Method, Path: r.URL.Path, Protocol: r.Proto, SourceIP: ip, UserAgent: r.UserAgent(),
			},
		},
	}
	if len(body) > 0 {
		if isText(r.Header.Get("Content-Type")) && utf8.Valid(body) {
			ev.Body = string(body)
		} else {
			ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
		}
	}
	return ev
}

// isText tells the content types API Gateway passes as text rather than
// base64.
func isText(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return strings.HasPrefix(mt, "text/") || strings.HasSuffix(mt, "json") || strings.HasSuffix(mt, "xml") ||
		mt == "application/javascript" || mt == "application/x-www-form-urlencoded"
}

func requestID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func writeResponse(w http.ResponseWriter, resp events.APIGatewayV2HTTPResponse) {
	for k, v := range resp.Headers {
		w.Header().Set(k, v)
	}
	for k, vs := range resp.MultiValueHeaders {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	for _, c := range resp.Cookies {
		w.Header().Add("Set-Cookie", c)
	}
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(resp.Body)
		if err != nil {
			gatewayError(w, http.StatusInternalServerError, "Internal Server Error")
			return
		}
		body = b
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
}
