//! The JVM's collection log: unified logging (JEP 158, JEP 271) with the `gc` tag at `info`
//! prints one line per pause, on stderr when memspike asks for it (`-Xlog:gc:stderr` in
//! `JAVA_TOOL_OPTIONS`, which every JVM reads). From JDK 17 (Debian's):
//!
//! ```text
//! [0.049s][info][gc] GC(0) Pause Young (Allocation Failure) 12M->12M(46M) 6.132ms
//! [0.031s][info][gc] GC(0) Pause Young (Normal) (G1 Evacuation Pause) 6M->6M(48M) 2.101ms
//! [0.045s][info][gc] GC(5) Pause Remark 41M->33M(48M) 0.387ms
//! ```
//!
//! - `[T s]`: the uptime decoration, seconds since the JVM started (three decimals); the other
//!   decorations (level, tags, and any the user adds) are skipped;
//! - `GC(N)`: the collection's id, from 0 (a G1 concurrent cycle's remark and cleanup pauses
//!   carry its id); the cycle's `n` is N + 1;
//! - what follows up to the heap is the kind, its last parenthesised part the cause: Serial's
//!   and Parallel's `Pause Young (Allocation Failure)`, `Pause Full (Ergonomics)`, G1's
//!   `Pause Young (Normal) (G1 Evacuation Pause)` (kind `Pause Young (Normal)`), `Pause Remark`
//!   (no cause);
//! - `B->A(C)`: the heap in use before and after the pause and its capacity (the committed
//!   heap), each a whole number of `K`, `M` or `G` (binary units, rounded down);
//! - `P ms`: the pause.
//!
//! JDK 21 prints the same shape (`GCTraceTimeLoggerImpl::log_end`: the title, ` (cause)`,
//! ` %zuM->%zuM(%zuM)`, ` %.3fms`); ZGC's lines (percentages, seconds) are not read.
//!
//! The format is documented as not stable across releases (JEP 271), so it is read
//! defensively: a line without the uptime, the id, a heap transition or a pause (`Using G1`,
//! `Concurrent Mark Cycle`, `To-space exhausted`, the program's own output) is not a cycle,
//! and no input panics. The fixtures in `testdata/jdk17.*.stderr` are real stderr of OpenJDK
//! 17.0.15 (Debian 12) with `-XX:+UseSerialGC`, `-XX:+UseParallelGC` and `-XX:+UseG1GC`
//! (`-Xlog:gc:stderr`, on the command line or in `JAVA_TOOL_OPTIONS`).

use std::borrow::Cow;

use super::{Invocation, PolicyVar, RuntimeCycle, RuntimeTrace};
use crate::{
    policy::{Policy, Runtime},
    size::human,
};

/// The variable every JVM reads its extra options from, and the option memspike adds: the
/// `gc` log, and the `gc+init` lines that say the heap's maximum as the JVM settled it.
const TOOL_OPTIONS: &str = "JAVA_TOOL_OPTIONS";
const LOG_GC: &str = "-Xlog:gc,gc+init:stderr";
/// What the JVM says on stderr when it reads `JAVA_TOOL_OPTIONS`.
const PICKED_UP: &str = "Picked up JAVA_TOOL_OPTIONS:";
/// The `gc+init` line with the heap's maximum (JDK 17: `[0.004s][info][gc,init] Heap Max
/// Capacity: 12056M`).
const INIT_TAG: &str = "[gc,init] ";
const HEAP_MAX: &str = "Heap Max Capacity: ";

/// What the JVM writes on stderr when its heap's limit ends the program (uncaught in `main`,
/// or with `-XX:+ExitOnOutOfMemoryError`: "Terminating due to java.lang.OutOfMemoryError").
pub const OUT_OF_HEAP: super::OutOfHeap = super::OutOfHeap {
    runtime: Runtime::Jvm,
    said: "java.lang.OutOfMemoryError",
    words: "the JVM threw java.lang.OutOfMemoryError",
};

/// The JVM's unified GC log reader.
#[derive(Clone, Copy, Debug, Default)]
pub struct JvmTrace {
    /// memspike set `JAVA_TOOL_OPTIONS`: the JVM's note that it read them, and the `gc+init`
    /// lines, are memspike's, not the user's.
    set_options: bool,
    /// The heap's maximum, from the `gc+init` lines.
    heap_max: Option<u64>,
}

impl RuntimeTrace for JvmTrace {
    fn runtime(&self) -> Option<Runtime> {
        Some(Runtime::Jvm)
    }

