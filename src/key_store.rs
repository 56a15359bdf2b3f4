//! The key store: the current key set in a lock-free snapshot, refreshed safely.
//!
//! - Reads never wait on a fetch unless the token's key is unknown.
//! - One fetch at a time, run in its own task (a cancelled request cannot waste it); every
//!   request that needs it awaits the same fetch.
//! - Unknown `kid` refreshes are rate-limited by a token bucket (burst, then one per
//!   cooldown); an unknown `kid` refused for want of allowance schedules a catch-up refresh
//!   for when the allowance refills, so that a rotated key is loaded within the cooldown
//!   even without further requests, and a `kid` found absent after a refresh is remembered as absent for one
//!   cooldown (or until the next refresh, if sooner).
//! - A failed fetch keeps the last good set (stale-on-error) and is retried with backoff,
//!   but only for the maximum stale age counted from the first failure: then the keys are
//!   dropped and verification answers "keys unavailable" until a fetch succeeds.
//! - A well-formed set without a usable key is the issuer's answer: it replaces the keys.
//! - A background task refreshes ahead of expiry (at 80 % of the TTL); it is started again
//!   when it is gone (its runtime shut down).
//! - Time arithmetic saturates: no TTL or `max-age` can overflow an `Instant`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::algorithm::Algorithm;
use crate::crypto::Key;
use crate::error::{AuthError, InvalidTokenReason};
use crate::fetch::{Fetcher, JwksResponse};
use crate::jwks::parse_jwk_set;
use crate::store::{KeySetSnapshot, KeySetSnapshots};
use crate::verify::MAX_KID_BYTES;

/// How many absent `kid`s a snapshot remembers.
const MAX_ABSENT_KIDS: usize = 1024;

/// Refresh policy of a remote key store.
#[derive(Debug, Clone)]
pub(crate) struct RefreshPolicy {
    pub(crate) min_ttl: Duration,
    pub(crate) max_ttl: Duration,
    pub(crate) default_ttl: Duration,
    pub(crate) unknown_kid_burst: u32,
    pub(crate) unknown_kid_cooldown: Duration,
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) max_keys: usize,
    pub(crate) max_stale_age: Duration,
    pub(crate) algorithms: Vec<Algorithm>,
    /// Key-set snapshots shared by a fleet; `None`: none (the no-op default).
    pub(crate) snapshots: Option<SnapshotHook>,
}

/// Where a fleet's key-set snapshots are kept, and the oldest one used.
#[derive(Debug, Clone)]
pub(crate) struct SnapshotHook {
    pub(crate) store: Arc<dyn KeySetSnapshots>,
    pub(crate) max_age: Duration,
}

/// Bound on one snapshot call, for a store that does not say its own
/// ([`KeySetSnapshots::call_timeout`]).
const SNAPSHOT_CALL_TIMEOUT: Duration = Duration::from_secs(1);

/// How long to wait for one call of `store`: its own bound and a margin when it has one
/// (its own timeout then answers first, and it counts it), else [`SNAPSHOT_CALL_TIMEOUT`].
fn snapshot_call_timeout(store: &dyn KeySetSnapshots) -> Duration {
    store.call_timeout().map_or(SNAPSHOT_CALL_TIMEOUT, |t| {
        t.saturating_add(crate::store::CALLER_MARGIN)
    })
}

/// `now + d`, saturating at a far-future instant instead of overflowing.
pub(crate) fn later(now: Instant, d: Duration) -> Instant {
    // About 30 years: far beyond any TTL, and representable on every platform.
    const FAR: Duration = Duration::from_secs(30 * 365 * 24 * 3600);
    now.checked_add(d.min(FAR))
        .or_else(|| now.checked_add(Duration::from_secs(24 * 3600)))
        .unwrap_or(now)
}

/// The keys held at one moment.
#[derive(Debug, Default)]
struct Snapshot {
    /// Keys by `kid`: usually one; several only for keys of different types sharing a
    /// `kid` (RFC 7517 §4.5), told apart by the token's `alg`.
    by_kid: HashMap<String, Vec<Arc<Key>>>,
    all: Vec<Arc<Key>>,
    /// Whether a key set was ever obtained.
    loaded: bool,
    /// Counts successful loads.
    generation: u64,
    etag: Option<String>,
    loaded_at: Option<SystemTime>,
    /// When to refresh in the background.
    refresh_due: Option<Instant>,
    /// SHA-256 of the JWK Set document the keys were parsed from.
    body_hash: Option<[u8; 32]>,
    /// The document itself, kept only when snapshots are on (to save it after a 304).
    document: Option<Arc<[u8]>>,
    /// Set at the first failed fetch after the keys were loaded: past it, the keys are
    /// dropped (see [`RefreshPolicy::max_stale_age`]).
    stale_until: Option<Instant>,
    /// `kid`s found absent after a fetch, each until when it is remembered.
    absent: Mutex<HashMap<String, Instant>>,
}

enum Lookup {
    Found(Arc<Key>),
    /// No `kid` in the token and more than one key fits its algorithm.
    Ambiguous,
    Missing,
}

