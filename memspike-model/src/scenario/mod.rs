//! Scenarios: a program's allocation pattern as a list of named steps, written in TOML, and the
//! built-in ones ([`builtin`]).
//!
//! ```toml
//! name = "burst"
//! description = "a live set, then a large buffer allocated and dropped ten times"
//!
//! [[step]]
//! name = "live set"
//! alloc = "25%"          # of the cgroup's limit; or a size: 64MiB, 1048576
//!
//! [[step]]
//! repeat = 10
//! [[step.steps]]
//! name = "buffer"
//! alloc = "40%"
//! chunk = "1MiB"         # in pieces (the collector may run between them)
//! [[step.steps]]
//! release = "40%"        # or "all"; the oldest slabs first unless order = "newest"
//! order = "newest"
//! [[step.steps]]
//! wait = "100ms"         # simulated time
//! ```
//!
//! A step has exactly one action: `alloc` (with `chunk`, and `fill = true` to count what the
//! heap already holds towards the size), `release` (with `order`), `gc = true`,
//! `free_os_memory = true`, `wait`, or `repeat` (with nested `steps`). A step without a name is
//! named after its action. Errors name the file, the line and the column.

pub mod builtin;

use std::{path::Path, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{heap::Order, size::Amount};

/// What page faults are counted under besides the steps: before the first step, after the last,
/// and the steps beyond the kernel's 63 named counters (they share one). No step may take these
/// names.
pub const STARTUP: &str = "startup";
pub const DONE: &str = "done";
pub const OTHER: &str = "other";
pub const RESERVED: [&str; 3] = [STARTUP, DONE, OTHER];
/// The one step an interactive worker's operations are all counted under.
pub const INTERACTIVE: &str = "interactive";

/// How much a `release` step drops: `"all"`, or an amount.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Releasing {
    All,
    Amount(Amount),
}

impl std::fmt::Display for Releasing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Releasing::All => f.write_str("all"),
            Releasing::Amount(a) => a.fmt(f),
        }
    }
}

impl std::str::FromStr for Releasing {
    type Err = String;
    fn from_str(s: &str) -> Result<Releasing, String> {
        match s.trim() {
            "all" => Ok(Releasing::All),
            other => other
                .parse()
                .map(Releasing::Amount)
                .map_err(|e| format!("{e} (or \"all\")")),
        }
    }
}

serde_via_str!(Releasing, "\"all\", or a size or a percentage of the limit");

/// What a step does. Its kind ([`ActionKind`]) is what the events report: `alloc`, `release`,
/// `collect` (a `gc` step), `free_os_memory`, `wait` (a `repeat` runs its steps and reports
/// theirs).
#[derive(Clone, Debug, PartialEq, strum::EnumDiscriminants)]
#[strum_discriminants(
    name(ActionKind),
    derive(Serialize, Deserialize, schemars::JsonSchema),
    serde(rename_all = "snake_case"),
    schemars(
        description = "What the program did in a step: `alloc`, `release`, `collect` \
                            (runtime.GC), `free_os_memory`, `wait`"
    )
)]
pub enum Action {
    Alloc {
        size: Amount,
        /// Allocate in pieces of this size (the last one smaller).
        chunk: Option<Amount>,
        /// Count what the heap already holds (`HeapAlloc`) towards `size`, as the seed's fill.
        fill: bool,
    },
    Release {
        what: Releasing,
        order: Order,
    },
    /// `runtime.GC()`.
    #[strum_discriminants(serde(rename = "collect"))]
    Gc,
    /// `debug.FreeOSMemory()`: a collection, then every free page back to the OS.
    FreeOsMemory,
    /// No allocation for a while (simulated time passes).
    Wait(Duration),
    Repeat {
        count: u32,
        steps: Vec<Step>,
    },
}

impl ActionKind {
    /// The name of a step that has none: the action's key in a scenario file.
    pub fn default_name(self) -> &'static str {
        match self {
            ActionKind::Alloc => "alloc",
            ActionKind::Release => "release",
            ActionKind::Gc => "gc",
            ActionKind::FreeOsMemory => "free_os_memory",
            ActionKind::Wait => "wait",
            ActionKind::Repeat => "repeat",
        }
    }
}

