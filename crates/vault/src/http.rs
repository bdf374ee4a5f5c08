//! The HTTP API under `/v1`, with JSON errors, request ids, access logs that never hold a value,
//! body and batch limits, health endpoints and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{
    DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Path, Query, Request, State,
};
use axum::http::{HeaderValue, Method, StatusCode, header, request::Parts};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::net::TcpListener;
use tracing::Instrument;

use fieldseal_vault_store::audit::{Action, ExpectedHead};
use fieldseal_vault_store::{Store, StoreError};

use crate::client::ClientAddr;
use crate::keys::KeyError;
use crate::overload::BodyReadTimeout;
use crate::ratelimit::{Limited, Operation};
use crate::refusal::ItemError;
use crate::subjects::SubjectOutcome;
use crate::vault::{AuthError, Caller, DeleteOutcome, TokenizeItem, Vault, VaultError};

/// Every route: method and path, as the OpenAPI document lists them.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/keys"),
    ("POST", "/v1/tokenize"),
    ("POST", "/v1/detokenize"),
    ("DELETE", "/v1/tokens/{token}"),
    ("DELETE", "/v1/subjects/{id}"),
    ("GET", "/v1/subjects/{id}/export"),
    ("GET", "/v1/me"),
    ("POST", "/v1/operators/sign-in"),
    ("POST", "/v1/operators/sign-out"),
    ("POST", "/v1/operators/step-up"),
    ("GET", "/v1/audit"),
    ("GET", "/v1/audit/verify"),
    ("GET", "/v1/locks"),
    ("POST", "/v1/locks/unlock"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
];

/// An API error: HTTP status, a stable code and a message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Seconds for `Retry-After`.
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// `429 rate_limited` with `Retry-After`, or `413 batch_too_large` for a request larger than
    /// the role's burst.
    fn limited(limited: Limited, caller: &Caller, op: Operation) -> Self {
        match limited {
            Limited::RetryAfter(wait) => {
                // Whole seconds, rounded up: a client retrying at the time given is let through.
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Self {
                    retry_after: Some(secs.max(1)),
                    ..Self::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limited",
                        format!(
                            "API key {} is over its role's {} rate; retry after {} s",
                            caller.key_id,
                            op.as_str(),
                            secs.max(1)
                        ),
                    )
                }
            }
            Limited::OverBurst(burst) => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "batch_too_large",
                format!(
                    "role {} may {} at most {burst} items at once (its rate limit's burst)",
                    caller.role_name,
                    op.as_str()
                ),
            ),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Full => Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "storage_full",
                "the vault's storage is full; nothing was stored",
            ),
            StoreError::Busy => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_busy",
                "the vault's storage is busy; retry",
            ),
            StoreError::Unavailable(why) => {
                tracing::error!(error = %why, "storage unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "the vault's database cannot be reached; retry (a write cut off while it \
                     committed may have been stored: a resubmitted envelope then answers replayed)",
                )
            }
            // Already logged as an alert where it was found.
            StoreError::Tampered(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_tampered",
                "the database's schema was changed outside the vault: the vault refuses writes \
                 until an operator has investigated (see its log)",
            ),
            StoreError::AuditBroken(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "audit_broken",
                "the audit log failed its integrity check: the vault refuses every audited \
                 operation until an operator has investigated (`fieldseal-vault audit verify`)",
            ),
            other => {
                // Details go to the log (they never hold values), the caller gets a generic body.
                tracing::error!(error = %other, "storage error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the vault's log for the request id",
                )
            }
        }
    }
}

