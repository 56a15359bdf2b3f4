//! # bearer-guard
//!
//! Protects APIs the way an OAuth 2.0 resource server must: verifies JWT access tokens
//! (RFC 9068, RFC 8725) against the issuer's keys, which it finds by discovery or a JWKS URL,
//! caches, and refreshes safely.
//!
//! The core is [`Verifier`]: built once from a [`VerifierBuilder`], it verifies one token
//! string and returns its [`Claims`] (with [`Scopes`]) or an [`AuthError`] whose
//! [`kind`](AuthError::kind) tells how to answer.
//!
//! ## Feature flags
//!
//! | feature | default | what |
//! |---|---|---|
//! | `aws-lc-rs` | yes | crypto backend: aws-lc-rs (used when both backends are on) |
//! | `rust-crypto` | no | crypto backend: the pure-Rust RustCrypto crates |
//! | `tls` | yes | https for discovery and JWKS fetches (rustls) |
//! | `axum` | yes | axum extractors and route guards ([module docs][axum-docs]: the extractors, what they refuse with, the missing-layer 500) |
//! | `dev-issuer` | no | a development authorization server, for tests and demos |
//! | `client` | no | the [`client`][client-docs] module: a client-credentials token source, and a tower layer sending its tokens |
//! | `introspection` | no | the [`introspection`][introspection-docs] module: opaque access tokens checked by RFC 7662 introspection, cached, beside JWTs (enables `client`) |
//! | `metrics` | no | [metrics](mod@crate::metrics) through the `metrics` facade: outcomes, JWKS fetches, key-set age and size, token-cache hits, verification time |
//! | `mtls` | no | [`mtls::serve`][mtls-serve-docs]: a tower service over rustls with each request carrying the client's certificate, and PEM configuration (the certificate-binding check of [`mtls`] needs no feature) |
//! | `redis` | no | [`store::redis`][redis-docs]: one Redis (or Valkey, standalone or Cluster) store shared by a fleet of replicas: DPoP replay, introspection cache, authenticated key-set snapshots (see "Running a fleet") |
//! | `tonic` | no | gRPC servers (tonic 0.14, [module docs][tonic-docs]): gRPC-native rejections, claims in handlers, per-method scopes |
//! | `tonic-tls` | no | certificate-bound tokens on tonic's own TLS ([how][tonic-tls-docs]): the layer reads the client certificate tonic's `ServerTlsConfig` put on the request (enables `tonic`, and tonic's `server` and `tls-connect-info`; a separate feature because it pulls tonic's server, which `tonic` alone does not need, and no crypto provider: the application's `tls-aws-lc` or `tls-ring` stays its choice) |
//!
//! With no crypto backend, [`VerifierBuilder::build`] fails with
//! [`ConfigError::NoCryptoBackend`].
//!
//! ## Key store
//!
//! The key set lives in a lock-free snapshot: a request never waits on a fetch unless its
//! key is unknown, and TTL expiry alone never evicts the last good keys. Each key is bound to exactly
//! one algorithm (the JWK `alg`, else derived from `kty`/`crv`: RSA keys without `alg` are
//! bound to RS256). An unknown `kid` triggers one fetch, shared by every request waiting for
//! it, rate-limited to a burst of 2 then one per 30 s; a `kid` still absent after a refresh
//! is remembered as absent for that cooldown (30 s), or until the next refresh if sooner. A failed refresh keeps the last good keys and
//! retries with backoff, but only for [`VerifierBuilder::max_stale_age`] (4 h by default)
//! from the first failure; then, as when no key set was ever obtained, verification fails
//! with [`AuthErrorKind::KeysUnavailable`] (answer 503, not 401). A well-formed JWK Set
//! without a usable key is the issuer's answer: it replaces the keys (logged at ERROR).
//!
//! ## Verified-token cache
//!
//! M2M clients reuse one token for hours, so a verified token is remembered (keyed by the
//! whole token string, compared whole, bounded by [`VerifierBuilder::token_cache`], 10,000
//! entries by default). On a hit the time claims (`exp`, `nbf`, `iat`, maximum age) and custom
//! validators are checked again, so no answer outlives the token: an expired token's entry
//! answers `invalid_token` and is dropped. A hit whose key has left the key set (rotation or
//! revocation) is dropped and the token verified afresh. Every new key set, and every
//! minute, a sweep frees the entries of expired tokens and of keys that left the key set.
//! Concurrent requests carrying one new token wait for a single verification. The
//! trade-off: a cached token stays accepted until its `exp` or its key's removal, exactly as
//! an uncached one would be, since JWT access tokens cannot be revoked otherwise. Tokens
//! over 8 KiB are not cached; each entry holds the token and its claims (about 2 KiB for a
//! typical token), so the cache's memory is bounded by its size in entries.
//!
//! ## Opaque tokens
//!
//! With the `introspection` feature, [`JwtAuthLayer::introspection`](https://docs.rs/bearer-guard/latest/bearer_guard/layer/struct.JwtAuthLayer.html#method.introspection) also accepts opaque
//! access tokens, checked by RFC 7662 introspection at the authorization server (see the
//! [`introspection`][introspection-docs] module). Answers are cached by a hash of the token, so **a token revoked
//! at the authorization server stays accepted until its cache entry ends: at most
//! [`introspection::DEFAULT_MAX_CACHE_TTL`](https://docs.rs/bearer-guard/latest/bearer_guard/introspection/constant.DEFAULT_MAX_CACHE_TTL.html) (2 minutes) by default**, or the token's `exp` if
//! sooner. An endpoint that cannot answer gives 503 with `Retry-After`, never 401. Signed
//! introspection responses (RFC 9701 JWT responses, verified with the issuer's keys) are
//! asked for with `IntrospectorBuilder::jwt_responses`.
//!
//! ## Limits and defaults
//!
//! | what | default (range) | why |
//! |---|---|---|
//! | token size | 16 KiB ([`DEFAULT_MAX_TOKEN_BYTES`]; 256 B – 1 MiB) | checked before any parsing: bounded work per request |
//! | `kid` length | 256 bytes ([`MAX_KID_BYTES`]) | a longer `kid` names no key: `invalid_token` at once, no JWKS fetch |
//! | JSON nesting | 128 levels (header and payload) | serde_json's recursion limit: no stack exhaustion |
//! | NumericDate (`exp`, `nbf`, `iat`) | up to 9999-12-31T23:59:59Z | a larger or non-numeric value is an invalid claim |
//! | leeway | 30 s ([`DEFAULT_LEEWAY`]; 0 – 5 min) | clock skew between issuer and API |
//! | RSA keys | 2048 – 8192 bits; exponent odd, not 1; no ROCA fingerprint | weak keys are refused when loaded |
//! | HMAC secret | at least the hash size (32 / 48 / 64 bytes) | RFC 7518 §3.2 |
//! | JWKS / metadata body | 512 KiB ([`DEFAULT_MAX_JWKS_BYTES`]; 1 KiB – 64 MiB) | a hostile or broken issuer cannot exhaust memory |
//! | keys per JWKS | 100 ([`DEFAULT_MAX_KEYS`]; 1 – 10,000) | bounded memory and lookup time |
//! | fetch timeout | 5 s for discovery + JWKS ([`DEFAULT_FETCH_TIMEOUT`]; 10 ms – 2 min); connect ≤ 3 s | a slow issuer cannot hold requests; only requests whose key is unknown ever wait on a fetch |
//! | redirects | at most 5, same origin (scheme, host, port) only | another service cannot substitute keys |
//! | JWKS TTL | `max-age`, clamped to 5 min – 24 h; 10 min without it; `no-cache`/`no-store` count as 0; bounds 1 ms – 7 days ([`MAX_JWKS_TTL_BOUND`]) | refresh often enough for rotation, rarely enough for the issuer |
//! | stale keys kept | 4 h from the first failed refresh ([`DEFAULT_MAX_STALE_AGE`]; 10 ms – 30 days), then 503 | an outage does not take the API down at once, and a withdrawn key does not stay trusted for ever |
//! | ETag kept | up to 256 bytes | bounded memory |
//! | background refresh | at 80 % of the TTL | new keys arrive before they are needed |
//! | unknown-`kid` refresh | burst 2, then 1 per 30 s; a `kid` refused for want of allowance schedules a refresh for when it refills | rotation is accepted in-line; a flood of random `kid`s costs at most that many fetches. The price: once bogus `kid`s have spent the allowance, a freshly rotated key is refused (401) for at most one cooldown (30 s) after its publication, flood or not: every refill is spent on a fetch, by the flood or by the catch-up refresh, and each fetch loads the whole set (while the issuer is failing the answer is 503 instead) |
//! | absent `kid`s remembered | 1,024 per key set, each for one unknown-`kid` cooldown (30 s), or until the next key set if sooner | bounded memory; a key the issuer's CDN did not show yet is found within the cooldown |
//! | fetch retry | 1 s doubling to 60 s, in the background after any failed fetch | an outage is not hammered |
//! | `Retry-After` on 503 | the time to the next fetch attempt; 5 s when unknown | clients come back when it can help |
//! | verified-token cache | 10,000 entries; tokens ≤ 8 KiB | bounded memory |
//! | issuers per multi-issuer verifier | 32 ([`multi::MAX_ISSUERS`]) | bounded routing table |
//!
//! ## DPoP (RFC 9449)
//!
//! Sender-constrained tokens: [`JwtAuthLayer::dpop`] accepts tokens bound to a client key
//! (`cnf.jkt`) sent as `Authorization: DPoP <token>` with a fresh proof per request, checks
//! every proof as RFC 9449 §4.3 says (also when the token comes from the verified-token
//! cache), refuses replays (a bounded in-memory [`ReplayStore`](dpop::ReplayStore) by
//! default, which refuses with 503 rather than forgets when full), and optionally demands
//! server nonces. Modes, defaults, the `htu` and proxy rules and the answers are in the
//! [`dpop`] module docs and the [`rejection`](crate::DefaultRejection) table. The core
//! ([`dpop::ProofChecker`], [`dpop::Dpop::check`]) takes plain request facts and works
//! without the layer.
//!
//! ## Running a fleet
//!
//! Replicas behind a load balancer each know only their own memory: a DPoP proof replayed
//! to another replica would be accepted, each replica would introspect the same opaque
//! token, and a replica started while the issuer is down would have no keys. The `redis`
//! feature's [`RedisStore`][redis-docs] shares three things (keys under a prefix, each a
//! fixed-size hash, never a token, proof or secret):
//!
//! - the DPoP replay store (`SET key NX PX ttl`: one round trip per DPoP request, atomic,
//!   standalone or Cluster), via [`dpop::DpopBuilder::replay_store`];
//! - the introspection cache (the validated response members, the in-memory cache's TTL),
//!   via `IntrospectorBuilder::cache` (feature `introspection`);
//! - each issuer's last good JWK Set and its fetch time, via
//!   [`VerifierBuilder::keyset_snapshots`] (through the [`store::KeySetSnapshots`] trait).
//!
//! Trust model of the snapshot: Redis is not trusted to choose keys. Each snapshot carries
//! an HMAC-SHA-256 over the issuer, the fetch time and the document, under a secret the
//! replicas share; it is verified before use, and one written with another secret or edited
//! in Redis is ignored. A snapshot is used only when no older than the configured maximum:
//! when a fetch fails (at start or later), or for an unknown `kid` when it is newer than
//! the keys held and has that `kid` (then the replica does not fetch itself).
//!
//! Failure modes and their defaults: each Redis call is bounded (10 ms by default); after
//! two failures in a row Redis is not called for 100 ms, doubling to 2 s, then probed, so a
//! dead Redis does not cost every request its timeout, and service resumes by itself.
//! Meanwhile DPoP proofs are refused with 503 and `Retry-After` (fail closed), or checked
//! in memory when opted in ([`RedisStoreBuilder::replay_fallback_in_memory`][redis-docs]);
//! introspection asks the endpoint directly; snapshots are skipped. Metrics
//! (`bearer_guard_store_*`, feature `metrics`) and tracing record calls, errors and
//! fallbacks.
//!
//! ## Deployment caveats
//!
//! - Clocks: `exp`, `nbf` and `iat` are compared with the system clock, within the leeway,
//!   fractions of a second included (a NumericDate may have one).
//! - Logs: every refusal is logged at DEBUG (kind and reason, never the token). A token
//!   refused for its `iss` or its `aud` is also logged at WARN, naming the configured value
//!   and the token's (cut at 100 characters and escaped: it is the sender's text), at most
//!   one line per kind a minute per verifier, the next line counting those left out
//!   (`suppressed`): a misconfigured issuer or audience shows even without DEBUG logs. So
//!   do claims that do not fit an `Auth<C>` type (serde's message), once a minute.
//! - The issuer string is compared exactly, trailing slash included. Call
//!   [`Verifier::refresh_keys`] at start-up: a wrong issuer then fails the deploy with the
//!   string to configure, instead of every request getting 503; or take the issuer from
//!   discovery with [`VerifierBuilder::issuer_from_discovery`].
//! - Keys are fetched with Tokio: verification needs a Tokio runtime.
//! - Proxies and HTTP servers have header-size limits of their own (nginx 8 KiB by default;
//!   hyper answers 431 past about 400 KB) that can be lower than the 16 KiB token limit.
//!
//! [axum-docs]: https://docs.rs/bearer-guard/latest/bearer_guard/axum/
//! [client-docs]: https://docs.rs/bearer-guard/latest/bearer_guard/client/
//! [mtls-serve-docs]: https://docs.rs/bearer-guard/latest/bearer_guard/mtls/fn.serve.html
//! [introspection-docs]: https://docs.rs/bearer-guard/latest/bearer_guard/introspection/
//! [tonic-docs]: https://docs.rs/bearer-guard/latest/bearer_guard/tonic/
//! [tonic-tls-docs]: https://docs.rs/bearer-guard/latest/bearer_guard/tonic/#certificate-bound-tokens-on-tonics-tls
//! [redis-docs]: https://docs.rs/bearer-guard/latest/bearer_guard/store/redis/
#![cfg_attr(docsrs, feature(doc_cfg))]

