//! memspike's kernel-side observer: what the kernel saw happen to the experiment's tasks.
//!
//! Every program first compares `bpf_get_current_cgroup_id()` (the current task's cgroup v2
//! id) with `TARGET_CGROUP[0]`, a one-entry array user space writes: the programs are loaded
//! once per memspike invocation and pointed at each new group in turn; 0 (the value at load)
//! observes nothing. On a v1 memory hierarchy the target is the inode of the experiment's
//! same-named twin under the cgroup2 mount; on v2 the group's own id.
//!
//! - `page_fault_user_raw` (`raw_tp/page_fault_user`, the one user space attaches first: it
//!   needs no BTF, which takes ~25 ms of CPU to parse) and `page_fault_user_btf`
//!   (`tp_btf/page_fault_user`, the same counter: the fallback, and the bench's comparison;
//!   per fault the two cost the same within this VM's noise): one increment of this CPU's counter
//!   `PAGE_FAULTS[clamp(CURRENT_STEP[0])]`, the current step slot; a value at or beyond
//!   `OTHER` counts under `OTHER` (see `memspike_common::steps`), so no fault is dropped.
//!   Nothing else runs per fault.
//! - `memcg_reclaim_begin_raw` / `_end_raw` (`raw_tp/mm_vmscan_memcg_reclaim_*`), the same
//!   through tp_btf (`memcg_reclaim_begin` / `_end`) and through the classic tracepoints
//!   (`memcg_reclaim_begin_tp` / `_end_tp`), in the loader's order of preference: the start
//!   time per thread in `RECLAIM_START`, then one stall and its duration in `RECLAIM_STATS`.
//! - `oom_mark_victim_raw` (`raw_tp/mark_victim`, whose arguments are the victim's
//!   `task_struct *` and uid): reads the victim's figures, its process's id (`tgid`) and its
//!   parent's (`real_parent->tgid`) from the kernel's structures at the
//!   offsets in the `OOM_TASK_LAYOUT` global (taken from the kernel's BTF by the loader) and
//!   sends an `OomVictim` through `OOM_EVENTS`. Detaching it costs nothing, unlike the classic
//!   tracepoint, whose perf event makes the kernel wait for RCU grace periods (~70 ms) when
//!   the last one on the tracepoint closes.
//! - `oom_mark_victim` (classic `tracepoint/oom/mark_victim`, the fallback; rare, so cost does
//!   not matter): reads the record's fields at the offsets in the `OOM_FIELDS` global (taken
//!   from tracefs' format file by the loader, never hard-coded), the same event.
//!   The OOM killer runs in the charging task, a member of the group, so the same cgroup filter
//!   keeps only the experiment's kills.
//!
//! - `page_fault_kernel_raw` (`raw_tp/page_fault_kernel`), else `page_fault_kernel_btf`: the
//!   plain counter `COUNTERS[Counter::KernelPageFaults]`, one increment per fault the group's
//!   tasks take in kernel mode. Every plain counter is one slot of `COUNTERS`, counted by
//!   [`try_count`]: a new one is a `Counter` (memspike-common) and its programs here.
//!
//! Per-CPU maps because bpfel has no atomic fetch_add. Nothing is allocated per event.
//! Build with `cargo xtask build-ebpf`; a plain `cargo build` here uses the wrong compiler.
#![no_std]
#![no_main]

use core::ptr::read_volatile;

use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_ktime_get_ns,
        bpf_probe_read_kernel, bpf_probe_read_kernel_str_bytes,
    },
    macros::{btf_tracepoint, map, raw_tracepoint, tracepoint},
    maps::{Array, HashMap, PerCpuArray, RingBuf},
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
};
use aya_log_ebpf::debug;
use memspike_common::{
    COMM_LEN, Counter, OomFieldOffsets, OomTaskLayout, OomVictim, ReclaimStats,
    steps::{self, SLOTS},
};

/// The observed cgroup (v2 id), written by user space; index 0 only. 0 observes nothing.
#[map]
static TARGET_CGROUP: Array<u64> = Array::with_max_entries(1, 0);

/// Where the `oom/mark_victim` fields are in the record on this kernel; set by the loader.
#[unsafe(no_mangle)]
static OOM_FIELDS: OomFieldOffsets = OomFieldOffsets::NONE;

/// Where the victim's figures are in this kernel's structures; set by the loader.
#[unsafe(no_mangle)]
static OOM_TASK_LAYOUT: OomTaskLayout = OomTaskLayout::NONE;