impl From<VaultError> for ApiError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::Store(e) => e.into(),
            VaultError::StepUpRequired => Self::new(
                StatusCode::FORBIDDEN,
                "step_up_required",
                "a plain reveal by an operator needs a TOTP code entered within the last \
                 step_up_secs: POST /v1/operators/step-up, then retry",
            ),
            VaultError::Locked => Self::new(
                StatusCode::LOCKED,
                "locked",
                "this caller's reveals are locked after an anomaly in them (a burst, a sweep, \
                 off-hours plain reveals); tokenizing goes on; an operator with the unlock \
                 permission and a fresh second factor, or `fieldseal-vault locks unlock`, lifts it",
            ),
            VaultError::Key(KeyError::KekUnavailable(why)) => {
                tracing::error!(error = %why, "key-encryption key unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "kek_unavailable",
                    "the vault's key-encryption key (HSM) cannot be reached; nothing was stored; \
                     retry",
                )
            }
            other => {
                tracing::error!(error = %other, "vault error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the vault's log for the request id",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, Json(body)).into_response();
        // For the refusal counts (metrics).
        response.extensions_mut().insert(Refused(self.code));
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// The code of a refusal, on its response, for the metrics.
#[derive(Clone, Copy)]
struct Refused(&'static str);

/// What the access log and request counts need: the trusted proxies and the metrics.
#[derive(Clone)]
pub(crate) struct Observe {
    pub(crate) trusted_proxies: Arc<[std::net::IpAddr]>,
    pub(crate) metrics: crate::metrics::Shared,
}

/// JSON body extractor whose rejections are API errors.
pub struct ApiJson<T>(pub T);

impl<T, St> FromRequest<St> for ApiJson<T>
where
    Json<T>: FromRequest<St, Rejection = JsonRejection>,
    St: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &St) -> Result<Self, Self::Rejection> {
        let timeout = req
            .extensions()
            .get::<BodyReadTimeout>()
            .map_or(std::time::Duration::from_secs(10), |t| t.0);
        let Ok(read) = tokio::time::timeout(timeout, Json::<T>::from_request(req, state)).await
        else {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the body did not arrive in time",
            ));
        };
        match read {
            Ok(Json(v)) => Ok(Self(v)),
            // Our own messages: the extractor's text can quote the body, which may hold a value.
            Err(rejection) => Err(match rejection {
                JsonRejection::MissingJsonContentType(_) => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the body as application/json",
                ),
                JsonRejection::JsonSyntaxError(_) => {
                    ApiError::bad_request("the body is not valid JSON")
                }
                JsonRejection::JsonDataError(_) => ApiError::bad_request(
                    "the body does not match the request schema (see /v1/openapi.json)",
                ),
                other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the body is larger than the vault accepts",
                ),
                _ => ApiError::bad_request("the body could not be read"),
            }),
        }
    }
}

/// The shared state.
pub type AppState<S> = Arc<Vault<S>>;

impl<S: Store> FromRequestParts<AppState<S>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S>,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let cookie = session_cookie(&parts.headers);
        let client = parts
            .extensions
            .get::<ClientAddr>()
            .copied()
            .unwrap_or_else(|| client_addr(&parts.extensions, &parts.headers, &[]));
        state
            .authenticate(header, cookie.as_deref(), client)
            .await
            .map_err(|e| match e {
            AuthError::Unauthenticated => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing, unknown, revoked or expired API key or operator session",
            ),
            AuthError::Throttled(secs) => ApiError {
                retry_after: Some(secs),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_failures",
                    format!(
                        "too many failed authentications from this address; retry after {secs} s"
                    ),
                )
            },
            AuthError::Store(e) => e.into(),
        })
    }
}

/// The value of the operator session cookie, if the request carries one.
fn session_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == crate::operators::SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_owned())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignInRequest {
    name: String,
    password: String,
    totp: String,
}

impl std::fmt::Debug for SignInRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SignInRequest({}, [REDACTED])", self.name)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepUpRequest {
    totp: String,
}