impl Snapshot {
    fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Lookup {
        match kid {
            Some(kid) => match self.by_kid.get(kid).map(Vec::as_slice) {
                // One key: returned whatever its algorithm (the caller refuses a mismatch).
                Some([k]) => Lookup::Found(k.clone()),
                Some(keys) => match keys.iter().find(|k| k.alg() == alg).or(keys.first()) {
                    Some(k) => Lookup::Found(k.clone()),
                    None => Lookup::Missing,
                },
                None => Lookup::Missing,
            },
            None => {
                let mut fits = self.all.iter().filter(|k| k.alg() == alg);
                match (fits.next(), fits.next()) {
                    (Some(k), None) => Lookup::Found(k.clone()),
                    (Some(_), Some(_)) => Lookup::Ambiguous,
                    (None, _) => Lookup::Missing,
                }
            }
        }
    }

    /// Whether the keys have been stale for longer than the maximum stale age.
    fn expired(&self) -> bool {
        self.stale_until.is_some_and(|t| Instant::now() >= t)
    }

    /// The same keys, with a deadline for their staleness.
    fn stale(&self, until: Instant) -> Self {
        Self {
            by_kid: self.by_kid.clone(),
            all: self.all.clone(),
            loaded: self.loaded,
            generation: self.generation,
            etag: self.etag.clone(),
            loaded_at: self.loaded_at,
            refresh_due: self.refresh_due,
            body_hash: self.body_hash,
            document: self.document.clone(),
            stale_until: Some(until),
            absent: Mutex::default(),
        }
    }

    fn is_absent(&self, kid: &str) -> bool {
        let Ok(mut a) = self.absent.lock() else {
            return false;
        };
        match a.get(kid) {
            Some(&until) if Instant::now() < until => true,
            Some(_) => {
                a.remove(kid);
                false
            }
            None => false,
        }
    }

    /// Remembers `kid` as absent for `period` (the unknown-`kid` cooldown): long enough to
    /// spare the issuer, short enough that a key its CDN did not show yet is soon found.
    fn remember_absent(&self, kid: &str, period: Duration) {
        let Ok(mut a) = self.absent.lock() else {
            return;
        };
        let now = Instant::now();
        if a.len() >= MAX_ABSENT_KIDS {
            a.retain(|_, until| now < *until);
        }
        if a.len() < MAX_ABSENT_KIDS {
            a.insert(kid.to_owned(), later(now, period));
        }
    }

    /// The same keys, loaded again now (a 304 or an identical document).
    fn renewed(&self, etag: Option<String>, ttl: Duration) -> Self {
        Self {
            by_kid: self.by_kid.clone(),
            all: self.all.clone(),
            loaded: true,
            generation: self.generation + 1,
            etag,
            loaded_at: Some(SystemTime::now()),
            refresh_due: Some(later(Instant::now(), ttl.mul_f64(0.8))),
            body_hash: self.body_hash,
            document: self.document.clone(),
            stale_until: None,
            absent: Mutex::default(),
        }
    }

    fn from_keys(keys: Vec<Arc<Key>>) -> Self {
        let mut by_kid = HashMap::new();
        for k in &keys {
            if let Some(kid) = k.kid() {
                by_kid
                    .entry(kid.to_owned())
                    .or_insert_with(Vec::new)
                    .push(k.clone());
            }
        }
        Self {
            by_kid,
            all: keys,
            loaded: true,
            ..Self::default()
        }
    }
}

/// The freshness of a key store, for readiness probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyHealth {
    /// Keys are held and the last refresh succeeded (or the keys are static).
    Fresh {
        /// How many keys are held.
        keys: usize,
    },
    /// Keys are held, but refreshing has failed since `since`.
    Stale {
        /// How many keys are held.
        keys: usize,
        /// When the first failing refresh happened.
        since: SystemTime,
    },
    /// No key set was ever obtained.
    Missing,
}

#[derive(Debug, Clone)]
enum Outcome {
    Loaded,
    /// The fetch failed, for this reason (for logs and [`KeyStore::refresh_now`]).
    Failed(Arc<str>),
}

impl Outcome {
    fn failed(reason: impl Into<Arc<str>>) -> Self {
        Self::Failed(reason.into())
    }
}

#[derive(Debug)]
struct Coord {
    inflight: Option<watch::Receiver<Option<Outcome>>>,
    /// The sequence number of the fetch in flight.
    inflight_seq: u64,
    /// Completed fetch attempts.
    attempts: u64,
    last: Option<Outcome>,
    /// The sequence number of the last completed fetch.
    last_seq: u64,
    bucket: f64,
    bucket_at: Instant,
    failures: u32,
    failing_since: Option<SystemTime>,
    /// Why the last fetch failed, while fetches fail.
    last_error: Option<Arc<str>>,
    next_retry: Option<Instant>,
    /// When an unknown `kid` was refused for want of refresh allowance: a refresh at the
    /// moment the allowance refills, so that a rotated key is loaded even without traffic.
    catch_up: Option<Instant>,
    fetches_started: u64,
}

