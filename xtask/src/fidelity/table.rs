//! The agreement table: per Go version, per cell, the real runs against the simulation and
//! against the model's prediction, as aligned text (printed), Markdown (`fidelity.md`) and CSV
//! (`fidelity.csv`), with a summary line per version.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use serde::Serialize;

use super::compare::{Call, Judged, Verdict};
use super::grid::MIB;
use super::observe::{NextGc, Outcome};

/// One Go version's judged cells.
pub struct VersionTable {
    /// As `go version` says it, e.g. `go1.21.13`.
    pub version: String,
    pub cells: Vec<Judged>,
}

const HEADERS: [&str; 19] = [
    "limit",
    "spike",
    "GOGC",
    "GOMEMLIMIT",
    "remainder",
    "-gc",
    "runs",
    "real: ending (runs)",
    "sim: ending",
    "next GC real (MiB)",
    "sim",
    "diff",
    "GC cycles real",
    "sim",
    "peak real (MiB)",
    "sim",
    "verdict",
    "model: survives",
    "model's call",
];

/// A run's ending: the outcome, and the step it was killed in.
fn ending(outcome: &Outcome, died_in: Option<&str>) -> String {
    match died_in {
        Some(step) => format!("{outcome} ({step})"),
        None => outcome.to_string(),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.2}", bytes as f64 / MIB as f64)
}

fn next_gc_text(next_gc: Option<NextGc>) -> String {
    match next_gc {
        Some(NextGc::Bytes(b)) => mib(b),
        Some(NextGc::Unplanned) => "none".to_owned(),
        None => "-".to_owned(),
    }
}

/// `a` or `a-b` over the values present; `-` if none.
fn range(values: impl Iterator<Item = u64>, show: impl Fn(u64) -> String) -> String {
    let values: Vec<u64> = values.collect();
    match (values.iter().min(), values.iter().max()) {
        (Some(lo), Some(hi)) => {
            let (lo, hi) = (show(*lo), show(*hi));
            if lo == hi { lo } else { format!("{lo}-{hi}") }
        }
        _ => "-".to_owned(),
    }
}

/// The real runs' endings with their counts, the most frequent first, e.g.
/// `oom_killed (remainder) 6, oom_killed (spike) 4`.
pub fn endings_text(judged: &Judged, separator: &str) -> String {
    let mut endings: Vec<_> = judged.endings.iter().collect();
    endings.sort_by_key(|(_, n)| std::cmp::Reverse(**n));
    endings
        .into_iter()
        .map(|((outcome, died_in), n)| format!("{} {n}", ending(outcome, *died_in)))
        .collect::<Vec<_>>()
        .join(separator)
}

/// The simulation's ending, `-` if it did not run.
pub fn sim_ending(judged: &Judged) -> String {
    judged.runs.sim.as_ref().map_or_else(
        |_| "-".to_owned(),
        |s| ending(&s.outcome, s.died_in.as_deref()),
    )
}

pub fn verdict_text(judged: &Judged) -> String {
    match &judged.verdict {
        Verdict::Agree => "agree".to_owned(),
        Verdict::Disagree(reasons) if false_survival(judged) => {
            format!("DISAGREE (false survival): {}", reasons.join("; "))
        }
        Verdict::Disagree(reasons) => format!("DISAGREE: {}", reasons.join("; ")),
        Verdict::RunAlone(reasons) => format!(
            "run alone: the simulation's run disagrees ({}), the prediction's draws end as real Go did",
            reasons.join("; ")
        ),
        Verdict::TimingDependent => {
            let limit = judged.runs.cell.limit;
            match judged.runs.sim.as_ref().ok().and_then(|s| s.peak_bytes) {
                Some(peak) => format!(
                    "timing-dependent; sim peak {} of {} MiB ({:.1} %)",
                    mib(peak),
                    mib(limit),
                    peak as f64 * 100.0 / limit as f64
                ),
                None => "timing-dependent; sim peak unknown".to_owned(),
            }
        }
        Verdict::Error(why) => format!("ERROR: {why}"),
    }
}

