//! DPoP (RFC 9449): access tokens bound to a key the client holds, checked on every request.
//!
//! A DPoP-bound token carries the thumbprint of the client's public key (`cnf.jkt`); each
//! request carries the token with the `DPoP` scheme (`Authorization: DPoP <token>`) and a
//! fresh proof (`DPoP: <jws>`) signed with that key, naming the method and URL and hashing
//! the token. A stolen token is useless without the key.
//!
//! The checks, each a function of plain data (no framework type):
//! - [`ProofChecker`]: the proof itself, as RFC 9449 §4.3 lists (size bounded before
//!   parsing, compact JWS, `typ` `dpop+jwt`, `alg` from an allow-list and fitting the key,
//!   a public `jwk`, the signature, `htm`, `htu`, `iat` window, `jti`, `ath`);
//! - the binding: the proof's key thumbprint ([`jwk_thumbprint`]) equals the token's
//!   `cnf.jkt` (compared in constant time); a bound token never passes as a bearer token;
//! - [`Nonces`] (opt-in): the server nonce of RFC 9449 §8;
//! - [`ReplayStore`]: each proof (key and `jti`) accepted once within its window.
//!
//! [`Dpop`] gathers the settings and runs them in that order
//! ([`check`](Dpop::check)); [`JwtAuthLayer::dpop`](crate::JwtAuthLayer::dpop) installs it
//! in the layer, which gathers the request facts.
//!
//! # Modes
//!
//! | mode | `Bearer` | `DPoP` | 401 without credentials |
//! |---|---|---|---|
//! | no `dpop` call | accepted unless the token is bound | no credentials | `Bearer` challenge |
//! | [`Off`](DpopMode::Off) | accepted, a bound token unchecked | no credentials | `Bearer` challenge |
//! | [`Allowed`](DpopMode::Allowed) (default) | accepted unless the token is bound | accepted | `Bearer` and `DPoP` challenges |
//! | [`Required`](DpopMode::Required) | no credentials | accepted | `DPoP` challenge |
//!
//! # Defaults
//!
//! | what | default | setting |
//! |---|---|---|
//! | proof algorithms | ES256, ES384, EdDSA, RS256, PS256 (never `none` or HMAC) | [`ProofCheckerBuilder::algorithms`] |
//! | proof size | 8 KiB, before parsing | [`ProofCheckerBuilder::max_proof_bytes`] |
//! | `iat` window | 60 s in the past, 30 s in the future | [`ProofCheckerBuilder::max_age`], [`ProofCheckerBuilder::leeway`] |
//! | `jti` | 1 – 256 bytes | [`ProofCheckerBuilder::max_jti_bytes`] |
//! | replay store | in memory, 100,000 live proofs (about 15 MiB); full: 503 + `Retry-After` | [`DpopBuilder::replay_store`] |
//! | nonces | off; 5 min steps when on | [`DpopBuilder::nonces`] |
//!
//! # The URL a proof is checked against (`htu`)
//!
//! Behind a proxy the request's URL differs from the one the client signed, and the `Host`
//! header is the client's to choose: the external origin is configured
//! ([`DpopBuilder::public_url`]), or read from `Forwarded` / `X-Forwarded-Proto` and
//! `X-Forwarded-Host` only when [`DpopBuilder::trust_forwarded_headers`] says that the proxy
//! sets them (and strips those of clients). It is never taken from `Host`; `build()` fails
//! when neither is configured. The path is the request's (after the public URL's own path,
//! if any); query and fragment are ignored. For gRPC the method is `POST` and the URL the
//! method's (`https://api.example/package.Service/Method`), as for any HTTP request.
//!
//! # Deployment caveats
//!
//! - Replicas: the in-memory replay store sees only its own process. Behind a load balancer
//!   a proof replayed to another replica within its window is not detected; share a store
//!   (the [`ReplayStore`] trait) across the fleet, or pin clients to a replica.
//! - Clocks: `iat` is the client's clock. A client more than the leeway ahead, or whose
//!   proofs take longer than the window to arrive, is refused; server nonces
//!   ([`Nonces`]) spare clients from needing a right clock only in part (the `iat` window
//!   still applies).
//! - A full in-memory store answers 503 until entries expire (at most the window, 90 s by
//!   default): size it for the DPoP request rate times the window.
//! - Proxies must forward the `DPoP` header unchanged and must not merge two into one.
//!
//! ```
//! # #[cfg(any(feature = "aws-lc-rs", feature = "rust-crypto"))]
//! # fn main() {
//! use bearer_guard::dpop::{Dpop, DpopMode, ProofChecker, RequestFacts};
//! use bearer_guard::{AuthErrorKind, DpopProofReason};
//!
//! // A proof that is not a JWS is refused, whatever the request.
//! let facts = RequestFacts::new("GET", "https://api.example/maps", "not-a-jws", std::time::SystemTime::now());
//! let err = ProofChecker::default().check(&facts).unwrap_err();
//! assert_eq!(err.kind(), AuthErrorKind::InvalidDpopProof(DpopProofReason::Malformed));
//!
//! let dpop = Dpop::builder()
//!     .public_url("https://api.example")
//!     .mode(DpopMode::Required)
//!     .build()
//!     .unwrap();
//! assert_eq!(dpop.mode(), DpopMode::Required);
//! // No public URL and no trusted proxy headers: refused.
//! assert!(Dpop::builder().build().is_err());
//! # }
//! # #[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
//! # fn main() {}
//! ```

