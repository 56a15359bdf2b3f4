//! [`ClientCredentialsBuilder`]: every setting, every check in
//! [`build`](ClientCredentialsBuilder::build).

use std::fmt;
use std::time::Duration;

use url::Url;

use super::dpop::{Dpop, DpopKey};
use super::endpoint::{Endpoint, Target};
use super::source::ClientCredentials;
use super::token::Secret;
use crate::algorithm::Algorithm;
use crate::claims::is_scope_token;
use crate::config::{check_count, check_range, parse_url};
use crate::error::ConfigError;

/// Default timeout of one token request (or one discovery request).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default cap on a token-endpoint or metadata response body.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Default number of attempts of one token request (the first one included) when the
/// server answers `5xx` or `429`, or cannot be reached.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 4;
/// Default first delay between attempts (then doubling, with jitter).
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(250);
/// Default longest delay between attempts.
pub const DEFAULT_MAX_RETRY_BACKOFF: Duration = Duration::from_secs(5);
/// Default total time one token request may take, retries and waits included.
pub const DEFAULT_RETRY_BUDGET: Duration = Duration::from_secs(30);
/// Default minimum time before expiry at which a token is renewed.
pub const DEFAULT_REFRESH_SKEW: Duration = Duration::from_secs(60);
/// Lifetime assumed for a token whose response has no `expires_in`.
pub const DEFAULT_EXPIRES_IN: Duration = Duration::from_secs(300);

/// How the client authenticates to the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientAuthMethod {
    /// `client_id` and `client_secret` in the form body, as Auth0 documents it (the default,
    /// unless discovery says the server supports only `client_secret_basic`).
    ClientSecretPost,
    /// HTTP Basic with the form-urlencoded client id and secret.
    ClientSecretBasic,
    /// A JWT signed with the client's private key (RFC 7523), set up with
    /// [`ClientCredentialsBuilder::private_key_jwt`].
    PrivateKeyJwt,
    /// Mutual TLS with a CA-issued client certificate (RFC 8705 §2.1): the certificate is the
    /// credential, the form carries the `client_id` only. Set up with
    /// [`ClientCredentialsBuilder::client_certificate`] (or an
    /// [`http_client`](ClientCredentialsBuilder::http_client) that carries the identity).
    TlsClientAuth,
    /// Mutual TLS with a self-signed client certificate registered with the server
    /// (RFC 8705 §2.2).
    SelfSignedTlsClientAuth,
}

impl ClientAuthMethod {
    /// The registered name (`client_secret_post`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretPost => "client_secret_post",
            Self::ClientSecretBasic => "client_secret_basic",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::TlsClientAuth => "tls_client_auth",
            Self::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
        }
    }

    /// Whether the client certificate is the credential (RFC 8705 §2).
    pub const fn is_mutual_tls(self) -> bool {
        matches!(self, Self::TlsClientAuth | Self::SelfSignedTlsClientAuth)
    }
}

/// Parameters that only the builder's own setters may send.
const RESERVED_PARAMS: [&str; 9] = [
    "grant_type",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "scope",
    "audience",
    "resource",
    "organization",
];

