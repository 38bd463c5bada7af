//! The `memspike` command: argument parsing, logging and exit codes. Everything else lives in
//! the library.
//!
//! Exit codes, one rule each (README, "Exit codes"):
//! - 2: the command line or the machine cannot run the experiment; nothing was created;
//! - 130: a stop signal (SIGINT, SIGTERM, SIGHUP) arrived before memspike exited, in a
//!   self-directed run; the report still says what was observed (interactive mode ends this
//!   way normally, with 0);
//! - 1: an internal failure, or the worker failed for another reason than the limit;
//! - 3: `--expect` named another outcome;
//! - 0: otherwise.

use std::{
    io::{IsTerminal, Write},
    path::PathBuf,
    process::ExitCode,
    time::Duration,
};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use memspike_model::{
    experiment::Experiment,
    pacer::Gogc,
    policy::{self, Policy},
    policy_set::{self, NamedPolicy},
    release::Release,
    scenario::{Scenario, builtin},
    size,
    sweep::Plan,
    threshold::{Knob, Range},
    watchdog::{self, Watchdog},
};
use memspike_report::{
    self as report, Document,
    compare::CompareReport,
    exec::ExecReport,
    outcome::{Expect, Outcome},
    run::Report,
    sweep::{SweepReport, SweepRow},
    threshold::ThresholdReport,
};
use memspike_supervisor::{
    preflight::UsageError,
    signals::{self, Interrupts},
    supervisor::{self, Interactive, RunOptions, SupervisorError},
};
use memspike_worker::{
    privilege::RunAs,
    serve::AllowedHost,
    telemetry::{OomSummary, WorkerConfig},
    worker,
};

#[derive(Parser)]
#[command(
    name = "memspike",
    version,
    about = "Reproduce and explain a garbage-collected heap OOM-killed by a cgroup limit while most of it is garbage",
    after_help = "Creating groups needs write access to the cgroup tree; tracing needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN). Running as root gives both."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario in a fresh memory cgroup (or under this one's limit, --inherit) and
    /// report what happened.
    Run(Box<RunArgs>),
    /// Run a real program in a fresh memory cgroup (or under this one's limit, --inherit) and
    /// report what happened.
    Exec(ExecArgs),
    /// Run one scenario under several policies, each in a fresh group (or one after the other
    /// under this one's limit, --inherit), and compare them.
    Compare(Box<CompareArgs>),
    /// Find, per policy, the largest spike, the smallest limit or the largest GOGC that
    /// survives, by bisection over real runs.
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
struct ExperimentArgs {
    #[command(flatten)]
    scenario: ScenarioArgs,
    /// Print the scenario as TOML (a file to start from) and exit.
    #[arg(long)]
    print: bool,
    #[command(flatten)]
    policy: PolicyArgs,
    /// Stop the worker (SIGSTOP) before the first step with this name, to inspect its cgroup;
    /// `kill -CONT` goes on.
    #[arg(long, value_name = "STEP")]
    pause_at: Option<String>,
}

/// The limit, the allocation pattern and the runtime it runs on (everything but the policy).
#[derive(clap::Args, Clone)]
struct ScenarioArgs {
    /// The cgroup's memory limit: 33554432, 32MiB, 32M, 1.5GiB (M = MiB).
    #[arg(long, default_value = "32MiB", value_parser = parse_size)]
    limit: u64,
    /// The allocation pattern: a built-in scenario (`memspike scenarios`) or a TOML file.
    #[arg(long, default_value = "seed", value_name = "NAME|FILE")]
    scenario: String,
    /// The seed scenario: the fraction of the limit the spike fills (the seed's 0.9).
    #[arg(long, value_parser = parse_spike, allow_negative_numbers = true)]
    spike: Option<f64>,
    /// The seed scenario: allocate the remainder in pieces of this size (the seed allocates it
    /// whole); the collector may then run between them.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    chunk: Option<u64>,
    /// Whose rules the runtime follows where Go releases differ: go1.19 to go1.27.
    #[arg(long, default_value_t = Release::default(), value_name = "goX.Y")]
    runtime: Release,
    /// How fast the program allocates and writes, per simulated second (default: measured on
    /// the reference Go program).
    #[arg(long, value_name = "SIZE", value_parser = parse_alloc_rate)]
    alloc_rate: Option<u64>,
    /// GOMAXPROCS for the simulated runtime (the CPU limiter's size); default: this machine's
    /// CPUs.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    gomaxprocs: Option<u32>,
}

/// The runtime's memory policy: GOGC, the soft memory limit, collections the program forces,
/// a watchdog.
#[derive(clap::Args, Clone)]
struct PolicyArgs {
    /// GOGC for the simulated runtime: a percentage, or `off`.
    #[arg(long, default_value = "100", allow_negative_numbers = true)]
    gogc: Gogc,
    /// The soft memory limit (GOMEMLIMIT): a size, a percentage of --limit (90%), or `off`.
    #[arg(long, default_value = "off", value_name = "SIZE|PCT|off", value_parser = parse_memory_limit)]
    memory_limit: GoMemLimit,
    /// Run a collection right after every release step (the seed's -gc): the seed then survives.
    #[arg(long)]
    gc: bool,
    /// A watchdog beside the program (raulk/go-watchdog): watermarks:0.5,0.75,0.9 or
    /// adaptive:0.5.
    #[arg(long, value_name = "POLICY")]
    watchdog: Option<watchdog::Policy>,
    /// What drives the watchdog: the heap after each cycle (it adjusts GOGC), or the cgroup's
    /// usage, polled (it forces collections).
    #[arg(long, value_enum, default_value = "heap", requires = "watchdog")]
    watchdog_driver: WatchdogDriver,
    /// What the watchdog forces: runtime.GC or debug.FreeOSMemory.
    #[arg(long, value_enum, default_value = "gc", requires = "watchdog")]
    watchdog_force: WatchdogForce,
    /// How often the cgroup-driven watchdog polls, in simulated time (at least 100ms).
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = parse_interval, requires = "watchdog")]
    watchdog_interval: Duration,
}

