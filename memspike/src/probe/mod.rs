//! The kernel observer's user side: loads the eBPF programs of `memspike-ebpf` (embedded in
//! this binary at build time, see `build.rs`), points them at the experiment's cgroup, and
//! collects what they saw into [`KernelEvidence`].
//!
//! - [`unavailable_reason`]: cheap checks before trying (object embedded, kernel BTF, root).
//! - [`Probe::start`]: loads the object with the target cgroup id (and the `oom/mark_victim`
//!   record layout read from tracefs) set as read-only globals, so the filter is in place before
//!   any program is attached; then attaches:
//!   - `tp_btf/page_fault_user`: per-CPU page-fault counts per [`Phase`] (the cheapest attach
//!     type measured, see `benches/probe.rs`; `raw_tp` is kept in the object for the bench);
//!   - `tp_btf/mm_vmscan_memcg_reclaim_begin|end`: reclaim stalls and their total duration;
//!   - `tracepoint/oom/mark_victim` (classic, so tracefs must be mounted: [`Probe`] mounts it
//!     if needed and unmounts it at the end; if it cannot, this program is skipped and the
//!     evidence's `notes` say why).
//! - [`Probe::set_phase`]: one array-map update; new faults count under that phase.
//! - [`Probe::finish`]: drains the OOM ring buffer and aya-log, sums the per-CPU maps, then
//!   detaches and unloads everything and waits until the kernel no longer lists the programs.
//!
//! Nothing is pinned: every program, link and map lives only as long as this process holds
//! its file descriptors, so dropping a [`Probe`] (or the process dying, even by SIGKILL)
//! removes everything.
//!
//! Kernel-side `debug!` messages (aya-log) go to the `log` crate, which `tracing-subscriber`'s
//! default `tracing-log` bridge forwards to `tracing` (target `memspike_ebpf`, level debug).

mod tracefs;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{Array, MapData, PerCpuArray, RingBuf},
    programs::{BtfTracePoint, ProgramError, RawTracePoint, TracePoint, loaded_programs},
};
use aya_log::EbpfLogger;
use memspike_common::{OomVictim, Phase, ReclaimStats, names};
use serde::Serialize;
use thiserror::Error;

pub use tracefs::TRACEFS_DIR;

/// Where the kernel publishes its BTF (needed by `tp_btf` programs and by aya's relocations).
pub const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

/// How long [`Probe::finish`] (and drop) waits for the kernel to free the programs.
const UNLOAD_WAIT: Duration = Duration::from_secs(2);

/// The embedded eBPF object, if the build found one.
fn object() -> Option<&'static [u8]> {
    #[cfg(memspike_ebpf_object)]
    {
        Some(aya::include_bytes_aligned!(concat!(
            env!("OUT_DIR"),
            "/memspike-ebpf.o"
        )))
    }
    #[cfg(not(memspike_ebpf_object))]
    {
        None
    }
}

/// Why the object is missing, as the build script saw it.
fn missing_object_detail() -> &'static str {
    option_env!("MEMSPIKE_EBPF_MISSING").unwrap_or("no eBPF object was found at build time")
}

