//! Running World Mappers as a fleet of replicas (feature `redis`): `REDIS_URL` (a
//! `redis://`, `rediss://` or `redis+cluster://` URL) shares the DPoP replay store through
//! Redis, and with introspection on (`INTROSPECTION_CLIENT_ID`, feature `introspection`)
//! the introspection cache too: one opaque token is introspected once for the whole fleet.
//! `KEYSET_SNAPSHOT_SECRET` (at least 32 bytes, the same on every replica) also shares the
//! issuer's last good key set, authenticated with it. Without them nothing changes.
//!
//! `REDIS_TIMEOUT_MS` bounds each Redis call (default 10, the store's default; 1 to
//! 10,000): raise it on a host so loaded that Redis' answers come late, as a call that runs
//! out of time counts as Redis being unreachable.
//!
//! While Redis is unreachable (a dead Redis is then not called for up to 2 s at a time):
//! DPoP requests get 503 with `Retry-After`, opaque tokens are introspected at the endpoint
//! directly, snapshots are skipped, and plain Bearer JWTs are verified as ever. Service
//! resumes by itself when Redis returns.

#[cfg(feature = "redis")]
use std::time::Duration;

/// How old a key-set snapshot may be and still be used while the issuer is unreachable.
#[cfg(feature = "redis")]
const SNAPSHOT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// The shared store, when `REDIS_URL` is set.
#[derive(Debug, Clone)]
pub(crate) struct Fleet {
    #[cfg(feature = "redis")]
    pub(crate) store: bearer_guard::store::redis::RedisStore,
    pub(crate) snapshots: bool,
}

/// Reads `REDIS_URL`, `KEYSET_SNAPSHOT_SECRET` and `REDIS_TIMEOUT_MS`.
pub(crate) async fn from_env() -> Result<Option<Fleet>, String> {
    let Some(url) = super::env("REDIS_URL") else {
        for name in ["KEYSET_SNAPSHOT_SECRET", "REDIS_TIMEOUT_MS"] {
            if super::env(name).is_some() {
                return Err(format!("{name} needs REDIS_URL"));
            }
        }
        return Ok(None);
    };
    #[cfg(feature = "redis")]
    {
        use bearer_guard::store::redis::RedisStore;
        let mut builder = RedisStore::builder(url);
        let secret = super::env("KEYSET_SNAPSHOT_SECRET");
        if let Some(secret) = &secret {
            builder = builder.snapshot_secret(secret.as_bytes().to_vec());
        }
        if let Some(ms) = super::env("REDIS_TIMEOUT_MS") {
            let ms: u64 = ms
                .parse()
                .map_err(|_| format!("REDIS_TIMEOUT_MS {ms:?} is not a number of milliseconds"))?;
            builder = builder.timeout(Duration::from_millis(ms));
        }
        let store = builder
            .build()
            .map_err(|e| format!("REDIS_URL / KEYSET_SNAPSHOT_SECRET / REDIS_TIMEOUT_MS: {e}"))?;
        if let Err(e) = store.connect().await {
            // Not fatal: the store keeps trying; meanwhile DPoP proofs get 503.
            tracing::warn!(error = %e, "Redis is not reachable yet");
        }
        Ok(Some(Fleet {
            store,
            snapshots: secret.is_some(),
        }))
    }
    #[cfg(not(feature = "redis"))]
    {
        let _ = url;
        Err(
            "REDIS_URL needs the redis feature: cargo run --example world_mappers --features redis"
                .into(),
        )
    }
}

impl Fleet {
    /// Key-set snapshots on the verifier, when `KEYSET_SNAPSHOT_SECRET` is set.
    pub(crate) fn verifier(
        &self,
        builder: bearer_guard::VerifierBuilder,
    ) -> bearer_guard::VerifierBuilder {
        #[cfg(feature = "redis")]
        if self.snapshots {
            return builder.keyset_snapshots(self.store.clone(), SNAPSHOT_MAX_AGE);
        }
        builder
    }

    /// The shared introspection cache (instead of each replica's own memory).
    #[cfg(feature = "introspection")]
    pub(crate) fn introspection(
        &self,
        builder: bearer_guard::introspection::IntrospectorBuilder,
    ) -> bearer_guard::introspection::IntrospectorBuilder {
        #[cfg(feature = "redis")]
        return builder.cache(self.store.clone());
        #[cfg(not(feature = "redis"))]
        builder
    }

    /// The shared DPoP replay store.
    pub(crate) fn dpop(
        &self,
        builder: bearer_guard::dpop::DpopBuilder,
    ) -> bearer_guard::dpop::DpopBuilder {
        #[cfg(feature = "redis")]
        return builder.replay_store(self.store.clone());
        #[cfg(not(feature = "redis"))]
        builder
    }
}
