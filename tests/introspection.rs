//! Opaque tokens through RFC 7662 introspection (issue 16): a local introspection endpoint on
//! 127.0.0.1:0 whose answers each test sets, and the layer in front of an axum router.
#![cfg(all(
    feature = "introspection",
    feature = "axum",
    feature = "dev-issuer",
    any(feature = "aws-lc-rs", feature = "rust-crypto")
))]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bearer_guard::client::{ClientAuthMethod, DpopKey};
use bearer_guard::dev_issuer::{SigningKey, jwk_set};
use bearer_guard::dpop::{Dpop, DpopMode};
use bearer_guard::introspection::{Introspector, IntrospectorBuilder, TokenRouting};
use bearer_guard::{
    Algorithm, AuthErrorKind, Claims, InvalidTokenReason, JwtAuthLayer, Verifier, require_scopes,
};
use http::Request;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tower::ServiceExt;

const ISS: &str = "https://as.test/";
const AUD: &str = "urn:worldmappers";
const ORIGIN: &str = "https://api.example";
const TOKEN: &str = "opaque-token-1";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// What the endpoint answers.
#[derive(Clone)]
struct Answer {
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
    delay: Duration,
}

fn active(extra: Value) -> Answer {
    json_answer(&active_members(extra))
}

/// The members of an active answer, `extra` merged in (a `null` removes a member).
fn active_members(extra: Value) -> Value {
    let mut body = json!({
        "active": true,
        "exp": now() + 600,
        "iat": now(),
        "aud": AUD,
        "scope": "directions geocode:location",
        "client_id": "gift-deliveries",
        "sub": "gift-deliveries",
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            if v.is_null() {
                b.remove(k);
            } else {
                b.insert(k.clone(), v.clone());
            }
        }
    }
    body
}

fn json_answer(body: &Value) -> Answer {
    Answer {
        status: StatusCode::OK,
        content_type: "application/json",
        body: body.to_string().into_bytes(),
        delay: Duration::ZERO,
    }
}

#[derive(Default)]
struct Seen {
    forms: Vec<String>,
    authorization: Vec<Option<String>>,
    accept: Vec<Option<String>>,
}

struct Endpoint {
    addr: SocketAddr,
    calls: Arc<AtomicUsize>,
    answer: Arc<Mutex<Answer>>,
    seen: Arc<Mutex<Seen>>,
    task: JoinHandle<()>,
}

#[derive(Clone)]
struct EndpointState {
    calls: Arc<AtomicUsize>,
    answer: Arc<Mutex<Answer>>,
    seen: Arc<Mutex<Seen>>,
    issuer: Arc<Mutex<String>>,
}

async fn introspect(State(s): State<EndpointState>, headers: HeaderMap, body: String) -> Response {
    s.calls.fetch_add(1, Ordering::SeqCst);
    {
        let mut seen = s.seen.lock().expect("lock");
        seen.forms.push(body);
        seen.authorization.push(
            headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        );
        seen.accept.push(
            headers
                .get("accept")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        );
    }
    let answer = s.answer.lock().expect("lock").clone();
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    (
        answer.status,
        [("content-type", answer.content_type)],
        answer.body,
    )
        .into_response()
}

async fn metadata(State(s): State<EndpointState>) -> Response {
    let issuer = s.issuer.lock().expect("lock").clone();
    axum::Json(json!({
        "issuer": issuer,
        "introspection_endpoint": format!("{issuer}introspect"),
        "introspection_endpoint_auth_methods_supported": ["client_secret_post"],
    }))
    .into_response()
}

impl Endpoint {
    async fn start(answer: Answer) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = EndpointState {
            calls: Arc::default(),
            answer: Arc::new(Mutex::new(answer)),
            seen: Arc::default(),
            issuer: Arc::new(Mutex::new(format!("http://{addr}/"))),
        };
        let app = Router::new()
            .route("/introspect", post(introspect))
            .route("/.well-known/openid-configuration", get(metadata))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            calls: state.calls,
            answer: state.answer,
            seen: state.seen,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/introspect", self.addr)
    }

    fn base(&self) -> String {
        format!("http://{}/", self.addr)
    }

    fn set(&self, answer: Answer) {
        *self.answer.lock().expect("lock") = answer;
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn builder(&self) -> IntrospectorBuilder {
        Introspector::builder()
            .issuer(ISS)
            .introspection_endpoint(self.url())
            .client_id("world-mappers")
            .client_secret("wm-secret")
            .audience(AUD)
            .timeout(Duration::from_millis(500))
    }

    fn stop(self) {
        self.task.abort();
    }
}

fn issuer_key() -> SigningKey {
    SigningKey::from_pool(Algorithm::RS256, 0, "k1").expect("pool key")
}

fn verifier() -> Verifier {
    Verifier::builder()
        .issuer(ISS)
        .audience(AUD)
        .jwks_json(jwk_set([&issuer_key()]).to_string())
        .build()
        .expect("verifier")
}

fn jwt() -> String {
    issuer_key()
        .sign(&json!({
            "iss": ISS, "aud": AUD, "exp": now() + 600, "iat": now(),
            "sub": "jwt-client", "scope": "directions",
        }))
        .expect("signed")
}

async fn whoami(claims: Claims) -> String {
    format!(
        "{} {} {}",
        claims.client_id().unwrap_or("-"),
        claims.scopes(),
        claims.is_introspected()
    )
}

fn app(layer: JwtAuthLayer) -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .route(
            "/admin",
            get(|| async { "admin" }).route_layer(require_scopes(["admin"])),
        )
        .layer(layer)
}

fn layer_for(introspector: Introspector) -> JwtAuthLayer {
    JwtAuthLayer::new(verifier()).introspection(introspector, TokenRouting::ByShape)
}

