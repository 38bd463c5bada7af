//! The Go collector's pacing arithmetic (`runtime/mgcpacer.go`), as pure functions of the
//! heap's totals: when the next cycle starts (the trigger) and how large the heap may grow
//! before it must end (the goal), under GOGC and the soft memory limit. No memory is touched
//! here; [`crate::heap`] keeps the totals and asks the pacer when to collect.
//!
//! Cycles in the simulation are instantaneous (marked and swept at the moment the trigger is
//! crossed), so the rules that only matter while a concurrent cycle runs (assists, the goal
//! floor of "heap at trigger + 64 KiB") never apply and are left out.

use std::{fmt, str::FromStr, time::Duration};

use crate::release::{ConsMarkRule, Rules};

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

/// The goal GOGC alone sets after a cycle that marked `marked` bytes live, with `roots` bytes
/// of stacks and globals to scan (`gcPercentHeapGoal`): the marked heap plus GOGC % of
/// everything the collector scans, at least the heap minimum (4 MiB x GOGC/100). `None` with
/// GOGC off. The pacer's GOGC goal, and `exec`'s estimate of the goal after a traced program's
/// last cycle.
pub fn gc_percent_goal(gogc: Gogc, marked: u64, roots: u64) -> Option<u64> {
    let Gogc::Percent(p) = gogc else {
        return None;
    };
    let p = u64::from(p);
    let scanned = marked.saturating_add(roots);
    let goal = marked.saturating_add(scanned.saturating_mul(p) / 100);
    Some(goal.max(DEFAULT_HEAP_MINIMUM.saturating_mul(p) / 100))
}

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

impl serde::Serialize for Gogc {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl schemars::JsonSchema for Gogc {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Gogc".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": ["string", "integer"],
            "description": "GOGC: a whole percentage (\"100\", 100) or \"off\"; written as a string"
        })
    }
}

/// `"50"`, `50` or `"off"`: a policies file may write GOGC as a number.
impl<'de> serde::Deserialize<'de> for Gogc {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Written {
            Number(i64),
            Text(String),
        }
        match Written::deserialize(d)? {
            Written::Number(n) => n.to_string().parse(),
            Written::Text(t) => t.trim().parse(),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// What the pacer knows about the program besides its heap: the GOGC setting, the soft memory
/// limit, and the scannable roots that Go 1.18+ adds to the goal. The defaults fit a small Go
/// program like the seed's (one goroutine stack, a few hundred KiB of globals).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PacerConfig {
    pub gogc: Gogc,
    /// The soft memory limit in bytes (`GOMEMLIMIT`); `None` is no limit (`math.MaxInt64`).
    pub memory_limit: Option<u64>,
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
            memory_limit: None,
            stack_scan: 32 << 10,
            globals_scan: 160 << 10,
            // The runtime starts with consMark 0, and a heap of pointer-free slabs gives it
            // nearly nothing to scan: the trigger sits at its ceiling, as gctrace shows
            // ("4->4 MB, 4 MB goal").
            cons_mark: 0.0,
        }
    }
}

/// The heap's totals, as the runtime keeps them: everything the pacer needs to know about the
/// heap and the memory around it. All in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Marked live by the last cycle (`heapMarked`).
    pub marked: u64,
    /// Of `marked`, bytes holding pointers (`lastHeapScan`).
    pub marked_scan: u64,
    /// Allocated and not yet swept, garbage included (`heapLive`, `HeapAlloc`).
    pub allocated: u64,
    /// In free spans, still backed by memory (`heapFree`).
    pub free: u64,
    /// The heap's address space, released pages included (`HeapSys`).
    pub mapped: u64,
    /// Free pages returned to the OS (`HeapReleased`).
    pub released: u64,
    /// Mapped and ready memory outside the heap: stacks, metadata, the runtime's own.
    pub non_heap: u64,
    /// In the heap's spans but in no object: the room a program's small objects leave in the
    /// spans that hold them (`HeapInuse - HeapAlloc` before the experiment's slabs). The
    /// memory limit counts it with the memory outside the heap.
    pub span_slack: u64,
    /// Cycles completed (`NumGC`): the sweep distance holds only once one has.
    pub cycles: u32,
}

