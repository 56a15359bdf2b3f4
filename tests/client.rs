//! The client side: the client-credentials token source against the development issuer and
//! against a scripted token-endpoint stub (for what the dev issuer cannot do: 5xx, 429 with
//! `Retry-After`, slowness), and the `AddBearer` middleware against a protected axum app.
#![cfg(all(
    feature = "client",
    feature = "dev-issuer",
    any(feature = "aws-lc-rs", feature = "rust-crypto")
))]

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use bearer_guard::client::{
    AddBearerLayer, BoxError, ClientAuthMethod, ClientCredentials, ClientCredentialsBuilder,
    OAuthErrorCode, TokenError, TokenErrorKind,
};
use bearer_guard::dev_issuer::DevIssuer;
use bearer_guard::{AuthError, JwtAuthLayer, Verifier};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};

const AUD: &str = "urn:worldmappers";
const CLIENT_ID: &str = "gift-deliveries";
const SECRET: &str = "dev-secret-7f3a9c";

// ---------------------------------------------------------------------------------------
// Support: the dev issuer, a token-endpoint stub, a protected app, a reqwest-based service.

async fn dev_issuer(ttl: Option<Duration>) -> DevIssuer {
    let mut b = DevIssuer::builder().audience(AUD).client(
        CLIENT_ID,
        SECRET,
        ["directions", "geocode:location"],
    );
    if let Some(ttl) = ttl {
        b = b.token_ttl(ttl);
    }
    b.start().await.expect("dev issuer starts")
}

fn for_dev(dev: &DevIssuer) -> ClientCredentialsBuilder {
    ClientCredentials::builder()
        .issuer(dev.issuer())
        .client_id(CLIENT_ID)
        .client_secret(SECRET)
        .audience(AUD)
}

async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// How the stub token endpoint answers one request.
#[derive(Debug, Clone)]
enum Reply {
    /// A token response with this `expires_in`.
    Token(u64),
    /// This status and JSON body, with an optional `Retry-After`.
    Status(u16, serde_json::Value, Option<&'static str>),
    /// Waits, then answers with a token.
    Slow(Duration),
}

#[derive(Default)]
struct StubState {
    script: Mutex<VecDeque<Reply>>,
    /// The answer once the script is used up.
    then: Mutex<Option<Reply>>,
    requests: AtomicU64,
    /// Authorization header and form body of each request.
    seen: Mutex<Vec<(Option<String>, String)>>,
}

struct Stub {
    url: String,
    state: Arc<StubState>,
}

impl Stub {
    async fn start(script: impl IntoIterator<Item = Reply>, then: Reply) -> Self {
        let state = Arc::new(StubState {
            script: Mutex::new(script.into_iter().collect()),
            then: Mutex::new(Some(then)),
            ..StubState::default()
        });
        let app = Router::new()
            .route("/oauth/token", post(stub_token))
            .with_state(state.clone());
        let addr = serve(app).await;
        Self {
            url: format!("http://{addr}/oauth/token"),
            state,
        }
    }

    fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    fn then(&self, reply: Reply) {
        *self.state.then.lock().expect("lock") = Some(reply);
    }

    fn seen(&self) -> Vec<(Option<String>, String)> {
        self.state.seen.lock().expect("lock").clone()
    }

    fn source(&self) -> ClientCredentialsBuilder {
        ClientCredentials::builder()
            .token_endpoint(&self.url)
            .client_id(CLIENT_ID)
            .client_secret(SECRET)
            .audience(AUD)
            .retries(4, Duration::from_millis(50), Duration::from_millis(400))
    }
}

async fn stub_token(
    State(state): State<Arc<StubState>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let n = state.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    state.seen.lock().expect("lock").push((auth, body));
    let reply = {
        let next = state.script.lock().expect("lock").pop_front();
        next.or_else(|| state.then.lock().expect("lock").clone())
    };
    let token = |expires_in: u64| {
        axum::Json(json!({
            "access_token": format!("stub-token-{n}"),
            "token_type": "Bearer",
            "expires_in": expires_in,
            "scope": "directions",
        }))
        .into_response()
    };
    match reply {
        Some(Reply::Token(expires_in)) => token(expires_in),
        None => token(3600),
        Some(Reply::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            token(3600)
        }
        Some(Reply::Status(status, body, retry_after)) => {
            let mut res = (
                StatusCode::from_u16(status).expect("status"),
                axum::Json(body),
            )
                .into_response();
            if let Some(r) = retry_after {
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static(r));
            }
            res
        }
    }
}

/// An API protected by `JwtAuthLayer` with a verifier for the dev issuer. Tokens whose `jti`
/// is in `revoked` (or every token, once `"*"` is in it) are refused with 401
/// `invalid_token`. `GET /api/directions` answers the token's `jti`; `POST` echoes the body;
/// `GET /plain401` is unprotected and always answers a bare 401 challenge.
struct Api {
    url: String,
    revoked: Arc<Mutex<HashSet<String>>>,
    hits: Arc<AtomicU64>,
}

