//! One function per subcommand: from the parsed flags to the supervisor's facts, from the facts
//! to a report ([`memspike_report`]), and the report to stdout (and `--report DIR`). Exit codes
//! are decided here and in `main`.

use std::{io::Write, path::Path, process::ExitCode};

use anyhow::Context;
use memspike_cgroup::EffectiveLimit;
use memspike_model::{
    experiment::Experiment,
    policy::Policy,
    policy_set,
    scenario::builtin,
    sweep::Plan,
    threshold::{Knob, REPEATS, Range},
};
use memspike_report::{
    Document,
    compare::CompareReport,
    exec::ExecReport,
    outcome::{Expect, Outcome},
    run::Report,
    sweep::{Planned, SweepReport, SweepRow},
    threshold::ThresholdReport,
};
use memspike_supervisor::{
    compare::{self, Base, CommandBase, CommandSearch},
    exec::{self, ExecConfig, Output},
    preflight::{self, UsageError},
    signals::Interrupts,
    supervisor::{self, Interactive, RunOptions, SupervisorError},
    sweep,
};
use memspike_worker::{
    privilege::RunAs,
    telemetry::{OomSummary, WorkerConfig},
};

use crate::cli::{
    CompareArgs, ExecArgs, MergeArgs, RunArgs, RunsArgs, SweepArgs, SweepCommand, ThresholdArgs,
};

/// `memspike scenarios`.
pub fn scenarios() -> ExitCode {
    let width = builtin::ALL.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, line) in builtin::ALL {
        println!("{name:width$}  {line}");
    }
    ExitCode::SUCCESS
}

/// `memspike run`.
pub fn run(args: &RunArgs, interrupts: &Interrupts) -> anyhow::Result<ExitCode> {
    let i = &args.interactive;
    if args.experiment.print {
        let experiment = args.experiment.experiment(None).map_err(settings)?;
        print!("{}", experiment.scenario.to_toml());
        return Ok(ExitCode::SUCCESS);
    }
    let inherit = inherited(args.inherit)?;
    let experiment = args
        .experiment
        .experiment(inherit.as_ref().map(|l| l.limit))
        .map_err(settings)?;
    let config = WorkerConfig {
        experiment,
        interactive: i.interactive,
        run_as: run_as(args.user.as_deref())?,
        allowed_hosts: i.allow_host.clone(),
    };
    let options = RunOptions {
        trace: !args.no_trace,
        interactive: i.interactive.then_some(Interactive {
            listen: i.listen,
            restart: !i.no_restart,
        }),
        report_dir: args.report.dir.clone(),
        inherit,
    };
    if i.interactive {
        let restarts = supervisor::run_interactive(&config, &options, interrupts, |facts| {
            let report = Report::build(facts);
            let mut out = std::io::stdout().lock();
            let _ = if args.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string(&report).unwrap_or_default()
                )
            } else {
                write!(out, "{}", report.text())
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
    record("run", &facts);
    let report = Report::build(facts);
    print_report(&report, args.json, None, args.report.dir.as_deref())?;
    Ok(match report.outcome {
        Outcome::Error => ExitCode::from(1),
        got => expected(args.expect, got),
    })
}

/// `memspike exec`.
pub fn exec(args: &ExecArgs, interrupts: &Interrupts) -> anyhow::Result<ExitCode> {
    let inherit = inherited(args.inherit)?;
    let config = ExecConfig {
        limit: inherit.as_ref().map_or(args.limit, |l| l.limit),
        inherit,
        command: args.command.clone(),
        clean_env: args.clean_env,
        policy: None,
        // JSON on stdout: the command's own output goes to stderr, so stdout parses.
        output: if args.json && args.output.is_none() {
            Output::Stderr
        } else {
            Output::Own
        },
        trace: args.trace,
    };
    let facts = exec::run(
        &config,
        !args.no_trace,
        args.report.dir.as_deref(),
        interrupts,
    )?;
    record("exec", &facts);
    let report = ExecReport::build(facts);
    print_report(
        &report,
        args.json,
        args.output.as_deref(),
        args.report.dir.as_deref(),
    )?;
    Ok(expected(args.expect, report.outcome))
}

/// `memspike compare`.
pub fn compare(args: &CompareArgs, interrupts: &Interrupts) -> anyhow::Result<ExitCode> {
    if !args.runs.program.command.is_empty() {
        return compare_command(args, interrupts);
    }
    let policies = policies(&args.runs)?;
    let inherit = inherited(args.inherit)?;
    let experiment = args
        .scenario
        .experiment(Policy::default(), inherit.as_ref().map(|l| l.limit))
        .map_err(settings)?;
    let config = worker_config(&args.runs, experiment)?;
    let options = RunOptions {
        inherit,
        ..runs_options(&args.runs, args.report.dir.clone())
    };
    let repeats = args.runs.runs.unwrap_or(1);
    let facts = compare::compare(&config, &policies, repeats, &options, interrupts)?;
    record("compare", &facts);
    let report = CompareReport::build(facts);
    print_report(
        &report,
        args.json,
        args.runs.output.as_deref(),
        args.report.dir.as_deref(),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `memspike compare -- CMD`.
fn compare_command(args: &CompareArgs, interrupts: &Interrupts) -> anyhow::Result<ExitCode> {
    let base = command_base(&args.runs, args.scenario.limit, args.inherit)?;
    let (policies, not_applicable) = match &args.runs.policies {
        None => base.catalogue(base.config.limit).map_err(settings)?,
        Some(_) => (policies(&args.runs)?, Vec::new()),
    };
    if let Some(dir) = &args.report.dir {
        preflight::check_report_dir(dir).map_err(settings)?;
    }
    let repeats = args.runs.runs.unwrap_or(3);
    let facts = compare::compare_command(&base, &policies, not_applicable, repeats, interrupts)?;
    record("compare-command", &facts);
    let report = CompareReport::build_command(facts);
    print_report(
        &report,
        args.json,
        args.runs.output.as_deref(),
        args.report.dir.as_deref(),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// The command of `compare -- CMD` or `threshold -- CMD` and how its runs go.
fn command_base(
    runs: &RunsArgs,
    limit: u64,
    inherit: bool,
) -> Result<CommandBase, SupervisorError> {
    let inherit = inherited(inherit)?;
    let p = &runs.program;
    Ok(CommandBase {
        config: ExecConfig {
            limit: inherit.as_ref().map_or(limit, |l| l.limit),
            inherit,
            command: p.command.clone(),
            clean_env: p.clean_env,
            policy: None,
            output: if p.show_output {
                Output::Stderr
            } else {
                Output::Quiet
            },
            trace: p.trace,
        },
        trace_kernel: !runs.no_trace,
    })
}

/// `memspike threshold`.
pub fn threshold(args: &ThresholdArgs, interrupts: &Interrupts) -> anyhow::Result<ExitCode> {
    if !args.runs.program.command.is_empty() {
        return threshold_command(args, interrupts);
    }
    let knob = args.knob.unwrap_or(Knob::Spike);
    let policies = policies(&args.runs)?;
    let experiment = args
        .scenario
        .experiment(Policy::default(), None)
        .map_err(settings)?;
    let range = Range::parse(knob, args.range.as_deref(), experiment.limit)
        .map_err(|e| SupervisorError::Usage(format!("--range: {e}")))?;
    let base = Base {
        config: worker_config(&args.runs, experiment)?,
        seed_chunk: args.scenario.chunk,
    };
    let facts = compare::threshold(
        &base,
        &policies,
        knob,
        &range,
        args.runs.runs.unwrap_or(REPEATS),
        &runs_options(&args.runs, args.report.dir.clone()),
        interrupts,
    )?;
    record("threshold", &facts);
    print_report(
        &ThresholdReport::build(facts),
        args.json,
        args.runs.output.as_deref(),
        args.report.dir.as_deref(),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `memspike threshold -- CMD`.
fn threshold_command(args: &ThresholdArgs, interrupts: &Interrupts) -> anyhow::Result<ExitCode> {
    let knob = args.knob.unwrap_or(Knob::Limit);
    let base = command_base(&args.runs, args.scenario.limit, false)?;
    let limit = base.config.limit;
    let policies = match &args.runs.policies {
        None => distinct_under(knob, base.catalogue(limit).map_err(settings)?.0),
        Some(_) => policies(&args.runs)?,
    };
    let range = Range::parse(knob, args.range.as_deref(), limit)
        .map_err(|e| SupervisorError::Usage(format!("--range: {e}")))?;
    if let Some(dir) = &args.report.dir {
        preflight::check_report_dir(dir).map_err(settings)?;
    }
    if args.gc_cpu_max.is_some() && knob != Knob::Gomemlimit {
        return Err(SupervisorError::Usage(format!(
            "--gc-cpu-max bounds the cost edge of --knob gomemlimit; --knob {knob} has none"
        ))
        .into());
    }
    let search = CommandSearch {
        repeats: args.runs.runs.unwrap_or(REPEATS),
        gc_cpu_max: args.gc_cpu_max.unwrap_or(GC_CPU_MAX),
    };
    let facts = compare::threshold_command(&base, &policies, knob, &range, search, interrupts)?;
    record("threshold-command", &facts);
    print_report(
        &ThresholdReport::build(facts),
        args.json,
        args.runs.output.as_deref(),
        args.report.dir.as_deref(),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `--gc-cpu-max`'s default: the share where Go's GC CPU limiter takes over.
const GC_CPU_MAX: f64 = 0.5;

/// `policies` without those the knob makes the same as an earlier one (with `--knob gogc`,
/// gogc50 is gogc100).
fn distinct_under(knob: Knob, policies: Vec<Policy>) -> Vec<Policy> {
    let erase = |p: &Policy| {
        let mut p = Policy {
            name: None,
            ..p.clone()
        };
        match knob {
            Knob::Gogc => p.gogc = Default::default(),
            Knob::Gomemlimit => p.memory_limit = None,
            Knob::Spike | Knob::Limit => {}
        }
        p
    };
    let mut kept: Vec<Policy> = Vec::new();
    for p in policies {
        if !kept.iter().any(|k| erase(k) == erase(&p)) {
            kept.push(p);
        }
    }
    kept
}

/// `memspike sweep` and `memspike sweep merge`.
pub fn sweep(args: &SweepArgs, interrupts: &Interrupts) -> anyhow::Result<ExitCode> {
    if let Some(SweepCommand::Merge(m)) = &args.merge {
        return merge(m);
    }
    let usage = |e: String| SupervisorError::Usage(e);
    let path = args
        .plan
        .as_deref()
        .ok_or_else(|| usage("--plan FILE is required".into()))?;
    let plan = Plan::load(path).map_err(|e| usage(e.to_string()))?;
    let mut out = std::io::stdout().lock();
    if let Some(image) = &args.kubernetes {
        let text = std::fs::read_to_string(path)?;
        let calibration = args
            .calibrate
            .as_deref()
            .map(crate::cli::calibration_only)
            .transpose()
            .map_err(settings)?;
        let list = sweep::kubernetes(&plan, &text, image, !args.no_trace, calibration.as_deref());
        writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.local {
        tracing::info!(
            "plan {}: {} cells, at most {} at once",
            plan.name,
            plan.len(),
            args.jobs
        );
        if let Some(report) = &args.calibrate {
            crate::cli::calibration(report).map_err(settings)?;
        }
        let (lines, failed) = sweep::run_local(
            path,
            &plan,
            args.jobs as usize,
            !args.no_trace,
            args.user.as_deref(),
            args.calibrate.as_deref(),
            interrupts,
        )?;
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
    let options = RunOptions {
        trace: !args.no_trace,
        interactive: None,
        report_dir: None,
        inherit: inherited(args.inherit)?,
    };
    let profile = args
        .calibrate
        .as_deref()
        .map(crate::cli::calibration)
        .transpose()
        .map_err(settings)?;
    let facts = sweep::run_cell(
        &plan,
        index,
        profile.as_ref(),
        run_as(args.user.as_deref())?,
        &options,
        interrupts,
    )?;
    record(&format!("cell-{index}"), &facts);
    writeln!(out, "{}", serde_json::to_string(&SweepRow::build(facts))?)?;
    Ok(ExitCode::SUCCESS)
}

/// `sweep merge`: the rows of the files, one plan, each cell once. A line that is not a row is
/// skipped and named (a warning, and in the report), and so is a cell without a row; with
/// `--complete` either exits 3 after the report.
fn merge(args: &MergeArgs) -> anyhow::Result<ExitCode> {
    let usage = |e: String| SupervisorError::Usage(e);
    let plan = match &args.plan {
        Some(path) => {
            let plan = Plan::load(path).map_err(|e| usage(e.to_string()))?;
            Some(Planned {
                cells: plan.len(),
                name: plan.name,
            })
        }
        None => None,
    };
    let (mut rows, mut unreadable) = (Vec::new(), Vec::new());
    for file in &args.files {
        let text =
            std::fs::read_to_string(file).map_err(|e| usage(format!("{}: {e}", file.display())))?;
        let (r, u) = SweepRow::parse_lines(&text, &file.display().to_string());
        rows.extend(r);
        unreadable.extend(u);
    }
    for u in &unreadable {
        tracing::warn!("skipped {u}");
    }
    let report =
        SweepReport::merge(rows, unreadable, plan.as_ref()).map_err(|e| usage(e.to_string()))?;
    print_report(&report, args.json, None, args.report.dir.as_deref())?;
    if args.complete && !report.complete() {
        eprintln!("memspike: --complete: {}", report.gaps());
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

/// A test hook: with this variable naming a directory, every command also writes the facts it
/// collected there as JSON (`run.json`, `exec.json`, `compare.json`, `threshold.json`,
/// `cell-I.json`), the fixtures the report crate's tests are built from.
pub const FACTS_DIR_ENV: &str = "MEMSPIKE_FACTS_DIR";

/// Writes `facts` as `<MEMSPIKE_FACTS_DIR>/<name>.json` when the variable is set. A failure
/// is a warning: the run's report still follows.
fn record(name: &str, facts: &impl serde::Serialize) {
    let Some(dir) = std::env::var_os(FACTS_DIR_ENV) else {
        return;
    };
    let path = Path::new(&dir).join(format!("{name}.json"));
    let written = serde_json::to_string_pretty(facts)
        .map_err(anyhow::Error::from)
        .and_then(|json| Ok(write_whole(&path, json.as_bytes())?));
    if let Err(e) = written {
        tracing::warn!("{FACTS_DIR_ENV}: writing {}: {e}", path.display());
    }
}

/// Prints a report (JSON, or text) on stdout, or into `output` (`-o FILE`), and, with
/// `--report DIR`, writes every form of it there (report.json, timeline.svg, report.html);
/// each file whole ([`write_whole`]).
fn print_report(
    report: &impl Document,
    json: bool,
    output: Option<&Path>,
    dir: Option<&Path>,
) -> anyhow::Result<()> {
    let body = if json {
        report.json().context("serialising the report")? + "\n"
    } else {
        report.text()
    };
    match output {
        Some(path) => write_whole(path, body.as_bytes())
            .with_context(|| format!("writing the report to {}", path.display()))?,
        None => std::io::stdout().lock().write_all(body.as_bytes())?,
    }
    if let Some(dir) = dir {
        for (name, body) in report.files().context("serialising the report")? {
            let path = dir.join(name);
            write_whole(&path, body.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            tracing::debug!("wrote {}", path.display());
        }
        tracing::info!("report written to {}", dir.display());
    }
    Ok(())
}

/// Writes `body` to `path` whole: into a temporary file beside it (`.NAME.XXXXXX.tmp`, mode as
/// `fs::write` gives), synced, then renamed over `path`. A reader sees the old file or the new
/// one, never part of one; on failure the temporary file is removed and `path` is untouched.
/// A path that is there and not a regular file (`-o /dev/null`, `-o /dev/stderr`, a pipe) is
/// written in place: renaming over it would replace the device.
fn write_whole(path: &Path, body: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        return std::fs::OpenOptions::new()
            .write(true)
            .open(path)?
            .write_all(body);
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map_or_else(Default::default, |n| n.to_string_lossy());
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        // The umask applies, as for any new file.
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    tmp.write_all(body)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Exit 3 when `--expect` named another outcome than `got`, 0 otherwise.
fn expected(expect: Option<Expect>, got: Outcome) -> ExitCode {
    match expect.map(|want| want.check(got)) {
        Some(Err(message)) => {
            eprintln!("memspike: {message}");
            ExitCode::from(3)
        }
        _ => ExitCode::SUCCESS,
    }
}

/// `--inherit`: the limit this process lives under, when asked for.
fn inherited(inherit: bool) -> Result<Option<EffectiveLimit>, SupervisorError> {
    inherit.then(supervisor::inherited_limit).transpose()
}

/// A setting that cannot run (exit 2).
fn settings(e: UsageError) -> SupervisorError {
    SupervisorError::Settings(e)
}

/// `--user`, or the private default.
fn run_as(user: Option<&str>) -> Result<RunAs, SupervisorError> {
    RunAs::resolve(user).map_err(|e| settings(UsageError::from(e)))
}

/// The policies asked for (all the built-in ones by default).
fn policies(runs: &RunsArgs) -> Result<Vec<Policy>, SupervisorError> {
    let set = match &runs.policies {
        None => return Ok(policy_set::defaults()),
        Some(spec) => policy_set::load(spec),
    };
    set.and_then(|set| match runs.program.command.is_empty() {
        true => policy_set::simulated(set),
        false => Ok(set),
    })
    .map_err(|e| settings(UsageError::Policies(e.to_string())))
}

/// The worker's configuration for `experiment`, run as `--user`.
fn worker_config(runs: &RunsArgs, experiment: Experiment) -> Result<WorkerConfig, SupervisorError> {
    Ok(WorkerConfig {
        experiment,
        interactive: false,
        run_as: run_as(runs.user.as_deref())?,
        allowed_hosts: Vec::new(),
    })
}

fn runs_options(runs: &RunsArgs, report_dir: Option<std::path::PathBuf>) -> RunOptions {
    RunOptions {
        trace: !runs.no_trace,
        interactive: None,
        report_dir,
        inherit: None,
    }
}

#[cfg(test)]
mod tests {

    /// Regression: `-o /dev/null` renamed a temporary file over the device. A path that is
    /// not a regular file is written in place (a FIFO here, read by a thread).
    #[test]
    fn a_device_or_pipe_is_written_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        write_whole(&fifo, b"report\n").unwrap();
        // Before the reader is waited for: had the FIFO been replaced, it would wait forever.
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
        assert_eq!(reader.join().unwrap(), b"report\n");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left");
    }

    use super::*;

    /// `--report DIR`'s files are replaced whole: a reader that opened the old file reads it
    /// whole (a write in place would cut it), the new one is the new body, its mode is what
    /// `fs::write` gives, and nothing else is left in the directory.
    #[test]
    fn a_report_file_is_replaced_whole_through_a_temporary_file() {
        use std::{io::Read, os::unix::fs::MetadataExt};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        let old = "old ".repeat(10_000);
        std::fs::write(&path, &old).unwrap();
        let mut reader = std::fs::File::open(&path).unwrap();
        let inode = std::fs::metadata(&path).unwrap().ino();

        write_whole(&path, b"new").unwrap();

        let mut seen = String::new();
        reader.read_to_string(&mut seen).unwrap();
        assert_eq!(seen, old, "the old file, whole, for whoever had it open");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let meta = std::fs::metadata(&path).unwrap();
        assert_ne!(
            meta.ino(),
            inode,
            "renamed into place, not written in place"
        );
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"").unwrap();
        assert_eq!(
            meta.mode() & 0o777,
            std::fs::metadata(&plain).unwrap().mode() & 0o777
        );
        std::fs::remove_file(&plain).unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["report.json"]);

        // A new file; and a failure (no such directory) leaves nothing.
        write_whole(&dir.path().join("report.html"), b"<h1>").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("report.html")).unwrap(),
            "<h1>"
        );
        assert!(write_whole(&dir.path().join("gone/report.json"), b"x").is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn an_expectation_that_fails_exits_3() {
        assert_eq!(expected(None, Outcome::OomKilled), ExitCode::SUCCESS);
        assert_eq!(
            expected(Some(Expect::Oom), Outcome::OomKilled),
            ExitCode::SUCCESS
        );
        assert_eq!(
            expected(Some(Expect::Survive), Outcome::OomKilled),
            ExitCode::from(3)
        );
    }

    #[test]
    fn the_default_policies_are_the_catalogue() {
        let runs = RunsArgs {
            no_trace: false,
            user: None,
            policies: None,
            runs: None,
            output: None,
            program: crate::cli::ProgramArgs {
                clean_env: false,
                show_output: false,
                trace: memspike_model::trace::TraceChoice::Auto,
                command: Vec::new(),
            },
        };
        let names: Vec<_> = policies(&runs)
            .unwrap()
            .into_iter()
            .filter_map(|p| p.name)
            .collect();
        assert_eq!(
            names,
            policy_set::defaults()
                .into_iter()
                .filter_map(|p| p.name)
                .collect::<Vec<_>>()
        );
        let bad = RunsArgs {
            policies: Some("gogc75".into()),
            ..runs.clone()
        };
        assert_eq!(policies(&bad).unwrap_err().exit_code(), 2);
        // Issue 20: a JVM's policy is a real program's; the simulation runs Go.
        let jvm = RunsArgs {
            policies: Some("gogc50,xmx50".into()),
            ..runs
        };
        let e = policies(&jvm).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string()
                .contains("policy xmx50 is the JVM's: the simulation runs Go's runtime"),
            "{e}"
        );
    }
}
