// SPDX-License-Identifier: MIT OR Apache-2.0

// Command memspike-ref is the reference for memspike's simulation: the seed's experiment run by
// the real Go runtime. It fills most of a memory limit with one slab, drops it, then allocates
// what is left of the limit, and prints the runtime's memory statistics and the cgroup's usage
// after each phase.
//
// It creates no cgroup: it runs inside whatever memory cgroup it is started in (see
// run-in-cgroup.sh). GOGC and GOMEMLIMIT are read by the runtime from the environment.
// Every byte of every slab is written, so the pages are resident and charged to the group.
package main

import (
	"bufio"
	"flag"
	"fmt"
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
	report("start")

	limitText := flag.String("limit", "32MiB", "the memory limit the experiment fills: bytes or a size with a unit (32MiB, 32M)")
	spike := flag.Float64("spike", 0.9, "the part of the limit the spike fills; the rest is the remainder")
	chunkText := flag.String("chunk", "0", "allocate the remainder in chunks of this size (0: one slab)")
	every := flag.Int("chunk-every", 1, "print a line every N chunks (and after the last)")
	churn := flag.Bool("churn", false, "drop each chunk once written (measures the allocation rate through recycled memory)")
	gc := flag.Bool("gc", false, "run runtime.GC() after dropping the spike")
	flag.Parse()

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
// cgroup's and the process's memory as the kernel counts it.
func report(phase string) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("phase=%s t_ms=%.1f HeapAlloc=%d HeapSys=%d HeapIdle=%d HeapInuse=%d HeapReleased=%d NextGC=%d NumGC=%d"+
		" Sys=%d StackSys=%d MSpanSys=%d MCacheSys=%d GCSys=%d OtherSys=%d BuckHashSys=%d",
		phase, float64(time.Since(start).Microseconds())/1000,
		ms.HeapAlloc, ms.HeapSys, ms.HeapIdle, ms.HeapInuse, ms.HeapReleased, ms.NextGC, ms.NumGC,
		ms.Sys, ms.StackSys, ms.MSpanSys, ms.MCacheSys, ms.GCSys, ms.OtherSys, ms.BuckHashSys)
	fmt.Printf(" cg_usage=%d cg_peak=%d cg_rss=%d cg_rss_huge=%d cg_cache=%d RssAnon=%d RssFile=%d\n",
		cgroupUsage(), cgroupPeak(), cgroupStat("rss", "anon"), cgroupStat("rss_huge", "anon_thp"),
		cgroupStat("cache", "file"), statusKiB("RssAnon")*1024, statusKiB("RssFile")*1024)
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

func cgroupUsage() int64 {
	if v2 {
		return readInt("memory.current")
	}
	return readInt("memory.usage_in_bytes")
}

func cgroupPeak() int64 {
	if v2 {
		return readInt("memory.peak")
	}
	return readInt("memory.max_usage_in_bytes")
}

// cgroupStat reads one key of memory.stat: v1Key on cgroup v1, v2Key on v2; -1 if absent.
func cgroupStat(v1Key, v2Key string) int64 {
	key := v1Key
	if v2 {
		key = v2Key
	}
	value := int64(-1)
	if group == "" {
		return value
	}
	eachLine(filepath.Join(group, "memory.stat"), func(line string) {
		if k, v, ok := strings.Cut(line, " "); ok && k == key {
			value, _ = strconv.ParseInt(v, 10, 64)
		}
	})
	return value
}

// readInt reads a cgroup file holding one number; -1 if there is no group or no such file.
func readInt(name string) int64 {
	if group == "" {
		return -1
	}
	b, err := os.ReadFile(filepath.Join(group, name))
	if err != nil {
		return -1
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// statusKiB reads a "Name: N kB" line of /proc/self/status; -1 if absent.
func statusKiB(name string) int64 {
	value := int64(-1)
	eachLine("/proc/self/status", func(line string) {
		if k, v, ok := strings.Cut(line, ":"); ok && k == name {
			value, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	})
	return value
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
