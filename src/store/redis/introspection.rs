//! The introspection cache on Redis: `GETRANGE <prefix>introspection:<key> 0 <max>` and
//! `SET … <value> PX <ttl ms>`, where `<key>` is the introspector's
//! [`CacheKey`] (a SHA-256 over its configuration and the token, never the token). The
//! answer is the validated response members only ([`CachedAnswer::to_bytes`]); the TTL is
//! the introspector's (the same rule as the in-memory cache). A failed or slow call is a
//! miss for the introspector. Reads are bounded: at most [`MAX_ANSWER_BYTES`] + 1 bytes
//! come back whatever Redis holds, and a longer value is a miss.
//!
//! # Trust
//!
//! With a [`snapshot_secret`](super::RedisStoreBuilder::snapshot_secret) (the fleet's
//! shared secret), each entry is authenticated: the value is `bgin1` (format), an
//! HMAC-SHA-256 (32 bytes), the time the entry ends (Unix milliseconds, 8 bytes
//! big-endian) and the answer; the MAC covers a label, the cache key, that time and the
//! answer, and is verified (in constant time) before use. An entry planted or edited by
//! someone who can write to Redis, moved to another key, kept past its end, or written with
//! another secret is a miss (the endpoint is asked), logged at WARN at most once a minute.
//!
//! **Without a secret, Redis is trusted for the introspection cache**: entries are the bare
//! answers, and whoever can write to Redis can make any opaque token accepted with any
//! claims (at most until the `exp` they choose). A WARN line says so once, at the first use.
//! Configure the secret on every replica of a fleet that shares a Redis it does not fully
//! trust.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use super::RedisStore;
use super::sealed::{Sealed, unix_ms};
use crate::introspection::{CacheError, CacheFuture, CacheKey, CachedAnswer, IntrospectionCache};

/// The largest cached answer read back (a longer value is a miss).
pub(super) const MAX_ANSWER_BYTES: usize = 256 * 1024;

const SEALED: Sealed = Sealed {
    magic: b"bgin1",
    label: b"bearer-guard introspection cache entry v1\0",
};

/// The WARN lines about entries that fail authentication: at most one a minute.
static FORGED_LOG: crate::rejection::Limiter = crate::rejection::Limiter::new();
/// The one WARN line about a cache on Redis without a secret.
static UNAUTHENTICATED_LOGGED: AtomicBool = AtomicBool::new(false);

/// The value stored for `answer` under `key`, ending at `until_ms`.
fn seal(secret: &[u8], key: &CacheKey, until_ms: u64, answer: &[u8]) -> Option<Vec<u8>> {
    SEALED.seal(secret, key.as_bytes(), until_ms, answer)
}

/// Why a sealed value was not used.
#[derive(Debug, PartialEq, Eq)]
enum Unsealed<'a> {
    /// The answer bytes: authentic and not ended.
    Answer(&'a [u8]),
    /// Authentic but past its end (kept longer than written: a changed TTL, or clocks).
    Ended,
    /// Not sealed under this secret for this key.
    Forged,
}

/// The answer in `value`, if its MAC verifies under `secret` for `key` and it has not
/// ended at `now_ms`.
fn open<'a>(secret: &[u8], key: &CacheKey, value: &'a [u8], now_ms: u64) -> Unsealed<'a> {
    match SEALED.open(secret, key.as_bytes(), value) {
        Some((until_ms, answer)) if now_ms < until_ms => Unsealed::Answer(answer),
        Some(_) => Unsealed::Ended,
        None => Unsealed::Forged,
    }
}

fn warn_unauthenticated_once() {
    if !UNAUTHENTICATED_LOGGED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "bearer-guard: the introspection cache on Redis has no secret (snapshot_secret): \
             its entries are not authenticated, and whoever can write to Redis can make any \
             opaque token accepted; configure the fleet's secret unless Redis is fully trusted"
        );
    }
}

impl IntrospectionCache for RedisStore {
    fn call_timeout(&self) -> Option<Duration> {
        Some(self.inner.timeout)
    }