/// `--memory-limit`: a limit, or none (`off`).
#[derive(Clone, Copy)]
struct GoMemLimit(Option<size::Amount>);

fn parse_memory_limit(s: &str) -> Result<GoMemLimit, String> {
    policy::parse_memory_limit(s).map(GoMemLimit)
}

#[derive(Clone, Copy, ValueEnum)]
enum WatchdogDriver {
    Heap,
    Cgroup,
}

#[derive(Clone, Copy, ValueEnum)]
enum WatchdogForce {
    Gc,
    FreeOsMemory,
}

/// Interactive mode: the seed's HTTP server on port 1112.
#[derive(clap::Args, Clone)]
struct InteractiveArgs {
    /// Keep a worker alive in the cgroup and drive its heap over HTTP (/add, /rel, /gc,
    /// /freeosmemory, /stats, /reset, /metrics, and a live page at /).
    #[arg(long, conflicts_with_all = ["scenario", "spike", "chunk", "gc", "pause_at", "expect", "report", "print"])]
    interactive: bool,
    /// Where to listen in interactive mode.
    #[arg(long, default_value = "0.0.0.0:1112", requires = "interactive")]
    listen: std::net::SocketAddr,
    /// After a worker dies, stop instead of starting a fresh one.
    #[arg(long, requires = "interactive")]
    no_restart: bool,
    /// Also accept requests that name the server NAME (any port) or NAME:PORT in Host, e.g.
    /// a DNS name of this machine; repeatable. By default only its address (and localhost).
    #[arg(long = "allow-host", value_name = "NAME[:PORT]", requires = "interactive",
          value_parser = parse_allowed_host)]
    allow_host: Vec<String>,
}

impl ScenarioArgs {
    /// The experiment these flags describe under `policy`; the scenario is loaded (a name or a
    /// file).
    fn experiment(&self, policy: Policy) -> Result<Experiment, UsageError> {
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
        let defaults = Experiment::seed(self.limit);
        Ok(Experiment {
            scenario,
            spike: seed.then(|| self.spike.unwrap_or(builtin::SEED_SPIKE)),
            policy,
            runtime: self.runtime,
            alloc_rate: self.alloc_rate.unwrap_or(defaults.alloc_rate),
            gomaxprocs: self.gomaxprocs.unwrap_or(defaults.gomaxprocs),
            ..defaults
        })
    }
}

impl PolicyArgs {
    fn policy(&self) -> Policy {
        let watchdog = self.watchdog.clone().map(|policy| Watchdog {
            driver: match self.watchdog_driver {
                WatchdogDriver::Heap => watchdog::Driver::Heap,
                WatchdogDriver::Cgroup => watchdog::Driver::Cgroup,
            },
            force: match self.watchdog_force {
                WatchdogForce::Gc => watchdog::Force::Gc,
                WatchdogForce::FreeOsMemory => watchdog::Force::FreeOsMemory,
            },
            interval: self.watchdog_interval,
            ..Watchdog::new(policy)
        });
        Policy {
            gogc: self.gogc,
            memory_limit: self.memory_limit.0,
            gc_after_release: self.gc,
            watchdog,
        }
    }
}

impl ExperimentArgs {
    fn experiment(&self) -> Result<Experiment, UsageError> {
        Ok(Experiment {
            pause_at: self.pause_at.clone(),
            ..self.scenario.experiment(self.policy.policy())?
        })
    }
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    experiment: ExperimentArgs,
    /// Print the report as JSON instead of text (in interactive mode: each OOM kill's report,
    /// one JSON object per line).
    #[arg(long)]
    json: bool,
    /// Also write the report as DIR/report.json.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// Exit with status 3 unless this is the outcome.
    #[arg(long)]
    expect: Option<Expect>,
    /// Do not attach the eBPF observer (the report says tracing is off).
    #[arg(long)]
    no_trace: bool,
    /// The account the worker runs as (never root). Default: a private uid and gid that no
    /// account and no other process uses.
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    /// Run inside the memory cgroup memspike already lives in (a container's, a pod's, a
    /// delegated slice's) under its limit, the smallest up the path, instead of creating a
    /// group; memspike itself shares that limit.
    #[arg(long, conflicts_with = "limit")]
    inherit: bool,
    #[command(flatten)]
    interactive: InteractiveArgs,
}

/// How the supervisor runs many experiments (`compare`, `threshold`).
#[derive(clap::Args)]
struct RunsArgs {
    /// Do not attach the eBPF observer.
    #[arg(long)]
    no_trace: bool,
    /// The account the workers run as (never root); default: a private uid and gid.
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    /// The policies: comma-separated names from gogc100, gogc50, gc-after-release,
    /// memlimit90, gogc-off-memlimit90, watchdog-watermarks, watchdog-adaptive (default: all,
    /// in that order), or a TOML file of [[policy]] tables.
    #[arg(long, value_name = "LIST|FILE")]
    policies: Option<String>,
}

/// `memspike compare`.
#[derive(clap::Args)]
struct CompareArgs {
    #[command(flatten)]
    scenario: ScenarioArgs,
    #[command(flatten)]
    runs: RunsArgs,
    /// Run inside the memory cgroup memspike already lives in (a container's, a pod's, a
    /// delegated slice's) under its limit, the smallest up the path, one policy after the other,
    /// instead of a fresh group each; memspike itself shares that limit.
    #[arg(long, conflicts_with = "limit")]
    inherit: bool,
    /// Print the comparison as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write the comparison into DIR: report.json, timeline.svg, report.html.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
}

