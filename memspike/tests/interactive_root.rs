//! Interactive mode end to end, as a person runs it (needs root): the real supervisor, a real
//! cgroup, a worker serving HTTP as an unprivileged user, an OOM kill through `/add`, the
//! restart, and the clean stop on SIGINT.

mod common;

use common::{alive, groups_of};

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

const MIB: u64 = 1 << 20;

/// A running `memspike run --interactive`, its log lines arriving on a channel.
/// Supervisors of this binary's tests run side by side, and each one's start sweeps the groups
/// of dead supervisors (killing what is left inside). The test that kills a supervisor on
/// purpose must see its worker die by itself, so it runs alone: it takes this lock for writing,
/// every other server for reading.
static ALONE: std::sync::RwLock<()> = std::sync::RwLock::new(());

struct Server {
    /// Held for the server's life (see [`ALONE`]); `None` for the test that runs alone.
    _turn: Option<std::sync::RwLockReadGuard<'static, ()>>,
    child: Child,
    log: mpsc::Receiver<String>,
    /// memspike's stdout, line by line (the OOM reports), drained as it comes so that it
    /// never blocks on a full pipe.
    out: mpsc::Receiver<String>,
    addr: SocketAddr,
}

/// Forwards a pipe's lines to a channel from a thread of its own.
fn lines_of(pipe: impl Read + Send + 'static, echo: &'static str) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if !echo.is_empty() {
                eprintln!("{echo}{line}");
            }
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let turn = ALONE.read().unwrap_or_else(|e| e.into_inner());
        Server::start_with_turn(extra, Some(turn))
    }

    fn start_with_turn(
        extra: &[&str],
        turn: Option<std::sync::RwLockReadGuard<'static, ()>>,
    ) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_memspike"))
            .args(["run", "--interactive", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start memspike");
        let log = lines_of(child.stderr.take().unwrap(), "memspike: ");
        let out = lines_of(child.stdout.take().unwrap(), "");
        let mut server = Server {
            _turn: turn,
            child,
            log,
            out,
            addr: "127.0.0.1:1".parse().unwrap(),
        };
        let line = server.wait_for_log("serving the heap on http://");
        let url = line.split("http://").nth(1).unwrap();
        server.addr = url
            .trim_end_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .unwrap();
        server
    }

    /// The next log line containing `needle`, waited for on the channel (its 30 s bound is a
    /// guard against a supervisor that never logs it, not a measurement).
    fn wait_for_log(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(e) => panic!("no log line with {needle:?}: {e}"),
            }
        }
    }

    fn get(&self, path: &str) -> std::io::Result<(u16, Value)> {
        let mut s = TcpStream::connect(self.addr)?;
        // A guard against a server that never answers, not a measurement.
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )?;
        let mut raw = String::new();
        s.read_to_string(&mut raw)?;
        let status = raw
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("no status line in {raw:?}")))?;
        let body = raw.split("\r\n\r\n").nth(1).unwrap_or_default();
        // Chunked bodies: take the JSON object between the first '{' and the last '}'.
        let json = body
            .find('{')
            .zip(body.rfind('}'))
            .map_or("null", |(a, b)| &body[a..=b]);
        Ok((status, serde_json::from_str(json).unwrap_or(Value::Null)))
    }

    /// Asks `path` until `ok` holds for its JSON (bounded by [`common::GUARD`]).
    ///
    /// For what a new worker shows of the supervisor's feed (restarts, the last OOM): call it
    /// after the event that has a log line (the new worker's start, [`Server::next_worker`]).
    /// What follows has no event: the supervisor sends the feed once the worker says it is
    /// ready, and the worker, which serves at once, applies it on a thread of its own and says
    /// so nowhere but in its answers.
    fn poll(&self, path: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let mut last = None;
        common::poll_until(&format!("{path} to satisfy the condition"), || {
            // `get` itself waits, in the listen backlog, for a worker to serve.
            match self.get(path) {
                Ok((200, v)) if ok(&v) => {
                    last = Some(v);
                    true
                }
                _ => false,
            }
        });
        last.expect("the condition held")
    }

    /// The pid of the next worker the supervisor starts (from its log).
    fn next_worker(&mut self) -> i32 {
        let line = self.wait_for_log("started inside the group");
        line.split("worker ")
            .nth(1)
            .and_then(|w| w.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no worker pid in {line:?}"))
    }

    /// The next OOM report printed with `--json`, waited for on the channel (its 30 s bound is a
    /// guard, not a measurement).
    fn next_report(&mut self) -> Value {
        let line = self
            .out
            .recv_timeout(Duration::from_secs(30))
            .expect("an OOM report on stdout");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON report ({e}): {line}"))
    }

    fn stop(mut self) -> (i32, String) {
        // Our own child.
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGINT);
        let status = self.child.wait().unwrap();
        let out: Vec<String> = self.out.iter().collect();
        (status.code().unwrap_or(-1), out.join("\n"))
    }
}

