//! The Go runtime's own memory: what a Go program holds outside its heap. A fixed base (the
//! runtime's structures, stacks, the binary's data) plus metadata that grows with the heap
//! (mostly GCSys, the heap's bitmap, up to go1.21; almost nothing from go1.22 on).
//!
//! Two figures each, both measured on the real runtime in a cgroup on the development machine
//! with the reference program (`reference/go/MEASUREMENTS.md`, section a; linear fits between
//! heaps of 32 and 230 MiB of pointer-free 1 MiB slabs):
//! - **mapped**, `Sys - HeapSys`: what the soft memory limit counts outside the heap;
//! - **resident**, the cgroup's charge beyond the heap's pages: what the kernel counts.
//!
//! The worker makes the resident part real (it writes that much memory), less what the worker
//! process itself already costs, and less its own page tables for the heap, which the kernel
//! charges for the worker exactly as it does for Go ([`PAGE_TABLES_PER_HEAP_MIB`]).

use crate::release::Release;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// Page tables for a MiB of heap in 4 KiB pages (8 bytes per page): charged to the cgroup for
/// the worker's real heap as for Go's, so not made resident again.
pub const PAGE_TABLES_PER_HEAP_MIB: u64 = 2 * KIB;

/// Memory outside the heap, as a function of the heap's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footprint {
    /// `Sys - HeapSys` at start, and its growth per MiB of heap (`HeapSys`).
    pub base_mapped: u64,
    pub per_heap_mib_mapped: u64,
    /// The cgroup's charge beyond the heap at start (intercept), and its growth per MiB of
    /// heap, page tables included.
    pub base_resident: u64,
    pub per_heap_mib_resident: u64,
}

impl Footprint {
    /// The footprint of `release`. Resident: measured on go1.19, go1.21 and go1.27
    /// (`reference/go/MEASUREMENTS.md`, section a); go1.20 takes go1.21's, go1.22+ go1.27's.
    /// Mapped: fitted to every run of `cargo xtask fidelity` (go1.19.8, 1.21.13, 1.23.9,
    /// 1.25.5, 1.27.3: `Sys - HeapSys` at start and after the spike, 62 to 148 points each);
    /// go1.20 has go1.19's base (the scavenge index mapped whole, fixed in 1.21) and go1.21's
    /// bitmap; go1.24 has go1.23's (measured at start: no profiling table), go1.26 go1.25's (it
    /// maps the 1.4 MB profiling table from the start, as go1.25 and go1.27 do).
    pub fn of(release: Release) -> Footprint {
        let (base_mapped, per_heap_mib_mapped) = match release.minor() {
            ..=19 => (7_692 * KIB, 42_500),
            20 => (7_692 * KIB, 22_400),
            21 => (3_012 * KIB, 22_400),
            22..=24 => (2_522 * KIB, 1_600),
            25 | 26 => (3_912 * KIB, 1_700),
            _ => (4_036 * KIB, 1_600),
        };
        let (base_resident, per_heap_mib_resident) = match release.minor() {
            ..=19 => (MIB, 34_500),
            20 | 21 => (MIB, 19_500),
            _ => (1_300 * KIB, 2_700),
        };
        Footprint {
            base_mapped,
            per_heap_mib_mapped,
            base_resident,
            per_heap_mib_resident,
        }
    }

    /// Mapped-and-ready bytes outside a heap of `heap_mapped` bytes.
    pub fn mapped(&self, heap_mapped: u64) -> u64 {
        self.base_mapped + per_heap(heap_mapped, self.per_heap_mib_mapped)
    }

    /// Resident bytes outside a heap of `heap_mapped` bytes, as charged to the cgroup.
    pub fn resident(&self, heap_mapped: u64) -> u64 {
        self.base_resident + per_heap(heap_mapped, self.per_heap_mib_resident)
    }

    /// What the worker must make resident to stand for [`Footprint::resident`]: less the page
    /// tables its own heap already costs.
    pub fn to_populate(&self, heap_mapped: u64) -> u64 {
        let per_mib = self
            .per_heap_mib_resident
            .saturating_sub(PAGE_TABLES_PER_HEAP_MIB);
        self.base_resident + per_heap(heap_mapped, per_mib)
    }
}

fn per_heap(heap_mapped: u64, per_mib: u64) -> u64 {
    (u128::from(heap_mapped) * u128::from(per_mib) / u128::from(MIB)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The measured charge beyond the heap at 32.4, 127.8 and 230.4 MiB of heap
    /// (reference/go/MEASUREMENTS.md, "After the spike", cg - heapRes) is within the cgroup's
    /// 256 KiB accounting step of the model's.
    #[test]
    fn the_model_meets_the_measurements() {
        let rows: [(u8, [u64; 3]); 3] = [
            (19, [2_162, 5_357, 8_994]),
            (21, [1_627, 3_544, 5_483]),
            (27, [1_402, 1_598, 1_936]),
        ];
        for (minor, measured_kib) in rows {
            let f = Footprint::of(Release::go1(minor).unwrap());
            for (heap_kib, kib) in [
                32_400 * KIB / 1000,
                127_800 * KIB / 1000,
                230_400 * KIB / 1000,
            ]
            .into_iter()
            .zip(measured_kib)
            {
                let model = f.resident(heap_kib * 1024) / KIB;
                assert!(
                    model.abs_diff(kib) <= 256,
                    "go1.{minor} at {heap_kib} KiB: model {model} KiB, measured {kib} KiB"
                );
            }
        }
        // The heap's page tables are the worker's own, not populated again.
        let f = Footprint::of(Release::NEWEST);
        assert_eq!(
            f.resident(256 * MIB) - f.to_populate(256 * MIB),
            256 * PAGE_TABLES_PER_HEAP_MIB
        );
    }
}
