//! The introspection response (RFC 7662 §2.2), validated rather than trusted: `active`,
//! the time claims with the leeway, `iss` and `aud` against the configuration, `scope`;
//! every member then reaches [`Claims`] (`client_id`, `sub`, `cnf`, …).

use std::time::Duration;

use serde_json::Value;

use super::cache::CachedAnswer;
use crate::claims::{ClaimShape, ReadError, ScopeSource, UniqueObject};
use crate::error::InvalidTokenReason;

/// What the configuration requires of an active token.
#[derive(Debug, Clone)]
pub(super) struct Rules {
    /// `iss`, when the response has one, must be this; without one, this is the issuer.
    pub(super) issuer: String,
    /// `aud` must contain one of these.
    pub(super) audiences: Vec<String>,
    /// Accept a response without `aud` (it must still match when present).
    pub(super) allow_missing_audience: bool,
    pub(super) leeway: Duration,
}

impl Rules {
    /// Whether a cached active answer's claims still meet this configuration: its `iss` the
    /// issuer, its `aud` one of the audiences (or none, when allowed). Checked at every use
    /// of an answer, so that an entry from a shared store written under another
    /// configuration is refused rather than trusted.
    pub(super) fn admits(&self, claims: &crate::Claims) -> Result<(), InvalidTokenReason> {
        if claims.issuer() != self.issuer {
            return Err(InvalidTokenReason::WrongIssuer);
        }
        let aud = claims.audience();
        let ok = if aud.is_empty() {
            self.allow_missing_audience
        } else {
            aud.iter().any(|a| self.audiences.contains(a))
        };
        if ok {
            Ok(())
        } else {
            Err(InvalidTokenReason::WrongAudience)
        }
    }
}

/// A NumericDate member of an introspection answer, plain or signed: a finite number of
/// seconds from 0 up to 9999-12-31T23:59:59Z (the bound JWTs have), or `None`.
pub(super) fn numeric_date(v: &Value) -> Option<f64> {
    v.as_f64()
        .filter(|d| d.is_finite() && (0.0..=crate::claims::MAX_DATE).contains(d))
}

/// A response the endpoint should not have sent: not JSON, not an object, a duplicate
/// member, no boolean `active`. Answered 503 (the server could not be understood), never
/// cached. The text is for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Nonsense(pub(super) &'static str);

