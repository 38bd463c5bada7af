//! The eBPF half of the observer: loads the programs of `memspike-ebpf` (embedded in this
//! binary at build time, see `build.rs`) once, attaches each figure's programs on its own (so
//! that one that cannot attach costs only its figure), then points them at one group after
//! another.
//!
//! - [`features`]: what the kernel supports (aya's feature probes) and the test switches.
//! - [`hooks`]: which programs give which figure, best first (the one place to change).
//! - [`EbpfProbe::load`]: loads the object observing nothing, with two read-only globals: where
//!   the raw `mark_victim` program finds the victim's figures ([`task_layout`], from the
//!   kernel's BTF) and the classic tracepoint's record layout (from tracefs); then, per figure,
//!   tries its ways in order. Everything runs inside
//!   [`super::tracefs::with_tracefs`], so the classic tracepoints find
//!   tracefs without this process mounting it anywhere visible.
//! - [`EbpfProbe::observe`]: zeroes the counters, forgets unfinished reclaim stalls and queued
//!   OOM events, sets the start-up step, then writes the group's id into the target map: from
//!   then on, and only then, the group's tasks are counted. [`EbpfProbe::stop`] writes 0.
//! - [`EbpfProbe::set_step`]: one array-map update; new faults count under that step slot.
//! - [`EbpfProbe::collect`]: drains the OOM ring buffer and aya-log and sums the per-CPU maps.
//!
//! Nothing is pinned: every program, link and map lives only as long as this process holds its
//! file descriptors, so dropping an [`EbpfProbe`] (or the process dying, even by SIGKILL)
//! removes everything. Dropping does not wait for the kernel to free them (it does so shortly
//! after, on its own); [`EbpfProbe::finish`] does, for the tests that check it.
//!
//! Kernel-side `debug!` messages (aya-log) go to the `log` crate, which `tracing-subscriber`'s
//! default `tracing-log` bridge forwards to `tracing` (target `memspike_ebpf`, level debug).

pub mod features;
pub mod hooks;
pub mod task_layout;

use std::path::Path;
use std::time::{Duration, Instant};

use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray, PerCpuValues, RingBuf},
    programs::{BtfTracePoint, ProgramError, RawTracePoint, TracePoint, loaded_programs},
};
use aya_log::EbpfLogger;
use memspike_common::{
    Counter, OomFieldOffsets, OomTaskLayout, OomVictim, ReclaimStats, names,
    steps::{SLOTS, STARTUP},
};
use nix::unistd::{SysconfVar, sysconf};
use thiserror::Error;

use super::OomVictimReport;
use super::tracefs;
use features::{Features, NO_SUCH_TRACEPOINT, Switches};
use hooks::{Attach, Figure, Hook, PAGE_FAULT_NOP_WAY, PAGE_FAULT_WAYS, Way};

/// How long [`EbpfProbe::finish`] waits for the kernel to free the programs.
const UNLOAD_WAIT: Duration = Duration::from_secs(2);

/// The embedded eBPF object: always there, unless the crate is built with the `no-ebpf`
/// feature (without it, a missing object fails the build; see build.rs).
pub(crate) fn object() -> Option<&'static [u8]> {
    #[cfg(not(feature = "no-ebpf"))]
    {
        Some(aya::include_bytes_aligned!(concat!(
            env!("OUT_DIR"),
            "/memspike-ebpf.o"
        )))
    }
    #[cfg(feature = "no-ebpf")]
    {
        None
    }
}

/// What went wrong with the eBPF side; each message reads well after `unavailable: ` or in a
/// note.
#[derive(Debug, Error)]
pub enum ProbeError {
    #[error(
        "this binary was built with the no-ebpf feature, without the eBPF object (build it \
         without that feature: cargo xtask run/test build the object)"
    )]
    NotEmbedded,

    #[error("loading eBPF programs needs {0}; this process lacks it")]
    MissingCapability(String),

    #[error("no cgroup to observe: the target cgroup id is 0")]
    NoTarget,

    #[error("resetting eBPF map {name} for a new group: {source}")]
    Reset {
        name: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("{0}")]
    Unsupported(String),

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

    #[error("eBPF map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },

    #[error("no eBPF program could be attached ({0})")]
    NothingAttached(String),
}

