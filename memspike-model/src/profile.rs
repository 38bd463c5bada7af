//! A program's runtime profile: what the simulation takes from a real Go program instead of the
//! reference program's (`reference/go`) measurements. `memspike exec` records one in its report
//! (the report crate derives it from the run's facts); `--calibrate PATH` reads it back.
//!
//! What it changes in the model:
//! - the **memory outside the heap**: the release's own curve ([`Footprint::of`]: a base, and
//!   metadata that grows with the heap in steps per arena), shifted by what this program held
//!   beyond the reference's at the heap it was measured at. One measurement at one limit thus
//!   carries to others the way the runtime really grows, not along a line through one point;
//! - the **roots** the goal counts (Go 1.18+): the program's scannable stacks and globals;
//! - the **release** (from the binary's build information), the **allocation rate** and
//!   **GOMAXPROCS**, where the user gives none.

use serde::{Deserialize, Serialize};

use crate::{footprint::Footprint, release::Release};

/// A Go program's runtime profile, measured by one `memspike exec`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Profile {
    /// The command it was measured from.
    pub command: Vec<String>,
    /// The Go version its build information names (`go1.21.13`).
    pub go_version: String,
    /// The release whose rules the model applies to it: its minor version, or the nearest
    /// memspike models.
    pub release: Release,
    /// The group's charge beyond the heap's resident pages (in older reports, beyond the
    /// heap in use), at `at_heap_bytes` of heap in use: the smallest over its traced cycles
    /// after the first (the first where no other was read), each read as the runtime printed
    /// the cycle's end. The reference program reads its own
    /// curve so within about half a MiB whatever the size of the pieces it allocates.
    pub outside_heap_bytes: u64,
    pub at_heap_bytes: u64,
    /// How much higher, against the reference's curve at each one's heap, the charge beyond
    /// the heap read at its other cycles: the calibration's own uncertainty (a runtime not yet
    /// grown to its size at its first cycles, threads started later), which the prediction
    /// draws over ([`crate::predict`]); absent in older reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outside_heap_range_bytes: Option<u64>,
    /// The process's anonymous memory beyond its heap's resident pages at that cycle: the
    /// runtime's own memory outside the heap, without the kernel's share of the charge; absent
    /// in older reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outside_anonymous_bytes: Option<u64>,
    /// The size of the runtime's own mappings outside the heap, touched or not (what a
    /// memory limit counts: [`crate::trace::go::Resident::runtime_mapped_bytes`]), at a
    /// cycle after the first, and the arenas the heap reached into then; absent in older
    /// reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outside_mapped_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_heap_arenas: Option<u32>,
    /// The heap the program holds of its own, the collector's least scan of the heap over
    /// its cycles (the pacer's heap scan work): its objects that hold pointers, which the
    /// simulation holds live from the start. A lower bound: objects without pointers (byte
    /// slices, strings' bytes) are not scanned, nor are the experiment's slabs. Absent in
    /// older reports, and where the trace gave no scan work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own_heap_bytes: Option<u64>,
    /// Scannable stacks and globals at its last traced cycle (the goal counts them).
    pub stacks_bytes: u64,
    pub globals_bytes: u64,
    /// What its first traced cycle left live: at most the heap the program holds before its
    /// work (all of it, where the program collected before it began; recorded, not used).
    pub start_heap_bytes: u64,
    /// Bytes allocated per second between its first and last traced cycles, when it ran two.
    pub alloc_rate: Option<u64>,
    /// GOMAXPROCS, as its trace reports it.
    pub gomaxprocs: u32,
    /// The median wall time of its cycles' concurrent mark phase, ms, and the heap those
    /// cycles marked live per ms of it (the median), when the trace gave mark times: what the
    /// model's cycles, instantaneous for now, will take from it.
    #[serde(default)]
    pub mark_ms: Option<f64>,
    #[serde(default)]
    pub marked_bytes_per_ms: Option<u64>,
    /// The cycles it was derived from.
    pub cycles: u32,
}

impl Profile {
    /// The memory outside the heap under `release`'s rules: the release's curve shifted so
    /// that it meets this program's measurement.
    ///
    /// What the runtime maps outside the heap (what a memory limit counts) moves by the
    /// program's difference in the size of those mappings, where it was read
    /// (`outside_mapped_bytes`): memory mapped and not yet touched counts as much as the
    /// rest (go1.19 maps its heap bitmap whole). In older reports, by its difference in the
    /// runtime's own resident memory (`outside_anonymous_bytes`), or else in the group's
    /// charge, which holds the kernel's share too (page tables, kernel stacks: a larger
    /// binary, more threads), which no memory limit counts.
    pub fn footprint(&self, release: Release) -> Footprint {
        let reference = Footprint::of(release);
        let at = self.at_heap_bytes;
        let charged = self.outside_heap_bytes as i64 - reference.resident(at) as i64;
        let anonymous = || {
            self.outside_anonymous_bytes
                .map(|anon| anon as i64 - reference.anonymous(at) as i64)
        };
        let mapped = self
            .outside_mapped_bytes
            .zip(self.at_heap_arenas)
            .map(|(outside, arenas)| outside as i64 - reference.runtime_mapped(arenas) as i64)
            .or_else(anonymous)
            .unwrap_or(charged);
        reference.shifted_by(charged, mapped)
    }
}

