//! DPoP on the client side (RFC 9449): [`DpopKey`], the key pair a client proves possession
//! of, and the proofs it signs (`DPoP` header JWTs); the latest server nonce per origin.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::EncodingKey;
use rand::{RngCore as _, TryRngCore as _};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use url::Url;

use super::jws;
use crate::algorithm::{Algorithm, Family};
use crate::crypto;
use crate::error::ConfigError;

/// The `typ` header of a DPoP proof (RFC 9449 §4.2).
pub const DPOP_JWT_TYPE: &str = "dpop+jwt";

/// The most origins whose latest `DPoP-Nonce` is remembered (an arbitrary one is forgotten
/// when a new origin comes in beyond this).
const MAX_NONCE_ORIGINS: usize = 64;
/// The longest `DPoP-Nonce` value kept (longer ones are ignored).
const MAX_NONCE_LEN: usize = 512;

/// The P-256 group order, big-endian: a private scalar must be in `1..n`.
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];
/// PKCS#8 v1 of a P-256 key, up to the 32-byte scalar (the public key is optional).
const P256_PKCS8_PREFIX: [u8; 35] = [
    0x30, 0x41, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
    0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x27, 0x30, 0x25, 0x02, 0x01,
    0x01, 0x04, 0x20,
];
/// PKCS#8 v1 of an Ed25519 key (RFC 8410), up to the 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The key pair a DPoP client holds (RFC 9449): it signs a proof for every request, and the
/// authorization server binds the tokens it issues to the key's thumbprint (`cnf.jkt`).
///
/// ES256 (P-256) by default, or EdDSA (Ed25519); generated at run time
/// ([`generate`](Self::generate)) or loaded from a PEM or JWK private key. Cheap to clone.
/// `Debug` shows the algorithm and the thumbprint, never the private key.
///
/// ```
/// # #[cfg(any(feature = "aws-lc-rs", feature = "rust-crypto"))]
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use bearer_guard::Algorithm;
/// use bearer_guard::client::DpopKey;
///
/// let key = DpopKey::generate(Algorithm::ES256)?;
/// assert_eq!(key.public_jwk()["kty"], "EC");
/// assert!(key.public_jwk().get("d").is_none()); // public members only
/// assert_eq!(key.thumbprint().len(), 43); // base64url(SHA-256), RFC 7638
///
/// // A proof for one request, bound to an access token (`ath`).
/// let proof = key.proof("GET", "https://api.example.com/api/directions?to=home", Some("token"), None)?;
/// assert_eq!(proof.split('.').count(), 3);
/// # Ok(()) }
/// # #[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
/// # fn main() {}
/// ```
#[derive(Clone)]
pub struct DpopKey {
    inner: Arc<KeyInner>,
}

struct KeyInner {
    alg: Algorithm,
    key: EncodingKey,
    jwk: Value,
    thumbprint: String,
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("alg", &self.inner.alg)
            .field("thumbprint", &self.inner.thumbprint)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

impl DpopKey {
    /// A new random key pair for `algorithm`: [`Algorithm::ES256`] (the usual choice) or
    /// [`Algorithm::EdDSA`] (Ed25519), from the operating system's random source.
    ///
    /// # Errors
    ///
    /// [`ConfigError::AlgorithmNotUsable`] for another algorithm,
    /// [`ConfigError::NoCryptoBackend`] without a crypto backend.
    pub fn generate(algorithm: Algorithm) -> Result<Self, ConfigError> {
        check_alg(algorithm)?;
        let mut rng = rand::rngs::OsRng;
        let mut secret = [0u8; 32];
        loop {
            rng.try_fill_bytes(&mut secret)
                .map_err(|e| invalid_key(format!("no random bytes: {e}")))?;
            // A P-256 scalar must be in 1..n (retried with a probability below 2^-32).
            if algorithm == Algorithm::EdDSA || scalar_in_range(&secret) {
                break;
            }
        }
        let key = Self::from_raw_private(algorithm, &secret);
        secret.fill(0);
        key
    }

    /// Loads a PEM private key (PKCS#8, or SEC1 for P-256) for `algorithm` (ES256 or
    /// EdDSA).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when the algorithm is not ES256 or EdDSA, or the PEM is not a
    /// private key of that algorithm.
    pub fn from_pem(algorithm: Algorithm, pem: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        check_alg(algorithm)?;
        let key = match algorithm.family() {
            Family::Okp => EncodingKey::from_ed_pem(pem.as_ref()),
            _ => EncodingKey::from_ec_pem(pem.as_ref()),
        }
        .map_err(|e| invalid_key(e.to_string()))?;
        Self::from_encoding_key(algorithm, key)
    }

    /// Loads a private JWK (RFC 7517): `{"kty":"EC","crv":"P-256","d":…,"x":…,"y":…}` or
    /// `{"kty":"OKP","crv":"Ed25519","d":…,"x":…}`. When the public members are given they
    /// must match `d`; an `alg` member, when given, must fit the key.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when the JWK is not JSON, not a P-256 or Ed25519 private key, or
    /// inconsistent. The message never contains `d`.
    pub fn from_jwk(jwk: &str) -> Result<Self, ConfigError> {
        let v: Value =
            serde_json::from_str(jwk).map_err(|_| invalid_key("the JWK is not JSON".into()))?;
        let text = |name: &str| v.get(name).and_then(Value::as_str);
        let algorithm = match (text("kty"), text("crv")) {
            (Some("EC"), Some("P-256")) => Algorithm::ES256,
            (Some("OKP"), Some("Ed25519")) => Algorithm::EdDSA,
            _ => {
                return Err(invalid_key(
                    "the JWK is neither an EC P-256 nor an OKP Ed25519 key".into(),
                ));
            }
        };
        if let Some(alg) = text("alg")
            && alg != algorithm.as_str()
        {
            return Err(invalid_key(format!(
                "the JWK's alg {alg:?} does not fit its key type"
            )));
        }
        let mut d = text("d")
            .and_then(|d| B64.decode(d).ok())
            .filter(|d| d.len() == 32)
            .ok_or_else(|| invalid_key("the JWK has no 32-byte private member d".into()))?;
        let secret: [u8; 32] = d.as_slice().try_into().unwrap_or([0; 32]);
        d.fill(0);
        if algorithm == Algorithm::ES256 && !scalar_in_range(&secret) {
            return Err(invalid_key("the JWK's d is not a P-256 scalar".into()));
        }
        let key = Self::from_raw_private(algorithm, &secret)?;
        for member in ["x", "y"] {
            if let (Some(given), Some(derived)) = (text(member), key.inner.jwk[member].as_str())
                && given != derived
            {
                return Err(invalid_key(format!(
                    "the JWK's {member} does not match its private key"
                )));
            }
        }
        Ok(key)
    }

    fn from_raw_private(algorithm: Algorithm, secret: &[u8; 32]) -> Result<Self, ConfigError> {
        let mut der = Vec::with_capacity(68);
        let key = if algorithm == Algorithm::EdDSA {
            der.extend_from_slice(&ED25519_PKCS8_PREFIX);
            der.extend_from_slice(secret);
            EncodingKey::from_ed_der(&der)
        } else {
            der.extend_from_slice(&P256_PKCS8_PREFIX);
            der.extend_from_slice(secret);
            EncodingKey::from_ec_der(&der)
        };
        der.fill(0);
        Self::from_encoding_key(algorithm, key)
    }

    fn from_encoding_key(algorithm: Algorithm, key: EncodingKey) -> Result<Self, ConfigError> {
        let provider = crypto::provider().ok_or(ConfigError::NoCryptoBackend)?;
        let utils = &provider.key_utils;
        let jwk = if algorithm == Algorithm::EdDSA {
            let x = (utils.ed_pub_components_from_private_key)(
                key.as_bytes(),
                &jsonwebtoken::jwk::EllipticCurve::Ed25519,
            )
            .map_err(|e| invalid_key(e.to_string()))?;
            json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(x)})
        } else {
            let (_, x, y) = (utils.ec_pub_components_from_private_key)(
                key.as_bytes(),
                jsonwebtoken::Algorithm::ES256,
            )
            .map_err(|e| invalid_key(e.to_string()))?;
            if x.len() != 32 || y.len() != 32 {
                return Err(invalid_key("not a P-256 key".into()));
            }
            json!({"kty": "EC", "crv": "P-256", "x": B64.encode(x), "y": B64.encode(y)})
        };
        let thumbprint = thumbprint(&jwk);
        let this = Self {
            inner: Arc::new(KeyInner {
                alg: algorithm,
                key,
                jwk,
                thumbprint,
            }),
        };
        // A key that does not sign is refused here rather than on the first request.
        jws::sign_bytes(algorithm, &this.inner.key, b"bearer-guard key check")
            .map_err(invalid_key)?;
        Ok(this)
    }

    /// The signing algorithm (`ES256` or `EdDSA`).
    pub fn algorithm(&self) -> Algorithm {
        self.inner.alg
    }

    /// The public key as a JWK (`kty`, `crv`, `x`, and `y` for EC): what every proof carries
    /// in its `jwk` header.
    pub fn public_jwk(&self) -> &Value {
        &self.inner.jwk
    }

    /// The RFC 7638 JWK SHA-256 thumbprint of the public key, base64url: the `jkt` that the
    /// authorization server puts in the tokens it binds to this key (`cnf.jkt`).
    pub fn thumbprint(&self) -> &str {
        &self.inner.thumbprint
    }

    /// A DPoP proof (RFC 9449 §4.2) for one request: header `typ` `dpop+jwt`, `alg`, `jwk`
    /// (public members only); claims `jti` (128 random bits), `htm` (`method`), `htu` (`uri`
    /// without query and fragment), `iat` (now), `ath` (base64url SHA-256 of
    /// `access_token`, when given) and `nonce` (when given).
    ///
    /// # Errors
    ///
    /// A [`DpopProofError`] when `uri` is not an absolute `http`/`https` URI, `method` is
    /// empty, or signing fails.
    pub fn proof(
        &self,
        method: &str,
        uri: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<String, DpopProofError> {
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(DpopProofError("the HTTP method is not a token".into()));
        }
        let htu = htu(uri)?;
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut jti = [0u8; 16];
        rand::rng().fill_bytes(&mut jti);
        let header = json!({
            "typ": DPOP_JWT_TYPE,
            "alg": self.inner.alg.as_str(),
            "jwk": self.inner.jwk,
        });
        let mut claims = json!({
            "jti": B64.encode(jti),
            "htm": method,
            "htu": htu,
            "iat": iat,
        });
        if let Some(map) = claims.as_object_mut() {
            if let Some(token) = access_token {
                map.insert("ath".into(), json!(ath(token)));
            }
            if let Some(nonce) = nonce {
                map.insert("nonce".into(), json!(nonce));
            }
        }
        jws::sign_compact(self.inner.alg, &self.inner.key, &header, &claims).map_err(|reason| {
            DpopProofError(format!("the DPoP proof could not be signed: {reason}"))
        })
    }
}

/// Why a DPoP proof could not be made (see [`DpopKey::proof`]). The message never contains
/// a token or a key.
#[derive(Debug, Clone)]
pub struct DpopProofError(String);

impl fmt::Display for DpopProofError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DpopProofError {}

/// `base64url(SHA-256(access token))`: a proof's `ath` (RFC 9449 §4.2).
pub fn ath(access_token: &str) -> String {
    B64.encode(Sha256::digest(access_token.as_bytes()))
}

