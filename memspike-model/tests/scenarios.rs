//! The built-in scenarios under every memory policy, in the model alone (counted memory, the
//! `Detached` host, no root): every run is deterministic to the event and reaches `done`, and
//! each policy changes what the Go runtime's rules say it changes.

use std::time::Duration;

use memspike_model::{
    event::{Event, GcReason, Kind, ScavengeReason},
    experiment::Experiment,
    heap::{Accounting, PAGE_SIZE},
    pacer::{FORCE_GC_PERIOD, Gogc, PacerConfig},
    policy::Policy,
    program::{Detached, Driver},
    release::Rules,
    runtime::Runtime,
    scavenger,
    scenario::{Action, Scenario, Step, builtin},
    size::Amount,
    watchdog::{Driver as WatchdogDriver, Force},
};

const MIB: u64 = 1 << 20;

/// Address space for the counted heap: far more than any scenario here grows to (the model has
/// no limit), and nothing is reserved for it.
const CAPACITY: u64 = 64 << 30;

/// The policies of issue 8, by the name the failure messages use.
fn policies() -> Vec<(&'static str, Policy)> {
    let watermarks = || "watermarks:0.5,0.75,0.9".parse().unwrap();
    let limit90 = Some(Amount::Percent(90.0));
    vec![
        ("default", Policy::default()),
        (
            "gogc 50",
            Policy {
                gogc: Gogc::Percent(50),
                ..Policy::default()
            },
        ),
        (
            "gc after release",
            Policy {
                gc_after_release: true,
                ..Policy::default()
            },
        ),
        (
            "memory limit 90%",
            Policy {
                memory_limit: limit90,
                ..Policy::default()
            },
        ),
        (
            "gogc off, memory limit 90%",
            Policy {
                gogc: Gogc::Off,
                memory_limit: limit90,
                ..Policy::default()
            },
        ),
        (
            "watchdog watermarks (heap)",
            Policy {
                watchdog: Some(watermarks()),
                ..Policy::default()
            },
        ),
        (
            "watchdog adaptive (heap)",
            Policy {
                watchdog: Some("adaptive:0.5".parse().unwrap()),
                ..Policy::default()
            },
        ),
        (
            "watchdog watermarks (cgroup, free_os_memory)",
            cgroup_watchdog(),
        ),
    ]
}

fn cgroup_watchdog() -> Policy {
    Policy {
        watchdog: Some("watermarks:0.5,0.75,0.9".parse().unwrap()),
        watchdog_driver: Some(WatchdogDriver::Cgroup),
        watchdog_force: Some(Force::FreeOsMemory),
        ..Policy::default()
    }
}

fn experiment(scenario: Scenario, limit: u64, policy: Policy) -> Experiment {
    let mut e = Experiment::seed(limit);
    e.scenario = scenario;
    e.policy = policy;
    e
}

fn builtin(name: &str, limit: u64, policy: Policy) -> Experiment {
    experiment(builtin::by_name(name).unwrap(), limit, policy)
}

/// The experiment's events, as a model-only run sends them.
fn run(e: &Experiment) -> Vec<Event> {
    let (events, outcome) = try_run(e);
    outcome.unwrap();
    events
}

/// The experiment run in the model: its events, and how its scenario ended.
fn try_run(e: &Experiment) -> (Vec<Event>, Result<(), String>) {
    let rt = Runtime::new(
        Accounting::default(),
        Accounting::default(),
        CAPACITY,
        e.runtime_config(0, 0),
    );
    let mut driver = Driver::new(rt, Vec::new(), Detached::default());
    let outcome = driver
        .run(&e.effective_scenario(), e.limit)
        .map(drop)
        .map_err(|e| e.to_string());
    (driver.into_sink(), outcome)
}

fn cycles(events: &[Event]) -> impl Iterator<Item = (&Event, GcReason)> {
    events.iter().filter_map(|e| match &e.kind {
        Kind::Gc { cycle, .. } => Some((e, cycle.reason)),
        _ => None,
    })
}

/// The `End` event of the first step named `phase`.
fn end_of<'a>(events: &'a [Event], phase: &str) -> &'a Event {
    events
        .iter()
        .find(|e| matches!(&e.kind, Kind::End { phase: p, .. } if p == phase))
        .unwrap_or_else(|| panic!("no end of {phase}"))
}

