//! A development authorization server, for tests and demos (feature `dev-issuer`).
//!
//! **A test and demo tool, not an authorization server for production.** Its private keys
//! ship in this crate's source, so anyone can forge its tokens; it keeps everything in
//! memory and listens only on loopback. Never configure a production API to trust it.
//!
//! [`DevIssuer`] runs in-process, on `127.0.0.1` and a free port by default, and issues
//! OAuth 2.0 access tokens shaped like Auth0's client-credentials tokens, so that an API
//! protected by [`Verifier`](crate::Verifier) can be tested end to end (discovery, JWKS,
//! key rotation) without a real tenant.
//!
//! DPoP (RFC 9449 §5): a token request carrying a `DPoP` proof for `POST` and the token
//! endpoint gets a token bound to the proof's key (`cnf.jkt`, `token_type` `DPoP`), as
//! `client::ClientCredentialsBuilder::dpop` asks
//! for. The proof is checked by the resource server's own checker
//! ([`ProofChecker`](crate::dpop::ProofChecker), default settings) and accepted once; a bad
//! or replayed proof gets `400 invalid_dpop_proof`. No server nonces.
//!
//! Opaque tokens (RFC 7662): with [`DevIssuerBuilder::opaque_tokens`] the token endpoint
//! issues opaque access tokens instead of JWTs, and [`DevIssuer::mint_opaque`] makes one
//! directly; the introspection endpoint (`{issuer}oauth/introspect`, in the metadata as
//! `introspection_endpoint`) answers for them to any registered client, and
//! [`DevIssuer::revoke`] revokes one. Asked with `Accept: application/token-introspection+jwt`,
//! it answers with a JWT response signed by the current key (RFC 9701), as
//! `introspection::IntrospectorBuilder::jwt_responses` (feature `introspection`) asks for.
//!
//! ```
//! # #[cfg(any(feature = "aws-lc-rs", feature = "rust-crypto"))]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use bearer_guard::Verifier;
//! use bearer_guard::dev_issuer::DevIssuer;
//!
//! let dev = DevIssuer::builder()
//!     .audience("urn:worldmappers")
//!     .client("gift-deliveries", "dev-secret", ["geocode:location", "directions"])
//!     .start()
//!     .await?;
//!
//! // An M2M client asks for a token with the client-credentials grant...
//! let http = reqwest::Client::new();
//! let ask = |secret: &'static str| {
//!     http.post(dev.token_endpoint()).form(&[
//!         ("grant_type", "client_credentials"),
//!         ("client_id", "gift-deliveries"),
//!         ("client_secret", secret),
//!         ("audience", "urn:worldmappers"),
//!         ("scope", "directions"),
//!     ])
//! };
//! let answer: serde_json::Value = ask("dev-secret").send().await?.json().await?;
//! let token = answer["access_token"].as_str().unwrap_or_default();
//!
//! // ...and the API verifies it, finding the keys by discovery.
//! let verifier = Verifier::builder()
//!     .issuer(dev.issuer())
//!     .audience("urn:worldmappers")
//!     .build()?;
//! let claims = verifier.verify(token).await?;
//! assert_eq!(claims.client_id(), Some("gift-deliveries"));
//! assert!(claims.scopes().contains("directions"));
//! assert!(!claims.scopes().contains("geocode:location"));
//!
//! // A wrong secret gets 401 invalid_client.
//! assert_eq!(ask("wrong-secret").send().await?.status(), 401);
//!
//! // Tests can also mint tokens directly, e.g. an expired one.
//! let expired = dev.mint(serde_json::json!({"exp": 1_000_000_000}))?;
//! assert!(verifier.verify(&expired).await.is_err());
//!
//! dev.shutdown().await;
//! # Ok(())
//! # }
//! # #[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
//! # fn main() {}
//! ```
//!
//! ## Endpoints
//!
//! | request | answer |
//! |---|---|
//! | `GET /.well-known/openid-configuration` | the metadata: `issuer`, `jwks_uri`, `token_endpoint`, `grant_types_supported` (`client_credentials`), `token_endpoint_auth_methods_supported` (`client_secret_post`, `client_secret_basic`), `id_token_signing_alg_values_supported` (the published keys' algorithms), `scopes_supported` |
//! | `GET /.well-known/oauth-authorization-server` | the same document (RFC 8414) |
//! | `GET /.well-known/jwks.json` | the published keys; `application/jwk-set+json`, `Cache-Control: public, max-age=600`, an `ETag` (`If-None-Match` gets 304); counted by [`DevIssuer::jwks_requests`] |
//! | `POST /oauth/token` | the client-credentials grant, below |
//! | `POST /oauth/introspect` | RFC 7662 introspection of its opaque tokens, for any registered client; JSON, or a signed JWT response (RFC 9701) when `Accept` asks for `application/token-introspection+jwt` |
//!
//! ## The token endpoint
//!
//! The body is `application/x-www-form-urlencoded` or a JSON object (as Auth0 accepts), at
//! most 64 KiB, with `grant_type=client_credentials`, the client's credentials,
//! `audience` (or RFC 8707 `resource`) and an optional space-separated `scope`. The client
//! authenticates with `client_id` and `client_secret` in the body (`client_secret_post`) or
//! with HTTP Basic (`client_secret_basic`), not both. A parameter sent empty counts as
//! absent; a repeated one is refused; unknown ones are ignored.
//!
//! Scopes: with no `scope`, the token carries every scope the client may get; with a
//! `scope`, exactly the requested scopes, provided the client may get each one.
//!
//! Success is `200` with `Cache-Control: no-store` and
//! `{"access_token", "token_type": "Bearer", "expires_in", "scope"}` (`scope` omitted when
//! empty). Failures are RFC 6749 §5.2 JSON, `{"error", "error_description"}`:
//!
//! | situation | status | `error` |
//! |---|---|---|
//! | unreadable body, wrong `Content-Type`, repeated parameter, missing `grant_type` or audience, Basic and body secret both sent | 400 | `invalid_request` |
//! | body over 64 KiB | 413 | `invalid_request` |
//! | `grant_type` other than `client_credentials` | 400 | `unsupported_grant_type` |
//! | no credentials, unknown client or wrong secret (with `WWW-Authenticate: Basic realm="dev-issuer"` when HTTP Basic was used) | 401 | `invalid_client` |
//! | `audience` the issuer does not serve (as Auth0 answers) | 403 | `access_denied` |
//! | `audience` the client is not registered for | 403 | `unauthorized_client` |
//! | `resource` unknown, or not registered for the client (RFC 8707) | 400 | `invalid_target` |
//! | a requested scope the client may not get, or not a scope token | 400 | `invalid_scope` |
//!
//! Secrets are compared without early exit; secrets and tokens are never logged, and
//! [`DevClient`]'s `Debug` output hides the secret.
//!
//! ## Tokens
//!
//! Header `{"alg", "kid", "typ": "at+jwt"}`; claims `iss` (the issuer URL, ending in `/`),
//! `sub` (`<client_id>@clients`), `aud` (the audience), `iat`, `exp` (after the
//! [TTL](DevIssuerBuilder::token_ttl), 24 h by default), `scope`, `gty`
//! (`client-credentials`), `azp` and `client_id` (the client id), and a random `jti`.
//!
//! ## Keys
//!
//! RS256 by default; any RSA algorithm, ES256, ES384 or EdDSA with
//! [`DevIssuerBuilder::algorithm`]. Keys come from a small compiled-in pool (no key
//! generation, so tests stay fast); each new issuer starts at the next pool key (see
//! [`DevIssuerBuilder::key_offset`]). [`DevIssuer::rotate`] publishes the next key and signs
//! with it, keeping the old ones published; [`DevIssuer::retire`] unpublishes one. Both
//! crypto backends work.

mod builder;
mod client;
mod dpop;
mod error;
mod introspection;
mod issuer;
mod key_ring;
mod keys;
mod server;
mod state;
mod token_endpoint;

pub use builder::{DEFAULT_TOKEN_TTL, DevIssuerBuilder};
pub use client::DevClient;
pub use error::DevIssuerError;
pub use issuer::DevIssuer;
pub use keys::{SigningError, SigningKey, jwk_set};
