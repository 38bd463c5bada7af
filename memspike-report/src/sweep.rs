//! The report of a sweep: one row per cell of a plan, whether the cells ran on this machine
//! (`sweep --local`) or one per pod (`sweep --index`), joined by `sweep merge`. The rows are
//! `compare`'s ([`PolicyRow`]) with the cell's place in the plan beside them.
//!
//! Files of rows come from many machines and may be cut short (a pod killed mid-line, a log
//! collector's limit): a line that is not a row is skipped and named ([`Unreadable`]), a cell
//! with no row is named ([`SweepReport::missing`]), and the table is made of what is there.

use std::{collections::BTreeMap, fmt::Write as _};

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
        chart::{Grid, GridRow, Picture},
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
    /// The plan's number of cells, when the merge was given the plan (`--plan`).
    pub planned: Option<usize>,
    /// The cells of the plan with no row, by index: those before the plan's end when it is
    /// known, else those before the last row's.
    pub missing: Vec<usize>,
    /// The lines of the files that were not rows, skipped.
    pub unreadable: Vec<Unreadable>,
    /// Per policy: cells run and cells survived.
    pub survival: BTreeMap<String, (usize, usize)>,
    pub verdict: String,
}

/// A line of a file of rows that is not a row: skipped, and named in the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Unreadable {
    /// The file, as it was given.
    pub file: String,
    /// The line's number, from 1.
    pub line: usize,
    /// The line ends before its row does: the file was cut off there (a writer killed
    /// mid-line).
    pub cut: bool,
    /// What the JSON reader said.
    pub error: String,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.cut {
            "cut off"
        } else {
            "not a row of `memspike sweep`"
        };
        write!(f, "{}:{}: {what}: {}", self.file, self.line, self.error)
    }
}

/// Why rows cannot be joined.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("no rows to merge{}: give the files `memspike sweep` wrote", first(.0))]
    Empty(Vec<Unreadable>),
    #[error("rows of two plans, {0:?} and {1:?}: merge one plan at a time")]
    Plans(String, String),
    #[error("cell {0} is there twice: merge each cell's row once")]
    Twice(usize),
    #[error("cell {0} is not in the plan {1:?}, whose cells are 0 to {2}")]
    OutsidePlan(usize, String, usize),
}

/// `` (the first of N unreadable lines: …)``, or nothing.
fn first(unreadable: &[Unreadable]) -> String {
    unreadable.first().map_or_else(String::new, |u| {
        format!(" ({} unreadable lines, the first {u})", unreadable.len())
    })
}

impl SweepRow {
    /// The rows of a file `memspike sweep` wrote, one JSON object per line (blank lines
    /// skipped), and the lines that are not rows; `origin` names the file.
    pub fn parse_lines(text: &str, origin: &str) -> (Vec<SweepRow>, Vec<Unreadable>) {
        let (mut rows, mut unreadable) = (Vec::new(), Vec::new());
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(line) {
                Ok(row) => rows.push(row),
                Err(e) => unreadable.push(Unreadable {
                    file: origin.to_owned(),
                    line: n + 1,
                    cut: e.is_eof(),
                    error: e.to_string(),
                }),
            }
        }
        (rows, unreadable)
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

/// The plan the rows are of, when the merge knows it: its name and its number of cells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    pub name: String,
    pub cells: usize,
}

