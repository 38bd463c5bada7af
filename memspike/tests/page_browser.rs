//! The page at `/`, in a real headless Chromium driven over the W3C WebDriver protocol.
//!
//! The test serves the real HTTP server in-process on 127.0.0.1 (no cgroup, no root needed),
//! starts Debian's `chromedriver` on a free loopback port and speaks WebDriver to it through
//! the `fantoccini` client (plain HTTP, on a small tokio runtime of its own). It checks that the
//! page loads without script errors and requests nothing but its own routes, that the chart is
//! drawn after a poll of `/stats`, that "add" with 8MiB raises the heap shown in `#heap-alloc`,
//! that release, GC, reset and a bad size answer as they should, and it saves a screenshot to
//! `target/tmp/page_browser.png`.
//!
//! A second test opens the HTML report (`--report DIR`'s report.html) from a file and checks
//! its chart the same way, saving `target/tmp/report_browser.png`.
//!
//! Needs `chromium` and `chromium-driver` (Debian's packages; `cargo xtask test` installs them).
//! Without them it prints `SKIPPED` outside CI and fails under CI. `MEMSPIKE_CHROMIUM` and
//! `MEMSPIKE_CHROMEDRIVER` name other binaries; `MEMSPIKE_PAGE_URL` (e.g.
//! `http://127.0.0.1:1112/`) drives an already running `memspike run --interactive` instead of
//! the in-process server.

mod common;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use memspike_report::Document;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long one wait for the page may take (the page polls every 500 ms).
const WAIT: Duration = Duration::from_secs(15);
const MIB: u64 = 1 << 20;

