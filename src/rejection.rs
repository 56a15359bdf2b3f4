//! Turning an [`AuthError`] into a response, exactly as RFC 6750 §3 says.
//!
//! | failure | status | `WWW-Authenticate` |
//! |---|---|---|
//! | no credentials (or another scheme) | 401 | `Bearer realm="api"` (no error code, §3.1) |
//! | malformed request | 400 | `Bearer realm="api", error="invalid_request", error_description="…"` |
//! | invalid token | 401 | `Bearer realm="api", error="invalid_token", error_description="…"` |
//! | insufficient scope | 403 | `Bearer realm="api", error="insufficient_scope", error_description="…", scope="…"` |
//! | keys unavailable | 503 | none; `Retry-After` instead |
//!
//! With DPoP (RFC 9449 §7, [`JwtAuthLayer::dpop`](crate::JwtAuthLayer::dpop)):
//!
//! | failure | status | `WWW-Authenticate` |
//! |---|---|---|
//! | no credentials, mode allowed | 401 | `Bearer realm="api"` and `DPoP realm="api", algs="ES256 …"` (two headers) |
//! | no credentials (or `Bearer`), mode required | 401 | `DPoP realm="api", algs="…"` |
//! | invalid proof (any [`DpopProofReason`](crate::DpopProofReason)) | 401 | `DPoP realm="api", algs="…", error="invalid_dpop_proof", error_description="…"` |
//! | nonce missing, stale or forged | 401 | `DPoP …, error="use_dpop_nonce", …` and `DPoP-Nonce: <fresh nonce>` |
//! | invalid token sent with the `DPoP` scheme, unbound token as `DPoP` | 401 | `DPoP …, error="invalid_token", …` |
//! | bound token sent as `Bearer` | 401 | `DPoP …, error="invalid_token", …` |
//! | malformed `DPoP` request | 400 | `DPoP …, error="invalid_request", …` |
//! | replay store full or unreachable | 503 | none; `Retry-After` (fails closed) |
//!
//! The body is a small JSON object `{"error": …, "error_description": …}`. The
//! [`AuthError`] is left in the response extensions for logging layers.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderName;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};

use crate::error::{AuthError, AuthErrorKind};
use crate::verify::sanitize;

/// Builds the response for a rejected request.
///
/// The layer calls [`reject_request`](Self::reject_request) with the head of the rejected
/// request (its method, URI, headers and extensions, including the layer's
/// [`DefaultRejection`] challenge settings), so that an implementation can answer in the
/// request's protocol (the `tonic` feature's `GrpcRejection` answers gRPC calls with a
/// `grpc-status`); by default it calls [`reject`](Self::reject), which sees only the error.
///
/// Implemented by [`DefaultRejection`] and by every `Fn(AuthError) -> Response<B>` closure:
///
/// ```
/// use bearer_guard::{AuthError, JwtAuthLayer, Verifier};
/// use http::{Response, StatusCode};
///
/// # fn layer(verifier: Verifier) {
/// let layer = JwtAuthLayer::new(verifier).rejection(|err: AuthError| {
///     let mut res = Response::new(axum::body::Body::from(format!("denied: {err}")));
///     *res.status_mut() = StatusCode::UNAUTHORIZED;
///     res
/// });
/// # }
/// ```
pub trait Rejection<B> {
    /// The response for `error`.
    fn reject(&self, error: AuthError) -> Response<B>;

    /// The response for `error` on the request whose head is `request` (the layer calls
    /// this one). The default ignores the request and calls [`reject`](Self::reject).
    fn reject_request(&self, error: AuthError, request: &http::request::Parts) -> Response<B> {
        let _ = request;
        self.reject(error)
    }
}

impl<B, F> Rejection<B> for F
where
    F: Fn(AuthError) -> Response<B>,
{
    fn reject(&self, error: AuthError) -> Response<B> {
        self(error)
    }
}

/// The RFC 6750 answers (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct DefaultRejection {
    inner: Arc<Settings>,
}

#[derive(Debug, Clone)]
struct Settings {
    realm: Option<String>,
    describe: bool,
    resource_metadata: Option<String>,
    retry_after_default: u64,
    dpop: Option<DpopChallenge>,
}

/// The `DPoP` challenge settings, set by [`JwtAuthLayer::dpop`](crate::JwtAuthLayer::dpop).
#[derive(Debug, Clone)]
struct DpopChallenge {
    algs: String,
    required: bool,
    /// The settings of a request accepted with a DPoP proof: its later answers (a missing
    /// scope) carry the `DPoP` challenge.
    request_used_dpop: bool,
}

