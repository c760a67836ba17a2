// Command bench measures the service and prints its figures (make bench):
//
//   - throughput: the delivery path (payload, signing, guarded dial, POST,
//     log record through the store) against a bare keep-alive POST loop to
//     the same local receiver, as a ratio from one run;
//   - AWS requests per delivery, counted by an SDK middleware, for a burst of
//     events fanning out to three endpoints each through the real handler
//     and the local emulator, and the cost per million deliveries they imply;
//   - the delivery bootstrap's start-up time to its first invocation request,
//     and its peak resident memory fanning one event out to 500 endpoints
//     on this machine with one of them hanging.
//
// Nothing here asserts a time: it prints what it measured on this machine.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"time"
)

func main() {
	part := flag.String("run", "throughput,requests,startup,latency", "comma-separated parts to run: throughput, requests, startup, latency")
	rate := flag.Float64("rate", 5, "events per second in the latency run")
	seconds := flag.Int("seconds", 60, "length of the latency run")
	fanOut := flag.Int("fanout", 500, "endpoints one event fans out to in the startup run")
	n := flag.Int("n", 20000, "deliveries in the throughput run")
	events := flag.Int("events", 1000, "events in the requests run (each fans out to 3 endpoints)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	for _, p := range splitComma(*part) {
		var err error
		switch p {
		case "throughput":
			err = throughput(*n)
		case "requests":
			err = requests(*events)
		case "startup":
			err = startup(*fanOut)
		case "latency":
			err = latency(*rate, time.Duration(*seconds)*time.Second)
		default:
			err = fmt.Errorf("unknown part %q", p)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			pprof.StopCPUProfile()
			os.Exit(1)
		}
	}
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}