#[test]
fn page_loads_draws_and_add_changes_the_heap() {
    let Some((chromium, chromedriver)) = browser() else {
        return;
    };
    let started = Instant::now();
    let page = match std::env::var("MEMSPIKE_PAGE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => format!("http://{}/", start_server()),
    };
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let profile = tempfile::tempdir().expect("a temporary Chromium profile directory");
    let driver = ChromeDriver::start(&chromedriver, out_dir).expect("chromedriver starts");
    let session = driver.new_session(&chromium, profile.path());

    session.navigate(&page);
    session.wait_for("the page to finish loading", |s| {
        s.script("return document.readyState;", json!([])) == "complete"
    });
    let title = session.title();
    assert!(
        title.contains("memspike"),
        "page title is {title:?}, expected one naming memspike"
    );
    assert_no_script_errors(&session, "after loading");

    // The chart: at least two polls of /stats drawn as a heap line, a limit line and a legend.
    session.wait_for("the chart to be drawn from two polls of /stats", |s| {
        let drawn = s.script(
            "var c = document.getElementById('chart');
             var heap = c && c.querySelector('path.s-heap');
             return !!heap && Number(c.dataset.samples) >= 2
                 && /^M[\\d.]+ [\\d.]+H[\\d.]+V/.test(heap.getAttribute('d'))
                 && !!c.querySelector('.s-limit');",
            json!([]),
        );
        drawn == true
    });
    // Labels and tooltips come from memspike's registry of named figures.
    let from_registry = session.script(
        "return [document.querySelector('[data-figure=\"NextGC\"]').title,
                 document.querySelector('[data-figure-label=\"CgroupUsage\"]').textContent];",
        json!([]),
    );
    assert_eq!(
        from_registry,
        json!([
            memspike_report::figures::NEXT_GC.help,
            memspike_report::figures::CGROUP_USAGE.label
        ])
    );
    let legend = session.text(&session.find("#legend"));
    for series in ["HeapAlloc", "NextGC", "cgroup usage", "limit"] {
        assert!(legend.contains(series), "legend {legend:?} lacks {series}");
    }

    // "add" with 8MiB: the heap shown changes, by at least 8 MiB.
    let before = heap_shown(&session);
    let input = session.find("#bytes");
    assert_eq!(
        session.property(&input, "value"),
        "4MiB",
        "the size input starts at 4MiB"
    );
    session.clear(&input);
    session.type_text(&input, "8MiB");
    let status = press(&session, "#add");
    assert!(
        status.contains("Added 8.0 MiB"),
        "status after add: {status:?}"
    );
    let after = session.wait_for_value("#heap-alloc to change after add", |s| {
        let now = heap_shown(s);
        (now.text != before.text).then_some(now)
    });
    assert!(
        after.bytes >= before.bytes + 8 * MIB,
        "add 8MiB: #heap-alloc went from {before:?} to {after:?}"
    );

    // release moves the slab to garbage (HeapAlloc unchanged), GC sweeps it.
    let status = press(&session, "#release");
    assert!(
        status.contains("Released 8.0 MiB"),
        "status after release: {status:?}"
    );
    let status = press(&session, "#gc");
    assert!(status.contains("Collection"), "status after GC: {status:?}");
    let swept = session.wait_for_value("#heap-alloc to drop after release and GC", |s| {
        let now = heap_shown(s);
        (now.bytes + 8 * MIB <= after.bytes).then_some(now)
    });
    eprintln!(
        "heap shown: {} before, {} after add 8MiB, {} after release and GC",
        before.text, after.text, swept.text
    );

    // "free to OS" (debug.FreeOSMemory): the 8 MiB just swept go back to the OS, and the page
    // shows them as HeapReleased.
    let status = press(&session, "#freeosmemory");
    assert!(
        status.contains("FreeOSMemory: collected, then returned"),
        "status after free to OS: {status:?}"
    );
    let released = session.wait_for_value("#released to show the returned pages", |s| {
        let text = s.text(&s.find("#released"));
        let mib: f64 = text.trim_end_matches(" MiB").parse().ok()?;
        (mib >= 8.0).then_some(text)
    });
    eprintln!("HeapReleased shown after free to OS: {released}");

    // A size the server refuses: its JSON error is shown, marked as an error.
    session.clear(&input);
    session.type_text(&input, "lots");
    let error = press(&session, "#add");
    assert!(
        session.attribute(&session.find("#status"), "data-state") == "error"
            && error.contains("400"),
        "a bad size should show the server's 400 error, #status says {error:?}"
    );

    // Back to a real size and a heap with something in it, for the screenshot.
    session.clear(&input);
    session.type_text(&input, "12MiB");
    press(&session, "#add");
    session.wait_for("the chart to show the latest poll", |s| {
        s.script(
            "return Number(document.getElementById('chart').dataset.samples) >= 6;",
            json!([]),
        ) == true
    });
    let shot = out_dir.join("page_browser.png");
    session.screenshot(&shot);
    eprintln!("screenshot: {}", shot.display());

    // reset empties the heap.
    press(&session, "#reset");
    session.wait_for_value("#heap-alloc to be 0 after reset", |s| {
        let now = heap_shown(s);
        (now.bytes == 0).then_some(now)
    });

    assert_no_script_errors(&session, "at the end");
    // The check above can fail: an error thrown by the page later is recorded.
    session.script(
        "setTimeout(function () { null.memspikeTestError(); }, 0);",
        json!([]),
    );
    session.wait_for("window.__errors to record a thrown error", |s| {
        s.script("return window.__errors.length;", json!([])) == 1
    });
    assert_only_own_requests(&session, &page);
    drop(session);
    drop(driver);
    eprintln!(
        "page_browser: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The HTML report (`--report DIR`'s report.html), as a person opens it: from a file, offline,
/// in Chromium. The report is the seed's, built in-process from a recorded run (no root): its SVG
/// parses, the page loads with no console error and no request at all, shows the chart with
/// its legend and the verdict, and a screenshot is saved to `target/tmp/report_browser.png`.
#[test]
fn the_html_report_opens_offline_with_its_chart() {
    let Some((chromium, chromedriver)) = browser() else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary report directory");
    let report = seed_report();
    let files = report.files().expect("the report serialises");
    assert_eq!(
        files.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
        ["report.json", "timeline.svg", "report.html"]
    );
    for (name, body) in files {
        std::fs::write(dir.path().join(name), body).expect("the report is written");
    }
    common::assert_report_dir(
        dir.path(),
        &serde_json::to_value(&report).expect("the report as JSON"),
        &[
            "live",
            "garbage",
            "next GC goal",
            "cgroup usage",
            "cgroup limit",
            "OOM kill in remainder",
        ],
    );

    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let profile = tempfile::tempdir().expect("a temporary Chromium profile directory");
    let driver = ChromeDriver::start(&chromedriver, out_dir).expect("chromedriver starts");
    let session = driver.new_session(&chromium, profile.path());
    let url = format!("file://{}", dir.path().join("report.html").display());
    session.navigate(&url);
    session.wait_for("the report to finish loading", |s| {
        s.script("return document.readyState;", json!([])) == "complete"
    });
    let shown = session.script(
        "var svg = document.querySelector('figure svg');
         var box = svg ? svg.getBoundingClientRect() : null;
         return { title: document.title, width: box ? box.width : 0, height: box ? box.height : 0,
                  verdict: document.querySelector('p.verdict').textContent,
                  requests: performance.getEntriesByType('resource').length };",
        json!([]),
    );
    assert!(
        shown["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("memspike: OOM-KILLED")),
        "{shown}"
    );
    assert!(
        shown["width"].as_f64().unwrap_or(0.0) > 400.0
            && shown["height"].as_f64().unwrap_or(0.0) > 200.0,
        "the chart is drawn at a readable size: {shown}"
    );
    assert_eq!(shown["verdict"], report.verdict.as_str());
    assert_eq!(shown["requests"], 0, "the report loads nothing: {shown}");
    if let Some(log) = session.browser_log() {
        let severe: Vec<&Value> = log.iter().filter(|e| e["level"] == "SEVERE").collect();
        assert!(severe.is_empty(), "console errors: {severe:?}");
    }
    let shot = out_dir.join("report_browser.png");
    session.screenshot(&shot);
    eprintln!("screenshot: {}", shot.display());
}

/// The live page opened after an OOM kill (issue 19): the server hands it the session's
/// history (here as the supervisor would have sent it: a heap growing for 20 s, the kill, the
/// restart), and its chart shows what led to the kill, the kill and the restart, at 1280 and
/// 600 px, with no horizontal scrollbar. Screenshots: `target/tmp/live-after-kill-WIDTH.png`.
#[test]
fn the_live_page_opened_after_a_kill_shows_it() {
    use memspike_worker::telemetry::{Feed, History, Moment, MomentMark, OomSummary};
    let Some((chromium, chromedriver)) = browser() else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut history = History::default();
    for i in 0..=40u64 {
        history.push(Moment {
            t_unix_ms: now - 25_000 + i * 500,
            heap_alloc: Some(i * 3 * MIB / 4),
            next_gc: Some(60 * MIB),
            cgroup_usage: Some(2 * MIB + i * 3 * MIB / 4),
            mark: None,
        });
    }
    let killed = now - 4_000;
    history.push(Moment {
        t_unix_ms: killed,
        cgroup_usage: Some(32 * MIB),
        mark: Some(MomentMark::OomKill {
            died_in: Some("interactive".into()),
        }),
        ..Moment::default()
    });
    history.push(Moment {
        t_unix_ms: killed + 100,
        mark: Some(MomentMark::Restart { worker: 2 }),
        ..Moment::default()
    });
    let feed = Feed {
        restarts: 1,
        last_oom: Some(OomSummary {
            worker_pid: Some(4242),
            died_in: Some("interactive".into()),
            // 1000 KiB: the page writes sizes as the reports do (issue 19).
            needed_bytes: Some(1000 * 1024),
            garbage_bytes: 0,
            verdict: "killed while allocating 64.0 MiB".into(),
        }),
        history,
        ..Feed::default()
    };
    let page = format!("http://{}/", start_server_with(feed));
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let profile = tempfile::tempdir().expect("a temporary Chromium profile directory");
    let driver = ChromeDriver::start(&chromedriver, out_dir).expect("chromedriver starts");
    let session = driver.new_session(&chromium, profile.path());
    for width in [1280, 600] {
        session.block("resize", session.client().set_window_size(width, 1000));
        session.navigate(&page);
        session.wait_for("the history and a poll of /stats drawn", |s| {
            s.script(
                "var c = document.getElementById('chart');
                 return Number(c.dataset.history) > 0 && Number(c.dataset.samples) > 40;",
                json!([]),
            ) == true
        });
        let seen = session.script(
            "var c = document.getElementById('chart');
             var box = c.getBoundingClientRect();
             var kill = c.querySelector('line.oom-mark');
             var restart = c.querySelector('line.restart-mark');
             var heap = c.querySelector('path.s-heap');
             var label = Array.from(c.querySelectorAll('text.oom-label'))
               .map(function (t) { return t.textContent; });
             var kb = kill ? kill.getBoundingClientRect() : null;
             var hb = heap ? heap.getBoundingClientRect() : null;
             return { kill: kb ? kb.left : null, restart: !!restart, label: label,
                      heap_from: hb ? hb.left : null, left: box.left, right: box.right,
                      banner: !document.getElementById('oom').classList.contains('hidden'),
                      detail: document.getElementById('oom-detail').textContent,
                      scroll: document.documentElement.scrollWidth,
                      client: document.documentElement.clientWidth };",
            json!([]),
        );
        let what = format!("at {width} px: {seen}");
        let kill = seen["kill"].as_f64().expect(&what);
        assert!(
            kill > seen["left"].as_f64().unwrap() && kill < seen["right"].as_f64().unwrap(),
            "the kill is on the chart {what}"
        );
        assert_eq!(seen["label"], json!(["OOM kill"]), "{what}");
        assert_eq!(seen["restart"], true, "the restart is marked {what}");
        assert!(
            seen["heap_from"].as_f64().unwrap() < kill,
            "what led to the kill is drawn before it {what}"
        );
        assert_eq!(seen["banner"], true, "{what}");
        assert!(
            seen["detail"]
                .as_str()
                .is_some_and(|d| d.contains("needed 0.98 MiB")),
            "one formatter for sizes {what}"
        );
        assert!(seen["scroll"].as_f64() <= seen["client"].as_f64(), "{what}");
        let shot = out_dir.join(format!("live-after-kill-{width}.png"));
        session.screenshot(&shot);
        eprintln!("screenshot: {}", shot.display());
    }
}

/// Every report kind, as a person looks at it (issue 19): the seed's `run`, a `compare` of three
/// policies, a real Go program's `exec`, a `threshold` search and a `sweep merge`, each built
/// in-process from a recorded run (no root), opened offline at 1280 px and 600 px wide. In the
/// browser no two texts of the picture overlap (their bounding boxes, as laid out), every
/// step's band is named under the plot, the kill's label (a grid's counts) and the limit's
/// line lie inside the plot, and the page has no horizontal scrollbar. Screenshots go to `target/tmp/layout-<kind>-<width>.png`
/// (docs/images keeps copies).
#[test]
fn every_report_lays_out_at_two_widths() {
    let Some((chromium, chromedriver)) = browser() else {
        return;
    };
    let fixture = |name: &str| {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../memspike-report/tests/fixtures")
                .join(name),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let compare = memspike_report::compare::CompareReport::build(
        serde_json::from_str(&fixture("compare.json")).expect("the recorded comparison"),
    );
    let exec = memspike_report::exec::ExecReport::build(
        serde_json::from_str(&fixture("exec-go-oom.json")).expect("the recorded exec"),
    );
    let threshold = memspike_report::threshold::ThresholdReport::build(
        serde_json::from_str(&fixture("threshold.json")).expect("the recorded threshold"),
    );
    let cells: Vec<memspike_report::facts::CellFacts> =
        serde_json::from_str(&fixture("sweep-cells.json")).expect("the recorded cells");
    let sweep = memspike_report::sweep::SweepReport::merge(
        cells
            .into_iter()
            .map(memspike_report::sweep::SweepRow::build)
            .collect(),
        Vec::new(),
        None,
    )
    .expect("the cells merge");
    let seed = ["spike", "release", "remainder"];
    /// A report kind: its name, its files, the texts its picture shows under the plot (a
    /// timeline's bands) and inside it (a kill's label, a grid's counts).
    type Kind<'a> = (
        &'a str,
        Vec<(&'a str, String)>,
        &'a [&'a str],
        &'a [&'a str],
    );
    let kinds: [Kind; 5] = [
        (
            "run",
            seed_report().files().unwrap(),
            &seed,
            &["OOM kill in remainder"],
        ),
        (
            "compare",
            compare.files().unwrap(),
            &seed,
            &["gogc100 killed", "memlimit90 killed"],
        ),
        ("exec", exec.files().unwrap(), &[], &["OOM kill"]),
        ("threshold", threshold.files().unwrap(), &[], &[]),
        ("sweep", sweep.files().unwrap(), &[], &["1/1", "0/1"]),
    ];
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let profile = tempfile::tempdir().expect("a temporary Chromium profile directory");
    let driver = ChromeDriver::start(&chromedriver, out_dir).expect("chromedriver starts");
    let session = driver.new_session(&chromium, profile.path());
    for (kind, files, bands, kills) in kinds {
        let dir = tempfile::tempdir().expect("a temporary report directory");
        for (name, body) in files {
            std::fs::write(dir.path().join(name), body).expect("the report is written");
        }
        for width in [1280, 600] {
            let what = format!("{kind} at {width} px");
            session.block("resize", session.client().set_window_size(width, 1000));
            session.navigate(&format!(
                "file://{}",
                dir.path().join("report.html").display()
            ));
            session.wait_for("the report to finish loading", |s| {
                s.script("return document.readyState;", json!([])) == "complete"
            });
            let laid = session.script(LAYOUT, json!([bands, kills]));
            assert_eq!(laid["overlaps"], json!([]), "{what}: texts overlap: {laid}");
            assert_eq!(
                laid["missing"],
                json!([]),
                "{what}: not drawn where it belongs: {laid}"
            );
            // A timeline's limit (a threshold's or a sweep's picture has none).
            if !matches!(kind, "threshold" | "sweep") {
                assert!(
                    laid["limit_lines"].as_u64().unwrap_or(0) > 0,
                    "{what}: no limit line: {laid}"
                );
            }
            assert!(
                laid["scroll_width"].as_f64() <= laid["client_width"].as_f64(),
                "{what}: a horizontal scrollbar: {laid}"
            );
            let shot = out_dir.join(format!("layout-{kind}-{width}.png"));
            session.screenshot(&shot);
            eprintln!("screenshot: {}", shot.display());
        }
    }
}

/// The layout check, in the page: `arguments[0]` the band names expected under the plot,
/// `arguments[1]` the texts expected inside it (each a text's start).
const LAYOUT: &str = r#"
var svg = document.querySelector('figure svg');
var marked = svg.querySelector('rect.plot-area');
if (!marked) { return { overlaps: [], missing: ['the plot area'], limit_lines: 0,
                        scroll_width: 0, client_width: 0 }; }
var plot = marked.getBoundingClientRect();
var texts = Array.from(svg.querySelectorAll('text'))
  .filter(function (t) { return t.textContent.trim().length > 0; })
  .map(function (t) {
    var b = t.getBoundingClientRect();
    return { s: t.textContent.trim(), l: b.left, r: b.right, t: b.top, b: b.bottom };
  });
var overlaps = [];
for (var i = 0; i < texts.length; i++) {
  for (var j = i + 1; j < texts.length; j++) {
    var a = texts[i], c = texts[j];
    if (a.l < c.r - 0.5 && c.l < a.r - 0.5 && a.t < c.b - 0.5 && c.t < a.b - 0.5) {
      overlaps.push([a.s, c.s]);
    }
  }
}
var missing = [];
var across = function (t) { return t.l >= plot.left - 1 && t.r <= plot.right + 1; };
arguments[0].forEach(function (name) {
  var t = texts.find(function (x) { return x.s === name; });
  if (!t || !across(t) || t.t < plot.bottom - 1) { missing.push('band ' + name); }
});
arguments[1].forEach(function (label) {
  var t = texts.find(function (x) { return x.s.indexOf(label) === 0; });
  if (!t || !across(t) || t.t < plot.top - 1 || t.b > plot.bottom + 1) { missing.push('inside ' + label); }
});
var limit = Array.from(svg.querySelectorAll('[stroke]')).filter(function (e) {
  var b = e.getBoundingClientRect();
  return (e.getAttribute('stroke') || '').toLowerCase() === '#c62828' && b.width > 0
    && b.left >= plot.left - 1 && b.right <= plot.right + 1
    && b.top >= plot.top - 1 && b.bottom <= plot.bottom + 1;
});
return { overlaps: overlaps, missing: missing, limit_lines: limit.length,
         scroll_width: document.documentElement.scrollWidth,
         client_width: document.documentElement.clientWidth };
"#;

/// The seed's report as a real traced run at 32 MiB recorded it (the report crate's fixture:
/// OOM-killed in the remainder), built from its facts in-process (no root).
fn seed_report() -> memspike_report::run::Report {
    let facts: memspike_report::facts::RunFacts = serde_json::from_str(include_str!(
        "../../memspike-report/tests/fixtures/run-oom.json"
    ))
    .expect("the recorded run's facts");
    memspike_report::run::Report::build(facts)
}

/// Chromium and chromedriver, or None after printing why the test is skipped (outside CI).
fn browser() -> Option<(PathBuf, PathBuf)> {
    let pick = |var: &str, default: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(default))
    };
    let chromium = pick("MEMSPIKE_CHROMIUM", CHROMIUM);
    let chromedriver = pick("MEMSPIKE_CHROMEDRIVER", CHROMEDRIVER);
    let missing: Vec<String> = [&chromium, &chromedriver]
        .into_iter()
        .filter(|p| !is_executable(p))
        .map(|p| p.display().to_string())
        .collect();
    if missing.is_empty() {
        return Some((chromium, chromedriver));
    }
    common::skip(
        "page_browser",
        &format!(
            "needs chromium and chromium-driver (cargo xtask test installs them); missing {}",
            missing.join(", ")
        ),
    );
    None
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The real HTTP server, in a thread of this process, on a free loopback port.
fn start_server() -> SocketAddr {
    start_server_with(memspike_worker::telemetry::Feed::default())
}

