//! Node.js's collection trace: V8's `--trace-gc`, one line per collection, which V8 prints on
//! **stdout** (Node 20.20 here: stderr holds only a fatal error). It is asked for on node's
//! command line, ahead of the user's arguments: node refuses it in `NODE_OPTIONS` (which still
//! carries a policy's heap sizes, allowed there). From Node 20 (Debian's, V8 11.3):
//!
//! ```text
//! [15355:0x17228fa0]       21 ms: Scavenge 4.0 (5.0) -> 4.0 (6.0) MB, 0.64 / 0.00 ms  (average mu = 1.000, current mu = 1.000) allocation failure;
//! [15355:0x17228fa0]       49 ms: Mark-Compact 39.9 (72.5) -> 7.7 (40.3) MB, 2.08 / 0.00 ms  (average mu = 0.892, current mu = 0.892) allocation failure; scavenge might not succeed
//! ```
//!
//! - `[pid:isolate]`: the process and the isolate, skipped;
//! - `T ms`: milliseconds since the isolate started;
//! - the kind (`Scavenge`, `Mark-Compact`, `Mark-Compact (reduce)`; newer V8s add others), up
//!   to the heap;
//! - `B (Bc) -> A (Ac) MB`: the heap in use before and after, and the heap's committed size
//!   before and after, in MiB to one decimal (V8's `MB` is 2^20);
//! - `P / E ms`: the pause, and the time spent on external memory;
//! - what follows the mutator utilisation (`(average mu = …, current mu = …)`) is the cause.
//!
//! `--trace-gc-verbose` adds, after each collection, the heap's spaces; its `Memory allocator,
//! used: U KB, available: A KB` line sums to V8's `heap_size_limit` (`v8.getHeapStatistics()`,
//! checked on Node 20 under a 128 MiB group, with and without `--max-old-space-size`): the
//! ceiling past which V8 aborts with "JavaScript heap out of memory". memspike asks for both and
//! shows the user only the lines the user asked for.
//!
//! V8 documents neither format as stable, so both are read defensively: a line without the
//! prefix, the time, a heap transition or a pause is not a collection (V8's `[HeapController]`
//! lines, the program's own output), and no input panics. The fixtures in `testdata/node*` are
//! real output of `reference/javascript/spike.js` under Node 20.20.2 (V8 11.3) and Debian 12's
//! Node 18.20.4 (V8 10.2, whose full collection is `Mark-sweep`). Node 18 sizes its heap from
//! the machine's memory, not the group's (4 GiB here in a 128 MiB group); Node 20 from the
//! group's (259 MiB in 128 MiB).

use std::borrow::Cow;

use super::{Invocation, PolicyVar, RuntimeCycle, RuntimeTrace};
use crate::{
    policy::{Policy, Runtime},
    size::{Amount, human},
};

/// The variable every `node` reads its extra options from.
const NODE_OPTIONS: &str = "NODE_OPTIONS";
const TRACE_GC: &str = "--trace-gc";
const TRACE_VERBOSE: &str = "--trace-gc-verbose";
/// The verbose line whose two figures sum to the heap's limit.
const ALLOCATOR: &str = "Memory allocator,";
/// The options a Node policy decides, as V8 spells them (`_` and `-` alike).
const OLD_SPACE: &str = "--max-old-space-size";
const SEMI_SPACE: &str = "--max-semi-space-size";
const MIB: u64 = 1 << 20;

/// What V8 writes on stderr as it aborts at its heap's limit (`FATAL ERROR: Reached heap
/// limit Allocation failed - JavaScript heap out of memory`; Node then dies of SIGABRT).
pub const OUT_OF_HEAP: super::OutOfHeap = super::OutOfHeap {
    runtime: Runtime::Node,
    said: "JavaScript heap out of memory",
    words: "V8 ran out of heap (\"JavaScript heap out of memory\") and aborted",
};

