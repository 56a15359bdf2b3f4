//! `POST /oauth/introspect`: RFC 7662 token introspection of the opaque tokens this issuer
//! issued (with [`DevIssuerBuilder::opaque_tokens`](super::DevIssuerBuilder::opaque_tokens)
//! or [`DevIssuer::mint_opaque`](super::DevIssuer::mint_opaque)).
//!
//! Any registered client may introspect, authenticated as at the token endpoint (HTTP Basic
//! or `client_id` / `client_secret` in the form). An active token's answer is its claims
//! with `"active": true` and `token_type`; anything else (unknown, revoked, expired, a JWT)
//! is `{"active": false}`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::state::Shared;
use super::token_endpoint::{authenticate_client, parse_body};

/// The handler.
pub(super) async fn introspect(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    shared.count_introspection_request();
    let Ok(body) = body else {
        return axum::http::StatusCode::BAD_REQUEST.into_response();
    };
    let params = match parse_body(&headers, &body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let client = match authenticate_client(&shared, &headers, &params) {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!("dev issuer: introspection request refused (client authentication)");
            return e.into_response();
        }
    };
    let answer = match params
        .token
        .as_deref()
        .and_then(|t| shared.opaque_claims(t))
    {
        Some(mut claims) => {
            let bound = claims.contains_key("cnf");
            claims.insert("active".into(), Value::Bool(true));
            claims.insert(
                "token_type".into(),
                json!(if bound { "DPoP" } else { "Bearer" }),
            );
            Value::Object(claims)
        }
        None => json!({"active": false}),
    };
    let active = answer["active"] == Value::Bool(true);
    tracing::debug!(
        client_id = client.id(),
        active,
        "dev issuer: token introspected"
    );
    let mut response = axum::Json(answer).into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
