//! Parsing and checking one DPoP proof, exactly as RFC 9449 §4.3 lists the checks.
//!
//! The checker is a pure function of its settings and the [`RequestFacts`]: no clock, no
//! store, no framework type. Replay and nonces are checked after it (see the
//! [module docs](super)).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::htu;
use super::thumbprint::jwk_thumbprint;
use crate::algorithm::{Algorithm, Family};
use crate::config::{check_count, check_range};
use crate::crypto::Key;
use crate::error::{AuthError, ConfigError, DpopProofReason};
use crate::jwks::{B64, parse_jwk};

/// The algorithms a proof may be signed with by default: ES256 (the usual choice), ES384,
/// EdDSA (Ed25519), RS256 and PS256. Never `none`, never an HMAC algorithm.
pub const DEFAULT_PROOF_ALGORITHMS: [Algorithm; 5] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::RS256,
    Algorithm::PS256,
];

/// The largest proof accepted by default: 8 KiB, checked before any parsing (an 8192-bit RSA
/// key in the `jwk` header takes about 1.5 KiB).
pub const DEFAULT_MAX_PROOF_BYTES: usize = 8 * 1024;

/// How old a proof's `iat` may be by default: 60 s. Its replay entry is kept that long.
pub const DEFAULT_PROOF_MAX_AGE: Duration = Duration::from_secs(60);

/// How far in the future a proof's `iat` may be by default (the client's clock may be
/// ahead): 30 s.
pub const DEFAULT_PROOF_LEEWAY: Duration = Duration::from_secs(30);

/// The longest `jti` accepted by default: 256 bytes.
pub const DEFAULT_MAX_JTI_BYTES: usize = 256;

/// How many checked proof headers (with their parsed `jwk` and its thumbprint) a checker
/// keeps by default: 1,024. A client signs every proof with the same key, so its header is
/// usually the same from one proof to the next.
pub const DEFAULT_KEY_CACHE_ENTRIES: usize = 1024;

/// Private JWK members (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2): a `jwk` header holding
/// any of them is refused.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The facts of one request that a proof is checked against: plain data, gathered by the
/// layer (or by you, without it).
///
/// ```
/// use bearer_guard::dpop::RequestFacts;
/// let facts = RequestFacts::new("GET", "https://api.example/maps", "eyJ...", std::time::SystemTime::now())
///     .access_token("the-access-token");
/// assert_eq!(facts.method(), "GET");
/// ```
#[derive(Clone, Copy)]
pub struct RequestFacts<'a> {
    method: &'a str,
    htu: &'a str,
    proof: &'a str,
    access_token: Option<&'a str>,
    now: SystemTime,
}

impl fmt::Debug for RequestFacts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the proof or the token.
        f.debug_struct("RequestFacts")
            .field("method", &self.method)
            .field("htu", &self.htu)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

impl<'a> RequestFacts<'a> {
    /// The request's method, its URI as the client sees it (absolute; query and fragment are
    /// ignored), the `DPoP` header's value and the time of the check.
    pub fn new(method: &'a str, htu: &'a str, proof: &'a str, now: SystemTime) -> Self {
        Self {
            method,
            htu,
            proof,
            access_token: None,
            now,
        }
    }

    /// The access token sent with the proof: its hash must then be the proof's `ath`.
    #[must_use]
    pub fn access_token(mut self, token: &'a str) -> Self {
        self.access_token = Some(token);
        self
    }

    /// The request's method.
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The request's URI.
    pub fn htu(&self) -> &'a str {
        self.htu
    }

    /// The time of the check.
    pub fn now(&self) -> SystemTime {
        self.now
    }
}

/// A proof that passed every check of [`ProofChecker::check`].
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    jkt: String,
    jti: String,
    iat: i64,
    nonce: Option<String>,
    algorithm: Algorithm,
}

impl fmt::Debug for VerifiedProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedProof")
            .field("jkt", &self.jkt)
            .field("iat", &self.iat)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl VerifiedProof {
    /// The RFC 7638 SHA-256 thumbprint of the proof's key (base64url), to compare with the
    /// token's `cnf.jkt`.
    pub fn jkt(&self) -> &str {
        &self.jkt
    }

    /// The proof's `jti`, for the replay check.
    pub fn jti(&self) -> &str {
        &self.jti
    }

    /// The proof's `iat` (seconds since the Unix epoch).
    pub fn issued_at(&self) -> i64 {
        self.iat
    }

    /// The proof's `nonce`, if any.
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }

    /// The algorithm the proof was signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// Checks DPoP proofs (RFC 9449 §4.3). Build it with [`ProofChecker::builder`]; cheap to
