//! The statistics every answer carries, keyed by Go's `runtime.MemStats` names so that Go users
//! recognise them, and their two renderings: JSON (the default) and the seed's text layout,
//! one `Name: value` per line in a fixed order.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Value, json};

use memspike_cgroup::Counters;
use memspike_model::release::Release;
use memspike_report::figures::{Figure, Stat};

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

/// Every figure's reading now, in `/stats` order ([`Stat`]): the heap (Go's names, then the
/// simulation's split), the limits, the cgroup and the supervisor's facts, then the kernel
/// counters when traced. `/stats` shows them all; `/metrics` the ones with a metric name and a
/// number (a `null` is left out there).
pub fn readings(snap: &Snapshot, world: &World) -> Vec<(&'static Figure, Value)> {
    Stat::all()
        .filter_map(|stat| reading(stat, snap, world).map(|v| (stat.figure(), v)))
        .collect()
}

/// One figure's reading, or `None` when it is not shown (a kernel counter, untraced).
fn reading(stat: Stat, snap: &Snapshot, world: &World) -> Option<Value> {
    let s = &snap.stats;
    let c = world.counters.as_ref();
    let feed = world.feed;
    Some(match stat {
        Stat::Alloc => s.heap_alloc().into(),
        Stat::TotalAlloc => s.total_alloc.into(),
        Stat::Mallocs => s.mallocs.into(),
        Stat::Frees => s.frees.into(),
        Stat::HeapAlloc => s.heap_alloc().into(),
        Stat::HeapSys => s.heap_sys().into(),
        Stat::HeapIdle => s.heap_idle().into(),
        Stat::HeapInuse => s.heap_inuse().into(),
        Stat::HeapReleased => s.released.into(),
        Stat::HeapObjects => s.objects.into(),
        Stat::NextGc => s.next_gc.into(),
        Stat::GcTrigger => s.trigger.into(),
        Stat::NumGc => s.num_gc.into(),
        Stat::LastGc => s.last_gc_unix_ns.into(),
        Stat::Live => s.live.into(),
        Stat::Garbage => s.garbage.into(),
        Stat::Free => s.free.into(),
        Stat::Slabs => snap.slabs.into(),
        Stat::SlabBytes => snap.slab_bytes.into(),
        Stat::NonHeap => s.non_heap.into(),
        Stat::Limit => world.limit.into(),
        Stat::MemoryLimit => world.memory_limit.into(),
        Stat::Runtime => world.runtime.to_string().into(),
        Stat::CgroupUsage => c.and_then(|c| c.usage_bytes).into(),
        Stat::CgroupPeak => c.and_then(|c| c.peak_bytes).into(),
        Stat::Failcnt => c.and_then(|c| c.failcnt).into(),
        Stat::OomKills => c.and_then(|c| c.oom_kills).into(),
        Stat::Restarts => feed.restarts.into(),
        Stat::LastOom => json!(feed.last_oom),
        Stat::Tracing => tracing_state(feed).into(),
        Stat::PageFaults => feed.page_faults?.into(),
        Stat::ReclaimStalls => feed.reclaim_stalls?.into(),
        Stat::ReclaimNs => feed.reclaim_ns?.into(),
    })
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

    /// `/stats` is the registry's `Stat` list, in its order, every figure there once traced.
    #[test]
    fn stats_are_the_registrys_in_its_order() {
        let feed = Feed {
            page_faults: Some(1),
            reclaim_stalls: Some(2),
            reclaim_ns: Some(3),
            ..Feed::default()
        };
        let world = World {
            limit: 32 << 20,
            memory_limit: None,
            runtime: Release::default(),
            counters: None,
            feed: &feed,
        };
        let keys: Vec<&str> = readings(&Snapshot::default(), &world)
            .into_iter()
            .map(|(f, _)| f.key)
            .collect();
        let registry: Vec<&str> = Stat::all().map(|s| s.figure().key).collect();
        assert_eq!(keys, registry);
    }
}
