//! What a memory cgroup said: its counters after a run and its cheap readings during one. The
//! Linux side reads the files (`memspike-cgroup`); these are the plain values, every field
//! optional because kernels differ in which files they have.

use serde::{Deserialize, Serialize};

/// Which cgroup interface the memory controller is reached through. In reports and JSON: `v1`
/// or `v2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    /// Legacy hierarchy: `memory.limit_in_bytes`, `memory.memsw.*`, `memory.oom_control`.
    V1,
    /// Unified hierarchy: `memory.max`, `memory.swap.max`, `memory.events`.
    V2,
}

impl CgroupVersion {
    /// `v1` or `v2`.
    pub fn short(self) -> &'static str {
        match self {
            CgroupVersion::V1 => "v1",
            CgroupVersion::V2 => "v2",
        }
    }
}

impl std::fmt::Display for CgroupVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cgroup {}", self.short())
    }
}

/// A group's memory counters at one instant; sizes in bytes.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Default, Debug, Clone, PartialEq)]
pub struct Counters {
    /// v1 `memory.usage_in_bytes`, v2 `memory.current`.
    pub usage_bytes: Option<u64>,
    /// v1 `memory.max_usage_in_bytes`, v2 `memory.peak`.
    pub peak_bytes: Option<u64>,
    /// v1 `memory.limit_in_bytes`, v2 `memory.max`; `None` when unlimited.
    pub limit_bytes: Option<u64>,
    /// v1 `memory.failcnt`, v2 `max` in `memory.events` (times the limit was hit).
    pub failcnt: Option<u64>,
    /// v2 `oom` in `memory.events` (times the group went OOM); v1 has no such counter: `None`.
    pub oom_events: Option<u64>,
    /// v1 `oom_kill` in `memory.oom_control`, v2 `oom_kill` in `memory.events`.
    pub oom_kills: Option<u64>,
    /// v2 `low` in `memory.events` (times reclaimed below `memory.low`); v1: `None`.
    pub low_events: Option<u64>,
    /// v2 `high` in `memory.events` (times throttled above `memory.high`); v1: `None`.
    pub high_events: Option<u64>,
    /// v2 `oom_group_kill` in `memory.events` (kernel 5.17+); v1: `None`.
    pub oom_group_kills: Option<u64>,
    /// v2 `memory.high` when set (`None` for `max`, and on v1).
    pub high_limit_bytes: Option<u64>,
    /// v1 `cache` (else `total_cache`) in `memory.stat`, v2 `file`.
    pub page_cache_bytes: Option<u64>,
    /// v1 `rss` (else `total_rss`), v2 `anon`.
    pub anon_bytes: Option<u64>,
    /// v1 `rss_huge` (else `total_rss_huge`), v2 `anon_thp`.
    pub anon_huge_bytes: Option<u64>,
    /// v1 `memory.kmem.usage_in_bytes`, v2 `kernel` in `memory.stat`.
    pub kernel_bytes: Option<u64>,
    /// v1 `memory.memsw.usage_in_bytes` - `memory.usage_in_bytes`, v2 `memory.swap.current`.
    pub swap_bytes: Option<u64>,
}

/// One cheap reading of a group, taken every few milliseconds while a program runs.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Reading {
    pub usage_bytes: Option<u64>,
    /// Anonymous memory (v1 `rss`, v2 `anon`).
    pub anon_bytes: Option<u64>,
    /// Page cache (v1 `cache`, v2 `file`).
    pub file_bytes: Option<u64>,
}