/// clone.
///
/// A checker keeps a bounded cache of the proof headers it accepted (keyed by the header's
/// exact base64url text), each with its parsed public key and the key's thumbprint, so that a
/// client that sends the same key on every request does not pay for parsing and validating it
/// each time. Every other check, the signature above all, runs on every proof. Clones share
/// the cache.
#[derive(Debug, Clone)]
pub struct ProofChecker {
    algorithms: Vec<Algorithm>,
    max_proof_bytes: usize,
    max_age: Duration,
    leeway: Duration,
    max_jti_bytes: usize,
    key_cache_entries: usize,
    keys: Option<Arc<HeaderCache>>,
}

impl Default for ProofChecker {
    fn default() -> Self {
        Self {
            algorithms: DEFAULT_PROOF_ALGORITHMS.to_vec(),
            max_proof_bytes: DEFAULT_MAX_PROOF_BYTES,
            max_age: DEFAULT_PROOF_MAX_AGE,
            leeway: DEFAULT_PROOF_LEEWAY,
            max_jti_bytes: DEFAULT_MAX_JTI_BYTES,
            key_cache_entries: DEFAULT_KEY_CACHE_ENTRIES,
            keys: Some(HeaderCache::new(DEFAULT_KEY_CACHE_ENTRIES)),
        }
    }
}

/// A proof header that passed every header check: what a later proof with the very same
/// header text reuses.
struct CheckedHeader {
    alg: Algorithm,
    key: Key,
    jkt: Arc<str>,
}

/// The bounded cache of checked headers, keyed by the header's exact base64url text (at most
/// `max_proof_bytes` each).
struct HeaderCache(quick_cache::sync::Cache<Box<str>, Arc<CheckedHeader>>);

impl HeaderCache {
    fn new(entries: usize) -> Arc<Self> {
        Arc::new(Self(quick_cache::sync::Cache::new(entries)))
    }
}

impl fmt::Debug for HeaderCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the headers themselves.
        f.debug_struct("HeaderCache")
            .field("len", &self.0.len())
            .field("capacity", &self.0.capacity())
            .finish()
    }
}

/// Settings of a [`ProofChecker`]; every check happens in [`build`](Self::build).
#[derive(Debug, Clone)]
#[must_use]
pub struct ProofCheckerBuilder {
    inner: ProofChecker,
}

impl ProofCheckerBuilder {
    /// The allowed proof algorithms (default [`DEFAULT_PROOF_ALGORITHMS`]).
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.inner.algorithms = algorithms.into_iter().collect();
        self
    }

    /// The largest proof accepted, in bytes (default 8 KiB; 512 B – 64 KiB).
    pub fn max_proof_bytes(mut self, bytes: usize) -> Self {
        self.inner.max_proof_bytes = bytes;
        self
    }

    /// How old a proof's `iat` may be (default 60 s; 1 s – 1 h). Replay entries are kept this
    /// long (plus the leeway), so a longer window costs memory.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.inner.max_age = max_age;
        self
    }

    /// How far in the future a proof's `iat` may be (default 30 s; 0 – 5 min).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.inner.leeway = leeway;
        self
    }

    /// The longest `jti` accepted, in bytes (default 256; 16 – 4096).
    pub fn max_jti_bytes(mut self, bytes: usize) -> Self {
        self.inner.max_jti_bytes = bytes;
        self
    }

    /// How many checked proof headers (with their parsed key and thumbprint) the checker
    /// keeps (default [`DEFAULT_KEY_CACHE_ENTRIES`]; 0 – 65,536, 0 turns the cache off). Each
    /// entry holds the header's text (at most [`max_proof_bytes`](Self::max_proof_bytes)) and
    /// a parsed public key.
    pub fn key_cache_entries(mut self, entries: usize) -> Self {
        self.inner.key_cache_entries = entries;
        self
    }

    /// The checker.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoAlgorithms`] for an empty allow-list,
    /// [`ConfigError::AlgorithmNotUsable`] for an HMAC algorithm (a proof is signed with the
    /// client's private key), [`ConfigError::OutOfRange`] for a setting out of its range,
    /// [`ConfigError::NoCryptoBackend`] without a crypto backend.
    pub fn build(self) -> Result<ProofChecker, ConfigError> {
        let c = self.inner;
        if !crate::crypto::HAS_BACKEND {
            return Err(ConfigError::NoCryptoBackend);
        }
        if c.algorithms.is_empty() {
            return Err(ConfigError::NoAlgorithms);
        }
        if let Some(&a) = c.algorithms.iter().find(|a| a.family() == Family::Hmac) {
            return Err(ConfigError::AlgorithmNotUsable {
                algorithm: a,
                reason: "a DPoP proof must be signed with an asymmetric key",
            });
        }
        if cfg!(not(feature = "aws-lc-rs")) && c.algorithms.contains(&Algorithm::ES512) {
            return Err(ConfigError::AlgorithmNotUsable {
                algorithm: Algorithm::ES512,
                reason: "ES512 needs the aws-lc-rs backend",
            });
        }
        check_count(
            "max_proof_bytes",
            c.max_proof_bytes,
            512,
            64 * 1024,
            "512 - 65536",
        )?;
        check_count("max_jti_bytes", c.max_jti_bytes, 16, 4096, "16 - 4096")?;
        check_range(
            "max_age",
            c.max_age,
            Duration::from_secs(1),
            Duration::from_secs(3600),
            "1 s - 1 h",
        )?;
        check_range(
            "leeway",
            c.leeway,
            Duration::ZERO,
            Duration::from_secs(300),
            "0 - 5 min",
        )?;
        check_count(
            "key_cache_entries",
            c.key_cache_entries,
            0,
            65_536,
            "0 - 65536",
        )?;
        let mut c = c;
        // A fresh cache: one filled under other settings (algorithms) must not be reused.
        c.keys = (c.key_cache_entries > 0).then(|| HeaderCache::new(c.key_cache_entries));
        Ok(c)
    }
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow)]
    alg: Option<Cow<'a, str>>,
    jwk: Option<Value>,
    crit: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct Payload {
    jti: Option<Value>,
    htm: Option<Value>,
    htu: Option<Value>,
    iat: Option<Value>,
    ath: Option<Value>,
    nonce: Option<Value>,
}

