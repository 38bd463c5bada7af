//! Named policies, and the set `memspike compare` and `memspike threshold` run: the built-in
//! catalogue ([`CATALOGUE`]) and `--policies LIST|FILE` ([`load`]).
//!
//! A policies file is TOML, one `[[policy]]` table per policy, each a [`Policy`] with a name;
//! every key but `name` is optional and defaults as the `run` flags do (GOGC 100, no memory
//! limit, no watchdog):
//!
//! ```toml
//! [[policy]]
//! name = "gogc50-memlimit90"
//! gogc = "50"                          # or 50, or "off"
//! memory_limit = "90%"                 # a size, a percentage of --limit, or "off"
//! gc_after_release = true
//! watchdog = "watermarks:0.5,0.75,0.9" # or "adaptive:0.5"
//! watchdog_driver = "heap"             # or "cgroup"
//! watchdog_force = "gc"                # or "free_os_memory"
//! watchdog_interval = "1s"             # the cgroup driver's polls, simulated, at least 100ms
//!
//! [[policy]]                           # a JVM's (compare -- java …)
//! name = "half-serial"
//! jvm = { heap_max = "50%", collector = "serial", exit_on_out_of_memory = true }
//! # or max_ram_percentage = 75; collector "parallel" or "g1"
//!
//! [[policy]]                           # Node's (compare -- node …)
//! name = "old-half"
//! node = { max_old_space = "50%", max_semi_space = "4MiB" }
//! ```
//!
//! A policy is one runtime's: Go's keys, `jvm` or `node`, never two of them.
//!
//! Errors name the file, the line and the column, as scenario errors do.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{
    pacer::Gogc,
    policy::{Collector, JvmPolicy, NodePolicy, Policy, Runtime},
    scenario::{line_column, toml_error},
    size::Amount,
    trace::{Invocation, RuntimeTrace},
};

/// The built-in policies, in the order `compare` runs them by default: name, runtime and what
/// it is. Go's are the simulation's default set; a real program's default set is its runtime's
/// ([`for_program`]).
pub const CATALOGUE: [(&str, Runtime, &str); 21] = [
    (
        "gogc100",
        Runtime::Go,
        "GOGC 100, no memory limit: Go's default",
    ),
    ("gogc50", Runtime::Go, "GOGC 50: collect twice as often"),
    (
        "gc-after-release",
        Runtime::Go,
        "GOGC 100 and a collection right after every release (the seed's -gc)",
    ),
    (
        "memlimit90",
        Runtime::Go,
        "GOGC 100 and a memory limit at 90 % of the cgroup's",
    ),
    (
        "gogc-off-memlimit90",
        Runtime::Go,
        "GOGC off and a memory limit at 90 %: collect only near the limit",
    ),
    (
        "memlimit95",
        Runtime::Go,
        "GOGC 100 and a memory limit at 95 % of the cgroup's",
    ),
    (
        "watchdog-watermarks",
        Runtime::Go,
        "go-watchdog, heap-driven, watermarks at 50, 75 and 90 % of the limit",
    ),
    (
        "watchdog-adaptive",
        Runtime::Go,
        "go-watchdog, heap-driven, adaptive: the next collection halfway to the limit",
    ),
    (
        "jvm-default",
        Runtime::Jvm,
        "the JVM's defaults: G1, a heap maximum of 25 % of the memory it sees (the group's limit)",
    ),
    ("xmx25", Runtime::Jvm, "-Xmx at 25 % of the group's limit"),
    ("xmx50", Runtime::Jvm, "-Xmx at 50 % of the group's limit"),
    ("xmx75", Runtime::Jvm, "-Xmx at 75 % of the group's limit"),
    (
        "xmx200",
        Runtime::Jvm,
        "-Xmx at 200 % of the group's limit: a heap allowed to outgrow its group",
    ),
    (
        "maxram75",
        Runtime::Jvm,
        "-XX:MaxRAMPercentage=75, the common container setting",
    ),
    (
        "xmx75-serial",
        Runtime::Jvm,
        "-Xmx at 75 % with the Serial collector",
    ),
    (
        "xmx75-parallel",
        Runtime::Jvm,
        "-Xmx at 75 % with the Parallel collector",
    ),
    (
        "node-default",
        Runtime::Node,
        "Node's defaults: V8 sizes its heap from the memory it sees (Node 20: 259 MiB in a 128 MiB group)",
    ),
    (
        "old-space25",
        Runtime::Node,
        "--max-old-space-size at 25 % of the group's limit",
    ),
    (
        "old-space50",
        Runtime::Node,
        "--max-old-space-size at 50 % of the group's limit",
    ),
    (
        "old-space75",
        Runtime::Node,
        "--max-old-space-size at 75 % of the group's limit",
    ),
    (
        "old-space50-semi-space1",
        Runtime::Node,
        "--max-old-space-size at 50 % and --max-semi-space-size=1: a young generation of 3 MiB",
    ),
];