/// The `htu` of a request to `uri`: the URI without query, fragment and user info.
pub(super) fn htu(uri: &str) -> Result<String, DpopProofError> {
    let mut url = Url::parse(uri)
        .map_err(|_| DpopProofError("the request URI is not an absolute URI".into()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(DpopProofError(
            "the request URI is not an absolute http(s) URI".into(),
        ));
    }
    url.set_query(None);
    url.set_fragment(None);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok(url.into())
}

/// The origin (`scheme://host:port`) of `uri`, the key of the nonce memory.
pub(super) fn origin(uri: &str) -> Option<String> {
    let url = Url::parse(uri).ok()?;
    match url.origin() {
        o @ url::Origin::Tuple(..) => Some(o.ascii_serialization()),
        url::Origin::Opaque(_) => None,
    }
}

/// RFC 7638 thumbprint of a public JWK made by [`DpopKey`] (members in lexicographic order).
fn thumbprint(jwk: &Value) -> String {
    let s = |name: &str| jwk[name].as_str().unwrap_or_default().to_owned();
    let canonical = if jwk["kty"] == "OKP" {
        format!(r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#, s("crv"), s("x"))
    } else {
        format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            s("crv"),
            s("x"),
            s("y")
        )
    };
    B64.encode(Sha256::digest(canonical.as_bytes()))
}

fn scalar_in_range(d: &[u8; 32]) -> bool {
    d.iter().any(|&b| b != 0) && d.as_slice() < P256_ORDER.as_slice()
}

fn check_alg(algorithm: Algorithm) -> Result<(), ConfigError> {
    if !crypto::HAS_BACKEND {
        return Err(ConfigError::NoCryptoBackend);
    }
    match algorithm {
        Algorithm::ES256 | Algorithm::EdDSA => Ok(()),
        _ => Err(ConfigError::AlgorithmNotUsable {
            algorithm,
            reason: "DPoP keys are ES256 or EdDSA",
        }),
    }
}

fn invalid_key(reason: String) -> ConfigError {
    ConfigError::InvalidKey {
        key: "the DPoP key".into(),
        reason,
    }
}

/// Which server a nonce comes from: an authorization server and a resource server at the
/// same origin keep their own nonces (RFC 9449 §8 and §9 are separate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Role {
    /// The token endpoint.
    AuthorizationServer,
    /// An API called through the middleware.
    Resource,
}

/// A DPoP key and the latest `DPoP-Nonce` each server sent (RFC 9449 §8–9), by role and
/// origin, shared by the token source and the middleware.
#[derive(Debug)]
pub(super) struct Dpop {
    pub(super) key: DpopKey,
    nonces: Mutex<HashMap<(Role, String), String>>,
}

impl Dpop {
    pub(super) fn new(key: DpopKey) -> Self {
        Self {
            key,
            nonces: Mutex::new(HashMap::new()),
        }
    }

    /// A proof for `method` `uri`, with the latest nonce of that server.
    pub(super) fn proof(
        &self,
        role: Role,
        method: &str,
        uri: &str,
        access_token: Option<&str>,
    ) -> Result<String, DpopProofError> {
        let nonce = self.nonce(role, uri);
        self.key.proof(method, uri, access_token, nonce.as_deref())
    }

    /// The latest nonce of the `role` server at `uri`'s origin.
    pub(super) fn nonce(&self, role: Role, uri: &str) -> Option<String> {
        let origin = origin(uri)?;
        self.lock().get(&(role, origin)).cloned()
    }

    /// Remembers the `DPoP-Nonce` of an answer from the `role` server at `uri`, if it has
    /// one; returns whether it had a usable one.
    pub(super) fn remember(&self, role: Role, uri: &str, headers: &http::HeaderMap) -> bool {
        let Some(nonce) = headers
            .get("dpop-nonce")
            .and_then(|v| v.to_str().ok())
            .filter(|n| is_nonce(n))
        else {
            return false;
        };
        let Some(origin) = origin(uri) else {
            return false;
        };
        let key = (role, origin);
        let mut nonces = self.lock();
        if nonces.len() >= MAX_NONCE_ORIGINS
            && !nonces.contains_key(&key)
            && let Some(evict) = nonces.keys().next().cloned()
        {
            nonces.remove(&evict);
        }
        nonces.insert(key, nonce.to_owned());
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Role, String), String>> {
        self.nonces.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// RFC 9449 §8.1: `nonce = 1*NQCHAR` (printable ASCII but `"` and `\`), bounded here.
fn is_nonce(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= MAX_NONCE_LEN
        && n.bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\')
}

#[cfg(all(test, any(feature = "aws-lc-rs", feature = "rust-crypto")))]
mod tests;
