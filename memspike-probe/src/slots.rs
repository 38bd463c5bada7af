//! The names of the step slots the observer counts page faults in ([`SlotNames`]), and how
//! counts per slot become counts per name.
//!
//! The kernel side counts faults per bounded slot number ([`memspike_common::steps`]); the
//! caller (who knows the scenario) names the slots: slot 0 ([`STARTUP`]) is whatever it names
//! it, normally `startup`, and the following names are slots 1, 2, … Every slot from
//! [`OTHER`] on shares one counter, named [`OTHER_NAME`].

use std::collections::BTreeMap;
use std::sync::Arc;

use memspike_common::steps::{OTHER, SLOTS, STARTUP};
use thiserror::Error;

/// The name of the shared slot [`OTHER`].
pub use memspike_model::experiment::OTHER as OTHER_NAME;

/// A list of slot names [`SlotNames::new`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SlotNamesError {
    #[error("no step names: slot {STARTUP} (start-up) needs one, normally \"startup\"")]
    Empty,
    #[error("step {index} has an empty name: give every step a name")]
    EmptyName { index: usize },
    #[error(
        "step {index} is named \"{OTHER_NAME}\", the name of the slot shared by the steps beyond \
         the first {OTHER}: rename it"
    )]
    Reserved { index: usize },
    #[error("steps {first} and {second} are both named {name:?}: give each step its own name")]
    Duplicate {
        name: String,
        first: usize,
        second: usize,
    },
}

/// The names of slots `0..n` (`n` ≤ [`OTHER`]) plus [`OTHER_NAME`] for [`OTHER`]. Cheap to
/// clone (one shared allocation).
///
/// Names must be unique (the caller dedupes), non-empty and not [`OTHER_NAME`], in the whole
/// list: [`SlotNames::new`] refuses anything else with an error rather than let two slots
/// share a key. A list longer than [`OTHER`] is accepted: names from index [`OTHER`] on are
/// folded into [`OTHER_NAME`] (their steps share that counter, as the kernel side counts
/// them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotNames(Arc<[String]>);

impl SlotNames {
    /// Slot `i` is named `names[i]`; see the type's documentation for the rules.
    pub fn new(names: Vec<String>) -> Result<SlotNames, SlotNamesError> {
        if names.is_empty() {
            return Err(SlotNamesError::Empty);
        }
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (index, name) in names.iter().enumerate() {
            if name.is_empty() {
                return Err(SlotNamesError::EmptyName { index });
            }
            if name == OTHER_NAME {
                return Err(SlotNamesError::Reserved { index });
            }
            if let Some(first) = seen.insert(name, index) {
                return Err(SlotNamesError::Duplicate {
                    name: name.clone(),
                    first,
                    second: index,
                });
            }
        }
        let mut names = names;
        names.truncate(OTHER as usize);
        Ok(SlotNames(names.into()))
    }

    /// The slot `slot`'s faults are counted in: itself when it has a name, else [`OTHER`]
    /// (every slot from [`OTHER`] on, and any named slot beyond the list).
    pub fn slot(&self, slot: u32) -> u32 {
        if (slot as usize) < self.0.len() {
            slot
        } else {
            OTHER
        }
    }

    /// The name of the counter `slot` is counted in.
    pub fn name(&self, slot: u32) -> &str {
        self.0
            .get(self.slot(slot) as usize)
            .map_or(OTHER_NAME, String::as_str)
    }

    /// Counts per slot keyed by name: every named slot (0 when it counted nothing), and
    /// [`OTHER_NAME`] only when the slots without a name counted something.
    pub fn per_name(&self, counts: &[u64; SLOTS]) -> BTreeMap<String, u64> {
        let (named, unnamed) = counts.split_at(self.0.len());
        let mut map: BTreeMap<String, u64> =
            self.0.iter().cloned().zip(named.iter().copied()).collect();
        let other = unnamed.iter().fold(0u64, |a, b| a.saturating_add(*b));
        if other > 0 {
            map.insert(OTHER_NAME.to_owned(), other);
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("step{i}")).collect()
    }

    #[test]
    fn named_slots_are_their_own_and_the_rest_count_as_other() {
        let s = SlotNames::new(vec!["startup".into(), "spike".into(), "gc".into()]).unwrap();
        assert_eq!((s.slot(0), s.slot(2)), (0, 2));
        assert_eq!(
            (s.name(0), s.name(1), s.name(2)),
            ("startup", "spike", "gc")
        );
        for slot in [3, OTHER - 1, OTHER, SLOTS as u32, u32::MAX] {
            assert_eq!(s.slot(slot), OTHER, "{slot}");
            assert_eq!(s.name(slot), OTHER_NAME, "{slot}");
        }
    }