/// `memspike threshold`.
#[derive(clap::Args)]
struct ThresholdArgs {
    #[command(flatten)]
    scenario: ScenarioArgs,
    #[command(flatten)]
    runs: RunsArgs,
    /// What to vary: the seed's spike fraction (the largest that survives), the group's limit
    /// (the smallest) or GOGC (the largest).
    #[arg(long, default_value = "spike")]
    knob: Knob,
    /// Where to search, LO,HI (spike: fractions, default 0.01,0.99; limit: sizes, default
    /// half to twice --limit; gogc: 1,10000).
    #[arg(long, value_name = "LO,HI")]
    range: Option<String>,
    /// Print the thresholds as JSON.
    #[arg(long)]
    json: bool,
}

/// `memspike sweep`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct SweepArgs {
    #[command(subcommand)]
    merge: Option<SweepCommand>,
    /// The plan: a TOML file (see examples/sweep.toml).
    #[arg(long, value_name = "FILE", required = true)]
    plan: Option<PathBuf>,
    /// Run every cell on this machine, each in its own group.
    #[arg(long, required_unless_present_any = ["index", "kubernetes"], conflicts_with_all = ["index", "kubernetes"])]
    local: bool,
    /// Print the plan as Kubernetes objects (a ConfigMap and an Indexed Job per limit) whose
    /// pods run this image; `kubectl apply -f` takes the output.
    #[arg(long, value_name = "IMAGE", conflicts_with = "index")]
    kubernetes: Option<String>,
    /// With --local: run at most N cells at once.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "local",
          value_parser = clap::value_parser!(u32).range(1..=64))]
    jobs: u32,
    /// Run cell I alone and print its row (what a Kubernetes pod does).
    #[arg(long, value_name = "I")]
    index: Option<usize>,
    /// Added to --index: a Job of one limit's cells passes its first cell's number here and
    /// its completion index to --index.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "index")]
    offset: usize,
    /// With --index: run the cell in the group memspike lives in, under its limit (a pod's),
    /// which must be the cell's; --local runs every cell so, each in a group it makes.
    #[arg(long, requires = "index")]
    inherit: bool,
    /// Do not attach the eBPF observer.
    #[arg(long)]
    no_trace: bool,
    /// The account the workers run as (never root); default: a private uid and gid.
    #[arg(long, value_name = "USER")]
    user: Option<String>,
}

#[derive(Subcommand)]
enum SweepCommand {
    /// Join the rows of sweeps (JSON lines) into one table and report.
    Merge(MergeArgs),
}

#[derive(clap::Args)]
struct MergeArgs {
    /// Files of rows, as `memspike sweep` prints them (one JSON object per line).
    #[arg(required = true, value_name = "FILES")]
    files: Vec<PathBuf>,
    /// Print the merged report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write it into DIR: report.json, timeline.svg, report.html.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
}

/// `memspike exec`: a real program under the same microscope.
#[derive(clap::Args)]
struct ExecArgs {
    /// The cgroup's memory limit: 33554432, 32MiB, 32M, 1.5GiB (M = MiB).
    #[arg(long, default_value = "32MiB", value_parser = parse_size)]
    limit: u64,
    /// Print the report as JSON (after the command's own output).
    #[arg(long)]
    json: bool,
    /// Also write the report as DIR/report.json.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// Exit with status 3 unless this is the outcome (`exit`: any end but an OOM kill).
    #[arg(long)]
    expect: Option<Expect>,
    /// Do not attach the eBPF observer.
    #[arg(long)]
    no_trace: bool,
    /// Give the command memspike's whole environment (by default: PATH, HOME, LANG, TERM and
    /// the Go runtime's GOGC, GOMEMLIMIT, GOMAXPROCS, GODEBUG, GOTRACEBACK).
    #[arg(long)]
    inherit_env: bool,
    /// Run inside the memory cgroup memspike already lives in (a container's, a pod's, a
    /// delegated slice's) under its limit, the smallest up the path, instead of creating a
    /// group; memspike itself shares that limit.
    #[arg(long, conflicts_with = "limit")]
    inherit: bool,

    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
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

/// `--watchdog-interval`: at least [`policy_set::MIN_WATCHDOG_INTERVAL`] (the rule a policies
/// file follows too).
fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = memspike_model::duration::parse(s)?;
    let min = policy_set::MIN_WATCHDOG_INTERVAL;
    if d < min {
        return Err(format!(
            "{s:?} is shorter than {}: poll less often",
            memspike_model::duration::format(min)
        ));
    }
    Ok(d)
}

