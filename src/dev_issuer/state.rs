//! What the server and the [`DevIssuer`](super::DevIssuer) handle share: configuration,
//! registered clients, the key ring, counters, and claim completion for minting.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::client::DevClient;
use super::dpop::TokenDpop;
use super::error::DevIssuerError;
use super::key_ring::KeyRing;
use super::keys::SigningKey;

/// State shared by the HTTP handlers and the handle.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) issuer: String,
    pub(super) jwks_uri: String,
    pub(super) token_endpoint: String,
    pub(super) introspection_endpoint: String,
    /// The token endpoint issues opaque tokens instead of JWTs.
    pub(super) opaque_tokens: bool,
    pub(super) audiences: Vec<String>,
    pub(super) clients: Vec<DevClient>,
    pub(super) token_ttl: Duration,
    /// Random per instance: `ETag`s of two instances never match.
    pub(super) instance_tag: u64,
    /// DPoP proof checks at the token endpoint (`None` without a crypto backend).
    pub(super) dpop: Option<TokenDpop>,
    keys: RwLock<KeyRing>,
    jwks_requests: AtomicU64,
    /// Opaque tokens issued and not revoked, with their claims (bounded: see
    /// [`MAX_OPAQUE_TOKENS`]).
    opaque: Mutex<HashMap<String, Map<String, Value>>>,
    introspection_requests: AtomicU64,
}

/// Opaque tokens remembered at most; past it, expired ones are dropped, then the oldest
/// issue is refused room by dropping an arbitrary one (a development tool).
const MAX_OPAQUE_TOKENS: usize = 100_000;

impl Shared {
    pub(super) fn new(
        issuer: String,
        audiences: Vec<String>,
        clients: Vec<DevClient>,
        token_ttl: Duration,
        keys: KeyRing,
    ) -> Self {
        Self {
            jwks_uri: format!("{issuer}.well-known/jwks.json"),
            token_endpoint: format!("{issuer}oauth/token"),
            introspection_endpoint: format!("{issuer}oauth/introspect"),
            opaque_tokens: false,
            issuer,
            audiences,
            clients,
            token_ttl,
            instance_tag: rand::random(),
            dpop: TokenDpop::new().ok(),
            keys: RwLock::new(keys),
            jwks_requests: AtomicU64::new(0),
            opaque: Mutex::new(HashMap::new()),
            introspection_requests: AtomicU64::new(0),
        }
    }

    /// Remembers `claims` under a new opaque token (256 random bits, hex) and returns it.
    pub(super) fn store_opaque(&self, claims: Map<String, Value>) -> String {
        let token = format!(
            "{:032x}{:032x}",
            rand::random::<u128>(),
            rand::random::<u128>()
        );
        let mut opaque = self.opaque.lock().unwrap_or_else(PoisonError::into_inner);
        if opaque.len() >= MAX_OPAQUE_TOKENS {
            let now = unix_now();
            opaque.retain(|_, c| c.get("exp").and_then(Value::as_i64).is_none_or(|e| e > now));
            if opaque.len() >= MAX_OPAQUE_TOKENS
                && let Some(k) = opaque.keys().next().cloned()
            {
                opaque.remove(&k);
            }
        }
        opaque.insert(token.clone(), claims);
        token
    }

    /// The claims of a live opaque token (not revoked, not expired).
    pub(super) fn opaque_claims(&self, token: &str) -> Option<Map<String, Value>> {
        let opaque = self.opaque.lock().unwrap_or_else(PoisonError::into_inner);
        let claims = opaque.get(token)?;
        let live = claims
            .get("exp")
            .and_then(Value::as_i64)
            .is_none_or(|e| e > unix_now());
        live.then(|| claims.clone())
    }

    /// Forgets an opaque token; whether it was known.
    pub(super) fn revoke_opaque(&self, token: &str) -> bool {
        self.opaque
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(token)
            .is_some()
    }

    /// Counts one introspection request.
    pub(super) fn count_introspection_request(&self) {
        self.introspection_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Introspection requests so far.
    pub(super) fn introspection_requests(&self) -> u64 {
        self.introspection_requests.load(Ordering::Relaxed)
    }

    /// The key ring, for reading. A poisoned lock is still usable: every write leaves the
    /// ring consistent.
    pub(super) fn keys(&self) -> RwLockReadGuard<'_, KeyRing> {
        self.keys.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The key ring, for changing.
    pub(super) fn keys_mut(&self) -> RwLockWriteGuard<'_, KeyRing> {
        self.keys.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The key that signs new tokens.
    pub(super) fn current_key(&self) -> SigningKey {
        self.keys().current().clone()
    }

    /// Counts one JWKS request.
    pub(super) fn count_jwks_request(&self) {
        self.jwks_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// JWKS requests so far.
    pub(super) fn jwks_requests(&self) -> u64 {
        self.jwks_requests.load(Ordering::Relaxed)
    }

    /// `claims` with `iss`, `aud` (the first audience), `iat`, `exp` (now + TTL) and `jti`
    /// added where absent, then every member whose value is `null` removed.
    pub(super) fn complete_claims(
        &self,
        claims: Value,
    ) -> Result<Map<String, Value>, DevIssuerError> {
        let Value::Object(mut map) = claims else {
            return Err(DevIssuerError::ClaimsNotAnObject);
        };
        let now = unix_now();
        let defaults = [
            ("iss", json!(self.issuer)),
            ("aud", json!(self.audiences.first())),
            ("iat", json!(now)),
            ("exp", json!(self.expiry(now))),
            ("jti", json!(new_jti())),
        ];
        for (name, value) in defaults {
            map.entry(name).or_insert(value);
        }
        map.retain(|_, v| !v.is_null());
        Ok(map)
    }

    /// The `exp` of a token issued at `now`.
    pub(super) fn expiry(&self, now: i64) -> i64 {
        let ttl = i64::try_from(self.token_ttl.as_secs()).unwrap_or(i64::MAX);
        now.saturating_add(ttl)
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(super) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A random token id: 128 bits, hex.
pub(super) fn new_jti() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Algorithm;

    fn shared() -> Shared {
        Shared::new(
            "http://127.0.0.1:1/".into(),
            vec!["urn:a".into(), "urn:b".into()],
            Vec::new(),
            Duration::from_secs(60),
            KeyRing::new(Algorithm::RS256, 4, 0).expect("ring"),
        )
    }

    #[test]
    fn completion_fills_in_the_registered_claims() {
        let claims = shared()
            .complete_claims(json!({"sub": "x"}))
            .expect("object");
        assert_eq!(claims["iss"], "http://127.0.0.1:1/");
        assert_eq!(claims["aud"], "urn:a");
        assert_eq!(claims["sub"], "x");
        let iat = claims["iat"].as_i64().expect("iat");
        assert_eq!(claims["exp"].as_i64(), Some(iat + 60));
        assert_eq!(claims["jti"].as_str().map(str::len), Some(32));
    }

    #[test]
    fn completion_keeps_given_claims_and_drops_nulls() {
        let claims = shared()
            .complete_claims(json!({"aud": "urn:b", "exp": null, "jti": null, "x": null}))
            .expect("object");
        assert_eq!(claims["aud"], "urn:b");
        assert!(!claims.contains_key("exp"));
        assert!(!claims.contains_key("jti"));
        assert!(!claims.contains_key("x"));
    }

    #[test]
    fn completion_refuses_claims_that_are_not_an_object() {
        assert!(matches!(
            shared().complete_claims(json!([1])),
            Err(DevIssuerError::ClaimsNotAnObject)
        ));
    }
}
