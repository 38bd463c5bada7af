//! `cargo xtask speed`: wall times of the real release binary, for the figures
//! docs/benchmarks.md quotes (how much tracing costs a run, how long `compare` and `threshold`
//! take).
//!
//! It builds memspike as `cargo xtask run` does, runs one untimed warm-up of every case, then
//! `--runs` rounds; each round runs every case of [`CASES`] once, in an order that rotates from
//! round to round, so that a burst of load from elsewhere on the machine falls on all cases
//! alike. It prints one markdown table: per case the median, minimum and maximum wall time
//! (from spawn to exit, output discarded), and for a case with a baseline the ratio of the two
//! medians, against the target where there is one. A run that does not exit 0 stops it with
//! its stderr.
//!
//! To add a figure, add a [`Case`]: its name, memspike's arguments, and optionally a baseline
//! (another case's name) and a [`Target`].

use std::fmt::Write as _;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::privilege;
use crate::progress::Step;
use crate::run_cmd;

/// One command whose wall time is measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Case {
    /// The table's row name (and how other cases name it as their baseline).
    pub name: &'static str,
    /// memspike's arguments.
    pub args: &'static [&'static str],
    /// The case this one's median is divided by, for the ratio column.
    pub baseline: Option<&'static str>,
    pub target: Option<Target>,
}

/// What a case's figure must stay within.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// Its median at most this many times its baseline's.
    Ratio(f64),
    /// Its median under this many seconds.
    Seconds(f64),
}

/// The cases, in the table's order.
pub const CASES: &[Case] = &[
    Case {
        name: "run, untraced",
        args: &["run", "--limit", "32MiB", "--no-trace"],
        baseline: None,
        target: None,
    },
    Case {
        name: "run, traced",
        args: &["run", "--limit", "32MiB"],
        baseline: Some("run, untraced"),
        target: Some(Target::Ratio(2.0)),
    },
    Case {
        name: "compare, 8 policies, traced",
        args: &["compare", "--limit", "32MiB"],
        baseline: None,
        target: Some(Target::Seconds(3.0)),
    },
    Case {
        name: "threshold, one policy, spike to 1 %, traced",
        args: &[
            "threshold",
            "--limit",
            "32MiB",
            "--chunk",
            "1MiB",
            "--policies",
            "gogc100",
        ],
        baseline: None,
        target: Some(Target::Seconds(2.0)),
    },
];

#[derive(clap::Args, Debug, Clone)]
pub struct Options {
    /// Timed runs of each case.
    #[arg(long, default_value_t = 20)]
    runs: usize,
}

