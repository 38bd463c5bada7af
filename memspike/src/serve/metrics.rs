//! `/metrics`: the heap, the cgroup and the supervisor's facts as a Prometheus scrape, in the
//! OpenMetrics text format written by `prometheus-client`. Every scrape builds a registry of
//! constant metrics from the latest heap snapshot, so what it shows is exactly what `/stats`
//! would show at that moment. Names start with `memspike_` and carry their unit (`_bytes`,
//! `_seconds`) and, for counters, `_total`. A figure that is unknown (no group, no tracing)
//! is left out rather than reported as 0.

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::ConstCounter, gauge::ConstGauge},
    registry::{Registry, Unit},
};

use super::{ops::Snapshot, stats::World};

/// The content type of the answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The scrape's text.
pub fn render(snap: &Snapshot, world: &World) -> Result<String, std::fmt::Error> {
    let mut r = Registry::with_prefix("memspike");
    heap_metrics(&mut r, snap);
    cgroup_metrics(&mut r, world);
    supervisor_metrics(&mut r, world);
    let mut out = String::new();
    encode(&mut out, &r)?;
    Ok(out)
}

fn bytes_gauge(r: &mut Registry, name: &str, help: &str, value: u64) {
    r.register_with_unit(name, help, Unit::Bytes, ConstGauge::new(value));
}

/// A gauge only when the value is known (a goal with GOGC=off is none).
fn maybe_bytes_gauge(r: &mut Registry, name: &str, help: &str, value: Option<u64>) {
    if let Some(v) = value {
        bytes_gauge(r, name, help, v);
    }
}

fn counter(r: &mut Registry, name: &str, help: &str, value: u64) {
    r.register(name, help, ConstCounter::new(value));
}

fn heap_metrics(r: &mut Registry, snap: &Snapshot) {
    let s = &snap.stats;
    bytes_gauge(r, "heap_live", "Bytes of slabs still referenced", s.live);
    let garbage = "Bytes of dropped slabs waiting for a collection";
    bytes_gauge(r, "heap_garbage", garbage, s.garbage);
    let free = "Bytes of swept pages ready for reuse, still resident";
    bytes_gauge(r, "heap_free", free, s.free);
    let alloc = "Bytes of allocated objects, garbage included (HeapAlloc)";
    bytes_gauge(r, "heap_alloc", alloc, s.heap_alloc());
    let sys = "Bytes of address space the heap has grown to (HeapSys)";
    bytes_gauge(r, "heap_sys", sys, s.heap_sys());
    let goal = "The heap size at which the next collection is due (NextGC)";
    maybe_bytes_gauge(r, "next_gc", goal, s.next_gc);
    let trigger = "The heap size at which the pacer starts the next collection";
    maybe_bytes_gauge(r, "gc_trigger", trigger, s.trigger);
    let released = "Bytes of free heap pages returned to the OS (HeapReleased)";
    bytes_gauge(r, "heap_released", released, s.released);
    let non_heap = "Bytes the runtime holds outside the heap (Sys - HeapSys)";
    bytes_gauge(r, "non_heap", non_heap, s.non_heap);
    let objects = "Slabs allocated and not yet swept (HeapObjects)";
    r.register("heap_objects", objects, ConstGauge::new(s.objects));
    counter(
        r,
        "gc_cycles",
        "Collections run (NumGC)",
        u64::from(s.num_gc),
    );
    counter(r, "mallocs", "Slabs allocated (Mallocs)", s.mallocs);
    counter(r, "frees", "Slabs swept (Frees)", s.frees);
    r.register_with_unit(
        "heap_allocated",
        "Bytes allocated since serving began, page-rounded (TotalAlloc)",
        Unit::Bytes,
        ConstCounter::new(snap.stats.total_alloc),
    );
}

fn cgroup_metrics(r: &mut Registry, world: &World) {
    let limit = "The memory cgroup's limit";
    bytes_gauge(r, "cgroup_limit", limit, world.limit);
    let memory_limit = "The runtime's soft memory limit (GOMEMLIMIT), when set";
    maybe_bytes_gauge(r, "memory_limit", memory_limit, world.memory_limit);
    let Some(c) = &world.counters else { return };
    if let Some(v) = c.usage_bytes {
        bytes_gauge(r, "cgroup_usage", "The memory cgroup's usage now", v);
    }
    if let Some(v) = c.peak_bytes {
        bytes_gauge(r, "cgroup_peak", "The memory cgroup's peak usage", v);
    }
    if let Some(v) = c.failcnt {
        let help = "Times the memory cgroup hit its limit (v1 failcnt, v2 max events)";
        counter(r, "cgroup_failcnt", help, v);
    }
    if let Some(v) = c.oom_kills {
        let help = "Processes the OOM killer killed in the memory cgroup";
        counter(r, "cgroup_oom_kills", help, v);
    }
}

fn supervisor_metrics(r: &mut Registry, world: &World) {
    let feed = &world.feed;
    let help = "Workers started after an OOM kill in this session";
    counter(r, "restarts", help, u64::from(feed.restarts));
    if let Some(v) = feed.page_faults {
        let help = "User page faults by tasks in the group (eBPF)";
        counter(r, "page_faults", help, v);
    }
    if let Some(v) = feed.reclaim_stalls {
        let help = "Memory-cgroup reclaim stalls of tasks in the group (eBPF)";
        counter(r, "reclaim_stalls", help, v);
    }
    if let Some(ns) = feed.reclaim_ns {
        r.register_with_unit(
            "reclaim_stall",
            "Time spent in memory-cgroup reclaim stalls (eBPF)",
            Unit::Seconds,
            ConstCounter::new(ns as f64 / 1e9),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{cgroup::Counters, telemetry::Feed};

    #[test]
    fn names_carry_units_and_unknowns_are_left_out() {
        let world = World {
            limit: 1 << 25,
            memory_limit: None,
            runtime: memspike_model::release::Release::default(),
            counters: Some(Counters {
                usage_bytes: Some(4096),
                oom_kills: Some(1),
                ..Counters::default()
            }),
            feed: &Feed {
                restarts: 2,
                reclaim_ns: Some(1_500_000_000),
                ..Feed::default()
            },
        };
        let text = render(&Snapshot::default(), &world).unwrap();
        for line in [
            "memspike_cgroup_limit_bytes 33554432",
            "memspike_cgroup_usage_bytes 4096",
            "memspike_cgroup_oom_kills_total 1",
            "memspike_restarts_total 2",
            "memspike_reclaim_stall_seconds_total 1.5",
            "# TYPE memspike_heap_live_bytes gauge",
            "# HELP memspike_gc_cycles Collections run (NumGC).",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
        }
        assert!(!text.contains("failcnt"), "{text}");
        assert!(!text.contains("page_faults"), "{text}");
    }
}
