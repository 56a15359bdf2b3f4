//! gRPC servers with [tonic] (feature `tonic`): gRPC-native rejections, claims in handlers,
//! and per-method scope requirements.
//!
//! A gRPC client cannot read an HTTP 401 (it reports a transport error, and a 400 becomes
//! `INTERNAL`): a rejected call must be answered with HTTP 200 and a *trailers-only* response
//! carrying `grpc-status` and `grpc-message`. [`GrpcRejection`] does that for gRPC requests
//! (`content-type: application/grpc…`) and gives the usual RFC 6750 answer to the others, so
//! one [`JwtAuthLayer`](crate::JwtAuthLayer) can guard a router serving both.
//!
//! | failure ([`AuthErrorKind`]) | gRPC status | HTTP (other requests) |
//! |---|---|---|
//! | no credentials | 16 `UNAUTHENTICATED` | 401 |
//! | malformed request (two `Authorization` headers, `Bearer` without a token, …) | 16 `UNAUTHENTICATED` | 400 |
//! | invalid token (expired, bad signature, wrong audience, …) | 16 `UNAUTHENTICATED` | 401 |
//! | insufficient scope | 7 `PERMISSION_DENIED` | 403 |
//! | keys unavailable | 14 `UNAVAILABLE` | 503 |
//!
//! A malformed request answers `UNAUTHENTICATED`, not `INVALID_ARGUMENT`: the fault is in the
//! credentials, not in the call's arguments, and gRPC clients treat `UNAUTHENTICATED` as "get
//! a new token", which is the right reaction. `grpc-message` is the
//! [`AuthError`]'s description (it says why, never echoing token content; an insufficient scope
//! names the required scopes), percent-encoded as the gRPC protocol requires. The RFC 6750
//! challenge is kept in a `www-authenticate` header (the layer's
//! [`challenge`](crate::JwtAuthLayer::challenge) settings), and the [`AuthError`] and the
//! [`tonic::Status`] are left in the response extensions. The mapping from [`AuthErrorKind`] to a
//! gRPC code lives in one place, [`GrpcRejection::code`]; everything else (descriptions,
//! challenges) is shared with [`DefaultRejection`].
//!
//! In handlers, [`ClaimsExt`] reads the verified [`Claims`] from a [`tonic::Request`]'s
//! extensions and checks scopes, returning a [`tonic::Status`]. [`GrpcScopesLayer`] maps gRPC
//! methods (`/package.Service/Method`) to [`ScopePolicy`]s, so that a whole service is guarded
//! declaratively; a method it does not list is **denied** (`PERMISSION_DENIED`) unless
//! [`allow_unlisted`](GrpcScopesLayer::allow_unlisted) is called, so that a method added later
//! is not open by accident.
//!
//! ```
//! # #[cfg(all(feature = "dev-issuer", any(feature = "aws-lc-rs", feature = "rust-crypto")))]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use bearer_guard::dev_issuer::SigningKey;
//! use bearer_guard::{
//!     Algorithm, ClaimsExt, GrpcRejection, GrpcScopesLayer, JwtAuthLayer, ScopePolicy, Verifier,
//! };
//! use http::Request;
//! use tonic::body::Body;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let secret = b"an-example-secret-of-at-least-32-bytes!!";
//! let verifier = Verifier::builder()
//!     .issuer("https://issuer.example/")
//!     .audience("urn:worldmappers")
//!     .hmac_secret(secret)
//!     .build()
//!     .unwrap();
//! let svc = ServiceBuilder::new()
//!     .layer(JwtAuthLayer::new(verifier).rejection(GrpcRejection::new()))
//!     .layer(GrpcScopesLayer::new().method(
//!         "/world_mappers.v1.WorldMappers/Geocode",
//!         ScopePolicy::all_of(["geocode:location"]),
//!     ))
//!     .service_fn(|req: Request<Body>| async move {
//!         // A tonic handler calls `request.claims()` on its `tonic::Request`.
//!         assert_eq!(req.extensions().claims().unwrap().subject(), Some("alice"));
//!         Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
//!     });
//! let call = |token: Option<String>| {
//!     let mut req = Request::post("/world_mappers.v1.WorldMappers/Geocode")
//!         .header("content-type", "application/grpc");
//!     if let Some(token) = token {
//!         req = req.header("authorization", format!("Bearer {token}"));
//!     }
//!     req.body(Body::empty()).unwrap()
//! };
//!
//! // No token: HTTP 200, trailers-only, grpc-status 16 (UNAUTHENTICATED).
//! let res = svc.clone().oneshot(call(None)).await.unwrap();
//! assert_eq!(res.status(), 200);
//! assert_eq!(res.headers()["grpc-status"], "16");
//! assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"api\"");
//!
//! // A token with the scope: the call goes through.
//! let now = std::time::SystemTime::now()
//!     .duration_since(std::time::UNIX_EPOCH)
//!     .unwrap()
//!     .as_secs();
//! let key = SigningKey::hmac(Algorithm::HS256, secret, "k1").unwrap();
//! let token = key
//!     .sign(&serde_json::json!({
//!         "iss": "https://issuer.example/", "aud": "urn:worldmappers", "sub": "alice",
//!         "exp": now + 60, "scope": "geocode:location",
//!     }))
//!     .unwrap();
//! let res = svc.oneshot(call(Some(token))).await.unwrap();
//! assert!(res.headers().get("grpc-status").is_none());
//! # }
//! # #[cfg(not(all(feature = "dev-issuer", any(feature = "aws-lc-rs", feature = "rust-crypto"))))]
//! # fn main() {}
//! ```
//!
//! With a tonic server, add the layers to the whole server or to one service (both layers'
//! services implement [`NamedService`]):
//!
//! ```no_run
//! # async fn f<S>(verifier: bearer_guard::Verifier, svc: S) -> Result<(), Box<dyn std::error::Error>>
//! # where
//! #     S: tower_service::Service<http::Request<tonic::body::Body>, Response = http::Response<tonic::body::Body>, Error = std::convert::Infallible>
//! #         + tonic::server::NamedService + Clone + Send + Sync + 'static,
//! #     S::Future: Send + 'static,
//! # {
//! use bearer_guard::{GrpcRejection, GrpcScopesLayer, JwtAuthLayer, ScopePolicy};
//! use tower::ServiceBuilder;
//!
//! let auth = ServiceBuilder::new()
//!     .layer(JwtAuthLayer::new(verifier).rejection(GrpcRejection::new()))
//!     .layer(
//!         GrpcScopesLayer::new()
//!             .method("/world_mappers.v1.WorldMappers/Geocode", ScopePolicy::all_of(["geocode:location"]))
//!             .method("/world_mappers.v1.WorldMappers/Directions", ScopePolicy::all_of(["directions"])),
//!     )
//!     .into_inner();
//! tonic::transport::Server::builder()
//!     .layer(auth)
//!     .add_service(svc)
//!     .serve("127.0.0.1:50051".parse()?)
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Certificate-bound tokens on tonic's TLS
//!
//! With the `tonic-tls` feature, a tonic server that ends TLS itself
//! (`Server::builder().tls_config(..)` with a client CA) needs nothing more for
//! certificate-bound tokens (RFC 8705, see the [`mtls`](crate::mtls) module): a layer with
//! [`Mtls::peer_certificate`](crate::mtls::Mtls::peer_certificate) takes the client's leaf
//! certificate from the connection record tonic's TLS puts on each request
//! (`TlsConnectInfo`, what `tonic::Request::peer_certs` reads) and checks the token's binding
//! to it on every call. The certificate's thumbprint is computed once per connection: the
//! layer remembers the certificates of up to 1,024 connections (each certificate's bytes,
//! typically 0.5–2 KB; certificates over 8 KiB are not remembered, so at most about 8 MiB;
//! past that, a call costs one SHA-256 more). The request then also carries that certificate as a
//! [`PeerCertificate`](crate::mtls::PeerCertificate). A bound token without its certificate,
//! or with another one, gets 16 `UNAUTHENTICATED`; handlers read the binding with
//! [`ClaimsExt::mtls`].
//!
//! ```no_run
//! # async fn f<S>(verifier: bearer_guard::Verifier, svc: S) -> Result<(), Box<dyn std::error::Error>>
//! # where
//! #     S: tower_service::Service<http::Request<tonic::body::Body>, Response = http::Response<tonic::body::Body>, Error = std::convert::Infallible>
//! #         + tonic::server::NamedService + Clone + Send + Sync + 'static,
//! #     S::Future: Send + 'static,
//! # {
//! use bearer_guard::mtls::{Mtls, MtlsMode};
//! use bearer_guard::{GrpcRejection, JwtAuthLayer};
//! use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
//!
//! let tls = ServerTlsConfig::new()
//!     .identity(Identity::from_pem(std::fs::read("server.pem")?, std::fs::read("server.key")?))
//!     // Client certificates required, and verified against this CA.
//!     .client_ca_root(Certificate::from_pem(std::fs::read("client-ca.pem")?));
//! let auth = JwtAuthLayer::new(verifier)
//!     .mtls(Mtls::peer_certificate().mode(MtlsMode::BoundWhenClaimed))
//!     .rejection(GrpcRejection::new());
//! Server::builder()
//!     .tls_config(tls)?
//!     .layer(auth)
//!     .add_service(svc)
//!     .serve("127.0.0.1:50051".parse()?)
//!     .await?;
//! // In a handler, `request.mtls()?` gives the certificate's thumbprint for a bound token.
//! # Ok(())
//! # }
//! ```
//!
//! - Which certificates are accepted at all is tonic's TLS server's job (the client CA). With
//!   `client_auth_optional(true)`, a client without a certificate connects and can use
//!   unbound tokens (mode [`BoundWhenClaimed`](crate::mtls::MtlsMode::BoundWhenClaimed)),
//!   never bound ones.
//! - tonic's record is read for TCP connections (`serve`, `serve_with_incoming` of TCP
//!   streams). With another transport (a Unix socket) or TLS ended by your own acceptor, put
//!   a [`PeerCertificate`](crate::mtls::PeerCertificate) in the request's extensions
//!   yourself; one already there is used rather than tonic's record.
//! - tonic's `ServerTlsConfig` takes rustls' process-wide crypto provider. The `tonic-tls`
//!   feature adds none; bearer-guard's `tls` and `mtls` features compile in aws-lc-rs, so with
//!   tonic's `tls-aws-lc` there is one provider, while with `tls-ring` there are two and
//!   rustls asks for `CryptoProvider::install_default` before the server is configured.
//!
//! # Deployment caveats
//!
//! - `Server::builder().layer(..)` guards every service of the server, the gRPC health and
//!   reflection services included. To leave one open, wrap only the guarded services:
//!   `.add_service(auth.layer(MyServer::new(..)))`.
//! - In an axum router, `Router::layer` also guards the REST routes: those get the HTTP
//!   answers. A [`GrpcScopesLayer`] applied to REST routes denies them (they are not listed
//!   methods); add it to the gRPC routes only.
//! - With [`optional`](crate::JwtAuthLayer::optional) authentication, [`GrpcScopesLayer`]
//!   refuses anonymous calls (`UNAUTHENTICATED`) to every method, listed or not.
//! - gRPC-Web: `application/grpc-web…` requests are gRPC requests here; put this layer outside
//!   the gRPC-Web translation layer so that its trailers-only answer reaches the client as is.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Request, Response};
use serde::de::DeserializeOwned;
use tonic::metadata::MetadataMap;
use tonic::server::NamedService;
use tonic::{Code, Status};
use tower_layer::Layer;
use tower_service::Service;