#[derive(Debug)]
struct Remote {
    fetcher: Fetcher,
    policy: RefreshPolicy,
    coord: Mutex<Coord>,
    /// Whether the background task runs; it clears this when it ends or is dropped (its
    /// runtime shut down), so that the next request starts it again.
    background: Arc<AtomicBool>,
    /// Wakes the background task when a fetch finishes: a request's fetch may have failed
    /// (retry with backoff from now) or loaded a new set (the next refresh moved).
    wake: Arc<tokio::sync::Notify>,
}

#[derive(Debug)]
struct Inner {
    snapshot: ArcSwap<Snapshot>,
    remote: Option<Remote>,
}

/// A cheap handle to a key store.
#[derive(Debug, Clone)]
pub(crate) struct KeyStore {
    inner: Arc<Inner>,
}

enum Decision {
    /// Await this fetch; `authoritative` when it started after the caller looked at the keys.
    Wait {
        rx: watch::Receiver<Option<Outcome>>,
        authoritative: bool,
    },
    Done(Option<Outcome>),
    /// A newer key set than the one the caller searched is in place: search it first.
    LookAgain,
    Backoff(Duration),
    RateLimited,
}

impl KeyStore {
    /// A store with fixed keys.
    pub(crate) fn fixed(keys: Vec<Arc<Key>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                snapshot: ArcSwap::from_pointee(Snapshot::from_keys(keys)),
                remote: None,
            }),
        }
    }

    /// A store fed from the network.
    pub(crate) fn remote(fetcher: Fetcher, policy: RefreshPolicy) -> Self {
        let burst = f64::from(policy.unknown_kid_burst);
        Self {
            inner: Arc::new(Inner {
                snapshot: ArcSwap::from_pointee(Snapshot::default()),
                remote: Some(Remote {
                    fetcher,
                    policy,
                    coord: Mutex::new(Coord {
                        inflight: None,
                        inflight_seq: 0,
                        attempts: 0,
                        last: None,
                        last_seq: 0,
                        bucket: burst,
                        bucket_at: Instant::now(),
                        failures: 0,
                        failing_since: None,
                        last_error: None,
                        next_retry: None,
                        catch_up: None,
                        fetches_started: 0,
                    }),
                    background: Arc::new(AtomicBool::new(false)),
                    wake: Arc::new(tokio::sync::Notify::new()),
                }),
            }),
        }
    }

    /// Finds the key for a token's `kid` and `alg`, fetching when the key is unknown.
    pub(crate) async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<Key>, AuthError> {
        // No key has such a `kid` (longer ones are skipped when a JWK Set is read): refused
        // at once, without spending a refresh.
        if kid.is_some_and(|k| k.len() > MAX_KID_BYTES) {
            return Err(AuthError::invalid_with(
                InvalidTokenReason::UnknownKey,
                "the token's kid is longer than 256 bytes",
            ));
        }
        let Some(remote) = &self.inner.remote else {
            let snap = self.inner.snapshot.load();
            // PEM keys and HMAC secrets have no `kid`: a token naming a `kid` that no key has
            // is matched by algorithm among the keys without one.
            if kid.is_some_and(|k| !snap.by_kid.contains_key(k)) {
                let mut fits = snap
                    .all
                    .iter()
                    .filter(|k| k.kid().is_none() && k.alg() == alg);
                if let (Some(k), None) = (fits.next(), fits.next()) {
                    return Ok(k.clone());
                }
            }
            return self.lookup_final(&snap, kid, alg);
        };
        self.start_background();
        self.inner.drop_expired();
        // A fetch settles whether a key exists only if it started after we looked: one that
        // started earlier may predate the key's publication. Join such a fetch, then look
        // again (once) before starting a new one.
        let mut joined_earlier = false;
        let outcome = loop {
            let seen = remote.started();
            let snap = self.inner.snapshot.load_full();
            match snap.lookup(kid, alg) {
                Lookup::Found(k) => return Ok(k),
                Lookup::Ambiguous => {
                    return Err(AuthError::invalid(InvalidTokenReason::UnknownKey));
                }
                Lookup::Missing => {}
            }
            if snap.loaded
                && let Some(kid) = kid
                && snap.is_absent(kid)
            {
                return Err(AuthError::invalid(InvalidTokenReason::UnknownKey));
            }
            // An unknown key: refresh (or join a refresh) if allowed.
            match self.decide(seen, snap.generation, snap.loaded, kid) {
                Decision::Wait {
                    mut rx,
                    authoritative,
                } => {
                    let outcome = wait(&mut rx).await;
                    if authoritative || joined_earlier {
                        break outcome;
                    }
                    joined_earlier = true;
                }
                Decision::Done(o) => break o,
                Decision::LookAgain => {}
                Decision::Backoff(retry) => {
                    return Err(AuthError::keys_unavailable(Some(retry)));
                }
                Decision::RateLimited => {
                    return Err(AuthError::invalid(InvalidTokenReason::UnknownKey));
                }
            }
        };
        let snap = self.inner.snapshot.load_full();
        match outcome {
            Some(Outcome::Loaded) => {}
            _ if !snap.loaded => return Err(AuthError::keys_unavailable(remote.retry_after())),
            // Keys are held but the issuer is failing: this key may well be a new one.
            _ => {
                if let Lookup::Found(k) = snap.lookup(kid, alg) {
                    return Ok(k);
                }
                return Err(AuthError::keys_unavailable(remote.retry_after()));
            }
        }
        let result = self.lookup_final(&snap, kid, alg);
        if result.is_err()
            && let Some(kid) = kid
        {
            snap.remember_absent(kid, remote.policy.unknown_kid_cooldown);
        }
        result
    }

    fn lookup_final(
        &self,
        snap: &Snapshot,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<Key>, AuthError> {
        if !snap.loaded {
            return Err(AuthError::keys_unavailable(None));
        }
        match snap.lookup(kid, alg) {
            Lookup::Found(k) => Ok(k),
            Lookup::Ambiguous | Lookup::Missing => {
                Err(AuthError::invalid(InvalidTokenReason::UnknownKey))
            }
        }
    }

    fn decide(&self, seen: u64, looked_at: u64, rate_limited: bool, kid: Option<&str>) -> Decision {
        let Some(remote) = &self.inner.remote else {
            return Decision::Done(None);
        };
        let Ok(mut c) = remote.coord.lock() else {
            return Decision::Done(None);
        };
        if let Some(rx) = &c.inflight {
            return Decision::Wait {
                rx: rx.clone(),
                authoritative: c.inflight_seq > seen,
            };
        }
        if c.last_seq > seen {
            return Decision::Done(c.last.clone());
        }
        // A fetch finished between the caller's lookup and now (it stores its key set before
        // it clears `inflight` under this lock): the caller has not searched that set yet.
        if self.inner.snapshot.load().generation != looked_at {
            return Decision::LookAgain;
        }
        let now = Instant::now();
        if let Some(t) = c.next_retry
            && now < t
        {
            return Decision::Backoff(t - now);
        }
        if rate_limited {
            let p = &remote.policy;
            let per_sec = 1.0 / p.unknown_kid_cooldown.as_secs_f64().max(0.001);
            let elapsed = now.duration_since(c.bucket_at).as_secs_f64();
            c.bucket = (c.bucket + elapsed * per_sec).min(f64::from(p.unknown_kid_burst));
            c.bucket_at = now;
            if c.bucket < 1.0 {
                // While the issuer is failing, an unknown key may well be a new one that
                // could not be fetched: that is "keys unavailable", not a bad token.
                let until_next = p.unknown_kid_cooldown.mul_f64((1.0 - c.bucket).max(0.0));
                if c.failures > 0 {
                    return Decision::Backoff(until_next);
                }
                // Refresh when the allowance refills, with or without further requests.
                if c.catch_up.is_none() {
                    c.catch_up = Some(later(now, until_next));
                    remote.wake.notify_one();
                }
                return Decision::RateLimited;
            }
            c.bucket -= 1.0;
        }
        Decision::Wait {
            rx: self.spawn_fetch(&mut c, kid.map(str::to_owned)),
            authoritative: true,
        }
    }

    /// `wanted_kid`: the unknown `kid` the fetch is for, if any (a newer snapshot holding
    /// it is taken instead of fetching).
    fn spawn_fetch(
        &self,
        c: &mut Coord,
        wanted_kid: Option<String>,
    ) -> watch::Receiver<Option<Outcome>> {
        let (tx, rx) = watch::channel(None);
        c.inflight = Some(rx.clone());
        c.fetches_started += 1;
        c.inflight_seq = c.fetches_started;
        // This fetch loads what a catch-up refresh would have.
        c.catch_up = None;
        let seq = c.fetches_started;
        // Released when the task ends, however it ends: completed, panicked, or dropped
        // with its runtime.
        let guard = InflightGuard {
            inner: self.inner.clone(),
            seq,
            tx: Some(tx),
        };
        tokio::spawn(async move {
            let mut guard = guard;
            let outcome = guard.inner.fetch_once(wanted_kid.as_deref()).await;
            guard.complete(outcome);
        });
        rx
    }

    /// Starts the background refresher unless it runs (needs a Tokio runtime). It is
    /// started again when it is gone, for example because its runtime shut down.
    fn start_background(&self) {
        let Some(remote) = &self.inner.remote else {
            return;
        };
        if remote.background.load(Ordering::Acquire)
            || remote.background.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let alive = BackgroundAlive(remote.background.clone());
        tokio::spawn(async move {
            let _alive = alive;
            background(weak).await;
        });
    }

    /// Fetches now unless a fetch is under way (then joins it); for warm-up at startup.
    /// The error says why the keys could not be loaded.
    pub(crate) async fn refresh_now(&self) -> Result<(), Arc<str>> {
        let Some(remote) = &self.inner.remote else {
            return Ok(());
        };
        self.start_background();
        let rx = {
            let Ok(mut c) = remote.coord.lock() else {
                return Err("the key store's lock is poisoned".into());
            };
            match &c.inflight {
                Some(rx) => rx.clone(),
                None => self.spawn_fetch(&mut c, None),
            }
        };
        let mut rx = rx;
        match wait(&mut rx).await {
            Some(Outcome::Loaded) if self.inner.snapshot.load().all.is_empty() => {
                Err("the JWK Set has no usable key".into())
            }
            Some(Outcome::Loaded) => Ok(()),
            Some(Outcome::Failed(reason)) => Err(reason),
            None => Err("the fetch was abandoned".into()),
        }
    }

    /// Number of fetches started so far (for tests and metrics).
    #[allow(dead_code)]
    pub(crate) fn fetches_started(&self) -> u64 {
        self.inner
            .remote
            .as_ref()
            .and_then(|r| r.coord.lock().ok().map(|c| c.fetches_started))
            .unwrap_or(0)
    }

    /// Whether the key with this id is still held (and not stale beyond the maximum age).
    pub(crate) fn holds_key(&self, id: u64) -> bool {
        let snap = self.inner.snapshot.load();
        snap.all.iter().any(|k| k.id() == id) && !snap.expired()
    }

    /// The ids of the keys held now.
    pub(crate) fn key_ids(&self) -> Vec<u64> {
        self.inner
            .snapshot
            .load()
            .all
            .iter()
            .map(|k| k.id())
            .collect()
    }

    /// Counts the key sets loaded so far: changes whenever the held keys may have changed.
    pub(crate) fn generation(&self) -> u64 {
        self.inner.snapshot.load().generation
    }

    /// The current freshness.
    pub(crate) fn health(&self) -> KeyHealth {
        self.inner.drop_expired();
        let snap = self.inner.snapshot.load();
        if !snap.loaded {
            return KeyHealth::Missing;
        }
        let keys = snap.all.len();
        if let Some(r) = &self.inner.remote {
            crate::metrics::key_set_age(r.fetcher.issuer(), snap.loaded_at);
        }
        let failing = self
            .inner
            .remote
            .as_ref()
            .and_then(|r| r.coord.lock().ok().and_then(|c| c.failing_since));
        match failing {
            Some(since) => KeyHealth::Stale { keys, since },
            None => KeyHealth::Fresh { keys },
        }
    }

    /// Why the keys are missing, stale or empty: the reason the last fetch failed, or an
    /// empty key set; `None` while the keys are fresh (and for static keys).
    pub(crate) fn problem(&self) -> Option<(Arc<str>, Option<Duration>)> {
        let remote = self.inner.remote.as_ref()?;
        self.inner.drop_expired();
        let error = remote.coord.lock().ok().and_then(|c| c.last_error.clone());
        if let Some(reason) = error {
            return Some((reason, remote.retry_after()));
        }
        let snap = self.inner.snapshot.load();
        if snap.loaded && snap.all.is_empty() {
            return Some(("the JWK Set has no usable key".into(), None));
        }
        if !snap.loaded {
            return Some(("no key set was fetched yet".into(), None));
        }
        None
    }

    /// When the current key set was obtained.
    #[allow(dead_code)]
    pub(crate) fn loaded_at(&self) -> Option<SystemTime> {
        self.inner.snapshot.load().loaded_at
    }
}

