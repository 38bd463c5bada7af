//! The HTTP side: a tokio runtime of [`HTTP_THREADS`] threads of its own, accepting every
//! connection it can and serving each with hyper's HTTP/1 connection under the [`Limits`]:
//! the time to send a request head (which is also how long an idle keep-alive connection is
//! kept), hyper's own head limits (above the routes' own), the connection cap and who gives
//! way at it (`conns`). On shutdown it stops accepting, lets connections finish their current
//! answer, and waits a bounded time for them.

use std::{convert::Infallible, io, sync::Arc, time::Duration};

use hyper::{server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use nix::errno::Errno;
use nix::sys::resource::{Resource, getrlimit};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};

use super::{
    Limits, Shared,
    bare::JsonErrors,
    conns::{Registered, Table},
    routes,
};

/// The runtime's threads. Two answer about twice as many `/stats` per second as one on the
/// 2-CPU machine the load figures come from (README); the heap stays on its own thread.
const HTTP_THREADS: usize = 2;

/// Descriptors kept for the worker's other needs (pipes, cgroup files, the runtime's own)
/// when the connection cap is bounded by `RLIMIT_NOFILE`.
const RESERVED_FDS: u64 = 64;

/// Runs the accept loop until `shutdown` turns true (or its sender goes) or the listener
/// fails.
pub fn run(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(HTTP_THREADS)
        .thread_name("memspike-http")
        .enable_all()
        .build()?;
    let result = rt.block_on(accept_loop(listener, shared, shutdown));
    // Dropping the runtime drops every connection task and, with them, the last handles on
    // the job queue, which tells the heap thread to stop.
    drop(rt);
    result
}

/// The configured cap, lowered to what the process's descriptor limit allows.
fn connection_cap(configured: usize) -> usize {
    let Ok((soft, _hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return configured;
    };
    let room = soft.saturating_sub(RESERVED_FDS).max(1);
    configured.min(usize::try_from(room).unwrap_or(usize::MAX))
}

async fn accept_loop(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    let limits = shared.limits.clone();
    let table = Table::new(connection_cap(limits.max_connections));
    loop {
        tokio::select! {
            _ = table.room() => {}
            _ = stopped(&mut shutdown) => break,
        }
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) if is_transient(&e) => {
                    tracing::warn!(error = %e, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(e) => return Err(e),
            },
            _ = stopped(&mut shutdown) => break,
        };
        let registered = table.register();
        tokio::spawn(connection(
            stream,
            shared.clone(),
            shutdown.clone(),
            registered,
        ));
    }
    // Wait (boundedly) for the connections to finish their current answers.
    let drained = async {
        while !table.is_empty() {
            table.changed_or_empty().await;
        }
    };
    let _ = tokio::time::timeout(limits.shutdown_grace, drained).await;
    Ok(())
}

/// Resolves when shutdown is asked for (or its sender has gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Accept errors that concern one connection or a passing shortage, not the listener.
fn is_transient(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock | TimedOut
    ) || e.raw_os_error().map(Errno::from_raw).is_some_and(|errno| {
        matches!(
            errno,
            Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM | Errno::EPROTO
        )
    })
}

fn builder(limits: &Limits) -> http1::Builder {
    let mut b = http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // Above the routes' own limits (hyper's buffer is at least 8 KiB).
        .max_buf_size((2 * limits.max_head).max(8192))
        .max_headers(2 * limits.max_headers)
        // A client that shuts its sending side after its request still gets the answer.
        .half_close(true)
        .keep_alive(true);
    b
}

/// Serves one connection; it stays in the table (`registered`) until it ends.
async fn connection(
    stream: TcpStream,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    registered: Registered,
) {
    let _ = stream.set_nodelay(true);
    let limits = shared.limits.clone();
    let io = TokioIo::new(JsonErrors::new(stream, shared.bare.clone()));
    let conn = registered.conn.clone();
    let service = service_fn(move |req| {
        let (shared, conn) = (shared.clone(), conn.clone());
        async move {
            let _busy = conn.request();
            Ok::<_, Infallible>(routes::handle(&shared, req, &conn).await)
        }
    });
    let http = builder(&limits).serve_connection(io, service);
    let mut http = std::pin::pin!(http);
    // Until it ends by itself, or is asked to close: then an answer being written is
    // finished, within a bound.
    let grace = tokio::select! {
        r = http.as_mut() => return ended(r),
        _ = stopped(&mut shutdown) => limits.shutdown_grace,
        _ = registered.conn.evict.notified() => limits.evict_grace,
    };
    http.as_mut().graceful_shutdown();
    ended(tokio::time::timeout(grace, http).await.unwrap_or(Ok(())));
}

fn ended(result: hyper::Result<()>) {
    if let Err(e) = result {
        // Timeouts, oversized heads and clients that hang up end up here: normal traffic.
        tracing::debug!(error = %e, "connection ended");
    }
}
