//! [`DevIssuer`]: the handle of a running development issuer.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;

use super::builder::DevIssuerBuilder;
use super::error::DevIssuerError;
use super::keys::{SigningKey, jwk_set};
use super::server::Server;
use super::state::Shared;

/// A running development authorization server (see the [module docs](super)). **For tests
/// and demos only.**
///
/// Dropping it stops the server; [`shutdown`](Self::shutdown) also waits for it to stop.
pub struct DevIssuer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Server,
}

impl fmt::Debug for DevIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevIssuer")
            .field("issuer", &self.shared.issuer)
            .field("audiences", &self.shared.audiences)
            .field("current_key", &self.shared.current_key())
            .finish_non_exhaustive()
    }
}

impl DevIssuer {
    /// Starts a configuration.
    pub fn builder() -> DevIssuerBuilder {
        DevIssuerBuilder::default()
    }

    pub(super) fn new(shared: Arc<Shared>, addr: SocketAddr, server: Server) -> Self {
        Self {
            shared,
            addr,
            server,
        }
    }

    /// The issuer identifier, the `iss` of its tokens: `http://127.0.0.1:PORT/` (with the
    /// trailing slash, as Auth0's). Give it to
    /// [`VerifierBuilder::issuer`](crate::VerifierBuilder::issuer): discovery then finds
    /// the keys.
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL of the JWK Set: `{issuer}.well-known/jwks.json`.
    pub fn jwks_uri(&self) -> &str {
        &self.shared.jwks_uri
    }

    /// The URL of the token endpoint: `{issuer}oauth/token`.
    pub fn token_endpoint(&self) -> &str {
        &self.shared.token_endpoint
    }

    /// The URL of the introspection endpoint (RFC 7662): `{issuer}oauth/introspect`.
    pub fn introspection_endpoint(&self) -> &str {
        &self.shared.introspection_endpoint
    }

    /// An opaque access token with `claims` (completed as by [`mint`](Self::mint)), known to
    /// the introspection endpoint until it expires or is [revoked](Self::revoke).
    ///
    /// # Errors
    ///
    /// [`DevIssuerError::ClaimsNotAnObject`].
    pub fn mint_opaque(&self, claims: Value) -> Result<String, DevIssuerError> {
        let claims = self.shared.complete_claims(claims)?;
        Ok(self.shared.store_opaque(claims))
    }

    /// Revokes an opaque token: the introspection endpoint answers `{"active": false}` for
    /// it from now on. Returns whether it was known.
    pub fn revoke(&self, token: &str) -> bool {
        self.shared.revoke_opaque(token)
    }

    /// How many introspection requests were received.
    pub fn introspection_requests(&self) -> u64 {
        self.shared.introspection_requests()
    }

    /// The audiences it issues tokens for, in configuration order.
    pub fn audiences(&self) -> &[String] {
        &self.shared.audiences
    }

    /// Signs `claims` with the current key, as the token endpoint would, without a client.
    ///
    /// Claims the caller did not give are filled in: `iss` (the issuer), `aud` (the first
    /// audience), `iat` (now), `exp` (now + the TTL) and `jti` (random). A claim given as
    /// `null` is left out of the token: `{"exp": null}` mints a token without `exp`.
    ///
    /// # Errors
    ///
    /// [`DevIssuerError::ClaimsNotAnObject`], or [`DevIssuerError::Signing`].
    pub fn mint(&self, claims: Value) -> Result<String, DevIssuerError> {
        self.mint_with_key(&self.shared.current_key(), claims)
    }

    /// Like [`mint`](Self::mint), signed with `key` (published or not, e.g. a
    /// [`SigningKey::from_pool`] key the issuer never published, for forged-token tests).
    ///
    /// # Errors
    ///
    /// [`DevIssuerError::ClaimsNotAnObject`], or [`DevIssuerError::Signing`].
    pub fn mint_with_key(&self, key: &SigningKey, claims: Value) -> Result<String, DevIssuerError> {
        let claims = Value::Object(self.shared.complete_claims(claims)?);
        Ok(key.sign(&claims)?)
    }

    /// Like [`mint`](Self::mint), with `header` used verbatim as the JOSE header (it is not
    /// checked: `alg`, `kid` and `typ` may lie), signed with the current key. For tests of
    /// hostile tokens.
    ///
    /// # Errors
    ///
    /// [`DevIssuerError::ClaimsNotAnObject`], or [`DevIssuerError::Signing`].
    pub fn mint_with_header(&self, header: Value, claims: Value) -> Result<String, DevIssuerError> {
        let claims = Value::Object(self.shared.complete_claims(claims)?);
        let key = self.shared.current_key();
        Ok(key.sign_raw(header.to_string().as_bytes(), claims.to_string().as_bytes())?)
    }

    /// Publishes the next pool key under a new `kid` and signs new tokens with it; the keys
    /// published before stay published (tokens they signed still verify). Returns the new
    /// `kid`. A verifier picks the new key up at its first token, by its unknown-`kid`
    /// refresh.
    ///
    /// # Errors
    ///
    /// [`DevIssuerError::Signing`] if the pool key cannot be loaded.
    pub fn rotate(&self) -> Result<String, DevIssuerError> {
        let kid = self.shared.keys_mut().rotate()?;
        tracing::debug!(issuer = %self.shared.issuer, kid, "dev issuer: key rotated");
        Ok(kid)
    }

    /// Removes the key `kid` from the JWK Set; returns whether it was published. Retiring the
    /// current key is allowed (to test tokens whose key vanished): the issuer keeps signing
    /// with it, unpublished, until the next [`rotate`](Self::rotate).
    pub fn retire(&self, kid: &str) -> bool {
        self.shared.keys_mut().retire(kid)
    }

    /// The key that signs new tokens.
    pub fn current_key(&self) -> SigningKey {
        self.shared.current_key()
    }

    /// The JWK Set document served now.
    pub fn jwks(&self) -> Value {
        jwk_set(self.shared.keys().published())
    }

    /// How many times the JWK Set was requested (`GET`s answered 200 or 304).
    pub fn jwks_requests(&self) -> u64 {
        self.shared.jwks_requests()
    }

    /// Stops the server and waits for it: open requests may finish (for up to 5 s), new
    /// connections are refused.
    pub async fn shutdown(mut self) {
        self.server.shutdown().await;
    }
}