fn refuse(reason: DpopProofReason) -> AuthError {
    AuthError::invalid_dpop_proof(reason)
}

impl ProofChecker {
    /// A builder with the defaults (see the constants of this module).
    pub fn builder() -> ProofCheckerBuilder {
        ProofCheckerBuilder {
            inner: Self::default(),
        }
    }

    /// The allowed algorithms, as sent in the `algs` challenge parameter.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// How old a proof may be.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// How far in the future a proof's `iat` may be.
    pub fn leeway(&self) -> Duration {
        self.leeway
    }

    /// Checks a proof against the request's facts (RFC 9449 §4.3, points 1 to 11 except the
    /// nonce and replay checks, which need state: see [`Dpop`](super::Dpop)).
    ///
    /// # Errors
    ///
    /// An [`AuthErrorKind::InvalidDpopProof`](crate::AuthErrorKind::InvalidDpopProof) error
    /// with the reason; its description never echoes proof content.
    pub fn check(&self, facts: &RequestFacts<'_>) -> Result<VerifiedProof, AuthError> {
        use DpopProofReason as R;
        let proof = facts.proof;
        // Bounded before any parsing.
        if proof.len() > self.max_proof_bytes {
            return Err(refuse(R::TooLarge));
        }
        let mut parts = proof.split('.');
        let (Some(h64), Some(p64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(refuse(R::Malformed));
        };
        let header = match &self.keys {
            Some(cache) => match cache.0.get(h64) {
                Some(hit) => hit,
                None => {
                    let checked = Arc::new(self.check_header(h64)?);
                    cache.0.insert(h64.into(), Arc::clone(&checked));
                    checked
                }
            },
            None => Arc::new(self.check_header(h64)?),
        };
        let (alg, key) = (header.alg, &header.key);
        let signature = B64.decode(s64).map_err(|_| refuse(R::Malformed))?;
        let signed = &proof[..h64.len() + 1 + p64.len()];
        if !key.verify(signed.as_bytes(), &signature) {
            return Err(refuse(R::BadSignature));
        }
        let payload_bytes = B64.decode(p64).map_err(|_| refuse(R::Malformed))?;
        let payload: Payload = json_text(&payload_bytes)?;
        let jti = string(payload.jti)?;
        if jti.is_empty() || jti.len() > self.max_jti_bytes {
            return Err(refuse(R::InvalidClaim));
        }
        if string(payload.htm)? != facts.method {
            return Err(refuse(R::WrongMethod));
        }
        let claimed = string(payload.htu)?;
        // The same text normalises to the same URI: one normalisation then suffices.
        let same = if claimed == facts.htu {
            htu::normalize(&claimed).is_some()
        } else {
            let claimed = htu::normalize(&claimed);
            claimed.is_some() && claimed == htu::normalize(facts.htu)
        };
        if !same {
            return Err(refuse(R::WrongUri));
        }
        let iat = match payload.iat {
            Some(Value::Number(n)) => numeric_date(&n).ok_or_else(|| refuse(R::InvalidClaim))?,
            _ => return Err(refuse(R::MissingClaim)),
        };
        let now = unix(facts.now);
        if iat > now.saturating_add(secs(self.leeway)) {
            return Err(refuse(R::IssuedInFuture));
        }
        if iat < now.saturating_sub(secs(self.max_age)) {
            return Err(refuse(R::TooOld));
        }
        if let Some(token) = facts.access_token {
            let ath = match payload.ath {
                Some(Value::String(s)) => s,
                _ => return Err(refuse(R::WrongAccessTokenHash)),
            };
            let expected = B64.encode(Sha256::digest(token.as_bytes()));
            if !crate::crypto::constant_time_eq(ath.as_bytes(), expected.as_bytes()) {
                return Err(refuse(R::WrongAccessTokenHash));
            }
        }
        let nonce = match payload.nonce {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => return Err(refuse(R::InvalidClaim)),
        };
        Ok(VerifiedProof {
            jkt: header.jkt.to_string(),
            jti,
            iat,
            nonce,
            algorithm: alg,
        })
    }
}

/// A proof's header or payload: UTF-8 JSON (RFC 7515 §4, RFC 7519 §7.2) as a whole.
/// `serde_json::from_slice` checks UTF-8 only in the members it reads, not in those it skips,
/// so the text is checked first: a proof with invalid bytes in an unknown member is malformed.
fn json_text<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, AuthError> {
    let text = std::str::from_utf8(bytes).map_err(|_| refuse(DpopProofReason::Malformed))?;
    serde_json::from_str(text).map_err(|_| refuse(DpopProofReason::Malformed))
}

impl ProofChecker {
    /// The checks of the proof's header (RFC 9449 §4.3 points 4 to 6 and 8's key part): its
    /// type, algorithm and key, with the key parsed and its thumbprint.
    fn check_header(&self, h64: &str) -> Result<CheckedHeader, AuthError> {
        use DpopProofReason as R;
        let header_bytes = B64.decode(h64).map_err(|_| refuse(R::Malformed))?;
        let header: Header<'_> = json_text(&header_bytes)?;
        if !header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt"))
        {
            return Err(refuse(R::WrongType));
        }
        let alg = header
            .alg
            .as_deref()
            .and_then(Algorithm::from_jose)
            .filter(|a| a.family() != Family::Hmac && self.algorithms.contains(a))
            .ok_or_else(|| refuse(R::AlgorithmNotAllowed))?;
        if header.crit.is_some() {
            return Err(refuse(R::UnsupportedCritical));
        }
        let Some(Value::Object(jwk)) = &header.jwk else {
            return Err(refuse(R::InvalidKey));
        };
        if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
            return Err(refuse(R::PrivateKey));
        }
        if !key_fits(jwk, alg) {
            return Err(refuse(R::KeyAlgorithmMismatch));
        }
        // The key is bound to the header's `alg`, which was just checked against the key's
        // type and curve: the algorithm never comes from the header alone.
        let key = parse_jwk(header.jwk.as_ref().unwrap_or(&Value::Null), &[alg])
            .map_err(|_| refuse(R::InvalidKey))?;
        let jkt = jwk_thumbprint(jwk).ok_or_else(|| refuse(R::InvalidKey))?;
        Ok(CheckedHeader {
            alg,
            key,
            jkt: jkt.into(),
        })
    }

