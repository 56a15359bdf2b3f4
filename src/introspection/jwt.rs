//! RFC 9701 JWT responses: the introspection answer as a JWS signed by the authorization
//! server (`Content-Type: application/token-introspection+jwt`), asked for with
//! [`IntrospectorBuilder::jwt_responses`](super::IntrospectorBuilder::jwt_responses).
//!
//! Checked here (RFC 9701 §5): the media type; a JWS, not a JWE; header `typ`
//! `token-introspection+jwt`; the signature, by a key of the issuer's key set, through the
//! [`Verifier`]'s key store (its algorithm allow-list, each key's bound algorithm: never the
//! header's `alg` alone); `iss` the issuer; `aud` our client id; `iat` present and recent
//! (no older than [`max_age`](JwtResponses::max_age)); `exp`, when present, not passed. The
//! `token_introspection` member is then the RFC 7662 response, its original bytes validated
//! as a JSON one is ([`super::validate`]: duplicate members refused there too).

use serde_json::Value;

use crate::Verifier;
use crate::claims::UniqueObject;
use crate::error::{AuthErrorKind, InvalidTokenReason};
use crate::fetch;

/// The media type of a JWT introspection response (RFC 9701 §4), sent in `Accept`.
pub(super) const MEDIA_TYPE: &str = "application/token-introspection+jwt";

/// The `typ` header of a JWT introspection response (RFC 9701 §5), without the
/// `application/` prefix RFC 7515 §4.1.9 lets senders omit.
const TYP: &str = "token-introspection+jwt";

/// The allowance for clock skew between the authorization server and this resource server
/// in the freshness bound of a signed response's `iat`, beyond the leeway.
pub(super) const CLOCK_SKEW_ALLOWANCE: std::time::Duration = std::time::Duration::from_secs(60);

/// How JWT responses are checked.
#[derive(Clone)]
pub(super) struct JwtResponses {
    /// The issuer's verifier (single-issuer): its key store and algorithms.
    pub(super) verifier: Verifier,
    /// `iss` of the responses.
    pub(super) issuer: String,
    /// `aud` of the responses: our client id.
    pub(super) client_id: String,
    /// For `iat` and `exp` of the response.
    pub(super) leeway: f64,
    /// The oldest `iat` accepted, in seconds before now: the introspection call's timeout,
    /// the leeway and [`CLOCK_SKEW_ALLOWANCE`]. A response is made for one request; an older
    /// one is a replay (RFC 9701 binds no response to its request).
    pub(super) max_age: f64,
}

impl std::fmt::Debug for JwtResponses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtResponses")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Why a JWT response was refused (for the log and the 503's cause; never token content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refused {
    pub(super) reason: String,
    /// The issuer's keys could not be had (a passing outage), rather than a response that
    /// fails its checks (a misconfiguration, or an attack).
    pub(super) keys_unavailable: bool,
}

/// A refusal of a response that fails its checks.
fn refused(reason: impl Into<String>) -> Refused {
    Refused {
        reason: reason.into(),
        keys_unavailable: false,
    }
}

/// Whether the `typ` header names a JWT introspection response (case-insensitive, with or
/// without `application/`).
fn typ_ok(typ: Option<&str>) -> bool {
    typ.is_some_and(|t| {
        let t = t.strip_prefix("application/").unwrap_or(t);
        t.eq_ignore_ascii_case(TYP)
    })
}

/// Whether a `Content-Type` value is the JWT introspection media type (parameters such as
/// `charset` ignored).
pub(super) fn is_jwt_media_type(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(MEDIA_TYPE))
    })
}

