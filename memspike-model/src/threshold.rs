//! The threshold search behind `memspike threshold`: bisection over a knob until the boundary
//! between surviving and dying values is known to 1 %, with repeated runs where outcomes flip
//! from run to run. Pure: the caller's probe does the runs (real ones in the CLI, fakes in
//! tests) and says whether each survived.
//!
//! The knobs, and what the search finds:
//! - `spike`, the seed's spike fraction in `[0, 1]`: the **largest** that survives (a larger
//!   spike leaves less room for the remainder). Searched on a linear scale; "1 %" is 1 % of the
//!   range's width (0.01 of the limit on the default range `[0, 1]`).
//! - `limit`, the cgroup's limit in bytes: the **smallest** that survives. Searched on a
//!   geometric scale; "1 %" is a relative step: the surviving and the dying value differ by at
//!   most 1 % (or by one 4 KiB page). The caller gives the range (there is no useful default:
//!   it depends on what the scenario allocates).
//! - `gogc`, in `[1, 10000]` ([`GOGC_MAX`]): the **largest** that survives. Geometric, 1 %
//!   relative step, or adjacent whole GOGC values.
//! - `gomemlimit`, GOMEMLIMIT as a fraction of the group's limit in `(0, 1]`: the **highest**
//!   that survives. Linear, default range `[0.5, 1]`. Its other edge, the **lowest** fraction
//!   whose cost stays bearable, is the same search with the sides swapped
//!   ([`Range::reversed`]): there a lower value is the risky one.
//!
//! "Survives" is always on the safe side of the boundary: when every value in the range
//! survives, the answer is the range's risky end (for GOGC: 10000 survives; `off` is not
//! tried) and there is no dying value; when none survives there is no answer, only the safe
//! end as the nearest dying value.
//!
//! How it searches ([`search`]):
//! 1. Plain bisection, one run per point, until the last surviving and the first dying point
//!    are within the precision (7 runs for `spike` on `[0, 1]`: 2^-7 < 1 %).
//! 2. Both of them are run again until each has [`Options::repeats`] runs (3 by default: 4
//!    more runs). A point where every run agrees is *sure*; one where they disagree is
//!    *flaky*. An end of the range is run only here, when bisection never reached it (the
//!    edge cases).
//! 3. If both are sure, the threshold is a point. Otherwise the outcomes flip near the
//!    boundary: the search bisects again, classifying each point by its repeated runs, for the
//!    last sure survival below the flaky region and the first sure death above it, and reports
//!    that band.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{
    experiment::Experiment,
    pacer::Gogc,
    predict::{self, Prediction},
    scenario::builtin,
    size::{Amount, human},
};

/// The highest GOGC the search tries.
pub const GOGC_MAX: f64 = 10_000.0;
/// The search stops when the boundary is known to this share (see the module documentation).
pub const PRECISION: f64 = 0.01;
/// Runs at each point near the boundary before it counts as sure.
pub const REPEATS: u32 = 3;
/// Limits are searched in whole pages.
const PAGE: f64 = 4096.0;

/// What the search varies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Knob {
    /// The seed's spike fraction (0..1): the largest that survives.
    Spike,
    /// The cgroup's limit, bytes: the smallest that survives.
    Limit,
    /// GOGC (1..=10000): the largest that survives.
    Gogc,
    /// GOMEMLIMIT as a fraction of the group's limit (0..=1): the highest that survives.
    Gomemlimit,
}

impl Knob {
    /// Larger values are riskier (spike, GOGC) or safer (limit).
    fn larger_is_riskier(self) -> bool {
        !matches!(self, Knob::Limit)
    }

    /// Searched on a geometric scale (each step a share of the value), and drawn on one.
    pub fn geometric(self) -> bool {
        !matches!(self, Knob::Spike | Knob::Gomemlimit)
    }

    /// The value as the probe gets it: spike fractions as they are, limits in whole pages,
    /// GOGC as a whole number.
    pub fn quantize(self, v: f64) -> f64 {
        match self {
            Knob::Spike => v,
            Knob::Gomemlimit => ((v * 1e3).round() / 1e3).max(0.001),
            Knob::Limit => ((v / PAGE).round() * PAGE).max(PAGE),
            Knob::Gogc => v.round().max(1.0),
        }
    }