#[test]
fn every_built_in_under_every_policy_is_deterministic_and_finishes() {
    for limit in [32 * MIB, 256 * MIB] {
        for (scenario, _) in builtin::ALL {
            for (policy_name, policy) in policies() {
                let what = format!("{scenario} under {policy_name} at {} MiB", limit / MIB);
                let e = builtin(scenario, limit, policy);
                let first = run(&e);
                let second = run(&e);
                assert_eq!(first, second, "{what}: two runs differ");
                assert!(
                    matches!(first.first().map(|e| &e.kind), Some(Kind::Ready { .. })),
                    "{what}: does not start with ready"
                );
                assert_eq!(
                    first.last().map(|e| &e.kind),
                    Some(&Kind::Done),
                    "{what}: does not reach done"
                );
                // Simulated time never runs backwards.
                assert!(
                    first.windows(2).all(|w| w[0].sim_ns <= w[1].sim_ns),
                    "{what}: sim_ns goes backwards"
                );
                // Every event names the top-level step it happened in (as run), from ready
                // (0) to the last step, one after the other: what places it on a chart.
                let steps = e.effective_scenario().steps.len() as u32;
                assert_eq!(first[0].step, 0, "{what}");
                assert!(
                    first
                        .windows(2)
                        .all(|w| w[1].step == w[0].step || w[1].step == w[0].step + 1),
                    "{what}: steps skipped or out of order"
                );
                assert_eq!(first.last().map(|e| e.step), Some(steps), "{what}");
            }
        }
    }
}

/// The seed's `-gc`: the collection after the release sweeps the spike, so the remainder is
/// placed in swept pages; without it the spike is still garbage below the trigger, and the
/// remainder grows the heap.
#[test]
fn a_collection_after_the_release_lets_the_remainder_reuse_garbage() {
    let limit = 32 * MIB;
    let remainder = (limit / 10).next_multiple_of(PAGE_SIZE);
    for (gc, reused, grown) in [(false, 0, remainder), (true, remainder, 0)] {
        let events = run(&builtin(
            "seed",
            limit,
            Policy {
                gc_after_release: gc,
                ..Policy::default()
            },
        ));
        let Kind::End {
            reused: r,
            grown: g,
            ..
        } = end_of(&events, "remainder").kind
        else {
            unreachable!()
        };
        assert_eq!((r, g), (reused, grown), "gc after release: {gc}");
    }
}

/// GOGC 100 plans the next cycle at the marked spike plus 100 % of everything scanned (the
/// spike, stacks and globals): twice the spike and more, far above a 256 MiB limit. A 90 %
/// memory limit plans it at the limit less the memory outside the heap (and the room in the
/// spans of the program's small objects) and the release's headroom: below the cgroup's limit
/// and the memory limit itself.
#[test]
fn a_memory_limit_keeps_the_goal_after_the_spike_below_the_limit() {
    let limit = 256 * MIB;
    let seed = builtin::seed(0.8, None);
    let spike = (limit / 10 * 8).next_multiple_of(PAGE_SIZE);

    let gogc = run(&experiment(seed.clone(), limit, Policy::default()));
    let after = end_of(&gogc, "spike").heap;
    assert_eq!(after.live, spike);
    let roots = PacerConfig::default().stack_scan + PacerConfig::default().globals_scan;
    assert_eq!(after.next_gc, Some(2 * spike + roots));
    assert!(after.next_gc.unwrap() > limit);

    let memory_limit = Amount::Percent(90.0);
    let policy = Policy {
        memory_limit: Some(memory_limit),
        ..Policy::default()
    };
    let e = experiment(seed, limit, policy);
    let limited = run(&e);
    let after = end_of(&limited, "spike").heap;
    let ml = memory_limit.resolve(limit);
    assert_eq!(ml, 241_591_910);
    let headroom = Rules::of(e.runtime).memory_limit_headroom;
    // What the limit counts beyond the heap's objects: the memory outside the heap, and the
    // room in the spans of the program's small objects.
    let slack = memspike_model::footprint::Footprint::of(e.runtime).span_slack;
    assert_eq!(
        after.next_gc,
        Some(headroom.apply(ml - after.non_heap - slack))
    );
    let next_gc = after.next_gc.unwrap();
    assert!(
        next_gc > after.live && next_gc < ml && ml < limit,
        "{after:?}"
    );
}

