//! Stores shared by a fleet of replicas.
//!
//! bearer-guard keeps three kinds of state that a fleet of replicas behind a load balancer
//! should share: the DPoP proofs already accepted ([`ReplayStore`](crate::dpop::ReplayStore)),
//! the introspection answers (`introspection::IntrospectionCache`, feature
//! `introspection`), and each issuer's last good key set ([`KeySetSnapshots`], this module).
//! Each is a small async trait with an in-memory (or no-op) default; the
//! `redis` feature adds one Redis implementation of all three (`store::redis`).
//!
//! Keys are fixed-size hashes, never tokens or proofs. Each call is bounded in time, and
//! what happens when a store cannot answer is the caller's documented policy: the replay
//! check fails closed, caches fall through, snapshots are skipped.

mod snapshot;

use std::time::Duration;

pub(crate) use snapshot::MAX_SNAPSHOT_CLOCK_AHEAD;

/// How much longer than a store's own bound on a call
/// ([`KeySetSnapshots::call_timeout`], [`ReplayStore::call_timeout`](crate::dpop::ReplayStore::call_timeout),
/// `IntrospectionCache::call_timeout`) its callers wait: the store's own timeout then answers
/// first, and the store counts it (the Redis store's circuit), instead of the call being
/// dropped unfinished.
pub(crate) const CALLER_MARGIN: Duration = Duration::from_millis(50);

/// A caller's wait for one store call: its own bound `own`, raised to the store's bound and
/// [`CALLER_MARGIN`] when the store has one (`store_bound`).
pub(crate) fn caller_wait(own: Duration, store_bound: Option<Duration>) -> Duration {
    store_bound.map_or(own, |b| own.max(b.saturating_add(CALLER_MARGIN)))
}
pub use snapshot::{KeySetSnapshot, KeySetSnapshots, SnapshotError, SnapshotFuture};

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
