//! Property tests over what users type and send: sizes, the query string, and whole HTTP
//! requests sent to an in-process server over loopback (no root needed).
//!
//! By default each property runs proptest's 256 cases. For minutes of fuzzing:
//!
//! ```sh
//! PROPTEST_CASES=100000 cargo test --release -p memspike --test fuzz
//! ```
//!
//! A failing case is shrunk and its seed saved in `tests/fuzz.proptest-regressions`, which is
//! kept in the repository: every later run tries those seeds first.

use std::{
    io::{self, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{Arc, Mutex, OnceLock},
    thread,
    time::{Duration, Instant},
};

use memspike_model::{experiment::Experiment, size};
use memspike_worker::{
    host::{self, WorkerHost},
    serve::{
        Limits, ServeContext,
        query::{Format, Query},
        serve_with,
    },
    telemetry::{Event, Feed, Sink},
};
use proptest::prelude::*;
use serde_json::Value;

// ---- sizes

/// `(digits, fraction digits, spaces, unit)` in the size grammar, and the unit's power of two.
fn size_parts() -> impl Strategy<Value = (u64, String, &'static str, (&'static str, u32))> {
    let units = prop_oneof![
        Just(("", 0)),
        Just(("B", 0)),
        Just(("b", 0)),
        Just(("K", 10)),
        Just(("KiB", 10)),
        Just(("kb", 10)),
        Just(("M", 20)),
        Just(("MiB", 20)),
        Just(("Mi", 20)),
        Just(("G", 30)),
        Just(("GiB", 30)),
        Just(("T", 40)),
        Just(("TiB", 40)),
        Just(("P", 50)),
        Just(("E", 60)),
        Just(("EiB", 60)),
    ];
    (
        prop_oneof![0u64..100_000, any::<u64>()],
        "[0-9]{0,6}",
        prop_oneof![Just(""), Just(" "), Just("  ")],
        units,
    )
}

/// The exact value of `int.frac` units of 2^shift bytes, if it is whole and fits.
fn exact(int: u64, frac: &str, shift: u32) -> Option<u64> {
    let scale = 10u128.pow(frac.len() as u32);
    let frac: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    let numerator = (u128::from(int) * scale + frac).checked_mul(1u128 << shift)?;
    if numerator % scale != 0 {
        return None;
    }
    u64::try_from(numerator / scale).ok()
}

proptest! {
    /// Any text: no panic, and what is accepted reads back the same from its digits.
    #[test]
    fn sizes_never_panic_and_accept_only_whole_bytes(input in "\\PC{0,24}") {
        if let Ok(n) = size::parse(&input) {
            prop_assert_eq!(size::parse(&n.to_string()), Ok(n));
            prop_assert!(!input.contains('_'), "{input:?}");
        }
    }

    /// Numbers with units are accepted exactly when they are whole bytes within 64 bits.
    #[test]
    fn sizes_with_units_are_exact((int, frac, space, (unit, shift)) in size_parts()) {
        let text = if frac.is_empty() {
            format!("{int}{space}{unit}")
        } else {
            format!("{int}.{frac}{space}{unit}")
        };
        prop_assert_eq!(size::parse(&text).ok(), exact(int, &frac, shift), "{}", text);
    }

    /// Exponents and digit separators are refused however they are written.
    #[test]
    fn exponents_and_separators_are_refused(
        a in 0u64..1000,
        b in 0u64..1000,
        sep in prop_oneof![Just("e"), Just("E"), Just("e+"), Just("e-"), Just("_")],
        unit in prop_oneof![Just(""), Just("B"), Just("KiB")],
    ) {
        let text = format!("{a}{sep}{b}{unit}");
        prop_assert!(size::parse(&text).is_err(), "{} was accepted", text);
        let text = format!("{a}.5{sep}{b}{unit}");
        prop_assert!(size::parse(&text).is_err(), "{} was accepted", text);
    }
}

// ---- the query string

const MAX: u64 = 1 << 30;

