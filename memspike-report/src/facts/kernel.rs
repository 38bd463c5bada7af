//! What the kernel saw in the observed group, figure by figure, each with the source it came
//! from (an eBPF program, a cgroup file or the kernel log): plain data of the report's model.
//! The kernel observer (`memspike-probe`) fills it; the report presents it.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Whether eBPF programs watched the group. In JSON and text: `ebpf`, or
/// `unavailable: <why>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tracing {
    /// At least one eBPF program was attached.
    Ebpf,
    /// None was, for this reason (`--no-trace`, not root, no BTF, ...).
    Unavailable(String),
}

impl Tracing {
    pub fn is_ebpf(&self) -> bool {
        matches!(self, Tracing::Ebpf)
    }
}

impl std::fmt::Display for Tracing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tracing::Ebpf => f.write_str("ebpf"),
            Tracing::Unavailable(why) => write!(f, "unavailable: {why}"),
        }
    }
}

impl Serialize for Tracing {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl schemars::JsonSchema for Tracing {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Tracing".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "`ebpf` when eBPF programs watched the group, else `unavailable: <why>`"
        })
    }
}

/// The inverse of `Display`: `ebpf`, or `unavailable: <why>` (anything else is a reason).
impl<'de> Deserialize<'de> for Tracing {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "ebpf" => Tracing::Ebpf,
            other => Tracing::Unavailable(
                other
                    .strip_prefix("unavailable: ")
                    .unwrap_or(other)
                    .to_owned(),
            ),
        })
    }
}

/// Everything the observer collected. A figure is `None` when no source could provide it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KernelEvidence {
    pub tracing: Tracing,
    /// User page faults of the group's tasks, per step slot.
    pub page_faults: Option<PageFaults>,
    /// Major page faults (the ones that waited for I/O), per step slot; only `memory.stat`
    /// has them.
    pub major_faults: Option<PageFaults>,
    /// Memory-cgroup reclaim stalls of the group's tasks.
    pub reclaim: Option<Reclaim>,
    /// Time the group's tasks stalled on memory (PSI).
    pub pressure: Option<Pressure>,
    /// Where OOM victims were looked for; `None` when nowhere could be watched.
    pub oom_source: Option<String>,
    /// Tasks of the group the OOM killer chose, oldest first (the most recent
    /// `MAX_VICTIMS` of them).
    pub oom_victims: Vec<OomVictimReport>,
    /// The plain counters the eBPF programs keep, by name (`kernel_page_faults`); only those
    /// whose programs attached.
    #[serde(default)]
    pub counts: BTreeMap<String, Count>,
    /// Anything degraded or worth knowing about how the evidence was collected.
    pub notes: Vec<String>,
}

impl KernelEvidence {
    /// No figure at all, for this reason.
    pub fn unavailable(reason: &str) -> KernelEvidence {
        KernelEvidence {
            tracing: Tracing::Unavailable(reason.to_owned()),
            page_faults: None,
            major_faults: None,
            reclaim: None,
            pressure: None,
            oom_source: None,
            oom_victims: Vec::new(),
            counts: BTreeMap::new(),
            notes: Vec::new(),
        }
    }

