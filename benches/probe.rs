//! What the eBPF observer costs per user page fault: a fault-heavy workload (map 1 GiB of fresh
//! private anonymous memory, no THP, write one byte per 4 KiB page so that every page faults
//! once, unmap) untraced, then traced with each page-fault attach type, side by side in one run.
//!
//! "Traced" means an [`EbpfProbe`] pointed at this process's own cgroup v2 id, so that the counting
//! path runs for every fault (not only the cgroup filter's early exit).
//!
//! Run as root after `cargo xtask build-ebpf`:
//! `MEMSPIKE_EBPF_OBJECT=$PWD/memspike-ebpf/target/bpfel-unknown-none/release/memspike-ebpf \
//!  cargo bench -p memspike-probe --bench probe`
//! Without root it says why and exits 0 (benches are not tests); without the object it does
//! not build, unless with `--features no-ebpf`, and then says why and exits 0.
//! Time per fault = reported time / 262,144 faults.
//!
//! This VM's fault rate is noisy (criterion's intervals span tens of percent), so after the
//! criterion groups the bench also runs an interleaved comparison: rounds of untraced, tp_btf
//! and raw_tp passes in rotating order (probe load/unload outside the timed part), and prints
//! per-fault medians and the median of the per-round traced/untraced ratios.
//! `MEMSPIKE_BENCH_ROUNDS` sets the number of rounds (default 15; 0 skips it).

use std::os::unix::fs::MetadataExt;

mod fresh;

use criterion::{Criterion, Throughput, criterion_group};
use memspike_probe::{
    self as probe, PageFaultAttach,
    ebpf::{EbpfProbe, KernelIds},
};
use nix::time::{ClockId, clock_gettime};

const GIB: usize = 1 << 30;
const PAGE: usize = 4096;
/// Faults per iteration.
const FAULTS: u64 = (GIB / PAGE) as u64;
/// The step slot the traced passes count in (any slot but start-up).
const STEP: u32 = 1;

/// mmap, one write per page, munmap: exactly one first-touch fault per 4 KiB page.
fn touch_fresh_pages(len: usize) {
    fresh::Fresh::map(len).touch(PAGE);
}

/// This process's cgroup v2 id: the inode of its `0::<path>` directory under the cgroup2 mount.
fn own_cgroup_v2_id() -> Result<u64, String> {
    let me = procfs::process::Process::myself().map_err(|e| e.to_string())?;
    let path = me
        .cgroups()
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|m| m.hierarchy == 0)
        .map(|m| m.pathname)
        .ok_or("no cgroup v2 line (0::) in /proc/self/cgroup")?;
    let mount = me
        .mountinfo()
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|m| m.fs_type == "cgroup2")
        .map(|m| m.mount_point)
        .ok_or("no cgroup2 mount")?;
    let dir = mount.join(path.trim_start_matches('/'));
    std::fs::metadata(&dir)
        .map(|m| m.ino())
        .map_err(|e| format!("{}: {e}", dir.display()))
}

/// The probe with `attach` as its page-fault program, loaded and pointed at `target`.
fn start(target: u64, attach: PageFaultAttach) -> Result<EbpfProbe, String> {
    let mut probe = EbpfProbe::load(Some(attach)).map_err(|u| u.error.to_string())?;
    probe.observe(target).map_err(|e| e.to_string())?;
    Ok(probe)
}

fn faults(c: &mut Criterion) {
    if let Some(reason) = probe::unavailable_reason() {
        eprintln!("probe bench skipped: eBPF probe unavailable: {reason}");
        return;
    }
    let target = match own_cgroup_v2_id() {
        Ok(id) => id,
        Err(e) => {
            eprintln!("probe bench skipped: cannot find this process's cgroup v2 id: {e}");
            return;
        }
    };
    let mut g = c.benchmark_group("fault_1GiB_4KiB");
    g.sample_size(10);
    g.throughput(Throughput::Elements(FAULTS));
    g.bench_function("untraced", |b| b.iter(|| touch_fresh_pages(GIB)));
    for (name, attach) in [
        ("traced_empty_program", PageFaultAttach::EmptyTpBtf),
        ("traced_tp_btf", PageFaultAttach::TpBtf),
        ("traced_raw_tp", PageFaultAttach::RawTp),
    ] {
        let mut probe = match start(target, attach) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("probe bench: {name} skipped: {e}");
                continue;
            }
        };
        if let Err(e) = probe.set_step(STEP) {
            eprintln!("probe bench: {name}: {e}");
        }
        g.bench_function(name, |b| b.iter(|| touch_fresh_pages(GIB)));
        match probe.finish() {
            // Every process of the cgroup counts, so this is at least the bench's own faults.
            (Ok(counts), _) => eprintln!(
                "{name}: {} page faults counted in cgroup {target} ({} in step slot {STEP})",
                counts.faults.iter().sum::<u64>(),
                counts.faults[STEP as usize]
            ),
            (Err(e), _) => eprintln!("probe bench: {name}: finish: {e}"),
        }
    }
    g.bench_function("untraced_again", |b| b.iter(|| touch_fresh_pages(GIB)));
    g.finish();
}

