//! The named figures: every figure memspike shows under a name, defined once. A [`Figure`] is
//! its `/stats` key (Go's `runtime.MemStats` name where Go has one), its `/metrics` name, its
//! unit, a short label and how to read it. The text report's rows, `/stats`, `/metrics`, the
//! live page (its labels and tooltips) and the charts' legends all draw from here, so a figure
//! renamed or explained better changes everywhere at once.
//!
//! Values are read elsewhere (the serve module's `stats::readings`, the reports); this module
//! only says what each one is.

use serde::Serialize;

/// What a figure counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Bytes,
    /// A plain number (collections, faults, slabs).
    Count,
    /// Nanoseconds (shown as seconds in `/metrics`).
    Nanoseconds,
    /// Unix time in nanoseconds.
    UnixNanoseconds,
    /// Words, not a number.
    Text,
}

/// How a figure behaves over time (Prometheus' types).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Goes up and down.
    Gauge,
    /// Only goes up (reset with the heap or the session).
    Counter,
    /// Not a measurement (a name, a state).
    Info,
}

/// One named figure.
#[derive(Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Figure {
    /// The `/stats` key.
    pub key: &'static str,
    /// The `/metrics` name after `memspike_` and before the unit suffix; `None` when it is not
    /// scraped.
    pub metric: Option<&'static str>,
    pub unit: Unit,
    pub kind: Kind,
    /// A few words for tables, legends and the page.
    pub label: &'static str,
    /// How to read it: the metric's HELP, the page's tooltip.
    pub help: &'static str,
}

const fn figure(
    key: &'static str,
    metric: Option<&'static str>,
    unit: Unit,
    kind: Kind,
    label: &'static str,
    help: &'static str,
) -> Figure {
    Figure {
        key,
        metric,
        unit,
        kind,
        label,
        help,
    }
}

use Kind::{Counter, Gauge, Info};
use Unit::{Bytes, Count, Nanoseconds, Text, UnixNanoseconds};

// The heap, in Go's terms.
pub const ALLOC: Figure = figure(
    "Alloc",
    None,
    Bytes,
    Gauge,
    "heap in use",
    "Bytes of allocated objects, garbage included (Go's Alloc, the same as HeapAlloc)",
);
pub const TOTAL_ALLOC: Figure = figure(
    "TotalAlloc",
    Some("heap_allocated"),
    Bytes,
    Counter,
    "allocated in all",
    "Bytes allocated since serving began, page-rounded (TotalAlloc)",
);
pub const MALLOCS: Figure = figure(
    "Mallocs",
    Some("mallocs"),
    Count,
    Counter,
    "slabs allocated",
    "Slabs allocated (Mallocs)",
);
pub const FREES: Figure = figure(
    "Frees",
    Some("frees"),
    Count,
    Counter,
    "slabs swept",
    "Slabs swept (Frees)",
);
pub const HEAP_ALLOC: Figure = figure(
    "HeapAlloc",
    Some("heap_alloc"),
    Bytes,
    Gauge,
    "heap in use",
    "Bytes of allocated objects, garbage included (HeapAlloc)",
);
pub const HEAP_SYS: Figure = figure(
    "HeapSys",
    Some("heap_sys"),
    Bytes,
    Gauge,
    "heap grown to",
    "Bytes of address space the heap has grown to (HeapSys)",
);
pub const HEAP_IDLE: Figure = figure(
    "HeapIdle",
    None,
    Bytes,
    Gauge,
    "idle heap",
    "Bytes in free spans, resident or released (HeapIdle)",
);
pub const HEAP_INUSE: Figure = figure(
    "HeapInuse",
    None,
    Bytes,
    Gauge,
    "heap spans in use",
    "Bytes in spans holding objects (HeapInuse)",
);
pub const HEAP_RELEASED: Figure = figure(
    "HeapReleased",
    Some("heap_released"),
    Bytes,
    Gauge,
    "released to the OS",
    "Bytes of free heap pages returned to the OS (HeapReleased)",
);
pub const HEAP_OBJECTS: Figure = figure(
    "HeapObjects",
    Some("heap_objects"),
    Count,
    Gauge,
    "slabs",
    "Slabs allocated and not yet swept (HeapObjects)",
);
pub const NEXT_GC: Figure = figure(
    "NextGC",
    Some("next_gc"),
    Bytes,
    Gauge,
    "next GC goal",
    "The heap size at which the next collection is due (NextGC); none when no collection is planned",
);
pub const GC_TRIGGER: Figure = figure(
    "GCTrigger",
    Some("gc_trigger"),
    Bytes,
    Gauge,
    "GC trigger",
    "The heap size at which the pacer starts the next collection",
);
pub const NUM_GC: Figure = figure(
    "NumGC",
    Some("gc_cycles"),
    Count,
    Counter,
    "GC cycles",
    "Collections run (NumGC)",
);
pub const LAST_GC: Figure = figure(
    "LastGC",
    None,
    UnixNanoseconds,
    Gauge,
    "last GC",
    "When the last collection ended, Unix nanoseconds (LastGC)",
);

// The simulation's split of the heap.
pub const LIVE: Figure = figure(
    "Live",
    Some("heap_live"),
    Bytes,
    Gauge,
    "live",
    "Bytes of slabs still referenced",
);
pub const GARBAGE: Figure = figure(
    "Garbage",
    Some("heap_garbage"),
    Bytes,
    Gauge,
    "garbage",
    "Bytes of dropped slabs waiting for a collection",
);
pub const FREE: Figure = figure(
    "Free",
    Some("heap_free"),
    Bytes,
    Gauge,
    "free",
    "Bytes of swept pages ready for reuse, still resident",
);
pub const SLABS: Figure = figure(
    "Slabs",
    None,
    Count,
    Gauge,
    "live slabs",
    "Slabs the program still references",
);
pub const SLAB_BYTES: Figure = figure(
    "SlabBytes",
    None,
    Bytes,
    Gauge,
    "live slab bytes",
    "Bytes of the slabs the program still references",
);
pub const NON_HEAP: Figure = figure(
    "NonHeap",
    Some("non_heap"),
    Bytes,
    Gauge,
    "outside the heap",
    "Bytes the runtime holds outside the heap (Sys - HeapSys)",
);

