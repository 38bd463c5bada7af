//! How fast the simulated heap turns address space into resident memory, against the floor:
//! a raw anonymous mapping written byte by byte. Both sides map fresh memory, write 1 GiB
//! (every page faults in once) and unmap it, so the difference is the heap's own cost.
//! Also the pacer's arithmetic, which runs after every allocation, and what one interactive
//! operation costs with many slabs held: it must not grow with their number.
//!
//! Run: `cargo bench -p memspike --bench heap` (`-- per_op` or `-- reset` for one group)

use std::hint::black_box;

use criterion::BatchSize;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
// TEMP(issue 8): lead rewrites (the old phases).
use memspike::phase::Phase;
use memspike::{
    heap::Heap,
    pacer::{Pacer, PacerConfig},
    scenario::Driver,
    telemetry::{Event, Sink},
};

const GIB: usize = 1 << 30;

/// The floor: mmap, write every byte, munmap.
fn raw_mmap_write(len: usize) {
    // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED, "mmap failed");
    // SAFETY: same advice the heap's arena gives (4 KiB pages, no THP), on our mapping.
    unsafe { libc::madvise(p, len, libc::MADV_NOHUGEPAGE) };
    // SAFETY: `len` bytes at `p` are mapped readable and writable and used only here.
    unsafe { std::ptr::write_bytes(p.cast::<u8>(), 0x5a, len) };
    // SAFETY: unmapping exactly what was mapped above.
    unsafe { libc::munmap(p, len) };
}

/// The same gigabyte through the heap, in slabs of `slab` bytes.
fn heap_write(len: usize, slab: u64) {
    let mut heap = Heap::new(2 * len as u64, PacerConfig::default()).expect("reserve");
    let mut left = len as u64;
    while left > 0 {
        let n = slab.min(left);
        black_box(heap.alloc(n).expect("alloc"));
        left -= n;
    }
}

fn write_1gib(c: &mut Criterion) {
    let mut g = c.benchmark_group("write_1GiB");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(GIB as u64));
    g.bench_function("raw_mmap", |b| b.iter(|| raw_mmap_write(GIB)));
    for slab in [1u64 << 20, 32 << 20] {
        g.bench_with_input(
            BenchmarkId::new("heap", format!("{}MiB_slabs", slab >> 20)),
            &slab,
            |b, &slab| b.iter(|| heap_write(GIB, slab)),
        );
    }
    g.finish();
}

fn pacer(c: &mut Criterion) {
    let mut p = Pacer::new(PacerConfig::default());
    p.end_cycle(30 << 20, 1 << 20);
    c.bench_function("pacer_pace", |b| b.iter(|| black_box(&p).pace()));
}

/// Telemetry that goes nowhere: the driver still builds every event, as the worker does.
struct Discard;

impl Sink for Discard {
    fn send(&mut self, event: &Event) -> std::io::Result<()> {
        black_box(event);
        Ok(())
    }
}

/// The slab counts the per-operation benches hold (80,000 is issue 7's figure).
const HELD: [u64; 3] = [1_000, 10_000, 80_000];
/// One heap page: the smallest slab.
const SLAB: u64 = 8192;

/// A driver holding `n` one-page slabs.
fn holding(n: u64) -> Driver<Discard> {
    let heap = Heap::new(4 << 30, PacerConfig::default()).expect("reserve");
    let mut d = Driver::new(heap, Discard);
    for _ in 0..n {
        d.alloc(Phase::Interactive, SLAB).expect("alloc");
    }
    d
}

/// One interactive operation with `n` slabs held: each must cost the same whatever `n`.
fn per_op(c: &mut Criterion) {
    let mut g = c.benchmark_group("per_op");
    g.sample_size(20);
    g.throughput(Throughput::Elements(1));
    let p = Phase::Interactive;
    for n in HELD {
        let mut d = holding(n);
        // /add then /rel of the newest slab then /gc: the page is reused, nothing faults.
        g.bench_with_input(BenchmarkId::new("add_rel_gc", n), &n, |b, _| {
            b.iter(|| {
                let id = d.alloc(p, SLAB).expect("alloc");
                d.release(p, &[id]).expect("release");
                black_box(d.collect(p).expect("collect"));
            })
        });
        // /rel of the oldest page-sized slab, then /add of a new one: `n` stays the same and
        // the pacer collects the garbage as it would.
        g.bench_with_input(BenchmarkId::new("rel_oldest_add", n), &n, |b, _| {
            b.iter(|| {
                black_box(d.release_bytes(p, SLAB).expect("release"));
                black_box(d.alloc(p, SLAB).expect("alloc"));
            })
        });
    }
    g.finish();
}

/// `/reset` with `n` slabs held, reported per slab: it must not grow with `n`.
fn reset(c: &mut Criterion) {
    let mut g = c.benchmark_group("reset");
    g.sample_size(10);
    for n in HELD {
        g.throughput(Throughput::Elements(n));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter_batched(
                || holding(n),
                |mut d| black_box(d.reset(Phase::Interactive).expect("reset")),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, write_1gib, pacer, per_op, reset);
criterion_main!(benches);
