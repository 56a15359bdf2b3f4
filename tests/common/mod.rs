//! Shared support for the integration tests: a local JWKS / discovery server whose behaviour
//! a test changes while it runs, and a token minter.
//!
//! The server binds `127.0.0.1:0`; each test starts its own and stops it.
#![allow(dead_code, unreachable_pub)]

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bearer_guard::dev_issuer::{SigningKey, jwk_set};
use bearer_guard::{Algorithm, AuthErrorKind, InvalidTokenReason, Verifier, VerifierBuilder};
use http_body::Frame;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The audience every test token carries and every test verifier accepts.
pub const AUD: &str = "urn:bearer-guard:test";
/// The issuer of tests that do not use discovery.
pub const ISSUER: &str = "https://issuer.test/";
/// The path the JWK Set is served at.
pub const JWKS_PATH: &str = "/jwks";
/// OIDC discovery.
pub const OIDC_PATH: &str = "/.well-known/openid-configuration";
/// RFC 8414 metadata.
pub const OAUTH_PATH: &str = "/.well-known/oauth-authorization-server";

/// How the JWKS endpoint answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The JWK Set.
    Jwks,
    /// This status code, empty body.
    Status(u16),
    /// An HTML page with status 200.
    Html,
    /// The first half of the JWK Set document.
    Truncated,
    /// The JWK Set padded with trailing spaces to this many bytes (still a valid document),
    /// streamed without `Content-Length`.
    Padded(usize),
}

/// Where the authorization-server metadata is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Metadata {
    /// Nowhere (404).
    None,
    /// At the OIDC discovery path only, naming this issuer.
    Oidc(String),
    /// At the RFC 8414 path only, naming this issuer.
    Rfc8414(String),
}

#[derive(Debug)]
struct Behaviour {
    jwks: Value,
    reply: Reply,
    cache_control: Option<String>,
    etag: Option<String>,
    delay: Duration,
    metadata: Metadata,
}

#[derive(Debug)]
struct Shared {
    behaviour: Mutex<Behaviour>,
    hits: Mutex<HashMap<String, usize>>,
    if_none_match: Mutex<Vec<String>>,
    not_modified: Mutex<usize>,
    stop: watch::Sender<bool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A local JWKS and metadata server.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Server {
    /// Starts a server publishing the public keys of `keys`.
    pub async fn start(keys: &[&SigningKey]) -> Self {
        Self::start_with(jwk_set(keys.iter().copied())).await
    }

    /// Starts a server publishing this JWK Set document.
    pub async fn start_with(jwks: Value) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let shared = Arc::new(Shared {
            behaviour: Mutex::new(Behaviour {
                jwks,
                reply: Reply::Jwks,
                cache_control: None,
                etag: None,
                delay: Duration::ZERO,
                metadata: Metadata::None,
            }),
            hits: Mutex::default(),
            if_none_match: Mutex::default(),
            not_modified: Mutex::default(),
            stop,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
                .expect("serve");
        });
        Self { addr, shared, task }
    }

    /// Stops the server (waiting responses are cut short).
    pub async fn stop(self) {
        self.shared.stop.send_replace(true);
        self.task.await.expect("server task");
    }

    /// `http://127.0.0.1:port` (no trailing slash): the issuer for discovery tests.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL of the JWK Set.
    pub fn jwks_uri(&self) -> String {
        format!("{}{JWKS_PATH}", self.base_url())
    }

    /// Publishes the public keys of `keys` from now on.
    pub fn set_keys(&self, keys: &[&SigningKey]) {
        self.set_jwks(jwk_set(keys.iter().copied()));
    }

    /// Publishes this JWK Set document from now on.
    pub fn set_jwks(&self, jwks: Value) {
        lock(&self.shared.behaviour).jwks = jwks;
    }

    /// How the JWKS endpoint answers from now on.
    pub fn reply(&self, reply: Reply) {
        lock(&self.shared.behaviour).reply = reply;
    }

    /// A `Cache-Control` header on JWKS responses.
    pub fn cache_control(&self, value: &str) {
        lock(&self.shared.behaviour).cache_control = Some(value.to_owned());
    }

    /// An `ETag` on JWKS responses; a request with a matching `If-None-Match` gets a 304.
    pub fn etag(&self, value: &str) {
        lock(&self.shared.behaviour).etag = Some(value.to_owned());
    }

    /// Every response waits this long first.
    pub fn delay(&self, delay: Duration) {
        lock(&self.shared.behaviour).delay = delay;
    }

    /// Where the metadata document is published.
    pub fn metadata(&self, metadata: Metadata) {
        lock(&self.shared.behaviour).metadata = metadata;
    }

    /// Requests received for `path`.
    pub fn hits(&self, path: &str) -> usize {
        lock(&self.shared.hits).get(path).copied().unwrap_or(0)
    }

    /// Requests received for the JWK Set.
    pub fn jwks_hits(&self) -> usize {
        self.hits(JWKS_PATH)
    }

    /// The `If-None-Match` values received, in order.
    pub fn if_none_match(&self) -> Vec<String> {
        lock(&self.shared.if_none_match).clone()
    }

    /// How many 304 responses were sent.
    pub fn not_modified(&self) -> usize {
        *lock(&self.shared.not_modified)
    }

    /// A verifier builder for [`ISSUER`] and [`AUD`] fetching this server's JWK Set.
    pub fn builder(&self) -> VerifierBuilder {
        Verifier::builder()
            .issuer(ISSUER)
            .audience(AUD)
            .jwks_uri(self.jwks_uri())
    }
}

