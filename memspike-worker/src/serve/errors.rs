//! What can go wrong with one request, and the status and JSON body (`{"error": "..."}`) each
//! failure is answered with. Nothing here stops the server except [`ApiError::Fatal`], which
//! the heap thread raises when the supervisor is gone.

use hyper::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is wrong (a missing, malformed or out-of-range parameter).
    #[error("{0}")]
    BadRequest(String),
    #[error("no such route: {0} (routes: /, /add, /rel, /gc, /stats, /reset, /metrics)")]
    NotFound(String),
    #[error("method {0} is not allowed: use GET or POST")]
    MethodNotAllowed(String),
    /// The request does not name this server, or a browser sent it for another site.
    #[error("{0}")]
    Forbidden(String),
    /// The request head is over the server's limits.
    #[error("{0}")]
    HeadTooLarge(String),
    #[error("the request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    #[error("the request body could not be read: {0}")]
    Body(String),
    /// The heap's address space cannot hold the slab (it is fragmented or full).
    #[error("{0}")]
    InsufficientStorage(String),
    /// The heap's memory could not be mapped or returned.
    #[error("the heap failed: {0}")]
    Heap(String),
    /// The telemetry pipe is closed: the supervisor is gone and the worker stops serving.
    #[error("the supervisor is gone (telemetry pipe closed: {0}); the worker is stopping")]
    Fatal(String),
    /// The heap thread stopped before it answered.
    #[error("the worker is shutting down")]
    ShuttingDown,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::Body(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::HeadTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Heap(_) | ApiError::Fatal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Whether the connection should be closed after the answer (its body was not read to
    /// the end, or the server is going away).
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            ApiError::Forbidden(_)
                | ApiError::HeadTooLarge(_)
                | ApiError::BodyTooLarge(_)
                | ApiError::BodyTimeout
                | ApiError::Body(_)
                | ApiError::Fatal(_)
                | ApiError::ShuttingDown
        )
    }

    /// The JSON body: `{"error": "..."}`.
    pub fn body(&self) -> Vec<u8> {
        let mut body = serde_json::json!({ "error": self.to_string() }).to_string();
        body.push('\n');
        body.into_bytes()
    }
}
