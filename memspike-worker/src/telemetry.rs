//! The protocol between the supervisor and its worker: the worker's telemetry, one JSON line
//! per event ([`memspike_model::event`]) on a pipe to the supervisor; the supervisor's control
//! lines on the worker's stdin, first what to run ([`WorkerConfig`]), then acknowledgements and
//! the interactive feed; and the environment the worker starts with ([`CGROUP_ENV`],
//! [`LISTEN_FD_ENV`]).
//!
//! The worker sends an event before and after every step of the experiment, each written
//! with a single `write(2)` before the worker touches new memory. When the kernel kills the
//! worker mid-step, the last line the supervisor holds is the state just before the kill.
//! Times are `CLOCK_MONOTONIC` nanoseconds, the clock BPF programs read, so kernel events can
//! be placed on the same timeline.

use std::{
    io::{self, BufRead, Write},
    path::PathBuf,
    sync::{
        Arc, Mutex,
        mpsc::{self, Receiver},
    },
};

pub use memspike_model::event::{Event, Kind, Sink};
use nix::time::{ClockId, clock_gettime};
use serde::{Deserialize, Serialize};

use memspike_model::experiment::Experiment;

use crate::privilege::RunAs;
pub use memspike_cgroup::Version;

/// What the supervisor tells a worker to do: the first line on its control channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerConfig {
    /// The limit, the scenario, the runtime's policy and release.
    pub experiment: Experiment,
    /// Serve HTTP on the inherited socket instead of running the scenario.
    pub interactive: bool,
    /// The credentials the worker takes as soon as it starts (never root).
    pub run_as: RunAs,
    /// Names the HTTP server accepts in `Host` besides its bound address (`--allow-host`).
    pub allowed_hosts: Vec<String>,
}

impl WorkerConfig {
    /// The names of the steps page faults are counted under, slot by slot.
    pub fn step_names(&self) -> Vec<String> {
        self.experiment.step_names(self.interactive)
    }
}

/// The worker's group, as `v1:<dir>` or `v2:<dir>`; set by the supervisor.
pub const CGROUP_ENV: &str = "MEMSPIKE_CGROUP";
/// The inherited listening socket's descriptor (interactive mode); set by the supervisor.
pub const LISTEN_FD_ENV: &str = "MEMSPIKE_LISTEN_FD";

/// Encodes a group for [`CGROUP_ENV`].
pub fn cgroup_env(dir: &std::path::Path, v: Version) -> std::ffi::OsString {
    let mut s = std::ffi::OsString::from(v.short());
    s.push(":");
    s.push(dir);
    s
}

/// The worker's group from [`CGROUP_ENV`], if the supervisor set it.
pub fn cgroup_from_env() -> Option<(PathBuf, Version)> {
    parse_cgroup_env(&std::env::var_os(CGROUP_ENV)?)
}

/// Decodes what [`cgroup_env`] encoded; the directory as the OS spells it.
fn parse_cgroup_env(value: &std::ffi::OsStr) -> Option<(PathBuf, Version)> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = value.as_bytes();
    let colon = bytes.iter().position(|&b| b == b':')?;
    let v = std::str::from_utf8(&bytes[..colon]).ok()?;
    let v = [Version::V1, Version::V2]
        .into_iter()
        .find(|known| known.short() == v)?;
    let dir = std::ffi::OsStr::from_bytes(&bytes[colon + 1..]);
    Some((PathBuf::from(dir), v))
}

/// Reads the group's usage file (`memory.usage_in_bytes` or `memory.current`) from inside the
/// worker, so each event carries the usage at the moment it happened, not when the supervisor
/// got round to reading it.
#[derive(Debug)]
pub struct UsageProbe(std::fs::File);

impl UsageProbe {
    pub fn open(path: &std::path::Path) -> io::Result<UsageProbe> {
        std::fs::File::open(path).map(UsageProbe)
    }

    /// The current value; `None` if the file cannot be read or parsed.
    pub fn read(&self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 32];
        let n = self.0.read_at(&mut buf, 0).ok()?;
        std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
    }
}

/// What the supervisor sends the worker, one JSON line each, on the worker's stdin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Control {
    /// What to run: the first line a worker reads, and only then.
    Start(Box<WorkerConfig>),
    /// Go ahead with the step just announced (the answer to a `begin` that opens a phase;
    /// see [`PhaseGate`]).
    Ack,
    /// What only the supervisor knows, for the worker to show (interactive mode).
    Feed(Feed),
}

