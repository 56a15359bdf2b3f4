//! [`VerifierBuilder`]: every setting, every check in [`build`](VerifierBuilder::build).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::algorithm::{Algorithm, Family};
use crate::claims::{Claims, ScopeSource};
use crate::crypto::{self, Key, KeyMaterial};
use crate::error::{AuthError, ConfigError};
use crate::fetch::{self, Fetcher, RemoteSource};
use crate::jwks;
use crate::key_store::{KeyStore, RefreshPolicy};
use crate::verify::{Settings, Verifier};

/// Default leeway for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Default maximum token size, checked before any parsing.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Default cap on a JWKS or metadata response body.
pub const DEFAULT_MAX_JWKS_BYTES: usize = 512 * 1024;
/// Default cap on the number of keys taken from a JWKS.
pub const DEFAULT_MAX_KEYS: usize = 100;
/// Default timeout of a whole discovery + JWKS fetch.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// JWKS lifetime when the response has no `Cache-Control: max-age`.
pub const DEFAULT_JWKS_TTL: Duration = Duration::from_secs(600);
/// Shortest JWKS lifetime (a smaller `max-age` is raised to this).
pub const DEFAULT_MIN_JWKS_TTL: Duration = Duration::from_secs(300);
/// Longest JWKS lifetime (a larger `max-age` is lowered to this).
pub const DEFAULT_MAX_JWKS_TTL: Duration = Duration::from_secs(24 * 3600);
/// Unknown-`kid` refreshes allowed at once.
pub const DEFAULT_UNKNOWN_KID_BURST: u32 = 2;
/// After the burst, at most one unknown-`kid` refresh per this period.
pub const DEFAULT_UNKNOWN_KID_COOLDOWN: Duration = Duration::from_secs(30);
/// First retry delay after a failed fetch (doubling up to [`DEFAULT_MAX_BACKOFF`]).
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Longest retry delay after failed fetches.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long the last good keys are kept while every refresh fails, counted from the first
/// failure: past it they are dropped and tokens are answered 503 "keys unavailable".
pub const DEFAULT_MAX_STALE_AGE: Duration = Duration::from_secs(4 * 3600);
/// Longest JWKS lifetime bound accepted by [`VerifierBuilder::jwks_ttl`].
pub const MAX_JWKS_TTL_BOUND: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default number of verified tokens cached.
pub const DEFAULT_TOKEN_CACHE_ENTRIES: u64 = 10_000;

/// A custom claim check, run after every built-in check passed.
pub(crate) type ClaimValidator = Arc<dyn Fn(&Claims) -> Result<(), AuthError> + Send + Sync>;

enum KeySourceSetting {
    Discovery,
    JwksUri(String),
    JwksJson(String),
    Pem(Vec<(Algorithm, Vec<u8>)>),
    Secret(Vec<u8>),
}

impl KeySourceSetting {
    fn name(&self) -> &'static str {
        match self {
            Self::Discovery => "discovery",
            Self::JwksUri(_) => "a JWKS URI",
            Self::JwksJson(_) => "a static JWKS",
            Self::Pem(_) => "PEM keys",
            Self::Secret(_) => "an HMAC secret",
        }
    }
}

