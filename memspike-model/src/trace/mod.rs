//! The runtime's own account of its collections, read from a traced program's output: how to
//! turn a runtime's trace on (an environment variable), how to read one cycle from one line,
//! how to give the runtime a policy, and what its settings mean under the group's limit. One
//! file per runtime implements [`RuntimeTrace`]; [`go`] reads Go's `gctrace`, [`jvm`] the JVM's
//! unified GC log, [`node`] V8's `--trace-gc`.
//!
//! `memspike exec` calls [`RuntimeTrace::parse_line`] on every line the command writes to the
//! trace's stream (stderr, or stdout for Node), so a line that is not a trace line costs a
//! prefix check and nothing is allocated.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::policy::{Policy, Runtime};

pub mod go;
pub mod jvm;
pub mod node;

pub use go::{GoTrace, gogc_from_env, next_goal_after};

/// Whose trace `exec` reads: the runtime detected from the program, or the one given
/// (`--trace`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum TraceChoice {
    /// A `java` launcher's program is the JVM, a `node`'s Node.js; any other, Go (whose
    /// `GODEBUG` a program of another language ignores, and a wrapper passes on to the Go
    /// program it starts).
    #[default]
    Auto,
    Go,
    Jvm,
    Node,
    /// Read no runtime's trace: the kernel's evidence alone.
    None,
}

impl TraceChoice {
    /// The reader for a program whose file is named `program_name` (`java`, `node`, ...).
    pub fn tracer(self, program_name: &str) -> Box<dyn RuntimeTrace> {
        let detected = match program_name {
            "java" => TraceChoice::Jvm,
            "node" | "nodejs" => TraceChoice::Node,
            _ => TraceChoice::Go,
        };
        match self {
            TraceChoice::Auto => detected.tracer(program_name),
            TraceChoice::Go => Box::new(GoTrace::default()),
            TraceChoice::Jvm => Box::new(jvm::JvmTrace::default()),
            TraceChoice::Node => Box::new(node::NodeTrace::default()),
            TraceChoice::None => Box::new(NoTrace),
        }
    }
}

/// No runtime's trace: nothing is asked for, no line is a cycle.
#[derive(Clone, Copy, Debug)]
pub struct NoTrace;

impl RuntimeTrace for NoTrace {
    fn runtime(&self) -> Option<Runtime> {
        None
    }

    fn env(&mut self, _lookup: &dyn Fn(&str) -> Option<String>) -> Option<(String, String)> {
        None
    }

    fn parse_line(&mut self, _line: &str) -> Option<RuntimeCycle> {
        None
    }
}

/// How a program is started: its arguments (after the program itself) and its environment
/// (`env` gives the value a variable has, `None` when unset).
#[derive(Clone, Copy)]
pub struct Invocation<'a> {
    pub args: &'a [String],
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

impl Invocation<'static> {
    /// No arguments and an empty environment: a policy as the runtime takes it anywhere.
    pub const BARE: Invocation<'static> = Invocation {
        args: &[],
        env: &unset,
    };
}

fn unset(_: &str) -> Option<String> {
    None
}

/// A runtime whose collections can be traced.
///
/// `Send`, so that the reader of the traced program's output can own it on its own thread.
pub trait RuntimeTrace: Send {
    /// The runtime; `None` when no runtime's trace is read.
    fn runtime(&self) -> Option<Runtime>;

