//! One store on Redis (or Valkey), standalone or Cluster, shared by a fleet of replicas
//! (feature `redis`): the DPoP replay store, the introspection cache (with the
//! `introspection` feature) and authenticated key-set snapshots.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use std::time::Duration;
//! use bearer_guard::{Verifier, dpop::Dpop, store::redis::RedisStore};
//!
//! let store = RedisStore::builder("redis://redis.internal:6379/")
//!     .key_prefix("worldmappers:")
//!     .snapshot_secret(std::env::var("KEYSET_SNAPSHOT_SECRET")?.into_bytes())
//!     .build()?;
//! store.connect().await?; // optional warm-up; calls connect lazily otherwise
//! let verifier = Verifier::builder()
//!     .issuer("https://issuer.example/")
//!     .audience("urn:worldmappers")
//!     .keyset_snapshots(store.clone(), Duration::from_secs(24 * 3600))
//!     .build()?;
//! let dpop = Dpop::builder().replay_store(store.clone()).build()?;
//! # let _ = (verifier, dpop); Ok(()) }
//! ```
//!
//! # The client
//!
//! Built on the [`redis`](https://docs.rs/redis) crate (redis-rs): the most used Rust client,
//! kept by the Redis organisation, with a reconnecting
//! [`ConnectionManager`](https://docs.rs/redis/latest/redis/aio/struct.ConnectionManager.html)
//! (one multiplexed connection, pipelined: no pool to size) and an async Cluster client in
//! the same crate, on Tokio, with rustls for `rediss://`. `fred` is as capable but larger
//! (its own pool, pub/sub, sentinel and tracing layers by default) for the three commands
//! this store sends (`SET … NX PX`, `GET`, `GETRANGE`, `SET … PX`).
//!
//! # URLs
//!
//! `redis://[user:password@]host:port[/db]`, `rediss://…` (TLS), and for a Cluster
//! `redis+cluster://[user:password@]host:port,host:port,…` (or `rediss+cluster://`): the
//! nodes to discover the cluster from.
//!
//! # Keys
//!
//! All under the prefix (default `bearer-guard:`), each a fixed-size hash in hex, never a
//! token, proof or secret: `<prefix>dpop:<SHA-256(jkt, jti)>`,
//! `<prefix>introspection:<SHA-256(issuer, audiences, options, token)>`,
//! `<prefix>keyset:<SHA-256(issuer)>`.
//!
//! # Time bounds and the circuit
//!
//! Each call on a request's path (replay check, introspection cache) is bounded by
//! [`timeout`](RedisStoreBuilder::timeout) (default [`DEFAULT_TIMEOUT`], 10 ms: a Redis next
//! to the API answers in well under a millisecond; raise it where Redis is farther away or
//! the host's CPUs are contended: on a shared two-core machine with builds running,
//! `redis-server` was seen answering after more than 10 ms, see BENCHMARKS.md). Key-set
//! snapshot calls, made after a fetch or when the issuer cannot be reached, are bounded by
//! [`snapshot_timeout`](RedisStoreBuilder::snapshot_timeout) (default
//! [`DEFAULT_SNAPSHOT_TIMEOUT`], 500 ms). After two failures in a row the store stops calling
//! Redis for 100 ms (doubling to 2 s while it stays down) and answers at once as unavailable; then one call
//! probes, and a success closes the circuit: recovery is automatic, within 2 s of Redis'
//! return.
//!
//! The callers wait for the store's own bound: the DPoP check at least `timeout` and
//! 50 ms (its [`replay_timeout`](crate::dpop::DpopBuilder::replay_timeout) is raised to
//! that), the key store `snapshot_timeout` and 50 ms, so the store's own timeout answers
//! first and counts. A call its caller drops unfinished anyway (an application's own
//! bound, the introspector's cache bound, a client gone away) is counted as `cancelled`;
//! it counts as a failure for the circuit when it had waited at least `timeout` (Redis was
//! slow by the store's own measure: with Redis frozen, a caller that always cuts sooner than
//! `snapshot_timeout` still opens the circuit), and not when dropped sooner (that says
//! nothing about Redis, and counting it would let anyone who makes requests and drops them
//! open the circuit). What an unavailable store means is each caller's policy:
//!
//! | store | Redis unreachable | configure |
//! |---|---|---|
//! | DPoP replay | fail closed: 503 with `Retry-After`, or the in-memory store when opted in | [`replay_fallback_in_memory`](RedisStoreBuilder::replay_fallback_in_memory) |
//! | introspection cache | a miss: the endpoint is asked directly | |
//! | key-set snapshots | skipped: the replica fetches from the issuer alone | |
//!
//! An outage is logged without flooding: the circuit's opening (WARN) and closing (INFO)
//! each time, the lines of the refused or redirected requests at most once a minute each
//! (WARN, with the number left out as `suppressed`), and each failed call at DEBUG.
//!
//! # Snapshots: the trust model
//!
//! Redis is not trusted to choose keys. A snapshot is the issuer's JWK Set document, the
//! time a replica fetched it, and an HMAC-SHA-256 over both and the issuer, under the
//! [`snapshot_secret`](RedisStoreBuilder::snapshot_secret) the replicas share (at least 32
//! bytes). It is verified before use: a snapshot written with another secret, for another
//! issuer, or edited in Redis, is ignored (and logged). Without a secret, snapshots stay
//! off (nothing is read or written). Someone who can write to Redis can at worst delete
//! snapshots or replay an older authenticated one, which is used only if no older than the
//! maximum age given to
//! [`VerifierBuilder::keyset_snapshots`](crate::VerifierBuilder::keyset_snapshots). A
//! snapshot dated more than 60 s ahead of the reading replica's clock (written by a replica
//! whose clock runs ahead) is refused with a WARN line: it would count as new for as long as
//! that clock runs ahead. A value larger than [`MAX_SNAPSHOT_BYTES`] (and its header) is
//! never read whole (`GETRANGE`), and ignored with a WARN line; a key set larger than that
//! is not saved (a WARN line too).
//!
//! # The introspection cache: the trust model
//!
//! An entry's key is a hash over the introspector's issuer, audiences, options and the
//! token, and each answer's `iss` and `aud` are checked again at every use: introspectors
//! of different audiences sharing one Redis, even under one prefix, never take each other's
//! answers. With the [`snapshot_secret`](RedisStoreBuilder::snapshot_secret) (the fleet's
//! secret), each entry carries an HMAC-SHA-256 over a label, its key, its end time and the
//! answer, verified (in constant time) before use: an entry planted, edited, moved to
//! another key, kept past its end, or written with another secret is a miss (the endpoint
//! is asked), logged at WARN at most once a minute. **Without a secret, Redis is trusted for
//! the introspection cache**: whoever can write to it can make any opaque token accepted
//! with the claims they choose; a WARN line says so once, at first use. A read returns at
//! most 256 KiB (`GETRANGE`), whatever Redis holds.

