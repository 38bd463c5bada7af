//! The page allocator: which heap pages are free, in address order, and how far the heap
//! has grown. Pure bookkeeping in page units, no memory; [`super::Heap`] maps pages onto the
//! arena. Like Go's page allocator it takes the lowest-addressed free run that fits, and
//! grows the heap only when none does.

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
}

/// Free runs, coalesced, keyed by start page; and the heap's end.
#[derive(Clone, Debug, Default)]
pub struct PageAlloc {
    free: BTreeMap<u64, u64>,
    free_pages: u64,
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

    /// Pages currently free (`HeapIdle` in pages).
    pub fn free_pages(&self) -> u64 {
        self.free_pages
    }

    /// The free runs in address order.
    #[cfg(test)]
    pub fn free_runs(&self) -> impl Iterator<Item = Run> + '_ {
        self.free.iter().map(|(&start, &len)| Run { start, len })
    }

    /// Allocates `n` pages, the lowest-addressed free run that fits first. When none fits,
    /// the heap grows at its end by what is missing (a free run touching the end is used).
    /// Returns `None` when growing would pass `limit` pages.
    pub fn alloc(&mut self, n: u64, limit: u64) -> Option<Placement> {
        assert!(n > 0, "zero-page allocation");
        if let Some((&start, &len)) = self.free.iter().find(|&(_, &len)| len >= n) {
            self.take(start, len, n);
            return Some(Placement {
                run: Run { start, len: n },
                grown: 0,
            });
        }
        let tail = self
            .free
            .last_key_value()
            .filter(|&(&s, &l)| s + l == self.end);
        let (start, have) = tail.map_or((self.end, 0), |(&s, &l)| (s, l));
        let grown = n - have;
        if self.end.checked_add(grown).is_none_or(|e| e > limit) {
            return None;
        }
        if have > 0 {
            self.take(start, have, have);
        }
        self.end += grown;
        Some(Placement {
            run: Run { start, len: n },
            grown,
        })
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
    fn respects_the_address_space_limit() {
        let mut p = PageAlloc::new();
        assert!(p.alloc(10, 10).is_some());
        assert!(p.alloc(1, 10).is_none());
        assert_eq!(p.end(), 10);
    }
}