use crate::claims::{Claims, Scopes};
use crate::dpop::DpopConfirmation;
use crate::error::{AuthError, AuthErrorKind, InvalidTokenReason};
use crate::layer::JwtAuth;
use crate::mtls::MtlsConfirmation;
use crate::rejection::{DefaultRejection, Rejection, log};
use crate::scope::{Guard, GuardFuture, NO_LAYER, ScopePolicy, guard, no_layer_response};

/// Whether a request is a gRPC call: its `content-type` is `application/grpc` or starts with
/// `application/grpc+` / `application/grpc;` / `application/grpc-web` (the gRPC-over-HTTP/2
/// and gRPC-Web protocols).
pub fn is_grpc_request(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let ct = ct.trim_start();
            ct.get(..16)
                .is_some_and(|p| p.eq_ignore_ascii_case("application/grpc"))
                && matches!(ct.as_bytes().get(16), None | Some(b'+' | b';' | b'-'))
        })
}

/// A body type [`GrpcRejection`] and [`GrpcScopesLayer`] can answer with: tonic's
/// [`Body`](tonic::body::Body) and, with the `axum` feature, axum's.
///
/// Sealed: it cannot be implemented outside this crate.
pub trait RejectionBody: Default + sealed::Sealed {
    /// A body holding `bytes`.
    fn from_bytes(bytes: Bytes) -> Self;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for tonic::body::Body {}
    #[cfg(feature = "axum")]
    impl Sealed for axum::body::Body {}
}

