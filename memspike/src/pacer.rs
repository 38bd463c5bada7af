//! The Go collector's pacing arithmetic (Go 1.18-1.21, `runtime/mgcpacer.go`), as pure
//! functions of a few numbers: when the next cycle starts (the trigger) and how large the heap
//! may grow before it must end (the goal). No memory is touched here; [`crate::heap`] feeds
//! the pacer what it marked and asks it when to collect.
//!
//! Cycles in the simulation are instantaneous (marked and swept at the moment the trigger is
//! crossed), so the rules that only matter while a concurrent cycle runs (assists, the goal
//! floor of "heap at trigger + 64 KiB") never apply and are left out.

use std::{fmt, str::FromStr, time::Duration};

/// The minimum total heap goal at GOGC=100 (`defaultHeapMinimum`); scaled by GOGC/100.
pub const DEFAULT_HEAP_MINIMUM: u64 = 4 << 20;
/// After a cycle the goal is at least the live heap plus this much (`sweepMinHeapDistance`).
pub const SWEEP_MIN_HEAP_DISTANCE: u64 = 1 << 20;
/// The collector's target CPU utilisation during a cycle (`gcGoalUtilization`).
pub const GC_GOAL_UTILIZATION: f64 = 0.25;
/// The runtime forces a cycle when none ran for this long (`forcegcperiod`), unless GOGC=off.
pub const FORCE_GC_PERIOD: Duration = Duration::from_secs(120);
/// Trigger bounds are fractions of the runway (goal - heapMarked) in 64ths.
const TRIGGER_RATIO_DEN: u64 = 64;
const MIN_TRIGGER_RATIO_NUM: u64 = 45; // 0.7
const MAX_TRIGGER_RATIO_NUM: u64 = 61; // 0.95

/// The GOGC setting: a percentage of heap growth between cycles, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gogc {
    Percent(u32),
    Off,
}

impl Default for Gogc {
    fn default() -> Self {
        Gogc::Percent(100)
    }
}

impl fmt::Display for Gogc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gogc::Percent(p) => write!(f, "{p}"),
            Gogc::Off => f.write_str("off"),
        }
    }
}

impl FromStr for Gogc {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(Gogc::Off);
        }
        s.parse::<u32>().map(Gogc::Percent).map_err(|_| {
            format!("GOGC must be a whole non-negative percentage or `off`, not {s:?}")
        })
    }
}

/// What the pacer knows about the program besides its heap: the GOGC setting and the
/// scannable roots that Go 1.18+ adds to the goal. The defaults fit a small Go program like
/// the seed's (one goroutine stack, a few hundred KiB of globals).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PacerConfig {
    pub gogc: Gogc,
    /// Bytes of goroutine stack scanned in a cycle (`lastStackScan`).
    pub stack_scan: u64,
    /// Bytes of global data and BSS scanned in a cycle (`globalsScan`).
    pub globals_scan: u64,
    /// Allocation rate over mark rate seen during marking (`consMark`); sizes the runway.
    pub cons_mark: f64,
}

impl Default for PacerConfig {
    fn default() -> Self {
        PacerConfig {
            gogc: Gogc::default(),
            stack_scan: 32 << 10,
            globals_scan: 160 << 10,
            cons_mark: 1.0,
        }
    }
}

/// The state the runtime keeps between cycles (`gcControllerState`, the parts that pace).
#[derive(Clone, Debug, PartialEq)]
pub struct Pacer {
    config: PacerConfig,
    /// Bytes marked live by the last cycle (`heapMarked`).
    heap_marked: u64,
    /// Scannable bytes of the heap at the last cycle (`lastHeapScan`).
    last_heap_scan: u64,
    /// The heap after the last cycle plus the sweep distance (`sweepDistMinTrigger`).
    sweep_dist_min_trigger: u64,
}

/// The pacer's decision for the coming cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    /// The heap size at which the next cycle starts.
    pub trigger: u64,
    /// The heap size the cycle aims to finish by (`NextGC`); `u64::MAX` with GOGC=off.
    pub goal: u64,
}

