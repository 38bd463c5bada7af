//! One experiment's configuration: the limit, the scenario, the runtime's policy and the Go
//! release whose rules apply. It is the single description the CLI builds, the supervisor sends
//! the worker (one JSON line on the control channel), and the report repeats. A new setting is
//! one field here (or, for the runtime's memory policy, in [`crate::policy::Policy`]), its flag,
//! and its use.

use serde::{Deserialize, Serialize};

use crate::{
    policy::Policy, profile::Profile, release::Release, runtime::RuntimeConfig, scenario::Scenario,
};

/// How fast the simulated program allocates and writes, bytes per simulated second, unless
/// told otherwise: what the reference Go program achieves allocating and writing 1 MiB slabs on
/// the development machine (`reference/go/MEASUREMENTS.md`).
pub const DEFAULT_ALLOC_RATE: u64 = 750 << 20;

/// The whole experiment. See the module documentation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Experiment {
    /// The cgroup's memory limit, bytes.
    pub limit: u64,
    pub scenario: Scenario,
    /// The seed scenario's spike fraction (the report repeats it), when the seed runs.
    pub spike: Option<f64>,
    pub policy: Policy,
    /// The Go release whose rules apply.
    pub runtime: Release,
    /// Bytes per simulated second the program allocates and writes.
    pub alloc_rate: u64,
    /// `GOMAXPROCS` (the CPU limiter's capacity scales with it).
    pub gomaxprocs: u32,
    /// Stop the worker before the first step with this name.
    pub pause_at: Option<String>,
    /// The runtime profile of a real program (`--calibrate`), in place of the reference
    /// program's; `null` for the reference's.
    #[serde(default)]
    pub profile: Option<Profile>,
}

impl Experiment {
    /// `memspike run --limit LIMIT` with every other setting at its default: the seed
    /// scenario, GOGC 100, no memory limit, the newest release, this machine's CPUs.
    pub fn seed(limit: u64) -> Experiment {
        Experiment {
            limit,
            scenario: crate::scenario::builtin::seed(crate::scenario::builtin::SEED_SPIKE, None),
            spike: Some(crate::scenario::builtin::SEED_SPIKE),
            policy: Policy::default(),
            runtime: Release::default(),
            alloc_rate: DEFAULT_ALLOC_RATE,
            gomaxprocs: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            pause_at: None,
            profile: None,
        }
    }
}

/// The names page faults are counted under besides the steps (the scenario's to define).
pub use crate::scenario::{DONE, INTERACTIVE, OTHER, RESERVED, STARTUP};

impl Experiment {
    /// The scenario as it runs: with a collection after every release when the policy says so.
    pub fn effective_scenario(&self) -> Scenario {
        if self.policy.gc_after_release {
            self.scenario.with_gc_after_release()
        } else {
            self.scenario.clone()
        }
    }

    /// The names page faults are counted under, in order (the observer's step slots):
    /// start-up, every step of the scenario or, for an `interactive` worker serving HTTP
    /// instead, [`INTERACTIVE`], then done. The one place they are derived.
    pub fn step_names(&self, interactive: bool) -> Vec<String> {
        let steps = match interactive {
            true => vec![INTERACTIVE.to_owned()],
            false => self.effective_scenario().step_names(),
        };
        let mut names = vec![STARTUP.to_owned()];
        for n in steps {
            if !names.contains(&n) {
                names.push(n);
            }
        }
        if !names.iter().any(|n| n == DONE) {
            names.push(DONE.to_owned());
        }
        names
    }

    /// The soft memory limit in bytes.
    pub fn memory_limit_bytes(&self) -> Option<u64> {
        self.policy.memory_limit_bytes(self.limit)
    }

    /// The runtime's settings. `epoch_unix_ns` is when it starts; `footprint_offset` the
    /// resident memory the host process already holds for itself.
    pub fn runtime_config(&self, epoch_unix_ns: u64, footprint_offset: u64) -> RuntimeConfig {
        RuntimeConfig {
            release: self.runtime,
            policy: self.policy.clone(),
            limit: self.limit,
            gomaxprocs: self.gomaxprocs,
            alloc_rate: self.alloc_rate,
            epoch_unix_ns,
            footprint_offset,
            profile: self.profile.clone(),
            timing: Default::default(),
            stop_at_limit: false,
            outside_spread: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{pacer::Gogc, scenario::builtin, size::Amount};

    fn seed() -> Experiment {
        Experiment {
            limit: 32 << 20,
            scenario: builtin::seed(0.9, None),
            spike: Some(0.9),
            policy: Policy::default(),
            runtime: Release::default(),
            alloc_rate: DEFAULT_ALLOC_RATE,
            gomaxprocs: 2,
            pause_at: None,
            profile: None,
        }
    }

    #[test]
    fn the_configuration_round_trips_through_json() {
        let mut e = seed();
        e.policy.memory_limit = Some(Amount::Percent(90.0));
        e.policy.gogc = Gogc::Off;
        e.policy.watchdog = Some("watermarks:0.5,0.75,0.9".parse().unwrap());
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains(r#""memory_limit":"90%""#), "{json}");
        assert!(json.contains(r#""runtime":"go1.27""#), "{json}");
        assert_eq!(serde_json::from_str::<Experiment>(&json).unwrap(), e);
    }

    #[test]
    fn the_seeds_steps_are_the_old_phases() {
        let mut e = seed();
        assert_eq!(
            e.step_names(false),
            ["startup", "spike", "release", "remainder", "done"]
        );
        e.policy.gc_after_release = true;
        assert_eq!(
            e.step_names(false),
            ["startup", "spike", "release", "gc", "remainder", "done"]
        );
        assert_eq!(e.step_names(true), ["startup", "interactive", "done"]);
    }
}
