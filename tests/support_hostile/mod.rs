//! Support for the hardening tests (attacks, hostile issuer, soak, nothing leaked): the
//! protected API served over a real socket, a JWKS server that can misbehave in every way
//! the tests need, a raw-TCP client for bytes an HTTP client refuses to send, and a capture of
//! all `tracing` output.
//!
//! Every server binds a loopback address and a port chosen by the system.
#![allow(dead_code, unreachable_pub)]

pub mod cases;

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::get;
use base64::Engine as _;
use bearer_guard::dev_issuer::SigningKey;
use bearer_guard::{Algorithm, Claims, JwtAuthLayer, Verifier, require_scopes};
use http_body::Frame;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The issuer of every test token.
pub const ISS: &str = "https://issuer.test/";
/// The audience of every test token.
pub const AUD: &str = "urn:bearer-guard:hardening";
/// The scope the guarded route requires.
pub const SCOPE: &str = "directions";

/// Upper bound for any one request of a test: a hang is a failure, not a stuck test.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    i64::try_from(secs).expect("seconds fit i64")
}

/// base64url without padding.
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// base64url-decodes (without padding).
pub fn unb64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .expect("base64url")
}

/// Claims of a valid token (`iss`, `aud`, `sub`, `exp` in 10 minutes, `iat` now), with
/// `extra` merged in; an `extra` member set to `null` is removed.
pub fn claims(extra: &Value) -> Value {
    let mut c = json!({
        "iss": ISS,
        "aud": AUD,
        "sub": "gift-deliveries@clients",
        "exp": now() + 600,
        "iat": now(),
        "scope": SCOPE,
    });
    if let (Some(base), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            if v.is_null() {
                base.remove(k);
            } else {
                base.insert(k.clone(), v.clone());
            }
        }
    }
    c
}

/// The header `{"alg", "kid", "typ": "at+jwt"}`.
pub fn header(alg: &str, kid: &str) -> Value {
    json!({"alg": alg, "kid": kid, "typ": "at+jwt"})
}

/// The keys of the attack suite. The resource server trusts `rs`, `ps`, `ec` and `ed`;
/// `attacker` and `attacker_ec` are the attacker's own keys, never published by the issuer.
#[derive(Debug, Clone)]
pub struct Keys {
    /// RSA key #1, bound to RS256, kid `rsa-rs`.
    pub rs: SigningKey,
    /// RSA key #2, bound to PS256, kid `rsa-ps`.
    pub ps: SigningKey,
    /// P-256 key, ES256, kid `ec`.
    pub ec: SigningKey,
    /// Ed25519 key, EdDSA, kid `ed`.
    pub ed: SigningKey,
    /// RSA key #3 (unpublished), RS256, kid `attacker`.
    pub attacker: SigningKey,
    /// P-256 key #2 (unpublished), ES256, kid `attacker-ec`.
    pub attacker_ec: SigningKey,
}

impl Keys {
    pub fn new() -> Self {
        let k = |alg, i, kid: &str| SigningKey::from_pool(alg, i, kid).expect("pool key");
        Self {
            rs: k(Algorithm::RS256, 0, "rsa-rs"),
            ps: k(Algorithm::PS256, 1, "rsa-ps"),
            ec: k(Algorithm::ES256, 0, "ec"),
            ed: k(Algorithm::EdDSA, 0, "ed"),
            attacker: k(Algorithm::RS256, 2, "attacker"),
            attacker_ec: k(Algorithm::ES256, 1, "attacker-ec"),
        }
    }

    /// The JWK Set the issuer publishes.
    pub fn published(&self) -> Value {
        bearer_guard::dev_issuer::jwk_set([&self.rs, &self.ps, &self.ec, &self.ed])
    }
}

impl Default for Keys {
    fn default() -> Self {
        Self::new()
    }
}

/// Signs `claims` with `key` under a header naming its algorithm and kid.
pub fn sign(key: &SigningKey, claims: &Value) -> String {
    key.sign(claims).expect("sign")
}