    /// The range searched when the user names none: `[0.01, 0.99]` for spike (a spike of 0
    /// or of the whole limit is no experiment: the seed needs both a spike and a remainder),
    /// `[1, 10000]` for GOGC; none for the limit.
    pub fn default_range(self) -> Option<Range> {
        match self {
            Knob::Spike => Range::new(self, 0.01, 0.99).ok(),
            Knob::Gogc => Range::new(self, 1.0, GOGC_MAX).ok(),
            Knob::Gomemlimit => Range::new(self, 0.5, 1.0).ok(),
            Knob::Limit => None,
        }
    }

    /// A value for people: `0.898`, `30.5 MiB`, `150`.
    pub fn format(self, v: f64) -> String {
        match self {
            Knob::Spike => format!("{}", (v * 1e4).round() / 1e4),
            Knob::Gomemlimit => format!("{:.1} %", v * 100.0),
            Knob::Limit => human(v as u64).to_string(),
            Knob::Gogc => format!("{v:.0}"),
        }
    }

    /// What the search finds, for people.
    pub fn goal(self) -> &'static str {
        match self {
            Knob::Spike => "the largest spike fraction that survives",
            Knob::Limit => "the smallest limit that survives",
            Knob::Gogc => "the largest GOGC that survives",
            Knob::Gomemlimit => "the highest GOMEMLIMIT (share of the limit) that survives",
        }
    }
}

impl fmt::Display for Knob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Knob::Spike => "spike",
            Knob::Limit => "limit",
            Knob::Gogc => "gogc",
            Knob::Gomemlimit => "gomemlimit",
        })
    }
}

impl FromStr for Knob {
    type Err = String;
    fn from_str(s: &str) -> Result<Knob, String> {
        match s.trim() {
            "spike" => Ok(Knob::Spike),
            "limit" => Ok(Knob::Limit),
            "gogc" => Ok(Knob::Gogc),
            "gomemlimit" => Ok(Knob::Gomemlimit),
            _ => Err(format!(
                "unknown knob {s:?}: give spike, limit, gogc or gomemlimit"
            )),
        }
    }
}

impl Knob {
    /// `experiment` with the knob at `value`: the seed's spike fraction (its remainder in
    /// `seed_chunk` pieces), the group's limit, GOGC, or GOMEMLIMIT's share of the limit.
    pub fn set(self, experiment: &mut Experiment, value: f64, seed_chunk: Option<u64>) {
        let e = experiment;
        match self {
            Knob::Spike => {
                e.scenario = builtin::seed(value, seed_chunk);
                e.spike = Some(value);
            }
            Knob::Limit => e.limit = value as u64,
            Knob::Gogc => e.policy.gogc = Gogc::Percent(value as u32),
            Knob::Gomemlimit => e.policy.memory_limit = Some(Amount::Percent(value * 100.0)),
        }
    }
}

/// The model's answer along a range ([`model_band`]), in the search's terms: the boundary
/// nearest the risky end, and the band around it where the model's draws disagree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ModelBand {
    /// The value nearest the risky end at which every draw survived; `null` when none did.
    pub survives: Option<f64>,
    /// The values tried between it and the nearest value at which every draw died where the
    /// draws disagreed, lowest and highest; `null` when there were none (the boundary is a
    /// point) .
    pub marginal: Option<(f64, f64)>,
    /// Values tried, evenly on the search's scale, and draws at each.
    pub tried: u32,
    pub draws: u32,
}

impl ModelBand {
    /// For people: `survives every draw to 0.4524; marginal from 0.4571 to 0.4857`.
    pub fn describe(&self, knob: Knob) -> String {
        let survives = self
            .survives
            .map_or("never survives every draw".to_owned(), |v| {
                format!("survives every draw to {}", knob.format(v))
            });
        match self.marginal {
            Some(band) => format!("{survives}; marginal {}", band_text(knob, band)),
            None => format!("{survives}; never marginal near it"),
        }
    }
}

/// A band of values for people: `at 0.9589`, or `from 0.8967 to 0.9589`.
pub fn band_text(knob: Knob, (lo, hi): (f64, f64)) -> String {
    if knob.format(lo) == knob.format(hi) {
        format!("at {}", knob.format(lo))
    } else {
        format!("from {} to {}", knob.format(lo), knob.format(hi))
    }
}

/// Values tried by [`model_band`]: 1 % apart on the search's scale, its precision.
pub const MODEL_POINTS: u32 = 101;

