//! The kernel observer: what the kernel saw happen to the experiment's group, from the best
//! source available for each figure, as the plain facts of
//! [`memspike_report::facts::kernel`].
//!
//! What is process-wide and what is per group are apart:
//! - [`Kernel`] ([`kernel`]): the eBPF probe ([`ebpf`]), loaded once per memspike invocation
//!   (in the background), possibly partial: each figure's programs attach on their own;
//! - [`Observer`], one per group, made by [`Kernel::observe`] with the group ([`Target`]) before
//!   anything runs in it. It borrows the kernel's probe, pointed at its group, and owns the
//!   readers that need no BPF: [`memstat`] (faults per step from `memory.stat`), [`pressure`]
//!   (stall time from `memory.pressure`, PSI) and [`kmsg`] (OOM victims from the kernel log),
//!   with the group's victims and notes.
//!
//! Page faults are counted per step *slot* (a bounded number, see
//! [`memspike_common::steps`]); the caller names the slots with [`SlotNames`] and says which
//! one is current with [`Observer::set_step`]; figures come out keyed by those names.
//!
//! `set_step`, `snapshot` and `finish` fan out to all of them, and per figure the best source
//! wins:
//!
//! | figure | sources, best first |
//! |---|---|
//! | `page_faults` (user mode, per step; the reports add `kernel_page_faults`) | `ebpf raw_tp/page_fault_user`, `ebpf tp_btf/page_fault_user`, `memory.stat pgfault` (every fault) |
//! | `major_faults` | `memory.stat pgmajfault` |
//! | `reclaim` | `ebpf raw_tp/…memcg_reclaim_begin\|end`, `ebpf tp_btf/…`, `ebpf tracepoint/vmscan/…` |
//! | `pressure` | `memory.pressure` |
//! | `oom_victim` | `ebpf raw_tp/mark_victim`, `ebpf tracepoint/oom/mark_victim`, `/dev/kmsg` |
//! | `counts.<counter>` (e.g. `kernel_page_faults`) | its ways in [`ebpf::hooks`], eBPF only |
//!
//! The eBPF ways are listed in [`ebpf::hooks`]; the non-BPF sources are chosen here.
//! `--no-trace` turns eBPF off only: the other sources still report.

pub mod ebpf;
pub mod kernel;
pub mod kmsg;
pub mod memstat;
pub mod pressure;
pub mod slots;
pub mod tracefs;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ebpf::{EbpfProbe, hooks::Figure};
pub use ebpf::{PageFaultAttach, ProbeError, unavailable_reason};
pub use kernel::Kernel;
use kernel::Off;
use memspike_cgroup::{self as cgroup, Group, Version};
use memspike_common::Counter;
pub use memspike_report::facts::kernel::{
    Count, KernelEvidence, OomVictimReport, PageFaults, Pressure, Reclaim, Tracing,
};
pub use slots::{OTHER_NAME, SlotNames, SlotNamesError};
pub use tracefs::TRACEFS_DIR;

/// Where the kernel publishes its BTF (needed by `tp_btf` programs).
pub const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";
/// OOM victims kept (an interactive session restarts its worker after each kill).
pub const MAX_VICTIMS: usize = 32;
/// Member pids remembered for the kernel log (a worker and what it runs).
const MAX_MEMBERS: usize = 64;
/// How long a snapshot waits for the kernel log to show a kill the group has counted (each
/// observer's `kmsg_wait`, which tests shorten).
const KMSG_WAIT: Duration = Duration::from_secs(1);

/// What the observer watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The group's name (unique; the kernel log names OOM kills by cgroup path).
    pub name: String,
    /// The memory group's directory (`memory.stat`, OOM counters).
    pub dir: PathBuf,
    pub version: Version,
    /// The cgroup v2 id `bpf_get_current_cgroup_id()` reports for members, if any.
    pub bpf_cgroup_id: Option<u64>,
    /// The cgroup v2 directory with the group's `memory.pressure`: the group itself on v2,
    /// its v2 twin on v1.
    pub v2_dir: Option<PathBuf>,
}