/// Quick checks before [`EbpfProbe::load`]: `Some(reason)` when it cannot work here.
pub fn unavailable_reason() -> Option<String> {
    precheck().err().map(|e| e.to_string())
}

fn precheck() -> Result<&'static [u8], ProbeError> {
    let object = object().ok_or(ProbeError::NotEmbedded)?;
    let caps = memspike_cgroup::capability::Caps::effective().map_err(|e| {
        ProbeError::MissingCapability(format!(
            "CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN (cannot read them: {e})"
        ))
    })?;
    if let Some(missing) = caps.missing_for_tracing() {
        return Err(ProbeError::MissingCapability(missing));
    }
    Ok(object)
}

/// The page-fault program the overhead bench wants instead of the usual preference order.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageFaultAttach {
    /// `tp_btf/page_fault_user` only.
    TpBtf,
    /// `raw_tp/page_fault_user` only.
    RawTp,
    /// An empty `tp_btf/page_fault_user` program that counts nothing: the bench's floor.
    EmptyTpBtf,
}

/// Kernel ids of what a probe loaded, to check that it is gone after unloading.
#[derive(Debug, Clone, Default)]
pub struct KernelIds {
    pub programs: Vec<u32>,
    /// Maps the programs use. The kernel frees these after an RCU grace period once the
    /// programs are gone, so they outlive the program ids by a little.
    pub maps: Vec<u32>,
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

/// The start failed: why, and what was learnt on the way.
#[derive(Debug)]
pub struct Unavailable {
    pub error: ProbeError,
    pub notes: Vec<String>,
}

/// What the programs counted so far.
#[derive(Debug, Clone)]
pub struct Counts {
    /// Per step slot (the program counts a slot from `OTHER` on under `OTHER`).
    pub faults: [u64; SLOTS],
    pub reclaim: ReclaimStats,
    /// OOM victims drained from the ring buffer since the last call.
    pub victims: Vec<OomVictimReport>,
    /// The plain counters, in [`Counter::ALL`] (slot) order.
    pub counters: [u64; Counter::ALL.len()],
}

/// Per [`Figure`] (in [`Figure::ALL`] order): the way that attached, if one did.
pub type Sources = [Option<&'static str>; Figure::ALL.len()];

/// The loaded and attached programs (some figures may have none), observing one group at a
/// time. Dropping it detaches and unloads everything.
pub struct EbpfProbe {
    loaded: Option<Loaded>,
    sources: Sources,
    notes: Vec<String>,
}

/// Everything that holds kernel objects. Fields drop top to bottom: the programs and links
/// (in `ebpf`) first, then the maps.
struct Loaded {
    /// Owns the programs and their links: held only to be dropped.
    #[expect(
        dead_code,
        reason = "held for its programs and links; dropping it detaches them"
    )]
    ebpf: Ebpf,
    logger: Option<EbpfLogger<&'static dyn log::Log>>,
    target: Array<MapData, u64>,
    step: Array<MapData, u32>,
    faults: PerCpuArray<MapData, u64>,
    reclaim: PerCpuArray<MapData, ReclaimStats>,
    reclaim_start: HashMap<MapData, u32, u64>,
    oom_events: RingBuf<MapData>,
    counters: PerCpuArray<MapData, u64>,
    ids: KernelIds,
}

impl std::fmt::Debug for EbpfProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EbpfProbe")
            .field("ids", &self.loaded.as_ref().map(|l| l.ids.clone()))
            .field("sources", &self.sources)
            .field("notes", &self.notes)
            .finish()
    }
}

