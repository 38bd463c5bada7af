//! `memspike sweep`: the cells of a plan ([`memspike_model::sweep`]), run one by one.
//! - [`run_cell`]: one cell, as a pod runs it (`--index I --inherit`: under the pod's own
//!   limit, which must be the cell's), printed as one JSON line.
//! - [`run_local`]: every cell on this machine, at most `jobs` at once, each as a pod would
//!   run it: a group of its own with the cell's limit, and in it a child `memspike sweep
//!   --index I --inherit`; their lines in cell order.
//!
//! - [`kubernetes`]: the plan as Kubernetes objects: the plan in a ConfigMap and one Indexed
//!   Job per limit, each pod running `sweep --index` on one cell under its own memory limit.
//!
//! Both paths run a cell the same way (the child *is* `--index`), so they give the same rows;
//! `sweep merge` (`memspike_report::sweep`) joins the lines of either.

use std::{
    collections::VecDeque,
    ffi::OsString,
    io,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use memspike_model::{experiment::Experiment, profile::Profile, sweep::Plan};

use memspike_cgroup::{self as cgroup, Group, Hierarchy};
use memspike_model::size::human;
use memspike_report::facts::{CellFacts, PolicyRun};
use memspike_worker::{privilege::RunAs, telemetry::WorkerConfig};

use crate::{
    progress::Progress,
    signals::Interrupts,
    supervisor::{self, RunOptions, Runner, SupervisorError},
};

/// Runs cell `index` of `plan` and returns its facts: in a fresh group, or under `--inherit`
/// (`options.inherit`) in this process's own, whose limit must be the cell's.
pub fn run_cell(
    plan: &Plan,
    index: usize,
    profile: Option<&Profile>,
    run_as: RunAs,
    options: &RunOptions,
    interrupts: &Interrupts,
) -> Result<CellFacts, SupervisorError> {
    let cell = plan.cell(index).ok_or_else(|| {
        SupervisorError::Usage(format!(
            "--index {index}: the plan {} has {} cells (0 to {})",
            plan.name,
            plan.len(),
            plan.len().saturating_sub(1)
        ))
    })?;
    if let Some(inherited) = &options.inherit
        && inherited.limit != cell.spec.limit_bytes
    {
        return Err(SupervisorError::Usage(format!(
            "--inherit: cell {index} is for a {} limit, but this group is limited to {} by {}: \
             give its pod that memory limit",
            human(cell.spec.limit_bytes),
            human(inherited.limit),
            inherited.source.display()
        )));
    }
    let config = WorkerConfig {
        experiment: Experiment {
            profile: profile.cloned(),
            ..cell.experiment
        },
        interactive: false,
        run_as,
        allowed_hosts: Vec::new(),
    };
    supervisor::validate(&config, options)?;
    let run = Runner::new(options, interrupts).run(&config)?;
    Ok(CellFacts {
        plan: plan.name.clone(),
        cell: cell.spec,
        run: PolicyRun {
            policy: cell.policy,
            run,
        },
    })
}

/// How a cell runs as its own process: `memspike sweep --plan PLAN --index I --offset N
/// --inherit [--no-trace] [--user USER]`, in a group of the cell's limit. Both ways of running
/// a plan's cells spell it here: [`run_local`]'s children and [`kubernetes`]' pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CellCommand {
    /// The plan file, as the process will find it (any path the OS allows).
    pub plan: PathBuf,
    /// The cell's index, or what the pod's environment gives for it.
    pub index: String,
    pub offset: usize,
    pub trace: bool,
    /// `--user`: the account the worker runs as.
    pub user: Option<String>,
    /// `--calibrate`: the runtime profile every cell's simulated program takes.
    pub calibrate: Option<PathBuf>,
}

impl CellCommand {
    /// The arguments after the program's name.
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> =
            vec!["sweep".into(), "--plan".into(), self.plan.clone().into()];
        args.extend(
            [
                "--index",
                &self.index,
                "--offset",
                &self.offset.to_string(),
                "--inherit",
            ]
            .map(OsString::from),
        );
        if !self.trace {
            args.push("--no-trace".into());
        }
        if let Some(user) = &self.user {
            args.extend(["--user".into(), user.into()]);
        }
        if let Some(report) = &self.calibrate {
            args.extend(["--calibrate".into(), report.clone().into()]);
        }
        args
    }
}

/// What one child was asked to do, and the group it runs in (removed when this drops, after
/// the child has been waited for).
struct Running {
    index: usize,
    child: Child,
    group: Group,
}

