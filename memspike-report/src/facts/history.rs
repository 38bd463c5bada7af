//! A bounded history of a worker's events: the first [`HEAD`] and the last [`TAIL`], with the
//! count of everything in between. An interactive worker sends events for as long as it
//! serves, so the supervisor cannot keep them all: this keeps its memory, and the report
//! built from it, the same size after a minute or after days.
//!
//! What a report derives from the timeline lives at its ends: the start (ready, the worker's
//! pid and baseline, the seed's spike) and the end (the step the kernel
//! interrupted, the heap's last state).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Events kept from the start of a worker's life.
pub const HEAD: usize = 16;
/// Events kept from its end.
pub const TAIL: usize = 48;

/// The first `head` and the last `tail` items pushed, in order, and how many were left out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct History<T> {
    head: Vec<T>,
    tail: VecDeque<T>,
    head_cap: usize,
    tail_cap: usize,
    total: u64,
}

impl<T> Default for History<T> {
    fn default() -> Self {
        History::with_bounds(HEAD, TAIL)
    }
}

impl<T> History<T> {
    pub fn with_bounds(head: usize, tail: usize) -> Self {
        History {
            head: Vec::with_capacity(head),
            tail: VecDeque::with_capacity(tail),
            head_cap: head,
            tail_cap: tail,
            total: 0,
        }
    }

    pub fn push(&mut self, item: T) {
        self.total += 1;
        if self.head.len() < self.head_cap {
            self.head.push(item);
            return;
        }
        if self.tail.len() == self.tail_cap {
            self.tail.pop_front();
        }
        if self.tail_cap > 0 {
            self.tail.push_back(item);
        }
    }

    /// Everything ever pushed.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Pushed but no longer kept (between the head and the tail).
    pub fn omitted(&self) -> u64 {
        self.total - (self.head.len() + self.tail.len()) as u64
    }

    /// The first items kept.
    pub fn head(&self) -> &[T] {
        &self.head
    }

    /// Every item kept, in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.head.iter().chain(self.tail.iter())
    }

    pub fn last(&self) -> Option<&T> {
        self.tail.back().or(self.head.last())
    }
}

impl<T> FromIterator<T> for History<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut h = History::default();
        for item in iter {
            h.push(item);
        }
        h
    }
}

/// Points kept for a chart: every one pushed until the cap are kept, then every other
/// is dropped and only every second push after that is kept, and so on, so the points stay
/// spread evenly over the whole run in bounded memory. The last one pushed is always kept
/// (a chart must reach the end: the OOM kill).
#[derive(Clone, Debug, PartialEq)]
pub struct Thinned<T> {
    items: Vec<T>,
    cap: usize,
    /// Keep one push in `stride`.
    stride: u64,
    pushed: u64,
    /// The last push, when the stride skipped it.
    last: Option<T>,
}

/// Points a run's chart keeps.
pub const CHART_POINTS: usize = 512;

impl<T> Default for Thinned<T> {
    fn default() -> Self {
        Thinned::with_cap(CHART_POINTS)
    }
}

impl<T> Thinned<T> {
    pub fn with_cap(cap: usize) -> Self {
        Thinned {
            items: Vec::new(),
            cap: cap.max(2),
            stride: 1,
            pushed: 0,
            last: None,
        }
    }

    pub fn push(&mut self, item: T) {
        let keep = self.pushed.is_multiple_of(self.stride);
        self.pushed += 1;
        if !keep {
            self.last = Some(item);
            return;
        }
        self.last = None;
        if self.items.len() == self.cap {
            let mut i = 0;
            self.items.retain(|_| {
                i += 1;
                i % 2 == 1
            });
            self.stride *= 2;
        }
        self.items.push(item);
    }

    /// The points kept, in order, the last one pushed included.
    pub fn into_vec(mut self) -> Vec<T> {
        self.items.extend(self.last);
        self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinned_points_stay_bounded_spread_and_end_at_the_last() {
        let mut t = Thinned::with_cap(8);
        for i in 0..1_000u32 {
            t.push(i);
        }
        let v = t.into_vec();
        assert!(v.len() <= 9, "{v:?}");
        assert_eq!((v[0], *v.last().unwrap()), (0, 999));
        assert!(v.windows(2).all(|w| w[1] > w[0]));
        // Evenly spread: no gap is more than twice another (the last one excepted).
        let gaps: Vec<u32> = v.windows(2).map(|w| w[1] - w[0]).collect();
        let (min, max) = (
            gaps.iter().min().unwrap(),
            gaps[..gaps.len() - 1].iter().max().unwrap(),
        );
        assert!(max <= &(min * 2), "{gaps:?}");
        let short: Vec<u32> = {
            let mut t = Thinned::with_cap(8);
            (0..5).for_each(|i| t.push(i));
            t.into_vec()
        };
        assert_eq!(short, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn keeps_the_ends_and_counts_the_middle() {
        let mut h = History::with_bounds(3, 4);
        for i in 0..1_000_000u32 {
            h.push(i);
        }
        assert_eq!(h.head(), [0, 1, 2]);
        assert_eq!(
            h.iter().skip(3).copied().collect::<Vec<_>>(),
            [999_996, 999_997, 999_998, 999_999]
        );
        assert_eq!((h.total(), h.omitted()), (1_000_000, 1_000_000 - 7));
        assert_eq!(h.last(), Some(&999_999));
        assert_eq!(h.iter().count(), 7);
    }

    #[test]
    fn a_short_history_is_kept_whole() {
        let h: History<u32> = (0..10).collect();
        assert_eq!(
            h.iter().copied().collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        assert_eq!(h.omitted(), 0);
        assert_eq!(h.last(), Some(&9));
        assert!(History::<u32>::default().last().is_none());
    }
}