// The limits and the runtime's rules.
pub const LIMIT: Figure = figure(
    "Limit",
    Some("cgroup_limit"),
    Bytes,
    Gauge,
    "cgroup limit",
    "The memory cgroup's limit",
);
pub const MEMORY_LIMIT: Figure = figure(
    "MemoryLimit",
    Some("memory_limit"),
    Bytes,
    Gauge,
    "soft memory limit",
    "The runtime's soft memory limit (GOMEMLIMIT), when set",
);
pub const RUNTIME: Figure = figure(
    "Runtime",
    None,
    Text,
    Info,
    "runtime",
    "The Go release whose rules the simulated runtime follows",
);

// The cgroup.
pub const CGROUP_USAGE: Figure = figure(
    "CgroupUsage",
    Some("cgroup_usage"),
    Bytes,
    Gauge,
    "cgroup usage",
    "The memory cgroup's usage now",
);
pub const CGROUP_PEAK: Figure = figure(
    "CgroupPeak",
    Some("cgroup_peak"),
    Bytes,
    Gauge,
    "cgroup peak",
    "The memory cgroup's peak usage",
);
pub const FAILCNT: Figure = figure(
    "Failcnt",
    Some("cgroup_failcnt"),
    Count,
    Counter,
    "cgroup failcnt",
    "Times the memory cgroup hit its limit (v1 failcnt, v2 max events)",
);
pub const OOM_KILLS: Figure = figure(
    "OomKills",
    Some("cgroup_oom_kills"),
    Count,
    Counter,
    "cgroup OOM kills",
    "Processes the OOM killer killed in the memory cgroup",
);

// The supervisor and the kernel.
pub const RESTARTS: Figure = figure(
    "Restarts",
    Some("restarts"),
    Count,
    Counter,
    "restarts",
    "Workers started after an OOM kill in this session",
);
pub const LAST_OOM: Figure = figure(
    "LastOOM",
    None,
    Text,
    Info,
    "last OOM kill",
    "The last OOM kill in this session: the worker, the step it died in, the verdict",
);
pub const TRACING: Figure = figure(
    "Tracing",
    None,
    Text,
    Info,
    "kernel tracing",
    "ebpf when eBPF programs watch the group, else why not",
);
pub const PAGE_FAULTS: Figure = figure(
    "PageFaults",
    Some("page_faults"),
    Count,
    Counter,
    "page faults",
    "User page faults by tasks in the group (eBPF)",
);
pub const RECLAIM_STALLS: Figure = figure(
    "ReclaimStalls",
    Some("reclaim_stalls"),
    Count,
    Counter,
    "reclaim stalls",
    "Memory-cgroup reclaim stalls of tasks in the group (eBPF)",
);
pub const RECLAIM_NS: Figure = figure(
    "ReclaimNs",
    Some("reclaim_stall"),
    Nanoseconds,
    Counter,
    "time in reclaim",
    "Time spent in memory-cgroup reclaim stalls (eBPF)",
);

/// Every figure but the kernel's, in `/stats` order.
pub const ALL: [&Figure; 30] = [
    &ALLOC,
    &TOTAL_ALLOC,
    &MALLOCS,
    &FREES,
    &HEAP_ALLOC,
    &HEAP_SYS,
    &HEAP_IDLE,
    &HEAP_INUSE,
    &HEAP_RELEASED,
    &HEAP_OBJECTS,
    &NEXT_GC,
    &GC_TRIGGER,
    &NUM_GC,
    &LAST_GC,
    &LIVE,
    &GARBAGE,
    &FREE,
    &SLABS,
    &SLAB_BYTES,
    &NON_HEAP,
    &LIMIT,
    &MEMORY_LIMIT,
    &RUNTIME,
    &CGROUP_USAGE,
    &CGROUP_PEAK,
    &FAILCNT,
    &OOM_KILLS,
    &RESTARTS,
    &LAST_OOM,
    &TRACING,
];

/// The kernel counters, shown only when traced (after [`ALL`]'s figures in `/stats`).
pub const KERNEL: [&Figure; 3] = [&PAGE_FAULTS, &RECLAIM_STALLS, &RECLAIM_NS];

/// The registry as the live page reads it: key -> label and help.
pub fn page_json() -> String {
    let map: serde_json::Map<String, serde_json::Value> = ALL
        .iter()
        .chain(KERNEL.iter())
        .map(|f| {
            (
                f.key.to_owned(),
                serde_json::json!({ "label": f.label, "help": f.help, "unit": f.unit }),
            )
        })
        .collect();
    serde_json::Value::Object(map).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn names_are_unique() {
        let all: Vec<&Figure> = ALL.iter().chain(KERNEL.iter()).copied().collect();
        let keys: BTreeSet<&str> = all.iter().map(|f| f.key).collect();
        let distinct: BTreeSet<*const Figure> = all.iter().map(|f| *f as *const _).collect();
        assert_eq!(keys.len(), distinct.len(), "a key is used twice");
        let metrics: Vec<&str> = all.iter().filter_map(|f| f.metric).collect();
        let unique: BTreeSet<&str> = metrics.iter().copied().collect();
        assert_eq!(metrics.len(), unique.len(), "a metric name is used twice");
    }
}