impl Pacer {
    /// The pacer of a program that has not collected yet (`gcControllerState.init`).
    pub fn new(config: PacerConfig) -> Pacer {
        Pacer {
            config,
            heap_marked: 0,
            last_heap_scan: 0,
            sweep_dist_min_trigger: 0,
        }
    }

    pub fn config(&self) -> &PacerConfig {
        &self.config
    }

    /// Changes GOGC (as `debug.SetGCPercent` does); the pace follows at once.
    pub fn set_gogc(&mut self, gogc: Gogc) {
        self.config.gogc = gogc;
    }

    /// Bytes marked live by the last cycle.
    pub fn heap_marked(&self) -> u64 {
        self.heap_marked
    }

    /// Records the end of a cycle (mark termination): `marked` bytes survived, of which
    /// `marked_scan` bytes hold pointers, and the heap is `marked` after the sweep.
    pub fn end_cycle(&mut self, marked: u64, marked_scan: u64) {
        self.heap_marked = marked;
        self.last_heap_scan = marked_scan;
        self.sweep_dist_min_trigger = marked.saturating_add(SWEEP_MIN_HEAP_DISTANCE);
    }

    /// The minimum heap goal for this GOGC (`heapMinimum`).
    fn heap_minimum(&self) -> u64 {
        match self.config.gogc {
            Gogc::Percent(p) => DEFAULT_HEAP_MINIMUM * u64::from(p) / 100,
            Gogc::Off => 0,
        }
    }

    /// The goal implied by GOGC alone (`gcPercentHeapGoal`): marked heap plus GOGC % of
    /// everything the collector scans (heap, stacks, globals), at least the heap minimum.
    fn gc_percent_goal(&self) -> u64 {
        let Gogc::Percent(p) = self.config.gogc else {
            return u64::MAX;
        };
        let roots = self.heap_marked + self.config.stack_scan + self.config.globals_scan;
        let goal = self
            .heap_marked
            .saturating_add(roots.saturating_mul(u64::from(p)) / 100);
        goal.max(self.heap_minimum())
    }

    /// The distance the runtime expects to allocate while a cycle marks (`runway`).
    fn runway(&self) -> u64 {
        let u = GC_GOAL_UTILIZATION;
        let scan = self.last_heap_scan + self.config.stack_scan + self.config.globals_scan;
        (self.config.cons_mark * (1.0 - u) / u * scan as f64) as u64
    }

    /// The goal and trigger for the next cycle (`heapGoalInternal` and `trigger`).
    ///
    /// The soft memory limit, when it comes, lowers the goal here: the final goal is the
    /// smaller of the GOGC goal and the limit's goal.
    pub fn pace(&self) -> Pace {
        let marked = self.heap_marked;
        let goal = self.gc_percent_goal().max(self.sweep_dist_min_trigger);
        // GOGC=off (and, later, no memory limit): an unbounded goal, no trigger.
        if marked >= goal || goal == u64::MAX {
            return Pace {
                trigger: goal,
                goal,
            };
        }
        let step = (goal - marked) / TRIGGER_RATIO_DEN;
        let min_trigger = self
            .sweep_dist_min_trigger
            .max(marked)
            .max(marked + step * MIN_TRIGGER_RATIO_NUM);
        let mut max_trigger = marked + step * MAX_TRIGGER_RATIO_NUM;
        if goal > DEFAULT_HEAP_MINIMUM && goal - DEFAULT_HEAP_MINIMUM > max_trigger {
            max_trigger = goal - DEFAULT_HEAP_MINIMUM;
        }
        let max_trigger = max_trigger.max(min_trigger);
        let trigger = goal
            .saturating_sub(self.runway())
            .clamp(min_trigger, max_trigger)
            .min(goal);
        Pace { trigger, goal }
    }