/// Ends a fetch: records its outcome and wakes its waiters, or, when the fetch task is
/// dropped before it completed (its runtime shut down, or it panicked), releases the
/// in-flight marker all the same, so that the next request can fetch again.
struct InflightGuard {
    inner: Arc<Inner>,
    seq: u64,
    tx: Option<watch::Sender<Option<Outcome>>>,
}

impl InflightGuard {
    fn complete(&mut self, outcome: Outcome) {
        self.inner.finish(outcome.clone(), self.seq);
        self.inner.report(&outcome);
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Some(outcome));
        }
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        if self.tx.is_some() {
            let reason = if std::thread::panicking() {
                "the fetch task panicked"
            } else {
                "the fetch task was dropped (its runtime shut down)"
            };
            tracing::warn!(reason, "JWKS fetch abandoned");
            self.complete(Outcome::failed(reason));
        }
    }
}

/// Clears the background task's flag when the task ends or is dropped.
struct BackgroundAlive(Arc<AtomicBool>);

impl Drop for BackgroundAlive {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

async fn wait(rx: &mut watch::Receiver<Option<Outcome>>) -> Option<Outcome> {
    match rx.wait_for(Option::is_some).await {
        Ok(v) => v.clone(),
        Err(_) => None,
    }
}

impl Remote {
    /// How many fetches were started so far.
    fn started(&self) -> u64 {
        self.coord.lock().map(|c| c.fetches_started).unwrap_or(0)
    }

