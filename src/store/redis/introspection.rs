//! The introspection cache on Redis: `GET <prefix>introspection:<SHA-256(token)>` and
//! `SET … <answer> PX <ttl ms>`. The value is the validated response members only
//! ([`CachedAnswer::to_bytes`]); the TTL is the introspector's (the same rule as the
//! in-memory cache). A failed or slow call is a miss for the introspector.

use std::time::Duration;

use super::RedisStore;
use crate::introspection::{CacheError, CacheFuture, CacheKey, CachedAnswer, IntrospectionCache};

/// The largest cached answer read back.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

impl IntrospectionCache for RedisStore {
    fn get<'a>(&'a self, key: &'a CacheKey) -> CacheFuture<'a, Option<CachedAnswer>> {
        Box::pin(async move {
            let mut cmd = redis::cmd("GET");
            cmd.arg(self.key("introspection", key.as_bytes()));
            let value = self
                .call::<Option<Vec<u8>>>("introspection_get", cmd)
                .await
                .map_err(|e| CacheError::new(e.to_string()))?;
            Ok(value
                .filter(|v| v.len() <= MAX_ANSWER_BYTES)
                .and_then(|v| CachedAnswer::from_bytes(&v)))
        })
    }

    fn put<'a>(
        &'a self,
        key: &'a CacheKey,
        answer: CachedAnswer,
        ttl: Duration,
    ) -> CacheFuture<'a, ()> {
        Box::pin(async move {
            let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            let mut cmd = redis::cmd("SET");
            cmd.arg(self.key("introspection", key.as_bytes()))
                .arg(answer.to_bytes())
                .arg("PX")
                .arg(ms);
            self.call::<()>("introspection_put", cmd)
                .await
                .map_err(|e| CacheError::new(e.to_string()))
        })
    }
}
