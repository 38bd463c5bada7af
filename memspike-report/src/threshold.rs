//! The report of a `threshold`: per policy, the knob's value nearest the boundary that
//! survives, the nearest that dies, whether outcomes flipped near it, and every run it took.

use serde::Serialize;

use memspike_model::{
    policy::Policy,
    threshold::{Knob, Threshold},
};

use memspike_model::size::human;

use crate::{
    Document,
    facts::ThresholdFacts,
    figures as fig,
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
}

/// What `threshold` found, per policy. Field names are the JSON keys documented in the README.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ThresholdReport {
    pub knob: Knob,
    pub limit_bytes: u64,
    pub scenario: String,
    pub runtime: String,
    pub policies: Vec<PolicyThreshold>,
}

impl ThresholdReport {
    /// The thresholds the searches found.
    pub fn build(f: ThresholdFacts) -> ThresholdReport {
        ThresholdReport {
            knob: f.knob,
            limit_bytes: f.base.limit,
            scenario: f.base.scenario.name.clone(),
            runtime: f.base.runtime.to_string(),
            policies: f
                .searches
                .into_iter()
                .map(|s| PolicyThreshold {
                    name: s.policy.name.clone().unwrap_or_default(),
                    settings: s.policy.clone(),
                    threshold: s.threshold,
                })
                .collect(),
        }
    }
}

/// A threshold report has no chart yet: its answers are a table.
impl Document for ThresholdReport {
    /// Headline, the answers in a table, and each policy's answer in words as the verdict.
    fn view(&self) -> View {
        let k = self.knob;
        let value = |v: Option<f64>| v.map_or("-".to_owned(), |v| k.format(v));
        let rows = self
            .policies
            .iter()
            .map(|p| {
                let t = &p.threshold;
                vec![
                    p.name.clone(),
                    value(t.survives),
                    value(t.dies),
                    if t.flaky { "flips" } else { "point" }.to_owned(),
                    t.runs.len().to_string(),
                ]
            })
            .collect();
        let mut about = Pairs::default();
        about.row(&fig::SCENARIO, self.scenario.clone());
        about.row(&fig::LIMIT, human(self.limit_bytes).to_string());
        about.row(&fig::RUNTIME, format!("{} rules", self.runtime));
        about.row(&fig::GOAL, k.goal());
        View {
            headline: format!("memspike threshold: {}", k.goal()),
            tone: Tone::Neutral,
            blocks: vec![
                about.block(),
                Block::Grid {
                    caption: format!("{k} per policy"),
                    header: ["policy", "survives", "dies", "boundary", "runs"]
                        .map(str::to_owned)
                        .to_vec(),
                    rows,
                },
            ],
            error: None,
            verdict: self
                .policies
                .iter()
                .map(|p| format!("{}: {}", p.name, p.threshold))
                .collect::<Vec<_>>()
                .join("; "),
        }
    }
}