/// The model's answer along `range` for `experiment` (the knob set with [`Knob::set`]):
/// [`MODEL_POINTS`] values evenly on the search's scale, each predicted from
/// [`predict::DRAWS`] draws, walked from the risky end until every draw survives. `None` when
/// the model cannot run the experiment.
pub fn model_band(
    range: &Range,
    experiment: &Experiment,
    seed_chunk: Option<u64>,
) -> Option<ModelBand> {
    let mut band = ModelBand {
        survives: None,
        marginal: None,
        tried: MODEL_POINTS,
        draws: predict::DRAWS,
    };
    for i in (0..MODEL_POINTS).rev() {
        let value = range.at(f64::from(i) / f64::from(MODEL_POINTS - 1));
        let mut e = experiment.clone();
        range.knob.set(&mut e, value, seed_chunk);
        let p: Prediction = predict::predict(&e, predict::DRAWS)?;
        match p.unanimous() {
            Some(true) => {
                band.survives = Some(value);
                break;
            }
            Some(false) if band.marginal.is_none() => {}
            _ => {
                band.marginal = Some(match band.marginal {
                    None => (value, value),
                    Some((lo, hi)) => (lo.min(value), hi.max(value)),
                });
            }
        }
    }
    Some(band)
}

/// The values a search may try, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Range {
    pub knob: Knob,
    pub lo: f64,
    pub hi: f64,
    /// The sides are swapped: the knob's safe end is the risky one (a cost edge: the lowest
    /// GOMEMLIMIT whose cost stays bearable).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reversed: bool,
}

/// A range the search cannot use.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid {knob} range {lo}..{hi}: {why}")]
pub struct RangeError {
    knob: Knob,
    lo: f64,
    hi: f64,
    why: &'static str,
}

impl Range {
    /// `--range LO,HI` for `knob` (sizes for the limit, numbers otherwise), or, without one,
    /// the knob's default range (for the limit: half to twice `limit`).
    pub fn parse(knob: Knob, spec: Option<&str>, limit: u64) -> Result<Range, String> {
        let Some(spec) = spec else {
            return match knob.default_range() {
                Some(r) => Ok(r),
                None => Range::new(knob, (limit / 2) as f64, (limit * 2) as f64)
                    .map_err(|e| e.to_string()),
            };
        };
        let (lo, hi) = spec
            .split_once(',')
            .ok_or_else(|| format!("{spec:?} is not LO,HI"))?;
        let value = |v: &str| -> Result<f64, String> {
            let v = v.trim();
            match knob {
                Knob::Limit => crate::size::parse(v)
                    .map(|b| b as f64)
                    .map_err(|e| e.to_string()),
                _ => v
                    .parse::<f64>()
                    .map_err(|_| format!("{v:?} is not a number")),
            }
        };
        Range::new(knob, value(lo)?, value(hi)?).map_err(|e| e.to_string())
    }

    pub fn new(knob: Knob, lo: f64, hi: f64) -> Result<Range, RangeError> {
        let err = |why| Err(RangeError { knob, lo, hi, why });
        if !(lo.is_finite() && hi.is_finite()) {
            return err("the ends must be finite numbers");
        }
        let (lo_q, hi_q) = (knob.quantize(lo), knob.quantize(hi));
        match knob {
            Knob::Spike if lo < 0.0 || hi > 1.0 => return err("a spike is a fraction in [0, 1]"),
            Knob::Gogc if lo < 1.0 || hi > GOGC_MAX => {
                return err("GOGC is searched in [1, 10000]");
            }
            Knob::Limit if lo < PAGE => return err("a limit is at least one 4 KiB page"),
            Knob::Gomemlimit if lo <= 0.0 || hi > 1.0 => {
                return err("GOMEMLIMIT is searched as a share of the limit in (0, 1]");
            }
            _ => {}
        }
        if lo_q >= hi_q {
            return err("the low end must be below the high end");
        }
        Ok(Range {
            knob,
            lo: lo_q,
            hi: hi_q,
            reversed: false,
        })
    }

    /// The same values with the sides swapped (see [`Range::reversed`](field@Range::reversed)).
    pub fn reversed(self) -> Range {
        Range {
            reversed: !self.reversed,
            ..self
        }
    }

