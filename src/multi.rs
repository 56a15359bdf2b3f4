//! Several trusted issuers behind one [`Verifier`]: [`Verifier::multi`].
//!
//! Each issuer keeps its whole configuration (audiences, key source, algorithms, limits,
//! validators, key store and verified-token cache). The token's `iss`, read from the payload
//! **without trusting it**, only selects which configuration verifies the token: the
//! selected verifier then checks everything, the signature with that issuer's keys and `iss`
//! itself included. So a token signed by one issuer but claiming another's `iss` is checked
//! against the other's keys, and fails.
//!
//! - The selection is an exact string match (trailing slash included), never a prefix.
//! - A token whose `iss` is no configured issuer is refused (`invalid_token`,
//!   [`WrongIssuer`](crate::InvalidTokenReason::WrongIssuer)) before any key lookup, so it
//!   never causes a network request.
//! - At most [`MAX_ISSUERS`] issuers.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

use crate::claims::Claims;
use crate::error::{AuthError, ConfigError, InvalidTokenReason};
use crate::jwks::B64;
use crate::key_store::KeyHealth;
use crate::verify::{Inner, Repr, Verifier};

/// The most issuers one [`Verifier::multi`] accepts.
pub const MAX_ISSUERS: usize = 32;

/// The issuers of a multi-issuer verifier.
pub(crate) struct Issuers {
    /// In configuration order (never empty).
    order: Vec<Arc<Inner>>,
    by_issuer: HashMap<String, Arc<Inner>>,
    /// The largest `max_token_bytes` of the issuers: the bound before the payload is read.
    max_token_bytes: usize,
}