proptest! {
    /// Any query: no panic; a `bytes` that is accepted is the size its decoded text says.
    #[test]
    fn queries_never_panic_and_bytes_follow_the_size_grammar(query in "[ -~]{0,40}") {
        let Ok(q) = Query::parse(Some(&query)) else { return Ok(()); };
        let _ = q.format(&Default::default());
        if let Ok(n) = q.bytes(MAX) {
            let values: Vec<String> = form_urlencoded::parse(query.as_bytes())
                .filter(|(k, _)| k == "bytes")
                .map(|(_, v)| v.into_owned())
                .collect();
            prop_assert_eq!(values.len(), 1);
            prop_assert_eq!(size::parse(&values[0]), Ok(n));
            prop_assert!((1..=MAX).contains(&n));
        }
    }

    /// A size, percent-encoded or not, among other parameters, reads back exactly; twice is
    /// refused.
    #[test]
    fn a_valid_bytes_reads_back(n in 1u64..=MAX, unit in prop_oneof![Just(0u32), Just(10), Just(20)], other in "[a-z]{1,5}=[a-z0-9]{0,5}") {
        let n = (n >> unit).max(1);
        let suffix = match unit { 10 => "KiB", 20 => " MiB", _ => "" };
        let text = format!("{n}{suffix}");
        let encoded: String = form_urlencoded::byte_serialize(text.as_bytes()).collect();
        let want = n << unit;
        for value in [&text, &encoded] {
            let q = Query::parse(Some(&format!("{other}&bytes={value}&format=text"))).unwrap();
            prop_assert_eq!(q.bytes(u64::MAX).ok(), Some(want), "{}", value);
            prop_assert_eq!(q.format(&Default::default()).ok(), Some(Format::Text));
        }
        let twice = format!("bytes={encoded}&{other}&bytes=1");
        if !other.starts_with("bytes=") {
            prop_assert!(Query::parse(Some(&twice)).is_err());
        }
    }
}

// ---- whole requests

/// Telemetry that goes nowhere (the server's events are not what is tested here).
struct Discard;

impl Sink for Discard {
    fn send(&mut self, _event: &Event) -> io::Result<()> {
        Ok(())
    }
}

/// The largest `?bytes=` the fuzzed server accepts, and the live heap above which the
/// harness resets it, so that memory stays bounded over 100,000 cases.
const FUZZ_MAX_BYTES: u64 = 256 << 10;
const RESET_ABOVE: u64 = 64 << 20;
/// Any answer (or the server closing) comes within this, or the case fails as a hang. A guard,
/// not a measurement: the client has shut its sending side and the server's own timeouts are
/// 2 s, so only a server that never ends the exchange gets near it.
const HANG: Duration = Duration::from_secs(30);

/// One server for every case, with short timeouts so that incomplete requests end quickly.
fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        let ctx = ServeContext {
            limit: 32 << 20,
            memory_limit: None,
            runtime: Default::default(),
            cgroup: None,
            feed: Arc::new(Mutex::new(Feed::default())),
            max_bytes: FUZZ_MAX_BYTES,
            allowed_hosts: vec!["fuzz.example".into()],
        };
        let limits = Limits {
            header_read_timeout: Duration::from_secs(2),
            body_read_timeout: Duration::from_secs(2),
            ..Limits::default()
        };
        thread::spawn(move || {
            let program = host::program(
                &Experiment::seed(32 << 20),
                Discard,
                WorkerHost::new(None),
                4 << 30,
            )
            .expect("reserve the heap");
            let result = serve_with(listener, program, ctx, limits);
            panic!("the fuzzed server stopped: {result:?}");
        });
        addr
    })
}

/// One answer parsed off the bytes the server sent.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