/// Builds a [`Verifier`]. Setters never fail; [`build`](Self::build) checks everything.
///
/// ```
/// # #[cfg(any(feature = "aws-lc-rs", feature = "rust-crypto"))] {
/// use bearer_guard::{Algorithm, Verifier};
/// use std::time::Duration;
///
/// let verifier = Verifier::builder()
///     .issuer("https://tenant.auth0.com/")
///     .audience("urn:worldmappers")
///     .algorithms([Algorithm::RS256])
///     .leeway(Duration::from_secs(10))
///     .build()
///     .expect("valid configuration");
/// # drop(verifier);
///
/// // A misconfiguration is an error that names the bad value:
/// let err = Verifier::builder()
///     .issuer("http://idp.example.com/")
///     .audience("urn:worldmappers")
///     .build()
///     .unwrap_err();
/// assert!(err.to_string().contains("http://idp.example.com/"));
/// # }
/// ```
#[must_use]
pub struct VerifierBuilder {
    issuer: Option<String>,
    issuer_from_discovery: bool,
    audiences: Vec<String>,
    sources: Vec<KeySourceSetting>,
    algorithms: Option<Vec<Algorithm>>,
    leeway: Duration,
    max_age: Option<Duration>,
    required_claims: Vec<String>,
    strict_rfc9068: bool,
    scope_claims: Vec<String>,
    role_claims: Vec<String>,
    audience_from_client_id: bool,
    allow_http: bool,
    client: Option<reqwest::Client>,
    max_token_bytes: usize,
    max_jwks_bytes: usize,
    max_keys: usize,
    fetch_timeout: Duration,
    default_ttl: Duration,
    min_ttl: Duration,
    max_ttl: Duration,
    unknown_kid_burst: u32,
    unknown_kid_cooldown: Duration,
    initial_backoff: Duration,
    max_backoff: Duration,
    max_stale_age: Duration,
    token_cache_entries: u64,
    validators: Vec<ClaimValidator>,
    keyset_snapshots: Option<crate::key_store::SnapshotHook>,
}

impl fmt::Debug for VerifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierBuilder")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field(
                "sources",
                &self
                    .sources
                    .iter()
                    .map(KeySourceSetting::name)
                    .collect::<Vec<_>>(),
            )
            .field("algorithms", &self.algorithms)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

impl Default for VerifierBuilder {
    fn default() -> Self {
        Self {
            issuer: None,
            issuer_from_discovery: false,
            audiences: Vec::new(),
            sources: Vec::new(),
            algorithms: None,
            leeway: DEFAULT_LEEWAY,
            max_age: None,
            required_claims: Vec::new(),
            strict_rfc9068: false,
            scope_claims: vec!["scope".into(), "scp".into()],
            role_claims: Vec::new(),
            audience_from_client_id: false,
            allow_http: false,
            client: None,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            max_jwks_bytes: DEFAULT_MAX_JWKS_BYTES,
            max_keys: DEFAULT_MAX_KEYS,
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            default_ttl: DEFAULT_JWKS_TTL,
            min_ttl: DEFAULT_MIN_JWKS_TTL,
            max_ttl: DEFAULT_MAX_JWKS_TTL,
            unknown_kid_burst: DEFAULT_UNKNOWN_KID_BURST,
            unknown_kid_cooldown: DEFAULT_UNKNOWN_KID_COOLDOWN,
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            max_stale_age: DEFAULT_MAX_STALE_AGE,
            token_cache_entries: DEFAULT_TOKEN_CACHE_ENTRIES,
            validators: Vec::new(),
            keyset_snapshots: None,
        }
    }
}

impl VerifierBuilder {
    /// The issuer (`iss`), compared exactly: `https://tenant.auth0.com/` (with its trailing
    /// slash) is not `https://tenant.auth0.com`. Required (or
    /// [`issuer_from_discovery`](Self::issuer_from_discovery)). When discovery finds the
    /// same issuer but for a trailing slash, [`Verifier::refresh_keys`] fails saying which
    /// string to configure (and it is logged at ERROR).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Take the issuer from discovery, as express-oauth2-jwt-bearer's `issuerBaseURL` does:
    /// `discovery_base` (for example `https://example.auth0.com`) is where the metadata is
    /// looked up (OIDC discovery, then RFC 8414), and the metadata's `issuer` becomes the
    /// issuer, compared exactly against every token's `iss`. An explicit alternative to
    /// [`issuer`](Self::issuer), for the trailing-slash trap: Auth0 publishes
    /// `https://example.auth0.com/`, with its slash.
    ///
    /// Why this can be trusted: the metadata is fetched over https (or plain http to a
    /// loopback host; [`dangerous_allow_insecure_http`](Self::dangerous_allow_insecure_http)
    /// does not apply here), and its `issuer` must be an https (or loopback) URL of the
    /// same origin (scheme, host and port) as `discovery_base`, without userinfo. So only
    /// whoever serves that origin, the party whose keys are trusted anyway, chooses the
    /// issuer string. The first issuer found is kept for the life of the verifier; metadata
    /// naming another one later is refused (keys unavailable, logged at ERROR). Until the
    /// first discovery, [`Verifier::issuer`] returns `discovery_base`; call
    /// [`Verifier::refresh_keys`] at start-up. Discovery must be the key source, and such a
    /// verifier cannot join a [multi-issuer](Verifier::multi) verifier.
    ///
    /// ```
    /// # #[cfg(any(feature = "aws-lc-rs", feature = "rust-crypto"))] {
    /// use bearer_guard::Verifier;
    /// let verifier = Verifier::builder()
    ///     .issuer_from_discovery("https://example.auth0.com")
    ///     .audience("urn:worldmappers")
    ///     .build();
    /// assert!(verifier.is_ok());
    /// # }
    /// ```
    pub fn issuer_from_discovery(mut self, discovery_base: impl Into<String>) -> Self {
        self.issuer = Some(discovery_base.into());
        self.issuer_from_discovery = true;
        self
    }