/// Runs every cell of the plan at `plan_path`, at most `jobs` at once, each as a child
/// ([`CellCommand`], traced unless `trace` is off, its worker as `user`) in a fresh group
/// limited to the cell's limit. Returns the rows' JSON lines in cell order, and each failed
/// cell's error.
pub fn run_local(
    plan_path: &Path,
    plan: &Plan,
    jobs: usize,
    trace: bool,
    user: Option<&str>,
    calibrate: Option<&Path>,
    interrupts: &Interrupts,
) -> Result<(Vec<String>, Vec<String>), SupervisorError> {
    let exe = std::env::current_exe().map_err(SupervisorError::Spawn)?;
    let hierarchy = Hierarchy::discover()?;
    for dir in cgroup::remove_stale(&hierarchy) {
        tracing::info!("removed a group left by an earlier run: {}", dir.display());
    }
    let cells = plan.cells();
    let mut waiting: VecDeque<usize> = (0..plan.len()).collect();
    let mut running: VecDeque<Running> = VecDeque::new();
    let mut lines: Vec<(usize, String)> = Vec::with_capacity(plan.len());
    let mut failed = Vec::new();
    let progress = Progress::new("cells", plan.len() as u64);
    while !waiting.is_empty() || !running.is_empty() {
        while running.len() < jobs.max(1) && interrupts.received().is_none() {
            let Some(index) = waiting.pop_front() else {
                break;
            };
            let group = Group::create(&hierarchy, cells[index].spec.limit_bytes)?;
            let cell = CellCommand {
                plan: plan_path.to_owned(),
                index: index.to_string(),
                offset: 0,
                trace,
                user: user.map(str::to_owned),
                calibrate: calibrate.map(Path::to_path_buf),
            };
            let mut cmd = Command::new(&exe);
            cmd.args(cell.args())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            supervisor::confine(&group, &mut cmd, None)?;
            let child = cmd.spawn().map_err(SupervisorError::Spawn)?;
            tracing::info!("cell {index} of {} started in {}", plan.len(), group.name());
            progress.now(format!("cell {index} started"));
            running.push_back(Running {
                index,
                child,
                group,
            });
        }
        // The oldest first: cells take about as long as each other, so this waits little.
        let Some(Running {
            index,
            child,
            group,
        }) = running.pop_front()
        else {
            break;
        };
        // The group goes only once the child has been waited for (removing it kills members).
        let result = finish(child);
        drop(group);
        progress.done_one();
        match result {
            Ok(line) => lines.push((index, line)),
            Err(e) => failed.push(format!("cell {index}: {e}")),
        }
        if interrupts.received().is_some() && !waiting.is_empty() {
            failed.push(format!(
                "stopped before cells {}",
                waiting
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            waiting.clear();
        }
    }
    lines.sort_by_key(|(i, _)| *i);
    Ok((lines.into_iter().map(|(_, l)| l).collect(), failed))
}

/// The child's one line of JSON, or why it has none.
fn finish(child: Child) -> io::Result<String> {
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find(|l| l.starts_with('{'));
    match (out.status.success(), line) {
        (true, Some(line)) => Ok(line.to_owned()),
        _ => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let why = stderr
                .lines()
                .rev()
                .find(|l| l.contains("error"))
                .unwrap_or(stderr.trim());
            Err(io::Error::other(format!("{} ({})", why.trim(), out.status)))
        }
    }
}

/// Where the pods find the plan (the ConfigMap's mount).
pub const POD_PLAN_DIR: &str = "/etc/memspike";
/// The plan's file name in the ConfigMap and in the pod.
pub const POD_PLAN_FILE: &str = "plan.toml";
/// `--calibrate`'s report, trimmed to what it reads, in the ConfigMap and in the pod.
pub const POD_CALIBRATION_FILE: &str = "calibration.json";

/// The plan as a Kubernetes `List` (JSON, which `kubectl apply -f` takes as YAML): a ConfigMap
/// holding `plan_text`, and per limit an Indexed Job whose `completions` are that limit's cells
/// and whose pods have that memory limit and run `memspike sweep --index` on their cell under
/// it (`--inherit`). Tracing needs CAP_BPF and CAP_PERFMON in the pod; `trace: false` asks for
/// none and passes `--no-trace`. A `calibration` (an exec report trimmed to its profile) goes
/// into the ConfigMap beside the plan, and every pod runs with `--calibrate` on it.
pub fn kubernetes(
    plan: &Plan,
    plan_text: &str,
    image: &str,
    trace: bool,
    calibration: Option<&str>,
) -> serde_json::Value {
    use serde_json::json;
    let name = format!("memspike-sweep-{}", dns_label(&plan.name));
    let mut data = serde_json::Map::new();
    data.insert(POD_PLAN_FILE.to_owned(), json!(plan_text));
    if let Some(c) = calibration {
        data.insert(POD_CALIBRATION_FILE.to_owned(), json!(c));
    }
    let mut items = vec![json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": name },
        "data": data,
    })];
    for group in plan.by_limit() {
        let args = CellCommand {
            plan: Path::new(POD_PLAN_DIR).join(POD_PLAN_FILE),
            index: "$(JOB_COMPLETION_INDEX)".to_owned(),
            offset: group.offset,
            trace,
            user: None,
            calibrate: calibration.map(|_| Path::new(POD_PLAN_DIR).join(POD_CALIBRATION_FILE)),
        }
        .args();
        // Every argument is ASCII here (the pod's plan path is fixed), so nothing is lost.
        let args: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        // Kubernetes spells a size in bytes exactly; Mi when it is whole.
        let memory = if group.limit % (1 << 20) == 0 {
            format!("{}Mi", group.limit >> 20)
        } else {
            group.limit.to_string()
        };
        let capabilities = if trace {
            json!({ "add": ["BPF", "PERFMON"] })
        } else {
            json!({})
        };
        items.push(json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": format!("{name}-{}", memory.to_lowercase()),
                "labels": { "app.kubernetes.io/name": "memspike", "memspike/plan": dns_label(&plan.name) },
            },
            "spec": {
                "completionMode": "Indexed",
                "completions": group.count,
                "parallelism": group.count.min(8),
                "backoffLimitPerIndex": 0,
                "template": {
                    "metadata": { "labels": { "memspike/plan": dns_label(&plan.name) } },
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{
                            "name": "memspike",
                            "image": image,
                            "args": args,
                            "resources": {
                                "limits": { "memory": memory },
                                "requests": { "memory": memory },
                            },
                            "securityContext": { "capabilities": capabilities },
                            "volumeMounts": [{ "name": "plan", "mountPath": POD_PLAN_DIR }],
                        }],
                        "volumes": [{ "name": "plan", "configMap": { "name": name } }],
                    },
                },
            },
        }));
    }
    json!({ "apiVersion": "v1", "kind": "List", "items": items })
}

