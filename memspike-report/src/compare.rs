//! The report of a `compare`: one program under several policies, each run one or more
//! times, a row per policy, the winners marked, and every policy's cgroup usage on one chart.
//! The program is the simulated one (a scenario, [`CompareFacts`]) or the user's own command
//! ([`CommandCompareFacts`]); both give the same rows, built from each run's own report.
//!
//! A row counts its survivals ("2/3"): a policy whose outcome flipped between runs has no
//! outcome, only the count. Its other figures are medians over its runs.
//!
//! A **winner** survived every run with the least GC CPU of all such policies (ties share it;
//! where the GC CPU is unknown or equal, the fewest collections): the question `compare`
//! answers is which setting survives and what it costs. The margin to the limit is beside it
//! for the reader to weigh.

use serde::{Deserialize, Serialize};

use memspike_model::{policy::Policy, policy_set::NotApplicable, predict::Prediction, size::human};

use crate::{
    Document,
    exec::ExecReport,
    facts::{CommandCompareFacts, CompareFacts, PolicyRun, Signal},
    figures as fig,
    format::{from_source, millis, opt_bytes, opt_count, percent},
    outcome::Outcome,
    render::{
        chart::{Chart, Mark, MarkKind, Role, Series},
        story::{self, Band, StoryAxis},
        view::{Block, Pairs, Tone, View},
    },
    run::Report,
    stats::{median, median_f},
};

/// One run of a policy, in brief: what a row aggregates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Trial {
    pub outcome: Outcome,
    /// The simulated program's step it died in.
    pub died_in: Option<String>,
    /// When it died, ms after it started (the worker was ready, or the command started).
    pub died_at_ms: Option<f64>,
    /// The cgroup's peak.
    pub peak_bytes: Option<u64>,
    /// Collections the runtime ran (simulated) or traced (a real program; `null` when no
    /// runtime trace was recognised).
    pub gc_cycles: Option<u32>,
    /// The collector's share of the CPU (a real Go program: gctrace's, since it started).
    pub gc_cpu_share: Option<f64>,
    /// When eBPF traced the run.
    pub page_faults: Option<u64>,
    pub reclaim_stalls: Option<u64>,
    /// How the process ended (`exit 0`, `SIGKILL`).
    pub exit: String,
    /// The OOM killer's victim, `pid N (comm)`, when there was one.
    pub victim: Option<String>,
    pub duration_ms: f64,
    pub verdict: String,
    /// The end of a real program's stderr (its runtime's trace left out); absent when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stderr_tail: String,
}

impl Trial {
    /// A simulated run, from its report.
    pub fn of_run(r: &Report) -> Trial {
        let killed = r.outcome == Outcome::OomKilled;
        Trial {
            outcome: r.outcome,
            died_in: r.died_in.clone(),
            died_at_ms: killed.then(|| r.series.last().map(|p| p.t_ms)).flatten(),
            peak_bytes: r.cgroup.counters.peak_bytes,
            gc_cycles: Some(r.gc_cycles),
            gc_cpu_share: r.gc_cpu_share,
            page_faults: traced(&r.kernel, |k| k.page_faults.as_ref().map(|f| f.total)),
            reclaim_stalls: traced(&r.kernel, |k| k.reclaim.as_ref().map(|f| f.stalls)),
            exit: r.worker.exit.clone(),
            victim: victim(&r.kernel),
            duration_ms: r.duration_ms,
            verdict: r.verdict.clone(),
            stderr_tail: String::new(),
        }
    }

    /// A real program's run, from its report.
    pub fn of_exec(r: &ExecReport) -> Trial {
        let last = r.runtime_cycles.as_ref().and_then(|c| c.last());
        Trial {
            outcome: r.outcome,
            died_in: None,
            died_at_ms: (r.outcome == Outcome::OomKilled).then_some(r.duration_ms),
            peak_bytes: r.cgroup.counters.peak_bytes,
            gc_cycles: r.gc_cycles,
            gc_cpu_share: last.and_then(|c| c.cycle.go).map(|g| g.cpu_percent / 100.0),
            page_faults: traced(&r.kernel, |k| k.page_faults.as_ref().map(|f| f.total)),
            reclaim_stalls: traced(&r.kernel, |k| k.reclaim.as_ref().map(|f| f.stalls)),
            exit: r.worker.exit.clone(),
            victim: victim(&r.kernel),
            duration_ms: r.duration_ms,
            verdict: r.verdict.clone(),
            stderr_tail: r.stderr_tail.clone(),
        }
    }
}