    /// An accepted audience; call again to accept several. The token's `aud` (string or
    /// array) must contain one of them. At least one is required.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Several accepted audiences at once.
    pub fn audiences<I, S>(mut self, audiences: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.audiences.extend(audiences.into_iter().map(Into::into));
        self
    }

    /// Find the keys by discovery from the issuer (the default when no other key source is
    /// set): OIDC `/.well-known/openid-configuration`, then RFC 8414
    /// `/.well-known/oauth-authorization-server`. The metadata's `issuer` must equal the
    /// configured issuer, and its `jwks_uri` is used.
    pub fn discovery(mut self) -> Self {
        self.sources.push(KeySourceSetting::Discovery);
        self
    }

    /// Fetch the keys from this JWKS URL (no discovery).
    pub fn jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.sources.push(KeySourceSetting::JwksUri(uri.into()));
        self
    }

    /// Use this JWK Set document as fixed keys (nothing is fetched).
    pub fn jwks_json(mut self, json: impl Into<String>) -> Self {
        self.sources.push(KeySourceSetting::JwksJson(json.into()));
        self
    }

    /// Use a PEM public key (SPKI `PUBLIC KEY`, or `RSA PUBLIC KEY`) bound to `algorithm`.
    /// Call again for more keys. Tokens are matched to a PEM key by algorithm (PEM keys have
    /// no `kid`), so at most one key per algorithm is useful.
    pub fn pem_key(mut self, algorithm: Algorithm, pem: impl AsRef<[u8]>) -> Self {
        let entry = (algorithm, pem.as_ref().to_vec());
        match self.sources.iter_mut().find_map(|s| match s {
            KeySourceSetting::Pem(v) => Some(v),
            _ => None,
        }) {
            Some(v) => v.push(entry),
            None => self.sources.push(KeySourceSetting::Pem(vec![entry])),
        }
        self
    }

    /// Verify HS256/384/512 tokens with a shared secret. An explicit opt-in: it cannot be
    /// combined with any other key source, and the allow-list must then hold only HMAC
    /// algorithms (default: HS256). The secret must be at least as long as the hash output.
    pub fn hmac_secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.sources
            .push(KeySourceSetting::Secret(secret.as_ref().to_vec()));
        self
    }

    /// The algorithm allow-list. Default: RS256/384/512, PS256/384/512, ES256, ES384, EdDSA
    /// (HS256 alone with [`hmac_secret`](Self::hmac_secret)).
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algorithms.into_iter().collect());
        self
    }

    /// Clock-skew tolerance for `exp`, `nbf` and `iat`. Default 30 s; at most 5 minutes.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Refuse tokens whose `iat` is older than this (and tokens without `iat`).
    pub fn max_token_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// Require this claim to be present (and not `null`).
    pub fn require_claim(mut self, name: impl Into<String>) -> Self {
        self.required_claims.push(name.into());
        self
    }

    /// Strict RFC 9068 (JWT profile for access tokens): `typ` must be `at+jwt` and `iat`,
    /// `sub`, `client_id` and `jti` must be present. Off by default: `typ` may then be absent,
    /// `JWT`, `at+jwt` or `application/at+jwt`.
    pub fn strict_rfc9068(mut self, strict: bool) -> Self {
        self.strict_rfc9068 = strict;
        self
    }

    /// The claims scopes are read from (replacing the default `scope` and `scp`). Each may
    /// be a space-separated string or an array of scope tokens. Role paths added by
    /// [`roles_as_scopes`](Self::roles_as_scopes) are kept.
    pub fn scope_claims<I, S>(mut self, claims: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scope_claims = claims.into_iter().map(Into::into).collect();
        self
    }

    /// Also read scopes from Auth0's `permissions` array (issued when RBAC is on).
    pub fn permissions_as_scopes(mut self) -> Self {
        if !self.scope_claims.iter().any(|c| c == "permissions") {
            self.scope_claims.push("permissions".into());
        }
        self
    }

    /// Also grant the roles found at these claim paths as scopes, so that scope guards can
    /// require them. A path is a claim name, or names of nested objects joined by dots:
    ///
    /// | provider | call |
    /// |---|---|
    /// | Microsoft Entra ID (app roles of client-credentials tokens) | `.roles_as_scopes(["roles"])` |
    /// | Keycloak (realm and client roles) | `.roles_as_scopes(["realm_access.roles", "resource_access.<client>.roles"])` |
    /// | Auth0 (roles added by an Action under a namespaced claim) | `.roles_as_scopes(["https://example.com/roles"])` |
    ///
    /// A name may itself contain dots (a Keycloak client `my.app`, a namespaced claim): the
    /// whole name is tried first, then every split. A role claim is an array of names (or a
    /// space-separated string); a role that is not a valid scope token (RFC 6749 §3.3, so no
    /// spaces or quotes) is skipped, and a role claim of another shape is ignored: unlike
    /// a malformed `scope`, neither refuses the token. Roles and scopes share one namespace,
    /// so give roles names that cannot be mistaken for scopes if both are used.
    ///
    /// ```
    /// # #[cfg(any(feature = "aws-lc-rs", feature = "rust-crypto"))] {
    /// use bearer_guard::Verifier;
    /// let keycloak = Verifier::builder()
    ///     .issuer("https://sso.example.com/realms/worldmappers")
    ///     .audience("worldmappers")
    ///     .roles_as_scopes(["realm_access.roles", "resource_access.worldmappers.roles"])
    ///     .build();
    /// assert!(keycloak.is_ok());
    /// # }
    /// ```
    pub fn roles_as_scopes<I, S>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for path in paths {
            let path = path.into();
            if !self.role_claims.contains(&path) {
                self.role_claims.push(path);
            }
        }
        self
    }

    /// Accept AWS Cognito access tokens, which carry no `aud`: a token without `aud` is
    /// accepted when its `client_id` claim equals one of the configured
    /// [audiences](Self::audience) (so configure the app client id as the audience). With
    /// this option, a token whose `token_use` claim is present and not `"access"` is
    /// refused, whatever its `aud`: Cognito ID tokens carry `aud` = the app client id and
    /// `token_use: "id"`, and must not pass for access tokens. Tokens with an `aud` are
    /// otherwise checked as usual.
    ///
    /// ```
    /// # #[cfg(any(feature = "aws-lc-rs", feature = "rust-crypto"))] {
    /// use bearer_guard::Verifier;
    /// let cognito = Verifier::builder()
    ///     .issuer("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123")
    ///     .audience("1example23456789") // the app client id
    ///     .audience_from_client_id()
    ///     .build();
    /// assert!(cognito.is_ok());
    /// # }
    /// ```
    pub fn audience_from_client_id(mut self) -> Self {
        self.audience_from_client_id = true;
        self
    }

    /// Allow plain `http` issuer and JWKS URLs on any host (loopback hosts are always
    /// allowed). Tokens and keys can then be tampered with on the network.
    pub fn dangerous_allow_insecure_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// The HTTP client for discovery and JWKS fetches. The default one has a 5 s total
    /// timeout and follows redirects only to the same origin (scheme, host and port).
    /// Whatever the client, each fetch is bounded by [`fetch_timeout`](Self::fetch_timeout).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Longest token accepted, checked before any parsing. Default 16 KiB.
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self
    }

    /// Largest JWKS or metadata body read. Default 512 KiB.
    pub fn max_jwks_bytes(mut self, bytes: usize) -> Self {
        self.max_jwks_bytes = bytes;
        self
    }

    /// Most keys taken from a JWKS. Default 100.
    pub fn max_keys(mut self, keys: usize) -> Self {
        self.max_keys = keys;
        self
    }

    /// Timeout of one discovery + JWKS fetch. Default 5 s.
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// JWKS lifetime bounds: `default` when the response has no `max-age`, which is
    /// clamped to `min..=max`. Defaults: 10 min, 5 min, 24 h. Each must lie between 1 ms and
    /// 7 days ([`MAX_JWKS_TTL_BOUND`]), with `min <= max`.
    pub fn jwks_ttl(mut self, default: Duration, min: Duration, max: Duration) -> Self {
        self.default_ttl = default;
        self.min_ttl = min;
        self.max_ttl = max;
        self
    }

    /// Unknown-`kid` refresh limit: `burst` at once, then one per `cooldown`.
    /// Defaults: 2 and 30 s.
    pub fn unknown_kid_refresh(mut self, burst: u32, cooldown: Duration) -> Self {
        self.unknown_kid_burst = burst;
        self.unknown_kid_cooldown = cooldown;
        self
    }

    /// Retry delays after failed fetches: `initial`, doubling up to `max`.
    /// Defaults: 1 s and 60 s.
    pub fn fetch_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max;
        self
    }

    /// How long the last good keys are kept while refreshing them fails (HTTP errors such as
    /// a 404 for good, network errors, a broken document), counted from the first failed
    /// fetch. Past it the keys are dropped, tokens are answered
    /// [`KeysUnavailable`](crate::AuthErrorKind::KeysUnavailable) (503 with `Retry-After`)
    /// and [`Verifier::key_health`] is `Missing`, until a fetch succeeds. This bounds how
    /// long a key the issuer withdrew can keep verifying tokens while its JWKS is
    /// unreachable. Default 4 h ([`DEFAULT_MAX_STALE_AGE`]); 10 ms to 30 days.
    ///
    /// A well-formed JWK Set without any usable key is not a failure: it replaces the keys
    /// at once (logged at ERROR).
    pub fn max_stale_age(mut self, age: Duration) -> Self {
        self.max_stale_age = age;
        self
    }

    /// Shares each issuer's last good key set with a fleet of replicas (see the crate docs,
    /// "Running a fleet"): the document is saved to `store` after each successful fetch,
    /// and a snapshot no older than `max_age` is used when a fetch fails (at start or
    /// later) or, for an unknown `kid`, when a newer snapshot holds it (fewer fetches
    /// across the fleet). The store authenticates snapshots (the Redis store: HMAC-SHA-256
    /// under a secret the replicas share); keys loaded from a snapshot are dropped once
    /// it is older than `max_age`. Off by default; `max_age` 1 s to 30 days.
    pub fn keyset_snapshots(
        mut self,
        store: impl crate::store::KeySetSnapshots,
        max_age: Duration,
    ) -> Self {
        self.keyset_snapshots = Some(crate::key_store::SnapshotHook {
            store: Arc::new(store),
            max_age,
        });
        self
    }

    /// How many verified tokens to remember (0 turns the cache off). Default 10,000.
    /// See the crate docs, "Verified-token cache".
    pub fn token_cache(mut self, entries: u64) -> Self {
        self.token_cache_entries = entries;
        self
    }

    /// A custom check over the verified claims, run after the built-in ones. Return
    /// [`AuthError::rejected`] (401 `invalid_token`) or [`AuthError::insufficient_scope`] (403).
    pub fn validate<F>(mut self, check: F) -> Self
    where
        F: Fn(&Claims) -> Result<(), AuthError> + Send + Sync + 'static,
    {
        self.validators.push(Arc::new(check));
        self
    }

    /// Checks the configuration and builds the verifier. No network access happens here;
    /// keys are fetched on first use (or by [`Verifier::refresh_keys`]).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the bad value: no issuer or audience, an invalid or
    /// non-https URL, conflicting key sources, an algorithm the key source cannot serve, a
    /// weak HMAC secret, unusable static keys, an out-of-range setting, or no crypto backend.
    pub fn build(self) -> Result<Verifier, ConfigError> {
        if !crypto::HAS_BACKEND {
            return Err(ConfigError::NoCryptoBackend);
        }
        let issuer = self.issuer.clone().ok_or(ConfigError::MissingIssuer)?;
        if issuer.is_empty() {
            return Err(ConfigError::MissingIssuer);
        }
        if issuer.trim() != issuer {
            return Err(ConfigError::InvalidValue {
                what: "issuer",
                value: issuer,
                reason: "it has leading or trailing whitespace (tokens' `iss` is compared \
                         exactly)",
            });
        }
        if self.audiences.is_empty() {
            return Err(ConfigError::MissingAudience);
        }
        if self.audiences.iter().any(String::is_empty) {
            return Err(ConfigError::EmptyAudience);
        }
        if self.sources.len() > 1 {
            return Err(ConfigError::ConflictingKeySources {
                first: self.sources[0].name(),
                second: self.sources[1].name(),
            });
        }
        check_range(
            "leeway",
            self.leeway,
            Duration::ZERO,
            Duration::from_secs(300),
            "0 s to 5 min",
        )?;
        check_range(
            "fetch_timeout",
            self.fetch_timeout,
            Duration::from_millis(10),
            Duration::from_secs(120),
            "10 ms to 2 min",
        )?;
        check_count(
            "max_token_bytes",
            self.max_token_bytes,
            256,
            1024 * 1024,
            "256 to 1048576",
        )?;
        check_count(
            "max_jwks_bytes",
            self.max_jwks_bytes,
            1024,
            64 * 1024 * 1024,
            "1024 to 67108864",
        )?;
        check_count("max_keys", self.max_keys, 1, 10_000, "1 to 10000")?;
        for (what, value) in [
            ("jwks_ttl default", self.default_ttl),
            ("jwks_ttl min", self.min_ttl),
            ("jwks_ttl max", self.max_ttl),
        ] {
            check_range(
                what,
                value,
                Duration::from_millis(1),
                MAX_JWKS_TTL_BOUND,
                "1 ms to 7 days",
            )?;
        }
        if self.min_ttl > self.max_ttl {
            return Err(ConfigError::OutOfRange {
                what: "jwks_ttl",
                value: format!("min {:?}, max {:?}", self.min_ttl, self.max_ttl),
                range: "0 < min <= max",
            });
        }
        if let Some(hook) = &self.keyset_snapshots {
            check_range(
                "keyset_snapshots max_age",
                hook.max_age,
                Duration::from_secs(1),
                Duration::from_secs(30 * 24 * 3600),
                "1 s to 30 days",
            )?;
        }
        check_range(
            "max_stale_age",
            self.max_stale_age,
            Duration::from_millis(10),
            Duration::from_secs(30 * 24 * 3600),
            "10 ms to 30 days",
        )?;
        if self.unknown_kid_cooldown.is_zero() {
            return Err(ConfigError::OutOfRange {
                what: "unknown_kid_cooldown",
                value: "0 s".into(),
                range: "more than 0 s",
            });
        }
        if self.initial_backoff.is_zero() || self.initial_backoff > self.max_backoff {
            return Err(ConfigError::OutOfRange {
                what: "fetch_backoff",
                value: format!(
                    "initial {:?}, max {:?}",
                    self.initial_backoff, self.max_backoff
                ),
                range: "0 < initial <= max",
            });
        }
        for c in &self.scope_claims {
            if c.is_empty() {
                return Err(ConfigError::InvalidValue {
                    what: "scope claim",
                    value: c.clone(),
                    reason: "a claim name cannot be empty",
                });
            }
        }
        for c in &self.role_claims {
            if c.is_empty() {
                return Err(ConfigError::InvalidValue {
                    what: "role claim",
                    value: c.clone(),
                    reason: "a claim path cannot be empty",
                });
            }
        }
        for c in &self.required_claims {
            if c.is_empty() {
                return Err(ConfigError::InvalidValue {
                    what: "required claim",
                    value: c.clone(),
                    reason: "a claim name cannot be empty",
                });
            }
        }

        let source = self.sources.first().unwrap_or(&KeySourceSetting::Discovery);
        let hmac = matches!(source, KeySourceSetting::Secret(_));
        let algorithms = match (&self.algorithms, hmac) {
            (Some(a), _) => a.clone(),
            (None, true) => vec![Algorithm::HS256],
            (None, false) => Algorithm::DEFAULT_ALLOWED.to_vec(),
        };
        if algorithms.is_empty() {
            return Err(ConfigError::NoAlgorithms);
        }
        for &alg in &algorithms {
            if hmac && !alg.is_symmetric() {
                return Err(ConfigError::AlgorithmNotUsable {
                    algorithm: alg,
                    reason: "an HMAC secret verifies only HS256/384/512",
                });
            }
            if !hmac && alg.is_symmetric() {
                return Err(ConfigError::AlgorithmNotUsable {
                    algorithm: alg,
                    reason: "HMAC algorithms need `hmac_secret` and cannot be mixed with public keys",
                });
            }
            if alg == Algorithm::ES512 && !cfg!(feature = "aws-lc-rs") {
                return Err(ConfigError::AlgorithmNotUsable {
                    algorithm: alg,
                    reason: "ES512 needs the `aws-lc-rs` backend",
                });
            }
        }

        if self.issuer_from_discovery && !matches!(source, KeySourceSetting::Discovery) {
            return Err(ConfigError::ConflictingKeySources {
                first: "issuer_from_discovery",
                second: source.name(),
            });
        }
        let discovered_issuer = self
            .issuer_from_discovery
            .then(|| Arc::new(std::sync::OnceLock::new()));
        let keys = match source {
            KeySourceSetting::Discovery | KeySourceSetting::JwksUri(_) => {
                let remote = match source {
                    KeySourceSetting::JwksUri(uri) => {
                        RemoteSource::Jwks(parse_url("jwks_uri", uri, self.allow_http)?)
                    }
                    _ => {
                        // An issuer taken from discovery needs an authenticated origin.
                        let allow_http = self.allow_http && !self.issuer_from_discovery;
                        parse_url("issuer", &issuer, allow_http)?;
                        RemoteSource::Discovery
                    }
                };
                let client = match self.client.clone() {
                    Some(c) => c,
                    None => fetch::default_client(self.fetch_timeout)
                        .map_err(ConfigError::HttpClient)?,
                };
                let mut fetcher = Fetcher::new(
                    client,
                    remote,
                    issuer.clone(),
                    self.allow_http,
                    self.fetch_timeout,
                    self.max_jwks_bytes,
                );
                if let Some(found) = &discovered_issuer {
                    fetcher = fetcher.with_discovered_issuer(found.clone());
                }
                KeyStore::remote(
                    fetcher,
                    RefreshPolicy {
                        min_ttl: self.min_ttl,
                        max_ttl: self.max_ttl,
                        default_ttl: self.default_ttl,
                        unknown_kid_burst: self.unknown_kid_burst,
                        unknown_kid_cooldown: self.unknown_kid_cooldown,
                        initial_backoff: self.initial_backoff,
                        max_backoff: self.max_backoff,
                        max_keys: self.max_keys,
                        max_stale_age: self.max_stale_age,
                        algorithms: algorithms.clone(),
                        snapshots: self.keyset_snapshots.clone(),
                    },
                )
            }
            KeySourceSetting::JwksJson(json) => {
                let parsed = jwks::parse_jwk_set(json.as_bytes(), &algorithms, self.max_keys)
                    .map_err(|reason| ConfigError::InvalidKey {
                        key: "set".into(),
                        reason: reason.into(),
                    })?;
                for reason in &parsed.skipped {
                    tracing::warn!(%reason, "static JWKS key skipped");
                }
                if parsed.keys.is_empty() {
                    return Err(ConfigError::NoUsableKeys {
                        reasons: parsed.skipped.join("; "),
                    });
                }
                KeyStore::fixed(parsed.keys)
            }
            KeySourceSetting::Pem(pems) => {
                let mut keys = Vec::new();
                for (i, (alg, pem)) in pems.iter().enumerate() {
                    if !algorithms.contains(alg) {
                        return Err(ConfigError::InvalidKey {
                            key: format!("PEM #{i}"),
                            reason: format!("its algorithm {alg} is not in the allow-list"),
                        });
                    }
                    let material = crypto::material_from_pem(*alg, pem).map_err(|reason| {
                        ConfigError::InvalidKey {
                            key: format!("PEM #{i}"),
                            reason,
                        }
                    })?;
                    let key = Key::new(None, *alg, material).map_err(|reason| {
                        ConfigError::InvalidKey {
                            key: format!("PEM #{i}"),
                            reason: reason.into(),
                        }
                    })?;
                    keys.push(Arc::new(key));
                }
                KeyStore::fixed(keys)
            }
            KeySourceSetting::Secret(secret) => {
                let mut keys = Vec::new();
                for &alg in &algorithms {
                    let min_len = crypto::min_secret_len(alg);
                    if secret.len() < min_len {
                        return Err(ConfigError::WeakSecret {
                            algorithm: alg,
                            min_len,
                            len: secret.len(),
                        });
                    }
                    debug_assert_eq!(alg.family(), Family::Hmac);
                    let key = Key::new(None, alg, KeyMaterial::Secret(secret.clone())).map_err(
                        |reason| ConfigError::InvalidKey {
                            key: "secret".into(),
                            reason: reason.into(),
                        },
                    )?;
                    keys.push(Arc::new(key));
                }
                KeyStore::fixed(keys)
            }
        };

        Ok(Verifier::from_settings(Settings {
            issuer,
            discovered_issuer,
            audiences: self.audiences,
            algorithms,
            leeway: self.leeway.as_secs(),
            max_age: self.max_age,
            required_claims: self.required_claims,
            strict_rfc9068: self.strict_rfc9068,
            scope_claims: self
                .scope_claims
                .into_iter()
                .map(ScopeSource::Claim)
                .chain(self.role_claims.into_iter().map(ScopeSource::Roles))
                .collect(),
            audience_from_client_id: self.audience_from_client_id,
            max_token_bytes: self.max_token_bytes,
            token_cache_entries: self.token_cache_entries,
            validators: self.validators,
            keys,
        }))
    }
}

