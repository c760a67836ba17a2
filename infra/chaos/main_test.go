package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
