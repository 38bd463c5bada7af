//! How fast the simulated heap turns address space into resident memory, against the floor:
//! a raw anonymous mapping written byte by byte. Both sides map fresh memory, write 1 GiB
//! (every page faults in once) and unmap it, so the difference is the heap's own cost.
//! Also the pacer's arithmetic, which runs after every allocation, what one interactive
//! operation costs with many slabs held (it must not grow with their number), and what
//! returning memory costs (`MADV_DONTNEED`, the scavenger's one system call: the model's
//! `scavenger::MADVISE_BYTES_PER_CPU_SECOND`).
//!
//! Run: `cargo bench -p memspike-worker --bench heap` (`-- per_op`, `-- reset` or `-- madvise` for
//! one group)

use std::hint::black_box;

mod fresh;

use criterion::BatchSize;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use memspike_model::{
    experiment::{Experiment, INTERACTIVE},
    heap::{Heap, Order},
    pacer::{Pacer, PacerConfig, Totals},
    release::Release,
};
use memspike_worker::{
    arena::Arena,
    host::{self, Program, WorkerHost},
    telemetry::{Event, Sink},
};

const GIB: usize = 1 << 30;

/// The floor: mmap, write every byte, munmap.
fn raw_mmap_write(len: usize) {
    fresh::Fresh::map(len).fill(0x5a);
}

/// The same gigabyte through the heap, in slabs of `slab` bytes.
fn heap_write(len: usize, slab: u64) {
    let arena = Arena::reserve(2 * len).expect("reserve");
    let mut heap = Heap::new(arena, 2 * len as u64);
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
    let p = Pacer::new(
        PacerConfig {
            memory_limit: Some(240 << 20),
            ..PacerConfig::default()
        },
        Release::default().rules(),
    );
    let t = Totals {
        marked: 30 << 20,
        marked_scan: 1 << 20,
        allocated: 40 << 20,
        free: 8 << 20,
        mapped: 56 << 20,
        released: 8 << 20,
        non_heap: 4 << 20,
        span_slack: 300 << 10,
        cycles: 3,
    };
    c.bench_function("pacer_pace", |b| {
        b.iter(|| black_box(&p).pace(black_box(&t)))
    });
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

/// A program holding `n` one-page slabs, as an interactive worker's.
fn holding(n: u64) -> Program<Discard> {
    let mut d = host::program(
        &Experiment::seed(32 << 20),
        Discard,
        WorkerHost::new(None),
        4 << 30,
    )
    .expect("reserve");
    for _ in 0..n {
        d.alloc(INTERACTIVE, SLAB).expect("alloc");
    }
    d
}

/// One interactive operation with `n` slabs held: each must cost the same whatever `n`.
fn per_op(c: &mut Criterion) {
    let mut g = c.benchmark_group("per_op");
    g.sample_size(20);
    g.throughput(Throughput::Elements(1));
    let p = INTERACTIVE;
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
                black_box(d.release_bytes(p, SLAB, Order::Oldest).expect("release"));
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
                |mut d| black_box(d.reset(INTERACTIVE).expect("reset")),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

/// Returning 64 MiB of written memory to the OS in the scavenger's 64 KiB chunks: bytes per
/// second of `MADV_DONTNEED` (the write is outside the measurement).
fn madvise(c: &mut Criterion) {
    const LEN: usize = 64 << 20;
    const CHUNK: usize = 64 << 10;
    let mut g = c.benchmark_group("madvise");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(LEN as u64));
    g.bench_function("dontneed_64KiB_chunks", |b| {
        b.iter_batched(
            || {
                let mut a = Arena::reserve(LEN).expect("reserve");
                a.write(0, LEN, 0x5a);
                a
            },
            |mut a| {
                for off in (0..LEN).step_by(CHUNK) {
                    a.release(off, CHUNK).expect("madvise");
                }
                a
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, write_1gib, pacer, per_op, reset, madvise);
criterion_main!(benches);