/// A figure only eBPF gives, `None` when the run was not traced.
fn traced(
    k: &crate::run::KernelSection,
    figure: impl Fn(&crate::run::KernelSection) -> Option<u64>,
) -> Option<u64> {
    k.tracing.is_ebpf().then(|| figure(k)).flatten()
}

fn victim(k: &crate::run::KernelSection) -> Option<String> {
    k.oom_victim
        .as_ref()
        .map(|v| format!("pid {} ({})", v.pid, v.comm))
}

/// The cgroup's usage at one moment of a run: `t_ms` after it started, and where it stood on
/// the scenario's story axis ([`StoryAxis`], percent; `null` for a real program).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UsagePoint {
    pub t_ms: f64,
    #[serde(default)]
    pub story: Option<f64>,
    pub usage_bytes: u64,
}

/// One policy's runs, in brief.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PolicyRow {
    pub name: String,
    /// The policy, with the keys and spellings of a policies file.
    pub settings: Policy,
    /// What its runtime was given: the environment's variables (a real program), or `null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Vec<String>>,
    /// How many times it ran, and survived.
    pub runs: u32,
    pub survived: u32,
    /// The outcome when every run had the same, else `null`: the outcome flipped.
    pub outcome: Option<Outcome>,
    /// The step most of its killed runs died in (simulated), and the median time they died.
    pub died_in: Option<String>,
    pub died_at_ms: Option<f64>,
    /// The median cgroup peak, and the limit less it.
    pub peak_bytes: Option<u64>,
    pub margin_bytes: Option<u64>,
    /// Medians over its runs.
    pub gc_cycles: Option<u32>,
    pub gc_cpu_share: Option<f64>,
    pub page_faults: Option<u64>,
    pub reclaim_stalls: Option<u64>,
    pub duration_ms: f64,
    pub winner: bool,
    /// What the model predicts for the policy over timing draws: a scenario's, `null` for a
    /// real program (no model stands for it).
    pub prediction: Option<Prediction>,
    /// Every run, in order.
    pub trials: Vec<Trial>,
    /// The first run's cgroup usage over time, for the chart.
    pub usage: Vec<UsagePoint>,
    /// Where on the scenario's story axis the kernel killed its first run (percent; absent
    /// when it was not killed, or ran a real program).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub killed_at: Option<f64>,
}

impl PolicyRow {
    /// The row of a policy's `trials` (at least one), with `usage` from its first run.
    pub fn of(
        policy: &Policy,
        limit: u64,
        trials: Vec<Trial>,
        usage: Vec<UsagePoint>,
    ) -> PolicyRow {
        let runs = trials.len() as u32;
        let survived = trials
            .iter()
            .filter(|t| t.outcome == Outcome::Survived)
            .count() as u32;
        let first = trials.first().map(|t| t.outcome);
        let outcome = first.filter(|o| trials.iter().all(|t| t.outcome == *o));
        let killed: Vec<&Trial> = trials
            .iter()
            .filter(|t| t.outcome == Outcome::OomKilled)
            .collect();
        let peak = median(trials.iter().filter_map(|t| t.peak_bytes));
        PolicyRow {
            name: policy.name.clone().unwrap_or_default(),
            settings: policy.clone(),
            environment: None,
            runs,
            survived,
            outcome,
            died_in: most_common(killed.iter().filter_map(|t| t.died_in.clone())),
            died_at_ms: median_f(killed.iter().filter_map(|t| t.died_at_ms)),
            peak_bytes: peak,
            margin_bytes: peak.map(|p| limit.saturating_sub(p)),
            gc_cycles: median(trials.iter().filter_map(|t| t.gc_cycles.map(u64::from)))
                .map(|n| n as u32),
            gc_cpu_share: median_f(trials.iter().filter_map(|t| t.gc_cpu_share)),
            page_faults: median(trials.iter().filter_map(|t| t.page_faults)),
            reclaim_stalls: median(trials.iter().filter_map(|t| t.reclaim_stalls)),
            duration_ms: median_f(trials.iter().map(|t| t.duration_ms)).unwrap_or(0.0),
            winner: false,
            prediction: None,
            trials,
            usage,
            killed_at: None,
        }
    }