/// V8's `--trace-gc` reader.
#[derive(Clone, Copy, Debug, Default)]
pub struct NodeTrace {
    /// Which of V8's traces the user asked for: collections (`--trace-gc`), and the spaces
    /// after each (`--trace-gc-verbose`, which prints the collections too).
    asked_gc: bool,
    asked_verbose: bool,
    /// Collections read so far: V8 does not number them.
    cycles: u32,
    /// `heap_size_limit`, from the last verbose allocator line.
    heap_limit: Option<u64>,
}

impl RuntimeTrace for NodeTrace {
    fn runtime(&self) -> Option<Runtime> {
        Some(Runtime::Node)
    }

    fn on_stdout(&self) -> bool {
        true
    }

    /// Node refuses V8's trace flags in `NODE_OPTIONS` ("--trace-gc is not allowed in
    /// NODE_OPTIONS"): they go on its command line instead ([`RuntimeTrace::leading_args`]).
    fn env(&mut self, _lookup: &dyn Fn(&str) -> Option<String>) -> Option<(String, String)> {
        None
    }

    /// `--trace-gc` and `--trace-gc-verbose`, each unless node's own options have it already.
    fn leading_args(&mut self, args: &[String]) -> Vec<String> {
        let has = |flag: &str| node_options(args).any(|o| same_flag(o, flag));
        self.asked_gc = has(TRACE_GC);
        self.asked_verbose = has(TRACE_VERBOSE);
        [
            (self.asked_gc || self.asked_verbose, TRACE_GC),
            (self.asked_verbose, TRACE_VERBOSE),
        ]
        .into_iter()
        .filter(|(asked, _)| !asked)
        .map(|(_, flag)| flag.to_owned())
        .collect()
    }

    /// A V8 line the user did not ask for is memspike's: a collection without `--trace-gc`, a
    /// verbose line without `--trace-gc-verbose`.
    fn echoes(&self, line: &str) -> bool {
        match isolate_line(line) {
            None => true,
            Some(rest) if is_timed(rest) && rest.contains(" MB, ") => {
                self.asked_gc || self.asked_verbose
            }
            Some(_) => self.asked_verbose,
        }
    }

    /// An old space (`--max-old-space-size`, in `NODE_OPTIONS` or on node's command line, the
    /// last one winning) above the group's limit: the kernel, not V8, then ends the program if
    /// its heap grows that far.
    fn warning(&self, program: &Invocation, limit: u64) -> Option<String> {
        let options = (program.env)(NODE_OPTIONS).unwrap_or_default();
        let (given, mib) = options
            .split_whitespace()
            .chain(node_options(program.args))
            .filter_map(|o| Some((o, flag_value(o, OLD_SPACE)?)))
            .last()?;
        let bytes = mib.parse::<u64>().ok()?.checked_mul(MIB)?;
        (bytes > limit).then(|| {
            format!(
                "V8's old space {given} ({}) is above the group's {} limit: if its heap grows there, the kernel kills Node before V8's own \"heap out of memory\" can",
                human(bytes),
                human(limit)
            )
        })
    }

    fn parse_line(&mut self, line: &str) -> Option<RuntimeCycle> {
        let rest = isolate_line(line)?;
        if let Some(allocator) = rest.strip_prefix(ALLOCATOR) {
            if let Some(limit) = allocator_limit(allocator) {
                self.heap_limit = Some(limit);
            }
            return None;
        }
        let cycle = parse(rest, self.cycles.checked_add(1)?)?;
        self.cycles = cycle.n;
        Some(cycle)
    }

    fn heap_limit(&self) -> Option<u64> {
        self.heap_limit
    }

    /// `NODE_OPTIONS`: the user's options without the spaces' sizes, then the policy's, in
    /// whole MiB (at least 1). Node's command line wins over `NODE_OPTIONS`, so a command that
    /// gives a space's size itself cannot take a policy.
    fn policy_env(
        &self,
        policy: &Policy,
        limit: u64,
        program: &Invocation,
    ) -> Result<Vec<PolicyVar>, String> {
        let command_line = node_options(program.args);
        super::options_policy(
            policy,
            Runtime::Node,
            NODE_OPTIONS,
            program,
            command_line,
            decided,
            |policy| {
                let node = policy.node.clone().unwrap_or_default();
                let mib = |a: Amount| (a.resolve(limit) / MIB).max(1);
                Ok([
                    (OLD_SPACE, node.max_old_space),
                    (SEMI_SPACE, node.max_semi_space),
                ]
                .into_iter()
                .filter_map(|(flag, size)| Some(format!("{flag}={}", mib(size?))))
                .collect())
            },
        )
    }
}

