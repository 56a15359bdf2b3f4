//! [`DevIssuerBuilder`]: every setting of the development issuer, checked in
//! [`start`](DevIssuerBuilder::start).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use super::client::DevClient;
use super::error::DevIssuerError;
use super::issuer::DevIssuer;
use super::key_ring::{self, KeyRing};
use super::server::Server;
use super::state::Shared;
use crate::Algorithm;

/// Default lifetime of issued tokens: 24 hours, as Auth0's default.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(86_400);

/// Configures a [`DevIssuer`]. Setters never fail; [`start`](Self::start) checks everything.
///
/// Defaults: RS256, tokens valid [`DEFAULT_TOKEN_TTL`], listening on `127.0.0.1` on a port
/// chosen by the system, no client. At least one [`audience`](Self::audience) is required.
#[derive(Debug)]
#[must_use]
pub struct DevIssuerBuilder {
    audiences: Vec<String>,
    clients: Vec<DevClient>,
    algorithm: Algorithm,
    token_ttl: Duration,
    key_offset: Option<usize>,
    bind: SocketAddr,
    opaque_tokens: bool,
    #[cfg(feature = "mtls")]
    tls: Option<std::sync::Arc<crate::mtls::ServerConfig>>,
}

impl Default for DevIssuerBuilder {
    fn default() -> Self {
        Self {
            audiences: Vec::new(),
            clients: Vec::new(),
            algorithm: Algorithm::RS256,
            token_ttl: DEFAULT_TOKEN_TTL,
            key_offset: None,
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            opaque_tokens: false,
            #[cfg(feature = "mtls")]
            tls: None,
        }
    }
}

impl DevIssuerBuilder {
    /// An audience (API identifier) the issuer issues tokens for; call again for more. The
    /// first one is the default `aud` of [`DevIssuer::mint`].
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Several audiences at once.
    pub fn audiences<I, S>(mut self, audiences: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.audiences.extend(audiences.into_iter().map(Into::into));
        self
    }

    /// Registers a client with its secret and the scopes it may get, for every audience.
    /// Use [`register`](Self::register) to restrict its audiences.
    pub fn client<I, S>(self, id: impl Into<String>, secret: impl Into<String>, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.register(DevClient::new(id, secret).scopes(scopes))
    }

    /// Registers a client.
    pub fn register(mut self, client: DevClient) -> Self {
        self.clients.push(client);
        self
    }

    /// The signing algorithm: RS256 (the default), RS384/512, PS256/384/512, ES256, ES384
    /// or EdDSA.
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Lifetime of issued and minted tokens (`exp - iat`, and `expires_in`). Default 24 h;
    /// at least 1 s.
    pub fn token_ttl(mut self, ttl: Duration) -> Self {
        self.token_ttl = ttl;
        self
    }

    /// Which key of the compiled-in pool to sign with first (modulo the pool size: RSA 4
    /// keys, ES256 2, ES384 1, EdDSA 2); [`DevIssuer::rotate`] moves on to the next one.
    ///
    /// By default a process-wide counter gives each new issuer the next key, so issuers
    /// started one after the other do not share a key (until the pool wraps around). Tests
    /// running in parallel share that counter: when a test needs two issuers with distinct
    /// keys for certain, give them offsets that differ (by 2 if both will rotate once).
    pub fn key_offset(mut self, offset: usize) -> Self {
        self.key_offset = Some(offset);
        self
    }

    /// Serves the issuer over TLS with `config` (see
    /// [`mtls::server_config`](crate::mtls::server_config)): the issuer URL is then
    /// `https://…`, and with client certificates asked for (a client CA in the config) a
    /// client that presents one gets a certificate-bound token (`cnf.x5t#S256`, RFC 8705 §3),
    /// next to `cnf.jkt` when it also sent a DPoP proof. Clients still authenticate with their
    /// secret.
    #[cfg(feature = "mtls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "mtls")))]
    pub fn tls(mut self, config: std::sync::Arc<crate::mtls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// The address to listen on. Default `127.0.0.1:0` (a free port chosen by the system);
    /// a fixed port gives a fixed issuer URL, for examples. Only loopback addresses are
    /// accepted.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// The token endpoint issues opaque access tokens (random strings, their claims kept
    /// in memory) instead of JWTs; resource servers check them at the introspection
    /// endpoint (`{issuer}oauth/introspect`, RFC 7662).
    pub fn opaque_tokens(mut self) -> Self {
        self.opaque_tokens = true;
        self
    }

    /// Checks the configuration, binds the socket and starts serving on the current Tokio
    /// runtime. The server stops when the returned [`DevIssuer`] is dropped or
    /// [shut down](DevIssuer::shutdown).
    ///
    /// # Errors
    ///
    /// A [`DevIssuerError`]: no audience or an empty one, an algorithm without pool keys, a
    /// TTL under 1 s, a non-loopback bind address, an unusable or duplicate client
    /// registration, a key that cannot sign (no crypto backend), or a failed bind.
    pub async fn start(self) -> Result<DevIssuer, DevIssuerError> {
        #[cfg(feature = "mtls")]
        let tls = self.tls.clone();
        #[cfg(not(feature = "mtls"))]
        let tls: Option<()> = None;
        if self.audiences.is_empty() {
            return Err(DevIssuerError::NoAudience);
        }
        if self.audiences.iter().any(String::is_empty) {
            return Err(DevIssuerError::EmptyAudience);
        }
        let pool_size = key_ring::pool_size(self.algorithm)
            .ok_or(DevIssuerError::UnsupportedAlgorithm(self.algorithm))?;
        if self.token_ttl < Duration::from_secs(1) {
            return Err(DevIssuerError::TokenTtlTooShort);
        }
        if !self.bind.ip().is_loopback() {
            return Err(DevIssuerError::NotLoopback(self.bind));
        }
        for (i, client) in self.clients.iter().enumerate() {
            client.check(&self.audiences)?;
            if self.clients[..i].iter().any(|c| c.id() == client.id()) {
                return Err(DevIssuerError::InvalidClient {
                    client_id: client.id().to_owned(),
                    reason: "registered twice".into(),
                });
            }
        }
        let offset = self.key_offset.unwrap_or_else(key_ring::next_key_offset);
        let keys = KeyRing::new(self.algorithm, pool_size, offset)?;
        // Fail now, not on the first token request, when this build cannot sign.
        keys.current().sign_bytes(b"probe")?;

        let listener =
            TcpListener::bind(self.bind)
                .await
                .map_err(|source| DevIssuerError::Bind {
                    addr: self.bind,
                    source,
                })?;
        let addr = listener
            .local_addr()
            .map_err(|source| DevIssuerError::Bind {
                addr: self.bind,
                source,
            })?;
        let mut shared = Shared::new(
            format!("{}://{addr}/", if tls.is_some() { "https" } else { "http" }),
            self.audiences,
            self.clients,
            self.token_ttl,
            keys,
        );
        shared.opaque_tokens = self.opaque_tokens;
        let shared = Arc::new(shared);
        #[cfg(feature = "mtls")]
        let server = match tls {
            Some(tls) => Server::spawn_tls(listener, tls, Arc::clone(&shared)),
            None => Server::spawn(listener, Arc::clone(&shared)),
        };
        #[cfg(not(feature = "mtls"))]
        let server = Server::spawn(listener, Arc::clone(&shared));
        tracing::debug!(issuer = %shared.issuer, "dev issuer: listening");
        Ok(DevIssuer::new(shared, addr, server))
    }
}
