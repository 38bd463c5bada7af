//! Interactive mode's HTTP server, run by the worker inside the limited cgroup: it owns the
//! routes (`/add`, `/rel`, `/gc`, `/stats`, `/reset`, `/metrics`, `/` the page), their answers
//! (Go's `runtime.MemStats` names, JSON or the seed's text), the Prometheus scrape, and the
//! limits that keep bad or slow clients from hurting the worker.
//!
//! Two sides:
//! - the caller's thread owns the [`Program`] and applies heap operations one at a time, in
//!   arrival order (`ops`); each step is reported to the supervisor as telemetry, with phase
//!   `interactive`;
//! - an HTTP thread runs a small multi-threaded tokio runtime with hyper's HTTP/1 server
//!   (`server`, `routes`). It never touches the heap: it queues operations for the heap
//!   thread and reads the snapshot published after each one, so `/stats` and `/metrics`
//!   answer at once even while a large `/add` writes its pages.
//!
//! Who may drive the server is `origin`'s business; how many connections are served and
//! which give way is `conns`'s; `bare` gives hyper's own error answers a JSON body.
//!
//! If the telemetry pipe closes (the supervisor is gone), the request that found out is
//! answered 500, the server stops, and [`serve`] returns an error: the caller exits.

mod bare;
mod conns;
mod errors;
mod metrics;
mod ops;
mod origin;
pub mod query;
mod routes;
mod server;
mod stats;

use std::{
    io,
    net::TcpListener,
    path::PathBuf,
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

use tokio::sync::watch;

pub use errors::ApiError;
pub use ops::COUNTERS_MAX_AGE;
pub use origin::AllowedHost;

use crate::{
    host::Program,
    telemetry::{Feed, Sink, Version},
};

/// What the server shows besides the heap.
pub struct ServeContext {
    /// The cgroup's memory limit.
    pub limit: u64,
    /// The runtime's soft memory limit, and the Go release it follows (shown in `/stats`).
    pub memory_limit: Option<u64>,
    pub runtime: memspike_model::release::Release,
    /// The group's directory, to read its counters from; `None` in tests.
    pub cgroup: Option<(PathBuf, Version)>,
    /// Restarts, the last OOM kill and the kernel counters; updated by another thread.
    pub feed: Arc<Mutex<Feed>>,
    /// The largest acceptable `?bytes=` (the machine's physical memory). Larger sizes than
    /// the cgroup limit are legitimate: they end in an OOM kill and a restart.
    pub max_bytes: u64,
    /// Names accepted in `Host` besides the bound address (`--allow-host`), each `NAME` or
    /// `NAME:PORT`.
    pub allowed_hosts: Vec<String>,
}

/// Bounds on what one client can make the server hold or wait for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Time to send a whole request head; also how long an idle keep-alive connection stays.
    pub header_read_timeout: Duration,
    /// Time to send a request body once the head has arrived.
    pub body_read_timeout: Duration,
    /// The request line and headers together, in bytes; a larger head gets 431. hyper's own
    /// limits are twice this and `max_headers`, so that a head a little over gets this
    /// server's answer; one far over gets hyper's 431, with the same JSON body.
    pub max_head: usize,
    /// Headers per request; more get 431.
    pub max_headers: usize,
    /// Request bodies are read and ignored; a larger one gets 413 (at once when it is
    /// declared by `Content-Length`).
    pub max_body: usize,
    /// Connections served at once (fewer if `RLIMIT_NOFILE` is low). At the cap the quietest
    /// connection that is not being answered is closed to make room (see `conns`).
    pub max_connections: usize,
    /// How long a connection asked to make room may take to finish an answer it is writing.
    pub evict_grace: Duration,
    /// How long shutting down waits for connections to finish their answers.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            max_head: 16 * 1024,
            max_headers: 64,
            max_body: 64 * 1024,
            max_connections: 256,
            evict_grace: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(2),
        }
    }
}

/// What both threads share.
struct Shared {
    ctx: ServeContext,
    limits: Limits,
    gate: origin::Gate,
    /// The bodies of hyper's own error answers.
    bare: Arc<bare::Bodies>,
    /// The heap after the latest operation, and the group's counters.
    latest: Arc<Mutex<ops::Latest>>,
    jobs: mpsc::Sender<ops::Job>,
}

/// Serves until the listener fails or the process is killed, with the default [`Limits`].
/// Runs its own tokio runtime (the caller is synchronous).
pub fn serve<S: Sink + 'static>(
    listener: TcpListener,
    driver: Program<S>,
    ctx: ServeContext,
) -> io::Result<()> {
    serve_with(listener, driver, ctx, Limits::default())
}

/// [`serve`] with chosen limits (tests shorten the timeouts).
pub fn serve_with<S: Sink + 'static>(
    listener: TcpListener,
    driver: Program<S>,
    ctx: ServeContext,
    limits: Limits,
) -> io::Result<()> {
    let allowed = ctx
        .allowed_hosts
        .iter()
        .map(|h| AllowedHost::parse(h))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let gate = origin::Gate::new(listener.local_addr()?, allowed);
    let mut state = ops::HeapState::new(driver);
    let latest = Arc::new(Mutex::new(ops::Latest::new(state.snapshot())));
    let (jobs_tx, jobs) = mpsc::channel();
    let shared = Arc::new(Shared {
        ctx,
        gate,
        bare: Arc::new(bare::Bodies::new(&limits)),
        limits,
        latest: latest.clone(),
        jobs: jobs_tx,
    });
    let (stop, stopped) = watch::channel(false);
    let http = std::thread::Builder::new()
        .name("memspike-http".into())
        .spawn(move || server::run(listener, shared, stopped))?;
    // The heap stays on this thread: it ends when the HTTP side has gone (its end of the
    // queue dropped) or when the supervisor has.
    let fatal = ops::run(&mut state, &jobs, &latest);
    // Requests still queued learn at once that no answer is coming.
    drop(jobs);
    let _ = stop.send(true);
    let served = http
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the HTTP thread panicked")));
    match fatal {
        Some(why) => Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            format!("the supervisor is gone (telemetry: {why})"),
        )),
        None => served,
    }
}