    /// What the search finds, for people.
    pub fn goal(&self) -> &'static str {
        match (self.knob, self.reversed) {
            (Knob::Gomemlimit, true) => {
                "the lowest GOMEMLIMIT (share of the limit) whose cost stays bearable"
            }
            (k, _) => k.goal(),
        }
    }

    /// Whether a larger value is the riskier one in this search.
    fn larger_is_riskier(&self) -> bool {
        self.knob.larger_is_riskier() != self.reversed
    }

    /// The value a position on the search's scale stands for: 0 is the safe end, 1 the risky
    /// end.
    fn at(&self, u: f64) -> f64 {
        let (safe, risky) = if self.larger_is_riskier() {
            (self.lo, self.hi)
        } else {
            (self.hi, self.lo)
        };
        let v = if u <= 0.0 {
            safe
        } else if u >= 1.0 {
            risky
        } else if self.knob.geometric() {
            safe * (risky / safe).powf(u)
        } else {
            safe + (risky - safe) * u
        };
        self.knob.quantize(v)
    }

    /// The search's precision as a distance on its scale.
    fn step(&self, precision: f64) -> f64 {
        if self.knob.geometric() {
            (1.0 + precision).ln() / (self.hi / self.lo).ln()
        } else {
            precision
        }
    }
}

/// How a search runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Options {
    /// See [`PRECISION`]; in (0, 1).
    pub precision: f64,
    /// Runs at each point near the boundary before it counts as sure; 1 is plain bisection.
    pub repeats: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            precision: PRECISION,
            repeats: REPEATS,
        }
    }
}

/// One run's outcome, as the probe reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Survived(pub bool);

/// One run the search asked for, in order.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Run {
    pub value: f64,
    pub survived: bool,
}

/// What a search found. See the module documentation for what "survives" means per knob.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Threshold {
    pub range: Range,
    /// The answer: the value nearest the boundary at which every run survived; `None` when no
    /// value in the range survived for sure.
    pub survives: Option<f64>,
    /// The value nearest the boundary, on the risky side, at which every run died; `None` when
    /// every value up to the range's risky end survived (or flipped).
    pub dies: Option<f64>,
    /// Outcomes flipped from run to run between `survives` and `dies`: a band, not a point.
    pub flaky: bool,
    /// Every run, in the order the search asked for them; its length is what it cost.
    pub runs: Vec<Run>,
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = self.range.knob;
        let goal = self.range.goal();
        let dies = if self.range.reversed {
            "is too costly"
        } else {
            "dies"
        };
        let (s, d) = (
            self.survives.map(|v| k.format(v)),
            self.dies.map(|v| k.format(v)),
        );
        let runs = self.runs.len();
        match (s, d) {
            (Some(s), Some(d)) if self.flaky => write!(
                f,
                "{}: {s} (outcomes flip between {s} and {d}; {runs} runs)",
                goal
            ),
            (Some(s), Some(d)) => write!(f, "{}: {s} ({d} {dies}; {runs} runs)", goal),
            (Some(s), None) if self.flaky => write!(
                f,
                "{}: {s} (outcomes flip from there to the end of the range; {runs} runs)",
                goal
            ),
            (Some(s), None) => write!(
                f,
                "{}: {s} or beyond: everything in the range survived ({runs} runs)",
                goal
            ),
            (None, Some(d)) => write!(
                f,
                "{}: none in the range{}: {d} {dies} ({runs} runs)",
                goal,
                if self.flaky {
                    " survives every time"
                } else {
                    ""
                }
            ),
            (None, None) => write!(
                f,
                "{}: none: outcomes flip across the whole range ({runs} runs)",
                goal
            ),
        }
    }
}

/// [`search_with`] with the default [`Options`].
pub fn search<E>(
    range: &Range,
    probe: impl FnMut(f64) -> Result<Survived, E>,
) -> Result<Threshold, E> {
    search_with(range, Options::default(), probe)
}

/// Finds the threshold in `range`, calling `probe` with each value to run (already
/// [`Knob::quantize`]d). A probe's error ends the search.
pub fn search_with<E>(
    range: &Range,
    options: Options,
    probe: impl FnMut(f64) -> Result<Survived, E>,
) -> Result<Threshold, E> {
    let precision = if options.precision > 0.0 && options.precision < 1.0 {
        options.precision
    } else {
        PRECISION
    };
    let s = Searcher {
        range: *range,
        step: range.step(precision),
        repeats: options.repeats.max(1),
        probe,
        tallies: Vec::new(),
        runs: Vec::new(),
        flaky: false,
    };
    s.run()
}

