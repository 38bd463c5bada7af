//! The named figures: every figure memspike shows under a name, defined once. A [`Figure`] is
//! its key (the `/stats` key, Go's `runtime.MemStats` name where Go has one), its `/metrics`
//! name, its unit, a short label, how to read it, and where a report's JSON holds it. Every
//! surface draws from here:
//! - `/stats` shows the figures of [`Stat`], in its order, and `/metrics` scrapes those with a
//!   metric name (the worker's serve module reads each one's value, one `match` arm each);
//! - the reports' rows are figures ([`crate::render::view::Pairs::row`] takes one), and the
//!   charts' legends are their labels;
//! - the live page gets the registry at serve time for its labels and tooltips;
//! - `docs/reference/figures.md` is generated from [`all`].
//!
//! A new figure is a constant here and its place in [`Stat`] (shown by `/stats`) or in
//! `REPORT_ONLY` (a report's figure, also where it is shown), plus its value where it is read.

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
    /// Milliseconds (a report's wall time).
    Milliseconds,
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
    /// Its name: the `/stats` key of the figures `/stats` shows.
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
    /// Where a report's JSON holds it (`cgroup.peak_bytes`; `[]` steps into a list), if one
    /// does.
    pub json: Option<&'static str>,
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
        json: None,
    }
}

impl Figure {
    /// The figure, held in a report's JSON at `path`.
    const fn at(self, path: &'static str) -> Figure {
        Figure {
            json: Some(path),
            ..self
        }
    }
}

use Kind::{Counter, Gauge, Info};
use Unit::{Bytes, Count, Milliseconds, Nanoseconds, Text, UnixNanoseconds};

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
)
.at("events[].heap.total_alloc");
pub const MALLOCS: Figure = figure(
    "Mallocs",
    Some("mallocs"),
    Count,
    Counter,
    "slabs allocated",
    "Slabs allocated (Mallocs)",
)
.at("events[].heap.mallocs");
pub const FREES: Figure = figure(
    "Frees",
    Some("frees"),
    Count,
    Counter,
    "slabs swept",
    "Slabs swept (Frees)",
)
.at("events[].heap.frees");
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
)
.at("heap_at_end.released_bytes");
pub const HEAP_OBJECTS: Figure = figure(
    "HeapObjects",
    Some("heap_objects"),
    Count,
    Gauge,
    "slabs",
    "Slabs allocated and not yet swept (HeapObjects)",
)
.at("events[].heap.objects");
pub const NEXT_GC: Figure = figure(
    "NextGC",
    Some("next_gc"),
    Bytes,
    Gauge,
    "next GC goal",
    "The heap size at which the next collection is due (NextGC); none when no collection is planned",
)
.at("events[].heap.next_gc");
pub const GC_TRIGGER: Figure = figure(
    "GCTrigger",
    Some("gc_trigger"),
    Bytes,
    Gauge,
    "GC trigger",
    "The heap size at which the pacer starts the next collection",
)
.at("events[].heap.trigger");
pub const NUM_GC: Figure = figure(
    "NumGC",
    Some("gc_cycles"),
    Count,
    Counter,
    "GC cycles",
    "Collections run (NumGC)",
)
.at("gc_cycles");
pub const LAST_GC: Figure = figure(
    "LastGC",
    None,
    UnixNanoseconds,
    Gauge,
    "last GC",
    "When the last collection ended, Unix nanoseconds (LastGC)",
)
.at("events[].heap.last_gc_unix_ns");

// The simulation's split of the heap.
pub const LIVE: Figure = figure(
    "Live",
    Some("heap_live"),
    Bytes,
    Gauge,
    "live",
    "Bytes of slabs still referenced",
)
.at("heap_at_end.live_bytes");
pub const GARBAGE: Figure = figure(
    "Garbage",
    Some("heap_garbage"),
    Bytes,
    Gauge,
    "garbage",
    "Bytes of dropped slabs waiting for a collection",
)
.at("heap_at_end.garbage_bytes");
pub const FREE: Figure = figure(
    "Free",
    Some("heap_free"),
    Bytes,
    Gauge,
    "free",
    "Bytes of swept pages ready for reuse, still resident",
)
.at("heap_at_end.free_bytes");
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
)
.at("heap_at_end.non_heap_bytes");