mod conn;
#[cfg(feature = "introspection")]
mod introspection;
mod replay;
mod sealed;
mod snapshot;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::dpop::InMemoryReplayStore;
use crate::error::ConfigError;
use conn::{CallError, Connection, Target};

/// The default bound on one Redis call on a request's path (replay check, introspection
/// cache).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(10);
/// The default bound on one key-set snapshot call (a document of up to
/// [`MAX_SNAPSHOT_BYTES`]; made when keys are fetched, or when the issuer cannot be reached,
/// not on every request).
pub const DEFAULT_SNAPSHOT_TIMEOUT: Duration = Duration::from_millis(500);
/// The default bound on making the connection (in its own task; calls meanwhile wait at
/// most their timeout).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The default key prefix.
pub const DEFAULT_KEY_PREFIX: &str = "bearer-guard:";
/// The shortest snapshot secret accepted, in bytes.
pub const MIN_SNAPSHOT_SECRET_BYTES: usize = 32;
/// The largest snapshot document read back or written (the JWKS size cap's order).
pub const MAX_SNAPSHOT_BYTES: usize = 1024 * 1024;

/// A store on Redis shared by a fleet: implements
/// [`ReplayStore`](crate::dpop::ReplayStore), `IntrospectionCache` (feature
/// `introspection`) and [`KeySetSnapshots`](crate::store::KeySetSnapshots). Cheap to clone:
/// clones share one connection and one circuit. See the [module docs](self).
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Arc<Connection>,
    prefix: String,
    timeout: Duration,
    snapshot_timeout: Duration,
    snapshot_secret: Option<Vec<u8>>,
    replay_fallback: Option<InMemoryReplayStore>,
}

