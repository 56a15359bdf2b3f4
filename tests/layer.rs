//! End-to-end tests of the tower layer, the RFC 6750 answers, the scope guards and the axum
//! extractors, over real sockets on 127.0.0.1.
#![cfg(all(
    feature = "axum",
    feature = "dev-issuer",
    any(feature = "aws-lc-rs", feature = "rust-crypto")
))]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use bearer_guard::dev_issuer::{SigningKey, jwk_set};
use bearer_guard::{
    Algorithm, Auth, AuthError, AuthErrorKind, Claims, DefaultRejection, JwtAuthLayer,
    RequireScopes, Scopes, Verifier, require_any_scope, require_scopes, scope_requirement,
};
use serde_json::{Value, json};

const ISS: &str = "https://issuer.test/";
const AUD: &str = "urn:worldmappers";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn key() -> SigningKey {
    SigningKey::from_pool(Algorithm::RS256, 0, "k1").expect("pool key")
}

fn verifier() -> Verifier {
    Verifier::builder()
        .issuer(ISS)
        .audience(AUD)
        .jwks_json(jwk_set([&key()]).to_string())
        .build()
        .expect("verifier")
}

fn token(extra: Value) -> String {
    let mut claims = json!({"iss": ISS, "aud": AUD, "sub": "gift-deliveries@clients", "exp": now() + 600, "iat": now()});
    if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    key().sign(&claims).expect("sign")
}

scope_requirement!(Directions = all_of["directions"]);
scope_requirement!(AnyLocation = any_of["geocode:location", "reverse-geocode:location"]);

#[derive(serde::Deserialize)]
struct M2m {
    sub: String,
}

#[derive(serde::Deserialize)]
struct WithOrg {
    org_id: String,
}

fn app(layer: JwtAuthLayer) -> Router {
    Router::new()
        .route("/me", get(|c: Claims| async move { c.subject().unwrap_or_default().to_owned() }))
        .route("/scopes", get(|s: Scopes| async move { s.to_string() }))
        .route("/typed", get(|Auth(m): Auth<M2m>| async move { m.sub }))
        .route("/org", get(|Auth(o): Auth<WithOrg>| async move { o.org_id }))
        .route(
            "/directions",
            get(|RequireScopes(c, ..): RequireScopes<Directions>| async move {
                c.scopes().to_string()
            }),
        )
        .route(
            "/location",
            get(|_: RequireScopes<AnyLocation>| async { "somewhere" }),
        )
        .route(
            "/maybe",
            get(|c: Option<Claims>| async move {
                c.map_or_else(|| "anonymous".to_owned(), |c| c.subject().unwrap_or_default().to_owned())
            }),
        )
        .merge(
            Router::new()
                .route("/guarded", get(|| async { "guarded" }))
                .route_layer(require_scopes(["directions", "geocode:location"])),
        )
        .merge(
            Router::new()
                .route("/guarded-any", get(|| async { "guarded-any" }))
                .route_layer(require_any_scope(["directions", "geocode:location"])),
        )
        .layer(layer)
}

struct Server {
    base: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(router: Router) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Server { base, task }
}

struct Answer {
    status: u16,
    challenge: Option<String>,
    retry_after: Option<String>,
    body: String,
}

async fn get_with(server: &Server, path: &str, auth: &[&str]) -> Answer {
    let mut req = reqwest::Client::new().get(format!("{}{path}", server.base));
    for a in auth {
        req = req.header("authorization", *a);
    }
    let res = req.send().await.expect("request");
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().expect("ascii").to_owned())
    };
    let challenge = header("www-authenticate");
    let retry_after = header("retry-after");
    let status = res.status().as_u16();
    Answer {
        status,
        challenge,
        retry_after,
        body: res.text().await.expect("body"),
    }
}

fn json_body(a: &Answer) -> Value {
    serde_json::from_str(&a.body).expect("json body")
}