    #[test]
    fn per_name_has_every_named_slot_and_other_only_when_it_counted() {
        let s = SlotNames::new(vec!["startup".into(), "spike".into(), "gc".into()]).unwrap();
        let mut counts = [0u64; SLOTS];
        counts[1] = 7;
        let map = s.per_name(&counts);
        let expected: BTreeMap<String, u64> = [("gc", 0), ("spike", 7), ("startup", 0)]
            .map(|(k, v)| (k.to_owned(), v))
            .into();
        assert_eq!(map, expected, "no other when it counted nothing");
        // Unnamed slots (which the observer never writes to) and OTHER all count as other.
        counts[5] = 2;
        counts[OTHER as usize] = u64::MAX;
        let map = s.per_name(&counts);
        assert_eq!(map[OTHER_NAME], u64::MAX, "saturating");
        assert_eq!(map.len(), 4);
    }

    #[test]
    fn a_list_longer_than_the_slots_folds_its_tail_into_other() {
        let s = SlotNames::new(names(SLOTS + 10)).unwrap();
        assert_eq!(s.name(OTHER - 1), format!("step{}", OTHER - 1));
        assert_eq!(s.slot(OTHER - 1), OTHER - 1);
        assert_eq!(
            s.name(OTHER),
            OTHER_NAME,
            "step63 has no counter of its own"
        );
        assert_eq!(s.slot(SLOTS as u32 + 5), OTHER);
        let mut counts = [1u64; SLOTS];
        counts[OTHER as usize] = 40;
        let map = s.per_name(&counts);
        assert_eq!(map.len(), SLOTS, "63 names and other");
        assert_eq!(map[OTHER_NAME], 40);
        assert!(!map.contains_key(&format!("step{OTHER}")));
        // Exactly OTHER names: every counter but OTHER is named.
        let s = SlotNames::new(names(OTHER as usize)).unwrap();
        assert_eq!(s.name(OTHER - 1), format!("step{}", OTHER - 1));
        assert_eq!(s.per_name(&[0; SLOTS]).len(), OTHER as usize);
    }

    #[test]
    fn bad_lists_are_refused_with_what_to_change() {
        assert_eq!(SlotNames::new(vec![]), Err(SlotNamesError::Empty));
        let dup = SlotNames::new(vec!["startup".into(), "spike".into(), "spike".into()]);
        assert_eq!(
            dup,
            Err(SlotNamesError::Duplicate {
                name: "spike".into(),
                first: 1,
                second: 2
            })
        );
        assert_eq!(
            dup.unwrap_err().to_string(),
            "steps 1 and 2 are both named \"spike\": give each step its own name"
        );
        assert_eq!(
            SlotNames::new(vec!["startup".into(), OTHER_NAME.into()]),
            Err(SlotNamesError::Reserved { index: 1 })
        );
        assert_eq!(
            SlotNames::new(vec!["startup".into(), String::new()]),
            Err(SlotNamesError::EmptyName { index: 1 })
        );
        // The rules hold for the folded tail too: the caller's list is one list.
        let mut long = names(SLOTS + 2);
        long[SLOTS + 1] = "step1".into();
        assert!(matches!(
            SlotNames::new(long),
            Err(SlotNamesError::Duplicate { first: 1, .. })
        ));
    }

    #[test]
    fn clones_share_the_names() {
        let s = SlotNames::new(names(3)).unwrap();
        let t = s.clone();
        assert!(Arc::ptr_eq(&s.0, &t.0));
    }

    fn slots(names: &[&str]) -> SlotNames {
        SlotNames::new(names.iter().map(|n| (*n).to_owned()).collect()).unwrap()
    }

    #[test]
    fn counts_become_named_slots_and_a_saturating_total() {
        let names = slots(&["startup", "spike", "remainder"]);
        let mut counts = [0u64; SLOTS];
        counts[1] = 7;
        counts[2] = u64::MAX;
        let f = crate::PageFaults::new(names.per_name(&counts), "memory.stat pgfault");
        assert_eq!(f.per_phase.len(), 3, "{f:?}");
        assert_eq!(
            (f.per_phase["startup"], f.per_phase["spike"]),
            (0, 7),
            "every named slot is present"
        );
        assert_eq!(f.total, u64::MAX);
        assert_eq!(
            serde_json::to_value(&f).unwrap()["per_phase"]["spike"],
            7,
            "the JSON key stays per_phase"
        );
        counts[OTHER as usize] = 3;
        let f = crate::PageFaults::new(names.per_name(&counts), "s");
        assert_eq!(f.per_phase["other"], 3);
    }
}