    fn retry_after(&self) -> Option<Duration> {
        let c = self.coord.lock().ok()?;
        let t = c.next_retry?;
        Some(
            t.saturating_duration_since(Instant::now())
                .max(Duration::from_secs(1)),
        )
    }
}

impl Inner {
    async fn fetch_once(&self, wanted_kid: Option<&str>) -> Outcome {
        let Some(remote) = &self.remote else {
            return Outcome::failed("no remote key source");
        };
        if let Some(kid) = wanted_kid
            && self.take_snapshot(remote, Some(kid)).await
        {
            return Outcome::Loaded;
        }
        let outcome = self.fetch_from_issuer(remote).await;
        match &outcome {
            Outcome::Loaded => self.save_snapshot(remote),
            Outcome::Failed(_) => {
                self.take_snapshot(remote, None).await;
            }
        }
        outcome
    }

    async fn fetch_from_issuer(&self, remote: &Remote) -> Outcome {
        let current = self.snapshot.load_full();
        let etag = if current.loaded {
            current.etag.as_deref()
        } else {
            None
        };
        match remote.fetcher.fetch_jwks(etag).await {
            Ok(JwksResponse::NotModified { max_age }) => {
                let ttl = remote.ttl(max_age);
                let next = current.renewed(current.etag.clone(), ttl);
                tracing::debug!(ttl_secs = ttl.as_secs(), "JWKS not modified");
                self.snapshot.store(Arc::new(next));
                Outcome::Loaded
            }
            Ok(JwksResponse::Body {
                bytes,
                etag,
                max_age,
            }) if current.loaded && current.body_hash == Some(Sha256::digest(&bytes).into()) => {
                // The same document again: keep the same keys, so that the verified-token
                // cache (tied to each key's identity) survives the refresh.
                let ttl = remote.ttl(max_age);
                self.snapshot.store(Arc::new(current.renewed(etag, ttl)));
                tracing::debug!(ttl_secs = ttl.as_secs(), "JWKS unchanged");
                Outcome::Loaded
            }
            Ok(JwksResponse::Body {
                bytes,
                etag,
                max_age,
            }) => match parse_jwk_set(&bytes, &remote.policy.algorithms, remote.policy.max_keys) {
                Ok(parsed) => {
                    for reason in &parsed.skipped {
                        tracing::warn!(%reason, "JWKS key skipped");
                    }
                    if parsed.keys.is_empty() {
                        // A well-formed set is the issuer's answer, even an empty one: keys
                        // it no longer publishes must stop verifying tokens.
                        tracing::error!(
                            held = current.all.len(),
                            "the JWKS has no usable key: every key held was dropped, and every \
                             token will be refused until the issuer publishes a usable key"
                        );
                    }
                    let ttl = remote.ttl(max_age);
                    let mut next = Snapshot::from_keys(parsed.keys);
                    next.generation = current.generation + 1;
                    next.etag = etag;
                    next.loaded_at = Some(SystemTime::now());
                    next.refresh_due = Some(later(Instant::now(), ttl.mul_f64(0.8)));
                    next.body_hash = Some(Sha256::digest(&bytes).into());
                    if remote.policy.snapshots.is_some() {
                        next.document = Some(Arc::from(&bytes[..]));
                    }
                    tracing::debug!(
                        keys = next.all.len(),
                        ttl_secs = ttl.as_secs(),
                        "JWKS loaded"
                    );
                    self.snapshot.store(Arc::new(next));
                    Outcome::Loaded
                }
                Err(reason) => {
                    tracing::warn!(%reason, "JWKS refresh failed; keeping the last good keys");
                    Outcome::failed(reason)
                }
            },
            Err(e) => {
                tracing::warn!(reason = %e, "JWKS refresh failed; keeping the last good keys");
                Outcome::failed(e.0)
            }
        }
    }

