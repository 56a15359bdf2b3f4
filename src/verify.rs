//! [`Verifier`]: one token string in, verified [`Claims`] or an [`AuthError`] out.
//!
//! Order of checks: size; structure and header (cheap, before any key lookup, so a token that
//! fails them never causes a JWKS fetch); key lookup; `alg` equal to the key's bound algorithm;
//! signature; claims.

use std::borrow::Cow;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::algorithm::Algorithm;
use crate::claims::{ClaimShape, Claims, Name, ReadError, ScopeSource, Skip, read_claims};
use crate::config::{ClaimValidator, VerifierBuilder};
use crate::error::{AuthError, AuthErrorKind, InvalidTokenReason};
use crate::key_store::{KeyHealth, KeyStore};
use crate::rejection::RefusalLog;

/// Tokens longer than this are verified but not cached.
pub const MAX_CACHED_TOKEN_BYTES: usize = 8 * 1024;

/// Longest `kid` (in bytes) a key or a token may have. A token with a longer `kid` is
/// refused as `invalid_token` (unknown key) without any JWKS fetch; a JWK with a longer
/// `kid` is skipped.
pub const MAX_KID_BYTES: usize = 256;

pub(crate) struct Settings {
    pub(crate) issuer: String,
    /// With `issuer_from_discovery`: the issuer found in the metadata (`issuer` is then the
    /// discovery base).
    pub(crate) discovered_issuer: Option<Arc<std::sync::OnceLock<String>>>,
    pub(crate) audiences: Vec<String>,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) leeway: u64,
    pub(crate) max_age: Option<Duration>,
    pub(crate) required_claims: Vec<String>,
    pub(crate) strict_rfc9068: bool,
    pub(crate) scope_claims: Vec<ScopeSource>,
    pub(crate) audience_from_client_id: bool,
    pub(crate) max_token_bytes: usize,
    pub(crate) token_cache_entries: u64,
    pub(crate) validators: Vec<ClaimValidator>,
    pub(crate) keys: KeyStore,
}

/// One issuer's configuration and verified-token cache.
pub(crate) struct Inner {
    s: Settings,
    cache: Option<TokenCache>,
    /// The header of the last token verified that had to be read: most tokens repeat it.
    last_header: ArcSwapOption<LastHeader>,
    /// WARN lines for wrong `iss` / `aud`, rate-limited.
    refusals: RefusalLog,
}

/// The verified-token cache: verified claims by token, each tied to the key that verified it.
///
/// A `quick_cache` cache (bounded in entries, sharded, scan-resistant eviction): a hit costs
/// about a quarter of what it costs with moka (BENCHMARKS.md), and concurrent misses of one
/// token wait for a single verification. Keyed by the token's bytes, compared whole; the
/// hash reads only the token's length and last [`HASHED_TAIL`] bytes ([`TailHash`]: a hash of
/// the whole token would cost as much as the rest of a hit). A collision therefore costs one
/// comparison, never a wrong answer, and cannot be aimed at: the hasher is seeded per cache,
/// and only verified tokens are stored, whose last bytes are signature bytes no one can
/// choose.
///
/// Entries carry no timer. A hit checks the entry's key and time claims, so no answer ever
/// outlives the token or its key; [`TokenCache::sweep`] frees the memory of entries whose
/// token expired or whose key left the key set.
struct TokenCache {
    entries: Arc<Entries>,
    /// The key set's generation at the last sweep.
    swept_generation: AtomicU64,
    /// When the last sweep ran (seconds since the epoch).
    swept_at: AtomicI64,
    leeway: i64,
}

type Entries =
    quick_cache::sync::Cache<Vec<u8>, Arc<CacheEntry>, quick_cache::UnitWeighter, TailHash>;

struct CacheEntry {
    claims: Claims,
    key_id: u64,
}

impl CacheEntry {
    /// Whether a sweep keeps the entry: its key is among `held` and its token has not
    /// expired at `now`.
    fn live(&self, held: &[u64], now: i64, leeway: i64) -> bool {
        held.contains(&self.key_id) && now < self.claims.expires_at().saturating_add(leeway)
    }
}

/// How many of a token's last bytes the cache hashes.
const HASHED_TAIL: usize = 32;

/// How often the cache drops the entries of expired tokens.
const SWEEP_EVERY_SECS: i64 = 60;

/// Builds [`TailHasher`]s: a seeded hasher that reads only the end of each byte string.
#[derive(Clone, Default)]
struct TailHash(quick_cache::DefaultHashBuilder);

impl BuildHasher for TailHash {
    type Hasher = TailHasher<<quick_cache::DefaultHashBuilder as BuildHasher>::Hasher>;

    fn build_hasher(&self) -> Self::Hasher {
        TailHasher(self.0.build_hasher())
    }
}

/// Passes on lengths whole and byte strings by their last [`HASHED_TAIL`] bytes. A token
/// (`Vec<u8>` or `[u8]`) hashes as its length, then its bytes.
struct TailHasher<H>(H);

impl<H: Hasher> Hasher for TailHasher<H> {
    fn finish(&self) -> u64 {
        self.0.finish()
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0
            .write(&bytes[bytes.len().saturating_sub(HASHED_TAIL)..]);
    }

    fn write_usize(&mut self, n: usize) {
        self.0.write_usize(n);
    }
}

