//! Types shared by memspike's user space and its eBPF programs.
//!
//! Everything here is `no_std`, `#[repr(C)]` (or `#[repr(u32)]`) and free of pointers, so the
//! same bytes mean the same thing on both sides of a BPF map or ring buffer.
#![no_std]

/// The step of the experiment the worker is in. The supervisor publishes the current phase
/// (from the worker's telemetry) so that kernel-side counters can be split by phase.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// Process start-up, before the first simulated allocation.
    Startup = 0,
    /// The spike: allocating and writing the large slab.
    Spike = 1,
    /// Dropping the slab (it becomes garbage, not free memory).
    Release = 2,
    /// A collection the experiment asked for (`--gc`, `/gc`, `/reset`).
    Gc = 3,
    /// Allocating and writing the remainder after the spike.
    Remainder = 4,
    /// Interactive mode, between requests or serving one.
    Interactive = 5,
    /// The experiment has finished its script.
    Done = 6,
}

impl Phase {
    /// Every phase, in numeric order (index = discriminant).
    pub const ALL: [Phase; 7] = [
        Phase::Startup,
        Phase::Spike,
        Phase::Release,
        Phase::Gc,
        Phase::Remainder,
        Phase::Interactive,
        Phase::Done,
    ];
    /// Number of phases; the size of per-phase arrays and maps.
    pub const COUNT: usize = Self::ALL.len();

    /// The phase's stable, lower-case name (used in reports and JSON).
    pub const fn name(self) -> &'static str {
        match self {
            Phase::Startup => "startup",
            Phase::Spike => "spike",
            Phase::Release => "release",
            Phase::Gc => "gc",
            Phase::Remainder => "remainder",
            Phase::Interactive => "interactive",
            Phase::Done => "done",
        }
    }

    /// The phase with this discriminant, if any.
    pub const fn from_u32(v: u32) -> Option<Phase> {
        if (v as usize) < Self::COUNT {
            Some(Self::ALL[v as usize])
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discriminants_index_all() {
        for (i, p) in Phase::ALL.iter().enumerate() {
            assert_eq!(*p as usize, i);
            assert_eq!(Phase::from_u32(i as u32), Some(*p));
        }
        assert_eq!(Phase::from_u32(Phase::COUNT as u32), None);
    }
}