impl RejectionBody for tonic::body::Body {
    fn from_bytes(bytes: Bytes) -> Self {
        Self::new(http_body_util::Full::new(bytes))
    }
}

#[cfg(feature = "axum")]
impl RejectionBody for axum::body::Body {
    fn from_bytes(bytes: Bytes) -> Self {
        Self::from(bytes)
    }
}

/// Answers gRPC calls with a gRPC status, other requests as [`DefaultRejection`] does (see the
/// [module docs](crate::tonic) for the mapping).
///
/// Use it with [`JwtAuthLayer::rejection`](crate::JwtAuthLayer::rejection); the challenge
/// settings (realm, descriptions, resource metadata) are the layer's
/// [`challenge`](crate::JwtAuthLayer::challenge) (call that first).
///
/// ```
/// use bearer_guard::{AuthErrorKind, GrpcRejection};
/// assert_eq!(GrpcRejection::new().code(AuthErrorKind::InsufficientScope), tonic::Code::PermissionDenied);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcRejection {
    _priv: (),
}

impl GrpcRejection {
    /// The gRPC rejection.
    pub fn new() -> Self {
        Self::default()
    }

    /// The gRPC code for a kind of failure: the one place where the mapping is made.
    pub fn code(&self, kind: AuthErrorKind) -> Code {
        match kind {
            AuthErrorKind::MissingToken
            | AuthErrorKind::MalformedRequest
            | AuthErrorKind::InvalidToken(_)
            | AuthErrorKind::InvalidDpopProof(_)
            | AuthErrorKind::UseDpopNonce => Code::Unauthenticated,
            AuthErrorKind::InsufficientScope => Code::PermissionDenied,
            AuthErrorKind::KeysUnavailable
            | AuthErrorKind::ReplayStoreUnavailable
            | AuthErrorKind::IntrospectionUnavailable => Code::Unavailable,
        }
    }

