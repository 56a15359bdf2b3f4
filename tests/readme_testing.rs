//! The README's "Testing your API" example, run: a valid, an expired and a missing-scope
//! token from a `DevIssuer`, sent with `tower::ServiceExt::oneshot`. Keep it the same code as
//! the README's block (here in rustfmt's layout; the README's is compiled as a doc test).
#![cfg(all(
    feature = "axum",
    feature = "dev-issuer",
    any(feature = "aws-lc-rs", feature = "rust-crypto")
))]
#![allow(clippy::unwrap_used)]

use axum::http::{Request, StatusCode};
use axum::{Router, body::Body, routing::get};
use bearer_guard::dev_issuer::DevIssuer;
use bearer_guard::{JwtAuthLayer, Verifier, require_scopes};
use serde_json::json;
use tower::ServiceExt; // oneshot

async fn app(dev: &DevIssuer) -> Router {
    let verifier = Verifier::builder()
        .issuer(dev.issuer())
        .audience("urn:worldmappers")
        .build()
        .unwrap();
    Router::new()
        .route("/api/directions", get(|| async { "turn left" }))
        .route_layer(require_scopes(["directions"]))
        .layer(JwtAuthLayer::new(verifier))
}

async fn get_with(app: Router, token: &str) -> StatusCode {
    let req = Request::get("/api/directions")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    app.oneshot(req).await.unwrap().status()
}

#[tokio::test]
async fn directions_needs_a_valid_token_with_the_scope() {
    let dev = DevIssuer::builder()
        .audience("urn:worldmappers")
        .start()
        .await
        .unwrap();
    let app = app(&dev).await;

    let valid = dev.mint(json!({"scope": "directions"})).unwrap();
    assert_eq!(get_with(app.clone(), &valid).await, StatusCode::OK);

    let expired = dev
        .mint(json!({"scope": "directions", "exp": 1_600_000_000}))
        .unwrap();
    assert_eq!(
        get_with(app.clone(), &expired).await,
        StatusCode::UNAUTHORIZED
    );

    let no_scope = dev.mint(json!({"scope": "geocode:location"})).unwrap();
    assert_eq!(get_with(app, &no_scope).await, StatusCode::FORBIDDEN);
}