/// Signs raw header and payload bytes.
pub fn sign_raw(key: &SigningKey, header: &[u8], payload: &[u8]) -> String {
    key.sign_raw(header, payload).expect("sign")
}

// ---------------------------------------------------------------------------------------
// Log capture

/// A writer into a shared buffer, for `tracing-subscriber`.
#[derive(Clone, Debug, Default)]
pub struct Buffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        lock(&self.0).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
    type Writer = Buffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Captures every `tracing` event (TRACE and up) of the current thread while it lives. With
/// a current-thread Tokio runtime that is every event of the test, spawned tasks included.
///
/// A callsite's interest is cached for the whole process by the first thread that reaches
/// it: a test thread with no subscriber would cache `never`, and the capturing test would
/// then miss that event. So the first capture also installs a global subscriber that wants
/// every event and keeps none (a bare registry): interest is then never `never`.
#[derive(Debug)]
pub struct LogCapture {
    buffer: Buffer,
    _guard: tracing::subscriber::DefaultGuard,
}

impl LogCapture {
    pub fn start() -> Self {
        static ANCHOR: std::sync::Once = std::sync::Once::new();
        ANCHOR.call_once(|| {
            // Fails only if another global subscriber is there already, which anchors too.
            let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
        });
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(buffer.clone())
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        Self {
            buffer,
            _guard: guard,
        }
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.buffer.0)).into_owned()
    }

    /// The WARN lines logged so far.
    pub fn warnings(&self) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| l.contains(" WARN "))
            .map(str::to_owned)
            .collect()
    }

    /// The ERROR lines logged so far.
    pub fn errors(&self) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| l.contains(" ERROR "))
            .map(str::to_owned)
            .collect()
    }

    /// Forgets what was logged so far.
    pub fn clear(&self) {
        lock(&self.buffer.0).clear();
    }
}

// ---------------------------------------------------------------------------------------
// The protected API

/// The protected API, on `127.0.0.1`: `/me` answers the token's `sub`; `/directions` also
/// requires the scope [`SCOPE`].
#[derive(Debug)]
pub struct App {
    pub addr: SocketAddr,
    pub base: String,
    task: JoinHandle<()>,
}

impl Drop for App {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves the protected API with `verifier`.
pub async fn serve_app(verifier: Verifier) -> App {
    let router = Router::new()
        .route(
            "/me",
            get(|c: Claims| async move { c.subject().unwrap_or_default().to_owned() }),
        )
        .merge(
            Router::new()
                .route("/directions", get(|| async { "turn left" }))
                .route_layer(require_scopes([SCOPE])),
        )
        .layer(JwtAuthLayer::new(verifier));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("address");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    App {
        addr,
        base: format!("http://{addr}"),
        task,
    }
}

/// An HTTP client for the tests: every request bounded by [`REQUEST_TIMEOUT`], no redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("client")
}

/// What the API answered.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub challenge: Option<String>,
    pub retry_after: Option<String>,
    pub body: String,
}

impl Answer {
    /// The `error` parameter of the challenge, if any.
    pub fn error_code(&self) -> Option<String> {
        param(self.challenge.as_deref()?, "error")
    }

    /// The `error_description` parameter of the challenge, if any.
    pub fn description(&self) -> Option<String> {
        param(self.challenge.as_deref()?, "error_description")
    }
}