// The limits and the runtime's rules.
pub const LIMIT: Figure = figure(
    "Limit",
    Some("cgroup_limit"),
    Bytes,
    Gauge,
    "cgroup limit",
    "The memory cgroup's limit",
)
.at("limit_bytes");
pub const MEMORY_LIMIT: Figure = figure(
    "MemoryLimit",
    Some("memory_limit"),
    Bytes,
    Gauge,
    "soft memory limit",
    "The runtime's soft memory limit (GOMEMLIMIT), when set",
)
.at("settings.memory_limit_bytes");
pub const PROFILE: Figure = figure(
    "Profile",
    None,
    Text,
    Info,
    "program profile",
    "The program the simulation stands for: the reference Go program, or the one --calibrate's profile was measured from",
)
.at("settings.profile");
pub const PREDICTION: Figure = figure(
    "Prediction",
    None,
    Text,
    Info,
    "model's prediction",
    "How many of the model's runs survived and how many the kernel would have killed, each with the collector's timing drawn from real runs (mark time, when a due cycle starts, assists, allocation rate, the charge outside the heap); marginal when they disagree: real timing decides",
)
.at("prediction");
pub const RUNTIME: Figure = figure(
    "Runtime",
    None,
    Text,
    Info,
    "runtime",
    "The Go release whose rules the simulated runtime follows",
)
.at("settings.runtime");

// The cgroup.
pub const CGROUP_USAGE: Figure = figure(
    "CgroupUsage",
    Some("cgroup_usage"),
    Bytes,
    Gauge,
    "cgroup usage",
    "The memory cgroup's usage now",
)
.at("events[].cgroup_usage_bytes");
pub const CGROUP_PEAK: Figure = figure(
    "CgroupPeak",
    Some("cgroup_peak"),
    Bytes,
    Gauge,
    "cgroup peak",
    "The memory cgroup's peak usage",
)
.at("cgroup.peak_bytes");
pub const FAILCNT: Figure = figure(
    "Failcnt",
    Some("cgroup_failcnt"),
    Count,
    Counter,
    "cgroup failcnt",
    "Times the memory cgroup hit its limit (v1 failcnt, v2 max events)",
)
.at("cgroup.failcnt");
pub const OOM_KILLS: Figure = figure(
    "OomKills",
    Some("cgroup_oom_kills"),
    Count,
    Counter,
    "cgroup OOM kills",
    "Processes the OOM killer killed in the memory cgroup",
)
.at("cgroup.oom_kills");

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
)
.at("kernel.tracing");
pub const PAGE_FAULTS: Figure = figure(
    "PageFaults",
    Some("page_faults"),
    Count,
    Counter,
    "page faults",
    "Every page fault of the group's tasks, in user mode and in kernel mode (inside system calls), with the two apart (kernel.page_faults.user_mode and .kernel_mode: eBPF page_fault_user and page_fault_kernel; memory.stat pgfault counts both without telling them apart). A run's per-step split counts user-mode faults only under eBPF",
)
.at("kernel.page_faults.total");
pub const RECLAIM_STALLS: Figure = figure(
    "ReclaimStalls",
    Some("reclaim_stalls"),
    Count,
    Counter,
    "reclaim stalls",
    "Memory-cgroup reclaim stalls of tasks in the group (eBPF)",
)
.at("kernel.reclaim.stalls");
pub const RECLAIM_NS: Figure = figure(
    "ReclaimNs",
    Some("reclaim_stall"),
    Nanoseconds,
    Counter,
    "time in reclaim",
    "Time spent in memory-cgroup reclaim stalls (eBPF)",
)
.at("kernel.reclaim.total_ns");

// The plain counters the eBPF programs keep: each at `kernel.counts.<name>.value`, where
// `<name>` is its counter's name (memspike-common's `Counter::name`).
pub const KERNEL_PAGE_FAULTS: Figure = figure(
    "KernelPageFaults",
    None,
    Count,
    Counter,
    "kernel page faults",
    "Page faults the group's tasks took in kernel mode: on their memory touched inside a system call, such as read(2) into fresh pages (eBPF); user-mode faults are counted apart",
)
.at("kernel.counts.kernel_page_faults.value");

/// The figure of the eBPF counter `name` (the report's `kernel.counts` key).
pub fn of_count(name: &str) -> Option<&'static Figure> {
    let path = format!("kernel.counts.{name}.value");
    all().find(|f| f.json == Some(path.as_str()))
}