/// This thread's CPU time (user + system) in ns: unlike wall time, not inflated while other
/// processes on this 2-CPU machine hold the CPU.
fn thread_cpu_ns() -> u128 {
    let ts = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).expect("the thread's CPU clock");
    ts.tv_sec() as u128 * 1_000_000_000 + ts.tv_nsec() as u128
}

/// Average run time per run of the probe's page-fault program (needs
/// kernel.bpf_stats_enabled).
fn program_ns_per_run(ids: &KernelIds) -> Option<f64> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| {
            ids.programs.contains(&p.id())
                && p.name_as_str()
                    .is_some_and(|n| n.starts_with("page_fault_use"))
        })
        .find_map(|p| {
            let runs = p.run_count();
            (runs > 0).then(|| p.run_time().as_nanos() as f64 / runs as f64)
        })
}

/// One 1 GiB pass with the given tracing: (wall ns per fault, CPU ns per fault, program ns
/// per run if kernel BPF stats are on).
fn timed_pass(
    target: u64,
    attach: Option<PageFaultAttach>,
) -> Result<(f64, f64, Option<f64>), String> {
    let probe = match attach {
        None => None,
        Some(a) => Some(start(target, a)?),
    };
    let cpu = thread_cpu_ns();
    let start = std::time::Instant::now();
    touch_fresh_pages(GIB);
    let wall = start.elapsed().as_nanos() as f64 / FAULTS as f64;
    let cpu = (thread_cpu_ns() - cpu) as f64 / FAULTS as f64;
    let prog = probe.as_ref().and_then(|p| program_ns_per_run(&p.ids()));
    if let Some(p) = probe {
        p.finish().0.map_err(|e| e.to_string())?;
    }
    Ok((wall, cpu, prog))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn interleaved() {
    let rounds: usize = std::env::var("MEMSPIKE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    if rounds == 0 || probe::unavailable_reason().is_some() {
        return;
    }
    let Ok(target) = own_cgroup_v2_id() else {
        return;
    };
    let configs: [(&str, Option<PageFaultAttach>); 4] = [
        ("untraced", None),
        ("empty", Some(PageFaultAttach::EmptyTpBtf)),
        ("tp_btf", Some(PageFaultAttach::TpBtf)),
        ("raw_tp", Some(PageFaultAttach::RawTp)),
    ];
    const STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";
    let n = configs.len();
    let (mut wall, mut cpu, mut prog) = (
        vec![Vec::new(); n],
        vec![Vec::new(); n],
        vec![Vec::new(); n],
    );
    let (mut wall_ratio, mut cpu_ratio) = (vec![Vec::new(); n], vec![Vec::new(); n]);
    eprintln!("interleaved: {rounds} rounds of 1 GiB per configuration (cgroup {target})");
    touch_fresh_pages(GIB); // warm-up
    for round in 0..rounds {
        let mut this = [(f64::NAN, f64::NAN, None); 4];
        for k in 0..n {
            let i = (round + k) % n;
            match timed_pass(target, configs[i].1) {
                Ok(r) => this[i] = r,
                Err(e) => {
                    eprintln!("interleaved: {} failed: {e}", configs[i].0);
                    return;
                }
            }
        }
        for i in 0..n {
            wall[i].push(this[i].0);
            cpu[i].push(this[i].1);
            wall_ratio[i].push(this[i].0 / this[0].0);
            cpu_ratio[i].push(this[i].1 / this[0].1);
        }
    }
    // Program run time per fault from the kernel's BPF stats, in separate passes (the stats
    // themselves cost two clock reads per run, so the timed rounds run without them).
    let stats_before = std::fs::read_to_string(STATS).unwrap_or_default();
    if std::fs::write(STATS, "1").is_ok() {
        for _ in 0..3 {
            for (i, (_, attach)) in configs.iter().enumerate().skip(1) {
                if let Ok((_, _, Some(p))) = timed_pass(target, *attach) {
                    prog[i].push(p);
                }
            }
        }
        let _ = std::fs::write(STATS, stats_before.trim());
    }
    eprintln!(
        "config    wall ns/fault (median, min)   +% vs untraced   CPU ns/fault (median)   +% vs \
         untraced   program ns/run (median)"
    );
    for (i, (name, _)) in configs.iter().enumerate() {
        let min = wall[i].iter().copied().fold(f64::INFINITY, f64::min);
        eprintln!(
            "{name:<9} {:>13.1} {min:>10.1}   {:>+14.1} %   {:>21.1}   {:>+9.1} %   {:>12.1}",
            median(&mut wall[i]),
            (median(&mut wall_ratio[i]) - 1.0) * 100.0,
            median(&mut cpu[i]),
            (median(&mut cpu_ratio[i]) - 1.0) * 100.0,
            median(&mut prog[i]),
        );
    }
}

criterion_group!(benches, faults);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    interleaved();
}