#[tokio::test]
async fn a_request_without_credentials_gets_401_and_a_bare_challenge() {
    let s = serve(app(JwtAuthLayer::new(verifier()))).await;
    let a = get_with(&s, "/me", &[]).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.challenge.as_deref(), Some(r#"Bearer realm="api""#));
    assert_eq!(json_body(&a)["error"], "unauthorized");
}

#[tokio::test]
async fn another_scheme_is_treated_as_no_credentials() {
    let s = serve(app(JwtAuthLayer::new(verifier()))).await;
    let a = get_with(&s, "/me", &["Basic dXNlcjpwYXNz"]).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.challenge.as_deref(), Some(r#"Bearer realm="api""#));
}

#[tokio::test]
async fn bearer_without_a_token_is_400_invalid_request() {
    let s = serve(app(JwtAuthLayer::new(verifier()))).await;
    let a = get_with(&s, "/me", &["Bearer"]).await;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.challenge.as_deref(),
        Some(
            r#"Bearer realm="api", error="invalid_request", error_description="the Bearer credential has no token""#
        )
    );
    assert_eq!(json_body(&a)["error"], "invalid_request");
}

#[tokio::test]
async fn two_authorization_headers_are_400_invalid_request() {
    let s = serve(app(JwtAuthLayer::new(verifier()))).await;
    let t = token(json!({}));
    let a = get_with(&s, "/me", &[&format!("Bearer {t}"), &format!("Bearer {t}")]).await;
    assert_eq!(a.status, 400);
    assert!(
        a.challenge
            .expect("challenge")
            .contains(r#"error="invalid_request""#)
    );
}

#[tokio::test]
async fn a_cached_token_in_a_malformed_header_is_still_400() {
    let s = serve(app(JwtAuthLayer::new(verifier()))).await;
    let t = token(json!({}));
    // The first request verifies the token and caches it; the layer then answers it
    // without the syntax checks, which must not let a malformed header through.
    assert_eq!(
        get_with(&s, "/me", &[&format!("Bearer {t}")]).await.status,
        200
    );
    assert_eq!(
        get_with(&s, "/me", &[&format!("bearer {t}")]).await.status,
        200
    );
    for bad in [format!("Bearer {t} x"), format!("Bearer  {t},")] {
        assert_eq!(get_with(&s, "/me", &[&bad]).await.status, 400, "{bad:?}");
    }
    let twice = [format!("Bearer {t}"), format!("Bearer {t}")];
    let a = get_with(&s, "/me", &[&twice[0], &twice[1]]).await;
    assert_eq!(a.status, 400);
}

#[tokio::test]
async fn one_or_more_spaces_after_bearer_are_accepted_fresh_and_from_the_cache() {
    let s = serve(app(JwtAuthLayer::new(verifier()))).await;
    // RFC 6750 §2.1: `"Bearer" 1*SP b64token`. The first request verifies the token, the
    // later ones are answered by the layer's cached-token path.
    let t = token(json!({}));
    for header in [
        format!("Bearer  {t}"),
        format!("Bearer {t}"),
        format!("Bearer  {t}"),
        format!("bearer     {t}"),
    ] {
        assert_eq!(
            get_with(&s, "/me", &[&header]).await.status,
            200,
            "{header:?}"
        );
    }
}

#[tokio::test]
async fn a_character_outside_b64token_is_400_saying_so() {
    let s = serve(app(JwtAuthLayer::new(verifier()))).await;
    let t = token(json!({}));
    let a = get_with(&s, "/me", &[&format!("Bearer {t}!")]).await;
    assert_eq!(a.status, 400);
    assert_eq!(
        json_body(&a),
        json!({"error": "invalid_request", "error_description":
            "the token has a character outside the token syntax (RFC 6750 b64token)"})
    );
}

#[tokio::test]
async fn two_tokens_in_one_header_are_400_invalid_request() {
    let s = serve(app(JwtAuthLayer::new(verifier()))).await;
    let a = get_with(&s, "/me", &["Bearer abc def"]).await;
    assert_eq!(a.status, 400);
}

#[tokio::test]
async fn an_expired_token_is_401_invalid_token_saying_why() {
    let s = serve(app(JwtAuthLayer::new(verifier()))).await;
    let t = token(json!({"exp": now() - 3600}));
    let a = get_with(&s, "/me", &[&format!("Bearer {t}")]).await;
    assert_eq!(a.status, 401);
    assert_eq!(
        a.challenge.as_deref(),
        Some(
            r#"Bearer realm="api", error="invalid_token", error_description="the token has expired""#
        )
    );
    assert_eq!(
        json_body(&a),
        json!({"error": "invalid_token", "error_description": "the token has expired"})
    );
}

#[tokio::test]
async fn a_tampered_token_is_401_and_the_answer_does_not_echo_it() {
    let s = serve(app(JwtAuthLayer::new(verifier()))).await;
    let t = token(json!({}));
    let (head, sig) = t.rsplit_once('.').expect("jwt");
    // Change one character in the middle of the signature (still valid base64url).
    let mut sig = sig.to_owned();
    let c = if sig.as_bytes()[10] == b'A' { "B" } else { "A" };
    sig.replace_range(10..11, c);
    let tampered = format!("{head}.{sig}");
    let a = get_with(&s, "/me", &[&format!("Bearer {tampered}")]).await;
    assert_eq!(a.status, 401);
    let challenge = a.challenge.expect("challenge");
    assert!(
        challenge.contains("the token's signature is invalid"),
        "{challenge}"
    );
    for part in tampered.split('.') {
        assert!(!challenge.contains(part) && !a.body.contains(part));
    }
}

#[tokio::test]
async fn a_valid_token_reaches_the_handler_with_its_claims() {
    let s = serve(app(JwtAuthLayer::new(verifier()))).await;
    let t = token(json!({"scope": "directions geocode:location"}));
    let a = get_with(&s, "/me", &[&format!("Bearer {t}")]).await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (200, "gift-deliveries@clients")
    );
    let a = get_with(&s, "/scopes", &[&format!("Bearer {t}")]).await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (200, "directions geocode:location")
    );
}

