//! The built-in scenarios. Sizes are shares of the cgroup's limit, so each one means the same
//! at 32 MiB or at 1 GiB. `memspike scenarios` lists them; `--print` shows one as TOML.

use std::time::Duration;

use super::{Action, Releasing, Scenario, Step};
use crate::heap::Order;
use crate::size::{Amount, round_percent};

/// The seed's spike fraction.
pub const SEED_SPIKE: f64 = 0.9;

/// Every built-in scenario's name and line, in the order `memspike scenarios` lists them.
pub const ALL: [(&str, &str); 4] = [
    (
        "seed",
        "the seed's experiment: fill 90 % of the limit, drop it, allocate the other 10 % (--spike, --chunk)",
    ),
    (
        "bursty",
        "a small live set, then a large buffer allocated and dropped again and again (golang/go#42805)",
    ),
    (
        "churn",
        "steady request-like allocation and release around a live set of 30 % of the limit",
    ),
    (
        "leak",
        "each second a little more stays live than is dropped: the live heap grows slowly",
    ),
];

/// A built-in scenario by name, with the seed's defaults.
pub fn by_name(name: &str) -> Option<Scenario> {
    Some(match name {
        "seed" => seed(SEED_SPIKE, None),
        "bursty" => bursty(),
        "churn" => churn(),
        "leak" => leak(),
        _ => return None,
    })
}

fn describe(name: &str) -> String {
    ALL.iter()
        .find(|(n, _)| *n == name)
        .map_or_else(String::new, |(_, d)| (*d).to_owned())
}

fn pct(p: f64) -> Amount {
    Amount::Percent(round_percent(p))
}

fn alloc(size: Amount) -> Action {
    Action::Alloc {
        size,
        chunk: None,
        fill: false,
    }
}

fn release(what: Releasing, order: Order) -> Action {
    Action::Release { what, order }
}

/// The seed's experiment: allocate `spike` of the limit (counting what the heap already holds,
/// as the seed's `limit - HeapAlloc - reserve`), drop it, allocate the rest, whole or in
/// `chunk`-sized pieces.
pub fn seed(spike: f64, chunk: Option<u64>) -> Scenario {
    let spike_pct = round_percent(spike * 100.0);
    Scenario {
        name: "seed".to_owned(),
        description: describe("seed"),
        steps: vec![
            Step::new(
                "spike",
                Action::Alloc {
                    size: pct(spike_pct),
                    chunk: None,
                    fill: true,
                },
            ),
            Step::new("release", release(Releasing::All, Order::Oldest)),
            Step::new(
                "remainder",
                Action::Alloc {
                    size: pct(100.0 - spike_pct),
                    chunk: chunk.map(Amount::Bytes),
                    fill: false,
                },
            ),
        ],
    }
}

fn bursty() -> Scenario {
    Scenario {
        name: "bursty".to_owned(),
        description: describe("bursty"),
        steps: vec![
            Step::new("live", alloc(pct(10.0))),
            Step::new(
                "repeat",
                Action::Repeat {
                    count: 20,
                    steps: vec![
                        Step::new("buffer", alloc(pct(45.0))),
                        Step::new("drop", release(Releasing::Amount(pct(45.0)), Order::Newest)),
                        Step::new("idle", Action::Wait(Duration::from_millis(50))),
                    ],
                },
            ),
        ],
    }
}

fn churn() -> Scenario {
    Scenario {
        name: "churn".to_owned(),
        description: describe("churn"),
        steps: vec![
            Step::new("live", alloc(pct(30.0))),
            Step::new(
                "repeat",
                Action::Repeat {
                    count: 500,
                    steps: vec![
                        Step::new("request", alloc(pct(1.0))),
                        Step::new(
                            "response",
                            release(Releasing::Amount(pct(1.0)), Order::Newest),
                        ),
                        Step::new("idle", Action::Wait(Duration::from_millis(10))),
                    ],
                },
            ),
        ],
    }
}

fn leak() -> Scenario {
    Scenario {
        name: "leak".to_owned(),
        description: describe("leak"),
        steps: vec![Step::new(
            "repeat",
            Action::Repeat {
                count: 250,
                steps: vec![
                    Step::new("work", alloc(pct(2.0))),
                    Step::new(
                        "cleanup",
                        release(Releasing::Amount(pct(1.6)), Order::Newest),
                    ),
                    Step::new("idle", Action::Wait(Duration::from_secs(1))),
                ],
            },
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_prints_as_toml_that_parses_back() {
        for (name, _) in ALL {
            let s = by_name(name).unwrap();
            assert_eq!(s.name, name);
            let text = s.to_toml();
            assert_eq!(Scenario::from_toml(&text, name).unwrap(), s, "{text}");
        }
        assert_eq!(by_name("nope"), None);
    }

    #[test]
    fn the_seed_keeps_its_numbers() {
        let s = seed(SEED_SPIKE, None);
        let limit = 32 << 20;
        let Action::Alloc { size, fill, .. } = s.steps[0].action else {
            panic!()
        };
        assert!(fill);
        assert_eq!(size.resolve(limit), 30_198_988);
        let Action::Alloc { size, .. } = s.steps[2].action else {
            panic!()
        };
        // The seed's reserve: 10 % of 32 MiB.
        assert_eq!(size.resolve(limit), 3_355_443);
        assert!(s.to_toml().contains("alloc = \"90%\""), "{}", s.to_toml());
        assert!(s.to_toml().contains("alloc = \"10%\""), "{}", s.to_toml());
        let chunked = seed(0.5, Some(1 << 20));
        assert!(chunked.to_toml().contains("chunk = \"1MiB\""));
    }
}