    /// The row of one simulated run, from its report.
    pub fn of_report(policy: &Policy, r: &Report) -> PolicyRow {
        PolicyRow {
            prediction: r.prediction.clone(),
            killed_at: r.killed_at,
            ..PolicyRow::of(policy, r.limit_bytes, vec![Trial::of_run(r)], usage_of(r))
        }
    }

    /// Survived every run.
    fn always_survived(&self) -> bool {
        self.runs > 0 && self.survived == self.runs
    }

    /// Can win: survived every run, and the model, where there is one, never saw it die.
    fn sure_survivor(&self) -> bool {
        self.always_survived() && self.prediction.as_ref().is_none_or(|p| p.oom_killed == 0)
    }

    /// What the row says of its outcome: `survived`, `oom-killed`, or `2/3 survived`.
    pub fn outcome_text(&self) -> String {
        match self.outcome {
            Some(o) if self.runs == 1 => o.headline().to_lowercase(),
            Some(o) => format!(
                "{} {}/{}",
                o.headline().to_lowercase(),
                self.runs,
                self.runs
            ),
            None => format!("{}/{} survived", self.survived, self.runs),
        }
    }

    /// What winning is measured in: GC CPU (to 0.1 %), then collections; unknown is dearest.
    fn cost(&self) -> (u64, u32) {
        (
            self.gc_cpu_share
                .map_or(UNKNOWN_COST.0, |s| (s * 1000.0).round() as u64),
            self.gc_cycles.unwrap_or(UNKNOWN_COST.1),
        )
    }
}

/// A simulated run's cgroup usage over time.
fn usage_of(r: &Report) -> Vec<UsagePoint> {
    r.series
        .iter()
        .filter_map(|p| {
            p.cgroup_usage_bytes.map(|u| UsagePoint {
                t_ms: p.t_ms,
                story: p.story,
                usage_bytes: u,
            })
        })
        .collect()
}

/// The cost of a row whose GC CPU and collections are both unknown.
const UNKNOWN_COST: (u64, u32) = (u64::MAX, u32::MAX);

/// The value seen most often (the first of equals), `None` for none.
fn most_common(values: impl Iterator<Item = String>) -> Option<String> {
    let v: Vec<String> = values.collect();
    v.iter()
        .max_by_key(|x| {
            (
                v.iter().filter(|y| y == x).count(),
                std::cmp::Reverse(v.iter().position(|y| y == *x)),
            )
        })
        .cloned()
}

/// What every policy ran: the simulated program's scenario, or the user's command.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    /// The simulated program: the scenario's name, the Go release whose rules it followed, and
    /// the program it stood for (the reference, or a calibrated one).
    Scenario {
        name: String,
        runtime: String,
        profile: String,
    },
    /// A real program: the command and its arguments.
    Command(Vec<String>),
}

impl Subject {
    /// The simulated program of `e`.
    pub fn of(e: &memspike_model::experiment::Experiment) -> Subject {
        Subject::Scenario {
            name: e.scenario.name.clone(),
            runtime: e.runtime.to_string(),
            profile: memspike_model::profile::describe(e.profile.as_ref()),
        }
    }

    /// Its rows in a report's settings: the scenario and the release's rules, or the command.
    pub(crate) fn rows(&self, about: &mut Pairs) {
        match self {
            Subject::Scenario {
                name,
                runtime,
                profile,
            } => {
                about.row(&fig::SCENARIO, name.clone());
                about.row(&fig::RUNTIME, format!("{runtime} rules"));
                about.row(&fig::PROFILE, profile.clone());
            }
            Subject::Command(command) => about.row(&fig::COMMAND, command.join(" ")),
        }
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Scenario { name, .. } => write!(f, "scenario {name}"),
            Subject::Command(command) => write!(f, "`{}`", command.join(" ")),
        }
    }
}

/// The comparison. Field names are the JSON keys (docs/reference/report.schema.json).
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct CompareReport {
    pub limit_bytes: u64,
    pub subject: Subject,
    /// Runs per policy, each in a fresh group.
    pub repeats: u32,
    pub policies: Vec<PolicyRow>,
    /// Built-in policies left out because the program's runtime cannot take them from its
    /// environment, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_applicable: Vec<NotApplicable>,
    /// `--inherit`: the file that sets the limit; every run then ran in that one group, one
    /// after the other (absent when each ran in a fresh group of its own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_source: Option<String>,
    pub verdict: String,
    /// Set when the comparison stopped early (a stop signal): the runs not made are absent.
    pub error: Option<String>,
    /// The scenario's steps, the chart's story axis (empty for a real program: wall time).
    #[serde(skip)]
    bands: Vec<Band>,
}