impl EbpfProbe {
    /// Loads the object and attaches, per figure, the first way that works, observing nothing
    /// yet; the bench may pin the page-fault program. Fails only when nothing at all can be
    /// attached, and then nothing stays loaded.
    pub fn load(page_fault: Option<PageFaultAttach>) -> Result<EbpfProbe, Unavailable> {
        Self::load_with(page_fault, &Switches::from_env())
    }

    /// [`EbpfProbe::load`] with the test switches given rather than read from the environment.
    #[doc(hidden)]
    pub fn load_with(
        page_fault: Option<PageFaultAttach>,
        switches: &Switches,
    ) -> Result<EbpfProbe, Unavailable> {
        let fail = |error| Unavailable {
            error,
            notes: Vec::new(),
        };
        let object = precheck().map_err(fail)?;
        let started = Instant::now();
        // `EbpfLoader::new` parses the kernel's BTF (about 25 ms of CPU here), always, for
        // CO-RE relocations this object does not use; it runs beside the feature probes and the
        // reading of the raw OOM program's layout.
        let (features, layout, loader) = std::thread::scope(|scope| {
            let loader = scope.spawn(EbpfLoader::new);
            let features = Features::probe(switches);
            let layout = oom_task_layout(switches);
            let loader = loader
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (features, layout, loader)
        });
        let features = features.map_err(|e| fail(ProbeError::Unsupported(e)))?;
        let probed = started.elapsed();
        let result = tracefs::with_tracefs(|dir| {
            let kernel = KernelFacts {
                features: &features,
                oom_task_layout: layout,
                tracefs: dir,
            };
            load_and_attach(object, loader, page_fault, switches, kernel)
        });
        tracing::debug!(
            features_ms = probed.as_secs_f64() * 1e3,
            total_ms = started.elapsed().as_secs_f64() * 1e3,
            "eBPF observer loaded"
        );
        result
    }

    /// Points the programs at the cgroup `target` (v2 id), with everything counted so far
    /// forgotten: page faults, reclaim stalls (and reclaims begun but not ended), OOM events not
    /// yet collected; the step is the start-up slot. The target is written last, so nothing of
    /// the previous group (or of none) is counted for this one.
    pub fn observe(&mut self, target: u64) -> Result<(), ProbeError> {
        if target == 0 {
            return Err(ProbeError::NoTarget);
        }
        let Some(loaded) = self.loaded.as_mut() else {
            return Err(not_loaded());
        };
        set_target(loaded, 0)?;
        reset(loaded)?;
        set_target(loaded, target)
    }

    /// Stops counting: the target becomes 0 (what was counted stays until the next
    /// [`EbpfProbe::observe`]).
    pub fn stop(&mut self) -> Result<(), ProbeError> {
        match self.loaded.as_mut() {
            Some(loaded) => set_target(loaded, 0),
            None => Ok(()),
        }
    }

    /// The source of `figure` (e.g. `ebpf tp_btf/page_fault_user`), if a way attached.
    pub fn source(&self, figure: Figure) -> Option<&'static str> {
        let i = Figure::ALL.iter().position(|f| *f == figure)?;
        self.sources[i]
    }

    /// What the start had to say (ways that failed, fields this kernel lacks).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Kernel ids of the loaded programs and their maps.
    pub fn ids(&self) -> KernelIds {
        self.loaded
            .as_ref()
            .map(|l| l.ids.clone())
            .unwrap_or_default()
    }

    /// Sets the step slot new faults are counted under (one array-map update). The value is
    /// written as given: the program itself counts any slot from `OTHER` on under `OTHER`.
    pub fn set_step(&mut self, slot: u32) -> Result<(), ProbeError> {
        let Some(loaded) = self.loaded.as_mut() else {
            return Ok(());
        };
        set_only(&mut loaded.step, slot, names::MAP_CURRENT_STEP)
    }

    /// What the programs recorded so far, while they stay attached; victims are returned once.
    pub fn collect(&mut self) -> Result<Counts, ProbeError> {
        let oom_source = self.source(Figure::OomVictim);
        match self.loaded.as_mut() {
            Some(loaded) => collect(loaded, oom_source),
            None => Err(not_loaded()),
        }
    }

    /// Collects one last time, then detaches and unloads everything and waits until the kernel
    /// no longer lists it (for the tests and the bench that check it; dropping is enough to
    /// unload). The note says what the kernel still listed `UNLOAD_WAIT` (2 s) later, if anything.
    pub fn finish(mut self) -> (Result<Counts, ProbeError>, Option<String>) {
        let counts = self.collect();
        let note = self.loaded.take().and_then(unload_and_wait);
        (counts, note)
    }
}