    /// `JAVA_TOOL_OPTIONS` with the log appended to the user's options; when the user's
    /// already configure the `gc` log (`-Xlog:gc…`), they are kept as given (the log then goes
    /// where the user sent it).
    fn env(&mut self, lookup: &dyn Fn(&str) -> Option<String>) -> Option<(String, String)> {
        let existing = lookup(TOOL_OPTIONS).unwrap_or_default();
        if existing
            .split_whitespace()
            .any(|o| o.starts_with("-Xlog:gc"))
        {
            return None;
        }
        self.set_options = true;
        let value = if existing.trim().is_empty() {
            LOG_GC.to_owned()
        } else {
            format!("{} {LOG_GC}", existing.trim_end())
        };
        Some((TOOL_OPTIONS.to_owned(), value))
    }

    fn echoes(&self, line: &str) -> bool {
        !(self.set_options && (line.starts_with(PICKED_UP) || line.contains(INIT_TAG)))
    }

    /// A heap maximum above the group's limit (`-Xmx`, `-XX:MaxHeapSize`, or
    /// `-XX:MaxRAMPercentage` over 100): the kernel, not the JVM, then ends the program if its
    /// heap grows that far.
    fn warning(&self, program: &Invocation, limit: u64) -> Option<String> {
        let options = (program.env)(TOOL_OPTIONS).unwrap_or_default();
        let (given, max) = heap_max(
            options
                .split_whitespace()
                .chain(launcher_options(program.args)),
            limit,
        )?;
        (max > limit).then(|| {
            format!(
                "the JVM's heap maximum {given} ({}) is above the group's {} limit: if its heap grows there, the kernel kills it before the JVM's own OutOfMemoryError can",
                human(max),
                human(limit)
            )
        })
    }

    fn parse_line(&mut self, line: &str) -> Option<RuntimeCycle> {
        if let Some((_, init)) = line.split_once(INIT_TAG) {
            if let Some(max) = init.strip_prefix(HEAP_MAX).and_then(|m| size(m.trim_end())) {
                self.heap_max = Some(max);
            }
            return None;
        }
        parse(line)
    }

    fn heap_limit(&self) -> Option<u64> {
        self.heap_max
    }

    /// `JAVA_TOOL_OPTIONS`: the user's options without those the policy decides (the heap's
    /// maximum, the collector, exit on OutOfMemoryError), then the policy's. The command line's
    /// options win over `JAVA_TOOL_OPTIONS`, so a command that gives one of them itself cannot
    /// take a policy.
    fn policy_env(
        &self,
        policy: &Policy,
        limit: u64,
        program: &Invocation,
    ) -> Result<Vec<PolicyVar>, String> {
        let command_line = launcher_options(program.args);
        super::options_policy(
            policy,
            Runtime::Jvm,
            TOOL_OPTIONS,
            program,
            command_line,
            decided,
            |policy| {
                let jvm = policy.jvm.clone().unwrap_or_default();
                let mut options = Vec::new();
                if let Some(max) = jvm.heap_max {
                    options.push(format!("-Xmx{}", jvm_size(max.resolve(limit))));
                }
                if let Some(p) = jvm.max_ram_percentage {
                    if !(p > 0.0 && p <= 100.0) {
                        return Err(format!(
                            "its max_ram_percentage {p} is outside the JVM's range: give more than 0 and at most 100"
                        ));
                    }
                    options.push(format!("-XX:MaxRAMPercentage={p}"));
                }
                options.extend(jvm.collector.map(|c| c.option().to_owned()));
                if jvm.exit_on_out_of_memory {
                    options.push("-XX:+ExitOnOutOfMemoryError".to_owned());
                }
                Ok(options)
            },
        )
    }
}

/// Whether memspike may ask a running JVM for its Native Memory Tracking summary, as `jcmd PID
/// VM.native_memory summary` does (`memspike-supervisor`'s attach): the user turned tracking on
/// (`-XX:NativeMemoryTracking=summary` or `detail`, on the command line or in
/// `JAVA_TOOL_OPTIONS`), and nothing shuts the JVM's door to an attach. Asking takes a SIGQUIT,
/// which a JVM run with `-Xrs` does not catch (it would die of it) and one with
/// `-XX:+DisableAttachMechanism` answers with a thread dump on the program's stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NativeTracking {
    Off,
    Ask,
    /// Tracking is on, but the JVM cannot be asked: why.
    Closed(&'static str),
}

/// How `program`'s JVM keeps and gives its native memory account.
pub fn native_tracking(program: &Invocation) -> NativeTracking {
    let options = (program.env)(TOOL_OPTIONS).unwrap_or_default();
    let all: Vec<&str> = options
        .split_whitespace()
        .chain(launcher_options(program.args))
        .collect();
    let tracking = all
        .iter()
        .filter_map(|o| o.strip_prefix("-XX:NativeMemoryTracking="))
        .next_back();
    if !matches!(tracking, Some("summary" | "detail")) {
        return NativeTracking::Off;
    }
    let closed = |option: &str| all.iter().rev().find(|o| o.ends_with(option)).copied();
    if all.contains(&"-Xrs") || closed("ReduceSignalUsage") == Some("-XX:+ReduceSignalUsage") {
        return NativeTracking::Closed(
            "-Xrs: the JVM does not catch the SIGQUIT that opens its attach mechanism",
        );
    }
    if closed("DisableAttachMechanism") == Some("-XX:+DisableAttachMechanism") {
        return NativeTracking::Closed("-XX:+DisableAttachMechanism: the JVM takes no attach");
    }
    NativeTracking::Ask
}