fn sign_in_error(e: crate::operators::SignInError) -> ApiError {
    use crate::operators::SignInError;
    match e {
        SignInError::Failed => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "sign_in_failed",
            "unknown or disabled operator, wrong password, or a wrong, stale or already used code",
        ),
        SignInError::Locked(secs) if secs >= crate::operators::LOCKED_BY_ADMIN_SECS => {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "operator_locked",
                "the operator is locked by an administrator (`operator lock`) until `operator reset`",
            )
        }
        SignInError::Locked(secs) => ApiError {
            retry_after: Some(secs.max(1)),
            ..ApiError::new(
                StatusCode::FORBIDDEN,
                "operator_locked",
                format!(
                    "the operator is locked after repeated failed attempts; retry after {} s",
                    secs.max(1)
                ),
            )
        },
        SignInError::Throttled(secs) => ApiError {
            retry_after: Some(secs.max(1)),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_failures",
                format!("too many failed authentications from this address; retry after {secs} s"),
            )
        },
        SignInError::Busy => ApiError {
            retry_after: Some(1),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "sign_in_busy",
                "too many sign-ins at once; retry after 1 s",
            )
        },
        SignInError::NotOperator => ApiError::new(
            StatusCode::FORBIDDEN,
            "not_an_operator",
            "only an operator's session can do this (sign in with name, password and TOTP code); API keys have no second factor",
        ),
        SignInError::Store(e) => e.into(),
    }
}

fn session_cookie_header(value: &str, max_age: u64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{}={value}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict",
        crate::operators::SESSION_COOKIE
    ))
    .ok()
}

async fn sign_in<S: Store>(
    State(vault): State<AppState<S>>,
    parts: Parts,
    ApiJson(req): ApiJson<SignInRequest>,
) -> Result<Response, ApiError> {
    let client = parts
        .extensions
        .get::<ClientAddr>()
        .copied()
        .unwrap_or_else(|| client_addr(&parts.extensions, &parts.headers, &[]));
    let password = fieldseal_core::operator::Password::new(req.password);
    let session = vault
        .sign_in(&req.name, password, &req.totp, client)
        .await
        .map_err(sign_in_error)?;
    let max_age = vault.settings().session_max_secs;
    let mut response = no_store(
        Json(json!({
            "session": session.token.expose(),
            "operator": session.operator,
            "role": session.role,
            "expires_at": session.expires_at,
            "idle_secs": session.idle_secs,
            "step_up_until": session.step_up_until,
        }))
        .into_response(),
    );
    if let Some(cookie) = session_cookie_header(session.token.expose(), max_age) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// `403 not_an_operator` for an API key at an operator-session endpoint, audited.
async fn not_an_operator<S: Store>(
    vault: &Vault<S>,
    caller: &Caller,
    action: Action,
    what: &str,
) -> ApiError {
    if let Err(e) = vault
        .audit_denial(
            caller,
            action,
            &format!("{what} (API keys have no session)"),
        )
        .await
    {
        return e.into();
    }
    sign_in_error(crate::operators::SignInError::NotOperator)
}

async fn sign_out<S: Store>(
    State(vault): State<AppState<S>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    if caller.operator.is_none() {
        return Err(not_an_operator(&vault, &caller, Action::OperatorSignOut, "sign out").await);
    }
    vault.sign_out(&caller).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Some(cookie) = session_cookie_header("", 0) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

async fn step_up<S: Store>(
    State(vault): State<AppState<S>>,
    caller: Caller,
    ApiJson(req): ApiJson<StepUpRequest>,
) -> Result<Response, ApiError> {
    if caller.operator.is_none() {
        return Err(not_an_operator(&vault, &caller, Action::OperatorStepUp, "step up").await);
    }
    let until = vault
        .step_up(&caller, &req.totp)
        .await
        .map_err(|e| match e {
            crate::operators::SignInError::Failed => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "step_up_failed",
                "a wrong, stale or already used code",
            ),
            other => sign_in_error(other),
        })?;
    Ok(no_store(
        Json(json!({ "step_up_until": until })).into_response(),
    ))
}

async fn keys<S: Store>(State(vault): State<AppState<S>>) -> Result<Response, ApiError> {
    let json = vault.key_set_json().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_keys",
            "the vault has no valid key; run `fieldseal-vault keys rotate`",
        )
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                header::CACHE_CONTROL,
                // Revalidated on every use: the set carries the server's clock.
                "public, no-cache",
            ),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        json,
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenizeRequest {
    items: Vec<TokenizeItem>,
    /// Every item or none ([`crate::batch`]).
    #[serde(default)]
    atomic: bool,
}