fn param(challenge: &str, name: &str) -> Option<String> {
    let needle = format!("{name}=\"");
    let start = challenge
        .match_indices(&needle)
        .find(|(i, _)| *i == 0 || challenge.as_bytes()[i - 1] == b' ')?
        .0
        + needle.len();
    let rest = &challenge[start..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// `GET base + path` with these `Authorization` header values (each a separate header).
///
/// # Panics
///
/// When the request fails or times out: the API must always answer.
pub async fn call(client: &reqwest::Client, base: &str, path: &str, auth: &[&str]) -> Answer {
    try_call(client, base, path, auth)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: no answer: {e}"))
}

/// Like [`call`], but returns the client error instead of panicking.
pub async fn try_call(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    auth: &[&str],
) -> Result<Answer, String> {
    let mut req = client.get(format!("{base}{path}"));
    for a in auth {
        let value = HeaderValue::from_bytes(a.as_bytes()).map_err(|e| e.to_string())?;
        req = req.header(header::AUTHORIZATION, value);
    }
    let res = req.send().await.map_err(|e| format!("{e:?}"))?;
    let get = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let challenge = get("www-authenticate");
    let retry_after = get("retry-after");
    let status = res.status().as_u16();
    let body = res.text().await.map_err(|e| format!("{e:?}"))?;
    Ok(Answer {
        status,
        challenge,
        retry_after,
        body,
    })
}

/// A raw `GET path` request with these `Authorization` values, `Connection: close`.
pub fn raw_request(path: &str, auth: &[&[u8]]) -> Vec<u8> {
    let mut req =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n").into_bytes();
    for a in auth {
        req.extend_from_slice(b"Authorization: ");
        req.extend_from_slice(a);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    req
}

/// Sends raw bytes as one HTTP/1.1 request and reads the answer's status and headers, for
/// requests that HTTP clients refuse to build (control characters, folded headers, …).
/// The body is not read.
///
/// # Panics
///
/// When the server closes the connection without a status line or does not answer within
/// [`REQUEST_TIMEOUT`].
pub async fn raw_call(addr: SocketAddr, request: &[u8]) -> Answer {
    let fut = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        // The server may answer and close before reading everything (e.g. a head too large).
        let _ = stream.write_all(request).await;
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        answer
    };
    let answer = tokio::time::timeout(REQUEST_TIMEOUT, fut)
        .await
        .expect("the server answers a raw request in time");
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {:?}", truncate(&text, 200)));
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let get = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    Answer {
        status,
        challenge: get("www-authenticate"),
        retry_after: get("retry-after"),
        body: String::new(),
    }
}

/// At most `max` characters of `s`, for failure messages.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        format!(
            "{}… ({} bytes)",
            s.chars().take(max).collect::<String>(),
            s.len()
        )
    }
}

// ---------------------------------------------------------------------------------------
// A misbehaving JWKS server

/// How the JWKS server answers every request (whatever the path).
#[derive(Debug, Clone)]
pub enum Mode {
    /// This JWK Set, `application/json`, with `Cache-Control: max-age=<secs>` if given.
    Jwks(Value),
    /// This status code and a short text body.
    Status(u16),
    /// `200` with an HTML page.
    Html,
    /// `200` with the first half of this JWK Set document.
    Truncated(Value),
    /// `200` with these bytes as `application/json`.
    Raw(Vec<u8>),
    /// `200` with `bytes` bytes of whitespace followed by nothing (streamed, never held in
    /// memory); with a `Content-Length` or chunked.
    Huge { bytes: u64, content_length: bool },
    /// `200` with this JWK Set sent `chunk` bytes every `every`.
    Trickle {
        doc: Value,
        chunk: usize,
        every: Duration,
    },
    /// `302` to this URL.
    Redirect(String),
    /// `302` to the same URL, forever.
    RedirectLoop,
    /// `302` from `/jwks` to `to` (a path of this server); every other path answers `then`.
    RedirectHere { to: String, then: Value },
    /// Accepts the request and never answers.
    Hang,
}

#[derive(Debug)]
struct IssuerShared {
    mode: Mutex<Mode>,
    hits: AtomicU64,
    paths: Mutex<Vec<String>>,
    /// Bytes the huge body produced (pulled by the HTTP server as the client read).
    streamed: Arc<AtomicU64>,
    down: AtomicBool,
}

/// A JWKS server whose behaviour a test switches while it runs, and that can go down and
/// come back on the same address.
#[derive(Debug)]
pub struct Issuer {
    addr: SocketAddr,
    shared: Arc<IssuerShared>,
    stop: Option<watch::Sender<bool>>,
    task: Option<JoinHandle<()>>,
}