impl Inner {
    /// The longest of the calls' bounds: the connection's own response bound.
    fn longest(&self) -> Duration {
        self.timeout.max(self.snapshot_timeout)
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("connection", &self.inner.conn)
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .field("snapshot_timeout", &self.inner.snapshot_timeout)
            .field("snapshots", &self.inner.snapshot_secret.is_some())
            .field("replay_fallback", &self.inner.replay_fallback.is_some())
            .finish()
    }
}

/// Builds a [`RedisStore`].
#[must_use]
pub struct RedisStoreBuilder {
    url: String,
    prefix: String,
    timeout: Duration,
    snapshot_timeout: Duration,
    connect_timeout: Duration,
    snapshot_secret: Option<Vec<u8>>,
    replay_fallback: Option<usize>,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("url", &redact(&self.url))
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("snapshot_timeout", &self.snapshot_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("snapshots", &self.snapshot_secret.is_some())
            .field("replay_fallback", &self.replay_fallback)
            .finish()
    }
}

impl RedisStore {
    /// A builder for the server or cluster at `url` (see the module docs for the forms).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            prefix: DEFAULT_KEY_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            snapshot_timeout: DEFAULT_SNAPSHOT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            snapshot_secret: None,
            replay_fallback: None,
        }
    }

    /// Connects now (at most the connect timeout), for warm-up at startup; without it the
    /// first calls connect. Needs a Tokio runtime.
    ///
    /// # Errors
    ///
    /// Why Redis could not be reached (the store keeps trying on later calls).
    pub async fn connect(&self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let timeout = self.inner.timeout.max(DEFAULT_CONNECT_TIMEOUT);
        let ping = redis::cmd("PING");
        // The connection made here serves every later call: its own response bound is the
        // longest of the calls' bounds (as when a call makes it), not this warm-up's.
        let made = self.inner.conn.query::<String>(&ping, self.inner.longest());
        match tokio::time::timeout(timeout, made).await {
            Ok(Ok(_)) => {
                self.inner.conn.circuit.record(true);
                Ok(())
            }
            Ok(Err(e)) => Err(e.to_string().into()),
            Err(_) => Err("connecting to Redis timed out".into()),
        }
    }

    /// Whether the circuit is open (Redis failed recently and is not being called).
    pub fn is_unavailable(&self) -> bool {
        self.inner.conn.circuit.is_open()
    }

    /// One call on a request's path, bounded by `timeout`.
    async fn call<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        cmd: redis::Cmd,
    ) -> Result<T, CallError> {
        self.call_within(op, cmd, self.inner.timeout).await
    }

    /// One call: circuit, the time bound `bound`, metrics, logs.
    ///
    /// A caller may bound the call more tightly than `bound` and drop it unfinished (the
    /// introspector's cache bound, a `tokio::time::timeout` of the application's, a client
    /// gone away): see [`Unfinished`] for how such a call counts.
    async fn call_within<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        cmd: redis::Cmd,
        bound: Duration,
    ) -> Result<T, CallError> {
        let inner = &self.inner;
        let Ok(probe) = inner.conn.circuit.admit(bound) else {
            crate::metrics::store_call(op, "circuit_open", None);
            return Err(CallError::CircuitOpen);
        };
        let mut unfinished = Unfinished {
            inner,
            op,
            started: tokio::time::Instant::now(),
            slow: inner.timeout.min(bound),
            probe,
            armed: true,
        };
        // The connection's own response bound is the longest of the calls' bounds; each call
        // is cut at its own here.
        let answer =
            tokio::time::timeout(bound, inner.conn.query::<T>(&cmd, inner.longest())).await;
        unfinished.armed = false;
        let elapsed = Some(unfinished.started.elapsed());
        let result = match answer {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(CallError::Timeout),
        };
        let label = match &result {
            Ok(_) => "ok",
            Err(CallError::Timeout) => "timeout",
            Err(_) => "error",
        };
        crate::metrics::store_call(op, label, elapsed);
        log_transition(inner.conn.circuit.record(result.is_ok()));
        if let Err(e) = &result {
            tracing::debug!(op, error = %e, "bearer-guard: Redis call failed");
        }
        result
    }

    /// The snapshot calls' bound.
    fn snapshot_timeout(&self) -> Duration {
        self.inner.snapshot_timeout
    }

    fn key(&self, kind: &str, hash: &[u8; 32]) -> String {
        use fmt::Write as _;
        let mut k = String::with_capacity(self.inner.prefix.len() + kind.len() + 65);
        k.push_str(&self.inner.prefix);
        k.push_str(kind);
        k.push(':');
        for b in hash {
            let _ = write!(k, "{b:02x}");
        }
        k
    }
}