    /// The runtime's short name, as reports show it (`"go"`; `"none"` without one).
    fn name(&self) -> &'static str {
        self.runtime().map_or("none", Runtime::name)
    }

    /// The runtime prints its trace on stdout (V8), not stderr.
    fn on_stdout(&self) -> bool {
        false
    }

    /// The environment variable to set, and its value, to turn the trace on; `lookup` gives
    /// the value a variable has in the program's environment (`None` when unset). The user's
    /// other settings are kept, and a trace setting the user gave is left as given. `None`
    /// when this runtime needs no variable. The trace remembers which of the lines it asked
    /// for the user did not ([`RuntimeTrace::echoes`]).
    fn env(&mut self, lookup: &dyn Fn(&str) -> Option<String>) -> Option<(String, String)>;

    /// Options to put before the program's own arguments to turn the trace on, for a runtime
    /// that will not take it from its environment (V8's flags); it remembers, as
    /// [`RuntimeTrace::env`] does, which lines the user asked for. Empty by default.
    fn leading_args(&mut self, args: &[String]) -> Vec<String> {
        let _ = args;
        Vec::new()
    }

    /// What to warn of before the run: a setting of the runtime's own, given on the command
    /// line or in the environment, that the group's limit of `limit` bytes will overrule (a
    /// heap maximum above it). `None` by default.
    fn warning(&self, program: &Invocation, limit: u64) -> Option<String> {
        let _ = (program, limit);
        None
    }

    /// Whether a line of the trace's stream goes on to the user: `false` for a line of a trace
    /// that memspike turned on for its own reading and the user did not ask for.
    fn echoes(&self, line: &str) -> bool {
        let _ = line;
        true
    }

    /// Whether the runtime printed `line` as a cycle's marking ended, before its cycle line:
    /// the group read then is read nearer the heap the cycle reports. `false` by default: the
    /// group is read at the cycle's own line.
    fn marks_end(&self, line: &str) -> bool {
        let _ = line;
        false
    }

    /// The cycle a line reports, or `None` for any other line (the program's own output, the
    /// runtime's other traces, a malformed or truncated trace line). Never panics; allocates
    /// nothing on a line that cannot be a trace line.
    fn parse_line(&mut self, line: &str) -> Option<RuntimeCycle>;

    /// The heap's ceiling as the runtime itself reported it in the lines read so far (a JVM's
    /// heap maximum, V8's `heap_size_limit`): past it, the runtime throws its own out-of-memory
    /// error. `None` when it did not say (Go has no ceiling but a soft limit).
    fn heap_limit(&self) -> Option<u64> {
        None
    }

    /// The variables that give a program of this runtime `policy` under a group limit of
    /// `limit` bytes: each one the policy decides, so that none of the user's own settings of
    /// them (in `program`'s environment) leaks into a comparison. A variable that holds a list
    /// of settings (Go's `GODEBUG`) is returned with the policy's settings only, to be appended
    /// to the user's. `Err` says why the program cannot take the policy from its environment
    /// (a policy of another runtime, one that needs code inside the program, one its command
    /// line overrides, or one that cannot run under the limit).
    fn policy_env(
        &self,
        policy: &Policy,
        limit: u64,
        program: &Invocation,
    ) -> Result<Vec<PolicyVar>, String> {
        let _ = (limit, program);
        Err(match policy.runtime() {
            Ok(r) => format!(
                "its settings are {}'s, and memspike reads no runtime's trace here (--trace none): name the runtime with --trace",
                r.title()
            ),
            Err(why) => why,
        })
    }
}

/// What a runtime writes on stderr when its own heap's limit ends the program, and the news
/// in words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfHeap {
    pub runtime: Runtime,
    /// What it writes (a part of the line).
    pub said: &'static str,
    /// What happened, as a verdict says it ("the JVM threw java.lang.OutOfMemoryError").
    pub words: &'static str,
}

/// The runtime whose own out-of-memory error `stderr` shows (its last lines), if any: the
/// runtime ended the program by its heap's limit.
pub fn out_of_heap(stderr: &str) -> Option<OutOfHeap> {
    [jvm::OUT_OF_HEAP, node::OUT_OF_HEAP, go::OUT_OF_HEAP]
        .into_iter()
        .find(|o| stderr.contains(o.said))
}