/// The `DPoP-Nonce` response header (RFC 9449 §8.1).
pub(crate) const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

impl fmt::Debug for DefaultRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

impl Default for DefaultRejection {
    fn default() -> Self {
        Self {
            inner: Arc::new(Settings {
                realm: Some("api".into()),
                describe: true,
                resource_metadata: None,
                retry_after_default: 5,
                dpop: None,
            }),
        }
    }
}

impl DefaultRejection {
    /// The default: realm `api`, descriptions on.
    pub fn new() -> Self {
        Self::default()
    }

    fn settings(&mut self) -> &mut Settings {
        Arc::make_mut(&mut self.inner)
    }

    /// The `realm` parameter (`None` leaves it out). Characters RFC 6750 forbids are replaced.
    #[must_use]
    pub fn realm(mut self, realm: Option<&str>) -> Self {
        self.settings().realm = realm.map(sanitize);
        self
    }

    /// Whether to send `error_description` (default: yes). The descriptions say what failed
    /// without echoing token content.
    #[must_use]
    pub fn error_description(mut self, on: bool) -> Self {
        self.settings().describe = on;
        self
    }

    /// The RFC 9728 `resource_metadata` URL to add to 401 challenges.
    #[must_use]
    pub fn resource_metadata(mut self, url: impl Into<String>) -> Self {
        self.settings().resource_metadata = Some(sanitize(&url.into()));
        self
    }

    /// Adds the `DPoP` challenge (RFC 9449 §7.1) with the allowed proof algorithms; with
    /// `required`, a 401 without credentials carries only the `DPoP` challenge, else both.
    /// [`JwtAuthLayer::dpop`](crate::JwtAuthLayer::dpop) calls it.
    #[must_use]
    pub fn dpop(mut self, algs: &str, required: bool) -> Self {
        self.settings().dpop = Some(DpopChallenge {
            algs: sanitize(algs),
            required,
            request_used_dpop: false,
        });
        self
    }

    /// These settings for a request accepted with a DPoP proof (its later answers, such as
    /// 403 `insufficient_scope`, carry the `DPoP` challenge).
    pub(crate) fn for_dpop_request(mut self) -> Self {
        if let Some(d) = &mut self.settings().dpop {
            d.request_used_dpop = true;
        }
        self
    }

    /// Keeps `other`'s DPoP challenge settings (a new challenge set after `dpop`).
    pub(crate) fn with_dpop_of(mut self, other: &DefaultRejection) -> Self {
        if self.inner.dpop.is_none() && other.inner.dpop.is_some() {
            self.settings().dpop = other.inner.dpop.clone();
        }
        self
    }

    /// The status for an error.
    pub fn status(&self, error: &AuthError) -> StatusCode {
        status_of(error.kind())
    }

    /// Every `WWW-Authenticate` value for an error: the one of
    /// [`www_authenticate`](Self::www_authenticate), and with DPoP allowed, the `DPoP`
    /// challenge beside the `Bearer` one for a request without credentials.
    pub fn www_authenticate_all(&self, error: &AuthError) -> Vec<HeaderValue> {
        let mut all: Vec<HeaderValue> = self.www_authenticate(error).into_iter().collect();
        if let Some(d) = &self.inner.dpop
            && !d.required
            && error.kind() == AuthErrorKind::MissingToken
            && let Some(v) = self.challenge(error, "DPoP")
        {
            all.push(v);
        }
        all
    }

    /// The `WWW-Authenticate` value for an error, if one is sent (with DPoP allowed and no
    /// credentials, the `Bearer` one; see [`www_authenticate_all`](Self::www_authenticate_all)).
    pub fn www_authenticate(&self, error: &AuthError) -> Option<HeaderValue> {
        let dpop = match &self.inner.dpop {
            Some(d) => {
                error.is_dpop()
                    || d.request_used_dpop
                    || matches!(
                        error.kind(),
                        AuthErrorKind::InvalidDpopProof(_) | AuthErrorKind::UseDpopNonce
                    )
                    || (d.required && error.kind() == AuthErrorKind::MissingToken)
            }
            None => false,
        };
        self.challenge(error, if dpop { "DPoP" } else { "Bearer" })
    }

