//! The introspection cache: answers kept by a hash of the token, behind a small async trait
//! ([`IntrospectionCache`]) with a bounded in-memory default ([`MemoryCache`]).
//!
//! A store sees only [`CacheKey`]s (a SHA-256 over the introspector's configuration and the
//! token: fixed size, never the token) and [`CachedAnswer`]s, which serialize to bytes
//! ([`CachedAnswer::to_bytes`]) so that a shared store fits: with Redis, `GETRANGE key` and
//! `SET key bytes PX ttl_ms`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::claims::{Claims, ScopeSource};
use crate::error::InvalidTokenReason;

/// The key of a token in the cache: a SHA-256 hash. The token itself is never stored.
/// `Debug` shows the first 8 hex digits only.
///
/// An [`Introspector`](super::Introspector) keys its answers by a hash over a domain label,
/// its issuer, its sorted audiences, whether a missing `aud` is allowed, whether it asks for
/// signed responses, and the token: two introspectors configured differently (two APIs of
/// different audiences sharing one Redis, say) never read each other's answers.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey([u8; 32]);

impl CacheKey {
    /// The SHA-256 of `token` alone, bound to no configuration (the introspector's own keys
    /// are bound to its configuration; see the type's docs).
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// The 32 bytes of the hash.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The hash in lower-case hex (64 characters), e.g. for a Redis key
    /// `bearer-guard:introspection:<hex>`.
    pub fn to_hex(&self) -> String {
        use std::fmt::Write as _;
        self.0.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({}…)", &self.to_hex()[..8])
    }
}

/// The domain label of an introspector's cache keys.
const KEY_LABEL: &[u8] = b"bearer-guard introspection cache key v1\0";

/// The configuration an introspector's cache keys are bound to: a SHA-256 state that has
/// taken the label and the configuration, cloned for each token.
#[derive(Clone)]
pub(super) struct KeyBinding(Sha256);

impl KeyBinding {
    /// The binding for an introspector of `issuer` and `audiences` (order and repeats do not
    /// matter), allowing a missing `aud` or not, asking for signed responses or not.
    pub(super) fn new(
        issuer: &str,
        audiences: &[String],
        allow_missing_audience: bool,
        signed_responses: bool,
    ) -> Self {
        let mut audiences: Vec<&str> = audiences.iter().map(String::as_str).collect();
        audiences.sort_unstable();
        audiences.dedup();
        let mut h = Sha256::new();
        h.update(KEY_LABEL);
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        };
        field(issuer.as_bytes());
        field(&(audiences.len() as u64).to_be_bytes());
        for a in audiences {
            field(a.as_bytes());
        }
        field(&[u8::from(allow_missing_audience), u8::from(signed_responses)]);
        Self(h)
    }

    /// The key of `token` under this binding.
    pub(super) fn key(&self, token: &str) -> CacheKey {
        let mut h = self.0.clone();
        h.update((token.len() as u64).to_be_bytes());
        h.update(token.as_bytes());
        CacheKey(h.finalize().into())
    }
}

impl fmt::Debug for KeyBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyBinding")
    }
}

/// A remembered introspection answer: an accepted token's claims (the validated response),
/// or why the token was refused (`active: false`, or an active token that failed the
/// checks). Cheap to clone.
#[derive(Clone)]
pub struct CachedAnswer(Arc<Answer>);

enum Answer {
    Active { text: Box<str>, claims: Claims },
    Refused(InvalidTokenReason),
}

/// The refusals an answer may hold, by their stable names.
const REFUSALS: [InvalidTokenReason; 8] = [
    InvalidTokenReason::Inactive,
    InvalidTokenReason::Expired,
    InvalidTokenReason::NotYetValid,
    InvalidTokenReason::IssuedInFuture,
    InvalidTokenReason::WrongIssuer,
    InvalidTokenReason::WrongAudience,
    InvalidTokenReason::MissingClaim,
    InvalidTokenReason::InvalidClaim,
];

impl CachedAnswer {
    pub(super) fn active(text: Box<str>, claims: Claims) -> Self {
        Self(Arc::new(Answer::Active { text, claims }))
    }

    pub(super) fn refused(reason: InvalidTokenReason) -> Self {
        Self(Arc::new(Answer::Refused(reason)))
    }

    /// Whether the answer accepts the token (its time claims are checked again at each use).
    pub fn is_active(&self) -> bool {
        matches!(*self.0, Answer::Active { .. })
    }

