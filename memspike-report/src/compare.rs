//! The report of a `compare`: one scenario under several policies, a row per policy, the
//! winners marked, and every policy's cgroup usage on one chart.
//!
//! A **winner** survived with the fewest collections of all the survivors (ties share it):
//! the question `compare` answers is which setting survives and what it costs, and a
//! collection is the cost every policy pays in the same coin. The margin to the limit and the
//! GC CPU share are beside it for the reader to weigh.

use serde::{Deserialize, Serialize};

use memspike_model::policy::Policy;

use memspike_model::size::human;

use crate::{
    Document,
    facts::CompareFacts,
    figures as fig,
    format::{from_source, opt_bytes, opt_count, percent},
    outcome::Outcome,
    render::{
        chart::{Chart, Mark, MarkKind, Role, Series},
        view::{Block, Pairs, Tone, View},
    },
    run::{Point, Report},
};

/// One policy's run, in brief.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PolicyRow {
    pub name: String,
    /// The policy, with the keys and spellings of a policies file.
    pub settings: Policy,
    pub outcome: Outcome,
    /// The step it died in.
    pub died_in: Option<String>,
    /// The cgroup's peak, and the limit less it (negative never: the limit caps the peak).
    pub peak_bytes: Option<u64>,
    pub margin_bytes: Option<u64>,
    pub gc_cycles: u32,
    pub gc_cpu_share: Option<f64>,
    /// When eBPF traced the run.
    pub page_faults: Option<u64>,
    pub reclaim_stalls: Option<u64>,
    pub winner: bool,
    pub verdict: String,
    pub duration_ms: f64,
    /// The run's heap and group over time (see [`Point`]).
    pub series: Vec<Point>,
}

impl PolicyRow {
    /// The row of one policy's run.
    pub fn of(policy: &Policy, r: &Report) -> PolicyRow {
        let traced = r.kernel.tracing.is_ebpf();
        let peak = r.cgroup.counters.peak_bytes;
        PolicyRow {
            name: policy.name.clone().unwrap_or_default(),
            settings: policy.clone(),
            outcome: r.outcome,
            died_in: r.died_in.clone(),
            peak_bytes: peak,
            margin_bytes: peak.map(|p| r.limit_bytes.saturating_sub(p)),
            gc_cycles: r.gc_cycles,
            gc_cpu_share: r.gc_cpu_share,
            page_faults: traced
                .then(|| r.kernel.page_faults.as_ref().map(|f| f.total))
                .flatten(),
            reclaim_stalls: traced
                .then(|| r.kernel.reclaim.as_ref().map(|f| f.stalls))
                .flatten(),
            winner: false,
            verdict: r.verdict.clone(),
            duration_ms: r.duration_ms,
            series: r.series.clone(),
        }
    }
}

/// The comparison. Field names are the JSON keys documented in the README.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct CompareReport {
    pub limit_bytes: u64,
    pub scenario: String,
    /// The Go release whose rules every run followed.
    pub runtime: String,
    pub policies: Vec<PolicyRow>,
    /// `--inherit`: the file that sets the limit; every policy then ran in that one group, one
    /// after the other (absent when each ran in a fresh group of its own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_source: Option<String>,
    pub verdict: String,
    /// Set when the comparison stopped early (a stop signal): the policies not run are absent.
    pub error: Option<String>,
}

impl CompareReport {
    /// The comparison of a `compare`'s runs, each built into its report first.
    pub fn build(f: CompareFacts) -> CompareReport {
        let rows = f
            .runs
            .into_iter()
            .map(|r| PolicyRow::of(&r.policy, &Report::build(r.run)))
            .collect::<Vec<_>>();
        let error = f.stopped_by.map(|sig| {
            format!(
                "stopped by {sig} after {} of {} policies",
                rows.len(),
                f.planned.len()
            )
        });
        let mut report = CompareReport::of_rows(
            f.base.limit,
            &f.base.scenario.name,
            &f.base.runtime.to_string(),
            rows,
            error,
        );
        report.limit_source = f.limit_source.map(|p| p.display().to_string());
        report
    }

