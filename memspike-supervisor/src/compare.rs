//! Many runs of one program: `memspike compare` (a set of policies, each run N times) and
//! `memspike threshold` (per policy, a bisection over a knob), of the simulated program (a
//! scenario, through one [`Runner`]) or of the user's command (its runtime given each policy
//! through its environment, through one [`ProgramRunner`]). Every run is a real one, in a fresh
//! group of its own, one after another; the search itself is the model's
//! ([`memspike_model::threshold`]). What they return are facts ([`CompareFacts`],
//! [`CommandCompareFacts`], [`ThresholdFacts`]); the reports are `memspike-report`'s.

use std::time::Instant;

use memspike_report::{
    compare::Trial,
    exec::ExecReport,
    facts::{
        CommandCompareFacts, CompareFacts, CostBound, PolicyRun, PolicySearch, Probe, Signal,
        ThresholdFacts, ThresholdSubject,
    },
    outcome::Outcome,
};
use memspike_worker::telemetry::WorkerConfig;

use crate::{
    exec::{self, ExecConfig, ProgramRunner},
    preflight::{self, UsageError},
    progress::Progress,
    signals::{Interrupts, signal},
    supervisor::{self, RunOptions, Runner, SupervisorError},
};
use memspike_model::{
    pacer::Gogc,
    policy::Policy,
    policy_set,
    policy_set::NotApplicable,
    size::Amount,
    threshold::{self, Knob, Range, Survived},
};

/// `base` with `policy` in place of its own.
fn with_policy(base: &WorkerConfig, policy: &Policy) -> WorkerConfig {
    let mut c = base.clone();
    c.experiment.policy = policy.clone();
    c
}

/// Runs `base`'s scenario under every policy, in order. Every run's settings are checked
/// before the first starts. A stop signal ends the comparison after the run it interrupted;
/// the facts then hold the policies run so far, and the signal.
pub fn compare(
    base: &WorkerConfig,
    policies: &[Policy],
    repeats: u32,
    options: &RunOptions,
    interrupts: &Interrupts,
) -> Result<CompareFacts, SupervisorError> {
    let configs: Vec<WorkerConfig> = policies.iter().map(|p| with_policy(base, p)).collect();
    for c in &configs {
        supervisor::validate(c, options)?;
    }
    let mut runner = Runner::new(options, interrupts);
    if options.inherit.is_some() {
        tracing::info!(
            "--inherit: the {} policies run one after the other in this process's own group",
            policies.len()
        );
    }
    let stop = || interrupts.received();
    let (runs, stopped_by) = each_run(policies, &configs, repeats, stop, |c| runner.run(c))?;
    Ok(CompareFacts {
        base: base.experiment.clone(),
        limit_source: options.inherit.as_ref().map(|l| l.source.clone()),
        planned: policies.iter().map(|p| name(p).to_owned()).collect(),
        repeats,
        runs,
        stopped_by,
    })
}

/// Runs every policy's configuration `repeats` times, in order, each run said on stderr (a log
/// line, and a [`Progress`] bar on a terminal). A stop signal ends the runs: the runs made
/// before it, and that signal (the run it interrupted is left out, as it ended by the signal
/// rather than by its policy).
fn each_run<C, R>(
    policies: &[Policy],
    configs: &[C],
    repeats: u32,
    stop: impl Fn() -> Option<i32>,
    mut run: impl FnMut(&C) -> Result<R, SupervisorError>,
) -> Result<(Vec<PolicyRun<R>>, Option<Signal>), SupervisorError> {
    let runs_in_all = policies.len() * repeats as usize;
    let progress = Progress::new("runs", runs_in_all as u64);
    let started = Instant::now();
    let mut runs = Vec::with_capacity(runs_in_all);
    for (i, (policy, config)) in policies.iter().zip(configs).enumerate() {
        for j in 0..repeats {
            let what = format!(
                "policy {}/{} {}, run {}/{repeats}",
                i + 1,
                policies.len(),
                name(policy),
                j + 1
            );
            tracing::info!("{what} ({:.1} s elapsed)", started.elapsed().as_secs_f64());
            progress.now(what);
            let made = match run(config) {
                Err(SupervisorError::Interrupted(sig)) => return Ok((runs, Some(signal(sig)))),
                made => made?,
            };
            progress.done_one();
            if let Some(sig) = stop() {
                return Ok((runs, Some(signal(sig))));
            }
            runs.push(PolicyRun {
                policy: policy.clone(),
                run: made,
            });
        }
    }
    Ok((runs, None))
}