#[tokio::test]
async fn the_typed_claims_extractor_deserializes_the_users_type() {
    let s = serve(app(JwtAuthLayer::new(verifier()))).await;
    let a = get_with(&s, "/typed", &[&format!("Bearer {}", token(json!({})))]).await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (200, "gift-deliveries@clients")
    );
    let a = get_with(
        &s,
        "/typed",
        &[&format!("Bearer {}", token(json!({"sub": null})))],
    )
    .await;
    assert_eq!(a.status, 401);
}

#[tokio::test]
async fn the_typed_claims_extractor_names_a_missing_field() {
    let s = serve(app(JwtAuthLayer::new(verifier()))).await;
    let a = get_with(&s, "/org", &[&format!("Bearer {}", token(json!({})))]).await;
    assert_eq!(a.status, 401);
    assert_eq!(
        json_body(&a),
        json!({"error": "invalid_token",
            "error_description": "the token's claims lack the field 'org_id'"})
    );
    // A value of the wrong type is not echoed: the description stays generic.
    let t = token(json!({"org_id": 7}));
    let a = get_with(&s, "/org", &[&format!("Bearer {t}")]).await;
    assert_eq!(
        json_body(&a)["error_description"],
        "the token's claims do not have the expected shape"
    );
    let t = token(json!({"org_id": "acme"}));
    let a = get_with(&s, "/org", &[&format!("Bearer {t}")]).await;
    assert_eq!((a.status, a.body.as_str()), (200, "acme"));
}

#[tokio::test]
async fn an_any_of_403_says_that_any_one_of_the_scopes_is_enough() {
    let s = serve(app(JwtAuthLayer::new(verifier()))).await;
    let t = token(json!({"scope": "other"}));
    for path in ["/location", "/guarded-any"] {
        let a = get_with(&s, path, &[&format!("Bearer {t}")]).await;
        assert_eq!(a.status, 403, "{path}");
        let challenge = a.challenge.expect("challenge");
        assert!(
            challenge.contains("any one of them is enough"),
            "{path}: {challenge}"
        );
    }
}

#[tokio::test]
async fn the_scope_extractor_answers_403_naming_the_scope() {
    let s = serve(app(JwtAuthLayer::new(verifier()))).await;
    let a = get_with(
        &s,
        "/directions",
        &[&format!(
            "Bearer {}",
            token(json!({"scope": "geocode:location"}))
        )],
    )
    .await;
    assert_eq!(a.status, 403);
    assert_eq!(
        a.challenge.as_deref(),
        Some(
            r#"Bearer realm="api", error="insufficient_scope", error_description="the token lacks a required scope", scope="directions""#
        )
    );
    assert_eq!(json_body(&a)["scope"], "directions");
    let a = get_with(
        &s,
        "/directions",
        &[&format!("Bearer {}", token(json!({"scope": "directions"})))],
    )
    .await;
    assert_eq!((a.status, a.body.as_str()), (200, "directions"));
}

#[tokio::test]
async fn an_any_of_requirement_accepts_one_of_its_scopes() {
    let s = serve(app(JwtAuthLayer::new(verifier()))).await;
    let a = get_with(
        &s,
        "/location",
        &[&format!(
            "Bearer {}",
            token(json!({"scope": "reverse-geocode:location"}))
        )],
    )
    .await;
    assert_eq!(a.status, 200);
    let a = get_with(
        &s,
        "/location",
        &[&format!("Bearer {}", token(json!({"scope": "directions"})))],
    )
    .await;
    assert_eq!(a.status, 403);
}

