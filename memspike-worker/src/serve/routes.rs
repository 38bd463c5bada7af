//! One request, from its path to its answer: the head's size limits (431), routing (404),
//! methods (405 with `Allow`), who may ask (`origin`: 400, 403), the bounded request body
//! (413 at once from `Content-Length`, before hyper would send `100 Continue`), the query
//! string (`query`), the heap operation through the heap thread, and the answer in
//! JSON or the seed's text layout.

use std::sync::Arc;

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Body, Bytes, Incoming},
    header::{self, HeaderValue},
    http::request::Parts,
};
use tokio::sync::oneshot;

use super::{
    Limits, Shared,
    conns::Conn,
    errors::ApiError,
    metrics,
    ops::{self, Done, Job, Op},
    query::{Format, Query},
    stats::{self, World},
};
use memspike_cgroup::Counters;

/// The page, written by the page's owner and embedded in the binary.
const PAGE: &str = include_str!("page.html");
/// The page with the named figures' labels and help filled in.
static PAGE_WITH_FIGURES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    PAGE.replacen("/*FIGURES*/{}", &memspike_report::figures::page_json(), 1)
});

type Answer = Response<Full<Bytes>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Page,
    Add,
    Rel,
    Gc,
    FreeOsMemory,
    Stats,
    Reset,
    Metrics,
    History,
}

impl Route {
    fn from_path(path: &str) -> Option<Route> {
        Some(match path {
            "/" => Route::Page,
            "/add" => Route::Add,
            "/rel" => Route::Rel,
            "/gc" => Route::Gc,
            "/freeosmemory" => Route::FreeOsMemory,
            "/stats" => Route::Stats,
            "/reset" => Route::Reset,
            "/metrics" => Route::Metrics,
            "/history" => Route::History,
            _ => return None,
        })
    }

    /// The routes that change the heap (GET included, as in the seed).
    fn changes_state(self) -> bool {
        matches!(
            self,
            Route::Add | Route::Rel | Route::Gc | Route::FreeOsMemory | Route::Reset
        )
    }
}

/// Answers one request on `conn`; never fails (errors become JSON answers).
pub async fn handle(shared: &Arc<Shared>, req: Request<Incoming>, conn: &Conn) -> Answer {
    match respond(shared, req, conn).await {
        Ok(answer) => answer,
        Err(e) => error_answer(&e),
    }
}

async fn respond(shared: &Shared, req: Request<Incoming>, conn: &Conn) -> Result<Answer, ApiError> {
    let (parts, body) = req.into_parts();
    check_head(&parts, &shared.limits)?;
    let route = Route::from_path(parts.uri.path())
        .ok_or_else(|| ApiError::NotFound(parts.uri.path().to_owned()))?;
    if !matches!(parts.method, Method::GET | Method::POST) {
        return Err(ApiError::MethodNotAllowed(parts.method.to_string()));
    }
    shared.gate.check(
        parts.version,
        &parts.uri,
        &parts.headers,
        route.changes_state(),
    )?;
    read_body(body, &shared.limits).await?;
    conn.answering();
    let query = Query::parse(parts.uri.query())?;
    let format = query.format(&parts.headers)?;
    let max = shared.ctx.max_bytes;
    let op = match route {
        Route::Page => return Ok(page()),
        Route::Metrics => return metrics_answer(shared),
        Route::History => return Ok(history_answer(shared)),
        Route::Stats => return Ok(stats_answer(shared, None, format)),
        Route::Add => Op::Add(query.bytes(max)?),
        Route::Rel => Op::Rel(query.bytes(max)?),
        Route::Gc => Op::Gc,
        Route::FreeOsMemory => Op::FreeOsMemory,
        Route::Reset => Op::Reset,
    };
    let done = run_op(shared, op).await?;
    Ok(stats_answer(shared, Some(&done), format))
}

/// Queues the operation for the heap thread and waits for its result.
async fn run_op(shared: &Shared, op: Op) -> Result<Done, ApiError> {
    let (reply, result) = oneshot::channel();
    shared
        .jobs
        .send(Job { op, reply })
        .map_err(|_| ApiError::ShuttingDown)?;
    result.await.map_err(|_| ApiError::ShuttingDown)?
}

/// Refuses a head over the routes' limits: more than `max_headers` headers, or more than
/// `max_head` bytes counting the request line and each header line as sent (`Name: value`
/// and CRLF).
fn check_head(parts: &Parts, limits: &Limits) -> Result<(), ApiError> {
    let count = parts.headers.len();
    if count > limits.max_headers {
        return Err(ApiError::HeadTooLarge(format!(
            "the request has {count} headers: send at most {}",
            limits.max_headers
        )));
    }
    let uri = &parts.uri;
    let target = uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(1, |p| p.as_str().len());
    let line = parts.method.as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    let headers: usize = parts
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    let size = line + headers + 2;
    if size > limits.max_head {
        return Err(ApiError::HeadTooLarge(format!(
            "the request head is {size} bytes: send at most {} (request line and headers)",
            limits.max_head
        )));
    }
    Ok(())
}