    /// The gRPC status for `error`: its [`code`](Self::code), the error's description as
    /// message (with the required scopes for an insufficient scope), and `challenge`'s
    /// `www-authenticate` values as metadata (with DPoP, the `DPoP` challenge, and a
    /// `dpop-nonce` for `use_dpop_nonce`).
    pub fn status(&self, error: &AuthError, challenge: &DefaultRejection) -> Status {
        let message = match error.required_scopes() {
            Some(scopes) => format!("{}; required: {scopes}", error.description()),
            None => error.description().to_owned(),
        };
        let mut headers = HeaderMap::new();
        for v in challenge.www_authenticate_all(error) {
            headers.append(WWW_AUTHENTICATE, v);
        }
        if let Some(nonce) = error
            .dpop_nonce()
            .and_then(|n| HeaderValue::from_str(n).ok())
        {
            headers.insert(crate::rejection::DPOP_NONCE, nonce);
        }
        Status::with_metadata(
            self.code(error.kind()),
            message,
            MetadataMap::from_headers(headers),
        )
    }

    /// The trailers-only gRPC response for `error` (HTTP 200, `content-type:
    /// application/grpc`, `grpc-status`, `grpc-message`, `www-authenticate`), with the
    /// [`AuthError`] and the [`Status`] in its extensions.
    pub fn grpc_response<B: Default>(
        &self,
        error: AuthError,
        challenge: &DefaultRejection,
    ) -> Response<B> {
        let status = self.status(&error, challenge);
        let mut res = status_response(status);
        res.extensions_mut().insert(error);
        res
    }
}

/// What [`Status::into_http`] does, without its `unwrap`.
fn status_response<B: Default>(status: Status) -> Response<B> {
    let mut res = Response::new(B::default());
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    if status.add_header(h).is_err() {
        // Only a message or metadata that cannot be a header value gets here: keep the code.
        h.insert(
            Status::GRPC_STATUS,
            HeaderValue::from(i32::from(status.code())),
        );
    }
    res.extensions_mut().insert(status);
    res
}

fn challenge_of(extensions: &http::Extensions) -> DefaultRejection {
    extensions
        .get::<DefaultRejection>()
        .cloned()
        .unwrap_or_default()
}

impl<B: RejectionBody> Rejection<B> for GrpcRejection {
    /// Without the request, the answer is the gRPC one.
    fn reject(&self, error: AuthError) -> Response<B> {
        self.grpc_response(error, &DefaultRejection::default())
    }

    fn reject_request(&self, error: AuthError, request: &Parts) -> Response<B> {
        let challenge = challenge_of(&request.extensions);
        if is_grpc_request(&request.headers) {
            self.grpc_response(error, &challenge)
        } else {
            Rejection::<Bytes>::reject(&challenge, error).map(B::from_bytes)
        }
    }
}

impl From<AuthError> for Status {
    /// The [`GrpcRejection`] status, with the default challenge.
    fn from(error: AuthError) -> Self {
        GrpcRejection::new().status(&error, &DefaultRejection::default())
    }
}