fn not_loaded() -> ProbeError {
    ProbeError::Missing {
        what: "loaded state",
        name: "EbpfProbe",
    }
}

fn set_target(loaded: &mut Loaded, target: u64) -> Result<(), ProbeError> {
    set_only(&mut loaded.target, target, names::MAP_TARGET_CGROUP)
}

/// A map operation's error, naming the map.
fn map_err(name: &'static str) -> impl FnOnce(aya::maps::MapError) -> ProbeError {
    move |source| ProbeError::Map { name, source }
}

/// Writes the only entry of a one-entry array map (the target group, the current step).
fn set_only<V: aya::Pod>(
    map: &mut Array<MapData, V>,
    value: V,
    name: &'static str,
) -> Result<(), ProbeError> {
    map.set(0, value, 0).map_err(map_err(name))
}

/// Zeroes what the programs count and sets the start-up step (while the target is 0, so no
/// program writes meanwhile).
fn reset(loaded: &mut Loaded) -> Result<(), ProbeError> {
    let cpus = aya::util::nr_cpus().map_err(|(_, source)| ProbeError::Reset {
        name: names::MAP_PAGE_FAULTS,
        source,
    })?;
    let reset_err = |name| move |source| ProbeError::Reset { name, source };
    for slot in 0..SLOTS as u32 {
        let zeros =
            PerCpuValues::try_from(vec![0u64; cpus]).map_err(reset_err(names::MAP_PAGE_FAULTS))?;
        loaded
            .faults
            .set(slot, zeros, 0)
            .map_err(map_err(names::MAP_PAGE_FAULTS))?;
    }
    let zeros = PerCpuValues::try_from(vec![ReclaimStats::default(); cpus])
        .map_err(reset_err(names::MAP_RECLAIM_STATS))?;
    loaded
        .reclaim
        .set(0, zeros, 0)
        .map_err(map_err(names::MAP_RECLAIM_STATS))?;
    for c in Counter::ALL {
        let zeros =
            PerCpuValues::try_from(vec![0u64; cpus]).map_err(reset_err(names::MAP_COUNTERS))?;
        loaded
            .counters
            .set(c.slot(), zeros, 0)
            .map_err(map_err(names::MAP_COUNTERS))?;
    }
    let begun: Vec<u32> = loaded.reclaim_start.keys().filter_map(Result::ok).collect();
    for tid in begun {
        // Gone already (its end ran meanwhile) is as good as removed.
        let _ = loaded.reclaim_start.remove(&tid);
    }
    while loaded.oom_events.next().is_some() {}
    set_only(&mut loaded.step, STARTUP, names::MAP_CURRENT_STEP)
}

/// Where the raw `mark_victim` program reads the victim's figures on this kernel, or why it
/// cannot be used.
fn oom_task_layout(switches: &Switches) -> Result<OomTaskLayout, String> {
    if switches.hide_btf {
        return Err(format!("kernel BTF hidden by {}", features::HIDE_BTF_ENV));
    }
    let btf = std::fs::read(super::KERNEL_BTF)
        .map_err(|e| format!("no kernel BTF at {}: {e}", super::KERNEL_BTF))?;
    let page_size = sysconf(SysconfVar::PAGE_SIZE).ok().flatten().unwrap_or(0);
    task_layout::from_btf(&btf, u64::try_from(page_size).unwrap_or(0))
}