/// Why the probe cannot start; each message reads well after `unavailable: `.
#[derive(Debug, Error)]
pub enum ProbeError {
    #[error(
        "this binary was built without the eBPF object (build with cargo xtask run/test, which \
         build it)"
    )]
    NotEmbedded {
        /// What the build script saw (kept out of the message, which reports use verbatim).
        detail: &'static str,
    },

    #[error(
        "the kernel publishes no BTF at {KERNEL_BTF} (it needs CONFIG_DEBUG_INFO_BTF=y, kernel \
         5.5 or later)"
    )]
    NoBtf,

    #[error("loading eBPF programs needs root (effective uid {euid})")]
    NotRoot { euid: u32 },

    #[error("no cgroup to observe: the target cgroup id is 0")]
    NoTarget,

    #[error("reading the kernel's BTF from {KERNEL_BTF}: {0}")]
    Btf(#[source] aya::BtfError),

    #[error("loading the eBPF object: {detail}")]
    Load {
        detail: String,
        #[source]
        source: Box<aya::EbpfError>,
    },

    #[error("the eBPF object has no {what} named {name} (object and loader out of sync)")]
    Missing {
        what: &'static str,
        name: &'static str,
    },

    #[error("{action} eBPF program {name}: {detail}")]
    Program {
        action: &'static str,
        name: &'static str,
        detail: String,
        #[source]
        source: Box<ProgramError>,
    },

    #[error("eBPF map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },

    #[error("setting up aya-log (kernel-side log messages): {0}")]
    Logger(#[source] aya_log::Error),
}

/// How a report names the observer's state: `ebpf`, or `unavailable: <why>`.
pub fn tracing_label<T>(probe: &Result<T, String>) -> String {
    match probe {
        Ok(_) => "ebpf".to_owned(),
        Err(reason) => format!("unavailable: {reason}"),
    }
}

/// Quick checks before [`Probe::start`]: `Some(reason)` when it cannot work here.
pub fn unavailable_reason() -> Option<String> {
    precheck().err().map(|e| e.to_string())
}

fn precheck() -> Result<&'static [u8], ProbeError> {
    let object = object().ok_or(ProbeError::NotEmbedded {
        detail: missing_object_detail(),
    })?;
    if !std::path::Path::new(KERNEL_BTF).exists() {
        return Err(ProbeError::NoBtf);
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Err(ProbeError::NotRoot { euid });
    }
    Ok(object)
}

/// How the page-fault counter is attached. Both avoid tracefs; `tp_btf` measured cheaper.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageFaultAttach {
    /// `tp_btf/page_fault_user` (BPF_PROG_TYPE_TRACING, BTF-typed raw tracepoint).
    TpBtf,
    /// `raw_tp/page_fault_user` (BPF_PROG_TYPE_RAW_TRACEPOINT).
    RawTp,
    /// An empty `tp_btf/page_fault_user` program that counts nothing: the bench's floor.
    EmptyTpBtf,
}

impl PageFaultAttach {
    /// The attach type [`Probe::start`] uses: the cheaper one in `benches/probe.rs`.
    pub const DEFAULT: PageFaultAttach = PageFaultAttach::TpBtf;
}

/// What the kernel saw in the observed cgroup while the probe ran.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KernelEvidence {
    pub page_faults: PageFaults,
    pub reclaim: Reclaim,
    /// Tasks of the group the OOM killer chose, in the order it chose them.
    pub oom_victims: Vec<OomVictimReport>,
    /// Anything degraded or worth knowing about how the evidence was collected.
    pub notes: Vec<String>,
}

/// User page faults (`exceptions/page_fault_user`) of the group's tasks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PageFaults {
    pub total: u64,
    /// Keyed by [`Phase::name`]; every phase is present.
    pub per_phase: BTreeMap<String, u64>,
}

/// Memory-cgroup reclaim stalls (`mm_vmscan_memcg_reclaim_begin` .. `_end`) of the group's tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Reclaim {
    pub stalls: u64,
    pub total_ns: u64,
}

/// One `oom/mark_victim` event in the group, sizes converted from kB to bytes.
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
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC, as the timeline's `t_ns`.
    pub t_ns: u64,
}

impl From<&OomVictim> for OomVictimReport {
    fn from(v: &OomVictim) -> OomVictimReport {
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
        }
    }
}

/// Kernel ids of what a probe loaded, to check that it is gone after unloading.
#[derive(Debug, Clone, Default)]
struct KernelIds {
    programs: Vec<u32>,
    /// Maps the programs use. The kernel frees these after an RCU grace period once the
    /// programs are gone, so they outlive the program ids by a little.
    maps: Vec<u32>,
}

impl KernelIds {
    fn record(&mut self, info: aya::programs::ProgramInfo) {
        self.programs.push(info.id());
        if let Ok(Some(maps)) = info.map_ids() {
            for id in maps {
                if !self.maps.contains(&id) {
                    self.maps.push(id);
                }
            }
        }
    }
}

/// The loaded and attached observer. Dropping it detaches and unloads everything.
pub struct Probe {
    loaded: Option<Loaded>,
    /// OOM victims already drained from the ring buffer by [`Probe::snapshot`].
    victims: Vec<OomVictimReport>,
}

