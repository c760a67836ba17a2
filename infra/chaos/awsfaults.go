package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// awsFaults stands between the functions and the emulator and fails some of
// their AWS requests the ways AWS's can fail:
//
//   - refused: answered 500 InternalServerError before anything happened;
//   - throttled: answered 400 ThrottlingException, likewise;
//   - answer lost: carried out, then answered 500 InternalServerError (a
//     request answered with a 500 or cut off by a timeout may still have
//     been carried out), so that the SDK's retry meets its own effect;
//   - carried out in part (batch operations only): some entries done, the
//     others named in the answer as unprocessed or failed, as AWS may;
//   - outage: for a few seconds, every request refused with a 503, longer
//     than the SDK's retries wait.
//
// Faults apply only while armed, so the battery's own setup and reading of
// the log through the API go through untouched.
type awsFaults struct {
	rate  float64 // share of requests that fail, evenly between the ways that apply
	proxy *httputil.ReverseProxy
	armed atomic.Bool
	down  atomic.Bool

	mu     sync.Mutex
	counts map[string]map[string]int // fault -> operation -> requests
	total  int
}

// The faults, as the battery prints them.
const (
	faultRefused   = "refused (500)"
	faultThrottled = "throttled (400)"
	faultLost      = "carried out, answered 500"
	faultOutage    = "refused in an outage (503)"
	faultPartial   = "batch carried out in part"
)

func newAWSFaults(emulator string, rate float64) (*awsFaults, error) {
	u, err := url.Parse(emulator)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("emulator endpoint %q is not a URL", emulator)
	}
	if rate < 0 || rate > 1 {
		return nil, fmt.Errorf("AWS fault rate %v is not between 0 and 1", rate)
	}
	f := &awsFaults{rate: rate, proxy: httputil.NewSingleHostReverseProxy(u), counts: map[string]map[string]int{}}
	// A function killed mid-request cancels its requests: not worth a line
	// each in the battery's output. Anything else is answered as AWS's
	// gateway would, and the SDK retries it.
	f.proxy.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		if r.Context().Err() == nil {
			awsError(w, http.StatusBadGateway, "BadGateway")
		}
	}
	return f, nil
}

func (f *awsFaults) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// AWS's JSON protocols (DynamoDB, SQS, KMS) name the operation here.
	target := r.Header.Get("X-Amz-Target")
	if !f.armed.Load() || target == "" {
		f.proxy.ServeHTTP(w, r)
		return
	}
	op := target[strings.LastIndexByte(target, '.')+1:]
	fault := ""
	if f.down.Load() {
		fault = faultOutage
	} else if rand.Float64() < f.rate {
		kinds := []string{faultRefused, faultThrottled, faultLost}
		if batchOps[op] {
			kinds = append(kinds, faultPartial)
		}
		fault = kinds[rand.IntN(len(kinds))]
	}
	f.count(fault, op)
	switch fault {
	case "":
		f.proxy.ServeHTTP(w, r)
	case faultOutage:
		awsError(w, http.StatusServiceUnavailable, "ServiceUnavailable")
	case faultRefused:
		awsError(w, http.StatusInternalServerError, "InternalServerError")
	case faultThrottled:
		awsError(w, http.StatusBadRequest, "ThrottlingException")
	case faultLost:
		rec := httptest.NewRecorder()
		f.proxy.ServeHTTP(rec, r)
		awsError(w, http.StatusInternalServerError, "InternalServerError")
	case faultPartial:
		f.partly(w, r, op)
	}
}

// batchOps are the batch operations the functions use, which AWS may carry
// out in part: it answers 200 and names the entries it did not process.
var batchOps = map[string]bool{"BatchWriteItem": true, "SendMessageBatch": true, "ChangeMessageVisibilityBatch": true}

