//! The runtime's own account of its collections, read from a traced program's stderr: how to
//! turn a runtime's trace on (an environment variable) and how to read one cycle from one
//! line. One file per runtime implements [`RuntimeTrace`]; [`go`] reads Go's `gctrace`, [`jvm`]
//! the JVM's unified GC log.
//!
//! `memspike exec` calls [`RuntimeTrace::parse_line`] on every line the command writes to
//! stderr, so a line that is not a trace line costs a prefix check and nothing is allocated.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::policy::Policy;

pub mod go;
pub mod jvm;

pub use go::{GoTrace, gogc_from_env, next_goal_after};

/// Whose trace `exec` reads: the runtime detected from the program, or the one given
/// (`--trace`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum TraceChoice {
    /// A `java` launcher's program is the JVM; any other, Go (whose `GODEBUG` a program of
    /// another language ignores, and a wrapper passes on to the Go program it starts).
    #[default]
    Auto,
    Go,
    Jvm,
    /// Read no runtime's trace: the kernel's evidence alone.
    None,
}

impl TraceChoice {
    /// The reader for a program whose file is named `program_name` (`java`, `node`, ...).
    pub fn tracer(self, program_name: &str) -> Box<dyn RuntimeTrace> {
        match self {
            TraceChoice::Auto if program_name == "java" => Box::new(jvm::JvmTrace::default()),
            TraceChoice::Auto | TraceChoice::Go => Box::new(GoTrace::default()),
            TraceChoice::Jvm => Box::new(jvm::JvmTrace::default()),
            TraceChoice::None => Box::new(NoTrace),
        }
    }
}

/// No runtime's trace: nothing is asked for, no line is a cycle.
#[derive(Clone, Copy, Debug)]
pub struct NoTrace;

impl RuntimeTrace for NoTrace {
    fn name(&self) -> &'static str {
        "none"
    }

    fn env(&mut self, _lookup: &dyn Fn(&str) -> Option<String>) -> Option<(String, String)> {
        None
    }

    fn parse_line(&mut self, _line: &str) -> Option<RuntimeCycle> {
        None
    }

    fn policy_env(&self, _policy: &Policy, _limit: u64) -> Result<Vec<PolicyVar>, String> {
        Err("no runtime was named (--trace none): its policies cannot be given".into())
    }
}

/// A runtime whose collections can be traced on stderr.
///
/// `Send`, so that the reader of the traced program's stderr can own it on its own thread.
pub trait RuntimeTrace: Send {
    /// The runtime's short name, as reports show it (`"go"`).
    fn name(&self) -> &'static str;

    /// The environment variable to set, and its value, to turn the trace on; `lookup` gives
    /// the value a variable has in the program's environment (`None` when unset). The user's
    /// other settings are kept, and a trace setting the user gave is left as given. `None`
    /// when this runtime needs no variable. The trace remembers which of the lines it asked
    /// for the user did not ([`RuntimeTrace::echoes`]).
    fn env(&mut self, lookup: &dyn Fn(&str) -> Option<String>) -> Option<(String, String)>;

    /// What to warn of before the run: a setting of the runtime's own, given on the command
    /// line (`args`, the program's arguments) or in the environment (`lookup`), that the group's
    /// limit of `limit` bytes will overrule (a JVM's heap maximum above it). `None` by default.
    fn warning(
        &self,
        args: &[String],
        lookup: &dyn Fn(&str) -> Option<String>,
        limit: u64,
    ) -> Option<String> {
        let _ = (args, lookup, limit);
        None
    }

    /// Whether a stderr line goes on to the user's stderr: `false` for a line of a trace that
    /// memspike turned on for its own reading and the user did not ask for.
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

    /// The cycle a stderr line reports, or `None` for any other line (the program's own
    /// output, the runtime's other traces, a malformed or truncated trace line). Never
    /// panics; allocates nothing on a line that cannot be a trace line.
    fn parse_line(&mut self, line: &str) -> Option<RuntimeCycle>;

    /// The variables that give a program of this runtime `policy` under a group limit of
    /// `limit` bytes: each one the policy decides, so that none of the user's own settings of
    /// them leaks into a comparison. A variable that holds a list of settings (Go's `GODEBUG`)
    /// is returned with the policy's settings only, to be appended to the user's. `Err` says
    /// why the runtime cannot take the policy from its environment (it needs code inside the
    /// program, or it cannot run under the limit).
    fn policy_env(&self, policy: &Policy, limit: u64) -> Result<Vec<PolicyVar>, String>;
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
    /// How long the program stood still for it, in milliseconds, when the runtime says.
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
        let mut none = TraceChoice::None.tracer("java");
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