impl Target {
    pub fn of(group: &Group) -> Target {
        Target {
            name: group.name().to_owned(),
            dir: group.dir().to_owned(),
            version: group.version(),
            bpf_cgroup_id: group.bpf_cgroup_id(),
            v2_dir: match group.version() {
                Version::V2 => Some(group.dir().to_owned()),
                Version::V1 => group.v2_twin().map(Path::to_path_buf),
            },
        }
    }
}

/// The observer of one group; see the module's documentation. Its end (`finish`, or drop)
/// points the kernel's programs at nothing.
#[derive(Debug)]
pub struct Observer<'k> {
    target: Target,
    slots: SlotNames,
    /// The kernel's probe, pointed at this group, or why there is none.
    ebpf: Result<&'k mut EbpfProbe, String>,
    faults: Result<memstat::FaultSplit, String>,
    pressure: Result<pressure::PressureWatch, String>,
    /// Only when no eBPF program watches `oom/mark_victim`.
    kmsg: Option<Result<kmsg::KernelLog, String>>,
    victims: VecDeque<OomVictimReport>,
    /// OOM kills the group had counted when the observer started.
    oom_kills_at_start: u64,
    /// Victims seen but no longer kept (beyond [`MAX_VICTIMS`]).
    victims_dropped: u64,
    /// Pids seen in the group (the most recent [`MAX_MEMBERS`]), for the kernel log.
    members: VecDeque<u32>,
    /// OOM kills the group counted that the kernel log did not show within `kmsg_wait`:
    /// not waited for again.
    kills_unseen: u64,
    /// How long a snapshot waits for the kernel log to show a kill: [`KMSG_WAIT`].
    kmsg_wait: Duration,
    notes: Vec<String>,
}

impl<'k> Observer<'k> {
    /// Starts every source that works here, counting in the start-up slot, with the kernel's
    /// probe already pointed at the group (or why there is none; see [`Kernel::observe`]).
    /// Page faults come out keyed by `slots`. Never fails: what does not work is a note, and
    /// its figures come from the next source.
    fn start(target: Target, ebpf: Result<&'k mut EbpfProbe, Off>, slots: SlotNames) -> Self {
        let mut notes = Vec::new();
        let ebpf = match ebpf {
            Ok(probe) => {
                notes.extend(probe.notes().iter().cloned());
                Ok(probe)
            }
            Err(off) => {
                notes.extend(off.notes);
                Err(off.reason)
            }
        };
        let watches_oom = ebpf
            .as_ref()
            .is_ok_and(|p| p.source(Figure::OomVictim).is_some());
        let kmsg = (!watches_oom).then(|| kmsg::KernelLog::open(&target.name));
        let faults = memstat::FaultSplit::start(&target.dir);
        let pressure = match &target.v2_dir {
            Some(dir) => pressure::PressureWatch::start(dir),
            None => Err("no cgroup2 directory for the group, so no memory.pressure".to_owned()),
        };
        for (what, r) in [
            ("page faults from memory.stat", faults.as_ref().err()),
            ("memory.pressure", pressure.as_ref().err()),
            (
                "OOM victims from the kernel log",
                kmsg.as_ref().and_then(|k| k.as_ref().err()),
            ),
        ] {
            if let Some(e) = r {
                notes.push(format!("no {what}: {e}"));
            }
        }
        let oom_kills_at_start = cgroup::read_counters(&target.dir, target.version)
            .oom_kills
            .unwrap_or(0);
        Observer {
            target,
            slots,
            ebpf,
            faults,
            pressure,
            kmsg,
            victims: VecDeque::new(),
            oom_kills_at_start,
            victims_dropped: 0,
            members: VecDeque::new(),
            kills_unseen: 0,
            kmsg_wait: KMSG_WAIT,
            notes,
        }
    }

