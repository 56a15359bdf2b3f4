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

pub(crate) use snapshot::{CALLER_MARGIN, MAX_SNAPSHOT_CLOCK_AHEAD};
pub use snapshot::{KeySetSnapshot, KeySetSnapshots, SnapshotError, SnapshotFuture};

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