/// Reads the verified claims in tonic handlers and interceptors.
///
/// Implemented for [`tonic::Request`] and for its [extensions](tonic::Request::extensions)
/// (the same as [`http::Extensions`]). Errors are ready to return from a handler:
/// `UNAUTHENTICATED` for an anonymous call (with
/// [`optional`](crate::JwtAuthLayer::optional) authentication), `PERMISSION_DENIED` for a
/// missing scope, `INTERNAL` when no [`JwtAuthLayer`](crate::JwtAuthLayer) ran.
///
/// ```
/// use bearer_guard::{ClaimsExt, ScopePolicy};
/// use tonic::{Request, Response, Status};
///
/// async fn directions(request: Request<String>) -> Result<Response<Vec<String>>, Status> {
///     let claims = request.require_scopes(&ScopePolicy::all_of(["directions"]))?;
///     let who = claims.subject().unwrap_or("someone").to_owned();
///     Ok(Response::new(vec![format!("{who}: turn left")]))
/// }
/// ```
pub trait ClaimsExt {
    /// The verified claims.
    ///
    /// # Errors
    ///
    /// `UNAUTHENTICATED` for an anonymous call, `INTERNAL` without the layer.
    fn claims(&self) -> Result<&Claims, Status>;

    /// The verified claims, or `None` for an anonymous call (optional authentication).
    ///
    /// # Errors
    ///
    /// `INTERNAL` without the layer.
    fn optional_claims(&self) -> Result<Option<&Claims>, Status>;

    /// The granted scopes.
    ///
    /// # Errors
    ///
    /// As [`claims`](Self::claims).
    fn scopes(&self) -> Result<&Scopes, Status> {
        self.claims().map(Claims::scopes)
    }

    /// The claims deserialized into your own type.
    ///
    /// # Errors
    ///
    /// As [`claims`](Self::claims), and `UNAUTHENTICATED` when the claims do not fit `C`.
    fn claims_as<C: DeserializeOwned>(&self) -> Result<C, Status>;

    /// The verified claims, once `policy` is satisfied.
    ///
    /// # Errors
    ///
    /// As [`claims`](Self::claims), and `PERMISSION_DENIED` naming the required scopes.
    fn require_scopes(&self, policy: &ScopePolicy) -> Result<&Claims, Status>;

    /// The DPoP confirmation (the thumbprint of the client's key) when the call was made
    /// with a DPoP-bound token and proof, `None` for a bearer token or an anonymous call.
    ///
    /// # Errors
    ///
    /// `INTERNAL` without the layer.
    fn dpop(&self) -> Result<Option<&DpopConfirmation>, Status>;

    /// The certificate binding (the thumbprint of the client certificate, RFC 8705) when the
    /// call was made with a certificate-bound token and its certificate, `None` for an
    /// unbound token or an anonymous call.
    ///
    /// # Errors
    ///
    /// `INTERNAL` without the layer.
    fn mtls(&self) -> Result<Option<&MtlsConfirmation>, Status>;
}

fn denied(error: AuthError, extensions: &http::Extensions) -> Status {
    log(&error);
    GrpcRejection::new().status(&error, &challenge_of(extensions))
}

fn no_layer_status() -> Status {
    tracing::error!("{NO_LAYER}");
    Status::internal(NO_LAYER)
}

impl ClaimsExt for http::Extensions {
    fn claims(&self) -> Result<&Claims, Status> {
        self.optional_claims()?
            .ok_or_else(|| denied(AuthError::missing_token(), self))
    }

    fn optional_claims(&self) -> Result<Option<&Claims>, Status> {
        match self.get::<Claims>() {
            Some(c) => Ok(Some(c)),
            None if self.get::<DefaultRejection>().is_some() => Ok(None),
            None => Err(no_layer_status()),
        }
    }

    fn claims_as<C: DeserializeOwned>(&self) -> Result<C, Status> {
        self.claims()?.deserialize::<C>().map_err(|_| {
            denied(
                AuthError::invalid_with(
                    InvalidTokenReason::InvalidClaim,
                    "the token's claims do not have the expected shape",
                ),
                self,
            )
        })
    }

    fn require_scopes(&self, policy: &ScopePolicy) -> Result<&Claims, Status> {
        let claims = self.claims()?;
        policy.check(claims.scopes()).map_err(|e| denied(e, self))?;
        Ok(claims)
    }

    fn dpop(&self) -> Result<Option<&DpopConfirmation>, Status> {
        match self.get::<DpopConfirmation>() {
            Some(c) => Ok(Some(c)),
            None if self.get::<DefaultRejection>().is_some() => Ok(None),
            None => Err(no_layer_status()),
        }
    }