/// The in-process server with `feed` as the supervisor would have sent it.
fn start_server_with(feed: memspike_worker::telemetry::Feed) -> SocketAddr {
    use memspike_model::experiment::Experiment;
    use memspike_worker::host::{self, WorkerHost};
    use memspike_worker::serve::{ServeContext, serve};
    use memspike_worker::telemetry::Event;

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let driver = host::program(
        &Experiment::seed(32 * MIB),
        Vec::<Event>::new(),
        WorkerHost::new(None),
        1 << 30,
    )
    .expect("a 1 GiB heap reservation");
    let ctx = ServeContext {
        limit: 32 * MIB,
        memory_limit: None,
        runtime: Default::default(),
        cgroup: None,
        feed: Arc::new(Mutex::new(feed)),
        max_bytes: 1 << 30,
        allowed_hosts: Vec::new(),
    };
    std::thread::spawn(move || {
        if let Err(err) = serve(listener, driver, ctx) {
            eprintln!("page_browser: the server stopped: {err}");
        }
    });
    addr
}

/// What `#heap-alloc` shows: its text, and the bytes it stands for (`data-bytes`).
#[derive(Debug, Clone)]
struct HeapShown {
    text: String,
    bytes: u64,
}

fn heap_shown(s: &Session) -> HeapShown {
    let v = s.script(
        "var e = document.getElementById('heap-alloc');
         return [e.textContent, e.dataset.bytes || ''];",
        json!([]),
    );
    let text = v[0].as_str().unwrap_or_default().to_string();
    let bytes = v[1].as_str().and_then(|b| b.parse().ok()).unwrap_or(0);
    HeapShown { text, bytes }
}

/// Clicks a button and waits for its own answer in `#status` (ok or error); returns its text.
fn press(s: &Session, button: &str) -> String {
    let answers = |s: &Session| {
        let v = s.script(
            "var e = document.getElementById('status');
             return [Number(e.dataset.answers), e.textContent];",
            json!([]),
        );
        (
            v[0].as_u64().unwrap_or(0),
            v[1].as_str().unwrap_or_default().to_string(),
        )
    };
    let (before, _) = answers(s);
    s.click(&s.find(button));
    s.wait_for_value(&format!("the answer to {button} in #status"), |s| {
        let (now, text) = answers(s);
        (now > before).then_some(text)
    })
}

fn assert_no_script_errors(s: &Session, when: &str) {
    let errors = s.script("return window.__errors;", json!([]));
    assert_eq!(
        errors,
        json!([]),
        "script errors on the page {when} (window.__errors)"
    );
    // Chromium's console, where chromedriver can read it: nothing at SEVERE.
    if let Some(log) = s.browser_log() {
        let severe: Vec<&Value> = log
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .filter(|e| {
                // The page's own 400 for "lots" is an expected failed request.
                !e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("/add?bytes=lots"))
            })
            .collect();
        assert!(severe.is_empty(), "console errors {when}: {severe:?}");
    }
}