/// What the loader learnt of the kernel before loading.
struct KernelFacts<'a> {
    features: &'a Features,
    oom_task_layout: Result<OomTaskLayout, String>,
    tracefs: Result<&'a Path, String>,
}

fn load_and_attach(
    object: &[u8],
    loader: EbpfLoader<'static>,
    page_fault: Option<PageFaultAttach>,
    switches: &Switches,
    kernel: KernelFacts<'_>,
) -> Result<EbpfProbe, Unavailable> {
    let KernelFacts {
        features,
        oom_task_layout,
        tracefs,
    } = kernel;
    let mut notes = switches.notes.clone();
    // The classic tracepoint's record layout, read before loading (it is a global).
    let oom_fields = tracefs
        .as_ref()
        .map_err(String::clone)
        .and_then(|dir| tracefs::read_oom_format(dir))
        .map(|(offsets, mut field_notes)| {
            notes.append(&mut field_notes);
            offsets
        });
    let offsets = oom_fields.as_ref().map_or(OomFieldOffsets::NONE, |o| *o);
    let layout = oom_task_layout.as_ref().map_or(OomTaskLayout::NONE, |l| *l);
    // Borrows what is set here (the loader from `new` borrows nothing).
    let mut loader: EbpfLoader<'_> = loader;
    if features.hide_btf {
        // As without BTF: the loader keeps none either.
        loader.btf(None);
    }
    let mut ebpf = match loader
        .override_global(names::GLOBAL_OOM_FIELDS, &offsets, true)
        .override_global(names::GLOBAL_OOM_TASK_LAYOUT, &layout, true)
        .load(object)
    {
        Ok(ebpf) => ebpf,
        Err(source) => {
            return Err(Unavailable {
                error: ProbeError::Load {
                    detail: error_chain(&source),
                    source: Box::new(source),
                },
                notes,
            });
        }
    };
    // Before attaching: the logger takes the AYA_LOGS ring buffer.
    let logger = match EbpfLogger::init(&mut ebpf) {
        Ok(l) => Some(l),
        Err(e) => {
            notes.push(format!("kernel-side log messages are lost: {e}"));
            None
        }
    };

    let mut ids = KernelIds::default();
    let mut sources: Sources = [None; Figure::ALL.len()];
    for (slot, figure) in sources.iter_mut().zip(Figure::ALL) {
        let ways: &[Way] = match (figure, page_fault) {
            (Figure::PageFaults, Some(PageFaultAttach::TpBtf)) => &PAGE_FAULT_WAYS[1..],
            (Figure::PageFaults, Some(PageFaultAttach::RawTp)) => &PAGE_FAULT_WAYS[..1],
            (Figure::PageFaults, Some(PageFaultAttach::EmptyTpBtf)) => &[PAGE_FAULT_NOP_WAY],
            _ => figure.ways(),
        };
        let mut failed = Vec::new();
        for way in ways {
            let ready = features
                .usable(way.attach)
                .map_err(str::to_owned)
                .and_then(|()| match way.attach {
                    Attach::Classic => tracefs.as_ref().map(|_| ()).map_err(String::clone),
                    _ => Ok(()),
                })
                .and_then(|()| match (figure, way.attach) {
                    (Figure::OomVictim, Attach::Classic) => {
                        oom_fields.as_ref().map(|_| ()).map_err(String::clone)
                    }
                    (Figure::OomVictim, _) => {
                        oom_task_layout.as_ref().map(|_| ()).map_err(String::clone)
                    }
                    _ => Ok(()),
                });
            let forced = switches.fails(figure, way.attach);
            let attached = ready.and_then(|()| {
                let btf = match way.attach {
                    Attach::TpBtf => features.btf().ok(),
                    _ => None,
                };
                attach_way(&mut ebpf, way, btf, forced, &mut ids).map_err(|e| {
                    if forced {
                        format!("{e} (forced by {})", features::FAIL_ENV)
                    } else {
                        e
                    }
                })
            });
            match attached {
                Ok(()) => {
                    *slot = Some(way.source);
                    break;
                }
                Err(e) => failed.push(format!("{}: {e}", way.source)),
            }
        }
        match *slot {
            None => notes.push(format!(
                "{}: no eBPF program attached: {}",
                figure.name(),
                failed.join("; ")
            )),
            Some(source) if !failed.is_empty() => notes.push(format!(
                "{}: {source} used instead: {}",
                figure.name(),
                failed.join("; ")
            )),
            Some(_) => {}
        }
    }
    if sources.iter().all(Option::is_none) {
        return Err(Unavailable {
            error: ProbeError::NothingAttached(
                "every figure's programs failed; see the notes".to_owned(),
            ),
            notes,
        });
    }

    let maps = (|| {
        Ok::<_, ProbeError>((
            take_map(&mut ebpf, names::MAP_TARGET_CGROUP)?,
            take_map(&mut ebpf, names::MAP_CURRENT_STEP)?,
            take_map(&mut ebpf, names::MAP_PAGE_FAULTS)?,
            take_map(&mut ebpf, names::MAP_RECLAIM_STATS)?,
            take_map(&mut ebpf, names::MAP_RECLAIM_START)?,
            take_map(&mut ebpf, names::MAP_OOM_EVENTS)?,
            take_map(&mut ebpf, names::MAP_COUNTERS)?,
        ))
    })();
    let (target, step, faults, reclaim, reclaim_start, oom_events, counters) = match maps {
        Ok(m) => m,
        Err(error) => return Err(Unavailable { error, notes }),
    };
    tracing::debug!(?sources, ?ids, "eBPF observer attached");
    let loaded = Loaded {
        ebpf,
        logger,
        target,
        step,
        faults,
        reclaim,
        reclaim_start,
        oom_events,
        counters,
        ids,
    };
    Ok(EbpfProbe {
        loaded: Some(loaded),
        sources,
        notes,
    })
}

