// SPDX-License-Identifier: MIT OR Apache-2.0

// Command memspike-ref is the reference for memspike's simulation: the seed's experiment run by
// the real Go runtime. It fills most of a memory limit with one slab, drops it, then allocates
// what is left of the limit, and prints the runtime's memory statistics and the cgroup's usage
// after each phase. With -interactive it allocates nothing by itself and serves the seed's HTTP
// routes instead (interactive.go).
//
// It creates no cgroup: it runs inside whatever memory cgroup it is started in (see
// run-in-cgroup.sh). GOGC and GOMEMLIMIT are read by the runtime from the environment.
// Every byte of every slab is written, so the pages are resident and charged to the group.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

var (
	start = time.Now()
	// held keeps the slabs alive (the spike, then the remainder's chunks).
	held [][]byte
	// group is this process's memory cgroup directory, "" if none was found.
	group string
	// v2 is true when group is a cgroup v2 directory.
	v2 bool
)

func main() {
	// Read the start figures before the program allocates anything of its own.
	group, v2 = memoryCgroup()
	if v2 {
		paths.usage, paths.peak = filepath.Join(group, "memory.current"), filepath.Join(group, "memory.peak")
	} else {
		paths.usage, paths.peak = filepath.Join(group, "memory.usage_in_bytes"), filepath.Join(group, "memory.max_usage_in_bytes")
	}
	paths.stat = filepath.Join(group, "memory.stat")
	report("start")

	limitText := flag.String("limit", "32MiB", "the memory limit the experiment fills: bytes or a size with a unit (32MiB, 32M)")
	spike := flag.Float64("spike", 0.9, "the part of the limit the spike fills; the rest is the remainder")
	chunkText := flag.String("chunk", "0", "allocate the remainder in chunks of this size (0: one slab)")
	every := flag.Int("chunk-every", 1, "print a line every N chunks (and after the last)")
	churn := flag.Bool("churn", false, "drop each chunk once written (measures the allocation rate through recycled memory)")
	gc := flag.Bool("gc", false, "run runtime.GC() after dropping the spike")
	interactive := flag.Bool("interactive", false, "allocate nothing by itself: serve /add?bytes=n, /rel?bytes=n, /gc, /stats and /reset over HTTP")
	listen := flag.String("listen", "0.0.0.0:1112", "the address -interactive serves on")
	flag.Parse()
	if *interactive {
		serveInteractive(*listen)
		return
	}

	limit, err := parseSize(*limitText)
	if err == nil && limit == 0 {
		err = fmt.Errorf("must be above 0")
	}
	if err != nil {
		fail("-limit %q: %v", *limitText, err)
	}
	chunk, err := parseSize(*chunkText)
	if err != nil {
		fail("-chunk %q: %v", *chunkText, err)
	}
	if *spike <= 0 || *spike >= 1 {
		fail("-spike %v: must be between 0 and 1, e.g. 0.9", *spike)
	}
	if *every < 1 {
		fail("-chunk-every %d: must be at least 1", *every)
	}

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	remainder := uint64((1 - *spike) * float64(limit))
	if ms.HeapAlloc+remainder >= limit {
		fail("-spike %v leaves nothing to fill: the heap already holds %d bytes", *spike, ms.HeapAlloc)
	}
	fill := limit - ms.HeapAlloc - remainder
	fmt.Printf("# limit=%d spike=%v fill=%d remainder=%d chunk=%d gc=%v churn=%v GOGC=%q GOMEMLIMIT=%q go=%s cgroup=%s\n",
		limit, *spike, fill, remainder, chunk, *gc, *churn, os.Getenv("GOGC"), os.Getenv("GOMEMLIMIT"), runtime.Version(), group)

	held = append(held, allocate(fill))
	report("spike")

	held = nil
	report("release")

	if *gc {
		runtime.GC()
		report("gc")
	}

	began := time.Now()
	if chunk == 0 || chunk >= remainder {
		held = append(held, allocate(remainder))
	} else {
		n := (remainder + chunk - 1) / chunk
		for i := uint64(1); i <= n; i++ {
			size := chunk
			if i == n {
				size = remainder - (n-1)*chunk
			}
			b := allocate(size)
			if !*churn {
				held = append(held, b)
			}
			if i%uint64(*every) == 0 || i == n {
				report(fmt.Sprintf("chunk-%d/%d", i, n))
			}
		}
	}
	secs := time.Since(began).Seconds()
	report("remainder")
	fmt.Printf("# remainder: %d bytes in %.3f s = %.0f MiB/s\n", remainder, secs, float64(remainder)/secs/(1<<20))
	report("done")
}