/// Every resource the page loaded came from the page's own origin (no CDN, works offline).
fn assert_only_own_requests(s: &Session, page: &str) {
    let origin = s.script("return location.origin;", json!([]));
    let origin = origin.as_str().expect("location.origin");
    let urls = s.script(
        "return performance.getEntriesByType('resource').map(function (e) { return e.name; });",
        json!([]),
    );
    let urls = urls.as_array().expect("a list of resource URLs");
    assert!(
        !urls.is_empty(),
        "the page made no request at all (no /stats poll?)"
    );
    for url in urls {
        let url = url.as_str().unwrap_or_default();
        assert!(
            url.starts_with(origin),
            "the page at {page} loaded {url}, outside its origin {origin}"
        );
    }
}

// ---- chromedriver ----------------------------------------------------------------------------

/// A running chromedriver; killed (and its log shown if the test failed) when dropped.
struct ChromeDriver {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl ChromeDriver {
    /// Starts chromedriver on a free loopback port and waits until `/status` says it is ready.
    fn start(binary: &Path, out_dir: &Path) -> io::Result<ChromeDriver> {
        let log = out_dir.join("page_browser.chromedriver.log");
        let mut last_error = None;
        // The port is free when we look; another process could take it before chromedriver
        // binds it, so a start that fails is tried again on another port.
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let child = Command::new(binary)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", binary.display())))?;
            let mut driver = ChromeDriver {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                log: log.clone(),
            };
            match driver.wait_ready(Duration::from_secs(20)) {
                Ok(()) => return Ok(driver),
                Err(err) => last_error = Some(err), // dropping `driver` kills it
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("chromedriver did not start")))
    }

