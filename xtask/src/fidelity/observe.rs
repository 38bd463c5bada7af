//! What one run says: the reference program's `phase=` lines, `memspike exec`'s report.json,
//! and `memspike run --json`; each reduced to the figures the comparison needs.

use std::fmt;

use anyhow::{Context, Result};
use serde::Deserialize;

/// Above this, a `NextGC` means no collection is planned: with GOGC=off and no memory limit the
/// runtime's goal is about `math.MaxInt64` (the program prints the field as a signed number).
const UNPLANNED_NEXT_GC: i64 = 1 << 62;

/// How a run ended, in the words of both reports.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    OomKilled,
    Survived,
    /// A non-zero exit (the real program only), with its code.
    Exited(i64),
    /// Another death by signal (the real program only).
    Signaled,
    /// Any other outcome word a report gave.
    Other(String),
}

impl Outcome {
    fn from_report(word: &str, exit_code: Option<i64>) -> Outcome {
        match word {
            "oom_killed" => Outcome::OomKilled,
            "survived" => Outcome::Survived,
            "exited" => Outcome::Exited(exit_code.unwrap_or(-1)),
            "signaled" => Outcome::Signaled,
            other => Outcome::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::OomKilled => f.write_str("oom_killed"),
            Outcome::Survived => f.write_str("survived"),
            Outcome::Exited(code) => write!(f, "exited {code}"),
            Outcome::Signaled => f.write_str("signaled"),
            Outcome::Other(word) => f.write_str(word),
        }
    }
}

/// The pacer's goal after the spike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum NextGc {
    Bytes(u64),
    /// No collection is planned (GOGC=off without a memory limit).
    Unplanned,
}

impl fmt::Display for NextGc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NextGc::Bytes(b) => write!(f, "{b}"),
            NextGc::Unplanned => f.write_str("none"),
        }
    }
}

/// One `phase=NAME t_ms=… HeapAlloc=… NextGC=… NumGC=… …` line of the reference program.
#[derive(Clone, Debug, PartialEq)]
pub struct PhaseLine {
    pub phase: String,
    pub next_gc: Option<NextGc>,
    pub num_gc: Option<u64>,
}

/// The program's phase lines, in order; comment lines (`# …`) and anything else are skipped.
pub fn phase_lines(stdout: &str) -> Vec<PhaseLine> {
    stdout
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace().filter_map(|f| f.split_once('='));
            let (key, phase) = fields.next()?;
            if key != "phase" {
                return None;
            }
            let mut parsed = PhaseLine {
                phase: phase.to_owned(),
                next_gc: None,
                num_gc: None,
            };
            for (key, value) in fields {
                match key {
                    "NextGC" => {
                        parsed.next_gc = value.parse::<i64>().ok().map(|n| {
                            if !(0..UNPLANNED_NEXT_GC).contains(&n) {
                                NextGc::Unplanned
                            } else {
                                NextGc::Bytes(n as u64)
                            }
                        });
                    }
                    "NumGC" => parsed.num_gc = value.parse().ok(),
                    _ => {}
                }
            }
            Some(parsed)
        })
        .collect()
}

/// The step the program was in when it was killed, in memspike's step names, from the last
/// phase line it printed: each line is printed once its phase is done, so the kill came in
/// the phase after it (`startup` before the first line; `remainder` between and after the
/// chunks' lines; `done` after the `remainder` line).
pub fn died_in(lines: &[PhaseLine], gc: bool) -> &'static str {
    let Some(last) = lines.last() else {
        return "startup";
    };
    match last.phase.as_str() {
        "start" => "spike",
        "spike" => "release",
        "release" if gc => "gc",
        "release" | "gc" => "remainder",
        phase if phase.starts_with("chunk-") => "remainder",
        _ => "done",
    }
}

/// `NextGC` on the `phase=spike` line, if the program got that far.
pub fn next_gc_after_spike(lines: &[PhaseLine]) -> Option<NextGc> {
    lines
        .iter()
        .find(|l| l.phase == "spike")
        .and_then(|l| l.next_gc)
}

#[derive(Deserialize)]
struct CgroupJson {
    peak_bytes: Option<u64>,
}

#[derive(Deserialize)]
struct ExitJson {
    code: Option<i64>,
}

#[derive(Deserialize)]
struct PidJson {
    pid: Option<u64>,
}

#[derive(Deserialize)]
struct KernelJson {
    oom_victim: Option<PidJson>,
}

#[derive(Deserialize)]
struct CycleJson {
    heap_live_bytes: u64,
    next_goal_bytes: Option<u64>,
}