/// The experiment's current step slot, written by user space; index 0 only.
#[map]
static CURRENT_STEP: Array<u32> = Array::with_max_entries(1, 0);

/// User page faults of the observed tasks, per step slot, per CPU.
#[map]
static PAGE_FAULTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(SLOTS as u32, 0);

/// Thread id -> start of its memcg reclaim (ns). Bounded: a full map only loses stalls.
#[map]
static RECLAIM_START: HashMap<u32, u64> = HashMap::with_max_entries(1024, 0);

/// Finished memcg reclaim stalls of the observed tasks, per CPU; index 0 only.
#[map]
static RECLAIM_STATS: PerCpuArray<ReclaimStats> = PerCpuArray::with_max_entries(1, 0);

/// `OomVictim` events (80 bytes each; 16 KiB holds ~200, far more than one run produces).
#[map]
static OOM_EVENTS: RingBuf = RingBuf::with_byte_size(16 * 1024, 0);

/// The plain counters of the observed tasks, one slot per `Counter`, per CPU.
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::SLOTS, 0);

/// True when the current task is in the observed cgroup (never while the target is 0).
#[inline(always)]
fn in_target() -> bool {
    let target = TARGET_CGROUP.get(0).copied().unwrap_or(0);
    if target == 0 {
        return false;
    }
    // SAFETY: bpf_get_current_cgroup_id takes no arguments and has no preconditions.
    let current = unsafe { bpf_get_current_cgroup_id() };
    current == target
}