    fn mtls(&self) -> Result<Option<&MtlsConfirmation>, Status> {
        match self.get::<MtlsConfirmation>() {
            Some(c) => Ok(Some(c)),
            None if self.get::<DefaultRejection>().is_some() => Ok(None),
            None => Err(no_layer_status()),
        }
    }
}

impl<T> ClaimsExt for tonic::Request<T> {
    fn claims(&self) -> Result<&Claims, Status> {
        self.extensions().claims()
    }

    fn optional_claims(&self) -> Result<Option<&Claims>, Status> {
        self.extensions().optional_claims()
    }

    fn claims_as<C: DeserializeOwned>(&self) -> Result<C, Status> {
        self.extensions().claims_as()
    }

    fn require_scopes(&self, policy: &ScopePolicy) -> Result<&Claims, Status> {
        self.extensions().require_scopes(policy)
    }

    fn dpop(&self) -> Result<Option<&DpopConfirmation>, Status> {
        self.extensions().dpop()
    }

    fn mtls(&self) -> Result<Option<&MtlsConfirmation>, Status> {
        self.extensions().mtls()
    }
}

/// What a method not listed in a [`GrpcScopesLayer`] gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unlisted {
    Deny,
    Allow,
}

#[derive(Clone)]
struct MethodMap {
    methods: HashMap<Box<str>, ScopePolicy>,
    services: HashMap<Box<str>, ScopePolicy>,
    unlisted: Unlisted,
}

/// Per-method scope requirements for gRPC services: a map from the gRPC path
/// (`/package.Service/Method`) to a [`ScopePolicy`]. Place it inside a
/// [`JwtAuthLayer`](crate::JwtAuthLayer) (which verifies the token); see the
/// [module docs](crate::tonic).
///
/// A call's policy is its method's, else its service's ([`service`](Self::service)), else the
/// unlisted default: **deny** (`PERMISSION_DENIED`, "no scope policy allows this method"), or,
/// after [`allow_unlisted`](Self::allow_unlisted), any verified token. Paths are compared
/// exactly (case-sensitive), as gRPC routes them.
///
/// Answers: `UNAUTHENTICATED` for an anonymous call, `PERMISSION_DENIED` for a missing scope,
/// `INTERNAL` if no `JwtAuthLayer` ran (non-gRPC requests get the HTTP equivalents).
///
/// ```
/// use bearer_guard::{GrpcScopesLayer, ScopePolicy};
/// let scopes = GrpcScopesLayer::new()
///     .method("/world_mappers.v1.WorldMappers/Geocode", ScopePolicy::all_of(["geocode:location"]))
///     .service("grpc.health.v1.Health", ScopePolicy::all_of(["health"]));
/// assert!(scopes.policy("/world_mappers.v1.WorldMappers/Directions").is_none());
/// assert!(scopes.policy("/grpc.health.v1.Health/Check").is_some());
/// ```
#[derive(Clone)]
#[must_use]
pub struct GrpcScopesLayer {
    map: Arc<MethodMap>,
}

impl Default for GrpcScopesLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for GrpcScopesLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcScopesLayer")
            .field("methods", &self.map.methods)
            .field("services", &self.map.services)
            .field("unlisted", &self.map.unlisted)
            .finish()
    }
}

impl GrpcScopesLayer {
    /// No method listed; unlisted methods are denied.
    pub fn new() -> Self {
        Self {
            map: Arc::new(MethodMap {
                methods: HashMap::new(),
                services: HashMap::new(),
                unlisted: Unlisted::Deny,
            }),
        }
    }

    fn map_mut(&mut self) -> &mut MethodMap {
        Arc::make_mut(&mut self.map)
    }

    /// Requires `policy` for the method at `path` (`/package.Service/Method`, as in the
    /// request URI). Listing a path again replaces its policy.
    pub fn method(mut self, path: impl Into<String>, policy: ScopePolicy) -> Self {
        self.map_mut()
            .methods
            .insert(path.into().into_boxed_str(), policy);
        self
    }

    /// Requires `policy` for every method of `service` (`package.Service`, as in
    /// [`NamedService::NAME`]) that is not listed with [`method`](Self::method).
    pub fn service(mut self, service: impl Into<String>, policy: ScopePolicy) -> Self {
        let service = service.into();
        let name = service.trim_matches('/');
        self.map_mut().services.insert(name.into(), policy);
        self
    }

