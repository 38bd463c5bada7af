//! The story axis: how far a scenario has gone, the x of every chart of a scenario run. Half
//! of the axis is shared by the bytes the scenario allocates, half equally by its top-level
//! steps. A release or a `runtime.GC()` thus gets room beside a slab of 90 % of the limit, an
//! allocation is a ramp across its step rather than a jump at its start, and runs of one
//! scenario under different policies stand at the same x wherever they have allocated as much
//! in the same step, however long each took by the wall clock. Each top-level step is a
//! [`Band`]; a policy's collection after each release (`gc-after-release`) runs inside the
//! release's band, so that every policy of a comparison shares the bands.

use memspike_model::{
    event::Kind,
    experiment::Experiment,
    scenario::{Action, Step},
};

/// The axis runs from 0 to this: percent of the story.
pub const END: f64 = 100.0;

/// A top-level step's stretch of the axis.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Band {
    pub name: String,
    pub from: f64,
    pub to: f64,
    /// The names events in it carry: the step's, its repeated steps', a policy's collection
    /// after it.
    pub steps: Vec<String>,
}

/// Where each step of an experiment's scenario lies on the axis.
#[derive(Clone, Debug, PartialEq)]
pub struct StoryAxis {
    bands: Vec<Band>,
    /// Per band: the bytes the steps before it allocate, and its own.
    bytes: Vec<(u64, u64)>,
    /// Per top-level step as run (1-based [`memspike_model::event::Event::step`], less one):
    /// its band, and its slot of the band's slots (a release and the policy's collection after
    /// it share a band, half each).
    slots: Vec<Slot>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Slot {
    band: usize,
    index: usize,
    of: usize,
}

impl StoryAxis {
    /// The axis of `e`'s scenario, under its limit.
    pub fn of(e: &Experiment) -> StoryAxis {
        let steps = &e.scenario.steps;
        let bytes_of: Vec<u64> = steps.iter().map(|s| allocates(s, e.limit)).collect();
        let total: u64 = bytes_of.iter().sum();
        let n = steps.len().max(1) as f64;
        let mut bands = Vec::with_capacity(steps.len());
        let mut bytes = Vec::with_capacity(steps.len());
        let mut slots = Vec::with_capacity(steps.len());
        // The steps as run: a policy's collection after a release follows it.
        let effective = e.effective_scenario();
        let mut run = effective.steps.iter();
        let (mut x, mut before) = (0.0, 0u64);
        for (i, (step, &b)) in steps.iter().zip(&bytes_of).enumerate() {
            let share = if total == 0 {
                1.0 / n
            } else {
                0.5 * b as f64 / total as f64 + 0.5 / n
            };
            let to = if i + 1 == steps.len() {
                END
            } else {
                x + share * END
            };
            let collected =
                e.policy.gc_after_release && matches!(step.action, Action::Release { .. });
            let of = if collected { 2 } else { 1 };
            let mut names = Vec::new();
            for index in 0..of {
                if let Some(s) = run.next() {
                    named(s, &mut names);
                }
                slots.push(Slot { band: i, index, of });
            }
            bands.push(Band {
                name: step.name.clone(),
                from: x,
                to,
                steps: names,
            });
            bytes.push((before, b));
            x = to;
            before += b;
        }
        StoryAxis {
            bands,
            bytes,
            slots,
        }
    }

    pub fn bands(&self) -> &[Band] {
        &self.bands
    }

    /// Where an event stands: in top-level step `step` (from 1; 0 before the first), of
    /// `kind`, with `total_alloc` bytes allocated so far. In a band that allocates, by the
    /// bytes allocated in it; in one that does not, at its slot's start, middle or end (the
    /// step's begin, what happened during it, its end). Past the last step: the end.
    pub fn at(&self, step: u32, kind: &Kind, total_alloc: u64) -> f64 {
        if step == 0 || matches!(kind, Kind::Ready { .. }) {
            return 0.0;
        }
        let Some(slot) = self.slots.get(step as usize - 1) else {
            return END;
        };
        if matches!(kind, Kind::Done) {
            return END;
        }
        let phase = match kind {
            Kind::Begin { .. } | Kind::Paused { .. } => 0.0,
            Kind::End { .. } => 1.0,
            _ => 0.5,
        };
        self.within(slot, phase, total_alloc)
    }

    /// Where a run killed in step `step` died: `room` bytes below the limit at its last event
    /// (`kind`, with `total_alloc` allocated), in a step that allocates, as far into its
    /// remaining bytes as that room reaches; in one that does not, at its middle.
    pub fn killed_at(&self, step: u32, kind: &Kind, total_alloc: u64, room: u64) -> f64 {
        let last = self.at(step, kind, total_alloc);
        let Some(slot) = step.checked_sub(1).and_then(|i| self.slots.get(i as usize)) else {
            return last;
        };
        let (before, bytes) = self.bytes[slot.band];
        if bytes == 0 {
            return self.within(slot, 0.5, total_alloc).max(last);
        }
        let left = (before + bytes).saturating_sub(total_alloc);
        if left == 0 {
            return last;
        }
        let reach = (room.min(left)) as f64 / left as f64;
        let band = &self.bands[slot.band];
        last + (band.to - last) * reach
    }