/// A command, and how its runs go: what `compare -- CMD` and `threshold -- CMD` share.
#[derive(Clone, Debug)]
pub struct CommandBase {
    /// The command's first run's settings (limit, command, environment, output); each run
    /// gets its policy in place of this one's.
    pub config: ExecConfig,
    pub trace_kernel: bool,
}

impl CommandBase {
    /// The run of `policy` under a group of `limit` bytes: its environment, or why the
    /// program's runtime cannot take it.
    pub fn with_policy(&self, policy: &Policy, limit: u64) -> Result<ExecConfig, String> {
        let vars = exec::policy_vars(&self.config, policy, limit)?;
        Ok(ExecConfig {
            limit,
            policy: Some((policy.clone(), vars)),
            ..self.config.clone()
        })
    }

    /// The built-in policies of the command's runtime that it can take under a group of
    /// `limit` bytes, and those it cannot with why; a usage error when its runtime has none
    /// (`--trace none`).
    pub fn catalogue(&self, limit: u64) -> Result<(Vec<Policy>, Vec<NotApplicable>), UsageError> {
        let (set, not_applicable) = exec::with_program(&self.config, |trace, program| {
            policy_set::for_program(trace, limit, program)
        });
        if set.is_empty() && not_applicable.is_empty() {
            return Err(UsageError::Policy(format!(
                "memspike reads no runtime for `{}` (--trace none), so it has no built-in policies to give it: name the runtime with --trace go|jvm|node",
                self.config.command.join(" ")
            )));
        }
        Ok((set, not_applicable))
    }
}

/// The policies a command's runtime can take and the configurations that give them; any
/// other is a usage error that names it (exit 2, before any group exists).
fn command_configs(
    base: &CommandBase,
    policies: &[Policy],
) -> Result<Vec<ExecConfig>, SupervisorError> {
    exec::validate(&base.config, None)?;
    policies
        .iter()
        .map(|p| {
            base.with_policy(p, base.config.limit).map_err(|why| {
                SupervisorError::Settings(UsageError::Policy(format!(
                    "policy {} cannot be given to `{}`: {why}",
                    name(p),
                    base.config.command.join(" ")
                )))
            })
        })
        .collect()
}

/// Runs `base`'s command under every policy, `repeats` times each, each run in a fresh group.
/// Every policy is checked before the first run. A stop signal ends the comparison after the
/// run it interrupted.
pub fn compare_command(
    base: &CommandBase,
    policies: &[Policy],
    not_applicable: Vec<NotApplicable>,
    repeats: u32,
    interrupts: &Interrupts,
) -> Result<CommandCompareFacts, SupervisorError> {
    let configs = command_configs(base, policies)?;
    let mut runner = ProgramRunner::new(base.trace_kernel, interrupts);
    let stop = || interrupts.received();
    let (runs, stopped_by) = each_run(policies, &configs, repeats, stop, |c| runner.run(c))?;
    Ok(CommandCompareFacts {
        command: base.config.command.clone(),
        limit_bytes: base.config.limit,
        limit_source: base.config.inherit.as_ref().map(|l| l.source.clone()),
        planned: policies.iter().map(|p| name(p).to_owned()).collect(),
        not_applicable,
        repeats,
        runs,
        stopped_by,
    })
}

/// A policy's name in the log ("-" for one given by flags).
fn name(p: &Policy) -> &str {
    p.name.as_deref().unwrap_or("-")
}

/// What a threshold search varies: an experiment, and the seed's chunk (the spike knob
/// rebuilds the seed scenario with it).
#[derive(Clone, Debug)]
pub struct Base {
    pub config: WorkerConfig,
    pub seed_chunk: Option<u64>,
}

impl Base {
    fn with_policy(&self, policy: &Policy) -> Base {
        Base {
            config: with_policy(&self.config, policy),
            seed_chunk: self.seed_chunk,
        }
    }
}

/// `base` with the knob at `value`.
fn at(base: &Base, knob: Knob, value: f64) -> WorkerConfig {
    let mut c = base.config.clone();
    knob.set(&mut c.experiment, value, base.seed_chunk);
    c
}