    /// Saves the document held as the fleet's snapshot (in its own task: a fetch does not
    /// wait for the store).
    fn save_snapshot(&self, remote: &Remote) {
        let Some(hook) = &remote.policy.snapshots else {
            return;
        };
        let Some(document) = self.snapshot.load().document.clone() else {
            return;
        };
        let store = hook.store.clone();
        let issuer = remote.fetcher.issuer().to_owned();
        tokio::spawn(async move {
            let snapshot = KeySetSnapshot {
                document: document.to_vec(),
                fetched_at: SystemTime::now(),
            };
            let bound = snapshot_call_timeout(&*store);
            match tokio::time::timeout(bound, store.save(&issuer, &snapshot)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "key-set snapshot not saved"),
                Err(_) => tracing::warn!("key-set snapshot not saved: timed out"),
            }
        });
    }

    /// Takes the fleet's snapshot when it is authenticated (the store's check), no older
    /// than the maximum, newer than the keys held, and, with `kid`, holds that `kid`.
    /// Returns whether it was taken.
    async fn take_snapshot(&self, remote: &Remote, kid: Option<&str>) -> bool {
        let Some(hook) = &remote.policy.snapshots else {
            return false;
        };
        let issuer = remote.fetcher.issuer();
        let bound = snapshot_call_timeout(&*hook.store);
        let found = match tokio::time::timeout(bound, hook.store.load(issuer)).await {
            Ok(Ok(Some(found))) => found,
            Ok(Ok(None)) => return false,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "key-set snapshot skipped: the store failed");
                return false;
            }
            Err(_) => {
                tracing::warn!("key-set snapshot skipped: the store timed out");
                return false;
            }
        };
        let wall = SystemTime::now();
        if found
            .fetched_at
            .duration_since(wall)
            .is_ok_and(|ahead| ahead > crate::store::MAX_SNAPSHOT_CLOCK_AHEAD)
        {
            // Taken, it would be new (age 0) for as long as the writer's clock runs ahead,
            // and newer snapshots would lose the comparison with it: refused.
            tracing::warn!(
                ahead_secs = found
                    .fetched_at
                    .duration_since(wall)
                    .unwrap_or_default()
                    .as_secs(),
                "key-set snapshot dated in the future (a replica's clock runs ahead?); not used"
            );
            return false;
        }
        let age = wall
            .duration_since(found.fetched_at)
            .unwrap_or(Duration::ZERO);
        if age > hook.max_age {
            tracing::debug!(
                age_secs = age.as_secs(),
                "key-set snapshot too old; not used"
            );
            return false;
        }
        let current = self.snapshot.load_full();
        if current.loaded && current.loaded_at.is_some_and(|t| t >= found.fetched_at) {
            return false;
        }
        let parsed = match parse_jwk_set(
            &found.document,
            &remote.policy.algorithms,
            remote.policy.max_keys,
        ) {
            Ok(parsed) => parsed,
            Err(reason) => {
                tracing::warn!(%reason, "key-set snapshot not used: not a usable JWK Set");
                return false;
            }
        };
        if kid.is_some_and(|kid| !parsed.keys.iter().any(|k| k.kid() == Some(kid))) {
            return false;
        }
        let now = Instant::now();
        let mut next = if current.loaded
            && current.body_hash == Some(Sha256::digest(&found.document).into())
        {
            // The same document: the same keys (the verified-token cache survives).
            let mut n = current.renewed(current.etag.clone(), Duration::ZERO);
            n.generation = current.generation + 1;
            n
        } else {
            let mut n = Snapshot::from_keys(parsed.keys);
            n.generation = current.generation + 1;
            n.body_hash = Some(Sha256::digest(&found.document).into());
            n.document = Some(Arc::from(&found.document[..]));
            n
        };
        next.loaded_at = Some(found.fetched_at);
        if kid.is_some() {
            // A peer's fresh fetch: refresh when that fetch would have.
            let ttl = remote.ttl(None).saturating_sub(age);
            next.refresh_due = Some(later(now, ttl.mul_f64(0.8)));
        } else {
            // The issuer is failing: keys no older than the snapshot's maximum age.
            next.refresh_due = None;
            next.stale_until = Some(later(now, hook.max_age.saturating_sub(age)));
        }
        tracing::info!(
            keys = next.all.len(),
            age_secs = age.as_secs(),
            unknown_kid = kid.is_some(),
            "key set taken from the fleet's authenticated snapshot"
        );
        self.snapshot.store(Arc::new(next));
        true
    }

    fn finish(&self, outcome: Outcome, seq: u64) {
        let Some(remote) = &self.remote else {
            return;
        };
        let Ok(mut c) = remote.coord.lock() else {
            return;
        };
        c.attempts += 1;
        c.last_seq = c.last_seq.max(seq);
        if c.inflight_seq == seq {
            c.inflight = None;
        }
        remote.wake.notify_one();
        match &outcome {
            Outcome::Loaded => {
                c.failures = 0;
                c.failing_since = None;
                c.last_error = None;
                c.next_retry = None;
            }
            Outcome::Failed(reason) => {
                c.last_error = Some(reason.clone());
                c.failures = c.failures.saturating_add(1);
                c.failing_since.get_or_insert_with(SystemTime::now);
                let p = &remote.policy;
                let exp = c.failures.saturating_sub(1).min(16);
                let backoff = p
                    .initial_backoff
                    .saturating_mul(1 << exp)
                    .min(p.max_backoff);
                let now = Instant::now();
                c.next_retry = Some(later(now, backoff));
                // The keys held go stale now; they are dropped once stale for too long.
                let current = self.snapshot.load_full();
                if current.loaded && current.stale_until.is_none() {
                    let until = later(now, p.max_stale_age);
                    self.snapshot.store(Arc::new(current.stale(until)));
                }
            }
        }
        c.last = Some(outcome);
        drop(c);
        self.drop_expired();
    }

    /// Drops the keys once they have been stale for longer than the maximum stale age: tokens
    /// are then answered "keys unavailable" until a fetch succeeds.
    fn drop_expired(&self) {
        let current = self.snapshot.load_full();
        if !current.expired() {
            return;
        }
        let next = Arc::new(Snapshot {
            generation: current.generation + 1,
            ..Snapshot::default()
        });
        let previous = self.snapshot.compare_and_swap(&current, next);
        if Arc::ptr_eq(&previous, &current) {
            let max_stale_age = self.remote.as_ref().map(|r| r.policy.max_stale_age);
            tracing::error!(
                keys = current.all.len(),
                ?max_stale_age,
                "the JWKS could not be refreshed for longer than the maximum stale age: \
                 the last good keys were dropped, and tokens are answered \
                 \"keys unavailable\" until a fetch succeeds"
            );
        }
    }

    /// How long the background task should sleep before its next refresh.
    fn next_delay(&self) -> Duration {
        let Some(remote) = &self.remote else {
            return Duration::from_secs(3600);
        };
        let now = Instant::now();
        let (retry, catch_up) = match remote.coord.lock() {
            Ok(c) => (c.next_retry, c.catch_up),
            Err(_) => (None, None),
        };
        if let Some(t) = retry {
            return t.saturating_duration_since(now);
        }
        let due = match self.snapshot.load().refresh_due {
            Some(t) => t.saturating_duration_since(now),
            None => Duration::ZERO,
        };
        match catch_up {
            Some(t) => due.min(t.saturating_duration_since(now)),
            None => due,
        }
    }

    /// When a catch-up refresh is due, spends the refresh allowance it waited for.
    fn spend_catch_up(&self) {
        let Some(remote) = &self.remote else {
            return;
        };
        let Ok(mut c) = remote.coord.lock() else {
            return;
        };
        let now = Instant::now();
        if c.catch_up.is_some_and(|t| t <= now) {
            let p = &remote.policy;
            let per_sec = 1.0 / p.unknown_kid_cooldown.as_secs_f64().max(0.001);
            let elapsed = now.duration_since(c.bucket_at).as_secs_f64();
            c.bucket =
                ((c.bucket + elapsed * per_sec).min(f64::from(p.unknown_kid_burst)) - 1.0).max(0.0);
            c.bucket_at = now;
        }
    }
}

