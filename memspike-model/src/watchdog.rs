//! Watchdogs, as raulk/go-watchdog (the seed's author's follow-up library) runs them beside a
//! Go program: a policy that names the next threshold from the memory in use, and a driver
//! that acts on it.
//!
//! - Policies (`Policy.Evaluate`): `watermarks` gives the first of `limit * w` above what is in
//!   use, and disarms once the last is passed; `adaptive` gives `used + (limit - used) * factor`.
//! - The heap driver (`HeapDriven`) runs after every cycle: it sets GOGC so that the next cycle
//!   comes at the threshold for `HeapAlloc`, never above the original GOGC and never below
//!   `min_gogc`. It forces nothing.
//! - The cgroup driver (`CgroupDriven`) polls the group's usage every interval of simulated
//!   time and forces a collection (`runtime.GC`, or `debug.FreeOSMemory`) when the usage reaches
//!   the threshold; after every cycle, forced or not, it renews the threshold from the usage.

use std::{fmt, str::FromStr, time::Duration};

use serde::{Deserialize, Serialize};

/// How the next threshold is chosen. Written `watermarks:0.5,0.75,0.9` or `adaptive:0.5`, in
/// JSON too.
#[derive(Clone, Debug, PartialEq)]
pub enum Policy {
    /// Fractions of the limit, ascending.
    Watermarks { watermarks: Vec<f64> },
    /// The share of what is left of the limit to allow before the next collection.
    Adaptive { factor: f64 },
}

/// The threshold a policy answers when it is disarmed (`PolicyTempDisabled`).
pub const DISARMED: u64 = u64::MAX;

impl Policy {
    /// The next threshold for `used` bytes against `limit` (`Policy.Evaluate`).
    pub fn evaluate(&self, limit: u64, used: u64) -> u64 {
        match self {
            Policy::Watermarks { watermarks } => watermarks
                .iter()
                .map(|w| (limit as f64 * w) as u64)
                .find(|&t| used < t)
                .unwrap_or(DISARMED),
            Policy::Adaptive { factor } => {
                if used >= limit {
                    used
                } else {
                    used + ((limit - used) as f64 * factor) as u64
                }
            }
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Policy::Watermarks { watermarks } => {
                let w: Vec<String> = watermarks.iter().map(|w| w.to_string()).collect();
                write!(f, "watermarks:{}", w.join(","))
            }
            Policy::Adaptive { factor } => write!(f, "adaptive:{factor}"),
        }
    }
}

impl FromStr for Policy {
    type Err = String;
    /// `watermarks:0.5,0.75,0.9` or `adaptive:0.5`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let usage = "give watermarks:F,F,... (ascending fractions of the limit, e.g. watermarks:0.5,0.75,0.9) or adaptive:F (e.g. adaptive:0.5)";
        let (kind, args) = s
            .split_once(':')
            .ok_or_else(|| format!("watchdog {s:?}: {usage}"))?;
        let fraction = |a: &str| -> Result<f64, String> {
            a.trim()
                .parse::<f64>()
                .ok()
                .filter(|f| *f > 0.0 && *f <= 1.0)
                .ok_or_else(|| {
                    format!("watchdog {s:?}: {a:?} is not a fraction in (0, 1]; {usage}")
                })
        };
        match kind {
            "watermarks" => {
                let watermarks = args
                    .split(',')
                    .map(fraction)
                    .collect::<Result<Vec<_>, _>>()?;
                if watermarks.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(format!("watchdog {s:?}: watermarks must ascend; {usage}"));
                }
                Ok(Policy::Watermarks { watermarks })
            }
            "adaptive" => Ok(Policy::Adaptive {
                factor: fraction(args)?,
            }),
            _ => Err(format!("watchdog {s:?}: unknown policy {kind:?}; {usage}")),
        }
    }
}

serde_via_str!(
    Policy,
    "a go-watchdog policy: watermarks:0.5,0.75,0.9 or adaptive:0.5"
);

/// What drives the watchdog.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Driver {
    /// After every cycle, from the heap (adjusts GOGC).
    #[default]
    Heap,
    /// Polling the cgroup's usage (forces collections).
    Cgroup,
}

/// What a forced collection is.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Force {
    /// `runtime.GC()`.
    #[default]
    Gc,
    /// `debug.FreeOSMemory()`.
    FreeOsMemory,
}