/// go-watchdog's cgroup driver forces `debug.FreeOSMemory` when a poll finds the usage at the
/// threshold. In `leak` the usage climbs past every watermark, so some poll finds it there;
/// every forced cycle is followed by returning every free page.
///
/// (Not `churn`: the driver renews its threshold from the usage after every cycle, and churn's
/// usage after its first cycle stays between the 50 % and 75 % watermarks, so no poll fires.)
#[test]
fn the_cgroup_watchdog_forces_cycles_and_returns_memory_in_leak() {
    let events = run(&builtin("leak", 256 * MIB, cgroup_watchdog()));
    let forced: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            matches!(&e.kind, Kind::Gc { cycle, .. } if cycle.reason == GcReason::Watchdog)
        })
        .map(|(i, _)| i)
        .collect();
    assert!(!forced.is_empty(), "no watchdog cycle in leak");
    for i in forced {
        let after = &events[i + 1];
        if events[i].heap.free > 0 {
            assert!(
                matches!(
                    after.kind,
                    Kind::Scavenge {
                        reason: ScavengeReason::FreeOsMemory,
                        ..
                    }
                ),
                "watchdog cycle not followed by free_os_memory: {:?}",
                after.kind
            );
            assert_eq!(after.heap.free, 0, "free pages left after free_os_memory");
        }
    }
    // Without the watchdog no cycle has that reason.
    let plain = run(&builtin("leak", 256 * MIB, Policy::default()));
    assert!(cycles(&plain).all(|(_, r)| r != GcReason::Watchdog));
}

/// The runtime forces a cycle when none ran for two minutes, unless GOGC is off. `leak`'s own
/// cycles come well within two minutes of each other, so a program that collects once and then
/// idles for 250 s shows it: two forced periodic cycles, each just over two minutes after the
/// one before.
#[test]
fn a_periodic_cycle_comes_after_two_minutes_without_one() {
    let idle = Scenario {
        name: "idle".to_owned(),
        description: String::new(),
        steps: vec![
            Step::new(
                "live",
                Action::Alloc {
                    size: Amount::Percent(10.0),
                    chunk: None,
                    fill: false,
                },
            ),
            Step::new("gc", Action::Gc),
            Step::new("idle", Action::Wait(Duration::from_secs(250))),
        ],
    };
    let events = run(&experiment(idle.clone(), 32 * MIB, Policy::default()));
    let all: Vec<(u64, GcReason)> = cycles(&events).map(|(e, r)| (e.sim_ns, r)).collect();
    let periodic = all.iter().filter(|(_, r)| *r == GcReason::Periodic).count();
    assert_eq!(periodic, 2, "{all:?}");
    // Each cycle is reported with its own time and the state right after it (a regression: both
    // periodic cycles of the wait showed the second one's time and count): one period apart,
    // numbered in turn, each its own `last_gc` (the epoch is 0 here).
    let periodic: Vec<&Event> = cycles(&events)
        .filter(|(_, r)| *r == GcReason::Periodic)
        .map(|(e, _)| e)
        .collect();
    let period = FORCE_GC_PERIOD.as_nanos() as u64;
    assert_eq!(periodic[1].sim_ns - periodic[0].sim_ns, period + 1);
    assert_eq!(periodic[1].heap.num_gc, periodic[0].heap.num_gc + 1);
    for e in &periodic {
        assert_eq!(e.heap.last_gc_unix_ns, e.sim_ns);
    }
    // The forced cycle's time when the `gc` step ends, the second periodic one's when the wait
    // ends.
    let forced = end_of(&events, "gc").heap.last_gc_unix_ns;
    let last = end_of(&events, "idle").heap.last_gc_unix_ns;
    let gap = last - forced;
    assert!(
        gap > 2 * period && gap < 2 * period + 10_000_000,
        "{forced} -> {last}"
    );
    // In leak no step ends two minutes after the last cycle: the rule never needs to act.
    let leak = run(&builtin("leak", 256 * MIB, Policy::default()));
    assert!(
        leak.iter()
            .all(|e| e.heap.num_gc == 0 || e.sim_ns - e.heap.last_gc_unix_ns <= period),
        "leak goes two minutes without a cycle"
    );
    assert!(cycles(&leak).all(|(_, r)| r != GcReason::Periodic));
    // GOGC off: no periodic cycle.
    let off = Policy {
        gogc: Gogc::Off,
        ..Policy::default()
    };
    let events = run(&experiment(idle, 32 * MIB, off));
    assert!(cycles(&events).all(|(_, r)| r != GcReason::Periodic));
}

/// The background scavenger returns memory in `leak` (its retention goal falls behind the
/// memory it holds), never faster than its CPU share allows: within a step, at most
/// `background_rate` bytes per simulated second of the step.
#[test]
fn the_background_scavenger_returns_memory_at_its_pace() {
    let e = builtin("leak", 256 * MIB, Policy::default());
    let events = run(&e);
    let rate = scavenger::background_rate(e.gomaxprocs);
    let mut total = 0;
    let mut begun = 0;
    let mut in_step = 0;
    for ev in &events {
        match &ev.kind {
            Kind::Begin { .. } => {
                begun = ev.sim_ns;
                in_step = 0;
            }
            Kind::Scavenge {
                reason: ScavengeReason::Background,
                bytes,
                ..
            } => {
                in_step += bytes;
                total += bytes;
                // What it returned shows at once as HeapReleased.
                assert!(ev.heap.released >= *bytes, "{:?}", ev.heap);
                let allowed =
                    (u128::from(rate) * u128::from(ev.sim_ns - begun) / 1_000_000_000) as u64;
                assert!(
                    in_step <= allowed,
                    "{in_step} bytes scavenged in {} ns, at most {allowed}",
                    ev.sim_ns - begun
                );
            }
            _ => {}
        }
    }
    assert!(
        total > 0,
        "the background scavenger returned nothing in leak"
    );
}

