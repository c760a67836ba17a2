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

	mu          sync.Mutex
	counts      map[string]map[string]int // fault -> operation -> requests
	total       int
	outageTimes [][2]time.Time // from, to
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
	if fault != faultPartial {
		f.count(fault, op)
	}
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
		if f.partly(w, r, op) {
			f.count(faultPartial, op)
		} else {
			f.count("", op)
		}
	}
}

// batchOps are the batch operations the functions use, which AWS may carry
// out in part: it answers 200 and names the entries it did not process.
var batchOps = map[string]bool{"BatchWriteItem": true, "SendMessageBatch": true, "ChangeMessageVisibilityBatch": true}

// partly carries out about half of a batch request's entries (at random,
// perhaps none) and answers as AWS does when it processed only some: a
// BatchWriteItem's others come back as UnprocessedItems, an SQS batch's as
// Failed entries that are not the sender's fault. It reports whether it
// held any entry back. An emulator answer it cannot read names every entry
// as undone: the client sends again what was done, and never loses what
// was not.
func (f *awsFaults) partly(w http.ResponseWriter, r *http.Request, op string) bool {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		awsError(w, http.StatusInternalServerError, "InternalServerError")
		return true
	}
	var req map[string]json.RawMessage
	if err := json.Unmarshal(body, &req); err != nil {
		awsError(w, http.StatusBadRequest, "SerializationException")
		return false
	}
	// forward sends req on with the kept entries and returns the emulator's
	// answer, nil when it could not be read; relayed is true when it was
	// not a success, which is then the answer.
	forward := func() (res map[string]json.RawMessage, relayed bool) {
		b, _ := json.Marshal(req)
		out := r.Clone(r.Context())
		out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		rec := httptest.NewRecorder()
		f.proxy.ServeHTTP(rec, out)
		if rec.Code != http.StatusOK {
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return nil, true
		}
		if json.Unmarshal(rec.Body.Bytes(), &res) != nil {
			return nil, false
		}
		return res, false
	}
	held := false
	answer := map[string]any{}
	if op == "BatchWriteItem" {
		var tables map[string][]json.RawMessage
		_ = json.Unmarshal(req["RequestItems"], &tables)
		kept, undone := map[string][]json.RawMessage{}, map[string][]json.RawMessage{}
		for t, writes := range tables {
			for _, wr := range writes {
				if rand.IntN(2) == 0 {
					kept[t] = append(kept[t], wr)
				} else {
					undone[t] = append(undone[t], wr)
					held = true
				}
			}
		}
		if len(kept) > 0 {
			req["RequestItems"], _ = json.Marshal(kept)
			res, relayed := forward()
			if relayed {
				return held
			}
			left := kept // unless the answer says otherwise
			if u, ok := res["UnprocessedItems"]; ok {
				left = nil
				if json.Unmarshal(u, &left) != nil {
					left = kept
				}
			}
			for t, writes := range left {
				undone[t] = append(undone[t], writes...)
			}
		}
		answer["UnprocessedItems"] = undone
	} else {
		var entries []json.RawMessage
		_ = json.Unmarshal(req["Entries"], &entries)
		failure := func(e json.RawMessage) map[string]any {
			var id struct{ Id string }
			_ = json.Unmarshal(e, &id)
			return map[string]any{"Id": id.Id, "SenderFault": false, "Code": "InternalError", "Message": "fault injected by the battery"}
		}
		var kept []json.RawMessage
		failed := []any{}
		for _, e := range entries {
			if rand.IntN(2) == 0 {
				kept = append(kept, e)
			} else {
				failed = append(failed, failure(e))
				held = true
			}
		}
		successful := []any{}
		if len(kept) > 0 {
			req["Entries"], _ = json.Marshal(kept)
			res, relayed := forward()
			if relayed {
				return held
			}
			var done, more []any
			okDone := json.Unmarshal(res["Successful"], &done) == nil
			okMore := res["Failed"] == nil || json.Unmarshal(res["Failed"], &more) == nil
			if okDone && okMore {
				successful, failed = append(successful, done...), append(more, failed...)
			} else {
				for _, e := range kept {
					failed = append(failed, failure(e))
				}
			}
		}
		answer["Successful"], answer["Failed"] = successful, failed
	}
	b, _ := json.Marshal(answer)
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(b)), 10)) // DynamoDB's clients check it
	_, _ = w.Write(b)
	return held
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
		from := time.Now()
		f.down.Store(true)
		time.Sleep(length)
		f.down.Store(false)
		f.mu.Lock()
		f.outageTimes = append(f.outageTimes, [2]time.Time{from, time.Now()})
		f.mu.Unlock()
	}
}

// windows are the outages made so far, from and to.
func (f *awsFaults) windows() [][2]time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.outageTimes)
}

// made is how many of the functions' AWS requests went through the proxy,
// and how many of those it failed.
func (f *awsFaults) made() (total, faulted int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ops := range f.counts {
		for _, n := range ops {
			faulted += n
		}
	}
	return f.total, faulted
}

// report prints what was injected.
func (f *awsFaults) report(w io.Writer) {
	total, faulted := f.made()
	f.mu.Lock()
	defer f.mu.Unlock()
	fmt.Fprintf(w, "  AWS requests of the functions %d, failed on purpose %d\n", total, faulted)
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