    /// What happened since `earlier`, a snapshot of the same observer: counts are the
    /// difference, victims are the new ones. An interactive session's observer outlives its
    /// workers; this is one worker's share.
    pub fn since(&self, earlier: &KernelEvidence) -> KernelEvidence {
        fn minus(now: &Option<PageFaults>, then: &Option<PageFaults>) -> Option<PageFaults> {
            let now = now.as_ref()?;
            let Some(then) = then.as_ref().filter(|t| t.source == now.source) else {
                return Some(now.clone());
            };
            let per_phase: BTreeMap<String, u64> = now
                .per_phase
                .iter()
                .map(|(phase, n)| {
                    let before = then.per_phase.get(phase).copied().unwrap_or(0);
                    (phase.clone(), n.saturating_sub(before))
                })
                .collect();
            Some(PageFaults::new(per_phase, &now.source))
        }
        let seen = |v: &OomVictimReport| {
            earlier
                .oom_victims
                .iter()
                .any(|e| e.pid == v.pid && e.t_ns == v.t_ns)
        };
        KernelEvidence {
            tracing: self.tracing.clone(),
            page_faults: minus(&self.page_faults, &earlier.page_faults),
            major_faults: minus(&self.major_faults, &earlier.major_faults),
            reclaim: self.reclaim.as_ref().map(|now| match &earlier.reclaim {
                Some(then) if then.source == now.source => Reclaim {
                    stalls: now.stalls.saturating_sub(then.stalls),
                    total_ns: now.total_ns.saturating_sub(then.total_ns),
                    source: now.source.clone(),
                },
                _ => now.clone(),
            }),
            pressure: self.pressure.as_ref().map(|now| match &earlier.pressure {
                Some(then) if then.source == now.source => Pressure {
                    some_ns: now.some_ns.saturating_sub(then.some_ns),
                    full_ns: now.full_ns.saturating_sub(then.full_ns),
                    averages: now.averages,
                    source: now.source.clone(),
                },
                _ => now.clone(),
            }),
            oom_source: self.oom_source.clone(),
            oom_victims: self
                .oom_victims
                .iter()
                .filter(|v| !seen(v))
                .cloned()
                .collect(),
            counts: self
                .counts
                .iter()
                .map(|(name, now)| {
                    let count = match earlier.counts.get(name) {
                        Some(then) if then.source == now.source => {
                            Count::new(now.value.saturating_sub(then.value), &now.source)
                        }
                        _ => now.clone(),
                    };
                    (name.clone(), count)
                })
                .collect(),
            notes: self.notes.clone(),
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

/// Page-fault counts of the group's tasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PageFaults {
    pub total: u64,
    /// Keyed by step slot name (the observer's step slots): every named slot is present (0 when it counted
    /// nothing), and `other` only when it counted something. (The key keeps its historical
    /// name: the JSON schema documents it.)
    pub per_phase: BTreeMap<String, u64>,
    /// Where the counts come from, e.g. `ebpf tp_btf/page_fault_user` or `memory.stat pgfault`.
    pub source: String,
}

impl PageFaults {
    /// From counts per step name; the total saturates.
    pub fn new(per_phase: BTreeMap<String, u64>, source: &str) -> PageFaults {
        PageFaults {
            total: per_phase.values().fold(0u64, |a, b| a.saturating_add(*b)),
            per_phase,
            source: source.to_owned(),
        }
    }
}

/// The name of the eBPF counter of kernel-mode page faults in [`KernelEvidence::counts`]
/// (memspike-common's `Counter::KernelPageFaults`; memspike-probe's tests hold the two
/// together).
pub const KERNEL_PAGE_FAULTS: &str = "kernel_page_faults";

impl PageFaults {
    /// Whether these count user-mode faults only: the eBPF programs on `page_fault_user` do
    /// (every source named `ebpf …`); `memory.stat pgfault` counts every fault of the group's
    /// tasks, in either mode.
    pub fn user_mode_only(&self) -> bool {
        self.source.starts_with("ebpf")
    }
}

/// Every page fault of the group's tasks, and how many each mode took when the sources tell
/// them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllFaults {
    /// User mode and kernel mode together.
    pub total: u64,
    /// Taken in user mode; `None` when the source does not tell the modes apart.
    pub user_mode: Option<u64>,
    /// Taken in kernel mode, inside system calls; `None` when not counted apart.
    pub kernel_mode: Option<u64>,
}

impl KernelEvidence {
    /// Every page fault of the group's tasks, the one rule every figure and bucket of page
    /// faults follows: the eBPF user-mode faults plus the kernel-mode counter
    /// ([`KERNEL_PAGE_FAULTS`]) when eBPF counted them (user mode alone if the kernel-mode
    /// counter did not attach: its `kernel_mode` is then `None`); `memory.stat pgfault` as it
    /// is, which counts both modes without telling them apart.
    pub fn all_faults(&self) -> Option<AllFaults> {
        let f = self.page_faults.as_ref()?;
        if !f.user_mode_only() {
            return Some(AllFaults {
                total: f.total,
                user_mode: None,
                kernel_mode: None,
            });
        }
        let kernel = self.counts.get(KERNEL_PAGE_FAULTS).map(|c| c.value);
        Some(AllFaults {
            total: f.total.saturating_add(kernel.unwrap_or(0)),
            user_mode: Some(f.total),
            kernel_mode: kernel,
        })
    }
}

/// One plain counter of the group's tasks, and where it comes from
/// (`ebpf raw_tp/page_fault_kernel`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Count {
    pub value: u64,
    pub source: String,
}

