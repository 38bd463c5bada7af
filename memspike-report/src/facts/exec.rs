//! A real program's group over time: its usage and `memory.stat` sampled every
//! [`SAMPLE_PERIOD`], and the kernel observer's counts per time bucket, both bounded however
//! long the program runs; and the cycles its runtime traced.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use memspike_model::trace::RuntimeCycle;

use super::Reading;

/// How often the group's usage and `memory.stat` are read.
pub const SAMPLE_PERIOD: Duration = Duration::from_millis(10);
/// The first width of a time bucket of kernel counts; it doubles whenever [`MAX_BUCKETS`] are
/// full (neighbours merge), so a long run keeps its whole span in as many buckets.
pub const FIRST_BUCKET: Duration = Duration::from_millis(100);
pub const MAX_BUCKETS: usize = 64;
/// Samples kept; past it every other is dropped and the kept period doubles.
pub const MAX_SAMPLES: usize = 1024;

/// One reading of the group, `t_ms` after the command started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Sample {
    pub t_ms: u64,
    #[serde(flatten)]
    pub reading: Reading,
}

/// The kernel's counts in one time bucket (`t_ms` is its start).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Bucket {
    pub t_ms: u64,
    pub page_faults: Option<u64>,
    pub reclaim_stalls: Option<u64>,
    pub reclaim_ns: Option<u64>,
}

/// The group over time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Timeline {
    /// Milliseconds between kept samples.
    pub sample_period_ms: u64,
    pub samples: Vec<Sample>,
    pub bucket_ms: u64,
    pub buckets: Vec<Bucket>,
}

impl Timeline {
    pub fn new() -> Timeline {
        Timeline {
            sample_period_ms: SAMPLE_PERIOD.as_millis() as u64,
            bucket_ms: FIRST_BUCKET.as_millis() as u64,
            ..Timeline::default()
        }
    }

    /// Keeps a reading if a period has passed since the last kept one, thinning the kept ones
    /// when they are too many.
    pub fn sample(&mut self, t_ms: u64, reading: Reading) {
        if self
            .samples
            .last()
            .is_some_and(|s| t_ms < s.t_ms + self.sample_period_ms)
        {
            return;
        }
        if self.samples.len() == MAX_SAMPLES {
            let mut i = 0;
            self.samples.retain(|_| {
                i += 1;
                i % 2 == 1
            });
            self.sample_period_ms *= 2;
        }
        self.samples.push(Sample { t_ms, reading });
    }

    /// Keeps the reading at the run's end whatever the period (only a reading at the same
    /// millisecond as the last kept one is dropped), so that a short run still shows its start
    /// and its end.
    pub fn end(&mut self, t_ms: u64, reading: Reading) {
        if self.samples.last().is_some_and(|s| t_ms <= s.t_ms) {
            return;
        }
        if self.samples.len() == MAX_SAMPLES {
            self.samples.pop();
        }
        self.samples.push(Sample { t_ms, reading });
    }

    /// Adds the counts seen during the bucket that starts at `counts.t_ms`; when the buckets
    /// are full, neighbours merge and the width doubles.
    pub fn bucket(&mut self, counts: Bucket) {
        if self.buckets.len() == MAX_BUCKETS {
            let merged: Vec<Bucket> = self
                .buckets
                .chunks(2)
                .map(|pair| {
                    let sum = |f: fn(&Bucket) -> Option<u64>| {
                        pair.iter().map(f).try_fold(0u64, |a, v| Some(a + v?))
                    };
                    Bucket {
                        t_ms: pair[0].t_ms,
                        page_faults: sum(|b| b.page_faults),
                        reclaim_stalls: sum(|b| b.reclaim_stalls),
                        reclaim_ns: sum(|b| b.reclaim_ns),
                    }
                })
                .collect();
            self.buckets = merged;
            self.bucket_ms *= 2;
        }
        // A bucket may have been merged into the last one's span: add to it.
        match self.buckets.last_mut() {
            Some(last) if counts.t_ms < last.t_ms + self.bucket_ms => {
                let add = |a: Option<u64>, b: Option<u64>| Some(a? + b?);
                last.page_faults = add(last.page_faults, counts.page_faults);
                last.reclaim_stalls = add(last.reclaim_stalls, counts.reclaim_stalls);
                last.reclaim_ns = add(last.reclaim_ns, counts.reclaim_ns);
            }
            _ => self.buckets.push(counts),
        }
    }
}