/// Facts the supervisor holds and the worker shows: restarts, the last OOM kill, and the
/// kernel observer's running counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Feed {
    /// Workers started after an OOM kill, in this session.
    pub restarts: u32,
    pub last_oom: Option<OomSummary>,
    /// `ebpf`, or `unavailable: <reason>`.
    pub tracing: String,
    /// Page faults in the group so far (all workers; user and kernel mode), when traced.
    pub page_faults: Option<u64>,
    /// Memory-cgroup reclaim stalls in the group so far and their total time, when traced.
    pub reclaim_stalls: Option<u64>,
    pub reclaim_ns: Option<u64>,
    /// The session's recent moments, every worker's, with its kills and restarts: what the
    /// live page draws when it opens ([`History`]).
    #[serde(default)]
    pub history: History,
}

/// A moment of an interactive session: the heap and the group then, or a kill, or a restart.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Moment {
    /// Wall-clock time, ms since the Unix epoch (the page's clock).
    pub t_unix_ms: u64,
    pub heap_alloc: Option<u64>,
    pub next_gc: Option<u64>,
    pub cgroup_usage: Option<u64>,
    /// Set on a kill (the step the worker died in) or a restart (the worker's number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<MomentMark>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MomentMark {
    OomKill { died_in: Option<String> },
    Restart { worker: u32 },
}

/// The session's recent moments, bounded: at most [`History::CAP`]; past it, the older half
/// of the plain moments is thinned to every other one, so that the page still sees the whole
/// recent past, coarser further back. Kills and restarts are always kept (the newest
/// [`History::MARKS`] of them).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub moments: Vec<Moment>,
}

impl History {
    pub const CAP: usize = 512;
    pub const MARKS: usize = 32;

    /// Keeps `m`, dropping what the bounds say.
    pub fn push(&mut self, m: Moment) {
        self.moments.push(m);
        let marks = self.moments.iter().filter(|m| m.mark.is_some()).count();
        if marks > Self::MARKS
            && let Some(i) = self.moments.iter().position(|m| m.mark.is_some())
        {
            self.moments.remove(i);
        }
        if self.moments.len() > Self::CAP {
            let half = self.moments.len() / 2;
            let mut i = 0;
            self.moments.retain(|m| {
                i += 1;
                i > half || m.mark.is_some() || i % 2 == 1
            });
        }
    }
}

/// The last OOM kill, in brief.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OomSummary {
    pub worker_pid: Option<u32>,
    pub died_in: Option<String>,
    pub needed_bytes: Option<u64>,
    pub garbage_bytes: u64,
    pub verdict: String,
}

/// Now on CLOCK_MONOTONIC (the clock of `bpf_ktime_get_ns`), in nanoseconds.
pub fn monotonic_ns() -> u64 {
    // CLOCK_MONOTONIC always exists on Linux; 0 stands for a reading that failed anyway.
    clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(0, |ts| {
        ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
    })
}

/// The acknowledgement rule, one place for both ends: a `begin` waits for the supervisor's
/// `ack` only when its step (the event's `phase`) differs from the previous `begin`'s. The ack
/// exists so that the supervisor has told the kernel-side observer which step the coming page
/// faults belong to before the worker touches memory for it; within one step there is nothing
/// new to tell. The seed changes step at every `begin`; a step allocated in chunks waits once
/// for all its pieces, and an interactive worker stays in `interactive` and waits once.
///
/// The worker's [`LineSink`] and the supervisor each keep one gate per worker and feed it
/// every `begin` in order, so they agree on which ones are acknowledged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PhaseGate {
    last: Option<String>,
}

impl PhaseGate {
    /// Records a `begin` in step `phase`; true when it needs an acknowledgement.
    pub fn begin(&mut self, phase: &str) -> bool {
        if self.last.as_deref() == Some(phase) {
            return false;
        }
        self.last = Some(phase.to_owned());
        true
    }
}

/// Events as JSON lines on a writer, one `write` per line, nothing buffered.
///
/// With an acknowledgement channel, a `begin` that opens a new phase waits for the
/// supervisor's `ack` before the step runs (see [`PhaseGate`]).
pub struct LineSink<W: Write> {
    out: W,
    acks: Option<(Receiver<()>, PhaseGate)>,
}

impl<W: Write> LineSink<W> {
    pub fn new(out: W) -> Self {
        LineSink { out, acks: None }
    }

    /// Waits for an acknowledgement on `acks` after a `begin` that opens a phase; see
    /// [`PhaseGate`] and [`read_control`].
    pub fn with_acks(out: W, acks: Receiver<()>) -> Self {
        LineSink {
            out,
            acks: Some((acks, PhaseGate::default())),
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> Sink for LineSink<W> {
    fn send(&mut self, event: &Event) -> io::Result<()> {
        let mut line = serde_json::to_vec(event)?;
        line.push(b'\n');
        // Lines are far shorter than PIPE_BUF, so a pipe receives each one whole.
        self.out.write_all(&line)?;
        self.out.flush()?;
        if let (Some((acks, gate)), Kind::Begin { phase, .. }) = (&mut self.acks, &event.kind)
            && gate.begin(phase)
        {
            acks.recv().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the supervisor closed the control channel",
                )
            })?;
        }
        Ok(())
    }
}

