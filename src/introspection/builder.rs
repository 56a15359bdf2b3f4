//! [`IntrospectorBuilder`]: every setting, every check in
//! [`build`](IntrospectorBuilder::build).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::cache::{IntrospectionCache, KeyBinding, MemoryCache};
use super::client::{Client, Target};
use super::jwt::{self, JwtResponses};
use super::validate::Rules;
use super::{Inner, Introspector};
use crate::algorithm::Algorithm;
use crate::client::{ClientAuthMethod, Secret, credential};
use crate::config::{DEFAULT_LEEWAY, check_count, check_range, parse_url};
use crate::error::ConfigError;
use crate::verify::Verifier;

/// Default timeout of one introspection call (discovery included).
pub const DEFAULT_INTROSPECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// Default cap on an introspection (or metadata) response body.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Default longest time an active answer is cached (also bounded by the token's `exp`): a
/// revoked token stays accepted for at most this long.
pub const DEFAULT_MAX_CACHE_TTL: Duration = Duration::from_secs(120);
/// Default time a refused answer (inactive, or failing the checks) is remembered.
pub const DEFAULT_INACTIVE_CACHE_TTL: Duration = Duration::from_secs(10);
/// Default size of the in-memory cache, in entries.
pub const DEFAULT_CACHE_ENTRIES: usize = 10_000;
/// Default bound on one cache call (a slower store counts as a miss).
pub const DEFAULT_CACHE_TIMEOUT: Duration = Duration::from_millis(250);

/// Builds an [`Introspector`]. Setters never fail; [`build`](Self::build) checks everything.
/// No network access happens before the first introspection.
///
/// ```
/// use bearer_guard::introspection::Introspector;
/// use std::time::Duration;
///
/// let introspector = Introspector::builder()
///     .issuer("https://idp.example.com/")
///     .client_id("world-mappers")
///     .client_secret("from-the-environment")
///     .audience("urn:worldmappers")
///     .max_cache_ttl(Duration::from_secs(30))
///     .build()
///     .expect("valid configuration");
/// assert!(!format!("{introspector:?}").contains("from-the-environment"));
/// ```
#[must_use]
pub struct IntrospectorBuilder {
    issuer: Option<String>,
    endpoint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    private_key: Option<(Algorithm, Secret)>,
    private_key_id: Option<String>,
    assertion_audience: Option<String>,
    auth_method: Option<ClientAuthMethod>,
    audiences: Vec<String>,
    allow_missing_audience: bool,
    leeway: Duration,
    http: Option<reqwest::Client>,
    allow_http: bool,
    timeout: Duration,
    max_response_bytes: usize,
    cache: Option<Arc<dyn IntrospectionCache>>,
    cache_entries: usize,
    max_cache_ttl: Duration,
    inactive_cache_ttl: Duration,
    cache_timeout: Duration,
    jwt_responses: Option<Verifier>,
}

