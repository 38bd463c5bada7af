//! Types shared by memspike's user space and its eBPF programs.
//!
//! Everything here is `no_std`, `#[repr(C)]` (or `#[repr(u32)]`) and free of pointers, so the
//! same bytes mean the same thing on both sides of a BPF map or ring buffer.
//!
//! - [`steps`]: the step slots, the indices of the per-step page-fault counters.
//! - [`Counter`]: the plain counters the programs keep for the observed group, one slot each of
//!   one per-CPU map: a new counting figure is a variant here, its program (memspike-ebpf) and
//!   its ways to attach (memspike-probe's hooks), and its entry in the figures registry.
//! - [`ReclaimStats`], [`OomVictim`]: what the kernel programs record (per-CPU map values and
//!   ring-buffer events).
//! - [`OomFieldOffsets`]: where the `oom/mark_victim` fields sit in the tracepoint record on the
//!   running kernel, read by user space from tracefs and handed to the program as a global (the
//!   one global: it is the kernel's, fixed for the process; the observed group is a map entry).
//! - The names of the maps, globals and programs in the eBPF object ([`names`]).
//!
//! With the `user` feature (user space only) the map and event types implement `aya::Pod`.
#![no_std]

/// The per-step page-fault counters. A scenario is a list of named steps; the kernel side
/// only knows step *slots*, bounded numbers, so a new scenario needs no new eBPF object.
///
/// Slot [`STARTUP`](steps::STARTUP) holds what happens before the first step; user space
/// numbers the rest. Every slot from [`OTHER`](steps::OTHER) on shares that last counter:
/// user space may publish any `u32`, and [`clamp`](steps::clamp) (used by the eBPF program
/// and user space alike) folds it there rather than dropping its faults.
pub mod steps {
    /// The number of per-step fault counters (the size of `PAGE_FAULTS`).
    pub const SLOTS: usize = 64;
    /// The slot before the first step (process start-up).
    pub const STARTUP: u32 = 0;
    /// The slot every step beyond the named ones shares (the last counter).
    pub const OTHER: u32 = SLOTS as u32 - 1;

    /// The counter `slot` is counted in: itself below [`OTHER`], else [`OTHER`].
    #[inline(always)]
    pub const fn clamp(slot: u32) -> u32 {
        if slot < OTHER { slot } else { OTHER }
    }
}

/// A plain counter the programs keep for the observed group: slot [`Counter::slot`] of
/// [`names::MAP_COUNTERS`] (a per-CPU array of [`Counter::SLOTS`] `u64`s; user space sums the
/// CPUs). Each is a figure of its own, reported under [`Counter::name`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Page faults the group's tasks took in kernel mode: on user memory touched inside a
    /// system call, such as `read(2)` into fresh pages (`exceptions/page_fault_kernel`).
    KernelPageFaults = 0,
}

impl Counter {
    /// Every counter, in slot order.
    pub const ALL: [Counter; 1] = [Counter::KernelPageFaults];
    /// The map's slots: room for more counters without a new map layout.
    pub const SLOTS: u32 = 16;

    /// Its slot in the map.
    pub const fn slot(self) -> u32 {
        self as u32
    }

    /// Its name in reports (the JSON key) and in `MEMSPIKE_PROBE_FAIL`.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::KernelPageFaults => "kernel_page_faults",
        }
    }
}

/// Names shared by the eBPF object and its loader: maps, globals and programs.
pub mod names {
    /// `Array<u64>`, one element: the cgroup id (v2 inode) whose tasks are observed, written by
    /// user space for each new group; 0 (the value at load) observes nothing.
    pub const MAP_TARGET_CGROUP: &str = "TARGET_CGROUP";
    /// `Array<u32>`, one element: the current step slot, written by user space (any value;
    /// the program counts it under [`crate::steps::clamp`] of it).
    pub const MAP_CURRENT_STEP: &str = "CURRENT_STEP";
    /// `PerCpuArray<u64>`, [`crate::steps::SLOTS`] elements: user page faults per step slot.
    pub const MAP_PAGE_FAULTS: &str = "PAGE_FAULTS";
    /// `HashMap<u32, u64>`: thread id -> `bpf_ktime_get_ns` at the start of a memcg reclaim.
    pub const MAP_RECLAIM_START: &str = "RECLAIM_START";
    /// `PerCpuArray<ReclaimStats>`, one element: finished reclaim stalls in the group.
    pub const MAP_RECLAIM_STATS: &str = "RECLAIM_STATS";
    /// `RingBuf` of [`crate::OomVictim`] events.
    pub const MAP_OOM_EVENTS: &str = "OOM_EVENTS";
    /// `PerCpuArray<u64>`, [`crate::Counter::SLOTS`] elements: the plain counters, one slot
    /// per [`crate::Counter`].
    pub const MAP_COUNTERS: &str = "COUNTERS";

