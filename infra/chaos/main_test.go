package main

import (
	"encoding/json"
	"fmt"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// startFake runs a copy of sleep named like a function's bootstrap.
func startFake(t *testing.T, function string) *exec.Cmd {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), function, "bootstrap")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// TestBootstrapsOnlyDescendants: the battery finds the bootstraps of the
// stack it started, and never another process's.
func TestBootstrapsOnlyDescendants(t *testing.T) {
	mine := startFake(t, "DeliveryFunction")
	other := startFake(t, "ApiFunction")
	if !descendant(mine.Process.Pid, os.Getpid()) {
		t.Errorf("pid %d, started here, is not a descendant of %d", mine.Process.Pid, os.Getpid())
	}
	if descendant(os.Getpid(), mine.Process.Pid) || descendant(mine.Process.Pid, other.Process.Pid) {
		t.Error("descendant of a process that is no ancestor")
	}
	if pids := bootstraps(os.Getpid(), "DeliveryFunction"); !slices.Equal(pids, []int{mine.Process.Pid}) {
		t.Errorf("bootstraps under this process: %v, want [%d]", pids, mine.Process.Pid)
	}
	if pids := bootstraps(other.Process.Pid, "DeliveryFunction"); len(pids) != 0 {
		t.Errorf("bootstraps under an unrelated process: %v", pids)
	}
}

func TestHexPort(t *testing.T) {
	for in, want := range map[string]string{"0100007F:1F90": "8080", "00000000000000000000000001000000:D2F0": "54000", "junk": ""} {
		if got := hexPort(in); got != want {
			t.Errorf("hexPort(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPartlyKeepsEveryEntry: a batch the fault proxy carries out in part
// reaches the emulator with some entries and names every other one in its
// answer as AWS does, with the entries the emulator itself left undone, none
// lost and none both ways, with the checksum DynamoDB's clients check; an
// emulator answer it cannot read leaves every entry undone.
func TestPartlyKeepsEveryEntry(t *testing.T) {
	var mu sync.Mutex
	var done []string // entries the emulator carried out
	garbled := false
	emulator := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Entries      []struct{ Id string }
			RequestItems map[string][]json.RawMessage
		}
		_ = json.NewDecoder(r.Body).Decode(&in)
		mu.Lock()
		defer mu.Unlock()
		if garbled {
			_, _ = w.Write([]byte("not json"))
			return
		}
		// The emulator leaves entry 3 undone itself.
		ok, failed := []map[string]string{}, []map[string]any{}
		for _, e := range in.Entries {
			if e.Id == "3" {
				failed = append(failed, map[string]any{"Id": e.Id, "SenderFault": false, "Code": "InternalError"})
				continue
			}
			done = append(done, e.Id)
			ok = append(ok, map[string]string{"Id": e.Id})
		}
		if in.Entries != nil {
			_ = json.NewEncoder(w).Encode(map[string]any{"Successful": ok, "Failed": failed})
			return
		}
		left := map[string][]json.RawMessage{}
		for table, writes := range in.RequestItems {
			for _, wr := range writes {
				if pk := putKey(wr); pk == "3" {
					left[table] = append(left[table], wr)
				} else {
					done = append(done, pk)
				}
			}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"UnprocessedItems": left})
	}))
	defer emulator.Close()
	f, err := newAWSFaults(emulator.URL, 1)
	if err != nil {
		t.Fatal(err)
	}
	var ids, entries, puts []string
	for i := range 10 {
		ids = append(ids, fmt.Sprint(i))
		entries = append(entries, fmt.Sprintf(`{"Id":"%d","MessageBody":"m"}`, i))
		puts = append(puts, fmt.Sprintf(`{"PutRequest":{"Item":{"pk":{"S":"%d"}}}}`, i))
	}
	for round := range 30 {
		mu.Lock()
		garbled, done = round%10 == 9, nil
		mu.Unlock()
		rec := httptest.NewRecorder()
		f.partly(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"QueueUrl":"q","Entries":[`+strings.Join(entries, ",")+`]}`)), "SendMessageBatch")
		var out struct{ Successful, Failed []struct{ Id string } }
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || rec.Code != http.StatusOK {
			t.Fatalf("answer %d %s", rec.Code, rec.Body)
		}
		var answeredDone, answeredFailed []string
		for _, e := range out.Successful {
			answeredDone = append(answeredDone, e.Id)
		}
		for _, e := range out.Failed {
			answeredFailed = append(answeredFailed, e.Id)
		}
		mu.Lock()
		did := slices.Clone(done)
		done = nil
		mu.Unlock()
		all := append(slices.Clone(answeredDone), answeredFailed...)
		if !slices.Equal(sorted(all), ids) || !slices.Equal(sorted(answeredDone), sorted(did)) || (garbled && len(answeredDone) > 0) {
			t.Fatalf("emulator did %v; answered done %v and failed %v", did, answeredDone, answeredFailed)
		}

		rec = httptest.NewRecorder()
		f.partly(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"RequestItems":{"t":[`+strings.Join(puts, ",")+`]}}`)), "BatchWriteItem")
		var left struct{ UnprocessedItems map[string][]json.RawMessage }
		if err := json.Unmarshal(rec.Body.Bytes(), &left); err != nil || rec.Code != http.StatusOK {
			t.Fatalf("answer %d %s", rec.Code, rec.Body)
		}
		if rec.Header().Get("X-Amz-Crc32") != fmt.Sprint(crc32.ChecksumIEEE(rec.Body.Bytes())) {
			t.Error("checksum does not match the answer")
		}
		var undone []string
		for _, wr := range left.UnprocessedItems["t"] {
			undone = append(undone, putKey(wr))
		}
		// Every write is done or named undone, and none both ways unless
		// the answer could not be read (then all are named undone).
		mu.Lock()
		did = slices.Clone(done)
		mu.Unlock()
		all = append(slices.Clone(did), undone...)
		if garbled && !slices.Equal(sorted(undone), ids) || !garbled && !slices.Equal(sorted(all), ids) {
			t.Fatalf("emulator wrote %v, answered unprocessed %v", did, undone)
		}
	}
}

// putKey is the pk of a BatchWriteItem put request.
func putKey(wr json.RawMessage) string {
	var p struct {
		PutRequest struct {
			Item struct{ PK struct{ S string } }
		}
	}
	_ = json.Unmarshal(wr, &p)
	return p.PutRequest.Item.PK.S
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }
