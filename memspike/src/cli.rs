//! The command line, defined once with clap's derive: every subcommand and flag, and how the
//! flags become the model's types (an [`Experiment`], a [`Policy`], a threshold's `Range`). The policy's
//! own flags come from [`Policy`] itself. The CLI reference (`docs/reference/cli.md`) is generated
//! from these definitions: `UPDATE_EXPECT=1 cargo test -p memspike --bin memspike reference`.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use memspike_model::{
    experiment::Experiment,
    policy::Policy,
    profile::Profile,
    release::Release,
    scenario::{Scenario, builtin},
    size,
    threshold::Knob,
    trace::TraceChoice,
};
use memspike_report::outcome::Expect;
use memspike_supervisor::preflight::UsageError;
use memspike_worker::serve::AllowedHost;

#[derive(Parser)]
#[command(
    name = "memspike",
    version,
    about = "Reproduce and explain a garbage-collected heap OOM-killed by a cgroup limit while most of it is garbage",
    after_help = "Creating groups needs write access to the cgroup tree; tracing needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN). Running as root gives both."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run a scenario in a fresh memory cgroup (or under this one's limit, --inherit) and
    /// report what happened.
    Run(Box<RunArgs>),
    /// Run a real program in a fresh memory cgroup (or under this one's limit, --inherit) and
    /// report what happened.
    Exec(ExecArgs),
    /// Run one scenario, or your own program (`-- CMD`), under several policies, each run in a
    /// fresh group (or one after the other under this one's limit, --inherit), and compare them.
    Compare(Box<CompareArgs>),
    /// Find, per policy, the largest spike, the smallest limit, the largest GOGC or the highest
    /// GOMEMLIMIT that survives, by bisection over real runs of a scenario or your own program
    /// (`-- CMD`).
    Threshold(Box<ThresholdArgs>),
    /// Run the cells of a plan (scenarios x policies x limits x Go releases): all of them here
    /// (--local), or one (--index, as a Kubernetes pod does); `sweep merge` joins the rows.
    Sweep(Box<SweepArgs>),
    /// List the built-in scenarios (`run --scenario NAME --print` shows one as TOML).
    Scenarios,
    /// The process inside the cgroup (started by `run`; reads what to do on stdin).
    #[command(hide = true)]
    Worker,
}

/// What the experiment is: the limit, the scenario, and the runtime's policy.
#[derive(clap::Args, Clone)]
pub struct ExperimentArgs {
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Print the scenario as TOML (a file to start from) and exit.
    #[arg(long)]
    pub print: bool,
    #[command(flatten)]
    pub policy: Policy,
    /// Stop the worker (SIGSTOP) before the first step with this name, to inspect its cgroup;
    /// `kill -CONT` goes on.
    #[arg(long, value_name = "STEP")]
    pub pause_at: Option<String>,
}

/// The limit, the allocation pattern and the runtime it runs on (everything but the policy).
#[derive(clap::Args, Clone)]
pub struct ScenarioArgs {
    /// The cgroup's memory limit: 33554432, 32MiB, 32M, 1.5GiB (M = MiB).
    #[arg(long, default_value = "32MiB", value_parser = parse_size)]
    pub limit: u64,
    /// The allocation pattern: a built-in scenario (`memspike scenarios`) or a TOML file.
    #[arg(long, default_value = "seed", value_name = "NAME|FILE")]
    pub scenario: String,
    /// The seed scenario: the fraction of the limit the spike fills (the seed's 0.9).
    #[arg(long, value_parser = parse_spike, allow_negative_numbers = true)]
    pub spike: Option<f64>,
    /// The seed scenario: allocate the remainder in pieces of this size (the seed allocates it
    /// whole); the collector may then run between them.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub chunk: Option<u64>,
    /// Whose rules the runtime follows where Go releases differ: go1.19 to go1.27 (default:
    /// the calibrated program's, else the newest).
    #[arg(long, value_name = "goX.Y")]
    pub runtime: Option<Release>,
    /// Simulate your program instead of the reference one: the report.json of `memspike exec
    /// --report DIR -- PROG` (a Go program's run), whose runtime profile (memory outside the
    /// heap, roots, release, allocation rate, GOMAXPROCS) the model then uses.
    #[arg(long, value_name = "REPORT")]
    pub calibrate: Option<PathBuf>,
    /// How fast the program allocates and writes, per simulated second (default: measured on
    /// the reference Go program).
    #[arg(long, value_name = "SIZE", value_parser = parse_alloc_rate)]
    pub alloc_rate: Option<u64>,
    /// GOMAXPROCS for the simulated runtime (the CPU limiter's size); default: this machine's
    /// CPUs.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub gomaxprocs: Option<u32>,
}