impl Remote {
    fn ttl(&self, max_age: Option<Duration>) -> Duration {
        let p = &self.policy;
        max_age.unwrap_or(p.default_ttl).clamp(p.min_ttl, p.max_ttl)
    }
}

async fn background(weak: Weak<Inner>) {
    loop {
        let (delay, wake) = match weak.upgrade() {
            Some(inner) => (
                inner.next_delay().max(Duration::from_millis(200)),
                inner.remote.as_ref().map(|r| r.wake.clone()),
            ),
            None => return,
        };
        // Sleep until the refresh is due, or until a fetch finishes and moves that time.
        match wake {
            Some(wake) => {
                let _ = tokio::time::timeout(delay, wake.notified()).await;
            }
            None => tokio::time::sleep(delay).await,
        }
        let Some(inner) = weak.upgrade() else {
            return;
        };
        let store = KeyStore { inner };
        // Due now? (A request may have refreshed meanwhile.)
        if !store.inner.next_delay().is_zero() {
            continue;
        }
        store.inner.spend_catch_up();
        let _ = store.refresh_now().await;
    }
}

impl Inner {
    /// Reports a fetch, and the key set then held, to the metrics (feature `metrics`).
    fn report(&self, outcome: &Outcome) {
        let Some(remote) = &self.remote else {
            return;
        };
        let snap = self.snapshot.load();
        let held = snap.loaded.then_some((snap.all.len(), snap.loaded_at));
        let success = matches!(outcome, Outcome::Loaded);
        crate::metrics::jwks_fetch(remote.fetcher.issuer(), success, held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(any(feature = "aws-lc-rs", feature = "rust-crypto"))]
    use crate::fetch::RemoteSource;

    #[cfg(any(feature = "aws-lc-rs", feature = "rust-crypto"))]
    /// A store fetching from a server on 127.0.0.1 that answers `jwks` with this
    /// `Cache-Control`, with TTL bounds `build()` would refuse.
    async fn store_with_unbounded_ttl(jwks: String, cache_control: &'static str) -> KeyStore {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("address");
        let app = ::axum::Router::new().fallback(move || {
            let jwks = jwks.clone();
            async move { ([(http::header::CACHE_CONTROL, cache_control)], jwks) }
        });
        tokio::spawn(async move {
            let _ = ::axum::serve(listener, app).await;
        });
        let url = url::Url::parse(&format!("http://{addr}/jwks")).expect("url");
        let fetcher = Fetcher::new(
            reqwest::Client::new(),
            RemoteSource::Jwks(url),
            "https://issuer.test/".into(),
            false,
            Duration::from_secs(5),
            64 * 1024,
        );
        KeyStore::remote(
            fetcher,
            RefreshPolicy {
                min_ttl: Duration::from_millis(1),
                max_ttl: Duration::MAX,
                default_ttl: Duration::MAX,
                unknown_kid_burst: u32::MAX,
                unknown_kid_cooldown: Duration::MAX,
                initial_backoff: Duration::MAX,
                max_backoff: Duration::MAX,
                max_keys: 10,
                max_stale_age: Duration::MAX,
                algorithms: vec![Algorithm::EdDSA],
                snapshots: None,
            },
        )
    }

    #[cfg(any(feature = "aws-lc-rs", feature = "rust-crypto"))]
    #[tokio::test]
    async fn a_max_age_of_u64_max_with_an_unbounded_ttl_neither_panics_nor_jams() {
        let jwks = serde_json::json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "kid": "k",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
        }]})
        .to_string();
        for cache_control in ["max-age=18446744073709551615", "public"] {
            let store = store_with_unbounded_ttl(jwks.clone(), cache_control).await;
            store.refresh_now().await.expect("loaded");
            store.refresh_now().await.expect("loaded again");
            assert_eq!(store.health(), KeyHealth::Fresh { keys: 1 });
            assert!(store.key_for(Some("k"), Algorithm::EdDSA).await.is_ok());
            // An unknown kid, and the background task's timers, with every bound at the
            // maximum.
            assert!(
                store
                    .key_for(Some("other"), Algorithm::EdDSA)
                    .await
                    .is_err()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(store.key_for(Some("k"), Algorithm::EdDSA).await.is_ok());
        }
    }

    #[test]
    fn later_saturates_instead_of_overflowing() {
        let now = Instant::now();
        let far = later(now, Duration::MAX);
        assert!(far > now + Duration::from_secs(365 * 24 * 3600));
        assert_eq!(
            later(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
    }
}