impl TokenCache {
    fn new(entries: u64, leeway: u64) -> Self {
        let items = usize::try_from(entries).unwrap_or(usize::MAX);
        Self {
            entries: Arc::new(quick_cache::sync::Cache::with(
                items,
                entries,
                quick_cache::UnitWeighter,
                TailHash::default(),
                quick_cache::sync::DefaultLifecycle::default(),
            )),
            swept_generation: AtomicU64::new(0),
            swept_at: AtomicI64::new(unix_now()),
            leeway: i64::try_from(leeway).unwrap_or(i64::MAX),
        }
    }

    /// Drops the entries whose token has expired or whose key left the key set (rotation,
    /// revocation), when the key set changed since the last sweep or a minute has passed.
    /// A hit checks both anyway: this frees memory rather than deciding anything. The sweep
    /// runs on tokio's blocking pool when a runtime runs; otherwise this costs two atomic
    /// loads.
    fn sweep(&self, keys: &KeyStore, now: i64) {
        let generation = keys.generation();
        let last = self.swept_at.load(Ordering::Relaxed);
        if self.swept_generation.load(Ordering::Relaxed) == generation
            && now < last.saturating_add(SWEEP_EVERY_SECS)
        {
            return;
        }
        // One caller sweeps.
        if self
            .swept_at
            .compare_exchange(
                last,
                now.max(last + 1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return;
        }
        self.swept_generation.store(generation, Ordering::Relaxed);
        let held = keys.key_ids();
        let entries = self.entries.clone();
        let leeway = self.leeway;
        let sweep = move || entries.retain(|_, e| e.live(&held, now, leeway));
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(sweep)),
            Err(_) => sweep(),
        }
    }
}

/// Verifies OAuth 2.0 JWT access tokens for one issuer. Cheap to clone (an `Arc`); clones
/// share the key store and the verified-token cache.
///
/// ```
/// # #[cfg(feature = "aws-lc-rs")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use bearer_guard::{AuthErrorKind, InvalidTokenReason, Verifier};
///
/// // A shared secret keeps the example self-contained; real deployments use discovery
/// // (the default) or `jwks_uri(..)`.
/// let secret = b"an-example-secret-of-at-least-32-bytes!!";
/// let verifier = Verifier::builder()
///     .issuer("https://issuer.example/")
///     .audience("urn:worldmappers")
///     .hmac_secret(secret)
///     .build()
///     .unwrap();
///
/// # use base64::Engine as _;
/// # let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
/// # let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
/// # let sign = |claims: serde_json::Value| {
/// #     let msg = format!("{}.{}", b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#), b64.encode(claims.to_string()));
/// #     let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
/// #     format!("{msg}.{}", b64.encode(aws_lc_rs::hmac::sign(&key, msg.as_bytes())))
/// # };
/// let good = sign(serde_json::json!({
///     "iss": "https://issuer.example/", "aud": "urn:worldmappers",
///     "exp": now + 600, "scope": "directions",
/// }));
/// let claims = verifier.verify(&good).await.unwrap();
/// assert!(claims.scopes().contains("directions"));
///
/// let other_audience = sign(serde_json::json!({
///     "iss": "https://issuer.example/", "aud": "urn:other", "exp": now + 600,
/// }));
/// let err = verifier.verify(&other_audience).await.unwrap_err();
/// assert_eq!(err.kind(), AuthErrorKind::InvalidToken(InvalidTokenReason::WrongAudience));
/// # }
/// # #[cfg(not(feature = "aws-lc-rs"))]
/// # fn main() {}
/// ```
///
/// A verifier can also trust several issuers: see [`Verifier::multi`].
#[derive(Clone)]
pub struct Verifier {
    repr: Repr,
}

/// One issuer, or several (see [`Verifier::multi`]).
#[derive(Clone)]
pub(crate) enum Repr {
    One(Arc<Inner>),
    Many(Arc<crate::multi::Issuers>),
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::One(inner) => f
                .debug_struct("Verifier")
                .field("issuer", &inner.s.issuer)
                .field("audiences", &inner.s.audiences)
                .field("algorithms", &inner.s.algorithms)
                .finish_non_exhaustive(),
            Repr::Many(many) => fmt::Debug::fmt(many, f),
        }
    }
}

/// The JOSE header members this library reads. Every other member is ignored (in
/// particular `jku`, `x5u`, `jwk` and `x5c` are never used to find keys).
pub(crate) struct Header {
    pub(crate) kid: Option<String>,
}

/// Reads the header: a JSON object (RFC 7515 §4) with no duplicate member, a string `alg`,
/// string `kid` and `typ` when present, and no `crit` member at all (not even `null`: RFC 7515
/// §4.1.11 allows only a non-empty list of extensions the recipient understands, and this
/// library understands none).
pub(crate) fn read_header(
    bytes: &[u8],
    strict_rfc9068: bool,
    allowed: &[Algorithm],
) -> Result<(Header, Algorithm), AuthError> {
    read_header_with(bytes, allowed, |typ| typ_ok(typ, strict_rfc9068))
}

/// The three parts of a compact JWS (`header.payload.signature`), each non-empty, or `None`.
/// For JWTs read off the hot path (signed introspection answers, the issuer peek); access
/// tokens have their own single-pass parser.
pub(crate) fn compact_parts(jws: &str) -> Option<(&str, &str, &str)> {
    let mut parts = jws.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) if !h.is_empty() && !p.is_empty() && !s.is_empty() => {
            Some((h, p, s))
        }
        _ => None,
    }
}

