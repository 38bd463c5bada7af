//! TEMP(issue 8): lead rewrites. The experiment's old fixed phases, moved out of
//! memspike-common (which now knows only step slots, see `memspike_common::steps`) so that the
//! call sites keep building until scenario steps replace them. Phase `p` is counted in step
//! slot `p as u32`, named by [`Phase::name`] ([`Phase::slot_names`]).

use crate::probe::{SlotNames, SlotNamesError};

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
    /// Every phase, in numeric order (index = discriminant = step slot).
    pub const ALL: [Phase; 7] = [
        Phase::Startup,
        Phase::Spike,
        Phase::Release,
        Phase::Gc,
        Phase::Remainder,
        Phase::Interactive,
        Phase::Done,
    ];

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

    /// The observer's step slot for this phase.
    pub const fn slot(self) -> u32 {
        self as u32
    }

    /// The observer's slot names: every phase's name at its slot.
    pub fn slot_names() -> Result<SlotNames, SlotNamesError> {
        SlotNames::new(Phase::ALL.map(|p| p.name().to_owned()).to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phase_names_its_own_slot() {
        let names = Phase::slot_names().unwrap();
        for (i, p) in Phase::ALL.iter().enumerate() {
            assert_eq!(p.slot() as usize, i);
            assert_eq!(names.name(p.slot()), p.name());
        }
        assert_eq!(Phase::Startup.slot(), memspike_common::steps::STARTUP);
    }
}