/// The cells of one version as rows of [`HEADERS`].
fn rows(table: &VersionTable) -> Vec<Vec<String>> {
    table
        .cells
        .iter()
        .map(|j| {
            let cell = &j.runs.cell;
            let real: Vec<_> = j.runs.real.iter().filter_map(|r| r.as_ref().ok()).collect();
            let sim = j.runs.sim.as_ref().ok();
            vec![
                format!("{} MiB", cell.limit / MIB),
                cell.spike.to_string(),
                cell.gogc.to_string(),
                cell.memory_limit_text(),
                cell.remainder_text().to_owned(),
                if cell.gc { "yes" } else { "no" }.to_owned(),
                j.runs.real.len().to_string(),
                endings_text(j, ", "),
                sim_ending(j),
                next_gc_text(j.next_gc_median),
                next_gc_text(sim.and_then(|s| s.next_gc_after_spike)),
                j.next_gc_difference
                    .map_or_else(|| "-".to_owned(), |d| format!("{:.2} %", d * 100.0)),
                range(real.iter().filter_map(|r| r.gc_cycles), |n| n.to_string()),
                sim.and_then(|s| s.gc_cycles)
                    .map_or_else(|| "-".to_owned(), |n| n.to_string()),
                range(real.iter().filter_map(|r| r.peak_bytes), mib),
                sim.and_then(|s| s.peak_bytes)
                    .map_or_else(|| "-".to_owned(), mib),
                verdict_text(j),
                j.predicted.as_ref().map_or_else(
                    || "-".to_owned(),
                    |p| format!("{}/{}", p.prediction.survived, p.prediction.draws),
                ),
                j.predicted
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |p| call_text(p.call).to_owned()),
            ]
        })
        .collect()
}

/// The model's call, as the table says it.
pub fn call_text(call: Call) -> &'static str {
    match call {
        Call::Right => "right",
        Call::FalseSurvival => "FALSE SURVIVAL",
        Call::FalseDeath => "false death",
        Call::MarginalOnStable => "marginal (real runs agreed)",
        Call::Marginal => "marginal",
        Call::Certain => "certain (real runs flipped)",
    }
}

/// A stable cell where every real run was OOM-killed and the simulation survived.
pub fn false_survival(j: &Judged) -> bool {
    let sim_survived = j
        .runs
        .sim
        .as_ref()
        .is_ok_and(|s| s.outcome == Outcome::Survived);
    sim_survived
        && !j.endings.is_empty()
        && j.endings
            .keys()
            .all(|(outcome, _)| *outcome == Outcome::OomKilled)
}

/// The counts behind a version's summary line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub cells: usize,
    pub stable: usize,
    /// Stable cells the simulation agrees with.
    pub agree: usize,
    /// Stable cells where only the simulation's one run went the other way, and draws of the
    /// prediction end as the real runs did ([`Verdict::RunAlone`]).
    pub run_alone: usize,
    pub disagree: usize,
    /// Of the disagreements, the cells where every real run was OOM-killed and the simulation
    /// survived: the worst answer the model can give, counted apart.
    pub false_survivals: usize,
    pub timing_dependent: usize,
    pub errors: usize,
    /// The model's prediction, on outcomes: cells whose real runs all ended one way, those it
    /// called right, its false survivals and false deaths, and those it called marginal.
    pub model_stable: usize,
    pub model_right: usize,
    pub model_false_survivals: usize,
    pub model_false_deaths: usize,
    pub model_marginal_on_stable: usize,
    /// Cells whose real runs flipped, those it called marginal, and its mean Brier score on
    /// them (0 is perfect, 0.25 a coin's).
    pub flipped: usize,
    pub flipped_marginal: usize,
    pub brier_milli: Option<u32>,
}

impl Summary {
    pub fn of(table: &VersionTable) -> Summary {
        let mut s = Summary {
            cells: table.cells.len(),
            ..Summary::default()
        };
        for j in &table.cells {
            match j.verdict {
                Verdict::Agree => {
                    s.stable += 1;
                    s.agree += 1;
                }
                Verdict::Disagree(_) => {
                    s.stable += 1;
                    s.disagree += 1;
                    s.false_survivals += usize::from(false_survival(j));
                }
                Verdict::RunAlone(_) => {
                    s.stable += 1;
                    s.run_alone += 1;
                }
                Verdict::TimingDependent => s.timing_dependent += 1,
                Verdict::Error(_) => s.errors += 1,
            }
        }
        let mut brier = Vec::new();
        for p in table.cells.iter().filter_map(|j| j.predicted.as_ref()) {
            match p.call {
                Call::Marginal | Call::Certain => {
                    s.flipped += 1;
                    s.flipped_marginal += usize::from(p.call == Call::Marginal);
                    brier.push(p.brier());
                }
                call => {
                    s.model_stable += 1;
                    s.model_right += usize::from(call == Call::Right);
                    s.model_false_survivals += usize::from(call == Call::FalseSurvival);
                    s.model_false_deaths += usize::from(call == Call::FalseDeath);
                    s.model_marginal_on_stable += usize::from(call == Call::MarginalOnStable);
                }
            }
        }
        s.brier_milli = (!brier.is_empty())
            .then(|| (brier.iter().sum::<f64>() / brier.len() as f64 * 1000.0).round() as u32);
        s
    }