impl JwtResponses {
    /// The RFC 7662 response inside a JWT response (the `token_introspection` member, as JSON
    /// bytes), once everything around it checks out, at `now` (seconds since the epoch).
    pub(super) async fn open(
        &self,
        content_type: Result<Option<&str>, super::client::NotAscii>,
        body: &[u8],
        now: f64,
    ) -> Result<Vec<u8>, Refused> {
        if !is_jwt_media_type(content_type.ok().flatten()) {
            return Err(refused(format!(
                "a signed response (Content-Type {MEDIA_TYPE}, RFC 9701) was asked for, but the \
                 endpoint answered Content-Type {}: unsigned answers are refused (is this client \
                 registered for signed responses, introspection_signed_response_alg?)",
                match content_type {
                    Ok(None) => "(none)".to_owned(),
                    Ok(Some(c)) => format!("{:?}", fetch::truncate(c, 100)),
                    Err(_) => "(not ASCII)".to_owned(),
                }
            )));
        }
        let text = std::str::from_utf8(body)
            .map_err(|_| refused("the signed response is not text"))?
            .trim_ascii();
        if text.starts_with('{') {
            return Err(refused(
                "the signed response is a JWS in the JSON serialization: RFC 9701 responses \
                 are JWTs, in the compact serialization (header.payload.signature)",
            ));
        }
        if text.bytes().filter(|&b| b == b'.').count() == 4 {
            return Err(refused(
                "the response is encrypted (a JWE): encrypted introspection responses are not \
                 supported; register this client at the authorization server without \
                 introspection_encrypted_response_alg",
            ));
        }
        let payload = match self.verifier.verify_signed(text, typ_ok).await {
            Some(Ok(payload)) => payload,
            Some(Err(e)) => {
                return Err(Refused {
                    reason: refusal(e.kind(), &e.to_string()),
                    keys_unavailable: e.kind() == AuthErrorKind::KeysUnavailable,
                });
            }
            None => {
                return Err(refused(
                    "the verifier for signed responses trusts several issuers",
                ));
            }
        };
        let UniqueObject(claims) = serde_json::from_slice(&payload).map_err(|_| {
            refused("the signed response's payload is not a JSON object with unique members")
        })?;
        match claims.get("iss") {
            Some(Value::String(iss)) if *iss == self.issuer => {}
            other => {
                return Err(refused(format!(
                    "the signed response's iss is {}, not the issuer {:?}",
                    shown(other),
                    fetch::redact_str(&self.issuer)
                )));
            }
        }
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => *a == self.client_id,
            Some(Value::Array(items)) => items.iter().any(|a| a.as_str() == Some(&self.client_id)),
            _ => false,
        };
        if !aud_ok {
            return Err(refused(format!(
                "the signed response's aud is {}, not our client id {:?}",
                shown(claims.get("aud")),
                fetch::truncate(&self.client_id, 100)
            )));
        }
        let date = |name: &str| match claims.get(name) {
            None => Ok(None),
            Some(v) => super::validate::numeric_date(v).map(Some).ok_or_else(|| {
                refused(format!("the signed response's {name} is not a NumericDate"))
            }),
        };
        match date("iat")? {
            None => return Err(refused("the signed response has no iat")),
            Some(iat) if iat > now + self.leeway => {
                return Err(refused(
                    "the signed response's iat is in the future (clock skew?)",
                ));
            }
            Some(iat) if iat < now - self.max_age => {
                return Err(refused(format!(
                    "the signed response's iat is {:.0} s old, older than the {:.0} s a fresh \
                     answer can be (a replayed response, or clock skew)",
                    now - iat,
                    self.max_age
                )));
            }
            Some(_) => {}
        }
        if date("exp")?.is_some_and(|exp| exp + self.leeway <= now) {
            return Err(refused("the signed response has expired (exp)"));
        }
        // The member's original bytes, not a re-serialized `Value` (which would have kept
        // only the last of duplicate members): `validate` refuses duplicates, as for JSON.
        #[derive(serde::Deserialize)]
        struct Inner {
            token_introspection: Option<Box<serde_json::value::RawValue>>,
        }
        let inner = serde_json::from_slice::<Inner>(&payload)
            .ok()
            .and_then(|i| i.token_introspection)
            .filter(|raw| raw.get().starts_with('{'));
        match inner {
            Some(raw) => Ok(raw.get().as_bytes().to_vec()),
            None => Err(refused(
                "the signed response has no token_introspection object",
            )),
        }
    }
}

/// A claim's value for the log: as JSON (so escaped), truncated.
fn shown(v: Option<&Value>) -> String {
    match v {
        None => "missing".to_owned(),
        Some(v) => fetch::truncate(&v.to_string(), 200).to_owned(),
    }
}

/// The log text for a signature check that failed.
fn refusal(kind: AuthErrorKind, detail: &str) -> String {
    let why = match kind {
        AuthErrorKind::InvalidToken(reason) => match reason {
            InvalidTokenReason::WrongType => {
                "its typ header is not token-introspection+jwt (RFC 9701 §5)"
            }
            InvalidTokenReason::AlgorithmNotAllowed => {
                "its alg header is not an algorithm the verifier allows"
            }
            InvalidTokenReason::UnknownKey => "no key of the issuer's key set has its kid",
            InvalidTokenReason::KeyAlgorithmMismatch => {
                "its alg header is not the algorithm of the key that would verify it"
            }
            InvalidTokenReason::BadSignature => "its signature does not verify",
            InvalidTokenReason::UnsupportedCritical => "its header has a crit member",
            _ => "it is not a well-formed JWS",
        },
        AuthErrorKind::KeysUnavailable => {
            return format!(
                "the signed response could not be checked: the issuer's keys are unavailable: \
                 {detail}"
            );
        }
        _ => "it could not be checked",
    };
    format!("the signed response was refused: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_typ_may_carry_the_application_prefix_in_any_case() {
        assert!(typ_ok(Some("token-introspection+jwt")));
        assert!(typ_ok(Some("application/Token-Introspection+JWT")));
        assert!(!typ_ok(None));
        assert!(!typ_ok(Some("JWT")));
        assert!(!typ_ok(Some("at+jwt")));
    }

    #[test]
    fn the_media_type_ignores_parameters_and_case() {
        assert!(is_jwt_media_type(Some(
            "application/token-introspection+jwt; charset=utf-8"
        )));
        assert!(is_jwt_media_type(Some(
            "Application/Token-Introspection+JWT"
        )));
        assert!(!is_jwt_media_type(Some("application/json")));
        assert!(!is_jwt_media_type(Some("application/jwt")));
        assert!(!is_jwt_media_type(None));
    }
}