// allocate returns a slab of n bytes with every byte written.
func allocate(n uint64) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 0xA5
	}
	return b
}

// report prints one line: the phase, the time since start, the runtime's statistics, and the
// cgroup's and the process's memory as the kernel counts it. It reuses its buffers, so that a
// line costs the heap a few hundred bytes (os.Open's File), not kilobytes: the experiment's
// heap should hold the experiment's slabs.
func report(phase string) {
	runtime.ReadMemStats(&stats)
	l := append(line[:0], "phase="...)
	l = append(l, phase...)
	l = append(l, " t_ms="...)
	l = strconv.AppendFloat(l, float64(time.Since(start).Microseconds())/1000, 'f', 1, 64)
	for _, f := range []struct {
		name  string
		value uint64
	}{
		{"HeapAlloc", stats.HeapAlloc}, {"HeapSys", stats.HeapSys}, {"HeapIdle", stats.HeapIdle},
		{"HeapInuse", stats.HeapInuse}, {"HeapReleased", stats.HeapReleased}, {"NextGC", stats.NextGC},
		{"NumGC", uint64(stats.NumGC)}, {"Sys", stats.Sys}, {"StackSys", stats.StackSys},
		{"MSpanSys", stats.MSpanSys}, {"MCacheSys", stats.MCacheSys}, {"GCSys", stats.GCSys},
		{"OtherSys", stats.OtherSys}, {"BuckHashSys", stats.BuckHashSys},
	} {
		l = appendField(l, f.name, int64(f.value))
	}
	usage, peak, rss, huge, cache := int64(-1), int64(-1), int64(-1), int64(-1), int64(-1)
	if group != "" {
		usage = firstNumber(readFile(paths.usage))
		peak = firstNumber(readFile(paths.peak))
		stat := readFile(paths.stat)
		if v2 {
			rss, huge, cache = field(stat, "anon "), field(stat, "anon_thp "), field(stat, "file ")
		} else {
			rss, huge, cache = field(stat, "rss "), field(stat, "rss_huge "), field(stat, "cache ")
		}
	}
	status := readFile("/proc/self/status")
	l = appendField(l, "cg_usage", usage)
	l = appendField(l, "cg_peak", peak)
	l = appendField(l, "cg_rss", rss)
	l = appendField(l, "cg_rss_huge", huge)
	l = appendField(l, "cg_cache", cache)
	l = appendField(l, "RssAnon", kib(field(status, "RssAnon:")))
	l = appendField(l, "RssFile", kib(field(status, "RssFile:")))
	l = append(l, '\n')
	os.Stdout.Write(l)
	line = l
}

var (
	stats runtime.MemStats
	line  = make([]byte, 0, 1024)
	buf   = make([]byte, 16<<10)
	// paths are the group's files report reads, joined once.
	paths struct{ usage, peak, stat string }
)

func appendField(l []byte, name string, value int64) []byte {
	l = append(l, ' ')
	l = append(l, name...)
	l = append(l, '=')
	return strconv.AppendInt(l, value, 10)
}

// readFile reads a small file into the shared buffer; nil if it cannot be read.
func readFile(path string) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	n, _ := io.ReadFull(f, buf)
	return buf[:n]
}