/// `Ok` when `policy` is for `runtime`, else why not, in words.
pub fn for_runtime(policy: &Policy, runtime: Runtime) -> Result<(), String> {
    match policy.runtime()? {
        r if r == runtime => Ok(()),
        r => Err(format!(
            "its settings are {}'s, and this program runs {}",
            r.title(),
            runtime.title()
        )),
    }
}

/// One variable of a policy's environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PolicyVar {
    pub name: String,
    pub value: String,
    /// The value is a list of settings to append to the user's (comma-separated), not to
    /// replace it.
    pub append: bool,
}

/// A policy of `runtime` given as options in one variable, `var` (`JAVA_TOOL_OPTIONS`,
/// `NODE_OPTIONS`): the user's options there without those `decided` says the policy decides,
/// then the policy's own (`options`). Refused when the policy is another runtime's, or when the
/// runtime's own options on the command line (`command_line`) give one the policy decides: they
/// would win over the variable.
pub(crate) fn options_policy<'a>(
    policy: &Policy,
    runtime: Runtime,
    var: &str,
    program: &Invocation,
    mut command_line: impl Iterator<Item = &'a str>,
    decided: fn(&str) -> bool,
    options: impl FnOnce(&Policy) -> Result<Vec<String>, String>,
) -> Result<Vec<PolicyVar>, String> {
    for_runtime(policy, runtime)?;
    if let Some(given) = command_line.find(|o| decided(o)) {
        return Err(format!(
            "its command line gives {given}, which wins over the policy's {var}: take it off the command and let the policies set it"
        ));
    }
    let options = options(policy)?;
    let existing = (program.env)(var).unwrap_or_default();
    let value = existing
        .split_whitespace()
        .filter(|o| !decided(o))
        .chain(options.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    Ok(vec![PolicyVar {
        name: var.to_owned(),
        value,
        append: false,
    }])
}

/// The bytes a cycle scanned, by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ScanWork {
    pub heap_bytes: u64,
    pub stacks_bytes: u64,
    pub globals_bytes: u64,
}

/// One completed collection as the runtime reported it, in terms every runtime shares: its
/// kind and cause, the heap before and after it and the heap's capacity, and the pause. Sizes
/// are in bytes, as precise as the runtime printed them (Go prints whole MiB: see [`go`]).
/// A runtime's own figures are kept aside ([`GoCycle`]); in JSON they sit beside the shared
/// ones, under the keys reports have always used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RuntimeCycle {
    /// The cycle's number, from 1.
    pub n: u32,
    /// When the cycle started, in milliseconds since the program started.
    pub t_ms: f64,
    /// What kind of collection, as the runtime names it: Go's `gc`, a JVM's `Pause Young`.
    #[serde(default = "go_kind")]
    pub kind: Cow<'static, str>,
    /// Why it ran, when the runtime says (a JVM's `Allocation Failure`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Heap in use when the cycle started.
    pub heap_start_bytes: u64,
    /// Heap in use after it: what it left live.
    pub heap_live_bytes: u64,
    /// The heap's capacity after it, when the runtime says (a JVM's committed heap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heap_capacity_bytes: Option<u64>,
    /// How long the program stood still for it, in milliseconds, when the runtime says (Go:
    /// its two stop-the-world phases, sweep termination and mark termination, by the clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_ms: Option<f64>,
    /// Go's own figures, for a Go cycle.
    #[serde(flatten)]
    pub go: Option<GoCycle>,
}

fn go_kind() -> Cow<'static, str> {
    Cow::Borrowed(go::KIND)
}

