//! `POST /oauth/token`: the client-credentials grant (RFC 6749 §4.4), shaped like Auth0's
//! endpoint.
//!
//! Checks, in order: the body (a JSON object or a form, at most 64 KiB, no repeated
//! parameter), `grant_type`, the client's credentials (HTTP Basic or body, not both), the
//! audience, the scope, and the `DPoP` proof when there is one (RFC 9449 §5: the token is
//! then bound to the proof's key, `cnf.jkt`, and its `token_type` is `DPoP`; a bad or
//! replayed proof gets `400 invalid_dpop_proof`). Parameters sent empty count as absent (RFC 6749 §3.1); unknown
//! parameters are ignored. Secrets and tokens are never logged.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, PRAGMA, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

use super::client::{DevClient, authenticate};
use super::state::{Shared, new_jti, unix_now};
use crate::claims::{UniqueObject, is_scope_token};
use crate::mtls::PeerCertificate;

/// Largest request body accepted.
pub(super) const MAX_BODY_BYTES: usize = 64 * 1024;

/// The only grant type.
const CLIENT_CREDENTIALS: &str = "client_credentials";

/// The realm of the `WWW-Authenticate` challenge.
const BASIC_CHALLENGE: &str = "Basic realm=\"dev-issuer\"";

/// The handler.
pub(super) async fn token(
    State(shared): State<Arc<Shared>>,
    peer: Option<Extension<PeerCertificate>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // RFC 8705 §3: a client that presented a certificate (the issuer served over mutual TLS)
    // gets a token bound to it.
    let x5t = peer.map(|Extension(p)| p.thumbprint().as_str().to_owned());
    match issue(&shared, &headers, body, x5t).await {
        Ok(response) => response,
        Err(e) => {
            tracing::debug!(error = e.code, status = %e.status, "dev issuer: token request refused");
            e.into_response()
        }
    }
}

/// An RFC 6749 §5.2 error response.
#[derive(Debug)]
pub(super) struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: String,
    /// Add `WWW-Authenticate: Basic` (the client tried HTTP Basic).
    challenge: bool,
}

impl OAuthError {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            code,
            description: description.into(),
            challenge: false,
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    fn invalid_client(description: impl Into<String>, basic: bool) -> Self {
        Self {
            challenge: basic,
            ..Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.code, "error_description": self.description});
        let mut response = (self.status, axum::Json(body)).into_response();
        let h = response.headers_mut();
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
        if self.challenge {
            h.insert(WWW_AUTHENTICATE, HeaderValue::from_static(BASIC_CHALLENGE));
        }
        response
    }
}

/// The parameters this endpoint reads.
#[derive(Default)]
pub(super) struct Params {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    audience: Option<String>,
    resource: Option<String>,
    scope: Option<String>,
    /// The token to introspect (`POST /oauth/introspect`).
    pub(super) token: Option<String>,
}

impl Params {
    /// Takes one parameter; a repeated known parameter is an error, empty values and unknown
    /// names are ignored.
    fn take(&mut self, name: &str, value: String) -> Result<(), OAuthError> {
        let slot = match name {
            "grant_type" => &mut self.grant_type,
            "client_id" => &mut self.client_id,
            "client_secret" => &mut self.client_secret,
            "audience" => &mut self.audience,
            "resource" => &mut self.resource,
            "scope" => &mut self.scope,
            "token" => &mut self.token,
            _ => return Ok(()),
        };
        if value.is_empty() {
            return Ok(());
        }
        if slot.is_some() {
            return Err(OAuthError::invalid_request(format!(
                "the parameter {name} is repeated"
            )));
        }
        *slot = Some(value);
        Ok(())
    }
}