impl fmt::Debug for Issuers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field(
                "issuers",
                &self.order.iter().map(|i| i.issuer()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// One verifier trusting several issuers, each with its own configuration (build each
    /// with [`Verifier::builder`]). The token's unverified `iss` selects the configuration
    /// that verifies it, by exact match; an unknown issuer is refused with
    /// [`WrongIssuer`](crate::InvalidTokenReason::WrongIssuer) before any key lookup. See
    /// the [module docs](crate::multi) (and the clones share key stores and caches with the
    /// verifiers given).
    ///
    /// A multi-issuer verifier is a [`Verifier`]: give it to
    /// [`JwtAuthLayer::new`](crate::JwtAuthLayer::new) as any other. Multi-issuer
    /// verifiers given here are flattened.
    ///
    /// ```
    /// # #[cfg(feature = "aws-lc-rs")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use bearer_guard::{AuthErrorKind, InvalidTokenReason, Verifier};
    ///
    /// // Shared secrets keep the example self-contained.
    /// let staff = Verifier::builder()
    ///     .issuer("https://staff.example/")
    ///     .audience("urn:worldmappers")
    ///     .hmac_secret(b"the-staff-issuer-secret-of-32-bytes!!!!")
    ///     .build()
    ///     .unwrap();
    /// let partners = Verifier::builder()
    ///     .issuer("https://partners.example/")
    ///     .audience("urn:worldmappers:partners")
    ///     .hmac_secret(b"the-partner-issuer-secret-of-32-bytes!!")
    ///     .build()
    ///     .unwrap();
    /// let verifier = Verifier::multi([staff, partners]).unwrap();
    /// assert_eq!(verifier.issuers(), ["https://staff.example/", "https://partners.example/"]);
    ///
    /// # use base64::Engine as _;
    /// # let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    /// # let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    /// # let sign = |secret: &[u8], claims: serde_json::Value| {
    /// #     let msg = format!("{}.{}", b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#), b64.encode(claims.to_string()));
    /// #     let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    /// #     format!("{msg}.{}", b64.encode(aws_lc_rs::hmac::sign(&key, msg.as_bytes())))
    /// # };
    /// let partner_token = sign(b"the-partner-issuer-secret-of-32-bytes!!", serde_json::json!({
    ///     "iss": "https://partners.example/", "aud": "urn:worldmappers:partners", "exp": now + 600,
    /// }));
    /// assert!(verifier.verify(&partner_token).await.is_ok());
    ///
    /// // Signed by the partners' issuer, claiming to be the staff one: checked with the
    /// // staff issuer's key, refused.
    /// let forged = sign(b"the-partner-issuer-secret-of-32-bytes!!", serde_json::json!({
    ///     "iss": "https://staff.example/", "aud": "urn:worldmappers", "exp": now + 600,
    /// }));
    /// let err = verifier.verify(&forged).await.unwrap_err();
    /// assert_eq!(err.kind(), AuthErrorKind::InvalidToken(InvalidTokenReason::BadSignature));
    ///
    /// // An issuer that is not configured (not even by prefix).
    /// let unknown = sign(b"the-staff-issuer-secret-of-32-bytes!!!!", serde_json::json!({
    ///     "iss": "https://staff.example/evil", "aud": "urn:worldmappers", "exp": now + 600,
    /// }));
    /// let err = verifier.verify(&unknown).await.unwrap_err();
    /// assert_eq!(err.kind(), AuthErrorKind::InvalidToken(InvalidTokenReason::WrongIssuer));
    /// # }
    /// # #[cfg(not(feature = "aws-lc-rs"))]
    /// # fn main() {}
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError::OutOfRange`] for no verifier or more than [`MAX_ISSUERS`] issuers;
    /// [`ConfigError::InvalidValue`] for an issuer configured twice.
    pub fn multi<I>(verifiers: I) -> Result<Verifier, ConfigError>
    where
        I: IntoIterator<Item = Verifier>,
    {
        let mut order: Vec<Arc<Inner>> = Vec::new();
        for v in verifiers {
            match v.repr() {
                Repr::One(inner) if inner.issuer_is_discovered() => {
                    return Err(ConfigError::InvalidValue {
                        what: "issuer",
                        value: inner.issuer().to_owned(),
                        reason: "an issuer taken from discovery cannot join a multi-issuer \
                                 verifier: configure it with `.issuer(..)`",
                    });
                }
                Repr::One(inner) => order.push(inner.clone()),
                Repr::Many(many) => order.extend(many.order.iter().cloned()),
            }
            if order.len() > MAX_ISSUERS {
                break;
            }
        }
        if order.is_empty() || order.len() > MAX_ISSUERS {
            return Err(ConfigError::OutOfRange {
                what: "issuers",
                value: if order.is_empty() {
                    "0".to_owned()
                } else {
                    format!("more than {MAX_ISSUERS}")
                },
                range: "1 to 32",
            });
        }
        let mut by_issuer = HashMap::with_capacity(order.len());
        for inner in &order {
            if by_issuer
                .insert(inner.issuer().to_owned(), inner.clone())
                .is_some()
            {
                return Err(ConfigError::InvalidValue {
                    what: "issuer",
                    value: inner.issuer().to_owned(),
                    reason: "configured twice in a multi-issuer verifier",
                });
            }
        }
        let max_token_bytes = order
            .iter()
            .map(|i| i.max_token_bytes())
            .max()
            .unwrap_or(crate::DEFAULT_MAX_TOKEN_BYTES);
        Ok(Verifier::from_repr(Repr::Many(Arc::new(Issuers {
            order,
            by_issuer,
            max_token_bytes,
        }))))
    }

    /// The trusted issuers, in configuration order (one for a single-issuer verifier).
    pub fn issuers(&self) -> Vec<&str> {
        match self.repr() {
            Repr::One(inner) => vec![inner.issuer()],
            Repr::Many(many) => many.order.iter().map(|i| i.issuer()).collect(),
        }
    }

    /// The verifier of one trusted issuer (exact match), sharing its key store and cache:
    /// for its audiences, its [`key_health`](Self::key_health), a
    /// [`refresh_keys`](Self::refresh_keys) of its own. `None` for an issuer not trusted.
    pub fn for_issuer(&self, issuer: &str) -> Option<Verifier> {
        match self.repr() {
            Repr::One(inner) => (inner.issuer() == issuer).then(|| self.clone()),
            Repr::Many(many) => many
                .by_issuer
                .get(issuer)
                .map(|inner| Verifier::from_repr(Repr::One(inner.clone()))),
        }
    }
}

/// The claims object, for its `iss` only: a JSON object (nothing else), whose other members
/// are skipped; a duplicate `iss` is refused.
struct Peek {
    iss: Option<serde_json::Value>,
}

impl<'de> Deserialize<'de> for Peek {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Peek;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Peek, A::Error> {
                let mut iss = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key == "iss" {
                        if iss.is_some() {
                            return Err(de::Error::duplicate_field("iss"));
                        }
                        iss = Some(map.next_value::<serde_json::Value>()?);
                    } else {
                        map.next_value::<de::IgnoredAny>()?;
                    }
                }
                Ok(Peek { iss })
            }
        }
        d.deserialize_map(ObjectVisitor)
    }
}

/// The token's `iss`, read from the payload without verifying anything.
fn unverified_issuer(token: &str) -> Result<String, AuthError> {
    let malformed = || AuthError::invalid(InvalidTokenReason::Malformed);
    let (_, p, _) = crate::verify::compact_parts(token).ok_or_else(malformed)?;
    let payload = B64.decode(p).map_err(|_| malformed())?;
    let peek: Peek = serde_json::from_slice(&payload).map_err(|_| malformed())?;
    match peek.iss {
        Some(serde_json::Value::String(iss)) => Ok(iss),
        None | Some(serde_json::Value::Null) => Err(AuthError::invalid_with(
            InvalidTokenReason::MissingClaim,
            "the token lacks the claim 'iss'",
        )),
        Some(_) => Err(AuthError::invalid_with(
            InvalidTokenReason::InvalidClaim,
            "the token's claim 'iss' is invalid",
        )),
    }
}

impl Issuers {
    pub(crate) fn issuer(&self) -> &str {
        self.order.first().map_or("", |i| i.issuer())
    }

    pub(crate) fn audiences(&self) -> &[String] {
        self.order.first().map_or(&[], |i| i.audiences())
    }

    pub(crate) async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        if token.len() > self.max_token_bytes {
            return Err(AuthError::invalid(InvalidTokenReason::TooLarge));
        }
        let iss = unverified_issuer(token)?;
        match self.by_issuer.get(&iss) {
            Some(inner) => inner.verify(token).await,
            None => Err(AuthError::invalid(InvalidTokenReason::WrongIssuer)),
        }
    }

    /// The worst health: missing if any issuer's keys are, else stale if any is (since the
    /// earliest), else fresh; keys summed.
    pub(crate) fn key_health(&self) -> KeyHealth {
        let mut keys = 0;
        let mut stale: Option<SystemTime> = None;
        for inner in &self.order {
            match inner.key_health() {
                KeyHealth::Missing => return KeyHealth::Missing,
                KeyHealth::Fresh { keys: n } => keys += n,
                KeyHealth::Stale { keys: n, since } => {
                    keys += n;
                    stale = Some(stale.map_or(since, |s| s.min(since)));
                }
            }
        }
        match stale {
            Some(since) => KeyHealth::Stale { keys, since },
            None => KeyHealth::Fresh { keys },
        }
    }

    pub(crate) fn key_error(&self) -> Option<AuthError> {
        self.order.iter().find_map(|i| i.key_error())
    }

    pub(crate) fn jwks_fetches(&self) -> u64 {
        self.order.iter().map(|i| i.jwks_fetches()).sum()
    }

    /// Refreshes every issuer's keys at once; the first failure, if any, once all are done.
    pub(crate) async fn refresh_keys(&self) -> Result<(), AuthError> {
        let tasks: Vec<_> = self
            .order
            .iter()
            .map(|inner| {
                let inner = inner.clone();
                tokio::spawn(async move { inner.refresh_keys().await })
            })
            .collect();
        let mut result = Ok(());
        for task in tasks {
            let r = task
                .await
                .unwrap_or_else(|_| Err(AuthError::keys_unavailable(None)));
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(payload: &str) -> String {
        format!("eyJhbGciOiJSUzI1NiJ9.{}.c2ln", B64.encode(payload))
    }

    #[test]
    fn the_issuer_is_read_from_the_payload() {
        assert_eq!(
            unverified_issuer(&token(r#"{"iss":"https:\/\/a.example\/","aud":"x"}"#)).ok(),
            Some("https://a.example/".to_owned())
        );
        // An escaped member name is the same name.
        assert_eq!(
            unverified_issuer(&token(r#"{"\u0069ss":"https://a.example/"}"#)).ok(),
            Some("https://a.example/".to_owned())
        );
    }

    #[test]
    fn a_payload_without_a_string_issuer_is_refused() {
        let reason = |t: &str| match unverified_issuer(t).map_err(|e| e.kind()) {
            Err(crate::AuthErrorKind::InvalidToken(r)) => Some(r),
            _ => None,
        };
        assert_eq!(
            reason(&token(r#"{"aud":"x"}"#)),
            Some(InvalidTokenReason::MissingClaim)
        );
        assert_eq!(
            reason(&token(r#"{"iss":7}"#)),
            Some(InvalidTokenReason::InvalidClaim)
        );
        assert_eq!(
            reason(&token(r#"{"iss":"a","iss":"b"}"#)),
            Some(InvalidTokenReason::Malformed)
        );
        assert_eq!(reason(&token("[1]")), Some(InvalidTokenReason::Malformed));
        assert_eq!(reason("a.b"), Some(InvalidTokenReason::Malformed));
        assert_eq!(reason("a..c"), Some(InvalidTokenReason::Malformed));
        assert_eq!(reason("a.!!.c"), Some(InvalidTokenReason::Malformed));
    }
}