/// A policy set that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PolicySetError {
    #[error("cannot read policies file {path}: {error}")]
    Read { path: String, error: std::io::Error },
    /// The message names the file, line and column.
    #[error("{0}")]
    Parse(String),
    #[error(
        "no built-in policy is called {name:?} and no such file exists: give comma-separated names from {known}, or a TOML file of [[policy]] tables"
    )]
    Unknown { name: String, known: String },
    #[error("{0}")]
    List(String),
}

/// A built-in policy by name.
pub fn by_name(name: &str) -> Option<Policy> {
    let pct90 = || Some(Amount::Percent(90.0));
    // The specs below are constants; a test (the_default_set_is_the_catalogue_with_its_settings)
    // checks that each parses.
    let watchdog = |p: &str| p.parse().ok();
    let percent = |p: f64| Some(Amount::Percent(p));
    let jvm = |heap_max: Option<Amount>, collector: Option<Collector>| Policy {
        jvm: Some(JvmPolicy {
            heap_max,
            collector,
            ..JvmPolicy::default()
        }),
        ..Policy::default()
    };
    let node = |old: Option<Amount>, semi: Option<Amount>| Policy {
        node: Some(NodePolicy {
            max_old_space: old,
            max_semi_space: semi,
        }),
        ..Policy::default()
    };
    let policy = match name {
        "gogc100" => Policy::default(),
        "gogc50" => Policy {
            gogc: Gogc::Percent(50),
            ..Policy::default()
        },
        "gc-after-release" => Policy {
            gc_after_release: true,
            ..Policy::default()
        },
        "memlimit90" => Policy {
            memory_limit: pct90(),
            ..Policy::default()
        },
        "gogc-off-memlimit90" => Policy {
            gogc: Gogc::Off,
            memory_limit: pct90(),
            ..Policy::default()
        },
        "memlimit95" => Policy {
            memory_limit: Some(Amount::Percent(95.0)),
            ..Policy::default()
        },
        "watchdog-watermarks" => Policy {
            watchdog: watchdog("watermarks:0.5,0.75,0.9"),
            ..Policy::default()
        },
        "watchdog-adaptive" => Policy {
            watchdog: watchdog("adaptive:0.5"),
            ..Policy::default()
        },
        "jvm-default" => jvm(None, None),
        "xmx25" => jvm(percent(25.0), None),
        "xmx50" => jvm(percent(50.0), None),
        "xmx75" => jvm(percent(75.0), None),
        "xmx200" => jvm(percent(200.0), None),
        "maxram75" => Policy {
            jvm: Some(JvmPolicy {
                max_ram_percentage: Some(75.0),
                ..JvmPolicy::default()
            }),
            ..Policy::default()
        },
        "xmx75-serial" => jvm(percent(75.0), Some(Collector::Serial)),
        "xmx75-parallel" => jvm(percent(75.0), Some(Collector::Parallel)),
        "node-default" => node(None, None),
        "old-space25" => node(percent(25.0), None),
        "old-space50" => node(percent(50.0), None),
        "old-space75" => node(percent(75.0), None),
        "old-space50-semi-space1" => node(percent(50.0), Some(Amount::Bytes(1 << 20))),
        _ => return None,
    };
    Policy {
        name: Some(name.to_owned()),
        ..policy
    }
    .checked()
    .ok()
}