    fn challenge(&self, error: &AuthError, scheme: &str) -> Option<HeaderValue> {
        let s = &self.inner;
        let code = match error.kind() {
            AuthErrorKind::KeysUnavailable
            | AuthErrorKind::ReplayStoreUnavailable
            | AuthErrorKind::IntrospectionUnavailable => return None,
            AuthErrorKind::MissingToken => None,
            kind => error_code(kind),
        };
        let mut params: Vec<String> = Vec::new();
        if let Some(realm) = &s.realm {
            params.push(format!("realm=\"{realm}\""));
        }
        if scheme == "DPoP"
            && let Some(d) = &s.dpop
        {
            params.push(format!("algs=\"{}\"", d.algs));
        }
        if let Some(code) = code {
            params.push(format!("error=\"{code}\""));
            if s.describe {
                params.push(format!(
                    "error_description=\"{}\"",
                    sanitize(error.description())
                ));
            }
        }
        if let Some(scope) = error.required_scopes() {
            params.push(format!("scope=\"{}\"", sanitize(scope)));
        }
        if let Some(url) = &s.resource_metadata
            && status_of(error.kind()) == StatusCode::UNAUTHORIZED
        {
            params.push(format!("resource_metadata=\"{url}\""));
        }
        let value = if params.is_empty() {
            scheme.to_owned()
        } else {
            format!("{scheme} {}", params.join(", "))
        };
        HeaderValue::from_str(&value).ok()
    }

    /// The JSON body for an error.
    pub fn body(&self, error: &AuthError) -> Bytes {
        let code = error_code(error.kind()).unwrap_or(match error.kind() {
            AuthErrorKind::KeysUnavailable
            | AuthErrorKind::ReplayStoreUnavailable
            | AuthErrorKind::IntrospectionUnavailable => "temporarily_unavailable",
            _ => "unauthorized",
        });
        let mut body = serde_json::Map::new();
        body.insert("error".into(), code.into());
        if self.inner.describe {
            body.insert(
                "error_description".into(),
                sanitize(error.description()).into(),
            );
        }
        if let Some(scope) = error.required_scopes() {
            body.insert("scope".into(), scope.into());
        }
        Bytes::from(serde_json::Value::Object(body).to_string())
    }

