//! Go releases and the memory-management rules each one follows where releases differ.
//!
//! `--runtime go1.24` means "the rules in force in Go 1.24". Every release from go1.19 (the
//! first with a soft memory limit) to the newest modelled one is accepted; a rule changes in the
//! release named in [`Rules::of`], and holds until the next change. The sources of each rule
//! are cited in `docs/go-runtime-rules.md`.

use std::{fmt, str::FromStr};

/// A Go release, by minor version (go1.19 = 19).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Release(u8);

impl Release {
    /// The oldest release modelled: the first with a soft memory limit.
    pub const OLDEST: Release = Release(19);
    /// The newest release modelled, and the default.
    pub const NEWEST: Release = Release(27);

    /// Every release modelled, oldest first.
    pub fn all() -> impl Iterator<Item = Release> {
        (Self::OLDEST.0..=Self::NEWEST.0).map(Release)
    }

    /// `go1.N`, if N is modelled.
    pub fn go1(minor: u8) -> Option<Release> {
        (Self::OLDEST.0..=Self::NEWEST.0)
            .contains(&minor)
            .then_some(Release(minor))
    }

    pub fn minor(self) -> u8 {
        self.0
    }

    /// The rules this release follows.
    pub fn rules(self) -> Rules {
        Rules::of(self)
    }
}

impl Default for Release {
    fn default() -> Self {
        Self::NEWEST
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "go1.{}", self.0)
    }
}

/// A release name that is not modelled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown Go release {0:?}: give one of go1.{min} to go1.{max} (e.g. go1.21; a patch level such as go1.21.13 is accepted and follows its minor release)",
    min = Release::OLDEST.0,
    max = Release::NEWEST.0
)]
pub struct ReleaseError(String);

impl FromStr for Release {
    type Err = ReleaseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ReleaseError(s.to_owned());
        let rest = s.trim().strip_prefix("go1.").ok_or_else(err)?;
        // go1.21.13 follows go1.21's rules; rc and beta suffixes are not releases.
        let minor = rest.split_once('.').map_or(rest, |(m, patch)| {
            if patch.chars().all(|c| c.is_ascii_digit()) && !patch.is_empty() {
                m
            } else {
                ""
            }
        });
        let minor: u8 = minor.parse().map_err(|_| err())?;
        Release::go1(minor).ok_or_else(err)
    }
}

serde_via_str!(Release, "a Go release whose rules apply: go1.19 to go1.27");

/// How much below the memory limit's goal the runtime aims (`memoryLimitHeapGoalHeadroom`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Headroom {
    /// A fixed number of bytes (Go 1.19 and 1.20: 1 MiB).
    Fixed(u64),
    /// A share of the goal in percent, at least `min` bytes (Go 1.21+: 3 %, at least 1 MiB).
    Percent { percent: u64, min: u64 },
}

impl Headroom {
    /// The goal after the headroom is taken off: a goal below twice the headroom becomes the
    /// headroom itself (`memoryLimitHeapGoal`, every release).
    pub fn apply(self, goal: u64) -> u64 {
        let headroom = match self {
            Headroom::Fixed(b) => b,
            Headroom::Percent { percent, min } => (goal / 100 * percent).max(min),
        };
        if goal < 2 * headroom {
            headroom
        } else {
            goal - headroom
        }
    }
}

/// The rules of one release that the simulation follows. `docs/go-runtime-rules.md` cites the
/// source of each, release by release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    pub release: Release,
    /// Taken off the memory limit's heap goal.
    pub memory_limit_headroom: Headroom,
    /// The background scavenger works towards 95 % of the memory limit. Before go1.22 it
    /// computed the target as limit x 95 (golang/go#62449), so only allocation-time scavenging
    /// held the limit.
    pub scavenger_limit_goal: bool,
    /// Memory swept out of chunks that were nearly full in the cycle just ended is not
    /// returned in the background until the next cycle ends (go1.21+, `scavChunkHiOccFrac`).
    /// Allocation-time scavenging under the memory limit ignores it.
    pub scavenger_density_hold: bool,
    /// How consMark (allocation over marking speed) is estimated from each cycle's measurement.
    pub cons_mark: ConsMarkRule,
}