/// The diagnostic command that gives Native Memory Tracking's summary.
pub const NATIVE_MEMORY_COMMAND: &str = "VM.native_memory summary";

/// A JVM's native memory as Native Memory Tracking accounted it at one moment.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct NativeMemory {
    /// When it was read, in milliseconds since the program started.
    pub t_ms: f64,
    /// All the JVM committed, its heap included (the summary's `Total`).
    pub committed_bytes: u64,
    /// Each category's committed memory, as the summary lists them (`Java Heap`, `Class`,
    /// `Thread`, `Code`, `GC`, …).
    pub categories: Vec<NativeCategory>,
}

/// One category of a Native Memory Tracking summary.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct NativeCategory {
    pub name: String,
    pub committed_bytes: u64,
}

/// The name of the heap's category, which the memory outside the heap leaves out.
pub const HEAP_CATEGORY: &str = "Java Heap";

impl NativeMemory {
    /// The categories, largest first.
    pub fn largest_first(&self) -> Vec<&NativeCategory> {
        let mut categories: Vec<&NativeCategory> = self.categories.iter().collect();
        categories.sort_by_key(|c| std::cmp::Reverse(c.committed_bytes));
        categories
    }

    /// Committed outside the heap: the total less the `Java Heap` category.
    pub fn outside_heap_bytes(&self) -> u64 {
        let heap = self
            .categories
            .iter()
            .find(|c| c.name == HEAP_CATEGORY)
            .map_or(0, |c| c.committed_bytes);
        self.committed_bytes.saturating_sub(heap)
    }
}

/// `jcmd PID VM.native_memory summary`'s output (JDK 17, 21), read at `t_ms`: its `Total:` line
/// and each `- NAME (reserved=RKB, committed=CKB)` line; `None` when it has no total (tracking
/// off: "Native memory tracking is not enabled").
pub fn native_memory(summary: &str, t_ms: f64) -> Option<NativeMemory> {
    let committed = |text: &str| -> Option<u64> {
        let (_, rest) = text.split_once("committed=")?;
        let (kb, _) = rest.split_once("KB")?;
        kb.trim().parse::<u64>().ok()?.checked_mul(1024)
    };
    let mut total = None;
    let mut categories = Vec::new();
    for line in summary.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Total:") {
            total = committed(rest);
        } else if let Some(rest) = line.strip_prefix('-')
            && let Some((name, figures)) = rest.split_once(" (reserved=")
            && let Some(bytes) = committed(figures)
        {
            categories.push(NativeCategory {
                name: name.trim().to_owned(),
                committed_bytes: bytes,
            });
        }
    }
    Some(NativeMemory {
        t_ms,
        committed_bytes: total?,
        categories,
    })
}

/// An option a JVM policy decides: the heap's maximum, the collector, exit on
/// OutOfMemoryError.
fn decided(option: &str) -> bool {
    ["-Xmx", "-XX:MaxHeapSize=", "-XX:MaxRAMPercentage="]
        .iter()
        .any(|p| option.starts_with(p))
        || ((option.starts_with("-XX:+Use") || option.starts_with("-XX:-Use"))
            && option.ends_with("GC"))
        || option.ends_with("ExitOnOutOfMemoryError") && option.starts_with("-XX:")
}

/// The options `java` reads itself: its arguments up to the main class, the source file,
/// `-jar`'s file or `-m`'s module (what follows is the program's). The values of options that
/// take one (`-cp PATH`) are skipped.
fn launcher_options(args: &[String]) -> impl Iterator<Item = &str> {
    const TAKE_VALUE: [&str; 13] = [
        "-cp",
        "-classpath",
        "--class-path",
        "-p",
        "--module-path",
        "--upgrade-module-path",
        "--add-modules",
        "--add-reads",
        "--add-exports",
        "--add-opens",
        "--limit-modules",
        "--patch-module",
        "--enable-native-access",
    ];
    let mut args = args.iter().map(String::as_str);
    std::iter::from_fn(move || {
        let arg = args.next()?;
        if !arg.starts_with('-') || matches!(arg, "-jar" | "-m" | "--module") {
            return None;
        }
        if TAKE_VALUE.contains(&arg) {
            args.next();
        }
        Some(arg)
    })
}

