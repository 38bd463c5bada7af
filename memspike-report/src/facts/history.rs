//! A bounded history of a worker's events: the first [`HEAD`] and the last [`TAIL`], with the
//! count of everything in between. An interactive worker sends events for as long as it
//! serves, so the supervisor cannot keep them all: this keeps its memory, and the report
//! built from it, the same size after a minute or after days.
//!
//! What a report derives from the timeline lives at its ends: the start (ready, the worker's
//! pid and baseline, the seed's spike) and the end (the step the kernel
//! interrupted, the heap's last state). A run that ends by itself (not interactive) also keeps
//! its landmarks whole, between the ends: every collection and every step's begin and end
//! ([`History::record`], the one place that says which events those are), so its report lists
//! them all.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use memspike_model::event::{Event, Kind};

/// Events kept from the start of a worker's life.
pub const HEAD: usize = 16;
/// Events kept from its end.
pub const TAIL: usize = 48;

/// The first `head` and the last `tail` items pushed, in order, the items pushed with
/// [`History::push_kept`] in between, and how many were left out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
// `kept`'s default is an empty list whatever `T` is: no `T: Default`.
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct History<T> {
    head: Vec<T>,
    /// Items pushed with [`History::push_kept`] after the head was full, each with its number
    /// (from 0, in push order). The last few are in the tail too, while it holds them.
    /// (Facts recorded before it existed have none.)
    #[serde(default)]
    kept: Vec<(u64, T)>,
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
            kept: Vec::new(),
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

    /// Pushed between the head and the tail, kept or not.
    pub fn between(&self) -> u64 {
        self.total - (self.head.len() + self.tail.len()) as u64
    }

    /// Pushed but no longer kept (between the head and the tail, and not pushed to be kept).
    pub fn omitted(&self) -> u64 {
        self.between() - self.kept_between().len() as u64
    }

    /// The first items kept.
    pub fn head(&self) -> &[T] {
        &self.head
    }

    /// The kept items the tail no longer holds (those between the head and the tail).
    fn kept_between(&self) -> &[(u64, T)] {
        let tail_from = self.total - self.tail.len() as u64;
        &self.kept[..self.kept.partition_point(|(n, _)| *n < tail_from)]
    }

    /// Every item kept, in order: the head, the kept ones between, the tail.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.head
            .iter()
            .chain(self.kept_between().iter().map(|(_, item)| item))
            .chain(self.tail.iter())
    }

    /// The ends only, in order: the head, then the tail ([`History::between`] were pushed
    /// between them).
    pub fn ends(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.head.iter().chain(self.tail.iter())
    }

    pub fn last(&self) -> Option<&T> {
        self.tail
            .back()
            .or(self.kept.last().map(|(_, item)| item))
            .or(self.head.last())
    }
}

impl<T: Clone> History<T> {
    /// Pushes an item kept whatever the bounds: in the head while it has room, else in the tail
    /// like any other and, whole, among the kept ones, which grow with every such push.
    pub fn push_kept(&mut self, item: T) {
        if self.head.len() >= self.head_cap {
            self.kept.push((self.total, item.clone()));
        }
        self.push(item);
    }
}

impl History<Event> {
    /// Records one of a worker's events. A run that ends by itself (`whole_run`: not
    /// interactive) keeps its landmarks whole, [`is_landmark`]; an interactive worker's stay
    /// bounded like the rest.
    pub fn record(&mut self, event: Event, whole_run: bool) {
        if whole_run && is_landmark(&event.kind) {
            self.push_kept(event);
        } else {
            self.push(event);
        }
    }
}

/// The events a finished run's facts keep whole: every collection and every step's begin and
/// end.
pub fn is_landmark(kind: &Kind) -> bool {
    matches!(
        kind,
        Kind::Gc { .. } | Kind::Begin { .. } | Kind::End { .. }
    )
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
    fn items_pushed_to_be_kept_survive_the_bounds_in_order() {
        let mut h = History::with_bounds(3, 4);
        for i in 0..1_000u32 {
            if i % 100 == 0 || i == 998 {
                h.push_kept(i);
            } else {
                h.push(i);
            }
        }
        // 0 is in the head; 998 is in the tail, once.
        let mut want = vec![0, 1, 2];
        want.extend((100..1_000).step_by(100));
        want.extend(996..1_000);
        assert_eq!(h.iter().copied().collect::<Vec<_>>(), want);
        assert_eq!(
            h.ends().copied().collect::<Vec<_>>(),
            [0, 1, 2, 996, 997, 998, 999]
        );
        assert_eq!((h.total(), h.between()), (1_000, 993));
        assert_eq!(h.omitted(), 993 - 9);
        assert_eq!(h.last(), Some(&999));
        // What the tail still holds is kept once more only while it holds it.
        assert!(h.kept.len() <= 9 + 4, "{}", h.kept.len());
    }

    /// A finished run of many events (churn: 1,500 steps) keeps every collection and every
    /// step boundary; an interactive worker's history stays bounded.
    #[test]
    fn a_finished_runs_history_keeps_every_gc_and_step_boundary() {
        use memspike_model::{
            experiment::{DEFAULT_ALLOC_RATE, Experiment},
            heap::Accounting,
            policy::Policy,
            program::{Detached, Driver},
            release::Release,
            runtime::Runtime,
            scenario::builtin,
        };
        let e = Experiment {
            limit: 64 << 20,
            scenario: builtin::by_name("churn").unwrap(),
            spike: None,
            policy: Policy::default(),
            runtime: Release::default(),
            alloc_rate: DEFAULT_ALLOC_RATE,
            gomaxprocs: 2,
            pause_at: None,
            profile: None,
        };
        let rt = Runtime::new(
            Accounting::default(),
            Accounting::default(),
            1 << 30,
            e.runtime_config(0, 0),
        );
        let mut d = Driver::new(rt, Vec::new(), Detached { pid: 1 });
        d.run(&e.effective_scenario(), e.limit).unwrap();
        let events: Vec<Event> = d.into_sink();
        let count = |it: &mut dyn Iterator<Item = &Event>| {
            let (mut gc, mut boundaries) = (Vec::new(), 0);
            for e in it {
                match &e.kind {
                    Kind::Gc { cycle, .. } => gc.push(cycle.n),
                    Kind::Begin { .. } | Kind::End { .. } => boundaries += 1,
                    _ => {}
                }
            }
            (gc, boundaries)
        };
        let (gc, boundaries) = count(&mut events.iter());
        assert!(gc.len() > 1 && boundaries > 3_000, "{gc:?} {boundaries}");
        assert!(events.len() as u64 > (HEAD + TAIL) as u64 * 10);

        let mut whole = History::default();
        let mut bounded = History::default();
        for e in &events {
            whole.record(e.clone(), true);
            bounded.record(e.clone(), false);
        }
        assert_eq!(count(&mut whole.iter()), (gc.clone(), boundaries));
        let num_gc = events.last().unwrap().heap.num_gc;
        assert_eq!(gc, (1..=num_gc).collect::<Vec<_>>());
        // Nothing kept twice, the ends as before.
        assert_eq!(whole.iter().count() as u64, whole.total() - whole.omitted());
        assert!(whole.ends().eq(bounded.ends()));
        assert_eq!(bounded.iter().count(), HEAD + TAIL);
        assert_eq!(whole.last(), events.last());
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