#[derive(Deserialize)]
struct ExecJson {
    outcome: String,
    gc_cycles: Option<u64>,
    cgroup: Option<CgroupJson>,
    exit: Option<ExitJson>,
    kernel: Option<KernelJson>,
    worker: Option<PidJson>,
    runtime_cycles: Option<Vec<CycleJson>>,
}

/// One real run: `memspike exec`'s report and the program's own lines.
#[derive(Clone, Debug, PartialEq)]
pub struct RealRun {
    pub outcome: Outcome,
    /// The step it was killed in; `None` unless OOM-killed.
    pub died_in: Option<&'static str>,
    pub next_gc_after_spike: Option<NextGc>,
    /// The report's parsed gctrace cycles, else the last phase line's NumGC.
    pub gc_cycles: Option<u64>,
    pub peak_bytes: Option<u64>,
    /// Whether the OOM killer's victim was the program (`None` when no victim was recorded).
    pub victim_is_program: Option<bool>,
    /// The gctrace cycle that left the most live (the spike): its next goal over what it left
    /// live.
    pub spike_goal_ratio: Option<f64>,
}

impl RealRun {
    /// Reads `memspike exec`'s report.json and the program's stdout; `gc` is the cell's `-gc`.
    pub fn parse(report_json: &str, stdout: &str, gc: bool) -> Result<RealRun> {
        let report: ExecJson = serde_json::from_str(report_json)
            .context("memspike exec's report.json is not the report this harness reads")?;
        let lines = phase_lines(stdout);
        let outcome =
            Outcome::from_report(&report.outcome, report.exit.as_ref().and_then(|e| e.code));
        Ok(RealRun {
            died_in: (outcome == Outcome::OomKilled).then(|| died_in(&lines, gc)),
            outcome,
            next_gc_after_spike: next_gc_after_spike(&lines),
            gc_cycles: report
                .gc_cycles
                .or_else(|| lines.last().and_then(|l| l.num_gc)),
            peak_bytes: report.cgroup.and_then(|c| c.peak_bytes),
            victim_is_program: report
                .kernel
                .and_then(|k| k.oom_victim)
                .and_then(|v| v.pid)
                .map(|pid| Some(pid) == report.worker.and_then(|w| w.pid)),
            spike_goal_ratio: report
                .runtime_cycles
                .unwrap_or_default()
                .iter()
                .filter(|c| c.heap_live_bytes > 0)
                .max_by_key(|c| c.heap_live_bytes)
                .and_then(|c| Some(c.next_goal_bytes? as f64 / c.heap_live_bytes as f64)),
        })
    }
}

#[derive(Deserialize)]
struct SimJson {
    outcome: String,
    prediction: Option<Prediction>,
    died_in: Option<String>,
    gc_cycles: Option<u64>,
    next_gc_after_spike_bytes: Option<u64>,
    cgroup: Option<CgroupJson>,
}

/// The simulation's run.
#[derive(Clone, Debug, PartialEq)]
pub struct SimRun {
    pub outcome: Outcome,
    pub died_in: Option<String>,
    /// `None` when the spike step did not finish; the report's `null` after it means that no
    /// collection is planned.
    pub next_gc_after_spike: Option<NextGc>,
    pub gc_cycles: Option<u64>,
    pub peak_bytes: Option<u64>,
    /// The model's prediction over timing draws.
    pub prediction: Option<Prediction>,
}

/// `prediction` in memspike's report: how many of the model's draws survived.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Prediction {
    pub draws: u32,
    pub survived: u32,
    /// The step each killed draw died in, with how many died there.
    #[serde(default)]
    pub killed_in: std::collections::BTreeMap<String, u32>,
}

impl Prediction {
    /// `Some(true)` when every draw survived, `Some(false)` when none did, else `None`.
    pub fn unanimous(&self) -> Option<bool> {
        match self.survived {
            0 => Some(false),
            s if s == self.draws => Some(true),
            _ => None,
        }
    }

    pub fn survival_rate(&self) -> f64 {
        f64::from(self.survived) / f64::from(self.draws.max(1))
    }

    /// Whether some draw ended as a run that `outcome`, killed in `died_in`, did.
    pub fn admits(&self, outcome: &Outcome, died_in: Option<&str>) -> bool {
        match outcome {
            Outcome::Survived => self.survived > 0,
            Outcome::OomKilled => died_in
                .and_then(|step| self.killed_in.get(step))
                .is_some_and(|n| *n > 0),
            _ => false,
        }
    }
}