    /// Fills a response's status and headers for an error (the body is the caller's).
    pub(crate) fn decorate<B>(&self, res: &mut Response<B>, error: &AuthError) {
        *res.status_mut() = self.status(error);
        let h = res.headers_mut();
        for v in self.www_authenticate_all(error) {
            h.append(WWW_AUTHENTICATE, v);
        }
        if let Some(nonce) = error
            .dpop_nonce()
            .and_then(|n| HeaderValue::from_str(n).ok())
        {
            h.insert(DPOP_NONCE, nonce);
        }
        if matches!(
            error.kind(),
            AuthErrorKind::KeysUnavailable
                | AuthErrorKind::ReplayStoreUnavailable
                | AuthErrorKind::IntrospectionUnavailable
        ) {
            let secs = error
                .retry_after()
                .map_or(self.inner.retry_after_default, |d| {
                    d.as_secs() + u64::from(d.subsec_nanos() > 0)
                })
                .max(1);
            h.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

impl<B: From<Bytes>> Rejection<B> for DefaultRejection {
    fn reject(&self, error: AuthError) -> Response<B> {
        let mut res = Response::new(B::from(self.body(&error)));
        self.decorate(&mut res, &error);
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        res.extensions_mut().insert(error);
        res
    }
}

pub(crate) fn status_of(kind: AuthErrorKind) -> StatusCode {
    match kind {
        AuthErrorKind::MissingToken
        | AuthErrorKind::InvalidToken(_)
        | AuthErrorKind::InvalidDpopProof(_)
        | AuthErrorKind::UseDpopNonce => StatusCode::UNAUTHORIZED,
        AuthErrorKind::MalformedRequest => StatusCode::BAD_REQUEST,
        AuthErrorKind::InsufficientScope => StatusCode::FORBIDDEN,
        AuthErrorKind::KeysUnavailable
        | AuthErrorKind::ReplayStoreUnavailable
        | AuthErrorKind::IntrospectionUnavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn error_code(kind: AuthErrorKind) -> Option<&'static str> {
    match kind {
        AuthErrorKind::MalformedRequest => Some("invalid_request"),
        AuthErrorKind::InvalidToken(_) => Some("invalid_token"),
        AuthErrorKind::InsufficientScope => Some("insufficient_scope"),
        AuthErrorKind::InvalidDpopProof(_) => Some("invalid_dpop_proof"),
        AuthErrorKind::UseDpopNonce => Some("use_dpop_nonce"),
        AuthErrorKind::MissingToken
        | AuthErrorKind::KeysUnavailable
        | AuthErrorKind::ReplayStoreUnavailable
        | AuthErrorKind::IntrospectionUnavailable => None,
    }
}

/// Logs a rejection at DEBUG: the kind and the reason, never the token.
pub(crate) fn log(error: &AuthError) {
    crate::metrics::rejected(error);
    match error.kind() {
        AuthErrorKind::InvalidToken(reason) => tracing::debug!(
            kind = error.kind().as_str(),
            reason = reason.as_str(),
            description = error.description(),
            "bearer-guard rejected a request"
        ),
        AuthErrorKind::InvalidDpopProof(reason) => tracing::debug!(
            kind = error.kind().as_str(),
            reason = reason.as_str(),
            description = error.description(),
            "bearer-guard rejected a request"
        ),
        kind => tracing::debug!(
            kind = kind.as_str(),
            description = error.description(),
            "bearer-guard rejected a request"
        ),
    }
}

/// How often at most a refusal of one kind is logged at WARN, per verifier.
pub(crate) const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// The longest text of a token's claim put in a log line (then `…`).
const LOGGED_CLAIM_CHARS: usize = 100;

/// The most audience values of one token put in a log line.
const LOGGED_AUDIENCES: usize = 5;

/// WARN lines for tokens refused for a wrong `iss` or `aud`: refused by the configuration
/// rather than by the token's content, they are how a misconfigured API shows (every client
/// refused) as opposed to misbehaving clients. Each names the expected value and the
/// received one (attacker-controlled: truncated to 100 characters, escaped as a Rust string
/// literal is). Rate-limited: at most one line per kind per [`REFUSAL_LOG_INTERVAL`] (60 s)
/// and verifier; the next line gives the number of refusals left out in between
/// (`suppressed`). Every refusal is still logged at DEBUG by [`log`].
#[derive(Debug, Default)]
pub(crate) struct RefusalLog {
    issuer: Limiter,
    audience: Limiter,
}

impl RefusalLog {
    /// A token was refused because its `iss` is not `expected`.
    pub(crate) fn wrong_issuer(&self, expected: &str, received: &str) {
        if let Some(suppressed) = self.issuer.allow_now() {
            tracing::warn!(
                expected = %escaped(expected),
                received = %escaped(received),
                suppressed,
                "bearer-guard refused a token whose issuer (iss) is not the configured one; \
                 if every token is refused, check the configured issuer (compared exactly)"
            );
        }
    }

    /// A token was refused because none of its audiences (`received`) is `expected`.
    pub(crate) fn wrong_audience<'a>(
        &self,
        expected: &[String],
        received: impl IntoIterator<Item = &'a str>,
    ) {
        if let Some(suppressed) = self.audience.allow_now() {
            let received = escaped_list(received);
            tracing::warn!(
                expected = %escaped_list(expected.iter().map(String::as_str)),
                %received,
                suppressed,
                "bearer-guard refused a token whose audience (aud) is not a configured one; \
                 if every token is refused, check the configured audience"
            );
        }
    }
}

/// A rate limit for one kind of log line: at most one per [`REFUSAL_LOG_INTERVAL`]; it
/// holds the time (ms since the first use of any limiter) before which nothing is logged,
/// and the number of lines left out since the last one.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    next_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl Limiter {
    /// For a `static` (the axum extractors' limit, the store and cache failure lines).
    pub(crate) const fn new() -> Self {
        Self {
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(lines left out since the last one)` when a line may be logged now.
    pub(crate) fn allow_now(&self) -> Option<u64> {
        static BASE: OnceLock<Instant> = OnceLock::new();
        let base = BASE.get_or_init(Instant::now);
        let now_ms = u64::try_from(base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.allow(now_ms, REFUSAL_LOG_INTERVAL)
    }

    /// `Some(lines left out since the last one)` when a line may be logged at `now_ms`.
    fn allow(&self, now_ms: u64, interval: Duration) -> Option<u64> {
        let next = self.next_ms.load(Ordering::Relaxed);
        let interval = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        if now_ms >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now_ms.saturating_add(interval),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// Attacker-controlled text for a log line: at most 100 characters (then `…`), quoted and
/// escaped as a Rust string literal (no control character, no line break).
pub(crate) fn escaped(text: &str) -> String {
    match text.char_indices().nth(LOGGED_CLAIM_CHARS) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

/// A list of attacker-controlled values for a log line: at most 5, each [`escaped`].
fn escaped_list<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    let mut values = values.into_iter();
    let mut out: Vec<String> = values
        .by_ref()
        .take(LOGGED_AUDIENCES)
        .map(escaped)
        .collect();
    let more = values.count();
    if more > 0 {
        out.push(format!("… {more} more"));
    }
    format!("[{}]", out.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InvalidTokenReason;

    #[test]
    fn refusal_lines_are_limited_to_one_per_interval_and_count_the_rest() {
        let l = Limiter::default();
        let every = Duration::from_secs(60);
        assert_eq!(l.allow(0, every), Some(0));
        assert_eq!(l.allow(1_000, every), None);
        assert_eq!(l.allow(59_999, every), None);
        assert_eq!(l.allow(60_000, every), Some(2));
        assert_eq!(l.allow(60_001, every), None);
        assert_eq!(l.allow(200_000, every), Some(1));
    }

    #[test]
    fn logged_claims_are_truncated_and_escaped() {
        assert_eq!(escaped("a\nb\"c"), r#""a\nb\"c""#);
        let long = "x".repeat(150);
        assert_eq!(escaped(&long), format!("\"{}\"…", "x".repeat(100)));
        let many = ["a", "b", "c", "d", "e", "f", "g"];
        assert_eq!(escaped_list(many), r#"["a", "b", "c", "d", "e", … 2 more]"#);
    }

    fn header(r: &DefaultRejection, e: &AuthError) -> Option<String> {
        r.www_authenticate(e)
            .map(|v| v.to_str().expect("ascii").to_owned())
    }

    #[test]
    fn a_missing_token_gets_a_challenge_without_an_error_code() {
        let r = DefaultRejection::new();
        assert_eq!(
            header(&r, &AuthError::missing_token()).as_deref(),
            Some("Bearer realm=\"api\"")
        );
    }

    #[test]
    fn an_invalid_token_gets_invalid_token_with_a_description() {
        let r = DefaultRejection::new();
        let e = AuthError::invalid(InvalidTokenReason::Expired);
        assert_eq!(
            header(&r, &e).as_deref(),
            Some(
                "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"the token has expired\""
            )
        );
    }

    #[test]
    fn descriptions_can_be_turned_off() {
        let r = DefaultRejection::new().error_description(false).realm(None);
        let e = AuthError::invalid(InvalidTokenReason::Expired);
        assert_eq!(
            header(&r, &e).as_deref(),
            Some("Bearer error=\"invalid_token\"")
        );
        assert_eq!(
            r.body(&e),
            Bytes::from_static(br#"{"error":"invalid_token"}"#)
        );
    }

    #[test]
    fn insufficient_scope_names_the_scopes() {
        let r = DefaultRejection::new();
        let e = AuthError::insufficient_scope("directions");
        let h = header(&r, &e).expect("header");
        assert!(h.contains("error=\"insufficient_scope\""), "{h}");
        assert!(h.ends_with("scope=\"directions\""), "{h}");
        assert_eq!(r.status(&e), StatusCode::FORBIDDEN);
    }

    #[test]
    fn keys_unavailable_is_503_with_retry_after_and_no_challenge() {
        let r = DefaultRejection::new();
        let e = AuthError::keys_unavailable(Some(std::time::Duration::from_millis(1500)));
        let res: Response<Bytes> = r.reject(e);
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[RETRY_AFTER], "2");
        assert!(res.headers().get(WWW_AUTHENTICATE).is_none());
        assert!(res.extensions().get::<AuthError>().is_some());
    }

    #[test]
    fn reject_request_defaults_to_reject() {
        let r = |e: AuthError| {
            let mut res = Response::new(Bytes::from(e.to_string()));
            *res.status_mut() = StatusCode::IM_A_TEAPOT;
            res
        };
        let (head, ()) = http::Request::new(()).into_parts();
        let res = r.reject_request(AuthError::missing_token(), &head);
        assert_eq!(res.status(), StatusCode::IM_A_TEAPOT);
    }

    #[test]
    fn custom_descriptions_are_sanitized() {
        let r = DefaultRejection::new();
        let e = AuthError::rejected("bad \"org\"\n");
        let h = header(&r, &e).expect("header");
        assert!(h.contains("error_description=\"bad ?org??\""), "{h}");
    }
}
