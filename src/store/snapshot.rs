//! Key-set snapshots: each issuer's last good JWK Set document, shared by a fleet so that a
//! replica that cannot reach the issuer (at start or later) can still verify tokens.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

/// One issuer's JWK Set document as a replica fetched it, and when.
#[derive(Clone, PartialEq, Eq)]
pub struct KeySetSnapshot {
    /// The JWK Set document (JSON), as the issuer served it.
    pub document: Vec<u8>,
    /// When it was fetched (or confirmed unchanged) from the issuer.
    pub fetched_at: SystemTime,
}

impl fmt::Debug for KeySetSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySetSnapshot")
            .field("document_bytes", &self.document.len())
            .field("fetched_at", &self.fetched_at)
            .finish()
    }
}

/// Why a snapshot store could not answer (the text is for logs; never secret material).
#[derive(Debug, Clone)]
pub struct SnapshotError(String);

impl SnapshotError {
    /// An error with this description.
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SnapshotError {}

/// The largest clock difference between replicas a snapshot's `fetched_at` may show: a
/// snapshot dated later than this ahead of the reader's clock is refused (a WARN line), as
/// it would otherwise count as new (age 0) for as long as that clock runs ahead, and hide
/// the newer snapshots of replicas with a right clock. One dated ahead by less is taken as
/// dated.
pub(crate) const MAX_SNAPSHOT_CLOCK_AHEAD: Duration = Duration::from_secs(60);

/// The future of a [`KeySetSnapshots`] call.
pub type SnapshotFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, SnapshotError>> + Send + 'a>>;

/// Where each issuer's last good key set is kept for the fleet.
///
/// The key store [`save`](Self::save)s the document after each successful fetch, and
/// [`load`](Self::load)s it when a fetch fails (at start or later) or before fetching for
/// an unknown `kid` (a newer set another replica fetched may have the key). It uses a
/// loaded snapshot only if it is no older than the configured maximum
/// ([`VerifierBuilder::keyset_snapshots`](crate::VerifierBuilder::keyset_snapshots)).
///
/// An implementation must **authenticate** what it returns: `load` answers only snapshots
/// written by a holder of the fleet's secret, for this issuer (the Redis store uses
/// HMAC-SHA-256). Anything else is `Ok(None)`. A failed call is skipped (logged): the key
/// store then behaves as if there were no snapshot store.
///
/// A snapshot whose `fetched_at` is more than 60 s ahead of this replica's clock is refused
/// (logged): a replica whose clock runs ahead must not pin its key set past the maximum age.
pub trait KeySetSnapshots: fmt::Debug + Send + Sync + 'static {
    /// The authenticated snapshot of `issuer`'s key set, if any.
    fn load<'a>(&'a self, issuer: &'a str) -> SnapshotFuture<'a, Option<KeySetSnapshot>>;

    /// Keeps `snapshot` as `issuer`'s last good key set.
    fn save<'a>(&'a self, issuer: &'a str, snapshot: &'a KeySetSnapshot) -> SnapshotFuture<'a, ()>;

    /// The bound this store puts on each of its own calls, if any (default `None`). The key
    /// store then waits that long and 50 ms more for a call (1 s otherwise), so that the
    /// store's own timeout answers first and the store can count it (the Redis store's
    /// circuit opens on it): a caller that cut the call sooner would leave the store blind
    /// to a frozen backend.
    fn call_timeout(&self) -> Option<Duration> {
        None
    }
}