/// What a row takes from its policy's first run besides the trial.
struct First {
    usage: Vec<UsagePoint>,
    killed_at: Option<f64>,
    environment: Option<Vec<String>>,
    prediction: Option<Prediction>,
}

/// The rows of `runs` (a policy's runs next to each other, in order): `brief` gives each
/// run's trial and what the row takes from its first run.
fn rows<R>(
    runs: Vec<PolicyRun<R>>,
    limit: u64,
    mut brief: impl FnMut(R) -> (Trial, First),
) -> Vec<PolicyRow> {
    /// One policy's runs so far.
    struct Runs {
        policy: Policy,
        trials: Vec<Trial>,
        first: First,
    }
    let mut grouped: Vec<Runs> = Vec::new();
    for r in runs {
        let (trial, first) = brief(r.run);
        match grouped.last_mut() {
            Some(g) if g.policy == r.policy => g.trials.push(trial),
            _ => grouped.push(Runs {
                policy: r.policy,
                trials: vec![trial],
                first,
            }),
        }
    }
    grouped
        .into_iter()
        .map(|g| PolicyRow {
            environment: g.first.environment,
            prediction: g.first.prediction,
            killed_at: g.first.killed_at,
            ..PolicyRow::of(&g.policy, limit, g.trials, g.first.usage)
        })
        .collect()
}

/// "stopped by SIGINT after 4 of 15 runs".
fn stopped(sig: Option<Signal>, made: usize, planned: usize) -> Option<String> {
    sig.map(|sig| format!("stopped by {sig} after {made} of {planned} runs"))
}

impl CompareReport {
    /// The comparison of a simulated `compare`'s runs, each built into its report first.
    pub fn build(f: CompareFacts) -> CompareReport {
        let limit = f.base.limit;
        let made = f.runs.len();
        let planned = f.planned.len() * f.repeats.max(1) as usize;
        let rows = rows(f.runs, limit, |run| {
            let r = Report::build(run);
            let first = First {
                usage: usage_of(&r),
                killed_at: r.killed_at,
                environment: None,
                prediction: r.prediction.clone(),
            };
            (Trial::of_run(&r), first)
        });
        let mut report = CompareReport::of_rows(
            limit,
            Subject::of(&f.base),
            f.repeats.max(1),
            rows,
            stopped(f.stopped_by, made, planned),
        );
        report.limit_source = f.limit_source.map(|p| p.display().to_string());
        report.bands = StoryAxis::of(&f.base).bands().to_vec();
        report
    }

    /// The comparison of a `compare -- CMD`'s runs.
    pub fn build_command(f: CommandCompareFacts) -> CompareReport {
        let made = f.runs.len();
        let planned = f.planned.len() * f.repeats.max(1) as usize;
        let rows = rows(f.runs, f.limit_bytes, |run| {
            let usage = run
                .timeline
                .samples
                .iter()
                .filter_map(|s| {
                    s.reading.usage_bytes.map(|u| UsagePoint {
                        t_ms: s.t_ms as f64,
                        story: None,
                        usage_bytes: u,
                    })
                })
                .collect();
            let first = First {
                usage,
                killed_at: None,
                environment: Some(run.environment.clone()),
                prediction: None,
            };
            (Trial::of_exec(&ExecReport::build(run)), first)
        });
        let mut report = CompareReport::of_rows(
            f.limit_bytes,
            Subject::Command(f.command),
            f.repeats.max(1),
            rows,
            stopped(f.stopped_by, made, planned),
        );
        report.not_applicable = f.not_applicable;
        report.limit_source = f.limit_source.map(|p| p.display().to_string());
        report
    }