/// An option a Node policy decides: a space's size.
fn decided(option: &str) -> bool {
    [OLD_SPACE, SEMI_SPACE]
        .iter()
        .any(|flag| flag_value(option, flag).is_some() || same_flag(option, flag))
}

/// Whether `option` is `flag`, V8 reading `_` as `-`.
fn same_flag(option: &str, flag: &str) -> bool {
    option.len() == flag.len()
        && option
            .bytes()
            .zip(flag.bytes())
            .all(|(o, f)| o == f || (o == b'_' && f == b'-'))
}

/// The value of `--flag=value` when `option` is `flag`'s.
fn flag_value<'a>(option: &'a str, flag: &str) -> Option<&'a str> {
    let (name, value) = option.split_once('=')?;
    same_flag(name, flag).then_some(value)
}

/// The options `node` reads itself: its arguments up to the script (or `-e`'s code), the
/// program's after. The values of options that take one (`-r MODULE`) are skipped.
fn node_options(args: &[String]) -> impl Iterator<Item = &str> {
    const TAKE_VALUE: [&str; 7] = [
        "-r",
        "--require",
        "--import",
        "--loader",
        "--experimental-loader",
        "--conditions",
        "-C",
    ];
    let mut args = args.iter().map(String::as_str);
    std::iter::from_fn(move || {
        let arg = args.next()?;
        if !arg.starts_with('-') || matches!(arg, "-" | "--" | "-e" | "--eval" | "-p" | "--print") {
            return None;
        }
        if TAKE_VALUE.contains(&arg) {
            args.next();
        }
        Some(arg)
    })
}

/// What follows V8's `[pid:isolate]` prefix, trimmed; `None` for a line without one.
fn isolate_line(line: &str) -> Option<&str> {
    let inner = line.strip_prefix('[')?;
    let (prefix, rest) = inner.split_once(']')?;
    let (pid, isolate) = prefix.split_once(':')?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) || !isolate.starts_with("0x") {
        return None;
    }
    Some(rest.trim())
}

/// Whether a prefixed line starts with V8's `T ms: `.
fn is_timed(rest: &str) -> bool {
    rest.split_once(" ms: ")
        .is_some_and(|(t, _)| t.parse::<f64>().is_ok())
}

/// `used: U KB, available: A KB` as bytes, summed.
fn allocator_limit(text: &str) -> Option<u64> {
    let (_, used) = text.split_once("used:")?;
    let (used, available) = used.split_once("KB, available:")?;
    let (available, _) = available.split_once("KB")?;
    let kib = |t: &str| t.trim().parse::<u64>().ok();
    kib(used)?.checked_add(kib(available)?)?.checked_mul(1024)
}

/// One collection line (after the prefix), the `n`th, or `None`.
fn parse(rest: &str, n: u32) -> Option<RuntimeCycle> {
    let (t, body) = rest.split_once(" ms: ")?;
    let t_ms = finite(t)?;
    let (heap, after) = body.split_once(" MB, ")?;
    let (before, now) = heap.split_once(" -> ")?;
    let (before, _capacity_before) = sized(before)?;
    let (kind, start) = before.rsplit_once(' ')?;
    let (live, capacity) = sized(now)?;
    if live.contains(' ') || kind.is_empty() || kind.starts_with('[') {
        return None;
    }
    let (pause, rest) = after.split_once(" ms")?;
    let (pause, _external) = pause.split_once(" / ")?;
    let cause = rest
        .split_once("current mu = ")
        .and_then(|(_, r)| r.split_once(") "))
        .map(|(_, cause)| cause.trim().trim_end_matches(';').trim())
        .filter(|c| !c.is_empty());
    Some(RuntimeCycle {
        n,
        t_ms,
        kind: Cow::Owned(kind.to_owned()),
        cause: cause.map(str::to_owned),
        heap_start_bytes: mib(start)?,
        heap_live_bytes: mib(live)?,
        heap_capacity_bytes: Some(mib(capacity)?),
        pause_ms: Some(finite(pause)?),
        go: None,
    })
}

