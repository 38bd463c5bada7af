//! The runtime's memory policy: everything a program or its operator can set about its
//! memory. A Go program's (GOGC, GOMEMLIMIT, a collection after releases, a watchdog) are the
//! simulation's and a real Go program's; a JVM's ([`JvmPolicy`]: its heap maximum, collector,
//! exit on OutOfMemoryError) and Node.js's ([`NodePolicy`]: V8's old and semi spaces) are given
//! to a real program only (`compare -- java …`). One type for every place a policy appears:
//! the command line (`--gogc 50`; clap's derive, behind the `cli` feature), a policies file
//! (`[[policy]]`), the experiment the worker runs, and every report's settings (serde, with the
//! spellings of a policies file).
//!
//! A new setting is a field here (its flag, its key and its JSON come with it), its use in
//! [`crate::runtime`] (Go's) or in its runtime's trace ([`crate::trace`]: how the runtime is
//! given it), and, if it has a built-in policy, a line in [`crate::policy_set`].

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{
    pacer::Gogc,
    size::Amount,
    watchdog::{self, Driver, Force, Watchdog},
};

/// The cgroup-driven watchdog's shortest polling interval: a shorter one only makes a long
/// simulation slow (go-watchdog polls every few seconds).
pub const MIN_WATCHDOG_INTERVAL: Duration = Duration::from_millis(100);

/// The runtime's memory policy. In JSON and in a policies file:
/// `{"gogc": "100", "memory_limit": "90%", "gc_after_release": false, "watchdog":
/// "watermarks:0.5,0.75,0.9", "watchdog_driver": "heap", "watchdog_force": "gc",
/// "watchdog_interval": "1s"}`; `memory_limit` is `null` when off, the `watchdog*` keys `null`
/// without a watchdog, and `name` is there when the policy has one. A JVM's or Node's policy
/// prints its name and its `jvm` or `node` settings only: Go's keys are not its own.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, schemars::JsonSchema)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// The name it goes by in a set of policies (`compare`, `threshold`, a sweep); `None` for
    /// one given by flags.
    #[cfg_attr(feature = "cli", arg(skip))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// GOGC for the simulated runtime: a percentage, or `off`.
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value = "100", allow_negative_numbers = true)
    )]
    pub gogc: Gogc,
    /// The soft memory limit (GOMEMLIMIT): a size, a percentage of --limit (90%), or `off`.
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value = "off", value_name = "SIZE|PCT|off", value_parser = parse_memory_limit)
    )]
    #[serde(with = "memory_limit")]
    #[schemars(with = "Option<Amount>")]
    // Spelled out so that clap's derive does not treat the field as optional and parse into
    // `Amount`: the parser itself returns the `Option` (`off` is `None`), which is how clap's
    // documentation says to opt out.
    pub memory_limit: ::std::option::Option<Amount>,
    /// Run a collection right after every release step (the seed's -gc): the seed then survives.
    #[cfg_attr(feature = "cli", arg(long = "gc"))]
    pub gc_after_release: bool,
    /// A watchdog beside the program (raulk/go-watchdog): watermarks:0.5,0.75,0.9 or
    /// adaptive:0.5.
    #[cfg_attr(feature = "cli", arg(long, value_name = "POLICY"))]
    pub watchdog: Option<watchdog::Policy>,
    /// What drives the watchdog: the heap after each cycle (it adjusts GOGC), or the cgroup's
    /// usage, polled (it forces collections). Default: heap.
    #[cfg_attr(feature = "cli", arg(long, value_enum, requires = "watchdog"))]
    pub watchdog_driver: Option<Driver>,
    /// What the watchdog forces: runtime.GC or debug.FreeOSMemory. Default: gc.
    #[cfg_attr(feature = "cli", arg(long, value_enum, requires = "watchdog"))]
    pub watchdog_force: Option<Force>,
    /// How often the cgroup-driven watchdog polls, in simulated time (at least 100ms).
    /// Default: 1s.
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "DURATION", value_parser = parse_interval, requires = "watchdog")
    )]
    #[serde(with = "crate::duration::option")]
    #[schemars(with = "Option<String>")]
    pub watchdog_interval: Option<Duration>,
    /// Go's `GODEBUG` settings that change how the runtime manages memory
    /// (`madvdontneed=1,disablethp=1`; [`MEMORY_GODEBUG`] lists the keys). A real program reads
    /// them (`compare -- CMD`); the simulated runtime does not model them. Policies files only.
    #[cfg_attr(feature = "cli", arg(skip))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub godebug: Option<String>,
    /// A JVM's settings; a policy with them is the JVM's. Policies files only.
    #[cfg_attr(feature = "cli", arg(skip))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jvm: Option<JvmPolicy>,
    /// Node.js's settings (V8's heap); a policy with them is Node's. Policies files only.
    #[cfg_attr(feature = "cli", arg(skip))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<NodePolicy>,
}