    /// Lets a verified token call methods that are neither listed nor in a listed service,
    /// whatever its scopes (by default they are denied).
    pub fn allow_unlisted(mut self) -> Self {
        self.map_mut().unlisted = Unlisted::Allow;
        self
    }

    /// The policy for the method at `path`: its own, else its service's; `None` when it is
    /// unlisted.
    pub fn policy(&self, path: &str) -> Option<&ScopePolicy> {
        self.map.policy(path)
    }
}

impl MethodMap {
    fn policy(&self, path: &str) -> Option<&ScopePolicy> {
        self.methods.get(path).or_else(|| {
            let service = path.strip_prefix('/')?.rsplit_once('/')?.0;
            self.services.get(service)
        })
    }

    fn guard(&self, path: &str, extensions: &http::Extensions) -> Guard {
        match (self.policy(path), self.unlisted) {
            (Some(policy), _) => guard(extensions, policy),
            (None, Unlisted::Allow) => guard(extensions, &ScopePolicy::all_of([] as [&str; 0])),
            (None, Unlisted::Deny) => {
                match guard(extensions, &ScopePolicy::any_of([] as [&str; 0])) {
                    // Authenticated, but no policy lists the method.
                    Guard::Denied(e, challenge) if e.kind() == AuthErrorKind::InsufficientScope => {
                        Guard::Denied(
                            AuthError::new(
                                AuthErrorKind::InsufficientScope,
                                "no scope policy allows this method",
                            ),
                            challenge,
                        )
                    }
                    other => other,
                }
            }
        }
    }
}

impl<S> Layer<S> for GrpcScopesLayer {
    type Service = GrpcScopes<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcScopes {
            inner,
            map: self.map.clone(),
        }
    }
}

/// The service of [`GrpcScopesLayer`].
#[derive(Clone)]
pub struct GrpcScopes<S> {
    inner: S,
    map: Arc<MethodMap>,
}

impl<S: fmt::Debug> fmt::Debug for GrpcScopes<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcScopes")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> GrpcScopes<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the guard, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GrpcScopes<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: RejectionBody,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = GuardFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        match self.map.guard(req.uri().path(), req.extensions()) {
            Guard::Allowed => GuardFuture::inner(self.inner.call(req)),
            Guard::Denied(e, _) => {
                log(&e);
                let (head, _) = req.into_parts();
                GuardFuture::done(GrpcRejection::new().reject_request(e, &head))
            }
            Guard::NoLayer if is_grpc_request(req.headers()) => {
                GuardFuture::done(status_response(no_layer_status()))
            }
            Guard::NoLayer => {
                GuardFuture::done(no_layer_response::<Bytes>().map(ResBody::from_bytes))
            }
        }
    }
}

impl<S: NamedService> NamedService for GrpcScopes<S> {
    const NAME: &'static str = S::NAME;
}

impl<S: NamedService, R> NamedService for JwtAuth<S, R> {
    const NAME: &'static str = S::NAME;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InvalidTokenReason;

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn public_types_are_send_and_sync() {
        assert_send_sync::<GrpcRejection>();
        assert_send_sync::<GrpcScopesLayer>();
        assert_send_sync::<GrpcScopes<()>>();
    }

    fn parts(content_type: Option<&str>) -> Parts {
        let mut req = Request::post("/world_mappers.v1.WorldMappers/Geocode");
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        req.body(()).expect("request").into_parts().0
    }

    #[test]
    fn grpc_content_types_are_recognized() {
        for ct in [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc; charset=utf-8",
            "application/grpc-web+proto",
            "Application/GRPC",
        ] {
            assert!(is_grpc_request(&parts(Some(ct)).headers), "{ct}");
        }
        for ct in ["application/json", "application/grpcx", "text/plain", ""] {
            assert!(!is_grpc_request(&parts(Some(ct)).headers), "{ct}");
        }
        assert!(!is_grpc_request(&parts(None).headers));
    }

    #[test]
    fn each_kind_maps_to_its_grpc_code() {
        let r = GrpcRejection::new();
        assert_eq!(r.code(AuthErrorKind::MissingToken), Code::Unauthenticated);
        assert_eq!(
            r.code(AuthErrorKind::MalformedRequest),
            Code::Unauthenticated
        );
        assert_eq!(
            r.code(AuthErrorKind::InvalidToken(InvalidTokenReason::Expired)),
            Code::Unauthenticated
        );
        assert_eq!(
            r.code(AuthErrorKind::InsufficientScope),
            Code::PermissionDenied
        );
        assert_eq!(r.code(AuthErrorKind::KeysUnavailable), Code::Unavailable);
    }

