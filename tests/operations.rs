//! Operations and standards: the ready-made claim validators, RFC 9728 protected-resource
//! metadata (the document and the challenge), and optional authentication's edges.
#![cfg(all(
    feature = "axum",
    feature = "dev-issuer",
    any(feature = "aws-lc-rs", feature = "rust-crypto")
))]

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use bearer_guard::dev_issuer::{SigningKey, jwk_set};
use bearer_guard::validators::{self, AZP_NOT_ALLOWED, NOT_CLIENT_CREDENTIALS, WRONG_ORGANIZATION};
use bearer_guard::{
    Algorithm, AuthError, AuthErrorKind, Claims, DefaultRejection, InvalidTokenReason,
    JwtAuthLayer, ProtectedResourceMetadata, Verifier, VerifierBuilder, require_scopes,
};
use serde_json::{Value, json};
use tower::ServiceExt;

const ISS: &str = "https://issuer.test/";
const AUD: &str = "https://api.worldmappers.test/";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn key() -> SigningKey {
    SigningKey::from_pool(Algorithm::RS256, 0, "k1").expect("pool key")
}

fn builder() -> VerifierBuilder {
    Verifier::builder()
        .issuer(ISS)
        .audience(AUD)
        .jwks_json(jwk_set([&key()]).to_string())
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

/// `Ok(())`, or the refusal's reason and description.
async fn check(verifier: &Verifier, extra: Value) -> Result<(), (InvalidTokenReason, String)> {
    match verifier.verify(&token(extra)).await {
        Ok(_) => Ok(()),
        Err(e) => match e.kind() {
            AuthErrorKind::InvalidToken(r) => Err((r, e.to_string())),
            other => panic!("unexpected {other:?}"),
        },
    }
}

fn rejected(description: &str) -> Result<(), (InvalidTokenReason, String)> {
    Err((InvalidTokenReason::Rejected, description.to_owned()))
}

// ----- claim validators -----

#[tokio::test]
async fn client_credentials_only_accepts_only_gty_client_credentials() {
    let v = builder()
        .validate(validators::client_credentials_only())
        .build()
        .expect("verifier");
    assert_eq!(
        check(&v, json!({"gty": "client-credentials"})).await,
        Ok(())
    );
    assert_eq!(
        check(&v, json!({"gty": "password"})).await,
        rejected(NOT_CLIENT_CREDENTIALS)
    );
    assert_eq!(check(&v, json!({})).await, rejected(NOT_CLIENT_CREDENTIALS));
    assert_eq!(
        check(&v, json!({"gty": ["client-credentials"]})).await,
        rejected(NOT_CLIENT_CREDENTIALS)
    );
}

#[tokio::test]
async fn allowed_azp_accepts_only_the_listed_parties() {
    let v = builder()
        .validate(validators::allowed_azp(["gift-deliveries", "mapper"]))
        .build()
        .expect("verifier");
    assert_eq!(check(&v, json!({"azp": "gift-deliveries"})).await, Ok(()));
    assert_eq!(check(&v, json!({"azp": "mapper"})).await, Ok(()));
    assert_eq!(
        check(&v, json!({"azp": "intruder"})).await,
        rejected(AZP_NOT_ALLOWED)
    );
    // Exact match only.
    assert_eq!(
        check(&v, json!({"azp": "gift-deliveries "})).await,
        rejected(AZP_NOT_ALLOWED)
    );
    // RFC 9068's `client_id` when there is no `azp`; `azp` wins when both are there.
    assert_eq!(check(&v, json!({"client_id": "mapper"})).await, Ok(()));
    assert_eq!(
        check(&v, json!({"azp": "intruder", "client_id": "mapper"})).await,
        rejected(AZP_NOT_ALLOWED)
    );
    assert_eq!(check(&v, json!({})).await, rejected(AZP_NOT_ALLOWED));

    let none = builder()
        .validate(validators::allowed_azp(Vec::<String>::new()))
        .build()
        .expect("verifier");
    assert_eq!(
        check(&none, json!({"azp": "gift-deliveries"})).await,
        rejected(AZP_NOT_ALLOWED)
    );
}

#[tokio::test]
async fn require_org_id_accepts_only_that_organization() {
    let v = builder()
        .validate(validators::require_org_id("org_north_pole"))
        .build()
        .expect("verifier");
    assert_eq!(check(&v, json!({"org_id": "org_north_pole"})).await, Ok(()));
    assert_eq!(
        check(&v, json!({"org_id": "org_south_pole"})).await,
        rejected(WRONG_ORGANIZATION)
    );
    assert_eq!(
        check(&v, json!({"org_id": "ORG_NORTH_POLE"})).await,
        rejected(WRONG_ORGANIZATION)
    );
    assert_eq!(check(&v, json!({})).await, rejected(WRONG_ORGANIZATION));
}

#[tokio::test]
async fn validators_combine_and_run_on_cached_tokens_too() {
    let v = builder()
        .validate(validators::client_credentials_only())
        .validate(validators::allowed_azp(["gift-deliveries"]))
        .validate(validators::require_org_id("org_north_pole"))
        .build()
        .expect("verifier");
    let m2m =
        json!({"gty": "client-credentials", "azp": "gift-deliveries", "org_id": "org_north_pole"});
    let t = token(m2m);
    assert!(v.verify(&t).await.is_ok());
    assert!(v.verify(&t).await.is_ok(), "a cache hit");
    let t = token(json!({"gty": "client-credentials", "azp": "gift-deliveries"}));
    for _ in 0..2 {
        let err = v.verify(&t).await.expect_err("no org");
        assert_eq!(err.to_string(), WRONG_ORGANIZATION);
    }
}

#[tokio::test]
async fn a_validator_refusal_is_a_401_invalid_token_with_its_description() {
    let v = builder()
        .validate(validators::require_org_id("org_north_pole"))
        .build()
        .expect("verifier");
    let app = Router::new()
        .route("/me", get(|| async { "ok" }))
        .layer(JwtAuthLayer::new(v));
    let res = call(&app, "/me", &[&format!("Bearer {}", token(json!({})))]).await;
    assert_eq!(res.status, 401);
    assert_eq!(
        res.challenge.as_deref(),
        Some(
            r#"Bearer realm="api", error="invalid_token", error_description="the token is not for the required organization""#
        )
    );
    assert_eq!(
        res.body,
        json!({"error": "invalid_token", "error_description": WRONG_ORGANIZATION})
    );
}

// ----- RFC 9728 protected-resource metadata -----

struct Answer {
    status: u16,
    challenge: Option<String>,
    content_type: Option<String>,
    body: Value,
}

async fn call(app: &Router, path: &str, authorization: &[&str]) -> Answer {
    let mut req = http::Request::get(path);
    for a in authorization {
        req = req.header("authorization", *a);
    }
    let req = req.body(axum::body::Body::empty()).expect("request");
    let res = app.clone().oneshot(req).await.expect("infallible");
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().expect("ascii").to_owned())
    };
    let challenge = header("www-authenticate");
    let content_type = header("content-type");
    let status = res.status().as_u16();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 16)
        .await
        .expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        challenge,
        content_type,
        body,
    }
}

