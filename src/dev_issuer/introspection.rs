//! `POST /oauth/introspect`: RFC 7662 token introspection of the opaque tokens this issuer
//! issued (with [`DevIssuerBuilder::opaque_tokens`](super::DevIssuerBuilder::opaque_tokens)
//! or [`DevIssuer::mint_opaque`](super::DevIssuer::mint_opaque)).
//!
//! Any registered client may introspect, authenticated as at the token endpoint (HTTP Basic
//! or `client_id` / `client_secret` in the form). An active token's answer is its claims
//! with `"active": true` and `token_type`; anything else (unknown, revoked, expired, a JWT)
//! is `{"active": false}`.
//!
//! A request with `Accept: application/token-introspection+jwt` gets that answer as a JWT
//! response (RFC 9701 §5): signed with the issuer's current key, header `typ`
//! `token-introspection+jwt`, claims `iss` (the issuer), `aud` (the requesting client's
//! id), `iat`, and the answer as `token_introspection`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::state::{Shared, unix_now};
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
    let mut response = if wants_jwt(&headers) {
        let key = shared.current_key();
        let header =
            json!({"alg": key.alg().as_str(), "kid": key.kid(), "typ": "token-introspection+jwt"});
        let claims = json!({
            "iss": shared.issuer,
            "aud": client.id(),
            "iat": unix_now(),
            "token_introspection": answer,
        });
        match key.sign_raw(header.to_string().as_bytes(), claims.to_string().as_bytes()) {
            Ok(jwt) => (
                [(CONTENT_TYPE, HeaderValue::from_static(JWT_MEDIA_TYPE))],
                jwt,
            )
                .into_response(),
            Err(e) => {
                tracing::error!("dev issuer: the introspection response could not be signed: {e}");
                axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    } else {
        axum::Json(answer).into_response()
    };
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The media type of a JWT introspection response (RFC 9701 §4).
const JWT_MEDIA_TYPE: &str = "application/token-introspection+jwt";

/// Whether the request's `Accept` names the JWT response media type (any parameters, any
/// case; a `q=0` is honoured as "not acceptable").
fn wants_jwt(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut parts = range.split(';');
            let essence = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            essence.eq_ignore_ascii_case(JWT_MEDIA_TYPE) && !refused
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(ACCEPT, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn a_jwt_response_is_given_only_when_accept_names_its_media_type() {
        assert!(wants_jwt(&accept(&["application/token-introspection+jwt"])));
        assert!(wants_jwt(&accept(&[
            "application/json;q=0.5, Application/Token-Introspection+JWT"
        ])));
        assert!(wants_jwt(&accept(&[
            "application/json",
            "application/token-introspection+jwt"
        ])));
        assert!(!wants_jwt(&accept(&[])));
        assert!(!wants_jwt(&accept(&["application/json"])));
        assert!(!wants_jwt(&accept(&["*/*"])));
        assert!(!wants_jwt(&accept(&[
            "application/token-introspection+jwt;q=0"
        ])));
    }
}