    /// [`crate::OomFieldOffsets`] global: the `oom/mark_victim` record layout.
    pub const GLOBAL_OOM_FIELDS: &str = "OOM_FIELDS";
    /// [`crate::OomTaskLayout`] global: where the raw `mark_victim` program finds the victim's
    /// figures in the kernel's structures.
    pub const GLOBAL_OOM_TASK_LAYOUT: &str = "OOM_TASK_LAYOUT";

    /// `tp_btf/page_fault_user`: counts user page faults per step slot (the fallback, and the
    /// bench's comparison).
    pub const PROG_PAGE_FAULT_BTF: &str = "page_fault_user_btf";
    /// `raw_tp/page_fault_user`: the same counter through a raw tracepoint (the first choice:
    /// no BTF to parse).
    pub const PROG_PAGE_FAULT_RAW: &str = "page_fault_user_raw";
    /// `tp_btf/page_fault_user` doing nothing: the bench's floor, never attached by a run.
    pub const PROG_PAGE_FAULT_NOP: &str = "page_fault_user_nop";
    /// `tp_btf/mm_vmscan_memcg_reclaim_begin`.
    pub const PROG_RECLAIM_BEGIN: &str = "memcg_reclaim_begin";
    /// `tp_btf/mm_vmscan_memcg_reclaim_end`.
    pub const PROG_RECLAIM_END: &str = "memcg_reclaim_end";
    /// `raw_tp/mm_vmscan_memcg_reclaim_begin`.
    pub const PROG_RECLAIM_BEGIN_RAW: &str = "memcg_reclaim_begin_raw";
    /// `raw_tp/mm_vmscan_memcg_reclaim_end`.
    pub const PROG_RECLAIM_END_RAW: &str = "memcg_reclaim_end_raw";
    /// `tracepoint/vmscan/mm_vmscan_memcg_reclaim_begin` (classic: the last fallback).
    pub const PROG_RECLAIM_BEGIN_TP: &str = "memcg_reclaim_begin_tp";
    /// `tracepoint/vmscan/mm_vmscan_memcg_reclaim_end` (classic: the last fallback).
    pub const PROG_RECLAIM_END_TP: &str = "memcg_reclaim_end_tp";
    /// `raw_tp/mark_victim`: the victim's figures read from its `task_struct` at the offsets of
    /// [`crate::OomTaskLayout`] (no perf event, so nothing to wait for when it is detached).
    pub const PROG_OOM_MARK_VICTIM_RAW: &str = "oom_mark_victim_raw";
    /// `tracepoint/oom/mark_victim` (classic: needs tracefs to attach; the fallback).
    pub const PROG_OOM_MARK_VICTIM: &str = "oom_mark_victim";
    /// `raw_tp/page_fault_kernel`: [`crate::Counter::KernelPageFaults`].
    pub const PROG_KERNEL_FAULT_RAW: &str = "page_fault_kernel_raw";
    /// `tp_btf/page_fault_kernel`: the same counter (the fallback).
    pub const PROG_KERNEL_FAULT_BTF: &str = "page_fault_kernel_btf";
    /// Every program in the object (to find what is loaded, e.g. after a soak).
    pub const PROGRAMS: [&str; 13] = [
        PROG_PAGE_FAULT_BTF,
        PROG_PAGE_FAULT_RAW,
        PROG_PAGE_FAULT_NOP,
        PROG_RECLAIM_BEGIN,
        PROG_RECLAIM_END,
        PROG_RECLAIM_BEGIN_RAW,
        PROG_RECLAIM_END_RAW,
        PROG_RECLAIM_BEGIN_TP,
        PROG_RECLAIM_END_TP,
        PROG_OOM_MARK_VICTIM_RAW,
        PROG_OOM_MARK_VICTIM,
        PROG_KERNEL_FAULT_RAW,
        PROG_KERNEL_FAULT_BTF,
    ];

