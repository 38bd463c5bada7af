//! The report of a `threshold`: per policy, the knob's value nearest the boundary that
//! survives, the nearest that dies, whether outcomes flipped near it, and every run it took;
//! of the simulated program or of a command. For `gomemlimit` on a command, each policy has a
//! second edge, the lowest share whose cost stays bearable: the answer is the band between.

use serde::Serialize;

use memspike_model::{
    policy::Policy,
    size::human,
    threshold::{Knob, ModelBand, Threshold, band_text},
};

use crate::{
    Document,
    compare::Subject,
    facts::{CostBound, Probe, ThresholdFacts, ThresholdSubject},
    figures as fig,
    format::{millis, percent},
    render::{
        chart::{OutcomeRow, Outcomes, Picture},
        view::{Block, Pairs, Tone, View},
    },
};

/// One policy's threshold.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct PolicyThreshold {
    pub name: String,
    /// The policy, with the keys and spellings of a policies file.
    pub settings: Policy,
    #[serde(flatten)]
    pub threshold: Threshold,
    /// The model's answer along the same range: where every draw survives, and the band
    /// where its draws disagree, next to where real runs flipped (the simulated program).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelBand>,
    /// The cost edge (`gomemlimit` on a command), and what bore on it: the bound and this
    /// policy's baseline ([`CostBound`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Threshold>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_bound: Option<CostBound>,
    /// Every run of a command, in brief (empty for the simulated program).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<Probe>,
}

/// What `threshold` found, per policy. Field names are the JSON keys (docs/reference/report.schema.json).
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ThresholdReport {
    pub knob: Knob,
    pub limit_bytes: u64,
    pub subject: Subject,
    pub policies: Vec<PolicyThreshold>,
}

impl ThresholdReport {
    /// The thresholds the searches found.
    pub fn build(f: ThresholdFacts) -> ThresholdReport {
        let limit_bytes = f.subject.limit_bytes();
        ThresholdReport {
            knob: f.knob,
            limit_bytes,
            subject: match f.subject {
                ThresholdSubject::Scenario(e) => Subject::of(&e),
                ThresholdSubject::Command { command, .. } => Subject::Command(command),
            },
            policies: f
                .searches
                .into_iter()
                .map(|s| PolicyThreshold {
                    name: s.policy.name.clone().unwrap_or_default(),
                    settings: s.policy,
                    threshold: s.threshold,
                    model: s.model,
                    cost: s.cost,
                    cost_bound: s.cost_bound,
                    probes: s.probes,
                })
                .collect(),
        }
    }
}

/// A threshold report's answers are a table, and its picture the outcomes along the knob.
impl Document for ThresholdReport {
    /// Every policy's runs along the knob, the bands where real runs flipped and where the
    /// model's draws disagreed, and each answer.
    fn picture(&self) -> Option<Picture> {
        let range = self.policies.first()?.threshold.range;
        let rows = self
            .policies
            .iter()
            .map(|p| {
                let t = &p.threshold;
                OutcomeRow {
                    name: p.name.clone(),
                    runs: t.runs.iter().map(|r| (r.value, r.survived)).collect(),
                    flipped: t.survives.zip(t.dies).filter(|_| t.flaky),
                    marginal: p.model.as_ref().and_then(|m| m.marginal),
                    survives: t.survives,
                }
            })
            .collect();
        Some(Picture::Outcomes(Outcomes {
            title: format!(
                "threshold of {}: {}, limit {}",
                self.knob,
                self.subject,
                human(self.limit_bytes)
            ),
            knob: self.knob,
            range: (range.lo, range.hi),
            rows,
        }))
    }

