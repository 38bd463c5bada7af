//! Reclamation thresholds: what GOGC and a memory limit cost and save on the `churn` and
//! `bursty` scenarios. For GOGC 25, 50, 100, 200, 400, with the memory limit off and at 90 %,
//! under a 256 MiB limit:
//! - criterion measures the time per byte the scenario allocates, running the simulated runtime
//!   over real memory (the worker's arenas: every page written, returned with MADV_DONTNEED)
//!   in this process: NOT inside a cgroup, so nothing is charged, reclaimed or killed;
//! - beside it, from the model (deterministic, the same on every run): GC cycles, the simulated
//!   GC CPU share ([`HeapStats::gc_cpu_share`]), the peak resident memory as the model counts
//!   it (heap resident + the runtime's non-heap memory, at the event where it peaked), and
//!   whether that peak would have passed the limit.
//!
//! The table is printed at the end and written to `target/thresholds/thresholds.csv`; the
//! trade-off curve (GC CPU share against peak resident, one line per scenario and memory limit,
//! points labelled by GOGC) to `target/thresholds/thresholds.svg`.
//!
//! Run: `cargo bench -p memspike --bench thresholds` (a filter such as `-- churn` runs fewer
//! cells; the cells not measured show no time).

use std::{
    fmt::Write as _,
    hint::black_box,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use memspike_model::{
    event::HeapStats,
    experiment::Experiment,
    pacer::Gogc,
    policy::Policy,
    scenario::builtin,
    size::{Amount, human},
};
use memspike_worker::{
    host::{self, WorkerHost},
    telemetry::{Event, Sink},
};
use plotters::prelude::*;

/// The cgroup limit the scenarios are sized by (they allocate shares of it). Large enough that
/// the runtime's fixed costs (the 4 MiB minimum heap goal, its own memory) are small beside
/// the scenarios' sizes.
const LIMIT: u64 = 256 << 20;
const GOGCS: [u32; 5] = [25, 50, 100, 200, 400];
const MEMORY_LIMITS: [Option<f64>; 2] = [None, Some(90.0)];
const SCENARIOS: [&str; 2] = ["churn", "bursty"];
/// Fixed, so that the GC CPU share does not depend on the machine the bench runs on.
const GOMAXPROCS: u32 = 2;
/// Address space for the heap: far more than any cell uses.
const CAPACITY: u64 = 4 << 30;
const MIB: f64 = (1u64 << 20) as f64;
const GROUP: &str = "thresholds";

/// One cell of the grid.
#[derive(Clone, Copy)]
struct Cell {
    scenario: &'static str,
    memory_limit: Option<f64>,
    gogc: u32,
}

impl Cell {
    fn memory_limit_name(&self) -> String {
        self.memory_limit.map_or("off".into(), |p| format!("{p}%"))
    }

    /// Criterion's function name: one line of the curve.
    fn line(&self) -> String {
        format!("{} memlimit {}", self.scenario, self.memory_limit_name())
    }

    fn experiment(&self) -> Experiment {
        let mut e = Experiment::seed(LIMIT);
        e.scenario = builtin::by_name(self.scenario).expect("a built-in scenario");
        e.spike = None;
        e.gomaxprocs = GOMAXPROCS;
        e.policy = Policy {
            gogc: Gogc::Percent(self.gogc),
            memory_limit: self.memory_limit.map(Amount::Percent),
            ..Policy::default()
        };
        e
    }
}

/// What a run's events say: the peak and the last state.
#[derive(Default)]
struct Figures {
    peak_resident: u64,
    last: HeapStats,
    sim_ns: u64,
}

impl Sink for Figures {
    fn send(&mut self, event: &Event) -> std::io::Result<()> {
        self.peak_resident = self
            .peak_resident
            .max(event.heap.resident() + event.heap.non_heap);
        self.last = event.heap;
        self.sim_ns = event.sim_ns;
        Ok(())
    }
}

/// One run of the scenario over fresh arenas, as a worker runs it (outside any cgroup).
fn run(e: &Experiment, scenario: &memspike_model::scenario::Scenario) -> Figures {
    let mut p = host::program(e, Figures::default(), WorkerHost::new(None), CAPACITY)
        .expect("reserve the arenas");
    p.run(scenario, e.limit).expect("the scenario runs");
    p.into_sink()
}

/// A cell's row of the table.
struct Row {
    cell: Cell,
    allocated: u64,
    gc_cycles: u32,
    gc_cpu_share: f64,
    peak_resident: u64,
    sim_ns: u64,
    /// Criterion's median time per run, when this run measured the cell.
    median_ns: Option<f64>,
}

impl Row {
    fn exceeds_limit(&self) -> bool {
        self.peak_resident > LIMIT
    }

    fn ns_per_mib(&self) -> Option<f64> {
        self.median_ns.map(|ns| ns / (self.allocated as f64 / MIB))
    }
}

fn main() {
    let started = SystemTime::now();
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    println!(
        "thresholds: the simulated runtime over real memory (mmap'd arenas, every page written), \
         in this process, NOT inside a cgroup: nothing is charged, reclaimed or OOM-killed here. \
         Limit {} (the scenarios' sizes are shares of it), GOMAXPROCS {GOMAXPROCS}.",
        human(LIMIT)
    );
    let mut rows = Vec::new();
    let mut g = c.benchmark_group(GROUP);
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    for scenario in SCENARIOS {
        for memory_limit in MEMORY_LIMITS {
            for gogc in GOGCS {
                let cell = Cell {
                    scenario,
                    memory_limit,
                    gogc,
                };
                let e = cell.experiment();
                let steps = e.effective_scenario();
                // The model is deterministic: one run gives the figures every timed run repeats.
                let f = run(&e, &steps);
                rows.push(Row {
                    cell,
                    allocated: f.last.total_alloc,
                    gc_cycles: f.last.num_gc,
                    gc_cpu_share: f.last.gc_cpu_share(f.sim_ns, GOMAXPROCS).unwrap_or(0.0),
                    peak_resident: f.peak_resident,
                    sim_ns: f.sim_ns,
                    median_ns: None,
                });
                g.throughput(Throughput::Bytes(f.last.total_alloc));
                g.bench_with_input(
                    BenchmarkId::new(cell.line(), format!("gogc {gogc}")),
                    &e,
                    |b, e| b.iter(|| black_box(run(e, &steps))),
                );
            }
        }
    }
    g.finish();
    c.final_summary();

    let target = target_dir();
    for row in &mut rows {
        row.median_ns = criterion_median(&target, &row.cell, started);
    }
    let out = target.join("thresholds");
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("cannot create {}: {e}", out.display());
        return;
    }
    print!("{}", table(&rows));
    let csv = out.join("thresholds.csv");
    match std::fs::write(&csv, to_csv(&rows)) {
        Ok(()) => println!("wrote {}", csv.display()),
        Err(e) => eprintln!("cannot write {}: {e}", csv.display()),
    }
    let svg = out.join("thresholds.svg");
    match draw(&svg, &rows) {
        Ok(()) => println!("wrote {}", svg.display()),
        Err(e) => eprintln!("cannot draw {}: {e}", svg.display()),
    }
    let took = started.elapsed().unwrap_or_default();
    println!(
        "thresholds: the whole bench took {:.0} s",
        took.as_secs_f64()
    );
}

