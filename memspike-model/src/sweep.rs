//! A sweep plan: scenarios × policies × limits × Go releases × repetitions, expanded into
//! cells, one experiment each. `memspike sweep` runs the cells on this machine or one per
//! Kubernetes pod; both number them the same way, from this module.
//!
//! A plan is TOML:
//!
//! ```toml
//! name = "example"
//! scenarios = ["seed", "churn"]          # built-in names or scenario files
//! policies = ["gogc100", "memlimit90"]   # names from the compare catalogue
//! limits = ["32MiB", "64MiB"]
//! runtimes = ["go1.21", "go1.27"]        # default: the newest
//! repetitions = 2                        # default: 1
//! spike = 0.9                            # the seed scenario's (default 0.9)
//! chunk = "1MiB"                         # the seed's remainder in pieces (default: whole)
//! ```
//!
//! Cells are numbered limit first, then scenario, release, policy and repetition, so the cells
//! of one limit are consecutive: a Kubernetes Indexed Job per limit (the pod's memory limit is
//! per pod template) covers `offset .. offset + count` ([`Plan::by_limit`]).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{
    experiment::Experiment,
    policy::Policy,
    policy_set,
    release::Release,
    scenario::{Scenario, builtin, toml_error},
    size,
};

/// A plan that cannot be read or expanded; the message names the file and what to change.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("cannot read the plan {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{0}")]
    Parse(String),
    #[error("{origin}: {what}")]
    Invalid { origin: String, what: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    name: String,
    scenarios: Vec<String>,
    policies: Vec<String>,
    limits: Vec<String>,
    #[serde(default)]
    runtimes: Vec<String>,
    #[serde(default = "one")]
    repetitions: u32,
    spike: Option<f64>,
    chunk: Option<String>,
}

fn one() -> u32 {
    1
}

/// A plan, checked: every name resolves, every size parses.
#[derive(Clone, Debug)]
pub struct Plan {
    pub name: String,
    pub scenarios: Vec<Scenario>,
    pub policies: Vec<Policy>,
    pub limits: Vec<u64>,
    pub runtimes: Vec<Release>,
    pub repetitions: u32,
    /// The seed scenario's spike and chunk.
    pub spike: f64,
    pub chunk: Option<u64>,
}

/// What one cell runs, as its row names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CellSpec {
    pub index: usize,
    pub scenario: String,
    pub limit_bytes: u64,
    pub runtime: String,
    pub policy: String,
    pub repetition: u32,
}

/// One cell: its place in the plan and the experiment it runs.
#[derive(Clone, Debug)]
pub struct Cell {
    pub spec: CellSpec,
    pub policy: Policy,
    pub experiment: Experiment,
}

/// The cells of one limit: `count` of them from `offset` (one Kubernetes Job).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitGroup {
    pub limit: u64,
    pub offset: usize,
    pub count: usize,
}