async fn send(app: &Router, path: &str, token: &str) -> (StatusCode, HeaderMap, String) {
    let req = Request::builder()
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .expect("body");
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn www(headers: &HeaderMap) -> String {
    headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn an_active_opaque_token_is_accepted_with_its_claims() {
    let ep = Endpoint::start(active(json!({}))).await;
    let app = app(layer_for(ep.builder().build().expect("introspector")));
    let (status, _, body) = send(&app, "/whoami", TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "gift-deliveries directions geocode:location true");
    let seen = ep.seen.lock().expect("lock");
    assert_eq!(
        seen.forms[0],
        format!("token={TOKEN}&token_type_hint=access_token")
    );
    let auth = seen.authorization[0].as_deref().expect("basic");
    assert!(auth.starts_with("Basic "), "client_secret_basic by default");
    drop(seen);
    ep.stop();
}

#[tokio::test]
async fn client_secret_post_sends_the_credentials_in_the_form() {
    let ep = Endpoint::start(active(json!({}))).await;
    let i = ep
        .builder()
        .auth_method(ClientAuthMethod::ClientSecretPost)
        .build()
        .expect("introspector");
    i.introspect(TOKEN).await.expect("active");
    let seen = ep.seen.lock().expect("lock");
    assert!(seen.authorization[0].is_none());
    assert!(
        seen.forms[0].contains("client_id=world-mappers&client_secret=wm-secret"),
        "{}",
        seen.forms[0]
    );
    drop(seen);
    ep.stop();
}

#[tokio::test]
async fn the_endpoint_is_discovered_from_the_issuer_metadata() {
    let ep = Endpoint::start(active(json!({"iss": null}))).await;
    let i = Introspector::builder()
        .issuer(ep.base())
        .client_id("world-mappers")
        .client_secret("wm-secret")
        .audience(AUD)
        .build()
        .expect("introspector");
    let claims = i.introspect(TOKEN).await.expect("active");
    assert_eq!(claims.issuer(), ep.base());
    // The metadata lists only client_secret_post.
    let seen = ep.seen.lock().expect("lock");
    assert!(seen.forms[0].contains("client_secret=wm-secret"));
    drop(seen);
    ep.stop();
}

#[tokio::test]
async fn an_inactive_token_is_refused_with_401_invalid_token() {
    let ep = Endpoint::start(json_answer(&json!({"active": false}))).await;
    let app = app(layer_for(ep.builder().build().expect("introspector")));
    let (status, headers, _) = send(&app, "/whoami", TOKEN).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(www(&headers).contains("error=\"invalid_token\""));
    ep.stop();
}

#[tokio::test]
async fn a_token_expired_by_exp_is_refused_though_active_is_true() {
    let ep = Endpoint::start(active(json!({"exp": now() - 120}))).await;
    let i = ep.builder().build().expect("introspector");
    let e = i.introspect(TOKEN).await.expect_err("expired");
    assert_eq!(
        e.kind(),
        AuthErrorKind::InvalidToken(InvalidTokenReason::Expired)
    );
    let app = app(layer_for(i));
    assert_eq!(
        send(&app, "/whoami", TOKEN).await.0,
        StatusCode::UNAUTHORIZED
    );
    ep.stop();
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let ep = Endpoint::start(active(json!({"aud": ["urn:other-api"]}))).await;
    let i = ep.builder().build().expect("introspector");
    let e = i.introspect(TOKEN).await.expect_err("wrong aud");
    assert_eq!(
        e.kind(),
        AuthErrorKind::InvalidToken(InvalidTokenReason::WrongAudience)
    );
    ep.stop();
}

#[tokio::test]
async fn a_token_from_another_issuer_is_refused() {
    let ep = Endpoint::start(active(json!({"iss": "https://other.test/"}))).await;
    let i = ep.builder().build().expect("introspector");
    let e = i.introspect(TOKEN).await.expect_err("wrong iss");
    assert_eq!(
        e.kind(),
        AuthErrorKind::InvalidToken(InvalidTokenReason::WrongIssuer)
    );
    ep.stop();
}

#[tokio::test]
async fn a_missing_scope_is_403_insufficient_scope() {
    let ep = Endpoint::start(active(json!({}))).await;
    let app = app(layer_for(ep.builder().build().expect("introspector")));
    let (status, headers, _) = send(&app, "/admin", TOKEN).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(www(&headers).contains("insufficient_scope"));
    ep.stop();
}

async fn assert_unavailable(ep: &Endpoint) {
    let app = app(layer_for(ep.builder().build().expect("introspector")));
    let (status, headers, body) = send(&app, "/whoami", TOKEN).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(headers.contains_key("retry-after"), "{headers:?}");
    assert!(!headers.contains_key("www-authenticate"));
}

#[tokio::test]
async fn a_malformed_response_is_503_with_retry_after() {
    let ep = Endpoint::start(Answer {
        status: StatusCode::OK,
        content_type: "text/html",
        body: b"<html>maintenance</html>".to_vec(),
        delay: Duration::ZERO,
    })
    .await;
    assert_unavailable(&ep).await;
    ep.set(json_answer(&json!({"active": "yes"})));
    assert_unavailable(&ep).await;
    ep.stop();
}

#[tokio::test]
async fn an_oversized_response_is_503() {
    let mut big = active(json!({"padding": "x".repeat(100 * 1024)}));
    big.status = StatusCode::OK;
    let ep = Endpoint::start(big).await;
    assert_unavailable(&ep).await;
    ep.stop();
}

#[tokio::test]
async fn a_slow_endpoint_is_503_within_the_timeout() {
    let mut slow = active(json!({}));
    slow.delay = Duration::from_secs(5);
    let ep = Endpoint::start(slow).await;
    let started = std::time::Instant::now();
    assert_unavailable(&ep).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    ep.stop();
}

#[tokio::test]
async fn a_5xx_or_an_unreachable_endpoint_is_503_never_401() {
    let ep = Endpoint::start(Answer {
        status: StatusCode::BAD_GATEWAY,
        content_type: "text/plain",
        body: b"bad gateway".to_vec(),
        delay: Duration::ZERO,
    })
    .await;
    assert_unavailable(&ep).await;
    let builder = ep.builder();
    ep.stop();
    // Nothing listens any more.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let app = app(layer_for(builder.build().expect("introspector")));
    assert_eq!(
        send(&app, "/whoami", TOKEN).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn a_401_from_the_endpoint_is_503_not_401() {
    let ep = Endpoint::start(Answer {
        status: StatusCode::UNAUTHORIZED,
        content_type: "application/json",
        body: br#"{"error":"invalid_client"}"#.to_vec(),
        delay: Duration::ZERO,
    })
    .await;
    let i = ep.builder().build().expect("introspector");
    let e = i.introspect(TOKEN).await.expect_err("unavailable");
    assert_eq!(e.kind(), AuthErrorKind::IntrospectionUnavailable);
    let cause = std::error::Error::source(&e).expect("cause").to_string();
    assert!(cause.contains("client credentials"), "{cause}");
    assert!(
        !cause.contains("wm-secret") && !cause.contains(TOKEN),
        "{cause}"
    );
    assert_unavailable(&ep).await;
    ep.stop();
}

#[tokio::test]
async fn failures_are_not_cached() {
    let ep = Endpoint::start(Answer {
        status: StatusCode::SERVICE_UNAVAILABLE,
        content_type: "text/plain",
        body: Vec::new(),
        delay: Duration::ZERO,
    })
    .await;
    let i = ep.builder().build().expect("introspector");
    assert!(i.introspect(TOKEN).await.is_err());
    ep.set(active(json!({})));
    assert!(i.introspect(TOKEN).await.is_ok());
    assert_eq!(ep.calls(), 2);
    ep.stop();
}

#[tokio::test]
async fn an_active_answer_is_cached_until_the_cache_time_then_revocation_is_seen() {
    let ep = Endpoint::start(active(json!({}))).await;
    let i = ep
        .builder()
        .max_cache_ttl(Duration::from_millis(300))
        .build()
        .expect("introspector");
    let app = app(layer_for(i.clone()));
    assert_eq!(send(&app, "/whoami", TOKEN).await.0, StatusCode::OK);
    // Revoked at the authorization server: still accepted from the cache...
    ep.set(json_answer(&json!({"active": false})));
    assert_eq!(send(&app, "/whoami", TOKEN).await.0, StatusCode::OK);
    assert_eq!(ep.calls(), 1);
    // ...until the entry ends.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        send(&app, "/whoami", TOKEN).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(ep.calls(), 2);
    ep.stop();
}

#[tokio::test]
async fn an_active_answer_is_cached_no_longer_than_the_token_exp() {
    // Two seconds: `now()` is whole seconds, so `exp` is 1 to 2 s away (with one second
    // it could pass before the first call on a loaded machine).
    let ep = Endpoint::start(active(json!({"exp": now() + 2}))).await;
    let i = ep
        .builder()
        .leeway(Duration::ZERO)
        .build()
        .expect("introspector");
    i.introspect(TOKEN).await.expect("active");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let e = i.introspect(TOKEN).await.expect_err("expired");
    assert_eq!(
        e.kind(),
        AuthErrorKind::InvalidToken(InvalidTokenReason::Expired)
    );
    assert_eq!(ep.calls(), 2, "the entry ended at exp: asked again");
    ep.stop();
}

#[tokio::test]
async fn an_inactive_answer_is_remembered_briefly() {
    let ep = Endpoint::start(json_answer(&json!({"active": false}))).await;
    let i = ep
        .builder()
        .inactive_cache_ttl(Duration::from_millis(300))
        .build()
        .expect("introspector");
    for _ in 0..5 {
        assert!(i.introspect(TOKEN).await.is_err());
    }
    assert_eq!(ep.calls(), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(i.introspect(TOKEN).await.is_err());
    assert_eq!(ep.calls(), 2);
    ep.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_requests_with_one_new_token_make_one_call() {
    let mut slow = active(json!({}));
    slow.delay = Duration::from_millis(300);
    let ep = Endpoint::start(slow).await;
    // A generous timeout: the machine may be loaded, and the one call must not time out.
    let introspector = ep
        .builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("introspector");
    let app = app(layer_for(introspector));
    let tasks: Vec<_> = (0..10_000)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { send(&app, "/whoami", TOKEN).await.0 })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("task"), StatusCode::OK);
    }
    assert_eq!(ep.calls(), 1);
    ep.stop();
}

#[tokio::test]
async fn jwts_still_go_to_the_verifier_and_opaque_tokens_to_introspection() {
    let ep = Endpoint::start(active(json!({}))).await;
    let app = app(layer_for(ep.builder().build().expect("introspector")));
    let (status, _, body) = send(&app, "/whoami", &jwt()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.ends_with("false"), "verified locally: {body}");
    assert_eq!(ep.calls(), 0);
    assert_eq!(send(&app, "/whoami", TOKEN).await.0, StatusCode::OK);
    assert_eq!(ep.calls(), 1);
    ep.stop();
}

#[tokio::test]
async fn introspect_only_sends_jwts_to_introspection_too() {
    let ep = Endpoint::start(active(json!({}))).await;
    let layer = JwtAuthLayer::new(verifier()).introspection(
        ep.builder().build().expect("introspector"),
        TokenRouting::IntrospectOnly,
    );
    let app = app(layer);
    let (status, _, body) = send(&app, "/whoami", &jwt()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.ends_with("true"), "{body}");
    assert_eq!(ep.calls(), 1);
    ep.stop();
}

#[tokio::test]
async fn a_dpop_bound_opaque_token_needs_a_proof() {
    let key = DpopKey::from_pem(
        Algorithm::ES256,
        include_str!("../src/dev_issuer/keys/ec256-1.pem"),
    )
    .expect("dpop key");
    let ep = Endpoint::start(active(json!({"cnf": {"jkt": key.thumbprint()}}))).await;
    let dpop = Dpop::builder()
        .public_url(ORIGIN)
        .mode(DpopMode::Allowed)
        .build()
        .expect("dpop");
    let layer = layer_for(ep.builder().build().expect("introspector")).dpop(dpop);
    let app = app(layer);
    // As a bearer token: refused (no downgrade).
    let (status, headers, _) = send(&app, "/whoami", TOKEN).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(www(&headers).contains("invalid_token"), "{}", www(&headers));
    // With the DPoP scheme and a proof of the bound key: accepted.
    let proof = key
        .proof("GET", &format!("{ORIGIN}/whoami"), Some(TOKEN), None)
        .expect("proof");
    let req = Request::builder()
        .uri("/whoami")
        .header("authorization", format!("DPoP {TOKEN}"))
        .header("dpop", proof)
        .body(Body::empty())
        .expect("request");
    let res = app.clone().oneshot(req).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::OK);
    // With the DPoP scheme but a proof of another key: refused.
    let other = DpopKey::from_pem(
        Algorithm::ES256,
        include_str!("../src/dev_issuer/keys/ec256-2.pem"),
    )
    .expect("other key");
    let proof = other
        .proof("GET", &format!("{ORIGIN}/whoami"), Some(TOKEN), None)
        .expect("proof");
    let req = Request::builder()
        .uri("/whoami")
        .header("authorization", format!("DPoP {TOKEN}"))
        .header("dpop", proof)
        .body(Body::empty())
        .expect("request");
    let res = app.clone().oneshot(req).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    ep.stop();
}

#[cfg(feature = "tonic")]
#[tokio::test]
async fn grpc_requests_get_unavailable_when_the_endpoint_cannot_answer() {
    let ep = Endpoint::start(Answer {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        content_type: "text/plain",
        body: Vec::new(),
        delay: Duration::ZERO,
    })
    .await;
    let layer = layer_for(ep.builder().build().expect("introspector"))
        .rejection(bearer_guard::GrpcRejection::new());
    let app = Router::new()
        .route("/pkg.Svc/Method", post(|| async { "ok" }))
        .layer(layer);
    let req = Request::builder()
        .method("POST")
        .uri("/pkg.Svc/Method")
        .header("content-type", "application/grpc")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .expect("request");
    let res = app.oneshot(req).await.expect("infallible");
    assert_eq!(res.headers()["grpc-status"], "14", "UNAVAILABLE");
    ep.set(json_answer(&json!({"active": false})));
    let req = Request::builder()
        .method("POST")
        .uri("/pkg.Svc/Method")
        .header("content-type", "application/grpc")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .expect("request");
    let layer = layer_for(ep.builder().build().expect("introspector"))
        .rejection(bearer_guard::GrpcRejection::new());
    let app = Router::new()
        .route("/pkg.Svc/Method", post(|| async { "ok" }))
        .layer(layer);
    let res = app.oneshot(req).await.expect("infallible");
    assert_eq!(res.headers()["grpc-status"], "16", "UNAUTHENTICATED");
    ep.stop();
}

#[tokio::test]
async fn the_cache_never_holds_the_token() {
    let ep = Endpoint::start(active(json!({}))).await;
    let i = ep.builder().build().expect("introspector");
    i.introspect(TOKEN).await.expect("active");
    let shown = format!("{i:?}");
    assert!(!shown.contains(TOKEN), "{shown}");
    let key = bearer_guard::introspection::CacheKey::of(TOKEN);
    assert!(!key.to_hex().contains(TOKEN));
    ep.stop();
}

#[tokio::test]
async fn the_development_issuer_issues_opaque_tokens_and_introspects_them() {
    use bearer_guard::dev_issuer::DevIssuer;
    let dev = DevIssuer::builder()
        .audience(AUD)
        .client("gift-deliveries", "gd-secret", ["directions"])
        .client("world-mappers", "wm-secret", Vec::<String>::new())
        .opaque_tokens()
        .start()
        .await
        .expect("dev issuer");
    let answer: Value = reqwest::Client::new()
        .post(dev.token_endpoint())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "gift-deliveries"),
            ("client_secret", "gd-secret"),
            ("audience", AUD),
        ])
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let token = answer["access_token"].as_str().expect("token").to_owned();
    assert!(!bearer_guard::introspection::is_jwt_shaped(&token));
    let i = Introspector::builder()
        .issuer(dev.issuer())
        .client_id("world-mappers")
        .client_secret("wm-secret")
        .audience(AUD)
        .max_cache_ttl(Duration::ZERO)
        .inactive_cache_ttl(Duration::ZERO)
        .build()
        .expect("introspector");
    let app = app(layer_for(i.clone()));
    let (status, _, body) = send(&app, "/whoami", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "gift-deliveries directions true");
    assert!(dev.revoke(&token));
    assert_eq!(
        send(&app, "/whoami", &token).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(dev.introspection_requests(), 2);
    // Wrong introspection credentials: 503, not 401.
    let wrong = Introspector::builder()
        .issuer(dev.issuer())
        .client_id("world-mappers")
        .client_secret("not-the-secret")
        .audience(AUD)
        .build()
        .expect("introspector");
    let opaque = dev.mint_opaque(json!({})).expect("minted");
    let e = wrong.introspect(&opaque).await.expect_err("refused");
    assert_eq!(e.kind(), AuthErrorKind::IntrospectionUnavailable);
    dev.shutdown().await;
}

