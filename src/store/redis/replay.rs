//! The DPoP replay store on Redis: `SET <prefix>dpop:<hex key> 1 NX PX <ttl ms>`, one round
//! trip, atomic on a standalone server and on a Cluster (one key, one slot).

use std::time::Duration;

use super::RedisStore;
use crate::dpop::{ReplayCheck, ReplayFuture, ReplayKey, ReplayStore, ReplayStoreError};
use crate::rejection::Limiter;

/// The WARN lines of a Redis outage, one per request otherwise: at most one a minute each,
/// with the number left out (`suppressed`); the circuit's opening and closing are logged
/// apart, and each failed call at DEBUG.
///
/// These limiters are statics, shared by the whole process: every `RedisStore` in it (two
/// stores on two Redis servers share one budget: an outage of the second within the minute
/// of the first's line is counted in `suppressed`, not logged apart), and one outage of a
/// store used with DPoP also gives the DPoP layer's own line ([`crate::dpop`]'s limiter,
/// "the DPoP replay check failed"): two WARN lines a minute for one outage, by design (the
/// store says why, the layer what it did).
static FALLBACK_LOG: Limiter = Limiter::new();
static FAIL_CLOSED_LOG: Limiter = Limiter::new();

impl ReplayStore for RedisStore {
    fn call_timeout(&self) -> Option<Duration> {
        Some(self.inner.timeout)
    }

    fn check_and_insert(&self, key: ReplayKey, ttl: Duration) -> ReplayFuture<'_> {
        Box::pin(async move {
            let mut cmd = redis::cmd("SET");
            let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            cmd.arg(self.key("dpop", key.as_bytes()))
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(ms);
            // `OK` when set, nil when the key was there.
            match self.call::<Option<String>>("replay", cmd).await {
                Ok(Some(_)) => Ok(ReplayCheck::Fresh),
                Ok(None) => Ok(ReplayCheck::Replayed),
                Err(e) => match &self.inner.replay_fallback {
                    Some(memory) => {
                        crate::metrics::store_fallback("replay");
                        if let Some(suppressed) = FALLBACK_LOG.allow_now() {
                            tracing::warn!(
                                error = %e,
                                suppressed,
                                "bearer-guard: Redis unavailable; DPoP replay checked in memory \
                                 (opted in: replays across replicas are not detected meanwhile)"
                            );
                        }
                        memory.check_and_insert(key, ttl).await
                    }
                    None => {
                        if let Some(suppressed) = FAIL_CLOSED_LOG.allow_now() {
                            tracing::warn!(
                                error = %e,
                                suppressed,
                                "bearer-guard: Redis unavailable; DPoP proofs refused (fail closed)"
                            );
                        }
                        Err(ReplayStoreError::Unavailable(e.to_string()))
                    }
                },
            }
        })
    }
}