// What the reports say besides the heap's and the group's figures.
pub const DIED_IN: Figure = figure(
    "DiedIn",
    None,
    Text,
    Info,
    "died in",
    "The step the worker was OOM-killed in",
)
.at("died_in");
pub const FAILED_ALLOCATION: Figure = figure(
    "FailedAllocation",
    None,
    Bytes,
    Info,
    "allocation that failed",
    "The allocation the kernel interrupted, and its step",
)
.at("failed_allocation.bytes");
pub const GC_CPU: Figure = figure(
    "GcCpu",
    None,
    Text,
    Info,
    "GC CPU (simulated)",
    "The share of the CPUs the simulated collector used over the simulated run, as Go's GCCPUFraction",
)
.at("gc_cpu_share");
pub const NEXT_GC_AFTER_SPIKE: Figure = figure(
    "NextGcAfterSpike",
    None,
    Bytes,
    Info,
    "next GC after the spike",
    "The pacer's goal right after the seed's spike: where the next collection was planned",
)
.at("next_gc_after_spike_bytes");
pub const HEAP_AT_END: Figure = figure(
    "HeapAtEnd",
    None,
    Bytes,
    Info,
    "heap at the end",
    "The simulated heap when the run ended: live, garbage and free bytes",
)
.at("heap_at_end");
pub const GARBAGE_RATIO: Figure = figure(
    "GarbageRatio",
    None,
    Text,
    Info,
    "garbage / needed",
    "Garbage waiting for a collection over what the last allocation needed: how much reusable memory the runtime held",
)
.at("garbage_ratio");
pub const MEMORY_EVENTS: Figure = figure(
    "MemoryEvents",
    None,
    Count,
    Info,
    "memory.events",
    "cgroup v2's memory.events: low, high, max, oom, oom_kill and oom_group_kill",
)
.at("cgroup.high_events");
pub const MEMORY_HIGH: Figure = figure(
    "MemoryHigh",
    None,
    Bytes,
    Info,
    "memory.high",
    "cgroup v2's memory.high when set, and whether the run was throttled above it",
)
.at("cgroup.high_limit_bytes");
pub const LEFT_CHARGED: Figure = figure(
    "LeftCharged",
    None,
    Bytes,
    Info,
    "left charged after exit",
    "What the group was still charged after its process ended: anonymous memory, page cache, kernel memory",
)
.at("cgroup.anon_bytes");
pub const WORKER: Figure = figure(
    "Worker",
    None,
    Text,
    Info,
    "worker",
    "The worker: its pid, how it ended, and what the group was charged before its first allocation",
)
.at("worker");
pub const COMMAND: Figure = figure(
    "Command",
    None,
    Text,
    Info,
    "command",
    "The command memspike ran: its pid and how it ended",
)
.at("command");
pub const NEXT_GOAL: Figure = figure(
    "NextGoal",
    None,
    Bytes,
    Info,
    "next goal",
    "The goal the program's runtime set after its last traced collection, and what that collection left live",
)
.at("next_goal_bytes");
pub const MAJOR_FAULTS: Figure = figure(
    "MajorFaults",
    None,
    Count,
    Info,
    "major faults",
    "Page faults that waited for I/O (memory.stat pgmajfault)",
)
.at("kernel.major_faults.total");
pub const MEMORY_STALL: Figure = figure(
    "MemoryStall",
    None,
    Nanoseconds,
    Info,
    "memory stall (PSI)",
    "Time the group's tasks stalled on memory (memory.pressure), and the kernel's running averages",
)
.at("kernel.pressure.some_ns");
pub const OOM_VICTIM: Figure = figure(
    "OomVictim",
    None,
    Text,
    Info,
    "OOM victim",
    "The task the kernel's OOM killer chose, with its memory when it was chosen",
)
.at("kernel.oom_victim.pid");
pub const OOM_VICTIMS: Figure = figure(
    "OomVictims",
    None,
    Text,
    Info,
    "OOM victims",
    "Every task of the group the kernel's OOM killer killed while the command ran: its pid, name, parent pid (unknown where only the classic tracepoint or the kernel log saw it), whether it was the command, and its memory when chosen",
)
.at("oom_victims[].pid");
pub const NATIVE_MEMORY: Figure = figure(
    "NativeMemory",
    None,
    Bytes,
    Gauge,
    "native memory (NMT)",
    "A JVM's memory by category as its Native Memory Tracking (on by the user's -XX:NativeMemoryTracking) last accounted it before the program ended: what it committed, the heap and what lies outside it (GC structures, class metadata, code, thread stacks)",
)
.at("native_memory.committed_bytes");
pub const KERNEL_SOURCES: Figure = figure(
    "KernelSources",
    None,
    Text,
    Info,
    "kernel sources",
    "Where each kernel figure came from: an eBPF program, a cgroup file or the kernel log",
)
.at("kernel.page_faults.source");
pub const KERNEL_NOTE: Figure = figure(
    "KernelNote",
    None,
    Text,
    Info,
    "kernel note",
    "Anything the kernel observer could only partly do",
)
.at("kernel.notes");
pub const SAMPLES: Figure = figure(
    "Samples",
    None,
    Text,
    Info,
    "timeline",
    "How often the group's usage was sampled and the kernel's counts bucketed",
)
.at("timeline.sample_period_ms");
pub const WALL_TIME: Figure = figure(
    "WallTime",
    None,
    Milliseconds,
    Info,
    "wall time",
    "How long the run took, from creating its group to removing it",
)
.at("duration_ms");
pub const SCENARIO: Figure = figure(
    "Scenario",
    None,
    Text,
    Info,
    "scenario",
    "The allocation pattern every policy ran",
)
.at("subject.scenario.name");
pub const GROUPS: Figure = figure(
    "Groups",
    None,
    Text,
    Info,
    "groups",
    "Where the policies ran: a fresh group each, or one after the other in the inherited one",
)
.at("limit_source");
pub const WINNER: Figure = figure(
    "Winner",
    None,
    Text,
    Info,
    "winner",
    "The policies that survived every run with the least GC CPU (then the fewest collections)",
)
.at("policies[].winner");
pub const GOAL: Figure = figure(
    "Goal",
    None,
    Text,
    Info,
    "looking for",
    "What a threshold search looks for on its knob",
)
.at("knob");
pub const COST_BOUND: Figure = figure(
    "CostBound",
    None,
    Text,
    Info,
    "bearable cost",
    "When a run costs too much on a cost edge: its GC CPU share, or its wall time against runs without a memory limit",
)
.at("policies[].cost_bound");