/// A watchdog as the runtime runs it (built from a [`crate::policy::Policy`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Watchdog {
    pub policy: Policy,
    pub driver: Driver,
    pub force: Force,
    /// The cgroup driver's polling interval, simulated.
    pub interval: Duration,
    /// The heap driver's lowest GOGC (`minGOGC`).
    pub min_gogc: u32,
}

impl Watchdog {
    /// The defaults: heap-driven, forcing `runtime.GC`, polling every second, GOGC at least 25.
    pub fn new(policy: Policy) -> Watchdog {
        Watchdog {
            policy,
            driver: Driver::Heap,
            force: Force::Gc,
            interval: Duration::from_secs(1),
            min_gogc: 25,
        }
    }

    /// The heap driver's GOGC after a cycle: the cycle's goal was `next_gc` under `gogc`, the
    /// heap holds `heap_alloc`, and GOGC started as `original`.
    pub fn heap_gogc(
        &self,
        limit: u64,
        next_gc: u64,
        gogc: u32,
        heap_alloc: u64,
        original: u32,
    ) -> u32 {
        let marked = (next_gc as f64 / (1.0 + f64::from(gogc) / 100.0)) as u64;
        if marked == 0 {
            return gogc;
        }
        let next = self.policy.evaluate(limit, heap_alloc);
        let wanted = ((next as f64 / marked as f64) - 1.0) * 100.0;
        if wanted >= f64::from(original) {
            original
        } else {
            (wanted.max(0.0) as u32).max(self.min_gogc)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// From go-watchdog's watermarks.go and adaptive.go.
    #[test]
    fn policies_name_the_next_threshold() {
        let w: Policy = "watermarks:0.5,0.75,0.9".parse().unwrap();
        let limit = 100 * MIB;
        assert_eq!(w.evaluate(limit, 0), 50 * MIB);
        assert_eq!(w.evaluate(limit, 50 * MIB), 75 * MIB);
        assert_eq!(w.evaluate(limit, 80 * MIB), 90 * MIB);
        assert_eq!(w.evaluate(limit, 90 * MIB), DISARMED);
        let a: Policy = "adaptive:0.5".parse().unwrap();
        assert_eq!(a.evaluate(limit, 20 * MIB), 60 * MIB);
        assert_eq!(a.evaluate(limit, 120 * MIB), 120 * MIB);
        assert_eq!(w.to_string().parse::<Policy>(), Ok(w));
        assert_eq!(a.to_string(), "adaptive:0.5");
    }

    #[test]
    fn bad_policies_say_what_to_write() {
        for bad in [
            "watermarks",
            "watermarks:0.9,0.5",
            "watermarks:1.5",
            "adaptive:x",
            "magic:1",
            "adaptive:0",
        ] {
            let e = bad.parse::<Policy>().unwrap_err();
            assert!(e.contains("watermarks:F,F,..."), "{bad}: {e}");
        }
    }

    /// go-watchdog's HeapDriven: marked = NextGC / (1 + GOGC/100); GOGC = (next / marked - 1)
    /// * 100, capped at the original and at least minGOGC.
    #[test]
    fn the_heap_driver_aims_the_next_cycle_at_the_threshold() {
        let w = Watchdog::new("watermarks:0.5,0.75,0.9".parse().unwrap());
        let limit = 256 * MIB;
        // Marked 100 MiB (goal 200 at GOGC 100), 100 MiB in use: the next threshold is 128 MiB,
        // GOGC 28.
        assert_eq!(w.heap_gogc(limit, 200 * MIB, 100, 100 * MIB, 100), 28);
        // Marked 40 MiB: 128 MiB is 220 % away, above the original 100.
        assert_eq!(w.heap_gogc(limit, 80 * MIB, 100, 40 * MIB, 100), 100);
        // Marked 120 MiB, 130 MiB used: the next threshold is 192 MiB, GOGC 60.
        assert_eq!(w.heap_gogc(limit, 240 * MIB, 100, 130 * MIB, 100), 60);
        // Nearly at the threshold: never below minGOGC.
        assert_eq!(w.heap_gogc(limit, 254 * MIB, 100, 127 * MIB, 100), 25);
        // Disarmed above the last watermark: back to the original.
        assert_eq!(w.heap_gogc(limit, 460 * MIB, 100, 240 * MIB, 100), 100);
    }
}