impl Action {
    /// The name of a step that has none.
    pub fn default_name(&self) -> &'static str {
        ActionKind::from(self).default_name()
    }
}

/// One step: an action and the name its events and page faults are reported under.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "Table", into = "Table")]
pub struct Step {
    pub name: String,
    pub action: Action,
}

impl Step {
    pub fn new(name: &str, action: Action) -> Step {
        Step {
            name: name.to_owned(),
            action,
        }
    }
}

/// A scenario: a name, a line saying what it is, and its steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(rename = "step")]
    pub steps: Vec<Step>,
}

/// A scenario that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario file {path}: {error}")]
    Read { path: String, error: std::io::Error },
    /// The message names the file, line and column.
    #[error("{0}")]
    Parse(String),
    #[error(
        "no built-in scenario is called {0:?} and no such file exists: run `memspike scenarios` for the built-in ones, or give a path to a TOML file"
    )]
    Unknown(String),
}

impl Scenario {
    /// Parses a scenario from TOML text; `origin` names it in errors (a path).
    pub fn from_toml(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario =
            toml::from_str(text).map_err(|e| ScenarioError::Parse(toml_error(&e, text, origin)))?;
        if scenario.steps.is_empty() {
            return Err(ScenarioError::Parse(format!(
                "{origin}: the scenario has no steps: add at least one [[step]] table"
            )));
        }
        Ok(scenario)
    }

    /// A built-in scenario by name, or else a TOML file at that path.
    pub fn load(name_or_path: &str) -> Result<Scenario, ScenarioError> {
        if let Some(s) = builtin::by_name(name_or_path) {
            return Ok(s);
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            return Err(ScenarioError::Unknown(name_or_path.to_owned()));
        }
        let text = std::fs::read_to_string(path).map_err(|error| ScenarioError::Read {
            path: name_or_path.to_owned(),
            error,
        })?;
        Scenario::from_toml(&text, name_or_path)
    }