/// A call in flight, until it ends; dropped armed, its caller gave up on it first.
///
/// Such a call counts (metric result `cancelled`) as a Redis failure for the circuit when
/// it had waited at least the store's request-path [`timeout`](RedisStoreBuilder::timeout)
/// (or its own bound, if shorter): Redis was slow by the store's own measure, and a caller
/// that always cuts sooner than the store (with Redis frozen) must not keep the circuit
/// from ever opening. A call dropped sooner is the caller's own business (a client gone
/// away, a `select!`): it says nothing about Redis, and counting it would let anyone who
/// can make requests and drop them open the circuit; it only gives its probe's place back,
/// so that the next call probes at once.
struct Unfinished<'a> {
    inner: &'a Inner,
    op: &'static str,
    started: tokio::time::Instant,
    slow: Duration,
    probe: Option<u64>,
    armed: bool,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let elapsed = self.started.elapsed();
        let failed = elapsed >= self.slow;
        crate::metrics::store_call(self.op, "cancelled", Some(elapsed));
        log_transition(self.inner.conn.circuit.abandon(self.probe, failed));
        tracing::debug!(
            op = self.op,
            elapsed_ms = elapsed.as_millis(),
            counted_as_failure = failed,
            "bearer-guard: Redis call given up by its caller"
        );
    }
}

/// Logs the circuit's opening (WARN) and closing (INFO).
fn log_transition(transition: Option<bool>) {
    match transition {
        Some(true) => tracing::info!("bearer-guard: Redis answers again; circuit closed"),
        Some(false) => tracing::warn!(
            "bearer-guard: Redis failed twice in a row; not called for a while (circuit open)"
        ),
        None => {}
    }
}

impl RedisStoreBuilder {
    /// The prefix of every key (default `bearer-guard:`): one per application sharing a
    /// Redis.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Bound on one Redis call (default 10 ms; 1 ms to 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Bound on one key-set snapshot call, load or save (default 500 ms, 1 ms to 10 s): a
    /// snapshot is read only when the issuer cannot be reached or a `kid` is unknown, and
    /// written after a fetch, so it may wait longer than a call on every request's path.
    pub fn snapshot_timeout(mut self, timeout: Duration) -> Self {
        self.snapshot_timeout = timeout;
        self
    }