/// [`read_header`] with another rule for `typ` (`typ_ok` gets the header's `typ`, if any):
/// for JWTs that are not access tokens, such as signed introspection responses.
pub(crate) fn read_header_with(
    bytes: &[u8],
    allowed: &[Algorithm],
    typ_ok: impl FnOnce(Option<&str>) -> bool,
) -> Result<(Header, Algorithm), AuthError> {
    // RFC 7515 §4: UTF-8 JSON. (serde_json does not check the UTF-8 of strings it skips.)
    let text = std::str::from_utf8(bytes).map_err(|_| malformed())?;
    // One pass, borrowing the members read; it refuses what parsing the header into a
    // `UniqueObject` would refuse.
    let mut de = serde_json::Deserializer::from_str(text);
    let fields = HeaderFields::deserialize(&mut de).map_err(|_| malformed())?;
    de.end().map_err(|_| malformed())?;
    fn string(m: Member<'_>) -> Result<Option<Cow<'_, str>>, AuthError> {
        match m {
            Member::Absent => Ok(None),
            Member::Str(s) => Ok(Some(s)),
            Member::Other => Err(malformed()),
        }
    }
    let alg_name = string(fields.alg)?.ok_or_else(malformed)?;
    let kid = string(fields.kid)?;
    let typ = string(fields.typ)?;
    let alg = Algorithm::from_jose(&alg_name)
        .filter(|a| allowed.contains(a))
        .ok_or_else(|| AuthError::invalid(InvalidTokenReason::AlgorithmNotAllowed))?;
    if fields.crit {
        return Err(AuthError::invalid(InvalidTokenReason::UnsupportedCritical));
    }
    if !typ_ok(typ.as_deref()) {
        return Err(AuthError::invalid(InvalidTokenReason::WrongType));
    }
    Ok((
        Header {
            kid: kid.map(Cow::into_owned),
        },
        alg,
    ))
}

/// The header members [`read_header`] reads; every other member is checked as JSON and
/// skipped. A member name that appears twice fails the whole header.
#[derive(Default)]
struct HeaderFields<'a> {
    alg: Member<'a>,
    kid: Member<'a>,
    typ: Member<'a>,
    crit: bool,
}

/// One header member: absent, a string (borrowed when it has no escapes), or anything else.
#[derive(Default)]
enum Member<'a> {
    #[default]
    Absent,
    Str(Cow<'a, str>),
    Other,
}

impl<'de> Deserialize<'de> for HeaderFields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(HeaderVisitor)
    }
}

struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = HeaderFields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut fields = HeaderFields::default();
        let mut names = Vec::new();
        while let Some(Name(name)) = a.next_key()? {
            match &*name {
                "alg" => fields.alg = a.next_value()?,
                "kid" => fields.kid = a.next_value()?,
                "typ" => fields.typ = a.next_value()?,
                other => {
                    fields.crit |= other == "crit";
                    a.next_value::<Skip>()?;
                }
            }
            names.push(name);
        }
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(serde::de::Error::custom("duplicate member"));
        }
        Ok(fields)
    }
}