#[test]
fn mutual_tls_client_authentication_is_refused_for_introspection() {
    for method in [
        ClientAuthMethod::TlsClientAuth,
        ClientAuthMethod::SelfSignedTlsClientAuth,
    ] {
        let e = Introspector::builder()
            .issuer("https://issuer.example/")
            .client_id("world-mappers")
            .auth_method(method)
            .audience(AUD)
            .build()
            .expect_err("refused");
        let text = e.to_string();
        assert!(text.contains("auth_method"), "{text}");
        assert!(text.contains("introspection"), "{text}");
    }
}

#[cfg(feature = "metrics")]
#[test]
fn introspection_calls_cache_hits_latency_and_outcomes_are_recorded() {
    use bearer_guard::metrics::{
        INTROSPECTION_CACHE_HITS, INTROSPECTION_CACHE_MISSES, INTROSPECTION_CALLS_TOTAL,
        INTROSPECTION_DURATION,
    };
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            let ep = Endpoint::start(active(json!({}))).await;
            let i = ep.builder().build().expect("introspector");
            i.introspect(TOKEN).await.expect("active");
            i.introspect(TOKEN).await.expect("cached");
            ep.set(json_answer(&json!({"active": false})));
            assert!(i.introspect("another-token").await.is_err());
            ep.stop();
        });
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let counter = |name: &str, outcome: Option<&str>| {
        snapshot
            .iter()
            .filter(|(k, ..)| {
                k.key().name() == name
                    && outcome.is_none_or(|o| {
                        k.key()
                            .labels()
                            .any(|l| l.key() == "outcome" && l.value() == o)
                    })
            })
            .map(|(.., v)| match v {
                DebugValue::Counter(n) => *n,
                DebugValue::Histogram(h) => h.len() as u64,
                DebugValue::Gauge(_) => 0,
            })
            .sum::<u64>()
    };
    assert_eq!(counter(INTROSPECTION_CALLS_TOTAL, Some("active")), 1);
    assert_eq!(counter(INTROSPECTION_CALLS_TOTAL, Some("refused")), 1);
    assert_eq!(counter(INTROSPECTION_DURATION, None), 2);
    assert_eq!(counter(INTROSPECTION_CACHE_HITS, None), 1);
    assert_eq!(counter(INTROSPECTION_CACHE_MISSES, None), 2);
}

