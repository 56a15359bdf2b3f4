//! The DPoP replay store on Redis: `SET <prefix>dpop:<hex key> 1 NX PX <ttl ms>`, one round
//! trip, atomic on a standalone server and on a Cluster (one key, one slot).

use std::time::Duration;

use super::RedisStore;
use crate::dpop::{ReplayCheck, ReplayFuture, ReplayKey, ReplayStore, ReplayStoreError};

impl ReplayStore for RedisStore {
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
                        tracing::warn!(
                            error = %e,
                            "bearer-guard: Redis unavailable; DPoP replay checked in memory \
                             (opted in: replays across replicas are not detected meanwhile)"
                        );
                        memory.check_and_insert(key, ttl).await
                    }
                    None => {
                        tracing::warn!(
                            error = %e,
                            "bearer-guard: Redis unavailable; DPoP proofs refused (fail closed)"
                        );
                        Err(ReplayStoreError::Unavailable(e.to_string()))
                    }
                },
            }
        })
    }
}
