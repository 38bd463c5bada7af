// SPDX-License-Identifier: MIT OR Apache-2.0

// Command catalogue is a Go program of the seed's shape that memspike's model was never tuned
// on, for the fidelity harness's cross-binary check (`cargo xtask fidelity --program PATH
// --calibrate`, issue 18). Unlike reference/go it links net/http, encoding/json, regexp and
// text/template, keeps a 4 MiB global index of pointers (4 MiB of globals for the collector to
// scan), and parks 16 goroutines; then it runs the seed's experiment (a slab of -spike of
// -limit, dropped, then the rest, whole or in -chunk pieces, runtime.GC() after the drop with
// -gc), printing the harness's phase lines (phase=NAME ... NextGC=... NumGC=...).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"text/template"
	"time"
)

type item struct {
	Name  string
	Price int
}

var (
	index  [1 << 19]*item
	held   [][]byte
	out    = bufio.NewWriter(os.Stdout)
	begin  = time.Now()
	parked = make(chan struct{})
	route  = regexp.MustCompile(`^/items/([a-z0-9-]+)$`)
	page   = template.Must(template.New("p").Parse("{{.Name}}: {{.Price}}\n"))
)

func line(phase string) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(out, "phase=%s t_ms=%.1f HeapAlloc=%d HeapSys=%d NextGC=%d NumGC=%d Sys=%d\n",
		phase, float64(time.Since(begin).Microseconds())/1000, ms.HeapAlloc, ms.HeapSys, ms.NextGC, ms.NumGC, ms.Sys)
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

func worker(depth int) {
	if depth > 0 {
		var pad [256]byte
		_ = pad
		worker(depth - 1)
		return
	}
	<-parked
}

func main() {
	limitText := flag.String("limit", "32MiB", "")
	spike := flag.Float64("spike", 0.9, "")
	chunkText := flag.String("chunk", "0", "")
	gc := flag.Bool("gc", false, "")
	flag.Parse()
	for i := range index[:1024] {
		index[i] = &item{Name: "item-" + strconv.Itoa(i), Price: i}
	}
	for i := 0; i < 16; i++ {
		go worker(8)
	}
	http.HandleFunc("/items/", func(w http.ResponseWriter, r *http.Request) {
		if m := route.FindStringSubmatch(r.URL.Path); m != nil {
			_ = json.NewEncoder(w).Encode(index[0])
			_ = page.Execute(w, index[0])
		}
	})
	line("start")
	limit, chunk := size(*limitText), size(*chunkText)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	remainder := uint64((1 - *spike) * float64(limit))
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
}