/// Reads the supervisor's control lines (the worker's stdin) on a thread of its own: every
/// `ack` goes to the returned receiver, every `feed` replaces `feed`. The receiver reports
/// disconnection when the supervisor closes the channel (or sends a line that does not
/// parse), so a worker waiting for an ack never waits on a dead supervisor.
pub fn read_control(input: impl BufRead + Send + 'static, feed: Arc<Mutex<Feed>>) -> Receiver<()> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in input.lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<Control>(&line) {
                Ok(Control::Ack) => {
                    if tx.send(()).is_err() {
                        break;
                    }
                }
                Ok(Control::Feed(f)) => {
                    if let Ok(mut slot) = feed.lock() {
                        *slot = f;
                    }
                }
                Ok(Control::Start(_)) => {
                    eprintln!("memspike worker: a second start line on the control channel");
                    break;
                }
                Err(e) => {
                    eprintln!("memspike worker: bad control line {line:?}: {e}");
                    break;
                }
            }
        }
    });
    rx
}

/// Reads the first control line, which says what to run.
pub fn read_start(input: &mut impl BufRead) -> io::Result<WorkerConfig> {
    let mut line = String::new();
    input.read_line(&mut line)?;
    match serde_json::from_str::<Control>(&line) {
        Ok(Control::Start(config)) => Ok(*config),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the control channel did not start with the experiment's configuration",
        )),
        Err(e) if line.is_empty() => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the supervisor closed the control channel before the configuration: {e}"),
        )),
        Err(e) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad configuration line: {e}"),
        )),
    }
}

/// Writes one control line.
pub fn send_control(out: &mut impl Write, msg: &Control) -> io::Result<()> {
    let mut line = serde_json::to_vec(msg)?;
    line.push(b'\n');
    out.write_all(&line)?;
    out.flush()
}

/// Events as they arrive, until the writer closes the pipe. A line that does not parse is an
/// error rather than silently dropped: lines are written whole, so it means a bug.
pub fn events(reader: impl BufRead) -> impl Iterator<Item = io::Result<Event>> {
    reader
        .lines()
        .filter(|line| !matches!(line, Ok(l) if l.trim().is_empty()))
        .map(|line| {
            let line = line?;
            serde_json::from_str(&line).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad telemetry line {line:?}: {e}"),
                )
            })
        })
}

#[cfg(test)]
mod history_tests {
    use super::*;

    fn at(t: u64) -> Moment {
        Moment {
            t_unix_ms: t,
            heap_alloc: Some(t),
            ..Moment::default()
        }
    }

