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

/// The reference's `HeapInuse - HeapAlloc` once its slab is allocated (32 MiB, spike 0.5, 8
/// runs each with GOGC 100 and off): 222 to 378 KiB on go1.19.8, 1.21.13 and 1.27.3, a median
/// near 300. The model's heap holds the experiment's slabs alone, with no room in their spans.
const SPAN_SLACK: u64 = 300 * KIB;

/// Memory outside the heap, as a function of the heap's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footprint {
    /// `Sys - HeapSys` measured at these heap sizes (`HeapSys` in MiB, KiB outside the heap),
    /// ascending, interpolated between them: it grows in steps as the runtime maps metadata
    /// for each new arena of the heap.
    pub mapped_points: &'static [(u64, u64)],
    /// Its growth per MiB of heap beyond the last point, in bytes.
    pub per_heap_mib_mapped: u64,
    /// The cgroup's charge beyond the heap at start (intercept), and its growth per MiB of
    /// heap, page tables included.
    pub base_resident: u64,
    pub per_heap_mib_resident: u64,
    /// Added to every mapped figure: a calibrated program's difference from the reference's
    /// ([`Footprint::shifted`]); 0 for the reference.
    pub mapped_offset: i64,
    /// The process's anonymous memory beyond its heap's resident pages (`RssAnon - heapRes`),
    /// at start (intercept) and per MiB of heap: the runtime's own resident memory, without
    /// the kernel's share of the charge (page tables, kernel stacks). What a calibrated
    /// program's mapped difference is read against ([`crate::profile::Profile::footprint`]).
    pub base_anonymous: u64,
    pub per_heap_mib_anonymous: u64,
    /// Room in the spans of the program's small objects ([`crate::pacer::Totals::span_slack`]).
    pub span_slack: u64,
    /// The size of the reference's own mappings outside the heap with one arena, and what
    /// each further arena adds ([`Footprint::runtime_mapped`]).
    pub runtime_mapped_line: (u64, u64),
}

/// `Sys - HeapSys` of the reference program, median per heap size over every run of `cargo
/// xtask fidelity` (start and after the spike; 10 to 560 runs per point).
const MAPPED_GO1_19: &[(u64, u64)] = &[
    (4, 8_271),
    (12, 8_847),
    (64, 8_879),
    (84, 13_077),
    (132, 13_077),
    (140, 15_192),
    (184, 15_192),
    (212, 17_307),
    (248, 17_307),
];
/// go1.20: go1.19's base (the scavenge index mapped whole) with go1.21's steps (half the bitmap).
const MAPPED_GO1_20: &[(u64, u64)] = &[
    (4, 8_271),
    (12, 8_879),
    (64, 8_879),
    (84, 11_061),
    (132, 11_061),
    (140, 12_168),
    (184, 12_168),
    (212, 13_275),
    (248, 13_275),
];
const MAPPED_GO1_21: &[(u64, u64)] = &[
    (4, 3_143),
    (12, 3_751),
    (64, 3_751),
    (84, 5_933),
    (132, 5_933),
    (140, 7_040),
    (184, 7_040),
    (212, 8_147),
    (248, 8_147),
];
const MAPPED_GO1_23: &[(u64, u64)] = &[
    (4, 2_391),
    (12, 2_743),
    (64, 2_743),
    (84, 2_877),
    (132, 2_877),
    (140, 2_944),
    (184, 2_944),
    (212, 3_011),
    (248, 3_011),
];
const MAPPED_GO1_25: &[(u64, u64)] = &[
    (4, 3_542),
    (12, 4_150),
    (64, 4_150),
    (84, 4_286),
    (132, 4_286),
    (140, 4_354),
    (184, 4_354),
    (212, 4_422),
    (248, 4_422),
];
const MAPPED_GO1_27: &[(u64, u64)] = &[
    (4, 3_542),
    (12, 4_150),
    (64, 4_218),
    (84, 4_286),
    (132, 4_286),
    (140, 4_354),
    (184, 4_354),
    (212, 4_422),
    (248, 4_422),
];