/// Builds a [`ClientCredentials`] token source. Setters never fail;
/// [`build`](Self::build) checks everything. No network access happens before the first
/// [`token`](ClientCredentials::token) call.
///
/// ```
/// use bearer_guard::client::{ClientAuthMethod, ClientCredentials};
/// use std::time::Duration;
///
/// let source = ClientCredentials::builder()
///     .issuer("https://tenant.eu.auth0.com/")
///     .client_id("gift-deliveries")
///     .client_secret("from-the-environment")
///     .audience("urn:worldmappers")
///     .scope("directions")
///     .auth_method(ClientAuthMethod::ClientSecretBasic)
///     .timeout(Duration::from_secs(5))
///     .build()
///     .expect("valid configuration");
/// assert!(!format!("{source:?}").contains("from-the-environment"));
/// ```
#[must_use]
pub struct ClientCredentialsBuilder {
    token_endpoint: Option<String>,
    issuer: Option<String>,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    private_key: Option<(Algorithm, Secret)>,
    private_key_id: Option<String>,
    assertion_audience: Option<String>,
    auth_method: Option<ClientAuthMethod>,
    audience: Option<String>,
    resources: Vec<String>,
    scopes: Vec<String>,
    organization: Option<String>,
    params: Vec<(String, String)>,
    http: Option<reqwest::Client>,
    allow_http: bool,
    timeout: Duration,
    max_response_bytes: usize,
    max_attempts: u32,
    backoff: Duration,
    max_backoff: Duration,
    retry_budget: Duration,
    refresh_skew: Duration,
    default_expires_in: Duration,
    dpop: Option<DpopKey>,
    /// PEM: the client certificate (chain) and its private key.
    client_certificate: Option<Secret>,
    /// PEM: CA certificates trusted beside the platform's roots.
    root_certificates: Option<String>,
}

