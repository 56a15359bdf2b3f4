//! The tower middleware: [`JwtAuthLayer`] → [`JwtAuth`] → [`ResponseFuture`].
//!
//! For each request the service finds the bearer token (see [`bearer_token`](crate::bearer_token)),
//! verifies it with the [`Verifier`](crate::Verifier), puts the verified
//! [`Claims`](crate::Claims) in the request extensions and calls the inner service; a failure
//! becomes a response built by the [`Rejection`](crate::Rejection) (RFC 6750 answers by
//! default), never an error: `type Error = S::Error`.
//!
//! ```
//! # #[cfg(feature = "aws-lc-rs")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use bearer_guard::{JwtAuthLayer, Verifier};
//! use http::{Request, StatusCode};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let verifier = Verifier::builder()
//!     .issuer("https://issuer.example/")
//!     .audience("urn:worldmappers")
//!     .hmac_secret(b"an-example-secret-of-at-least-32-bytes!!")
//!     .build()
//!     .unwrap();
//! let svc = ServiceBuilder::new()
//!     .layer(JwtAuthLayer::new(verifier))
//!     .service_fn(|req: Request<axum::body::Body>| async move {
//!         let claims = req.extensions().get::<bearer_guard::Claims>().cloned();
//!         Ok::<_, std::convert::Infallible>(http::Response::new(axum::body::Body::from(
//!             claims.map(|c| c.issuer().to_owned()).unwrap_or_default(),
//!         )))
//!     });
//!
//! // No credentials: 401 with a bare challenge.
//! let res = svc.clone().oneshot(Request::new(axum::body::Body::empty())).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"api\"");
//!
//! // A token that is not a JWT: 401 invalid_token.
//! let req = Request::builder()
//!     .header("authorization", "Bearer not-a-jwt")
//!     .body(axum::body::Body::empty())
//!     .unwrap();
//! let res = svc.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert!(res.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
//! # }
//! # #[cfg(not(feature = "aws-lc-rs"))]
//! # fn main() {}
//! ```
//!
//! # Deployment caveats
//!
//! - With axum, `Router::layer` protects every route, including the 404 fallback;
//!   `Router::route_layer` protects only matched routes (unknown paths then answer 404 to
//!   anyone). Public routes such as `/healthz` go on a router without the layer.
//! - Behind a proxy, make sure the proxy forwards the `Authorization` header unchanged and
//!   does not merge two of them into one.
//! - Clock skew between issuer and API is absorbed by the verifier's leeway (30 s default).

mod dpop;
mod future;
#[allow(clippy::module_inception)]
mod layer;
mod mtls;
mod resolve;
mod service;
#[cfg(feature = "tonic-tls")]
mod tonic_tls;

pub use future::ResponseFuture;
pub use layer::JwtAuthLayer;
pub use service::JwtAuth;