    /// The report of `rows` (in the order run), with the winners marked and the verdict said.
    pub fn of_rows(
        limit_bytes: u64,
        subject: Subject,
        repeats: u32,
        mut rows: Vec<PolicyRow>,
        error: Option<String>,
    ) -> CompareReport {
        // No cost measured (no runtime trace): nobody is cheaper than anybody.
        let cheapest = rows
            .iter()
            .filter(|r| r.sure_survivor())
            .map(PolicyRow::cost)
            .min()
            .filter(|c| *c != UNKNOWN_COST);
        for r in &mut rows {
            r.winner = r.sure_survivor() && Some(r.cost()) == cheapest;
        }
        let verdict = verdict(&rows, limit_bytes);
        CompareReport {
            limit_bytes,
            subject,
            repeats,
            policies: rows,
            not_applicable: Vec::new(),
            limit_source: None,
            verdict,
            error,
            bands: Vec::new(),
        }
    }
}

fn verdict(rows: &[PolicyRow], limit: u64) -> String {
    let names = |pick: &dyn Fn(&PolicyRow) -> bool| {
        rows.iter()
            .filter(|r| pick(r))
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let survived = rows.iter().filter(|r| r.always_survived()).count();
    let killed = names(&|r| r.outcome == Some(Outcome::OomKilled));
    let out_of_heap = names(&|r| r.outcome == Some(Outcome::OutOfHeap));
    let otherwise: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            let mut ends: Vec<&str> = Vec::new();
            for t in &r.trials {
                if !matches!(
                    t.outcome,
                    Outcome::Survived | Outcome::OomKilled | Outcome::OutOfHeap
                ) && !ends.contains(&t.exit.as_str())
                {
                    ends.push(&t.exit);
                }
            }
            ends.into_iter().map(move |e| format!("{} ({e})", r.name))
        })
        .collect();
    let flipped: Vec<String> = rows
        .iter()
        .filter(|r| r.outcome.is_none())
        .map(|r| format!("{} ({}/{})", r.name, r.survived, r.runs))
        .collect();
    let every = if rows.iter().any(|r| r.runs > 1) {
        " in every run"
    } else {
        ""
    };
    let limit = human(limit);
    let mut v = match (survived, rows.len()) {
        (_, 0) => return "no policy was run".to_owned(),
        (0, _) => format!("no policy survived the {limit} limit{every}"),
        (s, n) if !rows.iter().any(|r| r.winner) => format!(
            "{s} of {n} policies survived the {limit} limit{every}: {}; no GC cost was measured (no runtime trace), so none is the cheapest",
            names(&|r| r.always_survived())
        ),
        (s, n) => {
            let winner = rows.iter().find(|r| r.winner);
            let cost = winner.map_or(String::new(), |w| {
                let cycles = w
                    .gc_cycles
                    .map_or("? GC cycles".to_owned(), |c| format!("{c} GC cycles"));
                match w.gc_cpu_share {
                    Some(share) => format!(" ({cycles}, {} GC CPU)", percent(Some(share))),
                    None => format!(" ({cycles})"),
                }
            });
            format!(
                "{s} of {n} policies survived the {limit} limit{every}; the cheapest survivor: {}{cost}",
                names(&|r| r.winner)
            )
        }
    };
    if !killed.is_empty() {
        v.push_str(&format!("; killed: {killed}"));
    }
    if !out_of_heap.is_empty() {
        v.push_str(&format!(
            "; out of heap (the runtime's own limit ended them, not the kernel): {out_of_heap}"
        ));
    }
    if !flipped.is_empty() {
        v.push_str(&format!(
            "; outcome flipped between runs: {}",
            flipped.join(", ")
        ));
    }
    if !otherwise.is_empty() {
        v.push_str(&format!(
            "; ended neither by surviving nor by an OOM kill: {}",
            otherwise.join(", ")
        ));
    }
    let marginal: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            let p = r.prediction.as_ref().filter(|p| p.marginal())?;
            Some(format!(
                "{} ({}/{} draws survive)",
                r.name, p.survived, p.draws
            ))
        })
        .collect();
    if !marginal.is_empty() {
        v.push_str(&format!(
            "; marginal in the model, where real timing decides (none of these is a safe choice): {}",
            marginal.join(", ")
        ));
    }
    v
}