pub fn speed(opts: &Options) -> Result<ExitCode> {
    if !privilege::is_root() {
        bail!("memspike creates cgroups and loads eBPF: run `cargo xtask speed` as root");
    }
    if opts.runs == 0 {
        bail!("--runs must be at least 1");
    }
    check_cases(CASES)?;
    let binary = run_cmd::build_release()?;
    let load_before = load_average();
    let step = Step::start(format!(
        "speed: {} cases, one warm-up and {} timed runs each, interleaved",
        CASES.len(),
        opts.runs
    ));
    for case in CASES {
        time_one(&binary, case)?;
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(opts.runs); CASES.len()];
    for round in 0..opts.runs {
        for i in rotation(round, CASES.len()) {
            times[i].push(time_one(&binary, &CASES[i])?);
        }
    }
    step.done();
    let rows: Vec<Row> = CASES
        .iter()
        .zip(&times)
        .map(|(case, t)| Row::of(case, t))
        .collect();
    print!("{}", table(&rows));
    println!(
        "\n{} timed runs per case; load average {} before, {} after; binary {}",
        opts.runs,
        load_before,
        load_average(),
        binary.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Every baseline names a case listed before it.
fn check_cases(cases: &[Case]) -> Result<()> {
    for (i, case) in cases.iter().enumerate() {
        if let Some(base) = case.baseline
            && !cases[..i].iter().any(|c| c.name == base)
        {
            bail!(
                "case {:?}: its baseline {base:?} is not a case before it",
                case.name
            );
        }
        if matches!(case.target, Some(Target::Ratio(_))) && case.baseline.is_none() {
            bail!("case {:?}: a ratio target needs a baseline", case.name);
        }
    }
    Ok(())
}

/// The order of the cases in round `round`: 0..n rotated by `round`.
fn rotation(round: usize, n: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |i| (i + round) % n.max(1))
}

fn time_one(binary: &std::path::Path, case: &Case) -> Result<Duration> {
    let start = Instant::now();
    let out = Command::new(binary)
        .args(case.args)
        .env_remove("MEMSPIKE_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("starting {}", binary.display()))?;
    let took = start.elapsed();
    if !out.status.success() {
        bail!(
            "case {:?} (memspike {}) failed ({}):\n{}",
            case.name,
            case.args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(took)
}

/// One case's figures.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    case: Case,
    median: f64,
    min: f64,
    max: f64,
}

impl Row {
    fn of(case: &Case, times: &[Duration]) -> Row {
        let mut s: Vec<f64> = times.iter().map(Duration::as_secs_f64).collect();
        s.sort_by(f64::total_cmp);
        Row {
            case: *case,
            median: median(&s),
            min: s.first().copied().unwrap_or(f64::NAN),
            max: s.last().copied().unwrap_or(f64::NAN),
        }
    }
}

/// The median of sorted values (NaN for none).
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The markdown table of `rows`.
fn table(rows: &[Row]) -> String {
    let mut t = String::from(
        "| case | command | median | min | max | ratio | target |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let base = row
            .case
            .baseline
            .and_then(|b| rows.iter().find(|r| r.case.name == b));
        let ratio = base.map(|b| row.median / b.median);
        let ratio_text = match (ratio, row.case.baseline) {
            (Some(r), Some(b)) => format!("{r:.2}x {b}"),
            _ => String::new(),
        };
        let target = match row.case.target {
            None => String::new(),
            Some(Target::Ratio(limit)) => {
                verdict(format!("≤ {limit}x"), ratio.is_some_and(|r| r <= limit))
            }
            Some(Target::Seconds(limit)) => verdict(format!("< {limit} s"), row.median < limit),
        };
        let _ = writeln!(
            t,
            "| {} | `memspike {}` | {:.3} s | {:.3} s | {:.3} s | {} | {} |",
            row.case.name,
            row.case.args.join(" "),
            row.median,
            row.min,
            row.max,
            ratio_text,
            target
        );
    }
    t
}

fn verdict(target: String, met: bool) -> String {
    format!("{target}: {}", if met { "met" } else { "MISSED" })
}

/// The 1-minute load average (the machine is shared: the figures mean more beside it).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cases_are_consistent() {
        check_cases(CASES).expect("CASES");
        let names: Vec<&str> = CASES.iter().map(|c| c.name).collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
    }

    #[test]
    fn a_baseline_must_come_first_and_a_ratio_needs_one() {
        let a = Case {
            name: "a",
            args: &[],
            baseline: Some("b"),
            target: None,
        };
        let b = Case {
            name: "b",
            args: &[],
            baseline: None,
            target: Some(Target::Ratio(2.0)),
        };
        let err = check_cases(&[a, b]).expect_err("a before b").to_string();
        assert!(err.contains("baseline \"b\""), "{err}");
        let err = check_cases(&[b])
            .expect_err("ratio without baseline")
            .to_string();
        assert!(err.contains("needs a baseline"), "{err}");
        check_cases(&[Case { target: None, ..b }, a]).expect("b then a");
    }

    #[test]
    fn every_round_runs_every_case_once_starting_elsewhere() {
        for round in 0..5 {
            let mut order: Vec<usize> = rotation(round, 3).collect();
            assert_eq!(order[0], round % 3);
            order.sort();
            assert_eq!(order, [0, 1, 2]);
        }
    }

    #[test]
    fn rows_and_the_table() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|&m| Duration::from_millis(m))
                .collect::<Vec<_>>()
        };
        let base = Row::of(&CASES[0], &ms(&[90, 60, 70, 80]));
        assert_eq!((base.min, base.max), (0.06, 0.09));
        assert!((base.median - 0.075).abs() < 1e-9, "{base:?}");
        let traced = Row::of(&CASES[1], &ms(&[120, 110, 400]));
        assert!((traced.median - 0.12).abs() < 1e-9);
        let text = table(&[base.clone(), traced]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(
            lines[2],
            "| run, untraced | `memspike run --limit 32MiB --no-trace` | 0.075 s | 0.060 s | \
             0.090 s |  |  |"
        );
        assert!(
            lines[3].ends_with("| 1.60x run, untraced | ≤ 2x: met |"),
            "{}",
            lines[3]
        );
        let slow = Row::of(&CASES[1], &ms(&[200, 160]));
        assert!(table(&[base, slow]).contains("2.40x run, untraced | ≤ 2x: MISSED"));
        let secs = Case {
            name: "c",
            args: &["compare"],
            baseline: None,
            target: Some(Target::Seconds(3.0)),
        };
        assert!(table(&[Row::of(&secs, &ms(&[2500]))]).contains("< 3 s: met"));
    }

    #[test]
    fn the_median_of_none_is_nan() {
        assert!(median(&[]).is_nan());
        assert_eq!(median(&[1.0]), 1.0);
    }
}
