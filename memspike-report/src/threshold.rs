//! The report of a `threshold`: per policy, the knob's value nearest the boundary that
//! survives, the nearest that dies, whether outcomes flipped near it, and every run it took;
//! of the simulated program or of a command. For `gomemlimit` on a command, each policy has a
//! second edge, the lowest share whose cost stays bearable: the answer is the band between.

use serde::Serialize;

use memspike_model::{
    policy::Policy,
    size::human,
    threshold::{Knob, Threshold},
};

use crate::{
    Document,
    compare::Subject,
    facts::{CostBound, Probe, ThresholdFacts, ThresholdSubject},
    figures as fig,
    format::percent,
    render::view::{Block, Pairs, Tone, View},
};

/// One policy's threshold.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct PolicyThreshold {
    pub name: String,
    /// The policy, with the keys and spellings of a policies file.
    pub settings: Policy,
    #[serde(flatten)]
    pub threshold: Threshold,
    /// The cost edge (`gomemlimit` on a command), see [`CostBound`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Threshold>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_bound: Option<CostBound>,
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
                    cost: s.cost,
                    probes: s.probes,
                })
                .collect(),
            cost_bound: f.cost_bound,
        }
    }
}

/// A threshold report has no chart yet: its answers are a table.
impl Document for ThresholdReport {
    /// Headline, the answers in a table, and each policy's answer in words as the verdict.
    fn view(&self) -> View {
        let k = self.knob;
        let value = |v: Option<f64>| v.map_or("-".to_owned(), |v| k.format(v));
        let costs = self.policies.iter().any(|p| p.cost.is_some());
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
                if costs {
                    let c = p.cost.as_ref();
                    row.push(value(c.and_then(|c| c.survives)));
                    row.push(value(c.and_then(|c| c.dies)));
                }
                let runs = t.runs.len() + p.cost.as_ref().map_or(0, |c| c.runs.len());
                row.push(runs.to_string());
                row
            })
            .collect();
        let mut header = vec!["policy", "survives", "dies", "boundary"];
        if costs {
            header.extend(["bearable from", "too costly"]);
        }
        header.push("runs");
        let mut about = Pairs::default();
        self.subject.rows(&mut about);
        if k != Knob::Limit {
            about.row(&fig::LIMIT, human(self.limit_bytes).to_string());
        }
        about.row(&fig::GOAL, k.goal());
        if let Some(b) = &self.cost_bound {
            about.row(
                &fig::COST_BOUND,
                format!(
                    "GC CPU at most {}, wall time at most {}x {}",
                    percent(Some(b.gc_cpu_max)),
                    b.wall_factor,
                    b.baseline_wall_ms.map_or(
                        "the baseline's (which did not finish: not applied)".to_owned(),
                        |ms| format!("the {ms:.0} ms of runs without a memory limit")
                    )
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
