// Command gctrace-gen makes the Go runtime print gctrace lines with non-zero figures in every
// field: a live heap that grows, garbage, a deep goroutine stack, pointer-bearing globals,
// forced cycles, a cycle past the first second, and (where the runtime has the goroutine leak
// profile: go1.27 here, not go1.25) a cycle that checks for goroutine leaks. The fixtures
// beside this folder are its stderr under GODEBUG=gctrace=1,scavtrace=1 (go1.23's with
// GOMAXPROCS=1), and (*.pacer.stderr) under GODEBUG=gctrace=1,gcpacertrace=1.
package main

import (
	"io"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"time"
)

// globals holds 2 MiB of pointers in bss, so the runtime scans them as globals.
var globals [1 << 18]*int

var live [][]byte

func deep(n int, stop chan struct{}) int {
	var pad [1024]byte
	if n == 0 {
		<-stop
		return int(pad[0])
	}
	return deep(n-1, stop) + int(pad[n%len(pad)])
}

func main() {
	x := 1
	globals[0] = &x
	stop := make(chan struct{})
	go deep(4096, stop) // about 4 MiB of stack
	var sink []byte
	for i := 0; i < 96; i++ {
		sink = make([]byte, 1<<20)
		if i%4 == 0 {
			live = append(live, sink)
		}
	}
	_ = sink
	time.Sleep(1100 * time.Millisecond) // so that a cycle starts past the first second
	runtime.GC()
	debug.FreeOSMemory()
	close(stop)
	go func() { <-make(chan int) }() // leaked: blocked on a channel nobody else can reach
	if p := pprof.Lookup("goroutineleak"); p != nil {
		_ = p.WriteTo(io.Discard, 0)
	}
	runtime.KeepAlive(globals[0])
}