impl fmt::Debug for IntrospectorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectorBuilder")
            .field("issuer", &self.issuer)
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("auth_method", &self.auth_method)
            .field("audiences", &self.audiences)
            .field("timeout", &self.timeout)
            .field("max_cache_ttl", &self.max_cache_ttl)
            .field("jwt_responses", &self.jwt_responses.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for IntrospectorBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl IntrospectorBuilder {
    /// A builder with the defaults.
    pub fn new() -> Self {
        Self {
            issuer: None,
            endpoint: None,
            client_id: None,
            client_secret: None,
            private_key: None,
            private_key_id: None,
            assertion_audience: None,
            auth_method: None,
            audiences: Vec::new(),
            allow_missing_audience: false,
            leeway: DEFAULT_LEEWAY,
            http: None,
            allow_http: false,
            timeout: DEFAULT_INTROSPECTION_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            cache: None,
            cache_entries: DEFAULT_CACHE_ENTRIES,
            max_cache_ttl: DEFAULT_MAX_CACHE_TTL,
            inactive_cache_ttl: DEFAULT_INACTIVE_CACHE_TTL,
            cache_timeout: DEFAULT_CACHE_TIMEOUT,
            jwt_responses: None,
        }
    }

    /// The issuer (required): `iss` of the responses must be it when present, and without
    /// a configured endpoint its metadata gives `introspection_endpoint`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The introspection endpoint, instead of discovery.
    pub fn introspection_endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// This resource server's client id at the authorization server (required).
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }

    /// The client secret (`client_secret_basic` or `client_secret_post`). Never shown by
    /// `Debug` or in errors.
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = Some(Secret::new(secret.into()));
        self
    }

    /// The client authentication method. Unset: from the metadata, else
    /// `client_secret_basic`.
    pub fn auth_method(mut self, method: ClientAuthMethod) -> Self {
        self.auth_method = Some(method);
        self
    }

    /// Authenticates with `private_key_jwt` (RFC 7523): a PEM private key for `algorithm`
    /// (asymmetric), a new signed assertion per call.
    pub fn private_key_jwt(mut self, algorithm: Algorithm, pem: impl Into<String>) -> Self {
        self.private_key = Some((algorithm, Secret::new(pem.into())));
        self.auth_method = Some(ClientAuthMethod::PrivateKeyJwt);
        self
    }

    /// The `kid` header of the assertions.
    pub fn private_key_id(mut self, kid: impl Into<String>) -> Self {
        self.private_key_id = Some(kid.into());
        self
    }

    /// The assertions' `aud`. Unset: the issuer.
    pub fn assertion_audience(mut self, audience: impl Into<String>) -> Self {
        self.assertion_audience = Some(audience.into());
        self
    }

    /// An accepted audience (call it once per audience; at least one is required): `aud` of
    /// the responses must contain one.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Accepts an active response without `aud` (some servers issue opaque tokens with no
    /// audience). A present `aud` must still match. Any token of the authorization server
    /// is then accepted, whoever it was issued for.
    pub fn dangerous_allow_missing_audience(mut self) -> Self {
        self.allow_missing_audience = true;
        self
    }

    /// Clock-skew allowance for `exp`, `nbf` and `iat` (default 30 s, as the verifier's;
    /// 0 to 5 min).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The HTTP client (the default has the timeout, same-origin redirects only, and a user
    /// agent). The timeout applies to each call whatever client is given.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Allows plain http to any host (by default only to loopback hosts).
    pub fn dangerous_allow_insecure_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// Timeout of one call, discovery included (default 5 s; 10 ms to 2 min).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Cap on a response body (default 64 KiB; 1 KiB to 1 MiB).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Another cache store (shared by a fleet, for example) instead of the in-memory one.
    pub fn cache(mut self, cache: impl IntrospectionCache) -> Self {
        self.cache = Some(Arc::new(cache));
        self
    }

    /// Size of the in-memory cache in entries (default 10,000; 1 to 10,000,000).
    pub fn cache_entries(mut self, entries: usize) -> Self {
        self.cache_entries = entries;
        self
    }

    /// Longest time an active answer is cached, also bounded by the token's `exp` (default
    /// 2 min; 0 to 1 h; 0 caches no active answer). A revoked token stays accepted for up
    /// to this long.
    pub fn max_cache_ttl(mut self, ttl: Duration) -> Self {
        self.max_cache_ttl = ttl;
        self
    }

    /// Time a refused answer is remembered (default 10 s; 0 to 5 min).
    pub fn inactive_cache_ttl(mut self, ttl: Duration) -> Self {
        self.inactive_cache_ttl = ttl;
        self
    }

    /// Bound on one call to the cache store (default 250 ms; 1 ms to 10 s). A store with a
    /// bound of its own ([`IntrospectionCache::call_timeout`], the Redis store's `timeout`)
    /// is waited for at least that bound and 50 ms more, so that its own timeout answers
    /// first and is counted.
    pub fn cache_timeout(mut self, timeout: Duration) -> Self {
        self.cache_timeout = timeout;
        self
    }

    /// Asks for signed responses (RFC 9701, JWT Response for OAuth Token Introspection)
    /// and accepts nothing else: the request carries
    /// `Accept: application/token-introspection+jwt`, and the answer must be that media type,
    /// a JWS with header `typ` `token-introspection+jwt`, signed by a key of the issuer's
    /// key set as `verifier` holds it (its key store, its algorithm allow-list, each key's
    /// own algorithm: never the header's `alg` alone), with `iss` the issuer, `aud` this
    /// client id and an `iat` no older than the [`timeout`](Self::timeout) + the
    /// [`leeway`](Self::leeway) + 60 s (a response is not bound to its request: an older one
    /// could be a replay). The `token_introspection` member inside is then validated as
    /// a JSON response is. See [Signed responses](super#signed-responses-rfc-9701).
    ///
    /// `verifier` must trust this introspector's issuer (a multi-issuer verifier is used
    /// for that issuer's keys). A verifier built with
    /// [`issuer_from_discovery`](crate::VerifierBuilder::issuer_from_discovery) knows its
    /// issuer only once discovery ran: call [`Verifier::refresh_keys`] first and give this
    /// builder [`Verifier::issuer`]. The authorization server usually needs the client
    /// registered for it (`introspection_signed_response_alg`). Encrypted responses (JWE)
    /// are not supported.
    pub fn jwt_responses(mut self, verifier: &Verifier) -> Self {
        self.jwt_responses = Some(verifier.clone());
        self
    }

    /// Checks the configuration and builds the introspector.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the bad value (never the secret): no issuer, an invalid or
    /// non-https URL, no or an empty client id, no audience, no secret or key, an
    /// out-of-range setting, a [`jwt_responses`](Self::jwt_responses) verifier that does not
    /// trust the issuer, or an HTTP client that cannot be built.
    pub fn build(self) -> Result<Introspector, ConfigError> {
        let issuer = match &self.issuer {
            Some(i) if !i.is_empty() => {
                parse_url("issuer", i, self.allow_http)?;
                i.clone()
            }
            _ => return Err(ConfigError::MissingIssuer),
        };
        let target = match &self.endpoint {
            Some(url) => {
                Target::Endpoint(parse_url("introspection endpoint", url, self.allow_http)?)
            }
            None => Target::Discovery,
        };
        let client_id = self.client_id.clone().unwrap_or_default();
        if client_id.is_empty() || client_id.chars().any(char::is_control) {
            return Err(ConfigError::InvalidValue {
                what: "client_id",
                value: client_id,
                reason: "is missing, empty or has control characters",
            });
        }
        let credential = credential(
            self.client_secret.as_ref(),
            self.private_key.as_ref(),
            self.private_key_id.clone(),
            self.auth_method,
            || {
                self.assertion_audience
                    .clone()
                    .unwrap_or_else(|| issuer.clone())
            },
        )?;
        if matches!(credential, crate::client::Credential::Certificate) {
            return Err(ConfigError::InvalidValue {
                what: "auth_method",
                value: self
                    .auth_method
                    .map_or("", ClientAuthMethod::as_str)
                    .to_owned(),
                reason: "mutual-TLS client authentication is not available for introspection: \
                         use client_secret_basic, client_secret_post or private_key_jwt",
            });
        }
        if self.audiences.is_empty() {
            return Err(ConfigError::MissingAudience);
        }
        if self.audiences.iter().any(String::is_empty) {
            return Err(ConfigError::EmptyAudience);
        }
        check_range(
            "leeway",
            self.leeway,
            Duration::ZERO,
            Duration::from_secs(300),
            "0 s to 5 min",
        )?;
        check_range(
            "timeout",
            self.timeout,
            Duration::from_millis(10),
            Duration::from_secs(120),
            "10 ms to 2 min",
        )?;
        check_count(
            "max_response_bytes",
            self.max_response_bytes,
            1024,
            1024 * 1024,
            "1024 to 1048576",
        )?;
        check_count(
            "cache_entries",
            self.cache_entries,
            1,
            10_000_000,
            "1 to 10000000",
        )?;
        check_range(
            "max_cache_ttl",
            self.max_cache_ttl,
            Duration::ZERO,
            Duration::from_secs(3600),
            "0 s to 1 h",
        )?;
        check_range(
            "inactive_cache_ttl",
            self.inactive_cache_ttl,
            Duration::ZERO,
            Duration::from_secs(300),
            "0 s to 5 min",
        )?;
        check_range(
            "cache_timeout",
            self.cache_timeout,
            Duration::from_millis(1),
            Duration::from_secs(10),
            "1 ms to 10 s",
        )?;
        let http = match self.http {
            Some(c) => c,
            None => crate::fetch::default_client(self.timeout).map_err(ConfigError::HttpClient)?,
        };
        let jwt = match &self.jwt_responses {
            None => None,
            Some(verifier) => Some(JwtResponses {
                verifier: verifier.for_issuer(&issuer).ok_or_else(|| {
                    ConfigError::InvalidValue {
                        what: "jwt_responses",
                        value: verifier.issuers().join(", "),
                        reason: "the verifier does not trust the introspector's issuer, whose \
                                 keys sign the introspection responses",
                    }
                })?,
                issuer: issuer.clone(),
                client_id: client_id.clone(),
                leeway: self.leeway.as_secs_f64(),
                max_age: (self.timeout + self.leeway + jwt::CLOCK_SKEW_ALLOWANCE).as_secs_f64(),
            }),
        };
        let (cache, memory) = match self.cache {
            Some(c) => (c, None),
            None => {
                let m = Arc::new(MemoryCache::new(self.cache_entries));
                (m.clone() as Arc<dyn IntrospectionCache>, Some(m))
            }
        };
        let cache_timeout = crate::store::caller_wait(self.cache_timeout, cache.call_timeout());
        Ok(Introspector(Arc::new(Inner {
            client: Client::new(
                http,
                target,
                issuer.clone(),
                client_id,
                credential,
                self.auth_method,
                self.allow_http,
                self.timeout,
                self.max_response_bytes,
                if jwt.is_some() {
                    jwt::MEDIA_TYPE
                } else {
                    "application/json"
                },
            ),
            keys: KeyBinding::new(
                &issuer,
                &self.audiences,
                self.allow_missing_audience,
                jwt.is_some(),
            ),
            jwt,
            rules: Rules {
                issuer,
                audiences: self.audiences,
                allow_missing_audience: self.allow_missing_audience,
                leeway: self.leeway,
            },
            cache,
            memory,
            max_ttl: self.max_cache_ttl,
            inactive_ttl: self.inactive_cache_ttl,
            cache_timeout,
            retry_after: Duration::from_secs(5),
            in_flight: Mutex::new(HashMap::new()),
            logged: Mutex::new([None; super::Cause::COUNT]),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> IntrospectorBuilder {
        IntrospectorBuilder::new()
            .issuer("https://idp.example.com/")
            .client_id("api")
            .client_secret("s3cret")
            .audience("urn:api")
    }

    #[test]
    fn a_minimal_configuration_builds() {
        assert!(base().build().is_ok());
    }

    #[test]
    fn an_issuer_a_client_an_audience_and_a_secret_are_required() {
        assert!(matches!(
            IntrospectorBuilder::new().build(),
            Err(ConfigError::MissingIssuer)
        ));
        let no_aud = IntrospectorBuilder::new()
            .issuer("https://idp.example.com/")
            .client_id("api")
            .client_secret("s");
        assert!(matches!(no_aud.build(), Err(ConfigError::MissingAudience)));
        let no_secret = IntrospectorBuilder::new()
            .issuer("https://idp.example.com/")
            .client_id("api")
            .audience("a");
        let e = no_secret.build().expect_err("refused");
        assert!(e.to_string().contains("client_secret"), "{e}");
    }

    #[test]
    fn plain_http_endpoints_are_refused_except_to_loopback() {
        assert!(
            base()
                .introspection_endpoint("http://idp.example.com/introspect")
                .build()
                .is_err()
        );
        assert!(
            base()
                .introspection_endpoint("http://127.0.0.1:9/introspect")
                .build()
                .is_ok()
        );
    }

    #[test]
    fn ranges_are_checked() {
        assert!(
            base()
                .max_cache_ttl(Duration::from_secs(7200))
                .build()
                .is_err()
        );
        assert!(base().cache_entries(0).build().is_err());
        assert!(base().timeout(Duration::ZERO).build().is_err());
        assert!(base().max_response_bytes(10).build().is_err());
    }

    #[test]
    fn debug_hides_the_secret() {
        let b = base();
        assert!(!format!("{b:?}").contains("s3cret"));
        let i = b.build().expect("built");
        assert!(!format!("{i:?}").contains("s3cret"));
    }
}