    /// However long a session, the history stays bounded, reaches its newest moment, spans its
    /// whole past, and keeps its kills and restarts.
    #[test]
    fn the_history_stays_bounded_and_keeps_its_marks() {
        let mut h = History::default();
        for t in 0..10_000 {
            let mut m = at(t);
            if t % 1_000 == 500 {
                m.mark = Some(MomentMark::OomKill { died_in: None });
            }
            h.push(m);
        }
        assert!(h.moments.len() <= History::CAP, "{}", h.moments.len());
        assert_eq!(h.moments.last().map(|m| m.t_unix_ms), Some(9_999));
        assert!(h.moments.first().map_or(u64::MAX, |m| m.t_unix_ms) < 1_000);
        assert!(
            h.moments
                .windows(2)
                .all(|w| w[0].t_unix_ms < w[1].t_unix_ms)
        );
        let kills = h.moments.iter().filter(|m| m.mark.is_some()).count();
        assert_eq!(kills, 10);
        for t in 0..100 {
            let mut m = at(20_000 + t);
            m.mark = Some(MomentMark::Restart { worker: t as u32 });
            h.push(m);
        }
        let marks: Vec<_> = h.moments.iter().filter(|m| m.mark.is_some()).collect();
        assert_eq!(marks.len(), History::MARKS);
        assert_eq!(marks.last().map(|m| m.t_unix_ms), Some(20_099));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a group directory that is not UTF-8 was dropped on the way to the worker.
    #[test]
    fn the_cgroup_env_round_trips_any_directory() {
        use std::os::unix::ffi::OsStrExt;
        use std::path::Path;
        let odd = std::ffi::OsStr::from_bytes(b"/sys/fs/cgroup/memory/a:b-\xff");
        for v in [Version::V1, Version::V2] {
            for dir in [Path::new("/sys/fs/cgroup/memspike-1"), Path::new(odd)] {
                let got = parse_cgroup_env(&cgroup_env(dir, v));
                assert_eq!(got, Some((dir.to_owned(), v)));
            }
        }
        assert_eq!(parse_cgroup_env("v3:/x".as_ref()), None);
        assert_eq!(parse_cgroup_env("/x".as_ref()), None);
    }
    use memspike_model::{event::HeapStats, scenario::ActionKind as Action};

    #[test]
    fn events_round_trip_through_lines() {
        let events = vec![
            Event {
                t_ns: 1,
                sim_ns: 0,
                cgroup_usage_bytes: None,
                step: 0,
                kind: Kind::Ready { pid: 42 },
                heap: HeapStats::default(),
            },
            Event {
                t_ns: 2,
                sim_ns: 3,
                cgroup_usage_bytes: Some(4096),
                step: 0,
                kind: Kind::Begin {
                    phase: "spike".into(),
                    action: Action::Alloc,
                    bytes: 30_198_988,
                },
                heap: HeapStats::default(),
            },
        ];
        let mut sink = LineSink::new(Vec::new());
        for e in &events {
            sink.send(e).unwrap();
        }
        let text = String::from_utf8(sink.into_inner()).unwrap();
        assert!(
            text.contains(r#""event":"begin","phase":"spike","action":"alloc""#),
            "{text}"
        );
        assert_eq!(
            super::events(text.as_bytes())
                .collect::<io::Result<Vec<_>>>()
                .unwrap(),
            events
        );
    }

    fn begin(phase: &str) -> Event {
        Event {
            t_ns: 1,
            sim_ns: 0,
            cgroup_usage_bytes: None,
            step: 0,
            kind: Kind::Begin {
                phase: phase.into(),
                action: Action::Alloc,
                bytes: 1,
            },
            heap: HeapStats::default(),
        }
    }

    /// A sink whose supervisor sends `acks` acknowledgements, then goes.
    fn acked(acks: usize) -> LineSink<Vec<u8>> {
        let mut control = Vec::new();
        for _ in 0..acks {
            send_control(&mut control, &Control::Ack).unwrap();
        }
        let acks = read_control(io::Cursor::new(control), Arc::default());
        LineSink::with_acks(Vec::new(), acks)
    }

    #[test]
    fn begin_waits_for_an_ack() {
        let begin = begin("spike");
        let ready = Event {
            kind: Kind::Ready { pid: 1 },
            ..begin.clone()
        };
        // One ack, then the supervisor goes: ready needs none, the first begin takes the
        // ack, a begin in the next phase finds the channel closed and fails instead of
        // running unobserved.
        let mut control = Vec::new();
        send_control(&mut control, &Control::Ack).unwrap();
        let feed = Feed {
            restarts: 2,
            tracing: "ebpf".into(),
            ..Feed::default()
        };
        send_control(&mut control, &Control::Feed(feed.clone())).unwrap();
        let shared = Arc::new(Mutex::new(Feed::default()));
        let acks = read_control(io::Cursor::new(control), shared.clone());
        let mut sink = LineSink::with_acks(Vec::new(), acks);
        sink.send(&ready).unwrap();
        sink.send(&begin).unwrap();
        let err = sink.send(&self::begin("release")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(sink.into_inner().iter().filter(|b| **b == b'\n').count(), 3);
        // The reader thread ended at EOF, after storing the feed.
        assert_eq!(*shared.lock().unwrap(), feed);
    }

    /// Issue 7 (load): every interactive operation waited for a round trip to the supervisor,
    /// although its phase never changes.
    #[test]
    fn a_run_of_begins_in_one_phase_needs_one_ack() {
        let mut sink = acked(1);
        for _ in 0..100 {
            sink.send(&begin("interactive")).unwrap();
        }
        // A new phase needs a new ack, and none is left.
        let err = sink.send(&begin("spike")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        // The seed's steps are each acknowledged once, as the supervisor's
        // gate (the same type) decides.
        let script = ["spike", "release", "gc", "remainder", "remainder"];
        let mut gate = PhaseGate::default();
        let acks = script.iter().filter(|p| gate.begin(p)).count();
        assert_eq!(acks, 4);
        let mut sink = acked(acks);
        for p in script {
            sink.send(&begin(p)).unwrap();
        }
        assert_eq!(
            sink.send(&begin("interactive")).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }

    #[test]
    fn a_torn_line_is_an_error() {
        let e = events(&b"{\"t_ns\":1,\"ev"[..])
            .collect::<io::Result<Vec<_>>>()
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn the_usage_probe_rereads_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory.current");
        std::fs::write(&path, "524288\n").unwrap();
        let probe = UsageProbe::open(&path).unwrap();
        assert_eq!(probe.read(), Some(524_288));
        std::fs::write(&path, "1048576\n").unwrap();
        assert_eq!(probe.read(), Some(1_048_576));
        std::fs::write(&path, "max\n").unwrap();
        assert_eq!(probe.read(), None);
    }
}