    /// Whether at least one eBPF program is attached, and if not why.
    pub fn tracing_label(&self) -> Tracing {
        label(&self.ebpf)
    }

    /// The step slot the group's next faults belong to. A slot without a name in the
    /// observer's [`SlotNames`] (every one from [`steps::OTHER`] on, any value at or beyond
    /// [`steps::SLOTS`] included) is counted as [`steps::OTHER`], named [`OTHER_NAME`]. The
    /// supervisor calls this while the worker waits for its acknowledgement, so every source
    /// splits at the same point.
    ///
    /// [`steps::OTHER`]: memspike_common::steps::OTHER
    /// [`steps::SLOTS`]: memspike_common::steps::SLOTS
    pub fn set_step(&mut self, slot: u32) {
        let slot = self.slots.slot(slot);
        self.note_members();
        if let Ok(probe) = &mut self.ebpf
            && let Err(e) = probe.set_step(slot)
        {
            tracing::warn!("could not set the eBPF observer's step: {e}");
        }
        if let Ok(faults) = &mut self.faults
            && let Err(e) = faults.set_step(slot)
        {
            tracing::warn!("could not read the group's faults: {e}");
        }
    }

    /// Everything seen so far; the programs stay attached.
    pub fn snapshot(&mut self) -> KernelEvidence {
        self.note_members();
        let tracing = label(&self.ebpf);
        let (counts, sources) = match &mut self.ebpf {
            Ok(probe) => (Some(probe.collect()), Some(sources_of(probe))),
            Err(_) => (None, None),
        };
        self.evidence(tracing, counts, sources, None)
    }

    /// Everything seen; the kernel's programs then observe nothing (they stay loaded for the
    /// next group).
    pub fn finish(mut self) -> KernelEvidence {
        let ebpf = std::mem::replace(&mut self.ebpf, Err(String::new()));
        let tracing = label(&ebpf);
        let (counts, sources, note) = match ebpf {
            Ok(probe) => {
                let note = stop(probe);
                (Some(probe.collect()), Some(sources_of(probe)), note)
            }
            Err(_) => (None, None, None),
        };
        self.evidence(tracing, counts, sources, note)
    }