    /// Bound on making the connection (default 1 s; 1 ms to 60 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The secret the fleet shares to authenticate key-set snapshots (HMAC-SHA-256, at
    /// least 32 bytes). Without it, snapshots are off.
    pub fn snapshot_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.snapshot_secret = Some(secret.into());
        self
    }

    /// While Redis is unreachable, check DPoP proofs against an in-memory store of
    /// `capacity` entries instead of refusing them (503). This accepts a risk: a proof
    /// replayed to another replica during the outage is not detected. Off by default.
    pub fn replay_fallback_in_memory(mut self, capacity: usize) -> Self {
        self.replay_fallback = Some(capacity);
        self
    }

    /// Checks the settings (no connection is made).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidUrl`] for a URL that is not a Redis one (its password hidden),
    /// [`ConfigError::OutOfRange`] for a timeout, a secret shorter than 32 bytes, or an
    /// empty fallback.
    pub fn build(self) -> Result<RedisStore, ConfigError> {
        range(
            "redis timeout",
            self.timeout,
            Duration::from_secs(10),
            "1 ms to 10 s",
        )?;
        range(
            "redis snapshot_timeout",
            self.snapshot_timeout,
            Duration::from_secs(10),
            "1 ms to 10 s",
        )?;
        range(
            "redis connect_timeout",
            self.connect_timeout,
            Duration::from_secs(60),
            "1 ms to 60 s",
        )?;
        if let Some(s) = &self.snapshot_secret
            && s.len() < MIN_SNAPSHOT_SECRET_BYTES
        {
            return Err(ConfigError::OutOfRange {
                what: "snapshot_secret length",
                value: format!("{} bytes", s.len()),
                range: "at least 32 bytes",
            });
        }
        if self.replay_fallback == Some(0) {
            return Err(ConfigError::OutOfRange {
                what: "replay_fallback_in_memory",
                value: "0".into(),
                range: "at least 1 entry",
            });
        }
        let longest = self.timeout.max(self.snapshot_timeout);
        let target = target(&self.url, self.connect_timeout, longest)?;
        Ok(RedisStore {
            inner: Arc::new(Inner {
                conn: Arc::new(Connection::new(target, self.connect_timeout)),
                prefix: self.prefix,
                timeout: self.timeout,
                snapshot_timeout: self.snapshot_timeout,
                snapshot_secret: self.snapshot_secret,
                replay_fallback: self.replay_fallback.map(InMemoryReplayStore::new),
            }),
        })
    }
}

/// A bound from 1 ms to `max`.
fn range(
    what: &'static str,
    d: Duration,
    max: Duration,
    text: &'static str,
) -> Result<(), ConfigError> {
    crate::config::check_range(what, d, Duration::from_millis(1), max, text)
}

fn invalid(url: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidUrl {
        what: "redis url",
        value: redact(url),
        reason: reason.into(),
    }
}