impl fmt::Debug for ClientCredentialsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentialsBuilder")
            .field("token_endpoint", &self.token_endpoint)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("private_key", &self.private_key)
            .field("private_key_id", &self.private_key_id)
            .field("assertion_audience", &self.assertion_audience)
            .field("auth_method", &self.auth_method)
            .field("audience", &self.audience)
            .field("resources", &self.resources)
            .field("scopes", &self.scopes)
            .field("organization", &self.organization)
            .field("params", &self.params)
            .field("dpop", &self.dpop)
            .field("client_certificate", &self.client_certificate.is_some())
            .field("root_certificates", &self.root_certificates.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for ClientCredentialsBuilder {
    fn default() -> Self {
        Self {
            token_endpoint: None,
            issuer: None,
            client_id: None,
            client_secret: None,
            private_key: None,
            private_key_id: None,
            assertion_audience: None,
            auth_method: None,
            audience: None,
            resources: Vec::new(),
            scopes: Vec::new(),
            organization: None,
            params: Vec::new(),
            http: None,
            allow_http: false,
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff: DEFAULT_RETRY_BACKOFF,
            max_backoff: DEFAULT_MAX_RETRY_BACKOFF,
            retry_budget: DEFAULT_RETRY_BUDGET,
            refresh_skew: DEFAULT_REFRESH_SKEW,
            default_expires_in: DEFAULT_EXPIRES_IN,
            dpop: None,
            client_certificate: None,
            root_certificates: None,
        }
    }
}

impl ClientCredentialsBuilder {
    /// A builder with the defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The token endpoint URL (`https`, or `http` to a loopback host). Takes precedence over
    /// [`issuer`](Self::issuer).
    pub fn token_endpoint(mut self, url: impl Into<String>) -> Self {
        self.token_endpoint = Some(url.into());
        self
    }

    /// The issuer whose metadata names the token endpoint: OIDC discovery
    /// (`/.well-known/openid-configuration`) first, then RFC 8414
    /// (`/.well-known/oauth-authorization-server`). The metadata's `issuer` must match, a
    /// trailing `/` aside. Discovery happens on the first token request and again after a
    /// failure that may mean the endpoint moved.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The client id.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }

    /// The client secret. It is sent only to the token endpoint and never appears in logs,
    /// `Debug` output or errors.
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = Some(Secret::new(secret.into()));
        self
    }

    /// How the client authenticates with its secret. Default: `client_secret_post`, or
    /// `client_secret_basic` when the discovered metadata lists only that one. For
    /// `private_key_jwt`, use [`private_key_jwt`](Self::private_key_jwt).
    pub fn auth_method(mut self, method: ClientAuthMethod) -> Self {
        self.auth_method = Some(method);
        self
    }

    /// Authenticates with `private_key_jwt` (RFC 7523) instead of a secret: each token
    /// request carries a new JWT assertion (`iss` and `sub` the client id, a random `jti`,
    /// 60 s lifetime) signed with this PEM private key (PKCS#8, or PKCS#1 / SEC1) and
    /// `algorithm` (RS*, PS*, ES256, ES384 or EdDSA). Needs a crypto backend. The key never
    /// appears in `Debug` output.
    pub fn private_key_jwt(
        mut self,
        algorithm: Algorithm,
        private_key_pem: impl AsRef<[u8]>,
    ) -> Self {
        let pem = String::from_utf8_lossy(private_key_pem.as_ref()).into_owned();
        self.private_key = Some((algorithm, Secret::new(pem)));
        self.auth_method = Some(ClientAuthMethod::PrivateKeyJwt);
        self
    }

    /// The `kid` header of the `private_key_jwt` assertions (the id of the key registered
    /// with the authorization server).
    pub fn private_key_id(mut self, kid: impl Into<String>) -> Self {
        self.private_key_id = Some(kid.into());
        self
    }

    /// The `aud` of the `private_key_jwt` assertions. Default: the [issuer](Self::issuer)
    /// when one is configured (Auth0 expects `https://{tenant domain}/`), else the token
    /// endpoint URL.
    pub fn assertion_audience(mut self, audience: impl Into<String>) -> Self {
        self.assertion_audience = Some(audience.into());
        self
    }

    /// The API the token is for, as Auth0 names it (the `audience` parameter).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// An RFC 8707 resource indicator (an absolute URI without fragment); call again for
    /// more.
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resources.push(resource.into());
        self
    }

    /// Requested scopes, space-separated (each must be an RFC 6749 §3.3 scope token); call
    /// again to add more. Without a scope, the server decides (Auth0 grants every scope the
    /// client is authorized for).
    pub fn scope(mut self, scope: impl AsRef<str>) -> Self {
        for s in scope.as_ref().split(' ').filter(|s| !s.is_empty()) {
            if !self.scopes.iter().any(|x| x == s) {
                self.scopes.push(s.to_owned());
            }
        }
        self
    }

    /// The Auth0 organization (id or name) the token is for (machine-to-machine access for
    /// organizations).
    pub fn organization(mut self, organization: impl Into<String>) -> Self {
        self.organization = Some(organization.into());
        self
    }

    /// An extra form parameter sent with every token request. The parameters set by the
    /// other methods (`grant_type`, `client_id`, `client_secret`, `scope`, `audience`,
    /// `resource`, `organization`, `client_assertion*`) cannot be set this way.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }

    /// The HTTP client to use. By default: a client with the [`timeout`](Self::timeout), a
    /// connect timeout of at most 5 s, and no redirects (a token request is never
    /// re-sent elsewhere). A client you pass should not follow redirects either.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Allows plain `http` token endpoints and issuers on any host (by default, only on
    /// loopback hosts). The secret then crosses the network in clear text.
    pub fn dangerous_allow_insecure_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// Timeout of one request to the token endpoint or the metadata (100 ms – 2 min;
    /// default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Cap on a response body (1 KiB – 1 MiB; default 64 KiB).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Retries of one token request on `5xx`, `429`, network failures and timeouts: at
    /// most `max_attempts` attempts (1 – 10; default 4, 1 disables retries), waiting
    /// `backoff` then twice as long each time, with jitter, up to `max_backoff` (defaults
    /// 250 ms and 5 s), or as long as the server's `Retry-After` says.
    pub fn retries(mut self, max_attempts: u32, backoff: Duration, max_backoff: Duration) -> Self {
        self.max_attempts = max_attempts;
        self.backoff = backoff;
        self.max_backoff = max_backoff;
        self
    }

    /// The total time one token request may take, retries and waits included (1 s –
    /// 10 min; default 30 s). A `Retry-After` that would end past it is not waited for: the
    /// error is returned at once.
    pub fn retry_budget(mut self, budget: Duration) -> Self {
        self.retry_budget = budget;
        self
    }

    /// The minimum time before expiry at which a token is renewed (0 – 1 h; default 60 s).
    /// The renewal happens at the larger of this and 10 % of the token's lifetime before
    /// expiry, but never before half the lifetime has passed.
    pub fn refresh_skew(mut self, skew: Duration) -> Self {
        self.refresh_skew = skew;
        self
    }

    /// The lifetime assumed when a token response has no `expires_in` (1 s – 1 day; default
    /// 5 min).
    pub fn default_expires_in(mut self, lifetime: Duration) -> Self {
        self.default_expires_in = lifetime;
        self
    }

    /// Asks for DPoP-bound tokens (RFC 9449), bound to `key`
    /// ([`DpopKey::generate`](super::DpopKey::generate) makes one at run time).
    ///
    /// - Each token request carries a `DPoP` proof (`htm` `POST`, `htu` the token
    ///   endpoint). The answer's `token_type` must be `DPoP`: a `Bearer` answer (a server
    ///   that does not support DPoP, or not for this client) is refused with a
    ///   [`TokenErrorKind::InvalidResponse`](super::TokenErrorKind::InvalidResponse) error
    ///   rather than used unbound.
    /// - When the authorization server answers `400` `use_dpop_nonce` with a `DPoP-Nonce`
    ///   header, the request is sent once more with that nonce. The latest nonce of the
    ///   authorization server, and of each API origin, is remembered for the next proofs
    ///   (apart, even when they share an origin).
    /// - [`AddBearer`](super::AddBearer) then sends `Authorization: DPoP <token>` and a new
    ///   proof (with `ath`) on every request.
    pub fn dpop(mut self, key: DpopKey) -> Self {
        self.dpop = Some(key);
        self
    }

    /// Authenticates with a client certificate over mutual TLS (RFC 8705 §2): `pem` holds the
    /// certificate (and its chain) and its private key. The token endpoint gets the
    /// `client_id` and no secret; with [`issuer`](Self::issuer), the metadata's
    /// `mtls_endpoint_aliases.token_endpoint` is used when present. The method is
    /// [`TlsClientAuth`](ClientAuthMethod::TlsClientAuth) unless
    /// [`auth_method`](Self::auth_method) says
    /// [`SelfSignedTlsClientAuth`](ClientAuthMethod::SelfSignedTlsClientAuth). The same
    /// identity is on [`ClientCredentials::http_client`], for calls to the API, so that a
    /// certificate-bound token travels with its certificate. Needs the `tls` feature. For
    /// servers with a private CA's certificate, add
    /// [`root_certificates`](Self::root_certificates).
    ///
    /// With your own [`http_client`](Self::http_client), put the identity on it instead and
    /// call [`auth_method`](Self::auth_method) with a mutual-TLS method.
    pub fn client_certificate(mut self, pem: impl Into<String>) -> Self {
        self.client_certificate = Some(Secret::new(pem.into()));
        self
    }

    /// Also trusts these CA certificates (PEM, one or more), beside the platform's roots:
    /// for an authorization server, and through [`ClientCredentials::http_client`] an API,
    /// served with a private CA's certificate (a service mesh's, with
    /// [`client_certificate`](Self::client_certificate)). Needs the `tls` feature. With your
    /// own [`http_client`](Self::http_client), put the CA on that client instead.
    pub fn root_certificates(mut self, pem: impl Into<String>) -> Self {
        self.root_certificates = Some(pem.into());
        self
    }

    /// Checks the configuration and builds the token source.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the bad value (never the secret): no token endpoint or
    /// issuer ([`ConfigError::MissingIssuer`]), an invalid or non-https URL, an empty client
    /// id, secret or audience, an invalid scope or resource, a reserved extra parameter, an
    /// out-of-range setting, a client certificate or root certificates that are not PEM (or
    /// given beside a custom HTTP client), or an HTTP client that cannot be built.
    pub fn build(self) -> Result<ClientCredentials, ConfigError> {
        let target = match (&self.token_endpoint, &self.issuer) {
            (Some(url), _) => Target::Endpoint(parse_url("token endpoint", url, self.allow_http)?),
            (None, Some(issuer)) if !issuer.is_empty() => {
                parse_url("issuer", issuer, self.allow_http)?;
                Target::Issuer(issuer.clone())
            }
            _ => return Err(ConfigError::MissingIssuer),
        };
        let client_id = self.client_id.clone().unwrap_or_default();
        if client_id.is_empty() {
            return Err(invalid("client_id", "", "is missing or empty"));
        }
        if client_id.chars().any(char::is_control) {
            return Err(invalid(
                "client_id",
                &client_id,
                "contains control characters",
            ));
        }
        let auth_method = match (&self.client_certificate, self.auth_method) {
            (Some(_), None) => Some(ClientAuthMethod::TlsClientAuth),
            (_, m) => m,
        };
        let mutual_tls = auth_method.is_some_and(ClientAuthMethod::is_mutual_tls);
        if self.client_certificate.is_some() && !mutual_tls {
            return Err(invalid(
                "auth_method",
                auth_method.map_or("", ClientAuthMethod::as_str),
                "a client certificate was given: use tls_client_auth or self_signed_tls_client_auth",
            ));
        }
        if mutual_tls && self.client_certificate.is_some() && self.http.is_some() {
            return Err(invalid(
                "client_certificate",
                "",
                "a custom http_client was given too: put the identity on that client instead",
            ));
        }
        if self.root_certificates.is_some() && self.http.is_some() {
            return Err(invalid(
                "root_certificates",
                "",
                "a custom http_client was given too: put the CA certificates on that client instead",
            ));
        }
        if mutual_tls && self.client_certificate.is_none() && self.http.is_none() {
            return Err(invalid(
                "auth_method",
                auth_method.map_or("", ClientAuthMethod::as_str),
                "needs a certificate: use `.client_certificate(pem)`",
            ));
        }
        let credential = super::auth::credential(
            self.client_secret.as_ref(),
            self.private_key.as_ref(),
            self.private_key_id.clone(),
            auth_method,
            || match (&self.assertion_audience, &target) {
                (Some(a), _) => a.clone(),
                (None, Target::Issuer(issuer)) => issuer.clone(),
                (None, Target::Endpoint(url)) => url.to_string(),
            },
        )?;
        if self.audience.as_deref() == Some("") {
            return Err(ConfigError::EmptyAudience);
        }
        for r in &self.resources {
            match Url::parse(r) {
                Ok(u) if u.fragment().is_none() => {}
                _ => {
                    return Err(invalid(
                        "resource",
                        r,
                        "not an absolute URI without a fragment (RFC 8707)",
                    ));
                }
            }
        }
        if let Some(bad) = self.scopes.iter().find(|s| !is_scope_token(s)) {
            return Err(invalid("scope", bad, "not an RFC 6749 scope token"));
        }
        if self.organization.as_deref() == Some("") {
            return Err(invalid("organization", "", "is empty"));
        }
        for (name, _) in &self.params {
            if name.is_empty() {
                return Err(invalid("param", name, "the parameter name is empty"));
            }
            if RESERVED_PARAMS.contains(&name.as_str()) {
                return Err(invalid(
                    "param",
                    name,
                    "this parameter has its own setter, or is set by the client",
                ));
            }
        }
        check_range(
            "timeout",
            self.timeout,
            Duration::from_millis(100),
            Duration::from_secs(120),
            "100 ms to 2 min",
        )?;
        check_count(
            "max_response_bytes",
            self.max_response_bytes,
            1024,
            1024 * 1024,
            "1024 to 1048576",
        )?;
        check_count("max_attempts", self.max_attempts as usize, 1, 10, "1 to 10")?;
        if self.backoff.is_zero() || self.backoff > self.max_backoff {
            return Err(ConfigError::OutOfRange {
                what: "retries",
                value: format!("backoff {:?}, max {:?}", self.backoff, self.max_backoff),
                range: "0 < backoff <= max_backoff",
            });
        }
        check_range(
            "retry_budget",
            self.retry_budget,
            Duration::from_secs(1),
            Duration::from_secs(600),
            "1 s to 10 min",
        )?;
        check_range(
            "refresh_skew",
            self.refresh_skew,
            Duration::ZERO,
            Duration::from_secs(3600),
            "0 s to 1 h",
        )?;
        check_range(
            "default_expires_in",
            self.default_expires_in,
            Duration::from_secs(1),
            Duration::from_secs(86_400),
            "1 s to 1 day",
        )?;
        let http = match (self.http, &self.client_certificate, &self.root_certificates) {
            (Some(c), _, _) => c,
            (None, None, None) => default_client(self.timeout).map_err(ConfigError::HttpClient)?,
            (None, identity, roots) => {
                tls_client(self.timeout, identity.as_ref(), roots.as_deref())?
            }
        };

        let mut form = Vec::new();
        if let Some(a) = self.audience {
            form.push(("audience".to_owned(), a));
        }
        for r in self.resources {
            form.push(("resource".to_owned(), r));
        }
        if !self.scopes.is_empty() {
            form.push(("scope".to_owned(), self.scopes.join(" ")));
        }
        if let Some(o) = self.organization {
            form.push(("organization".to_owned(), o));
        }
        form.extend(self.params);

        Ok(ClientCredentials::from_endpoint(
            Endpoint {
                http,
                target,
                client_id,
                credential,
                auth_method,
                form,
                allow_http: self.allow_http,
                timeout: self.timeout,
                max_body: self.max_response_bytes,
                max_attempts: self.max_attempts,
                backoff: self.backoff,
                max_backoff: self.max_backoff,
                retry_budget: self.retry_budget,
                default_expires_in: self.default_expires_in,
                discovered: std::sync::Mutex::new(None),
                requests: std::sync::atomic::AtomicU64::new(0),
                dpop: self.dpop.map(|key| std::sync::Arc::new(Dpop::new(key))),
            },
            self.refresh_skew,
        ))
    }
}