impl Api {
    async fn start(dev: &DevIssuer) -> Self {
        let revoked: Arc<Mutex<HashSet<String>>> = Arc::default();
        let r = revoked.clone();
        let verifier = Verifier::builder()
            .issuer(dev.issuer())
            .audience(AUD)
            .validate(move |claims| {
                let revoked = r.lock().expect("lock");
                let jti = claims.jwt_id().unwrap_or_default();
                if revoked.contains(jti) || revoked.contains("*") {
                    Err(AuthError::rejected("the token was revoked"))
                } else {
                    Ok(())
                }
            })
            .build()
            .expect("verifier");
        let hits = Arc::new(AtomicU64::new(0));
        let h = hits.clone();
        let app = Router::new()
            .route(
                "/api/directions",
                get(|req: axum::extract::Request| async move {
                    req.extensions()
                        .get::<bearer_guard::Claims>()
                        .and_then(|c| c.jwt_id().map(str::to_owned))
                        .unwrap_or_default()
                })
                .post(|body: Bytes| async move { body }),
            )
            .layer(JwtAuthLayer::new(verifier))
            .route(
                "/plain401",
                get(|| async {
                    (
                        StatusCode::UNAUTHORIZED,
                        [(header::WWW_AUTHENTICATE, "Bearer realm=\"api\"")],
                    )
                }),
            )
            .layer(tower::util::MapRequestLayer::new(move |req| {
                h.fetch_add(1, Ordering::SeqCst);
                req
            }));
        let addr = serve(app).await;
        Self {
            url: format!("http://{addr}"),
            revoked,
            hits,
        }
    }

    fn revoke(&self, jti: &str) {
        self.revoked.lock().expect("lock").insert(jti.to_owned());
    }

    fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    fn get(&self, path: &str) -> http::Request<Bytes> {
        http::Request::get(format!("{}{path}", self.url))
            .body(Bytes::new())
            .expect("request")
    }
}

/// A tower HTTP client over reqwest, with in-memory (clonable) bodies.
#[derive(Clone)]
struct ReqwestService(reqwest::Client);

impl tower::Service<http::Request<Bytes>> for ReqwestService {
    type Response = http::Response<Bytes>;
    type Error = BoxError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Bytes>) -> Self::Future {
        let client = self.0.clone();
        Box::pin(async move {
            let req = reqwest::Request::try_from(req.map(reqwest::Body::from))?;
            let res = client.execute(req).await?;
            let status = res.status();
            let headers = res.headers().clone();
            let mut out = http::Response::new(res.bytes().await?);
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            Ok(out)
        })
    }
}

fn http_service() -> ReqwestService {
    ReqwestService(reqwest::Client::new())
}

fn text(res: &http::Response<Bytes>) -> String {
    String::from_utf8_lossy(res.body()).into_owned()
}

// ---------------------------------------------------------------------------------------
// Caching and renewal.

#[tokio::test]
async fn many_calls_make_one_token_request_and_the_api_accepts_the_token() {
    logs();
    let dev = dev_issuer(None).await;
    let source = for_dev(&dev).build().expect("source");
    let first = source.token().await.expect("token");
    for _ in 0..20 {
        assert_eq!(source.token().await.expect("token"), first);
    }
    assert_eq!(source.token_requests(), 1);
    // Clones share the cache.
    assert_eq!(source.clone().token().await.expect("token"), first);
    assert_eq!(source.token_requests(), 1);

    let verifier = Verifier::builder()
        .issuer(dev.issuer())
        .audience(AUD)
        .build()
        .expect("verifier");
    let claims = verifier.verify(first.secret()).await.expect("valid token");
    assert_eq!(claims.client_id(), Some(CLIENT_ID));
    assert_eq!(first.lifetime(), Duration::from_secs(86_400));
    assert!(first.expires_in() > Duration::from_secs(86_000));
    let due = source.refresh_due_in().expect("cached");
    assert!(
        due > Duration::from_secs(77_000) && due <= Duration::from_secs(77_760),
        "{due:?}"
    );
    dev.shutdown().await;
}

#[tokio::test]
async fn concurrent_callers_share_one_token_request() {
    logs();
    let stub = Stub::start(
        [Reply::Slow(Duration::from_millis(300))],
        Reply::Token(3600),
    )
    .await;
    let source = stub.source().build().expect("source");
    let mut tasks = JoinSet::new();
    for _ in 0..50 {
        let source = source.clone();
        tasks.spawn(async move { source.token().await });
    }
    let mut tokens = Vec::new();
    while let Some(t) = tasks.join_next().await {
        tokens.push(t.expect("task").expect("token"));
    }
    assert_eq!(tokens.len(), 50);
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    assert_eq!(stub.requests(), 1);
    assert_eq!(source.token_requests(), 1);
}

