//! `private_key_jwt` client authentication (RFC 7523 §2.2, OIDC Core §9): a short-lived JWT
//! signed with the client's private key, sent as `client_assertion`.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::EncodingKey;
use serde_json::json;

use super::error::{TokenError, TokenErrorKind};
use super::jws;
use crate::algorithm::{Algorithm, Family};
use crate::crypto;
use crate::error::ConfigError;

/// The `client_assertion_type` of a JWT assertion.
pub(super) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Lifetime of an assertion (each request signs a new one).
const ASSERTION_LIFETIME: Duration = Duration::from_secs(60);

/// The client's signing key. `Debug` never shows it.
#[derive(Clone)]
pub(crate) struct AssertionKey {
    alg: Algorithm,
    kid: Option<String>,
    key: EncodingKey,
}

impl fmt::Debug for AssertionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssertionKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl AssertionKey {
    /// Parses a PKCS#8 (or PKCS#1 / SEC1) PEM private key for `alg` and checks that it signs.
    pub(super) fn from_pem(
        alg: Algorithm,
        pem: &[u8],
        kid: Option<String>,
    ) -> Result<Self, ConfigError> {
        if !crypto::HAS_BACKEND {
            return Err(ConfigError::NoCryptoBackend);
        }
        let key = match alg.family() {
            Family::Rsa => EncodingKey::from_rsa_pem(pem),
            Family::Ec => EncodingKey::from_ec_pem(pem),
            Family::Okp => EncodingKey::from_ed_pem(pem),
            Family::Hmac => {
                return Err(ConfigError::AlgorithmNotUsable {
                    algorithm: alg,
                    reason: "private_key_jwt needs an asymmetric algorithm",
                });
            }
        }
        .map_err(|e| ConfigError::InvalidKey {
            key: "the private_key_jwt key".into(),
            reason: e.to_string(),
        })?;
        let this = Self { alg, kid, key };
        this.sign_bytes(b"bearer-guard key check")
            .map_err(|reason| ConfigError::InvalidKey {
                key: "the private_key_jwt key".into(),
                reason,
            })?;
        Ok(this)
    }

    /// A new assertion for `client_id` and `audience`: `iss` and `sub` the client id, a
    /// 60 s lifetime, a random `jti`.
    pub(super) fn assertion(&self, client_id: &str, audience: &str) -> Result<String, TokenError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut header = json!({"alg": self.alg.as_str(), "typ": "JWT"});
        if let (Some(kid), Some(h)) = (&self.kid, header.as_object_mut()) {
            h.insert("kid".into(), json!(kid));
        }
        let claims = json!({
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + ASSERTION_LIFETIME.as_secs(),
            "jti": format!("{:016x}{:016x}", random_u64(), random_u64()),
        });
        jws::sign_compact(self.alg, &self.key, &header, &claims).map_err(|reason| {
            TokenError::new(
                TokenErrorKind::InvalidResponse,
                format!("the client assertion could not be signed: {reason}"),
            )
        })
    }

    fn sign_bytes(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        jws::sign_bytes(self.alg, &self.key, message)
    }
}

/// 64 random bits (from the standard library's hash keys, a counter and the clock): for
/// `jti` uniqueness, not for secrets.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

#[cfg(all(
    test,
    feature = "dev-issuer",
    any(feature = "aws-lc-rs", feature = "rust-crypto")
))]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

    const RSA: &str = include_str!("../dev_issuer/keys/rsa-1.pem");
    const EC: &str = include_str!("../dev_issuer/keys/ec256-1.pem");

    #[test]
    fn an_assertion_names_the_client_and_the_audience() {
        let key = AssertionKey::from_pem(Algorithm::RS256, RSA.as_bytes(), Some("k1".into()))
            .expect("key");
        let jwt = key
            .assertion("svc", "https://idp.example.com/")
            .expect("signed");
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&B64.decode(parts[0]).expect("b64")).expect("json");
        let claims: serde_json::Value =
            serde_json::from_slice(&B64.decode(parts[1]).expect("b64")).expect("json");
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["kid"], "k1");
        assert_eq!(claims["iss"], "svc");
        assert_eq!(claims["sub"], "svc");
        assert_eq!(claims["aud"], "https://idp.example.com/");
        assert_eq!(
            claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat"),
            60
        );
        let again = key
            .assertion("svc", "https://idp.example.com/")
            .expect("signed");
        assert_ne!(jwt, again, "a fresh jti every time");
    }

    #[test]
    fn a_key_of_the_wrong_family_or_hmac_is_refused() {
        assert!(AssertionKey::from_pem(Algorithm::ES256, RSA.as_bytes(), None).is_err());
        assert!(AssertionKey::from_pem(Algorithm::ES256, EC.as_bytes(), None).is_ok());
        assert!(AssertionKey::from_pem(Algorithm::HS256, b"secret", None).is_err());
        assert!(AssertionKey::from_pem(Algorithm::RS256, b"not a pem", None).is_err());
    }

    #[test]
    fn debug_hides_the_key() {
        let key = AssertionKey::from_pem(Algorithm::ES256, EC.as_bytes(), None).expect("key");
        let shown = format!("{key:?}");
        assert!(
            shown.contains("<redacted>") && !shown.contains("PRIVATE"),
            "{shown}"
        );
    }
}