async fn issue(
    shared: &Shared,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    x5t: Option<String>,
) -> Result<Response, OAuthError> {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        let description = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!(
                "the request body is larger than {} KiB",
                MAX_BODY_BYTES / 1024
            )
        } else {
            "the request body could not be read".to_owned()
        };
        OAuthError::new(status, "invalid_request", description)
    })?;
    let params = parse_body(headers, &body)?;

    match params.grant_type.as_deref() {
        None => return Err(OAuthError::invalid_request("grant_type is missing")),
        Some(CLIENT_CREDENTIALS) => {}
        Some(_) => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only the client_credentials grant is supported",
            ));
        }
    }

    let client = authenticate_client(shared, headers, &params)?;
    let audience = audience(shared, client, &params)?;
    let scopes = granted_scopes(client, params.scope.as_deref())?;
    let scope = scopes.join(" ");
    // RFC 9449 §5: a valid proof binds the token to its key.
    let jkt = match &shared.dpop {
        Some(dpop) => dpop
            .check(headers, &shared.token_endpoint)
            .await
            .map_err(|r| OAuthError::new(r.status, r.code, r.description))?,
        None if headers.contains_key("dpop") => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "invalid_dpop_proof",
                "DPoP proofs cannot be checked without a crypto backend",
            ));
        }
        None => None,
    };

    let now = unix_now();
    let mut claims = json!({
        "iss": shared.issuer,
        "sub": format!("{}@clients", client.id()),
        "aud": audience,
        "iat": now,
        "exp": shared.expiry(now),
        "gty": "client-credentials",
        "azp": client.id(),
        "client_id": client.id(),
        "jti": new_jti(),
    });
    if !scope.is_empty() {
        claims["scope"] = json!(scope);
    }
    if let Some(jkt) = &jkt {
        claims["cnf"] = json!({ "jkt": jkt });
    }
    if let Some(x5t) = x5t {
        match claims["cnf"].as_object_mut() {
            Some(cnf) => {
                cnf.insert("x5t#S256".to_owned(), json!(x5t));
            }
            None => claims["cnf"] = json!({ "x5t#S256": x5t }),
        }
    }
    let key = shared.current_key();
    let access_token = match &claims {
        Value::Object(map) if shared.opaque_tokens => Ok(shared.store_opaque(map.clone())),
        _ => key.sign(&claims),
    };
    let access_token = access_token.map_err(|e| {
        tracing::error!(error = %e, "dev issuer: signing failed");
        OAuthError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the token could not be signed",
        )
    })?;
    tracing::debug!(
        client_id = client.id(),
        audience,
        kid = key.kid(),
        dpop = jkt.is_some(),
        "dev issuer: token issued"
    );

    let mut body = json!({
        "access_token": access_token,
        "token_type": if jkt.is_some() { "DPoP" } else { "Bearer" },
        "expires_in": shared.token_ttl.as_secs(),
    });
    if !scope.is_empty() {
        body["scope"] = json!(scope);
    }
    let mut response = axum::Json(body).into_response();
    let h = response.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// The parameters of a form or JSON body.
pub(super) fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Params, OAuthError> {
    let media_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split_once(';')
                .map_or(v, |(t, _)| t)
                .trim()
                .to_ascii_lowercase()
        });
    let mut params = Params::default();
    match media_type.as_deref() {
        Some("application/x-www-form-urlencoded") => {
            for (name, value) in url::form_urlencoded::parse(body) {
                params.take(&name, value.into_owned())?;
            }
        }
        Some(t) if t == "application/json" || t.ends_with("+json") => {
            let UniqueObject(object) = serde_json::from_slice(body).map_err(|_| {
                OAuthError::invalid_request(
                    "the body is not a JSON object with distinct member names",
                )
            })?;
            for (name, value) in object {
                match value {
                    Value::String(s) => params.take(&name, s)?,
                    Value::Null => {}
                    _ => {
                        return Err(OAuthError::invalid_request(format!(
                            "the parameter {} must be a string",
                            shorten(&name)
                        )));
                    }
                }
            }
        }
        _ => {
            return Err(OAuthError::invalid_request(
                "the Content-Type must be application/x-www-form-urlencoded or application/json",
            ));
        }
    }
    Ok(params)
}