impl Document for CompareReport {
    fn view(&self) -> View {
        let predicted = self.policies.iter().any(|r| r.prediction.is_some());
        let rows = self
            .policies
            .iter()
            .map(|r| {
                let died = match (&r.died_in, r.died_at_ms) {
                    (Some(step), _) => step.clone(),
                    (None, Some(ms)) => millis(ms),
                    (None, None) => "-".to_owned(),
                };
                let mut exits: Vec<&str> = Vec::new();
                for t in &r.trials {
                    if !exits.contains(&t.exit.as_str()) {
                        exits.push(&t.exit);
                    }
                }
                let mut row = vec![
                    format!("{}{}", if r.winner { "★ " } else { "" }, r.name),
                    r.outcome_text(),
                ];
                if predicted {
                    row.push(
                        r.prediction
                            .as_ref()
                            .map_or("-".to_owned(), Prediction::describe),
                    );
                }
                row.extend([
                    died,
                    opt_bytes(r.peak_bytes),
                    opt_bytes(r.margin_bytes),
                    opt_count(r.gc_cycles.map(u64::from)),
                    percent(r.gc_cpu_share),
                    millis(r.duration_ms),
                    opt_count(r.page_faults),
                    opt_count(r.reclaim_stalls),
                    exits.join(", "),
                ]);
                row
            })
            .collect();
        let mut about = Pairs::default();
        self.subject.rows(&mut about);
        about.row(
            &fig::LIMIT,
            format!(
                "{}{}",
                human(self.limit_bytes),
                from_source(self.limit_source.as_deref())
            ),
        );
        about.row(
            &fig::GROUPS,
            if self.limit_source.is_some() {
                format!(
                    "--inherit: every run ({} per policy) in memspike's own group, one after the other",
                    self.repeats
                )
            } else {
                format!("{} run(s) per policy, each in a fresh group", self.repeats)
            },
        );
        about.row(
            &fig::WINNER,
            if predicted {
                "★ survived every run, and every draw of the model, with the least GC CPU (then the fewest GC cycles)"
            } else {
                "★ survived every run with the least GC CPU (then the fewest GC cycles)"
            },
        );
        let mut blocks = vec![
            about.block(),
            Block::Grid {
                caption: "policies (medians over each policy's runs)".to_owned(),
                header: ["policy", "outcome"]
                    .into_iter()
                    .chain(predicted.then_some(fig::PREDICTION.label))
                    .chain([
                        "died at",
                        fig::CGROUP_PEAK.label,
                        "margin",
                        fig::NUM_GC.label,
                        "GC CPU",
                        fig::WALL_TIME.label,
                        fig::PAGE_FAULTS.label,
                        fig::RECLAIM_STALLS.label,
                        "exit",
                    ])
                    .map(str::to_owned)
                    .collect(),
                rows,
            },
        ];
        if !self.not_applicable.is_empty() {
            blocks.push(Block::Grid {
                caption: "not applicable to this program".to_owned(),
                header: vec!["policy".to_owned(), "why".to_owned()],
                rows: self
                    .not_applicable
                    .iter()
                    .map(|n| vec![n.name.clone(), n.why.clone()])
                    .collect(),
            });
        }
        View {
            headline: format!(
                "memspike compare: {} policies, {}, limit {}",
                self.policies.len(),
                self.subject,
                human(self.limit_bytes)
            ),
            tone: Tone::Neutral,
            blocks,
            error: self.error.clone(),
            verdict: self.verdict.clone(),
        }
    }

    /// Every policy's cgroup usage over its first run (t = 0 when its worker was ready, or
    /// its command started), the limit, and each kill marked.
    fn chart(&self) -> Option<Chart> {
        Some(self.picture())
    }
}