    /// The scenario as TOML, for a user to start from.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot print this scenario: {e}\n"))
    }

    /// The same scenario with a collection right after every `release` step (the seed's `-gc`),
    /// each named `gc`.
    pub fn with_gc_after_release(&self) -> Scenario {
        fn walk(steps: &[Step]) -> Vec<Step> {
            let mut out = Vec::with_capacity(steps.len());
            for s in steps {
                let action = match &s.action {
                    Action::Repeat { count, steps } => Action::Repeat {
                        count: *count,
                        steps: walk(steps),
                    },
                    other => other.clone(),
                };
                let is_release = matches!(action, Action::Release { .. });
                out.push(Step {
                    name: s.name.clone(),
                    action,
                });
                if is_release {
                    out.push(Step::new("gc", Action::Gc));
                }
            }
            out
        }
        Scenario {
            steps: walk(&self.steps),
            ..self.clone()
        }
    }

    /// What running it under a limit of `limit` bytes takes: the steps executed (each piece of
    /// a chunked allocation counts) and the simulated time waited, saturating.
    pub fn cost(&self, limit: u64) -> Cost {
        fn walk(steps: &[Step], limit: u64) -> Cost {
            let mut c = Cost::default();
            for s in steps {
                let one = match &s.action {
                    Action::Alloc {
                        size,
                        chunk: Some(chunk),
                        ..
                    } => Cost {
                        steps: size.resolve(limit).div_ceil(chunk.resolve(limit).max(1)),
                        waited: Duration::ZERO,
                    },
                    Action::Wait(d) => Cost {
                        steps: 1,
                        waited: *d,
                    },
                    Action::Repeat { count, steps } => walk(steps, limit).times(*count),
                    _ => Cost {
                        steps: 1,
                        waited: Duration::ZERO,
                    },
                };
                c = c.plus(one);
            }
            c
        }
        walk(&self.steps, limit)
    }

    /// Every step's name, in the order the steps are written (nested ones included), each once.
    pub fn step_names(&self) -> Vec<String> {
        fn walk(steps: &[Step], out: &mut Vec<String>) {
            for s in steps {
                if !out.contains(&s.name) {
                    out.push(s.name.clone());
                }
                if let Action::Repeat { steps, .. } = &s.action {
                    walk(steps, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.steps, &mut out);
        out
    }
}

/// What a scenario takes to run ([`Scenario::cost`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Steps executed (allocation pieces, each repetition).
    pub steps: u64,
    /// Simulated time waited.
    pub waited: Duration,
}

impl Cost {
    fn plus(self, o: Cost) -> Cost {
        Cost {
            steps: self.steps.saturating_add(o.steps),
            waited: self.waited.saturating_add(o.waited),
        }
    }

    fn times(self, n: u32) -> Cost {
        Cost {
            steps: self.steps.saturating_mul(u64::from(n)),
            waited: self.waited.saturating_mul(n),
        }
    }
}

/// A TOML error as memspike's files report it: `origin:line:column: message` (line 1, column
/// 1 when the parser gives no place). Scenarios, policy sets and sweep plans share it.
pub(crate) fn toml_error(e: &toml::de::Error, text: &str, origin: &str) -> String {
    let (line, column) = e
        .span()
        .map(|span| line_column(text, span.start))
        .unwrap_or((1, 1));
    format!("{origin}:{line}:{column}: {}", e.message().trim_end())
}

/// 1-based line and column of a byte offset.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

/// A step as a scenario file writes it: a table whose action's key (`alloc`, `release`, `gc`,
/// `free_os_memory`, `wait`, `repeat`) says which [`Action`] it is, beside the keys that belong
/// to that action (`chunk` and `fill` to `alloc`, `order` to `release`, `steps` to `repeat`).
/// This is [`Step`]'s serde form and nothing else: serde's derives cannot tag an enum by which
/// key is present, nor say which key belongs to which action.
#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Table {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alloc: Option<Amount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chunk: Option<Amount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fill: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    release: Option<Releasing>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    order: Option<Order>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gc: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    free_os_memory: Option<bool>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::duration::option"
    )]
    #[schemars(with = "Option<String>")]
    wait: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    repeat: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    steps: Option<Vec<Step>>,
}

const ACTIONS: &str = "alloc = SIZE, release = SIZE|\"all\", gc = true, free_os_memory = true, wait = DURATION, or repeat = N with steps";

impl TryFrom<Table> for Step {
    type Error = String;
    fn try_from(t: Table) -> Result<Step, String> {
        let belongs = |key: &str, set: bool, to: &str| match set {
            true => Err(format!("{key} belongs to {to}")),
            false => Ok(()),
        };
        belongs(
            "chunk",
            t.chunk.is_some() && t.alloc.is_none(),
            "an alloc step",
        )?;
        belongs(
            "fill",
            t.fill.is_some() && t.alloc.is_none(),
            "an alloc step",
        )?;
        belongs(
            "order",
            t.order.is_some() && t.release.is_none(),
            "a release step",
        )?;
        belongs(
            "steps",
            t.steps.is_some() && t.repeat.is_none(),
            "a repeat: add repeat = N",
        )?;
        let flag = |key: &str, v: Option<bool>| match v {
            Some(false) => Err(format!(
                "{key} = false does nothing: write {key} = true or leave the step out"
            )),
            v => Ok(v == Some(true)),
        };
        let mut actions = Vec::new();
        if let Some(size) = t.alloc {
            actions.push(Action::Alloc {
                size,
                chunk: t.chunk,
                fill: t.fill.unwrap_or(false),
            });
        }
        if let Some(what) = t.release {
            actions.push(Action::Release {
                what,
                order: t.order.unwrap_or_default(),
            });
        }
        if flag("gc", t.gc)? {
            actions.push(Action::Gc);
        }
        if flag("free_os_memory", t.free_os_memory)? {
            actions.push(Action::FreeOsMemory);
        }
        if let Some(d) = t.wait {
            actions.push(Action::Wait(d));
        }
        if let Some(count) = t.repeat {
            let steps = t.steps.unwrap_or_default();
            if steps.is_empty() {
                return Err(
                    "repeat needs steps: add [[step.steps]] tables (or steps = [ ... ])".into(),
                );
            }
            actions.push(Action::Repeat { count, steps });
        }
        let action = match actions.len() {
            1 => actions.pop().ok_or("no action")?,
            0 => return Err(format!("a step needs an action: {ACTIONS}")),
            n => {
                return Err(format!(
                    "a step has exactly one action, this one has {n}: split it into several steps"
                ));
            }
        };
        let name = match t.name {
            Some(n) if n.trim().is_empty() => return Err("a step's name cannot be empty".into()),
            Some(n) if RESERVED.contains(&n.as_str()) => {
                return Err(format!(
                    "the step name {n:?} is reserved (page faults before the first step, after the last, and beyond 63 names are counted as {}): choose another",
                    RESERVED.join(", ")
                ));
            }
            Some(n) => n,
            None => action.default_name().to_owned(),
        };
        Ok(Step { name, action })
    }
}