/// How the pacer turns each cycle's consMark measurement into the estimate that sizes the
/// runway (`gcControllerState.endCycle`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsMarkRule {
    /// go1.19: a PI controller on the measurements, which measure the allocation since the
    /// *computed* trigger. A spike that crosses the trigger in one allocation is counted as
    /// allocation during the cycle, so the estimate jumps and the next trigger falls to its
    /// lower clamp (measured: gcpacertrace shows cons/mark about 293 after the seed's spike).
    /// The model takes the controller's output as the last measurement.
    Go119,
    /// go1.20: the mean of the last two measurements, which count from the heap at the cycle's
    /// start (golang/go#53738).
    MeanOfTwo,
    /// go1.21+: the largest of the last five measurements.
    MaxOfFive,
}

const MIB: u64 = 1 << 20;

impl Rules {
    /// The rules in force in `release`.
    pub fn of(release: Release) -> Rules {
        let memory_limit_headroom = if release.0 <= 20 {
            // go1.19/go1.20 mgcpacer.go: memoryLimitHeapGoalHeadroom = 1 << 20.
            Headroom::Fixed(MIB)
        } else {
            // go1.21 mgcpacer.go: memoryLimitHeapGoalHeadroomPercent = 3, at least 1 MiB.
            Headroom::Percent {
                percent: 3,
                min: MIB,
            }
        };
        Rules {
            release,
            memory_limit_headroom,
            scavenger_limit_goal: release.0 >= 22,
            scavenger_density_hold: release.0 >= 21,
            cons_mark: match release.0 {
                ..=19 => ConsMarkRule::Go119,
                20 => ConsMarkRule::MeanOfTwo,
                _ => ConsMarkRule::MaxOfFive,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_release_name_parses_and_prints_back() {
        for r in Release::all() {
            assert_eq!(r.to_string().parse::<Release>(), Ok(r));
        }
        assert_eq!(
            "go1.21.13".parse::<Release>(),
            Release::go1(21).ok_or(ReleaseError(String::new()))
        );
        for bad in [
            "go1.18",
            "go1.99",
            "1.21",
            "go2.0",
            "go1.21rc1",
            "go1.21.",
            "",
            "go1.x",
        ] {
            let e = bad.parse::<Release>().unwrap_err();
            assert!(e.to_string().contains("go1.19 to go1.27"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_headroom_changed_in_go1_21() {
        // Sources: go1.19/go1.20 src/runtime/mgcpacer.go memoryLimitHeapGoal (fixed 1 MiB);
        // go1.21 the same function (3 %, at least 1 MiB).
        let goal = 200 * MIB;
        let at = |minor| {
            Rules::of(Release::go1(minor).unwrap())
                .memory_limit_headroom
                .apply(goal)
        };
        assert_eq!(at(19), 199 * MIB);
        assert_eq!(at(20), 199 * MIB);
        assert_eq!(at(21), goal - goal / 100 * 3);
        assert_eq!(at(27), goal - goal / 100 * 3);
        // Small goals keep at least 1 MiB of headroom; below twice the headroom the goal is the
        // headroom itself.
        let newest = Rules::of(Release::NEWEST).memory_limit_headroom;
        assert_eq!(newest.apply(10 * MIB), 9 * MIB);
        assert_eq!(newest.apply(2 * MIB), MIB);
        assert_eq!(newest.apply(2 * MIB - 1), MIB);
        assert_eq!(newest.apply(MIB / 2), MIB);
    }

    #[test]
    fn the_scavenger_rules_changed_in_go1_21_and_go1_22() {
        // go1.21 mgcscavenge.go: scavChunkHiOccFrac (the density hold); go1.22: the memory
        // limit goal as limit * 0.95 (golang/go#62449).
        let at = |minor| Rules::of(Release::go1(minor).unwrap());
        assert!(!at(19).scavenger_density_hold && !at(20).scavenger_density_hold);
        assert!(at(21).scavenger_density_hold && at(27).scavenger_density_hold);
        assert!(!at(21).scavenger_limit_goal && at(22).scavenger_limit_goal);
    }
}