impl SweepReport {
    /// The rows in cell order, checked to be of one plan (`plan`'s, when given) and each once;
    /// the cells with no row and the `unreadable` lines are named in the report.
    pub fn merge(
        mut rows: Vec<SweepRow>,
        unreadable: Vec<Unreadable>,
        plan: Option<&Planned>,
    ) -> Result<SweepReport, MergeError> {
        let Some(first) = rows.first() else {
            return Err(MergeError::Empty(unreadable));
        };
        let name = plan.map_or_else(|| first.plan.clone(), |p| p.name.clone());
        if let Some(other) = rows.iter().find(|r| r.plan != name) {
            return Err(MergeError::Plans(name, other.plan.clone()));
        }
        rows.sort_by_key(|r| r.cell.index);
        if let Some(w) = rows.windows(2).find(|w| w[0].cell.index == w[1].cell.index) {
            return Err(MergeError::Twice(w[0].cell.index));
        }
        let last = rows.last().map_or(0, |r| r.cell.index);
        if let Some(p) = plan.filter(|p| last >= p.cells) {
            return Err(MergeError::OutsidePlan(
                last,
                p.name.clone(),
                p.cells.saturating_sub(1),
            ));
        }
        let end = plan.map_or(last + 1, |p| p.cells);
        let mut have = rows.iter().map(|r| r.cell.index).peekable();
        let missing: Vec<usize> = (0..end)
            .filter(|i| {
                if have.peek() == Some(i) {
                    have.next();
                    false
                } else {
                    true
                }
            })
            .collect();
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
        let mut verdict = format!("cells by policy: {verdict}");
        let gaps = gaps(&missing, &unreadable);
        if !gaps.is_empty() {
            let _ = write!(verdict, "; {gaps}");
        }
        Ok(SweepReport {
            plan: name,
            cells: rows,
            planned: plan.map(|p| p.cells),
            missing,
            unreadable,
            survival,
            verdict,
        })
    }

    /// Whether every cell has its row and every line was one (`--complete`).
    pub fn complete(&self) -> bool {
        self.missing.is_empty() && self.unreadable.is_empty()
    }

    /// What the merge lacks, in words; empty when complete.
    pub fn gaps(&self) -> String {
        gaps(&self.missing, &self.unreadable)
    }
}

/// `N cells without a row (#3, #7); M lines unreadable (rows.jsonl:4 cut off)`, or empty.
fn gaps(missing: &[usize], unreadable: &[Unreadable]) -> String {
    let mut parts = Vec::new();
    if !missing.is_empty() {
        let cells: Vec<String> = missing.iter().map(|i| format!("#{i}")).collect();
        parts.push(format!(
            "{} {} without a row ({})",
            missing.len(),
            if missing.len() == 1 { "cell" } else { "cells" },
            cells.join(", ")
        ));
    }
    if !unreadable.is_empty() {
        let lines: Vec<String> = unreadable
            .iter()
            .map(|u| {
                let how = if u.cut { " cut off" } else { "" };
                format!("{}:{}{how}", u.file, u.line)
            })
            .collect();
        parts.push(format!(
            "{} {} skipped ({})",
            unreadable.len(),
            if unreadable.len() == 1 {
                "unreadable line"
            } else {
                "unreadable lines"
            },
            lines.join(", ")
        ));
    }
    parts.join("; ")
}

impl Document for SweepReport {
    fn view(&self) -> View {
        let mut rows: Vec<(usize, Vec<String>)> = self
            .cells
            .iter()
            .map(|c| {
                let r = &c.row;
                let row = vec![
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
                ];
                (c.cell.index, row)
            })
            .collect();
        // A cell without a row: its place, marked.
        rows.extend(
            self.missing
                .iter()
                .map(|&i| (i, vec![i.to_string(), "(no row: missing)".to_owned()])),
        );
        rows.sort_by_key(|(i, _)| *i);
        let rows = rows.into_iter().map(|(_, row)| row).collect();
        let mut headline = format!("memspike sweep {}: {} cells", self.plan, self.cells.len());
        if !self.missing.is_empty() {
            let _ = write!(headline, ", {} without a row", self.missing.len());
        }
        let unreadable = (!self.unreadable.is_empty()).then(|| Block::Grid {
            caption: "unreadable lines (skipped)".to_owned(),
            header: ["file:line", "why"].map(str::to_owned).to_vec(),
            rows: self
                .unreadable
                .iter()
                .map(|u| {
                    let how = if u.cut { "cut off: " } else { "" };
                    vec![
                        format!("{}:{}", u.file, u.line),
                        format!("{how}{}", u.error),
                    ]
                })
                .collect(),
        });
        View {
            headline,
            tone: Tone::Neutral,
            blocks: std::iter::once(Block::Grid {
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
            })
            .chain(unreadable)
            .collect(),
            error: None,
            verdict: self.verdict.clone(),
        }
    }