    /// Polls `/status` until `value.ready` is true, chromedriver exits, or `timeout` passes.
    fn wait_ready(&mut self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        let status_url = format!("http://{}/status", self.addr);
        let status = || -> Option<Value> {
            let body = ureq::get(&status_url)
                .call()
                .ok()?
                .into_body()
                .read_to_string()
                .ok()?;
            serde_json::from_str(&body).ok()
        };
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "chromedriver exited with {status} before it was ready (log: {})",
                    self.log.display()
                )));
            }
            if status().is_some_and(|body| body["value"]["ready"] == true) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("chromedriver not ready after {timeout:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A headless Chromium session with a fresh profile, at 1024 px width.
    fn new_session(&self, chromium: &Path, profile: &Path) -> Session {
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1024,1100",
            &format!("--user-data-dir={}", profile.display()),
        ];
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
            "goog:loggingPrefs": { "browser": "ALL" },
            "timeouts": { "script": 10_000, "pageLoad": 20_000 }
        });
        let caps: Capabilities = match caps {
            Value::Object(map) => map,
            other => panic!("capabilities are an object: {other}"),
        };
        // One thread is enough: every command is awaited before the next is sent.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime for the WebDriver client");
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = rt
            .block_on(
                ClientBuilder::new(connector)
                    .capabilities(caps)
                    .connect(&format!("http://{}", self.addr)),
            )
            .unwrap_or_else(|e| panic!("WebDriver new session via {}: {e}", self.addr));
        let shown = |key: &str| {
            client
                .capabilities()
                .and_then(|c| c.get(key)?.as_str().map(str::to_owned))
                .unwrap_or_else(|| "?".to_owned())
        };
        eprintln!(
            "page_browser: {} {} via chromedriver on {}",
            shown("browserName"),
            shown("browserVersion"),
            self.addr
        );
        Session {
            rt,
            client: Some(client),
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking()
            && let Ok(log) = std::fs::read_to_string(&self.log)
        {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("---- last lines of {} ----", self.log.display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// A WebDriver session (fantoccini's client, driven from this thread); closing it (on drop)
/// closes Chromium.
struct Session {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.rt.block_on(client.close());
        }
    }
}

/// chromedriver's `POST /session/{id}/se/log` (its `goog:loggingPrefs` extension, which
/// fantoccini does not name): the browser's console messages since the last call.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "type": "browser" }).to_string()),
        )
    }
}