    /// Kernel tracepoint names the programs attach to.
    pub const TP_PAGE_FAULT_USER: &str = "page_fault_user";
    pub const TP_PAGE_FAULT_KERNEL: &str = "page_fault_kernel";
    pub const TP_RECLAIM_BEGIN: &str = "mm_vmscan_memcg_reclaim_begin";
    pub const TP_RECLAIM_END: &str = "mm_vmscan_memcg_reclaim_end";
    pub const TP_VMSCAN_CATEGORY: &str = "vmscan";
    pub const TP_OOM_CATEGORY: &str = "oom";
    pub const TP_OOM_NAME: &str = "mark_victim";
}

/// Memory-cgroup reclaim stalls of the observed tasks (one per-CPU slot; user space sums).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReclaimStats {
    /// Finished `mm_vmscan_memcg_reclaim_begin` .. `_end` pairs.
    pub stalls: u64,
    /// Their total duration in nanoseconds.
    pub total_ns: u64,
}

/// Length of a task's command name in the kernel (`TASK_COMM_LEN`).
pub const COMM_LEN: usize = 16;

/// One `oom/mark_victim` event of an observed task, sent through [`names::MAP_OOM_EVENTS`].
/// Sizes are in kB, as the tracepoint reports them. No implicit padding: every byte is a field.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OomVictim {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) when the victim was marked.
    pub t_ns: u64,
    pub total_vm_kb: u64,
    pub anon_rss_kb: u64,
    pub file_rss_kb: u64,
    pub shmem_rss_kb: u64,
    pub pgtables_kb: u64,
    /// The victim's process id (its thread group's) from the raw program; the classic
    /// tracepoint's record has only the id of the thread the kernel marked, which differs
    /// when the process's first thread has exited.
    pub pid: u32,
    pub uid: u32,
    /// NUL-padded command name.
    pub comm: [u8; COMM_LEN],
    pub oom_score_adj: i16,
    pub _pad: [u8; 2],
    /// The thread-group id of the victim's parent (`real_parent->tgid`); 0 when the program
    /// could not tell (the classic tracepoint's record has no parent).
    pub parent_pid: u32,
}

impl OomVictim {
    /// All zero.
    pub const ZERO: OomVictim = OomVictim {
        t_ns: 0,
        total_vm_kb: 0,
        anon_rss_kb: 0,
        file_rss_kb: 0,
        shmem_rss_kb: 0,
        pgtables_kb: 0,
        pid: 0,
        uid: 0,
        comm: [0; COMM_LEN],
        oom_score_adj: 0,
        _pad: [0; 2],
        parent_pid: 0,
    };
}

/// Byte offsets of the `oom/mark_victim` fields inside the tracepoint's record, as listed in
/// tracefs' `events/oom/mark_victim/format` on the running kernel. A field the kernel does not
/// have is [`OomFieldOffsets::ABSENT`]; the program then reports 0 for it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OomFieldOffsets {
    /// `int pid`.
    pub pid: u32,
    /// `__data_loc char[] comm`: a u32 (length << 16 | offset of the string in the record).
    pub comm: u32,
    /// `unsigned long total_vm` (kB), and so on for the RSS counters and page tables.
    pub total_vm: u32,
    pub anon_rss: u32,
    pub file_rss: u32,
    pub shmem_rss: u32,
    /// `uid_t uid` (u32).
    pub uid: u32,
    pub pgtables: u32,
    /// `short oom_score_adj`.
    pub oom_score_adj: u32,
}