impl SimRun {
    /// Reads `memspike run --json`.
    pub fn parse(json: &str) -> Result<SimRun> {
        let report: SimJson = serde_json::from_str(json)
            .context("memspike run --json printed something else than its report")?;
        let outcome = Outcome::from_report(&report.outcome, None);
        let died_in = report.died_in.filter(|_| outcome == Outcome::OomKilled);
        let spike_done = !matches!(died_in.as_deref(), Some("startup" | "spike"));
        Ok(SimRun {
            next_gc_after_spike: match report.next_gc_after_spike_bytes {
                Some(bytes) => Some(NextGc::Bytes(bytes)),
                None => spike_done.then_some(NextGc::Unplanned),
            },
            died_in,
            outcome,
            gc_cycles: report.gc_cycles,
            peak_bytes: report.cgroup.and_then(|c| c.peak_bytes),
            prediction: report.prediction,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as the reference program printed them (go1.19, 32 MiB, spike 0.9), shortened to
    /// the fields that matter plus a few others.
    const KILLED_IN_REMAINDER: &str = "\
phase=start t_ms=0.3 HeapAlloc=77408 HeapSys=3964928 NextGC=4194304 NumGC=0 Sys=12434448 cg_usage=1048576
# limit=33554432 spike=0.9 fill=30121580 remainder=3355443 chunk=0 gc=false churn=false GOGC=\"100\" GOMEMLIMIT=\"\" go=go1.19.8 cgroup=/sys/fs/cgroup/memory/x
phase=spike t_ms=23.1 HeapAlloc=30199000 HeapSys=30900000 NextGC=60612192 NumGC=1 Sys=40000000 cg_usage=32000000
phase=release t_ms=23.2 HeapAlloc=30199000 HeapSys=30900000 NextGC=60612192 NumGC=1 Sys=40000000 cg_usage=32000000
";

    #[test]
    fn phase_lines_skip_comments_and_read_next_gc_and_num_gc() {
        let lines = phase_lines(KILLED_IN_REMAINDER);
        let names: Vec<&str> = lines.iter().map(|l| l.phase.as_str()).collect();
        assert_eq!(names, ["start", "spike", "release"]);
        assert_eq!(lines[1].next_gc, Some(NextGc::Bytes(60_612_192)));
        assert_eq!(lines[1].num_gc, Some(1));
        assert_eq!(next_gc_after_spike(&lines), Some(NextGc::Bytes(60_612_192)));
    }

    #[test]
    fn gogc_off_without_a_limit_plans_no_collection() {
        // What go1.19 printed with GOGC=off: the goal is about math.MaxInt64.
        let lines = phase_lines(
            "phase=spike t_ms=1.0 HeapAlloc=4194304 NextGC=9223372036844396647 NumGC=0\n",
        );
        assert_eq!(next_gc_after_spike(&lines), Some(NextGc::Unplanned));
        let lines = phase_lines("phase=spike NextGC=-1\n");
        assert_eq!(lines[0].next_gc, Some(NextGc::Unplanned));
    }

    #[test]
    fn died_in_is_the_phase_after_the_last_line() {
        let line = |phase: &str| PhaseLine {
            phase: phase.to_owned(),
            next_gc: None,
            num_gc: None,
        };
        let upto = |phases: &[&str]| phases.iter().map(|p| line(p)).collect::<Vec<_>>();
        assert_eq!(died_in(&[], false), "startup");
        assert_eq!(died_in(&upto(&["start"]), false), "spike");
        assert_eq!(died_in(&upto(&["start", "spike"]), false), "release");
        assert_eq!(
            died_in(&upto(&["start", "spike", "release"]), false),
            "remainder"
        );
        assert_eq!(died_in(&upto(&["start", "spike", "release"]), true), "gc");
        assert_eq!(
            died_in(&upto(&["start", "spike", "release", "gc"]), true),
            "remainder"
        );
        assert_eq!(
            died_in(&upto(&["release", "chunk-1/103", "chunk-92/103"]), false),
            "remainder"
        );
        assert_eq!(died_in(&upto(&["chunk-103/103"]), false), "remainder");
        assert_eq!(died_in(&upto(&["chunk-3/4", "remainder"]), false), "done");
        assert_eq!(died_in(&upto(&["remainder", "done"]), false), "done");
    }

    /// A report.json as `memspike exec` writes it (the shared design's keys; values made up).
    const EXEC_REPORT: &str = r#"{
        "outcome": "oom_killed", "limit_bytes": 33554432, "gc_cycles": 1,
        "cgroup": {"version": "v1", "peak_bytes": 33554432, "oom_kills": 1, "failcnt": 12},
        "kernel": {"oom_victim": {"pid": 4242, "comm": "memspike-ref-go"}},
        "worker": {"pid": 4242},
        "command": ["/x/memspike-ref-go1.19.8", "-limit", "32MiB", "-spike", "0.9"],
        "exit": {"signal": "SIGKILL"},
        "runtime_cycles": [{"n": 1, "t_ms": 2.0, "heap_start_bytes": 30000000,
            "heap_end_bytes": 30000000, "heap_live_bytes": 30000000, "goal_bytes": 4000000,
            "next_goal_bytes": 60000000}],
        "timeline": [], "verdict": "killed"
    }"#;

    #[test]
    fn a_real_run_joins_the_exec_report_and_the_programs_lines() -> Result<()> {
        let run = RealRun::parse(EXEC_REPORT, KILLED_IN_REMAINDER, false)?;
        assert_eq!(
            run,
            RealRun {
                outcome: Outcome::OomKilled,
                died_in: Some("remainder"),
                next_gc_after_spike: Some(NextGc::Bytes(60_612_192)),
                gc_cycles: Some(1),
                peak_bytes: Some(33_554_432),
                victim_is_program: Some(true),
                spike_goal_ratio: Some(2.0),
            }
        );
        Ok(())
    }

    #[test]
    fn a_survivor_has_no_phase_and_an_exit_keeps_its_code() -> Result<()> {
        let survived = r#"{"outcome": "survived", "gc_cycles": null,
            "cgroup": {"peak_bytes": 30000000}, "exit": {"code": 0}}"#;
        let stdout = "phase=spike NextGC=100 NumGC=1\nphase=done NextGC=200 NumGC=3\n";
        let run = RealRun::parse(survived, stdout, true)?;
        assert_eq!(run.outcome, Outcome::Survived);
        assert_eq!(run.died_in, None);
        // No gctrace cycles in the report: the last line's NumGC.
        assert_eq!(run.gc_cycles, Some(3));
        let exited =
            r#"{"outcome": "exited", "gc_cycles": 0, "cgroup": null, "exit": {"code": 2}}"#;
        let run = RealRun::parse(exited, "", false)?;
        assert_eq!(run.outcome, Outcome::Exited(2));
        assert_eq!(run.outcome.to_string(), "exited 2");
        assert_eq!(run.peak_bytes, None);
        Ok(())
    }

    #[test]
    fn a_report_without_an_outcome_is_an_error() {
        let err = RealRun::parse(r#"{"limit_bytes": 1}"#, "", false)
            .err()
            .map(|e| format!("{e:#}"));
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("report.json") && e.contains("outcome")),
            "{err:?}"
        );
    }

