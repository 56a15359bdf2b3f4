//! Remembering the proofs already accepted, so that each is accepted once (RFC 9449 §11.1).
//!
//! A proof is identified by a fixed-size key, the SHA-256 of its key thumbprint and its
//! `jti` ([`ReplayKey`]): never the proof itself. It is remembered until its `iat` window
//! has passed (after which the proof is refused as too old anyway).
//!
//! The store is a trait with one async call, [`ReplayStore::check_and_insert`], which fits
//! a shared store such as Redis (`SET key 1 NX PX ttl`: set only if absent, answered
//! atomically). The default, [`InMemoryReplayStore`], is bounded in entries: when it is full
//! of live entries it **refuses** to record a new proof rather than forget a live one (which
//! would let that proof be replayed); the request is then answered 503 with `Retry-After`
//! (the time until the oldest entry expires): the failure is closed, never open.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::time::Instant;

/// The default capacity of [`InMemoryReplayStore`]: 100,000 live proofs, about 15 MiB
/// (BENCHMARKS.md). With the default 90 s window (60 s age plus 30 s leeway) that holds
/// about 1,100 DPoP requests per second.
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

/// The identity of one proof in a replay store: SHA-256 over the key thumbprint, a zero
/// byte and the `jti`. Fixed-size, and reveals neither.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplayKey([u8; 32]);

impl ReplayKey {
    /// The key of the proof made with the key of thumbprint `jkt` and carrying `jti`.
    pub fn new(jkt: &str, jti: &str) -> Self {
        let mut h = Sha256::new();
        h.update(jkt.as_bytes());
        h.update([0]);
        h.update(jti.as_bytes());
        Self(h.finalize().into())
    }

    /// The 32 bytes (for a store's own key format, e.g. hex in a Redis key).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for ReplayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReplayKey(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// The answer of [`ReplayStore::check_and_insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayCheck {
    /// The key was not there; it is now, for the time asked.
    Fresh,
    /// The key was there: the proof was used before.
    Replayed,
}

/// Why a replay store could not answer. The caller fails closed: the proof is refused with
/// 503 and `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayStoreError {
    /// The store is full of live entries.
    Full {
        /// When an entry expires and room is made.
        retry_after: Duration,
    },
    /// The store could not be reached or failed.
    Unavailable(String),
}

impl fmt::Display for ReplayStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full { retry_after } => write!(
                f,
                "the replay store is full of live entries (room in {retry_after:?})"
            ),
            Self::Unavailable(why) => write!(f, "the replay store is unavailable: {why}"),
        }
    }
}

impl std::error::Error for ReplayStoreError {}

/// The future [`ReplayStore::check_and_insert`] returns.
pub type ReplayFuture<'a> =
    Pin<Box<dyn Future<Output = Result<ReplayCheck, ReplayStoreError>> + Send + 'a>>;

/// Where accepted proofs are remembered.
///
/// One atomic call: record `key` for `ttl` unless it is already recorded, and say which.
/// A Redis implementation is `SET <prefix><hex key> 1 NX PX <ttl ms>`: `OK` is
/// [`ReplayCheck::Fresh`], nil is [`ReplayCheck::Replayed`].
pub trait ReplayStore: Send + Sync + fmt::Debug + 'static {
    /// Records `key` for `ttl` if it is absent (then [`ReplayCheck::Fresh`]), or answers
    /// [`ReplayCheck::Replayed`].
    fn check_and_insert(&self, key: ReplayKey, ttl: Duration) -> ReplayFuture<'_>;

    /// The bound this store puts on each of its own calls, if any (default `None`). The
    /// DPoP check then waits at least that long and 50 ms more (see
    /// [`DpopBuilder::replay_timeout`](super::DpopBuilder::replay_timeout)), so that the
    /// store's own timeout answers first and the store can count it (the Redis store's
    /// circuit opens on it).
    fn call_timeout(&self) -> Option<Duration> {
        None
    }
}

/// The default [`ReplayStore`]: in memory, for one process, bounded in entries.
///
/// Expired entries are dropped as new ones come (the entry expiring first is always at hand,
/// in a min-heap): each call costs O(log n). When the store holds `capacity` live entries, a
/// new key is refused with [`ReplayStoreError::Full`] (503 to the client), never recorded by
/// forgetting a live one. About 150 bytes per entry (BENCHMARKS.md).
///
/// A fleet of replicas behind a load balancer needs a shared store: a proof replayed to
/// another replica is not seen by this one.
pub struct InMemoryReplayStore {
    capacity: usize,
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    expiry: HashMap<ReplayKey, Instant>,
    by_expiry: BinaryHeap<Reverse<(Instant, ReplayKey)>>,
}

impl fmt::Debug for InMemoryReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryReplayStore")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl Default for InMemoryReplayStore {
    fn default() -> Self {
        Self::new(DEFAULT_REPLAY_CAPACITY)
    }
}