mod algorithm;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
mod claims;
mod config;
mod crypto;
pub mod dpop;
mod error;
mod extract;
mod fetch;
mod jwks;
mod key_store;
pub mod layer;
pub mod mtls;
mod rejection;
mod scope;
mod verify;

pub mod metrics;
pub mod multi;
pub mod resource_metadata;
pub mod store;
pub mod validators;
#[cfg(all(test, any(feature = "aws-lc-rs", feature = "rust-crypto")))]
mod wycheproof_tests;

#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod client;
#[cfg(feature = "dev-issuer")]
#[cfg_attr(docsrs, doc(cfg(feature = "dev-issuer")))]
pub mod dev_issuer;
#[cfg(feature = "introspection")]
#[cfg_attr(docsrs, doc(cfg(feature = "introspection")))]
pub mod introspection;

#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
pub mod tonic;
#[cfg(feature = "tonic")]
pub use self::tonic::{
    ClaimsExt, GrpcRejection, GrpcScopes, GrpcScopesLayer, RejectionBody, is_grpc_request,
};

pub use algorithm::{Algorithm, UnknownAlgorithm};
#[cfg(feature = "axum")]
pub use axum::{Auth, AuthRejection, RequireScopes, ScopeRequirement};
pub use claims::{Claims, ClaimsError, InvalidScope, ScopeToken, Scopes, ScopesIter};
pub use config::{
    DEFAULT_FETCH_TIMEOUT, DEFAULT_INITIAL_BACKOFF, DEFAULT_JWKS_TTL, DEFAULT_LEEWAY,
    DEFAULT_MAX_BACKOFF, DEFAULT_MAX_JWKS_BYTES, DEFAULT_MAX_JWKS_TTL, DEFAULT_MAX_KEYS,
    DEFAULT_MAX_STALE_AGE, DEFAULT_MAX_TOKEN_BYTES, DEFAULT_MIN_JWKS_TTL,
    DEFAULT_TOKEN_CACHE_ENTRIES, DEFAULT_UNKNOWN_KID_BURST, DEFAULT_UNKNOWN_KID_COOLDOWN,
    MAX_JWKS_TTL_BOUND, VerifierBuilder,
};
pub use dpop::{Dpop, DpopConfirmation, DpopMode};
pub use error::{AuthError, AuthErrorKind, ConfigError, DpopProofReason, InvalidTokenReason};
pub use extract::{TokenSource, bearer_token, parse_authorization};
pub use key_store::KeyHealth;
pub use layer::{JwtAuth, JwtAuthLayer};
pub use mtls::{Mtls, MtlsConfirmation, MtlsMode};
pub use multi::MAX_ISSUERS;
pub use rejection::{DefaultRejection, Rejection};
pub use resource_metadata::ProtectedResourceMetadata;
pub use scope::{
    GuardFuture, RequireScopes as RequireScopesService, RequireScopesLayer, ScopePolicy,
    require_any_scope, require_scopes,
};
pub use verify::{MAX_CACHED_TOKEN_BYTES, MAX_KID_BYTES, Verifier};

/// The README's code blocks, compiled as doc tests so that the quick start stays true.
#[cfg(all(
    doctest,
    feature = "axum",
    any(feature = "aws-lc-rs", feature = "rust-crypto")
))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