/// The URL with any password replaced by `***`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &userinfo[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn target(url: &str, connect_timeout: Duration, timeout: Duration) -> Result<Target, ConfigError> {
    let cluster = [
        ("redis+cluster://", "redis://"),
        ("rediss+cluster://", "rediss://"),
    ]
    .into_iter()
    .find_map(|(scheme, plain)| url.strip_prefix(scheme).map(|rest| (plain, rest)));
    let Some((plain, rest)) = cluster else {
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(invalid(
                url,
                "not a redis://, rediss:// or redis+cluster:// URL",
            ));
        }
        let client =
            redis::Client::open(url).map_err(|e| invalid(url, format!("{:?}", e.kind())))?;
        return Ok(Target::Single(client));
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, _) = rest.split_at(end);
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    let nodes: Vec<String> = hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|h| format!("{plain}{userinfo}{h}"))
        .collect();
    if nodes.is_empty() {
        return Err(invalid(url, "no cluster node"));
    }
    let client = redis::cluster::ClusterClient::builder(nodes)
        .connection_timeout(connect_timeout)
        .response_timeout(timeout)
        .build()
        .map_err(|e| invalid(url, format!("{:?}", e.kind())))?;
    Ok(Target::Cluster(client))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_a_url_never_reaches_an_error_message() {
        let e = RedisStore::builder("memcached://user:hunter2@host:1/")
            .build()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("memcached://user:***@host:1/"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn a_short_snapshot_secret_is_refused_at_build() {
        let e = RedisStore::builder("redis://127.0.0.1:1/")
            .snapshot_secret(b"short".to_vec())
            .build()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("snapshot_secret"), "{e}");
    }

    #[test]
    fn cluster_urls_name_each_node() {
        assert!(matches!(
            target(
                "redis+cluster://a:1,b:2,c:3",
                Duration::from_secs(1),
                DEFAULT_TIMEOUT
            ),
            Ok(Target::Cluster(_))
        ));
        assert!(target("redis+cluster://", Duration::from_secs(1), DEFAULT_TIMEOUT).is_err());
    }

    #[test]
    fn the_circuit_opens_after_two_failures_and_closes_after_a_good_probe() {
        let c = conn::Circuit::default();
        assert!(c.admit(DEFAULT_TIMEOUT).is_ok());
        c.record(false);
        assert!(!c.is_open());
        assert_eq!(c.record(false), Some(false));
        assert!(c.admit(DEFAULT_TIMEOUT).is_err());
        std::thread::sleep(conn::FIRST_BACKOFF + Duration::from_millis(20));
        assert!(c.admit(DEFAULT_TIMEOUT).is_ok(), "one probe goes");
        assert!(c.admit(DEFAULT_TIMEOUT).is_err(), "only one");
        assert_eq!(c.record(true), Some(true));
        assert!(c.admit(DEFAULT_TIMEOUT).is_ok());
    }

    /// A circuit opened by two failures, its first pause over: the next call probes.
    fn circuit_due_for_a_probe() -> conn::Circuit {
        let c = conn::Circuit::default();
        c.record(false);
        c.record(false);
        std::thread::sleep(conn::FIRST_BACKOFF + Duration::from_millis(20));
        c
    }

    #[test]
    fn a_probe_holds_its_place_for_its_own_bound_not_for_the_bound_of_the_next_caller() {
        let c = circuit_due_for_a_probe();
        assert!(
            matches!(c.admit(Duration::from_millis(500)), Ok(Some(_))),
            "a 500 ms snapshot call probes"
        );
        // 120 ms on: past a 10 ms call's 4 × 10 + 50 ms, well within the probe's own bound.
        std::thread::sleep(Duration::from_millis(120));
        assert!(
            c.admit(Duration::from_millis(10)).is_err(),
            "a 10 ms call does not take the 500 ms probe in flight for abandoned"
        );
    }

    #[test]
    fn a_probe_whose_caller_gave_up_early_lets_the_next_call_probe_at_once() {
        let c = circuit_due_for_a_probe();
        let probe = c.admit(Duration::from_millis(500)).ok().flatten();
        assert!(probe.is_some(), "a probe");
        assert_eq!(c.abandon(probe, false), None);
        assert!(c.is_open(), "not a success either");
        assert!(
            matches!(c.admit(DEFAULT_TIMEOUT), Ok(Some(_))),
            "the next call probes"
        );
    }

    #[test]
    fn a_probe_given_up_after_the_stores_bound_counts_as_a_failure() {
        let c = circuit_due_for_a_probe();
        let probe = c.admit(Duration::from_millis(500)).ok().flatten();
        assert_eq!(c.abandon(probe, true), None, "the circuit was open already");
        assert!(
            c.admit(DEFAULT_TIMEOUT).is_err(),
            "a new pause, no probe meanwhile"
        );
    }

    #[test]
    fn a_late_probe_given_up_does_not_release_the_probe_that_replaced_it() {
        let c = circuit_due_for_a_probe();
        let old = c.admit(Duration::from_millis(1)).ok().flatten();
        std::thread::sleep(Duration::from_millis(60));
        let new = c.admit(Duration::from_millis(500)).ok().flatten();
        assert!(new.is_some() && new != old, "the stale probe was replaced");
        c.abandon(old, false);
        assert!(
            c.admit(DEFAULT_TIMEOUT).is_err(),
            "the new probe still holds"
        );
    }
}
