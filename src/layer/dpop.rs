//! The layer's DPoP part: finding the `DPoP` credentials of a request and checking them
//! (the checks themselves are [`crate::dpop`]'s).

use std::time::SystemTime;

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};

use super::future::Accepted;
use super::resolve::Introspection;
use crate::Claims;
use crate::dpop::{Dpop, RequestFacts};
use crate::error::{AuthError, DpopProofReason};
use crate::extract::is_b64token;
use crate::verify::Verifier;

/// What the layer does with a DPoP-bound token (`cnf.jkt`) sent with the `Bearer` scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BearerRule {
    /// DPoP is allowed or required: refused, pointing at the `DPoP` scheme (RFC 9449 §7.2).
    Downgrade,
    /// No `.dpop(..)` at all: refused, since this layer checks no proof. The binding is the
    /// token's point; accepting it unchecked would make a stolen bound token a bearer one.
    Unconfigured,
    /// `.dpop(..)` with [`DpopMode::Off`](crate::dpop::DpopMode::Off): accepted unchecked.
    Unchecked,
}

impl BearerRule {
    /// Checks verified `claims` of a token sent as `Bearer`.
    pub(crate) fn check(self, claims: &Claims) -> Result<(), AuthError> {
        match self {
            Self::Downgrade => Dpop::check_bearer(claims),
            Self::Unconfigured => crate::dpop::refuse_unchecked_binding(claims),
            Self::Unchecked => Ok(()),
        }
    }
}

/// The `DPoP` request header.
const DPOP: &str = "dpop";

/// The token and proof of a request made with the `DPoP` scheme (RFC 9449 §7.1):
/// `Authorization: DPoP <token68>` and exactly one `DPoP` header holding one proof.
/// `Ok(None)` when the request does not use the `DPoP` scheme.
pub(crate) fn dpop_credentials(headers: &HeaderMap) -> Result<Option<(&str, &str)>, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        // None, or two `Authorization` headers (the bearer path refuses those).
        return Ok(None);
    };
    let bytes = value.as_bytes();
    let Some((scheme, rest)) = bytes.split_at_checked(4) else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case(b"dpop") || !matches!(rest.first(), None | Some(b' ')) {
        return Ok(None);
    }
    let malformed = |detail| Err(AuthError::malformed_request(detail).dpop_scheme());
    let token = match std::str::from_utf8(rest.get(1..).unwrap_or_default()) {
        Ok(t) if is_b64token(t) => t,
        _ => return malformed("the DPoP credential is not one token after one space"),
    };
    let mut proofs = headers.get_all(DPOP).iter();
    let proof = match (proofs.next(), proofs.next()) {
        (None, _) => {
            return Err(AuthError::invalid_dpop_proof(DpopProofReason::Missing));
        }
        (Some(_), Some(_)) => {
            return Err(AuthError::invalid_dpop_proof(
                DpopProofReason::MultipleProofs,
            ));
        }
        (Some(p), None) => p,
    };
    let proof = proof.as_bytes();
    if proof.contains(&b',') {
        // Two proofs folded into one header.
        return Err(AuthError::invalid_dpop_proof(
            DpopProofReason::MultipleProofs,
        ));
    }
    // A compact JWS: base64url parts and dots only. (The size bound is the checker's, and
    // is applied before any parsing.)
    match std::str::from_utf8(proof) {
        Ok(p)
            if !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) =>
        {
            Ok(Some((token, p)))
        }
        _ => Err(AuthError::invalid_dpop_proof(DpopProofReason::Malformed)),
    }
}

/// Verifies a `DPoP` request: the token (the verified-token cache first), then every proof
/// check, on every request.
pub(crate) async fn verify(
    verifier: Verifier,
    introspection: Introspection,
    dpop: Dpop,
    token: String,
    proof: String,
    method: http::Method,
    htu: String,
) -> Result<Accepted, AuthError> {
    let claims = match introspection.cached(&verifier, token.as_bytes()) {
        Some(answer) => answer,
        None => introspection.resolve(&verifier, &token).await,
    }
    .map_err(AuthError::dpop_scheme)?;
    let facts =
        RequestFacts::new(method.as_str(), &htu, &proof, SystemTime::now()).access_token(&token);
    let (confirmation, next_nonce) = dpop.check(&facts, &claims).await?.into_parts();
    Ok(Accepted {
        claims,
        dpop: Some(confirmation),
        nonce: next_nonce.and_then(|n| HeaderValue::from_str(&n).ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuthErrorKind;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        h
    }

    fn kind(pairs: &[(&str, &str)]) -> Result<Option<(String, String)>, AuthErrorKind> {
        dpop_credentials(&headers(pairs))
            .map(|o| o.map(|(t, p)| (t.to_owned(), p.to_owned())))
            .map_err(|e| e.kind())
    }

    #[test]
    fn the_dpop_scheme_with_one_proof_gives_token_and_proof() {
        assert_eq!(
            kind(&[("authorization", "DPoP tok.en"), ("dpop", "a.b.c")]),
            Ok(Some(("tok.en".into(), "a.b.c".into())))
        );
        assert_eq!(
            kind(&[("authorization", "dpop tok"), ("dpop", "a.b.c")]),
            Ok(Some(("tok".into(), "a.b.c".into())))
        );
    }

    #[test]
    fn other_schemes_are_not_dpop() {
        assert_eq!(kind(&[("authorization", "Bearer tok")]), Ok(None));
        assert_eq!(kind(&[("authorization", "DPoPx tok")]), Ok(None));
        assert_eq!(kind(&[]), Ok(None));
    }

    #[test]
    fn a_dpop_credential_without_one_token_is_malformed() {
        for v in ["DPoP", "DPoP ", "DPoP  tok", "DPoP a b"] {
            assert_eq!(
                kind(&[("authorization", v), ("dpop", "a.b.c")]),
                Err(AuthErrorKind::MalformedRequest),
                "{v}"
            );
        }
    }

    #[test]
    fn two_dpop_headers_or_two_proofs_in_one_are_refused() {
        let two = DpopProofReason::MultipleProofs;
        assert_eq!(
            kind(&[
                ("authorization", "DPoP t"),
                ("dpop", "a.b.c"),
                ("dpop", "d.e.f")
            ]),
            Err(AuthErrorKind::InvalidDpopProof(two))
        );
        assert_eq!(
            kind(&[("authorization", "DPoP t"), ("dpop", "a.b.c, d.e.f")]),
            Err(AuthErrorKind::InvalidDpopProof(two))
        );
    }

    #[test]
    fn a_dpop_request_without_a_proof_is_refused() {
        assert_eq!(
            kind(&[("authorization", "DPoP t")]),
            Err(AuthErrorKind::InvalidDpopProof(DpopProofReason::Missing))
        );
    }
}