#[tokio::test]
async fn the_route_guard_requires_all_its_scopes() {
    let s = serve(app(JwtAuthLayer::new(verifier()))).await;
    let a = get_with(
        &s,
        "/guarded",
        &[&format!("Bearer {}", token(json!({"scope": "directions"})))],
    )
    .await;
    assert_eq!(a.status, 403);
    assert!(
        a.challenge
            .expect("challenge")
            .ends_with(r#"scope="directions geocode:location""#)
    );
    let a = get_with(
        &s,
        "/guarded",
        &[&format!(
            "Bearer {}",
            token(json!({"scope": "geocode:location directions"}))
        )],
    )
    .await;
    assert_eq!((a.status, a.body.as_str()), (200, "guarded"));
}

#[tokio::test]
async fn the_any_route_guard_accepts_one_of_its_scopes() {
    let s = serve(app(JwtAuthLayer::new(verifier()))).await;
    let a = get_with(
        &s,
        "/guarded-any",
        &[&format!(
            "Bearer {}",
            token(json!({"scope": "geocode:location"}))
        )],
    )
    .await;
    assert_eq!(a.status, 200);
    let a = get_with(
        &s,
        "/guarded-any",
        &[&format!("Bearer {}", token(json!({})))],
    )
    .await;
    assert_eq!(a.status, 403);
}

#[tokio::test]
async fn unavailable_keys_are_503_with_retry_after_not_401() {
    // A JWKS URL on a port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/jwks.json", closed.local_addr().expect("addr"));
    drop(closed);
    let v = Verifier::builder()
        .issuer(ISS)
        .audience(AUD)
        .jwks_uri(url)
        .fetch_timeout(Duration::from_secs(2))
        .build()
        .expect("verifier");
    let s = serve(app(JwtAuthLayer::new(v))).await;
    let a = get_with(&s, "/me", &[&format!("Bearer {}", token(json!({})))]).await;
    assert_eq!(a.status, 503);
    assert!(a.challenge.is_none());
    let retry: u64 = a
        .retry_after
        .as_deref()
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!(retry >= 1);
    assert_eq!(json_body(&a)["error"], "temporarily_unavailable");
}

#[tokio::test]
async fn descriptions_and_realm_can_be_configured() {
    let layer = JwtAuthLayer::new(verifier()).challenge(
        DefaultRejection::new()
            .realm(Some("world-mappers"))
            .error_description(false),
    );
    let s = serve(app(layer)).await;
    let t = token(json!({"exp": now() - 3600}));
    let a = get_with(&s, "/me", &[&format!("Bearer {t}")]).await;
    assert_eq!(
        a.challenge.as_deref(),
        Some(r#"Bearer realm="world-mappers", error="invalid_token""#)
    );
    assert_eq!(json_body(&a), json!({"error": "invalid_token"}));
    // The extractors' 403 uses the same settings.
    let a = get_with(
        &s,
        "/directions",
        &[&format!("Bearer {}", token(json!({})))],
    )
    .await;
    assert_eq!(
        a.challenge.as_deref(),
        Some(r#"Bearer realm="world-mappers", error="insufficient_scope", scope="directions""#)
    );
}

#[tokio::test]
async fn optional_auth_lets_anonymous_requests_through_but_not_invalid_tokens() {
    let s = serve(app(JwtAuthLayer::new(verifier()).optional())).await;
    let a = get_with(&s, "/maybe", &[]).await;
    assert_eq!((a.status, a.body.as_str()), (200, "anonymous"));
    let a = get_with(&s, "/maybe", &[&format!("Bearer {}", token(json!({})))]).await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (200, "gift-deliveries@clients")
    );
    let a = get_with(
        &s,
        "/maybe",
        &[&format!("Bearer {}", token(json!({"aud": "urn:other"})))],
    )
    .await;
    assert_eq!(a.status, 401);
    assert!(a.challenge.expect("challenge").contains("invalid_token"));
    // A handler that requires claims still answers 401 to an anonymous request.
    let a = get_with(&s, "/me", &[]).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.challenge.as_deref(), Some(r#"Bearer realm="api""#));
}

#[tokio::test]
async fn an_extractor_without_the_layer_answers_500_saying_so() {
    let router = Router::new().route("/me", get(|c: Claims| async move { c.issuer().to_owned() }));
    let s = serve(router).await;
    let a = get_with(&s, "/me", &[&format!("Bearer {}", token(json!({})))]).await;
    assert_eq!(a.status, 500);
    assert!(a.body.contains("JwtAuthLayer"), "{}", a.body);
}

#[tokio::test]
async fn a_custom_rejection_replaces_the_answer() {
    let layer = JwtAuthLayer::new(verifier()).rejection(|e: AuthError| {
        let mut res = http::Response::new(axum::body::Body::from(format!(
            "nope: {}",
            e.kind().as_str()
        )));
        *res.status_mut() = http::StatusCode::IM_A_TEAPOT;
        res
    });
    let router = Router::new()
        .route("/me", get(|| async { "ok" }))
        .layer(layer);
    let s = serve(router).await;
    let a = get_with(&s, "/me", &[]).await;
    assert_eq!((a.status, a.body.as_str()), (418, "nope: missing_token"));
}

#[tokio::test]
async fn the_error_is_left_in_the_response_extensions() {
    use tower::{ServiceBuilder, ServiceExt};
    let svc = ServiceBuilder::new()
        .layer(JwtAuthLayer::new(verifier()))
        .service_fn(|_req: http::Request<axum::body::Body>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(axum::body::Body::empty()))
        });
    let req = http::Request::builder()
        .header(
            "authorization",
            format!("Bearer {}", token(json!({"iss": "https://evil.test/"}))),
        )
        .body(axum::body::Body::empty())
        .expect("request");
    let res = svc.oneshot(req).await.expect("response");
    let err = res
        .extensions()
        .get::<AuthError>()
        .expect("error in extensions");
    assert_eq!(
        err.kind(),
        AuthErrorKind::InvalidToken(bearer_guard::InvalidTokenReason::WrongIssuer)
    );
}

#[tokio::test]
async fn the_layer_works_on_a_plain_hyper_style_service() {
    use http_body_util::Full;
    use tower::{ServiceBuilder, ServiceExt};
    let svc = ServiceBuilder::new()
        .layer(JwtAuthLayer::new(verifier()))
        .service_fn(|req: http::Request<Full<bytes::Bytes>>| async move {
            let sub = req
                .extensions()
                .get::<Claims>()
                .and_then(|c| c.subject().map(str::to_owned))
                .unwrap_or_default();
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(bytes::Bytes::from(
                sub,
            ))))
        });
    let req = http::Request::builder()
        .header("authorization", format!("Bearer {}", token(json!({}))))
        .body(Full::new(bytes::Bytes::new()))
        .expect("request");
    let res = svc.oneshot(req).await.expect("response");
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn every_path_through_the_layer_calls_only_a_readied_service() {
    use http_body_util::Full;
    use tower::{Service, ServiceBuilder, ServiceExt};
    // A concurrency limit of one panics when it is called without having been readied: the
    // layer must call the service it readied (a hit, anonymous) or move it into the future
    // (a fresh token), never a clone that was not readied.
    let mut svc = ServiceBuilder::new()
        .layer(JwtAuthLayer::new(verifier()).optional())
        .concurrency_limit(1)
        .service_fn(|_: http::Request<Full<bytes::Bytes>>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(bytes::Bytes::new())))
        });
    let t = token(json!({}));
    let fresh = token(json!({"jti": "another"}));
    let cases = [
        (Some(format!("Bearer {t}")), 200),
        (Some(format!("Bearer {t}")), 200),
        (None, 200),
        (Some("Bearer not.a.token".to_owned()), 401),
        (Some(format!("Bearer {fresh}")), 200),
        (Some(format!("Bearer {t}")), 200),
    ];
    for (auth, want) in cases {
        let mut req = http::Request::builder();
        if let Some(a) = &auth {
            req = req.header("authorization", a);
        }
        let req = req.body(Full::new(bytes::Bytes::new())).expect("request");
        let res = svc
            .ready()
            .await
            .expect("ready")
            .call(req)
            .await
            .expect("response");
        assert_eq!(res.status(), want, "{auth:?}");
    }
}

#[test]
fn the_axum_module_and_its_docs_are_public() {
    // docs.rs renders `bearer_guard::axum` (the extractor table, the missing-layer 500).
    fn named<T>() -> &'static str {
        std::any::type_name::<T>()
    }
    assert!(named::<bearer_guard::axum::Auth<M2m>>().contains("Auth"));
    assert!(named::<bearer_guard::axum::AuthRejection>().contains("AuthRejection"));
}