/// A size as `-Xmx` takes it: whole MiB when it is, else KiB.
fn jvm_size(bytes: u64) -> String {
    match bytes % (1 << 20) {
        0 => format!("{}m", bytes >> 20),
        _ => format!("{}k", (bytes >> 10).max(1)),
    }
}

/// One pause line, or `None`. Slices and number parsing; the kind and cause are the only
/// allocations, for a line that is a cycle.
fn parse(line: &str) -> Option<RuntimeCycle> {
    let line = line.trim_end_matches(['\n', '\r']);
    if !line.starts_with('[') {
        return None;
    }
    let t_ms = uptime_ms(line)?;
    let (_, rest) = line.split_once("] GC(")?;
    let (id, rest) = rest.split_once(") ")?;
    let id: u32 = id.parse().ok()?;
    // The last two words: the heap transition and the pause.
    let (described, pause) = rest.rsplit_once(' ')?;
    let (described, heap) = described.rsplit_once(' ')?;
    let pause_ms = pause.strip_suffix("ms")?.parse::<f64>().ok()?;
    if !pause_ms.is_finite() || pause_ms < 0.0 {
        return None;
    }
    let (before, rest) = heap.split_once("->")?;
    let (after, capacity) = rest.split_once('(')?;
    let capacity = capacity.strip_suffix(')')?;
    let (kind, cause) = match described
        .strip_suffix(')')
        .and_then(|d| d.rsplit_once(" ("))
    {
        Some((kind, cause)) => (kind, Some(cause)),
        None => (described, None),
    };
    if kind.is_empty() {
        return None;
    }
    Some(RuntimeCycle {
        n: id.checked_add(1)?,
        t_ms,
        kind: Cow::Owned(kind.to_owned()),
        cause: cause.map(str::to_owned),
        heap_start_bytes: size(before)?,
        heap_live_bytes: size(after)?,
        heap_capacity_bytes: Some(size(capacity)?),
        pause_ms: Some(pause_ms),
        go: None,
    })
}

/// The heap maximum the JVM takes from `options` (its tool options, then its command line) under
/// a group of `limit` bytes, as given and in bytes: the last `-Xmx` (or `-XX:MaxHeapSize`),
/// else the last `-XX:MaxRAMPercentage` of the limit; `None` when neither is given or reads.
/// Sizes as the JVM reads them: a number with `k`, `m`, `g` or `t` (either case, binary units),
/// or bytes.
fn heap_max<'a>(options: impl Iterator<Item = &'a str>, limit: u64) -> Option<(&'a str, u64)> {
    let (mut size, mut percentage) = (None, None);
    for o in options {
        if let Some(text) = o
            .strip_prefix("-Xmx")
            .or_else(|| o.strip_prefix("-XX:MaxHeapSize="))
        {
            size = Some((o, text));
        } else if let Some(p) = o.strip_prefix("-XX:MaxRAMPercentage=") {
            percentage = Some((o, p));
        }
    }
    if let Some((given, text)) = size {
        return Some((given, option_size(text)?));
    }
    let (given, p) = percentage?;
    let p = p
        .parse::<f64>()
        .ok()
        .filter(|p| p.is_finite() && *p >= 0.0)?;
    Some((given, (limit as f64 * p / 100.0) as u64))
}