/// The verdict on a response body at `now` (seconds since the Unix epoch): an answer to
/// cache (active with its claims, or refused with the reason), and for an active token its
/// `exp`.
pub(super) fn validate(
    body: &[u8],
    rules: &Rules,
    now: f64,
) -> Result<(CachedAnswer, Option<f64>), Nonsense> {
    let UniqueObject(mut members) = serde_json::from_slice(body)
        .map_err(|_| Nonsense("the response is not a JSON object with unique members"))?;
    match members.remove("active") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => {
            return Ok((CachedAnswer::refused(InvalidTokenReason::Inactive), None));
        }
        _ => return Err(Nonsense("the response has no boolean `active` member")),
    }
    let refused = |reason| Ok((CachedAnswer::refused(reason), None));
    let date = |name: &str| match members.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => numeric_date(v)
            .map(Some)
            .ok_or(InvalidTokenReason::InvalidClaim),
    };
    let (exp, nbf, iat) = match (date("exp"), date("nbf"), date("iat")) {
        (Ok(e), Ok(n), Ok(i)) => (e, n, i),
        _ => return refused(InvalidTokenReason::InvalidClaim),
    };
    let leeway = rules.leeway.as_secs_f64();
    let Some(exp) = exp else {
        // Without `exp` nothing bounds the token's life or the cache entry's.
        return refused(InvalidTokenReason::MissingClaim);
    };
    if exp + leeway <= now {
        return refused(InvalidTokenReason::Expired);
    }
    if nbf.is_some_and(|n| n > now + leeway) {
        return refused(InvalidTokenReason::NotYetValid);
    }
    if iat.is_some_and(|i| i > now + leeway) {
        return refused(InvalidTokenReason::IssuedInFuture);
    }
    match members.get("iss") {
        None => {
            members.insert("iss".into(), Value::String(rules.issuer.clone()));
        }
        Some(Value::String(iss)) if *iss == rules.issuer => {}
        Some(_) => return refused(InvalidTokenReason::WrongIssuer),
    }
    let audience_ok = match members.get("aud") {
        None | Some(Value::Null) => rules.allow_missing_audience,
        Some(Value::String(a)) => rules.audiences.iter().any(|c| c == a),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .any(|a| rules.audiences.iter().any(|c| c == a)),
        Some(_) => false,
    };
    if !audience_ok {
        return refused(InvalidTokenReason::WrongAudience);
    }
    // Every other member is kept as the claims' JSON, read as a JWT payload is read.
    let text = Value::Object(members).to_string();
    match crate::claims::from_introspection(
        text.clone(),
        None,
        &[ScopeSource::Claim("scope".into())],
    ) {
        Ok(claims) => Ok((CachedAnswer::active(text.into(), claims), Some(exp))),
        Err(ReadError::Shape(ClaimShape::Missing(_))) => refused(InvalidTokenReason::MissingClaim),
        Err(ReadError::Shape(ClaimShape::Invalid(_)) | ReadError::Malformed) => {
            refused(InvalidTokenReason::InvalidClaim)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 1_800_000_000.0;

    fn rules() -> Rules {
        Rules {
            issuer: "https://as.example/".into(),
            audiences: vec!["urn:api".into()],
            allow_missing_audience: false,
            leeway: Duration::from_secs(30),
        }
    }

    fn verdict(body: &str) -> Result<Result<crate::Claims, InvalidTokenReason>, Nonsense> {
        validate(body.as_bytes(), &rules(), NOW).map(|(a, _)| a.outcome().cloned())
    }

    fn refusal(body: &str) -> InvalidTokenReason {
        verdict(body).expect("an answer").expect_err("refused")
    }

    #[test]
    fn an_active_response_becomes_claims_with_scopes_client_and_cnf() {
        let c = verdict(
            r#"{"active":true,"exp":1800000100,"aud":"urn:api","scope":"read write",
                "client_id":"cli","sub":"svc","cnf":{"jkt":"abc"},"org":"x"}"#,
        )
        .expect("answer")
        .expect("active");
        assert_eq!(c.issuer(), "https://as.example/", "the configured issuer");
        assert!(c.scopes().contains_all(["read", "write"]));
        assert_eq!(c.client_id(), Some("cli"));
        assert_eq!(c.subject(), Some("svc"));
        assert_eq!(c.confirmation_jkt(), Some("abc"));
        assert_eq!(c.get("org"), Some(&Value::from("x")));
        assert_eq!(c.get("active"), None);
        assert!(c.is_introspected());
    }

    #[test]
    fn an_inactive_response_is_refused_as_inactive() {
        assert_eq!(refusal(r#"{"active":false}"#), InvalidTokenReason::Inactive);
    }

    #[test]
    fn an_active_response_past_its_exp_is_expired() {
        assert_eq!(
            refusal(r#"{"active":true,"exp":1799999900,"aud":"urn:api"}"#),
            InvalidTokenReason::Expired
        );
        // Within the leeway: accepted.
        assert!(
            verdict(r#"{"active":true,"exp":1799999990,"aud":"urn:api"}"#)
                .expect("answer")
                .is_ok()
        );
    }

    #[test]
    fn nbf_and_iat_in_the_future_are_refused() {
        assert_eq!(
            refusal(r#"{"active":true,"exp":1800000100,"nbf":1800000060,"aud":"urn:api"}"#),
            InvalidTokenReason::NotYetValid
        );
        assert_eq!(
            refusal(r#"{"active":true,"exp":1800000100,"iat":1800000060,"aud":"urn:api"}"#),
            InvalidTokenReason::IssuedInFuture
        );
    }

    #[test]
    fn a_response_without_exp_is_refused() {
        assert_eq!(
            refusal(r#"{"active":true,"aud":"urn:api"}"#),
            InvalidTokenReason::MissingClaim
        );
        assert_eq!(
            refusal(r#"{"active":true,"exp":"soon","aud":"urn:api"}"#),
            InvalidTokenReason::InvalidClaim
        );
    }

    #[test]
    fn another_issuer_or_audience_is_refused() {
        assert_eq!(
            refusal(r#"{"active":true,"exp":1800000100,"aud":"urn:api","iss":"https://evil/"}"#),
            InvalidTokenReason::WrongIssuer
        );
        assert_eq!(
            refusal(r#"{"active":true,"exp":1800000100,"aud":["urn:other"]}"#),
            InvalidTokenReason::WrongAudience
        );
        assert_eq!(
            refusal(r#"{"active":true,"exp":1800000100}"#),
            InvalidTokenReason::WrongAudience
        );
    }

    #[test]
    fn a_missing_audience_passes_only_when_allowed() {
        let mut r = rules();
        r.allow_missing_audience = true;
        let (a, _) = validate(br#"{"active":true,"exp":1800000100}"#, &r, NOW).expect("answer");
        assert!(a.is_active());
        let (a, _) =
            validate(br#"{"active":true,"exp":1800000100,"aud":"x"}"#, &r, NOW).expect("answer");
        assert!(!a.is_active(), "a present aud still has to match");
    }

    #[test]
    fn a_bad_scope_is_an_invalid_claim() {
        assert_eq!(
            refusal(r#"{"active":true,"exp":1800000100,"aud":"urn:api","scope":42}"#),
            InvalidTokenReason::InvalidClaim
        );
    }

    #[test]
    fn nonsense_is_not_an_answer() {
        for body in [
            "",
            "<html>",
            "[]",
            r#"{"active":"true"}"#,
            r#"{"exp":1}"#,
            r#"{"active":true,"active":false}"#,
        ] {
            assert!(verdict(body).is_err(), "{body}");
        }
    }
}