mod htu;
mod nonce;
mod proof;
mod replay;
mod thumbprint;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;

pub use nonce::{DEFAULT_NONCE_STEP, NonceState, Nonces};
pub use proof::{
    DEFAULT_KEY_CACHE_ENTRIES, DEFAULT_MAX_JTI_BYTES, DEFAULT_MAX_PROOF_BYTES,
    DEFAULT_PROOF_ALGORITHMS, DEFAULT_PROOF_LEEWAY, DEFAULT_PROOF_MAX_AGE, ProofChecker,
    ProofCheckerBuilder, RequestFacts, VerifiedProof,
};
pub use replay::{
    DEFAULT_REPLAY_CAPACITY, InMemoryReplayStore, ReplayCheck, ReplayFuture, ReplayKey,
    ReplayStore, ReplayStoreError,
};
pub use thumbprint::jwk_thumbprint;

use crate::claims::Claims;
use crate::error::{AuthError, ConfigError, DpopProofReason, InvalidTokenReason};
use crate::rejection::Limiter;

/// The WARN line of a replay store that cannot answer (full, failing or slow), one per
/// request otherwise: at most one a minute, with the number left out (`suppressed`).
///
/// A static, shared by the whole process: every [`Dpop`] in it shares this budget (a
/// second API's failing store within the minute is counted in `suppressed`). The Redis
/// store has its own limited lines (why it failed); with it, one outage gives two WARN
/// lines a minute: the store's and this one.
static REPLAY_STORE_LOG: Limiter = Limiter::new();

/// Whether and how DPoP is accepted (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DpopMode {
    /// DPoP is not accepted: the `DPoP` scheme counts as no credentials, and a DPoP-bound
    /// token sent as `Bearer` is accepted **unchecked**, as a bearer token. A layer with no
    /// [`dpop`](crate::JwtAuthLayer::dpop) call at all refuses such a token instead.
    Off,
    /// Both schemes are accepted; a DPoP-bound token only with the `DPoP` scheme.
    #[default]
    Allowed,
    /// Only the `DPoP` scheme is accepted.
    Required,
}

impl std::str::FromStr for DpopMode {
    type Err = ConfigError;

    /// `off`, `allowed` or `required` (case-insensitive), as the examples' `DPOP` variable.
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s.to_ascii_lowercase().as_str() {
            "off" => Ok(Self::Off),
            "allowed" => Ok(Self::Allowed),
            "required" => Ok(Self::Required),
            _ => Err(ConfigError::InvalidValue {
                what: "DPoP mode",
                value: s.to_owned(),
                reason: "expected off, allowed or required",
            }),
        }
    }
}