    pub fn line(&self, version: &str) -> String {
        format!(
            "{version}: {} cells, {} stable, {} agree, {} run alone, {} disagree ({} false survivals), {} timing-dependent, {} errors; {}",
            self.cells,
            self.stable,
            self.agree,
            self.run_alone,
            self.disagree,
            self.false_survivals,
            self.timing_dependent,
            self.errors,
            self.model_line()
        )
    }

    /// The prediction's part of the line.
    fn model_line(&self) -> String {
        format!(
            "the model's prediction: {}/{} right ({} false survivals, {} false deaths, {} marginal), marginal on {}/{} cells whose runs flipped, Brier {}",
            self.model_right,
            self.model_stable,
            self.model_false_survivals,
            self.model_false_deaths,
            self.model_marginal_on_stable,
            self.flipped_marginal,
            self.flipped,
            self.brier_milli.map_or_else(
                || "-".to_owned(),
                |b| format!("{:.3}", f64::from(b) / 1000.0)
            )
        )
    }
}

/// One version's table as aligned text, then its summary line.
pub fn text(table: &VersionTable) -> String {
    let rows = rows(table);
    let mut widths: Vec<usize> = HEADERS.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, col) in widths.iter_mut().zip(row) {
            *w = (*w).max(col.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cols: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (col, w) in cols.zip(&widths) {
            let _ = write!(l, "{col:<w$}  ");
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut HEADERS.iter().copied());
    for row in &rows {
        line(&mut row.iter().map(String::as_str));
    }
    out.push_str(&Summary::of(table).line(&table.version));
    out.push('\n');
    out
}

/// Escapes a Markdown table cell.
fn md_cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// The Markdown file: a heading, how it was made, then per version its summary and table.
pub fn markdown(tables: &[VersionTable], how: &str) -> String {
    let mut out = String::from("# Fidelity: memspike's simulation against real Go\n\n");
    let _ = writeln!(out, "{how}\n");
    for table in tables {
        let _ = writeln!(out, "## {}\n", table.version);
        let _ = writeln!(out, "{}\n", Summary::of(table).line(&table.version));
        let _ = writeln!(out, "| {} |", HEADERS.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(HEADERS.len()));
        for row in rows(table) {
            let cols: Vec<String> = row.iter().map(|c| md_cell(c)).collect();
            let _ = writeln!(out, "| {} |", cols.join(" | "));
        }
        out.push('\n');
    }
    out
}

/// One CSV row: a cell of one version, in bytes and counts.
#[derive(Serialize)]
struct CsvRow<'a> {
    go: &'a str,
    cell: String,
    limit_bytes: u64,
    spike: f64,
    gogc: String,
    memory_limit_bytes: Option<u64>,
    remainder: &'static str,
    gc: bool,
    runs: usize,
    real_endings: String,
    sim_outcome: Option<String>,
    sim_died_in: Option<String>,
    real_next_gc_median_bytes: Option<String>,
    sim_next_gc_bytes: Option<String>,
    next_gc_difference: Option<f64>,
    real_gc_cycles_min: Option<u64>,
    real_gc_cycles_max: Option<u64>,
    sim_gc_cycles: Option<u64>,
    real_peak_min_bytes: Option<u64>,
    real_peak_max_bytes: Option<u64>,
    sim_peak_bytes: Option<u64>,
    stable: bool,
    verdict: String,
    model_draws: Option<u32>,
    model_survived: Option<u32>,
    model_call: Option<&'static str>,
}