impl Session {
    fn client(&self) -> &Client {
        self.client.as_ref().expect("an open session")
    }

    /// Waits for one WebDriver command: its answer, or a panic with the WebDriver error.
    fn block<T, E: std::fmt::Display>(
        &self,
        what: &str,
        command: impl Future<Output = Result<T, E>>,
    ) -> T {
        self.rt
            .block_on(command)
            .unwrap_or_else(|e| panic!("WebDriver {what}: {e}"))
    }

    fn title(&self) -> String {
        self.block("title", self.client().title())
    }

    fn navigate(&self, url: &str) {
        self.block("navigate", self.client().goto(url))
    }

    fn script(&self, script: &str, args: Value) -> Value {
        let args = match args {
            Value::Array(args) => args,
            other => vec![other],
        };
        self.block("execute/sync", self.client().execute(script, args))
    }

    fn find(&self, css: &str) -> Element {
        self.block(
            &format!("element {css}"),
            self.client().find(Locator::Css(css)),
        )
    }

    fn text(&self, element: &Element) -> String {
        self.block("element text", element.text())
    }

    fn property(&self, element: &Element, name: &str) -> String {
        self.block("element property", element.prop(name))
            .unwrap_or_default()
    }

    fn attribute(&self, element: &Element, name: &str) -> String {
        self.block("element attribute", element.attr(name))
            .unwrap_or_default()
    }

