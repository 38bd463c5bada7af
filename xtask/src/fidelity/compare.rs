//! The comparison rules: when a cell's real runs are stable, and when the simulation agrees.
//!
//! - A cell is **stable** when every real run ended the same way (outcome) in the same phase.
//!   An unstable cell is `timing-dependent`: it never fails the run, and the table shows how
//!   close the simulation came (its cgroup peak against the limit).
//! - On a stable cell the simulation **agrees** when its outcome is the same, its phase (the
//!   step it was killed in) is the same, and its next GC after the spike is within
//!   [`NEXT_GC_TOLERANCE`] of the median of the real runs' `NextGC` on their `phase=spike`
//!   line. The next GC is compared only when the real program finished the spike; "no
//!   collection planned" matches only itself.
//! - Every real OOM kill must have been the program's: the kernel's victim is its pid.
//! - On the seed's cell (32 MiB, spike 0.9, GOGC 100) the runtime's own trace must show the
//!   goal after the spike's cycle at about twice what it left live ([`SEED_GOAL_RATIO`]).
//! - The model's **prediction** (its draws over real timing) is judged on outcomes alone
//!   ([`Call`]): on a cell whose real runs all ended the same way it must be unanimous and
//!   right; a false survival (every draw survives, every real run died) fails the harness. On a
//!   cell whose runs flipped it should be marginal, and the Brier score measures how far its
//!   survival rate was from the real one.
//! - Where the simulation's run ends otherwise than every real run, but draws of its prediction
//!   end as the real runs did (outcome and step), the cell is **run alone**, not a
//!   disagreement: the run took one timing (and, at the limit's edge, one kernel's reclaim), the
//!   prediction covers the real ending, and every report shows it beside the run. Its next GC
//!   must still agree.

use std::collections::BTreeMap;

use super::grid::Cell;
use super::observe::{NextGc, Outcome, Prediction, RealRun, SimRun};

/// The largest relative difference of the next GC after the spike that still agrees.
pub const NEXT_GC_TOLERANCE: f64 = 0.03;
/// The seed's goal after the spike over what the spike's cycle left live, in gctrace.
pub const SEED_GOAL_RATIO: std::ops::Range<f64> = 1.8..2.2;

/// A cell's runs: the real program's (each a run or why it failed) and the simulation's.
#[derive(Debug)]
pub struct CellRuns {
    pub cell: Cell,
    pub real: Vec<Result<RealRun, String>>,
    pub sim: Result<SimRun, String>,
}

/// What the comparison concluded for a cell.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Agree,
    /// A stable cell the simulation got wrong: the reasons.
    Disagree(Vec<String>),
    /// The real runs did not all end the same way.
    TimingDependent,
    /// The simulation's run ended otherwise than every real run, but draws of the model's
    /// prediction ended as they did: the reasons the run alone gives.
    RunAlone(Vec<String>),
    /// A run could not be made or read: the reason (the harness fails).
    Error(String),
}

impl Verdict {
    /// Whether this verdict fails the harness.
    pub fn fails(&self) -> bool {
        matches!(self, Verdict::Disagree(_) | Verdict::Error(_))
    }
}

/// How the model's prediction fared on a cell (outcomes only, not phases).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// Every real run ended one way, and so did every draw.
    Right,
    /// Every real run was OOM-killed and every draw survived: the worst answer.
    FalseSurvival,
    /// Every real run survived and every draw was killed.
    FalseDeath,
    /// Every real run ended one way, but the draws disagree.
    MarginalOnStable,
    /// The real runs flipped, and the draws disagree too.
    Marginal,
    /// The real runs flipped, but every draw ended one way.
    Certain,
}

