//! The statistics every answer carries, keyed by Go's `runtime.MemStats` names so that Go users
//! recognise them, and their two renderings: JSON (the default) and the seed's text layout,
//! one `Name: value` per line in a fixed order.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Value, json};

use memspike_cgroup::Counters;
use memspike_model::release::Release;
use memspike_report::figures::{self as fig, Figure};

use super::{
    ServeContext,
    ops::{Done, Outcome, Snapshot},
};
use crate::telemetry::Feed;

/// An answer's fields, in the order they are printed.
#[derive(Debug, Default, Clone)]
pub struct Fields(Vec<(&'static str, Value)>);

impl Fields {
    pub fn push(&mut self, name: &'static str, value: impl Into<Value>) {
        self.0.push((name, value.into()));
    }

    /// One `Name: value` per line; strings bare, `null` for unknown, objects as compact JSON.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (name, value) in &self.0 {
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push_str(name);
            out.push_str(": ");
            out.push_str(&value);
            out.push('\n');
        }
        out
    }

    pub fn json(&self) -> Vec<u8> {
        // Serializing plain values into a Vec cannot fail.
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

/// A JSON object with the fields in order.
impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// What the worker knows besides its heap, gathered for one answer.
#[derive(Debug, Clone)]
pub struct World<'a> {
    pub limit: u64,
    /// The soft memory limit (`GOMEMLIMIT`), when set.
    pub memory_limit: Option<u64>,
    /// The Go release whose rules the runtime follows.
    pub runtime: Release,
    /// The group's counters; `None` without a group (tests).
    pub counters: Option<Counters>,
    pub feed: &'a Feed,
}

impl<'a> World<'a> {
    pub fn new(ctx: &ServeContext, counters: Option<Counters>, feed: &'a Feed) -> World<'a> {
        World {
            limit: ctx.limit,
            memory_limit: ctx.memory_limit,
            runtime: ctx.runtime,
            counters,
            feed,
        }
    }
}

/// The operation's own figures, first, so a reader sees what the request did.
pub fn outcome_fields(done: &Done, f: &mut Fields) {
    match done.outcome {
        Outcome::Added(bytes) => f.push("Added", bytes),
        Outcome::Released {
            released,
            not_released,
        } => {
            f.push("Released", released);
            f.push("NotReleased", not_released);
        }
        Outcome::Collected(c) => {
            f.push("Cycle", c.n);
            f.push("CycleHeapBefore", c.heap_before);
            f.push("CycleHeapAfter", c.heap_after);
            f.push("CycleSwept", c.swept);
            f.push("CycleGoal", c.goal);
            f.push("CycleTrigger", c.trigger);
        }
        Outcome::FreedOsMemory(released) => f.push("ReleasedToOS", released),
        Outcome::Reset => {}
    }
}

/// Every figure's reading now, in `/stats` order: the heap (Go's names, then the
/// simulation's split), the limits, the cgroup and the supervisor's facts, then the kernel
/// counters when traced. `/stats` shows them all; `/metrics` the ones with a metric name and a
/// number (a `null` is left out there).
pub fn readings(snap: &Snapshot, world: &World) -> Vec<(&'static Figure, Value)> {
    let s = &snap.stats;
    let c = world.counters.as_ref();
    let feed = world.feed;
    let mut r: Vec<(&'static Figure, Value)> = vec![
        (&fig::ALLOC, s.heap_alloc().into()),
        (&fig::TOTAL_ALLOC, s.total_alloc.into()),
        (&fig::MALLOCS, s.mallocs.into()),
        (&fig::FREES, s.frees.into()),
        (&fig::HEAP_ALLOC, s.heap_alloc().into()),
        (&fig::HEAP_SYS, s.heap_sys().into()),
        (&fig::HEAP_IDLE, s.heap_idle().into()),
        (&fig::HEAP_INUSE, s.heap_inuse().into()),
        (&fig::HEAP_RELEASED, s.released.into()),
        (&fig::HEAP_OBJECTS, s.objects.into()),
        (&fig::NEXT_GC, s.next_gc.into()),
        (&fig::GC_TRIGGER, s.trigger.into()),
        (&fig::NUM_GC, s.num_gc.into()),
        (&fig::LAST_GC, s.last_gc_unix_ns.into()),
        (&fig::LIVE, s.live.into()),
        (&fig::GARBAGE, s.garbage.into()),
        (&fig::FREE, s.free.into()),
        (&fig::SLABS, snap.slabs.into()),
        (&fig::SLAB_BYTES, snap.slab_bytes.into()),
        (&fig::NON_HEAP, s.non_heap.into()),
        (&fig::LIMIT, world.limit.into()),
        (&fig::MEMORY_LIMIT, world.memory_limit.into()),
        (&fig::RUNTIME, world.runtime.to_string().into()),
        (&fig::CGROUP_USAGE, c.and_then(|c| c.usage_bytes).into()),
        (&fig::CGROUP_PEAK, c.and_then(|c| c.peak_bytes).into()),
        (&fig::FAILCNT, c.and_then(|c| c.failcnt).into()),
        (&fig::OOM_KILLS, c.and_then(|c| c.oom_kills).into()),
        (&fig::RESTARTS, feed.restarts.into()),
        (&fig::LAST_OOM, json!(feed.last_oom)),
        (&fig::TRACING, tracing_state(feed).into()),
    ];
    let kernel = [feed.page_faults, feed.reclaim_stalls, feed.reclaim_ns];
    for (figure, value) in fig::KERNEL.into_iter().zip(kernel) {
        if let Some(v) = value {
            r.push((figure, v.into()));
        }
    }
    r
}

/// The statistics as `/stats` shows them: every reading under its figure's key.
pub fn stats_fields(snap: &Snapshot, world: &World, f: &mut Fields) {
    for (figure, value) in readings(snap, world) {
        f.push(figure.key, value);
    }
}

/// `ebpf`, `unavailable: …`, or `unknown` before the supervisor has said.
fn tracing_state(feed: &Feed) -> &str {
    if feed.tracing.is_empty() {
        "unknown"
    } else {
        &feed.tracing
    }
}

/// A whole answer: the operation's figures (if any), then the statistics.
pub fn answer(done: Option<&Done>, snap: &Snapshot, world: &World) -> Fields {
    let mut f = Fields::default();
    if let Some(done) = done {
        outcome_fields(done, &mut f);
    }
    stats_fields(snap, world, &mut f);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use memspike_model::event::HeapStats;

    #[test]
    fn text_keeps_the_order_and_json_the_values() {
        let snap = Snapshot {
            stats: HeapStats {
                live: 8192,
                garbage: 16384,
                released: 4096,
                // GOGC=off: nothing planned.
                next_gc: None,
                ..HeapStats::default()
            },
            ..Snapshot::default()
        };
        let world = World {
            limit: 32 << 20,
            memory_limit: Some(30 << 20),
            runtime: Release::go1(19).unwrap(),
            counters: None,
            feed: &Feed::default(),
        };
        let f = answer(None, &snap, &world);
        let text = f.text();
        let names: Vec<&str> = text.lines().filter_map(|l| l.split(':').next()).collect();
        assert_eq!(
            &names[..5],
            ["Alloc", "TotalAlloc", "Mallocs", "Frees", "HeapAlloc"]
        );
        assert!(text.contains("HeapAlloc: 24576\n"), "{text}");
        assert!(text.contains("CgroupUsage: null\n"), "{text}");
        assert!(text.contains("Tracing: unknown\n"), "{text}");
        let v: Value = serde_json::from_slice(&f.json()).unwrap();
        assert_eq!(v["Limit"], 32 << 20);
        assert_eq!(v["MemoryLimit"], 30 << 20);
        assert_eq!(v["Runtime"], "go1.19");
        assert_eq!(v["HeapReleased"], 4096);
        assert_eq!(v["NextGC"], Value::Null, "GOGC=off plans no collection");
        assert_eq!(v["LastOOM"], Value::Null);
        assert!(
            v.get("PageFaults").is_none(),
            "kernel counters only when traced"
        );
    }
}