impl<'de> Deserialize<'de> for Member<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Member<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Member<'de>, E> {
                Ok(Member::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Member<'de>, E> {
                Ok(Member::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Member<'de>, E> {
                Ok(Member::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Member<'de>, E> {
                Ok(Member::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Member<'de>, E> {
                Ok(Member::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Member<'de>, E> {
                Ok(Member::Other)
            }
            fn visit_unit<E>(self) -> Result<Member<'de>, E> {
                Ok(Member::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<Member<'de>, A::Error> {
                Skip.visit_seq(a).map(|_| Member::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Member<'de>, A::Error> {
                Skip.visit_map(a).map(|_| Member::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// Seconds since the Unix epoch, with the fraction (for the time claims).
fn exact_now() -> f64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(_) => 0.0,
    }
}

pub(crate) fn unix_now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

fn malformed() -> AuthError {
    AuthError::invalid(InvalidTokenReason::Malformed)
}

/// The parts of a token that passed the cheap checks.
struct Parsed<'a> {
    /// The header's `kid`.
    kid: Option<Arc<str>>,
    alg: Algorithm,
    /// The header just read, when it was not [`Inner::last_header`]: remembered once the
    /// token is verified.
    fresh: Option<Arc<LastHeader>>,
    message: &'a str,
    payload: &'a str,
    signature: &'a str,
}

/// A header segment (its base64url text) that passed [`read_header`], and what it said.
/// Tokens of one issuer signed with one key share their header segment, byte for byte.
pub(crate) struct LastHeader {
    segment: Box<str>,
    kid: Option<Arc<str>>,
    alg: Algorithm,
}

/// The hot path's base64url decoder (no padding; non-canonical trailing bits refused, as by
/// [`crate::jwks::B64`]): SIMD, about a quarter of the instructions of the `base64` crate's for a
/// payload. It accepts only `A-Z a-z 0-9 - _`, so every verified token is a `b64token`.
const PART_B64: base64_simd::Base64 = base64_simd::URL_SAFE_NO_PAD;

/// Room for a signature on the stack: RSA up to 8,192 bits, every ECDSA and EdDSA curve.
const SIGNATURE_ON_STACK: usize = 1024;

fn decode_part(part: &str) -> Result<Vec<u8>, AuthError> {
    PART_B64
        .decode_to_vec(part.as_bytes())
        .map_err(|_| malformed())
}

impl Verifier {
    /// Starts a configuration.
    pub fn builder() -> VerifierBuilder {
        VerifierBuilder::default()
    }

    pub(crate) fn from_settings(s: Settings) -> Self {
        let cache =
            (s.token_cache_entries > 0).then(|| TokenCache::new(s.token_cache_entries, s.leeway));
        Self::from_repr(Repr::One(Arc::new(Inner {
            s,
            cache,
            last_header: ArcSwapOption::empty(),
            refusals: RefusalLog::default(),
        })))
    }

    pub(crate) fn from_repr(repr: Repr) -> Self {
        Self { repr }
    }

    pub(crate) fn repr(&self) -> &Repr {
        &self.repr
    }

    /// The configured issuer (for a [multi-issuer](Self::multi) verifier, the first one; see
    /// [`issuers`](Self::issuers)).
    pub fn issuer(&self) -> &str {
        match &self.repr {
            Repr::One(inner) => inner.issuer(),
            Repr::Many(many) => many.issuer(),
        }
    }

    /// The accepted audiences (for a [multi-issuer](Self::multi) verifier, the first
    /// issuer's; see [`for_issuer`](Self::for_issuer)).
    pub fn audiences(&self) -> &[String] {
        match &self.repr {
            Repr::One(inner) => &inner.s.audiences,
            Repr::Many(many) => many.audiences(),
        }
    }

    /// Fetches the keys now (discovery and JWKS), for a warm start; a no-op for static keys.
    ///
    /// # Errors
    ///
    /// [`AuthErrorKind::KeysUnavailable`](crate::AuthErrorKind::KeysUnavailable) when the
    /// fetch failed or the JWK Set holds no usable key; its message (and its
    /// [`source`](std::error::Error::source)) says why, for example which issuer string to
    /// configure when the discovered issuer differs from it. The reason is also logged.
    pub async fn refresh_keys(&self) -> Result<(), AuthError> {
        match &self.repr {
            Repr::One(inner) => inner.refresh_keys().await,
            Repr::Many(many) => many.refresh_keys().await,
        }
    }

    /// Whether keys are held and fresh, for readiness probes ([`key_error`](Self::key_error)
    /// says why they are not). For a
    /// [multi-issuer](Self::multi) verifier, the worst of its issuers': `Missing` if any
    /// issuer's keys are missing, else `Stale` if any is stale (since the earliest), else
    /// `Fresh` (keys summed); [`for_issuer`](Self::for_issuer) gives each issuer's.
    pub fn key_health(&self) -> KeyHealth {
        match &self.repr {
            Repr::One(inner) => inner.key_health(),
            Repr::Many(many) => many.key_health(),
        }
    }

    /// Why the keys are not fresh, for readiness probes and start-up checks: `None` while
    /// [`key_health`](Self::key_health) is `Fresh` with keys, else a
    /// [`KeysUnavailable`](crate::AuthErrorKind::KeysUnavailable) error whose message (and
    /// [`source`](std::error::Error::source)) says why: the last fetch's failure (an
    /// unreachable issuer, an HTTP status, metadata naming another issuer, with the string
    /// to configure when only a trailing slash differs, ...), an empty key set, or no fetch
    /// yet. For a [multi-issuer](Self::multi) verifier, the first issuer's problem. Meant
    /// for operators: never send it to clients.
    ///
    /// ```
    /// # #[cfg(any(feature = "aws-lc-rs", feature = "rust-crypto"))] {
    /// use bearer_guard::Verifier;
    /// let verifier = Verifier::builder()
    ///     .issuer("https://tenant.auth0.com/")
    ///     .audience("urn:worldmappers")
    ///     .build()
    ///     .unwrap();
    /// let why = verifier.key_error().expect("no key set yet");
    /// assert!(why.to_string().contains("no key set was fetched yet"));
    /// # }
    /// ```
    pub fn key_error(&self) -> Option<AuthError> {
        match &self.repr {
            Repr::One(inner) => inner.key_error(),
            Repr::Many(many) => many.key_error(),
        }
    }

    /// How many JWKS fetches were started so far (for tests and monitoring; summed over the
    /// issuers of a [multi-issuer](Self::multi) verifier).
    pub fn jwks_fetches(&self) -> u64 {
        match &self.repr {
            Repr::One(inner) => inner.jwks_fetches(),
            Repr::Many(many) => many.jwks_fetches(),
        }
    }

    /// Verifies one token (the text after `Bearer `).
    ///
    /// # Errors
    ///
    /// An [`AuthError`] whose kind is
    /// [`InvalidToken`](crate::AuthErrorKind::InvalidToken) with the reason, or
    /// [`KeysUnavailable`](crate::AuthErrorKind::KeysUnavailable) when the issuer's keys could
    /// not be obtained.
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let timer = crate::metrics::Timer::start();
        let result = match &self.repr {
            Repr::One(inner) => inner.verify(token).await,
            Repr::Many(many) => many.verify(token).await,
        };
        timer.verified(&result);
        result
    }

    /// Verifies a JWS compact serialization signed by this (single-issuer) verifier's
    /// issuer that is not an access token: the key store, the algorithm allow-list and
    /// each key's bound algorithm as for tokens, `typ` checked by `typ_ok`. Its payload
    /// bytes, which the caller validates. `None` for a multi-issuer verifier.
    #[cfg(feature = "introspection")]
    pub(crate) async fn verify_signed(
        &self,
        jws: &str,
        typ_ok: impl FnOnce(Option<&str>) -> bool,
    ) -> Option<Result<Vec<u8>, AuthError>> {
        let Repr::One(inner) = &self.repr else {
            return None;
        };
        Some(inner.verify_signed(jws, typ_ok).await)
    }

    /// What the verified-token cache answers for `token`, without verifying anything: `None`
    /// when it holds no live entry for it (call [`verify`](Self::verify) then), else exactly
    /// what `verify` would answer. Lets the layer answer a reused token without copying it or
    /// boxing a future.
    pub(crate) fn verify_cached(&self, token: &[u8]) -> Option<Result<Claims, AuthError>> {
        let Repr::One(inner) = &self.repr else {
            return None;
        };
        let timer = crate::metrics::Timer::start();
        let result = inner.cached(token)?;
        crate::metrics::token_cache(true);
        timer.verified(&result);
        Some(result)
    }
}

impl Inner {
    /// The issuer tokens must name: the configured one, or the one discovered (the
    /// discovery base until it is found).
    pub(crate) fn issuer(&self) -> &str {
        match &self.s.discovered_issuer {
            Some(found) => found.get().map_or(&self.s.issuer, |s| s.as_str()),
            None => &self.s.issuer,
        }
    }

    /// Whether the issuer is taken from discovery.
    pub(crate) fn issuer_is_discovered(&self) -> bool {
        self.s.discovered_issuer.is_some()
    }

    pub(crate) fn audiences(&self) -> &[String] {
        &self.s.audiences
    }

    pub(crate) fn max_token_bytes(&self) -> usize {
        self.s.max_token_bytes
    }

    pub(crate) fn key_health(&self) -> KeyHealth {
        self.s.keys.health()
    }

    pub(crate) fn jwks_fetches(&self) -> u64 {
        self.s.keys.fetches_started()
    }

    pub(crate) fn key_error(&self) -> Option<AuthError> {
        let (reason, retry_after) = self.s.keys.problem()?;
        Some(AuthError::keys_unavailable_because(retry_after, reason))
    }

    pub(crate) async fn refresh_keys(&self) -> Result<(), AuthError> {
        self.s
            .keys
            .refresh_now()
            .await
            .map_err(|reason| AuthError::keys_unavailable_because(None, reason))
    }

    /// Verifies one token against this issuer's configuration.
    pub(crate) async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        if token.len() > self.s.max_token_bytes {
            return Err(AuthError::invalid(InvalidTokenReason::TooLarge));
        }
        let Some(cache) = (self.cache.as_ref()).filter(|_| token.len() <= MAX_CACHED_TOKEN_BYTES)
        else {
            return self.verify_uncached(token).await.map(|(claims, _)| claims);
        };
        let now = unix_now();
        cache.sweep(&self.s.keys, now);
        // Concurrent misses of one token wait for the first one's verification, then share
        // its entry. An entry whose key left the key set is dropped and looked up again
        // (once: a second such entry is verified afresh, without the cache).
        let mut guard = None;
        for _ in 0..2 {
            match cache
                .entries
                .get_value_or_guard_async(token.as_bytes())
                .await
            {
                Ok(hit) => {
                    if let Some(answer) = self.answer(cache, token.as_bytes(), &hit, exact_now()) {
                        crate::metrics::token_cache(true);
                        return answer;
                    }
                }
                Err(g) => {
                    guard = Some(g);
                    break;
                }
            }
        }
        crate::metrics::token_cache(false);
        let (claims, key_id) = self.verify_uncached(token).await?;
        if let Some(guard) = guard {
            // What `extract::bearer_candidate` relies on.
            debug_assert!(crate::extract::is_b64token(token));
            let _ = guard.insert(Arc::new(CacheEntry {
                claims: claims.clone(),
                key_id,
            }));
        }
        Ok(claims)
    }

    /// See [`Verifier::verify_signed`]: structure, header, key, the key's algorithm, the
    /// signature; no claim is read.
    #[cfg(feature = "introspection")]
    async fn verify_signed(
        &self,
        jws: &str,
        typ_ok: impl FnOnce(Option<&str>) -> bool,
    ) -> Result<Vec<u8>, AuthError> {
        let (h, p, sig) = compact_parts(jws).ok_or_else(malformed)?;
        let (header, alg) = read_header_with(&decode_part(h)?, &self.s.algorithms, typ_ok)?;
        let key = self.s.keys.key_for(header.kid.as_deref(), alg).await?;
        if key.alg() != alg {
            return Err(AuthError::invalid(InvalidTokenReason::KeyAlgorithmMismatch));
        }
        let message = &jws[..h.len() + 1 + p.len()];
        if !key.verify(message.as_bytes(), &decode_part(sig)?) {
            return Err(AuthError::invalid(InvalidTokenReason::BadSignature));
        }
        decode_part(p)
    }

    /// Verifies a token without the cache: its claims, and the id of the key that verified it.
    async fn verify_uncached(&self, token: &str) -> Result<(Claims, u64), AuthError> {
        let parsed = self.parse(token)?;
        let key = self
            .s
            .keys
            .key_for(parsed.kid.as_deref(), parsed.alg)
            .await?;
        if key.alg() != parsed.alg {
            return Err(AuthError::invalid(InvalidTokenReason::KeyAlgorithmMismatch));
        }
        let signature = parsed.signature.as_bytes();
        let verified = if PART_B64.estimated_decoded_length(signature.len()) <= SIGNATURE_ON_STACK {
            let mut buf = [0u8; SIGNATURE_ON_STACK];
            let signature = PART_B64
                .decode(signature, base64_simd::Out::from_slice(&mut buf))
                .map_err(|_| malformed())?;
            key.verify(parsed.message.as_bytes(), signature)
        } else {
            key.verify(parsed.message.as_bytes(), &decode_part(parsed.signature)?)
        };
        if !verified {
            return Err(AuthError::invalid(InvalidTokenReason::BadSignature));
        }
        // A key with a `kid` was found by the header's `kid` when there is one, so that is the
        // same text (shared rather than copied).
        let kid = match (key.kid(), &parsed.kid) {
            (Some(_), Some(header)) => Some(header.clone()),
            (Some(kid), None) => Some(Arc::from(kid)),
            (None, _) => None,
        };
        let claims = self.claims(&parsed, kid)?;
        if let Some(fresh) = parsed.fresh {
            self.last_header.store(Some(fresh));
        }
        Ok((claims, key.id()))
    }

    /// The cache's answer for `token`, without verifying anything: `None` on a miss or when
    /// the entry's key has left the key set (then `verify` verifies the token afresh).
    fn cached(&self, token: &[u8]) -> Option<Result<Claims, AuthError>> {
        let cache = self.cache.as_ref()?;
        if token.len() > MAX_CACHED_TOKEN_BYTES || token.len() > self.s.max_token_bytes {
            return None;
        }
        // No sweep here: a hit checks its entry, and misses sweep.
        let hit = cache.entries.get(token)?;
        self.answer(cache, token, &hit, exact_now())
    }

    /// A cache hit's answer: its key must still be held (else the entry is dropped and the
    /// answer is `None`), and the time claims and the validators are checked again. An
    /// expired token's entry is dropped.
    fn answer(
        &self,
        cache: &TokenCache,
        token: &[u8],
        hit: &CacheEntry,
        now: f64,
    ) -> Option<Result<Claims, AuthError>> {
        if !self.s.keys.holds_key(hit.key_id) {
            cache.entries.remove(token);
            return None;
        }
        let answer = self
            .check_times(&hit.claims, now)
            .and_then(|()| self.run_validators(&hit.claims))
            .map(|()| hit.claims.clone());
        if matches!(&answer, Err(e) if e.kind() == AuthErrorKind::InvalidToken(InvalidTokenReason::Expired))
        {
            cache.entries.remove(token);
        }
        Some(answer)
    }

    /// Structure, header, `alg` allow-list, `crit` and `typ`: everything checked before a key
    /// is looked up.
    fn parse<'a>(&self, token: &'a str) -> Result<Parsed<'a>, AuthError> {
        let s = &self.s;
        let bytes = token.as_bytes();
        let (Some(first), Some(last)) = (memchr::memchr(b'.', bytes), memchr::memrchr(b'.', bytes))
        else {
            return Err(malformed());
        };
        let (h, p, sig) = (
            &token[..first],
            token.get(first + 1..last).unwrap_or_default(),
            &token[last + 1..],
        );
        // Exactly three parts: two dots, none of them in the payload.
        if h.is_empty()
            || p.is_empty()
            || sig.is_empty()
            || memchr::memchr(b'.', p.as_bytes()).is_some()
        {
            return Err(malformed());
        }
        let message = &token[..last];
        let last_header = self.last_header.load();
        if let Some(known) = &*last_header
            && *known.segment == *h
        {
            return Ok(Parsed {
                kid: known.kid.clone(),
                alg: known.alg,
                fresh: None,
                message,
                payload: p,
                signature: sig,
            });
        }
        let header_bytes = decode_part(h)?;
        let (header, alg) = read_header(&header_bytes, s.strict_rfc9068, &s.algorithms)?;
        let kid: Option<Arc<str>> = header.kid.map(Into::into);
        Ok(Parsed {
            kid: kid.clone(),
            alg,
            fresh: Some(Arc::new(LastHeader {
                segment: h.into(),
                kid,
                alg,
            })),
            message,
            payload: p,
            signature: sig,
        })
    }

    fn claims(&self, parsed: &Parsed<'_>, kid: Option<Arc<str>>) -> Result<Claims, AuthError> {
        let s = &self.s;
        let payload = decode_part(parsed.payload)?;
        let payload = String::from_utf8(payload).map_err(|_| malformed())?;
        let claims =
            read_claims(payload, parsed.alg, kid, &s.scope_claims).map_err(|e| match e {
                ReadError::Malformed => malformed(),
                ReadError::Shape(ClaimShape::Missing(name)) => AuthError::invalid_with(
                    InvalidTokenReason::MissingClaim,
                    format!("the token lacks the claim '{name}'"),
                ),
                ReadError::Shape(ClaimShape::Invalid(name)) => AuthError::invalid_with(
                    InvalidTokenReason::InvalidClaim,
                    format!("the token's claim '{name}' is invalid"),
                ),
            })?;
        let expected = match &s.discovered_issuer {
            Some(found) => found.get().map(String::as_str),
            None => Some(s.issuer.as_str()),
        };
        if Some(claims.issuer()) != expected {
            self.refusals
                .wrong_issuer(expected.unwrap_or(s.issuer.as_str()), claims.issuer());
            return Err(AuthError::invalid(InvalidTokenReason::WrongIssuer));
        }
        self.check_audience(&claims)?;
        self.check_times(&claims, exact_now())?;
        let strict: &[&str] = if s.strict_rfc9068 {
            &["iat", "sub", "client_id", "jti"]
        } else {
            &[]
        };
        for name in strict
            .iter()
            .copied()
            .chain(s.required_claims.iter().map(String::as_str))
        {
            if claims.get(name).is_none_or(serde_json::Value::is_null) {
                return Err(AuthError::invalid_with(
                    InvalidTokenReason::MissingClaim,
                    format!("the token lacks the claim '{}'", sanitize(name)),
                ));
            }
        }
        self.run_validators(&claims)?;
        Ok(claims)
    }

    /// `aud` must name a configured audience; with `audience_from_client_id` (Cognito), a
    /// token without `aud` may name one in `client_id` instead, and `token_use`, when
    /// present, must be `access`.
    fn check_audience(&self, claims: &Claims) -> Result<(), AuthError> {
        let s = &self.s;
        let accepted = |a: &str| s.audiences.iter().any(|c| c == a);
        if s.audience_from_client_id
            && claims
                .get("token_use")
                .is_some_and(|u| u.as_str() != Some("access"))
        {
            return Err(AuthError::invalid_with(
                InvalidTokenReason::InvalidClaim,
                "the token is not an access token (token_use)",
            ));
        }
        if claims.audience().is_empty() {
            let client_id = claims.get("client_id").and_then(serde_json::Value::as_str);
            return match client_id {
                Some(c) if s.audience_from_client_id && accepted(c) => Ok(()),
                Some(c) if s.audience_from_client_id => {
                    self.refusals.wrong_audience(&s.audiences, [c]);
                    Err(AuthError::invalid(InvalidTokenReason::WrongAudience))
                }
                _ => Err(AuthError::invalid_with(
                    InvalidTokenReason::MissingClaim,
                    "the token lacks the claim 'aud'",
                )),
            };
        }
        if claims.audience().iter().any(|a| accepted(a)) {
            Ok(())
        } else {
            let received = claims.audience().iter().map(String::as_str);
            self.refusals.wrong_audience(&s.audiences, received);
            Err(AuthError::invalid(InvalidTokenReason::WrongAudience))
        }
    }

    /// `exp`, `nbf`, `iat` and the maximum age, at `now` (seconds since the epoch, with
    /// the fraction). The claims are compared exactly, fraction included: a fractional
    /// `nbf` is not accepted early, a fractional `exp` not refused early.
    fn check_times(&self, claims: &Claims, now: f64) -> Result<(), AuthError> {
        let s = &self.s;
        // Exact: the leeway is at most minutes, the dates at most 9999-12-31 (2^38 s), so
        // sums stay far within f64's 53-bit mantissa at microsecond resolution.
        #[allow(clippy::cast_precision_loss)]
        let leeway = s.leeway as f64;
        let t = claims.exact_times();
        if now >= t.expires_at + leeway {
            return Err(AuthError::invalid(InvalidTokenReason::Expired));
        }
        if let Some(nbf) = t.not_before
            && now + leeway < nbf
        {
            return Err(AuthError::invalid(InvalidTokenReason::NotYetValid));
        }
        if let Some(iat) = t.issued_at
            && iat > now + leeway
        {
            return Err(AuthError::invalid(InvalidTokenReason::IssuedInFuture));
        }
        if let Some(max_age) = s.max_age {
            let Some(iat) = t.issued_at else {
                return Err(AuthError::invalid_with(
                    InvalidTokenReason::MissingClaim,
                    "the token lacks the claim 'iat'",
                ));
            };
            if now - iat > max_age.as_secs_f64() + leeway {
                return Err(AuthError::invalid(InvalidTokenReason::TooOld));
            }
        }
        Ok(())
    }

    fn run_validators(&self, claims: &Claims) -> Result<(), AuthError> {
        for v in &self.s.validators {
            v(claims)?;
        }
        Ok(())
    }
}

