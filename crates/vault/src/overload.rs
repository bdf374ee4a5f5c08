//! Limits per request, as router middleware: at most `max_in_flight` requests handled at once
//! (more get `503 overloaded` with `Retry-After` at once instead of queueing), and a whole-request
//! timeout (`request_timeout_ms`, `503 timeout`). The body's own read timeout is in the JSON
//! extractor (`408`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::Semaphore;

/// The state of the middleware.
#[derive(Clone)]
pub struct Guard {
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    request_timeout: Duration,
    body_read_timeout: Duration,
}

/// The body read timeout, for the JSON extractor (a request extension).
#[derive(Debug, Clone, Copy)]
pub struct BodyReadTimeout(pub Duration);

impl Guard {
    /// At most `max_in_flight` requests at once, each at most `request_timeout`, its body read
    /// within `body_read_timeout`.
    pub fn new(
        max_in_flight: usize,
        request_timeout: Duration,
        body_read_timeout: Duration,
    ) -> Self {
        let max_in_flight = max_in_flight.max(1);
        Self {
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            request_timeout,
            body_read_timeout,
        }
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut r = (
        status,
        axum::Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// The middleware.
pub async fn guard(State(g): State<Guard>, mut req: Request, next: Next) -> Response {
    req.extensions_mut()
        .insert(BodyReadTimeout(g.body_read_timeout));
    let Ok(_permit) = g.in_flight.try_acquire() else {
        tracing::warn!(
            max = g.max_in_flight,
            "request refused: max_in_flight reached"
        );
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the vault is handling as many requests as it allows; retry",
        );
    };
    match tokio::time::timeout(g.request_timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => {
            tracing::warn!(
                timeout_ms = g.request_timeout.as_millis(),
                "request timed out"
            );
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "the request took longer than the vault allows; a write may or may not have \
                 been stored (a resubmitted envelope then answers replayed)",
            )
        }
    }
}