/// Reads and discards the body, refusing one that is too large or too slow. A body declared
/// too large by `Content-Length` is refused before it is read: with `Expect: 100-continue`
/// the client then gets the 413 instead of `100 Continue` (hyper sends that only when the
/// body is first read).
async fn read_body(body: Incoming, limits: &Limits) -> Result<(), ApiError> {
    if body
        .size_hint()
        .exact()
        .is_some_and(|n| n > limits.max_body as u64)
    {
        return Err(ApiError::BodyTooLarge(limits.max_body));
    }
    let limited = Limited::new(body, limits.max_body);
    match tokio::time::timeout(limits.body_read_timeout, limited.collect()).await {
        Err(_) => Err(ApiError::BodyTimeout),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::BodyTooLarge(limits.max_body))
        }
        Ok(Err(e)) => Err(ApiError::Body(e.to_string())),
    }
}

/// An answer with the statistics: after an operation, the heap and the usage it left;
/// otherwise the latest snapshot. The other counters come from `ops::Latest`'s copy.
fn stats_answer(shared: &Shared, done: Option<&Done>, format: Format) -> Answer {
    let (mut snapshot, mut counters) = latest(shared);
    if let Some(d) = done {
        snapshot = d.snapshot;
        if let (Some(c), Some(usage)) = (&mut counters, d.usage) {
            c.usage_bytes = Some(usage);
        }
    }
    let feed = ops::lock(&shared.ctx.feed);
    let world = World::new(&shared.ctx, counters, &feed);
    let fields = stats::answer(done, &snapshot, &world);
    drop(feed);
    match format {
        Format::Json => answer(StatusCode::OK, "application/json", fields.json()),
        Format::Text => answer(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            fields.text().into_bytes(),
        ),
    }
}

/// The latest snapshot and the group's counters, at most `ops::COUNTERS_MAX_AGE` old.
fn latest(shared: &Shared) -> (ops::Snapshot, Option<Counters>) {
    let mut latest = ops::lock(&shared.latest);
    let counters = latest.counters(shared.ctx.cgroup.as_ref());
    (latest.snapshot, counters)
}

fn metrics_answer(shared: &Shared) -> Result<Answer, ApiError> {
    let (snapshot, counters) = latest(shared);
    let feed = ops::lock(&shared.ctx.feed);
    let world = World::new(&shared.ctx, counters, &feed);
    let text = metrics::render(&snapshot, &world)
        .map_err(|e| ApiError::Heap(format!("the metrics could not be encoded: {e}")))?;
    drop(feed);
    Ok(answer(
        StatusCode::OK,
        metrics::CONTENT_TYPE,
        text.into_bytes(),
    ))
}

/// The session's recent moments, every worker's, with its kills and restarts, as the
/// supervisor last sent them: `{"moments": [...]}`, what the page draws when it opens.
fn history_answer(shared: &Shared) -> Answer {
    let feed = ops::lock(&shared.ctx.feed);
    let body = serde_json::to_vec(&feed.history).unwrap_or_else(|_| b"{\"moments\":[]}".to_vec());
    drop(feed);
    answer(StatusCode::OK, "application/json", body)
}

/// The page, which no other site may frame (its buttons change the heap; framing would let
/// another site trick a click).
fn page() -> Answer {
    let mut a = answer(
        StatusCode::OK,
        "text/html; charset=utf-8",
        PAGE_WITH_FIGURES.as_str().into(),
    );
    let h = a.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    a
}

fn answer(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Answer {
    let mut a = Response::new(Full::new(Bytes::from(body)));
    *a.status_mut() = status;
    let h = a.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    a
}

fn error_answer(e: &ApiError) -> Answer {
    let mut a = answer(e.status(), "application/json", e.body());
    let h = a.headers_mut();
    if matches!(e, ApiError::MethodNotAllowed(_)) {
        h.insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
    }
    if e.closes_connection() {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    a
}

#[cfg(test)]
mod tests {
    use super::PAGE;
    use memspike_report::{figures::Stat, render::chart::PALETTE};

    /// The reports' charts and the live page read alike: the page declares the charts'
    /// palette as its CSS variables.
    #[test]
    fn the_page_uses_the_reports_colours() {
        for (var, colour) in PALETTE {
            let decl = format!("{var}: {};", colour.hex());
            assert!(PAGE.contains(&decl), "page.html should declare {decl}");
        }
    }

    /// The page names figures by their `/stats` key (its labels and tooltips come from the
    /// registry at serve time, the values from `/stats`): every key it names is one `/stats`
    /// shows.
    #[test]
    fn the_page_names_only_figures_stats_shows() {
        let keys: Vec<&str> = Stat::all().map(|s| s.figure().key).collect();
        let mut named = Vec::new();
        for marker in [
            "data-figure=\"",
            "data-figure-label=\"",
            "stats.",
            "key: \"",
        ] {
            for (i, _) in PAGE.match_indices(marker) {
                let rest = &PAGE[i + marker.len()..];
                let end = rest
                    .find(|c: char| !c.is_ascii_alphanumeric())
                    .unwrap_or(rest.len());
                named.push(&rest[..end]);
            }
        }
        assert!(named.len() > 20, "the page names its figures: {named:?}");
        let unknown: Vec<&&str> = named.iter().filter(|k| !keys.contains(k)).collect();
        assert!(
            unknown.is_empty(),
            "the page names figures /stats lacks: {unknown:?}"
        );
    }
}