// ---- RFC 9701: signed (JWT) introspection responses ----------------------------------------

const JWT_MEDIA_TYPE: &str = "application/token-introspection+jwt";
/// The introspecting client: the `aud` of the signed responses.
const INTROSPECTOR: &str = "world-mappers";

/// The RFC 9701 header for `key`.
fn jwt_header(key: &SigningKey) -> Value {
    json!({"alg": key.alg().as_str(), "kid": key.kid(), "typ": "token-introspection+jwt"})
}

/// The claims of a signed response carrying `inner` as `token_introspection`.
fn response_claims(inner: Value) -> Value {
    json!({"iss": ISS, "aud": INTROSPECTOR, "iat": now(), "token_introspection": inner})
}

/// An answer with `header` and `claims` signed by `key`, as a JWT response.
fn signed_by(key: &SigningKey, header: &Value, claims: &Value) -> Answer {
    let jwt = key
        .sign_raw(header.to_string().as_bytes(), claims.to_string().as_bytes())
        .expect("signed");
    Answer {
        status: StatusCode::OK,
        content_type: JWT_MEDIA_TYPE,
        body: jwt.into_bytes(),
        delay: Duration::ZERO,
    }
}

/// A well-formed signed response carrying `inner`.
fn signed(inner: Value) -> Answer {
    let key = issuer_key();
    signed_by(&key, &jwt_header(&key), &response_claims(inner))
}

