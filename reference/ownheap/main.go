// SPDX-License-Identifier: MIT OR Apache-2.0

// Command ownheap is a Go program of the seed's shape with a heap of its own, for the
// fidelity harness's cross-binary check (`cargo xtask fidelity --program PATH --calibrate`,
// issue 18): before the experiment it builds a map of 6,000 linked records (about 1 MiB live,
// with pointers), parks 64 goroutines at depths of 4 to 11 frames, links gzip and sha256, and
// collects once, so that the experiment starts with its own heap live and no garbage. With
// OWNHEAP_KEEP_GARBAGE set it skips that collection: the map's outgrown buckets (about 1 MiB)
// are still garbage when the experiment fills the limit less what the heap holds. Then it
// runs the seed's experiment (a slab of -spike of -limit less what the heap holds, dropped,
// then the rest, whole or in -chunk pieces, runtime.GC() after the drop with -gc), printing
// the harness's phase lines (phase=NAME ... NextGC=... NumGC=...).
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

type record struct {
	id    int
	name  string
	tags  []string
	score float64
	next  *record
}

var (
	table  = map[string]*record{}
	held   [][]byte
	out    = bufio.NewWriter(os.Stdout)
	begin  = time.Now()
	pool   = sync.Pool{New: func() any { return new(bytes.Buffer) }}
	blocks = make(chan int)
)

func line(phase string) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(out, "phase=%s t_ms=%.1f HeapAlloc=%d HeapSys=%d NextGC=%d NumGC=%d Sys=%d HeapInuse=%d\n",
		phase, float64(time.Since(begin).Microseconds())/1000, ms.HeapAlloc, ms.HeapSys, ms.NextGC, ms.NumGC, ms.Sys, ms.HeapInuse)
	out.Flush()
}

func size(s string) uint64 {
	mult := uint64(1)
	for _, u := range []struct {
		s string
		m uint64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if strings.HasSuffix(s, u.s) {
			s, mult = strings.TrimSuffix(s, u.s), u.m
			break
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad size", s)
		os.Exit(2)
	}
	return n * mult
}

func fill(n uint64) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func waiter(depth int) {
	if depth > 0 {
		var pad [128]byte
		_ = pad
		waiter(depth - 1)
		return
	}
	<-blocks
}

func main() {
	limitText := flag.String("limit", "32MiB", "")
	spike := flag.Float64("spike", 0.9, "")
	chunkText := flag.String("chunk", "0", "")
	gc := flag.Bool("gc", false, "")
	flag.Parse()
	var prev *record
	for i := 0; i < 6000; i++ {
		r := &record{id: i, name: "rec-" + strconv.Itoa(i), tags: []string{"a", strconv.Itoa(i % 7)}, score: float64(i) / 3, next: prev}
		table[r.name] = r
		prev = r
	}
	for i := 0; i < 64; i++ {
		go waiter(4 + i%8)
	}
	buf := pool.Get().(*bytes.Buffer)
	zw := gzip.NewWriter(buf)
	zw.Write([]byte(strings.Repeat("memspike ", 100)))
	zw.Close()
	sum := sha256.Sum256(buf.Bytes())
	pool.Put(buf)
	_ = sum
	if os.Getenv("OWNHEAP_KEEP_GARBAGE") == "" {
		runtime.GC()
	}
	line("start")
	limit, chunk := size(*limitText), size(*chunkText)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	remainder := uint64((1 - *spike) * float64(limit))
	if ms.HeapAlloc+remainder >= limit {
		fmt.Fprintln(os.Stderr, "nothing to fill")
		os.Exit(2)
	}
	held = append(held, fill(limit-ms.HeapAlloc-remainder))
	line("spike")
	held = nil
	line("release")
	if *gc {
		runtime.GC()
		line("gc")
	}
	if chunk == 0 || chunk >= remainder {
		held = append(held, fill(remainder))
	} else {
		n := (remainder + chunk - 1) / chunk
		for i := uint64(1); i <= n; i++ {
			s := chunk
			if i == n {
				s = remainder - (n-1)*chunk
			}
			held = append(held, fill(s))
			line(fmt.Sprintf("chunk-%d/%d", i, n))
		}
	}
	line("remainder")
	line("done")
	runtime.KeepAlive(table)
}
