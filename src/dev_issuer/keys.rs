//! Signing keys for the development issuer and for tests: a fixed pool of key pairs,
//! compiled in, so that tests are fast and need no key generation.
//!
//! These private keys are public knowledge (they ship in this crate's source). Never trust a
//! token signed by them outside tests and demos.

use std::fmt;

use base64::Engine as _;
use jsonwebtoken::EncodingKey;
use serde_json::{Value, json};

use crate::Algorithm;
use crate::crypto;
use crate::jwks::B64;

struct PoolKey {
    name: &'static str,
    pem: &'static str,
    public: fn() -> Value,
}

macro_rules! pool {
    ($($name:literal),* $(,)?) => {
        &[$(PoolKey {
            name: $name,
            pem: include_str!(concat!("keys/", $name, ".pem")),
            public: || public_jwk_of($name),
        }),*]
    };
}

const POOL: &[PoolKey] = pool!(
    "rsa-1", "rsa-2", "rsa-3", "rsa-4", "ec256-1", "ec256-2", "ec384-1", "ed-1", "ed-2"
);

fn public_jwk_of(name: &str) -> Value {
    static PUBLIC: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    let all = PUBLIC.get_or_init(|| {
        serde_json::from_str(include_str!("keys/public.json")).unwrap_or(Value::Null)
    });
    all.get(name).cloned().unwrap_or(Value::Null)
}

/// Why a [`SigningKey`] could not be made or used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningError(String);

impl fmt::Display for SigningError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SigningError {}

/// A private key that signs tokens, with its public JWK. From a fixed pool compiled into the
/// crate: **for tests and demos only**.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    public: Value,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Key number `index` of the pool for `alg` (RSA algorithms: 4 keys; ES256: 2;
    /// ES384: 1; EdDSA: 2), with `kid` as its key id.
    ///
    /// # Errors
    ///
    /// When the pool has no such key, or the algorithm is HMAC (use [`SigningKey::hmac`]).
    pub fn from_pool(
        alg: Algorithm,
        index: usize,
        kid: impl Into<String>,
    ) -> Result<Self, SigningError> {
        let prefix = match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => "rsa-",
            Algorithm::ES256 => "ec256-",
            Algorithm::ES384 => "ec384-",
            Algorithm::EdDSA => "ed-",
            _ => return Err(SigningError(format!("no pool key for {alg}"))),
        };
        let name = format!("{prefix}{}", index + 1);
        let key = POOL
            .iter()
            .find(|k| k.name == name)
            .ok_or_else(|| SigningError(format!("the pool has no key {name}")))?;
        let pem = key.pem.as_bytes();
        let encoding = match prefix {
            "rsa-" => EncodingKey::from_rsa_pem(pem),
            "ed-" => EncodingKey::from_ed_pem(pem),
            _ => EncodingKey::from_ec_pem(pem),
        }
        .map_err(|e| SigningError(e.to_string()))?;
        Ok(Self {
            kid: kid.into(),
            alg,
            encoding,
            public: (key.public)(),
        })
    }

    /// An HMAC key (HS256/384/512) with `secret`.
    ///
    /// # Errors
    ///
    /// When `alg` is not an HMAC algorithm.
    pub fn hmac(
        alg: Algorithm,
        secret: &[u8],
        kid: impl Into<String>,
    ) -> Result<Self, SigningError> {
        if !alg.is_symmetric() {
            return Err(SigningError(format!("{alg} is not an HMAC algorithm")));
        }
        Ok(Self {
            kid: kid.into(),
            alg,
            encoding: EncodingKey::from_secret(secret),
            public: json!({"kty": "oct", "k": B64.encode(secret)}),
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm it signs with.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The public JWK, with `kid`, `alg` and `use`.
    pub fn public_jwk(&self) -> Value {
        let mut jwk = self.public.clone();
        if let Some(o) = jwk.as_object_mut() {
            o.insert("kid".into(), json!(self.kid));
            o.insert("alg".into(), json!(self.alg.as_str()));
            o.insert("use".into(), json!("sig"));
        }
        jwk
    }

    /// Signs `claims` with the header `{"alg", "kid", "typ": "at+jwt"}`.
    ///
    /// # Errors
    ///
    /// When the backend cannot sign (no crypto backend, or an algorithm it lacks).
    pub fn sign(&self, claims: &Value) -> Result<String, SigningError> {
        let header = json!({"alg": self.alg.as_str(), "kid": self.kid, "typ": "at+jwt"});
        self.sign_raw(header.to_string().as_bytes(), claims.to_string().as_bytes())
    }

    /// Signs arbitrary header and payload bytes (for tests of hostile tokens).
    ///
    /// # Errors
    ///
    /// When the backend cannot sign.
    pub fn sign_raw(&self, header: &[u8], payload: &[u8]) -> Result<String, SigningError> {
        let message = format!("{}.{}", B64.encode(header), B64.encode(payload));
        let sig = self.sign_bytes(message.as_bytes())?;
        Ok(format!("{message}.{}", B64.encode(sig)))
    }

    /// The raw signature of `message`.
    ///
    /// # Errors
    ///
    /// When the backend cannot sign.
    pub fn sign_bytes(&self, message: &[u8]) -> Result<Vec<u8>, SigningError> {
        let provider =
            crypto::provider().ok_or_else(|| SigningError("no crypto backend".into()))?;
        let alg = crypto::to_jwt(self.alg)
            .ok_or_else(|| SigningError(format!("{} cannot sign with this backend", self.alg)))?;
        let signer = (provider.signer_factory)(&alg, &self.encoding)
            .map_err(|e| SigningError(e.to_string()))?;
        signer
            .try_sign(message)
            .map_err(|e| SigningError(e.to_string()))
    }
}

/// A JWK Set document publishing the public keys of `keys`.
pub fn jwk_set<'a>(keys: impl IntoIterator<Item = &'a SigningKey>) -> Value {
    json!({"keys": keys.into_iter().map(SigningKey::public_jwk).collect::<Vec<_>>()})
}

#[cfg(all(test, any(feature = "aws-lc-rs", feature = "rust-crypto")))]
mod tests {
    use super::*;

    #[test]
    fn every_pool_key_signs_and_its_public_jwk_verifies() {
        for (alg, n) in [
            (Algorithm::RS256, 4),
            (Algorithm::PS256, 1),
            (Algorithm::ES256, 2),
            (Algorithm::ES384, 1),
            (Algorithm::EdDSA, 2),
        ] {
            for i in 0..n {
                let k = SigningKey::from_pool(alg, i, "k").expect("pool key");
                let jwk = k.public_jwk();
                let key = crate::jwks::parse_jwk(&jwk, &Algorithm::DEFAULT_ALLOWED).expect("jwk");
                let sig = k.sign_bytes(b"hello").expect("sign");
                assert!(key.verify(b"hello", &sig), "{alg} #{i}");
                assert!(!key.verify(b"hellO", &sig), "{alg} #{i}");
            }
        }
    }
}
