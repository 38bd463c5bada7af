//! The page allocator: which heap pages are free, which of those were returned to the OS, in
//! address order, and how far the heap has grown. Pure bookkeeping in page units, no memory;
//! [`super::Heap`] maps pages onto its memory. Like Go's page allocator it takes the
//! lowest-addressed free run that fits, grows the heap only when none does, and (like its
//! scavenger) returns the highest-addressed free pages to the OS first.

use std::collections::BTreeMap;

/// A run of pages: `[start, start + len)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub start: u64,
    pub len: u64,
}

/// Where an allocation's pages came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub run: Run,
    /// Pages that were not part of the heap before (new memory from the OS).
    pub grown: u64,
    /// Free pages that had been returned to the OS and are now used again (charged again).
    pub unreleased: u64,
}

/// Free runs, coalesced, keyed by start page; the released ones among them; the heap's end.
#[derive(Clone, Debug, Default)]
pub struct PageAlloc {
    free: BTreeMap<u64, u64>,
    free_pages: u64,
    /// Runs of free pages returned to the OS (each inside a free run), coalesced.
    released: BTreeMap<u64, u64>,
    released_pages: u64,
    end: u64,
}

impl PageAlloc {
    pub fn new() -> PageAlloc {
        PageAlloc::default()
    }

    /// Pages the heap has grown to (`HeapSys` in pages).
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Pages currently free, released or not (`HeapIdle` in pages).
    pub fn free_pages(&self) -> u64 {
        self.free_pages
    }

    /// Free pages returned to the OS (`HeapReleased` in pages).
    pub fn released_pages(&self) -> u64 {
        self.released_pages
    }