/// Interactive mode: the seed's HTTP server on port 1112.
#[derive(clap::Args, Clone)]
pub struct InteractiveArgs {
    /// Keep a worker alive in the cgroup and drive its heap over HTTP (/add, /rel, /gc,
    /// /freeosmemory, /stats, /reset, /metrics, and a live page at /).
    #[arg(long, conflicts_with_all = ["scenario", "spike", "chunk", "gc_after_release", "pause_at", "expect", "report", "print"])]
    pub interactive: bool,
    /// Where to listen in interactive mode.
    #[arg(long, default_value = "0.0.0.0:1112", requires = "interactive")]
    pub listen: std::net::SocketAddr,
    /// After a worker dies, stop instead of starting a fresh one.
    #[arg(long, requires = "interactive")]
    pub no_restart: bool,
    /// Also accept requests that name the server NAME (any port) or NAME:PORT in Host, e.g.
    /// a DNS name of this machine; repeatable. By default only its address (and localhost).
    #[arg(long = "allow-host", value_name = "NAME[:PORT]", requires = "interactive",
          value_parser = parse_allowed_host)]
    pub allow_host: Vec<String>,
}

/// `--report DIR`, for every command with a report.
#[derive(clap::Args)]
pub struct ReportDir {
    /// Also write the report into DIR: report.json, timeline.svg (for a report with a chart)
    /// and report.html, each replaced whole (a temporary file renamed into place); `run` also
    /// writes events.jsonl there as the run goes, every event one JSON line.
    #[arg(long = "report", id = "report", value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// `memspike run`.
#[derive(clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub experiment: ExperimentArgs,
    /// Print the report as JSON instead of text (in interactive mode: each OOM kill's report,
    /// one JSON object per line).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub report: ReportDir,
    /// Exit with status 3 unless this is the outcome (`exit`: any end but an OOM kill).
    #[arg(long)]
    pub expect: Option<Expect>,
    /// Do not attach the eBPF observer (the report says tracing is off).
    #[arg(long)]
    pub no_trace: bool,
    /// The account the worker runs as (never root). Default: a private uid and gid that no
    /// account and no other process uses.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Run inside the memory cgroup memspike already lives in (a container's, a pod's, a
    /// delegated slice's) under its limit, the smallest up the path, instead of creating a
    /// group; memspike itself shares that limit.
    #[arg(long, conflicts_with = "limit")]
    pub inherit: bool,
    #[command(flatten)]
    pub interactive: InteractiveArgs,
}

/// How the supervisor runs many experiments (`compare`, `threshold`).
#[derive(clap::Args, Clone)]
pub struct RunsArgs {
    /// Do not attach the eBPF observer.
    #[arg(long)]
    pub no_trace: bool,
    /// The account the workers run as (never root); default: a private uid and gid.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// The policies: comma-separated names from gogc100, gogc50, gc-after-release,
    /// memlimit90, gogc-off-memlimit90, memlimit95, watchdog-watermarks, watchdog-adaptive
    /// (default: all, in that order; for a command, those its runtime can take from its
    /// environment), or a TOML file of [[policy]] tables.
    #[arg(long, value_name = "LIST|FILE")]
    pub policies: Option<String>,
    /// Runs per policy (compare) or at each point near a boundary (threshold), each in a fresh
    /// group. Default: compare 1 for a scenario and 3 for a command; threshold 3.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: Option<u32>,
    /// Write the report to FILE instead of stdout (as `time -o` and `perf stat -o` do).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub program: ProgramArgs,
}