/// A cycle the runtime traced, and when memspike read its line: `read_ms` after the command
/// started (the cycle's own `t_ms` is the runtime's clock, since the program started); and
/// the group as memspike read it then.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TimedCycle {
    pub read_ms: f64,
    #[serde(flatten)]
    pub cycle: RuntimeCycle,
    /// The group's usage and `memory.stat` when the line was read (`null` in older facts).
    #[serde(default)]
    pub group: Option<Reading>,
    /// A Go program's heap's resident pages, read with `group` (its arenas' `Rss` in
    /// `/proc/PID/smaps`); absent for other programs and in older facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heap_resident_bytes: Option<u64>,
    /// Its anonymous memory, read with them (every mapping's `Anonymous`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous_bytes: Option<u64>,
    /// The size of the runtime's own mappings outside the heap, and the arenas the heap's
    /// reach into, read with them ([`memspike_model::trace::go::Resident`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_mapped_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heap_arenas: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: the time memspike read a cycle's line and the cycle's own time were both
    /// written `t_ms`, one JSON object with the key twice, which no reader could read back.
    #[test]
    fn a_timed_cycle_has_each_key_once_and_reads_back() {
        let timed = TimedCycle {
            heap_resident_bytes: None,
            anonymous_bytes: None,
            runtime_mapped_bytes: None,
            heap_arenas: None,
            read_ms: 12.5,
            group: None,
            cycle: RuntimeCycle {
                n: 1,
                t_ms: 11.0,
                kind: "gc".into(),
                cause: None,
                heap_start_bytes: 4 << 20,
                heap_live_bytes: 1 << 20,
                heap_capacity_bytes: None,
                pause_ms: None,
                go: Some(memspike_model::trace::GoCycle {
                    heap_end_bytes: 4 << 20,
                    goal_bytes: 4 << 20,
                    cpu_percent: 0.0,
                    forced: false,
                    stacks_bytes: None,
                    globals_bytes: None,
                    scan_work: None,
                    procs: 2,
                    mark_ms: None,
                }),
            },
        };
        let json = serde_json::to_string(&timed).unwrap();
        assert_eq!(json.matches("\"t_ms\"").count(), 1, "{json}");
        assert_eq!(serde_json::from_str::<TimedCycle>(&json).unwrap(), timed);
    }

    /// Regression: a command killed within the first sample period left only the reading at
    /// its start.
    #[test]
    fn a_short_run_keeps_its_start_and_its_end() {
        let mut t = Timeline::new();
        t.sample(0, Reading::default());
        t.sample(4, Reading::default());
        assert_eq!(t.samples.len(), 1, "within the period");
        t.end(4, Reading::default());
        assert_eq!(t.samples.iter().map(|s| s.t_ms).collect::<Vec<_>>(), [0, 4]);
        t.end(4, Reading::default());
        assert_eq!(t.samples.len(), 2, "never twice at one millisecond");
    }

    #[test]
    fn samples_thin_out_and_buckets_merge_as_a_run_grows() {
        let mut t = Timeline::new();
        for ms in (0..20_000).step_by(10) {
            t.sample(ms, Reading::default());
        }
        assert!(t.samples.len() <= MAX_SAMPLES);
        assert!(t.sample_period_ms >= 20);
        assert_eq!(t.samples[0].t_ms, 0);
        assert!(t.samples.windows(2).all(|w| w[1].t_ms > w[0].t_ms));
        for i in 0..1_000u64 {
            t.bucket(Bucket {
                t_ms: i * 100,
                page_faults: Some(1),
                reclaim_stalls: Some(2),
                reclaim_ns: None,
            });
        }
        assert!(t.buckets.len() <= MAX_BUCKETS);
        let faults: u64 = t.buckets.iter().filter_map(|b| b.page_faults).sum();
        assert_eq!(faults, 1_000, "merging keeps every count");
        assert_eq!(t.buckets[0].t_ms, 0);
        assert_eq!(t.bucket_ms, 1_600);
        assert!(t.buckets.iter().all(|b| b.reclaim_ns.is_none()));
    }
}