    /// Whether a heap of `heap_live` bytes (everything allocated since the last mark,
    /// garbage included) starts a cycle.
    pub fn should_trigger(&self, heap_live: u64) -> bool {
        heap_live >= self.pace().trigger
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn cfg(gogc: Gogc, stack: u64, globals: u64) -> PacerConfig {
        PacerConfig {
            gogc,
            stack_scan: stack,
            globals_scan: globals,
            cons_mark: 1.0,
        }
    }

    /// One row per cycle: the cycle marks `marked` bytes (`scan` of them with pointers), and
    /// the pacer then answers `goal` and `trigger`.
    struct Cycle {
        marked: u64,
        scan: u64,
        goal: u64,
        trigger: u64,
    }

    fn run(name: &str, config: PacerConfig, first: Pace, cycles: &[Cycle]) {
        let mut p = Pacer::new(config);
        assert_eq!(p.pace(), first, "{name}: before the first cycle");
        for (i, c) in cycles.iter().enumerate() {
            p.end_cycle(c.marked, c.scan);
            let pace = p.pace();
            assert_eq!(pace.goal, c.goal, "{name}: goal after cycle {}", i + 1);
            assert_eq!(
                pace.trigger,
                c.trigger,
                "{name}: trigger after cycle {}",
                i + 1
            );
            assert!(pace.trigger <= pace.goal, "{name}: trigger above goal");
            assert!(p.should_trigger(pace.trigger) && !p.should_trigger(pace.trigger - 1));
        }
    }

    #[test]
    fn the_seed_scenario_doubles_the_marked_slab() {
        // A 30,198,988-byte slab of bytes (no pointers) is live at the first cycle. With no
        // roots, GOGC=100 doubles it; the runway is 0, so the trigger sits at the 61/64 clamp.
        let slab = 30_198_988;
        let step = slab / 64;
        run(
            "seed, no roots",
            cfg(Gogc::Percent(100), 0, 0),
            Pace {
                trigger: 4 * MIB / 64 * 61,
                goal: 4 * MIB,
            },
            &[Cycle {
                marked: slab,
                scan: 0,
                goal: 2 * slab,
                trigger: slab + 61 * step,
            }],
        );
    }

    #[test]
    fn a_heap_that_grows_holds_and_shrinks() {
        // Cycle by cycle, as the runtime's own pacer tests run: the goal follows what each
        // cycle marked, the runway what it scanned, and a shrinking heap falls back to the
        // 4 MiB minimum with the trigger at its 61/64 ceiling.
        let k = |n: u64| n << 10;
        run(
            "grow, hold, shrink",
            cfg(Gogc::Percent(100), 0, 0),
            Pace {
                trigger: 4 * MIB / 64 * 61,
                goal: 4 * MIB,
            },
            &[
                Cycle {
                    marked: 8 * MIB,
                    scan: 0,
                    goal: 16 * MIB,
                    trigger: 8 * MIB + 61 * k(128),
                },
                Cycle {
                    marked: 16 * MIB,
                    scan: 0,
                    goal: 32 * MIB,
                    trigger: 16 * MIB + 61 * k(256),
                },
                // 1 MiB of pointers: runway 3 MiB, inside the clamps.
                Cycle {
                    marked: 16 * MIB,
                    scan: MIB,
                    goal: 32 * MIB,
                    trigger: 29 * MIB,
                },
                Cycle {
                    marked: 2 * MIB,
                    scan: 0,
                    goal: 4 * MIB,
                    trigger: 2 * MIB + 61 * k(32),
                },
            ],
        );
    }

    #[test]
    fn stacks_and_globals_count_towards_the_goal() {
        // goal = marked + (marked + stack + globals) * GOGC/100 (Go 1.18+).
        let c = cfg(Gogc::Percent(100), 64 << 10, 192 << 10);
        let marked = 10 * MIB;
        let goal = marked + marked + (256 << 10);
        // runway = consMark * (1-u)/u * (scan + stack + globals) = 3 * 256 KiB.
        let runway = 3 * (256 << 10);
        run(
            "roots",
            c,
            Pace {
                trigger: 4 * MIB - runway,
                goal: 4 * MIB,
            },
            &[Cycle {
                marked,
                scan: 0,
                goal,
                trigger: goal - runway,
            }],
        );
    }

    #[test]
    fn gogc_scales_goal_and_minimum() {
        let marked = 20 * MIB;
        run(
            "GOGC=50",
            cfg(Gogc::Percent(50), 0, 0),
            Pace {
                trigger: 2 * MIB / 64 * 61,
                goal: 2 * MIB,
            },
            &[Cycle {
                marked,
                scan: 0,
                goal: 30 * MIB,
                // 61/64 of the 10 MiB runway is above goal - 4 MiB.
                trigger: marked + 10 * MIB / 64 * 61,
            }],
        );
        run(
            "GOGC=400, tiny heap: minimum 16 MiB",
            cfg(Gogc::Percent(400), 0, 0),
            Pace {
                trigger: 16 * MIB / 64 * 61,
                goal: 16 * MIB,
            },
            &[Cycle {
                marked: MIB,
                scan: 0,
                // 1 MiB + 400 % of 1 MiB is below the 16 MiB minimum.
                goal: 16 * MIB,
                trigger: MIB + 15 * MIB / 64 * 61,
            }],
        );
    }

    #[test]
    fn trigger_clamps_on_both_sides() {
        // A large runway (many pointers) would start the cycle early: the 45/64 floor holds.
        let marked = 64 * MIB;
        run(
            "floor",
            cfg(Gogc::Percent(100), 0, 0),
            Pace {
                trigger: 4 * MIB / 64 * 61,
                goal: 4 * MIB,
            },
            &[Cycle {
                marked,
                scan: marked,
                goal: 128 * MIB,
                trigger: marked + 45 * MIB,
            }],
        );
        // No runway on a big heap: the ceiling is goal - 4 MiB when that is above 61/64.
        let marked = 256 * MIB;
        run(
            "ceiling",
            cfg(Gogc::Percent(100), 0, 0),
            Pace {
                trigger: 4 * MIB / 64 * 61,
                goal: 4 * MIB,
            },
            &[Cycle {
                marked,
                scan: 0,
                goal: 512 * MIB,
                trigger: 508 * MIB,
            }],
        );
    }

    #[test]
    fn sweep_distance_keeps_tiny_gogc_from_collecting_forever() {
        // GOGC=1 on a 10 MiB heap: the GOGC goal is only 100 KiB away, the sweep distance
        // pushes the goal to marked + 1 MiB, and the trigger sits at its floor.
        let marked = 10 * MIB;
        let goal = marked + SWEEP_MIN_HEAP_DISTANCE;
        run(
            "GOGC=1",
            cfg(Gogc::Percent(1), 0, 0),
            Pace {
                trigger: DEFAULT_HEAP_MINIMUM / 100 / 64 * 61,
                goal: DEFAULT_HEAP_MINIMUM / 100,
            },
            &[Cycle {
                marked,
                scan: 0,
                goal,
                trigger: goal,
            }],
        );
    }

    #[test]
    fn gogc_off_never_triggers() {
        let mut p = Pacer::new(cfg(Gogc::Off, 0, 0));
        assert_eq!(p.pace().goal, u64::MAX);
        assert!(!p.should_trigger(1 << 40));
        p.end_cycle(100 * MIB, 0);
        assert_eq!(p.pace().goal, u64::MAX);
        assert!(!p.should_trigger(u64::MAX - 1));
        p.set_gogc(Gogc::Percent(100));
        assert_eq!(p.pace().goal, 200 * MIB);
    }

    #[test]
    fn gogc_parses() {
        assert_eq!("off".parse::<Gogc>(), Ok(Gogc::Off));
        assert_eq!("OFF".parse::<Gogc>(), Ok(Gogc::Off));
        assert_eq!("50".parse::<Gogc>(), Ok(Gogc::Percent(50)));
        assert!("-1".parse::<Gogc>().is_err());
        assert!("1.5".parse::<Gogc>().is_err());
    }
}
