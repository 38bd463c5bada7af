// A seed-like Go server for memspike's load comparison (benches/load/run.sh): the seed's five
// routes on one port, each answering the Go runtime's memory statistics as JSON. Standard
// library only. Written from the seed's description (a slab per /add, filled byte by byte;
// /rel drops the oldest slabs and replaces a partly released one with a smaller copy; /gc;
// /stats; /reset drops every slab and collects).
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"runtime"
	"strconv"
	"sync"
)

var (
	mu    sync.Mutex
	slabs [][]byte
)

// The runtime.MemStats fields the seed printed, plus TotalAlloc and HeapSys.
type stats struct {
	Alloc, TotalAlloc, Mallocs, Frees, HeapAlloc, HeapSys, HeapIdle, HeapInuse uint64
	HeapReleased, HeapObjects, NextGC, LastGC                                  uint64
	NumGC                                                                      uint32
	Added, Released, NotReleased                                               int `json:",omitempty"`
}

func answer(w http.ResponseWriter, s stats) {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	s.Alloc, s.TotalAlloc, s.Mallocs, s.Frees = m.Alloc, m.TotalAlloc, m.Mallocs, m.Frees
	s.HeapAlloc, s.HeapSys, s.HeapIdle, s.HeapInuse = m.HeapAlloc, m.HeapSys, m.HeapIdle, m.HeapInuse
	s.HeapReleased, s.HeapObjects, s.NextGC, s.LastGC = m.HeapReleased, m.HeapObjects, m.NextGC, m.LastGC
	s.NumGC = m.NumGC
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(s); err != nil {
		log.Printf("answer: %v", err)
	}
}

func size(w http.ResponseWriter, r *http.Request) (int, bool) {
	n, err := strconv.Atoi(r.URL.Query().Get("bytes"))
	if err != nil || n < 1 {
		http.Error(w, `{"error": "bytes must be a positive whole number"}`, http.StatusBadRequest)
		return 0, false
	}
	return n, true
}

func add(w http.ResponseWriter, r *http.Request) {
	n, ok := size(w, r)
	if !ok {
		return
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = 0x5a
	}
	mu.Lock()
	slabs = append(slabs, b)
	mu.Unlock()
	answer(w, stats{Added: n})
}

func rel(w http.ResponseWriter, r *http.Request) {
	n, ok := size(w, r)
	if !ok {
		return
	}
	mu.Lock()
	left := n
	for left > 0 && len(slabs) > 0 {
		s := slabs[0]
		if len(s) > left {
			slabs[0] = append([]byte{}, s[left:]...)
			left = 0
			break
		}
		left -= len(s)
		slabs[0] = nil
		slabs = slabs[1:]
	}
	mu.Unlock()
	answer(w, stats{Released: n - left, NotReleased: left})
}

func main() {
	listen := flag.String("listen", "127.0.0.1:1113", "address to serve on")
	flag.Parse()
	http.HandleFunc("/add", add)
	http.HandleFunc("/rel", rel)
	http.HandleFunc("/gc", func(w http.ResponseWriter, r *http.Request) {
		runtime.GC()
		answer(w, stats{})
	})
	http.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) { answer(w, stats{}) })
	http.HandleFunc("/reset", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		slabs = nil
		mu.Unlock()
		runtime.GC()
		answer(w, stats{})
	})
	log.Printf("seed-like server on http://%s/", *listen)
	log.Fatal(http.ListenAndServe(*listen, nil))
}