#[derive(Serialize)]
struct ItemResult<T: Serialize> {
    ok: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    result: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ItemError>,
}

fn item<T: Serialize>(r: Result<T, ItemError>) -> ItemResult<T> {
    match r {
        Ok(v) => ItemResult {
            ok: true,
            result: Some(v),
            error: None,
        },
        Err(e) => ItemResult {
            ok: false,
            result: None,
            error: Some(e),
        },
    }
}

fn check_batch(len: usize, max: usize) -> Result<(), ApiError> {
    if len == 0 {
        return Err(ApiError::bad_request("the batch is empty"));
    }
    if len > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!("at most {max} items per request"),
        ));
    }
    Ok(())
}

async fn forbidden<S: Store>(
    vault: &Vault<S>,
    caller: &Caller,
    action: Action,
    what: &str,
) -> ApiError {
    if let Err(e) = vault.audit_denial(caller, action, what).await {
        return e.into();
    }
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("role {} may not {what}", caller.role_name),
    )
}

async fn rate_limit<S: Store>(
    vault: &Vault<S>,
    caller: &Caller,
    op: Operation,
    items: usize,
) -> Result<(), ApiError> {
    vault
        .limit(caller, op, items)
        .await?
        .map_err(|l| ApiError::limited(l, caller, op))
}

async fn tokenize<S: Store>(
    State(vault): State<AppState<S>>,
    caller: Caller,
    ApiJson(req): ApiJson<TokenizeRequest>,
) -> Result<Response, ApiError> {
    if caller.role.tokenize.is_empty() {
        return Err(forbidden(&vault, &caller, Action::Tokenize, "tokenize").await);
    }
    check_batch(req.items.len(), vault.settings().max_batch)?;
    rate_limit(&vault, &caller, Operation::Tokenize, req.items.len()).await?;
    let formats: Vec<&'static str> = req
        .items
        .iter()
        .map(|i| {
            i.format
                .unwrap_or(crate::values::TokenFormat::Random)
                .as_str()
        })
        .collect();
    let results = if req.atomic {
        vault.tokenize_atomic(&caller, req.items).await?
    } else {
        vault.tokenize(&caller, req.items).await?
    };
    let metrics = vault.metrics();
    for (r, format) in results.iter().zip(formats) {
        match r {
            Ok(t) => metrics.tokenized(&caller.role_name, &t.kind, format, "ok"),
            Err(e) => metrics.tokenized(&caller.role_name, "-", format, e.code),
        }
    }
    let results: Vec<_> = results.into_iter().map(item).collect();
    Ok(Json(json!({ "results": results })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DetokenizeRequest {
    tokens: Vec<String>,
    purpose: String,
}

async fn detokenize<S: Store>(
    State(vault): State<AppState<S>>,
    caller: Caller,
    ApiJson(req): ApiJson<DetokenizeRequest>,
) -> Result<Response, ApiError> {
    if !caller.role.may_reveal() {
        return Err(forbidden(&vault, &caller, Action::Reveal, "reveal values").await);
    }
    // As the document says: at most 200 characters as sent, not only white space, no control
    // characters.
    let purpose = req.purpose.trim();
    if purpose.is_empty()
        || req.purpose.chars().count() > 200
        || purpose.chars().any(char::is_control)
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "purpose_required",
            "state the purpose of the reveal (1 to 200 characters)",
        ));
    }
    check_batch(req.tokens.len(), vault.settings().max_batch)?;
    let distinct: std::collections::HashSet<&String> = req.tokens.iter().collect();
    if distinct.len() != req.tokens.len() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "duplicate_tokens",
            "each token may appear once per request",
        ));
    }
    rate_limit(&vault, &caller, Operation::Reveal, req.tokens.len()).await?;
    let results = vault.detokenize(&caller, &req.tokens, purpose).await?;
    let metrics = vault.metrics();
    for r in &results {
        match r {
            Ok(v) => metrics.revealed(&caller.role_name, &v.kind, v.reveal),
            Err(e) => metrics.revealed(&caller.role_name, "-", e.code),
        }
    }
    let results: Vec<_> = results.into_iter().map(item).collect();
    let mut response = Json(json!({ "results": results })).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The caller's key id, role and permissions, for consoles that adapt to who signed in.