/// What Go's gctrace says of a cycle beyond what every runtime says.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GoCycle {
    /// Heap in use when marking ended (the start plus what was allocated during the cycle); to
    /// the byte where the runtime said (Go's pacer trace).
    pub heap_end_bytes: u64,
    /// The heap goal the cycle ran against.
    pub goal_bytes: u64,
    /// The share of the CPU the collector has used since the program started, in percent.
    pub cpu_percent: f64,
    /// The program asked for this cycle (`runtime.GC()`), rather than the pacer.
    pub forced: bool,
    /// Scannable goroutine stacks, when the runtime reports them (whole MiB, rounded down).
    pub stacks_bytes: Option<u64>,
    /// Scannable globals, when the runtime reports them (as precise as the stacks).
    pub globals_bytes: Option<u64>,
    /// What the cycle scanned, to the byte, when the runtime said (the pacer's trace, for
    /// most cycles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_work: Option<ScanWork>,
    /// GOMAXPROCS, as the collector ran with it.
    pub procs: u32,
    /// The wall time of the cycle's concurrent mark phase, in milliseconds.
    #[serde(default)]
    pub mark_ms: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `memspike exec`'s report carries cycles under these keys (issue 9).
    /// `java` is the JVM, anything else Go unless told; `none` reads nothing.
    #[test]
    fn the_runtime_is_the_programs_or_the_one_given() {
        let name = |choice: TraceChoice, program: &str| choice.tracer(program).name();
        assert_eq!(name(TraceChoice::Auto, "java"), "jvm");
        assert_eq!(name(TraceChoice::Auto, "my-service"), "go");
        assert_eq!(name(TraceChoice::Go, "java"), "go");
        assert_eq!(name(TraceChoice::Jvm, "launcher.sh"), "jvm");
        assert_eq!(name(TraceChoice::Auto, "node"), "node");
        assert_eq!(name(TraceChoice::Node, "app"), "node");
        let mut none = TraceChoice::None.tracer("java");
        assert_eq!(none.name(), "none");
        assert_eq!(none.env(&|_| None), None);
        assert_eq!(none.parse_line("gc 1 @0.001s 5%: ..."), None);
    }

    #[test]
    fn a_cycle_serializes_under_the_reports_keys() {
        let cycle = RuntimeCycle {
            n: 2,
            t_ms: 1133.0,
            kind: "gc".into(),
            cause: None,
            heap_start_bytes: 38 << 20,
            heap_live_bytes: 24 << 20,
            heap_capacity_bytes: None,
            pause_ms: None,
            go: Some(GoCycle {
                heap_end_bytes: 39 << 20,
                goal_bytes: 54 << 20,
                cpu_percent: 7.0,
                forced: true,
                stacks_bytes: None,
                globals_bytes: Some(2 << 20),
                scan_work: None,
                procs: 2,
                mark_ms: Some(0.93),
            }),
        };
        let json = serde_json::to_value(&cycle).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "n": 2, "t_ms": 1133.0, "kind": "gc", "heap_start_bytes": 39845888u64,
                "heap_end_bytes": 40894464u64, "heap_live_bytes": 25165824u64,
                "goal_bytes": 56623104u64, "cpu_percent": 7.0, "forced": true,
                "stacks_bytes": null, "globals_bytes": 2097152u64, "procs": 2, "mark_ms": 0.93,
            })
        );
        // Read back, and as facts recorded before cycles had a kind (issue 20) wrote them.
        assert_eq!(
            serde_json::from_value::<RuntimeCycle>(json.clone()).unwrap(),
            cycle
        );
        let mut older = json;
        older.as_object_mut().unwrap().remove("kind");
        assert_eq!(
            serde_json::from_value::<RuntimeCycle>(older).unwrap(),
            cycle
        );
        // Another runtime's cycle has no Go figures.
        let other = serde_json::json!({"n": 1, "t_ms": 21.0, "kind": "Pause Young",
            "cause": "Allocation Failure", "heap_start_bytes": 1u64 << 20,
            "heap_live_bytes": 0, "heap_capacity_bytes": 7u64 << 20, "pause_ms": 0.96});
        let read: RuntimeCycle = serde_json::from_value(other).unwrap();
        assert_eq!((read.go, read.heap_capacity_bytes), (None, Some(7 << 20)));
    }
}