impl Totals {
    /// The totals of a heap with `allocated` bytes in use (all marked by `cycles` cycles), `free`
    /// and `released` free bytes, and `non_heap` bytes outside it (for tests).
    #[cfg(test)]
    pub(crate) fn heap(
        allocated: u64,
        free: u64,
        released: u64,
        non_heap: u64,
        cycles: u32,
    ) -> Totals {
        Totals {
            marked: allocated,
            marked_scan: 0,
            allocated,
            free,
            mapped: allocated + free + released,
            released,
            non_heap,
            span_slack: 0,
            cycles,
        }
    }

    /// Memory the runtime holds ready for use (`mappedReady` = Sys - HeapReleased): what the
    /// soft memory limit counts.
    pub fn mapped_ready(&self) -> u64 {
        (self.mapped - self.released) + self.non_heap + self.span_slack
    }
}

/// The Go collector's pacer for one program: its settings and its release's rules. It keeps no
/// state of its own: every answer is a function of the heap's [`Totals`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pacer {
    config: PacerConfig,
    rules: Rules,
}

/// The pacer's decision for the coming cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    /// The heap size at which the next cycle starts.
    pub trigger: u64,
    /// The heap size the cycle aims to finish by (`NextGC`); `u64::MAX` when nothing bounds it
    /// (GOGC=off without a memory limit).
    pub goal: u64,
    /// The memory limit set the goal (it was below the GOGC goal).
    pub limited: bool,
}

impl Pacer {
    pub fn new(config: PacerConfig, rules: Rules) -> Pacer {
        Pacer { config, rules }
    }

    pub fn config(&self) -> &PacerConfig {
        &self.config
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Changes GOGC (as `debug.SetGCPercent` does); the pace follows at once.
    pub fn set_gogc(&mut self, gogc: Gogc) {
        self.config.gogc = gogc;
    }

    /// Bytes the collector scans besides the heap's pointers: stacks and globals.
    pub fn root_scan(&self) -> u64 {
        self.config.stack_scan + self.config.globals_scan
    }

    /// Sets the consMark estimate (from [`ConsMark`]) that sizes the runway.
    pub fn set_cons_mark(&mut self, cons_mark: f64) {
        self.config.cons_mark = cons_mark;
    }

    /// The goal implied by GOGC alone ([`gc_percent_goal`]); unbounded with GOGC off.
    fn gc_percent_goal(&self, t: &Totals) -> u64 {
        gc_percent_goal(self.config.gogc, t.marked, self.root_scan()).unwrap_or(u64::MAX)
    }

    /// The goal implied by the memory limit (`memoryLimitHeapGoal`): what is left of the limit
    /// after the memory outside the heap and any overage, less the release's headroom, and
    /// never below the marked heap (then the runtime collects continuously).
    fn memory_limit_goal(&self, t: &Totals) -> u64 {
        let Some(limit) = self.config.memory_limit else {
            return u64::MAX;
        };
        let mapped_ready = t.mapped_ready();
        let non_heap = mapped_ready.saturating_sub(t.free + t.allocated);
        let overage = mapped_ready.saturating_sub(limit);
        let outside = non_heap + overage;
        if outside >= limit {
            return t.marked;
        }
        self.rules
            .memory_limit_headroom
            .apply(limit - outside)
            .max(t.marked)
    }

    /// The distance the runtime expects to allocate while a cycle marks (`runway`).
    fn runway(&self, t: &Totals) -> u64 {
        let u = GC_GOAL_UTILIZATION;
        let scan = t.marked_scan + self.config.stack_scan + self.config.globals_scan;
        (self.config.cons_mark * (1.0 - u) / u * scan as f64) as u64
    }

    /// The goal and trigger for the next cycle (`heapGoalInternal` and `trigger`). The final
    /// goal is the smaller of the GOGC goal and the memory limit's; only the GOGC goal is held
    /// at least a sweep distance above the marked heap.
    pub fn pace(&self, t: &Totals) -> Pace {
        let marked = t.marked;
        // `commit` sets sweepDistMinTrigger at mark termination; before the first it is 0.
        let sweep_dist_min_trigger = if t.cycles > 0 {
            marked.saturating_add(SWEEP_MIN_HEAP_DISTANCE)
        } else {
            0
        };
        let percent_goal = self.gc_percent_goal(t);
        let limit_goal = self.memory_limit_goal(t);
        let limited = limit_goal < percent_goal;
        let (goal, min_trigger) = if limited {
            (limit_goal, marked)
        } else {
            (
                percent_goal.max(sweep_dist_min_trigger),
                sweep_dist_min_trigger,
            )
        };
        // Nothing bounds the heap (GOGC=off, no limit), or the limit leaves no room above the
        // marked heap: the trigger is the goal.
        if marked >= goal || goal == u64::MAX {
            return Pace {
                trigger: goal,
                goal,
                limited,
            };
        }
        let step = (goal - marked) / TRIGGER_RATIO_DEN;
        let min_trigger = min_trigger
            .max(marked)
            .max(marked + step * MIN_TRIGGER_RATIO_NUM);
        let mut max_trigger = marked + step * MAX_TRIGGER_RATIO_NUM;
        if goal > DEFAULT_HEAP_MINIMUM && goal - DEFAULT_HEAP_MINIMUM > max_trigger {
            max_trigger = goal - DEFAULT_HEAP_MINIMUM;
        }
        let max_trigger = max_trigger.max(min_trigger);
        let trigger = goal
            .saturating_sub(self.runway(t))
            .clamp(min_trigger, max_trigger)
            .min(goal);
        Pace {
            trigger,
            goal,
            limited,
        }
    }
}

/// The pacer's consMark estimate, kept across cycles as the release does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConsMark {
    rule: ConsMarkRule,
    /// The last five measurements, newest first.
    history: [f64; 5],
}