/// Where the external origin of requests comes from (for `htu`).
#[derive(Debug, Clone)]
enum Origin {
    /// `scheme://host[:port]` and a path prefix without a trailing slash.
    Fixed { origin: String, prefix: String },
    /// The proxy's `Forwarded` / `X-Forwarded-*` headers, else `fallback`.
    Forwarded { fallback: Option<(String, String)> },
}

/// What a request that passed the DPoP checks carries in its extensions: the thumbprint of
/// the key its token is bound to. Handlers read it directly, with the axum extractor (this
/// type, or `Option<DpopConfirmation>`), or with
/// [`ClaimsExt::dpop`](https://docs.rs/bearer-guard/latest/bearer_guard/tonic/trait.ClaimsExt.html#tymethod.dpop) in tonic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopConfirmation {
    jkt: Arc<str>,
}

impl DpopConfirmation {
    /// The RFC 7638 thumbprint of the client's key (the token's `cnf.jkt`).
    pub fn jkt(&self) -> &str {
        &self.jkt
    }
}

/// The outcome of [`Dpop::check`]: the confirmation, and a fresh nonce to send ahead of the
/// expiry of the one the proof carried.
#[derive(Debug, Clone)]
pub struct DpopVerified {
    confirmation: DpopConfirmation,
    next_nonce: Option<String>,
}

impl DpopVerified {
    /// The confirmation to put in the request's extensions.
    pub fn confirmation(&self) -> &DpopConfirmation {
        &self.confirmation
    }

    /// A nonce to send in a `DPoP-Nonce` response header, if the proof's one expires soon.
    pub fn next_nonce(&self) -> Option<&str> {
        self.next_nonce.as_deref()
    }

    pub(crate) fn into_parts(self) -> (DpopConfirmation, Option<String>) {
        (self.confirmation, self.next_nonce)
    }
}

/// The DPoP settings of a resource server: mode, proof checks, replay store, nonces, public
/// URL. Cheap to clone.
#[derive(Clone)]
pub struct Dpop {
    inner: Arc<Inner>,
}

struct Inner {
    mode: DpopMode,
    checker: ProofChecker,
    replay: Arc<dyn ReplayStore>,
    nonces: Option<Nonces>,
    origin: Origin,
    algs: String,
    replay_timeout: Duration,
}

impl fmt::Debug for Dpop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dpop")
            .field("mode", &self.inner.mode)
            .field("checker", &self.inner.checker)
            .field("replay", &self.inner.replay)
            .field("nonces", &self.inner.nonces)
            .field("origin", &self.inner.origin)
            .finish()
    }
}

/// Builds a [`Dpop`]; every check happens in [`build`](Self::build).
#[must_use]
pub struct DpopBuilder {
    mode: DpopMode,
    checker: Option<ProofChecker>,
    replay: Option<Arc<dyn ReplayStore>>,
    nonces: Option<Nonces>,
    public_url: Option<String>,
    trust_forwarded: bool,
    replay_timeout: Duration,
}

impl fmt::Debug for DpopBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopBuilder")
            .field("mode", &self.mode)
            .field("public_url", &self.public_url)
            .field("trust_forwarded", &self.trust_forwarded)
            .finish_non_exhaustive()
    }
}

impl DpopBuilder {
    /// The mode (default [`DpopMode::Allowed`]).
    pub fn mode(mut self, mode: DpopMode) -> Self {
        self.mode = mode;
        self
    }

    /// The proof checks' settings (default [`ProofChecker::default`]).
    pub fn proof_checker(mut self, checker: ProofChecker) -> Self {
        self.checker = Some(checker);
        self
    }

    /// The replay store (default an [`InMemoryReplayStore`] of
    /// [`DEFAULT_REPLAY_CAPACITY`] entries).
    pub fn replay_store(mut self, store: impl ReplayStore) -> Self {
        self.replay = Some(Arc::new(store));
        self
    }