/// Every answer in `bytes`, in order, and whatever could not be parsed as one.
fn answers(mut bytes: &[u8]) -> (Vec<Answer>, Vec<u8>) {
    let mut out = Vec::new();
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(head)) = resp.parse(bytes) else {
            return (out, bytes.to_vec());
        };
        let find = |name: &str| {
            resp.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        let len: usize = find("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let status = resp.code.unwrap_or(0);
        let content_type = find("content-type").unwrap_or_default();
        if bytes.len() < head + len {
            return (out, bytes.to_vec());
        }
        out.push(Answer {
            status,
            content_type,
            body: bytes[head..head + len].to_vec(),
        });
        bytes = &bytes[head + len..];
    }
}

/// Sends `request`, closes the sending side, and reads until the server closes.
fn send(request: &[u8]) -> Result<Vec<u8>, TestCaseError> {
    let mut stream = TcpStream::connect(server()).map_err(|e| fail(format!("connect: {e}")))?;
    // The server may answer and close before reading everything: a failed write is fine.
    let _ = stream.write_all(request);
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + HANG;
    let mut got = Vec::new();
    let mut buf = [0u8; 16 << 10];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(fail(format!("no end in {HANG:?}; got {got:?}")));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| fail(e.to_string()))?;
        match stream.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(got),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(fail(format!("no end in {HANG:?}; got {got:?}")));
            }
            Err(e) => return Err(fail(format!("read: {e}"))),
        }
    }
}

fn fail(why: String) -> TestCaseError {
    TestCaseError::fail(why)
}

