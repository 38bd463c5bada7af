//! Page faults per phase from the group's `memory.stat` (`pgfault`, `pgmajfault`; the same keys
//! on v1 and v2): no eBPF needed. The supervisor changes the phase while the worker waits for
//! its acknowledgement, so a reading taken at each change splits the counts exactly by step.
//!
//! The kernel counts these per memory cgroup for every fault on a memory owned by the group's
//! tasks, user and kernel mode alike (a `read()` into a fresh buffer faults in kernel mode), so
//! they can run a little above the eBPF `page_fault_user` count.

use std::path::{Path, PathBuf};

use memspike_common::Phase;

use crate::cgroup::counters::parse_keyed;

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

/// Splits the group's fault counters by the phase they were counted in.
#[derive(Debug)]
pub struct FaultSplit {
    file: PathBuf,
    last: Faults,
    current: Phase,
    all: [u64; Phase::COUNT],
    major: [u64; Phase::COUNT],
}

impl FaultSplit {
    /// Starts counting from the group's counters now, in the start-up phase.
    pub fn start(group_dir: &Path) -> Result<FaultSplit, String> {
        let file = group_dir.join("memory.stat");
        let last = read(&file)?;
        Ok(FaultSplit {
            file,
            last,
            current: Phase::Startup,
            all: [0; Phase::COUNT],
            major: [0; Phase::COUNT],
        })
    }

    /// Counts what happened since the last reading under the phase that was current, and
    /// starts `phase`. No reading when the phase does not change.
    pub fn set_phase(&mut self, phase: Phase) -> Result<(), String> {
        if phase == self.current {
            return Ok(());
        }
        let result = self.update();
        self.current = phase;
        result
    }

    /// Reads the counters now and returns (all faults, major faults) per phase.
    pub fn read(&mut self) -> Result<([u64; Phase::COUNT], [u64; Phase::COUNT]), String> {
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
    fn faults_land_in_the_phase_that_was_current() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 100, 1);
        let mut split = FaultSplit::start(dir.path()).unwrap();
        write(dir.path(), 250, 1); // 150 at start-up
        split.set_phase(Phase::Spike).unwrap();
        write(dir.path(), 7_650, 3); // 7,400 in the spike, 2 major
        split.set_phase(Phase::Spike).unwrap(); // no change: no reading
        write(dir.path(), 7_700, 3);
        split.set_phase(Phase::Remainder).unwrap(); // 7,450 in the spike
        write(dir.path(), 8_400, 3);
        let (all, major) = split.read().unwrap();
        assert_eq!(all[Phase::Startup as usize], 150);
        assert_eq!(all[Phase::Spike as usize], 7_450);
        assert_eq!(all[Phase::Remainder as usize], 700);
        assert_eq!(all.iter().sum::<u64>(), 8_300);
        assert_eq!(major[Phase::Spike as usize], 2);
        assert_eq!(major.iter().sum::<u64>(), 2);
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