fn jwt_introspector(ep: &Endpoint) -> Introspector {
    ep.builder()
        .jwt_responses(&verifier())
        .build()
        .expect("introspector")
}

/// The endpoint's answer is refused: 503 with `Retry-After` through the layer, and the
/// cause (the error's source) contains `cause`.
async fn assert_signed_refused(ep: &Endpoint, cause: &str) {
    let e = jwt_introspector(ep)
        .introspect(TOKEN)
        .await
        .expect_err("refused");
    assert_eq!(e.kind(), AuthErrorKind::IntrospectionUnavailable);
    let text = std::error::Error::source(&e).expect("cause").to_string();
    assert!(text.contains(cause), "{text}");
    let app = app(layer_for(jwt_introspector(ep)));
    let (status, headers, body) = send(&app, "/whoami", TOKEN).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(headers.contains_key("retry-after"), "{headers:?}");
    assert!(!headers.contains_key("www-authenticate"));
}

#[tokio::test]
async fn a_signed_response_is_asked_for_and_accepted() {
    let ep = Endpoint::start(signed(active_members(json!({})))).await;
    let app = app(layer_for(jwt_introspector(&ep)));
    let (status, _, body) = send(&app, "/whoami", TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "gift-deliveries directions geocode:location true");
    let accept = ep.seen.lock().expect("lock").accept.clone();
    assert_eq!(accept, vec![Some(JWT_MEDIA_TYPE.to_owned())]);
    // Cached as a JSON answer is.
    assert_eq!(send(&app, "/whoami", TOKEN).await.0, StatusCode::OK);
    assert_eq!(ep.calls(), 1);
    ep.stop();
}

#[tokio::test]
async fn without_the_option_json_is_asked_for() {
    let ep = Endpoint::start(active(json!({}))).await;
    ep.builder()
        .build()
        .expect("introspector")
        .introspect(TOKEN)
        .await
        .expect("active");
    let accept = ep.seen.lock().expect("lock").accept.clone();
    assert_eq!(accept, vec![Some("application/json".to_owned())]);
    ep.stop();
}

#[tokio::test]
async fn a_signed_response_with_a_bad_signature_is_refused() {
    // Another key under the published key's kid.
    let impostor = SigningKey::from_pool(Algorithm::RS256, 1, "k1").expect("pool key");
    let answer = signed_by(
        &impostor,
        &jwt_header(&impostor),
        &response_claims(active_members(json!({}))),
    );
    let ep = Endpoint::start(answer).await;
    assert_signed_refused(&ep, "signature does not verify").await;
    // A signature cut short is no better.
    let mut cut = signed(active_members(json!({})));
    cut.body.truncate(cut.body.len() - 8);
    ep.set(cut);
    assert_signed_refused(&ep, "signed response was refused").await;
    ep.stop();
}

#[tokio::test]
async fn a_signed_response_without_the_introspection_typ_is_refused() {
    let key = issuer_key();
    let claims = response_claims(active_members(json!({})));
    let ep = Endpoint::start(signed_by(
        &key,
        &json!({"alg": "RS256", "kid": "k1"}),
        &claims,
    ))
    .await;
    assert_signed_refused(&ep, "typ").await;
    for typ in ["JWT", "at+jwt", "application/jwt"] {
        ep.set(signed_by(
            &key,
            &json!({"alg": "RS256", "kid": "k1", "typ": typ}),
            &claims,
        ));
        assert_signed_refused(&ep, "typ").await;
    }
    // The media-type form of the right typ is the same typ (RFC 7515 §4.1.9).
    ep.set(signed_by(
        &key,
        &json!({"alg": "RS256", "kid": "k1", "typ": "application/token-introspection+jwt"}),
        &claims,
    ));
    jwt_introspector(&ep)
        .introspect(TOKEN)
        .await
        .expect("accepted");
    ep.stop();
}

#[tokio::test]
async fn a_signed_response_from_another_issuer_is_refused() {
    let key = issuer_key();
    let mut claims = response_claims(active_members(json!({})));
    claims["iss"] = json!("https://evil.test/");
    let ep = Endpoint::start(signed_by(&key, &jwt_header(&key), &claims)).await;
    assert_signed_refused(&ep, "iss").await;
    claims.as_object_mut().expect("object").remove("iss");
    ep.set(signed_by(&key, &jwt_header(&key), &claims));
    assert_signed_refused(&ep, "iss").await;
    ep.stop();
}

#[tokio::test]
async fn a_signed_response_for_another_client_is_refused() {
    let key = issuer_key();
    let mut claims = response_claims(active_members(json!({})));
    // The token's audience is not the response's: the response is for the introspecting
    // client.
    claims["aud"] = json!(AUD);
    let ep = Endpoint::start(signed_by(&key, &jwt_header(&key), &claims)).await;
    assert_signed_refused(&ep, "aud").await;
    claims["aud"] = json!(["another-resource-server"]);
    ep.set(signed_by(&key, &jwt_header(&key), &claims));
    assert_signed_refused(&ep, "aud").await;
    // In a list with others, ours is enough.
    claims["aud"] = json!(["another-resource-server", INTROSPECTOR]);
    ep.set(signed_by(&key, &jwt_header(&key), &claims));
    jwt_introspector(&ep)
        .introspect(TOKEN)
        .await
        .expect("accepted");
    ep.stop();
}

#[tokio::test]
async fn a_signed_response_without_iat_is_refused() {
    let key = issuer_key();
    let mut claims = response_claims(active_members(json!({})));
    claims.as_object_mut().expect("object").remove("iat");
    let ep = Endpoint::start(signed_by(&key, &jwt_header(&key), &claims)).await;
    assert_signed_refused(&ep, "iat").await;
    ep.stop();
}

#[tokio::test]
async fn a_plain_json_answer_is_refused_when_a_signed_one_was_asked_for() {
    let ep = Endpoint::start(active(json!({}))).await;
    assert_signed_refused(&ep, "application/json").await;
    // A signed body labelled as JSON is refused too: the media type is part of the answer.
    let mut mislabelled = signed(active_members(json!({})));
    mislabelled.content_type = "application/json";
    ep.set(mislabelled);
    assert_signed_refused(&ep, "Content-Type").await;
    ep.stop();
}