const METADATA_URL: &str = "https://api.worldmappers.test/.well-known/oauth-protected-resource";

fn metadata_app(layer: JwtAuthLayer) -> Router {
    let metadata = ProtectedResourceMetadata::from_verifier(layer.verifier())
        .scopes_supported(["directions", "geocode:location"])
        .resource_name("World Mappers");
    Router::new()
        .route(
            "/api/directions",
            get(|c: Claims| async move { c.issuer().to_owned() }),
        )
        .route_layer(require_scopes(["directions"]))
        .layer(layer)
        .merge(metadata.router())
}

#[tokio::test]
async fn the_metadata_document_is_served_publicly() {
    let v = builder().build().expect("verifier");
    let app = metadata_app(JwtAuthLayer::new(v).resource_metadata(METADATA_URL));
    let res = call(&app, "/.well-known/oauth-protected-resource", &[]).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        res.body,
        json!({
            "resource": AUD,
            "authorization_servers": [ISS],
            "scopes_supported": ["directions", "geocode:location"],
            "bearer_methods_supported": ["header"],
            "resource_name": "World Mappers",
        })
    );
    assert_eq!(
        ProtectedResourceMetadata::new(AUD)
            .metadata_url()
            .as_deref(),
        Some(METADATA_URL)
    );
}