/// Your own program as the subject of `compare` and `threshold`.
#[derive(clap::Args, Clone)]
pub struct ProgramArgs {
    /// A command: start from PATH, HOME, LANG and TERM only instead of memspike's whole
    /// environment (the policy's variables and the runtime's trace are set either way).
    #[arg(long, requires = "command")]
    pub clean_env: bool,
    /// A command: show its stdout and stderr on memspike's stderr (default: neither; the end
    /// of its stderr is kept in the report).
    #[arg(long, requires = "command")]
    pub show_output: bool,
    /// A command: its runtime, whose policies it takes and whose collection log is read:
    /// `auto` (the JVM for `java`, Node.js for `node`, else Go), `go`, `jvm`, `node`.
    #[arg(long, value_enum, default_value_t = TraceChoice::Auto, requires = "command")]
    pub trace: TraceChoice,
    /// Your program and its arguments, after `--`: it runs under each policy, given through
    /// its runtime's environment (Go: GOGC, GOMEMLIMIT, GODEBUG; the JVM: JAVA_TOOL_OPTIONS;
    /// Node.js: NODE_OPTIONS), instead of the simulated one.
    #[arg(last = true, value_name = "CMD",
          conflicts_with_all = ["scenario", "spike", "chunk", "runtime", "alloc_rate", "gomaxprocs", "calibrate", "user"])]
    pub command: Vec<String>,
}

/// `memspike compare`.
#[derive(clap::Args)]
pub struct CompareArgs {
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    #[command(flatten)]
    pub runs: RunsArgs,
    /// Run inside the memory cgroup memspike already lives in (a container's, a pod's, a
    /// delegated slice's) under its limit, the smallest up the path, one policy after the other,
    /// instead of a fresh group each; memspike itself shares that limit.
    #[arg(long, conflicts_with = "limit")]
    pub inherit: bool,
    /// Print the comparison as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub report: ReportDir,
}

/// `memspike threshold`.
#[derive(clap::Args)]
pub struct ThresholdArgs {
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    #[command(flatten)]
    pub runs: RunsArgs,
    /// What to vary: the seed's spike fraction (the largest that survives), the group's limit
    /// (the smallest), GOGC (the largest) or GOMEMLIMIT as a share of the limit (the highest;
    /// for a command also the lowest whose cost stays bearable). Default: spike for a
    /// scenario, limit for a command.
    #[arg(long)]
    pub knob: Option<Knob>,
    /// Where to search, LO,HI (spike: fractions, default 0.01,0.99; limit: sizes, default
    /// half to twice --limit; gogc: 1,10000; gomemlimit: shares, default 0.5,1).
    #[arg(long, value_name = "LO,HI")]
    pub range: Option<String>,
    /// --knob gomemlimit on a command: a run costs too much above this GC CPU share (default
    /// 50%, where Go's GC CPU limiter takes over), or at twice the wall time of runs without a
    /// memory limit.
    #[arg(long, value_name = "PCT", value_parser = parse_share, requires = "command")]
    pub gc_cpu_max: Option<f64>,
    /// Print the thresholds as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub report: ReportDir,
}

/// `memspike sweep`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SweepArgs {
    #[command(subcommand)]
    pub merge: Option<SweepCommand>,
    /// The plan: a TOML file (see examples/sweep.toml).
    #[arg(long, value_name = "FILE", required = true)]
    pub plan: Option<PathBuf>,
    /// Run every cell on this machine, each in its own group.
    #[arg(long, required_unless_present_any = ["index", "kubernetes"], conflicts_with_all = ["index", "kubernetes"])]
    pub local: bool,
    /// Print the plan as Kubernetes objects (a ConfigMap and an Indexed Job per limit) whose
    /// pods run this image; `kubectl apply -f` takes the output.
    #[arg(long, value_name = "IMAGE", conflicts_with = "index")]
    pub kubernetes: Option<String>,
    /// With --local: run at most N cells at once.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "local",
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: u32,
    /// Run cell I alone and print its row (what a Kubernetes pod does).
    #[arg(long, value_name = "I")]
    pub index: Option<usize>,
    /// Added to --index: a Job of one limit's cells passes its first cell's number here and
    /// its completion index to --index.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "index")]
    pub offset: usize,
    /// With --index: run the cell in the group memspike lives in, under its limit (a pod's),
    /// which must be the cell's; --local runs every cell so, each in a group it makes.
    #[arg(long, requires = "index")]
    pub inherit: bool,
    /// Do not attach the eBPF observer.
    #[arg(long)]
    pub no_trace: bool,
    /// The account the workers run as (never root); default: a private uid and gid.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Every cell simulates your program instead of the reference one: the report.json of
    /// `memspike exec --report DIR -- PROG` (with --kubernetes, its profile goes into the
    /// ConfigMap beside the plan).
    #[arg(long, value_name = "REPORT")]
    pub calibrate: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum SweepCommand {
    /// Join the rows of sweeps (JSON lines) into one table and report.
    Merge(MergeArgs),
}

