//! What the kernel saw in the observed group, figure by figure, each with the source it came
//! from (an eBPF program, a cgroup file or the kernel log). The [`Observer`](super::Observer)
//! fills it; the report presents it.

use std::collections::BTreeMap;

use memspike_common::{OomVictim, Phase};
use serde::Serialize;

/// Everything the observer collected. A figure is `None` when no source could provide it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KernelEvidence {
    /// `ebpf` when at least one eBPF program was attached, else `unavailable: <why>`.
    pub tracing: String,
    /// User page faults of the group's tasks, per phase.
    pub page_faults: Option<PageFaults>,
    /// Major page faults (the ones that waited for I/O), per phase; only `memory.stat` has them.
    pub major_faults: Option<PageFaults>,
    /// Memory-cgroup reclaim stalls of the group's tasks.
    pub reclaim: Option<Reclaim>,
    /// Time the group's tasks stalled on memory (PSI).
    pub pressure: Option<Pressure>,
    /// Where OOM victims were looked for; `None` when nowhere could be watched.
    pub oom_source: Option<String>,
    /// Tasks of the group the OOM killer chose, oldest first (the most recent
    /// [`MAX_VICTIMS`](super::MAX_VICTIMS) of them).
    pub oom_victims: Vec<OomVictimReport>,
    /// Anything degraded or worth knowing about how the evidence was collected.
    pub notes: Vec<String>,
}

impl KernelEvidence {
    /// No figure at all, for this reason.
    pub fn unavailable(reason: &str) -> KernelEvidence {
        KernelEvidence {
            tracing: unavailable_label(reason),
            page_faults: None,
            major_faults: None,
            reclaim: None,
            pressure: None,
            oom_source: None,
            oom_victims: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// The victim whose pid is `worker`, else the first one (a report names it as not the
    /// worker): an interactive session's evidence holds the victims of every earlier worker.
    pub fn victim_of(&self, worker: Option<u32>) -> Option<&OomVictimReport> {
        self.oom_victims
            .iter()
            .find(|v| Some(v.pid) == worker)
            .or(self.oom_victims.first())
    }
}

/// How a report names an observer without eBPF.
pub fn unavailable_label(reason: &str) -> String {
    format!("unavailable: {reason}")
}

/// Page-fault counts of the group's tasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PageFaults {
    pub total: u64,
    /// Keyed by [`Phase::name`]; every phase is present.
    pub per_phase: BTreeMap<String, u64>,
    /// Where the counts come from, e.g. `ebpf tp_btf/page_fault_user` or `memory.stat pgfault`.
    pub source: String,
}

impl PageFaults {
    /// From counts indexed by `Phase as usize`.
    pub fn from_counts(counts: &[u64; Phase::COUNT], source: &str) -> PageFaults {
        PageFaults {
            total: counts.iter().fold(0u64, |a, b| a.saturating_add(*b)),
            per_phase: Phase::ALL
                .iter()
                .map(|p| (p.name().to_owned(), counts[*p as usize]))
                .collect(),
            source: source.to_owned(),
        }
    }
}

/// Memory-cgroup reclaim stalls (`mm_vmscan_memcg_reclaim_begin` .. `_end`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reclaim {
    pub stalls: u64,
    pub total_ns: u64,
    pub source: String,
}

/// PSI stall time of the group over the observation: `some` is time when at least one task
/// stalled on memory, `full` time when all non-idle tasks did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pressure {
    pub some_ns: u64,
    pub full_ns: u64,
    pub source: String,
}

/// One OOM kill of a task in the group, sizes in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OomVictimReport {
    pub pid: u32,
    pub comm: String,
    pub total_vm_bytes: u64,
    pub anon_rss_bytes: u64,
    pub file_rss_bytes: u64,
    pub shmem_rss_bytes: u64,
    pub pgtables_bytes: u64,
    pub uid: u32,
    pub oom_score_adj: i16,
    /// When the kill was recorded: `bpf_ktime_get_ns()` (CLOCK_MONOTONIC, as the timeline's
    /// `t_ns`) from eBPF; the kernel log's own timestamp (printk's clock since boot, within a
    /// few µs of CLOCK_MONOTONIC) from `/dev/kmsg`.
    pub t_ns: u64,
    /// `ebpf tracepoint/oom/mark_victim` or `/dev/kmsg`.
    pub source: String,
}

impl OomVictimReport {
    /// From the eBPF program's event (sizes in kB).
    pub fn from_event(v: &OomVictim, source: &str) -> OomVictimReport {
        let kb = |n: u64| n.saturating_mul(1024);
        let len = v.comm.iter().position(|&b| b == 0).unwrap_or(v.comm.len());
        OomVictimReport {
            pid: v.pid,
            comm: String::from_utf8_lossy(&v.comm[..len]).into_owned(),
            total_vm_bytes: kb(v.total_vm_kb),
            anon_rss_bytes: kb(v.anon_rss_kb),
            file_rss_bytes: kb(v.file_rss_kb),
            shmem_rss_bytes: kb(v.shmem_rss_kb),
            pgtables_bytes: kb(v.pgtables_kb),
            uid: v.uid,
            oom_score_adj: v.oom_score_adj,
            t_ns: v.t_ns,
            source: source.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_victim_conversion_turns_kb_into_bytes_and_trims_comm() {
        let mut v = OomVictim::ZERO;
        v.pid = 42;
        v.comm[..8].copy_from_slice(b"memspike");
        v.anon_rss_kb = 32 * 1024;
        v.total_vm_kb = 1;
        v.oom_score_adj = -17;
        let r = OomVictimReport::from_event(&v, "src");
        assert_eq!(r.pid, 42);
        assert_eq!(r.comm, "memspike");
        assert_eq!(r.anon_rss_bytes, 32 << 20);
        assert_eq!(r.total_vm_bytes, 1024);
        assert_eq!(r.oom_score_adj, -17);
        assert_eq!(r.source, "src");
    }

    #[test]
    fn counts_become_named_phases_and_a_saturating_total() {
        let mut counts = [0u64; Phase::COUNT];
        counts[Phase::Spike as usize] = 7;
        counts[Phase::Done as usize] = u64::MAX;
        let f = PageFaults::from_counts(&counts, "memory.stat pgfault");
        assert_eq!(f.per_phase.len(), Phase::COUNT);
        assert_eq!(f.per_phase["spike"], 7);
        assert_eq!(f.per_phase["startup"], 0);
        assert_eq!(f.total, u64::MAX);
    }

    #[test]
    fn the_victim_is_this_workers_else_the_first() {
        let victim = |pid| OomVictimReport {
            pid,
            comm: "memspike".into(),
            total_vm_bytes: 0,
            anon_rss_bytes: 0,
            file_rss_bytes: 0,
            shmem_rss_bytes: 0,
            pgtables_bytes: 0,
            uid: 0,
            oom_score_adj: 0,
            t_ns: 0,
            source: "/dev/kmsg".into(),
        };
        let mut ev = KernelEvidence::unavailable("test");
        assert_eq!(ev.victim_of(Some(1)), None);
        ev.oom_victims = vec![victim(10), victim(20), victim(30)];
        assert_eq!(ev.victim_of(Some(20)).map(|v| v.pid), Some(20));
        assert_eq!(ev.victim_of(Some(99)).map(|v| v.pid), Some(10));
        assert_eq!(ev.victim_of(None).map(|v| v.pid), Some(10));
    }
}
