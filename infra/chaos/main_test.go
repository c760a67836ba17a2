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
// answer as AWS does, none lost and none both ways, with the checksum
// DynamoDB's clients check.
func TestPartlyKeepsEveryEntry(t *testing.T) {
	var mu sync.Mutex
	var forwarded []string
	emulator := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Entries      []struct{ Id string }
			RequestItems map[string][]struct {
				PutRequest struct {
					Item struct{ PK struct{ S string } }
				}
			}
		}
		_ = json.NewDecoder(r.Body).Decode(&in)
		var ok []map[string]string
		mu.Lock()
		for _, e := range in.Entries {
			forwarded = append(forwarded, e.Id)
			ok = append(ok, map[string]string{"Id": e.Id})
		}
		for _, writes := range in.RequestItems {
			for _, wr := range writes {
				forwarded = append(forwarded, wr.PutRequest.Item.PK.S)
			}
		}
		mu.Unlock()
		if in.Entries != nil {
			_ = json.NewEncoder(w).Encode(map[string]any{"Successful": ok})
			return
		}
		_, _ = w.Write([]byte(`{"UnprocessedItems":{}}`))
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
	for range 20 {
		forwarded = nil
		rec := httptest.NewRecorder()
		f.partly(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"QueueUrl":"q","Entries":[`+strings.Join(entries, ",")+`]}`)), "SendMessageBatch")
		var out struct{ Successful, Failed []struct{ Id string } }
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || rec.Code != http.StatusOK {
			t.Fatalf("answer %d %s", rec.Code, rec.Body)
		}
		var done, failed []string
		for _, e := range out.Successful {
			done = append(done, e.Id)
		}
		for _, e := range out.Failed {
			failed = append(failed, e.Id)
		}
		if all := append(slices.Clone(done), failed...); !slices.Equal(sorted(all), ids) || !slices.Equal(sorted(done), sorted(forwarded)) {
			t.Fatalf("sent %v, answered done %v and failed %v", forwarded, done, failed)
		}

		forwarded = nil
		rec = httptest.NewRecorder()
		f.partly(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"RequestItems":{"t":[`+strings.Join(puts, ",")+`]}}`)), "BatchWriteItem")
		var left struct {
			UnprocessedItems map[string][]struct {
				PutRequest struct {
					Item struct{ PK struct{ S string } }
				}
			}
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &left); err != nil || rec.Code != http.StatusOK {
			t.Fatalf("answer %d %s", rec.Code, rec.Body)
		}
		if rec.Header().Get("X-Amz-Crc32") != fmt.Sprint(crc32.ChecksumIEEE(rec.Body.Bytes())) {
			t.Error("checksum does not match the answer")
		}
		all := slices.Clone(forwarded)
		for _, wr := range left.UnprocessedItems["t"] {
			all = append(all, wr.PutRequest.Item.PK.S)
		}
		if !slices.Equal(sorted(all), ids) {
			t.Fatalf("written %v, unprocessed %v", forwarded, left.UnprocessedItems)
		}
	}
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }
