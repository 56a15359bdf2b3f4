//! Opaque access tokens (feature `introspection`): RFC 7662 token introspection, validated,
//! cached and single-flight, beside JWT verification.
//!
//! Many authorization servers hand out opaque access tokens (or a mix of opaque tokens and
//! JWTs). An [`Introspector`] asks the server's introspection endpoint about such a token,
//! validates the answer and turns it into the same [`Claims`] a JWT gives, so that the same
//! layer, extractors, scope guards and rejections serve both. Install it on the layer with
//! [`JwtAuthLayer::introspection`](crate::JwtAuthLayer::introspection), choosing the
//! [`TokenRouting`]: per token (a JWT goes to the verifier, anything else to introspection)
//! or introspection only.
//!
//! ```
//! # #[cfg(all(feature = "dev-issuer", any(feature = "aws-lc-rs", feature = "rust-crypto")))]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use bearer_guard::dev_issuer::DevIssuer;
//! use bearer_guard::introspection::{Introspector, TokenRouting};
//! use bearer_guard::{AuthErrorKind, InvalidTokenReason, JwtAuthLayer, Verifier};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let dev = DevIssuer::builder()
//!     .audience("urn:worldmappers")
//!     .client("gift-deliveries", "dev-secret", ["directions"])
//!     .client("world-mappers", "introspection-secret", Vec::<String>::new())
//!     .start()
//!     .await?;
//! let opaque = dev.mint_opaque(serde_json::json!({"client_id": "gift-deliveries", "scope": "directions"}))?;
//!
//! let introspector = Introspector::builder()
//!     .issuer(dev.issuer()) // the endpoint is discovered
//!     .client_id("world-mappers")
//!     .client_secret("introspection-secret")
//!     .audience("urn:worldmappers")
//!     .build()?;
//! let claims = introspector.introspect(&opaque).await?;
//! assert!(claims.scopes().contains("directions"));
//! assert!(claims.is_introspected());
//! // Cached: the second request costs no call.
//! introspector.introspect(&opaque).await?;
//! assert_eq!(introspector.introspection_calls(), 1);
//!
//! // Unknown to the authorization server: inactive, 401 invalid_token.
//! let e = introspector.introspect("not-a-token-it-issued").await.unwrap_err();
//! assert_eq!(e.kind(), AuthErrorKind::InvalidToken(InvalidTokenReason::Inactive));
//!
//! // On the layer, beside the JWT verifier.
//! let verifier = Verifier::builder().issuer(dev.issuer()).audience("urn:worldmappers").build()?;
//! let svc = ServiceBuilder::new()
//!     .layer(JwtAuthLayer::new(verifier).introspection(introspector, TokenRouting::ByShape))
//!     .service_fn(|_req: http::Request<axum::body::Body>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(axum::body::Body::empty()))
//!     });
//! let req = http::Request::builder()
//!     .header("authorization", format!("Bearer {opaque}"))
//!     .body(axum::body::Body::empty())?;
//! assert_eq!(svc.oneshot(req).await?.status(), 200);
//! # dev.shutdown().await;
//! # Ok(())
//! # }
//! # #[cfg(not(all(feature = "dev-issuer", any(feature = "aws-lc-rs", feature = "rust-crypto"))))]
//! # fn main() {}
//! ```
//!
//! # The request
//!
//! `POST` to the endpoint (configured with
//! [`introspection_endpoint`](IntrospectorBuilder::introspection_endpoint), or
//! `introspection_endpoint` from the issuer's metadata: OIDC discovery, then RFC 8414, the
//! metadata's `issuer` compared exactly), form-encoded `token=…&token_type_hint=access_token`,
//! the client authenticated with `client_secret_basic` (the default, which RFC 6749 requires
//! servers to support, unless the metadata lists only `client_secret_post`),
//! `client_secret_post` or `private_key_jwt`: the [`client`](crate::client) module's code. The
//! whole exchange is bounded by a timeout (5 s by default), the body by a cap (64 KiB),
//! redirects are followed only to the same origin, and plain http only to loopback hosts.
//!
//! # Validation
//!
//! The response is checked, not trusted: `active` must be `true`; `exp` is required and,
//! with `nbf` and `iat`, checked as for JWTs with the same leeway (30 s by default); `iss`,
//! when present, must be the configured issuer (without one, the configured issuer becomes
//! the claims' `iss`); `aud` must contain a configured audience (a response without `aud` is
//! refused unless [`dangerous_allow_missing_audience`](IntrospectorBuilder::dangerous_allow_missing_audience));
//! `scope` becomes [`Scopes`](crate::Scopes). Every member but `active` reaches [`Claims`]:
//! `client_id`, `sub`, `cnf` (so a DPoP-bound opaque token, `cnf.jkt`, needs its proof
//! exactly as a bound JWT does), and the server's own members.
//!
//! # The cache, and its trade-off
//!
//! Introspection exists to see revocation; a cache hides it for a while. Answers are kept
//! under a SHA-256 over the introspector's configuration (its issuer, its audiences, its
//! options) and the token (never the token itself), bounded in entries (10,000 by
//! default, least recently used out first), so that introspectors of different audiences
//! sharing one store never read each other's answers; at every use the answer's `iss` and
//! `aud` are checked again against the configuration, and its time claims:
//!
//! - an active token until the earlier of its `exp` and
//!   [`max_cache_ttl`](IntrospectorBuilder::max_cache_ttl) (**2 minutes** by default,
//!   [`DEFAULT_MAX_CACHE_TTL`]): **a token revoked at the authorization server is still
//!   accepted for up to that long**. Set it lower to see revocation sooner, at the price of
//!   more calls; its time claims are checked again at every use;
//! - a refused token (inactive, or active but failing the checks) for
//!   [`inactive_cache_ttl`](IntrospectorBuilder::inactive_cache_ttl) (10 s by default), so
//!   a client retrying a bad token does not cost a call per request;
//! - failures (the endpoint unreachable, slow, 5xx, nonsense) are never cached.
//!
//! Concurrent requests carrying one new token share one introspection call (per process).
//! The cache is a trait, [`IntrospectionCache`], so a fleet can share one store: on Redis,
//! `store::redis::RedisStore` (feature `redis`) authenticates its entries with an HMAC
//! under the fleet's secret when one is configured; without one, whoever can write to Redis
//! can plant answers (see the store's docs).
//!
//! # Failures
//!
//! | what happened | answer |
//! |---|---|
//! | `active: false`, or active but expired, another audience or issuer, a bad claim | 401 `invalid_token` |
//! | the endpoint unreachable, slower than the timeout, 5xx, 429, a body over the cap, not an introspection response | 503 with `Retry-After` ([`AuthErrorKind::IntrospectionUnavailable`](crate::AuthErrorKind::IntrospectionUnavailable)), logged at WARN |
//! | 401 / 403 from the endpoint (our client credentials are wrong) | 503 with `Retry-After`, logged at ERROR naming the cause |
//! | a signed response asked for ([`jwt_responses`](IntrospectorBuilder::jwt_responses)) but refused: not signed (plain JSON), a bad signature, a wrong `typ`, `iss` or `aud`, an algorithm not allowed for the key, encrypted | 503 with `Retry-After`, logged at ERROR naming the cause |
//!
//! Never 401 for "could not ask": the client's token may be fine.
//!
//! # Signed responses (RFC 9701)
//!
//! A plain introspection response is only as trustworthy as the TLS connection it came
//! over. With [`jwt_responses`](IntrospectorBuilder::jwt_responses), the request carries
//! `Accept: application/token-introspection+jwt` and only a signed answer is accepted
//! (RFC 9701 §5): `Content-Type: application/token-introspection+jwt`; a JWS whose header
//! `typ` is `token-introspection+jwt`; signed by a key of the issuer's JWK Set as the given
//! [`Verifier`](crate::Verifier) holds it (the same key store, refreshed on an unknown
//! `kid`; the same algorithm allow-list; each key verifies only with its own algorithm, so
//! the header's `alg` alone decides nothing); `iss` the issuer; `aud` this resource
//! server's introspection client id; `iat` present and fresh (and `exp`, when present, not
//! passed). The RFC 7662 members, in the `token_introspection` claim, then go through the
//! same validation as a JSON response, from their original bytes (`active`, duplicate
//! members refused, the time claims, `iss`, `aud`, `scope`, `cnf` …), and the same cache.
//!
//! **Freshness, and what a signed response does not prove.** RFC 9701 does not bind a
//! response to its request: the response names no token (a `jti` inside
//! `token_introspection`, when the server sends one, is the token's own identifier, which
//! an opaque token does not reveal to this resource server) and carries no nonce, so a
//! captured signed "active" response could be replayed, by someone on the path to the
//! authorization server, as the answer about any other token. The only bound is time: a
//! response is refused as stale when its `iat` is older than the sum of the call's
//! [`timeout`](IntrospectorBuilder::timeout), the [`leeway`](IntrospectorBuilder::leeway)
//! and 60 s for clock skew between the servers (95 s with the defaults). TLS to the
//! authorization server remains what ties an answer to its question.
//!
//! A response that fails these checks is answered **503** with `Retry-After` and logged
//! at ERROR with the cause, like refused client credentials, and is not cached: it says
//! nothing about the client's token (RFC 9701 defines no error for it), only that this
//! resource server could not get a trustworthy answer, a misconfiguration (the client not
//! registered for signed responses, a key the verifier does not trust) or an attack on the
//! connection to the authorization server. A 401 would make the client discard a good
//! token. Signature checks that fail because the issuer's keys cannot be fetched are
//! logged at WARN, as any outage.
//!
//! Encrypted responses (JWE, `introspection_encrypted_response_alg`) are not supported:
//! they are refused with a log line saying so. Register the client for signed responses
//! only (`introspection_signed_response_alg`).
//!
//! ```
//! # #[cfg(all(feature = "dev-issuer", any(feature = "aws-lc-rs", feature = "rust-crypto")))]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use bearer_guard::dev_issuer::DevIssuer;
//! use bearer_guard::Verifier;
//! use bearer_guard::introspection::Introspector;
//!
//! // The development issuer answers with a signed JWT when asked to.
//! let dev = DevIssuer::builder()
//!     .audience("urn:worldmappers")
//!     .client("world-mappers", "introspection-secret", Vec::<String>::new())
//!     .start()
//!     .await?;
//! let opaque = dev.mint_opaque(serde_json::json!({"scope": "directions"}))?;
//!
//! // The verifier of the same issuer holds the keys that sign the responses.
//! let verifier = Verifier::builder().issuer(dev.issuer()).audience("urn:worldmappers").build()?;
//! let introspector = Introspector::builder()
//!     .issuer(dev.issuer())
//!     .client_id("world-mappers") // the responses' `aud`
//!     .client_secret("introspection-secret")
//!     .audience("urn:worldmappers")
//!     .jwt_responses(&verifier)
//!     .build()?;
//! let claims = introspector.introspect(&opaque).await?;
//! assert!(claims.scopes().contains("directions"));
//!
//! // A verifier of another issuer cannot check them: refused at build time.
//! let other = Verifier::builder()
//!     .issuer("https://other.example/")
//!     .audience("urn:worldmappers")
//!     .build()?;
//! assert!(Introspector::builder()
//!     .issuer(dev.issuer())
//!     .client_id("world-mappers")
//!     .client_secret("introspection-secret")
//!     .audience("urn:worldmappers")
//!     .jwt_responses(&other)
//!     .build()
//!     .is_err());
//! # dev.shutdown().await;
//! # Ok(())
//! # }
//! # #[cfg(not(all(feature = "dev-issuer", any(feature = "aws-lc-rs", feature = "rust-crypto"))))]
//! # fn main() {}
//! ```