impl Count {
    pub fn new(value: u64, source: &str) -> Count {
        Count {
            value,
            source: source.to_owned(),
        }
    }
}

/// Memory-cgroup reclaim stalls (`mm_vmscan_memcg_reclaim_begin` .. `_end`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Reclaim {
    pub stalls: u64,
    pub total_ns: u64,
    pub source: String,
}

/// PSI stall time of the group over the observation: `some` is time when at least one task
/// stalled on memory, `full` time when all non-idle tasks did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Pressure {
    pub some_ns: u64,
    pub full_ns: u64,
    /// The kernel's running averages at the last reading; `None` if the file had none.
    pub averages: Option<PsiAverages>,
    pub source: String,
}

/// PSI running averages: the share of the last 10, 60 and 300 s (in %) that some / all
/// non-idle tasks of the group were stalled on memory.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PsiAverages {
    pub some_avg10: f64,
    pub some_avg60: f64,
    pub some_avg300: f64,
    pub full_avg10: f64,
    pub full_avg60: f64,
    pub full_avg300: f64,
}

/// One OOM kill of a task in the group, sizes in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OomVictimReport {
    /// The victim's process id from the raw eBPF program; from the classic tracepoint and the
    /// kernel log, the id of the thread the kernel marked, which is another of the process's
    /// threads when its first thread has exited.
    pub pid: u32,
    pub comm: String,
    /// The pid (thread-group id) of the victim's parent when it was chosen, as the kernel
    /// numbers it: read from the victim's `task_struct` by the raw eBPF program; `None` where
    /// no source could tell (the classic tracepoint, the kernel log, facts recorded before).
    #[serde(default)]
    pub parent_pid: Option<u32>,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A victim with only a pid and a time.
    fn victim(pid: u32, t_ns: u64) -> OomVictimReport {
        OomVictimReport {
            pid,
            comm: "memspike".into(),
            parent_pid: None,
            total_vm_bytes: 0,
            anon_rss_bytes: 0,
            file_rss_bytes: 0,
            shmem_rss_bytes: 0,
            pgtables_bytes: 0,
            uid: 0,
            oom_score_adj: 0,
            t_ns,
            source: "/dev/kmsg".into(),
        }
    }

    #[test]
    fn the_victim_is_this_workers_else_the_first() {
        let mut ev = KernelEvidence::unavailable("test");
        assert_eq!(ev.victim_of(Some(1)), None);
        ev.oom_victims = vec![victim(10, 0), victim(20, 0), victim(30, 0)];
        assert_eq!(ev.victim_of(Some(20)).map(|v| v.pid), Some(20));
        assert_eq!(ev.victim_of(Some(99)).map(|v| v.pid), Some(10));
        assert_eq!(ev.victim_of(None).map(|v| v.pid), Some(10));
    }

    #[test]
    fn since_an_earlier_snapshot_leaves_one_workers_share() {
        let faults = |startup, interactive, other: Option<u64>| {
            let mut per_phase = BTreeMap::from([
                ("startup".to_owned(), startup),
                ("interactive".to_owned(), interactive),
            ]);
            per_phase.extend(other.map(|n| ("other".to_owned(), n)));
            Some(PageFaults::new(per_phase, "ebpf tp_btf/page_fault_user"))
        };
        let mut first = KernelEvidence::unavailable("test");
        first.page_faults = faults(150, 8_000, None);
        first.reclaim = Some(Reclaim {
            stalls: 30,
            total_ns: 5_000,
            source: "r".into(),
        });
        first.oom_victims = vec![victim(10, 1)];
        first.counts = BTreeMap::from([(
            "kernel_page_faults".to_owned(),
            Count::new(70, "ebpf raw_tp/page_fault_kernel"),
        )]);
        let mut now = first.clone();
        now.counts = BTreeMap::from([(
            "kernel_page_faults".to_owned(),
            Count::new(100, "ebpf raw_tp/page_fault_kernel"),
        )]);
        now.page_faults = faults(310, 16_000, Some(40));
        now.reclaim = Some(Reclaim {
            stalls: 45,
            total_ns: 9_000,
            source: "r".into(),
        });
        now.oom_victims.push(victim(20, 2));
        let second = now.since(&first);
        let f = second.page_faults.unwrap();
        assert_eq!(
            (
                f.per_phase["startup"],
                f.per_phase["interactive"],
                f.per_phase["other"]
            ),
            (160, 8_000, 40),
            "by name, other included once it appears"
        );
        assert_eq!(f.total, 8_200);
        let r = second.reclaim.unwrap();
        assert_eq!((r.stalls, r.total_ns), (15, 4_000));
        assert_eq!(
            second.counts["kernel_page_faults"],
            Count::new(30, "ebpf raw_tp/page_fault_kernel")
        );
        assert_eq!(second.oom_victims, vec![victim(20, 2)]);
        // From a snapshot with nothing in it, everything counts.
        let all = now.since(&KernelEvidence::unavailable("before"));
        assert_eq!(all.page_faults, now.page_faults);
    }

    /// Regression (issue 17): `dd bs=200M` reads into fresh pages, so its ~51,000 faults are
    /// taken inside `read(2)`, in kernel mode: the user-mode counter alone said 80.
    #[test]
    fn all_faults_add_the_kernel_mode_counter_to_the_user_mode_faults() {
        let user = |n: u64, source: &str| {
            Some(PageFaults::new(
                BTreeMap::from([("command".to_owned(), n)]),
                source,
            ))
        };
        let mut ev = KernelEvidence::unavailable("test");
        assert_eq!(ev.all_faults(), None);
        ev.page_faults = user(80, "ebpf raw_tp/page_fault_user");
        assert_eq!(
            ev.all_faults(),
            Some(AllFaults {
                total: 80,
                user_mode: Some(80),
                kernel_mode: None
            }),
            "the kernel-mode counter did not attach: user mode only, and said so"
        );
        ev.counts = BTreeMap::from([(
            KERNEL_PAGE_FAULTS.to_owned(),
            Count::new(51_220, "ebpf raw_tp/page_fault_kernel"),
        )]);
        assert_eq!(
            ev.all_faults(),
            Some(AllFaults {
                total: 51_300,
                user_mode: Some(80),
                kernel_mode: Some(51_220)
            })
        );
        // memory.stat counts both modes already: nothing is added, nothing split.
        ev.page_faults = user(51_290, "memory.stat pgfault");
        assert_eq!(
            ev.all_faults(),
            Some(AllFaults {
                total: 51_290,
                user_mode: None,
                kernel_mode: None
            })
        );
    }

    #[test]
    fn tracing_reads_back_as_it_prints() {
        for t in [Tracing::Ebpf, Tracing::Unavailable("--no-trace".into())] {
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(serde_json::from_str::<Tracing>(&json).unwrap(), t, "{json}");
        }
    }
}
