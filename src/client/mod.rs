//! The client side (feature `client`): a client-credentials token source,
//! [`ClientCredentials`], and a tower middleware, [`AddBearerLayer`], that sends its tokens.
//!
//! A backend service (an M2M client) asks the authorization server's token endpoint for an
//! access token with its client id and secret (RFC 6749 §4.4), then calls the API with
//! `Authorization: Bearer <token>`. [`ClientCredentials`] does the first part and keeps the
//! token until shortly before it expires; [`AddBearerLayer`] does the second part for any
//! tower HTTP client (a `reqwest`-based service, a hyper client, a tonic `Channel`).
//!
//! ```
//! # #[cfg(all(feature = "dev-issuer", any(feature = "aws-lc-rs", feature = "rust-crypto")))]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use bearer_guard::client::{AddBearerLayer, ClientCredentials, OAuthErrorCode, TokenErrorKind};
//! use bearer_guard::dev_issuer::DevIssuer;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! // A development authorization server stands in for Auth0.
//! let dev = DevIssuer::builder()
//!     .audience("urn:worldmappers")
//!     .client("gift-deliveries", "dev-secret", ["directions"])
//!     .start()
//!     .await?;
//!
//! let source = ClientCredentials::builder()
//!     .issuer(dev.issuer()) // the token endpoint is discovered
//!     .client_id("gift-deliveries")
//!     .client_secret("dev-secret")
//!     .audience("urn:worldmappers")
//!     .build()?;
//! let token = source.token().await?;
//! assert_eq!(token.scope(), Some("directions"));
//! assert_eq!(source.token().await?, token); // cached: no second request
//! assert_eq!(source.token_requests(), 1);
//!
//! // The middleware adds the header (here to a service that echoes it).
//! let client = ServiceBuilder::new()
//!     .layer(AddBearerLayer::new(source.clone()))
//!     .service_fn(|req: http::Request<String>| async move {
//!         let auth = req.headers()["authorization"].to_str()?.to_owned();
//!         Ok::<_, Box<dyn std::error::Error + Send + Sync>>(http::Response::new(auth))
//!     });
//! let res = client.oneshot(http::Request::new(String::new())).await?;
//! assert_eq!(res.body(), &format!("Bearer {}", token.secret()));
//!
//! // Wrong credentials: a typed error naming the OAuth error code.
//! let wrong = ClientCredentials::builder()
//!     .token_endpoint(dev.token_endpoint())
//!     .client_id("gift-deliveries")
//!     .client_secret("not-the-secret")
//!     .audience("urn:worldmappers")
//!     .build()?;
//! let e = wrong.token().await.unwrap_err();
//! assert_eq!(e.kind(), TokenErrorKind::OAuth(OAuthErrorCode::InvalidClient));
//! assert_eq!(e.oauth_error(), Some("invalid_client"));
//! # dev.shutdown().await;
//! # Ok(())
//! # }
//! # #[cfg(not(all(feature = "dev-issuer", any(feature = "aws-lc-rs", feature = "rust-crypto"))))]
//! # fn main() {}
//! ```
//!
//! # The token request
//!
//! `POST` to the token endpoint, `application/x-www-form-urlencoded`, with
//! `grant_type=client_credentials` and the configured `audience` (Auth0), `resource`s
//! (RFC 8707), `scope`, `organization` and extra parameters. The client authenticates with
//! [`ClientAuthMethod::ClientSecretPost`] (id and secret in the body, the default),
//! [`ClientAuthMethod::ClientSecretBasic`], or a private key
//! ([`private_key_jwt`](ClientCredentialsBuilder::private_key_jwt), RFC 7523: a new signed
//! assertion per request). A server that enforces the method registered for the client
//! needs it set explicitly. The endpoint is configured, or discovered from the
//! issuer (OIDC discovery, then RFC 8414). The answer must be a JSON token response with a
//! `Bearer` `token_type` (or none; `DPoP` with [DPoP](#dpop-rfc-9449)).
//!
//! # Caching and renewal
//!
//! The token is cached and shared by every clone of the source. It is renewed ahead of
//! expiry by a *skew*: the larger of 60 s ([`refresh_skew`](ClientCredentialsBuilder::refresh_skew))
//! and 10 % of its lifetime, but at most half its lifetime.
//!
//! | `expires_in` | renewed after |
//! |---|---|
//! | 24 h (Auth0's default) | 21 h 36 min |
//! | 1 h | 54 min |
//! | 10 min | 9 min |
//! | 60 s | 30 s |
//!
//! Only one request to the token endpoint is in flight at a time, however many callers wait:
//! they share its outcome. During the skew, one caller renews the token while the others
//! keep using the current one without waiting. Lifetimes are measured from when the request
//! was sent, on the monotonic clock (clock changes do not matter).
//!
//! # Failures
//!
//! - `5xx`, `429`, network failures and timeouts are retried (4 attempts by default) with
//!   exponential backoff and jitter (250 ms doubling up to 5 s), or after the server's
//!   `Retry-After` (seconds or an HTTP date), all within a total budget (30 s); a
//!   `Retry-After` beyond the budget ends the request at once.
//! - An OAuth error answer (`invalid_client`, `invalid_scope`, `access_denied`, …) is not
//!   retried; it becomes a [`TokenError`] of kind [`TokenErrorKind::OAuth`] naming the
//!   [`OAuthErrorCode`], with the server's `error` and `error_description`.
//! - A failed renewal while the current token is still valid (up to 5 s before its expiry)
//!   keeps serving the current token and logs a warning.
//! - After a failure, the next attempt waits a cooldown (1 s, doubling per consecutive
//!   failure up to 30 s); meanwhile callers get the current token or, without one, the same
//!   error, so an outage or a wrong secret is not hammered.
//!
//! # The middleware
//!
//! [`AddBearer`] sets `Authorization: Bearer <token>` on each request (replacing any
//! `Authorization` it had), the value marked sensitive. When the answer is `401` (or gRPC
//! `UNAUTHENTICATED`) with a `WWW-Authenticate` Bearer challenge carrying
//! `error="invalid_token"` (the token was revoked, its signing key retired, …), it drops the
//! cached token and sends the request once more with a new one; a second refusal is returned
//! as it is. Such forced renewals happen at most once per 10 s: a server that refuses every
//! token (a wrong audience, say) costs at most one token request per 10 s, and meanwhile its
//! `401` answers are returned without retry.
//!
//! Replaying needs a copy of the request, so the body must be replayable: by default
//! ([`CloneBody`]) the service needs `B: Clone` (`String`, `Bytes`, `Full<Bytes>`, …) and
//! keeps one clone of each request until its answer arrives. For bodies that cannot be
//! cloned, use [`AddBearerLayer::without_retry`] (the token is still dropped on refusal, so
//! the next request gets a new one) or a closure that replays only some bodies:
//!
//! ```ignore
//! // A tonic client.
//! let channel = tonic::transport::Channel::from_static("http://[::1]:50051").connect().await?;
//! let channel = ServiceBuilder::new()
//!     .layer(AddBearerLayer::new(source).without_retry())
//!     .service(channel);
//! let mut client = RoutesClient::new(channel);
//!
//! // A hyper-util client with `Full<Bytes>` bodies (Clone): the retry works as it is.
//! let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
//!     .build_http::<Full<Bytes>>();
//! let client = ServiceBuilder::new()
//!     .layer(AddBearerLayer::new(source.clone()))
//!     .service(client);
//!
//! // A reqwest-based service: in-memory bodies are replayed, streams are not.
//! let layer = AddBearerLayer::new(source)
//!     .replay(|b: &reqwest::Body| b.as_bytes().map(|b| reqwest::Body::from(b.to_vec())));
//! ```
//!
//! The service's error type is [`BoxError`]: the inner service's error, or the
//! [`TokenError`] when no token could be obtained (`err.downcast_ref::<TokenError>()`).
//!
//! # DPoP (RFC 9449)
//!
//! With [`ClientCredentialsBuilder::dpop`] and a [`DpopKey`] (ES256 or EdDSA, generated at
//! run time or loaded from a PEM or JWK private key), the tokens are bound to that key: a
//! stolen token is useless without it.
//!
//! - Each token request carries a `DPoP` proof for `POST` and the token endpoint; the
//!   answer's `token_type` must be `DPoP` (a `Bearer` answer is refused, not used unbound).
//! - [`AddBearer`] sends `Authorization: DPoP <token>` and a new proof per request: a
//!   random `jti`, `htm` the method, `htu` the request URI without query and fragment
//!   (requests need an absolute URI, as reqwest and hyper clients make them; for a tonic
//!   client made with `Client::new(channel)`, whose URIs are relative, set
//!   [`AddBearerLayer::dpop_origin`]), `iat`, and `ath` = base64url(SHA-256(token)). A `DPoP`
//!   header already on the request is replaced.
//! - Server nonces (RFC 9449 §8–9): an answer `400` `use_dpop_nonce` from the token endpoint
//!   or `401` `use_dpop_nonce` from the API, with a `DPoP-Nonce` header, is retried once
//!   with a proof carrying the nonce (for the API, when the body can be replayed). The
//!   latest `DPoP-Nonce` (also from successful answers) of the authorization server and of
//!   each API origin is kept for the next proofs: apart, even when they share an origin,
//!   and for 64 servers at most.
//!
//! ```
//! # #[cfg(any(feature = "aws-lc-rs", feature = "rust-crypto"))]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use bearer_guard::Algorithm;
//! use bearer_guard::client::{ClientCredentials, DpopKey};
//!
//! let source = ClientCredentials::builder()
//!     .issuer("https://idp.example.com/")
//!     .client_id("gift-deliveries")
//!     .client_secret("from-the-environment")
//!     .dpop(DpopKey::generate(Algorithm::ES256)?)
//!     .build()?;
//! // The authorization server binds the tokens to this thumbprint (`cnf.jkt`).
//! let jkt = source.dpop_key().map(DpopKey::thumbprint);
//! assert_eq!(jkt.map(str::len), Some(43));
//! # Ok(()) }
//! # #[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
//! # fn main() {}
//! ```
//!
//! # Security
//!
//! - The DPoP private key never appears in logs or `Debug` output; proofs are sent in
//!   sensitive header values.
//! - The client secret never appears in logs, `Debug` output or errors; tokens neither
//!   ([`AccessToken`]'s `Debug` hides it).
//! - Token endpoints and issuers must be `https` (plain `http` only to loopback hosts, unless
//!   [`dangerous_allow_insecure_http`](ClientCredentialsBuilder::dangerous_allow_insecure_http)).
//! - The default HTTP client follows no redirects: the secret goes to the configured (or
//!   discovered) endpoint only.
//! - Response bodies are capped (64 KiB) and every request has a timeout (10 s).