/// `name` as a DNS label: lower case, letters, digits and `-`.
fn dns_label(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    s.trim_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    /// `--kubernetes --calibrate`: the trimmed report rides in the ConfigMap beside the plan,
    /// and every Job's pods read it with `--calibrate`; without one, neither.
    #[test]
    fn a_calibration_goes_to_every_pod() {
        let text = "name = \"k\"\nscenarios = [\"seed\"]\npolicies = [\"gogc100\"]\nlimits = [\"64MiB\", \"128MiB\"]\n";
        let plan = Plan::from_toml(text, "k.toml").unwrap();
        let calibrated = kubernetes(&plan, text, "img", false, Some("{\"runtime\": \"go\"}"));
        let items = calibrated["items"].as_array().unwrap();
        assert_eq!(
            items[0]["data"][POD_CALIBRATION_FILE],
            "{\"runtime\": \"go\"}"
        );
        let jobs: Vec<_> = items.iter().filter(|i| i["kind"] == "Job").collect();
        assert_eq!(jobs.len(), 2);
        for job in jobs {
            let args = job["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
            assert!(
                args.contains(r#""--calibrate","/etc/memspike/calibration.json""#),
                "{args}"
            );
        }
        let plain = kubernetes(&plan, text, "img", false, None);
        assert!(plain["items"][0]["data"][POD_CALIBRATION_FILE].is_null());
        assert!(!plain.to_string().contains("--calibrate"));
    }

    /// Regression: the plan's path went through `display()`, so a path that is not UTF-8 named
    /// another file in the child's arguments.
    #[test]
    fn a_cells_plan_path_reaches_the_child_unchanged() {
        let plan = PathBuf::from(std::ffi::OsStr::from_bytes(b"/tmp/plan-\xff.toml"));
        let cell = CellCommand {
            plan: plan.clone(),
            index: "3".into(),
            offset: 0,
            trace: false,
            user: Some("nobody".into()),
            calibrate: None,
        };
        let args = cell.args();
        assert_eq!(args[2], plan.as_os_str());
        assert_eq!(
            args[3..],
            [
                "--index",
                "3",
                "--offset",
                "0",
                "--inherit",
                "--no-trace",
                "--user",
                "nobody"
            ]
        );
    }
}