#[tokio::test]
async fn a_token_is_renewed_shortly_before_it_expires() {
    logs();
    // A 2 s lifetime: renewed after half of it.
    let dev = dev_issuer(Some(Duration::from_secs(2))).await;
    let source = for_dev(&dev).build().expect("source");
    let first = source.token().await.expect("token");
    assert_eq!(source.token().await.expect("token"), first);
    assert_eq!(source.token_requests(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = source.token().await.expect("token");
    assert_ne!(second, first);
    assert_eq!(source.token_requests(), 2);
    assert_eq!(source.token().await.expect("token"), second);
    assert_eq!(source.token_requests(), 2);
    dev.shutdown().await;
}

#[tokio::test]
async fn during_the_skew_one_caller_renews_and_the_others_keep_the_current_token() {
    logs();
    // expires_in 4 s: stale after 2 s; the renewal then takes 1 s.
    let stub = Stub::start(
        [Reply::Token(4), Reply::Slow(Duration::from_secs(1))],
        Reply::Token(3600),
    )
    .await;
    let source = stub.source().build().expect("source");
    let first = source.token().await.expect("token");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let renewing = tokio::spawn({
        let source = source.clone();
        async move { source.token().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    assert_eq!(
        source.token().await.expect("token"),
        first,
        "served without waiting"
    );
    assert!(started.elapsed() < Duration::from_millis(600));
    let renewed = renewing.await.expect("task").expect("token");
    assert_ne!(renewed, first);
    assert_eq!(source.token().await.expect("token"), renewed);
    assert_eq!(stub.requests(), 2);
}

#[tokio::test]
async fn invalidate_drops_only_the_cached_token() {
    logs();
    let stub = Stub::start([], Reply::Token(3600)).await;
    let source = stub.source().build().expect("source");
    let first = source.token().await.expect("token");
    assert!(source.invalidate(&first));
    let second = source.token().await.expect("token");
    assert_ne!(first, second);
    assert!(
        !source.invalidate(&first),
        "an older token does not evict the new one"
    );
    assert_eq!(source.token().await.expect("token"), second);
    assert_eq!(stub.requests(), 2);
}

// ---------------------------------------------------------------------------------------
// Failures.

#[tokio::test]
async fn a_failed_renewal_keeps_the_current_token_while_it_is_valid() {
    logs();
    // expires_in 4 s: stale after 2 s, no longer served after 3 s.
    let stub = Stub::start([Reply::Token(4)], Reply::Token(3600)).await;
    stub.then(Reply::Status(500, json!({}), None));
    let source = stub
        .source()
        .retries(2, Duration::from_millis(50), Duration::from_millis(50))
        .build()
        .expect("source");
    let first = source.token().await.expect("token");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(source.token().await.expect("old token kept"), first);
    assert_eq!(stub.requests(), 3, "one renewal: two attempts");
    // During the cooldown, no new attempt.
    assert_eq!(source.token().await.expect("old token kept"), first);
    assert_eq!(stub.requests(), 3);

    // Once the token is too close to expiry, the failure shows.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let e = source.token().await.expect_err("no valid token");
    assert_eq!(e.kind(), TokenErrorKind::ServerError);
    assert_eq!(e.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
    assert_eq!(stub.requests(), 5);

    // The server recovers: after the cooldown the next call gets a token.
    stub.then(Reply::Token(3600));
    let e2 = source.token().await.expect_err("still cooling down");
    assert_eq!(e2.kind(), TokenErrorKind::ServerError);
    assert_eq!(stub.requests(), 5);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let fresh = source.token().await.expect("recovered");
    assert_ne!(fresh, first);
}

#[tokio::test]
async fn oauth_errors_are_typed_and_name_the_code() {
    logs();
    let dev = dev_issuer(None).await;

    let wrong = for_dev(&dev)
        .client_secret("wrong-secret")
        .build()
        .expect("source");
    let e = wrong.token().await.expect_err("refused");
    assert_eq!(
        e.kind(),
        TokenErrorKind::OAuth(OAuthErrorCode::InvalidClient)
    );
    assert_eq!(e.oauth_error(), Some("invalid_client"));
    assert!(e.oauth_error_description().is_some());
    assert_eq!(e.status(), Some(StatusCode::UNAUTHORIZED));
    assert!(!e.is_transient());
    assert!(e.to_string().contains("invalid_client"), "{e}");
    assert_eq!(wrong.token_requests(), 1, "not retried");
    // The same error again during the cooldown, without a request.
    let again = wrong.token().await.expect_err("refused");
    assert_eq!(again.oauth_error(), Some("invalid_client"));
    assert_eq!(wrong.token_requests(), 1);

    let scope = for_dev(&dev)
        .scope("launch:rockets")
        .build()
        .expect("source");
    let e = scope.token().await.expect_err("refused");
    assert_eq!(
        e.kind(),
        TokenErrorKind::OAuth(OAuthErrorCode::InvalidScope)
    );

    let audience = for_dev(&dev)
        .audience("urn:elsewhere")
        .build()
        .expect("source");
    let e = audience.token().await.expect_err("refused");
    assert_eq!(
        e.kind(),
        TokenErrorKind::OAuth(OAuthErrorCode::AccessDenied)
    );
    assert_eq!(e.status(), Some(StatusCode::FORBIDDEN));
    dev.shutdown().await;
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    logs();
    let stub = Stub::start(
        [
            Reply::Status(503, json!({"error": "temporarily_unavailable"}), None),
            Reply::Status(502, json!({}), None),
        ],
        Reply::Token(3600),
    )
    .await;
    let source = stub
        .source()
        .retries(4, Duration::from_millis(200), Duration::from_secs(1))
        .build()
        .expect("source");
    let started = Instant::now();
    source.token().await.expect("third attempt succeeds");
    // Waits of 100–200 ms, then 200–400 ms (jitter).
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stub.requests(), 3);
}

#[tokio::test]
async fn attempts_are_bounded() {
    logs();
    let stub = Stub::start([], Reply::Token(3600)).await;
    stub.then(Reply::Status(500, json!({"error": "server_error"}), None));
    let source = stub
        .source()
        .retries(3, Duration::from_millis(20), Duration::from_millis(50))
        .build()
        .expect("source");
    let e = source.token().await.expect_err("fails");
    assert_eq!(e.kind(), TokenErrorKind::ServerError);
    assert_eq!(e.oauth_error(), Some("server_error"));
    assert_eq!(stub.requests(), 3);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    logs();
    let stub = Stub::start(
        [Reply::Status(429, json!({"error": "slow_down"}), Some("1"))],
        Reply::Token(3600),
    )
    .await;
    let source = stub.source().build().expect("source");
    let started = Instant::now();
    source.token().await.expect("second attempt succeeds");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stub.requests(), 2);
}

#[tokio::test]
async fn a_retry_after_beyond_the_budget_fails_at_once() {
    logs();
    let stub = Stub::start(
        [Reply::Status(429, json!({}), Some("120"))],
        Reply::Token(3600),
    )
    .await;
    let source = stub
        .source()
        .retry_budget(Duration::from_secs(5))
        .build()
        .expect("source");
    let started = Instant::now();
    let e = source.token().await.expect_err("rate limited");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(e.kind(), TokenErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(120)));
    assert_eq!(stub.requests(), 1);
}

#[tokio::test]
async fn a_slow_endpoint_times_out() {
    logs();
    let stub = Stub::start([], Reply::Token(3600)).await;
    stub.then(Reply::Slow(Duration::from_secs(5)));
    let source = stub
        .source()
        .timeout(Duration::from_millis(300))
        .retries(2, Duration::from_millis(50), Duration::from_millis(50))
        .build()
        .expect("source");
    let started = Instant::now();
    let e = source.token().await.expect_err("times out");
    assert_eq!(e.kind(), TokenErrorKind::Timeout);
    assert!(e.is_transient());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stub.requests(), 2);
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_transport_error() {
    logs();
    // Bind then drop a listener: nothing listens on that port any more.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr");
    let source = ClientCredentials::builder()
        .token_endpoint(format!("http://{addr}/oauth/token"))
        .client_id(CLIENT_ID)
        .client_secret(SECRET)
        .retries(2, Duration::from_millis(10), Duration::from_millis(10))
        .build()
        .expect("source");
    let e = source.token().await.expect_err("unreachable");
    assert_eq!(e.kind(), TokenErrorKind::Transport);
    assert!(!e.to_string().contains(SECRET));
}

#[tokio::test]
async fn unusable_token_responses_are_refused() {
    logs();
    for (body, why) in [
        (json!({"token_type": "Bearer"}), "no access_token"),
        (json!({"access_token": "t", "token_type": "DPoP"}), "DPoP"),
        (
            json!({"access_token": "a b", "token_type": "Bearer"}),
            "space",
        ),
    ] {
        let stub = Stub::start([Reply::Status(200, body, None)], Reply::Token(3600)).await;
        let source = stub.source().build().expect("source");
        let e = source.token().await.expect_err(why);
        assert_eq!(e.kind(), TokenErrorKind::InvalidResponse, "{why}");
    }
}

#[tokio::test]
async fn discovery_failure_is_reported() {
    logs();
    let app = Router::new();
    let addr = serve(app).await;
    let source = ClientCredentials::builder()
        .issuer(format!("http://{addr}/"))
        .client_id(CLIENT_ID)
        .client_secret(SECRET)
        .build()
        .expect("source");
    let e = source.token().await.expect_err("no metadata");
    assert_eq!(e.kind(), TokenErrorKind::Discovery);
    assert!(e.to_string().contains("openid-configuration"), "{e}");
}

// ---------------------------------------------------------------------------------------
// The request: client authentication and parameters.

fn form(body: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

#[tokio::test]
async fn client_secret_post_sends_the_credentials_in_the_body() {
    logs();
    let stub = Stub::start([], Reply::Token(3600)).await;
    let source = stub
        .source()
        .resource("https://api.worldmappers.example/")
        .resource("https://geo.worldmappers.example/")
        .scope("directions geocode:location")
        .organization("org_elves")
        .param("connection", "north-pole")
        .build()
        .expect("source");
    source.token().await.expect("token");
    let seen = stub.seen();
    let (auth, body) = &seen[0];
    assert_eq!(auth, &None);
    let form = form(body);
    let get = |k: &str| -> Vec<&str> {
        form.iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(get("grant_type"), ["client_credentials"]);
    assert_eq!(get("client_id"), [CLIENT_ID]);
    assert_eq!(get("client_secret"), [SECRET]);
    assert_eq!(get("audience"), [AUD]);
    assert_eq!(
        get("resource"),
        [
            "https://api.worldmappers.example/",
            "https://geo.worldmappers.example/"
        ]
    );
    assert_eq!(get("scope"), ["directions geocode:location"]);
    assert_eq!(get("organization"), ["org_elves"]);
    assert_eq!(get("connection"), ["north-pole"]);
}

#[tokio::test]
async fn client_secret_basic_sends_the_credentials_in_the_header() {
    logs();
    let stub = Stub::start([], Reply::Token(3600)).await;
    let source = stub
        .source()
        .auth_method(ClientAuthMethod::ClientSecretBasic)
        .build()
        .expect("source");
    source.token().await.expect("token");
    let seen = stub.seen();
    let (auth, body) = &seen[0];
    let auth = auth.as_deref().expect("Authorization header");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.strip_prefix("Basic ").expect("Basic"))
        .expect("base64");
    assert_eq!(decoded, format!("{CLIENT_ID}:{SECRET}").as_bytes());
    assert!(!body.contains("client_secret"), "{body}");
    assert!(!body.contains("client_id"), "{body}");
}

#[tokio::test]
async fn both_authentication_methods_work_with_the_dev_issuer() {
    logs();
    let dev = dev_issuer(None).await;
    for method in [
        ClientAuthMethod::ClientSecretPost,
        ClientAuthMethod::ClientSecretBasic,
    ] {
        let source = for_dev(&dev)
            .auth_method(method)
            .scope("directions")
            .build()
            .expect("source");
        let token = source.token().await.expect("token");
        assert_eq!(token.scope(), Some("directions"), "{method:?}");
    }
    // The token endpoint given directly, with an RFC 8707 resource in place of audience.
    let source = ClientCredentials::builder()
        .token_endpoint(dev.token_endpoint())
        .client_id(CLIENT_ID)
        .client_secret(SECRET)
        .resource(AUD)
        .build()
        .expect("source");
    source.token().await.expect("token");
    dev.shutdown().await;
}

#[tokio::test]
async fn private_key_jwt_sends_a_signed_assertion() {
    logs();
    let stub = Stub::start([], Reply::Token(3600)).await;
    let source = ClientCredentials::builder()
        .token_endpoint(&stub.url)
        .client_id(CLIENT_ID)
        .private_key_jwt(
            bearer_guard::Algorithm::ES256,
            include_str!("../src/dev_issuer/keys/ec256-1.pem"),
        )
        .private_key_id("gift-deliveries-key")
        .audience(AUD)
        .build()
        .expect("source");
    assert!(!format!("{source:?}").contains("PRIVATE KEY"));
    source.token().await.expect("token");
    source.invalidate(&source.token().await.expect("token"));
    source.token().await.expect("token");

    // What the authorization server would check, with the client's registered public key.
    let public = bearer_guard::dev_issuer::SigningKey::from_pool(
        bearer_guard::Algorithm::ES256,
        0,
        "gift-deliveries-key",
    )
    .expect("pool key");
    let verifier = Verifier::builder()
        .issuer(CLIENT_ID)
        .audience(&stub.url)
        .jwks_json(bearer_guard::dev_issuer::jwk_set([&public]).to_string())
        .build()
        .expect("verifier");
    let mut jtis = HashSet::new();
    for (auth, body) in stub.seen() {
        assert_eq!(auth, None);
        let form = form(&body);
        let get = |k: &str| {
            form.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert_eq!(get("client_id"), CLIENT_ID);
        assert_eq!(get("client_secret"), "");
        assert_eq!(
            get("client_assertion_type"),
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        );
        let claims = verifier
            .verify(&get("client_assertion"))
            .await
            .expect("a valid assertion");
        assert_eq!(claims.subject(), Some(CLIENT_ID));
        assert!(jtis.insert(claims.jwt_id().expect("jti").to_owned()));
    }
    assert_eq!(jtis.len(), 2, "a new assertion per request");
}

// ---------------------------------------------------------------------------------------
// Secrets stay secret.

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every test's logs, at TRACE level, in one buffer: a global subscriber installed before
/// any test logs anything (so that no callsite is ever cached as disabled).
fn logs() -> &'static Capture {
    static LOGS: OnceLock<Capture> = OnceLock::new();
    LOGS.get_or_init(|| {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(capture.clone())
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        capture
    })
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn the_secret_never_appears_in_debug_errors_or_logs() {
    logs();
    let dev = dev_issuer(None).await;
    let builder = for_dev(&dev);
    assert!(!format!("{builder:?}").contains(SECRET));
    let source = builder.build().expect("source");
    let token = source.token().await.expect("token");
    for shown in [format!("{source:?}"), format!("{token:?}")] {
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(!shown.contains(token.secret()), "{shown}");
    }

    // Failures: a wrong secret, and 5xx answers with retries.
    let wrong_secret = "wrong-secret-4c1d";
    let wrong = for_dev(&dev)
        .client_secret(wrong_secret)
        .build()
        .expect("source");
    let e = wrong.token().await.expect_err("refused");
    let stub = Stub::start([], Reply::Token(3600)).await;
    stub.then(Reply::Status(503, json!({}), None));
    let failing = stub
        .source()
        .auth_method(ClientAuthMethod::ClientSecretBasic)
        .retries(2, Duration::from_millis(10), Duration::from_millis(10))
        .build()
        .expect("source");
    let e2 = failing.token().await.expect_err("fails");
    for shown in [
        format!("{e}"),
        format!("{e:?}"),
        format!("{e2}"),
        format!("{e2:?}"),
    ] {
        assert!(
            !shown.contains(SECRET) && !shown.contains(wrong_secret),
            "{shown}"
        );
    }

    // The logs of every test so far (all of them log to the same place).
    let logs = String::from_utf8_lossy(&logs().0.lock().expect("lock")).into_owned();
    assert!(logs.contains("no access token could be obtained"), "{logs}");
    assert!(!logs.contains(SECRET), "{logs}");
    assert!(!logs.contains(wrong_secret), "{logs}");
    assert!(!logs.contains(token.secret()), "{logs}");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{SECRET}"));
    assert!(!logs.contains(&basic), "{logs}");
    dev.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// The middleware.

#[tokio::test]
async fn the_layer_sends_the_token_and_retries_once_after_invalid_token() {
    logs();
    let dev = dev_issuer(None).await;
    let api = Api::start(&dev).await;
    let source = for_dev(&dev).build().expect("source");
    let client = ServiceBuilder::new()
        .layer(AddBearerLayer::new(source.clone()))
        .service(http_service());

    let res = client
        .clone()
        .oneshot(api.get("/api/directions"))
        .await
        .expect("call");
    assert_eq!(res.status(), StatusCode::OK);
    let first_jti = text(&res);
    assert!(!first_jti.is_empty());
    assert_eq!(source.token_requests(), 1);

    // The API stops accepting that token: one refused call, a new token, one retry.
    api.revoke(&first_jti);
    let hits = api.hits();
    let res = client
        .clone()
        .oneshot(api.get("/api/directions"))
        .await
        .expect("call");
    assert_eq!(res.status(), StatusCode::OK);
    assert_ne!(text(&res), first_jti);
    assert_eq!(api.hits(), hits + 2);
    assert_eq!(source.token_requests(), 2);

    // The new token is cached.
    let res = client
        .clone()
        .oneshot(api.get("/api/directions"))
        .await
        .expect("call");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(source.token_requests(), 2);

    dev.shutdown().await;
}

#[tokio::test]
async fn the_retry_replays_the_body() {
    logs();
    let dev = dev_issuer(None).await;
    let api = Api::start(&dev).await;
    let source = for_dev(&dev).build().expect("source");
    let client = AddBearerLayer::new(source.clone()).layer(http_service());
    let res = client
        .clone()
        .oneshot(api.get("/api/directions"))
        .await
        .expect("call");
    api.revoke(&text(&res));
    let hits = api.hits();
    let post = http::Request::post(format!("{}/api/directions", api.url))
        .body(Bytes::from_static(b"{\"destination\":\"Lapland\"}"))
        .expect("request");
    let res = client.clone().oneshot(post).await.expect("call");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(text(&res), "{\"destination\":\"Lapland\"}");
    assert_eq!(api.hits(), hits + 2);
    assert_eq!(source.token_requests(), 2);
    dev.shutdown().await;
}

#[tokio::test]
async fn a_second_refusal_is_returned_as_it_is() {
    logs();
    let dev = dev_issuer(None).await;
    let api = Api::start(&dev).await;
    api.revoke("*");
    let source = for_dev(&dev).build().expect("source");
    let client = AddBearerLayer::new(source.clone()).layer(http_service());
    let res = client
        .oneshot(api.get("/api/directions"))
        .await
        .expect("call");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(
        res.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .expect("ascii")
            .contains("invalid_token")
    );
    assert_eq!(api.hits(), 2, "one retry only");
    assert_eq!(source.token_requests(), 2);
    dev.shutdown().await;
}

#[tokio::test]
async fn a_server_refusing_every_token_costs_one_renewal_per_interval() {
    logs();
    let dev = dev_issuer(None).await;
    let api = Api::start(&dev).await;
    api.revoke("*");
    let source = for_dev(&dev).build().expect("source");
    let client = AddBearerLayer::new(source.clone()).layer(http_service());
    for _ in 0..5 {
        let res = client
            .clone()
            .oneshot(api.get("/api/directions"))
            .await
            .expect("call");
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(source.token_requests(), 2, "one forced renewal");
    assert_eq!(api.hits(), 6, "one retry, then none");
    dev.shutdown().await;
}

#[tokio::test]
async fn without_retry_the_refusal_is_returned_and_the_token_dropped() {
    logs();
    let dev = dev_issuer(None).await;
    let api = Api::start(&dev).await;
    let source = for_dev(&dev).build().expect("source");
    let client = ServiceBuilder::new()
        .layer(AddBearerLayer::new(source.clone()).without_retry())
        .service(http_service());
    let res = client
        .clone()
        .oneshot(api.get("/api/directions"))
        .await
        .expect("call");
    api.revoke(&text(&res));
    let res = client
        .clone()
        .oneshot(api.get("/api/directions"))
        .await
        .expect("call");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(source.token_requests(), 1);
    // The next request gets a new token.
    let res = client
        .clone()
        .oneshot(api.get("/api/directions"))
        .await
        .expect("call");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(source.token_requests(), 2);
    assert_eq!(api.hits(), 3);
    dev.shutdown().await;
}

#[tokio::test]
async fn a_401_without_invalid_token_is_not_retried() {
    logs();
    let dev = dev_issuer(None).await;
    let api = Api::start(&dev).await;
    let source = for_dev(&dev).build().expect("source");
    let client = AddBearerLayer::new(source.clone()).layer(http_service());
    let res = client.oneshot(api.get("/plain401")).await.expect("call");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(api.hits(), 1);
    assert_eq!(source.token_requests(), 1);
    // The token was kept.
    source.token().await.expect("token");
    assert_eq!(source.token_requests(), 1);
    dev.shutdown().await;
}

#[tokio::test]
async fn a_token_failure_is_the_service_error() {
    logs();
    let dev = dev_issuer(None).await;
    let api = Api::start(&dev).await;
    let source = for_dev(&dev)
        .client_secret("wrong")
        .build()
        .expect("source");
    let client = AddBearerLayer::new(source).layer(http_service());
    let e = client
        .oneshot(api.get("/api/directions"))
        .await
        .expect_err("no token");
    let e = e.downcast_ref::<TokenError>().expect("a TokenError");
    assert_eq!(
        e.kind(),
        TokenErrorKind::OAuth(OAuthErrorCode::InvalidClient)
    );
    assert_eq!(api.hits(), 0, "nothing sent without a token");
    dev.shutdown().await;
}

#[tokio::test]
async fn the_layer_works_with_non_clonable_bodies_without_retry() {
    logs();
    // axum's Body is not Clone: the layer is usable with `without_retry` (or a closure).
    let stub = Stub::start([], Reply::Token(3600)).await;
    let source = stub.source().build().expect("source");
    let echo = tower::service_fn(|req: http::Request<axum::body::Body>| async move {
        let auth = req.headers()[header::AUTHORIZATION].clone();
        Ok::<_, Infallible>(http::Response::new(auth))
    });
    let client = AddBearerLayer::new(source.clone())
        .without_retry()
        .layer(echo);
    let res = client
        .oneshot(http::Request::new(axum::body::Body::empty()))
        .await
        .expect("call");
    assert_eq!(res.body(), "Bearer stub-token-1");
    assert!(res.body().is_sensitive());

    let replay_some = AddBearerLayer::new(source)
        .replay(|b: &reqwest::Body| b.as_bytes().map(|b| reqwest::Body::from(b.to_vec())));
    let echo = tower::service_fn(|_req: http::Request<reqwest::Body>| async move {
        Ok::<_, Infallible>(http::Response::new(()))
    });
    let res = replay_some
        .layer(echo)
        .oneshot(http::Request::new(reqwest::Body::from("x")))
        .await
        .expect("call");
    assert_eq!(res.status(), StatusCode::OK);
}

fn _assert_layer_bounds() {
    fn is_service<S: tower::Service<http::Request<Bytes>, Error = BoxError>>(_: &S) {}
    let source = ClientCredentials::builder()
        .token_endpoint("https://idp.example.com/oauth/token")
        .client_id("a")
        .client_secret("b")
        .build()
        .expect("source");
    is_service(&AddBearerLayer::new(source).layer(http_service()));
}

/// Compile-only: the middleware wraps a tonic `Channel` (bodies are not clonable, so without
/// retry) and the result is still a gRPC client transport.
#[allow(dead_code)]
fn a_tonic_channel_can_be_wrapped(channel: tonic::transport::Channel, source: ClientCredentials) {
    fn is_grpc_transport<S>(_: &S)
    where
        S: tonic::client::GrpcService<tonic::body::Body> + Clone + Send + 'static,
        S::Future: Send,
    {
    }
    let svc = ServiceBuilder::new()
        .layer(AddBearerLayer::new(source).without_retry())
        .service(channel);
    is_grpc_transport(&svc);
}

use tower::Layer as _;

// ---------------------------------------------------------------------------------------
// Interop: oidc-provider (panva, OpenID Certified), from interop/ (see tests/interop.rs).
// Skipped, with a message, when `node` or interop/node_modules is missing, unless
// BEARER_GUARD_INTEROP=require.

mod oidc_provider {
    use std::io::{BufRead, BufReader};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::sync::mpsc;
    use std::time::Duration;

    use bearer_guard::Verifier;
    use bearer_guard::client::{
        ClientAuthMethod, ClientCredentials, ClientCredentialsBuilder, OAuthErrorCode,
        TokenErrorKind,
    };

    /// The World Mappers API's identifier at the IdP (an RFC 8707 resource indicator).
    const RESOURCE: &str = "https://worldmappers.example/api";

    fn interop_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("interop")
    }

    fn available() -> bool {
        let node = Command::new("node")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let why = if !node {
            "`node` is not on PATH"
        } else if !interop_dir()
            .join("node_modules")
            .join("oidc-provider")
            .is_dir()
        {
            "interop/node_modules is missing (run `npm ci` in interop/)"
        } else {
            return true;
        };
        assert!(
            std::env::var("BEARER_GUARD_INTEROP").as_deref() != Ok("require"),
            "interop test cannot run: {why}"
        );
        eprintln!("SKIPPED: the client interop test needs oidc-provider: {why}");
        false
    }

    /// A running oidc-provider with a private key pool; killed (and the pool removed) on drop.
    struct Idp {
        child: Child,
        issuer: String,
        keys_dir: PathBuf,
    }

    impl Drop for Idp {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.keys_dir);
        }
    }

    fn start() -> Idp {
        let keys_dir = std::env::temp_dir().join(format!(
            "bearer-guard-client-interop-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&keys_dir).expect("temp dir");
        let mut child = Command::new("node")
            .arg("idp.mjs")
            .current_dir(interop_dir())
            .env("IDP_PORT", "0")
            .env("IDP_KEYS", keys_dir.join("keys.private.json"))
            .env("IDP_SHORT_TTL", "2")
            .env_remove("IDP_ISSUER")
            .env_remove("IDP_RESOURCES")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn node interop/idp.mjs");
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(json) = line.strip_prefix("READY ") {
                    let _ = tx.send(json.to_owned());
                }
            }
        });
        let mut idp = Idp {
            child,
            issuer: String::new(),
            keys_dir,
        };
        let ready = rx
            .recv_timeout(Duration::from_secs(90))
            .expect("the IdP did not start");
        let ready: serde_json::Value = serde_json::from_str(&ready).expect("READY json");
        idp.issuer = ready["issuer"].as_str().expect("issuer").to_owned();
        idp
    }

    fn client(idp: &Idp, id: &str) -> ClientCredentialsBuilder {
        ClientCredentials::builder()
            .issuer(&idp.issuer)
            .client_id(id)
            .client_secret(format!("{id}-secret"))
            .resource(RESOURCE)
    }

    #[tokio::test]
    async fn tokens_from_oidc_provider_are_cached_renewed_and_accepted() {
        super::logs();
        if !available() {
            return;
        }
        let idp = tokio::task::spawn_blocking(start).await.expect("start");
        let verifier = Verifier::builder()
            .issuer(&idp.issuer)
            .audience(RESOURCE)
            .build()
            .expect("verifier");

        // Discovery, client_secret_basic, a scope; cached.
        let basic = client(&idp, "es256-basic")
            .auth_method(ClientAuthMethod::ClientSecretBasic)
            .scope("directions")
            .build()
            .expect("source");
        let token = basic.token().await.expect("token");
        for _ in 0..5 {
            assert_eq!(basic.token().await.expect("token"), token);
        }
        assert_eq!(basic.token_requests(), 1);
        let claims = verifier.verify(token.secret()).await.expect("accepted");
        assert_eq!(claims.client_id(), Some("es256-basic"));
        assert!(claims.scopes().contains("directions"));
        assert!(!claims.scopes().contains("geocode:location"));

        // client_secret_post (the default).
        let post = client(&idp, "rs256-post").build().expect("source");
        let token = post.token().await.expect("token");
        verifier.verify(token.secret()).await.expect("accepted");

        // An EdDSA-signing client, both ways.
        for method in [
            ClientAuthMethod::ClientSecretPost,
            ClientAuthMethod::ClientSecretBasic,
        ] {
            let eddsa = client(&idp, "eddsa-basic")
                .auth_method(method)
                .build()
                .expect("source");
            let token = eddsa.token().await.expect("token");
            verifier.verify(token.secret()).await.expect("accepted");
        }

        let wrong_secret = client(&idp, "rs256-post")
            .client_secret("nope")
            .build()
            .expect("source");
        let e = wrong_secret.token().await.expect_err("refused");
        assert_eq!(
            e.kind(),
            TokenErrorKind::OAuth(OAuthErrorCode::InvalidClient),
            "{e}"
        );

        // A 2 s token is renewed after 1 s.
        let short = client(&idp, "short-lived")
            .auth_method(ClientAuthMethod::ClientSecretBasic)
            .build()
            .expect("source");
        let first = short.token().await.expect("token");
        assert_eq!(first.lifetime(), Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let second = short.token().await.expect("token");
        assert_ne!(first, second);
        assert_eq!(short.token_requests(), 2);
        verifier.verify(second.secret()).await.expect("accepted");
    }
}