impl Footprint {
    /// The footprint of `release`. Resident: measured on go1.19, go1.21 and go1.27
    /// (`reference/go/MEASUREMENTS.md`, section a); go1.20 takes go1.21's, go1.22+ go1.27's.
    /// Mapped: measured by `cargo xtask fidelity` on go1.19.8, 1.21.13, 1.23.9, 1.25.5 and
    /// 1.27.3; go1.20 has go1.19's base and go1.21's steps; go1.22 and go1.24 (measured at
    /// start: 2.4 MB, no profiling table) take go1.23's, go1.26 (3.6 MB at start, with the 1.4 MB
    /// profiling table mapped from the start, as in go1.25 and go1.27) go1.25's. Beyond the
    /// points the growth is a linear fit to them.
    pub fn of(release: Release) -> Footprint {
        let (mapped_points, per_heap_mib_mapped) = match release.minor() {
            ..=19 => (MAPPED_GO1_19, 42_500),
            20 => (MAPPED_GO1_20, 22_400),
            21 => (MAPPED_GO1_21, 22_400),
            22..=24 => (MAPPED_GO1_23, 1_600),
            25 | 26 => (MAPPED_GO1_25, 1_700),
            _ => (MAPPED_GO1_27, 1_600),
        };
        let (base_resident, per_heap_mib_resident) = match release.minor() {
            ..=19 => (MIB, 34_500),
            20 | 21 => (MIB, 19_500),
            _ => (1_300 * KIB, 2_700),
        };
        // A line through the three heaps of reference/go/MEASUREMENTS.md, section a
        // ("RssAnon - heapRes"), within 18 KiB of each.
        let (base_anonymous, per_heap_mib_anonymous) = match release.minor() {
            ..=19 => (583 * KIB, 33_569),
            20 | 21 => (479 * KIB, 17_730),
            _ => (727 * KIB, 1_216),
        };
        // The reference read by `memspike exec` at its cycles' ends (`-limit 48MiB, 128MiB and
        // 200MiB -spike 0.3 -chunk 64KiB`, 5 runs each; every cycle after the first, whose
        // metadata the runtime is still mapping): one figure per arena count, or 256 KiB more
        // (one more chunk of the runtime's persistent allocator) in some runs. go1.19's heap
        // metadata is 2,116 KiB an arena (the bitmap: 2 MiB), go1.21's 1,108 KiB.
        let runtime_mapped_line = match release.minor() {
            ..=19 => (8_688 * KIB, 2_116 * KIB),
            // go1.20 as its mapped curve: go1.19's base, go1.21's steps (not measured).
            20 => (8_688 * KIB, 1_108 * KIB),
            21 => (3_560 * KIB, 1_108 * KIB),
            22..=24 => (2_520 * KIB, 68 * KIB),
            // go1.25.5 read 3,932 KiB, go1.27.3 3,940.
            _ => (3_940 * KIB, 72 * KIB),
        };
        Footprint {
            mapped_points,
            per_heap_mib_mapped,
            base_resident,
            per_heap_mib_resident,
            mapped_offset: 0,
            base_anonymous,
            per_heap_mib_anonymous,
            runtime_mapped_line,
            span_slack: SPAN_SLACK,
        }
    }

    /// This footprint moved by `delta` bytes at every heap size, resident and mapped alike (a
    /// program that holds more, or less, outside its heap than the reference), never below
    /// nothing.
    pub fn shifted(self, delta: i64) -> Footprint {
        self.shifted_by(delta, delta)
    }

    /// This footprint with the charge beyond the heap moved by `resident` bytes and what the
    /// runtime maps outside it by `mapped`, each no lower than what takes the base to nothing.
    pub fn shifted_by(self, resident: i64, mapped: i64) -> Footprint {
        let floor = -(self.base_resident.min(i64::MAX as u64) as i64);
        Footprint {
            base_resident: self
                .base_resident
                .saturating_add_signed(resident.max(floor)),
            mapped_offset: self.mapped_offset + mapped.max(floor),
            ..self
        }
    }

    /// The process's anonymous memory beyond a heap of `heap_mapped` bytes (the reference's).
    pub fn anonymous(&self, heap_mapped: u64) -> u64 {
        self.base_anonymous + per_heap(heap_mapped, self.per_heap_mib_anonymous)
    }

    /// Mapped-and-ready bytes outside a heap of `heap_mapped` bytes.
    pub fn mapped(&self, heap_mapped: u64) -> u64 {
        self.reference_mapped(heap_mapped)
            .saturating_add_signed(self.mapped_offset)
    }

    /// The size of the reference's own mappings outside its heap when the heap reaches into
    /// `arenas` arenas, as [`crate::trace::go::Resident::runtime_mapped_bytes`] reads a
    /// program's: what a calibrated program's mapped difference is read against.
    pub fn runtime_mapped(&self, arenas: u32) -> u64 {
        let (base, per_arena) = self.runtime_mapped_line;
        base + per_arena * u64::from(arenas.saturating_sub(1))
    }

    /// [`Footprint::mapped`] before any shift.
    fn reference_mapped(&self, heap_mapped: u64) -> u64 {
        let points = self.mapped_points;
        let at = |i: usize| (points[i].0 * MIB, points[i].1 * KIB);
        let (first, last) = (at(0), at(points.len() - 1));
        if heap_mapped <= first.0 {
            return first.1;
        }
        if heap_mapped >= last.0 {
            return last.1 + per_heap(heap_mapped - last.0, self.per_heap_mib_mapped);
        }
        let i = points.partition_point(|p| p.0 * MIB <= heap_mapped);
        let ((x0, y0), (x1, y1)) = (at(i - 1), at(i));
        let share = u128::from(heap_mapped - x0);
        if y1 >= y0 {
            y0 + (u128::from(y1 - y0) * share / u128::from(x1 - x0)) as u64
        } else {
            y0 - (u128::from(y0 - y1) * share / u128::from(x1 - x0)) as u64
        }
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
        // Mapped: the measured points, interpolated, and the fitted slope beyond them.
        let f19 = Footprint::of(Release::go1(19).unwrap());
        assert_eq!(f19.mapped(0), 8_271 * KIB);
        assert_eq!(f19.mapped(64 * MIB), 8_879 * KIB);
        assert_eq!(f19.mapped(74 * MIB), (8_879 + 13_077) / 2 * KIB);
        assert_eq!(f19.mapped(100 * MIB), 13_077 * KIB);
        assert_eq!(f19.mapped(348 * MIB), 17_307 * KIB + 100 * 42_500);
        // The heap's page tables are the worker's own, not populated again.
        let f = Footprint::of(Release::NEWEST);
        assert_eq!(
            f.resident(256 * MIB) - f.to_populate(256 * MIB),
            256 * PAGE_TABLES_PER_HEAP_MIB
        );
    }
}