/// The simulation's default set: Go's catalogue, in its order.
pub fn defaults() -> Vec<Policy> {
    of_runtime(Runtime::Go)
}

/// `runtime`'s catalogue, in its order.
pub fn of_runtime(runtime: Runtime) -> Vec<Policy> {
    CATALOGUE
        .iter()
        .filter(|(_, r, _)| *r == runtime)
        .filter_map(|(name, _, _)| by_name(name))
        .collect()
}

/// The catalogue of a real program's runtime as the program can take it (`trace`'s
/// [`RuntimeTrace::policy_env`] under a group of `limit` bytes, started as `program`): the
/// policies it can, in order, and the names of those it cannot with why. Empty, with nothing
/// turned away, when no runtime is traced.
pub fn for_program(
    trace: &dyn RuntimeTrace,
    limit: u64,
    program: &Invocation,
) -> (Vec<Policy>, Vec<NotApplicable>) {
    let Some(runtime) = trace.runtime() else {
        return (Vec::new(), Vec::new());
    };
    let mut not_applicable = Vec::new();
    let set = of_runtime(runtime)
        .into_iter()
        .filter(|p| match trace.policy_env(p, limit, program) {
            Ok(_) => true,
            Err(why) => {
                not_applicable.push(NotApplicable {
                    name: p.name.clone().unwrap_or_default(),
                    why,
                });
                false
            }
        })
        .collect();
    (set, not_applicable)
}

/// `set` when every policy in it is Go's, which the simulation runs; else the first that is
/// not, named, with where it can go instead.
pub fn simulated(set: Vec<Policy>) -> Result<Vec<Policy>, PolicySetError> {
    for p in &set {
        let runtime = p.runtime().map_err(PolicySetError::List)?;
        if runtime != Runtime::Go {
            return Err(PolicySetError::List(format!(
                "policy {} is {}'s: the simulation runs Go's runtime; give it to a real program (`compare -- {} …`)",
                p.name.as_deref().unwrap_or("-"),
                runtime.title(),
                match runtime {
                    Runtime::Jvm => "java",
                    _ => "node",
                }
            )));
        }
    }
    Ok(set)
}

/// A built-in policy a real program's runtime cannot take, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NotApplicable {
    pub name: String,
    pub why: String,
}