/// Cargo's target directory: the bench binary is `<target>/<profile>/deps/thresholds-*`.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            Some(exe.parent()?.parent()?.parent()?.to_path_buf())
        })
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// Criterion's median for a cell (`<target>/criterion/<group>/<function>/<value>/new/
/// estimates.json`), if this run wrote it.
fn criterion_median(target: &Path, cell: &Cell, since: SystemTime) -> Option<f64> {
    let safe = |s: &str| s.replace(['?', '"', '/', '\\', '*', '<', '>', ':', '|', '^'], "_");
    let path = target
        .join("criterion")
        .join(GROUP)
        .join(safe(&cell.line()))
        .join(safe(&format!("gogc {}", cell.gogc)))
        .join("new/estimates.json");
    let fresh = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= since);
    if !fresh {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).ok()?).ok()?;
    v["median"]["point_estimate"].as_f64()
}

fn table(rows: &[Row]) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::ASCII_MARKDOWN);
    t.set_header([
        "scenario",
        "memory limit",
        "GOGC",
        "allocated",
        "ms per run",
        "µs per MiB",
        "GC cycles",
        "GC CPU",
        "peak resident",
        "over 256 MiB",
    ]);
    for r in rows {
        t.add_row([
            r.cell.scenario.to_owned(),
            r.cell.memory_limit_name(),
            r.cell.gogc.to_string(),
            human(r.allocated).to_string(),
            r.median_ns
                .map_or("–".into(), |ns| format!("{:.0}", ns / 1e6)),
            r.ns_per_mib()
                .map_or("–".into(), |ns| format!("{:.0}", ns / 1e3)),
            r.gc_cycles.to_string(),
            format!("{:.3} %", r.gc_cpu_share * 100.0),
            human(r.peak_resident).to_string(),
            if r.exceeds_limit() { "yes" } else { "no" }.to_owned(),
        ]);
    }
    format!("{t}\n")
}