mod assertion;
mod auth;
mod config;
mod dpop;
mod endpoint;
mod error;
mod future;
mod jws;
mod layer;
mod source;
mod token;

pub use config::{
    ClientAuthMethod, ClientCredentialsBuilder, DEFAULT_EXPIRES_IN, DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_MAX_RETRY_BACKOFF, DEFAULT_REFRESH_SKEW,
    DEFAULT_RETRY_BACKOFF, DEFAULT_RETRY_BUDGET, DEFAULT_TIMEOUT,
};
pub use dpop::{DPOP_JWT_TYPE, DpopKey, DpopProofError, ath};
pub use error::{OAuthErrorCode, TokenError, TokenErrorKind};
pub use future::ResponseFuture;
pub use layer::{AddBearer, AddBearerLayer, BoxError, CloneBody, NoReplay, ReplayBody};
pub use source::ClientCredentials;
pub use token::AccessToken;

// Client authentication, shared with token introspection.
#[cfg(feature = "introspection")]
pub(crate) use auth::{Credential, authenticate, credential};
#[cfg(feature = "introspection")]
pub(crate) use token::Secret;

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn public_types_are_send_and_sync() {
        assert_send_sync::<ClientCredentials>();
        assert_send_sync::<AccessToken>();
        assert_send_sync::<TokenError>();
        assert_send_sync::<AddBearerLayer>();
        assert_send_sync::<ClientCredentialsBuilder>();
    }

    #[test]
    fn the_token_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let source = ClientCredentials::builder()
            .token_endpoint("https://idp.example.com/oauth/token")
            .client_id("a")
            .client_secret("b")
            .build();
        if let Ok(source) = source {
            assert_send(&source.token());
        }
    }
}