mod builder;
mod cache;
mod client;
mod jwt;
mod validate;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use builder::{
    DEFAULT_CACHE_ENTRIES, DEFAULT_CACHE_TIMEOUT, DEFAULT_INACTIVE_CACHE_TTL,
    DEFAULT_INTROSPECTION_TIMEOUT, DEFAULT_MAX_CACHE_TTL, DEFAULT_MAX_RESPONSE_BYTES,
    IntrospectorBuilder,
};
use cache::KeyBinding;
pub use cache::{CacheError, CacheFuture, CacheKey, CachedAnswer, IntrospectionCache, MemoryCache};

use crate::claims::Claims;
use crate::error::{AuthError, InvalidTokenReason};

/// Which tokens the layer sends to introspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenRouting {
    /// Per token: a JWT (three base64url parts whose header parses as a JSON object) goes to
    /// the [`Verifier`](crate::Verifier), anything else to introspection.
    ByShape,
    /// Every token goes to introspection (the verifier is not used).
    IntrospectOnly,
}

/// Whether `token` looks like a JWT: three non-empty base64url parts whose first decodes to
/// a JSON object.
pub fn is_jwt_shaped(token: &str) -> bool {
    use base64::Engine as _;
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let b64url = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !(b64url(header) && b64url(payload) && b64url(signature)) || header.len() > 8 * 1024 {
        return false;
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&h).ok())
        .is_some()
}

/// The longest token sent to the endpoint (a longer one is refused as too large).
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// At most this many tokens are being introspected at once with sharing; beyond, calls are
/// not shared (bounded memory).
const MAX_IN_FLIGHT: usize = 100_000;

/// How often each cause of failure is logged: an unavailable endpoint (WARN), refused
/// credentials (ERROR), a refused signed response (ERROR), each under its own limit.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The WARN lines of a cache store that fails (a shared store such as Redis being away),
/// one per request otherwise: at most one a minute each, with the number left out
/// (`suppressed`).
static CACHE_LOG: crate::rejection::Limiter = crate::rejection::Limiter::new();
static CACHE_KEEP_LOG: crate::rejection::Limiter = crate::rejection::Limiter::new();

/// One introspection in flight, shared by every request carrying its token.
type Flight = Arc<tokio::sync::OnceCell<Result<CachedAnswer, AuthError>>>;

/// An RFC 7662 introspection client with validation, a cache and single flight. Cheap to
/// clone (an `Arc`). See the [module docs](self).
#[derive(Clone)]
pub struct Introspector(Arc<Inner>);

struct Inner {
    client: client::Client,
    /// Signed responses (RFC 9701), when asked for.
    jwt: Option<jwt::JwtResponses>,
    rules: validate::Rules,
    /// The cache keys' binding to this configuration.
    keys: KeyBinding,
    cache: Arc<dyn IntrospectionCache>,
    /// The default cache, for the lookup without a future.
    memory: Option<Arc<MemoryCache>>,
    max_ttl: Duration,
    inactive_ttl: Duration,
    cache_timeout: Duration,
    retry_after: Duration,
    in_flight: Mutex<HashMap<CacheKey, Flight>>,
    /// When each [`Cause`] was last logged: one limit per cause, so that outage lines do not
    /// hide the line about refused credentials or signed responses.
    logged: Mutex<[Option<Instant>; Cause::COUNT]>,
}

impl fmt::Debug for Introspector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Introspector")
            .field("client", &self.0.client)
            .field("jwt_responses", &self.0.jwt)
            .field("audiences", &self.0.rules.audiences)
            .field("cache", &self.0.cache)
            .field("max_ttl", &self.0.max_ttl)
            .field("inactive_ttl", &self.0.inactive_ttl)
            .finish_non_exhaustive()
    }
}

impl Introspector {
    /// A builder; see [`IntrospectorBuilder`].
    pub fn builder() -> IntrospectorBuilder {
        IntrospectorBuilder::new()
    }

    /// Introspection requests sent to the endpoint so far.
    pub fn introspection_calls(&self) -> u64 {
        self.0.client.calls()
    }

    /// The claims of an opaque `token`: from the cache, or from the endpoint (one call
    /// shared by every concurrent request carrying the token).
    ///
    /// # Errors
    ///
    /// [`InvalidToken`](crate::AuthErrorKind::InvalidToken) when the server says the token
    /// is not active ([`InvalidTokenReason::Inactive`]) or the answer fails the checks;
    /// [`IntrospectionUnavailable`](crate::AuthErrorKind::IntrospectionUnavailable) when no
    /// usable answer could be had.
    pub async fn introspect(&self, token: &str) -> Result<Claims, AuthError> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::invalid(InvalidTokenReason::TooLarge));
        }
        let key = self.0.keys.key(token);
        if let Some(answer) = self.cached(&key).await {
            crate::metrics::introspection_cache(true);
            return self.use_answer(&answer);
        }
        crate::metrics::introspection_cache(false);
        let flight = {
            let Ok(mut in_flight) = self.0.in_flight.lock() else {
                return self
                    .fetch(token, &key)
                    .await
                    .and_then(|a| self.use_answer(&a));
            };
            if in_flight.len() >= MAX_IN_FLIGHT && !in_flight.contains_key(&key) {
                None
            } else {
                Some(in_flight.entry(key).or_default().clone())
            }
        };
        let Some(flight) = flight else {
            return self
                .fetch(token, &key)
                .await
                .and_then(|a| self.use_answer(&a));
        };
        let answer = flight.get_or_init(|| self.fetch(token, &key)).await.clone();
        if let Ok(mut in_flight) = self.0.in_flight.lock()
            && in_flight.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flight))
        {
            in_flight.remove(&key);
        }
        answer.and_then(|a| self.use_answer(&a))
    }

    /// What the in-memory cache answers for `token`, without a future: `None` when it holds
    /// no live answer (or another store is used); else exactly what
    /// [`introspect`](Self::introspect) would answer. The layer's fast path.
    pub(crate) fn introspect_cached(&self, token: &[u8]) -> Option<Result<Claims, AuthError>> {
        let memory = self.0.memory.as_ref()?;
        let token = std::str::from_utf8(token)
            .ok()
            .filter(|t| crate::extract::is_b64token(t))?;
        let answer = memory.lookup(&self.0.keys.key(token), Instant::now())?;
        crate::metrics::introspection_cache(true);
        Some(self.use_answer(&answer))
    }

    /// The live cached answer for `key`: the in-memory cache without a future, another
    /// store within the cache timeout (a failure or a timeout is a miss).
    async fn cached(&self, key: &CacheKey) -> Option<CachedAnswer> {
        if let Some(memory) = &self.0.memory {
            return memory.lookup(key, Instant::now());
        }
        match tokio::time::timeout(self.0.cache_timeout, self.0.cache.get(key)).await {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                if let Some(suppressed) = CACHE_LOG.allow_now() {
                    tracing::warn!(
                        error = %e,
                        suppressed,
                        "the introspection cache failed; asking the endpoint"
                    );
                }
                None
            }
            Err(_) => {
                if let Some(suppressed) = CACHE_LOG.allow_now() {
                    tracing::warn!(
                        timeout_ms = self.0.cache_timeout.as_millis() as u64,
                        suppressed,
                        "the introspection cache did not answer in time; asking the endpoint"
                    );
                }
                None
            }
        }
    }

    /// The claims of an answer, its issuer and audience checked against the configuration
    /// and its time claims checked again now (an answer from a shared store is not taken on
    /// trust).
    fn use_answer(&self, answer: &CachedAnswer) -> Result<Claims, AuthError> {
        let claims = answer.outcome().map_err(AuthError::invalid)?;
        self.0.rules.admits(claims).map_err(AuthError::invalid)?;
        let leeway = self.0.rules.leeway.as_secs_f64();
        let exp = claims.exact_times().expires_at;
        if exp + leeway <= unix_now() {
            return Err(AuthError::invalid(InvalidTokenReason::Expired));
        }
        Ok(claims.clone())
    }

    /// Asks the endpoint, validates, and caches the answer.
    async fn fetch(&self, token: &str, key: &CacheKey) -> Result<CachedAnswer, AuthError> {
        let started = Instant::now();
        let result = match self.0.client.introspect(token).await {
            Ok(body) => self.verdict(body).await,
            Err(e) => Err(self.unavailable(
                e.reason,
                e.retry_after,
                if e.credentials_refused {
                    Cause::CredentialsRefused
                } else {
                    Cause::Unavailable
                },
            )),
        };
        let outcome = match &result {
            Ok((a, _)) if a.is_active() => "active",
            Ok(_) => "refused",
            Err(_) => "unavailable",
        };
        crate::metrics::introspection_call(outcome, started.elapsed());
        let (answer, exp) = result?;
        let ttl = match exp {
            Some(exp) => {
                let left = Duration::try_from_secs_f64(exp - unix_now()).unwrap_or_default();
                left.min(self.0.max_ttl)
            }
            None => self.0.inactive_ttl,
        };
        if !ttl.is_zero() {
            self.store(key, answer.clone(), ttl).await;
        }
        Ok(answer)
    }

    /// The verdict on a 200 answer: the RFC 7662 response (inside the signed one, with
    /// [`jwt_responses`](IntrospectorBuilder::jwt_responses)), validated.
    async fn verdict(&self, body: client::Body) -> Result<(CachedAnswer, Option<f64>), AuthError> {
        let now = unix_now();
        let inner;
        let response = match &self.0.jwt {
            None => &body.bytes,
            Some(jwt) => {
                match jwt
                    .open(
                        body.content_type
                            .as_ref()
                            .map(Option::as_deref)
                            .map_err(|e| *e),
                        &body.bytes,
                        now,
                    )
                    .await
                {
                    Ok(bytes) => inner = bytes,
                    Err(refused) => {
                        let cause = if refused.keys_unavailable {
                            Cause::Unavailable
                        } else {
                            Cause::SignedResponseRefused
                        };
                        return Err(self.unavailable(refused.reason, None, cause));
                    }
                }
                &inner
            }
        };
        validate::validate(response, &self.0.rules, now)
            .map_err(|n| self.unavailable(n.0.to_owned(), None, Cause::Unavailable))
    }

    async fn store(&self, key: &CacheKey, answer: CachedAnswer, ttl: Duration) {
        match tokio::time::timeout(self.0.cache_timeout, self.0.cache.put(key, answer, ttl)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                if let Some(suppressed) = CACHE_KEEP_LOG.allow_now() {
                    tracing::warn!(
                        error = %e,
                        suppressed,
                        "the introspection cache could not keep an answer"
                    );
                }
            }
            Err(_) => {
                if let Some(suppressed) = CACHE_KEEP_LOG.allow_now() {
                    tracing::warn!(
                        suppressed,
                        "the introspection cache did not keep an answer in time"
                    );
                }
            }
        }
    }

    /// A 503 for a failed call, logged: at ERROR when our credentials or a signed response
    /// were refused (a configuration error, or an attack), else at WARN; at most once per
    /// [`LOG_EVERY`].
    fn unavailable(
        &self,
        reason: String,
        retry_after: Option<Duration>,
        cause: Cause,
    ) -> AuthError {
        let due = self.0.logged.lock().is_ok_and(|mut logged| {
            let last = &mut logged[cause as usize];
            let now = Instant::now();
            let due = last.is_none_or(|t| now.saturating_duration_since(t) >= LOG_EVERY);
            if due {
                *last = Some(now);
            }
            due
        });
        if due {
            match cause {
                Cause::CredentialsRefused => tracing::error!(
                    "token introspection is failing because the authorization server refuses \
                     our client credentials; every opaque token is answered 503 until this is \
                     fixed: {reason}"
                ),
                Cause::SignedResponseRefused => tracing::error!(
                    "token introspection is failing because the signed introspection response \
                     (RFC 9701) is refused; every opaque token is answered 503 until this is \
                     fixed: {reason}"
                ),
                Cause::Unavailable => {
                    tracing::warn!("token introspection failed (answered 503): {reason}");
                }
            }
        }
        AuthError::introspection_unavailable(
            Some(retry_after.unwrap_or(self.0.retry_after)),
            reason,
        )
    }
}

/// Why no usable answer could be had (each logged under its own limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// The endpoint (or the issuer's keys) unreachable, slow, failing, or nonsense.
    Unavailable,
    /// 401 / 403: our client credentials are wrong.
    CredentialsRefused,
    /// A signed response (RFC 9701) that fails its checks.
    SignedResponseRefused,
}

impl Cause {
    /// The number of causes.
    const COUNT: usize = 3;
}

/// Now, in seconds since the Unix epoch.
fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwts_are_recognized_by_shape() {
        // {"alg":"RS256"} . {} . sig
        assert!(is_jwt_shaped("eyJhbGciOiJSUzI1NiJ9.e30.c2ln"));
        for opaque in [
            "",
            "opaque-token",
            "a.b",
            "a.b.c",
            "eyJhbGciOiJSUzI1NiJ9.e30.",
            "eyJhbGciOiJSUzI1NiJ9.e30.c2ln.d",
            "eyJhbGciOiJSUzI1NiJ9.e30.c2/n",
            // "[1]" is JSON but not an object
            "WzFd.e30.c2ln",
        ] {
            assert!(!is_jwt_shaped(opaque), "{opaque}");
        }
    }

    #[test]
    fn the_introspector_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Introspector>();
        assert_send_sync::<IntrospectorBuilder>();
        assert_send_sync::<MemoryCache>();
        assert_send_sync::<CachedAnswer>();
    }
}