/// A figure `/stats` shows, in `/stats` order (the kernel's last, shown only when traced);
/// `/metrics` scrapes those with a metric name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::EnumIter)]
pub enum Stat {
    Alloc,
    TotalAlloc,
    Mallocs,
    Frees,
    HeapAlloc,
    HeapSys,
    HeapIdle,
    HeapInuse,
    HeapReleased,
    HeapObjects,
    NextGc,
    GcTrigger,
    NumGc,
    LastGc,
    Live,
    Garbage,
    Free,
    Slabs,
    SlabBytes,
    NonHeap,
    Limit,
    MemoryLimit,
    Runtime,
    CgroupUsage,
    CgroupPeak,
    Failcnt,
    OomKills,
    Restarts,
    LastOom,
    Tracing,
    PageFaults,
    ReclaimStalls,
    ReclaimNs,
}

impl Stat {
    /// Every one, in `/stats` order.
    pub fn all() -> impl Iterator<Item = Stat> {
        <Stat as strum::IntoEnumIterator>::iter()
    }

    pub const fn figure(self) -> &'static Figure {
        match self {
            Stat::Alloc => &ALLOC,
            Stat::TotalAlloc => &TOTAL_ALLOC,
            Stat::Mallocs => &MALLOCS,
            Stat::Frees => &FREES,
            Stat::HeapAlloc => &HEAP_ALLOC,
            Stat::HeapSys => &HEAP_SYS,
            Stat::HeapIdle => &HEAP_IDLE,
            Stat::HeapInuse => &HEAP_INUSE,
            Stat::HeapReleased => &HEAP_RELEASED,
            Stat::HeapObjects => &HEAP_OBJECTS,
            Stat::NextGc => &NEXT_GC,
            Stat::GcTrigger => &GC_TRIGGER,
            Stat::NumGc => &NUM_GC,
            Stat::LastGc => &LAST_GC,
            Stat::Live => &LIVE,
            Stat::Garbage => &GARBAGE,
            Stat::Free => &FREE,
            Stat::Slabs => &SLABS,
            Stat::SlabBytes => &SLAB_BYTES,
            Stat::NonHeap => &NON_HEAP,
            Stat::Limit => &LIMIT,
            Stat::MemoryLimit => &MEMORY_LIMIT,
            Stat::Runtime => &RUNTIME,
            Stat::CgroupUsage => &CGROUP_USAGE,
            Stat::CgroupPeak => &CGROUP_PEAK,
            Stat::Failcnt => &FAILCNT,
            Stat::OomKills => &OOM_KILLS,
            Stat::Restarts => &RESTARTS,
            Stat::LastOom => &LAST_OOM,
            Stat::Tracing => &TRACING,
            Stat::PageFaults => &PAGE_FAULTS,
            Stat::ReclaimStalls => &RECLAIM_STALLS,
            Stat::ReclaimNs => &RECLAIM_NS,
        }
    }
}