async fn me<S: Store>(State(vault): State<AppState<S>>, caller: Caller) -> Response {
    let r = &caller.role;
    let window = i64::try_from(vault.settings().step_up_secs).unwrap_or(i64::MAX / 4);
    let operator = caller.operator.as_ref().map(
        |op| json!({ "name": op.name, "step_up_until": op.step_up_at.saturating_add(window) }),
    );
    no_store(
        Json(json!({
            "key_id": caller.key_id,
            "role": caller.role_name,
            "operator": operator,
            "permissions": {
                "tokenize": r.tokenize.names(),
                "reveal_plain": r.reveal_plain.names(),
                "reveal_masked": r.reveal_masked.names(),
                "delete": r.delete.names(),
                "fingerprint": r.fingerprint.names(),
                "deterministic": r.deterministic.names(),
                "hints": r.hints.names(),
                "audit": r.audit,
                "erase": r.erase,
                "unlock": r.unlock,
                "export": r.export,
            }
        }))
        .into_response(),
    )
}

/// `GET /v1/audit` query: entries with `seq > after`, at most `limit` (1 to 1000, default 100).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    #[serde(default)]
    after: i64,
    #[serde(default = "default_audit_limit")]
    limit: usize,
}

fn default_audit_limit() -> usize {
    100
}

async fn audit_log<S: Store>(
    State(vault): State<AppState<S>>,
    caller: Caller,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    if !caller.role.audit {
        return Err(forbidden(&vault, &caller, Action::AuditRead, "read the audit log").await);
    }
    // Our own message: the framework's names its parser.
    let Query(q) = query.map_err(|_| {
        ApiError::bad_request(
            "the query takes after (an integer from 0 to 9223372036854775807) and limit (1 to \
             1000), nothing else",
        )
    })?;
    if q.after < 0 || !(1..=1000).contains(&q.limit) {
        return Err(ApiError::bad_request(
            "after must be 0 or more and limit from 1 to 1000",
        ));
    }
    let entries = vault.audit_log(&caller, q.after, q.limit).await?;
    let next_after = entries.last().map_or(q.after, |e| e.seq);
    Ok(no_store(
        Json(json!({ "entries": entries, "next_after": next_after })).into_response(),
    ))
}

/// Every API key's and operator's state and reveal lock, for consoles (roles with `audit` or
/// `unlock`).
async fn locks<S: Store>(
    State(vault): State<AppState<S>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    if !(caller.role.audit || caller.role.unlock) {
        return Err(forbidden(&vault, &caller, Action::AuditRead, "read lock states").await);
    }
    let callers = vault.caller_states().await?;
    Ok(no_store(
        Json(json!({ "callers": callers })).into_response(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnlockRequest {
    caller: String,
}

/// Lifts a caller's reveal lock: an operator of a role with `unlock`, with a fresh second factor,
/// and not its own lock.
async fn unlock<S: Store>(
    State(vault): State<AppState<S>>,
    caller: Caller,
    ApiJson(req): ApiJson<UnlockRequest>,
) -> Result<Response, ApiError> {
    if caller.operator.is_none() {
        return Err(
            not_an_operator(&vault, &caller, Action::RevealUnlock, "unlock a caller").await,
        );
    }
    if !caller.role.unlock {
        return Err(forbidden(&vault, &caller, Action::RevealUnlock, "unlock callers").await);
    }
    if !crate::locks::valid_caller(&req.caller) {
        return Err(ApiError::bad_request(
            "caller must be apikey:ID or operator:NAME",
        ));
    }
    if req.caller == caller.actor().to_string() {
        return Err(forbidden(&vault, &caller, Action::RevealUnlock, "unlock itself").await);
    }
    if caller.needs_step_up(crate::vault::now(), vault.settings().step_up_secs) {
        vault
            .audit_denial(
                &caller,
                Action::RevealUnlock,
                &format!("unlock {}: step-up required", req.caller),
            )
            .await?;
        return Err(VaultError::StepUpRequired.into());
    }
    if !vault
        .unlock(caller.actor(), Some(caller.client), &req.caller)
        .await?
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_locked",
            format!("{} is not locked", req.caller),
        ));
    }
    Ok(no_store(
        Json(json!({ "unlocked": req.caller })).into_response(),
    ))
}

/// `GET /v1/audit/verify` query: optionally a head recorded earlier (`SEQ:HASH`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyQuery {
    #[serde(default)]
    expect_head: Option<String>,
}