#[derive(clap::Args)]
pub struct MergeArgs {
    /// Files of rows, as `memspike sweep` prints them (one JSON object per line).
    #[arg(required = true, value_name = "FILES")]
    pub files: Vec<PathBuf>,
    /// Print the merged report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub report: ReportDir,
    /// The plan the rows are of: the cells it has and no row has are named as missing (without
    /// it, only the cells before the last row's can be).
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Exit with status 3 (after the report) unless every cell has its row and every line is
    /// one; without it, missing cells and unreadable lines are named and the exit is 0.
    #[arg(long)]
    pub complete: bool,
}

/// `memspike exec`: a real program under the same microscope.
#[derive(clap::Args)]
pub struct ExecArgs {
    /// The cgroup's memory limit: 33554432, 32MiB, 32M, 1.5GiB (M = MiB).
    #[arg(long, default_value = "32MiB", value_parser = parse_size)]
    pub limit: u64,
    /// Print the report as JSON. Without -o, the command's stdout then goes to stderr, so that
    /// stdout holds the report alone.
    #[arg(long)]
    pub json: bool,
    /// Write the report to FILE instead of stdout (as `time -o` and `perf stat -o` do); the
    /// command's stdout stays its own.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub report: ReportDir,
    /// Exit with status 3 unless this is the outcome (`exit`: any end but an OOM kill).
    #[arg(long)]
    pub expect: Option<Expect>,
    /// Do not attach the eBPF observer.
    #[arg(long)]
    pub no_trace: bool,
    /// Whose collection log to turn on and read: `auto` (the JVM for a `java` launcher,
    /// Node.js for `node`, else Go's gctrace), `go`, `jvm` (unified logging through
    /// JAVA_TOOL_OPTIONS), `node` (V8's --trace-gc through NODE_OPTIONS), or `none`.
    #[arg(long, value_enum, default_value_t = TraceChoice::Auto)]
    pub trace: TraceChoice,
    /// Start the command from PATH, HOME, LANG and TERM only, instead of memspike's whole
    /// environment (the runtime's trace setting is added either way).
    #[arg(long)]
    pub clean_env: bool,
    /// Accepted for old scripts: the command now gets memspike's whole environment by default.
    #[arg(long, hide = true, conflicts_with = "clean_env")]
    pub inherit_env: bool,
    /// Run inside the memory cgroup memspike already lives in (a container's, a pod's, a
    /// delegated slice's) under its limit, the smallest up the path, instead of creating a
    /// group; memspike itself shares that limit.
    #[arg(long, conflicts_with = "limit")]
    pub inherit: bool,

    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

impl ScenarioArgs {
    /// The experiment these flags describe under `policy`, with `limit` in place of `--limit`
    /// when given (`--inherit`'s); the scenario is loaded (a name or a file).
    pub fn experiment(&self, policy: Policy, limit: Option<u64>) -> Result<Experiment, UsageError> {
        let seed = self.scenario == "seed";
        let scenario = if seed {
            builtin::seed(self.spike.unwrap_or(builtin::SEED_SPIKE), self.chunk)
        } else {
            if self.spike.is_some() || self.chunk.is_some() {
                return Err(UsageError::Scenario {
                    name: self.scenario.clone(),
                    why: "--spike and --chunk shape the seed scenario only; edit the scenario's steps instead (--print shows them)".into(),
                });
            }
            Scenario::load(&self.scenario)?
        };
        let defaults = Experiment::seed(limit.unwrap_or(self.limit));
        let profile = self.profile()?;
        let p = profile.as_ref();
        Ok(Experiment {
            scenario,
            spike: seed.then(|| self.spike.unwrap_or(builtin::SEED_SPIKE)),
            policy: policy.checked().map_err(UsageError::Policy)?,
            runtime: self
                .runtime
                .or(p.map(|p| p.release))
                .unwrap_or(defaults.runtime),
            alloc_rate: self
                .alloc_rate
                .or(p.and_then(|p| p.alloc_rate).filter(|r| *r >= 1 << 20))
                .unwrap_or(defaults.alloc_rate),
            gomaxprocs: self
                .gomaxprocs
                .or(p.map(|p| p.gomaxprocs).filter(|n| *n >= 1))
                .unwrap_or(defaults.gomaxprocs),
            profile,
            ..defaults
        })
    }

