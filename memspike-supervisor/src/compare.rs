//! Many runs of one scenario: `memspike compare` (a set of policies, each once) and
//! `memspike threshold` (per policy, a bisection over a knob). Every run is a real one, in a
//! fresh group of its own, one after another through one [`Runner`]; the search itself is the
//! model's ([`memspike_model::threshold`]). What they return are facts
//! ([`CompareFacts`], [`ThresholdFacts`]); the reports are `memspike-report`'s.

use memspike_report::{
    facts::{CompareFacts, PolicyRun, PolicySearch, ThresholdFacts},
    outcome::Outcome,
};
use memspike_worker::telemetry::WorkerConfig;

use crate::{
    preflight::UsageError,
    signals::{Interrupts, signal},
    supervisor::{self, RunOptions, Runner, SupervisorError},
};
use memspike_model::{
    experiment::Experiment,
    pacer::Gogc,
    policy::Policy,
    scenario::builtin,
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
    let mut runs = Vec::with_capacity(policies.len());
    let mut stopped_by = None;
    for (policy, config) in policies.iter().zip(&configs) {
        if let Some(sig) = interrupts.received() {
            stopped_by = Some(signal(sig));
            break;
        }
        tracing::info!("policy {}", name(policy));
        runs.push(PolicyRun {
            policy: policy.clone(),
            run: runner.run(config)?,
        });
    }
    Ok(CompareFacts {
        base: base.experiment.clone(),
        limit_source: options.inherit.as_ref().map(|l| l.source.clone()),
        planned: policies.iter().map(|p| name(p).to_owned()).collect(),
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

/// `base` with the knob at `value`: the seed's spike fraction, the group's limit, or GOGC.
fn at(base: &Base, knob: Knob, value: f64) -> WorkerConfig {
    let mut c = base.config.clone();
    let e: &mut Experiment = &mut c.experiment;
    match knob {
        Knob::Spike => {
            e.scenario = builtin::seed(value, base.seed_chunk);
            e.spike = Some(value);
        }
        Knob::Limit => e.limit = value as u64,
        Knob::Gogc => e.policy.gogc = Gogc::Percent(value as u32),
    }
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
    for (p, base) in policies.iter().zip(&bases) {
        tracing::info!("policy {}: {}", name(p), knob.goal());
        let t = threshold::search(range, |value| {
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
        found.push(PolicySearch {
            policy: p.clone(),
            threshold: t,
        });
    }
    Ok(ThresholdFacts {
        base: base.config.experiment.clone(),
        knob,
        searches: found,
    })
}
