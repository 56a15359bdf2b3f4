//! Running World Mappers as a fleet of replicas (feature `redis`): `REDIS_URL` (a
//! `redis://`, `rediss://` or `redis+cluster://` URL) shares the DPoP replay store through
//! Redis, and with introspection on (`INTROSPECTION_CLIENT_ID`, feature `introspection`)
//! the introspection cache too: one opaque token is introspected once for the whole fleet.
//! `KEYSET_SNAPSHOT_SECRET` (at least 32 bytes, the same on every replica) also shares the
//! issuer's last good key set, authenticated with it, and seals the introspection cache's
//! entries with it (without it, Redis is trusted for that cache). Without them nothing
//! changes.
//!
//! `REDIS_TIMEOUT_MS` bounds each Redis call on a request's path (default 10, the store's
//! default; 1 to 5,000): raise it on a host so loaded that Redis' answers come late, as a
//! call that runs out of time counts as Redis being unreachable. The callers wait a little
//! longer than it (the DPoP replay check and the introspection cache by themselves), so
//! that the store's own timeout answers first and its circuit counts it.
//!
//! Every key is under the prefix `worldmappers:`: another API sharing the Redis (with its
//! own prefix) never meets these keys, nor its replay entries, cached answers or snapshots
//! these.
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

/// This API's keys in a Redis that other APIs may share.
#[cfg(feature = "redis")]
const KEY_PREFIX: &str = "worldmappers:";

/// The longest `REDIS_TIMEOUT_MS` (a call on a request's path; the introspection cache
/// waits 50 ms more, and takes at most 10 s).
#[cfg(feature = "redis")]
const MAX_REDIS_TIMEOUT_MS: u64 = 5_000;

/// The shared store, when `REDIS_URL` is set.
#[derive(Debug, Clone)]
pub(crate) struct Fleet {
    #[cfg(feature = "redis")]
    pub(crate) store: bearer_guard::store::redis::RedisStore,
    pub(crate) snapshots: bool,
}

/// Reads `REDIS_URL`, `KEYSET_SNAPSHOT_SECRET` and `REDIS_TIMEOUT_MS`.
pub(crate) async fn from_env() -> Result<Option<Fleet>, String> {
    // Set but empty would otherwise read as unset (`env` drops empty values) and turn
    // snapshots off without a word.
    if std::env::var_os("KEYSET_SNAPSHOT_SECRET").is_some_and(|v| v.is_empty()) {
        return Err(
            "KEYSET_SNAPSHOT_SECRET is set but empty: give the fleet's secret (at least 32 \
             bytes), or unset it to turn key-set snapshots off"
                .into(),
        );
    }
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
        let mut builder = RedisStore::builder(url).key_prefix(KEY_PREFIX);
        let secret = super::env("KEYSET_SNAPSHOT_SECRET");
        if let Some(secret) = &secret {
            builder = builder.snapshot_secret(secret.as_bytes().to_vec());
        }
        if let Some(ms) = super::env("REDIS_TIMEOUT_MS") {
            let ms: u64 = ms
                .parse()
                .map_err(|_| format!("REDIS_TIMEOUT_MS {ms:?} is not a number of milliseconds"))?;
            if ms > MAX_REDIS_TIMEOUT_MS {
                return Err(format!(
                    "REDIS_TIMEOUT_MS {ms} is out of range (1 to {MAX_REDIS_TIMEOUT_MS} ms)"
                ));
            }
            builder = builder.timeout(Duration::from_millis(ms));
        }
        let store = builder.build().map_err(|e| {
            use bearer_guard::ConfigError;
            // The one variable at fault.
            let name = match &e {
                ConfigError::InvalidUrl { .. } => "REDIS_URL",
                ConfigError::OutOfRange { what, .. } if what.contains("secret") => {
                    "KEYSET_SNAPSHOT_SECRET"
                }
                ConfigError::OutOfRange { what, .. } if *what == "redis timeout" => {
                    "REDIS_TIMEOUT_MS"
                }
                _ => "the Redis store",
            };
            format!("{name}: {e}")
        })?;
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
        // The introspector waits for the store's own bound by itself
        // (`IntrospectionCache::call_timeout`).
        #[cfg(feature = "redis")]
        return builder.cache(self.store.clone());
        #[cfg(not(feature = "redis"))]
        builder
    }

    /// The shared DPoP replay store (the replay check waits for the store's own bound by
    /// itself: `ReplayStore::call_timeout`).
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