/// Attaches every program of `way`, or none: a program that attached is unloaded again when a
/// later one fails. `forced` points them at a tracepoint that does not exist.
fn attach_way(
    ebpf: &mut Ebpf,
    way: &Way,
    btf: Option<&Btf>,
    forced: bool,
    ids: &mut KernelIds,
) -> Result<(), String> {
    for (i, hook) in way.hooks.iter().enumerate() {
        let tracepoint = if forced {
            NO_SUCH_TRACEPOINT
        } else {
            hook.tracepoint
        };
        if let Err(e) = attach_hook(ebpf, hook, tracepoint, btf, ids) {
            for done in &way.hooks[..=i] {
                unload_hook(ebpf, done);
            }
            return Err(e);
        }
    }
    Ok(())
}

fn attach_hook(
    ebpf: &mut Ebpf,
    hook: &Hook,
    tracepoint: &str,
    btf: Option<&Btf>,
    ids: &mut KernelIds,
) -> Result<(), String> {
    let name = hook.program;
    let program = ebpf.program_mut(name).ok_or_else(|| {
        ProbeError::Missing {
            what: "program",
            name,
        }
        .to_string()
    })?;
    let step = |action: &'static str| {
        move |e: ProgramError| format!("{action} {name}: {}", error_chain(&e))
    };
    match hook.attach {
        Attach::TpBtf => {
            let btf = btf.ok_or("no kernel BTF")?;
            let p: &mut BtfTracePoint = program.try_into().map_err(step("loading"))?;
            p.load(tracepoint, btf).map_err(step("loading"))?;
            ids.record(p.info().map_err(step("inspecting"))?);
            p.attach().map_err(step("attaching"))?;
        }
        Attach::RawTp => {
            let p: &mut RawTracePoint = program.try_into().map_err(step("loading"))?;
            p.load().map_err(step("loading"))?;
            ids.record(p.info().map_err(step("inspecting"))?);
            p.attach(tracepoint).map_err(step("attaching"))?;
        }
        Attach::Classic => {
            let p: &mut TracePoint = program.try_into().map_err(step("loading"))?;
            p.load().map_err(step("loading"))?;
            ids.record(p.info().map_err(step("inspecting"))?);
            p.attach(hook.category, tracepoint)
                .map_err(step("attaching"))?;
        }
    }
    Ok(())
}