async fn audit_verify<S: Store>(
    State(vault): State<AppState<S>>,
    caller: Caller,
    query: Result<Query<VerifyQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    if !caller.role.audit {
        return Err(forbidden(&vault, &caller, Action::AuditVerify, "verify the audit log").await);
    }
    let Query(q) = query.map_err(|_| {
        ApiError::bad_request("the query takes expect_head (SEQ:HASH), nothing else")
    })?;
    let expect = q
        .expect_head
        .map(|h| {
            // Exactly the document's pattern `^[1-9][0-9]{0,17}:[0-9a-f]{64}$` (the command line
            // is more lenient with what it is pasted).
            let strict = h.split_once(':').is_some_and(|(seq, hash)| {
                (1..=18).contains(&seq.len())
                    && !seq.starts_with('0')
                    && seq.bytes().all(|b| b.is_ascii_digit())
                    && hash.len() == 64
                    && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            });
            if strict {
                h.parse::<ExpectedHead>()
            } else {
                Err(
                    "expect_head must be SEQ:HASH, SEQ from 1 (at most 18 digits), HASH 64 \
                     lower-case hex digits"
                        .to_owned(),
                )
            }
        })
        .transpose()
        .map_err(ApiError::bad_request)?;
    let v = vault.verify_audit(&caller, expect).await?;
    Ok(no_store(
        Json(json!({
            "intact": v.intact(),
            "verified": v.verified,
            "broken": v.broken,
            "head": v.head.as_ref().map(ToString::to_string),
        }))
        .into_response(),
    ))
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn delete_token<S: Store>(
    State(vault): State<AppState<S>>,
    caller: Caller,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    if caller.role.delete.is_empty() {
        return Err(forbidden(&vault, &caller, Action::Delete, "delete tokens").await);
    }
    match vault.delete(&caller, &token).await? {
        DeleteOutcome::Deleted => Ok(StatusCode::NO_CONTENT.into_response()),
        DeleteOutcome::NotFound => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such token",
        )),
        DeleteOutcome::Forbidden => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("role {} may not delete this token's kind", caller.role_name),
        )),
    }
}

/// What a subject request found, as the API answers it.
fn subject_answer<T>(
    outcome: SubjectOutcome<T>,
    ok: impl FnOnce(T) -> Response,
) -> Result<Response, ApiError> {
    match outcome {
        SubjectOutcome::Done(v) => Ok(no_store(ok(v))),
        SubjectOutcome::NotFound => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the vault holds nothing of this subject",
        )),
        SubjectOutcome::BadId => Err(ApiError::bad_request(
            "a subject id is 1 to 256 characters without control characters, not only white space",
        )),
    }
}

async fn erase_subject<S: Store>(
    State(vault): State<AppState<S>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if !caller.role.erase {
        return Err(forbidden(&vault, &caller, Action::SubjectErase, "erase subjects").await);
    }
    let outcome = vault.erase_subject(&caller, &id).await?;
    subject_answer(outcome, |n| {
        Json(json!({ "erased": true, "tokens_deleted": n })).into_response()
    })
}

async fn export_subject<S: Store>(
    State(vault): State<AppState<S>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if !caller.role.export {
        return Err(forbidden(&vault, &caller, Action::SubjectExport, "export subjects").await);
    }
    let outcome = vault.export_subject(&caller, &id).await?;
    subject_answer(outcome, |values| {
        Json(json!({ "exported_at": crate::vault::now(), "values": values })).into_response()
    })
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document().to_string(),
    )
        .into_response()
}