    #[test]
    fn the_simulations_report_gives_outcome_phase_and_next_gc() -> Result<()> {
        // Keys as `memspike run --json` printed them for the seed on go1.19 (trimmed).
        let json = r#"{"outcome": "oom_killed", "limit_bytes": 33554432, "died_in": "remainder",
            "gc_cycles": 1, "next_gc_after_spike_bytes": 60604416,
            "prediction": {"draws": 20, "survived": 0, "oom_killed": 20, "killed_in": {"remainder": 20}},
            "cgroup": {"version": "v1", "peak_bytes": 33554432},
            "settings": {"runtime": "go1.19"}}"#;
        assert_eq!(
            SimRun::parse(json)?,
            SimRun {
                outcome: Outcome::OomKilled,
                died_in: Some("remainder".to_owned()),
                next_gc_after_spike: Some(NextGc::Bytes(60_604_416)),
                gc_cycles: Some(1),
                peak_bytes: Some(33_554_432),
                prediction: Some(Prediction {
                    draws: 20,
                    survived: 0,
                    killed_in: [("remainder".to_owned(), 20)].into(),
                }),
            }
        );
        let killed_in_spike = r#"{"outcome": "oom_killed", "died_in": "spike", "gc_cycles": 0,
            "next_gc_after_spike_bytes": null, "cgroup": {"peak_bytes": 1}}"#;
        assert_eq!(SimRun::parse(killed_in_spike)?.next_gc_after_spike, None);
        let survived = r#"{"outcome": "survived", "died_in": null, "gc_cycles": 2,
            "next_gc_after_spike_bytes": null, "cgroup": {"peak_bytes": 1}}"#;
        let sim = SimRun::parse(survived)?;
        assert_eq!((sim.outcome, sim.died_in), (Outcome::Survived, None));
        // Past the spike, null is GOGC=off's "no collection planned".
        assert_eq!(sim.next_gc_after_spike, Some(NextGc::Unplanned));
        assert!(SimRun::parse("not json").is_err());
        Ok(())
    }
}
