//! The runtime's memory policy: everything a Go program or its operator can set about its
//! memory (GOGC, GOMEMLIMIT, a collection after releases, a watchdog). It is part of the
//! experiment's configuration and what the simulated runtime follows; a new setting is a field
//! here, its flag, and its use in [`crate::runtime`].

use serde::{Deserialize, Serialize};

use crate::{pacer::Gogc, size::Amount, watchdog::Watchdog};

/// Parses `--memory-limit` (`GOMEMLIMIT`): a size, a percentage of the cgroup's limit, or `off`
/// (no limit).
pub fn parse_memory_limit(s: &str) -> Result<Option<Amount>, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    s.parse::<Amount>()
        .ok()
        .filter(|a| *a != Amount::Bytes(0))
        .map(Some)
        .ok_or_else(|| {
            format!(
                "invalid memory limit {s:?}: give a size (240MiB, 251658240), a percentage of the cgroup's limit (90%), or off"
            )
        })
}

/// The runtime's memory policy: everything a Go program or its operator can set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub gogc: Gogc,
    /// `GOMEMLIMIT`: a size or a share of the cgroup's limit; `None` is off.
    pub memory_limit: Option<Amount>,
    /// A collection right after every release step (the seed's `-gc`).
    pub gc_after_release: bool,
    pub watchdog: Option<Watchdog>,
}