fn known_names() -> String {
    CATALOGUE
        .iter()
        .map(|(n, _, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `--policies LIST|FILE`: a TOML file when `spec` names one that exists, else comma-separated
/// names from the catalogue. The set is never empty and its names are unique.
pub fn load(spec: &str) -> Result<Vec<Policy>, PolicySetError> {
    let path = Path::new(spec);
    if path.is_file() {
        let text = std::fs::read_to_string(path).map_err(|error| PolicySetError::Read {
            path: spec.to_owned(),
            error,
        })?;
        return from_toml(&text, spec);
    }
    from_list(spec)
}

/// Comma-separated names from the catalogue (spaces around them are ignored).
pub fn from_list(list: &str) -> Result<Vec<Policy>, PolicySetError> {
    let mut set: Vec<Policy> = Vec::new();
    for name in list.split(',').map(str::trim) {
        if name.is_empty() {
            return Err(PolicySetError::List(format!(
                "--policies {list:?} has an empty name: give comma-separated names from {}",
                known_names()
            )));
        }
        let p = by_name(name).ok_or_else(|| PolicySetError::Unknown {
            name: name.to_owned(),
            known: known_names(),
        })?;
        if set.iter().any(|q| q.name == p.name) {
            return Err(PolicySetError::List(format!(
                "--policies {list:?} names {name:?} twice: give each policy once"
            )));
        }
        set.push(p);
    }
    Ok(set)
}

/// Parses a policies file; `origin` names it in errors (a path).
pub fn from_toml(text: &str, origin: &str) -> Result<Vec<Policy>, PolicySetError> {
    let at = |offset: usize| {
        let (line, column) = line_column(text, offset);
        format!("{origin}:{line}:{column}")
    };
    let file: File =
        toml::from_str(text).map_err(|e| PolicySetError::Parse(toml_error(&e, text, origin)))?;
    if file.policy.is_empty() {
        return Err(PolicySetError::Parse(format!(
            "{origin}: the file has no policies: add at least one [[policy]] table with a name"
        )));
    }
    let mut set: Vec<Policy> = Vec::with_capacity(file.policy.len());
    for entry in file.policy {
        let here = at(entry.span().start);
        let p = named(entry.into_inner())
            .and_then(Policy::checked)
            .map_err(|why| PolicySetError::Parse(format!("{here}: {why}")))?;
        if set.iter().any(|q| q.name == p.name) {
            return Err(PolicySetError::Parse(format!(
                "{here}: the policy name {:?} is used twice: give each policy its own name",
                p.name.unwrap_or_default()
            )));
        }
        set.push(p);
    }
    Ok(set)
}

/// A policy of a set has a name that can name files and table rows.
fn named(p: Policy) -> Result<Policy, String> {
    let Some(name) = p.name.as_deref() else {
        return Err("missing field `name`".into());
    };
    let name = name.trim();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "the policy name {:?} must be letters, digits, '-', '_' or '.' (it names the policy in tables and file names)",
            p.name.unwrap_or_default()
        ));
    }
    Ok(Policy {
        name: Some(name.to_owned()),
        ..p
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    policy: Vec<toml::Spanned<Policy>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watchdog::{Driver, Force, Watchdog};
    use std::time::Duration;

    fn names(set: &[Policy]) -> Vec<&str> {
        set.iter().filter_map(|p| p.name.as_deref()).collect()
    }

    fn err(text: &str) -> String {
        from_toml(text, "p.toml").unwrap_err().to_string()
    }

    #[test]
    fn the_default_set_is_the_catalogue_with_its_settings() {
        // Every entry builds, for the runtime it is listed under.
        for (name, runtime, _) in CATALOGUE {
            let p = by_name(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(p.runtime(), Ok(runtime), "{name}");
        }
        let set = defaults();
        let go: Vec<&str> = CATALOGUE
            .iter()
            .filter(|(_, r, _)| *r == Runtime::Go)
            .map(|(n, _, _)| *n)
            .collect();
        assert_eq!(names(&set), go);
        // name, gogc, memory_limit, gc_after_release, watchdog
        let want = [
            ("gogc100", "100", None, false, None),
            ("gogc50", "50", None, false, None),
            ("gc-after-release", "100", None, true, None),
            ("memlimit90", "100", Some("90%"), false, None),
            ("gogc-off-memlimit90", "off", Some("90%"), false, None),
            ("memlimit95", "100", Some("95%"), false, None),
            (
                "watchdog-watermarks",
                "100",
                None,
                false,
                Some("watermarks:0.5,0.75,0.9"),
            ),
            (
                "watchdog-adaptive",
                "100",
                None,
                false,
                Some("adaptive:0.5"),
            ),
        ];
        for (s, (name, gogc, limit, gc, watchdog)) in set.iter().zip(want) {
            assert_eq!(s.name.as_deref(), Some(name));
            assert_eq!(s.gogc.to_string(), gogc, "{name}");
            assert_eq!(s.memory_limit.map(|m| m.to_string()).as_deref(), limit);
            assert_eq!(s.gc_after_release, gc, "{name}");
            assert_eq!(
                s.watchdog.as_ref().map(|w| w.to_string()).as_deref(),
                watchdog,
                "{name}"
            );
            assert_eq!(
                s.watchdog_driver,
                watchdog.map(|_| Driver::Heap),
                "{name}: heap-driven, as go-watchdog's HeapDriven"
            );
        }
    }

    #[test]
    fn settings_print_as_a_policies_file_spells_them() {
        let json = |name: &str| serde_json::to_value(by_name(name).unwrap()).unwrap();
        assert_eq!(
            json("gogc-off-memlimit90"),
            serde_json::json!({
                "name": "gogc-off-memlimit90", "gogc": "off", "memory_limit": "90%", "gc_after_release": false,
                "watchdog": null, "watchdog_driver": null, "watchdog_force": null,
                "watchdog_interval": null,
            })
        );
        assert_eq!(
            json("watchdog-watermarks"),
            serde_json::json!({
                "name": "watchdog-watermarks", "gogc": "100", "memory_limit": null, "gc_after_release": false,
                "watchdog": "watermarks:0.5,0.75,0.9", "watchdog_driver": "heap",
                "watchdog_force": "gc", "watchdog_interval": "1s",
            })
        );
    }

    #[test]
    fn lists_name_catalogue_policies() {
        let cases: [(&str, &[&str]); 3] = [
            ("gogc100", &["gogc100"]),
            (
                "memlimit90, gc-after-release,gogc50",
                &["memlimit90", "gc-after-release", "gogc50"],
            ),
            ("watchdog-adaptive ", &["watchdog-adaptive"]),
        ];
        for (list, want) in cases {
            assert_eq!(names(&from_list(list).unwrap()), want, "{list}");
        }
    }

    #[test]
    fn bad_lists_say_what_to_write() {
        let cases = [
            ("gogc100,gogc75", "no built-in policy is called \"gogc75\""),
            ("gogc100,gogc75", "gogc100, gogc50, gc-after-release"),
            ("gogc75", "or a TOML file"),
            ("", "empty name"),
            ("gogc100,,gogc50", "empty name"),
            ("gogc50,gogc100,gogc50", "names \"gogc50\" twice"),
            ("policies.toml", "no such file exists"),
        ];
        for (list, says) in cases {
            let e = load(list).unwrap_err().to_string();
            assert!(e.contains(says), "{list:?}: {e}");
        }
    }

    #[test]
    fn a_file_with_every_key_parses() {
        let set = from_toml(
            r#"
[[policy]]
name = "low"
gogc = 50

[[policy]]
name = "limited"
gogc = "off"
memory_limit = "240MiB"
gc_after_release = true

[[policy]]
name = "dog"
memory_limit = "off"
watchdog = "watermarks:0.5,0.75,0.9"
watchdog_driver = "cgroup"
watchdog_force = "free_os_memory"
watchdog_interval = "500ms"
"#,
            "p.toml",
        )
        .unwrap();
        assert_eq!(names(&set), ["low", "limited", "dog"]);
        assert_eq!(
            set[0],
            Policy {
                name: Some("low".into()),
                gogc: Gogc::Percent(50),
                ..Policy::default()
            }
        );
        assert_eq!(
            set[1],
            Policy {
                name: Some("limited".into()),
                gogc: Gogc::Off,
                memory_limit: Some(Amount::Bytes(240 << 20)),
                gc_after_release: true,
                ..Policy::default()
            }
        );
        assert_eq!(
            set[2].watchdog(),
            Some(Watchdog {
                driver: Driver::Cgroup,
                force: Force::FreeOsMemory,
                interval: Duration::from_millis(500),
                ..Watchdog::new("watermarks:0.5,0.75,0.9".parse().unwrap())
            })
        );
        assert_eq!(set[2].memory_limit, None);
        // A catalogue policy written as a file is the same policy.
        let same = from_toml(
            "[[policy]]\nname = \"watchdog-adaptive\"\nwatchdog = \"adaptive:0.5\"\n",
            "p.toml",
        )
        .unwrap();
        assert_eq!(same, [by_name("watchdog-adaptive").unwrap()]);
    }

    /// A value a setting cannot take is pointed at where it is written; what belongs to the
    /// whole table (a missing name, settings without a watchdog) at the table.
    #[test]
    fn file_errors_name_the_file_line_and_column_and_what_to_write() {
        let cases = [
            (
                "[[policy]]\nname = \"a\"\ngogc = \"lots\"\n",
                "p.toml:3:8",
                "GOGC must be",
            ),
            (
                "[[policy]]\nname = \"a\"\ngogc = -5\n",
                "p.toml:3:8",
                "GOGC must be",
            ),
            (
                "[[policy]]\nname = \"a\"\nmemory_limit = \"0%\"\n",
                "p.toml:3:16",
                "invalid memory limit \"0%\"",
            ),
            (
                "[[policy]]\nname = \"a\"\nwatchdog = \"magic:1\"\n",
                "p.toml:3:12",
                "watermarks:F,F,...",
            ),
            (
                "[[policy]]\nname = \"a\"\nwatchdog_driver = \"heap\"\n",
                "p.toml:1:1",
                "belong to a watchdog",
            ),
            (
                "[[policy]]\nname = \"a\"\nwatchdog = \"adaptive:0.5\"\nwatchdog_interval = \"10ms\"\n",
                "p.toml:1:1",
                "shorter than 100ms",
            ),
            (
                "[[policy]]\nname = \"a\"\nwatchdog = \"adaptive:0.5\"\nwatchdog_driver = \"poll\"\n",
                "p.toml:4:19",
                "unknown variant `poll`",
            ),
            (
                "[[policy]]\nname = \"a\"\ngogg = \"50\"\n",
                "p.toml:3:1",
                "unknown field `gogg`",
            ),
            (
                "[[policy]]\ngogc = \"50\"\n",
                "p.toml:1:1",
                "missing field `name`",
            ),
            (
                "[[policy]]\nname = \"a b\"\n",
                "p.toml:1:1",
                "must be letters, digits",
            ),
            (
                "[[policy]]\nname = \"a\"\n\n[[policy]]\nname = \"b\"\n\n[[policy]]\nname = \"a\"\ngogc = 50\n",
                "p.toml:7:1",
                "\"a\" is used twice",
            ),
            ("[[policy]\n", "p.toml:1:10", "unclosed array table"),
            ("", "p.toml", "no policies"),
            ("policies = 1\n", "p.toml:1:1", "unknown field `policies`"),
        ];
        let mut bad = Vec::new();
        for (text, at, says) in cases {
            let e = err(text);
            if !(e.starts_with(at) && e.contains(says)) {
                bad.push(format!("{text:?}: {e}"));
            }
        }
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }

    #[test]
    fn load_reads_a_file_when_one_exists() {
        let path =
            std::env::temp_dir().join(format!("memspike-policy-set-{}.toml", std::process::id()));
        std::fs::write(&path, "[[policy]]\nname = \"gogc100\"\ngogc = 25\n").unwrap();
        let spec = path.to_string_lossy().into_owned();
        let loaded = load(&spec);
        std::fs::write(&path, "[[policy]]\nname = 1\n").unwrap();
        let bad = load(&spec).unwrap_err().to_string();
        std::fs::remove_file(&path).unwrap();
        // The file wins over the catalogue name it reuses.
        let set = loaded.unwrap();
        assert_eq!(names(&set), ["gogc100"]);
        assert_eq!(set[0].gogc, Gogc::Percent(25));
        assert!(bad.starts_with(&format!("{spec}:2:8")), "{bad}");
    }

    #[test]
    fn a_real_go_program_gets_the_catalogue_its_environment_can_express() {
        let (set, skipped) = for_program(
            &crate::trace::GoTrace::default(),
            32 << 20,
            &Invocation::BARE,
        );
        assert_eq!(
            names(&set),
            [
                "gogc100",
                "gogc50",
                "memlimit90",
                "gogc-off-memlimit90",
                "memlimit95"
            ]
        );
        let skipped: Vec<&str> = skipped.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            skipped,
            [
                "gc-after-release",
                "watchdog-watermarks",
                "watchdog-adaptive"
            ]
        );
    }
}