/// The client authenticated by HTTP Basic (`client_secret_basic`) or by the body
/// (`client_secret_post`).
pub(super) fn authenticate_client<'a>(
    shared: &'a Shared,
    headers: &HeaderMap,
    params: &Params,
) -> Result<&'a DevClient, OAuthError> {
    let failed =
        |basic: bool| OAuthError::invalid_client("unknown client or wrong client secret", basic);
    if let Some(header) = headers.get(AUTHORIZATION) {
        let candidates = basic_credentials(header).ok_or_else(|| {
            OAuthError::invalid_client(
                "the Authorization header does not hold HTTP Basic client credentials",
                true,
            )
        })?;
        if params.client_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "the client authenticated twice (HTTP Basic and client_secret in the body); \
                 use one method",
            ));
        }
        if let Some(body_id) = &params.client_id
            && candidates.iter().all(|(id, _)| id != body_id)
        {
            return Err(OAuthError::invalid_request(
                "the client_id in the body is not the one in the Authorization header",
            ));
        }
        return candidates
            .iter()
            .find_map(|(id, secret)| authenticate(&shared.clients, id, secret))
            .ok_or_else(|| failed(true));
    }
    match (&params.client_id, &params.client_secret) {
        (Some(id), Some(secret)) => {
            authenticate(&shared.clients, id, secret).ok_or_else(|| failed(false))
        }
        (None, _) => Err(OAuthError::invalid_client(
            "no client authentication: send client_id and client_secret, in the body or with \
             HTTP Basic",
            false,
        )),
        (Some(_), None) => Err(OAuthError::invalid_client(
            "client_secret is missing (public clients are not supported)",
            false,
        )),
    }
}

/// The (id, secret) pairs an HTTP Basic header may mean: as sent, and form-urlencoding
/// decoded as RFC 6749 §2.3.1 asks (most clients do not encode).
fn basic_credentials(header: &HeaderValue) -> Option<Vec<(String, String)>> {
    let value = header.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let mut candidates = vec![(id.to_owned(), secret.to_owned())];
    if let (Some(id2), Some(secret2)) = (form_decode(id), form_decode(secret))
        && (id2 != id || secret2 != secret)
    {
        candidates.push((id2, secret2));
    }
    Some(candidates)
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space, `%XX` a byte); `None`
/// when malformed or not UTF-8.
fn form_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = hex_digit(bytes.next()?)?;
                let lo = hex_digit(bytes.next()?)?;
                out.push(hi << 4 | lo);
            }
            _ => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The audience asked for with Auth0's `audience` or RFC 8707's `resource`.
///
/// An unknown or forbidden `audience` gets 403 (`access_denied`, as Auth0 answers, or
/// `unauthorized_client`); an unknown or forbidden `resource` gets RFC 8707's 400
/// `invalid_target`.
fn audience<'a>(
    shared: &Shared,
    client: &DevClient,
    params: &'a Params,
) -> Result<&'a str, OAuthError> {
    let (target, via_resource) = match (&params.audience, &params.resource) {
        (Some(a), None) => (a, false),
        (None, Some(r)) => (r, true),
        (Some(a), Some(r)) if a == r => (a, false),
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "audience and resource differ; send one of them",
            ));
        }
        (None, None) => {
            return Err(OAuthError::invalid_request(
                "audience is missing (or RFC 8707 resource)",
            ));
        }
    };
    if !shared.audiences.contains(target) {
        let description = format!("unknown audience {:?}", shorten(target));
        return Err(if via_resource {
            OAuthError::new(StatusCode::BAD_REQUEST, "invalid_target", description)
        } else {
            OAuthError::new(StatusCode::FORBIDDEN, "access_denied", description)
        });
    }
    if !client.may_get(target) {
        let description = format!("the client may not get tokens for audience {target:?}");
        return Err(if via_resource {
            OAuthError::new(StatusCode::BAD_REQUEST, "invalid_target", description)
        } else {
            OAuthError::new(StatusCode::FORBIDDEN, "unauthorized_client", description)
        });
    }
    Ok(target)
}

/// The requested scopes if every one is allowed (in request order, without repeats), or all
/// the client's scopes when none is requested.
fn granted_scopes<'a>(
    client: &'a DevClient,
    requested: Option<&'a str>,
) -> Result<Vec<&'a str>, OAuthError> {
    let requested: Vec<&str> = requested
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    if requested.is_empty() {
        return Ok(client.allowed_scopes().iter().map(String::as_str).collect());
    }
    let invalid_scope = |description: String| {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_scope", description)
    };
    if let Some(bad) = requested.iter().find(|s| !is_scope_token(s)) {
        return Err(invalid_scope(format!(
            "{:?} is not an RFC 6749 scope token",
            shorten(bad)
        )));
    }
    let refused: Vec<&str> = requested
        .iter()
        .copied()
        .filter(|s| !client.allows_scope(s))
        .collect();
    if !refused.is_empty() {
        return Err(invalid_scope(format!(
            "the client may not get the scope {}",
            shorten(&refused.join(" "))
        )));
    }
    let mut granted: Vec<&str> = Vec::with_capacity(requested.len());
    for s in requested {
        if !granted.contains(&s) {
            granted.push(s);
        }
    }
    Ok(granted)
}

/// At most 100 characters of a caller's text, for error descriptions.
fn shorten(s: &str) -> &str {
    match s.char_indices().nth(100) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> DevClient {
        DevClient::new("c", "s").scopes(["a", "b", "c"])
    }

    #[test]
    fn no_requested_scope_grants_every_allowed_scope() {
        let c = client();
        assert_eq!(granted_scopes(&c, None).expect("ok"), ["a", "b", "c"]);
        assert_eq!(granted_scopes(&c, Some("  ")).expect("ok"), ["a", "b", "c"]);
    }

    #[test]
    fn requested_scopes_are_granted_exactly_once_each() {
        let c = client();
        assert_eq!(granted_scopes(&c, Some("c a c")).expect("ok"), ["c", "a"]);
    }

    #[test]
    fn a_scope_not_allowed_is_invalid_scope() {
        let c = client();
        let e = granted_scopes(&c, Some("a z")).expect_err("refused");
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, "invalid_scope")
        );
        assert!(e.description.contains('z'));
    }

    #[test]
    fn form_decoding_follows_the_urlencoded_rules() {
        assert_eq!(form_decode("a+b%3Ac%25").as_deref(), Some("a b:c%"));
        assert_eq!(form_decode("bad%4"), None);
        assert_eq!(form_decode("bad%zz"), None);
    }

    #[test]
    fn basic_credentials_are_read_raw_and_decoded() {
        let value = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("my%20id:p+w")
        );
        let header = HeaderValue::from_str(&value).expect("header");
        let candidates = basic_credentials(&header).expect("basic");
        assert_eq!(
            candidates,
            [
                ("my%20id".to_owned(), "p+w".to_owned()),
                ("my id".to_owned(), "p w".to_owned())
            ]
        );
    }

    #[test]
    fn a_bearer_header_is_not_basic_credentials() {
        let header = HeaderValue::from_static("Bearer abc");
        assert!(basic_credentials(&header).is_none());
    }

    #[test]
    fn a_repeated_parameter_is_invalid_request() {
        let mut params = Params::default();
        params.take("scope", "a".into()).expect("first");
        let e = params.take("scope", "b".into()).expect_err("repeated");
        assert_eq!(e.code, "invalid_request");
    }

    #[test]
    fn empty_and_unknown_parameters_are_ignored() {
        let mut params = Params::default();
        params.take("scope", String::new()).expect("empty");
        params.take("scope", "a".into()).expect("then set");
        params.take("whatever", "x".into()).expect("unknown");
        params.take("whatever", "y".into()).expect("unknown twice");
        assert_eq!(params.scope.as_deref(), Some("a"));
    }
}