    /// Headline, the answers in a table, and each policy's answer in words as the verdict.
    fn view(&self) -> View {
        let k = self.knob;
        let value = |v: Option<f64>| v.map_or("-".to_owned(), |v| k.format(v));
        let costs = self.policies.iter().any(|p| p.cost.is_some());
        let modelled = self.policies.iter().any(|p| p.model.is_some());
        let rows = self
            .policies
            .iter()
            .map(|p| {
                let t = &p.threshold;
                let mut row = vec![
                    p.name.clone(),
                    value(t.survives),
                    value(t.dies),
                    if t.flaky { "flips" } else { "point" }.to_owned(),
                ];
                if modelled {
                    let m = p.model.as_ref();
                    row.push(value(m.and_then(|m| m.survives)));
                    row.push(
                        m.and_then(|m| m.marginal)
                            .map_or("-".to_owned(), |band| band_text(k, band)),
                    );
                }
                if costs {
                    let c = p.cost.as_ref();
                    row.push(value(c.and_then(|c| c.survives)));
                    row.push(value(c.and_then(|c| c.dies)));
                    row.push(
                        p.cost_bound
                            .as_ref()
                            .and_then(|b| b.baseline_wall_ms)
                            .map_or("did not finish".to_owned(), millis),
                    );
                }
                // A command's every run, baselines included, or the simulated search's.
                let runs = if p.probes.is_empty() {
                    t.runs.len()
                } else {
                    p.probes.len()
                };
                row.push(runs.to_string());
                row
            })
            .collect();
        let mut header = vec!["policy", "survives", "dies", "boundary"];
        if modelled {
            header.extend(["model survives", "model marginal"]);
        }
        if costs {
            header.extend(["bearable from", "too costly", "baseline wall"]);
        }
        header.push("runs");
        let mut about = Pairs::default();
        self.subject.rows(&mut about);
        if k != Knob::Limit {
            about.row(&fig::LIMIT, human(self.limit_bytes).to_string());
        }
        about.row(&fig::GOAL, k.goal());
        if let Some(b) = self.policies.iter().find_map(|p| p.cost_bound.as_ref()) {
            about.row(
                &fig::COST_BOUND,
                format!(
                    "GC CPU at most {}, wall time at most {}x the policy's baseline (its median wall time without a memory limit; not applied where the baseline did not finish)",
                    percent(Some(b.gc_cpu_max)),
                    b.wall_factor,
                ),
            );
        }
        let verdict = self
            .policies
            .iter()
            .map(|p| {
                let mut v = format!("{}: {}", p.name, p.threshold);
                if let Some(c) = &p.cost {
                    v.push_str(&format!("; {c}"));
                }
                if let Some(m) = &p.model {
                    v.push_str(&format!("; the model {}", m.describe(k)));
                }
                v
            })
            .collect::<Vec<_>>()
            .join("; ");
        View {
            headline: format!("memspike threshold: {}, {}", k.goal(), self.subject),
            tone: Tone::Neutral,
            blocks: vec![
                about.block(),
                Block::Grid {
                    caption: format!("{k} per policy"),
                    header: header.into_iter().map(str::to_owned).collect(),
                    rows,
                },
            ],
            error: None,
            verdict,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::PolicySearch;
    use memspike_model::{policy_set::by_name, threshold::Range};

    /// Regression: one cost bound, the last policy's baseline, was reported for every policy.
    #[test]
    fn each_policy_keeps_its_own_baseline() {
        let range = Knob::Gomemlimit.default_range().unwrap();
        let threshold = |r: Range| Threshold {
            range: r,
            survives: Some(0.9),
            dies: Some(0.95),
            flaky: false,
            runs: Vec::new(),
        };
        let search = |name: &str, baseline: Option<f64>| PolicySearch {
            policy: by_name(name).unwrap(),
            threshold: threshold(range),
            model: None,
            cost: Some(threshold(range.reversed())),
            cost_bound: Some(CostBound {
                gc_cpu_max: 0.5,
                wall_factor: 2.0,
                baseline_wall_ms: baseline,
            }),
            probes: Vec::new(),
        };
        let r = ThresholdReport::build(ThresholdFacts {
            subject: ThresholdSubject::Command {
                command: vec!["prog".into()],
                limit_bytes: 64 << 20,
            },
            knob: Knob::Gomemlimit,
            searches: vec![search("gogc100", Some(700.0)), search("gogc50", None)],
        });
        let baselines: Vec<_> = r
            .policies
            .iter()
            .map(|p| p.cost_bound.as_ref().and_then(|b| b.baseline_wall_ms))
            .collect();
        assert_eq!(baselines, [Some(700.0), None]);
        let text = r.text();
        assert!(
            text.contains("700 ms") && text.contains("did not finish"),
            "{text}"
        );
    }
}