/// Which program the simulation stands for, for people: the reference program, or the command
/// a profile was calibrated from.
pub fn describe(profile: Option<&Profile>) -> String {
    match profile {
        None => "the reference program (reference/go)".to_owned(),
        Some(p) => format!(
            "calibrated from `{}` ({}, {} cycles)",
            p.command.join(" "),
            p.go_version,
            p.cycles
        ),
    }
}

/// The release memspike models for a Go version string (`go1.21.13` → go1.21), the nearest
/// one for a version outside go1.19..go1.27; `None` for what is not a Go version.
pub fn release_of(go_version: &str) -> Option<Release> {
    let minor: u8 = go_version
        .strip_prefix("go1.")?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let clamped = minor.clamp(Release::OLDEST.minor(), Release::NEWEST.minor());
    Release::go1(clamped)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// A go1.21 program's profile read `outside` beyond a heap of `at_heap` bytes, nothing
    /// else read.
    pub(crate) fn profile(outside: u64, at_heap: u64) -> Profile {
        Profile {
            command: vec!["prog".into()],
            go_version: "go1.21.13".into(),
            release: Release::go1(21).unwrap(),
            outside_heap_bytes: outside,
            at_heap_bytes: at_heap,
            outside_anonymous_bytes: None,
            outside_heap_range_bytes: None,
            outside_mapped_bytes: None,
            at_heap_arenas: None,
            own_heap_bytes: None,
            stacks_bytes: 0,
            globals_bytes: 0,
            start_heap_bytes: 0,
            alloc_rate: None,
            gomaxprocs: 2,
            mark_ms: None,
            marked_bytes_per_ms: None,
            cycles: 3,
        }
    }

    #[test]
    fn go_versions_name_the_release_memspike_models() {
        assert_eq!(release_of("go1.21.13"), Release::go1(21));
        assert_eq!(release_of("go1.19"), Release::go1(19));
        assert_eq!(release_of("go1.27rc1"), Release::go1(27));
        assert_eq!(release_of("go1.17.2"), Some(Release::OLDEST));
        assert_eq!(release_of("go1.30.0"), Some(Release::NEWEST));
        assert_eq!(release_of("devel +abc"), None);
        assert_eq!(release_of("go2.0"), None);
    }

    /// The calibrated footprint meets the measurement where it was made and keeps the
    /// release's growth elsewhere: the same steps, shifted.
    #[test]
    fn the_footprint_is_the_releases_shifted_to_the_measurement() {
        let r = Release::go1(21).unwrap();
        let reference = Footprint::of(r);
        let at = 64 * MIB;
        let more = profile(reference.resident(at) + 3 * MIB, at).footprint(r);
        assert_eq!(more.resident(at), reference.resident(at) + 3 * MIB);
        let growth = |f: &Footprint| f.resident(200 * MIB) - f.resident(32 * MIB);
        assert_eq!(growth(&more), growth(&reference));
        assert_eq!(
            more.mapped(140 * MIB),
            reference.mapped(140 * MIB) + 3 * MIB
        );
        // A program lighter than the reference: shifted down, never below nothing, and both
        // curves by the same amount (regression: the mapped one took the whole shift).
        let less = profile(0, at).footprint(r);
        assert_eq!(less.resident(0), 0);
        assert!(less.resident(at) <= reference.resident(at));
        assert_eq!(
            reference.mapped(0) - less.mapped(0),
            reference.resident(0) - less.resident(0)
        );
        // Issue 18: where the program's anonymous memory outside its heap was read, what the
        // runtime maps moves by its difference there, not by the charge's: 3 MiB more charged,
        // of which 1 MiB is the runtime's own, the rest the kernel's (a memory limit counts
        // none of that).
        let anonymous = Profile {
            outside_anonymous_bytes: Some(reference.anonymous(at) + MIB),
            ..profile(reference.resident(at) + 3 * MIB, at)
        };
        let read = anonymous.footprint(r);
        assert_eq!(read.resident(at), reference.resident(at) + 3 * MIB);
        assert_eq!(read.mapped(140 * MIB), reference.mapped(140 * MIB) + MIB);
        // Where the size of the runtime's mappings outside the heap was read, that decides:
        // 2 MiB more than the reference's at the same heap (mapped, mostly untouched: the
        // anonymous reading saw 1 MiB of it).
        let sized = Profile {
            outside_mapped_bytes: Some(reference.runtime_mapped(2) + 2 * MIB),
            at_heap_arenas: Some(2),
            ..anonymous
        }
        .footprint(r);
        assert_eq!(sized.resident(at), reference.resident(at) + 3 * MIB);
        assert_eq!(
            sized.mapped(140 * MIB),
            reference.mapped(140 * MIB) + 2 * MIB
        );
    }
}