impl Serialize for Policy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        /// The policy as it prints: Go's keys for Go's policies only.
        #[derive(Serialize)]
        struct Printed<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            name: &'a Option<String>,
            #[serde(flatten)]
            go: Option<GoKeys<'a>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            jvm: &'a Option<JvmPolicy>,
            #[serde(skip_serializing_if = "Option::is_none")]
            node: &'a Option<NodePolicy>,
        }
        #[derive(Serialize)]
        struct GoKeys<'a> {
            gogc: Gogc,
            #[serde(with = "memory_limit")]
            memory_limit: &'a Option<Amount>,
            gc_after_release: bool,
            watchdog: &'a Option<watchdog::Policy>,
            watchdog_driver: Option<Driver>,
            watchdog_force: Option<Force>,
            #[serde(with = "crate::duration::option")]
            watchdog_interval: &'a Option<Duration>,
            #[serde(skip_serializing_if = "Option::is_none")]
            godebug: &'a Option<String>,
        }
        let go = (self.jvm.is_none() && self.node.is_none()).then_some(GoKeys {
            gogc: self.gogc,
            memory_limit: &self.memory_limit,
            gc_after_release: self.gc_after_release,
            watchdog: &self.watchdog,
            watchdog_driver: self.watchdog_driver,
            watchdog_force: self.watchdog_force,
            watchdog_interval: &self.watchdog_interval,
            godebug: &self.godebug,
        });
        Printed {
            name: &self.name,
            go,
            jvm: &self.jvm,
            node: &self.node,
        }
        .serialize(s)
    }
}

/// The runtime a policy is for, by the settings it makes: Go's unless it has a JVM's or
/// Node's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Go,
    Jvm,
    Node,
}

impl Runtime {
    /// The runtime's short name, as reports show it (`"jvm"`).
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Go => "go",
            Runtime::Jvm => "jvm",
            Runtime::Node => "node",
        }
    }

    /// The runtime in a sentence ("the JVM").
    pub fn title(self) -> &'static str {
        match self {
            Runtime::Go => "Go",
            Runtime::Jvm => "the JVM",
            Runtime::Node => "Node.js",
        }
    }
}

/// A JVM's memory settings, each given as its option (`-Xmx`, `-XX:…`); what is left out is the
/// JVM's default (a heap maximum of 25 % of the memory it sees: the group's limit). In a
/// policies file: `jvm = { heap_max = "50%", collector = "g1", exit_on_out_of_memory = true }`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct JvmPolicy {
    /// The heap's maximum, `-Xmx`: a size, or a percentage of the group's limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heap_max: Option<Amount>,
    /// `-XX:MaxRAMPercentage`: the heap's maximum as a percentage of the memory the JVM sees
    /// (the group's limit, from JDK 10 on); an `-Xmx` wins over it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ram_percentage: Option<f64>,
    /// The collector: `-XX:+UseSerialGC`, `-XX:+UseParallelGC` or `-XX:+UseG1GC`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collector: Option<Collector>,
    /// `-XX:+ExitOnOutOfMemoryError`: the JVM exits (status 3) at its first OutOfMemoryError.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub exit_on_out_of_memory: bool,
}

/// A JVM's collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Collector {
    Serial,
    Parallel,
    G1,
}

impl Collector {
    /// The JVM's option that picks it.
    pub fn option(self) -> &'static str {
        match self {
            Collector::Serial => "-XX:+UseSerialGC",
            Collector::Parallel => "-XX:+UseParallelGC",
            Collector::G1 => "-XX:+UseG1GC",
        }
    }
}

/// Node.js's memory settings, V8's heap spaces, each a size or a percentage of the group's
/// limit (V8 takes whole MiB). In a policies file: `node = { max_old_space = "50%" }`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NodePolicy {
    /// `--max-old-space-size`: the old generation's maximum.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_old_space: Option<Amount>,
    /// `--max-semi-space-size`: each of the young generation's semi-spaces' maximum.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_semi_space: Option<Amount>,
}

/// The `GODEBUG` keys a policy may set: the runtime's settings that change how memory is
/// returned to the kernel, how stacks shrink and how collections run (the runtime's
/// `runtime1.go` debug variables and `internal/godebugs`).
pub const MEMORY_GODEBUG: [&str; 5] = [
    "madvdontneed",
    "disablethp",
    "gcshrinkstackoff",
    "harddecommit",
    "gcstoptheworld",
];