fn parse_spike(s: &str) -> Result<f64, String> {
    s.parse::<f64>().map_err(|_| {
        format!("{s:?} is not a number: give a fraction between 0 and 1 (the seed's is 0.9)")
    })
}

/// Parses the command line. A mistake is one line on stderr and exit 2 (clap's own layout,
/// with its usage and hints, is kept for `--help` and `--version`).
fn parse_cli() -> Result<Command, ExitCode> {
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
            // clap's first line, with the indented lines that complete it ("the following
            // required arguments were not provided:" and the arguments).
            let text = e.to_string();
            let mut lines = text.lines();
            let mut line = lines
                .next()
                .unwrap_or("invalid command line")
                .trim_start_matches("error: ")
                .to_owned();
            if line.ends_with(':') {
                let more: Vec<&str> = lines
                    .take_while(|l| l.starts_with(' '))
                    .map(str::trim)
                    .collect();
                line = format!("{line} {}", more.join(", "));
            }
            let help = match std::env::args().nth(1).as_deref() {
                Some(sub @ ("run" | "exec" | "compare" | "threshold" | "sweep" | "scenarios")) => {
                    format!("memspike {sub} --help")
                }
                _ => "memspike --help".to_owned(),
            };
            eprintln!("memspike: error: {line} (see `{help}`)");
            Err(ExitCode::from(2))
        }
    }
}

