//! The prediction's cost: [`predict`] (20 timing draws of an experiment over counted memory) on
//! the seed and the churn scenario, and [`model_band`] (up to 101 such predictions along a knob), as
//! every `run`, `compare` row and scenario `threshold` pays it. Pure model: no cgroup, no real
//! memory.
//!
//! Run: `cargo bench -p memspike-model --bench predict`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use memspike_model::{
    experiment::Experiment,
    predict::{DRAWS, predict},
    scenario::builtin,
    threshold::{Knob, Range, model_band},
};

const MIB: u64 = 1 << 20;

fn experiment(limit: u64, scenario: &str, chunk: Option<u64>) -> Experiment {
    let scenario = match scenario {
        "seed" => builtin::seed(builtin::SEED_SPIKE, chunk),
        name => builtin::by_name(name).expect("a built-in scenario"),
    };
    Experiment {
        scenario,
        gomaxprocs: 2,
        ..Experiment::seed(limit)
    }
}

fn predictions(c: &mut Criterion) {
    let cases = [
        ("seed 32 MiB", experiment(32 * MIB, "seed", None)),
        (
            "seed 256 MiB, 1 MiB pieces",
            experiment(256 * MIB, "seed", Some(MIB)),
        ),
        ("churn 256 MiB", experiment(256 * MIB, "churn", None)),
    ];
    for (name, e) in &cases {
        c.bench_function(&format!("predict {name} ({DRAWS} draws)"), |b| {
            b.iter(|| predict(black_box(e), DRAWS))
        });
    }
    let range = Range::new(Knob::Spike, 0.3, 0.6).expect("a spike range");
    let e = experiment(32 * MIB, "seed", Some(MIB));
    c.bench_function(
        "model band, spike 0.3..0.6, seed 32 MiB, 1 MiB pieces",
        |b| b.iter(|| model_band(&range, black_box(&e), Some(MIB))),
    );
}

criterion_group!(benches, predictions);
criterion_main!(benches);