/// Everything that holds kernel objects. Fields drop top to bottom: the programs and links
/// (in `ebpf`) first, then the maps, then the tracefs use (which may unmount tracefs).
struct Loaded {
    /// Owns the programs and their links: held only to be dropped.
    #[expect(
        dead_code,
        reason = "held for its programs and links; dropping it detaches them"
    )]
    ebpf: Ebpf,
    logger: EbpfLogger<&'static dyn log::Log>,
    phase: Array<MapData, u32>,
    faults: PerCpuArray<MapData, u64>,
    reclaim: PerCpuArray<MapData, ReclaimStats>,
    oom_events: RingBuf<MapData>,
    /// Kernel ids of the loaded programs and their maps.
    ids: KernelIds,
    notes: Vec<String>,
    tracefs: Option<tracefs::TracefsUse>,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field("loaded", &self.loaded.is_some())
            .field("ids", &self.loaded.as_ref().map(|l| l.ids.clone()))
            .field(
                "mounted_tracefs",
                &self
                    .loaded
                    .as_ref()
                    .and_then(|l| l.tracefs.as_ref())
                    .is_some_and(|t| t.mounted()),
            )
            .finish()
    }
}

impl Probe {
    /// Loads the object with `TARGET_CGROUP_ID` = `target_cgroup_id` (and the
    /// `oom/mark_victim` offsets) set, and attaches every program. On error nothing stays
    /// loaded (and tracefs is unmounted again if this call mounted it).
    pub fn start(target_cgroup_id: u64) -> Result<Probe, ProbeError> {
        Self::start_with(target_cgroup_id, PageFaultAttach::DEFAULT)
    }

    /// [`Probe::start`] with a chosen page-fault attach type (for the overhead bench).
    #[doc(hidden)]
    pub fn start_with(
        target_cgroup_id: u64,
        page_fault: PageFaultAttach,
    ) -> Result<Probe, ProbeError> {
        let object = precheck()?;
        if target_cgroup_id == 0 {
            return Err(ProbeError::NoTarget);
        }
        let mut notes = Vec::new();

        // The classic tracepoint needs tracefs, both for its record layout and to attach.
        let tracefs = match tracefs::TracefsUse::acquire() {
            Ok(t) => Some(t),
            Err(reason) => {
                notes.push(format!("oom/mark_victim not traced: {reason}"));
                None
            }
        };
        let oom_fields = match &tracefs {
            None => None,
            Some(t) => match tracefs::read_oom_format(t.dir()) {
                Ok((offsets, mut field_notes)) => {
                    notes.append(&mut field_notes);
                    Some(offsets)
                }
                Err(reason) => {
                    notes.push(format!("oom/mark_victim not traced: {reason}"));
                    None
                }
            },
        };

        let btf = Btf::from_sys_fs().map_err(ProbeError::Btf)?;
        let offsets = oom_fields.unwrap_or(memspike_common::OomFieldOffsets::NONE);
        let mut ebpf = EbpfLoader::new()
            .btf(Some(&btf))
            .override_global(names::GLOBAL_TARGET_CGROUP_ID, &target_cgroup_id, true)
            .override_global(names::GLOBAL_OOM_FIELDS, &offsets, true)
            .load(object)
            .map_err(|source| ProbeError::Load {
                detail: error_chain(&source),
                source: Box::new(source),
            })?;
        // Before attaching: the logger takes the AYA_LOGS ring buffer.
        let logger = EbpfLogger::init(&mut ebpf).map_err(ProbeError::Logger)?;

        let mut ids = KernelIds::default();
        match page_fault {
            PageFaultAttach::TpBtf => attach_btf(
                &mut ebpf,
                &btf,
                names::PROG_PAGE_FAULT_BTF,
                names::TP_PAGE_FAULT_USER,
                &mut ids,
            )?,
            PageFaultAttach::EmptyTpBtf => attach_btf(
                &mut ebpf,
                &btf,
                names::PROG_PAGE_FAULT_NOP,
                names::TP_PAGE_FAULT_USER,
                &mut ids,
            )?,
            PageFaultAttach::RawTp => attach_raw(
                &mut ebpf,
                names::PROG_PAGE_FAULT_RAW,
                names::TP_PAGE_FAULT_USER,
                &mut ids,
            )?,
        }
        attach_btf(
            &mut ebpf,
            &btf,
            names::PROG_RECLAIM_BEGIN,
            names::TP_RECLAIM_BEGIN,
            &mut ids,
        )?;
        attach_btf(
            &mut ebpf,
            &btf,
            names::PROG_RECLAIM_END,
            names::TP_RECLAIM_END,
            &mut ids,
        )?;
        if oom_fields.is_some() {
            attach_oom(&mut ebpf, &mut ids)?;
        }

        let phase = take_map(&mut ebpf, names::MAP_CURRENT_PHASE)?;
        let faults = take_map(&mut ebpf, names::MAP_PAGE_FAULTS)?;
        let reclaim = take_map(&mut ebpf, names::MAP_RECLAIM_STATS)?;
        let oom_events = take_map(&mut ebpf, names::MAP_OOM_EVENTS)?;
        tracing::debug!(
            target_cgroup_id,
            ?page_fault,
            ?ids,
            mounted_tracefs = tracefs.as_ref().is_some_and(|t| t.mounted()),
            "eBPF observer attached"
        );
        Ok(Probe {
            victims: Vec::new(),
            loaded: Some(Loaded {
                ebpf,
                logger,
                phase,
                faults,
                reclaim,
                oom_events,
                ids,
                notes,
                tracefs,
            }),
        })
    }