    /// How many checked headers the cache holds (for the tests of `dpop::tests`).
    #[cfg(all(
        test,
        feature = "dev-issuer",
        any(feature = "aws-lc-rs", feature = "rust-crypto")
    ))]
    pub(crate) fn cached_headers(&self) -> usize {
        self.keys.as_ref().map_or(0, |c| c.0.len())
    }
}

/// Whether the `jwk`'s type and curve (and its own `alg`, when present) fit `alg`.
fn key_fits(jwk: &serde_json::Map<String, Value>, alg: Algorithm) -> bool {
    let s = |name: &str| jwk.get(name).and_then(Value::as_str);
    if jwk
        .get("alg")
        .is_some_and(|a| a.as_str() != Some(alg.as_str()))
    {
        return false;
    }
    match (s("kty"), s("crv")) {
        (Some("EC"), Some("P-256")) => alg == Algorithm::ES256,
        (Some("EC"), Some("P-384")) => alg == Algorithm::ES384,
        (Some("EC"), Some("P-521")) => alg == Algorithm::ES512,
        (Some("OKP"), Some("Ed25519")) => alg == Algorithm::EdDSA,
        (Some("RSA"), _) => alg.family() == Family::Rsa,
        _ => false,
    }
}

fn string(v: Option<Value>) -> Result<String, AuthError> {
    match v {
        Some(Value::String(s)) => Ok(s),
        _ => Err(refuse(DpopProofReason::MissingClaim)),
    }
}

/// A NumericDate up to 9999-12-31T23:59:59Z, fractions dropped.
fn numeric_date(n: &serde_json::Number) -> Option<i64> {
    const MAX: i64 = 253_402_300_799;
    if let Some(i) = n.as_i64() {
        return (-MAX..=MAX).contains(&i).then_some(i);
    }
    let f = n.as_f64()?;
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    ((-MAX as f64..=MAX as f64).contains(&f)).then(|| f.floor() as i64)
}

pub(crate) fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}