/// Per policy, the knob's threshold in `range` to 1 %, by bisection over real runs. The
/// range's ends are checked first; a run that neither survives nor is OOM-killed (an error,
/// a stop signal) ends the search with its error.
pub fn threshold(
    base: &Base,
    policies: &[Policy],
    knob: Knob,
    range: &Range,
    repeats: u32,
    options: &RunOptions,
    interrupts: &Interrupts,
) -> Result<ThresholdFacts, SupervisorError> {
    if knob == Knob::Spike && base.config.experiment.spike.is_none() {
        return Err(SupervisorError::Usage(
            "--knob spike varies the seed scenario's spike: use --scenario seed, or another knob"
                .into(),
        ));
    }
    let bases: Vec<Base> = policies.iter().map(|p| base.with_policy(p)).collect();
    for base in &bases {
        for end in [range.lo, range.hi] {
            let c = at(base, knob, knob.quantize(end));
            supervisor::validate(&c, options).map_err(|e| {
                SupervisorError::Settings(UsageError::Threshold {
                    knob: knob.to_string(),
                    value: knob.format(end),
                    why: e.to_string(),
                })
            })?;
        }
    }
    let mut runner = Runner::new(options, interrupts);
    let mut found = Vec::with_capacity(policies.len());
    let progress = Progress::new("policies", policies.len() as u64);
    for (p, base) in policies.iter().zip(&bases) {
        tracing::info!("policy {}: {}", name(p), knob.goal());
        let options = threshold::Options {
            repeats,
            ..threshold::Options::default()
        };
        let mut made = 0;
        let t = threshold::search_with(range, options, |value| {
            made += 1;
            progress.now(format!(
                "{}: run {made} at {knob} {}",
                name(p),
                knob.format(value)
            ));
            let facts = runner.run(&at(base, knob, value))?;
            match Outcome::of_run(&facts) {
                (Outcome::Survived, _) => Ok(Survived(true)),
                (Outcome::OomKilled, _) => Ok(Survived(false)),
                (_, error) => Err(SupervisorError::Worker(format!(
                    "the run at {knob} {} did not complete: {}",
                    knob.format(value),
                    error.as_deref().unwrap_or("unknown error")
                ))),
            }
        })?;
        progress.done_one();
        found.push(PolicySearch {
            policy: p.clone(),
            threshold: t,
            model: threshold::model_band(range, &base.config.experiment, base.seed_chunk),
            cost: None,
            cost_bound: None,
            probes: Vec::new(),
        });
    }
    Ok(ThresholdFacts {
        subject: ThresholdSubject::Scenario(Box::new(base.config.experiment.clone())),
        knob,
        searches: found,
    })
}

/// `policy` with `knob` at `value`, and the group's limit: `base`'s, or the knob's.
fn knob_at(policy: &Policy, limit: u64, knob: Knob, value: f64) -> (Policy, u64) {
    let mut p = policy.clone();
    let mut limit = limit;
    match knob {
        // Refused before any run (`threshold_command`).
        Knob::Spike => {}
        Knob::Limit => limit = value as u64,
        Knob::Gogc => p.gogc = Gogc::Percent(value as u32),
        Knob::Gomemlimit => p.memory_limit = Some(Amount::Percent(value * 100.0)),
    }
    (p, limit)
}

/// Runs a command's probes one after the other, saying each on stderr.
struct Prober<'a> {
    runner: ProgramRunner<'a>,
    started: Instant,
    policies: usize,
    /// Policies searched, on a terminal.
    progress: Progress,
}

impl Prober<'_> {
    /// Runs `config` for policy `i`, `p`, and keeps its brief in `probes`.
    #[allow(clippy::too_many_arguments)]
    fn probe(
        &mut self,
        i: usize,
        p: &Policy,
        what: &str,
        config: &ExecConfig,
        value: Option<f64>,
        edge: &str,
        probes: &mut Vec<Probe>,
    ) -> Result<Probe, SupervisorError> {
        let doing = format!("policy {}/{} {}: {what}", i + 1, self.policies, name(p));
        tracing::info!(
            "{doing} ({:.1} s elapsed)",
            self.started.elapsed().as_secs_f64()
        );
        self.progress.now(doing);
        let facts = self.runner.run(config)?;
        if let Some(sig) = &facts.group.stop_signal {
            return Err(SupervisorError::Worker(format!(
                "stopped by {sig} during the {what}"
            )));
        }
        let environment = facts.environment.clone();
        let trial = Trial::of_exec(&ExecReport::build(facts));
        let probe = Probe {
            value,
            edge: edge.to_owned(),
            outcome: trial.outcome,
            exit: trial.exit,
            peak_bytes: trial.peak_bytes,
            gc_cycles: trial.gc_cycles,
            gc_cpu_share: trial.gc_cpu_share,
            wall_ms: trial.duration_ms,
            environment,
            stderr_tail: trial.stderr_tail,
        };
        probes.push(probe.clone());
        Ok(probe)
    }
}