/// Turns a `try_…` result into the program's return value (ignored by the kernel for
/// tracepoints; non-zero marks an unexpected path when reading `bpftool prog` stats).
#[inline(always)]
fn code(r: Result<(), i32>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------------------------
// Page faults

#[btf_tracepoint(function = "page_fault_user")]
pub fn page_fault_user_btf(_ctx: BtfTracePointContext) -> i32 {
    code(try_count_fault())
}

#[raw_tracepoint(tracepoint = "page_fault_user")]
pub fn page_fault_user_raw(_ctx: RawTracePointContext) -> i32 {
    code(try_count_fault())
}

/// An empty program on the same tracepoint: the bench's floor (the cost of having any BPF
/// program on `page_fault_user` at all). Never attached by a run.
#[btf_tracepoint(function = "page_fault_user")]
pub fn page_fault_user_nop(_ctx: BtfTracePointContext) -> i32 {
    0
}

#[inline(always)]
fn try_count_fault() -> Result<(), i32> {
    if !in_target() {
        return Ok(());
    }
    let step = CURRENT_STEP.get(0).copied().unwrap_or(steps::STARTUP);
    // Clamped, so every value user space may write lands in a counter (OTHER at worst); the
    // map's own bounds check then never fails.
    let counter = PAGE_FAULTS.get_ptr_mut(steps::clamp(step)).ok_or(1)?;
    // SAFETY: this CPU's counter of a per-CPU array; the program runs with preemption/migration
    // disabled, so nothing else writes it meanwhile.
    unsafe { *counter += 1 };
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Plain counters

/// One more of `counter` when the current task is observed.
#[inline(always)]
fn try_count(counter: Counter) -> Result<(), i32> {
    if !in_target() {
        return Ok(());
    }
    let slot = COUNTERS.get_ptr_mut(counter.slot()).ok_or(1)?;
    // SAFETY: this CPU's slot of a per-CPU array; the program runs with preemption/migration
    // disabled, so nothing else writes it meanwhile.
    unsafe { *slot += 1 };
    Ok(())
}

#[raw_tracepoint(tracepoint = "page_fault_kernel")]
pub fn page_fault_kernel_raw(_ctx: RawTracePointContext) -> i32 {
    code(try_count(Counter::KernelPageFaults))
}

#[btf_tracepoint(function = "page_fault_kernel")]
pub fn page_fault_kernel_btf(_ctx: BtfTracePointContext) -> i32 {
    code(try_count(Counter::KernelPageFaults))
}

// ---------------------------------------------------------------------------------------------
// Memory-cgroup reclaim stalls

#[btf_tracepoint(function = "mm_vmscan_memcg_reclaim_begin")]
pub fn memcg_reclaim_begin(_ctx: BtfTracePointContext) -> i32 {
    code(try_reclaim_begin())
}

#[btf_tracepoint(function = "mm_vmscan_memcg_reclaim_end")]
pub fn memcg_reclaim_end(_ctx: BtfTracePointContext) -> i32 {
    code(try_reclaim_end())
}

/// The same pair through raw tracepoints (no BTF needed; the loader's first choice). They read
/// no argument.
#[raw_tracepoint(tracepoint = "mm_vmscan_memcg_reclaim_begin")]
pub fn memcg_reclaim_begin_raw(_ctx: RawTracePointContext) -> i32 {
    code(try_reclaim_begin())
}

#[raw_tracepoint(tracepoint = "mm_vmscan_memcg_reclaim_end")]
pub fn memcg_reclaim_end_raw(_ctx: RawTracePointContext) -> i32 {
    code(try_reclaim_end())
}

/// The same pair through the classic tracepoints (the last fallback: detaching their perf
/// events makes the kernel wait for RCU grace periods). They read no field of the record.
#[tracepoint(category = "vmscan", name = "mm_vmscan_memcg_reclaim_begin")]
pub fn memcg_reclaim_begin_tp(_ctx: TracePointContext) -> u32 {
    code(try_reclaim_begin()) as u32
}

#[tracepoint(category = "vmscan", name = "mm_vmscan_memcg_reclaim_end")]
pub fn memcg_reclaim_end_tp(_ctx: TracePointContext) -> u32 {
    code(try_reclaim_end()) as u32
}

#[inline(always)]
fn current_tid() -> u32 {
    // The low half of pid_tgid is the thread id (truncation intended).
    bpf_get_current_pid_tgid() as u32
}

fn try_reclaim_begin() -> Result<(), i32> {
    if !in_target() {
        return Ok(());
    }
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    RECLAIM_START.insert(current_tid(), now, 0)
}

fn try_reclaim_end() -> Result<(), i32> {
    if !in_target() {
        return Ok(());
    }
    let tid = current_tid();
    // A reclaim that began before the programs were attached has no start: not counted.
    let Some(start) = RECLAIM_START.get_ptr(tid) else {
        return Ok(());
    };
    // SAFETY: the pointer came from a successful lookup; only this thread writes its own key
    // (begin/end of one thread cannot run concurrently), so the value is stable.
    let start = unsafe { *start };
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    RECLAIM_START.remove(tid)?;
    let stats = RECLAIM_STATS.get_ptr_mut(0).ok_or(1)?;
    // SAFETY: this CPU's slot of a per-CPU array; no concurrent writer on this CPU.
    unsafe {
        (*stats).stalls += 1;
        (*stats).total_ns += now.saturating_sub(start);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// OOM victims

#[tracepoint(category = "oom", name = "mark_victim")]
pub fn oom_mark_victim(ctx: TracePointContext) -> u32 {
    match try_oom_mark_victim(&ctx) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// Reads a `T` at byte `offset` of the tracepoint record; 0 (default) for an absent field or a
/// failed read.
#[inline(always)]
fn field<T: Default>(ctx: &TracePointContext, offset: u32) -> T {
    if offset == OomFieldOffsets::ABSENT {
        return T::default();
    }
    // SAFETY: read_at goes through bpf_probe_read_kernel, which checks the address and returns
    // an error instead of faulting; offsets come from the kernel's own format file.
    unsafe { ctx.read_at::<T>(offset as usize) }.unwrap_or_default()
}

fn try_oom_mark_victim(ctx: &TracePointContext) -> Result<(), i32> {
    if !in_target() {
        return Ok(());
    }
    // SAFETY: a plain read of a static only written by the loader before load.
    let f = unsafe { read_volatile(&raw const OOM_FIELDS) };
    let mut v = OomVictim::ZERO;
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    v.t_ns = unsafe { bpf_ktime_get_ns() };
    v.pid = field::<i32>(ctx, f.pid) as u32;
    v.total_vm_kb = field::<u64>(ctx, f.total_vm);
    v.anon_rss_kb = field::<u64>(ctx, f.anon_rss);
    v.file_rss_kb = field::<u64>(ctx, f.file_rss);
    v.shmem_rss_kb = field::<u64>(ctx, f.shmem_rss);
    v.uid = field::<u32>(ctx, f.uid);
    v.pgtables_kb = field::<u64>(ctx, f.pgtables);
    v.oom_score_adj = field::<i16>(ctx, f.oom_score_adj);
    if f.comm != OomFieldOffsets::ABSENT {
        // __data_loc: the low 16 bits are the string's offset in the record.
        let loc = field::<u32>(ctx, f.comm);
        let start = (loc & 0xffff) as usize;
        v.comm = comm_at(ctx.as_ptr().cast::<u8>().wrapping_add(start).cast_const());
    }
    send_victim(ctx, &v)
}

/// The NUL-padded task name at `src`; empty when it cannot be read.
#[inline(always)]
fn comm_at(src: *const u8) -> [u8; COMM_LEN] {
    let mut comm = [0u8; COMM_LEN];
    // SAFETY: bpf_probe_read_kernel_str_bytes checks the address and never writes past `comm`.
    match unsafe { bpf_probe_read_kernel_str_bytes(src, &mut comm) } {
        Ok(_) => comm,
        Err(_) => [0u8; COMM_LEN],
    }
}

/// Sends a victim of the observed group to user space, and says so in the debug log.
#[inline(always)]
fn send_victim<C: EbpfContext>(ctx: &C, v: &OomVictim) -> Result<(), i32> {
    let (pid, anon_kb) = (v.pid, v.anon_rss_kb);
    OOM_EVENTS.output::<OomVictim>(v, 0)?;
    debug!(
        ctx,
        "oom/mark_victim: pid {} in the observed cgroup, anon_rss {} kB", pid, anon_kb
    );
    Ok(())
}

#[raw_tracepoint(tracepoint = "mark_victim")]
pub fn oom_mark_victim_raw(ctx: RawTracePointContext) -> i32 {
    code(try_oom_mark_victim_raw(&ctx))
}

/// Reads a `T` at byte `offset` of the kernel object at `base`; 0 (default) for a null base or
/// a failed read.
#[inline(always)]
fn kernel_field<T: Default>(base: u64, offset: u32) -> T {
    if base == 0 {
        return T::default();
    }
    let src = (base as usize).wrapping_add(offset as usize) as *const T;
    // SAFETY: bpf_probe_read_kernel checks the address and returns an error instead of
    // faulting; the offsets come from the kernel's own BTF.
    unsafe { bpf_probe_read_kernel(src) }.unwrap_or_default()
}

/// A page count as the tracepoint reports it: kB (0 for a negative per-CPU counter sum).
#[inline(always)]
fn pages_kb(pages: i64, kb_shift: u32) -> u64 {
    (pages.max(0) as u64) << (kb_shift & 31)
}

fn try_oom_mark_victim_raw(ctx: &RawTracePointContext) -> Result<(), i32> {
    if !in_target() {
        return Ok(());
    }
    // SAFETY: a plain read of a static only written by the loader before load.
    let l = unsafe { read_volatile(&raw const OOM_TASK_LAYOUT) };
    let task: u64 = ctx.arg(0);
    let mut v = OomVictim::ZERO;
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    v.t_ns = unsafe { bpf_ktime_get_ns() };
    v.uid = ctx.arg::<u64>(1) as u32;
    // The process (thread group), not the thread: the kernel marks the first thread of the
    // process that still has its memory, which is not the process's own when its first thread
    // has exited (`pthread_exit` in `main`).
    v.pid = kernel_field::<i32>(task, l.task_tgid) as u32;
    let mm = kernel_field::<u64>(task, l.task_mm);
    v.total_vm_kb = pages_kb(kernel_field::<i64>(mm, l.mm_total_vm), l.kb_shift);
    v.anon_rss_kb = pages_kb(kernel_field::<i64>(mm, l.mm_anon_rss), l.kb_shift);
    v.file_rss_kb = pages_kb(kernel_field::<i64>(mm, l.mm_file_rss), l.kb_shift);
    v.shmem_rss_kb = pages_kb(kernel_field::<i64>(mm, l.mm_shmem_rss), l.kb_shift);
    v.pgtables_kb = kernel_field::<u64>(mm, l.mm_pgtables_bytes) >> 10;
    let signal = kernel_field::<u64>(task, l.task_signal);
    v.oom_score_adj = kernel_field::<i16>(signal, l.signal_oom_score_adj);
    // The parent's thread-group id: the pid user space knows it by (0 if unreadable).
    let parent = kernel_field::<u64>(task, l.task_real_parent);
    v.parent_pid = kernel_field::<i32>(parent, l.task_tgid) as u32;
    if task != 0 {
        v.comm = comm_at((task as usize).wrapping_add(l.task_comm as usize) as *const u8);
    }
    send_victim(ctx, &v)
}

/// The licence the kernel reads (the ELF section `license`) to let these programs call GPL-only
/// helpers (`bpf_probe_read_kernel_str`, `bpf_ktime_get_ns` ... in `oom_mark_victim`). Without it
/// aya would declare "GPL" on the object's behalf. "Dual MIT/GPL" is one of the strings the
/// kernel's `license_is_gpl_compatible` accepts; the crate is MIT OR GPL-2.0 (see Cargo.toml).
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // BPF programs cannot unwind or abort; the verifier rejects any path that reaches here.
    loop {}
}