    /// Joins the eBPF counts (if any) with the other sources; per figure the best source wins.
    fn evidence(
        &mut self,
        tracing: Tracing,
        counts: Option<Result<ebpf::Counts, ProbeError>>,
        sources: Option<ebpf::Sources>,
        stop_note: Option<String>,
    ) -> KernelEvidence {
        let mut notes = self.notes.clone();
        let source = |f: Figure| {
            let i = Figure::ALL.iter().position(|x| *x == f)?;
            sources.and_then(|s| s[i])
        };
        let counts = match counts {
            Some(Ok(c)) => Some(c),
            Some(Err(e)) => {
                notes.push(format!("reading the eBPF maps: {e}"));
                None
            }
            None => None,
        };
        for v in counts
            .as_ref()
            .map(|c| c.victims.clone())
            .unwrap_or_default()
        {
            self.keep_victim(v);
        }
        let oom_source = match source(Figure::OomVictim) {
            Some(s) => Some(s.to_owned()),
            None => self.poll_kmsg(&mut notes),
        };

        let stat = match &mut self.faults {
            Ok(f) => f
                .read()
                .map_err(|e| notes.push(format!("page faults from memory.stat: {e}")))
                .ok(),
            Err(_) => None,
        };
        let slots = &self.slots;
        let page_faults = match (counts.as_ref(), source(Figure::PageFaults)) {
            (Some(c), Some(s)) => Some(PageFaults::new(slots.per_name(&c.faults), s)),
            _ => stat.map(|(all, _)| PageFaults::new(slots.per_name(&all), "memory.stat pgfault")),
        };
        let major_faults = stat
            .map(|(_, major)| PageFaults::new(slots.per_name(&major), "memory.stat pgmajfault"));
        let reclaim = match (counts.as_ref(), source(Figure::Reclaim)) {
            (Some(c), Some(s)) => Some(Reclaim {
                stalls: c.reclaim.stalls,
                total_ns: c.reclaim.total_ns,
                source: s.to_owned(),
            }),
            _ => None,
        };
        let pressure = match &self.pressure {
            Ok(watch) => watch
                .read()
                .map(|r| Pressure {
                    some_ns: r.totals.some_us.saturating_mul(1000),
                    full_ns: r.totals.full_us.saturating_mul(1000),
                    averages: r.averages,
                    source: "memory.pressure".to_owned(),
                })
                .map_err(|e| notes.push(format!("memory.pressure: {e}")))
                .ok(),
            Err(_) => None,
        };
        // Every plain counter whose programs attached, under its name.
        let counts = Counter::ALL
            .into_iter()
            .filter_map(|c| {
                let (counts, source) = (counts.as_ref()?, source(Figure::Count(c))?);
                let value = counts.counters[c.slot() as usize];
                Some((c.name().to_owned(), Count::new(value, source)))
            })
            .collect();
        if self.victims_dropped > 0 {
            notes.push(format!(
                "{} earlier OOM victims are not listed (only the last {MAX_VICTIMS} are kept)",
                self.victims_dropped
            ));
        }
        notes.extend(stop_note);
        KernelEvidence {
            tracing,
            page_faults,
            major_faults,
            reclaim,
            pressure,
            oom_source,
            oom_victims: self.victims.iter().cloned().collect(),
            counts,
            notes,
        }
    }

    /// Remembers the group's pids now, for the kernel-log source only (the OOM dump that names
    /// the group may be rate-limited away; see [`kmsg`]).
    fn note_members(&mut self) {
        if !matches!(self.kmsg, Some(Ok(_))) {
            return;
        }
        let Ok(procs) = std::fs::read_to_string(self.target.dir.join("cgroup.procs")) else {
            return;
        };
        for pid in procs.lines().filter_map(|l| l.trim().parse().ok()) {
            if !self.members.contains(&pid) {
                if self.members.len() == MAX_MEMBERS {
                    self.members.pop_front();
                }
                self.members.push_back(pid);
            }
        }
    }

    fn keep_victim(&mut self, v: OomVictimReport) {
        if self.victims.len() == MAX_VICTIMS {
            self.victims.pop_front();
            self.victims_dropped += 1;
        }
        self.victims.push_back(v);
    }