/// `p` without its memory limit, for a baseline run: with GOGC 100 where it had GOGC off, which
/// without a limit would never collect.
fn baseline_policy(p: &Policy) -> Policy {
    Policy {
        memory_limit: None,
        gogc: match p.gogc {
            Gogc::Off => Gogc::Percent(100),
            g => g,
        },
        ..p.clone()
    }
}

/// What a command's threshold search asks beyond the knob.
#[derive(Clone, Copy, Debug)]
pub struct CommandSearch {
    /// Runs at each point near the boundary (and of the baseline).
    pub repeats: u32,
    /// The cost edge's bound on the collector's CPU share (`gomemlimit`).
    pub gc_cpu_max: f64,
}

/// The wall time a run may take, as a multiple of the baseline's, before it costs too much.
pub const WALL_FACTOR: f64 = 2.0;
/// The baseline's group, as a multiple of the searched limit: room enough that a memory limit
/// is what it lacks, bounded so that a program that grows without end meets a limit still.
pub const BASELINE_ROOM: u64 = 8;

/// Per policy, the knob's threshold for `base`'s command in `range`, by bisection over real
/// runs, each point near the boundary run `search.repeats` times. For `gomemlimit`, also the
/// cost edge: the lowest share whose runs survive with the collector's CPU at most
/// `search.gc_cpu_max` and the wall time at most [`WALL_FACTOR`] times that of runs without a
/// memory limit (the baseline, run after the survival search, in a larger group).
/// Every value the search may try is checked before the first run.
pub fn threshold_command(
    base: &CommandBase,
    policies: &[Policy],
    knob: Knob,
    range: &Range,
    search: CommandSearch,
    interrupts: &Interrupts,
) -> Result<ThresholdFacts, SupervisorError> {
    if knob == Knob::Spike {
        return Err(SupervisorError::Usage(
            "--knob spike shapes the simulated seed scenario; a command's knobs are limit, gogc and gomemlimit".into(),
        ));
    }
    exec::validate(&base.config, None)?;
    let limit = base.config.limit;
    for p in policies {
        for end in [range.lo, range.hi] {
            let (policy, limit) = knob_at(p, limit, knob, knob.quantize(end));
            let refuse = |why: String| {
                SupervisorError::Settings(UsageError::Threshold {
                    knob: knob.to_string(),
                    value: knob.format(end),
                    why,
                })
            };
            preflight::check_limit(limit, preflight::Memory::read())
                .map_err(|e| refuse(e.to_string()))?;
            base.with_policy(&policy, limit)
                .map_err(|why| refuse(format!("policy {}: {why}", name(p))))?;
        }
    }
    let mut prober = Prober {
        runner: ProgramRunner::new(base.trace_kernel, interrupts),
        started: Instant::now(),
        policies: policies.len(),
        progress: Progress::new("policies", policies.len() as u64),
    };
    let mut found = Vec::with_capacity(policies.len());
    for (i, p) in policies.iter().enumerate() {
        let mut probes = Vec::new();
        let options = threshold::Options {
            repeats: search.repeats,
            ..threshold::Options::default()
        };
        let at = |prober: &mut Prober, value: f64, edge: &str, probes: &mut Vec<Probe>| {
            let (policy, limit) = knob_at(p, limit, knob, value);
            let config = base
                .with_policy(&policy, limit)
                .map_err(|why| SupervisorError::Usage(format!("policy {}: {why}", name(p))))?;
            let what = format!("{edge} run at {knob} {}", knob.format(value));
            prober.probe(i, p, &what, &config, Some(value), edge, probes)
        };
        let t = threshold::search_with(range, options, |value| {
            let probe = at(&mut prober, value, "survival", &mut probes)?;
            match probe.outcome {
                Outcome::Survived => Ok(Survived(true)),
                // Either limit ended it: the group's, or the runtime's own heap's.
                Outcome::OomKilled | Outcome::OutOfHeap => Ok(Survived(false)),
                _ => Err(SupervisorError::Worker(format!(
                    "the run at {knob} {} neither survived nor ran out of memory: it {}{}",
                    knob.format(value),
                    probe.exit,
                    probe
                        .stderr_tail
                        .lines()
                        .last()
                        .map_or(String::new(), |l| format!(": {l}"))
                ))),
            }
        })?;
        let cost = if knob == Knob::Gomemlimit {
            // The baseline: the same policy without a memory limit (and with GOGC 100 where
            // it had GOGC off, which without a limit would never collect), in a group of
            // BASELINE_ROOM times the limit, or the machine's free memory if less.
            let unlimited = baseline_policy(p);
            let room = preflight::Memory::read().map_or(limit * BASELINE_ROOM, |m| {
                m.available.min(limit * BASELINE_ROOM)
            });
            let config = base
                .with_policy(&unlimited, room)
                .map_err(SupervisorError::Usage)?;
            let mut walls = Vec::new();
            for _ in 0..search.repeats {
                let b = prober.probe(
                    i,
                    p,
                    "baseline run without a memory limit",
                    &config,
                    None,
                    "baseline",
                    &mut probes,
                )?;
                if b.outcome == Outcome::Survived {
                    walls.push(b.wall_ms);
                }
            }
            walls.sort_by(f64::total_cmp);
            let bound = CostBound {
                gc_cpu_max: search.gc_cpu_max,
                wall_factor: WALL_FACTOR,
                baseline_wall_ms: walls.get(walls.len().saturating_sub(1) / 2).copied(),
            };
            let c = threshold::search_with(&range.reversed(), options, |value| {
                let probe = at(&mut prober, value, "cost", &mut probes)?;
                Ok::<_, SupervisorError>(Survived(probe.within(&bound)))
            })?;
            Some((c, bound))
        } else {
            None
        };
        let (cost, cost_bound) = cost.unzip();
        prober.progress.done_one();
        found.push(PolicySearch {
            policy: p.clone(),
            threshold: t,
            model: None,
            cost,
            cost_bound,
            probes,
        });
    }
    Ok(ThresholdFacts {
        subject: ThresholdSubject::Command {
            command: base.config.command.clone(),
            limit_bytes: limit,
        },
        knob,
        searches: found,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Regression: the run a stop signal interrupted was kept as a trial of its policy (a
    /// command it ended read as "signaled", or "survived" if it exited 0), and a signal that
    /// came as a run started threw away every run made.
    #[test]
    fn a_stop_ends_the_runs_without_the_one_it_interrupted() {
        let policies = memspike_model::policy_set::defaults();
        let configs: Vec<usize> = (0..policies.len()).collect();
        let signal_at = Cell::new(None);
        let made = Cell::new(0);
        let (runs, stopped) = each_run(
            &policies,
            &configs,
            2,
            || signal_at.get(),
            |c| {
                made.set(made.get() + 1);
                if made.get() == 3 {
                    signal_at.set(Some(2)); // SIGINT arrives during the third run
                }
                Ok(*c)
            },
        )
        .unwrap();
        assert_eq!(runs.len(), 2, "the interrupted run is left out");
        assert_eq!(stopped.map(|s| s.name), Some("SIGINT".to_owned()));
        let (runs, stopped) = each_run(
            &policies,
            &configs,
            2,
            || None,
            |c| {
                if *c == 1 {
                    return Err(SupervisorError::Interrupted(15));
                }
                Ok(*c)
            },
        )
        .unwrap();
        assert_eq!(runs.len(), 2, "the runs before the refused start are kept");
        assert_eq!(stopped.map(|s| s.name), Some("SIGTERM".to_owned()));
    }

    /// Regression: gogc-off-memlimit90's baseline ran with GOGC off and no memory limit, which
    /// never collects.
    #[test]
    fn a_baseline_collects() {
        let p = memspike_model::policy_set::by_name("gogc-off-memlimit90").unwrap();
        let b = baseline_policy(&p);
        assert_eq!((b.gogc, b.memory_limit), (Gogc::Percent(100), None));
        let p = memspike_model::policy_set::by_name("gogc50").unwrap();
        assert_eq!(baseline_policy(&p).gogc, Gogc::Percent(50));
    }
}
