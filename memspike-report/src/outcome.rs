//! How a run ended, one vocabulary for every kind of run ([`Outcome`]), decided once from its
//! facts ([`Outcome::of_run`], [`Outcome::of_exec`]); and what a user may expect of it
//! ([`Expect`], `--expect`).

use serde::{Deserialize, Serialize};

use memspike_model::{event::Kind, predict::Prediction};

use crate::{
    facts::{ExecFacts, Exit, RunFacts},
    render::view::Tone,
};

/// How a run ended: the type is the facts' own (a command's probe in a threshold search records
/// one); how it is decided, and how it reads, are here.
pub use crate::facts::Outcome;

impl Outcome {
    /// The outcome of a simulated run, and what went wrong when it did not complete. What
    /// was observed wins: a kill the kernel counted, or a script that finished, is reported as
    /// such even when a stop signal arrived too.
    pub fn of_run(f: &RunFacts) -> (Outcome, Option<String>) {
        let g = &f.group;
        let finished = f.events.iter().any(|e| matches!(e.kind, Kind::Done));
        match (&g.exit, &g.stop_signal) {
            _ if g.oom_killed() => (Outcome::OomKilled, None),
            (Exit::Code(0), _) if finished => (Outcome::Survived, None),
            (_, Some(sig)) => (
                Outcome::Interrupted,
                Some(format!(
                    "interrupted by {sig} before the experiment finished"
                )),
            ),
            (exit, None) if exit.is_sigkill() => (
                Outcome::Error,
                Some(
                    "the worker was killed by SIGKILL, but the cgroup recorded no OOM kill"
                        .to_owned(),
                ),
            ),
            (Exit::Code(code), None) => (
                Outcome::Error,
                Some(format!(
                    "the worker exited with status {code}{}{}",
                    if f.stderr_tail.is_empty() { "" } else { ": " },
                    f.stderr_tail.trim()
                )),
            ),
            (Exit::Signal(sig), None) => {
                (Outcome::Error, Some(format!("the worker died of {sig}")))
            }
        }
    }

    /// The outcome of a real program: OOM-killed when the kernel's OOM killer killed any task
    /// of the group while it ran (the command or a process it started), whatever the
    /// command's own end; else how the command ended.
    pub fn of_exec(f: &ExecFacts) -> Outcome {
        match &f.group.exit {
            _ if f.group.oom_kills_during() > 0 => Outcome::OomKilled,
            Exit::Code(0) => Outcome::Survived,
            _ if f.out_of_heap.is_some() => Outcome::OutOfHeap,
            Exit::Code(_) => Outcome::Exited,
            Exit::Signal(_) => Outcome::Signaled,
        }
    }

    /// The outcome in capitals, as headlines say it.
    pub fn headline(self) -> &'static str {
        match self {
            Outcome::OomKilled => "OOM-KILLED",
            Outcome::Survived => "SURVIVED",
            Outcome::OutOfHeap => "OUT OF HEAP",
            Outcome::Exited => "EXITED",
            Outcome::Signaled => "SIGNALED",
            Outcome::Interrupted => "INTERRUPTED",
            Outcome::Error => "ERROR",
        }
    }

    /// How the outcome reads: bad, good or neither.
    pub fn tone(self) -> Tone {
        match self {
            Outcome::OomKilled | Outcome::OutOfHeap | Outcome::Error => Tone::Bad,
            Outcome::Survived => Tone::Good,
            Outcome::Exited | Outcome::Signaled | Outcome::Interrupted => Tone::Neutral,
        }
    }
}

/// What `--expect` asks of a run's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// The kernel OOM-killed it.
    Oom,
    /// It survived: the scenario finished, or the program exited 0.
    Survive,
    /// It was not OOM-killed, whatever its exit status.
    Exit,
}

impl Expect {
    /// Whether `outcome` is what was expected.
    pub fn accepts(self, outcome: Outcome) -> bool {
        match self {
            Expect::Oom => outcome == Outcome::OomKilled,
            Expect::Survive => outcome == Outcome::Survived,
            Expect::Exit => outcome != Outcome::OomKilled,
        }
    }

    /// Nothing when `outcome` is what was expected, else the message that goes with exit 3:
    /// what was wanted and what was observed, in the outcomes' one spelling.
    pub fn check(self, outcome: Outcome) -> Result<(), String> {
        let wanted = match self {
            Expect::Oom => "OomKilled",
            Expect::Survive => "Survived",
            Expect::Exit => "any end but OomKilled",
        };
        match self.accepts(outcome) {
            true => Ok(()),
            false => Err(format!("expected {wanted}, observed {outcome:?}")),
        }
    }
}

/// The model's prediction beside what a run did, in words: the prediction's share of draws,
/// and whether the run went the way the draws did.
pub fn beside(prediction: &Prediction, real: Outcome) -> String {
    let ran = match real {
        Outcome::Survived => Some(true),
        Outcome::OomKilled => Some(false),
        _ => None,
    };
    match (prediction.unanimous(), ran) {
        (None, _) => format!(
            "the model calls it marginal, surviving {}/{} draws: real timing decides this one",
            prediction.survived, prediction.draws
        ),
        (Some(p), Some(r)) if p != r => format!(
            "the model predicts it {}: this run went the other way",
            prediction.describe()
        ),
        _ => format!("the model predicts it {}", prediction.describe()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_accept_their_outcomes_only() {
        use Outcome::*;
        let all = [OomKilled, Survived, Exited, Signaled, Interrupted, Error];
        let accepted = |e: Expect| {
            all.into_iter()
                .filter(|o| e.accepts(*o))
                .collect::<Vec<_>>()
        };
        assert_eq!(accepted(Expect::Oom), [OomKilled]);
        assert_eq!(accepted(Expect::Survive), [Survived]);
        assert_eq!(
            accepted(Expect::Exit),
            [Survived, Exited, Signaled, Interrupted, Error]
        );
    }

    /// Regression: the exit-3 message said "expected another outcome" without naming it.
    #[test]
    fn a_refused_outcome_names_what_was_wanted() {
        assert_eq!(Expect::Oom.check(Outcome::OomKilled), Ok(()));
        assert_eq!(
            Expect::Oom.check(Outcome::Survived),
            Err("expected OomKilled, observed Survived".into())
        );
        assert_eq!(
            Expect::Exit.check(Outcome::OomKilled),
            Err("expected any end but OomKilled, observed OomKilled".into())
        );
    }
}