async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

async fn readyz<S: Store>(State(vault): State<AppState<S>>) -> Response {
    let db = vault.store().ping().await.is_ok();
    let keys = vault.key_set_json().is_some();
    let status = if db && keys {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({ "database": db, "keys": keys }))).into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// `405` in the API's error shape (the framework's own has an empty body).
async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take this method (see /v1/openapi.json)",
    )
}

/// The client address of a request: the peer the server was given (`ConnectInfo`), and the
/// address forwarded by a trusted proxy.
fn client_addr(
    extensions: &axum::http::Extensions,
    headers: &axum::http::HeaderMap,
    trusted_proxies: &[std::net::IpAddr],
) -> ClientAddr {
    let peer = extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    ClientAddr::from_request(peer, headers, trusted_proxies)
}

/// Request ids and access logs: method, route template (never the raw path or body), client
/// address, status and time.
pub(crate) async fn observe(
    State(Observe {
        trusted_proxies,
        metrics,
    }): State<Observe>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let mut client = client_addr(req.extensions(), req.headers(), &trusted_proxies);
    client.cert_sha256 = req
        .extensions()
        .get::<crate::client::ClientCert>()
        .map(|c| c.0);
    req.extensions_mut().insert(client);
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=64).contains(&v.len())
                && v.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        })
        .map(str::to_owned)
        .unwrap_or_else(new_request_id);
    if let Ok(v) = HeaderValue::from_str(&id) {
        req.headers_mut().insert("x-request-id", v);
    }
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(unmatched)".to_owned(), |p| p.as_str().to_owned());
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = next.run(req).instrument(span).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    let h = response.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    tracing::info!(
        request_id = %id,
        method = %method,
        route = %route,
        client = %client,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    metrics.request(
        &route,
        method.as_str(),
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    if let Some(Refused(code)) = response.extensions().get::<Refused>() {
        metrics.refusal(code);
    }
    response
}

fn new_request_id() -> String {
    let r: [u8; 8] = fieldseal_core::at_rest::random_bytes().unwrap_or_default();
    fieldseal_core::encoding::hex(&r)
}

/// The router.
pub fn router<S: Store>(vault: AppState<S>) -> Router {
    let limit = vault.settings().max_body_bytes;
    let s = vault.settings();
    let trusted_proxies: Arc<[std::net::IpAddr]> = s.trusted_proxies.clone().into();
    let guard = crate::overload::Guard::new(
        s.max_in_flight,
        std::time::Duration::from_millis(s.request_timeout_ms.max(1)),
        std::time::Duration::from_millis(s.body_read_timeout_ms.max(1)),
    );
    Router::new()
        .route("/v1/keys", get(keys::<S>))
        .route("/v1/tokenize", post(tokenize::<S>))
        .route("/v1/detokenize", post(detokenize::<S>))
        .route("/v1/tokens/{token}", delete(delete_token::<S>))
        .route("/v1/subjects/{id}", delete(erase_subject::<S>))
        .route("/v1/subjects/{id}/export", get(export_subject::<S>))
        .route("/v1/me", get(me::<S>))
        .route("/v1/operators/sign-in", post(sign_in::<S>))
        .route("/v1/operators/sign-out", post(sign_out::<S>))
        .route("/v1/operators/step-up", post(step_up::<S>))
        .route("/v1/audit", get(audit_log::<S>))
        .route("/v1/audit/verify", get(audit_verify::<S>))
        .route("/v1/locks", get(locks::<S>))
        .route("/v1/locks/unlock", post(unlock::<S>))
        .route("/v1/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz::<S>))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(
            guard,
            crate::overload::guard,
        ))
        .layer(middleware::from_fn_with_state(
            Observe {
                trusted_proxies,
                metrics: Arc::clone(vault.metrics()),
            },
            observe,
        ))
        .with_state(vault)
}

/// The metrics listener's router: `GET /metrics` only.
pub fn metrics_router<S: Store>(vault: AppState<S>) -> Router {
    Router::new()
        .route("/metrics", get(metrics::<S>))
        .with_state(vault)
}