fn typ_ok(typ: Option<&str>, strict: bool) -> bool {
    match typ {
        None => !strict,
        Some(t) => {
            t.eq_ignore_ascii_case("at+jwt")
                || t.eq_ignore_ascii_case("application/at+jwt")
                || (!strict && t.eq_ignore_ascii_case("JWT"))
        }
    }
}

/// Keeps only the characters RFC 6750 allows in `error_description`.
pub(crate) fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\x20'..='\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E' => c,
            _ => '?',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hot_decoder_accepts_exactly_what_the_strict_engine_accepts() {
        use crate::jwks::B64;
        use base64::Engine as _;
        const CHARS: &[u8] = b"AQgw_-09az=+/. ";
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 11) as usize;
            let text: String = (0..len)
                .map(|i| char::from(CHARS[((state >> (4 * i + 8)) % CHARS.len() as u64) as usize]))
                .collect();
            assert_eq!(decode_part(&text).ok(), B64.decode(&text).ok(), "{text:?}");
        }
    }

    #[test]
    fn typ_values() {
        assert!(typ_ok(None, false));
        assert!(typ_ok(Some("JWT"), false));
        assert!(typ_ok(Some("at+JWT"), false));
        assert!(typ_ok(Some("application/at+jwt"), true));
        assert!(!typ_ok(Some("JWT"), true));
        assert!(!typ_ok(None, true));
        assert!(!typ_ok(Some("id_token+jwt"), false));
    }

    #[test]
    fn a_header_must_be_a_json_object() {
        let all = Algorithm::DEFAULT_ALLOWED;
        assert!(read_header(br#"["RS256",null,null]"#, false, &all).is_err());
        assert!(read_header(br#"{"alg":"RS256","alg":"RS256"}"#, false, &all).is_err());
        assert!(read_header(br#"{"alg":"RS256","kid":7}"#, false, &all).is_err());
        assert!(read_header(br#"{"alg":"RS256","kid":"a"}"#, false, &all).is_ok());
    }

    #[test]
    fn the_header_reader_refuses_what_a_unique_object_refuses() {
        use crate::error::AuthErrorKind;
        let all = Algorithm::DEFAULT_ALLOWED;
        let reason = |h: &str| match read_header(h.as_bytes(), false, &all) {
            Ok((header, alg)) => Ok((header.kid, alg)),
            Err(e) => Err(e.kind()),
        };
        let malformed = Err(AuthErrorKind::InvalidToken(InvalidTokenReason::Malformed));
        for bad in [
            r#"{"alg":"RS256","x":"\ud800"}"#,
            r#"{"alg":"RS256","x":1,"x":2}"#,
            r#"{"alg":"RS256"} x"#,
            r#"{"alg":null}"#,
            r#"{"alg":"RS256","typ":null}"#,
            r#"{"alg":"RS256","kid":["a"]}"#,
            r#"{"kid":"a"}"#,
            r#"{"alg":"RS256","x":[1,}"#,
        ] {
            assert_eq!(reason(bad), malformed, "{bad}");
        }
        assert_eq!(
            reason(r#"{"alg":"RS256","crit":null}"#),
            Err(AuthErrorKind::InvalidToken(
                InvalidTokenReason::UnsupportedCritical
            ))
        );
        assert_eq!(
            reason(r#"{"alg":"none"}"#),
            Err(AuthErrorKind::InvalidToken(
                InvalidTokenReason::AlgorithmNotAllowed
            ))
        );
        assert_eq!(
            reason(r#"{"alg":"RS256","typ":"id+jwt"}"#),
            Err(AuthErrorKind::InvalidToken(InvalidTokenReason::WrongType))
        );
        assert_eq!(
            reason(r#"{"alg":"RS\u0032\u0035\u0036","kid":"k\u0031","x":{"y":1,"y":2}}"#),
            Ok((Some("k1".to_owned()), Algorithm::RS256))
        );
    }

    #[test]
    fn sanitize_replaces_forbidden_characters() {
        assert_eq!(sanitize("a\"b\\c\né"), "a?b?c??");
    }

    #[test]
    fn a_cached_token_and_its_bytes_hash_alike_by_their_tail() {
        let hasher = TailHash::default();
        let token = format!("{}.{}.{}", "h".repeat(40), "p".repeat(300), "s".repeat(342));
        let owned: Vec<u8> = token.as_bytes().to_vec();
        assert_eq!(hasher.hash_one(&owned), hasher.hash_one(token.as_bytes()));
        // Only the length and the last bytes count.
        let other = format!("{}.{}.{}", "x".repeat(40), "p".repeat(300), "s".repeat(342));
        assert_eq!(
            hasher.hash_one(token.as_bytes()),
            hasher.hash_one(other.as_bytes())
        );
        let longer = format!("{token}s");
        assert_ne!(
            hasher.hash_one(token.as_bytes()),
            hasher.hash_one(longer.as_bytes())
        );
    }

    fn entry(exp: i64, key_id: u64) -> Arc<CacheEntry> {
        let claims = crate::claims::build_claims(
            serde_json::json!({"iss": "i", "exp": exp})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            Algorithm::HS256,
            None,
            &[],
        )
        .expect("claims");
        Arc::new(CacheEntry { claims, key_id })
    }

    #[test]
    fn a_sweep_keeps_only_unexpired_entries_of_held_keys() {
        let now = unix_now();
        assert!(entry(now + 10, 1).live(&[1, 2], now, 0));
        assert!(!entry(now + 10, 3).live(&[1, 2], now, 0), "key gone");
        assert!(!entry(now, 1).live(&[1], now, 0), "expired");
        assert!(entry(now, 1).live(&[1], now, 5), "within the leeway");
    }

    #[test]
    fn a_sweep_runs_when_the_key_set_changes_or_a_minute_passes() {
        let cache = TokenCache::new(10, 0);
        let now = unix_now();
        cache.entries.insert(b"a".to_vec(), entry(now + 600, 1));
        // A key store that holds no key: every entry is a vanished key's.
        let keys = KeyStore::fixed(Vec::new());
        let generation = keys.generation();
        cache.swept_generation.store(generation, Ordering::Relaxed);
        cache.sweep(&keys, now);
        assert_eq!(cache.entries.len(), 1, "nothing changed: no sweep");
        // No runtime here: the sweep runs in place.
        cache.sweep(&keys, now + SWEEP_EVERY_SECS);
        assert_eq!(cache.entries.len(), 0);
        cache.entries.insert(b"b".to_vec(), entry(now + 600, 1));
        cache
            .swept_generation
            .store(generation.wrapping_add(1), Ordering::Relaxed);
        cache.sweep(&keys, now + SWEEP_EVERY_SECS);
        assert_eq!(cache.entries.len(), 0, "a new key set");
    }

    #[test]
    fn tokens_sharing_their_last_bytes_are_distinct_keys() {
        let a = format!("{}.{}", "a".repeat(100), "s".repeat(HASHED_TAIL));
        let b = format!("{}.{}", "b".repeat(100), "s".repeat(HASHED_TAIL));
        let cache = TokenCache::new(10, 0);
        cache
            .entries
            .insert(a.as_bytes().to_vec(), entry(unix_now() + 600, 1));
        assert!(cache.entries.get(a.as_bytes()).is_some());
        assert!(cache.entries.get(b.as_bytes()).is_none());
    }

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn verifier_is_send_and_sync() {
        assert_send_sync::<Verifier>();
    }
}