impl Issuer {
    /// Starts on `127.0.0.1`.
    pub async fn start(mode: Mode) -> Self {
        Self::start_on("127.0.0.1:0".parse().expect("address"), mode).await
    }

    /// Starts on `addr` (a loopback address; port 0 picks one).
    pub async fn start_on(addr: SocketAddr, mode: Mode) -> Self {
        let shared = Arc::new(IssuerShared {
            mode: Mutex::new(mode),
            hits: AtomicU64::new(0),
            paths: Mutex::default(),
            streamed: Arc::new(AtomicU64::new(0)),
            down: AtomicBool::new(false),
        });
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind a loopback address");
        let addr = listener.local_addr().expect("address");
        let mut me = Self {
            addr,
            shared,
            stop: None,
            task: None,
        };
        me.serve(listener);
        me
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let (stop, mut stopped) = watch::channel(false);
        let app = Router::new()
            .fallback(jwks_handler)
            .with_state(self.shared.clone());
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await;
        }));
        self.stop = Some(stop);
    }

    /// `http://host:port`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The JWKS URL.
    pub fn url(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches the behaviour.
    pub fn set(&self, mode: Mode) {
        *lock(&self.shared.mode) = mode;
    }

    /// Requests received so far.
    pub fn hits(&self) -> u64 {
        self.shared.hits.load(Ordering::SeqCst)
    }

    /// The paths (and queries) of the requests received so far.
    pub fn paths(&self) -> Vec<String> {
        lock(&self.shared.paths).clone()
    }

    /// Bytes of [`Mode::Huge`] bodies produced so far.
    pub fn streamed(&self) -> u64 {
        self.shared.streamed.load(Ordering::SeqCst)
    }

    /// Stops listening (connections are refused) until [`come_back`](Self::come_back).
    pub async fn go_down(&mut self) {
        self.shared.down.store(true, Ordering::SeqCst);
        if let Some(stop) = self.stop.take() {
            stop.send_replace(true);
        }
        if let Some(task) = self.task.take() {
            // Idle keep-alive connections close at once; give busy ones a moment.
            if tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .is_err()
            {
                // A hanging answer keeps a connection open; the listener is closed anyway.
            }
        }
    }

    /// Listens again on the same address.
    pub async fn come_back(&mut self) {
        let mut tries = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) => {
                    tries += 1;
                    assert!(tries < 100, "rebinding {}: {e}", self.addr);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        self.shared.down.store(false, Ordering::SeqCst);
        self.serve(listener);
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn jwks_handler(State(shared): State<Arc<IssuerShared>>, uri: Uri) -> Response {
    shared.hits.fetch_add(1, Ordering::SeqCst);
    lock(&shared.paths).push(
        uri.path_and_query()
            .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned()),
    );
    let mode = lock(&shared.mode).clone();
    let build = Response::builder();
    let res = match mode {
        Mode::Jwks(doc) => build
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(doc.to_string())),
        Mode::Status(code) => build
            .status(StatusCode::from_u16(code).expect("status"))
            .body(Body::from("no")),
        Mode::Html => build
            .header(header::CONTENT_TYPE, "text/html")
            .body(Body::from(
                "<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>",
            )),
        Mode::Truncated(doc) => {
            let s = doc.to_string();
            build
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(s[..s.len() / 2].to_owned()))
        }
        Mode::Raw(bytes) => build
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(bytes)),
        Mode::Huge {
            bytes,
            content_length,
        } => {
            let body = Body::new(HugeBody {
                remaining: bytes,
                total: bytes,
                exact: content_length,
                counter: shared.streamed.clone(),
            });
            let mut b = build.header(header::CONTENT_TYPE, "application/json");
            if content_length {
                b = b.header(header::CONTENT_LENGTH, bytes);
            }
            b.body(body)
        }
        Mode::Trickle { doc, chunk, every } => build
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::new(TrickleBody {
                data: Bytes::from(doc.to_string()),
                chunk: chunk.max(1),
                every,
                sleep: None,
            })),
        Mode::Redirect(to) => build
            .status(StatusCode::FOUND)
            .header(header::LOCATION, to)
            .body(Body::empty()),
        Mode::RedirectHere { to, .. } if uri.path() == "/jwks" => build
            .status(StatusCode::FOUND)
            .header(header::LOCATION, to)
            .body(Body::empty()),
        Mode::RedirectHere { then, .. } => build
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(then.to_string())),
        Mode::RedirectLoop => build
            .status(StatusCode::FOUND)
            .header(header::LOCATION, "/jwks")
            .body(Body::empty()),
        Mode::Hang => {
            std::future::pending::<()>().await;
            build.body(Body::empty())
        }
    };
    res.expect("response")
}