async fn metrics<S: Store>(State(vault): State<AppState<S>>) -> Result<Response, ApiError> {
    let text = vault.metrics_text().await?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}

/// Serves the metrics on their own listener (`metrics_listen`) until the task is dropped.
pub async fn serve_metrics<S: Store>(
    listener: TcpListener,
    vault: AppState<S>,
) -> std::io::Result<()> {
    let limits = crate::listener::Limits::from_settings(vault.settings());
    crate::listener::run(
        listener,
        metrics_router(vault),
        limits,
        None,
        std::future::pending(),
    )
    .await
}

/// Serves until `shutdown` resolves, then finishes in-flight requests. Also runs the alert checks
/// ([`Vault::watch`]: the database's reachability, the new audit entries, keys about to expire),
/// the purge of expired card security codes, audits the failed authentications counted in the
/// last minute, and takes up keys rotated and policies stored by other processes, every 5 seconds.
pub async fn serve<S: Store>(
    listener: TcpListener,
    vault: AppState<S>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let settings = vault.settings();
    if settings.tls_cert_file.is_some() != settings.tls_key_file.is_some() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "set both tls_cert_file and tls_key_file, or neither",
        ));
    }
    let tls = settings
        .tls_files()
        .map(|(cert, key)| {
            crate::tls::server_config(cert, key, settings.tls_client_ca_file.as_deref())
        })
        .transpose()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    crate::listener::check_plain_http(
        listener.local_addr()?,
        tls.is_some(),
        vault.settings().allow_plain_http,
    )?;
    // Hosted fields (docs/hosted-fields.md): their files are read and their settings checked
    // now, so that a wrong `[fields]` stops the start.
    let fields = crate::fields::Fields::load(&vault.settings().fields)?;
    let background = {
        let vault = Arc::clone(&vault);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tick.tick().await;
                vault.watch().await;
                match vault.purge().await {
                    Ok(t) if t > 0 => {
                        tracing::info!(expired_tokens = t, "purged");
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "purge failed");
                        vault.note_store_error(&e);
                    }
                }
                if let Err(e) = vault.reload_keys().await {
                    tracing::warn!(error = %e, "key reload failed");
                }
                if let Err(e) = vault.purge_sessions().await {
                    tracing::warn!(error = %e, "ended operator sessions not purged; retried");
                }
                if let Err(e) = vault.flush_denials(false).await {
                    tracing::warn!(error = %e, "denials not audited yet; retried");
                }
                if let Err(e) = vault.maintain_data_keys().await {
                    tracing::error!(alert = "data_key_upkeep_failed", error = %e, "data key upkeep failed; retried in 5 s");
                }
                if let Err(e) = vault.rotate_on_schedule().await {
                    tracing::error!(alert = "key_rotation_failed", error = %e, "scheduled HPKE key rotation failed; retried in 5 s");
                }
                if let Err(e) = vault.reload_policy().await {
                    tracing::error!(alert = "policy_reload_failed", error = %e, "policy reload failed; the policy in force stays");
                }
            }
        })
    };
    let trusted_proxies: Arc<[std::net::IpAddr]> = vault.settings().trusted_proxies.clone().into();
    let limits = crate::listener::Limits::from_settings(vault.settings());
    let app = router(Arc::clone(&vault)).merge(fields.router(Observe {
        trusted_proxies,
        metrics: Arc::clone(vault.metrics()),
    }));
    let result = crate::listener::run(listener, app, limits, tls, shutdown).await;
    background.abort();
    if let Err(e) = vault.flush_denials(true).await {
        tracing::error!(error = %e, "denials of the last minute not audited");
    }
    if let Err(e) = vault.flush_key_uses().await {
        tracing::warn!(error = %e, "key uses of the last seconds not recorded");
    }
    result
}

/// Waits for SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// Binds the configured address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Methods as `axum` names them, for the route table check.
pub fn method(name: &str) -> Option<Method> {
    Method::from_bytes(name.as_bytes()).ok()
}
