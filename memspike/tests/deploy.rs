//! `deploy/` against the plan it is for: the Kubernetes objects of `examples/sweep.toml` are
//! what `memspike sweep --kubernetes` makes of it (so they cannot drift), one Indexed Job per
//! limit with as many completions as that limit has cells, the pod's memory limit the cells'
//! limit, and the command the one that runs a cell under it; the one-experiment Job runs under
//! its pod's limit. No root, no cluster needed.

mod common;

use std::path::Path;

use memspike_model::sweep::Plan;
use serde_json::Value;

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn mebibytes(memory: &Value) -> u64 {
    let m = memory.as_str().expect("a memory quantity");
    let n = m.strip_suffix("Mi").expect("memory in Mi");
    n.parse::<u64>().expect("whole Mi") << 20
}

#[test]
fn the_sweep_jobs_are_the_plans_cells() {
    let plan_path = repo("examples/sweep.toml");
    let plan = Plan::load(&plan_path).expect("examples/sweep.toml is a plan");
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(repo("deploy/sweep-jobs.json")).expect("deploy/sweep-jobs.json"),
    )
    .expect("deploy/sweep-jobs.json is JSON");

    // What the generator makes of the plan now is what is committed.
    let out = common::memspike()
        .args(["sweep", "--plan"])
        .arg(&plan_path)
        .args(["--kubernetes", "memspike:latest"])
        .output()
        .expect("memspike runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        generated, committed,
        "deploy/sweep-jobs.json is stale: regenerate it with `memspike sweep --plan examples/sweep.toml --kubernetes memspike:latest`"
    );

    let items = committed["items"].as_array().expect("a List");
    let config_map = items
        .iter()
        .find(|i| i["kind"] == "ConfigMap")
        .expect("the plan's ConfigMap");
    assert_eq!(
        config_map["data"]["plan.toml"].as_str(),
        Some(std::fs::read_to_string(&plan_path).unwrap().as_str()),
        "the pods get the plan as it is"
    );
    let jobs: Vec<&Value> = items.iter().filter(|i| i["kind"] == "Job").collect();
    let groups = plan.by_limit();
    assert_eq!(jobs.len(), groups.len(), "one Job per limit");
    let cells = plan.cells();
    let mut covered = 0;
    for (job, group) in jobs.iter().zip(&groups) {
        let spec = &job["spec"];
        assert_eq!(spec["completionMode"], "Indexed");
        assert_eq!(spec["completions"], group.count as u64);
        let container = &spec["template"]["spec"]["containers"][0];
        let limits = &container["resources"]["limits"]["memory"];
        assert_eq!(mebibytes(limits), group.limit, "{job:#}");
        assert_eq!(container["resources"]["requests"]["memory"], *limits);
        // Every cell the Job runs has its pod's limit.
        assert!(
            cells[group.offset..group.offset + group.count]
                .iter()
                .all(|c| c.spec.limit_bytes == group.limit)
        );
        let args: Vec<&str> = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let offset = group.offset.to_string();
        assert_eq!(
            args,
            [
                "sweep",
                "--plan",
                "/etc/memspike/plan.toml",
                "--index",
                "$(JOB_COMPLETION_INDEX)",
                "--offset",
                offset.as_str(),
                "--inherit",
            ],
            "{job:#}"
        );
        assert_eq!(
            container["volumeMounts"][0]["mountPath"], "/etc/memspike",
            "the plan is mounted where the command reads it"
        );
        assert_eq!(
            spec["template"]["spec"]["volumes"][0]["configMap"]["name"],
            config_map["metadata"]["name"]
        );
        covered += group.count;
    }
    assert_eq!(covered, plan.len(), "the Jobs run every cell once");
}

#[test]
fn the_one_experiment_job_runs_under_its_pods_limit() {
    let text = std::fs::read_to_string(repo("deploy/job.yaml")).expect("deploy/job.yaml");
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).expect("deploy/job.yaml is YAML");
    let job = &docs[0];
    assert_eq!(job["kind"].as_str(), Some("Job"));
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["resources"]["limits"]["memory"].as_str(),
        Some("48Mi")
    );
    let args: Vec<&str> = container["args"]
        .as_vec()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert_eq!(args[0], "run");
    assert!(args.contains(&"--inherit"), "{args:?}");
    let caps: Vec<&str> = container["securityContext"]["capabilities"]["add"]
        .as_vec()
        .expect("capabilities")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert_eq!(caps, ["BPF", "PERFMON"], "what tracing needs, nothing more");
    // The image's default command is the same experiment.
    let containerfile = std::fs::read_to_string(repo("deploy/Containerfile")).unwrap();
    assert!(containerfile.contains(r#"CMD ["run", "--inherit", "--json"]"#));
}