// partly carries out about half of a batch request's entries (at random,
// perhaps none) and answers as AWS does when it processed only some: a
// BatchWriteItem's others come back as UnprocessedItems, an SQS batch's as
// Failed entries that are not the sender's fault.
func (f *awsFaults) partly(w http.ResponseWriter, r *http.Request, op string) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	var req map[string]json.RawMessage
	if err := json.Unmarshal(body, &req); err != nil {
		awsError(w, http.StatusBadRequest, "SerializationException")
		return
	}
	// forward sends req on with the kept entries and returns the
	// emulator's answer as a JSON object, or nil (after relaying it) when
	// it was not a success.
	forward := func() map[string]json.RawMessage {
		b, _ := json.Marshal(req)
		out := r.Clone(r.Context())
		out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		rec := httptest.NewRecorder()
		f.proxy.ServeHTTP(rec, out)
		var res map[string]json.RawMessage
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &res) != nil {
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return nil
		}
		return res
	}
	res := map[string]json.RawMessage{}
	if op == "BatchWriteItem" {
		var tables map[string][]json.RawMessage
		_ = json.Unmarshal(req["RequestItems"], &tables)
		kept, dropped := map[string][]json.RawMessage{}, map[string][]json.RawMessage{}
		for t, writes := range tables {
			for _, wr := range writes {
				if rand.IntN(2) == 0 {
					kept[t] = append(kept[t], wr)
				} else {
					dropped[t] = append(dropped[t], wr)
				}
			}
		}
		if len(kept) > 0 {
			req["RequestItems"], _ = json.Marshal(kept)
			if res = forward(); res == nil {
				return
			}
			var left map[string][]json.RawMessage
			_ = json.Unmarshal(res["UnprocessedItems"], &left)
			for t, writes := range left {
				dropped[t] = append(dropped[t], writes...)
			}
		}
		res["UnprocessedItems"], _ = json.Marshal(dropped)
	} else {
		var entries []json.RawMessage
		_ = json.Unmarshal(req["Entries"], &entries)
		var kept []json.RawMessage
		var failed []map[string]any
		for _, e := range entries {
			if rand.IntN(2) == 0 {
				kept = append(kept, e)
				continue
			}
			var id struct{ Id string }
			_ = json.Unmarshal(e, &id)
			failed = append(failed, map[string]any{"Id": id.Id, "SenderFault": false, "Code": "InternalError", "Message": "fault injected by the battery"})
		}
		if len(kept) > 0 {
			req["Entries"], _ = json.Marshal(kept)
			if res = forward(); res == nil {
				return
			}
			var more []map[string]any
			_ = json.Unmarshal(res["Failed"], &more)
			failed = append(more, failed...)
		}
		if _, ok := res["Successful"]; !ok {
			res["Successful"] = json.RawMessage("[]")
		}
		res["Failed"], _ = json.Marshal(failed)
	}
	b, _ := json.Marshal(res)
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(b)), 10)) // DynamoDB's clients check it
	_, _ = w.Write(b)
}

// awsError answers as AWS's JSON protocols do; the SDK retries all of these.
func awsError(w http.ResponseWriter, status int, code string) {
	body := []byte(`{"__type":"com.amazonaws.fault#` + code + `","message":"fault injected by the battery"}`)
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("X-Amzn-Query-Error", code+";Receiver")                                  // SQS's JSON protocol reads the code here
	w.Header().Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10)) // DynamoDB's clients check it
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (f *awsFaults) count(fault, op string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.total++
	if fault == "" {
		return
	}
	if f.counts[fault] == nil {
		f.counts[fault] = map[string]int{}
	}
	f.counts[fault][op]++
}

// outages takes the emulator away from the functions times times within
// span, for length each time.
func (f *awsFaults) outages(times int, span, length time.Duration) {
	for i := 0; i < times; i++ {
		time.Sleep(time.Duration(rand.Int64N(int64(max(span/time.Duration(times)-length, time.Millisecond)))))
		f.down.Store(true)
		time.Sleep(length)
		f.down.Store(false)
	}
}

// report prints what was injected.
func (f *awsFaults) report(w io.Writer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	faulted := 0
	for _, ops := range f.counts {
		for _, n := range ops {
			faulted += n
		}
	}
	fmt.Fprintf(w, "  AWS requests of the functions %d, failed on purpose %d\n", f.total, faulted)
	for _, fault := range []string{faultRefused, faultThrottled, faultLost, faultPartial, faultOutage} {
		ops := f.counts[fault]
		if len(ops) == 0 {
			continue
		}
		names := make([]string, 0, len(ops))
		n := 0
		for op, c := range ops {
			names = append(names, fmt.Sprintf("%s %d", op, c))
			n += c
		}
		slices.Sort(names)
		fmt.Fprintf(w, "    %-28s %5d  (%s)\n", fault, n, strings.Join(names, ", "))
	}
}