    /// Sets the phase new faults are counted under (one array-map update).
    pub fn set_phase(&mut self, phase: Phase) -> Result<(), ProbeError> {
        let Some(loaded) = self.loaded.as_mut() else {
            return Ok(());
        };
        loaded
            .phase
            .set(0, phase as u32, 0)
            .map_err(|source| ProbeError::Map {
                name: names::MAP_CURRENT_PHASE,
                source,
            })
    }

    /// Drains the ring buffer and aya-log, sums the per-CPU maps, detaches and unloads
    /// everything (when this returns the programs are gone from the kernel, or a note says
    /// they were still listed), and unmounts tracefs if this probe mounted it.
    pub fn finish(mut self) -> Result<KernelEvidence, ProbeError> {
        let Some(mut loaded) = self.loaded.take() else {
            return Err(ProbeError::Missing {
                what: "loaded state",
                name: "Probe",
            });
        };
        let collected = collect(&mut loaded);
        let mut notes = std::mem::take(&mut loaded.notes);
        if let Some(note) = unload(loaded) {
            notes.push(note);
        }
        let (page_faults, reclaim, new_victims) = collected?;
        let mut oom_victims = std::mem::take(&mut self.victims);
        oom_victims.extend(new_victims);
        Ok(KernelEvidence {
            page_faults,
            reclaim,
            oom_victims,
            notes,
        })
    }

    /// What the programs recorded so far, while they stay attached (interactive mode reads
    /// this as it goes). Victims are kept, so later snapshots and `finish` still list them.
    pub fn snapshot(&mut self) -> Result<KernelEvidence, ProbeError> {
        let Some(loaded) = self.loaded.as_mut() else {
            return Err(ProbeError::Missing {
                what: "loaded state",
                name: "Probe",
            });
        };
        let (page_faults, reclaim, new_victims) = collect(loaded)?;
        let notes = loaded.notes.clone();
        self.victims.extend(new_victims);
        Ok(KernelEvidence {
            page_faults,
            reclaim,
            oom_victims: self.victims.clone(),
            notes,
        })
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if let Some(loaded) = self.loaded.take()
            && let Some(note) = unload(loaded)
        {
            tracing::warn!("{note}");
        }
    }
}