/// Whitespace, 64 KiB at a time, produced only as fast as the client reads.
struct HugeBody {
    remaining: u64,
    total: u64,
    exact: bool,
    counter: Arc<AtomicU64>,
}

static SPACES: [u8; 64 * 1024] = [b' '; 64 * 1024];

impl http_body::Body for HugeBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(SPACES.len() as u64);
        self.remaining -= n;
        self.counter.fetch_add(n, Ordering::SeqCst);
        let n = usize::try_from(n).expect("chunk size");
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&SPACES[..n])))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        if self.exact {
            http_body::SizeHint::with_exact(self.remaining.min(self.total))
        } else {
            http_body::SizeHint::default()
        }
    }
}

/// A body sent `chunk` bytes at a time, one chunk every `every`.
struct TrickleBody {
    data: Bytes,
    chunk: usize,
    every: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl http_body::Body for TrickleBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.data.is_empty() {
            return Poll::Ready(None);
        }
        let every = self.every;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(every)));
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.sleep = None;
        let n = self.chunk.min(self.data.len());
        let part = self.data.split_to(n);
        Poll::Ready(Some(Ok(Frame::data(part))))
    }
}

use std::future::Future as _;

// ---------------------------------------------------------------------------------------
// Key material helpers for the key-confusion attacks

/// DER length octets.
fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(u8::try_from(len).expect("short length"));
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | u8::try_from(bytes.len() - skip).expect("length of length"));
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    der_len(content.len(), &mut out);
    out.extend_from_slice(content);
    out
}

/// A DER INTEGER of a big-endian unsigned value.
pub fn der_uint(be: &[u8]) -> Vec<u8> {
    let skip = be.iter().take_while(|&&b| b == 0).count();
    let mut v = be[skip.min(be.len().saturating_sub(1))..].to_vec();
    if v.is_empty() {
        v.push(0);
    }
    if v[0] & 0x80 != 0 {
        v.insert(0, 0);
    }
    der(0x02, &v)
}

/// An ECDSA fixed-size `r || s` signature re-encoded as DER `SEQUENCE { r, s }`.
pub fn ecdsa_to_der(fixed: &[u8]) -> Vec<u8> {
    let (r, s) = fixed.split_at(fixed.len() / 2);
    let mut seq = der_uint(r);
    seq.extend(der_uint(s));
    der(0x30, &seq)
}

/// The RSA public key of a JWK as (PKCS#1 DER, SPKI DER).
pub fn rsa_public_der(jwk: &Value) -> (Vec<u8>, Vec<u8>) {
    let n = unb64(jwk["n"].as_str().expect("n"));
    let e = unb64(jwk["e"].as_str().expect("e"));
    let mut seq = der_uint(&n);
    seq.extend(der_uint(&e));
    let pkcs1 = der(0x30, &seq);
    // AlgorithmIdentifier { rsaEncryption, NULL }
    let alg_id = der(
        0x30,
        &[
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
        ],
    );
    let mut bits = vec![0u8];
    bits.extend_from_slice(&pkcs1);
    let mut spki = alg_id;
    spki.extend(der(0x03, &bits));
    (pkcs1, der(0x30, &spki))
}

/// PEM armour, 64 columns.
pub fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("ascii"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Writes a line to stderr right away (progress of long tests).
pub fn progress(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}