    /// Survival per policy and limit, a grid.
    fn picture(&self) -> Option<Picture> {
        Some(Picture::Grid(self.grid()))
    }
}

impl SweepReport {
    /// Survival per policy (rows) and limit (columns; with the scenario where the plan has
    /// more than one), in the plan's order.
    fn grid(&self) -> Grid {
        let scenarios: std::collections::BTreeSet<&str> = self
            .cells
            .iter()
            .map(|c| c.cell.scenario.as_str())
            .collect();
        let column = |c: &SweepRow| match scenarios.len() {
            1 => human(c.cell.limit_bytes).to_string(),
            _ => format!("{}\n{}", c.cell.scenario, human(c.cell.limit_bytes)),
        };
        let mut keys: Vec<(&str, u64)> = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        for c in &self.cells {
            let key = (c.cell.scenario.as_str(), c.cell.limit_bytes);
            if !keys.contains(&key) {
                keys.push(key);
            }
            if !names.contains(&c.row.name.as_str()) {
                names.push(&c.row.name);
            }
        }
        let columns = keys
            .iter()
            .map(|k| {
                self.cells
                    .iter()
                    .find(|c| (c.cell.scenario.as_str(), c.cell.limit_bytes) == *k)
                    .map(column)
                    .unwrap_or_default()
            })
            .collect();
        let rows = names
            .iter()
            .map(|name| GridRow {
                name: (*name).to_owned(),
                cells: keys
                    .iter()
                    .map(|k| {
                        let cells = self.cells.iter().filter(|c| {
                            c.row.name == *name
                                && (c.cell.scenario.as_str(), c.cell.limit_bytes) == *k
                        });
                        cells.fold(None, |sum: Option<(u32, u32)>, c| {
                            let (s, n) = sum.unwrap_or_default();
                            Some((s + c.row.survived, n + c.row.runs))
                        })
                    })
                    .collect(),
            })
            .collect();
        Grid {
            title: format!("sweep {}: runs survived per policy and limit", self.plan),
            columns,
            rows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(plan: &str, index: usize) -> SweepRow {
        SweepRow {
            plan: plan.to_owned(),
            cell: CellSpec {
                index,
                scenario: "seed".into(),
                limit_bytes: 32 << 20,
                runtime: "go1.27".into(),
                policy: "gogc100".into(),
                repetition: 0,
            },
            row: PolicyRow::of(
                &memspike_model::policy_set::by_name("gogc100").unwrap(),
                32 << 20,
                vec![crate::compare::Trial {
                    outcome: Outcome::OomKilled,
                    died_in: Some("remainder".into()),
                    died_at_ms: Some(30.0),
                    peak_bytes: Some(32 << 20),
                    gc_cycles: Some(1),
                    gc_cpu_share: Some(0.004),
                    page_faults: None,
                    reclaim_stalls: None,
                    exit: "killed by SIGKILL".into(),
                    victim: None,
                    duration_ms: 50.0,
                    verdict: "killed".into(),
                    stderr_tail: String::new(),
                }],
                Vec::new(),
            ),
        }
    }

    fn line(r: &SweepRow) -> String {
        serde_json::to_string(r).unwrap() + "\n"
    }

    /// Regression (issue 17): one cut line refused the whole merge ("EOF while parsing"). The
    /// table is made of the rows there are; the cut line and its cell are named.
    #[test]
    fn a_cut_last_line_is_named_and_its_cell_marked_missing() {
        let whole: String = (0..3).map(|i| line(&row("p", i))).collect();
        let cut = line(&row("p", 3));
        let text = whole + &cut[..cut.len() / 2];
        let (rows, unreadable) = SweepRow::parse_lines(&text, "rows.jsonl");
        assert_eq!(rows.len(), 3);
        assert_eq!(unreadable.len(), 1);
        let u = &unreadable[0];
        assert_eq!((u.file.as_str(), u.line, u.cut), ("rows.jsonl", 4, true));
        assert!(u.error.contains("EOF while parsing"), "{u}");

        // Without the plan, only the cells before the last row's can be known missing.
        let r = SweepReport::merge(rows.clone(), unreadable.clone(), None).unwrap();
        assert_eq!(r.missing, Vec::<usize>::new());
        assert!(!r.complete());
        // With it, cell 3 is.
        let plan = Planned {
            name: "p".into(),
            cells: 4,
        };
        let r = SweepReport::merge(rows, unreadable, Some(&plan)).unwrap();
        assert_eq!(r.missing, [3]);
        assert_eq!(r.planned, Some(4));
        assert!(
            r.verdict.ends_with(
                "; 1 cell without a row (#3); 1 unreadable line skipped (rows.jsonl:4 cut off)"
            ),
            "{}",
            r.verdict
        );
        let text = r.text();
        assert!(text.contains("3 cells, 1 without a row"), "{text}");
        assert!(text.contains("(no row: missing)"), "{text}");
        assert!(text.contains("rows.jsonl:4"), "{text}");
        assert!(text.contains("cut off: EOF while parsing"), "{text}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["missing"], serde_json::json!([3]));
        assert_eq!(json["unreadable"][0]["line"], 4);
        assert_eq!(json["unreadable"][0]["cut"], true);
    }

    /// A line that is not JSON in the middle of a file is skipped and named; the rows around
    /// it are merged, and a gap between rows is a missing cell.
    #[test]
    fn a_line_that_is_not_json_is_skipped_and_named() {
        let text = line(&row("p", 0)) + "\n" + "not json\n" + &line(&row("p", 2));
        let (rows, unreadable) = SweepRow::parse_lines(&text, "a.jsonl");
        assert_eq!(rows.len(), 2);
        assert_eq!(
            unreadable
                .iter()
                .map(|u| (u.line, u.cut))
                .collect::<Vec<_>>(),
            [(3, false)]
        );
        assert!(
            unreadable[0]
                .to_string()
                .starts_with("a.jsonl:3: not a row of `memspike sweep`: expected ident"),
            "{}",
            unreadable[0]
        );
        let r = SweepReport::merge(rows, unreadable, None).unwrap();
        assert_eq!(r.missing, [1]);
        assert_eq!(r.cells.len(), 2);
        // Complete rows merge complete.
        let (rows, unreadable) = SweepRow::parse_lines(&line(&row("p", 0)), "b.jsonl");
        let r = SweepReport::merge(rows, unreadable, None).unwrap();
        assert!(r.complete() && r.gaps().is_empty() && r.missing.is_empty());
    }

    /// Rows of two plans, a cell twice, a row outside the plan and no rows at all stay errors.
    #[test]
    fn rows_that_cannot_be_joined_are_still_refused() {
        let err = |rows: Vec<SweepRow>, plan: Option<&Planned>| {
            SweepReport::merge(rows, Vec::new(), plan)
                .unwrap_err()
                .to_string()
        };
        assert!(err(vec![row("a", 0), row("b", 1)], None).starts_with("rows of two plans"));
        assert!(err(vec![row("a", 0), row("a", 0)], None).starts_with("cell 0 is there twice"));
        let plan = Planned {
            name: "a".into(),
            cells: 2,
        };
        assert_eq!(
            err(vec![row("a", 2)], Some(&plan)),
            "cell 2 is not in the plan \"a\", whose cells are 0 to 1"
        );
        assert!(err(vec![row("b", 0)], Some(&plan)).starts_with("rows of two plans"));
        let (_, unreadable) = SweepRow::parse_lines("{\"plan\":", "c.jsonl");
        let e = SweepReport::merge(Vec::new(), unreadable, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no rows to merge (1 unreadable lines, the first c.jsonl:1: cut off: EOF while \
             parsing a value at line 1 column 8): give the files `memspike sweep` wrote"
        );
    }
}