    /// The accepted token's claims (what the layer puts in the request), or `None` for a
    /// refusal.
    pub fn claims(&self) -> Option<&Claims> {
        self.outcome().ok()
    }

    /// The accepted token's claims, or why it was refused.
    pub(super) fn outcome(&self) -> Result<&Claims, InvalidTokenReason> {
        match &*self.0 {
            Answer::Active { claims, .. } => Ok(claims),
            Answer::Refused(reason) => Err(*reason),
        }
    }

    /// The answer as bytes for a shared store: `A` and the validated response's JSON text,
    /// or `R` and the refusal's name.
    pub fn to_bytes(&self) -> Vec<u8> {
        match &*self.0 {
            Answer::Active { text, .. } => {
                let mut v = Vec::with_capacity(text.len() + 1);
                v.push(b'A');
                v.extend_from_slice(text.as_bytes());
                v
            }
            Answer::Refused(reason) => {
                let mut v = vec![b'R'];
                v.extend_from_slice(reason.as_str().as_bytes());
                v
            }
        }
    }

    /// An answer read back from [`to_bytes`](Self::to_bytes); `None` for bytes that are not
    /// one (a store's entry is then treated as a miss).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        match bytes.split_first()? {
            (b'A', text) => {
                let text = std::str::from_utf8(text).ok()?;
                let claims = crate::claims::from_introspection(
                    text.to_owned(),
                    None,
                    &[ScopeSource::Claim("scope".into())],
                )
                .ok()?;
                Some(Self::active(text.into(), claims))
            }
            (b'R', name) => REFUSALS
                .iter()
                .find(|r| r.as_str().as_bytes() == name)
                .map(|r| Self::refused(*r)),
            _ => None,
        }
    }
}

impl fmt::Debug for CachedAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            Answer::Active { claims, .. } => f.debug_tuple("Active").field(claims).finish(),
            Answer::Refused(reason) => f.debug_tuple("Refused").field(reason).finish(),
        }
    }
}

/// Why a store could not answer. The text is for logs.
#[derive(Debug, Clone)]
pub struct CacheError(String);

impl CacheError {
    /// An error with this description (never put token material in it).
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CacheError {}

/// The future of an [`IntrospectionCache`] call.
pub type CacheFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, CacheError>> + Send + 'a>>;

/// Where introspection answers are kept: the in-memory [`MemoryCache`] by default, or a
/// store shared by a fleet (Redis: `GET` / `SET … PX`).
///
/// The [`Introspector`](super::Introspector) bounds each call with its cache timeout. Its
/// policy when the store fails or is slow: a failed `get` is a miss (the endpoint is asked),
/// a failed `put` is logged and forgotten. Single flight (one call per new token, however
/// many requests carry it) is the introspector's, per process, whatever the store.
pub trait IntrospectionCache: fmt::Debug + Send + Sync + 'static {
    /// The live answer kept for `key`, if any.
    fn get<'a>(&'a self, key: &'a CacheKey) -> CacheFuture<'a, Option<CachedAnswer>>;

    /// Keeps `answer` for `key` during `ttl` (never zero).
    fn put<'a>(
        &'a self,
        key: &'a CacheKey,
        answer: CachedAnswer,
        ttl: Duration,
    ) -> CacheFuture<'a, ()>;

    /// The store's own bound on one call, if it has one: the introspector then waits at
    /// least that long (and a little more) before it gives up on a call (see
    /// [`IntrospectorBuilder::cache_timeout`](super::IntrospectorBuilder::cache_timeout)),
    /// so that the store's own timeout answers first and the store can count it (the Redis
    /// store's circuit opens on it).
    fn call_timeout(&self) -> Option<Duration> {
        None
    }
}

/// The default cache: in memory, bounded in entries (least recently used entries leave
/// first), each entry with its own expiry.
pub struct MemoryCache {
    entries: quick_cache::sync::Cache<CacheKey, (Instant, CachedAnswer)>,
    capacity: usize,
}

impl MemoryCache {
    /// A cache of at most `capacity` entries (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            entries: quick_cache::sync::Cache::new(capacity),
            capacity,
        }
    }

    /// The entries held (expired ones included until they are looked up or pushed out).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The live answer for `key`, without a future (the introspector's fast path).
    pub(super) fn lookup(&self, key: &CacheKey, now: Instant) -> Option<CachedAnswer> {
        match self.entries.get(key) {
            Some((until, answer)) if now < until => Some(answer),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }
}

impl fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryCache")
            .field("capacity", &self.capacity)
            .field("len", &self.entries.len())
            .finish()
    }
}

impl IntrospectionCache for MemoryCache {
    fn get<'a>(&'a self, key: &'a CacheKey) -> CacheFuture<'a, Option<CachedAnswer>> {
        let found = self.lookup(key, Instant::now());
        Box::pin(std::future::ready(Ok(found)))
    }

    fn put<'a>(
        &'a self,
        key: &'a CacheKey,
        answer: CachedAnswer,
        ttl: Duration,
    ) -> CacheFuture<'a, ()> {
        if let Some(until) = Instant::now().checked_add(ttl) {
            self.entries.insert(*key, (until, answer));
        }
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active() -> CachedAnswer {
        CachedAnswer::from_bytes(
            br#"A{"iss":"https://as.example","exp":4102444800,"scope":"b a","sub":"s"}"#,
        )
        .expect("answer")
    }

    #[test]
    fn the_key_is_the_sha256_of_the_token_and_never_shows_it() {
        let k = CacheKey::of("opaque-token");
        assert_eq!(k.to_hex().len(), 64);
        assert_eq!(k, CacheKey::of("opaque-token"));
        assert_ne!(k, CacheKey::of("opaque-token2"));
        assert!(!format!("{k:?}").contains("opaque"));
        // SHA-256("abc")
        assert!(
            CacheKey::of("abc")
                .to_hex()
                .starts_with("ba7816bf8f01cfea414140de5dae2223")
        );
    }

    #[test]
    fn a_bound_key_depends_on_issuer_audiences_options_and_token_not_audience_order() {
        let aud = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let base = KeyBinding::new("https://as/", &aud(&["a", "b"]), false, false);
        let k = base.key("t");
        assert_eq!(
            k,
            KeyBinding::new("https://as/", &aud(&["b", "a", "b"]), false, false).key("t")
        );
        assert_ne!(k, CacheKey::of("t"), "bound, not the bare token hash");
        assert_ne!(k, base.key("t2"));
        for other in [
            KeyBinding::new("https://other/", &aud(&["a", "b"]), false, false),
            KeyBinding::new("https://as/", &aud(&["a"]), false, false),
            KeyBinding::new("https://as/", &aud(&["ab"]), false, false),
            KeyBinding::new("https://as/", &aud(&["a", "b"]), true, false),
            KeyBinding::new("https://as/", &aud(&["a", "b"]), false, true),
        ] {
            assert_ne!(k, other.key("t"));
        }
    }

    #[test]
    fn answers_survive_the_trip_through_bytes() {
        let a = active();
        let back = CachedAnswer::from_bytes(&a.to_bytes()).expect("back");
        let claims = back.claims().expect("active");
        assert_eq!(claims.subject(), Some("s"));
        assert!(claims.scopes().contains("a"));
        assert!(claims.is_introspected());
        let r = CachedAnswer::refused(InvalidTokenReason::Inactive);
        let back = CachedAnswer::from_bytes(&r.to_bytes()).expect("back");
        assert_eq!(back.outcome().err(), Some(InvalidTokenReason::Inactive));
        assert!(back.claims().is_none());
        assert!(CachedAnswer::from_bytes(b"Rnonsense").is_none());
        assert!(CachedAnswer::from_bytes(b"A{not json").is_none());
        assert!(CachedAnswer::from_bytes(b"").is_none());
    }

    #[test]
    fn an_entry_expires_after_its_ttl() {
        let cache = MemoryCache::new(10);
        let key = CacheKey::of("t");
        let now = Instant::now();
        cache
            .entries
            .insert(key, (now + Duration::from_secs(1), active()));
        assert!(cache.lookup(&key, now).is_some());
        assert!(cache.lookup(&key, now + Duration::from_secs(2)).is_none());
        assert!(cache.is_empty(), "the expired entry is dropped");
    }

    #[tokio::test]
    async fn the_memory_cache_is_bounded_in_entries() {
        let cache = MemoryCache::new(100);
        for i in 0..1000 {
            let key = CacheKey::of(&format!("token-{i}"));
            cache
                .put(&key, active(), Duration::from_secs(60))
                .await
                .expect("kept");
        }
        assert!(cache.len() <= 100, "{}", cache.len());
    }
}