impl InMemoryReplayStore {
    /// A store holding at most `capacity` live proofs (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Entries::default()),
        }
    }

    /// The number of entries held (expired ones included until they are swept).
    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |e| e.expiry.len())
    }

    /// Whether the store holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The synchronous check-and-insert at `now`.
    pub(crate) fn check_and_insert_at(
        &self,
        key: ReplayKey,
        ttl: Duration,
        now: Instant,
    ) -> Result<ReplayCheck, ReplayStoreError> {
        let mut e = self
            .inner
            .lock()
            .map_err(|_| ReplayStoreError::Unavailable("poisoned lock".into()))?;
        let e = &mut *e;
        // Drop what has expired (each entry once: amortised O(log n)).
        while let Some(Reverse((at, k))) = e.by_expiry.peek().copied() {
            if at > now {
                break;
            }
            e.by_expiry.pop();
            // A key is in the heap once: it is only inserted when absent.
            e.expiry.remove(&k);
        }
        if e.expiry.contains_key(&key) {
            return Ok(ReplayCheck::Replayed);
        }
        if e.expiry.len() >= self.capacity {
            let retry_after = e
                .by_expiry
                .peek()
                .map_or(Duration::from_secs(1), |Reverse((at, _))| {
                    at.saturating_duration_since(now)
                });
            return Err(ReplayStoreError::Full { retry_after });
        }
        let at = now + ttl;
        e.expiry.insert(key, at);
        e.by_expiry.push(Reverse((at, key)));
        Ok(ReplayCheck::Fresh)
    }
}

impl ReplayStore for InMemoryReplayStore {
    fn check_and_insert(&self, key: ReplayKey, ttl: Duration) -> ReplayFuture<'_> {
        let answer = self.check_and_insert_at(key, ttl, Instant::now());
        Box::pin(std::future::ready(answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(90);

    #[test]
    fn a_key_is_fresh_once_then_replayed() {
        let s = InMemoryReplayStore::new(10);
        let now = Instant::now();
        let k = ReplayKey::new("jkt", "jti-1");
        assert_eq!(s.check_and_insert_at(k, TTL, now), Ok(ReplayCheck::Fresh));
        assert_eq!(
            s.check_and_insert_at(k, TTL, now),
            Ok(ReplayCheck::Replayed)
        );
    }

    #[test]
    fn the_same_jti_under_another_key_is_another_proof() {
        let s = InMemoryReplayStore::new(10);
        let now = Instant::now();
        assert_eq!(
            s.check_and_insert_at(ReplayKey::new("a", "j"), TTL, now),
            Ok(ReplayCheck::Fresh)
        );
        assert_eq!(
            s.check_and_insert_at(ReplayKey::new("b", "j"), TTL, now),
            Ok(ReplayCheck::Fresh)
        );
        // The separator: ("ab", "c") is not ("a", "bc").
        assert_ne!(ReplayKey::new("ab", "c"), ReplayKey::new("a", "bc"));
    }

    #[test]
    fn a_full_store_of_live_entries_refuses_rather_than_forgets() {
        let s = InMemoryReplayStore::new(2);
        let now = Instant::now();
        let (a, b, c) = (
            ReplayKey::new("k", "a"),
            ReplayKey::new("k", "b"),
            ReplayKey::new("k", "c"),
        );
        assert_eq!(s.check_and_insert_at(a, TTL, now), Ok(ReplayCheck::Fresh));
        assert_eq!(
            s.check_and_insert_at(b, TTL, now + Duration::from_secs(10)),
            Ok(ReplayCheck::Fresh)
        );
        assert_eq!(
            s.check_and_insert_at(c, TTL, now + Duration::from_secs(20)),
            Err(ReplayStoreError::Full {
                retry_after: Duration::from_secs(70)
            })
        );
        // Still remembered: a full store does not let a replay through.
        assert_eq!(
            s.check_and_insert_at(a, TTL, now + Duration::from_secs(20)),
            Ok(ReplayCheck::Replayed)
        );
    }

    #[test]
    fn expired_entries_make_room_and_are_forgotten() {
        let s = InMemoryReplayStore::new(1);
        let now = Instant::now();
        let (a, b) = (ReplayKey::new("k", "a"), ReplayKey::new("k", "b"));
        assert_eq!(s.check_and_insert_at(a, TTL, now), Ok(ReplayCheck::Fresh));
        let later = now + TTL;
        assert_eq!(s.check_and_insert_at(b, TTL, later), Ok(ReplayCheck::Fresh));
        assert_eq!(s.len(), 1);
        assert_eq!(
            s.check_and_insert_at(a, TTL, later + TTL),
            Ok(ReplayCheck::Fresh)
        );
    }

    #[test]
    fn the_replay_key_debug_shows_only_a_prefix() {
        let k = ReplayKey::new("jkt", "secret-jti");
        let d = format!("{k:?}");
        assert!(!d.contains("secret") && d.len() < 24, "{d}");
    }
}