/// A test that fails must not leave its server running: stop it as Ctrl-C would (so that it
/// removes its group), or kill it if it does not stop.
impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            use rustix::process::{PidfdFlags, pidfd_open};
            let raw = self.child.id() as i32;
            let pid = rustix::process::Pid::from_raw(raw).expect("a pid above 0");
            // Opened before the signal: our child is not reaped until we wait for it.
            let exited = pidfd_open(pid, PidfdFlags::empty()).expect("a pidfd for our child");
            // Our own child.
            let _ = kill(Pid::from_raw(raw), Signal::SIGINT);
            // Its exit is waited for on the pidfd; the bound only decides when to give up and
            // kill it (a fallback on a failure path, not an assertion).
            if !common::readable_within(&exited, Duration::from_secs(10)) {
                let _ = self.child.kill();
            }
            let _ = self.child.wait();
        }
    }
}

/// A process's effective uid.
fn uid_of(pid: u32) -> u32 {
    status_of(pid).euid
}

/// A process's /proc/PID/status, as procfs reads it.
fn status_of(pid: u32) -> procfs::process::Status {
    procfs::process::Process::new(pid as i32)
        .and_then(|p| p.status())
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"))
}

#[test]
fn serves_unprivileged_restarts_after_an_oom_and_stops_cleanly() {
    if !common::require_root("interactive mode") {
        return;
    }
    // Requests say `Host: test`: --allow-host must reach every worker, restarted ones too.
    let mut server = Server::start(&["--limit", "32MiB", "--allow-host", "test"]);
    let worker = server.next_worker() as u32;
    let sup = server.child.id();

    let (status, stats) = server.get("/stats").unwrap();
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["Limit"], 32 * MIB);
    assert_eq!(stats["Restarts"], 0);
    assert_ne!(uid_of(worker), 0, "the HTTP server runs as root");

    let (status, added) = server.get("/add?bytes=8MiB").unwrap();
    assert_eq!(status, 200, "{added}");
    assert!(added["HeapAlloc"].as_u64().unwrap() >= 8 * MIB);

    // More than the limit: the kernel kills the worker mid-request; a new one takes over.
    let _ = server.get("/add?bytes=64MiB");
    let replacement = server.next_worker() as u32;
    assert_ne!(replacement, worker);
    let stats = server.poll("/stats", |v| v["Restarts"] == 1);
    let verdict = stats["LastOOM"]["verdict"].as_str().unwrap().to_owned();
    assert!(
        verdict.starts_with("killed while allocating 64.0 MiB"),
        "{verdict}"
    );
    assert_eq!(
        stats["HeapAlloc"], 0,
        "the new worker starts with an empty heap"
    );
    // The server remembers what led to the kill (issue 19): the first worker's 8 MiB, then
    // the kill, then the restart, in order, for a page opened now.
    let (status, history) = server.get("/history").unwrap();
    assert_eq!(status, 200, "{history}");
    let moments = history["moments"].as_array().expect("moments");
    let at = |kind: &str| {
        moments
            .iter()
            .position(|m| m["mark"]["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {history}"))
    };
    let (kill, restart) = (at("oom_kill"), at("restart"));
    assert!(kill < restart, "{history}");
    assert!(
        moments[..kill]
            .iter()
            .any(|m| m["heap_alloc"].as_u64() >= Some(8 * MIB)),
        "the heap before the kill: {history}"
    );
    assert_eq!(moments[restart]["mark"]["worker"], 2, "{history}");

    let (code, out) = server.stop();
    assert_eq!(code, 0);
    assert!(
        out.contains("OOM-KILLED"),
        "the OOM's report was printed: {out}"
    );
    assert!(groups_of(sup).is_empty(), "group left behind");
}