/// Detaches and unloads one program (if it was loaded at all).
fn unload_hook(ebpf: &mut Ebpf, hook: &Hook) {
    let Some(program) = ebpf.program_mut(hook.program) else {
        return;
    };
    let result = match hook.attach {
        Attach::TpBtf => <&mut BtfTracePoint>::try_from(program).and_then(|p| p.unload()),
        Attach::RawTp => <&mut RawTracePoint>::try_from(program).and_then(|p| p.unload()),
        Attach::Classic => <&mut TracePoint>::try_from(program).and_then(|p| p.unload()),
    };
    if let Err(e) = result {
        tracing::debug!(
            program = hook.program,
            "unloading after a failed attach: {e}"
        );
    }
}

/// Reads everything the programs recorded (the programs are still attached).
fn collect(loaded: &mut Loaded, oom_source: Option<&'static str>) -> Result<Counts, ProbeError> {
    let mut victims = Vec::new();
    while let Some(item) = loaded.oom_events.next() {
        if item.len() < size_of::<OomVictim>() {
            tracing::warn!(len = item.len(), "short OOM event from the kernel; ignored");
            continue;
        }
        // SAFETY: the buffer holds at least size_of::<OomVictim>() bytes written by the
        // program as an OomVictim; every bit pattern is valid (integers only); read_unaligned
        // makes no alignment assumption.
        let v = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<OomVictim>()) };
        victims.push(victim_report(&v, oom_source.unwrap_or("ebpf")));
    }
    if let Some(logger) = loaded.logger.as_mut() {
        logger.flush();
    }

    let mut faults = [0u64; SLOTS];
    for (slot, count) in (0u32..).zip(faults.iter_mut()) {
        let values = loaded
            .faults
            .get(&slot, 0)
            .map_err(map_err(names::MAP_PAGE_FAULTS))?;
        *count = values.iter().fold(0u64, |a, b| a.saturating_add(*b));
    }
    let stats = loaded
        .reclaim
        .get(&0, 0)
        .map_err(map_err(names::MAP_RECLAIM_STATS))?;
    let reclaim = stats
        .iter()
        .fold(ReclaimStats::default(), |a, s| ReclaimStats {
            stalls: a.stalls.saturating_add(s.stalls),
            total_ns: a.total_ns.saturating_add(s.total_ns),
        });
    let mut counters = [0u64; Counter::ALL.len()];
    for (c, count) in Counter::ALL.into_iter().zip(counters.iter_mut()) {
        let values = loaded
            .counters
            .get(&c.slot(), 0)
            .map_err(map_err(names::MAP_COUNTERS))?;
        *count = values.iter().fold(0u64, |a, b| a.saturating_add(*b));
    }
    Ok(Counts {
        faults,
        reclaim,
        victims,
        counters,
    })
}

