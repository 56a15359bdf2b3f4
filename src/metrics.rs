//! Metrics, through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`).
//!
//! With the feature on, bearer-guard records the metrics below with whatever recorder the
//! application installed (a Prometheus exporter, StatsD, …); with no recorder they cost
//! almost nothing. Without the feature nothing is recorded and no dependency is added; the
//! names below stay defined either way.
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `bearer_guard_requests_total` ([`REQUESTS_TOTAL`]) | counter | `outcome`, `reason` | every decision of the layer, the scope guards and the extractors (see below) |
//! | `bearer_guard_verification_duration_seconds` ([`VERIFICATION_DURATION`]) | histogram | `outcome` | time of each [`Verifier::verify`](crate::Verifier::verify) call, cache hits included |
//! | `bearer_guard_token_cache_hits_total` ([`TOKEN_CACHE_HITS`]) | counter | | verified-token cache hits |
//! | `bearer_guard_token_cache_misses_total` ([`TOKEN_CACHE_MISSES`]) | counter | | verified-token cache misses (tokens over 8 KiB, never cached, are not counted) |
//! | `bearer_guard_jwks_fetches_total` ([`JWKS_FETCHES_TOTAL`]) | counter | `issuer`, `result` | discovery + JWKS fetches: `result` is `success` (a key set was loaded, or confirmed by `304 Not Modified`) or `failure` |
//! | `bearer_guard_jwks_keys` ([`JWKS_KEYS`]) | gauge | `issuer` | keys in the key set held, set at each successful fetch |
//! | `bearer_guard_jwks_age_seconds` ([`JWKS_AGE`]) | gauge | `issuer` | seconds since the key set held was fetched or confirmed; set at each fetch and at each [`Verifier::key_health`](crate::Verifier::key_health) call (a readiness probe keeps it current) |
//! | `bearer_guard_introspection_calls_total` ([`INTROSPECTION_CALLS_TOTAL`]) | counter | `outcome` | calls to the RFC 7662 introspection endpoint (feature `introspection`): `outcome` is `active`, `refused` (inactive, or active but refused by the checks) or `unavailable` (no usable answer) |
//! | `bearer_guard_introspection_duration_seconds` ([`INTROSPECTION_DURATION`]) | histogram | `outcome` | time of each introspection call, by the same `outcome` |
//! | `bearer_guard_introspection_cache_hits_total` ([`INTROSPECTION_CACHE_HITS`]) | counter | | opaque tokens answered from the introspection cache |
//! | `bearer_guard_introspection_cache_misses_total` ([`INTROSPECTION_CACHE_MISSES`]) | counter | | opaque tokens not in the introspection cache (requests that shared another's call count here too) |
//! | `bearer_guard_store_calls_total` ([`STORE_CALLS_TOTAL`]) | counter | `op`, `result` | calls to a shared store (feature `redis`): `op` is `replay`, `introspection_get`, `introspection_put`, `snapshot_load`, `snapshot_save`; `result` is `ok`, `error`, `timeout`, `cancelled` (dropped unfinished by its caller) or `circuit_open` (not tried: the store failed recently) |
//! | `bearer_guard_store_call_duration_seconds` ([`STORE_CALL_DURATION`]) | histogram | `op` | time of each store call that was tried |
//! | `bearer_guard_store_fallbacks_total` ([`STORE_FALLBACKS_TOTAL`]) | counter | `op` | replay checks answered by the in-memory fallback while the shared store was unreachable (opt-in) |
//!
//! `outcome` of `bearer_guard_requests_total`:
//!
//! | `outcome` | counted when |
//! |---|---|
//! | `accepted` | the layer verified the token and called the inner service |
//! | `anonymous` | an [optional](crate::JwtAuthLayer::optional) layer let a request without credentials through |
//! | `missing_token` | no credentials (answered 401) |
//! | `malformed_request` | malformed credentials (400) |
//! | `invalid_token` | the token was refused (401); `reason` is the [`InvalidTokenReason`](crate::InvalidTokenReason) as [`as_str`](crate::InvalidTokenReason::as_str) gives it: `expired`, `bad_signature`, `wrong_issuer`, … |
//! | `insufficient_scope` | a scope guard, an extractor or a claim validator refused a valid token (403) |
//! | `keys_unavailable` | the issuer's keys could not be obtained (503) |
//! | `introspection_unavailable` | the introspection endpoint could not answer about an opaque token (503) |
//!
//! A request accepted by the layer and then refused by a scope guard counts once as
//! `accepted` and once as `insufficient_scope`. `outcome` of the histogram is `accepted` or
//! the [`AuthErrorKind`](crate::AuthErrorKind) name (`invalid_token`, `keys_unavailable`,
//! …). The `issuer` label takes one value per configured issuer (bounded, see
//! [`Verifier::multi`](crate::Verifier::multi)); labels never carry token content.
//!
//! ```
//! # #[cfg(all(feature = "metrics", feature = "aws-lc-rs"))]
//! # fn main() {
//! use bearer_guard::{Verifier, metrics::VERIFICATION_DURATION};
//! use metrics_util::debugging::{DebugValue, DebuggingRecorder};
//!
//! // An application installs its exporter once (`metrics::set_global_recorder`, or e.g.
//! // metrics-exporter-prometheus); here a test recorder, for this thread only.
//! let recorder = DebuggingRecorder::new();
//! let snapshotter = recorder.snapshotter();
//! let verifier = Verifier::builder()
//!     .issuer("https://issuer.example/")
//!     .audience("urn:worldmappers")
//!     .hmac_secret(b"an-example-secret-of-at-least-32-bytes!!")
//!     .build()
//!     .unwrap();
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! metrics::with_local_recorder(&recorder, || {
//!     rt.block_on(async { assert!(verifier.verify("not-a-jwt").await.is_err()) })
//! });
//!
//! let timed = snapshotter.snapshot().into_vec().into_iter().find(|(key, ..)| {
//!     key.key().name() == VERIFICATION_DURATION
//!         && key.key().labels().any(|l| l.key() == "outcome" && l.value() == "invalid_token")
//! });
//! assert!(matches!(timed, Some((.., DebugValue::Histogram(v))) if v.len() == 1));
//! # }
//! # #[cfg(not(all(feature = "metrics", feature = "aws-lc-rs")))]
//! # fn main() {}
//! ```

use crate::claims::Claims;
use crate::error::AuthError;

/// Counter of decisions, labelled `outcome` (and `reason` for `invalid_token`).
pub const REQUESTS_TOTAL: &str = "bearer_guard_requests_total";
/// Histogram of verification time in seconds, labelled `outcome`.
pub const VERIFICATION_DURATION: &str = "bearer_guard_verification_duration_seconds";
/// Counter of verified-token cache hits.
pub const TOKEN_CACHE_HITS: &str = "bearer_guard_token_cache_hits_total";
/// Counter of verified-token cache misses.
pub const TOKEN_CACHE_MISSES: &str = "bearer_guard_token_cache_misses_total";
/// Counter of JWKS fetches, labelled `issuer` and `result` (`success` or `failure`).
pub const JWKS_FETCHES_TOTAL: &str = "bearer_guard_jwks_fetches_total";
/// Gauge of the keys held, labelled `issuer`.
pub const JWKS_KEYS: &str = "bearer_guard_jwks_keys";
/// Gauge of the age of the key set held, in seconds, labelled `issuer`.
pub const JWKS_AGE: &str = "bearer_guard_jwks_age_seconds";

/// Counter of introspection calls, labelled `outcome` (`active`, `refused`, `unavailable`).
pub const INTROSPECTION_CALLS_TOTAL: &str = "bearer_guard_introspection_calls_total";
/// Histogram of introspection call time in seconds, labelled `outcome`.
pub const INTROSPECTION_DURATION: &str = "bearer_guard_introspection_duration_seconds";
/// Counter of introspection cache hits.
pub const INTROSPECTION_CACHE_HITS: &str = "bearer_guard_introspection_cache_hits_total";
/// Counter of introspection cache misses.
pub const INTROSPECTION_CACHE_MISSES: &str = "bearer_guard_introspection_cache_misses_total";

/// Times one verification (a no-op without the feature).
#[derive(Debug)]
pub(crate) struct Timer {
    #[cfg(feature = "metrics")]
    start: std::time::Instant,
}

impl Timer {
    pub(crate) fn start() -> Self {
        Self {
            #[cfg(feature = "metrics")]
            start: std::time::Instant::now(),
        }
    }

    /// Records the verification time, by outcome.
    pub(crate) fn verified(self, result: &Result<Claims, AuthError>) {
        #[cfg(feature = "metrics")]
        {
            let outcome = match result {
                Ok(_) => "accepted",
                Err(e) => e.kind().as_str(),
            };
            ::metrics::histogram!(VERIFICATION_DURATION, "outcome" => outcome)
                .record(self.start.elapsed().as_secs_f64());
        }
        #[cfg(not(feature = "metrics"))]
        let _ = result;
    }
}

/// A verified-token cache lookup.
pub(crate) fn token_cache(hit: bool) {
    #[cfg(feature = "metrics")]
    {
        let name = if hit {
            TOKEN_CACHE_HITS
        } else {
            TOKEN_CACHE_MISSES
        };
        ::metrics::counter!(name).increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = hit;
}

/// The layer verified a token and called the inner service.
pub(crate) fn accepted() {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(REQUESTS_TOTAL, "outcome" => "accepted").increment(1);
}

/// An optional layer let a request without credentials through.
pub(crate) fn anonymous() {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(REQUESTS_TOTAL, "outcome" => "anonymous").increment(1);
}

/// A request was refused (called where rejections are logged).
pub(crate) fn rejected(error: &AuthError) {
    #[cfg(feature = "metrics")]
    match error.kind() {
        crate::AuthErrorKind::InvalidToken(reason) => ::metrics::counter!(
            REQUESTS_TOTAL,
            "outcome" => "invalid_token",
            "reason" => reason.as_str()
        )
        .increment(1),
        kind => ::metrics::counter!(REQUESTS_TOTAL, "outcome" => kind.as_str()).increment(1),
    }
    #[cfg(not(feature = "metrics"))]
    let _ = error;
}

/// A JWKS fetch ended; `held` is the key set held afterwards (its size and when it was
/// obtained), if any.
pub(crate) fn jwks_fetch(
    issuer: &str,
    success: bool,
    held: Option<(usize, Option<std::time::SystemTime>)>,
) {
    #[cfg(feature = "metrics")]
    {
        let result = if success { "success" } else { "failure" };
        ::metrics::counter!(JWKS_FETCHES_TOTAL, "issuer" => issuer.to_owned(), "result" => result)
            .increment(1);
        if let Some((keys, loaded_at)) = held {
            #[allow(clippy::cast_precision_loss)]
            ::metrics::gauge!(JWKS_KEYS, "issuer" => issuer.to_owned()).set(keys as f64);
            key_set_age(issuer, loaded_at);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (issuer, success, held);
}

/// The age of the key set held (nothing when none is held).
pub(crate) fn key_set_age(issuer: &str, loaded_at: Option<std::time::SystemTime>) {
    #[cfg(feature = "metrics")]
    if let Some(at) = loaded_at {
        let age = at.elapsed().map_or(0.0, |d| d.as_secs_f64());
        ::metrics::gauge!(JWKS_AGE, "issuer" => issuer.to_owned()).set(age);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (issuer, loaded_at);
}

/// An introspection call ended with `outcome` (`active`, `refused`, `unavailable`) after
/// `elapsed`.
#[cfg(feature = "introspection")]
pub(crate) fn introspection_call(outcome: &'static str, elapsed: std::time::Duration) {
    #[cfg(feature = "metrics")]
    {
        ::metrics::counter!(INTROSPECTION_CALLS_TOTAL, "outcome" => outcome).increment(1);
        ::metrics::histogram!(INTROSPECTION_DURATION, "outcome" => outcome)
            .record(elapsed.as_secs_f64());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (outcome, elapsed);
}

/// An introspection cache lookup.
#[cfg(feature = "introspection")]
pub(crate) fn introspection_cache(hit: bool) {
    #[cfg(feature = "metrics")]
    {
        let name = if hit {
            INTROSPECTION_CACHE_HITS
        } else {
            INTROSPECTION_CACHE_MISSES
        };
        ::metrics::counter!(name).increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = hit;
}

/// Counter: calls to a shared store, by `op` and `result`.
pub const STORE_CALLS_TOTAL: &str = "bearer_guard_store_calls_total";
/// Histogram: time of each shared-store call tried, by `op`.
pub const STORE_CALL_DURATION: &str = "bearer_guard_store_call_duration_seconds";
/// Counter: replay checks answered by the in-memory fallback, by `op`.
pub const STORE_FALLBACKS_TOTAL: &str = "bearer_guard_store_fallbacks_total";

/// A shared-store call ended with `result` after `elapsed` (`None`: not tried).
#[cfg(feature = "redis")]
pub(crate) fn store_call(
    op: &'static str,
    result: &'static str,
    elapsed: Option<std::time::Duration>,
) {
    #[cfg(feature = "metrics")]
    {
        ::metrics::counter!(STORE_CALLS_TOTAL, "op" => op, "result" => result).increment(1);
        if let Some(d) = elapsed {
            ::metrics::histogram!(STORE_CALL_DURATION, "op" => op).record(d.as_secs_f64());
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (op, result, elapsed);
}

/// A store call was answered by the fallback.
#[cfg(feature = "redis")]
pub(crate) fn store_fallback(op: &'static str) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(STORE_FALLBACKS_TOTAL, "op" => op).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = op;
}