/// A size as the JVM's options give it: a number with `k`, `m`, `g` or `t` (either case,
/// binary units), or bytes.
fn option_size(text: &str) -> Option<u64> {
    let (digits, unit) = match text.chars().last()?.to_ascii_lowercase() {
        'k' => (&text[..text.len() - 1], 1u64 << 10),
        'm' => (&text[..text.len() - 1], 1 << 20),
        'g' => (&text[..text.len() - 1], 1 << 30),
        't' => (&text[..text.len() - 1], 1 << 40),
        _ => (text, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(unit)
}

/// The uptime decoration, `[0.049s]`, in milliseconds: the first decoration that is one.
fn uptime_ms(line: &str) -> Option<f64> {
    let mut rest = line;
    while let Some(open) = rest.strip_prefix('[') {
        let (decoration, after) = open.split_once(']')?;
        if let Some(seconds) = decoration.strip_suffix('s')
            && let Ok(s) = seconds.parse::<f64>()
            && s.is_finite()
            && s >= 0.0
        {
            return Some(s * 1e3);
        }
        rest = after;
    }
    None
}

/// A size as the log prints it: a whole number and `B`, `K`, `M` or `G` (binary units).
fn size(text: &str) -> Option<u64> {
    let unit = match text.chars().last()? {
        'B' => 1,
        'K' => 1 << 10,
        'M' => 1 << 20,
        'G' => 1 << 30,
        _ => return None,
    };
    let digits = &text[..text.len() - 1];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const FIXTURES: [(&str, &str); 4] = [
        ("serial", include_str!("testdata/jdk17.serial.stderr")),
        ("parallel", include_str!("testdata/jdk17.parallel.stderr")),
        ("g1", include_str!("testdata/jdk17.g1.stderr")),
        (
            "serial-oom",
            include_str!("testdata/jdk17.serial-oom.stderr"),
        ),
    ];

    /// Lines of each collector, read by hand, against what the parser makes of them.
    #[test]
    fn each_collectors_pauses_read_as_they_print() {
        let read = |line: &str| parse(line).unwrap_or_else(|| panic!("not read: {line}"));
        let c =
            read("[0.049s][info][gc] GC(0) Pause Young (Allocation Failure) 12M->12M(46M) 6.132ms");
        assert_eq!((c.n, c.t_ms), (1, 49.0));
        assert_eq!(
            (c.kind.as_ref(), c.cause.as_deref()),
            ("Pause Young", Some("Allocation Failure"))
        );
        assert_eq!(
            (
                c.heap_start_bytes,
                c.heap_live_bytes,
                c.heap_capacity_bytes,
                c.pause_ms
            ),
            (12 * MIB, 12 * MIB, Some(46 * MIB), Some(6.132))
        );
        assert_eq!(c.go, None);
        let c = read("[0.060s][info][gc] GC(2) Pause Full (Ergonomics) 34M->16M(46M) 4.563ms");
        assert_eq!(
            (c.kind.as_ref(), c.cause.as_deref()),
            ("Pause Full", Some("Ergonomics"))
        );
        let c = read(
            "[0.031s][info][gc] GC(0) Pause Young (Normal) (G1 Evacuation Pause) 6M->6M(48M) 2.101ms",
        );
        assert_eq!(
            (c.kind.as_ref(), c.cause.as_deref()),
            ("Pause Young (Normal)", Some("G1 Evacuation Pause"))
        );
        let c = read("[0.045s][info][gc] GC(5) Pause Remark 41M->33M(48M) 0.387ms");
        assert_eq!((c.n, c.kind.as_ref(), c.cause), (6, "Pause Remark", None));
        let c = read("[0.065s][info][gc] GC(4) Pause Full (System.gc()) 32M->16M(46M) 2.478ms");
        assert_eq!(c.cause.as_deref(), Some("System.gc()"));
        let c = read("[1.5s][info][gc] GC(9) Pause Young (Allocation Failure) 512K->0K(1G) 0.1ms");
        assert_eq!(
            (c.heap_start_bytes, c.heap_live_bytes, c.heap_capacity_bytes),
            (512 << 10, 0, Some(1 << 30))
        );
    }

    /// Every line of the real logs is a pause or is turned away, and the pauses are those the
    /// log numbers: as many as the lines with a heap transition, ids and times never going
    /// back (a G1 cycle's remark keeps its cycle's id).
    #[test]
    fn the_fixtures_read_line_by_line() {
        for (collector, text) in FIXTURES {
            let pauses: Vec<RuntimeCycle> = text.lines().filter_map(parse).collect();
            let with_heap = text.lines().filter(|l| l.contains("->")).count();
            assert_eq!(pauses.len(), with_heap, "{collector}");
            assert!(pauses.len() >= 3, "{collector}: {text}");
            assert!(
                pauses.windows(2).all(|w| w[0].t_ms <= w[1].t_ms),
                "{collector}"
            );
            for c in &pauses {
                assert!(
                    c.heap_capacity_bytes >= Some(c.heap_live_bytes),
                    "{collector}: {c:?}"
                );
                assert!(c.kind.starts_with("Pause "), "{collector}: {c:?}");
            }
        }
        let g1 = FIXTURES[2].1;
        assert!(g1.lines().any(|l| l.contains("Concurrent Mark Cycle")));
        assert!(parse("[0.042s][info][gc] GC(5) Concurrent Mark Cycle").is_none());
        assert!(parse("[0.054s][info][gc] GC(5) Concurrent Mark Cycle 11.761ms").is_none());
        assert!(parse("[0.043s][info][gc] GC(6) To-space exhausted").is_none());
        assert!(parse("[0.003s][info][gc] Using G1").is_none());
        assert!(
            parse("Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space")
                .is_none()
        );
    }

    /// memspike asks for the log through `JAVA_TOOL_OPTIONS`, keeping the user's options, and
    /// hides the JVM's note that it read them and the `gc+init` lines, whose heap maximum it
    /// keeps; a user who logs `gc` already keeps theirs.
    #[test]
    fn the_log_is_asked_for_beside_the_users_options() {
        let mut t = JvmTrace::default();
        assert_eq!(
            t.env(&|_| None),
            Some((TOOL_OPTIONS.to_owned(), LOG_GC.to_owned()))
        );
        assert!(!t.echoes("Picked up JAVA_TOOL_OPTIONS: -Xlog:gc:stderr"));
        assert!(t.echoes("[0.004s][info][gc] Using Serial"));
        let init = "[0.004s][info][gc,init] Heap Max Capacity: 12056M";
        assert!(!t.echoes(init));
        assert_eq!(t.heap_limit(), None);
        assert_eq!(t.parse_line(init), None);
        assert_eq!(t.heap_limit(), Some(12056 * MIB));
        let mut t = JvmTrace::default();
        assert_eq!(
            t.env(&|_| Some("-Xss1m".into())),
            Some((TOOL_OPTIONS.to_owned(), format!("-Xss1m {LOG_GC}")))
        );
        let mut theirs = JvmTrace::default();
        assert_eq!(theirs.env(&|_| Some("-Xlog:gc*:file=gc.log".into())), None);
        assert!(theirs.echoes("Picked up JAVA_TOOL_OPTIONS: -Xlog:gc*:file=gc.log"));
        assert!(theirs.echoes(init));
    }

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Issue 20: a heap maximum above the group's limit is called out before the run, naming
    /// both; the command line's `-Xmx` wins over the tool options', as in the JVM, and an
    /// `-Xmx` over `MaxRAMPercentage`.
    #[test]
    fn a_heap_maximum_above_the_limit_is_called_out() {
        let t = JvmTrace::default();
        let limit = 128 * MIB;
        let warning = |args: &[&str], env: &dyn Fn(&str) -> Option<String>| {
            let args = strings(args);
            t.warning(&Invocation { args: &args, env }, limit)
        };
        let none = |_: &str| None;
        let warned = warning(&["-Xmx512m", "-cp", "b", "Spike"], &none).unwrap();
        assert!(
            warned.contains("-Xmx512m (512.0 MiB)") && warned.contains("128.0 MiB limit"),
            "{warned}"
        );
        assert_eq!(warning(&["-Xmx32m", "Spike"], &none), None);
        assert_eq!(warning(&["Spike"], &none), None);
        // The program's own arguments are not the JVM's.
        assert_eq!(warning(&["-cp", "b", "Spike", "-Xmx1g"], &none), None);
        assert_eq!(warning(&["-jar", "app.jar", "-Xmx1g"], &none), None);
        let options = |_: &str| Some("-Xmx1G -Xss1m".to_owned());
        assert!(warning(&["Spike"], &options).is_some());
        assert_eq!(warning(&["-Xmx64m", "Spike"], &options), None);
        let warned = warning(&["-XX:MaxRAMPercentage=150", "Spike"], &none).unwrap();
        assert!(
            warned.contains("-XX:MaxRAMPercentage=150 (192.0 MiB)"),
            "{warned}"
        );
        assert_eq!(
            warning(&["-XX:MaxRAMPercentage=150", "-Xmx64m", "Spike"], &none),
            None
        );
        assert_eq!(warning(&["-XX:MaxRAMPercentage=80", "Spike"], &none), None);
        for (given, bytes) in [
            ("-Xmx2g", 2 << 30),
            ("-Xmx2048K", 2 << 20),
            ("-Xmx1048576", 1 << 20),
            ("-XX:MaxHeapSize=3m", 3 << 20),
        ] {
            assert_eq!(heap_max([given].into_iter(), limit), Some((given, bytes)));
        }
        for bad in [
            "-Xmx",
            "-Xmxm",
            "-Xmx1.5g",
            "-Xmx99999999999999999999g",
            "-XX:MaxRAMPercentage=x",
        ] {
            assert_eq!(heap_max([bad].into_iter(), limit), None, "{bad}");
        }
    }

    /// Issue 20: a JVM's policy is its options in `JAVA_TOOL_OPTIONS`, in place of the user's
    /// own of the same settings; a command line that gives one itself, a Go policy and a
    /// percentage the JVM refuses are turned away with why.
    #[test]
    fn a_jvm_policy_is_its_options() {
        use crate::policy::{Collector, JvmPolicy};
        let policy = |jvm: JvmPolicy| Policy {
            jvm: Some(jvm),
            ..Policy::default()
        };
        let limit = 128 * MIB;
        let env = |p: &Policy, args: &[&str], options: Option<&str>| {
            let args = strings(args);
            let lookup = |_: &str| options.map(str::to_owned);
            JvmTrace::default()
                .policy_env(
                    p,
                    limit,
                    &Invocation {
                        args: &args,
                        env: &lookup,
                    },
                )
                .map(|vars| {
                    assert_eq!(vars.len(), 1);
                    assert_eq!(
                        (vars[0].name.as_str(), vars[0].append),
                        (TOOL_OPTIONS, false)
                    );
                    vars[0].value.clone()
                })
        };
        let half = policy(JvmPolicy {
            heap_max: Some(crate::size::Amount::Percent(50.0)),
            collector: Some(Collector::Serial),
            exit_on_out_of_memory: true,
            ..JvmPolicy::default()
        });
        assert_eq!(
            env(&half, &["-cp", "b", "Spike"], None).unwrap(),
            "-Xmx64m -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError"
        );
        assert_eq!(
            env(
                &half,
                &["Spike"],
                Some("-Xss1m -Xmx1g -XX:+UseG1GC -XX:MaxRAMPercentage=80")
            )
            .unwrap(),
            "-Xss1m -Xmx64m -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError"
        );
        let ram = policy(JvmPolicy {
            max_ram_percentage: Some(75.0),
            ..JvmPolicy::default()
        });
        assert_eq!(
            env(&ram, &["Spike"], None).unwrap(),
            "-XX:MaxRAMPercentage=75"
        );
        // The JVM's default: the user's heap settings are taken away.
        assert_eq!(
            env(&policy(JvmPolicy::default()), &["Spike"], Some("-Xmx1g")).unwrap(),
            ""
        );
        let odd = policy(JvmPolicy {
            heap_max: Some(crate::size::Amount::Bytes(1_000_000)),
            ..JvmPolicy::default()
        });
        assert_eq!(env(&odd, &["Spike"], None).unwrap(), "-Xmx976k");
        let e = env(&half, &["-Xmx512m", "Spike"], None).unwrap_err();
        assert!(e.contains("gives -Xmx512m, which wins"), "{e}");
        let e = env(&half, &["-XX:+UseG1GC", "-jar", "a.jar"], None).unwrap_err();
        assert!(e.contains("-XX:+UseG1GC"), "{e}");
        let e = env(&Policy::default(), &["Spike"], None).unwrap_err();
        assert!(
            e.contains("its settings are Go's, and this program runs the JVM"),
            "{e}"
        );
        let over = policy(JvmPolicy {
            max_ram_percentage: Some(150.0),
            ..JvmPolicy::default()
        });
        assert!(
            env(&over, &["Spike"], None)
                .unwrap_err()
                .contains("at most 100")
        );
    }

    /// JDK 21's pause lines, built as its `GCTraceTimeLoggerImpl::log_end` (gcTraceTime.cpp)
    /// prints them: the title, ` (cause)`, ` %zuM->%zuM(%zuM)`, ` %.3fms`; with G1's titles of
    /// JDK 21 (mixed collections, humongous allocations, a full compaction) and the padded
    /// level and tags of `-Xlog` decorations the user configured. ZGC's lines (sizes with
    /// percentages, durations in seconds) are not pauses of this shape and are turned away.
    #[test]
    fn jdk21_lines_read_as_its_source_prints_them() {
        for (line, kind, cause, heap) in [
            (
                "[2.744s][info ][gc          ] GC(4) Pause Young (Concurrent Start) (G1 Humongous Allocation) 374M->26M(1024M) 11.642ms",
                "Pause Young (Concurrent Start)",
                Some("G1 Humongous Allocation"),
                (374, 26, 1024),
            ),
            (
                "[5.001s][info][gc] GC(9) Pause Young (Prepare Mixed) (G1 Evacuation Pause) 60M->41M(256M) 3.101ms",
                "Pause Young (Prepare Mixed)",
                Some("G1 Evacuation Pause"),
                (60, 41, 256),
            ),
            (
                "[5.2s][info][gc] GC(10) Pause Young (Mixed) (G1 Evacuation Pause) 52M->30M(256M) 4.000ms",
                "Pause Young (Mixed)",
                Some("G1 Evacuation Pause"),
                (52, 30, 256),
            ),
            (
                "[9.100s][info][gc] GC(12) Pause Full (G1 Compaction Pause) 255M->250M(256M) 41.512ms",
                "Pause Full",
                Some("G1 Compaction Pause"),
                (255, 250, 256),
            ),
            (
                "[0.412s][info][gc] GC(3) Pause Cleanup 30M->30M(1024M) 0.241ms",
                "Pause Cleanup",
                None,
                (30, 30, 1024),
            ),
        ] {
            let c = parse(line).unwrap_or_else(|| panic!("not read: {line}"));
            assert_eq!(
                (c.kind.as_ref(), c.cause.as_deref()),
                (kind, cause),
                "{line}"
            );
            assert_eq!(
                (
                    c.heap_start_bytes / MIB,
                    c.heap_live_bytes / MIB,
                    c.heap_capacity_bytes.map(|b| b / MIB)
                ),
                (heap.0, heap.1, Some(heap.2)),
                "{line}"
            );
        }
        for zgc in [
            "[0.512s][info][gc] GC(0) Major Collection (Warmup) 14M(7%)->12M(6%) 0.007s",
            "[0.300s][info][gc] GC(0) Garbage Collection (Warmup) 10M(5%)->8M(4%)",
        ] {
            assert_eq!(parse(zgc), None, "{zgc}");
        }
    }

    /// Issue 20: Native Memory Tracking's summary, read from `jcmd` on JDK 17: its total and
    /// its categories; what is outside the heap is the total less `Java Heap`.
    #[test]
    fn a_native_memory_summary_reads_by_category() {
        let nmt = native_memory(include_str!("testdata/jdk17.nmt-summary.txt"), 5.0).unwrap();
        assert_eq!(nmt.committed_bytes, 127_856 * 1024);
        let by = |name: &str| {
            nmt.categories
                .iter()
                .find(|c| c.name == name)
                .map(|c| c.committed_bytes / 1024)
        };
        assert_eq!(by("Java Heap"), Some(65_536));
        assert_eq!(by("GC"), Some(39_547));
        assert_eq!(by("Shared class space"), Some(12_060));
        assert_eq!(by("Native Memory Tracking"), Some(69));
        assert_eq!(nmt.categories.len(), 17);
        assert_eq!(nmt.outside_heap_bytes(), (127_856 - 65_536) * 1024);
        assert_eq!(
            native_memory("Native memory tracking is not enabled\n", 1.0),
            None
        );
        assert_eq!(native_memory("", 1.0), None);
    }

    /// Issue 20: memspike asks a JVM for its native memory only where the user turned
    /// tracking on, and never where the SIGQUIT that opens the attach would harm it.
    #[test]
    fn native_memory_is_asked_for_only_where_tracking_is_on_and_safe() {
        let tracking = |args: &[&str], options: Option<&str>| {
            let args = strings(args);
            let env = |_: &str| options.map(str::to_owned);
            native_tracking(&Invocation {
                args: &args,
                env: &env,
            })
        };
        assert_eq!(tracking(&["Spike"], None), NativeTracking::Off);
        assert_eq!(
            tracking(&["-XX:NativeMemoryTracking=summary", "Spike"], None),
            NativeTracking::Ask
        );
        assert_eq!(
            tracking(&["Spike"], Some("-XX:NativeMemoryTracking=detail")),
            NativeTracking::Ask
        );
        assert_eq!(
            tracking(
                &["-XX:NativeMemoryTracking=off", "Spike"],
                Some("-XX:NativeMemoryTracking=summary")
            ),
            NativeTracking::Off
        );
        assert_eq!(
            tracking(&["Spike", "-XX:NativeMemoryTracking=summary"], None),
            NativeTracking::Off,
            "the program's argument, not the JVM's"
        );
        for closed in [
            "-Xrs",
            "-XX:+ReduceSignalUsage",
            "-XX:+DisableAttachMechanism",
        ] {
            assert!(
                matches!(
                    tracking(&["-XX:NativeMemoryTracking=summary", closed, "Spike"], None),
                    NativeTracking::Closed(_)
                ),
                "{closed}"
            );
        }
        assert_eq!(
            tracking(
                &[
                    "-XX:NativeMemoryTracking=summary",
                    "-XX:-DisableAttachMechanism",
                    "S"
                ],
                None
            ),
            NativeTracking::Ask
        );
    }

    #[test]
    fn malformed_sizes_and_times_are_not_cycles() {
        let good =
            "[0.049s][info][gc] GC(0) Pause Young (Allocation Failure) 12M->12M(46M) 6.132ms";
        assert!(parse(good).is_some());
        for (from, to) in [
            ("[0.049s]", "[0.049]"),
            ("[0.049s]", "[-1s]"),
            ("GC(0)", "GC(x)"),
            ("12M->", "12X->"),
            ("->12M", "->M"),
            ("(46M)", "(46M"),
            ("6.132ms", "6.132"),
            ("6.132ms", "NaNms"),
            ("6.132ms", "-1ms"),
            ("12M->12M(46M)", "12M"),
            ("Pause Young (Allocation Failure) ", ""),
        ] {
            let line = good.replacen(from, to, 1);
            assert_ne!(line, good, "{from}");
            assert_eq!(parse(&line), None, "{line}");
        }
        assert_eq!(size("18446744073709551615G"), None, "overflow");
    }

    proptest::proptest! {
        /// Any text, and any text after a log's prefix, is read or refused without a panic.
        #[test]
        fn any_text_is_read_or_refused(text in ".{0,300}") {
            let _ = parse(&text);
            let _ = parse(&format!("[0.1s][info][gc] GC({text}"));
            let _ = parse(&format!("[0.1s][info][gc] GC(0) {text}"));
            let _ = native_memory(&text, 0.0);
            let _ = native_memory(&format!("Total: reserved=1KB, committed={text}\n- {text}"), 0.0);
        }
    }
}