/// Reads everything the programs recorded (the programs are still attached).
fn collect(loaded: &mut Loaded) -> Result<(PageFaults, Reclaim, Vec<OomVictimReport>), ProbeError> {
    let mut oom_victims = Vec::new();
    while let Some(item) = loaded.oom_events.next() {
        if item.len() < size_of::<OomVictim>() {
            tracing::warn!(len = item.len(), "short OOM event from the kernel; ignored");
            continue;
        }
        // SAFETY: the buffer holds at least size_of::<OomVictim>() bytes written by the
        // program as an OomVictim; every bit pattern is valid (integers only); read_unaligned
        // makes no alignment assumption.
        let v = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<OomVictim>()) };
        oom_victims.push(OomVictimReport::from(&v));
    }
    loaded.logger.flush();

    let map_err = |name| move |source| ProbeError::Map { name, source };
    let mut per_phase = BTreeMap::new();
    let mut total = 0u64;
    for phase in Phase::ALL {
        let values = loaded
            .faults
            .get(&(phase as u32), 0)
            .map_err(map_err(names::MAP_PAGE_FAULTS))?;
        let n = values.iter().fold(0u64, |a, b| a.saturating_add(*b));
        total = total.saturating_add(n);
        per_phase.insert(phase.name().to_owned(), n);
    }
    let stats = loaded
        .reclaim
        .get(&0, 0)
        .map_err(map_err(names::MAP_RECLAIM_STATS))?;
    let reclaim = stats.iter().fold(
        Reclaim {
            stalls: 0,
            total_ns: 0,
        },
        |a, s| Reclaim {
            stalls: a.stalls.saturating_add(s.stalls),
            total_ns: a.total_ns.saturating_add(s.total_ns),
        },
    );
    Ok((PageFaults { total, per_phase }, reclaim, oom_victims))
}