    /// How long a replay store call may take before the proof is refused with 503 (default
    /// 1 s, 1 ms to 30 s; fails closed).
    ///
    /// A store that bounds its own calls ([`ReplayStore::call_timeout`]: the Redis store's
    /// `timeout`) is waited for at least that bound and 50 ms more: its own timeout then
    /// answers first, and it counts it (the Redis store's circuit opens after two), where a
    /// shorter bound here would drop the call first, every time, with Redis frozen.
    pub fn replay_timeout(mut self, timeout: Duration) -> Self {
        self.replay_timeout = timeout;
        self
    }

    /// Turns server nonces on (RFC 9449 §8): a proof without the current (or previous)
    /// nonce is answered `401 use_dpop_nonce` with a `DPoP-Nonce` header.
    pub fn nonces(mut self, nonces: Nonces) -> Self {
        self.nonces = Some(nonces);
        self
    }

    /// The API's external base URL as clients call it, e.g. `https://api.example` or
    /// `https://example.com/api` (a path is a prefix of every request's path).
    pub fn public_url(mut self, url: impl Into<String>) -> Self {
        self.public_url = Some(url.into());
        self
    }

    /// Takes the external scheme and host from the `Forwarded` header (RFC 7239; its first
    /// element's `proto` and `host`), else `X-Forwarded-Proto` and `X-Forwarded-Host` (their
    /// first values). **Only** behind a proxy that sets them and removes the clients' own:
    /// otherwise a client chooses the URL its proofs are checked against. A request
    /// without them falls back to the [`public_url`](Self::public_url), or is refused (400)
    /// when there is none.
    pub fn trust_forwarded_headers(mut self) -> Self {
        self.trust_forwarded = true;
        self
    }

    /// The settings.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidValue`] when neither a public URL nor trusted proxy headers are
    /// configured (`htu` is never guessed from `Host`), [`ConfigError::InvalidUrl`] for a
    /// public URL that is not an absolute http(s) URL without query or fragment,
    /// [`ConfigError::OutOfRange`] for a replay timeout outside 1 ms – 30 s, and the errors
    /// of [`ProofCheckerBuilder::build`] for the default checker.
    pub fn build(self) -> Result<Dpop, ConfigError> {
        let checker = match self.checker {
            Some(c) => c,
            None => ProofChecker::builder().build()?,
        };
        let fixed = self
            .public_url
            .as_deref()
            .map(parse_public_url)
            .transpose()?;
        let origin = match (fixed, self.trust_forwarded) {
            (fixed, true) => Origin::Forwarded { fallback: fixed },
            (Some((origin, prefix)), false) => Origin::Fixed { origin, prefix },
            (None, false) => {
                return Err(ConfigError::InvalidValue {
                    what: "DPoP public URL",
                    value: String::new(),
                    reason: "call public_url(..) with the API's external URL, or \
                             trust_forwarded_headers() behind a proxy that sets them",
                });
            }
        };
        crate::config::check_range(
            "DPoP replay timeout",
            self.replay_timeout,
            Duration::from_millis(1),
            Duration::from_secs(30),
            "1 ms - 30 s",
        )?;
        let algs = checker
            .algorithms()
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let replay = self
            .replay
            .unwrap_or_else(|| Arc::new(InMemoryReplayStore::default()));
        Ok(Dpop {
            inner: Arc::new(Inner {
                mode: self.mode,
                checker,
                replay_timeout: crate::store::caller_wait(
                    self.replay_timeout,
                    replay.call_timeout(),
                ),
                replay,
                nonces: self.nonces,
                origin,
                algs,
            }),
        })
    }
}