    #[test]
    fn a_grpc_rejection_is_a_trailers_only_200_with_a_percent_encoded_message() {
        let e = AuthError::invalid(InvalidTokenReason::Expired);
        let res: Response<tonic::body::Body> =
            GrpcRejection::new().reject_request(e, &parts(Some("application/grpc")));
        assert_eq!(res.status(), http::StatusCode::OK);
        let h = res.headers();
        assert_eq!(h[CONTENT_TYPE], "application/grpc");
        assert_eq!(h["grpc-status"], "16");
        assert_eq!(h["grpc-message"], "the%20token%20has%20expired");
        assert_eq!(
            h[WWW_AUTHENTICATE],
            "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"the token has expired\""
        );
        let status = Status::from_header_map(h).expect("status");
        assert_eq!(status.message(), "the token has expired");
        assert!(res.extensions().get::<AuthError>().is_some());
        assert!(res.extensions().get::<Status>().is_some());
    }

    #[test]
    fn a_malformed_request_is_unauthenticated() {
        let e = AuthError::malformed_request("two Authorization headers");
        let res: Response<tonic::body::Body> =
            GrpcRejection::new().reject_request(e, &parts(Some("application/grpc")));
        assert_eq!(res.headers()["grpc-status"], "16");
        assert!(
            res.headers()[WWW_AUTHENTICATE]
                .to_str()
                .expect("ascii")
                .contains("invalid_request")
        );
    }

    #[test]
    fn an_insufficient_scope_names_the_required_scopes() {
        let e = AuthError::insufficient_scope("directions");
        let status = Status::from(e);
        assert_eq!(status.code(), Code::PermissionDenied);
        assert_eq!(
            status.message(),
            "the token lacks a required scope; required: directions"
        );
        let challenge = status
            .metadata()
            .get("www-authenticate")
            .expect("challenge");
        assert!(
            challenge
                .to_str()
                .expect("ascii")
                .contains("scope=\"directions\"")
        );
    }

    #[test]
    fn keys_unavailable_is_unavailable_without_a_challenge() {
        let e = AuthError::keys_unavailable(None);
        let res: Response<tonic::body::Body> =
            GrpcRejection::new().reject_request(e, &parts(Some("application/grpc")));
        assert_eq!(res.headers()["grpc-status"], "14");
        assert!(res.headers().get(WWW_AUTHENTICATE).is_none());
    }

    #[test]
    fn other_requests_get_the_http_answer() {
        let e = AuthError::invalid(InvalidTokenReason::Expired);
        let res: Response<tonic::body::Body> =
            GrpcRejection::new().reject_request(e, &parts(Some("application/json")));
        assert_eq!(res.status(), http::StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
        assert!(res.headers().get("grpc-status").is_none());
    }

    #[test]
    fn the_layers_challenge_settings_are_used() {
        let mut head = parts(Some("application/grpc"));
        head.extensions
            .insert(DefaultRejection::new().realm(Some("world-mappers")));
        let res: Response<tonic::body::Body> =
            GrpcRejection::new().reject_request(AuthError::missing_token(), &head);
        assert_eq!(
            res.headers()[WWW_AUTHENTICATE],
            "Bearer realm=\"world-mappers\""
        );
    }

    #[test]
    fn a_method_policy_wins_over_its_services() {
        let layer = GrpcScopesLayer::new()
            .service("/pkg.Svc/", ScopePolicy::all_of(["svc"]))
            .method("/pkg.Svc/A", ScopePolicy::all_of(["a"]));
        assert_eq!(
            layer.policy("/pkg.Svc/A"),
            Some(&ScopePolicy::all_of(["a"]))
        );
        assert_eq!(
            layer.policy("/pkg.Svc/B"),
            Some(&ScopePolicy::all_of(["svc"]))
        );
        assert_eq!(layer.policy("/pkg.Other/B"), None);
        assert_eq!(layer.policy("pkg.Svc/B"), None);
    }

    #[test]
    fn helpers_without_the_layer_answer_internal() {
        let ext = http::Extensions::new();
        assert_eq!(ext.claims().expect_err("no layer").code(), Code::Internal);
    }

    #[test]
    fn helpers_refuse_anonymous_calls_as_unauthenticated() {
        let mut ext = http::Extensions::new();
        ext.insert(DefaultRejection::new());
        assert!(ext.optional_claims().expect("anonymous").is_none());
        let status = ext.claims().expect_err("anonymous");
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(status.message(), "no bearer token in the request");
    }
}