/// All versions' cells as CSV, one header line.
pub fn csv(tables: &[VersionTable]) -> Result<String> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for table in tables {
        for j in &table.cells {
            let cell = &j.runs.cell;
            let real: Vec<_> = j.runs.real.iter().filter_map(|r| r.as_ref().ok()).collect();
            let sim = j.runs.sim.as_ref().ok();
            let cycles = || real.iter().filter_map(|r| r.gc_cycles);
            let peaks = || real.iter().filter_map(|r| r.peak_bytes);
            writer
                .serialize(CsvRow {
                    go: &table.version,
                    cell: cell.id(),
                    limit_bytes: cell.limit,
                    spike: cell.spike,
                    gogc: cell.gogc.to_string(),
                    memory_limit_bytes: cell.memory_limit_bytes(),
                    remainder: cell.remainder_text(),
                    gc: cell.gc,
                    runs: j.runs.real.len(),
                    real_endings: endings_text(j, "; "),
                    sim_outcome: sim.map(|s| s.outcome.to_string()),
                    sim_died_in: sim.and_then(|s| s.died_in.clone()),
                    real_next_gc_median_bytes: j.next_gc_median.map(|n| n.to_string()),
                    sim_next_gc_bytes: sim
                        .and_then(|s| s.next_gc_after_spike)
                        .map(|n| n.to_string()),
                    next_gc_difference: j.next_gc_difference,
                    real_gc_cycles_min: cycles().min(),
                    real_gc_cycles_max: cycles().max(),
                    sim_gc_cycles: sim.and_then(|s| s.gc_cycles),
                    real_peak_min_bytes: peaks().min(),
                    real_peak_max_bytes: peaks().max(),
                    sim_peak_bytes: sim.and_then(|s| s.peak_bytes),
                    stable: j.stable(),
                    verdict: verdict_text(j),
                    model_draws: j.predicted.as_ref().map(|p| p.prediction.draws),
                    model_survived: j.predicted.as_ref().map(|p| p.prediction.survived),
                    model_call: j.predicted.as_ref().map(|p| call_text(p.call)),
                })
                .context("writing a CSV row")?;
        }
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| anyhow::anyhow!("finishing the CSV: {e}"))?;
    String::from_utf8(bytes).context("the CSV is not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fidelity::compare::{CellRuns, judge};
    use crate::fidelity::grid::Cell;
    use crate::fidelity::observe::{Prediction, RealRun, SimRun};

    fn killed(died_in: &'static str, peak: u64) -> RealRun {
        RealRun {
            outcome: Outcome::OomKilled,
            died_in: Some(died_in),
            next_gc_after_spike: Some(NextGc::Bytes(60_612_192)),
            gc_cycles: Some(1),
            peak_bytes: Some(peak),
            victim_is_program: Some(true),
            spike_goal_ratio: Some(2.0),
        }
    }

    fn sim(peak: u64) -> SimRun {
        SimRun {
            outcome: Outcome::OomKilled,
            died_in: Some("remainder".to_owned()),
            next_gc_after_spike: Some(NextGc::Bytes(60_604_416)),
            gc_cycles: Some(1),
            peak_bytes: Some(peak),
            prediction: None,
        }
    }

    fn predicting(survived: u32, peak: u64) -> SimRun {
        SimRun {
            prediction: Some(Prediction {
                draws: 20,
                survived,
                killed_in: [("remainder".to_owned(), 20 - survived)].into(),
            }),
            ..sim(peak)
        }
    }

    fn sample() -> VersionTable {
        let seed = judge(CellRuns {
            cell: Cell::base(),
            real: vec![
                Ok(killed("remainder", 32 * MIB)),
                Ok(killed("remainder", 32 * MIB - 4096)),
            ],
            sim: Ok(predicting(0, 32 * MIB)),
        });
        let edge = judge(CellRuns {
            cell: Cell {
                spike: 0.95,
                ..Cell::base()
            },
            real: vec![
                Ok(killed("spike", 32 * MIB)),
                Ok(killed("remainder", 32 * MIB)),
                Ok(killed("remainder", 32 * MIB)),
            ],
            sim: Ok(predicting(3, 31 * MIB)),
        });
        let flipped = judge(CellRuns {
            cell: Cell {
                memory_limit: Some(90),
                ..Cell::base()
            },
            real: vec![
                Ok(killed("remainder", 32 * MIB)),
                Ok(RealRun {
                    outcome: Outcome::Survived,
                    died_in: None,
                    ..killed("remainder", 31 * MIB)
                }),
            ],
            sim: Ok(predicting(10, 32 * MIB)),
        });
        VersionTable {
            version: "go1.21.13".to_owned(),
            cells: vec![seed, edge, flipped],
        }
    }

    #[test]
    fn the_summary_counts_stable_agreeing_and_timing_dependent_cells() {
        let table = sample();
        assert_eq!(
            Summary::of(&table),
            Summary {
                cells: 3,
                stable: 1,
                agree: 1,
                run_alone: 0,
                disagree: 0,
                false_survivals: 0,
                timing_dependent: 2,
                errors: 0,
                model_stable: 2,
                model_right: 1,
                model_false_survivals: 0,
                model_false_deaths: 0,
                model_marginal_on_stable: 1,
                flipped: 1,
                flipped_marginal: 1,
                brier_milli: Some(0),
            }
        );
        assert_eq!(
            Summary::of(&table).line("go1.21.13"),
            "go1.21.13: 3 cells, 1 stable, 1 agree, 0 run alone, 0 disagree (0 false survivals), 2 timing-dependent, 0 errors; the model's prediction: 1/2 right (0 false survivals, 0 false deaths, 1 marginal), marginal on 1/1 cells whose runs flipped, Brier 0.000"
        );
    }

    /// Every real run killed and the simulation surviving is a disagreement of its own kind,
    /// counted and named apart; a simulation killed where real Go survived is not one.
    #[test]
    fn false_survivals_are_counted_apart() {
        let survived = SimRun {
            outcome: Outcome::Survived,
            died_in: None,
            ..sim(30 * MIB)
        };
        let false_survival = judge(CellRuns {
            cell: Cell::base(),
            real: vec![Ok(killed("remainder", 32 * MIB)); 3],
            sim: Ok(survived),
        });
        let false_death = judge(CellRuns {
            cell: Cell::base(),
            real: vec![
                Ok(RealRun {
                    outcome: Outcome::Survived,
                    died_in: None,
                    ..killed("remainder", 30 * MIB)
                });
                3
            ],
            sim: Ok(sim(32 * MIB)),
        });
        let table = VersionTable {
            version: "go1.27.3".to_owned(),
            cells: vec![false_survival, false_death],
        };
        let s = Summary::of(&table);
        assert_eq!((s.disagree, s.false_survivals), (2, 1));
        assert!(verdict_text(&table.cells[0]).starts_with("DISAGREE (false survival): "));
        assert!(verdict_text(&table.cells[1]).starts_with("DISAGREE: "));
    }

    #[test]
    fn the_rows_show_counts_medians_ranges_and_the_sims_peak_for_unstable_cells() {
        let rows = rows(&sample());
        let seed = &rows[0];
        assert_eq!(
            seed[0..7],
            ["32 MiB", "0.9", "100", "off", "whole", "no", "2"]
        );
        assert_eq!(seed[7], "oom_killed (remainder) 2");
        assert_eq!(seed[8], "oom_killed (remainder)");
        assert_eq!(seed[9], "57.80");
        assert_eq!(seed[11], "0.01 %");
        assert_eq!(seed[14], "32.00");
        assert_eq!(seed[16], "agree");
        assert_eq!(seed[17..], ["0/20", "right"]);
        let edge = &rows[1];
        assert_eq!(edge[7], "oom_killed (remainder) 2, oom_killed (spike) 1");
        assert_eq!(
            edge[16],
            "timing-dependent; sim peak 31.00 of 32.00 MiB (96.9 %)"
        );
    }

    #[test]
    fn text_is_aligned_and_markdown_has_one_table_per_version() {
        let table = sample();
        let text = text(&table);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5);
        let verdict_at = lines[0].find("verdict");
        assert!(verdict_at.is_some());
        assert_eq!(lines[1].find("agree"), verdict_at);
        assert!(lines[4].starts_with("go1.21.13: 3 cells"));

        let md = markdown(&[table], "made by a test");
        assert!(md.contains("## go1.21.13\n\ngo1.21.13: 3 cells, 1 stable, 1 agree"));
        let table_lines = md.lines().filter(|l| l.starts_with('|')).count();
        assert_eq!(table_lines, 5, "{md}");
        assert_eq!(md_cell("a|b"), "a\\|b");
    }

    #[test]
    fn csv_has_a_header_and_a_row_per_cell_with_bytes() -> Result<()> {
        let csv = csv(&[sample()])?;
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let headers = reader.headers()?.clone();
        assert_eq!(&headers[0], "go");
        let records: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>()?;
        assert_eq!(records.len(), 3);
        let get = |r: &csv::StringRecord, name: &str| {
            headers
                .iter()
                .position(|h| h == name)
                .and_then(|i| r.get(i))
                .map(str::to_owned)
        };
        assert_eq!(
            get(&records[0], "cell").as_deref(),
            Some("32MiB-spike0.9-gogc100")
        );
        assert_eq!(
            get(&records[0], "real_next_gc_median_bytes").as_deref(),
            Some("60612192")
        );
        assert_eq!(get(&records[0], "memory_limit_bytes").as_deref(), Some(""));
        assert_eq!(get(&records[0], "stable").as_deref(), Some("true"));
        assert_eq!(get(&records[1], "stable").as_deref(), Some("false"));
        assert_eq!(
            get(&records[1], "real_endings").as_deref(),
            Some("oom_killed (remainder) 2; oom_killed (spike) 1")
        );
        assert_eq!(get(&records[1], "model_survived").as_deref(), Some("3"));
        assert_eq!(
            get(&records[1], "model_call").as_deref(),
            Some("marginal (real runs agreed)")
        );
        assert_eq!(get(&records[2], "model_call").as_deref(), Some("marginal"));
        Ok(())
    }
}