async fn handle(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path().to_owned();
    *lock(&shared.hits).entry(path.clone()).or_default() += 1;
    let delay = lock(&shared.behaviour).delay;
    if !delay.is_zero() {
        let mut stopped = shared.stop.subscribe();
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stopped.wait_for(|s| *s) => {}
        }
    }
    let b = lock(&shared.behaviour);
    match path.as_str() {
        JWKS_PATH => {}
        OIDC_PATH | OAUTH_PATH => {
            let issuer = match (&b.metadata, path.as_str()) {
                (Metadata::Oidc(issuer), OIDC_PATH) | (Metadata::Rfc8414(issuer), OAUTH_PATH) => {
                    issuer
                }
                _ => return StatusCode::NOT_FOUND.into_response(),
            };
            let base = format!("http://{}", headers_host(&headers));
            let doc = json!({"issuer": issuer, "jwks_uri": format!("{base}{JWKS_PATH}")});
            return axum::Json(doc).into_response();
        }
        _ => return StatusCode::NOT_FOUND.into_response(),
    }

    let mut extra = HeaderMap::new();
    if let Some(cc) = &b.cache_control {
        extra.insert(header::CACHE_CONTROL, hv(cc));
    }
    if let Some(tag) = &b.etag {
        extra.insert(header::ETAG, hv(tag));
        if let Some(inm) = headers.get(header::IF_NONE_MATCH) {
            let inm = inm.to_str().unwrap_or_default().to_owned();
            let matches = inm == *tag;
            lock(&shared.if_none_match).push(inm);
            if matches {
                *lock(&shared.not_modified) += 1;
                return (StatusCode::NOT_MODIFIED, extra).into_response();
            }
        }
    }
    let doc = b.jwks.to_string();
    match b.reply {
        Reply::Jwks => (extra, [(header::CONTENT_TYPE, "application/json")], doc).into_response(),
        Reply::Status(code) => StatusCode::from_u16(code)
            .expect("status code")
            .into_response(),
        Reply::Html => (
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body>Service temporarily unavailable</body></html>",
        )
            .into_response(),
        Reply::Truncated => (extra, doc[..doc.len() / 2].to_owned()).into_response(),
        Reply::Padded(size) => {
            let mut body = doc.into_bytes();
            body.resize(size.max(body.len()), b' ');
            (extra, chunked(body)).into_response()
        }
    }
}

fn headers_host(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_owned()
}

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).expect("header value")
}

/// A body sent in 1 KiB chunks, without `Content-Length`.
fn chunked(body: Vec<u8>) -> Body {
    Body::new(Chunks(
        body.chunks(1024).map(Bytes::copy_from_slice).collect(),
    ))
}

struct Chunks(VecDeque<Bytes>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(d.as_secs()).expect("seconds fit i64")
}

/// Key number `index` of the dev-issuer pool for `alg`, named `kid`.
pub fn key(alg: Algorithm, index: usize, kid: &str) -> SigningKey {
    SigningKey::from_pool(alg, index, kid).expect("pool key")
}

/// Valid claims for [`ISSUER`] and [`AUD`]: expiring in 10 minutes, issued now, with a `sub`
/// and a unique `jti` (so that no two minted tokens are equal).
pub fn claims() -> Value {
    static JTI: AtomicU64 = AtomicU64::new(0);
    let now = now();
    json!({
        "iss": ISSUER,
        "aud": AUD,
        "exp": now + 600,
        "iat": now,
        "sub": "user-1",
        "jti": format!("jti-{}", JTI.fetch_add(1, Ordering::Relaxed)),
    })
}

/// [`claims`] with `changes` applied (a `null` change removes the claim).
pub fn claims_with(changes: Value) -> Value {
    let mut c = claims();
    let (Some(obj), Value::Object(changes)) = (c.as_object_mut(), changes) else {
        panic!("claims and changes must be JSON objects");
    };
    for (name, value) in changes {
        if value.is_null() {
            obj.remove(&name);
        } else {
            obj.insert(name, value);
        }
    }
    c
}

/// A token with valid default claims, signed by `key` (header `alg`, `kid`, `typ: at+jwt`).
pub fn token(key: &SigningKey) -> String {
    mint(key, &claims())
}

/// A token with these claims, signed by `key`.
pub fn mint(key: &SigningKey, claims: &Value) -> String {
    key.sign(claims).expect("sign")
}

/// A token with this header and these claims, signed by `key`.
pub fn mint_with_header(key: &SigningKey, header: &Value, claims: &Value) -> String {
    key.sign_raw(header.to_string().as_bytes(), claims.to_string().as_bytes())
        .expect("sign")
}

/// A token with this header and valid claims but a meaningless signature: for tests where
/// the signature is never reached.
pub fn unsigned(header: &Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims().to_string()),
        b64.encode([7u8; 64])
    )
}

/// The reason of an `InvalidToken` error; panics on any other outcome.
pub fn reason(result: Result<bearer_guard::Claims, bearer_guard::AuthError>) -> InvalidTokenReason {
    match result {
        Err(e) => match e.kind() {
            AuthErrorKind::InvalidToken(r) => r,
            other => panic!("expected an invalid token, got {other:?} ({e})"),
        },
        Ok(c) => panic!("expected a refusal, the token was accepted: {c:?}"),
    }
}