impl ConsMark {
    pub fn new(rule: ConsMarkRule) -> ConsMark {
        ConsMark {
            rule,
            history: [0.0; 5],
        }
    }

    /// Records a cycle that started with the heap at `heap_at_start` when the pacer's trigger
    /// was `trigger`, having `scan_work` bytes to scan; returns the new estimate.
    ///
    /// The measurement is (heapLive at the end - `triggered`) x u / (scanWork x (1 - u)) with
    /// u = 0.25 and no assists. Cycles here are instantaneous, so nothing is allocated while
    /// they mark: only go1.19, whose `triggered` is the computed trigger, sees the overshoot of
    /// an allocation that crossed the trigger; later releases count from the heap at the start.
    pub fn record(&mut self, heap_at_start: u64, trigger: u64, scan_work: u64) -> f64 {
        let allocated = match self.rule {
            ConsMarkRule::Go119 => heap_at_start.saturating_sub(trigger),
            ConsMarkRule::MeanOfTwo | ConsMarkRule::MaxOfFive => 0,
        };
        let u = GC_GOAL_UTILIZATION;
        let current = allocated as f64 * u / (scan_work.max(1) as f64 * (1.0 - u));
        self.history.rotate_right(1);
        self.history[0] = current;
        self.estimate()
    }