/// `Err(OutOfRange)` naming `what` when `value` is outside `min..=max` (`range` says the
/// bounds in words). Every builder's duration settings are checked with it.
pub(crate) fn check_range(
    what: &'static str,
    value: Duration,
    min: Duration,
    max: Duration,
    range: &'static str,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::OutOfRange {
            what,
            value: format!("{value:?}"),
            range,
        });
    }
    Ok(())
}

/// `Err(OutOfRange)` naming `what` when the count `value` is outside `min..=max`.
pub(crate) fn check_count(
    what: &'static str,
    value: usize,
    min: usize,
    max: usize,
    range: &'static str,
) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        return Ok(());
    }
    Err(ConfigError::OutOfRange {
        what,
        value: value.to_string(),
        range,
    })
}

/// Parses an issuer, JWKS or token-endpoint URL: a host, no fragment, and `https` (or `http`
/// to a loopback host, or anywhere when allowed).
pub(crate) fn parse_url(
    what: &'static str,
    value: &str,
    allow_http: bool,
) -> Result<Url, ConfigError> {
    let url = Url::parse(value).map_err(|e| ConfigError::InvalidUrl {
        what,
        value: value.to_owned(),
        reason: e.to_string(),
    })?;
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(ConfigError::InvalidUrl {
            what,
            value: value.to_owned(),
            reason: "no host".into(),
        });
    }
    if url.fragment().is_some() {
        return Err(ConfigError::InvalidUrl {
            what,
            value: value.to_owned(),
            reason: "it has a fragment".into(),
        });
    }
    match fetch::check_scheme(&url, allow_http) {
        Ok(()) => Ok(url),
        Err(_) if url.scheme() == "http" => Err(ConfigError::InsecureUrl {
            what,
            value: value.to_owned(),
        }),
        Err(reason) => Err(ConfigError::InvalidUrl {
            what,
            value: value.to_owned(),
            reason: reason.into(),
        }),
    }
}
