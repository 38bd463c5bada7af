//! The statistics every answer carries, keyed by Go's `runtime.MemStats` names so that Go users
//! recognise them, and their two renderings: JSON (the default) and the seed's text layout,
//! one `Name: value` per line in a fixed order.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Value, json};

use memspike_model::release::Release;

use super::{
    ServeContext,
    ops::{Done, Outcome, Snapshot},
};
use crate::{cgroup::Counters, telemetry::Feed};

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

/// The heap's statistics (Go's names, then the simulation's split), then the cgroup and the
/// supervisor's facts, then the kernel counters when traced.
pub fn stats_fields(snap: &Snapshot, world: &World, f: &mut Fields) {
    let s = &snap.stats;
    f.push("Alloc", s.heap_alloc());
    f.push("TotalAlloc", snap.stats.total_alloc);
    f.push("Mallocs", s.mallocs);
    f.push("Frees", s.frees);
    f.push("HeapAlloc", s.heap_alloc());
    f.push("HeapSys", s.heap_sys());
    f.push("HeapIdle", s.heap_idle());
    f.push("HeapInuse", s.heap_inuse());
    f.push("HeapReleased", s.released);
    f.push("HeapObjects", s.objects);
    f.push("NextGC", s.next_gc);
    f.push("GCTrigger", s.trigger);
    f.push("NumGC", s.num_gc);
    f.push("LastGC", s.last_gc_unix_ns);
    f.push("Live", s.live);
    f.push("Garbage", s.garbage);
    f.push("Free", s.free);
    f.push("Slabs", snap.slabs);
    f.push("SlabBytes", snap.slab_bytes);
    f.push("NonHeap", s.non_heap);
    f.push("Limit", world.limit);
    f.push("MemoryLimit", world.memory_limit);
    f.push("Runtime", world.runtime.to_string());
    let counters = world.counters.as_ref();
    f.push("CgroupUsage", counters.and_then(|c| c.usage_bytes));
    f.push("Failcnt", counters.and_then(|c| c.failcnt));
    f.push("OomKills", counters.and_then(|c| c.oom_kills));
    f.push("Restarts", world.feed.restarts);
    f.push("LastOOM", json!(world.feed.last_oom));
    f.push("Tracing", tracing_state(world.feed));
    let kernel = [
        ("PageFaults", world.feed.page_faults),
        ("ReclaimStalls", world.feed.reclaim_stalls),
        ("ReclaimNs", world.feed.reclaim_ns),
    ];
    for (name, value) in kernel {
        if let Some(v) = value {
            f.push(name, v);
        }
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