/// Detaches and unloads (by dropping), then waits until the kernel no longer lists the
/// programs and their maps. Returns a note if some are still listed after [`UNLOAD_WAIT`].
fn unload_and_wait(loaded: Loaded) -> Option<String> {
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

fn take_map<M>(ebpf: &mut Ebpf, name: &'static str) -> Result<M, ProbeError>
where
    M: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or(ProbeError::Missing { what: "map", name })?;
    M::try_from(map).map_err(map_err(name))
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

/// The report's record of an OOM kill, from the eBPF program's event (sizes in kB).
fn victim_report(v: &OomVictim, source: &str) -> OomVictimReport {
    let kb = |n: u64| n.saturating_mul(1024);
    let len = v.comm.iter().position(|&b| b == 0).unwrap_or(v.comm.len());
    OomVictimReport {
        pid: v.pid,
        comm: String::from_utf8_lossy(&v.comm[..len]).into_owned(),
        // 0: the program could not tell (no task is the child of pid 0 in a group).
        parent_pid: (v.parent_pid != 0).then_some(v.parent_pid),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The object the build embedded: there is one unless the crate is built with `no-ebpf`,
    /// in which case the tests that read it are not compiled at all (never skipped).
    #[cfg(not(feature = "no-ebpf"))]
    fn embedded() -> &'static [u8] {
        object().expect("without the no-ebpf feature the build embeds the object or fails")
    }

    /// The kernel reads the object's `license` section to decide whether its programs may call
    /// GPL-only helpers; without one, aya declares "GPL" on the object's behalf.
    #[cfg(not(feature = "no-ebpf"))]
    #[test]
    fn the_embedded_object_declares_dual_mit_gpl() {
        use object::{Object, ObjectSection};
        let bytes = embedded();
        let elf = object::File::parse(bytes).expect("the embedded object is an ELF file");
        let license = elf
            .section_by_name("license")
            .expect("the object has a license section");
        assert_eq!(license.data().expect("readable"), b"Dual MIT/GPL\0");
    }

    /// Every program the hook table names is in the object, with the section (attach type)
    /// the table expects: a renamed program would otherwise only show up as a missing figure.
    #[cfg(not(feature = "no-ebpf"))]
    #[test]
    fn the_object_has_every_program_the_hooks_name() {
        use object::{Object, ObjectSymbol};
        let bytes = embedded();
        let elf = object::File::parse(bytes).expect("ELF");
        let ways = Figure::ALL
            .iter()
            .flat_map(|f| f.ways())
            .chain([&PAGE_FAULT_NOP_WAY]);
        for way in ways {
            for hook in way.hooks {
                let symbol = elf
                    .symbols()
                    .find(|s| s.name() == Ok(hook.program))
                    .unwrap_or_else(|| panic!("no program {} in the object", hook.program));
                let section = elf
                    .section_by_index(symbol.section_index().expect("in a section"))
                    .and_then(|s| object::ObjectSection::name(&s).map(str::to_owned))
                    .expect("section name");
                let prefix = match hook.attach {
                    Attach::TpBtf => "tp_btf/",
                    Attach::RawTp => "raw_tp/",
                    Attach::Classic => "tracepoint/",
                };
                assert!(
                    section.starts_with(prefix) && section.ends_with(hook.tracepoint),
                    "{}: section {section}, expected {prefix}…{}",
                    hook.program,
                    hook.tracepoint
                );
            }
        }
    }

    /// With `no-ebpf` nothing is embedded, and the reason every report gives says so.
    #[cfg(feature = "no-ebpf")]
    #[test]
    fn without_ebpf_nothing_is_embedded_and_the_reason_names_the_feature() {
        assert!(object().is_none());
        let reason = unavailable_reason().unwrap_or_default();
        assert!(reason.contains("no-ebpf feature"), "{reason}");
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
    fn oom_victim_conversion_turns_kb_into_bytes_and_trims_comm() {
        let mut v = OomVictim::ZERO;
        v.pid = 42;
        v.comm[..8].copy_from_slice(b"memspike");
        v.anon_rss_kb = 32 * 1024;
        v.total_vm_kb = 1;
        v.oom_score_adj = -17;
        let r = victim_report(&v, "src");
        assert_eq!(r.parent_pid, None, "0 is unknown");
        v.parent_pid = 40;
        let r = victim_report(&v, "src");
        assert_eq!(r.parent_pid, Some(40));
        assert_eq!(r.pid, 42);
        assert_eq!(r.comm, "memspike");
        assert_eq!(r.anon_rss_bytes, 32 << 20);
        assert_eq!(r.total_vm_bytes, 1024);
        assert_eq!(r.oom_score_adj, -17);
        assert_eq!(r.source, "src");
    }
}
