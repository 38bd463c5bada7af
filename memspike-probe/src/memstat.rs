//! Page faults per step slot from the group's `memory.stat` (`pgfault`, `pgmajfault`; the same
//! keys on v1 and v2): no eBPF needed. The supervisor changes the step while the worker waits
//! for its acknowledgement, so a reading taken at each change splits the counts exactly by step.
//! Slots are clamped as the eBPF program clamps them ([`steps::clamp`]).
//!
//! The kernel counts these per memory cgroup for every fault on a memory owned by the group's
//! tasks, user and kernel mode alike (a `read()` into a fresh buffer faults in kernel mode), so
//! they can run a little above the eBPF `page_fault_user` count.

use std::path::{Path, PathBuf};

use memspike_common::steps::{self, SLOTS};

use memspike_cgroup::counters::parse_keyed;

/// `pgfault` and `pgmajfault` at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    pub all: u64,
    pub major: u64,
}

/// Reads `pgfault` and `pgmajfault` from the text of a `memory.stat` file.
pub fn parse(text: &str) -> Result<Faults, String> {
    let keyed = parse_keyed(text);
    let get = |key: &str| keyed.get(key).copied().ok_or(format!("no {key} line"));
    Ok(Faults {
        all: get("pgfault")?,
        major: get("pgmajfault")?,
    })
}

/// Splits the group's fault counters by the step slot they were counted in.
#[derive(Debug)]
pub struct FaultSplit {
    file: PathBuf,
    last: Faults,
    /// Always below [`SLOTS`] (clamped).
    current: u32,
    all: [u64; SLOTS],
    major: [u64; SLOTS],
}

impl FaultSplit {
    /// Starts counting from the group's counters now, in the start-up slot.
    pub fn start(group_dir: &Path) -> Result<FaultSplit, String> {
        let file = group_dir.join("memory.stat");
        let last = read(&file)?;
        Ok(FaultSplit {
            file,
            last,
            current: steps::STARTUP,
            all: [0; SLOTS],
            major: [0; SLOTS],
        })
    }

    /// Counts what happened since the last reading under the slot that was current, and
    /// starts `slot` (clamped: from [`steps::OTHER`] on, that one). No reading when the slot
    /// does not change.
    pub fn set_step(&mut self, slot: u32) -> Result<(), String> {
        let slot = steps::clamp(slot);
        if slot == self.current {
            return Ok(());
        }
        let result = self.update();
        self.current = slot;
        result
    }

    /// Reads the counters now and returns (all faults, major faults) per slot.
    pub fn read(&mut self) -> Result<([u64; SLOTS], [u64; SLOTS]), String> {
        self.update()?;
        Ok((self.all, self.major))
    }

    fn update(&mut self) -> Result<(), String> {
        let now = read(&self.file)?;
        let i = self.current as usize;
        self.all[i] = self.all[i].saturating_add(now.all.saturating_sub(self.last.all));
        self.major[i] = self.major[i].saturating_add(now.major.saturating_sub(self.last.major));
        self.last = now;
        Ok(())
    }
}

fn read(file: &Path) -> Result<Faults, String> {
    let text =
        std::fs::read_to_string(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// V1: an excerpt of a real file on this machine (kernel 6.18). V2: the same keys, as
    /// Documentation/admin-guide/cgroup-v2.rst lists them (this machine has no v2 memory).
    const V1: &str = "cache 0\nrss 33349632\nrss_huge 0\npgpgin 8142\npgpgout 0\npgfault 8299\n\
                      pgmajfault 0\ninactive_anon 33210368\ntotal_pgfault 8299\n\
                      total_pgmajfault 0\n";
    const V2: &str = "anon 33349632\nfile 0\npgscan 0\npgsteal 0\npgfault 8301\npgmajfault 2\n\
                      thp_fault_alloc 0\n";

    #[test]
    fn parses_v1_and_v2() {
        assert_eq!(
            parse(V1),
            Ok(Faults {
                all: 8299,
                major: 0
            })
        );
        assert_eq!(
            parse(V2),
            Ok(Faults {
                all: 8301,
                major: 2
            })
        );
        assert!(parse("cache 0\n").unwrap_err().contains("pgfault"));
    }

    fn write(dir: &Path, all: u64, major: u64) {
        std::fs::write(
            dir.join("memory.stat"),
            format!("cache 0\npgfault {all}\npgmajfault {major}\n"),
        )
        .unwrap();
    }

    #[test]
    fn faults_land_in_the_slot_that_was_current() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 100, 1);
        let mut split = FaultSplit::start(dir.path()).unwrap();
        write(dir.path(), 250, 1); // 150 at start-up
        split.set_step(1).unwrap();
        write(dir.path(), 7_650, 3); // 7,400 in slot 1, 2 major
        split.set_step(1).unwrap(); // no change: no reading
        write(dir.path(), 7_700, 3);
        split.set_step(4).unwrap(); // 7,450 in slot 1
        write(dir.path(), 8_400, 3);
        let (all, major) = split.read().unwrap();
        assert_eq!(all[steps::STARTUP as usize], 150);
        assert_eq!(all[1], 7_450);
        assert_eq!(all[4], 700);
        assert_eq!(all.iter().sum::<u64>(), 8_300);
        assert_eq!(major[1], 2);
        assert_eq!(major.iter().sum::<u64>(), 2);
    }

    /// Slots from OTHER on share OTHER's counts, as in the eBPF program; moving between two
    /// of them is no change.
    #[test]
    fn slots_beyond_the_counters_fall_into_other() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 0, 0);
        let mut split = FaultSplit::start(dir.path()).unwrap();
        split.set_step(SLOTS as u32).unwrap();
        write(dir.path(), 30, 0);
        split.set_step(u32::MAX).unwrap();
        write(dir.path(), 50, 0);
        split.set_step(steps::OTHER - 1).unwrap();
        write(dir.path(), 55, 0);
        let (all, _) = split.read().unwrap();
        assert_eq!(all[steps::OTHER as usize], 50);
        assert_eq!(all[steps::OTHER as usize - 1], 5);
        assert_eq!(all.iter().sum::<u64>(), 55);
    }

    #[test]
    fn a_vanished_file_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 1, 0);
        let mut split = FaultSplit::start(dir.path()).unwrap();
        std::fs::remove_file(dir.path().join("memory.stat")).unwrap();
        let e = split.read().unwrap_err();
        assert!(e.contains("memory.stat"), "{e}");
        assert!(FaultSplit::start(&dir.path().join("nope")).is_err());
    }
}
