// SPDX-License-Identifier: MIT OR Apache-2.0

//go:build !nointeractive

package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// get sends one request to the handler and decodes the JSON answer.
func get(t *testing.T, s *slabs, method, target string) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	s.handler().ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("%s %s: the answer is not JSON: %v: %q", method, target, err, rec.Body.String())
	}
	return rec.Code, body
}

func lengths(s *slabs) []int {
	var out []int
	for _, b := range s.held {
		out = append(out, len(b))
	}
	return out
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestAddKeepsWrittenSlabsAndAnswersMemStats(t *testing.T) {
	s := &slabs{}
	code, body := get(t, s, http.MethodGet, "/add?bytes=1MiB")
	if code != http.StatusOK {
		t.Fatalf("status %d: %v", code, body)
	}
	code, _ = get(t, s, http.MethodPost, "/add?bytes=4096")
	if code != http.StatusOK {
		t.Fatalf("POST: status %d", code)
	}
	if got := lengths(s); !equal(got, []int{1 << 20, 4096}) {
		t.Fatalf("slabs %v, want [1048576 4096]", got)
	}
	for _, b := range s.held[0][:4096] {
		if b != 0xA5 {
			t.Fatalf("a slab byte is %#x: the slab was not written", b)
		}
	}
	for _, key := range []string{"Alloc", "Mallocs", "Frees", "HeapAlloc", "HeapIdle", "HeapObjects",
		"HeapInuse", "HeapReleased", "LastGC", "NextGC", "NumGC", "Sys"} {
		if _, ok := body[key]; !ok {
			t.Errorf("the answer lacks %s: %v", key, body)
		}
	}
	if _, ok := body["Released"]; ok {
		t.Errorf("/add's answer has /rel's Released: %v", body)
	}
	if body["HeapAlloc"].(float64) < 1<<20 {
		t.Errorf("HeapAlloc %v is below the 1 MiB slab just kept", body["HeapAlloc"])
	}
}

func TestRelReleasesOldestFirstAndCopiesAPartlyReleasedSlab(t *testing.T) {
	s := &slabs{}
	for _, n := range []string{"1000", "2000", "3000"} {
		if code, body := get(t, s, http.MethodGet, "/add?bytes="+n); code != http.StatusOK {
			t.Fatalf("add %s: %d %v", n, code, body)
		}
	}
	second := &s.held[1][0]
	code, body := get(t, s, http.MethodGet, "/rel?bytes=1500")
	if code != http.StatusOK {
		t.Fatalf("status %d: %v", code, body)
	}
	if got := lengths(s); !equal(got, []int{1500, 3000}) {
		t.Fatalf("after releasing 1500: slabs %v, want [1500 3000]", got)
	}
	if &s.held[0][0] == second {
		t.Errorf("the partly released slab was resliced, not replaced by a smaller copy")
	}
	if body["Released"] != 1500.0 || body["NotReleased"] != 0.0 {
		t.Errorf("Released %v NotReleased %v, want 1500 and 0", body["Released"], body["NotReleased"])
	}
	_, body = get(t, s, http.MethodGet, "/rel?bytes=10000")
	if body["Released"] != 4500.0 || body["NotReleased"] != 5500.0 {
		t.Errorf("Released %v NotReleased %v, want 4500 and 5500", body["Released"], body["NotReleased"])
	}
	if len(s.held) != 0 {
		t.Errorf("slabs left after releasing more than was held: %v", lengths(s))
	}
}

func TestResetDropsEverythingAndGcCollects(t *testing.T) {
	s := &slabs{}
	get(t, s, http.MethodGet, "/add?bytes=64KiB")
	_, before := get(t, s, http.MethodGet, "/stats")
	_, after := get(t, s, http.MethodGet, "/gc")
	if after["NumGC"].(float64) <= before["NumGC"].(float64) {
		t.Errorf("/gc: NumGC %v after, %v before", after["NumGC"], before["NumGC"])
	}
	_, reset := get(t, s, http.MethodGet, "/reset")
	if len(s.held) != 0 {
		t.Errorf("/reset left slabs: %v", lengths(s))
	}
	if reset["NumGC"].(float64) <= after["NumGC"].(float64) {
		t.Errorf("/reset did not collect: NumGC %v, %v before", reset["NumGC"], after["NumGC"])
	}
}

func TestBadOrMissingBytesIs400WithAnError(t *testing.T) {
	s := &slabs{maxBytes: 1 << 30}
	for _, target := range []string{"/add", "/add?bytes=", "/add?bytes=lots", "/add?bytes=-1",
		"/add?bytes=1.5", "/add?bytes=1&bytes=2", "/rel?bytes=1e3", "/add?bytes=2GiB", "/rel"} {
		code, body := get(t, s, http.MethodGet, target)
		if code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", target, code)
		}
		if msg, _ := body["error"].(string); !strings.Contains(msg, "bytes") {
			t.Errorf("%s: error %q does not name bytes", target, msg)
		}
	}
	if len(s.held) != 0 {
		t.Errorf("a refused request allocated: %v", lengths(s))
	}
	if code, _ := get(t, s, http.MethodDelete, "/stats"); code != http.StatusMethodNotAllowed {
		t.Errorf("DELETE /stats: status %d, want 405", code)
	}
}