/// A calibrated program's profile takes the reference's place: its globals count toward the
/// goal (Go 1.18+), and the memory it holds outside the heap counts toward a memory limit, so
/// the runtime collects sooner.
#[test]
fn a_calibrated_profile_moves_the_goal_and_the_memory_limit() {
    use memspike_model::profile::Profile;
    let profile = |globals: u64, outside: u64| Profile {
        command: vec!["prog".into()],
        go_version: "go1.27.3".into(),
        release: memspike_model::release::Release::NEWEST,
        outside_heap_bytes: outside,
        at_heap_bytes: 4 * MIB,
        outside_anonymous_bytes: None,
        outside_heap_range_bytes: None,
        outside_mapped_bytes: None,
        at_heap_arenas: None,
        own_heap_bytes: None,
        stacks_bytes: 0,
        globals_bytes: globals,
        start_heap_bytes: 0,
        alloc_rate: None,
        gomaxprocs: 2,
        mark_ms: None,
        marked_bytes_per_ms: None,
        cycles: 3,
    };
    let next_gc_after_spike = |p: Option<Profile>, policy: Policy| {
        let mut e = experiment(builtin::seed(0.5, None), 64 * MIB, policy);
        e.profile = p;
        let events = run(&e);
        end_of(&events, "spike").heap.next_gc
    };
    let reference = next_gc_after_spike(None, Policy::default()).unwrap();
    let with_globals =
        next_gc_after_spike(Some(profile(4 * MIB, 2 * MIB)), Policy::default()).unwrap();
    // GOGC 100: the goal grows by the globals beyond the reference's (160 KiB), once.
    let roots = PacerConfig::default();
    let extra = 4 * MIB - roots.globals_scan;
    assert!(
        with_globals.abs_diff(reference + extra) <= PAGE_SIZE * 2,
        "{reference} + {extra} vs {with_globals}"
    );
    // Under a memory limit, 24 MiB more outside the heap leaves the heap less room: the goal
    // after the spike is lower.
    let limited = Policy {
        memory_limit: Some(Amount::Percent(90.0)),
        ..Policy::default()
    };
    let light = next_gc_after_spike(None, limited.clone()).unwrap();
    let heavy = next_gc_after_spike(Some(profile(0, 24 * MIB)), limited).unwrap();
    assert!(heavy + 16 * MIB < light, "{heavy} vs {light}");

    // A heap of its own, 8 MiB held from the start: the seed's spike fills what is left of
    // its 32 MiB, and what the spike's cycle marked (the own heap and the slab) is what the
    // reference's slab alone was: the same goal. Dropped and collected, only the own heap
    // stays live; the slab the remainder may reuse is 8 MiB smaller.
    let own = Profile {
        own_heap_bytes: Some(8 * MIB),
        ..profile(0, 2 * MIB)
    };
    let mut e = experiment(builtin::seed(0.5, None), 64 * MIB, Policy::default());
    e.profile = Some(own);
    let events = run(&e);
    let spike = end_of(&events, "spike").heap;
    assert_eq!(spike.live, 32 * MIB, "{spike:?}");
    let mut plain = experiment(builtin::seed(0.5, None), 64 * MIB, Policy::default());
    plain.profile = Some(profile(0, 2 * MIB));
    let plain_spike = end_of(&run(&plain), "spike").heap;
    assert_eq!(spike.next_gc, plain_spike.next_gc);
    let remainder = end_of(&events, "remainder").heap;
    assert!(remainder.live >= 8 * MIB + 32 * MIB, "{remainder:?}");

    // An own heap above what the spike asks for leaves it nothing to fill, and says whose.
    let mut e = experiment(builtin::seed(0.5, None), 8 * MIB, Policy::default());
    e.profile = Some(Profile {
        own_heap_bytes: Some(8 * MIB),
        ..profile(0, 2 * MIB)
    });
    let error = try_run(&e).1.unwrap_err();
    assert!(
        error.contains("nothing to fill")
            && error.contains("8388608 of them the calibrated program's own heap"),
        "{error}"
    );
}