impl Plan {
    /// Reads a plan file.
    pub fn load(path: &Path) -> Result<Plan, SweepError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| SweepError::Read {
            path: origin.clone(),
            error,
        })?;
        Plan::from_toml(&text, &origin)
    }

    /// Parses a plan; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Plan, SweepError> {
        let raw: RawPlan =
            toml::from_str(text).map_err(|e| SweepError::Parse(toml_error(&e, text, origin)))?;
        let invalid = |what: String| SweepError::Invalid {
            origin: origin.to_owned(),
            what,
        };
        for (list, len) in [
            ("scenarios", raw.scenarios.len()),
            ("policies", raw.policies.len()),
            ("limits", raw.limits.len()),
        ] {
            if len == 0 {
                return Err(invalid(format!("{list} is empty: name at least one")));
            }
        }
        if raw.repetitions == 0 {
            return Err(invalid(
                "repetitions is 0: run each cell at least once".into(),
            ));
        }
        let spike = raw.spike.unwrap_or(builtin::SEED_SPIKE);
        if !(spike > 0.0 && spike < 1.0) {
            return Err(invalid(format!(
                "spike {spike} is not a fraction between 0 and 1"
            )));
        }
        let chunk = raw
            .chunk
            .as_deref()
            .map(size::parse)
            .transpose()
            .map_err(|e| invalid(format!("chunk: {e}")))?;
        let scenarios = raw
            .scenarios
            .iter()
            .map(|s| {
                if s == "seed" {
                    Ok(builtin::seed(spike, chunk))
                } else {
                    Scenario::load(s).map_err(|e| invalid(format!("scenarios: {e}")))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let policies = policy_set::from_list(&raw.policies.join(","))
            .and_then(policy_set::simulated)
            .map_err(|e| invalid(format!("policies: {e}")))?;
        let limits = raw
            .limits
            .iter()
            .map(|l| size::parse(l).map_err(|e| invalid(format!("limits: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let runtimes = if raw.runtimes.is_empty() {
            vec![Release::default()]
        } else {
            raw.runtimes
                .iter()
                .map(|r| {
                    r.parse::<Release>()
                        .map_err(|e| invalid(format!("runtimes: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        Ok(Plan {
            name: raw.name,
            scenarios,
            policies,
            limits,
            runtimes,
            repetitions: raw.repetitions,
            spike,
            chunk,
        })
    }

    /// How many cells the plan has.
    pub fn len(&self) -> usize {
        self.limits.len()
            * self.scenarios.len()
            * self.runtimes.len()
            * self.policies.len()
            * self.repetitions as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every cell, in index order.
    pub fn cells(&self) -> Vec<Cell> {
        let mut cells = Vec::with_capacity(self.len());
        for &limit in &self.limits {
            for scenario in &self.scenarios {
                for &runtime in &self.runtimes {
                    for policy in &self.policies {
                        for repetition in 0..self.repetitions {
                            let seed = scenario.name == "seed";
                            let experiment = Experiment {
                                scenario: scenario.clone(),
                                spike: seed.then_some(self.spike),
                                policy: policy.clone(),
                                runtime,
                                ..Experiment::seed(limit)
                            };
                            cells.push(Cell {
                                spec: CellSpec {
                                    index: cells.len(),
                                    scenario: scenario.name.clone(),
                                    limit_bytes: limit,
                                    runtime: runtime.to_string(),
                                    policy: policy.name.clone().unwrap_or_default(),
                                    repetition,
                                },
                                policy: policy.clone(),
                                experiment,
                            });
                        }
                    }
                }
            }
        }
        cells
    }

    /// Cell `index`, if the plan has it.
    pub fn cell(&self, index: usize) -> Option<Cell> {
        self.cells().into_iter().nth(index)
    }

    /// The cells grouped by limit, in index order: one Kubernetes Job each.
    pub fn by_limit(&self) -> Vec<LimitGroup> {
        let per_limit = self.len() / self.limits.len().max(1);
        self.limits
            .iter()
            .enumerate()
            .map(|(i, &limit)| LimitGroup {
                limit,
                offset: i * per_limit,
                count: per_limit,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = r#"
name = "t"
scenarios = ["seed", "churn"]
policies = ["gogc100", "memlimit90", "gc-after-release"]
limits = ["32MiB", "64MiB"]
runtimes = ["go1.21", "go1.27"]
repetitions = 2
chunk = "1MiB"
"#;

    #[test]
    fn cells_are_numbered_limit_first_and_grouped_by_limit() {
        let plan = Plan::from_toml(PLAN, "p.toml").unwrap();
        let cells = plan.cells();
        assert_eq!(cells.len(), 2 * 2 * 2 * 3 * 2);
        assert_eq!(plan.len(), cells.len());
        assert!(cells.iter().enumerate().all(|(i, c)| c.spec.index == i));
        let groups = plan.by_limit();
        assert_eq!(
            groups,
            [
                LimitGroup {
                    limit: 32 << 20,
                    offset: 0,
                    count: 24
                },
                LimitGroup {
                    limit: 64 << 20,
                    offset: 24,
                    count: 24
                }
            ]
        );
        for g in groups {
            assert!(
                cells[g.offset..g.offset + g.count]
                    .iter()
                    .all(|c| c.experiment.limit == g.limit)
            );
        }
        let c = &cells[1];
        assert_eq!(
            (
                c.spec.scenario.as_str(),
                c.spec.runtime.as_str(),
                c.spec.policy.as_str(),
                c.spec.repetition
            ),
            ("seed", "go1.21", "gogc100", 1)
        );
        // The seed takes the plan's chunk; other scenarios have no spike.
        assert_eq!(c.experiment.spike, Some(0.9));
        assert!(c.experiment.scenario.to_toml().contains("1MiB"));
        let churn = cells.iter().find(|c| c.spec.scenario == "churn").unwrap();
        assert_eq!(churn.experiment.spike, None);
        assert_eq!(plan.cell(47).map(|c| c.spec.index), Some(47));
        assert!(plan.cell(48).is_none());
    }

    #[test]
    fn bad_plans_say_where_and_what() {
        for (text, says) in [
            ("name = \"x\"\n", "p.toml:1:1: missing field `scenarios`"),
            (
                "name = \"x\"\nscenarios = []\npolicies = [\"gogc100\"]\nlimits = [\"32MiB\"]\n",
                "p.toml: scenarios is empty",
            ),
            (
                "name = \"x\"\nscenarios = [\"seed\"]\npolicies = [\"nosuch\"]\nlimits = [\"32MiB\"]\n",
                "policies: no built-in policy is called \"nosuch\"",
            ),
            (
                "name = \"x\"\nscenarios = [\"seed\"]\npolicies = [\"gogc100\"]\nlimits = [\"lots\"]\n",
                "limits: ",
            ),
            (
                "name = \"x\"\nscenarios = [\"seed\"]\npolicies = [\"gogc100\"]\nlimits = [\"32MiB\"]\nruntimes = [\"go1.5\"]\n",
                "runtimes: ",
            ),
            (
                "name = \"x\"\nscenarios = [\"nosuch\"]\npolicies = [\"gogc100\"]\nlimits = [\"32MiB\"]\n",
                "scenarios: ",
            ),
            (
                "name = \"x\"\nscenarios = [\"seed\"]\npolicies = [\"gogc100\"]\nlimits = [\"32MiB\"]\nextra = 1\n",
                "unknown field `extra`",
            ),
        ] {
            let err = Plan::from_toml(text, "p.toml").unwrap_err().to_string();
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }
}
