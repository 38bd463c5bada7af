//! Interactive mode end to end, as a person runs it (needs root): the real supervisor, a real
//! cgroup, a worker serving HTTP as an unprivileged user, an OOM kill through `/add`, the
//! restart, and the clean stop on SIGINT.

mod common;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;

const MIB: u64 = 1 << 20;

/// A running `memspike run --interactive`, its log lines arriving on a channel.
struct Server {
    child: Child,
    log: mpsc::Receiver<String>,
    addr: SocketAddr,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_memspike"))
            .args(["run", "--interactive", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start memspike");
        let (tx, log) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("memspike: {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            log,
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

    /// The next log line containing `needle` (bounded wait).
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
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
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

    /// Polls `path` until `ok` holds for its JSON (bounded).
    fn poll(&self, path: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, v)) = self.get(path)
                && ok(&v)
            {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{path} never satisfied the condition"
            );
            std::thread::yield_now();
        }
    }

    fn stop(mut self) -> (i32, String) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let status = self.child.wait().unwrap();
        (status.code().unwrap_or(-1), out)
    }
}

fn uid_of(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(2).unwrap().parse().unwrap() // effective uid
}

#[test]
fn serves_as_nobody_restarts_after_an_oom_and_stops_cleanly() {
    if !common::require_root("interactive mode") {
        return;
    }
    // Requests say `Host: test`: --allow-host must reach every worker, restarted ones too.
    let mut server = Server::start(&["--limit", "32MiB", "--allow-host", "test"]);
    let started = server.wait_for_log("started inside the group");
    let worker: u32 = started
        .split("worker ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
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

    let (code, out) = server.stop();
    assert_eq!(code, 0);
    assert!(
        out.contains("OOM-KILLED"),
        "the OOM's report was printed: {out}"
    );
    let groups: Vec<_> =
        std::fs::read_dir(memspike::cgroup::Hierarchy::discover().unwrap().own_dir())
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("memspike-{sup}-"))
            })
            .collect();
    assert!(groups.is_empty(), "group left behind");
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