    /// `--calibrate`'s runtime profile, read and checked.
    fn profile(&self) -> Result<Option<Profile>, UsageError> {
        self.calibrate.as_deref().map(calibration).transpose()
    }
}

impl ExperimentArgs {
    /// The experiment, `--pause-at` included; `limit` as for [`ScenarioArgs::experiment`].
    pub fn experiment(&self, limit: Option<u64>) -> Result<Experiment, UsageError> {
        Ok(Experiment {
            pause_at: self.pause_at.clone(),
            ..self.scenario.experiment(self.policy.clone(), limit)?
        })
    }
}

/// The runtime profile in `--calibrate PATH` (an exec report), read and checked.
pub fn calibration(path: &std::path::Path) -> Result<Profile, UsageError> {
    let (text, shown) = calibration_text(path)?;
    memspike_report::exec::read_profile(&text, &shown).map_err(UsageError::Calibration)
}

/// `--calibrate PATH` checked as [`calibration`] does, trimmed to what it reads (for a sweep's
/// pods).
pub fn calibration_only(path: &std::path::Path) -> Result<String, UsageError> {
    let (text, shown) = calibration_text(path)?;
    memspike_report::exec::calibration_only(&text, &shown).map_err(UsageError::Calibration)
}

fn calibration_text(path: &std::path::Path) -> Result<(String, String), UsageError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError::Calibration(format!("--calibrate {shown}: {e}")))?;
    Ok((text, shown))
}

fn parse_size(s: &str) -> Result<u64, String> {
    size::parse(s).map_err(|e| e.to_string())
}

fn parse_allowed_host(s: &str) -> Result<String, String> {
    AllowedHost::parse(s)?;
    Ok(s.to_owned())
}

/// `--alloc-rate`: at least 1 MiB per second (a program slower than that is not what this
/// studies, and its simulated time would run long).
fn parse_alloc_rate(s: &str) -> Result<u64, String> {
    let rate = parse_size(s)?;
    if rate < 1 << 20 {
        return Err(format!(
            "{s:?} per second is below 1MiB: give a faster rate"
        ));
    }
    Ok(rate)
}

/// `--gc-cpu-max`: a share, `50%` or `0.5`, in (0, 1].
fn parse_share(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let share = match t.strip_suffix('%') {
        Some(pct) => pct.trim().parse::<f64>().map(|p| p / 100.0),
        None => t.parse::<f64>(),
    };
    share
        .ok()
        .filter(|v| *v > 0.0 && *v <= 1.0)
        .ok_or_else(|| format!("{s:?} is not a share: give a percentage (50%) or a fraction (0.5) above 0 and at most 1"))
}

fn parse_spike(s: &str) -> Result<f64, String> {
    s.parse::<f64>().map_err(|_| {
        format!("{s:?} is not a number: give a fraction between 0 and 1 (the seed's is 0.9)")
    })
}

/// Parses the command line. A mistake is one line on stderr and exit 2 (clap's own layout,
/// with its usage and hints, is kept for `--help` and `--version`).
pub fn parse() -> Result<Command, ExitCode> {
    match Cli::try_parse() {
        Ok(Cli {
            command: Some(command),
        }) => Ok(command),
        Ok(Cli { command: None }) => {
            eprintln!(
                "memspike: error: no command given; run `memspike run` (e.g. `memspike run --limit 32MiB`) or `memspike exec -- CMD`, or see `memspike --help`"
            );
            Err(ExitCode::from(2))
        }
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            Err(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!(
                "memspike: error: {} (see `{}`)",
                one_line(&e.to_string()),
                help_for(std::env::args().nth(1).as_deref())
            );
            Err(ExitCode::from(2))
        }
    }
}