impl Policy {
    /// The policy with its settings checked and the watchdog's left-out ones filled in with
    /// their defaults, as every reader of a policy (flags, a file) hands it on. The message
    /// says what to write instead.
    pub fn checked(mut self) -> Result<Policy, String> {
        self.runtime()?;
        if let Some(settings) = &self.godebug {
            check_godebug(settings)?;
        }
        let Some(w) = self.watchdog() else {
            if self.watchdog_driver.is_some()
                || self.watchdog_force.is_some()
                || self.watchdog_interval.is_some()
            {
                return Err(
                    "watchdog_driver, watchdog_force and watchdog_interval belong to a \
                            watchdog: add watchdog = \"watermarks:0.5,0.75,0.9\" (or adaptive:0.5)"
                        .into(),
                );
            }
            return Ok(self);
        };
        if w.interval < MIN_WATCHDOG_INTERVAL {
            return Err(format!(
                "watchdog_interval {:?} is shorter than 100ms: poll less often",
                crate::duration::format(w.interval)
            ));
        }
        self.watchdog_driver = Some(w.driver);
        self.watchdog_force = Some(w.force);
        self.watchdog_interval = Some(w.interval);
        Ok(self)
    }

    /// The watchdog the runtime runs, its settings defaulted as go-watchdog's.
    pub fn watchdog(&self) -> Option<Watchdog> {
        let defaults = Watchdog::new(self.watchdog.clone()?);
        Some(Watchdog {
            driver: self.watchdog_driver.unwrap_or(defaults.driver),
            force: self.watchdog_force.unwrap_or(defaults.force),
            interval: self.watchdog_interval.unwrap_or(defaults.interval),
            ..defaults
        })
    }

    /// The runtime the policy is for; `Err` when it mixes settings of two runtimes.
    pub fn runtime(&self) -> Result<Runtime, String> {
        let others = match (&self.jvm, &self.node) {
            (None, None) => return Ok(Runtime::Go),
            (Some(_), Some(_)) => return Err("a policy is for one runtime: give the JVM's settings (jvm) and Node's (node) in policies of their own".into()),
            (Some(_), None) => Runtime::Jvm,
            (None, Some(_)) => Runtime::Node,
        };
        match self.go_setting() {
            Some(go) => Err(format!(
                "a policy is for one runtime: {go} is Go's, and this one has {}'s settings; give them in policies of their own",
                others.title()
            )),
            None => Ok(others),
        }
    }

    /// The first of Go's settings the policy makes, by name; `None` when it leaves them all as
    /// Go's defaults.
    pub fn go_setting(&self) -> Option<&'static str> {
        let defaults = Policy::default();
        [
            (self.gogc != defaults.gogc, "GOGC"),
            (self.memory_limit.is_some(), "GOMEMLIMIT (memory_limit)"),
            (self.gc_after_release, "a collection after releases"),
            (self.watchdog.is_some(), "a watchdog"),
            (self.godebug.is_some(), "GODEBUG"),
        ]
        .into_iter()
        .find_map(|(set, name)| set.then_some(name))
    }

    /// The soft memory limit in bytes under a cgroup limit of `limit` bytes.
    pub fn memory_limit_bytes(&self, limit: u64) -> Option<u64> {
        self.memory_limit.map(|m| m.resolve(limit))
    }
}

/// Each of `settings` is `key=value` with a key of [`MEMORY_GODEBUG`].
fn check_godebug(settings: &str) -> Result<(), String> {
    for setting in settings.split(',') {
        let known = setting
            .split_once('=')
            .is_some_and(|(key, value)| MEMORY_GODEBUG.contains(&key) && !value.is_empty());
        if !known {
            return Err(format!(
                "godebug {setting:?} is not one of Go's memory settings: give key=value pairs, comma-separated, with keys from {} (memspike sets gctrace itself)",
                MEMORY_GODEBUG.join(", ")
            ));
        }
    }
    Ok(())
}

/// Parses `--memory-limit` (`GOMEMLIMIT`): a size, a percentage of the cgroup's limit, or `off`
/// (no limit).
pub fn parse_memory_limit(s: &str) -> Result<Option<Amount>, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    s.parse::<Amount>()
        .ok()
        .filter(|a| *a != Amount::Bytes(0))
        .map(Some)
        .ok_or_else(|| {
            format!(
                "invalid memory limit {s:?}: give a size (240MiB, 251658240), a percentage of the cgroup's limit (90%), or off"
            )
        })
}

/// `--watchdog-interval`: a duration of at least [`MIN_WATCHDOG_INTERVAL`].
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = crate::duration::parse(s)?;
    if d < MIN_WATCHDOG_INTERVAL {
        return Err(format!(
            "{s:?} is shorter than {}: poll less often",
            crate::duration::format(MIN_WATCHDOG_INTERVAL)
        ));
    }
    Ok(d)
}