/// How the runs at one point came out.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    survived: u32,
    died: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Survives,
    Dies,
    Flaky,
}

struct Searcher<P> {
    range: Range,
    /// The precision on the search's scale.
    step: f64,
    repeats: u32,
    probe: P,
    tallies: Vec<(f64, Tally)>,
    runs: Vec<Run>,
    flaky: bool,
}

impl<P> Searcher<P> {
    /// `a` (safer) and `b` (riskier) are close enough: within the step, or no value lies
    /// between them.
    fn converged(&self, a: f64, b: f64) -> bool {
        let mid = self.range.at((a + b) / 2.0);
        b - a <= self.step || mid == self.range.at(a) || mid == self.range.at(b)
    }

    fn tally(&self, value: f64) -> Tally {
        self.tallies
            .iter()
            .find(|(v, _)| *v == value)
            .map_or_else(Tally::default, |(_, t)| *t)
    }

    fn once<E>(&mut self, u: f64) -> Result<bool, E>
    where
        P: FnMut(f64) -> Result<Survived, E>,
    {
        let value = self.range.at(u);
        let Survived(survived) = (self.probe)(value)?;
        self.runs.push(Run { value, survived });
        let i = match self.tallies.iter().position(|(v, _)| *v == value) {
            Some(i) => i,
            None => {
                self.tallies.push((value, Tally::default()));
                self.tallies.len() - 1
            }
        };
        let t = &mut self.tallies[i].1;
        if survived {
            t.survived += 1;
        } else {
            t.died += 1;
        }
        Ok(survived)
    }

    /// Runs at `u` until it has `repeats` runs or two that disagree.
    fn classify<E>(&mut self, u: f64) -> Result<Class, E>
    where
        P: FnMut(f64) -> Result<Survived, E>,
    {
        let value = self.range.at(u);
        loop {
            let t = self.tally(value);
            let class = match (t.survived, t.died) {
                (s, d) if s > 0 && d > 0 => Some(Class::Flaky),
                (s, d) if s + d >= self.repeats => {
                    Some(if s > 0 { Class::Survives } else { Class::Dies })
                }
                _ => None,
            };
            if let Some(c) = class {
                self.flaky |= c == Class::Flaky;
                return Ok(c);
            }
            self.once(u)?;
        }
    }