    fn within(&self, slot: &Slot, phase: f64, total_alloc: u64) -> f64 {
        let band = &self.bands[slot.band];
        let (before, bytes) = self.bytes[slot.band];
        let share = if bytes > 0 {
            (total_alloc.saturating_sub(before) as f64 / bytes as f64).min(1.0)
        } else {
            (slot.index as f64 + phase) / slot.of as f64
        };
        band.from + (band.to - band.from) * share
    }
}

/// The names of `step` and of the steps it repeats, each once.
fn named(step: &Step, out: &mut Vec<String>) {
    if !out.contains(&step.name) {
        out.push(step.name.clone());
    }
    if let Action::Repeat { steps, .. } = &step.action {
        for s in steps {
            named(s, out);
        }
    }
}

/// The bytes a top-level step allocates under a limit of `limit` bytes, as the scenario says
/// (a `fill` counts its whole size: the heap it fills on top of is not known before the run).
fn allocates(step: &Step, limit: u64) -> u64 {
    match &step.action {
        Action::Alloc { size, .. } => size.resolve(limit),
        Action::Repeat { count, steps } => steps
            .iter()
            .map(|s| allocates(s, limit))
            .sum::<u64>()
            .saturating_mul(u64::from(*count)),
        Action::Release { .. } | Action::Gc | Action::FreeOsMemory | Action::Wait(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memspike_model::{
        policy_set,
        scenario::{ActionKind, builtin},
    };

    const MIB: u64 = 1 << 20;

    fn begin() -> Kind {
        Kind::Begin {
            phase: String::new(),
            action: ActionKind::Alloc,
            bytes: 0,
        }
    }

    fn end() -> Kind {
        Kind::End {
            phase: String::new(),
            action: ActionKind::Alloc,
            bytes: 0,
            reused: 0,
            grown: 0,
        }
    }

    /// The seed at 32 MiB: the spike, the release and the remainder each get room, the
    /// release a sixth of the axis though it allocates nothing; an allocation is a ramp across
    /// its band.
    #[test]
    fn every_step_gets_room_and_an_allocation_is_a_ramp() {
        let axis = StoryAxis::of(&Experiment::seed(32 * MIB));
        let names: Vec<_> = axis.bands().iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["spike", "release", "remainder"]);
        let widths: Vec<f64> = axis.bands().iter().map(|b| b.to - b.from).collect();
        assert!(widths.iter().all(|w| *w >= END / 6.0 - 1e-9), "{widths:?}");
        assert!((widths.iter().sum::<f64>() - END).abs() < 1e-9);
        let spike = &axis.bands()[0];
        assert_eq!(axis.at(1, &begin(), 0), spike.from);
        let half = axis.at(1, &Kind::Done, 0);
        assert_eq!(half, END);
        let (_, spike_bytes) = axis.bytes[0];
        let mid = axis.at(1, &end(), spike_bytes / 2);
        assert!((mid - (spike.from + spike.to) / 2.0).abs() < 0.01, "{mid}");
        assert_eq!(axis.at(1, &end(), spike_bytes), spike.to);
        // The release: begin, end at its band's edges.
        let release = &axis.bands()[1];
        assert_eq!(axis.at(2, &begin(), spike_bytes), release.from);
        assert_eq!(axis.at(2, &end(), spike_bytes), release.to);
    }

    /// A policy's collection after the release runs in the release's band: the second half.
    /// The bands are the scenario's, whatever the policy.
    #[test]
    fn a_collection_after_the_release_shares_its_band() {
        let plain = Experiment::seed(32 * MIB);
        let mut collected = plain.clone();
        collected.policy = policy_set::by_name("gc-after-release").unwrap();
        let (a, b) = (StoryAxis::of(&plain), StoryAxis::of(&collected));
        let edges = |axis: &StoryAxis| -> Vec<(f64, f64)> {
            axis.bands().iter().map(|b| (b.from, b.to)).collect()
        };
        assert_eq!(edges(&a), edges(&b));
        assert_eq!(b.bands()[1].steps, ["release", "gc"]);
        let release = &b.bands()[1];
        let mid = (release.from + release.to) / 2.0;
        assert_eq!(b.at(2, &end(), 0), mid);
        assert_eq!(b.at(3, &begin(), 0), mid);
        assert_eq!(b.at(3, &end(), 0), release.to);
        // The remainder is the fourth step as run, the third band.
        assert_eq!(b.at(4, &begin(), 0), a.at(3, &begin(), 0));
    }

    /// Killed in the remainder with room for a third of it: a third of the way across.
    #[test]
    fn a_kill_lies_as_far_into_its_step_as_the_room_reached() {
        let axis = StoryAxis::of(&Experiment::seed(32 * MIB));
        let (before, bytes) = axis.bytes[2];
        let remainder = &axis.bands()[2];
        let at = axis.killed_at(3, &begin(), before, bytes / 3);
        let third = remainder.from + (remainder.to - remainder.from) / 3.0;
        assert!((at - third).abs() < 0.01, "{at} {third}");
        assert_eq!(axis.killed_at(3, &begin(), before, 0), remainder.from);
        assert_eq!(axis.killed_at(3, &begin(), before, u64::MAX), remainder.to);
    }

    /// A scenario of repeated steps is one band per top-level step, its bytes counted over
    /// every repetition.
    #[test]
    fn a_repeat_is_one_band() {
        let mut e = Experiment::seed(64 * MIB);
        e.scenario = builtin::by_name("churn").unwrap();
        let axis = StoryAxis::of(&e);
        assert_eq!(axis.bands().len(), e.scenario.steps.len());
        assert!(
            axis.bytes.iter().any(|(_, b)| *b > 64 * MIB),
            "{:?}",
            axis.bytes
        );
    }
}