/// `memory_limit` in JSON and TOML: `"90%"`, `"240MiB"`, or `null`; `"off"` reads as `null`.
mod memory_limit {
    use super::*;

    pub fn serialize<S: Serializer>(m: &Option<Amount>, s: S) -> Result<S::Ok, S::Error> {
        m.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Amount>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => parse_memory_limit(&s).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_limits_parse() {
        assert_eq!(parse_memory_limit("off"), Ok(None));
        assert_eq!(parse_memory_limit("90%"), Ok(Some(Amount::Percent(90.0))));
        assert_eq!(
            parse_memory_limit("240MiB"),
            Ok(Some(Amount::Bytes(240 << 20)))
        );
        assert_eq!(Amount::Percent(90.0).resolve(256 << 20), 241_591_910);
        for bad in ["", "-5%", "0", "lots", "0%"] {
            let e = parse_memory_limit(bad).unwrap_err();
            assert!(e.contains("or off"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_watchdog_gets_its_defaults_and_its_settings_need_one() {
        let p = Policy {
            watchdog: Some("adaptive:0.5".parse().unwrap()),
            ..Policy::default()
        }
        .checked()
        .unwrap();
        assert_eq!(
            (p.watchdog_driver, p.watchdog_force, p.watchdog_interval),
            (
                Some(Driver::Heap),
                Some(Force::Gc),
                Some(Duration::from_secs(1))
            )
        );
        let orphan = Policy {
            watchdog_force: Some(Force::Gc),
            ..Policy::default()
        };
        assert!(
            orphan
                .checked()
                .unwrap_err()
                .contains("belong to a watchdog")
        );
        let fast = Policy {
            watchdog: Some("adaptive:0.5".parse().unwrap()),
            watchdog_interval: Some(Duration::from_millis(10)),
            ..Policy::default()
        };
        assert!(fast.checked().unwrap_err().contains("shorter than 100ms"));
        assert_eq!(
            parse_interval("10ms").unwrap_err(),
            "\"10ms\" is shorter than 100ms: poll less often"
        );
    }

    #[test]
    fn a_policy_reads_back_as_it_prints() {
        let p = Policy {
            name: Some("dog".into()),
            gogc: Gogc::Off,
            memory_limit: Some(Amount::Percent(90.0)),
            watchdog: Some("watermarks:0.5,0.75,0.9".parse().unwrap()),
            watchdog_driver: Some(Driver::Cgroup),
            ..Policy::default()
        }
        .checked()
        .unwrap();
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "dog", "gogc": "off", "memory_limit": "90%", "gc_after_release": false,
                "watchdog": "watermarks:0.5,0.75,0.9", "watchdog_driver": "cgroup",
                "watchdog_force": "gc", "watchdog_interval": "1s",
            })
        );
        assert_eq!(serde_json::from_value::<Policy>(json).unwrap(), p);
        let off: Policy = serde_json::from_str(r#"{"memory_limit": "off"}"#).unwrap();
        assert_eq!(off, Policy::default());
        // Issue 20: a JVM's policy prints its own settings, not Go's defaults.
        let jvm = Policy {
            name: Some("xmx50".into()),
            jvm: Some(JvmPolicy {
                heap_max: Some(Amount::Percent(50.0)),
                collector: Some(Collector::G1),
                ..JvmPolicy::default()
            }),
            ..Policy::default()
        };
        let json = serde_json::to_value(&jvm).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"name": "xmx50", "jvm": {"heap_max": "50%", "collector": "g1"}})
        );
        assert_eq!(serde_json::from_value::<Policy>(json).unwrap(), jvm);
    }

    /// Issue 20: a policy is one runtime's; mixing two is refused with what to do.
    #[test]
    fn a_policy_is_one_runtimes() {
        let node = Some(NodePolicy::default());
        let mixed = Policy {
            gogc: Gogc::Percent(50),
            node: node.clone(),
            ..Policy::default()
        };
        let e = mixed.checked().unwrap_err();
        assert!(
            e.contains("GOGC is Go's, and this one has Node.js's settings"),
            "{e}"
        );
        let both = Policy {
            jvm: Some(JvmPolicy::default()),
            node: node.clone(),
            ..Policy::default()
        };
        assert!(
            both.checked()
                .unwrap_err()
                .contains("policies of their own")
        );
        let alone = Policy {
            node,
            ..Policy::default()
        };
        assert_eq!(alone.runtime(), Ok(Runtime::Node));
        assert_eq!(Policy::default().runtime(), Ok(Runtime::Go));
    }
}