#[tokio::test]
async fn a_signed_response_with_an_algorithm_not_allowed_for_its_key_is_refused() {
    // The verifier allows RS256 and PS256; the published key is bound to RS256.
    let verifier = Verifier::builder()
        .issuer(ISS)
        .audience(AUD)
        .algorithms([Algorithm::RS256, Algorithm::PS256])
        .jwks_json(jwk_set([&issuer_key()]).to_string())
        .build()
        .expect("verifier");
    let same_key_as_ps256 = SigningKey::from_pool(Algorithm::PS256, 0, "k1").expect("pool key");
    let claims = response_claims(active_members(json!({})));
    let ep = Endpoint::start(signed_by(
        &same_key_as_ps256,
        &jwt_header(&same_key_as_ps256),
        &claims,
    ))
    .await;
    let i = ep
        .builder()
        .jwt_responses(&verifier)
        .build()
        .expect("introspector");
    let e = i.introspect(TOKEN).await.expect_err("refused");
    assert_eq!(e.kind(), AuthErrorKind::IntrospectionUnavailable);
    let cause = std::error::Error::source(&e).expect("cause").to_string();
    assert!(cause.contains("algorithm of the key"), "{cause}");
    // An algorithm the verifier does not allow at all, "none" included.
    let hs = SigningKey::hmac(Algorithm::HS256, b"a-shared-secret-of-32-bytes-long!", "k1")
        .expect("hmac key");
    ep.set(signed_by(&hs, &jwt_header(&hs), &claims));
    assert_signed_refused(&ep, "not an algorithm the verifier allows").await;
    let header = json!({"alg": "none", "typ": "token-introspection+jwt"});
    let unsigned = format!(
        "{}.{}.",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    ep.set(Answer {
        status: StatusCode::OK,
        content_type: JWT_MEDIA_TYPE,
        body: unsigned.into_bytes(),
        delay: Duration::ZERO,
    });
    assert_signed_refused(&ep, "signed response was refused").await;
    ep.stop();
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn an_encrypted_response_is_refused_as_not_supported() {
    // Five parts: a JWE compact serialization (content irrelevant, it is never decrypted).
    let jwe = format!(
        "{}.{}.{}.{}.{}",
        b64(br#"{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"JWT"}"#),
        b64(b"key"),
        b64(b"iv"),
        b64(b"ciphertext"),
        b64(b"tag")
    );
    let ep = Endpoint::start(Answer {
        status: StatusCode::OK,
        content_type: JWT_MEDIA_TYPE,
        body: jwe.into_bytes(),
        delay: Duration::ZERO,
    })
    .await;
    assert_signed_refused(&ep, "encrypted").await;
    ep.stop();
}

#[tokio::test]
async fn an_inactive_token_inside_a_signed_response_is_401() {
    let ep = Endpoint::start(signed(json!({"active": false}))).await;
    let app = app(layer_for(jwt_introspector(&ep)));
    let (status, headers, _) = send(&app, "/whoami", TOKEN).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(www(&headers).contains("invalid_token"), "{}", www(&headers));
    ep.stop();
}

#[tokio::test]
async fn the_members_inside_a_signed_response_are_validated_as_json_ones_are() {
    let ep = Endpoint::start(signed(active_members(json!({"aud": "urn:other"})))).await;
    let e = jwt_introspector(&ep)
        .introspect(TOKEN)
        .await
        .expect_err("refused");
    assert_eq!(
        e.kind(),
        AuthErrorKind::InvalidToken(InvalidTokenReason::WrongAudience)
    );
    ep.set(signed(active_members(json!({"exp": now() - 120}))));
    let e = jwt_introspector(&ep)
        .introspect(TOKEN)
        .await
        .expect_err("refused");
    assert_eq!(
        e.kind(),
        AuthErrorKind::InvalidToken(InvalidTokenReason::Expired)
    );
    // No token_introspection object: not an answer.
    let key = issuer_key();
    let mut claims = response_claims(json!({}));
    claims
        .as_object_mut()
        .expect("object")
        .remove("token_introspection");
    ep.set(signed_by(&key, &jwt_header(&key), &claims));
    assert_signed_refused(&ep, "token_introspection").await;
    ep.stop();
}

#[tokio::test]
async fn a_refused_signed_response_is_logged_at_error_naming_the_cause() {
    let logs = logs();
    let mut claims = response_claims(active_members(json!({})));
    // A value no other test uses, to find this test's line among all tests' logs.
    claims["aud"] = json!("someone-else-0c7f");
    let key = issuer_key();
    let ep = Endpoint::start(signed_by(&key, &jwt_header(&key), &claims)).await;
    let _ = jwt_introspector(&ep).introspect(TOKEN).await;
    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("someone-else-0c7f"))
        .unwrap_or_else(|| panic!("no log line names the cause: {text}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("signed introspection response"), "{line}");
    assert!(line.contains("aud"), "{line}");
    assert!(!line.contains(TOKEN), "{line}");
    ep.stop();
}

/// Every log line of this test binary, captured (one global subscriber: a thread-local one
/// would race with the other tests' threads over the callsites' cached interest).
fn logs() -> Logs {
    static LOGS: std::sync::OnceLock<Logs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .with_writer(logs.clone())
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        logs
    })
    .clone()
}

#[test]
fn a_verifier_of_another_issuer_cannot_check_signed_responses() {
    let other = Verifier::builder()
        .issuer("https://other.test/")
        .audience(AUD)
        .jwks_json(jwk_set([&issuer_key()]).to_string())
        .build()
        .expect("verifier");
    let e = Introspector::builder()
        .issuer(ISS)
        .client_id(INTROSPECTOR)
        .client_secret("wm-secret")
        .audience(AUD)
        .jwt_responses(&other)
        .build()
        .expect_err("refused");
    let text = e.to_string();
    assert!(text.contains("jwt_responses"), "{text}");
    assert!(text.contains("https://other.test/"), "{text}");
}

#[tokio::test]
async fn the_development_issuer_answers_with_a_signed_response_when_asked() {
    use bearer_guard::dev_issuer::DevIssuer;
    let dev = DevIssuer::builder()
        .audience(AUD)
        .client(INTROSPECTOR, "wm-secret", Vec::<String>::new())
        .start()
        .await
        .expect("dev issuer");
    let opaque = dev
        .mint_opaque(json!({"client_id": "gift-deliveries", "scope": "directions"}))
        .expect("minted");
    // What it sends, read by hand.
    let res = reqwest::Client::new()
        .post(dev.introspection_endpoint())
        .basic_auth(INTROSPECTOR, Some("wm-secret"))
        .header("accept", JWT_MEDIA_TYPE)
        .form(&[("token", opaque.as_str())])
        .send()
        .await
        .expect("sent");
    assert_eq!(
        res.headers().get("content-type").expect("content-type"),
        JWT_MEDIA_TYPE
    );
    let jwt = res.text().await.expect("body");
    assert!(bearer_guard::introspection::is_jwt_shaped(&jwt));
    // And through the introspector, with the issuer's keys by discovery.
    let verifier = Verifier::builder()
        .issuer(dev.issuer())
        .audience(AUD)
        .build()
        .expect("verifier");
    let i = Introspector::builder()
        .issuer(dev.issuer())
        .client_id(INTROSPECTOR)
        .client_secret("wm-secret")
        .audience(AUD)
        .jwt_responses(&verifier)
        .build()
        .expect("introspector");
    let app = app(JwtAuthLayer::new(verifier).introspection(i, TokenRouting::ByShape));
    let (status, _, body) = send(&app, "/whoami", &opaque).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "gift-deliveries directions true");
    assert!(dev.revoke(&opaque));
    let other = dev.mint_opaque(json!({})).expect("minted");
    assert!(dev.revoke(&other));
    assert_eq!(
        send(&app, "/whoami", &other).await.0,
        StatusCode::UNAUTHORIZED,
        "inactive, signed"
    );
    dev.shutdown().await;
}

/// Log lines, captured.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

// ---------------------------------------------------------------------------------------
// Security review: the cache bound to the configuration, signed responses' members and
// freshness, log limits per cause

/// A cache store shared by several introspectors (as a fleet's store is).
#[derive(Debug, Clone)]
struct SharedMemory(Arc<bearer_guard::introspection::MemoryCache>);

impl bearer_guard::introspection::IntrospectionCache for SharedMemory {
    fn get<'a>(
        &'a self,
        key: &'a bearer_guard::introspection::CacheKey,
    ) -> bearer_guard::introspection::CacheFuture<
        'a,
        Option<bearer_guard::introspection::CachedAnswer>,
    > {
        self.0.get(key)
    }

    fn put<'a>(
        &'a self,
        key: &'a bearer_guard::introspection::CacheKey,
        answer: bearer_guard::introspection::CachedAnswer,
        ttl: Duration,
    ) -> bearer_guard::introspection::CacheFuture<'a, ()> {
        self.0.put(key, answer, ttl)
    }
}

/// A store that answers every key with the last answer kept (a store an attacker controls).
#[derive(Debug, Clone, Default)]
struct AnyKeyStore(Arc<Mutex<Option<bearer_guard::introspection::CachedAnswer>>>);

impl bearer_guard::introspection::IntrospectionCache for AnyKeyStore {
    fn get<'a>(
        &'a self,
        _key: &'a bearer_guard::introspection::CacheKey,
    ) -> bearer_guard::introspection::CacheFuture<
        'a,
        Option<bearer_guard::introspection::CachedAnswer>,
    > {
        let found = self.0.lock().expect("lock").clone();
        Box::pin(std::future::ready(Ok(found)))
    }

    fn put<'a>(
        &'a self,
        _key: &'a bearer_guard::introspection::CacheKey,
        answer: bearer_guard::introspection::CachedAnswer,
        _ttl: Duration,
    ) -> bearer_guard::introspection::CacheFuture<'a, ()> {
        *self.0.lock().expect("lock") = Some(answer);
        Box::pin(std::future::ready(Ok(())))
    }
}