/// `X (C)`: the text before the parenthesised committed size, and that size.
fn sized(text: &str) -> Option<(&str, &str)> {
    let (used, committed) = text.trim().rsplit_once(" (")?;
    Some((used, committed.strip_suffix(')')?))
}

/// A non-negative, finite number.
fn finite(text: &str) -> Option<f64> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
}

/// MiB to one decimal, as V8 prints them, in bytes.
fn mib(text: &str) -> Option<u64> {
    let v = finite(text)?;
    (v < (u64::MAX >> 21) as f64).then(|| (v * MIB as f64).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARK_COMPACT: &str = include_str!("testdata/node20.mark-compact.stdout");
    const OOM: &str = include_str!("testdata/node20.oom.stdout");
    const MARK_SWEEP: &str = include_str!("testdata/node18.mark-sweep.stdout");
    const OOM_18: &str = include_str!("testdata/node18.oom.stdout");

    fn read_all(text: &str) -> (Vec<RuntimeCycle>, NodeTrace) {
        let mut t = NodeTrace::default();
        let cycles = text.lines().filter_map(|l| t.parse_line(l)).collect();
        (cycles, t)
    }

    /// Lines read by hand, against what the parser makes of them.
    #[test]
    fn collections_read_as_they_print() {
        let mut t = NodeTrace::default();
        let c = t
            .parse_line("[15176:0x1bb65ed0]       21 ms: Scavenge 4.0 (5.0) -> 4.0 (6.0) MB, 0.64 / 0.00 ms  (average mu = 1.000, current mu = 1.000) allocation failure; ")
            .unwrap();
        assert_eq!((c.n, c.t_ms, c.kind.as_ref()), (1, 21.0, "Scavenge"));
        assert_eq!(c.cause.as_deref(), Some("allocation failure"));
        assert_eq!(
            (
                c.heap_start_bytes,
                c.heap_live_bytes,
                c.heap_capacity_bytes,
                c.pause_ms
            ),
            (4 * MIB, 4 * MIB, Some(6 * MIB), Some(0.64))
        );
        let c = t
            .parse_line("[15355:0x17228fa0]       30 ms: Mark-Compact 22.0 (38.6) -> 17.5 (34.3) MB, 0.75 / 0.00 ms  (+ 0.3 ms in 5 steps since start of marking, biggest step 0.1 ms, walltime since start of marking 4 ms) (average mu = 1.000, current mu = 1.000) finalize incremental marking via stack guard; GC in old space requested")
            .unwrap();
        assert_eq!((c.n, c.kind.as_ref()), (2, "Mark-Compact"));
        assert_eq!(
            c.cause.as_deref(),
            Some("finalize incremental marking via stack guard; GC in old space requested")
        );
        assert_eq!(c.heap_live_bytes, (17.5 * MIB as f64) as u64);
        let c = t
            .parse_line("[1:0xabc] 7.5 ms: Mark-Compact (reduce) 3.1 (4.0) -> 2.9 (3.0) MB, 1.1 / 0.0 ms  (average mu = 0.9, current mu = 0.9) memory reducer; GC in old space requested")
            .unwrap();
        assert_eq!(
            (c.n, c.kind.as_ref(), c.t_ms),
            (3, "Mark-Compact (reduce)", 7.5)
        );
        for other in [
            "[15176:0x1bb65ed0]       28 ms: [HeapController] Limit: old size: 16349 KB, new limit: 25548 KB (1.3)",
            "[15176:0x1bb65ed0] All spaces,             used:   4121 KB, available: 261049 KB, committed:   6128 KB",
            "phase=spike bytes=33554432",
            "[x] 1 ms: Scavenge 1.0 (1.0) -> 1.0 (1.0) MB, 0.1 / 0.0 ms",
            "",
        ] {
            assert_eq!(t.parse_line(other), None, "{other}");
        }
        assert_eq!(t.cycles, 3);
    }

    /// Every collection line of the real traces is read, in order, numbered from 1; the
    /// program's own lines and V8's others are not collections; the verbose lines give the
    /// heap's limit.
    #[test]
    fn the_fixtures_read_line_by_line() {
        for (name, text) in [
            ("20 mark-compact", MARK_COMPACT),
            ("20 oom", OOM),
            ("18 mark-sweep", MARK_SWEEP),
            ("18 oom", OOM_18),
        ] {
            let (cycles, t) = read_all(text);
            let collections = text
                .lines()
                .filter(|l| l.contains(" MB, ") && l.contains(" ms: "))
                .count();
            assert_eq!(cycles.len(), collections, "{name}");
            assert!(cycles.len() >= 5, "{name}");
            assert!(cycles.iter().enumerate().all(|(i, c)| c.n == i as u32 + 1));
            assert!(cycles.windows(2).all(|w| w[0].t_ms <= w[1].t_ms), "{name}");
            // V8 11 (Node 20) names its full collection Mark-Compact, V8 10 (Node 18)
            // Mark-sweep.
            assert!(
                cycles
                    .iter()
                    .any(|c| c.kind == "Mark-Compact" || c.kind == "Mark-sweep"),
                "{name}"
            );
            assert!(cycles.iter().all(|c| c.cause.is_some()), "{name}");
            assert!(t.heap_limit().is_some(), "{name}");
        }
        // --max-old-space-size=40: V8's limit is the old space and three semi-spaces (the
        // verbose lines' sum, as heap_size_limit says it).
        assert_eq!(read_all(MARK_COMPACT).1.heap_limit(), Some(92_274_688));
        assert_eq!(read_all(MARK_SWEEP).1.heap_limit(), Some(92_274_688));
        assert!(MARK_COMPACT.lines().any(|l| l == "phase=done"));
    }

    /// memspike asks for the trace beside the user's options and hides what the user did not
    /// ask for: the collections without `--trace-gc`, the spaces without `--trace-gc-verbose`.
    #[test]
    fn the_trace_is_asked_for_beside_the_users_options() {
        let collection = "[15176:0x1bb65ed0]       21 ms: Scavenge 4.0 (5.0) -> 4.0 (6.0) MB, 0.64 / 0.00 ms  (average mu = 1.000, current mu = 1.000) allocation failure; ";
        let verbose =
            "[15176:0x1bb65ed0] Memory allocator,       used:  10056 KB, available: 255160 KB";
        let own = "phase=spike bytes=33554432";
        let args = |a: &[&str]| strings(a);
        let mut t = NodeTrace::default();
        assert_eq!(t.env(&|_| Some("--max-old-space-size=64".into())), None);
        assert_eq!(
            t.leading_args(&args(&["app.js", "--trace-gc"])),
            [TRACE_GC, TRACE_VERBOSE]
        );
        assert_eq!(
            [collection, verbose, own].map(|l| t.echoes(l)),
            [false, false, true]
        );
        let mut t = NodeTrace::default();
        assert_eq!(
            t.leading_args(&args(&["--trace_gc", "-r", "x", "app.js"])),
            [TRACE_VERBOSE]
        );
        assert_eq!(
            [collection, verbose, own].map(|l| t.echoes(l)),
            [true, false, true]
        );
        let mut t = NodeTrace::default();
        assert!(
            t.leading_args(&args(&["--trace-gc-verbose", "app.js"]))
                .is_empty()
        );
        assert!(t.echoes(collection) && t.echoes(verbose));
        assert!(t.parse_line(verbose).is_none());
        assert_eq!(t.heap_limit(), Some(265_216 * 1024));
    }

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Issue 20: an old space above the group's limit is called out before the run, naming
    /// both; node's command line wins over NODE_OPTIONS, and the script's arguments are not
    /// node's.
    #[test]
    fn an_old_space_above_the_limit_is_called_out() {
        let t = NodeTrace::default();
        let limit = 128 * MIB;
        let warning = |args: &[&str], options: Option<&str>| {
            let args = strings(args);
            let env = |_: &str| options.map(str::to_owned);
            t.warning(
                &Invocation {
                    args: &args,
                    env: &env,
                },
                limit,
            )
        };
        let warned = warning(&["--max-old-space-size=512", "spike.js"], None).unwrap();
        assert!(
            warned.contains("--max-old-space-size=512 (512.0 MiB)")
                && warned.contains("128.0 MiB limit"),
            "{warned}"
        );
        assert_eq!(
            warning(&["--max-old-space-size=32", "spike.js"], None),
            None
        );
        assert_eq!(
            warning(&["spike.js", "--max-old-space-size=512"], None),
            None
        );
        assert!(warning(&["spike.js"], Some("--max_old_space_size=1024")).is_some());
        assert_eq!(
            warning(
                &["--max-old-space-size=64", "spike.js"],
                Some("--max-old-space-size=1024")
            ),
            None
        );
        assert_eq!(warning(&["--max-old-space-size=lots", "a.js"], None), None);
    }

    /// Issue 20: a Node policy is its options in NODE_OPTIONS, in place of the user's own;
    /// a command line that sizes a space itself, and a Go policy, are turned away.
    #[test]
    fn a_node_policy_is_its_options() {
        use crate::policy::NodePolicy;
        let limit = 128 * MIB;
        let policy = Policy {
            node: Some(NodePolicy {
                max_old_space: Some(Amount::Percent(25.0)),
                max_semi_space: Some(Amount::Bytes(4 * MIB)),
            }),
            ..Policy::default()
        };
        let env = |p: &Policy, args: &[&str], options: Option<&str>| {
            let args = strings(args);
            let lookup = |_: &str| options.map(str::to_owned);
            NodeTrace::default()
                .policy_env(
                    p,
                    limit,
                    &Invocation {
                        args: &args,
                        env: &lookup,
                    },
                )
                .map(|vars| vars[0].value.clone())
        };
        assert_eq!(
            env(
                &policy,
                &["spike.js"],
                Some("--max_old_space_size=900 --enable-source-maps")
            )
            .unwrap(),
            "--enable-source-maps --max-old-space-size=32 --max-semi-space-size=4"
        );
        let tiny = Policy {
            node: Some(NodePolicy {
                max_old_space: Some(Amount::Bytes(1000)),
                max_semi_space: None,
            }),
            ..Policy::default()
        };
        assert_eq!(
            env(&tiny, &["a.js"], None).unwrap(),
            "--max-old-space-size=1"
        );
        let e = env(&policy, &["--max-old-space-size=512", "spike.js"], None).unwrap_err();
        assert!(
            e.contains("gives --max-old-space-size=512, which wins"),
            "{e}"
        );
        assert!(
            env(
                &policy,
                &["-r", "x", "a.js", "--max-old-space-size=5"],
                None
            )
            .is_ok()
        );
        let e = env(&Policy::default(), &["a.js"], None).unwrap_err();
        assert!(e.contains("Go's, and this program runs Node.js"), "{e}");
    }

    proptest::proptest! {
        /// Any text, and any text after V8's prefix, is read or refused without a panic.
        #[test]
        fn any_text_is_read_or_refused(text in ".{0,300}") {
            let mut t = NodeTrace::default();
            let _ = t.parse_line(&text);
            let _ = t.parse_line(&format!("[1:0x1] {text}"));
            let _ = t.parse_line(&format!("[1:0x1]  5 ms: {text}"));
            let _ = t.parse_line(&format!("[1:0x1] Memory allocator, {text}"));
            let _ = t.echoes(&text);
        }
    }
}