    fn clear(&self, element: &Element) {
        self.block("element clear", element.clear())
    }

    fn type_text(&self, element: &Element, text: &str) {
        self.block("element value", element.send_keys(text))
    }

    fn click(&self, element: &Element) {
        self.block("element click", element.click())
    }

    fn screenshot(&self, path: &Path) {
        let png = self.block("screenshot", self.client().screenshot());
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        std::fs::write(path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// Chromium's console messages since the last call, where chromedriver offers them
    /// (its `goog:loggingPrefs` extension); None elsewhere.
    fn browser_log(&self) -> Option<Vec<Value>> {
        match self.rt.block_on(self.client().issue_cmd(BrowserLog)) {
            Ok(Value::Array(entries)) => Some(entries),
            _ => None,
        }
    }

    /// Polls `check` every 100 ms until it holds, for at most [`WAIT`].
    fn wait_for(&self, what: &str, mut check: impl FnMut(&Session) -> bool) {
        self.wait_for_value(what, |s| check(s).then_some(()))
    }

    fn wait_for_value<T>(&self, what: &str, mut check: impl FnMut(&Session) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(value) = check(self) {
                return value;
            }
            if Instant::now() >= deadline {
                let errors = self.script("return window.__errors;", json!([]));
                let page = self.script(
                    "var t = function (id) { var e = document.getElementById(id); return e && e.textContent; };
                     return { status: t('status'), connection: t('connection'), heap: t('heap-alloc'),
                              samples: document.getElementById('chart').dataset.samples };",
                    json!([]),
                );
                panic!(
                    "timed out after {WAIT:?} waiting for {what} (window.__errors {errors}, page {page})"
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