// field finds the line starting with key and returns the number after it; -1 if absent.
func field(text []byte, key string) int64 {
	for len(text) > 0 {
		end := bytes.IndexByte(text, '\n')
		if end < 0 {
			end = len(text)
		}
		if bytes.HasPrefix(text[:end], []byte(key)) {
			return firstNumber(text[len(key):end])
		}
		text = text[min(end+1, len(text)):]
	}
	return -1
}

// firstNumber parses the first run of digits in text; -1 if there is none.
func firstNumber(text []byte) int64 {
	text = bytes.TrimLeft(text, " \t")
	n, digits := int64(0), 0
	for ; digits < len(text) && text[digits] >= '0' && text[digits] <= '9'; digits++ {
		n = n*10 + int64(text[digits]-'0')
	}
	if digits == 0 {
		return -1
	}
	return n
}

func kib(v int64) int64 {
	if v < 0 {
		return v
	}
	return v * 1024
}

func min(a, b int) int {
	if a < b {
		return a
	}
	return b
}

// memoryCgroup finds this process's memory cgroup directory from /proc/self/cgroup and
// /proc/self/mountinfo: the v1 "memory" hierarchy if there is one, else the v2 group.
func memoryCgroup() (dir string, isV2 bool) {
	var v1Path, v2Path string
	haveV2 := false
	eachLine("/proc/self/cgroup", func(line string) {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			return
		}
		if parts[1] == "" && parts[0] == "0" {
			v2Path, haveV2 = parts[2], true
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" {
				v1Path = parts[2]
			}
		}
	})
	// mountinfo: "id parent major:minor root mountpoint options ... - fstype source superoptions"
	var v1Mount, v2Mount string
	eachLine("/proc/self/mountinfo", func(line string) {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			return
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 {
			return
		}
		switch g[0] {
		case "cgroup":
			for _, o := range strings.Split(g[2], ",") {
				if o == "memory" && f[3] == "/" {
					v1Mount = f[4]
				}
			}
		case "cgroup2":
			if f[3] == "/" {
				v2Mount = f[4]
			}
		}
	})
	if v1Path != "" && v1Mount != "" {
		return filepath.Join(v1Mount, v1Path), false
	}
	if haveV2 && v2Mount != "" {
		dir := filepath.Join(v2Mount, v2Path)
		if _, err := os.Stat(filepath.Join(dir, "memory.current")); err == nil {
			return dir, true
		}
	}
	return "", false
}

func eachLine(path string, f func(string)) {
	file, err := os.Open(path)
	if err != nil {
		return
	}
	defer file.Close()
	s := bufio.NewScanner(file)
	for s.Scan() {
		f(s.Text())
	}
}

// parseSize reads bytes ("33554432") or a number with a binary unit ("32MiB", "32M", "1.5GiB");
// as for memspike, K/M/G/T mean powers of 1024 however they are spelled.
func parseSize(text string) (uint64, error) {
	s := strings.TrimSpace(text)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	number, unit := s, ""
	if i >= 0 {
		number, unit = s[:i], strings.ToUpper(s[i:])
	}
	shifts := map[string]uint{"": 0, "B": 0, "K": 10, "KB": 10, "KIB": 10, "M": 20, "MB": 20, "MIB": 20,
		"G": 30, "GB": 30, "GIB": 30, "T": 40, "TB": 40, "TIB": 40}
	shift, ok := shifts[unit]
	if !ok || number == "" {
		return 0, fmt.Errorf("not a size; write bytes or a number with a unit, e.g. 32MiB")
	}
	value, err := strconv.ParseFloat(number, 64)
	if err != nil {
		return 0, fmt.Errorf("not a size; write bytes or a number with a unit, e.g. 32MiB")
	}
	bytes := value * float64(uint64(1)<<shift)
	if bytes >= 1<<63 || bytes != float64(uint64(bytes)) {
		return 0, fmt.Errorf("not a whole number of bytes below 8 EiB")
	}
	return uint64(bytes), nil
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "memspike-ref: "+format+"\n", args...)
	os.Exit(2)
}