#[test]
fn a_busy_port_is_a_usage_error() {
    if !common::require_root("interactive mode") {
        return;
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_memspike"))
        .args(["run", "--interactive", "--listen", &addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen on"));
}

#[test]
fn a_second_oom_blames_the_second_worker_and_counts_its_start_up() {
    if !common::require_root("two OOM kills in interactive mode") {
        return;
    }
    let mut server = Server::start(&["--limit", "32MiB", "--json"]);
    let mut workers = Vec::new();
    let mut reports = Vec::new();
    for _ in 0..2 {
        workers.push(server.next_worker());
        // The first request makes the new worker serve; the second gets it killed.
        let _ = server.get("/stats");
        let _ = server.get("/add?bytes=64MiB");
        reports.push(server.next_report());
    }
    // The third worker, fed the two restarts.
    server.next_worker();
    let stats = server.poll("/stats", |v| v["Restarts"] == 2);
    for (worker, r) in workers.iter().zip(&reports) {
        assert_eq!(r["outcome"], "oom_killed", "{r:#}");
        assert_eq!(r["worker"]["pid"], *worker, "{r:#}");
        let verdict = r["verdict"].as_str().unwrap();
        if r["kernel"]["tracing"] == "ebpf" {
            assert_eq!(r["kernel"]["oom_victim"]["pid"], *worker, "{r:#}");
            assert!(
                verdict.contains(&format!("pid {worker} (the worker)")),
                "{verdict}"
            );
            // Each worker's start-up is counted as start-up, not as the last one's phase.
            let startup = &r["kernel"]["page_faults"]["per_phase"]["startup"];
            assert!(startup.as_u64().unwrap() > 0, "{r:#}");
        }
    }
    assert_eq!(stats["LastOOM"]["worker_pid"], workers[1]);
    let (code, _) = server.stop();
    assert_eq!(code, 0);
}

/// `/freeosmemory` returns the swept pages to the kernel: the runtime counts them released and
/// the group's usage falls.
#[test]
fn free_os_memory_returns_swept_pages_to_the_kernel() {
    if !common::require_root("/freeosmemory in interactive mode") {
        return;
    }
    let server = Server::start(&["--limit", "128MiB", "--no-trace"]);
    let answer = |path: &str| {
        let (status, v) = server.get(path).unwrap();
        assert_eq!(status, 200, "{path}: {v}");
        v
    };
    answer("/add?bytes=64MiB");
    answer("/rel?bytes=64MiB");
    let gc = answer("/gc");
    let freed = answer("/freeosmemory");
    let figure =
        |v: &Value, key: &str| v[key].as_u64().unwrap_or_else(|| panic!("no {key} in {v}"));
    let released = figure(&freed, "HeapReleased") - figure(&gc, "HeapReleased");
    assert!(
        (63 * MIB..=65 * MIB).contains(&released),
        "HeapReleased rose by {released}: {gc} -> {freed}"
    );
    let (before, after) = (figure(&gc, "CgroupUsage"), figure(&freed, "CgroupUsage"));
    assert!(
        after + 48 * MIB <= before,
        "CgroupUsage {before} -> {after}"
    );
    let (code, _) = server.stop();
    assert_eq!(code, 0);
}

#[test]
fn a_killed_interactive_supervisor_takes_its_worker_along() {
    if !common::require_root("SIGKILL of an interactive supervisor") {
        return;
    }
    let _alone = ALONE.write().unwrap_or_else(|e| e.into_inner());
    let mut server = Server::start_with_turn(&["--limit", "32MiB", "--no-trace"], None);
    let worker = server.next_worker();
    let (status, _) = server.get("/stats").unwrap();
    assert_eq!(status, 200);
    let sup = server.child.id();
    // Our own child; SIGKILL leaves it no chance to clean up.
    kill(Pid::from_raw(sup as i32), Signal::SIGKILL).expect("SIGKILL the supervisor");
    server.child.wait().unwrap();
    common::wait_for_exit(worker, "the worker to die with its supervisor");
    assert!(
        TcpStream::connect(server.addr).is_err(),
        "nothing serves on the port any more"
    );
    // The next run sweeps the group the killed supervisor left.
    assert!(!groups_of(sup).is_empty());
    let out = Command::new(env!("CARGO_BIN_EXE_memspike"))
        .args(["run", "--no-trace"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        groups_of(sup).is_empty(),
        "the stale group survived the next run"
    );
}

#[test]
fn a_worker_killed_otherwise_is_restarted_and_other_users_cannot_signal_it() {
    if !common::require_root("a worker killed by a signal") {
        return;
    }
    use std::os::unix::process::CommandExt;
    let mut server = Server::start(&["--limit", "32MiB", "--no-trace"]);
    let worker = server.next_worker();
    let (status, _) = server.get("/stats").unwrap();
    assert_eq!(status, 200);
    // An ordinary unprivileged process (nobody) cannot touch it.
    let nobody = Command::new("/bin/kill")
        .args(["-TERM", &worker.to_string()])
        .uid(65534)
        .gid(65534)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!nobody.success(), "nobody could signal the worker");
    assert!(alive(worker));
    // Root can; the worker is replaced, as after an OOM kill, and the service goes on.
    // The supervisor's child, as root.
    kill(Pid::from_raw(worker), Signal::SIGTERM).expect("SIGTERM the worker");
    let line = server.wait_for_log("not an OOM kill");
    assert!(
        line.contains(&format!("worker {worker} killed by SIGTERM")),
        "{line}"
    );
    let replacement = server.next_worker();
    assert_ne!(replacement, worker);
    let stats = server.poll("/stats", |v| v["Restarts"] == 1);
    assert_eq!(stats["HeapAlloc"], 0);
    let (code, _) = server.stop();
    assert_eq!(code, 0);
}

/// A process's resident memory (VmRSS) in bytes.
fn rss(pid: u32) -> u64 {
    let kb = status_of(pid).vmrss.expect("VmRSS in /proc/PID/status");
    kb * 1024
}

/// A keep-alive HTTP/1.1 client, for many small requests.
struct KeepAlive {
    stream: BufReader<TcpStream>,
    host: SocketAddr,
}

impl KeepAlive {
    fn connect(addr: SocketAddr) -> KeepAlive {
        let stream = TcpStream::connect(addr).unwrap();
        // A guard against a server that never answers, not a measurement.
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        KeepAlive {
            stream: BufReader::new(stream),
            host: addr,
        }
    }

    /// Sends a GET and returns the status (the body is read and dropped).
    fn get(&mut self, path: &str) -> u16 {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host);
        self.stream.get_mut().write_all(req.as_bytes()).unwrap();
        let mut line = String::new();
        self.stream.read_line(&mut line).unwrap();
        let status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut length = 0usize;
        loop {
            line.clear();
            self.stream.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).unwrap();
        status
    }
}

#[test]
fn the_supervisor_stays_small_under_load_and_the_oom_report_is_bounded() {
    if !common::require_root("memory under load") {
        return;
    }
    let mut server = Server::start(&["--limit", "32MiB", "--no-trace", "--json"]);
    server.next_worker();
    let sup = server.child.id();
    let mut client = KeepAlive::connect(server.addr);
    let mut round = |n: usize| {
        for _ in 0..n {
            assert_eq!(client.get("/add?bytes=1"), 200);
            assert_eq!(client.get("/rel?bytes=1"), 200);
        }
    };
    round(2_000);
    let before = rss(sup);
    // 30,000 more requests: 60,000 more events for the supervisor.
    round(15_000);
    let after = rss(sup);
    eprintln!("supervisor VmRSS: {before} bytes after 4,000 requests, {after} after 34,000");
    assert!(
        after < before + (4 << 20),
        "the supervisor grew from {before} to {after} bytes"
    );
    let _ = server.get("/add?bytes=64MiB");
    let r = server.next_report();
    let total = r["events_total"].as_u64().unwrap();
    let kept = r["events"].as_array().unwrap().len() as u64;
    assert!(total > 60_000, "{total}");
    assert!(kept <= 64, "{kept} events in one report");
    assert_eq!(r["events_omitted"], total - kept);
    // Its last event is the allocation that was killed.
    let last = r["events"].as_array().unwrap().last().unwrap();
    assert_eq!(last["event"], "begin", "{last}");
    assert_eq!(last["bytes"], 64 << 20);
    let (code, _) = server.stop();
    assert_eq!(code, 0);
}
