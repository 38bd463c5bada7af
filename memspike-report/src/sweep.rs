//! The report of a sweep: one row per cell of a plan, whether the cells ran on this machine
//! (`sweep --local`) or one per pod (`sweep --index`), joined by `sweep merge`. The rows are
//! `compare`'s ([`PolicyRow`]) with the cell's place in the plan beside them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use memspike_model::sweep::CellSpec;

use memspike_model::size::human;

use crate::{
    Document,
    compare::PolicyRow,
    facts::CellFacts,
    figures as fig,
    format::{opt_bytes, opt_count, percent},
    outcome::Outcome,
    render::{
        chart::{Chart, Role, Series},
        view::{Block, Tone, View},
    },
    run::Report,
};

/// One cell's result: the JSON line `sweep` prints for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SweepRow {
    /// The plan's name.
    pub plan: String,
    pub cell: CellSpec,
    #[serde(flatten)]
    pub row: PolicyRow,
}

/// Every cell of a plan that ran. Field names are the JSON keys (docs/reference/report.schema.json).
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct SweepReport {
    pub plan: String,
    pub cells: Vec<SweepRow>,
    /// Per policy: cells run and cells survived.
    pub survival: BTreeMap<String, (usize, usize)>,
    pub verdict: String,
}

/// Why rows cannot be joined.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("{origin}:{line}: not a row of `memspike sweep`: {error}")]
    Line {
        origin: String,
        line: usize,
        error: serde_json::Error,
    },
    #[error("no rows to merge: give the files `memspike sweep` wrote")]
    Empty,
    #[error("rows of two plans, {0:?} and {1:?}: merge one plan at a time")]
    Plans(String, String),
    #[error("cell {0} is there twice: merge each cell's row once")]
    Twice(usize),
}

impl SweepRow {
    /// The rows of a file `memspike sweep` wrote, one JSON object per line (blank lines
    /// skipped); `origin` names the file in errors.
    pub fn parse_lines(text: &str, origin: &str) -> Result<Vec<SweepRow>, MergeError> {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(n, line)| {
                serde_json::from_str(line).map_err(|error| MergeError::Line {
                    origin: origin.to_owned(),
                    line: n + 1,
                    error,
                })
            })
            .collect()
    }

    /// The row of one cell's run.
    pub fn build(f: CellFacts) -> SweepRow {
        SweepRow {
            plan: f.plan,
            cell: f.cell,
            row: PolicyRow::of_report(&f.run.policy, &Report::build(f.run.run)),
        }
    }
}

impl SweepReport {
    /// The rows in cell order, checked to be of one plan and each once.
    pub fn merge(mut rows: Vec<SweepRow>) -> Result<SweepReport, MergeError> {
        let plan = rows.first().ok_or(MergeError::Empty)?.plan.clone();
        if let Some(other) = rows.iter().find(|r| r.plan != plan) {
            return Err(MergeError::Plans(plan, other.plan.clone()));
        }
        rows.sort_by_key(|r| r.cell.index);
        if let Some(w) = rows.windows(2).find(|w| w[0].cell.index == w[1].cell.index) {
            return Err(MergeError::Twice(w[0].cell.index));
        }
        let mut survival: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for r in &rows {
            let e = survival.entry(r.cell.policy.clone()).or_default();
            e.0 += 1;
            e.1 += usize::from(r.row.outcome == Some(Outcome::Survived));
        }
        let verdict = survival
            .iter()
            .map(|(policy, (ran, survived))| format!("{policy} survived {survived} of {ran}"))
            .collect::<Vec<_>>()
            .join("; ");
        Ok(SweepReport {
            plan,
            cells: rows,
            survival,
            verdict: format!("cells by policy: {verdict}"),
        })
    }
}

impl Document for SweepReport {
    fn view(&self) -> View {
        let rows = self
            .cells
            .iter()
            .map(|c| {
                let r = &c.row;
                vec![
                    c.cell.index.to_string(),
                    c.cell.scenario.clone(),
                    human(c.cell.limit_bytes).to_string(),
                    c.cell.runtime.clone(),
                    c.cell.policy.clone(),
                    c.cell.repetition.to_string(),
                    r.outcome_text(),
                    r.died_in.clone().unwrap_or_else(|| "-".to_owned()),
                    opt_bytes(r.peak_bytes),
                    opt_count(r.gc_cycles.map(u64::from)),
                    percent(r.gc_cpu_share),
                    opt_count(r.page_faults),
                ]
            })
            .collect();
        View {
            headline: format!("memspike sweep {}: {} cells", self.plan, self.cells.len()),
            tone: Tone::Neutral,
            blocks: vec![Block::Grid {
                caption: "cells".to_owned(),
                header: [
                    "#",
                    "scenario",
                    fig::LIMIT.label,
                    "runtime",
                    "policy",
                    "rep",
                    "outcome",
                    "died in",
                    fig::CGROUP_PEAK.label,
                    fig::NUM_GC.label,
                    "GC CPU",
                    fig::PAGE_FAULTS.label,
                ]
                .map(str::to_owned)
                .to_vec(),
                rows,
            }],
            error: None,
            verdict: self.verdict.clone(),
        }
    }

    /// Each cell's peak against its limit, cell by cell.
    fn chart(&self) -> Option<Chart> {
        Some(self.picture())
    }
}

impl SweepReport {
    fn picture(&self) -> Chart {
        let at = |c: &SweepRow| c.cell.index as f64;
        Chart {
            title: format!("sweep {}: cgroup peak per cell", self.plan),
            x_label: "cell".to_owned(),
            stack: Vec::new(),
            lines: vec![
                Series::of(
                    Role::Limit,
                    self.cells
                        .iter()
                        .map(|c| (at(c), c.cell.limit_bytes as f64))
                        .collect(),
                )
                .stepped(),
                Series {
                    label: fig::CGROUP_PEAK.label.to_owned(),
                    ..Series::of(
                        Role::CgroupUsage,
                        self.cells
                            .iter()
                            .filter_map(|c| c.row.peak_bytes.map(|p| (at(c), p as f64)))
                            .collect(),
                    )
                },
            ],
            // A killed cell's peak is its limit: the two lines meet there.
            marks: Vec::new(),
            rate: None,
        }
    }
}