    pub fn estimate(&self) -> f64 {
        match self.rule {
            ConsMarkRule::Go119 => self.history[0],
            ConsMarkRule::MeanOfTwo => (self.history[0] + self.history[1]) / 2.0,
            ConsMarkRule::MaxOfFive => self.history.iter().copied().fold(0.0, f64::max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn cfg(gogc: Gogc, stack: u64, globals: u64) -> PacerConfig {
        PacerConfig {
            gogc,
            memory_limit: None,
            stack_scan: stack,
            globals_scan: globals,
            cons_mark: 1.0,
        }
    }

    fn pacer(config: PacerConfig) -> Pacer {
        Pacer::new(config, Rules::of(crate::release::Release::NEWEST))
    }

    /// The totals right after a cycle that marked `marked` bytes (`scan` with pointers).
    fn after(marked: u64, scan: u64) -> Totals {
        Totals {
            marked,
            marked_scan: scan,
            allocated: marked,
            mapped: marked,
            cycles: 1,
            ..Totals::default()
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
        let p = pacer(config);
        assert_eq!(
            p.pace(&Totals::default()),
            first,
            "{name}: before the first cycle"
        );
        for (i, c) in cycles.iter().enumerate() {
            let pace = p.pace(&after(c.marked, c.scan));
            assert_eq!(pace.goal, c.goal, "{name}: goal after cycle {}", i + 1);
            assert_eq!(
                pace.trigger,
                c.trigger,
                "{name}: trigger after cycle {}",
                i + 1
            );
            assert!(pace.trigger <= pace.goal, "{name}: trigger above goal");
            assert!(!pace.limited);
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
                limited: false,
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
                limited: false,
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
                limited: false,
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
                limited: false,
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
                limited: false,
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
                limited: false,
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
                limited: false,
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
                // Before the first cycle there is no sweep distance: the GOGC=1 minimum holds.
                trigger: DEFAULT_HEAP_MINIMUM / 100 / 64 * 61,
                goal: DEFAULT_HEAP_MINIMUM / 100,
                limited: false,
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
    fn gogc_off_without_a_limit_plans_nothing() {
        let p = pacer(cfg(Gogc::Off, 0, 0));
        for t in [Totals::default(), after(100 * MIB, 0)] {
            let pace = p.pace(&t);
            assert_eq!((pace.goal, pace.trigger), (u64::MAX, u64::MAX));
        }
        let mut p = p;
        p.set_gogc(Gogc::Percent(100));
        assert_eq!(p.pace(&after(100 * MIB, 0)).goal, 200 * MIB);
    }

    /// The memory limit's goal, figures derived by hand from `memoryLimitHeapGoal` (go1.21
    /// src/runtime/mgcpacer.go; go1.19 for the fixed headroom): goal = limit - (nonHeap +
    /// overage), less the headroom, at least heapMarked; the final goal is the smaller of it and
    /// the GOGC goal, and only the GOGC goal keeps the sweep distance.
    #[test]
    fn the_memory_limit_lowers_the_goal() {
        use crate::release::Release;
        struct Row {
            what: &'static str,
            release: u8,
            gogc: Gogc,
            limit: u64,
            totals: Totals,
            goal: u64,
            limited: bool,
        }
        let limit = 230 * MIB; // 90 % of 256 MiB, rounded to a whole MiB for the arithmetic
        let t = |marked, allocated, free, released, non_heap| Totals {
            marked,
            ..Totals::heap(allocated, free, released, non_heap, 1)
        };
        let rows = [
            Row {
                what: "the seed's spike at 256 MiB, spike 0.8: the GOGC goal (410 MiB) is above the limit's",
                release: 21,
                gogc: Gogc::Percent(100),
                limit,
                totals: t(205 * MIB, 205 * MIB, 0, 0, 5 * MIB),
                // 230 - 5 = 225 MiB, less 3 % (6.75 MiB).
                goal: 225 * MIB - 225 * MIB / 100 * 3,
                limited: true,
            },
            Row {
                what: "the same on go1.19: a fixed 1 MiB of headroom",
                release: 19,
                gogc: Gogc::Percent(100),
                limit,
                totals: t(205 * MIB, 205 * MIB, 0, 0, 5 * MIB),
                goal: 224 * MIB,
                limited: true,
            },
            Row {
                what: "free and released pages are not outside the heap; an overage is",
                release: 21,
                gogc: Gogc::Off,
                limit,
                // mappedReady = 200 + 30 + 20 = 250: 20 MiB over the limit.
                totals: t(100 * MIB, 200 * MIB, 30 * MIB, 10 * MIB, 20 * MIB),
                // 230 - (20 + 20) = 190 MiB, less 3 % (5.7 MiB).
                goal: 190 * MIB - 190 * MIB / 100 * 3,
                limited: true,
            },
            Row {
                what: "memory outside the heap fills the limit: collect continuously",
                release: 27,
                gogc: Gogc::Off,
                limit: 16 * MIB,
                totals: t(4 * MIB, 6 * MIB, 0, 0, 16 * MIB),
                goal: 4 * MIB,
                limited: true,
            },
            Row {
                what: "the limit's goal never falls below the marked heap",
                release: 27,
                gogc: Gogc::Percent(100),
                limit: 32 * MIB,
                totals: t(31 * MIB, 31 * MIB, 0, 0, 2 * MIB),
                goal: 31 * MIB,
                limited: true,
            },
            Row {
                what: "a small heap under a high limit: GOGC decides",
                release: 27,
                gogc: Gogc::Percent(100),
                limit,
                totals: t(10 * MIB, 10 * MIB, 0, 0, 5 * MIB),
                goal: 20 * MIB,
                limited: false,
            },
        ];
        for r in rows {
            let p = Pacer::new(
                PacerConfig {
                    memory_limit: Some(r.limit),
                    ..cfg(r.gogc, 0, 0)
                },
                Rules::of(Release::go1(r.release).unwrap()),
            );
            let pace = p.pace(&r.totals);
            assert_eq!((pace.goal, pace.limited), (r.goal, r.limited), "{}", r.what);
            assert!(
                pace.trigger <= pace.goal && pace.trigger >= r.totals.marked,
                "{}",
                r.what
            );
        }
    }

    /// The trigger after the seed's spike, release by release, as measured on the real runtime
    /// (reference/go/MEASUREMENTS.md, "Where the threshold is"): go1.19 starts the next cycle
    /// at the lower clamp (marked + 45/64 of the way to the goal), go1.21+ at goal - 4 MiB.
    #[test]
    fn go1_19_starts_the_cycle_after_a_spike_early() {
        use crate::release::Release;
        let slab = 128 * MIB;
        for (minor, lower_clamp) in [(19, true), (20, false), (21, false), (27, false)] {
            let rules = Rules::of(Release::go1(minor).unwrap());
            let mut p = Pacer::new(PacerConfig::default(), rules);
            let mut cm = ConsMark::new(rules.cons_mark);
            // The first cycle starts when the spike's allocation crosses the first trigger.
            let first = p.pace(&Totals::default()).trigger;
            let estimate = cm.record(slab, first, p.root_scan());
            p.set_cons_mark(estimate);
            let pace = p.pace(&after(slab, 0));
            let step = (pace.goal - slab) / 64;
            let want = if lower_clamp {
                slab + 45 * step
            } else {
                pace.goal - DEFAULT_HEAP_MINIMUM
            };
            assert_eq!(pace.trigger, want, "go1.{minor}");
        }
        // The real go1.19 started it at 219 MiB for spike 0.5 (gctrace "219->219->91 MB").
        let goal =
            2 * slab + PacerConfig::default().stack_scan + PacerConfig::default().globals_scan;
        assert_eq!((slab + 45 * ((goal - slab) / 64)) >> 20, 218);
    }

    #[test]
    fn cons_mark_estimates_follow_the_release() {
        let scan = 1 << 20;
        // Measurements of 3, 1, 0, 0, 0, 0 (the allocation since the trigger over 3 x scan).
        let mut go119 = ConsMark::new(ConsMarkRule::Go119);
        assert_eq!(go119.record(9 * MIB, 0, scan), 3.0);
        assert_eq!(go119.record(3 * MIB, 0, scan), 1.0);
        // Later releases count from the heap at the start: nothing allocated during an
        // instantaneous cycle.
        let mut max5 = ConsMark::new(ConsMarkRule::MaxOfFive);
        assert_eq!(max5.record(9 * MIB, 0, scan), 0.0);
        let mut m = ConsMark::new(ConsMarkRule::MeanOfTwo);
        m.history = [3.0, 0.0, 0.0, 0.0, 0.0];
        assert_eq!(m.record(0, 0, scan), 1.5);
        let mut x = ConsMark::new(ConsMarkRule::MaxOfFive);
        x.history = [3.0, 0.0, 0.0, 0.0, 0.0];
        for _ in 0..4 {
            assert_eq!(x.record(0, 0, scan), 3.0);
        }
        assert_eq!(
            x.record(0, 0, scan),
            0.0,
            "five cycles later it is forgotten"
        );
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