impl Call {
    /// Of a prediction, against the real runs' survivals and kills.
    pub fn of(prediction: &Prediction, survived: usize, killed: usize) -> Call {
        let real = match (survived, killed) {
            (_, 0) => Some(true),
            (0, _) => Some(false),
            _ => None,
        };
        match (real, prediction.unanimous()) {
            (Some(r), Some(p)) if r == p => Call::Right,
            (Some(false), Some(true)) => Call::FalseSurvival,
            (Some(_), Some(_)) => Call::FalseDeath,
            (Some(_), None) => Call::MarginalOnStable,
            (None, None) => Call::Marginal,
            (None, Some(_)) => Call::Certain,
        }
    }
}

/// The model's prediction on a cell, its call, and the real runs' survival rate.
#[derive(Clone, Debug, PartialEq)]
pub struct Predicted {
    pub prediction: Prediction,
    pub call: Call,
    pub real_survival_rate: f64,
}

impl Predicted {
    /// The squared distance between the predicted and the real survival rate.
    pub fn brier(&self) -> f64 {
        (self.prediction.survival_rate() - self.real_survival_rate).powi(2)
    }
}

/// The figures of a cell's real runs and the verdict.
#[derive(Debug)]
pub struct Judged {
    pub runs: CellRuns,
    /// (outcome, died in) → runs, over the runs that worked.
    pub endings: BTreeMap<(Outcome, Option<&'static str>), usize>,
    pub next_gc_median: Option<NextGc>,
    /// |sim − real| / real, when both planned a collection.
    pub next_gc_difference: Option<f64>,
    pub verdict: Verdict,
    /// The model's prediction and how it fared, when the simulation reported one and some
    /// real run survived or was killed.
    pub predicted: Option<Predicted>,
}

impl Judged {
    /// Whether every real run ended the same way in the same phase.
    pub fn stable(&self) -> bool {
        self.endings.len() == 1
    }
}

/// The endings of the runs that worked, counted.
pub fn endings(runs: &[RealRun]) -> BTreeMap<(Outcome, Option<&'static str>), usize> {
    let mut counts = BTreeMap::new();
    for run in runs {
        *counts
            .entry((run.outcome.clone(), run.died_in))
            .or_default() += 1;
    }
    counts
}

/// The median of the runs' next GC after the spike (the lower middle of an even count), over
/// the runs that printed a spike line; unplanned counts above every size.
pub fn median_next_gc(runs: &[RealRun]) -> Option<NextGc> {
    let mut values: Vec<NextGc> = runs.iter().filter_map(|r| r.next_gc_after_spike).collect();
    values.sort();
    values.get(values.len().checked_sub(1)? / 2).copied()
}

/// |sim − real| / real.
pub fn relative_difference(sim: u64, real: u64) -> Option<f64> {
    (real > 0).then(|| (sim as f64 - real as f64).abs() / real as f64)
}

/// Whether the real runs disagree among themselves (and so deserve more runs).
pub fn runs_disagree(runs: &[Result<RealRun, String>]) -> bool {
    let ok: Vec<RealRun> = runs
        .iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    endings(&ok).len() > 1
}

/// Whether the simulation's run is wrong only in its ending, and its prediction has draws that
/// end as the real runs did: then the cell is [`Verdict::RunAlone`].
fn timing_explains(
    outcome: &Outcome,
    died_in: Option<&str>,
    next_gc_median: Option<NextGc>,
    next_gc_difference: Option<f64>,
    sim: &SimRun,
) -> bool {
    let Some(p) = &sim.prediction else {
        return false;
    };
    let ending_aside = SimRun {
        outcome: outcome.clone(),
        died_in: died_in.map(str::to_owned),
        ..sim.clone()
    };
    p.admits(outcome, died_in)
        && compare(
            outcome,
            died_in,
            next_gc_median,
            next_gc_difference,
            &ending_aside,
        ) == Verdict::Agree
}

/// A stable cell's one ending against the simulation.
fn compare(
    outcome: &Outcome,
    died_in: Option<&str>,
    next_gc_median: Option<NextGc>,
    next_gc_difference: Option<f64>,
    sim: &SimRun,
) -> Verdict {
    let mut reasons = Vec::new();
    if *outcome != sim.outcome {
        reasons.push(format!("outcome: real {outcome}, sim {}", sim.outcome));
    } else if died_in != sim.died_in.as_deref() {
        reasons.push(format!(
            "died in: real {}, sim {}",
            died_in.unwrap_or("-"),
            sim.died_in.as_deref().unwrap_or("-")
        ));
    }
    match (next_gc_median, sim.next_gc_after_spike) {
        (None, _) | (Some(NextGc::Unplanned), Some(NextGc::Unplanned)) => {}
        (Some(NextGc::Bytes(_)), Some(NextGc::Bytes(_))) => {
            if let Some(d) = next_gc_difference.filter(|d| *d > NEXT_GC_TOLERANCE) {
                reasons.push(format!(
                    "next GC after the spike differs by {:.1} % (more than {:.0} %)",
                    d * 100.0,
                    NEXT_GC_TOLERANCE * 100.0
                ));
            }
        }
        (Some(real), sim) => reasons.push(format!(
            "next GC after the spike: real {real}, sim {}",
            sim.map_or_else(|| "-".to_owned(), |s| s.to_string())
        )),
    }
    if reasons.is_empty() {
        Verdict::Agree
    } else {
        Verdict::Disagree(reasons)
    }
}

/// What the real runs' own evidence must show, whatever the simulation says: every OOM kill's
/// victim is the program, and on the seed's cell the goal after the spike is about twice live.
fn own_evidence(cell: &Cell, runs: &[RealRun]) -> Vec<String> {
    let mut reasons = Vec::new();
    let not_the_program = runs
        .iter()
        .filter(|r| r.outcome == Outcome::OomKilled && r.victim_is_program == Some(false))
        .count();
    if not_the_program > 0 {
        reasons.push(format!(
            "the OOM killer's victim was not the program in {not_the_program} run(s)"
        ));
    }
    if *cell == Cell::base() {
        let off: Vec<String> = runs
            .iter()
            .filter(|r| {
                !r.spike_goal_ratio
                    .is_some_and(|q| SEED_GOAL_RATIO.contains(&q))
            })
            .map(|r| {
                r.spike_goal_ratio
                    .map_or("none".into(), |q| format!("{q:.2}"))
            })
            .collect();
        if !off.is_empty() {
            reasons.push(format!(
                "gctrace's goal after the spike over live is not about 2: {}",
                off.join(", ")
            ));
        }
    }
    reasons
}

/// Applies the rules to a cell's runs.
pub fn judge(runs: CellRuns) -> Judged {
    let ok: Vec<RealRun> = runs
        .real
        .iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    let endings = endings(&ok);
    let next_gc_median = median_next_gc(&ok);
    let sim = runs.sim.as_ref().ok();
    let next_gc_difference = match (next_gc_median, sim.and_then(|s| s.next_gc_after_spike)) {
        (Some(NextGc::Bytes(real)), Some(NextGc::Bytes(sim))) => relative_difference(sim, real),
        _ => None,
    };
    let errors: Vec<&String> = runs
        .real
        .iter()
        .filter_map(|r| r.as_ref().err())
        .chain(runs.sim.as_ref().err())
        .collect();
    let verdict = match (errors.first(), &runs.sim) {
        (Some(first), _) => Verdict::Error(if errors.len() > 1 {
            format!("{first} (and {} more)", errors.len() - 1)
        } else {
            (*first).clone()
        }),
        (None, Err(err)) => Verdict::Error(err.clone()),
        (None, Ok(sim)) => match endings.iter().next() {
            Some(((outcome, died_in), _)) if endings.len() == 1 => {
                match (
                    compare(outcome, *died_in, next_gc_median, next_gc_difference, sim),
                    own_evidence(&runs.cell, &ok),
                ) {
                    (Verdict::Agree, reasons) if reasons.is_empty() => Verdict::Agree,
                    (Verdict::Disagree(r), reasons)
                        if reasons.is_empty()
                            && timing_explains(
                                outcome,
                                *died_in,
                                next_gc_median,
                                next_gc_difference,
                                sim,
                            ) =>
                    {
                        Verdict::RunAlone(r)
                    }
                    (Verdict::Disagree(mut r), reasons) => {
                        r.extend(reasons);
                        Verdict::Disagree(r)
                    }
                    (_, reasons) => Verdict::Disagree(reasons),
                }
            }
            _ => Verdict::TimingDependent,
        },
    };
    let survived = ok.iter().filter(|r| r.outcome == Outcome::Survived).count();
    let killed = ok
        .iter()
        .filter(|r| r.outcome == Outcome::OomKilled)
        .count();
    let predicted = sim
        .and_then(|s| s.prediction.clone())
        .filter(|_| survived + killed > 0)
        .map(|prediction| Predicted {
            call: Call::of(&prediction, survived, killed),
            prediction,
            real_survival_rate: survived as f64 / (survived + killed) as f64,
        });
    Judged {
        runs,
        endings,
        next_gc_median,
        next_gc_difference,
        verdict,
        predicted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn killed(died_in: &'static str, next_gc: u64) -> RealRun {
        RealRun {
            outcome: Outcome::OomKilled,
            died_in: Some(died_in),
            next_gc_after_spike: Some(NextGc::Bytes(next_gc)),
            gc_cycles: Some(1),
            peak_bytes: Some(32 << 20),
            victim_is_program: Some(true),
            spike_goal_ratio: Some(2.0),
        }
    }

    fn survived(next_gc: Option<NextGc>) -> RealRun {
        RealRun {
            outcome: Outcome::Survived,
            died_in: None,
            next_gc_after_spike: next_gc,
            gc_cycles: Some(2),
            peak_bytes: Some(30 << 20),
            victim_is_program: Some(true),
            spike_goal_ratio: Some(2.0),
        }
    }

    fn sim(outcome: Outcome, died_in: Option<&str>, next_gc: Option<u64>) -> SimRun {
        sim_planning(outcome, died_in, next_gc.map(NextGc::Bytes))
    }

    fn sim_planning(outcome: Outcome, died_in: Option<&str>, next_gc: Option<NextGc>) -> SimRun {
        SimRun {
            outcome,
            died_in: died_in.map(str::to_owned),
            next_gc_after_spike: next_gc,
            gc_cycles: Some(1),
            peak_bytes: Some(32 << 20),
            prediction: None,
        }
    }

    /// The model's call is on outcomes: unanimous and right, the false survival apart, and
    /// marginal or certain where the real runs flipped.
    #[test]
    fn the_models_call_is_on_outcomes() {
        let p = |survived| Prediction {
            draws: 20,
            survived,
            killed_in: Default::default(),
        };
        assert_eq!(Call::of(&p(0), 0, 5), Call::Right);
        assert_eq!(Call::of(&p(20), 5, 0), Call::Right);
        assert_eq!(Call::of(&p(20), 0, 5), Call::FalseSurvival);
        assert_eq!(Call::of(&p(0), 5, 0), Call::FalseDeath);
        assert_eq!(Call::of(&p(7), 0, 5), Call::MarginalOnStable);
        assert_eq!(Call::of(&p(7), 2, 8), Call::Marginal);
        assert_eq!(Call::of(&p(20), 2, 8), Call::Certain);
        let predicted = Predicted {
            prediction: p(10),
            call: Call::Marginal,
            real_survival_rate: 0.2,
        };
        assert!((predicted.brier() - 0.09).abs() < 1e-9);
    }

    fn judge_runs(real: Vec<RealRun>, sim: SimRun) -> Judged {
        judge(CellRuns {
            cell: Cell::base(),
            real: real.into_iter().map(Ok).collect(),
            sim: Ok(sim),
        })
    }

    /// The simulation's run survives where every real run died in the remainder: a false
    /// survival, unless its prediction has draws killed in the remainder (marginal, or every
    /// draw). A prediction whose draws all survive, or die elsewhere, leaves it a disagreement.
    #[test]
    fn a_run_the_prediction_covers_is_the_run_alone_not_wrong() {
        let real = vec![killed("remainder", 60_612_192); 5];
        let predicting = |survived: u32, step: &str| SimRun {
            prediction: Some(Prediction {
                draws: 20,
                survived,
                killed_in: [(step.to_owned(), 20 - survived)].into(),
            }),
            ..sim(Outcome::Survived, None, Some(60_604_416))
        };
        let j = judge_runs(real.clone(), predicting(12, "remainder"));
        assert!(matches!(&j.verdict, Verdict::RunAlone(r) if r[0].starts_with("outcome")));
        assert!(!j.verdict.fails());
        assert_eq!(j.predicted.unwrap().call, Call::MarginalOnStable);
        let j = judge_runs(real.clone(), predicting(0, "remainder"));
        assert!(
            matches!(&j.verdict, Verdict::RunAlone(_)),
            "{:?}",
            j.verdict
        );
        for (survived, step) in [(12, "spike"), (20, "remainder")] {
            let j = judge_runs(real.clone(), predicting(survived, step));
            assert!(j.verdict.fails(), "{survived} {step}: {:?}", j.verdict);
        }
        // A next GC off by more than 3 % is wrong whatever the timing.
        let j = judge_runs(
            real,
            SimRun {
                next_gc_after_spike: Some(NextGc::Bytes(70_000_000)),
                ..predicting(12, "remainder")
            },
        );
        assert!(j.verdict.fails(), "{:?}", j.verdict);
    }

    #[test]
    fn the_seed_agrees_within_three_percent() {
        let real = vec![
            killed("remainder", 60_612_192),
            killed("remainder", 60_615_904),
            killed("remainder", 60_613_000),
        ];
        let j = judge_runs(
            real,
            sim(Outcome::OomKilled, Some("remainder"), Some(60_604_416)),
        );
        assert_eq!(j.verdict, Verdict::Agree);
        assert!(j.stable());
        assert_eq!(j.next_gc_median, Some(NextGc::Bytes(60_613_000)));
        let d = j.next_gc_difference.unwrap_or(1.0);
        assert!(d < 0.001, "{d}");
    }

    /// Issue 9: the seed's cell under exec: the kernel's victim is the program, and gctrace's
    /// goal after the spike is about twice what it left live.
    #[test]
    fn the_programs_own_evidence_is_judged_too() {
        let agree = sim(Outcome::OomKilled, Some("remainder"), Some(60_604_416));
        let mut stray = killed("remainder", 60_612_192);
        stray.victim_is_program = Some(false);
        let j = judge_runs(vec![killed("remainder", 60_612_192), stray], agree.clone());
        assert!(
            matches!(&j.verdict, Verdict::Disagree(r) if r[0].contains("victim was not the program")),
            "{:?}",
            j.verdict
        );
        let mut far = killed("remainder", 60_612_192);
        far.spike_goal_ratio = Some(4.0);
        let j = judge_runs(vec![far.clone()], agree.clone());
        assert!(matches!(&j.verdict, Verdict::Disagree(r) if r[0].contains("4.00")));
        // Only the seed's cell is held to the ratio.
        let other = judge(CellRuns {
            cell: Cell {
                limit: 64 << 20,
                ..Cell::base()
            },
            real: vec![Ok(far)],
            sim: Ok(agree),
        });
        assert_eq!(other.verdict, Verdict::Agree);
    }

    #[test]
    fn a_stable_cell_disagrees_on_outcome_phase_or_next_gc() {
        let real = || vec![killed("remainder", 100_000_000); 5];
        let j = judge_runs(real(), sim(Outcome::Survived, None, Some(100_000_000)));
        assert!(matches!(&j.verdict, Verdict::Disagree(r) if r[0].contains("outcome")));
        let j = judge_runs(
            real(),
            sim(Outcome::OomKilled, Some("spike"), Some(100_000_000)),
        );
        assert!(
            matches!(&j.verdict, Verdict::Disagree(r) if r == &["died in: real remainder, sim spike"])
        );
        // 3 % exactly agrees; just above does not.
        let j = judge_runs(
            real(),
            sim(Outcome::OomKilled, Some("remainder"), Some(103_000_000)),
        );
        assert_eq!(j.verdict, Verdict::Agree);
        let j = judge_runs(
            real(),
            sim(Outcome::OomKilled, Some("remainder"), Some(96_900_000)),
        );
        assert!(matches!(&j.verdict, Verdict::Disagree(r) if r[0].contains("3.1 %")));
        assert!(j.verdict.fails());
    }

    #[test]
    fn runs_that_disagree_make_the_cell_timing_dependent_and_never_fail() {
        let real = vec![
            killed("spike", 0),
            killed("remainder", 63_943_008),
            killed("remainder", 63_943_024),
        ];
        assert!(runs_disagree(
            &real.iter().cloned().map(Ok).collect::<Vec<_>>()
        ));
        let j = judge_runs(real, sim(Outcome::Survived, None, None));
        assert_eq!(j.verdict, Verdict::TimingDependent);
        assert!(!j.verdict.fails());
        assert_eq!(j.endings.len(), 2);
        assert_eq!(
            j.endings.get(&(Outcome::OomKilled, Some("remainder"))),
            Some(&2)
        );
    }

    #[test]
    fn no_planned_collection_matches_only_itself() {
        let real = vec![survived(Some(NextGc::Unplanned)); 5];
        let unplanned = Some(NextGc::Unplanned);
        let j = judge_runs(
            real.clone(),
            sim_planning(Outcome::Survived, None, unplanned),
        );
        assert_eq!(j.verdict, Verdict::Agree);
        let j = judge_runs(real, sim(Outcome::Survived, None, Some(8 << 20)));
        assert!(matches!(&j.verdict, Verdict::Disagree(r) if r[0].contains("real none")));
        let real = vec![survived(Some(NextGc::Bytes(8 << 20))); 5];
        let j = judge_runs(real, sim_planning(Outcome::Survived, None, unplanned));
        assert!(matches!(&j.verdict, Verdict::Disagree(r) if r[0].contains("sim none")));
    }

    #[test]
    fn a_program_killed_in_the_spike_has_no_next_gc_to_compare() {
        let mut run = killed("spike", 0);
        run.next_gc_after_spike = None;
        let j = judge_runs(vec![run; 5], sim(Outcome::OomKilled, Some("spike"), None));
        assert_eq!(j.verdict, Verdict::Agree);
        assert_eq!(j.next_gc_median, None);
    }

    #[test]
    fn a_run_that_failed_is_an_error_that_fails_the_harness() {
        let j = judge(CellRuns {
            cell: Cell::base(),
            real: vec![
                Ok(killed("remainder", 1)),
                Err("memspike exec exited with 1".to_owned()),
                Err("timed out".to_owned()),
            ],
            sim: Ok(sim(Outcome::OomKilled, Some("remainder"), Some(1))),
        });
        assert_eq!(
            j.verdict,
            Verdict::Error("memspike exec exited with 1 (and 1 more)".to_owned())
        );
        assert!(j.verdict.fails());
    }

    #[test]
    fn the_median_is_the_lower_middle_and_skips_runs_without_a_spike_line() {
        let mut none = killed("spike", 0);
        none.next_gc_after_spike = None;
        let runs = [
            killed("r", 30),
            none,
            killed("r", 10),
            killed("r", 20),
            killed("r", 40),
        ];
        assert_eq!(median_next_gc(&runs), Some(NextGc::Bytes(20)));
        assert_eq!(median_next_gc(&[]), None);
        assert_eq!(relative_difference(97, 100), Some(0.03));
        assert_eq!(relative_difference(1, 0), None);
    }
}