#[tokio::test]
async fn an_answer_cached_by_an_introspector_of_another_audience_is_not_used() {
    let ep = Endpoint::start(active(json!({}))).await;
    let shared = SharedMemory(Arc::new(bearer_guard::introspection::MemoryCache::new(100)));
    let a = ep.builder().cache(shared.clone()).build().expect("a");
    let b = Introspector::builder()
        .issuer(ISS)
        .introspection_endpoint(ep.url())
        .client_id("world-mappers")
        .client_secret("wm-secret")
        .audience("urn:another-api")
        .cache(shared)
        .build()
        .expect("b");
    a.introspect(TOKEN).await.expect("active for A");
    let e = b.introspect(TOKEN).await.expect_err("not for B");
    assert_eq!(
        e.kind(),
        AuthErrorKind::InvalidToken(InvalidTokenReason::WrongAudience)
    );
    assert_eq!(ep.calls(), 2, "B asked the endpoint itself");
    ep.stop();
}

#[tokio::test]
async fn a_cached_answer_is_checked_against_the_audience_and_issuer_at_every_use() {
    let ep = Endpoint::start(active(json!({}))).await;
    let store = AnyKeyStore::default();
    let a = ep.builder().cache(store.clone()).build().expect("a");
    a.introspect(TOKEN).await.expect("active for A");
    // The store hands A's answer to introspectors of another audience and another issuer.
    let b = Introspector::builder()
        .issuer(ISS)
        .introspection_endpoint(ep.url())
        .client_id("world-mappers")
        .client_secret("wm-secret")
        .audience("urn:another-api")
        .cache(store.clone())
        .build()
        .expect("b");
    let e = b.introspect(TOKEN).await.expect_err("not for B");
    assert_eq!(
        e.kind(),
        AuthErrorKind::InvalidToken(InvalidTokenReason::WrongAudience)
    );
    let c = Introspector::builder()
        .issuer("https://another-issuer.test/")
        .introspection_endpoint(ep.url())
        .client_id("world-mappers")
        .client_secret("wm-secret")
        .audience(AUD)
        .cache(store)
        .build()
        .expect("c");
    let e = c.introspect(TOKEN).await.expect_err("not for C");
    assert_eq!(
        e.kind(),
        AuthErrorKind::InvalidToken(InvalidTokenReason::WrongIssuer)
    );
    assert_eq!(ep.calls(), 1);
    ep.stop();
}

#[tokio::test]
async fn duplicate_members_inside_a_signed_response_are_refused_as_in_json() {
    let key = issuer_key();
    let exp = now() + 600;
    let claims = format!(
        r#"{{"iss":"{ISS}","aud":"{INTROSPECTOR}","iat":{},"token_introspection":{{"active":false,"exp":{exp},"aud":"{AUD}","scope":"directions","active":true}}}}"#,
        now()
    );
    let jwt = key
        .sign_raw(jwt_header(&key).to_string().as_bytes(), claims.as_bytes())
        .expect("signed");
    let ep = Endpoint::start(Answer {
        status: StatusCode::OK,
        content_type: JWT_MEDIA_TYPE,
        body: jwt.into_bytes(),
        delay: Duration::ZERO,
    })
    .await;
    let e = jwt_introspector(&ep)
        .introspect(TOKEN)
        .await
        .expect_err("refused, not taken as active");
    assert_eq!(e.kind(), AuthErrorKind::IntrospectionUnavailable);
    let text = std::error::Error::source(&e).expect("cause").to_string();
    assert!(text.contains("unique members"), "{text}");
    ep.stop();
}

#[tokio::test]
async fn a_signed_response_older_than_a_fresh_answer_can_be_is_refused_as_a_replay() {
    let key = issuer_key();
    let mut claims = response_claims(active_members(json!({})));
    claims["iat"] = json!(now() - 3600);
    let ep = Endpoint::start(signed_by(&key, &jwt_header(&key), &claims)).await;
    assert_signed_refused(&ep, "iat is").await;
    // Within the timeout, the leeway and the clock-skew allowance: accepted.
    claims["iat"] = json!(now() - 60);
    ep.set(signed_by(&key, &jwt_header(&key), &claims));
    jwt_introspector(&ep)
        .introspect(TOKEN)
        .await
        .expect("fresh enough");
    ep.stop();
}

#[tokio::test]
async fn a_jws_in_the_json_serialization_is_refused_with_its_own_cause() {
    let ep = Endpoint::start(Answer {
        status: StatusCode::OK,
        content_type: JWT_MEDIA_TYPE,
        body: br#"{"payload":"e30","signatures":[{"protected":"e30","signature":"c2ln"}]}"#
            .to_vec(),
        delay: Duration::ZERO,
    })
    .await;
    assert_signed_refused(&ep, "JSON serialization").await;
    ep.stop();
}

#[tokio::test]
async fn a_content_type_that_is_not_ascii_is_named_so() {
    let mut answer = signed(active_members(json!({})));
    answer.content_type = "application/token-introspection+jwt\u{e9}";
    let ep = Endpoint::start(answer).await;
    assert_signed_refused(&ep, "(not ASCII)").await;
    ep.stop();
}

#[tokio::test]
async fn an_outage_warning_does_not_hide_the_error_about_a_refused_signed_response() {
    let logs = logs();
    let ep = Endpoint::start(Answer {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        content_type: "text/plain",
        body: b"down".to_vec(),
        delay: Duration::ZERO,
    })
    .await;
    let introspector = jwt_introspector(&ep);
    let e = introspector.introspect(TOKEN).await.expect_err("503");
    assert_eq!(e.kind(), AuthErrorKind::IntrospectionUnavailable);
    // At once after the outage's WARN line: a refused signed response, logged at ERROR.
    let mut claims = response_claims(active_members(json!({})));
    // A value no other test uses, to find this test's line among all tests' logs.
    claims["aud"] = json!("someone-else-5e1d");
    let key = issuer_key();
    ep.set(signed_by(&key, &jwt_header(&key), &claims));
    let _ = introspector.introspect(TOKEN).await;
    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("someone-else-5e1d"))
        .unwrap_or_else(|| panic!("the ERROR line was held back: {text}"));
    assert!(line.contains("ERROR"), "{line}");
    ep.stop();
}
