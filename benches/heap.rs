//! How fast the simulated heap turns address space into resident memory, against the floor:
//! a raw anonymous mapping written byte by byte. Both sides map fresh memory, write 1 GiB
//! (every page faults in once) and unmap it, so the difference is the heap's own cost.
//! Also the pacer's arithmetic, which runs after every allocation.
//!
//! Run: `cargo bench -p memspike --bench heap`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use memspike::{
    heap::Heap,
    pacer::{Pacer, PacerConfig},
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

criterion_group!(benches, write_1gib, pacer);
criterion_main!(benches);