impl From<Step> for Table {
    fn from(s: Step) -> Table {
        let name = (s.name != s.action.default_name()).then(|| s.name.clone());
        let mut t = Table {
            name,
            ..Table::default()
        };
        match s.action {
            Action::Alloc { size, chunk, fill } => {
                t.alloc = Some(size);
                t.chunk = chunk;
                t.fill = fill.then_some(true);
            }
            Action::Release { what, order } => {
                t.release = Some(what);
                t.order = (order != Order::default()).then_some(order);
            }
            Action::Gc => t.gc = Some(true),
            Action::FreeOsMemory => t.free_os_memory = Some(true),
            Action::Wait(d) => t.wait = Some(d),
            Action::Repeat { count, steps } => {
                t.repeat = Some(count);
                t.steps = Some(steps);
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Scenario::from_toml(text, "my.toml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_file_with_every_step_parses() {
        let s = Scenario::from_toml(
            r#"
name = "all"
description = "every step"

[[step]]
name = "live"
alloc = "25%"

[[step]]
repeat = 3
[[step.steps]]
name = "buffer"
alloc = "8MiB"
chunk = "1MiB"
[[step.steps]]
release = "all"
order = "newest"
[[step.steps]]
wait = "100ms"

[[step]]
gc = true

[[step]]
free_os_memory = true

[[step]]
release = "1048576"
"#,
            "all.toml",
        )
        .unwrap();
        assert_eq!(s.steps.len(), 5);
        assert_eq!(
            s.step_names(),
            [
                "live",
                "repeat",
                "buffer",
                "release",
                "wait",
                "gc",
                "free_os_memory"
            ]
        );
        let Action::Repeat { count, steps } = &s.steps[1].action else {
            panic!("{:?}", s.steps[1])
        };
        assert_eq!(*count, 3);
        assert_eq!(
            steps[0].action,
            Action::Alloc {
                size: Amount::Bytes(8 << 20),
                chunk: Some(Amount::Bytes(1 << 20)),
                fill: false
            }
        );
        assert_eq!(
            steps[1].action,
            Action::Release {
                what: Releasing::All,
                order: Order::Newest
            }
        );
        assert_eq!(steps[2].action, Action::Wait(Duration::from_millis(100)));
        assert_eq!(Amount::Percent(25.0).resolve(32 << 20), 8 << 20);
        // Printing and parsing again gives the same scenario.
        assert_eq!(Scenario::from_toml(&s.to_toml(), "again").unwrap(), s);
    }

    /// A value a key cannot take is pointed at where it is written; what belongs to the whole
    /// step (its actions, its name) at the step's table.
    #[test]
    fn errors_name_the_file_line_and_column_and_what_was_expected() {
        let cases = [
            (
                "name = \"x\"\n[[step]]\nalloc = \"lots\"\n",
                "my.toml:3:9",
                "invalid size \"lots\"",
            ),
            (
                "name = \"x\"\n[[step]]\nalloc = \"1MiB\"\ngc = true\n",
                "my.toml:2:1",
                "exactly one action",
            ),
            (
                "name = \"x\"\n[[step]]\nname = \"idle\"\n",
                "my.toml:2:1",
                "a step needs an action: alloc = SIZE",
            ),
            (
                "name = \"x\"\n[[step]]\nalocc = \"1MiB\"\n",
                "my.toml:3:1",
                "unknown field `alocc`",
            ),
            (
                "name = \"x\"\n[[step]]\nwait = \"soon\"\n",
                "my.toml:3:8",
                "invalid duration \"soon\"",
            ),
            (
                "name = \"x\"\n[[step]]\nrelease = \"-5%\"\n",
                "my.toml:3:11",
                "invalid percentage",
            ),
            (
                "name = \"x\"\n[[step]]\nrepeat = 2\n",
                "my.toml:2:1",
                "repeat needs steps",
            ),
            (
                "name = \"x\"\n[[step]]\nalloc = \"1MiB\"\norder = \"newest\"\n",
                "my.toml:2:1",
                "order belongs to a release step",
            ),
            (
                "name = \"x\"\n[[step]]\nrelease = \"all\"\norder = \"middle\"\n",
                "my.toml:4:9",
                "unknown variant `middle`",
            ),
            (
                "name = \"x\"\n[[step]\n",
                "my.toml:2:8",
                "unclosed array table",
            ),
            ("name = \"x\"\n", "my.toml:1:1", "missing field `step`"),
            ("name = \"x\"\nstep = []\n", "my.toml", "no steps"),
            (
                "name = \"x\"\n[[step]]\nname = \"other\"\ngc = true\n",
                "my.toml:2:1",
                "the step name \"other\" is reserved",
            ),
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
    fn the_cost_counts_pieces_repetitions_and_waits() {
        let churn = builtin::by_name("churn").unwrap();
        let c = churn.cost(32 << 20);
        assert_eq!(c.steps, 1 + 500 * 3);
        assert_eq!(c.waited, Duration::from_millis(10) * 500);
        let seed = builtin::seed(0.5, Some(1 << 20));
        // The spike, the release, and 16 pieces of 1 MiB at 32 MiB.
        assert_eq!(seed.cost(32 << 20).steps, 2 + 16);
        let huge = Scenario::from_toml(
            "name = \"h\"\n[[step]]\nrepeat = 4000000000\n[[step.steps]]\nrepeat = 4000000000\n[[step.steps.steps]]\nwait = \"1000000h\"\n",
            "h",
        )
        .unwrap();
        let c = huge.cost(32 << 20);
        assert_eq!(
            (c.steps, c.waited),
            (16_000_000_000_000_000_000, Duration::MAX)
        );
    }

    #[test]
    fn gc_after_release_follows_every_release_step() {
        let s = builtin::by_name("bursty").unwrap().with_gc_after_release();
        let Action::Repeat { steps, .. } = &s.steps[1].action else {
            panic!()
        };
        let names: Vec<_> = steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["buffer", "drop", "gc", "idle"]);
    }

    #[test]
    fn a_missing_scenario_says_what_exists() {
        let e = Scenario::load("no-such-scenario").unwrap_err().to_string();
        assert!(e.contains("memspike scenarios"), "{e}");
    }

    proptest::proptest! {
        /// Any text, and any one-character change to a valid scenario, either parses or is
        /// refused with a message that names the file (and, when the TOML does not parse, the
        /// line and column); nothing panics.
        #[test]
        fn any_text_parses_or_is_refused_with_its_place(
            text in ".{0,200}",
            at in 0usize..2000,
            with in proptest::char::any(),
        ) {
            for candidate in [text, {
                let mut v: Vec<char> = builtin::by_name("bursty").unwrap().to_toml().chars().collect();
                let i = at % v.len();
                v[i] = with;
                v.into_iter().collect()
            }] {
                if let Err(e) = Scenario::from_toml(&candidate, "f.toml") {
                    proptest::prop_assert!(e.to_string().starts_with("f.toml"), "{e}");
                }
            }
        }
    }
}