fn invalid(what: &'static str, value: &str, reason: &'static str) -> ConfigError {
    ConfigError::InvalidValue {
        what,
        value: value.to_owned(),
        reason,
    }
}

/// Timeouts, no redirects, a user agent.
fn default_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("bearer-guard/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())
}

/// [`default_client`] with a client certificate and more trusted CAs (`tls` feature:
/// reqwest with rustls).
#[cfg(feature = "tls")]
fn tls_client(
    timeout: Duration,
    identity: Option<&Secret>,
    roots: Option<&str>,
) -> Result<reqwest::Client, ConfigError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("bearer-guard/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = roots {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .ok()
            .filter(|certs| !certs.is_empty())
            .ok_or_else(|| invalid("root_certificates", "", "not PEM CA certificates"))?;
        builder = builder.tls_certs_merge(certs);
    }
    if let Some(pem) = identity {
        let identity = reqwest::Identity::from_pem(pem.expose().as_bytes()).map_err(|_| {
            invalid(
                "client_certificate",
                "",
                "not a PEM certificate and private key",
            )
        })?;
        builder = builder.identity(identity);
    }
    builder
        .build()
        .map_err(|e| ConfigError::HttpClient(e.to_string()))
}

#[cfg(not(feature = "tls"))]
fn tls_client(
    _: Duration,
    identity: Option<&Secret>,
    _: Option<&str>,
) -> Result<reqwest::Client, ConfigError> {
    Err(invalid(
        if identity.is_some() {
            "client_certificate"
        } else {
            "root_certificates"
        },
        "",
        "needs the `tls` feature (reqwest with rustls)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> ClientCredentialsBuilder {
        ClientCredentialsBuilder::new()
            .token_endpoint("https://idp.example.com/oauth/token")
            .client_id("svc")
            .client_secret("s3cret-value")
    }

    #[test]
    fn a_minimal_configuration_builds() {
        assert!(base().build().is_ok());
    }

    #[cfg(feature = "tls")]
    #[test]
    fn root_certificates_that_are_not_pem_are_refused_by_name() {
        let e = base()
            .root_certificates("not a certificate")
            .build()
            .expect_err("refused");
        assert!(e.to_string().contains("root_certificates"), "{e}");
    }

    #[test]
    fn root_certificates_beside_a_custom_http_client_are_refused() {
        let e = base()
            .http_client(reqwest::Client::new())
            .root_certificates("-----BEGIN CERTIFICATE-----")
            .build()
            .expect_err("refused");
        assert!(e.to_string().contains("root_certificates"), "{e}");
    }

    #[test]
    fn an_endpoint_or_issuer_is_required() {
        let e = ClientCredentialsBuilder::new()
            .client_id("svc")
            .client_secret("s")
            .build()
            .err();
        assert_eq!(e, Some(ConfigError::MissingIssuer));
    }

    #[test]
    fn plain_http_is_refused_except_to_loopback() {
        let e = base()
            .token_endpoint("http://idp.example.com/token")
            .build()
            .err();
        assert!(matches!(e, Some(ConfigError::InsecureUrl { .. })), "{e:?}");
        assert!(
            base()
                .token_endpoint("http://127.0.0.1:9/token")
                .build()
                .is_ok()
        );
        assert!(
            base()
                .token_endpoint("http://idp.example.com/token")
                .dangerous_allow_insecure_http()
                .build()
                .is_ok()
        );
    }

    #[test]
    fn an_empty_secret_is_refused_without_echoing_anything() {
        let e = base().client_secret("").build().err();
        assert!(
            matches!(
                e,
                Some(ConfigError::InvalidValue {
                    what: "client_secret",
                    ..
                })
            ),
            "{e:?}"
        );
    }

    #[test]
    fn reserved_parameters_cannot_be_smuggled() {
        for name in ["grant_type", "client_secret", "scope", "audience"] {
            assert!(base().param(name, "x").build().is_err(), "{name}");
        }
        assert!(base().param("connection", "x").build().is_ok());
    }

    #[test]
    fn scopes_and_resources_are_checked() {
        assert!(base().scope("a b  c").build().is_ok());
        assert!(base().scope("a\"b").build().is_err());
        assert!(base().resource("https://api.example.com/").build().is_ok());
        assert!(base().resource("api").build().is_err());
        assert!(
            base()
                .resource("https://api.example.com/#x")
                .build()
                .is_err()
        );
    }

    #[test]
    fn ranges_are_checked() {
        assert!(base().timeout(Duration::ZERO).build().is_err());
        assert!(
            base()
                .retries(0, Duration::from_millis(1), Duration::from_millis(1))
                .build()
                .is_err()
        );
        assert!(
            base()
                .retries(3, Duration::from_secs(2), Duration::from_secs(1))
                .build()
                .is_err()
        );
        assert!(base().max_response_bytes(10).build().is_err());
    }

    #[test]
    fn private_key_jwt_needs_a_key_and_excludes_other_methods() {
        let e = base()
            .auth_method(ClientAuthMethod::PrivateKeyJwt)
            .build()
            .err();
        assert!(
            matches!(
                e,
                Some(ConfigError::InvalidValue {
                    what: "auth_method",
                    ..
                })
            ),
            "{e:?}"
        );
        let e = ClientCredentialsBuilder::new()
            .token_endpoint("https://idp.example.com/oauth/token")
            .client_id("svc")
            .private_key_jwt(Algorithm::RS256, "not a pem")
            .build()
            .err();
        assert!(
            matches!(
                e,
                Some(ConfigError::InvalidKey { .. } | ConfigError::NoCryptoBackend)
            ),
            "{e:?}"
        );
    }

    #[test]
    fn debug_hides_the_secret() {
        let shown = format!("{:?}", base());
        assert!(!shown.contains("s3cret-value"), "{shown}");
        let shown = format!("{:?}", base().build().expect("builds"));
        assert!(!shown.contains("s3cret-value"), "{shown}");
    }
}
