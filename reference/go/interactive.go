// SPDX-License-Identifier: MIT OR Apache-2.0

//go:build !nointeractive

// The seed's interactive mode: no self-directed allocation; an HTTP server drives the heap.
//
//	/add?bytes=n  allocate a slab of n bytes, every byte written, and keep it
//	/rel?bytes=n  release n bytes, oldest slabs first; a slab released in part is replaced by
//	              a smaller copy (which really allocates), as in the seed
//	/gc           runtime.GC()
//	/stats        the statistics
//	/reset        drop every slab, then runtime.GC() (as memspike's /reset does)
//
// Every answer is runtime.MemStats as JSON (the fields of statsAnswer); /rel adds Released and
// NotReleased. A size is bytes or a number with a binary unit, as for -limit ("8MiB"). A bad or
// missing bytes gets 400 with {"error": ...}; only GET and POST are served (405 otherwise).
//
// Linking net/http costs the process about 60 KB of heap and 0.2-0.4 MiB of anonymous memory
// at start (0.4 with cgo's resolver), which would shift the self-directed experiment's
// footprint from what MEASUREMENTS.md measured; `-tags nointeractive` leaves this file out
// (nointeractive.go), and that is how `cargo xtask fidelity` builds the program.
package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"sync"
)

// slabs is the interactive mode's heap: the slabs kept alive, oldest first.
type slabs struct {
	mu   sync.Mutex
	held [][]byte
	// maxBytes refuses an /add above it (the machine's memory): the runtime would otherwise
	// die of a fatal "out of memory" rather than answer.
	maxBytes uint64
}

// statsAnswer is what every route answers: runtime.MemStats' fields, by their Go names; /rel's
// answer adds releasedAnswer's.
type statsAnswer struct {
	Alloc        uint64
	Mallocs      uint64
	Frees        uint64
	HeapAlloc    uint64
	HeapIdle     uint64
	HeapObjects  uint64
	HeapInuse    uint64
	HeapReleased uint64
	LastGC       uint64
	NextGC       uint64
	NumGC        uint32
	Sys          uint64
	*releasedAnswer
}

// releasedAnswer is what /rel released and what it could not (more was asked than was held).
type releasedAnswer struct {
	Released    uint64
	NotReleased uint64
}

func newStatsAnswer() statsAnswer {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return statsAnswer{
		Alloc: ms.Alloc, Mallocs: ms.Mallocs, Frees: ms.Frees, HeapAlloc: ms.HeapAlloc,
		HeapIdle: ms.HeapIdle, HeapObjects: ms.HeapObjects, HeapInuse: ms.HeapInuse,
		HeapReleased: ms.HeapReleased, LastGC: ms.LastGC, NextGC: ms.NextGC, NumGC: ms.NumGC,
		Sys: ms.Sys,
	}
}

// add keeps a new slab of n bytes, every byte written.
func (s *slabs) add(n uint64) {
	b := allocate(n)
	s.mu.Lock()
	s.held = append(s.held, b)
	s.mu.Unlock()
}

// release drops n bytes, oldest slabs first; a slab released in part is replaced by a copy of
// what is kept of it. It returns what it released (less than n when the slabs held less).
func (s *slabs) release(n uint64) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	released := uint64(0)
	for len(s.held) > 0 && released < n {
		first := uint64(len(s.held[0]))
		if first <= n-released {
			released += first
			s.held[0] = nil
			s.held = s.held[1:]
			continue
		}
		keep := first - (n - released)
		smaller := allocate(keep)
		s.held[0] = smaller
		released = n
	}
	if len(s.held) == 0 {
		s.held = nil
	}
	return released
}

// reset drops every slab.
func (s *slabs) reset() {
	s.mu.Lock()
	s.held = nil
	s.mu.Unlock()
}

// handler serves the routes over s.
func (s *slabs) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/add", s.serve(withBytes|upToMemory, func(n uint64) *releasedAnswer {
		s.add(n)
		return nil
	}))
	mux.HandleFunc("/rel", s.serve(withBytes, func(n uint64) *releasedAnswer {
		released := s.release(n)
		return &releasedAnswer{Released: released, NotReleased: n - released}
	}))
	mux.HandleFunc("/gc", s.serve(0, func(uint64) *releasedAnswer {
		runtime.GC()
		return nil
	}))
	mux.HandleFunc("/stats", s.serve(0, func(uint64) *releasedAnswer { return nil }))
	mux.HandleFunc("/reset", s.serve(0, func(uint64) *releasedAnswer {
		s.reset()
		runtime.GC()
		return nil
	}))
	return mux
}

// What a route's bytes parameter must be.
const (
	// withBytes: the route takes bytes=n.
	withBytes = 1 << iota
	// upToMemory: n may not exceed the machine's memory.
	upToMemory
)

// serve wraps one route: the method check, the bytes parameter, the operation, then the
// statistics as JSON.
func (s *slabs) serve(param int, op func(n uint64) *releasedAnswer) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			w.Header().Set("Allow", "GET, POST")
			answerError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s: use GET or POST", r.Method))
			return
		}
		n := uint64(0)
		if param&withBytes != 0 {
			var err error
			if n, err = bytesParam(r); err != nil {
				answerError(w, http.StatusBadRequest, err.Error())
				return
			}
			if param&upToMemory != 0 && s.maxBytes > 0 && n > s.maxBytes {
				answerError(w, http.StatusBadRequest,
					fmt.Sprintf("bytes=%d: more than the machine's memory (%d bytes)", n, s.maxBytes))
				return
			}
		}
		released := op(n)
		answer := newStatsAnswer()
		answer.releasedAnswer = released
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(answer); err != nil {
			fmt.Fprintf(os.Stderr, "memspike-ref: writing an answer: %v\n", err)
		}
	}
}

// bytesParam reads the one bytes=n of the query (or of a form body).
func bytesParam(r *http.Request) (uint64, error) {
	if err := r.ParseForm(); err != nil {
		return 0, fmt.Errorf("the request's parameters do not parse: %v", err)
	}
	values, ok := r.Form["bytes"]
	switch {
	case !ok:
		return 0, fmt.Errorf("bytes is missing: write e.g. ?bytes=8MiB")
	case len(values) != 1:
		return 0, fmt.Errorf("bytes is given %d times: give it once", len(values))
	}
	n, err := parseSize(values[0])
	if err != nil {
		return 0, fmt.Errorf("bytes=%q: %v", values[0], err)
	}
	return n, nil
}

func answerError(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": message})
}

// serveInteractive serves the routes on listen until the process is stopped.
func serveInteractive(listen string) {
	s := &slabs{maxBytes: uint64(kib(field(readFile("/proc/meminfo"), "MemTotal:")))}
	fmt.Printf("# interactive: serving on http://%s (routes /add?bytes=n /rel?bytes=n /gc /stats /reset) go=%s cgroup=%s\n",
		listen, runtime.Version(), group)
	if err := http.ListenAndServe(listen, s.handler()); err != nil {
		fail("-listen %q: %v", listen, err)
	}
}