/// The properties every exchange must have, and the server still serving afterwards.
fn check(request: &[u8]) -> Result<(), TestCaseError> {
    let got = send(request)?;
    let (got, rest) = answers(&got);
    prop_assert!(
        rest.is_empty(),
        "bytes that are not an answer: {:?} after {got:?}",
        String::from_utf8_lossy(&rest)
    );
    for a in &got {
        // 100 Continue comes before the answer to a request that expects it.
        prop_assert!(
            a.status == 100 || (200..500).contains(&a.status),
            "status {}: {a:?}",
            a.status
        );
        if a.status >= 400 {
            prop_assert_eq!(&a.content_type, "application/json", "{:?}", a);
            let v: Value = serde_json::from_slice(&a.body)
                .map_err(|e| fail(format!("not JSON ({e}): {a:?}")))?;
            prop_assert!(
                v["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{:?}",
                a
            );
        }
    }
    // The server goes on serving, and its heap stays small.
    let stats = send(format!("GET /stats HTTP/1.1\r\nHost: {}\r\n\r\n", server()).as_bytes())?;
    let (stats, _) = answers(&stats);
    prop_assert_eq!(
        stats.len(),
        1,
        "no answer to /stats after {:?}",
        String::from_utf8_lossy(request)
    );
    prop_assert_eq!(stats[0].status, 200);
    let v: Value = serde_json::from_slice(&stats[0].body).map_err(|e| fail(e.to_string()))?;
    if v["Live"].as_u64().unwrap_or(0) > RESET_ABOVE {
        send(format!("GET /reset HTTP/1.1\r\nHost: {}\r\n\r\n", server()).as_bytes())?;
    }
    Ok(())
}

/// A request in roughly the right shape, each part often valid and sometimes not.
fn request() -> impl Strategy<Value = Vec<u8>> {
    let method = prop_oneof![
        4 => Just("GET".to_owned()),
        3 => Just("POST".to_owned()),
        1 => prop_oneof![Just("PUT"), Just("DELETE"), Just("OPTIONS"), Just("PATCH"), Just("CONNECT")]
            .prop_map(str::to_owned),
        // Not HEAD: its answers have no body, which this harness does not follow.
        1 => "[!-~]{1,8}".prop_filter("not HEAD", |m| m != "HEAD"),
    ];
    let path = prop_oneof![
        6 => prop_oneof![Just("/"), Just("/add"), Just("/rel"), Just("/gc"), Just("/stats"), Just("/reset"), Just("/metrics")]
            .prop_map(str::to_owned),
        1 => "/[a-z/%.]{0,12}",
        1 => "[!-~]{0,16}",
        1 => Just("http://fuzz.example/add".to_owned()),
        1 => Just("*".to_owned()),
    ];
    let size = prop_oneof![
        "[0-9]{1,7}",
        "[0-9]{1,3}(\\.[0-9]{1,3})?(%20| )?(B|KiB|k|M|MiB|e3|_)?",
        "[ -~]{0,12}",
        "(%[0-9A-Fa-f]{2}){0,6}",
    ];
    let query = prop_oneof![
        2 => Just(String::new()),
        4 => size.prop_map(|s| format!("?bytes={s}")),
        1 => "\\?[ -~]{0,24}",
        1 => Just("?bytes=1&bytes=2".to_owned()),
        1 => prop_oneof![Just("?format=text"), Just("?format=json"), Just("?format=xml")].prop_map(str::to_owned),
    ];
    let version = prop_oneof![
        8 => Just("HTTP/1.1"),
        1 => Just("HTTP/1.0"),
        1 => prop_oneof![Just("HTTP/2.0"), Just("HTTP/1.1 x"), Just(""), Just("http/1.1")],
    ];
    let addr = server().to_string();
    let host = prop_oneof![
        8 => Just(addr.clone()),
        1 => Just(format!("localhost:{}", server().port())),
        1 => Just("fuzz.example".to_owned()),
        1 => Just("evil.example".to_owned()),
        1 => "[ -~]{0,20}",
    ];
    let header = prop_oneof![
        2 => Just("Origin: http://evil.example".to_owned()),
        4 => Just(format!("Origin: http://{addr}")),
        1 => Just("Origin: null".to_owned()),
        4 => prop_oneof![Just("cross-site"), Just("same-site"), Just("same-origin"), Just("none")]
            .prop_map(|s| format!("Sec-Fetch-Site: {s}")),
        2 => "[0-9]{1,3}".prop_map(|n| format!("Content-Length: {n}")),
        1 => "[ -~]{0,10}".prop_map(|n| format!("Content-Length: {n}")),
        1 => Just("Transfer-Encoding: chunked".to_owned()),
        1 => Just("Transfer-Encoding: gzip".to_owned()),
        1 => Just("Expect: 100-continue".to_owned()),
        2 => Just("Connection: close".to_owned()),
        4 => prop_oneof![Just("text/plain"), Just("application/json"), Just("*/*")]
            .prop_map(|a| format!("Accept: {a}")),
        6 => "[A-Za-z-]{1,12}: [!-~]{0,30}",
        1 => "[ -~]{0,30}",
    ];
    let body = prop_oneof![
        3 => Just(Vec::new()),
        1 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => "[0-9a-f]{1,2}\r\n[a-z]{0,16}\r\n(0\r\n\r\n)?".prop_map(String::into_bytes),
    ];
    (
        method,
        path,
        query,
        version,
        proptest::option::weighted(0.9, host),
        proptest::collection::vec(header, 0..4),
        body,
    )
        .prop_map(|(method, path, query, version, host, headers, body)| {
            let mut r = format!("{method} {path}{query} {version}\r\n");
            if let Some(h) = host {
                r.push_str(&format!("Host: {h}\r\n"));
            }
            for h in headers {
                r.push_str(&h);
                r.push_str("\r\n");
            }
            r.push_str("\r\n");
            let mut r = r.into_bytes();
            r.extend_from_slice(&body);
            r
        })
}

proptest! {
    /// Requests in roughly the right shape: never a 5xx, never a hang, every error answer
    /// JSON, and the server keeps serving.
    #[test]
    fn requests_never_get_a_5xx_or_a_bare_error(request in request()) {
        check(&request)?;
    }

    /// Any bytes at all, alone or after a valid request on the same connection.
    #[test]
    fn any_bytes_never_get_a_5xx_or_a_bare_error(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        after_a_request in any::<bool>(),
    ) {
        let mut request = Vec::new();
        if after_a_request {
            request.extend_from_slice(format!("GET /stats HTTP/1.1\r\nHost: {}\r\n\r\n", server()).as_bytes());
        }
        request.extend_from_slice(&bytes);
        check(&request)?;
    }
}