    /// The report of `rows` (in the order run), with the winners marked and the verdict said.
    pub fn of_rows(
        limit_bytes: u64,
        scenario: &str,
        runtime: &str,
        mut rows: Vec<PolicyRow>,
        error: Option<String>,
    ) -> CompareReport {
        let fewest = rows
            .iter()
            .filter(|r| r.outcome == Outcome::Survived)
            .map(|r| r.gc_cycles)
            .min();
        for r in &mut rows {
            r.winner = r.outcome == Outcome::Survived && Some(r.gc_cycles) == fewest;
        }
        let verdict = verdict(&rows, limit_bytes);
        CompareReport {
            limit_bytes,
            scenario: scenario.to_owned(),
            runtime: runtime.to_owned(),
            policies: rows,
            limit_source: None,
            verdict,
            error,
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
    let survived = rows
        .iter()
        .filter(|r| r.outcome == Outcome::Survived)
        .count();
    let killed = names(&|r| r.outcome == Outcome::OomKilled);
    let limit = human(limit);
    match (survived, rows.len()) {
        (_, 0) => "no policy was run".to_owned(),
        (0, _) => format!("no policy survived the {limit} limit (killed: {killed})"),
        (s, n) => {
            let winners = names(&|r| r.winner);
            let cycles = rows.iter().find(|r| r.winner).map_or(0, |r| r.gc_cycles);
            let mut v = format!(
                "{s} of {n} policies survived the {limit} limit; the cheapest survivor: {winners} ({cycles} GC cycles)"
            );
            if !killed.is_empty() {
                v.push_str(&format!("; killed: {killed}"));
            }
            v
        }
    }
}

impl Document for CompareReport {
    fn view(&self) -> View {
        let rows = self
            .policies
            .iter()
            .map(|r| {
                vec![
                    format!("{}{}", if r.winner { "★ " } else { "" }, r.name),
                    r.outcome.headline().to_lowercase(),
                    r.died_in.clone().unwrap_or_else(|| "-".to_owned()),
                    opt_bytes(r.peak_bytes),
                    opt_bytes(r.margin_bytes),
                    r.gc_cycles.to_string(),
                    percent(r.gc_cpu_share),
                    opt_count(r.page_faults),
                    opt_count(r.reclaim_stalls),
                ]
            })
            .collect();
        let mut about = Pairs::default();
        about.row(&fig::SCENARIO, self.scenario.clone());
        about.row(
            &fig::LIMIT,
            format!(
                "{}{}",
                human(self.limit_bytes),
                from_source(self.limit_source.as_deref())
            ),
        );
        if self.limit_source.is_some() {
            about.row(
                &fig::GROUPS,
                "--inherit: every policy ran in memspike's own group, one after the other",
            );
        }
        about.row(&fig::RUNTIME, format!("{} rules", self.runtime));
        about.row(
            &fig::WINNER,
            "★ survived with the fewest GC cycles of all survivors",
        );
        View {
            headline: format!(
                "memspike compare: {} policies, scenario {}, limit {}",
                self.policies.len(),
                self.scenario,
                human(self.limit_bytes)
            ),
            tone: Tone::Neutral,
            blocks: vec![
                about.block(),
                Block::Grid {
                    caption: "policies".to_owned(),
                    header: [
                        "policy",
                        "outcome",
                        "died in",
                        fig::CGROUP_PEAK.label,
                        "margin",
                        fig::NUM_GC.label,
                        "GC CPU",
                        fig::PAGE_FAULTS.label,
                        fig::RECLAIM_STALLS.label,
                    ]
                    .map(str::to_owned)
                    .to_vec(),
                    rows,
                },
            ],
            error: self.error.clone(),
            verdict: self.verdict.clone(),
        }
    }

    /// Every policy's cgroup usage over its own run (t = 0 when its worker was ready), the
    /// limit, and each kill marked.
    fn chart(&self) -> Option<Chart> {
        Some(self.picture())
    }
}

impl CompareReport {
    fn picture(&self) -> Chart {
        let mut lines: Vec<Series> = self
            .policies
            .iter()
            .enumerate()
            .map(|(i, r)| Series {
                role: Role::Policy(i),
                label: r.name.clone(),
                points: r
                    .series
                    .iter()
                    .filter_map(|p| p.cgroup_usage_bytes.map(|u| (p.t_ms, u as f64)))
                    .collect(),
            })
            .collect();
        let t_end = lines
            .iter()
            .flat_map(|s| s.points.last().map(|p| p.0))
            .fold(0.0, f64::max);
        lines.push(Series::limit(self.limit_bytes, t_end));
        let marks = self
            .policies
            .iter()
            .filter(|r| r.outcome == Outcome::OomKilled)
            .filter_map(|r| {
                Some(Mark {
                    t_ms: r.series.last()?.t_ms,
                    kind: MarkKind::Oom,
                    label: format!("{} killed", r.name),
                })
            })
            .collect();
        Chart {
            title: format!(
                "cgroup usage per policy: scenario {}, limit {}",
                self.scenario,
                human(self.limit_bytes)
            ),
            x_label: "ms since each policy's worker was ready".to_owned(),
            stack: Vec::new(),
            lines,
            marks,
            rate: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memspike_model::policy_set;

    fn row(name: &str, outcome: Outcome, cycles: u32) -> PolicyRow {
        let policy = policy_set::by_name(name).unwrap();
        PolicyRow {
            name: name.to_owned(),
            settings: policy.clone(),
            outcome,
            died_in: (outcome == Outcome::OomKilled).then(|| "remainder".to_owned()),
            peak_bytes: Some(30 << 20),
            margin_bytes: Some(2 << 20),
            gc_cycles: cycles,
            gc_cpu_share: Some(0.01),
            page_faults: None,
            reclaim_stalls: None,
            winner: false,
            verdict: String::new(),
            duration_ms: 1.0,
            series: Vec::new(),
        }
    }

    #[test]
    fn the_cheapest_survivors_win_and_the_killed_are_named() {
        let r = CompareReport::of_rows(
            32 << 20,
            "seed",
            "go1.27",
            vec![
                row("gogc100", Outcome::OomKilled, 1),
                row("gc-after-release", Outcome::Survived, 2),
                row("memlimit90", Outcome::Survived, 2),
                row("gogc50", Outcome::Survived, 3),
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
            "3 of 4 policies survived the 32.0 MiB limit; the cheapest survivor: gc-after-release, memlimit90 (2 GC cycles); killed: gogc100"
        );
        let text = r.text();
        assert!(text.contains("★ memlimit90"), "{text}");
        assert!(!text.contains("★ gogc50"), "{text}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["policies"][0]["outcome"], "oom_killed");
        assert_eq!(json["policies"][1]["settings"]["gc_after_release"], true);
        assert_eq!(json["policies"][3]["settings"]["gogc"], "50");
    }

    #[test]
    fn nobody_surviving_is_said_plainly() {
        let r = CompareReport::of_rows(
            32 << 20,
            "seed",
            "go1.27",
            vec![row("gogc100", Outcome::OomKilled, 1)],
            None,
        );
        assert!(!r.policies[0].winner);
        assert_eq!(
            r.verdict,
            "no policy survived the 32.0 MiB limit (killed: gogc100)"
        );
    }
}
