//! memspike's kernel-side observer.
//!
//! For now one program proves the chain (Debian's rustc → bpf-linker → BTF-carrying object →
//! aya loader): `oom_mark_victim`, a BTF-typed tracepoint (`tp_btf`) on `oom/mark_victim`, counts
//! OOM kills per experiment phase into a per-CPU array. User space writes the current phase into
//! `CURRENT_PHASE[0]` and sums `OOM_KILLS[phase]` over the CPUs (per-CPU maps because bpfel has
//! no atomic fetch_add).
//!
//! Build with `cargo xtask build-ebpf`; a plain `cargo build` here uses the wrong compiler.
#![no_std]
#![no_main]

use aya_ebpf::{
    macros::{btf_tracepoint, map},
    maps::{Array, PerCpuArray},
    programs::BtfTracePointContext,
};
use aya_log_ebpf::debug;
use memspike_common::Phase;

/// The experiment's current phase (`Phase as u32`), written by user space; index 0 only.
#[map]
static CURRENT_PHASE: Array<u32> = Array::with_max_entries(1, 0);

/// OOM kills seen, per phase (index = `Phase as u32`), per CPU.
#[map]
static OOM_KILLS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Phase::COUNT as u32, 0);

/// `tp_btf/mark_victim`: fires once for every task the OOM killer picks, machine-wide.
#[btf_tracepoint(function = "mark_victim")]
pub fn oom_mark_victim(ctx: BtfTracePointContext) -> i32 {
    match try_oom_mark_victim(&ctx) {
        Ok(()) => 0,
        Err(code) => code,
    }
}

fn try_oom_mark_victim(ctx: &BtfTracePointContext) -> Result<(), i32> {
    let phase = CURRENT_PHASE
        .get(0)
        .copied()
        .unwrap_or(Phase::Startup as u32);
    // An out-of-range phase would make the verifier-checked lookup fail: clamp to a valid one.
    let phase = match Phase::from_u32(phase) {
        Some(p) => p,
        None => Phase::Done,
    };
    let counter = OOM_KILLS.get_ptr_mut(phase as u32).ok_or(1)?;
    // SAFETY: the pointer is this CPU's slot of a per-CPU array; nothing else writes it now.
    unsafe { *counter += 1 };
    debug!(ctx, "oom/mark_victim during phase {}", phase as u32);
    Ok(())
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // BPF programs cannot unwind or abort; the verifier rejects any path that reaches here.
    loop {}
}
