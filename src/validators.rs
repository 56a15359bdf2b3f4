//! Ready-made claim checks for [`VerifierBuilder::validate`](crate::VerifierBuilder::validate).
//!
//! Each helper returns a closure that runs after the built-in checks passed (on every
//! request, cache hits included) and refuses the token with
//! [`AuthError::rejected`](crate::AuthError::rejected): 401 `invalid_token`, reason
//! [`Rejected`](crate::InvalidTokenReason::Rejected), with a fixed description that says what
//! was missing (never the token's values).
//!
//! | helper | accepts the token when | `error_description` otherwise |
//! |---|---|---|
//! | [`client_credentials_only`] | `gty` is `"client-credentials"` (Auth0's machine-to-machine tokens) | `the token was not issued by the client credentials grant` |
//! | [`allowed_azp`] | the authorized party (`azp`, or `client_id` without `azp`) is in the list | `the token's authorized party is not allowed` |
//! | [`require_org_id`] | `org_id` (Auth0 organizations) equals the given one | `the token is not for the required organization` |
//!
//! ```
//! # #[cfg(feature = "aws-lc-rs")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use bearer_guard::{AuthErrorKind, InvalidTokenReason, Verifier, validators};
//!
//! let secret = b"an-example-secret-of-at-least-32-bytes!!";
//! let verifier = Verifier::builder()
//!     .issuer("https://issuer.example/")
//!     .audience("urn:worldmappers")
//!     .hmac_secret(secret)
//!     .validate(validators::client_credentials_only())
//!     .validate(validators::allowed_azp(["gift-deliveries"]))
//!     .validate(validators::require_org_id("org_north_pole"))
//!     .build()
//!     .unwrap();
//!
//! # use base64::Engine as _;
//! # let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
//! # let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
//! # let sign = |claims: serde_json::Value| {
//! #     let msg = format!("{}.{}", b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#), b64.encode(claims.to_string()));
//! #     let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
//! #     format!("{msg}.{}", b64.encode(aws_lc_rs::hmac::sign(&key, msg.as_bytes())))
//! # };
//! let m2m = serde_json::json!({
//!     "iss": "https://issuer.example/", "aud": "urn:worldmappers", "exp": now + 600,
//!     "gty": "client-credentials", "azp": "gift-deliveries", "org_id": "org_north_pole",
//! });
//! assert!(verifier.verify(&sign(m2m.clone())).await.is_ok());
//!
//! let mut other_org = m2m;
//! other_org["org_id"] = "org_south_pole".into();
//! let err = verifier.verify(&sign(other_org)).await.unwrap_err();
//! assert_eq!(err.kind(), AuthErrorKind::InvalidToken(InvalidTokenReason::Rejected));
//! assert_eq!(err.to_string(), "the token is not for the required organization");
//! # }
//! # #[cfg(not(feature = "aws-lc-rs"))]
//! # fn main() {}
//! ```

use std::collections::HashSet;

use crate::claims::Claims;
use crate::error::AuthError;

/// The `error_description` of [`client_credentials_only`].
pub const NOT_CLIENT_CREDENTIALS: &str = "the token was not issued by the client credentials grant";
/// The `error_description` of [`allowed_azp`].
pub const AZP_NOT_ALLOWED: &str = "the token's authorized party is not allowed";
/// The `error_description` of [`require_org_id`].
pub const WRONG_ORGANIZATION: &str = "the token is not for the required organization";

/// Accepts only tokens with `gty` equal to `"client-credentials"`: Auth0's tokens obtained
/// by the client credentials grant (machine-to-machine), not on behalf of a user.
pub fn client_credentials_only() -> impl Fn(&Claims) -> Result<(), AuthError> + Send + Sync + 'static
{
    |claims: &Claims| match claims.get("gty").and_then(|v| v.as_str()) {
        Some("client-credentials") => Ok(()),
        _ => Err(AuthError::rejected(NOT_CLIENT_CREDENTIALS)),
    }
}

/// Accepts only tokens whose authorized party is one of `clients`: the `azp` claim, or
/// `client_id` (RFC 9068) when there is no `azp`. A token naming neither is refused, and so is
/// every token when `clients` is empty.
pub fn allowed_azp<I, S>(
    clients: I,
) -> impl Fn(&Claims) -> Result<(), AuthError> + Send + Sync + 'static
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let allowed: HashSet<String> = clients.into_iter().map(Into::into).collect();
    move |claims: &Claims| {
        let party = match claims.get("azp") {
            Some(azp) => azp.as_str(),
            None => claims.get("client_id").and_then(|v| v.as_str()),
        };
        match party {
            Some(p) if allowed.contains(p) => Ok(()),
            _ => Err(AuthError::rejected(AZP_NOT_ALLOWED)),
        }
    }
}

/// Accepts only tokens whose `org_id` equals `org_id` exactly, as Auth0 issues for
/// machine-to-machine access to an organization (`org_…`). A token without `org_id` is
/// refused.
pub fn require_org_id(
    org_id: impl Into<String>,
) -> impl Fn(&Claims) -> Result<(), AuthError> + Send + Sync + 'static {
    let org_id: String = org_id.into();
    move |claims: &Claims| match claims.get("org_id").and_then(|v| v.as_str()) {
        Some(org) if org == org_id => Ok(()),
        _ => Err(AuthError::rejected(WRONG_ORGANIZATION)),
    }
}