/// The figures only the reports show (not `/stats`).
const REPORT_ONLY: [&Figure; 29] = [
    &KERNEL_PAGE_FAULTS,
    &DIED_IN,
    &FAILED_ALLOCATION,
    &GC_CPU,
    &NEXT_GC_AFTER_SPIKE,
    &HEAP_AT_END,
    &GARBAGE_RATIO,
    &MEMORY_EVENTS,
    &MEMORY_HIGH,
    &LEFT_CHARGED,
    &WORKER,
    &COMMAND,
    &NEXT_GOAL,
    &MAJOR_FAULTS,
    &MEMORY_STALL,
    &OOM_VICTIM,
    &OOM_VICTIMS,
    &NATIVE_MEMORY,
    &KERNEL_SOURCES,
    &KERNEL_NOTE,
    &SAMPLES,
    &WALL_TIME,
    &SCENARIO,
    &GROUPS,
    &WINNER,
    &GOAL,
    &COST_BOUND,
    &PROFILE,
    &PREDICTION,
];

/// Every figure: those `/stats` shows, in its order, then the reports' own.
pub fn all() -> impl Iterator<Item = &'static Figure> {
    Stat::all().map(Stat::figure).chain(REPORT_ONLY)
}

impl Figure {
    /// Its name in a `/metrics` scrape, as Prometheus' conventions spell it: `memspike_`, the
    /// metric name, its unit (`_bytes`, `_seconds` for nanoseconds) and `_total` for a counter.
    pub fn scrape_name(&self) -> Option<String> {
        let unit = match self.unit {
            Unit::Bytes => "_bytes",
            Unit::Nanoseconds => "_seconds",
            _ => "",
        };
        let total = if self.kind == Kind::Counter {
            "_total"
        } else {
            ""
        };
        Some(format!("memspike_{}{unit}{total}", self.metric?))
    }
}

/// `docs/reference/figures.md`: every figure, where it shows and how to read it.
pub fn reference() -> String {
    use comfy_table::{Table, presets::ASCII_MARKDOWN};
    let mut t = Table::new();
    t.load_preset(ASCII_MARKDOWN).set_header([
        "label",
        "key",
        "/stats",
        "/metrics",
        "report JSON",
        "unit",
        "how to read it",
    ]);
    let stats: Vec<&str> = Stat::all().map(|s| s.figure().key).collect();
    for f in all() {
        let code = |s: &str| format!("`{s}`");
        t.add_row([
            f.label.to_owned(),
            code(f.key),
            if stats.contains(&f.key) { "yes" } else { "" }.to_owned(),
            f.scrape_name().map_or(String::new(), |n| code(&n)),
            f.json.map_or(String::new(), code),
            format!("{:?}", f.unit).to_lowercase(),
            f.help.to_owned(),
        ]);
    }
    format!(
        "# Named figures\n\n\
         Every figure memspike shows under a name: its label in the reports and on the live \
         page, its key (`/stats` shows the ones marked, in this order), its `/metrics` name, \
         where a report's JSON holds it (`[]` steps into a list), its unit and how to read it.\n\n\
         Generated from `memspike-report/src/figures.rs`; a test fails when this file is not \
         what the registry says (`UPDATE_EXPECT=1 cargo test -p memspike-report --test \
         reference` rewrites it).\n\n{t}\n"
    )
}

/// The registry as the live page reads it: key -> label and help.
pub fn page_json() -> String {
    let map: serde_json::Map<String, serde_json::Value> = Stat::all()
        .map(Stat::figure)
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
        let all: Vec<&Figure> = all().collect();
        let keys: BTreeSet<&str> = all.iter().map(|f| f.key).collect();
        let distinct: BTreeSet<*const Figure> = all.iter().map(|f| *f as *const _).collect();
        assert_eq!(all.len(), distinct.len(), "a figure is registered twice");
        assert_eq!(keys.len(), distinct.len(), "a key is used twice");
        let metrics: Vec<&str> = all.iter().filter_map(|f| f.metric).collect();
        let unique: BTreeSet<&str> = metrics.iter().copied().collect();
        assert_eq!(metrics.len(), unique.len(), "a metric name is used twice");
    }
}