fn main() -> ExitCode {
    // Before anything else: a stop signal that arrives while memspike starts up waits for the
    // supervisor's watcher (or, in a worker, is delivered once unblocked below).
    if let Err(e) = signals::block() {
        eprintln!("memspike: error: cannot block stop signals: {e}");
        return ExitCode::FAILURE;
    }
    let command = match parse_cli() {
        Ok(command) => command,
        Err(code) => return code,
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MEMSPIKE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match command {
        Command::Scenarios => {
            let width = builtin::ALL.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
            for (name, line) in builtin::ALL {
                println!("{name:width$}  {line}");
            }
            ExitCode::SUCCESS
        }
        Command::Worker => {
            // The supervisor unblocked them before exec; a worker takes them as any process.
            if let Err(errno) = signals::unblock() {
                eprintln!(
                    "memspike worker: cannot unblock stop signals: {}",
                    std::io::Error::from_raw_os_error(errno)
                );
                return ExitCode::FAILURE;
            }
            match worker::run() {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("memspike worker: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Exec(args) => supervised(true, |interrupts| exec(&args, interrupts)),
        Command::Compare(args) => supervised(true, |interrupts| compare(&args, interrupts)),
        Command::Threshold(args) => supervised(true, |interrupts| threshold(&args, interrupts)),
        Command::Sweep(args) => supervised(true, |interrupts| sweep(&args, interrupts)),
        // One rule, checked last: a stop signal that arrived at any time before the end makes a
        // self-directed run exit 130 (an interactive session ends that way normally).
        Command::Run(args) => {
            let self_directed = !args.interactive.interactive;
            supervised(self_directed, |interrupts| run(&args, interrupts))
        }
    }
}

/// Prints a report (JSON, or text) on stdout and, with `--report DIR`, writes every form of it
/// there (report.json, timeline.svg, report.html).
fn print_report(
    report: &impl Document,
    json: bool,
    dir: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", report.json())?;
    } else {
        write!(out, "{}", report.text())?;
    }
    if let Some(dir) = dir {
        let written = report::write_dir(report, dir)
            .with_context(|| format!("writing the report into {}", dir.display()))?;
        tracing::info!("report written to {}", dir.display());
        tracing::debug!("wrote {written:?}");
    }
    Ok(())
}

/// Runs a supervising command: installs the stop-signal watcher (before any other thread
/// exists, so that every thread inherits the signals blocked since the start of `main`), maps
/// an error to its exit code, and exits 130 after a stop signal when `interrupted_exit`.
fn supervised(
    interrupted_exit: bool,
    body: impl FnOnce(&Interrupts) -> anyhow::Result<ExitCode>,
) -> ExitCode {
    let interrupts = match Interrupts::install() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("memspike: error: cannot watch for stop signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match body(&interrupts) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("memspike: error: {e:#}");
            e.downcast_ref::<SupervisorError>()
                .map_or(ExitCode::FAILURE, |e| ExitCode::from(e.exit_code()))
        }
    };
    match interrupts.received() {
        Some(_) if interrupted_exit => ExitCode::from(signals::INTERRUPTED_EXIT),
        _ => code,
    }
}

fn exec(args: &ExecArgs, interrupts: &Interrupts) -> anyhow::Result<ExitCode> {
    let inherit = args.inherit.then(supervisor::inherited_limit).transpose()?;
    let config = memspike_supervisor::exec::ExecConfig {
        limit: inherit.as_ref().map_or(args.limit, |l| l.limit),
        inherit,
        command: args.command.clone(),
        inherit_env: args.inherit_env,
    };
    let facts = memspike_supervisor::exec::run(
        &config,
        !args.no_trace,
        args.report.as_deref(),
        interrupts,
    )?;
    let report = ExecReport::build(facts);
    print_report(&report, args.json, args.report.as_deref())?;
    Ok(expected(args.expect, report.outcome))
}

/// Exit 3 when `--expect` named another outcome than `got`, 0 otherwise.
fn expected(expect: Option<Expect>, got: Outcome) -> ExitCode {
    match expect {
        Some(want) if !want.accepts(got) => {
            eprintln!("memspike: expected another outcome, observed {got:?}");
            ExitCode::from(3)
        }
        _ => ExitCode::SUCCESS,
    }
}

impl RunsArgs {
    /// The policies asked for (all the built-in ones by default).
    fn policies(&self) -> Result<Vec<NamedPolicy>, SupervisorError> {
        match &self.policies {
            None => Ok(policy_set::defaults()),
            Some(spec) => policy_set::load(spec)
                .map_err(|e| SupervisorError::Settings(UsageError::Policies(e.to_string()))),
        }
    }

    /// The worker's configuration for `experiment`, run as `--user`.
    fn config(&self, experiment: Experiment) -> Result<WorkerConfig, SupervisorError> {
        let run_as = RunAs::resolve(self.user.as_deref())
            .map_err(|e| SupervisorError::Settings(UsageError::from(e)))?;
        Ok(WorkerConfig {
            experiment,
            interactive: false,
            run_as,
            allowed_hosts: Vec::new(),
        })
    }

    fn options(&self, report_dir: Option<PathBuf>) -> RunOptions {
        RunOptions {
            trace: !self.no_trace,
            interactive: None,
            report_dir,
            inherit: None,
        }
    }
}

fn compare(args: &CompareArgs, interrupts: &Interrupts) -> anyhow::Result<ExitCode> {
    let policies = args.runs.policies()?;
    let inherit = args.inherit.then(supervisor::inherited_limit).transpose()?;
    let experiment = inherited(&args.scenario, inherit.as_ref())
        .experiment(Policy::default())
        .map_err(SupervisorError::Settings)?;
    let config = args.runs.config(experiment)?;
    let options = RunOptions {
        inherit,
        ..args.runs.options(args.report.clone())
    };
    let facts = memspike_supervisor::compare::compare(&config, &policies, &options, interrupts)?;
    let report = CompareReport::build(facts);
    print_report(&report, args.json, args.report.as_deref())?;
    Ok(ExitCode::SUCCESS)
}

fn threshold(args: &ThresholdArgs, interrupts: &Interrupts) -> anyhow::Result<ExitCode> {
    let policies = args.runs.policies()?;
    let experiment = args
        .scenario
        .experiment(Policy::default())
        .map_err(SupervisorError::Settings)?;
    let range = search_range(args.knob, args.range.as_deref(), experiment.limit)
        .map_err(|e| SupervisorError::Usage(format!("--range: {e}")))?;
    let base = memspike_supervisor::compare::Base {
        config: args.runs.config(experiment)?,
        seed_chunk: args.scenario.chunk,
    };
    let options = args.runs.options(None);
    let facts = memspike_supervisor::compare::threshold(
        &base, &policies, args.knob, &range, &options, interrupts,
    )?;
    print_report(&ThresholdReport::build(facts), args.json, None)?;
    Ok(ExitCode::SUCCESS)
}

fn sweep(args: &SweepArgs, interrupts: &Interrupts) -> anyhow::Result<ExitCode> {
    if let Some(SweepCommand::Merge(m)) = &args.merge {
        return merge(m);
    }
    let usage = |e: String| SupervisorError::Usage(e);
    let path = args
        .plan
        .as_deref()
        .ok_or_else(|| usage("--plan FILE is required".into()))?;
    let plan = Plan::load(path).map_err(|e| usage(e.to_string()))?;
    if let Some(image) = &args.kubernetes {
        let text = std::fs::read_to_string(path)?;
        let list = memspike_supervisor::sweep::kubernetes(&plan, &text, image, !args.no_trace);
        writeln!(
            std::io::stdout().lock(),
            "{}",
            serde_json::to_string_pretty(&list)?
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.local {
        let mut extra = Vec::new();
        if args.no_trace {
            extra.push("--no-trace".to_owned());
        }
        if let Some(user) = &args.user {
            extra.extend(["--user".to_owned(), user.clone()]);
        }
        tracing::info!(
            "plan {}: {} cells, at most {} at once",
            plan.name,
            plan.len(),
            args.jobs
        );
        let (lines, failed) = memspike_supervisor::sweep::run_local(
            path,
            &plan,
            args.jobs as usize,
            &extra,
            interrupts,
        )?;
        let mut out = std::io::stdout().lock();
        for line in &lines {
            writeln!(out, "{line}")?;
        }
        for f in &failed {
            eprintln!("memspike: error: {f}");
        }
        return Ok(if failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let index = args.index.unwrap_or(0) + args.offset;
    let run_as = RunAs::resolve(args.user.as_deref())
        .map_err(|e| SupervisorError::Settings(UsageError::from(e)))?;
    let options = RunOptions {
        trace: !args.no_trace,
        interactive: None,
        report_dir: None,
        inherit: args.inherit.then(supervisor::inherited_limit).transpose()?,
    };
    let facts = memspike_supervisor::sweep::run_cell(&plan, index, run_as, &options, interrupts)?;
    let row = SweepRow::build(facts);
    writeln!(std::io::stdout().lock(), "{}", serde_json::to_string(&row)?)?;
    Ok(ExitCode::SUCCESS)
}

/// `sweep merge`: the rows of the files, one plan, each cell once.
fn merge(args: &MergeArgs) -> anyhow::Result<ExitCode> {
    let mut rows = Vec::new();
    for file in &args.files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| SupervisorError::Usage(format!("{}: {e}", file.display())))?;
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let row: SweepRow = serde_json::from_str(line).map_err(|e| {
                SupervisorError::Usage(format!(
                    "{}:{}: not a row of `memspike sweep`: {e}",
                    file.display(),
                    n + 1
                ))
            })?;
            rows.push(row);
        }
    }
    let report = SweepReport::merge(rows).map_err(|e| SupervisorError::Usage(e.to_string()))?;
    print_report(&report, args.json, args.report.as_deref())?;
    Ok(ExitCode::SUCCESS)
}

/// `--range LO,HI` for `knob` (sizes for the limit), or the knob's default range (for the
/// limit: half to twice `limit`).
fn search_range(knob: Knob, spec: Option<&str>, limit: u64) -> Result<Range, String> {
    let Some(spec) = spec else {
        return match knob.default_range() {
            Some(r) => Ok(r),
            None => {
                Range::new(knob, (limit / 2) as f64, (limit * 2) as f64).map_err(|e| e.to_string())
            }
        };
    };
    let (lo, hi) = spec
        .split_once(',')
        .ok_or_else(|| format!("{spec:?} is not LO,HI"))?;
    let value = |v: &str| -> Result<f64, String> {
        let v = v.trim();
        match knob {
            Knob::Limit => parse_size(v).map(|b| b as f64),
            _ => v
                .parse::<f64>()
                .map_err(|_| format!("{v:?} is not a number")),
        }
    };
    Range::new(knob, value(lo)?, value(hi)?).map_err(|e| e.to_string())
}

/// `scenario` with `--inherit`'s limit in place of `--limit`.
fn inherited(
    scenario: &ScenarioArgs,
    inherit: Option<&memspike_cgroup::EffectiveLimit>,
) -> ScenarioArgs {
    ScenarioArgs {
        limit: inherit.map_or(scenario.limit, |l| l.limit),
        ..scenario.clone()
    }
}

fn run(args: &RunArgs, interrupts: &Interrupts) -> anyhow::Result<ExitCode> {
    let i = &args.interactive;
    if args.experiment.print {
        let experiment = args
            .experiment
            .experiment()
            .map_err(SupervisorError::Settings)?;
        print!("{}", experiment.scenario.to_toml());
        return Ok(ExitCode::SUCCESS);
    }
    let inherit = args.inherit.then(supervisor::inherited_limit).transpose()?;
    let experiment = ExperimentArgs {
        scenario: inherited(&args.experiment.scenario, inherit.as_ref()),
        ..args.experiment.clone()
    }
    .experiment()
    .map_err(SupervisorError::Settings)?;
    let run_as = RunAs::resolve(args.user.as_deref())
        .map_err(|e| SupervisorError::Settings(UsageError::from(e)))?;
    let config = WorkerConfig {
        experiment,
        interactive: i.interactive,
        run_as,
        allowed_hosts: i.allow_host.clone(),
    };
    let options = RunOptions {
        trace: !args.no_trace,
        interactive: i.interactive.then_some(Interactive {
            listen: i.listen,
            restart: !i.no_restart,
        }),
        report_dir: args.report.clone(),
        inherit,
    };
    if i.interactive {
        let json = args.json;
        let restarts = supervisor::run_interactive(&config, &options, interrupts, |facts| {
            let report = Report::build(facts);
            let mut out = std::io::stdout().lock();
            let _ = match serde_json::to_string(&report) {
                Ok(line) if json => writeln!(out, "{line}"),
                _ => write!(out, "{}", report.text()),
            };
            let _ = out.flush();
            OomSummary {
                worker_pid: report.worker.pid,
                died_in: report.died_in.clone(),
                needed_bytes: report.needed_bytes,
                garbage_bytes: report.garbage_at_end_bytes,
                verdict: report.verdict,
            }
        })?;
        tracing::info!("stopped after {restarts} restart(s)");
        return Ok(ExitCode::SUCCESS);
    }
    let facts = supervisor::run(&config, &options, interrupts)?;
    let report = Report::build(facts);
    print_report(&report, args.json, args.report.as_deref())?;
    Ok(match report.outcome {
        Outcome::Error => ExitCode::from(1),
        got => expected(args.expect, got),
    })
}