impl CompareReport {
    fn picture(&self) -> Chart {
        let story = !self.bands.is_empty();
        let x = |p: &UsagePoint| p.story.filter(|_| story).unwrap_or(p.t_ms);
        let mut lines: Vec<Series> = self
            .policies
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut points: Vec<(f64, f64)> = r
                    .usage
                    .iter()
                    .map(|p| (x(p), p.usage_bytes as f64))
                    .collect();
                // The kernel killed it with the group at its limit.
                points.extend(r.killed_at.map(|at| (at, self.limit_bytes as f64)));
                Series {
                    role: Role::Policy(i),
                    label: r.name.clone(),
                    points,
                }
            })
            .collect();
        let x_end = if story {
            story::END
        } else {
            lines
                .iter()
                .flat_map(|s| s.points.last().map(|p| p.0))
                .fold(0.0, f64::max)
        };
        lines.push(Series::level(Role::Limit, self.limit_bytes, x_end));
        let marks = self
            .policies
            .iter()
            .filter(|r| r.trials.first().map(|t| t.outcome) == Some(Outcome::OomKilled))
            .filter_map(|r| {
                let at = r.killed_at.or_else(|| r.usage.last().map(x))?;
                Some(Mark {
                    x: at,
                    kind: MarkKind::Oom,
                    label: format!("{} killed", r.name),
                })
            })
            .collect();
        let x_label = match self.subject {
            Subject::Scenario { .. } => {
                "the scenario's steps, the same for every policy: half the width by the bytes each allocates, half shared equally"
            }
            Subject::Command(_) => "ms since each policy's command started (wall time)",
        };
        Chart {
            title: format!(
                "cgroup usage per policy (first run): {}, limit {}",
                self.subject,
                human(self.limit_bytes)
            ),
            x_label: x_label.to_owned(),
            bands: self.bands.clone(),
            stack: Vec::new(),
            lines,
            marks,
            faults: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memspike_model::policy_set;

    fn trial(outcome: Outcome, cycles: u32, cpu: f64) -> Trial {
        let killed = outcome == Outcome::OomKilled;
        Trial {
            outcome,
            died_in: killed.then(|| "remainder".to_owned()),
            died_at_ms: killed.then_some(14.0),
            peak_bytes: Some(30 << 20),
            gc_cycles: Some(cycles),
            gc_cpu_share: Some(cpu),
            page_faults: None,
            reclaim_stalls: None,
            exit: if killed { "SIGKILL" } else { "exit 0" }.to_owned(),
            victim: None,
            duration_ms: 1.0,
            verdict: String::new(),
            stderr_tail: String::new(),
        }
    }

    fn row(name: &str, trials: Vec<Trial>) -> PolicyRow {
        PolicyRow::of(
            &policy_set::by_name(name).unwrap(),
            32 << 20,
            trials,
            Vec::new(),
        )
    }

    fn scenario() -> Subject {
        Subject::of(&memspike_model::experiment::Experiment::seed(32 << 20))
    }

    #[test]
    fn the_cheapest_survivors_win_and_the_killed_are_named() {
        let r = CompareReport::of_rows(
            32 << 20,
            scenario(),
            1,
            vec![
                row("gogc100", vec![trial(Outcome::OomKilled, 1, 0.01)]),
                row("gc-after-release", vec![trial(Outcome::Survived, 2, 0.01)]),
                row("memlimit90", vec![trial(Outcome::Survived, 2, 0.01)]),
                row("gogc50", vec![trial(Outcome::Survived, 3, 0.01)]),
            ],
            None,
        );
        let winners: Vec<&str> = r
            .policies
            .iter()
            .filter(|p| p.winner)
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(winners, ["gc-after-release", "memlimit90"]);
        assert_eq!(
            r.verdict,
            "3 of 4 policies survived the 32.0 MiB limit; the cheapest survivor: gc-after-release, memlimit90 (2 GC cycles, 1.00 % GC CPU); killed: gogc100"
        );
        let text = r.text();
        assert!(text.contains("★ memlimit90"), "{text}");
        assert!(!text.contains("★ gogc50"), "{text}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["policies"][0]["outcome"], "oom_killed");
        assert_eq!(json["policies"][1]["settings"]["gc_after_release"], true);
        assert_eq!(json["policies"][3]["settings"]["gogc"], "50");
    }

    /// The least GC CPU wins, before the fewest cycles.
    #[test]
    fn gc_cpu_decides_before_cycles() {
        let r = CompareReport::of_rows(
            32 << 20,
            scenario(),
            1,
            vec![
                row("gogc50", vec![trial(Outcome::Survived, 2, 0.30)]),
                row("memlimit90", vec![trial(Outcome::Survived, 5, 0.05)]),
            ],
            None,
        );
        assert!(!r.policies[0].winner && r.policies[1].winner);
    }

    /// A policy whose outcome flipped is shown as a count, never rounded to a verdict, and
    /// never wins.
    #[test]
    fn flips_are_counts_and_never_win() {
        let flip = row(
            "memlimit90",
            vec![
                trial(Outcome::Survived, 2, 0.01),
                trial(Outcome::OomKilled, 1, 0.01),
                trial(Outcome::Survived, 2, 0.01),
            ],
        );
        assert_eq!((flip.survived, flip.runs, flip.outcome), (2, 3, None));
        assert_eq!(flip.outcome_text(), "2/3 survived");
        let sure = row("gogc50", vec![trial(Outcome::Survived, 4, 0.2); 3]);
        assert_eq!(sure.outcome_text(), "survived 3/3");
        let r = CompareReport::of_rows(32 << 20, scenario(), 3, vec![flip, sure], None);
        assert!(!r.policies[0].winner && r.policies[1].winner);
        assert!(
            r.verdict
                .contains("outcome flipped between runs: memlimit90 (2/3)"),
            "{}",
            r.verdict
        );
        assert!(
            r.verdict
                .starts_with("1 of 2 policies survived the 32.0 MiB limit in every run"),
            "{}",
            r.verdict
        );
        assert!(r.text().contains("2/3 survived"));
    }

    /// Issue 18: a policy that survived every run but that the model calls marginal is shown
    /// as marginal and never wins, however cheap; the sure survivor does.
    #[test]
    fn a_marginal_prediction_never_wins() {
        let predicted = |name, survived| PolicyRow {
            prediction: Some(Prediction {
                draws: 20,
                survived,
                oom_killed: 20 - survived,
                killed_in: Default::default(),
            }),
            ..row(name, vec![trial(Outcome::Survived, 2, 0.01); 2])
        };
        let cheap = predicted("memlimit90", 6);
        let sure = PolicyRow {
            gc_cpu_share: Some(0.2),
            ..predicted("gogc50", 20)
        };
        let r = CompareReport::of_rows(32 << 20, scenario(), 2, vec![cheap, sure], None);
        assert!(!r.policies[0].winner && r.policies[1].winner);
        assert!(
            r.verdict.ends_with(
                "marginal in the model, where real timing decides (none of these is a safe choice): memlimit90 (6/20 draws survive)"
            ),
            "{}",
            r.verdict
        );
        let text = r.text();
        assert!(text.contains("marginal: survives 6/20 draws"), "{text}");
        assert!(text.contains("survives (20/20 draws)"), "{text}");
    }

    #[test]
    fn medians_are_over_each_policys_runs() {
        let mut runs = vec![trial(Outcome::OomKilled, 1, 0.01); 3];
        runs[0].peak_bytes = Some(10);
        runs[1].peak_bytes = Some(30);
        runs[2].peak_bytes = Some(20);
        runs[2].died_at_ms = Some(99.0);
        let r = row("gogc100", runs);
        assert_eq!(r.peak_bytes, Some(20));
        assert_eq!(r.margin_bytes, Some((32 << 20) - 20));
        assert_eq!(r.died_at_ms, Some(14.0));
        assert_eq!(r.died_in.as_deref(), Some("remainder"));
    }

    #[test]
    fn nobody_surviving_is_said_plainly() {
        let r = CompareReport::of_rows(
            32 << 20,
            scenario(),
            1,
            vec![row("gogc100", vec![trial(Outcome::OomKilled, 1, 0.0)])],
            None,
        );
        assert!(!r.policies[0].winner);
        assert_eq!(
            r.verdict,
            "no policy survived the 32.0 MiB limit; killed: gogc100"
        );
    }

    /// Regression: a program with no runtime trace has no GC cost; every survivor was marked
    /// the cheapest, "(? GC cycles)".
    #[test]
    fn without_a_measured_cost_nobody_wins() {
        let untraced = |name| {
            let mut t = trial(Outcome::Survived, 0, 0.0);
            (t.gc_cycles, t.gc_cpu_share) = (None, None);
            row(name, vec![t])
        };
        let r = CompareReport::of_rows(
            32 << 20,
            Subject::Command(vec!["python3".into()]),
            1,
            vec![untraced("gogc100"), untraced("gogc50")],
            None,
        );
        assert!(r.policies.iter().all(|p| !p.winner));
        assert!(r.verdict.contains("none is the cheapest"), "{}", r.verdict);
    }

    /// A run that ended neither way (a non-zero exit) is named, not blamed on the limit.
    #[test]
    fn other_endings_are_named() {
        let mut t = trial(Outcome::Exited, 0, 0.0);
        t.exit = "exited with status 1".into();
        let r =
            CompareReport::of_rows(32 << 20, scenario(), 1, vec![row("gogc100", vec![t])], None);
        assert!(
            r.verdict.ends_with(
                "ended neither by surviving nor by an OOM kill: gogc100 (exited with status 1)"
            ),
            "{}",
            r.verdict
        );
    }
}