/// clap's first line, with the indented lines that complete it ("the following required
/// arguments were not provided:" and the arguments).
fn one_line(text: &str) -> String {
    let mut lines = text.lines();
    let line = lines
        .next()
        .unwrap_or("invalid command line")
        .trim_start_matches("error: ")
        .to_owned();
    if !line.ends_with(':') {
        return line;
    }
    let more: Vec<&str> = lines
        .take_while(|l| l.starts_with(' '))
        .map(str::trim)
        .collect();
    format!("{line} {}", more.join(", "))
}

/// Where to look for help after a mistake in subcommand `sub`.
fn help_for(sub: Option<&str>) -> String {
    match sub {
        Some(sub @ ("run" | "exec" | "compare" | "threshold" | "sweep" | "scenarios")) => {
            format!("memspike {sub} --help")
        }
        _ => "memspike --help".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use memspike_model::{pacer::Gogc, size::Amount, watchdog::Driver};

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("memspike").chain(args.iter().copied()))
            .map(|cli| cli.command.expect("a subcommand"))
    }

    fn run(args: &[&str]) -> Box<RunArgs> {
        match parse(args) {
            Ok(Command::Run(run)) => run,
            Ok(_) => panic!("{args:?}: not run"),
            Err(e) => panic!("{args:?}: {e}"),
        }
    }

    #[test]
    fn the_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    /// `docs/reference/cli.md` is these definitions; after a change to a flag,
    /// `UPDATE_EXPECT=1 cargo test -p memspike --bin memspike reference` rewrites it.
    #[test]
    fn the_cli_reference_is_the_definitions() {
        expect_test::expect_file!["../../docs/reference/cli.md"]
            .assert_eq(&clap_markdown::help_markdown::<Cli>());
    }

    /// The policy's flags are the policy's own fields: what they set is what a policies file
    /// with the same keys sets.
    #[test]
    fn policy_flags_set_the_policy_a_file_would() {
        let r = run(&[
            "run",
            "--gogc",
            "off",
            "--memory-limit",
            "90%",
            "--gc",
            "--watchdog",
            "watermarks:0.5,0.75,0.9",
            "--watchdog-driver",
            "cgroup",
        ]);
        let e = r.experiment.experiment(None).unwrap();
        let file = memspike_model::policy_set::from_toml(
            "[[policy]]\nname = \"p\"\ngogc = \"off\"\nmemory_limit = \"90%\"\ngc_after_release = true\nwatchdog = \"watermarks:0.5,0.75,0.9\"\nwatchdog_driver = \"cgroup\"\n",
            "p.toml",
        )
        .unwrap();
        assert_eq!(
            Policy {
                name: Some("p".into()),
                ..e.policy.clone()
            },
            file[0]
        );
        assert_eq!(e.policy.gogc, Gogc::Off);
        assert_eq!(e.policy.memory_limit, Some(Amount::Percent(90.0)));
        assert_eq!(e.policy.watchdog_driver, Some(Driver::Cgroup));
        let defaults = run(&["run"]).experiment.experiment(None).unwrap();
        assert_eq!(defaults.policy, Policy::default());
    }

    #[test]
    fn watchdog_settings_need_a_watchdog_and_interactive_mode_no_script() {
        for args in [
            &["run", "--watchdog-driver", "cgroup"][..],
            &[
                "run",
                "--watchdog-interval",
                "10ms",
                "--watchdog",
                "adaptive:0.5",
            ],
            &["run", "--interactive", "--gc"],
            &["run", "--memory-limit", "0"],
        ] {
            assert!(parse(args).is_err(), "{args:?} parsed");
        }
    }

    #[test]
    fn an_inherited_limit_replaces_the_flag() {
        let r = run(&["run", "--limit", "64MiB"]);
        assert_eq!(r.experiment.experiment(None).unwrap().limit, 64 << 20);
        assert_eq!(
            r.experiment.experiment(Some(48 << 20)).unwrap().limit,
            48 << 20
        );
    }

    #[test]
    fn a_mistake_is_one_line_that_says_where_help_is() {
        let e = parse(&["exec"]).err().expect("exec needs a command");
        let line = one_line(&e.to_string());
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("CMD"), "{line}");
        assert_eq!(help_for(Some("exec")), "memspike exec --help");
        assert_eq!(help_for(Some("nonsense")), "memspike --help");
    }
}