    fn run<E>(mut self) -> Result<Threshold, E>
    where
        P: FnMut(f64) -> Result<Survived, E>,
    {
        // 1. Bisection, one run per point; 0 (safe) and 1 (risky) are presumed, not run.
        let (mut s, mut d) = (0.0, 1.0);
        while !self.converged(s, d) {
            let m = (s + d) / 2.0;
            if self.once(m)? {
                s = m;
            } else {
                d = m;
            }
        }
        // 2. Both ends of the bracket, repeated.
        let cs = self.classify(s)?;
        let cd = self.classify(d)?;
        // 3. The last sure survival before the first point that is not one ...
        let survives = if cs == Class::Survives && cd == Class::Survives {
            Some(d)
        } else {
            let (mut a, mut b) = if cs == Class::Survives {
                (s, d)
            } else {
                (0.0, s)
            };
            while !self.converged(a, b) {
                let m = (a + b) / 2.0;
                if self.classify(m)? == Class::Survives {
                    a = m;
                } else {
                    b = m;
                }
            }
            (self.classify(a)? == Class::Survives).then_some(a)
        };
        // ... and the first sure death after the last point that is not one.
        let dies = if cs == Class::Dies && cd == Class::Dies {
            Some(s)
        } else {
            let (mut a, mut b) = if cd == Class::Dies { (s, d) } else { (d, 1.0) };
            while !self.converged(a, b) {
                let m = (a + b) / 2.0;
                if self.classify(m)? == Class::Dies {
                    b = m;
                } else {
                    a = m;
                }
            }
            (self.classify(b)? == Class::Dies).then_some(b)
        };
        Ok(Threshold {
            range: self.range,
            survives: survives.map(|u| self.range.at(u)),
            dies: dies.map(|u| self.range.at(u)),
            flaky: self.flaky,
            runs: self.runs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 18: the model's band along a knob. Along GOMEMLIMIT's share at 32 MiB (the seed,
    /// its remainder whole) real timing decides wherever the spike passes the memory limit:
    /// the known coin toss at 90 % is inside the band. Along the spike, the model survives
    /// every draw up to a point when the remainder comes in 1 MiB pieces.
    #[test]
    fn the_model_band_says_where_timing_decides() {
        let e = Experiment {
            runtime: crate::release::Release::go1(21).unwrap(),
            gomaxprocs: 2,
            ..Experiment::seed(32 << 20)
        };
        let range = Range::new(Knob::Gomemlimit, 0.5, 1.0).unwrap();
        let band = model_band(&range, &e, None).unwrap();
        let (lo, hi) = band.marginal.unwrap();
        assert!(lo <= 0.9 && 0.9 <= hi, "{band:?}");
        assert!(
            band.describe(Knob::Gomemlimit).contains("; marginal from "),
            "{band:?}"
        );
        let range = Range::new(Knob::Spike, 0.3, 0.6).unwrap();
        let band = model_band(&range, &e, Some(1 << 20)).unwrap();
        let survives = band.survives.unwrap();
        let (lo, hi) = band.marginal.unwrap();
        assert!(0.4 < survives && survives < lo && hi < 0.6, "{band:?}");
    }
    use std::convert::Infallible;

    const MIB: f64 = (1 << 20) as f64;

    fn spike() -> Range {
        Knob::Spike.default_range().unwrap()
    }

    /// A deterministic world: survives exactly on the safe side of `t`.
    fn monotone(knob: Knob, t: f64) -> impl FnMut(f64) -> Result<Survived, Infallible> {
        move |v| {
            Ok(Survived(if knob.larger_is_riskier() {
                v <= t
            } else {
                v >= t
            }))
        }
    }

    fn plain() -> Options {
        Options {
            repeats: 1,
            ..Options::default()
        }
    }

    #[test]
    fn a_monotone_world_gives_a_point_to_one_percent() {
        // (knob, range, true threshold)
        let cases = [
            (Knob::Spike, spike(), 0.9),
            (Knob::Spike, spike(), 0.123),
            (
                Knob::Spike,
                Range::new(Knob::Spike, 0.5, 1.0).unwrap(),
                0.77,
            ),
            (Knob::Gogc, Knob::Gogc.default_range().unwrap(), 150.0),
            (Knob::Gogc, Knob::Gogc.default_range().unwrap(), 7.0),
            (
                Knob::Limit,
                Range::new(Knob::Limit, 4.0 * MIB, 1024.0 * MIB).unwrap(),
                33.3 * MIB,
            ),
            (
                Knob::Gomemlimit,
                Knob::Gomemlimit.default_range().unwrap(),
                0.83,
            ),
        ];
        for (knob, range, t) in cases {
            let th = search(&range, monotone(knob, t)).unwrap();
            let (s, d) = (th.survives.unwrap(), th.dies.unwrap());
            assert!(!th.flaky, "{knob} {t}: {th}");
            match knob {
                Knob::Spike | Knob::Gomemlimit => {
                    assert!(s <= t && t < d, "{t}: {th}");
                    assert!(d - s <= 0.01 * (range.hi - range.lo), "{t}: {th}");
                }
                Knob::Gogc => {
                    assert!(s <= t && t < d, "{t}: {th}");
                    assert!(d / s <= 1.01 || d - s <= 1.0, "{t}: {th}");
                    assert_eq!(s.fract(), 0.0, "whole GOGC values");
                }
                Knob::Limit => {
                    assert!(d < t && t <= s, "{t}: {th}");
                    assert!(s / d <= 1.01 || s - d <= PAGE, "{t}: {th}");
                    assert_eq!(s % PAGE, 0.0, "whole pages");
                }
            }
            // Every run agrees with the world.
            let mut world = monotone(knob, t);
            for r in &th.runs {
                assert_eq!(world(r.value).unwrap(), Survived(r.survived));
            }
        }
    }

    /// The cost edge: the same knob with the sides swapped finds the lowest value that is
    /// still bearable, where a lower value is the risky one.
    #[test]
    fn a_reversed_range_finds_the_lowest_bearable_value() {
        let range = Knob::Gomemlimit.default_range().unwrap().reversed();
        let t = 0.62;
        let th = search(&range, |v| Ok::<_, Infallible>(Survived(v >= t))).unwrap();
        let (s, d) = (th.survives.unwrap(), th.dies.unwrap());
        assert!(d < t && t <= s, "{th}");
        assert!(s - d <= 0.01 * (range.hi - range.lo) + 1e-9, "{th}");
        assert!(
            th.to_string().starts_with(
                "the lowest GOMEMLIMIT (share of the limit) whose cost stays bearable: "
            ),
            "{th}"
        );
        assert!(th.to_string().contains("is too costly"), "{th}");
        let json = serde_json::to_value(range).unwrap();
        assert_eq!(json["reversed"], true);
        assert!(
            serde_json::to_value(Knob::Gomemlimit.default_range().unwrap())
                .unwrap()
                .get("reversed")
                .is_none()
        );
    }

    /// Bisection's promise: ceil(log2(1 / 1 %)) = 7 runs for spike on [0, 1]; the
    /// confirmation adds 2 runs at each end of the bracket.
    #[test]
    fn one_percent_costs_what_bisection_promises() {
        for t in [0.05, 0.5, 0.9, 0.98] {
            let th = search_with(&spike(), plain(), monotone(Knob::Spike, t)).unwrap();
            assert_eq!(th.runs.len(), 7, "{t}: {th}");
            let th = search(&spike(), monotone(Knob::Spike, t)).unwrap();
            assert_eq!(th.runs.len(), 7 + 2 * (REPEATS as usize - 1), "{t}: {th}");
        }
        // Within 1 % of an end of the range, bisection never runs that end: it is run once
        // to confirm it.
        for t in [0.001, 0.999] {
            let th = search_with(&spike(), plain(), monotone(Knob::Spike, t)).unwrap();
            assert_eq!(th.runs.len(), 8, "{t}: {th}");
        }
        // GOGC over [1, 10000], 1 % steps: at most ceil(log2(ln 10000 / ln 1.01)) = 10.
        for t in [3.0, 100.0, 2_345.0] {
            let range = Knob::Gogc.default_range().unwrap();
            let th = search_with(&range, plain(), monotone(Knob::Gogc, t)).unwrap();
            assert!(th.runs.len() <= 10, "{t}: {th}");
        }
    }

    #[test]
    fn the_edges_say_all_or_none_survive() {
        // Everything survives: the answer is the risky end, and nothing dies.
        let th = search(&spike(), |_| Ok::<_, Infallible>(Survived(true))).unwrap();
        assert_eq!((th.survives, th.dies, th.flaky), (Some(0.99), None, false));
        assert_eq!(th.runs.iter().filter(|r| r.value == 0.99).count(), 3);
        assert!(
            th.to_string().contains("everything in the range survived"),
            "{th}"
        );
        // The smallest limit that survives, when all do, is the range's low end.
        let range = Range::new(Knob::Limit, 8.0 * MIB, 64.0 * MIB).unwrap();
        let th = search(&range, |_| Ok::<_, Infallible>(Survived(true))).unwrap();
        assert_eq!((th.survives, th.dies), (Some(8.0 * MIB), None));
        // Nothing survives: no answer; the safe end is the nearest death.
        let th = search(&spike(), |_| Ok::<_, Infallible>(Survived(false))).unwrap();
        assert_eq!((th.survives, th.dies, th.flaky), (None, Some(0.01), false));
        let range = Knob::Gogc.default_range().unwrap();
        let th = search(&range, |_| Ok::<_, Infallible>(Survived(false))).unwrap();
        assert_eq!((th.survives, th.dies), (None, Some(1.0)));
        assert!(th.to_string().contains("none in the range"), "{th}");
    }

    /// A flaky band: always survives below 0.6, always dies above 0.7, and alternates in
    /// between (every second run there dies).
    #[test]
    fn a_flaky_band_is_reported_as_a_band() {
        let mut calls = 0u32;
        let th = search(&spike(), |v| {
            calls += 1;
            Ok::<_, Infallible>(Survived(if v < 0.6 {
                true
            } else if v > 0.7 {
                false
            } else {
                calls.is_multiple_of(2)
            }))
        })
        .unwrap();
        let (s, d) = (th.survives.unwrap(), th.dies.unwrap());
        assert!(th.flaky, "{th}");
        assert!((0.59..0.6).contains(&s), "{th}");
        assert!((0.7..=0.71).contains(&d), "{th}");
        assert!(th.to_string().contains("outcomes flip between"), "{th}");
        assert_eq!(th.runs.len(), calls as usize);
    }

    /// A noisy world: the chance of surviving falls linearly from 1 at 0.4 to 0 at 0.8
    /// (a fixed pseudo-random sequence). The band lies inside the noisy region's edges, to
    /// the precision.
    #[test]
    fn a_noisy_world_gives_a_band_inside_its_noise() {
        for seed in 1..=20u64 {
            let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let th = search(&spike(), |v| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let p = ((0.8 - v) / 0.4).clamp(0.0, 1.0);
                Ok::<_, Infallible>(Survived((x % 1000) as f64 / 1000.0 < p))
            })
            .unwrap();
            let (s, d) = (th.survives.unwrap(), th.dies.unwrap());
            assert!(s < d, "{seed}: {th}");
            assert!((0.39..0.8).contains(&s), "{seed}: {th}");
            assert!((0.4..=0.81).contains(&d), "{seed}: {th}");
            assert!(th.runs.len() < 100, "{seed}: {} runs", th.runs.len());
        }
    }

    #[test]
    fn a_flaky_risky_end_leaves_no_sure_death() {
        let mut calls = 0u32;
        let th = search(&spike(), |v| {
            calls += 1;
            Ok::<_, Infallible>(Survived(v < 0.95 || calls.is_multiple_of(2)))
        })
        .unwrap();
        assert!(th.flaky, "{th}");
        assert_eq!(th.dies, None, "{th}");
        assert!((0.94..0.95).contains(&th.survives.unwrap()), "{th}");
    }

    #[test]
    fn a_probe_error_ends_the_search() {
        let mut n = 0;
        let e = search(&spike(), |_| {
            n += 1;
            if n == 3 {
                Err("cgroup gone")
            } else {
                Ok(Survived(true))
            }
        })
        .unwrap_err();
        assert_eq!((e, n), ("cgroup gone", 3));
    }

    #[test]
    fn bad_ranges_and_knobs_say_what_to_give() {
        let cases = [
            (Knob::Spike, -0.1, 1.0, "fraction in [0, 1]"),
            (Knob::Spike, 0.5, 0.5, "below the high end"),
            (Knob::Spike, f64::NAN, 1.0, "finite"),
            (Knob::Gogc, 0.0, 100.0, "[1, 10000]"),
            (Knob::Gogc, 10.0, 20_000.0, "[1, 10000]"),
            (Knob::Limit, 100.0, MIB, "4 KiB page"),
            (Knob::Limit, 8192.0, 8193.0, "below the high end"),
        ];
        for (knob, lo, hi, says) in cases {
            let e = Range::new(knob, lo, hi).unwrap_err().to_string();
            assert!(e.contains(says), "{knob} {lo}..{hi}: {e}");
        }
        assert_eq!("gogc".parse(), Ok(Knob::Gogc));
        assert!(
            "spkie"
                .parse::<Knob>()
                .unwrap_err()
                .contains("spike, limit, gogc or gomemlimit")
        );
        assert!(Knob::Limit.default_range().is_none());
    }

    #[test]
    fn ranges_are_read_as_the_knob_counts() {
        let limit = 64 << 20;
        let r = |knob, spec| Range::parse(knob, spec, limit);
        assert_eq!(
            r(Knob::Spike, None),
            Ok(Range::new(Knob::Spike, 0.01, 0.99).unwrap())
        );
        assert_eq!(
            r(Knob::Limit, None),
            Ok(Range::new(Knob::Limit, (32 << 20) as f64, (128 << 20) as f64).unwrap())
        );
        assert_eq!(
            r(Knob::Limit, Some("16MiB, 1GiB")),
            Ok(Range::new(Knob::Limit, (16 << 20) as f64, (1 << 30) as f64).unwrap())
        );
        assert_eq!(
            r(Knob::Gogc, Some("10,400")),
            Ok(Range::new(Knob::Gogc, 10.0, 400.0).unwrap())
        );
        assert_eq!(
            r(Knob::Gogc, Some("10")).unwrap_err(),
            "\"10\" is not LO,HI"
        );
        assert!(
            r(Knob::Spike, Some("a,0.5"))
                .unwrap_err()
                .contains("\"a\" is not a number")
        );
        assert!(r(Knob::Limit, Some("lots,1GiB")).is_err());
        assert!(r(Knob::Spike, Some("0.9,0.1")).is_err(), "lo above hi");
    }
}