impl OomFieldOffsets {
    /// The offset of a field this kernel does not have.
    pub const ABSENT: u32 = u32::MAX;
    /// Every field absent: the value compiled into the object before the loader sets it.
    pub const NONE: OomFieldOffsets = OomFieldOffsets {
        pid: Self::ABSENT,
        comm: Self::ABSENT,
        total_vm: Self::ABSENT,
        anon_rss: Self::ABSENT,
        file_rss: Self::ABSENT,
        shmem_rss: Self::ABSENT,
        uid: Self::ABSENT,
        pgtables: Self::ABSENT,
        oom_score_adj: Self::ABSENT,
    };
}

/// Where the victim's figures are in the kernel's structures, for the raw `mark_victim`
/// program (whose arguments are the victim's `task_struct *` and its uid): byte offsets taken by
/// user space from the kernel's BTF, and handed to the program as a global. The program reads
/// what the classic tracepoint's record holds, the same way the kernel fills it: RSS counters as
/// `get_mm_counter` reads them (the shared `percpu_counter` count, 0 if negative), pages shifted
/// to kB.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OomTaskLayout {
    /// In `task_struct`: `comm` (`char[16]`), `mm`, `signal`, `tgid` (int) and `real_parent`
    /// (pointer).
    pub task_comm: u32,
    pub task_mm: u32,
    pub task_signal: u32,
    pub task_tgid: u32,
    pub task_real_parent: u32,
    /// In `signal_struct`: `oom_score_adj` (short).
    pub signal_oom_score_adj: u32,
    /// In `mm_struct`: `total_vm` (pages), `pgtables_bytes` (bytes), and the `count` (s64) of
    /// the file, anonymous and shmem RSS counters.
    pub mm_total_vm: u32,
    pub mm_pgtables_bytes: u32,
    pub mm_file_rss: u32,
    pub mm_anon_rss: u32,
    pub mm_shmem_rss: u32,
    /// `PAGE_SHIFT - 10`: pages to kB.
    pub kb_shift: u32,
}

impl OomTaskLayout {
    /// Nothing known: the value compiled into the object (the program is then never attached).
    pub const NONE: OomTaskLayout = OomTaskLayout {
        task_comm: 0,
        task_mm: 0,
        task_signal: 0,
        task_tgid: 0,
        task_real_parent: 0,
        signal_oom_score_adj: 0,
        mm_total_vm: 0,
        mm_pgtables_bytes: 0,
        mm_file_rss: 0,
        mm_anon_rss: 0,
        mm_shmem_rss: 0,
        kb_shift: 0,
    };
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY (all four): #[repr(C)], Copy, made of integers and integer arrays only, with no
    // implicit padding (OomVictim's padding after `oom_score_adj` is the explicit `_pad`
    // field), so every bit pattern is a valid value and every byte is initialised.
    unsafe impl aya::Pod for super::ReclaimStats {}
    // SAFETY: see above.
    unsafe impl aya::Pod for super::OomVictim {}
    // SAFETY: see above.
    unsafe impl aya::Pod for super::OomFieldOffsets {}
    // SAFETY: see above (thirteen u32, no padding).
    unsafe impl aya::Pod for super::OomTaskLayout {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_below_other_are_their_own_and_the_rest_share_other() {
        use steps::*;
        for slot in 0..OTHER {
            assert_eq!(clamp(slot), slot);
        }
        for slot in [OTHER, SLOTS as u32, 1_000, u32::MAX] {
            assert_eq!(clamp(slot), OTHER, "{slot}");
        }
    }

    #[test]
    fn every_counter_has_a_slot_of_its_own_in_the_map() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(c.slot() as usize, i, "{c:?}: ALL is in slot order");
            assert!(c.slot() < Counter::SLOTS, "{c:?}");
        }
    }

    #[test]
    fn shared_layouts_have_no_implicit_padding() {
        use core::mem::{align_of, size_of};
        assert_eq!(size_of::<ReclaimStats>(), 16);
        assert_eq!(size_of::<OomVictim>(), 6 * 8 + 2 * 4 + COMM_LEN + 2 + 2 + 4);
        assert_eq!(align_of::<OomVictim>(), 8);
        assert_eq!(core::mem::offset_of!(OomVictim, parent_pid), 76);
        assert_eq!(size_of::<OomFieldOffsets>(), 9 * 4);
        assert_eq!(size_of::<OomTaskLayout>(), 12 * 4);
    }
}