fn to_csv(rows: &[Row]) -> String {
    let mut s = String::from(
        "scenario,memory_limit,gogc,limit_bytes,allocated_bytes,sim_ns,median_ns_per_run,ns_per_mib,gc_cycles,gc_cpu_share,peak_resident_bytes,exceeds_limit\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.0}"));
    for r in rows {
        let _ = writeln!(
            s,
            "{},{},{},{LIMIT},{},{},{},{},{},{:.6},{},{}",
            r.cell.scenario,
            r.cell.memory_limit_name(),
            r.cell.gogc,
            r.allocated,
            r.sim_ns,
            opt(r.median_ns),
            opt(r.ns_per_mib()),
            r.gc_cycles,
            r.gc_cpu_share,
            r.peak_resident,
            r.exceeds_limit(),
        );
    }
    s
}

/// The trade-off curve: GC CPU share (log scale) against peak resident memory, one line per
/// scenario and memory limit, each point labelled with its GOGC; the limit as a dashed line.
fn draw(path: &Path, rows: &[Row]) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let x_max = rows
        .iter()
        .map(|r| r.peak_resident as f64 / MIB)
        .fold(LIMIT as f64 / MIB, f64::max)
        * 1.08;
    let shares = || rows.iter().map(|r| (r.gc_cpu_share * 100.0).max(1e-4));
    let y_min = shares().fold(f64::INFINITY, f64::min) / 2.0;
    let y_max = shares().fold(0.0, f64::max) * 2.0;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "GC CPU against peak resident memory, 256 MiB limit (labels: GOGC)",
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x_max, (y_min..y_max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("peak resident (heap + runtime), MiB")
        .y_desc("simulated GC CPU share, % (log)")
        .light_line_style(WHITE.mix(0.0))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    let limit = LIMIT as f64 / MIB;
    chart.draw_series(DashedLineSeries::new(
        [(limit, y_min), (limit, y_max)],
        6,
        4,
        BLACK.mix(0.5).stroke_width(1),
    ))?;
    chart.draw_series(std::iter::once(Text::new(
        "limit",
        (limit, y_max / 1.5),
        ("sans-serif", 13).into_font().color(&BLACK.mix(0.6)),
    )))?;
    let palette = [
        RGBColor(0, 114, 178),
        RGBColor(86, 180, 233),
        RGBColor(213, 94, 0),
        RGBColor(230, 159, 0),
    ];
    let mut lines: Vec<String> = rows.iter().map(|r| r.cell.line()).collect();
    lines.dedup();
    let at = |r: &Row| {
        (
            r.peak_resident as f64 / MIB,
            (r.gc_cpu_share * 100.0).max(1e-4),
        )
    };
    for (i, line) in lines.iter().enumerate() {
        let color = palette[i % palette.len()];
        let points: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| &r.cell.line() == line)
            .map(at)
            .collect();
        let style = color.stroke_width(2);
        let legend = move |(x, y): (i32, i32)| PathElement::new([(x, y), (x + 20, y)], style);
        // Dashed: no memory limit; solid: the memory limit at 90 %.
        if line.ends_with("off") {
            chart
                .draw_series(DashedLineSeries::new(points.iter().copied(), 8, 5, style))?
                .label(format!("{line} (dashed)"))
                .legend(legend);
        } else {
            chart
                .draw_series(LineSeries::new(points.iter().copied(), style))?
                .label(line.as_str())
                .legend(legend);
        }
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    }
    // One label per place: cells that land on the same point (the memory limit making GOGC
    // irrelevant, or two lines meeting) share it, e.g. "25, 50".
    let mut labels: Vec<((f64, f64), Vec<u32>)> = Vec::new();
    for r in rows {
        let p = at(r);
        match labels.iter_mut().find(|(q, _)| *q == p) {
            Some((_, gogcs)) if gogcs.contains(&r.cell.gogc) => {}
            Some((_, gogcs)) => gogcs.push(r.cell.gogc),
            None => labels.push((p, vec![r.cell.gogc])),
        }
    }
    chart.draw_series(labels.into_iter().map(|(p, mut gogcs)| {
        gogcs.sort_unstable();
        let text = gogcs
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        EmptyElement::at(p) + Text::new(text, (6, -14), ("sans-serif", 12).into_font())
    }))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    root.present()?;
    Ok(())
}
