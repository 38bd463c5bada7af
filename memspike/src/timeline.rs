//! A bounded history of a worker's events: the first [`HEAD`] and the last [`TAIL`], with the
//! count of everything in between. An interactive worker sends events for as long as it
//! serves, so the supervisor cannot keep them all: this keeps its memory, and the report
//! built from it, the same size after a minute or after days.
//!
//! What a report derives from the timeline lives at its ends: the start (ready, the worker's
//! pid and baseline, the seed's spike) and the end (the step the kernel
//! interrupted, the heap's last state).

use std::collections::VecDeque;

/// Events kept from the start of a worker's life.
pub const HEAD: usize = 16;
/// Events kept from its end.
pub const TAIL: usize = 48;

/// The first `head` and the last `tail` items pushed, in order, and how many were left out.
#[derive(Clone, Debug, PartialEq)]
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

#[cfg(test)]
mod tests {
    use super::*;

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