    /// Reads the kernel log for new victims. The kernel logs a kill before its victim can
    /// exit, but another task of the group may do the killing: when the group has counted more
    /// kills than the log has shown, it keeps reading for up to `kmsg_wait` ([`KMSG_WAIT`]),
    /// once per kill (an interactive session snapshots every half second).
    fn poll_kmsg(&mut self, notes: &mut Vec<String>) -> Option<String> {
        let Some(Ok(log)) = self.kmsg.as_mut() else {
            return None;
        };
        let kills = cgroup::read_counters(&self.target.dir, self.target.version)
            .oom_kills
            .unwrap_or(0)
            .saturating_sub(self.oom_kills_at_start);
        let deadline = Instant::now() + self.kmsg_wait;
        let mut found = Vec::new();
        let members: Vec<u32> = self.members.iter().copied().collect();
        loop {
            match log.poll(&members) {
                Ok(mut v) => found.append(&mut v),
                Err(e) => {
                    notes.push(e);
                    break;
                }
            }
            let seen = self.victims.len() as u64
                + self.victims_dropped
                + found.len() as u64
                + self.kills_unseen;
            if seen >= kills {
                break;
            }
            if Instant::now() >= deadline {
                self.kills_unseen += kills - seen;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if self.kills_unseen > 0 {
            notes.push(format!(
                "{} of the group's OOM kills did not show in {} within {:?}",
                self.kills_unseen,
                kmsg::KMSG,
                self.kmsg_wait
            ));
        }
        if log.lost() > 0 {
            notes.push(format!(
                "{} kernel log records were overwritten before they were read",
                log.lost()
            ));
        }
        for v in found {
            self.keep_victim(v);
        }
        Some(kmsg::SOURCE.to_owned())
    }
}

impl Drop for Observer<'_> {
    fn drop(&mut self) {
        if let Ok(probe) = &mut self.ebpf
            && let Some(note) = stop(probe)
        {
            tracing::warn!("{note}");
        }
    }
}

/// Points the probe at nothing; a note if it could not be (it then still counts this group's
/// tasks, never another group's: the next observe resets it first).
fn stop(probe: &mut EbpfProbe) -> Option<String> {
    probe
        .stop()
        .err()
        .map(|e| format!("could not stop the eBPF observer: {e}"))
}

fn label(ebpf: &Result<&mut EbpfProbe, String>) -> Tracing {
    match ebpf {
        Ok(_) => Tracing::Ebpf,
        Err(reason) => Tracing::Unavailable(reason.clone()),
    }
}

fn sources_of(probe: &EbpfProbe) -> ebpf::Sources {
    Figure::ALL.map(|f| probe.source(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A counter added to memspike-common reaches the report only through its figure there.
    #[test]
    fn every_counter_has_a_report_figure() {
        for c in Counter::ALL {
            let figure = memspike_report::figures::of_count(c.name());
            assert!(
                figure.is_some(),
                "{c:?}: no figure in memspike-report's figures.rs"
            );
        }
    }

    /// The report adds the kernel-mode faults to the user-mode ones by this counter's name.
    #[test]
    fn the_reports_kernel_fault_counter_is_this_one() {
        assert_eq!(
            Counter::KernelPageFaults.name(),
            memspike_report::facts::kernel::KERNEL_PAGE_FAULTS
        );
    }

    fn write(dir: &std::path::Path, file: &str, text: &str) {
        std::fs::write(dir.join(file), text).unwrap();
    }

    fn slots(names: &[&str]) -> SlotNames {
        SlotNames::new(names.iter().map(|n| (*n).to_owned()).collect()).unwrap()
    }

    fn stat(all: u64, major: u64) -> String {
        format!("cache 0\npgfault {all}\npgmajfault {major}\n")
    }

    /// A v2 group with only the files the memory.stat source needs.
    fn stat_only_target(dir: &std::path::Path) -> Target {
        write(dir, "memory.stat", &stat(0, 0));
        Target {
            name: "memspike-1-0-test".into(),
            dir: dir.to_owned(),
            version: Version::V2,
            bpf_cgroup_id: None,
            v2_dir: None,
        }
    }

    /// A v1 group and its v2 twin as files: the observer without eBPF splits faults by phase
    /// from memory.stat and takes stall time from memory.pressure, each named as the source.
    #[test]
    fn without_ebpf_the_figures_come_from_the_groups_files() {
        let group = tempfile::tempdir().unwrap();
        let twin = tempfile::tempdir().unwrap();
        let psi = |some: u64, full: u64| {
            format!(
                "some avg10=0.00 avg60=0.00 avg300=0.00 total={some}\n\
                 full avg10=0.00 avg60=0.00 avg300=0.00 total={full}\n"
            )
        };
        write(group.path(), "memory.stat", &stat(0, 0));
        write(
            group.path(),
            "memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        );
        write(twin.path(), "memory.pressure", &psi(10, 5));
        let target = Target {
            name: "memspike-1-0-test".into(),
            dir: group.path().to_owned(),
            version: Version::V1,
            bpf_cgroup_id: Some(1),
            v2_dir: Some(twin.path().to_owned()),
        };
        let names = slots(&["startup", "spike", "release", "gc", "remainder"]);
        let mut kernel = Kernel::off("--no-trace");
        let mut o = kernel.observe(target, names);
        assert_eq!(o.tracing_label().to_string(), "unavailable: --no-trace");
        write(group.path(), "memory.stat", &stat(120, 0));
        o.set_step(1);
        write(group.path(), "memory.stat", &stat(7_500, 1));
        o.set_step(4);
        write(group.path(), "memory.stat", &stat(8_200, 1));
        write(twin.path(), "memory.pressure", &psi(1_010, 505));

        let snap = o.snapshot();
        let ev = o.finish();
        assert_eq!(snap.page_faults, ev.page_faults, "no faults between them");
        assert_eq!(ev.tracing.to_string(), "unavailable: --no-trace");
        let f = ev.page_faults.expect("faults from memory.stat");
        assert_eq!(f.source, "memory.stat pgfault");
        assert_eq!(
            f.per_phase,
            [
                ("gc", 0),
                ("release", 0),
                ("remainder", 700),
                ("spike", 7_380),
                ("startup", 120)
            ]
            .map(|(k, v)| (k.to_owned(), v))
            .into(),
            "every named slot, no other"
        );
        let major = ev.major_faults.expect("major faults");
        assert_eq!((major.total, major.per_phase["spike"]), (1, 1));
        assert_eq!(ev.reclaim, None, "only eBPF sees reclaim stalls");
        assert_eq!(
            ev.pressure,
            Some(Pressure {
                some_ns: 1_000_000,
                full_ns: 500_000,
                averages: Some(memspike_report::facts::PsiAverages {
                    some_avg10: 0.0,
                    some_avg60: 0.0,
                    some_avg300: 0.0,
                    full_avg10: 0.0,
                    full_avg60: 0.0,
                    full_avg300: 0.0,
                }),
                source: "memory.pressure".into()
            })
        );
        // The kernel log is readable as root only.
        if nix::unistd::geteuid().is_root() {
            assert_eq!(
                ev.oom_source.as_deref(),
                Some("/dev/kmsg"),
                "{:?}",
                ev.notes
            );
            assert!(ev.notes.is_empty(), "{:?}", ev.notes);
        } else {
            assert_eq!(ev.oom_source, None);
            assert!(
                ev.notes.iter().any(|n| n.contains("/dev/kmsg")),
                "{:?}",
                ev.notes
            );
        }
        assert!(ev.oom_victims.is_empty());
    }

    /// A step the names do not cover, or beyond the counters, counts as `other`; `other`
    /// appears only then, and the named slots stay apart.
    #[test]
    fn steps_without_a_name_are_counted_as_other() {
        let group = tempfile::tempdir().unwrap();
        let target = stat_only_target(group.path());
        let mut kernel = Kernel::off("--no-trace");
        let mut o = kernel.observe(target, slots(&["startup", "spike"]));
        let faults = |o: &mut Observer| o.snapshot().page_faults.expect("faults").per_phase;
        write(group.path(), "memory.stat", &stat(10, 0));
        o.set_step(1);
        write(group.path(), "memory.stat", &stat(30, 0));
        assert_eq!(
            faults(&mut o),
            [("spike", 20), ("startup", 10)]
                .map(|(k, v)| (k.to_owned(), v))
                .into()
        );
        o.set_step(2); // named by nobody
        write(group.path(), "memory.stat", &stat(35, 0));
        o.set_step(SLOTS_PLUS);
        write(group.path(), "memory.stat", &stat(42, 0));
        o.set_step(u32::MAX);
        write(group.path(), "memory.stat", &stat(50, 0));
        o.set_step(1);
        write(group.path(), "memory.stat", &stat(51, 0));
        let f = o.finish().page_faults.expect("faults");
        assert_eq!(
            (
                f.per_phase["startup"],
                f.per_phase["spike"],
                f.per_phase[OTHER_NAME]
            ),
            (10, 21, 20)
        );
        assert_eq!((f.total, f.per_phase.len()), (51, 3));
    }

    /// Past the end of the counters.
    const SLOTS_PLUS: u32 = memspike_common::steps::SLOTS as u32 + 1;

    #[test]
    fn a_group_without_its_files_says_what_is_missing() {
        let empty = tempfile::tempdir().unwrap();
        let target = Target {
            name: "memspike-1-0-test".into(),
            dir: empty.path().to_owned(),
            version: Version::V2,
            bpf_cgroup_id: None,
            v2_dir: None,
        };
        // Traced, but a group without a cgroup2 id: that is the reason given, whatever the
        // programs' load gives.
        let ev = Kernel::start(true)
            .observe(target, slots(&["startup"]))
            .finish();
        assert_eq!(
            ev.tracing.to_string(),
            "unavailable: the group has no cgroup2 id to filter on (no cgroup2 mount)"
        );
        assert_eq!(
            (ev.page_faults, ev.major_faults, ev.pressure),
            (None, None, None)
        );
        let notes = ev.notes.join("\n");
        assert!(notes.contains("no page faults from memory.stat"), "{notes}");
        assert!(notes.contains("no memory.pressure"), "{notes}");
    }

    /// A kill the kernel log never shows is waited for once (up to the observer's wait), then
    /// counted as unseen: an interactive session's snapshots every half second do not wait
    /// again. The wait is shortened to a millisecond: what is proven is the counting (a second
    /// wait would count the kill unseen twice), not the length of the wait.
    #[test]
    fn a_kill_missing_from_the_log_is_waited_for_once() {
        if !memspike_testkit::require_root("a_kill_missing_from_the_log_is_waited_for_once") {
            return;
        }
        let group = tempfile::tempdir().unwrap();
        let oom = |n: u64| format!("oom_kill_disable 0\nunder_oom 0\noom_kill {n}\n");
        write(group.path(), "memory.oom_control", &oom(0));
        let target = Target {
            name: "memspike-0-0-never-logged".into(),
            dir: group.path().to_owned(),
            version: Version::V1,
            bpf_cgroup_id: None,
            v2_dir: None,
        };
        let mut kernel = Kernel::off("--no-trace");
        let mut o = kernel.observe(target, slots(&["startup"]));
        o.kmsg_wait = Duration::from_millis(1);
        write(group.path(), "memory.oom_control", &oom(1));
        let unseen = "1 of the group's OOM kills did not show in /dev/kmsg within 1ms";
        for _ in 0..2 {
            let ev = o.snapshot();
            assert_eq!(ev.oom_source.as_deref(), Some("/dev/kmsg"));
            assert!(ev.notes.iter().any(|n| n == unseen), "{:?}", ev.notes);
            assert_eq!(o.kills_unseen, 1);
        }
    }

    #[test]
    fn victims_are_bounded_and_the_rest_counted() {
        let empty = tempfile::tempdir().unwrap();
        let target = Target {
            name: "g".into(),
            dir: empty.path().to_owned(),
            version: Version::V2,
            bpf_cgroup_id: None,
            v2_dir: None,
        };
        let mut kernel = Kernel::off("--no-trace");
        let mut o = kernel.observe(target, slots(&["startup"]));
        o.kmsg = None;
        for pid in 0..(MAX_VICTIMS as u32 + 3) {
            let mut v = kmsg::parse_killed("Killed process 1 (w) total-vm:1kB").unwrap();
            v.pid = pid;
            o.keep_victim(v);
        }
        let ev = o.finish();
        assert_eq!(ev.oom_victims.len(), MAX_VICTIMS);
        assert_eq!(ev.oom_victims[0].pid, 3, "the oldest went first");
        assert!(
            ev.notes
                .iter()
                .any(|n| n.starts_with("3 earlier OOM victims")),
            "{:?}",
            ev.notes
        );
    }
}