/// Detaches and unloads (by dropping), then waits until the kernel no longer lists the
/// programs and their maps. Returns a note if some are still listed after [`UNLOAD_WAIT`].
fn unload(loaded: Loaded) -> Option<String> {
    let ids = loaded.ids.clone();
    drop(loaded);
    let deadline = Instant::now() + UNLOAD_WAIT;
    loop {
        let programs: Vec<u32> = loaded_programs()
            .filter_map(Result::ok)
            .map(|p| p.id())
            .filter(|id| ids.programs.contains(id))
            .collect();
        let maps: Vec<u32> = aya::maps::loaded_maps()
            .filter_map(Result::ok)
            .map(|m| m.id())
            .filter(|id| ids.maps.contains(id))
            .collect();
        if programs.is_empty() && maps.is_empty() {
            return None;
        }
        if Instant::now() >= deadline {
            return Some(format!(
                "eBPF programs {programs:?} and maps {maps:?} were still loaded {} ms after \
                 detaching",
                UNLOAD_WAIT.as_millis()
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn program_error(
    action: &'static str,
    name: &'static str,
) -> impl FnOnce(ProgramError) -> ProbeError {
    move |source| ProbeError::Program {
        action,
        name,
        detail: error_chain(&source),
        source: Box::new(source),
    }
}

fn attach_btf(
    ebpf: &mut Ebpf,
    btf: &Btf,
    name: &'static str,
    tracepoint: &str,
    ids: &mut KernelIds,
) -> Result<(), ProbeError> {
    let program: &mut BtfTracePoint = ebpf
        .program_mut(name)
        .ok_or(ProbeError::Missing {
            what: "program",
            name,
        })?
        .try_into()
        .map_err(program_error("loading", name))?;
    program
        .load(tracepoint, btf)
        .map_err(program_error("loading", name))?;
    ids.record(program.info().map_err(program_error("inspecting", name))?);
    program.attach().map_err(program_error("attaching", name))?;
    Ok(())
}

fn attach_raw(
    ebpf: &mut Ebpf,
    name: &'static str,
    tracepoint: &str,
    ids: &mut KernelIds,
) -> Result<(), ProbeError> {
    let program: &mut RawTracePoint = ebpf
        .program_mut(name)
        .ok_or(ProbeError::Missing {
            what: "program",
            name,
        })?
        .try_into()
        .map_err(program_error("loading", name))?;
    program.load().map_err(program_error("loading", name))?;
    ids.record(program.info().map_err(program_error("inspecting", name))?);
    program
        .attach(tracepoint)
        .map_err(program_error("attaching", name))?;
    Ok(())
}

fn attach_oom(ebpf: &mut Ebpf, ids: &mut KernelIds) -> Result<(), ProbeError> {
    let name = names::PROG_OOM_MARK_VICTIM;
    let program: &mut TracePoint = ebpf
        .program_mut(name)
        .ok_or(ProbeError::Missing {
            what: "program",
            name,
        })?
        .try_into()
        .map_err(program_error("loading", name))?;
    program.load().map_err(program_error("loading", name))?;
    ids.record(program.info().map_err(program_error("inspecting", name))?);
    program
        .attach(names::TP_OOM_CATEGORY, names::TP_OOM_NAME)
        .map_err(program_error("attaching", name))?;
    Ok(())
}

fn take_map<M>(ebpf: &mut Ebpf, name: &'static str) -> Result<M, ProbeError>
where
    M: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or(ProbeError::Missing { what: "map", name })?;
    M::try_from(map).map_err(|source| ProbeError::Map { name, source })
}

/// An error and its sources on one line, cut to a readable length (a verifier log can run to
/// thousands of lines; the full text stays in the error's source chain).
fn error_chain(e: &dyn std::error::Error) -> String {
    const MAX: usize = 600;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.len() <= MAX {
        return text;
    }
    let mut cut = MAX;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{} …", &text[..cut])
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
        let r = OomVictimReport::from(&v);
        assert_eq!(r.pid, 42);
        assert_eq!(r.comm, "memspike");
        assert_eq!(r.anon_rss_bytes, 32 << 20);
        assert_eq!(r.total_vm_bytes, 1024);
        assert_eq!(r.oom_score_adj, -17);
    }

    /// The kernel reads the object's `license` section to decide whether its programs may call
    /// GPL-only helpers; without one, aya declares "GPL" on the object's behalf.
    #[test]
    fn the_embedded_object_declares_dual_mit_gpl() {
        use object::{Object, ObjectSection};
        let Some(bytes) = object() else {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "CI=true but the eBPF object is not embedded: {}",
                missing_object_detail()
            );
            eprintln!(
                "SKIPPED the_embedded_object_declares_dual_mit_gpl: {}",
                missing_object_detail()
            );
            return;
        };
        let elf = object::File::parse(bytes).expect("the embedded object is an ELF file");
        let license = elf
            .section_by_name("license")
            .expect("the object has a license section");
        assert_eq!(license.data().expect("readable"), b"Dual MIT/GPL\0");
    }

    #[test]
    fn error_chain_is_one_bounded_line() {
        let inner = std::io::Error::other("line one\nline two");
        let long = std::io::Error::other(format!("{} {}", "x".repeat(1000), inner));
        assert_eq!(error_chain(&inner), "line one line two");
        let text = error_chain(&long);
        assert!(text.len() < 700 && text.ends_with('…'), "{text}");
    }

    #[test]
    fn unavailable_reasons_read_as_sentences() {
        let e = ProbeError::NotEmbedded {
            detail: "no eBPF object at /x",
        };
        assert_eq!(
            e.to_string(),
            "this binary was built without the eBPF object (build with cargo xtask run/test, \
             which build it)"
        );
        assert_eq!(
            ProbeError::NotRoot { euid: 1000 }.to_string(),
            "loading eBPF programs needs root (effective uid 1000)"
        );
    }

    #[test]
    fn evidence_serializes_with_every_phase() {
        let ev = KernelEvidence {
            page_faults: PageFaults {
                total: 3,
                per_phase: Phase::ALL
                    .iter()
                    .map(|p| (p.name().to_owned(), u64::from(*p == Phase::Spike) * 3))
                    .collect(),
            },
            reclaim: Reclaim {
                stalls: 1,
                total_ns: 5,
            },
            oom_victims: vec![],
            notes: vec!["n".into()],
        };
        let json = serde_json::to_value(&ev).unwrap();
        assert_eq!(json["page_faults"]["per_phase"]["spike"], 3);
        assert_eq!(
            json["page_faults"]["per_phase"].as_object().unwrap().len(),
            Phase::COUNT
        );
        assert_eq!(json["reclaim"]["total_ns"], 5);
    }
}