fn parse_public_url(value: &str) -> Result<(String, String), ConfigError> {
    let bad = |reason: &str| ConfigError::InvalidUrl {
        what: "DPoP public URL",
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let url = url::Url::parse(value).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad("not an absolute http(s) URL"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(bad("has a query, a fragment or user information"));
    }
    let origin = url.origin().ascii_serialization();
    let prefix = url.path().trim_end_matches('/').to_owned();
    Ok((origin, prefix))
}

impl Dpop {
    /// A builder (mode [`Allowed`](DpopMode::Allowed), default checks, in-memory replay
    /// store, no nonces).
    pub fn builder() -> DpopBuilder {
        DpopBuilder {
            mode: DpopMode::Allowed,
            checker: None,
            replay: None,
            nonces: None,
            public_url: None,
            trust_forwarded: false,
            replay_timeout: Duration::from_secs(1),
        }
    }

    /// The mode.
    pub fn mode(&self) -> DpopMode {
        self.inner.mode
    }

    /// The proof checker.
    pub fn checker(&self) -> &ProofChecker {
        &self.inner.checker
    }

    /// The nonces, when on.
    pub fn nonces(&self) -> Option<&Nonces> {
        self.inner.nonces.as_ref()
    }

    /// The allowed proof algorithms, space-separated (the challenge's `algs`).
    pub fn algs(&self) -> &str {
        &self.inner.algs
    }

    /// The URL a request's proof must name: the external origin (configured, or from the
    /// trusted proxy headers) and the request's path.
    ///
    /// # Errors
    ///
    /// A malformed-request error when the origin comes from proxy headers that are absent or
    /// malformed and no public URL is configured.
    pub fn htu(&self, headers: &HeaderMap, path: &str) -> Result<String, AuthError> {
        let (origin, prefix) = match &self.inner.origin {
            Origin::Fixed { origin, prefix } => (origin.clone(), prefix.as_str()),
            Origin::Forwarded { fallback } => match (forwarded_origin(headers), fallback) {
                (Some(o), Some((_, prefix))) => (o, prefix.as_str()),
                (Some(o), None) => (o, ""),
                (None, Some((o, prefix))) => (o.clone(), prefix.as_str()),
                (None, None) => {
                    return Err(AuthError::malformed_request(
                        "the request's external URL is unknown (no valid Forwarded header)",
                    )
                    .dpop_scheme());
                }
            },
        };
        let path = if path.starts_with('/') { path } else { "/" };
        Ok(format!("{origin}{prefix}{path}"))
    }

    /// Runs every check on a request made with the `DPoP` scheme, whose access token
    /// (`facts`' [`access_token`](RequestFacts::access_token)) was verified into `claims`:
    /// the proof ([`ProofChecker::check`]), the nonce when on, the binding (`cnf.jkt` equals
    /// the proof key's thumbprint), then the replay check (last, so that a refused proof
    /// takes no room in the store).
    ///
    /// # Errors
    ///
    /// `invalid_dpop_proof`, `use_dpop_nonce`, `invalid_token` (an unbound token), or
    /// [`ReplayStoreUnavailable`](crate::AuthErrorKind::ReplayStoreUnavailable) (fail
    /// closed).
    pub async fn check(
        &self,
        facts: &RequestFacts<'_>,
        claims: &Claims,
    ) -> Result<DpopVerified, AuthError> {
        let inner = &*self.inner;
        let Some(jkt) = claims.confirmation("jkt").map_err(AuthError::dpop_scheme)? else {
            return Err(AuthError::invalid(InvalidTokenReason::UnboundTokenAsDpop).dpop_scheme());
        };
        let proof = inner.checker.check(facts)?;
        let next_nonce = match &inner.nonces {
            None => None,
            Some(n) => match proof.nonce().and_then(|v| n.check(v, facts.now())) {
                Some(NonceState::Current) => None,
                Some(NonceState::Previous) => Some(n.current(facts.now())),
                None => return Err(AuthError::use_dpop_nonce(n.current(facts.now()))),
            },
        };
        if !crate::crypto::constant_time_eq(jkt.as_bytes(), proof.jkt().as_bytes()) {
            return Err(AuthError::invalid_dpop_proof(DpopProofReason::KeyNotBound));
        }
        // Remembered until the proof is too old to be accepted anyway.
        let expires = proof
            .issued_at()
            .saturating_add(secs(inner.checker.max_age()))
            .saturating_sub(proof::unix(facts.now()));
        let ttl = Duration::from_secs(u64::try_from(expires).unwrap_or(0).saturating_add(1));
        let key = ReplayKey::new(proof.jkt(), proof.jti());
        let answer = tokio::time::timeout(
            inner.replay_timeout,
            inner.replay.check_and_insert(key, ttl),
        )
        .await;
        match answer {
            Ok(Ok(ReplayCheck::Fresh)) => {}
            Ok(Ok(ReplayCheck::Replayed)) => {
                return Err(AuthError::invalid_dpop_proof(DpopProofReason::Replayed));
            }
            Ok(Err(ReplayStoreError::Full { retry_after })) => {
                if let Some(suppressed) = REPLAY_STORE_LOG.allow_now() {
                    tracing::warn!(
                        suppressed,
                        "bearer-guard: the DPoP replay store is full; refusing proofs"
                    );
                }
                return Err(AuthError::replay_store_unavailable(Some(retry_after)));
            }
            Ok(Err(e)) => {
                if let Some(suppressed) = REPLAY_STORE_LOG.allow_now() {
                    tracing::warn!(
                        error = %e,
                        suppressed,
                        "bearer-guard: the DPoP replay check failed"
                    );
                }
                return Err(AuthError::replay_store_unavailable(None));
            }
            Err(_) => {
                if let Some(suppressed) = REPLAY_STORE_LOG.allow_now() {
                    tracing::warn!(suppressed, "bearer-guard: the DPoP replay check timed out");
                }
                return Err(AuthError::replay_store_unavailable(None));
            }
        }
        Ok(DpopVerified {
            confirmation: DpopConfirmation {
                jkt: Arc::from(proof.jkt()),
            },
            next_nonce,
        })
    }

    /// For a token sent with the `Bearer` scheme: refuses it when it is DPoP-bound (no
    /// downgrade, RFC 9449 §7.2).
    ///
    /// # Errors
    ///
    /// `invalid_token` ([`InvalidTokenReason::BoundTokenAsBearer`]) for a bound token, or
    /// ([`InvalidTokenReason::InvalidClaim`]) when `cnf` is malformed.
    pub fn check_bearer(claims: &Claims) -> Result<(), AuthError> {
        match claims.confirmation("jkt")? {
            None => Ok(()),
            Some(_) => {
                Err(AuthError::invalid(InvalidTokenReason::BoundTokenAsBearer).dpop_scheme())
            }
        }
    }
}

/// A layer configured with no DPoP at all: a DPoP-bound token is refused, since no proof is
/// checked (its binding could not be); an unbound one passes. [`DpopMode::Off`] is the
/// explicit way to accept bound tokens unchecked. (The twin of
/// [`crate::mtls`]'s rule for certificate-bound tokens.)
pub(crate) fn refuse_unchecked_binding(claims: &Claims) -> Result<(), AuthError> {
    match claims.confirmation("jkt")? {
        None => Ok(()),
        Some(_) => Err(AuthError::invalid_with(
            InvalidTokenReason::BoundTokenAsBearer,
            "the token is bound to a DPoP key (cnf.jkt), and this API accepts no DPoP",
        )),
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The origin the trusted proxy headers give, if they give a valid one.
fn forwarded_origin(headers: &HeaderMap) -> Option<String> {
    let one = |name: &str| -> Option<&str> {
        let mut values = headers.get_all(name).iter();
        let first = values.next()?.to_str().ok()?;
        Some(first.split(',').next()?.trim())
    };
    let (proto, host) = if let Some(fwd) = one("forwarded") {
        let mut proto = None;
        let mut host = None;
        for pair in fwd.split(';') {
            let Some((k, v)) = pair.trim().split_once('=') else {
                continue;
            };
            let v = v.trim_matches('"');
            if k.eq_ignore_ascii_case("proto") {
                proto = Some(v);
            } else if k.eq_ignore_ascii_case("host") {
                host = Some(v);
            }
        }
        (proto?, host?)
    } else {
        (one("x-forwarded-proto")?, one("x-forwarded-host")?)
    };
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "http" | "https") {
        return None;
    }
    // Only an authority: a host and an optional port.
    let url = url::Url::parse(&format!("{proto}://{host}/")).ok()?;
    (url.path() == "/" && url.username().is_empty() && url.host_str().is_some())
        .then(|| url.origin().ascii_serialization())
}

#[cfg(all(
    test,
    feature = "dev-issuer",
    any(feature = "aws-lc-rs", feature = "rust-crypto")
))]
mod tests;
