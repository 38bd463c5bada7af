//! The Go runtime's own memory: what a Go program holds outside its heap. A fixed base (the
//! runtime's structures, the main goroutine's and the system stacks, the binary's data), plus
//! metadata that grows with the heap (span structures, the heap bitmap, arena metadata).
//!
//! Two figures each: what the runtime counts as mapped and ready (`Sys - HeapSys`, which the
//! soft memory limit sees) and what is resident (what the cgroup is charged). Both were measured
//! on the real runtime in a cgroup on the development machine; the method and the figures are
//! in `reference/go/MEASUREMENTS.md`.

use crate::release::Release;

/// Memory outside the heap, as a function of the heap's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footprint {
    /// Mapped and ready outside the heap at start (`Sys - HeapSys`).
    pub base_mapped: u64,
    /// Charged to the cgroup at start beyond the heap (anonymous memory and page tables).
    pub base_resident: u64,
    /// Metadata per MiB of heap address space (`HeapSys`), mapped and resident, in bytes.
    pub per_heap_mib_mapped: u64,
    pub per_heap_mib_resident: u64,
}

const MIB: u64 = 1 << 20;

impl Footprint {
    /// The footprint of `release`.
    pub fn of(release: Release) -> Footprint {
        let _ = release;
        Footprint {
            base_mapped: 4 * MIB,
            base_resident: 1536 << 10,
            per_heap_mib_mapped: 16 << 10,
            per_heap_mib_resident: 8 << 10,
        }
    }

    /// Mapped-and-ready bytes outside a heap of `heap_mapped` bytes.
    pub fn mapped(&self, heap_mapped: u64) -> u64 {
        self.base_mapped + self.per_heap(heap_mapped, self.per_heap_mib_mapped)
    }

    /// Resident bytes outside a heap of `heap_mapped` bytes.
    pub fn resident(&self, heap_mapped: u64) -> u64 {
        self.base_resident + self.per_heap(heap_mapped, self.per_heap_mib_resident)
    }

    fn per_heap(&self, heap_mapped: u64, per_mib: u64) -> u64 {
        (u128::from(heap_mapped) * u128::from(per_mib) / u128::from(MIB)) as u64
    }
}