    /// The free runs in address order.
    #[cfg(test)]
    pub fn free_runs(&self) -> impl Iterator<Item = Run> + '_ {
        self.free.iter().map(|(&start, &len)| Run { start, len })
    }

    /// The lowest-addressed free run.
    pub fn lowest_free(&self) -> Option<Run> {
        self.free
            .first_key_value()
            .map(|(&start, &len)| Run { start, len })
    }

    /// Allocates `n` pages past the heap's end, leaving a free run that touches it free;
    /// `None` when that would pass `limit` pages.
    pub fn alloc_past_end(&mut self, n: u64, limit: u64) -> Option<Placement> {
        assert!(n > 0, "zero-page allocation");
        let start = self.end;
        self.grow(n, limit)?;
        Some(Placement {
            run: Run { start, len: n },
            grown: n,
            unreleased: 0,
        })
    }

    /// Allocates `n` pages, the lowest-addressed free run that fits first. When none fits,
    /// the heap grows at its end by what is missing (a free run touching the end is used).
    /// Returns `None` when growing would pass `limit` pages.
    pub fn alloc(&mut self, n: u64, limit: u64) -> Option<Placement> {
        assert!(n > 0, "zero-page allocation");
        if let Some((&start, &len)) = self.free.iter().find(|&(_, &len)| len >= n) {
            self.take(start, len, n);
            let unreleased = self.unrelease(start, n);
            return Some(Placement {
                run: Run { start, len: n },
                grown: 0,
                unreleased,
            });
        }
        let tail = self
            .free
            .last_key_value()
            .filter(|&(&s, &l)| s + l == self.end);
        let (start, have) = tail.map_or((self.end, 0), |(&s, &l)| (s, l));
        let grown = n - have;
        self.grow(grown, limit)?;
        let mut unreleased = 0;
        if have > 0 {
            self.take(start, have, have);
            unreleased = self.unrelease(start, have);
        }
        Some(Placement {
            run: Run { start, len: n },
            grown,
            unreleased,
        })
    }

    /// Moves the heap's end `n` pages on; `None`, and nothing moved, past `limit` pages.
    fn grow(&mut self, n: u64, limit: u64) -> Option<()> {
        self.end = self.end.checked_add(n).filter(|&e| e <= limit)?;
        Some(())
    }

    /// Forgets that pages in `[start, start + n)` were released (they are in use again);
    /// returns how many were.
    fn unrelease(&mut self, start: u64, n: u64) -> u64 {
        let end = start + n;
        let mut count = 0;
        // A released run that starts before `start` may reach into the range.
        let first = self
            .released
            .range(..start)
            .next_back()
            .filter(|&(&s, &l)| s + l > start)
            .map(|(&s, _)| s);
        let inside: Vec<u64> = first
            .into_iter()
            .chain(self.released.range(start..end).map(|(&s, _)| s))
            .collect();
        for s in inside {
            let Some(l) = self.released.remove(&s) else {
                continue;
            };
            let (lo, hi) = (s.max(start), (s + l).min(end));
            count += hi - lo;
            if s < lo {
                self.released.insert(s, lo - s);
            }
            if s + l > hi {
                self.released.insert(hi, s + l - hi);
            }
        }
        self.released_pages -= count;
        count
    }

    /// Returns up to `max` free, not yet released pages to the OS, the highest-addressed first
    /// (as Go's scavenger does); returns the runs that were released, highest first.
    pub fn release(&mut self, max: u64) -> Vec<Run> {
        let mut out = Vec::new();
        let mut left = max;
        for (&fs, &fl) in self.free.iter().rev() {
            if left == 0 {
                break;
            }
            // Walk the run from its top down, skipping the parts already released.
            let mut top = fs + fl;
            let below: Vec<(u64, u64)> = self
                .released
                .range(fs..fs + fl)
                .rev()
                .map(|(&s, &l)| (s, l))
                .collect();
            for gap_floor in below.iter().map(|&(s, l)| (s + l, s)).chain([(fs, fs)]) {
                let (gap_bottom, next_top) = gap_floor;
                let take = (top - gap_bottom).min(left);
                if take > 0 {
                    out.push(Run {
                        start: top - take,
                        len: take,
                    });
                    left -= take;
                }
                if left == 0 {
                    break;
                }
                top = next_top;
            }
        }
        for run in &out {
            self.mark_released(*run);
        }
        out
    }

    fn mark_released(&mut self, run: Run) {
        let (mut start, mut len) = (run.start, run.len);
        if let Some((&ps, &pl)) = self.released.range(..start).next_back()
            && ps + pl == start
        {
            self.released.remove(&ps);
            start = ps;
            len += pl;
        }
        if let Some(nl) = self.released.remove(&(start + len)) {
            len += nl;
        }
        self.released.insert(start, len);
        self.released_pages += run.len;
    }

    fn take(&mut self, start: u64, len: u64, n: u64) {
        self.free.remove(&start);
        if len > n {
            self.free.insert(start + n, len - n);
        }
        self.free_pages -= n;
    }

    /// Returns a run to the free set, merging it with its neighbours.
    pub fn free(&mut self, run: Run) {
        debug_assert!(
            run.start + run.len <= self.end,
            "freeing past the heap's end"
        );
        let (mut start, mut len) = (run.start, run.len);
        if let Some((&ps, &pl)) = self.free.range(..start).next_back() {
            debug_assert!(ps + pl <= start, "double free");
            if ps + pl == start {
                self.free.remove(&ps);
                start = ps;
                len += pl;
            }
        }
        if let Some(nl) = self.free.remove(&(start + len)) {
            len += nl;
        }
        self.free.insert(start, len);
        self.free_pages += run.len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(p: &PageAlloc) -> Vec<(u64, u64)> {
        p.free_runs().map(|r| (r.start, r.len)).collect()
    }

    #[test]
    fn grows_only_when_nothing_fits() {
        let mut p = PageAlloc::new();
        let a = p.alloc(4, 100).unwrap();
        assert_eq!((a.run.start, a.grown, p.end()), (0, 4, 4));
        let b = p.alloc(2, 100).unwrap();
        assert_eq!((b.run.start, b.grown, p.end()), (4, 2, 6));
        p.free(a.run);
        // Fits in the freed run: no growth, lowest address first.
        let c = p.alloc(3, 100).unwrap();
        assert_eq!((c.run.start, c.grown, p.end()), (0, 0, 6));
        assert_eq!(runs(&p), vec![(3, 1)]);
        // Does not fit anywhere: grows.
        let d = p.alloc(2, 100).unwrap();
        assert_eq!((d.run.start, d.grown, p.end()), (6, 2, 8));
    }

    #[test]
    fn growth_extends_a_free_run_at_the_end() {
        let mut p = PageAlloc::new();
        let a = p.alloc(2, 100).unwrap();
        let b = p.alloc(3, 100).unwrap();
        p.free(b.run);
        let _ = a;
        // 3 free pages at the end, 5 wanted: grow by 2 only.
        let c = p.alloc(5, 100).unwrap();
        assert_eq!((c.run.start, c.grown, p.end()), (2, 2, 7));
        assert_eq!(p.free_pages(), 0);
    }

    #[test]
    fn frees_coalesce_both_ways() {
        let mut p = PageAlloc::new();
        let r: Vec<_> = (0..4).map(|_| p.alloc(2, 100).unwrap().run).collect();
        p.free(r[0]);
        p.free(r[2]);
        assert_eq!(runs(&p), vec![(0, 2), (4, 2)]);
        p.free(r[1]);
        assert_eq!(runs(&p), vec![(0, 6)]);
        p.free(r[3]);
        assert_eq!(runs(&p), vec![(0, 8)]);
        assert_eq!(p.free_pages(), 8);
    }

    #[test]
    fn releases_the_highest_free_pages_first_and_takes_them_back() {
        let mut p = PageAlloc::new();
        let r: Vec<_> = (0..4).map(|_| p.alloc(4, 100).unwrap().run).collect();
        p.free(r[0]);
        p.free(r[2]);
        // Free: [0,4) and [8,12). Release 6 pages: all of [8,12), then the top of [0,4).
        let out = p.release(6);
        assert_eq!(
            out,
            vec![Run { start: 8, len: 4 }, Run { start: 2, len: 2 }]
        );
        assert_eq!((p.released_pages(), p.free_pages()), (6, 8));
        // Asking again skips what is released: 2 pages left to release.
        assert_eq!(p.release(10), vec![Run { start: 0, len: 2 }]);
        assert_eq!(p.release(10), vec![]);
        assert_eq!(p.released_pages(), 8);
        // Allocating released pages takes them back from the OS.
        let a = p.alloc(3, 100).unwrap();
        assert_eq!((a.run.start, a.grown, a.unreleased), (0, 0, 3));
        assert_eq!(p.released_pages(), 5);
        // A freed run is resident: only its released neighbours stay released.
        p.free(r[1]);
        assert_eq!(p.release(1), vec![Run { start: 7, len: 1 }]);
        // Released: [3,4) and [7,12). Taking [3,11) brings 1 + 4 pages back.
        let b = p.alloc(8, 100).unwrap();
        assert_eq!((b.run.start, b.grown, b.unreleased), (3, 0, 5));
        assert_eq!(p.released_pages(), 1);
    }

    #[test]
    fn respects_the_address_space_limit() {
        let mut p = PageAlloc::new();
        assert!(p.alloc(10, 10).is_some());
        assert!(p.alloc(1, 10).is_none());
        assert_eq!(p.end(), 10);
    }
}