    fn get<'a>(&'a self, key: &'a CacheKey) -> CacheFuture<'a, Option<CachedAnswer>> {
        Box::pin(async move {
            let secret = self.inner.snapshot_secret.as_deref();
            if secret.is_none() {
                warn_unauthenticated_once();
            }
            let longest = MAX_ANSWER_BYTES + if secret.is_some() { Sealed::HEADER } else { 0 };
            // GETRANGE, not GET: at most `longest + 1` bytes come back whatever the value's
            // size (a missing key answers an empty string).
            let mut cmd = redis::cmd("GETRANGE");
            cmd.arg(self.key("introspection", key.as_bytes()))
                .arg(0)
                .arg(longest);
            let value = self
                .call::<Vec<u8>>("introspection_get", cmd)
                .await
                .map_err(|e| CacheError::new(e.to_string()))?;
            if value.is_empty() || value.len() > longest {
                return Ok(None);
            }
            let Some(secret) = secret else {
                return Ok(CachedAnswer::from_bytes(&value));
            };
            match open(secret, key, &value, unix_ms(SystemTime::now())) {
                Unsealed::Answer(answer) => Ok(CachedAnswer::from_bytes(answer)),
                Unsealed::Ended => Ok(None),
                Unsealed::Forged => {
                    if let Some(suppressed) = FORGED_LOG.allow_now() {
                        tracing::warn!(
                            suppressed,
                            "bearer-guard: an introspection cache entry in Redis failed \
                             authentication (another secret, or written or edited by someone \
                             else); ignored, the endpoint is asked"
                        );
                    }
                    Ok(None)
                }
            }
        })
    }

    fn put<'a>(
        &'a self,
        key: &'a CacheKey,
        answer: CachedAnswer,
        ttl: Duration,
    ) -> CacheFuture<'a, ()> {
        Box::pin(async move {
            let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            let bytes = answer.to_bytes();
            if bytes.len() > MAX_ANSWER_BYTES {
                return Ok(());
            }
            let value = match self.inner.snapshot_secret.as_deref() {
                Some(secret) => {
                    let until = unix_ms(SystemTime::now()).saturating_add(ms);
                    seal(secret, key, until, &bytes)
                        .ok_or_else(|| CacheError::new("the entry could not be sealed"))?
                }
                None => {
                    warn_unauthenticated_once();
                    bytes
                }
            };
            let mut cmd = redis::cmd("SET");
            cmd.arg(self.key("introspection", key.as_bytes()))
                .arg(value)
                .arg("PX")
                .arg(ms);
            self.call::<()>("introspection_put", cmd)
                .await
                .map_err(|e| CacheError::new(e.to_string()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn a_sealed_entry_opens_with_the_same_secret_and_key_until_it_ends() {
        let key = CacheKey::of("k");
        let v = seal(SECRET, &key, NOW + 1000, b"Rinactive").unwrap_or_default();
        assert_eq!(open(SECRET, &key, &v, NOW), Unsealed::Answer(b"Rinactive"));
        assert_eq!(open(SECRET, &key, &v, NOW + 1000), Unsealed::Ended);
    }

    #[test]
    fn another_secret_another_key_an_edit_or_a_bare_answer_fails_the_check() {
        let key = CacheKey::of("k");
        let v = seal(SECRET, &key, NOW + 1000, b"Rinactive").unwrap_or_default();
        assert_eq!(
            open(b"another-secret-of-thirty-two-byte", &key, &v, NOW),
            Unsealed::Forged
        );
        assert_eq!(open(SECRET, &CacheKey::of("k2"), &v, NOW), Unsealed::Forged);
        for i in [5, 37, 44, v.len() - 1] {
            let mut edited = v.clone();
            edited[i] ^= 1;
            assert_eq!(open(SECRET, &key, &edited, NOW), Unsealed::Forged, "{i}");
        }
        assert_eq!(open(SECRET, &key, &v[..20], NOW), Unsealed::Forged);
        assert_eq!(
            open(SECRET, &key, br#"A{"exp":4102444800}"#, NOW),
            Unsealed::Forged
        );
    }
}