#[tokio::test]
async fn refusals_name_the_metadata_in_401_challenges_only() {
    let v = builder().build().expect("verifier");
    let app = metadata_app(JwtAuthLayer::new(v).resource_metadata(METADATA_URL));
    let rm = format!(r#"resource_metadata="{METADATA_URL}""#);

    // No token.
    let res = call(&app, "/api/directions", &[]).await;
    assert_eq!(res.status, 401);
    assert_eq!(
        res.challenge.as_deref(),
        Some(format!(r#"Bearer realm="api", {rm}"#).as_str())
    );
    // An invalid token.
    let expired = format!("Bearer {}", token(json!({"exp": now() - 3600})));
    let res = call(&app, "/api/directions", &[&expired]).await;
    assert_eq!(res.status, 401);
    let challenge = res.challenge.expect("challenge");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.ends_with(&rm), "{challenge}");
    // Insufficient scope is a 403: no resource_metadata.
    let res = call(
        &app,
        "/api/directions",
        &[&format!("Bearer {}", token(json!({})))],
    )
    .await;
    assert_eq!(res.status, 403);
    let challenge = res.challenge.expect("challenge");
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
    assert!(!challenge.contains("resource_metadata"), "{challenge}");
    // Accepted.
    let ok = format!("Bearer {}", token(json!({"scope": "directions"})));
    assert_eq!(call(&app, "/api/directions", &[&ok]).await.status, 200);
}

#[tokio::test]
async fn resource_metadata_keeps_the_other_challenge_settings() {
    let v = builder().build().expect("verifier");
    let layer = JwtAuthLayer::new(v)
        .challenge(DefaultRejection::new().realm(Some("world-mappers")))
        .resource_metadata(METADATA_URL);
    let app = metadata_app(layer);
    let res = call(&app, "/api/directions", &[]).await;
    assert_eq!(
        res.challenge.as_deref(),
        Some(
            format!(r#"Bearer realm="world-mappers", resource_metadata="{METADATA_URL}""#).as_str()
        )
    );
}

#[tokio::test]
async fn a_multi_issuer_document_lists_every_authorization_server() {
    let other = Verifier::builder()
        .issuer("https://partners.test/")
        .audience(AUD)
        .hmac_secret(b"a-test-secret-of-at-least-thirty-two-bytes")
        .build()
        .expect("verifier");
    let v = Verifier::multi([builder().build().expect("verifier"), other]).expect("multi");
    let doc = ProtectedResourceMetadata::from_verifier(&v).to_json();
    assert_eq!(
        doc["authorization_servers"],
        json!([ISS, "https://partners.test/"])
    );
    assert_eq!(doc["resource"], AUD);
}

#[tokio::test]
async fn the_document_path_follows_a_resource_path() {
    let metadata = ProtectedResourceMetadata::new("https://api.worldmappers.test/v2")
        .authorization_servers([ISS]);
    let app: Router = metadata.router();
    let res = call(&app, "/.well-known/oauth-protected-resource/v2", &[]).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body["resource"], "https://api.worldmappers.test/v2");
    assert_eq!(
        call(&app, "/.well-known/oauth-protected-resource", &[])
            .await
            .status,
        404
    );
}

// ----- optional authentication -----

fn optional_app() -> Router {
    Router::new()
        .route(
            "/maybe",
            get(|c: Option<Claims>| async move {
                c.map_or_else(|| "anonymous".to_owned(), |c| c.issuer().to_owned())
            }),
        )
        .layer(JwtAuthLayer::new(builder().build().expect("verifier")).optional())
}

#[tokio::test]
async fn optional_auth_treats_other_schemes_as_no_credentials() {
    let app = optional_app();
    let res = call(&app, "/maybe", &["Basic Z2lmdDpkZWxpdmVyaWVz"]).await;
    assert_eq!(res.status, 200);
    let res = call(&app, "/maybe", &[&format!("Bearer {}", token(json!({})))]).await;
    assert_eq!(res.status, 200);
}

#[tokio::test]
async fn optional_auth_still_refuses_malformed_and_invalid_credentials() {
    let app = optional_app();
    let t = format!("Bearer {}", token(json!({})));
    // Two Authorization headers: 400 invalid_request.
    let res = call(&app, "/maybe", &[&t, &t]).await;
    assert_eq!(res.status, 400);
    assert_eq!(res.body["error"], "invalid_request");
    // A token that fails verification: 401, never anonymous.
    let forged = format!(
        "Bearer {}",
        SigningKey::from_pool(Algorithm::RS256, 1, "k1")
            .expect("pool key")
            .sign(&json!({"iss": ISS, "aud": AUD, "exp": now() + 600}))
            .expect("sign")
    );
    let res = call(&app, "/maybe", &[&forged]).await;
    assert_eq!(res.status, 401);
    assert_eq!(res.body["error"], "invalid_token");
    let res = call(&app, "/maybe", &["Bearer not-a-jwt"]).await;
    assert_eq!(res.status, 401);
}

#[test]
fn an_auth_error_from_a_validator_is_documented_as_rejected() {
    let e = AuthError::rejected(WRONG_ORGANIZATION);
    assert_eq!(
        e.kind(),
        AuthErrorKind::InvalidToken(InvalidTokenReason::Rejected)
    );
}
