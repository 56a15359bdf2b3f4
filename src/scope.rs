//! Scope requirements: [`ScopePolicy`] and the route-level guard [`RequireScopesLayer`].
//!
//! ```
//! # #[cfg(feature = "axum")]
//! # fn f(verifier: bearer_guard::Verifier) {
//! use axum::{Router, routing::get};
//! use bearer_guard::{JwtAuthLayer, require_scopes};
//!
//! let app: Router = Router::new()
//!     .route("/api/directions", get(|| async { "turn left" }))
//!     .route_layer(require_scopes(["directions"]))
//!     .layer(JwtAuthLayer::new(verifier));
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::claims::{Claims, Scopes};
use crate::error::AuthError;
use crate::rejection::{DefaultRejection, Rejection, log};

/// Which scopes a resource requires: all of a set, or any one of a set.
///
/// A scope that is not a valid RFC 6749 token can never be granted (tokens' scopes are
/// validated), so a policy naming one always refuses.
#[derive(Clone, PartialEq, Eq)]
pub struct ScopePolicy {
    scopes: Arc<[Box<str>]>,
    any: bool,
}

impl fmt::Debug for ScopePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopePolicy")
            .field(if self.any { "any_of" } else { "all_of" }, &self.scopes)
            .finish()
    }
}

impl ScopePolicy {
    /// Every one of `scopes` is required.
    pub fn all_of<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self {
            scopes: scopes.into_iter().map(|s| s.as_ref().into()).collect(),
            any: false,
        }
    }

    /// At least one of `scopes` is required.
    pub fn any_of<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self {
            scopes: scopes.into_iter().map(|s| s.as_ref().into()).collect(),
            any: true,
        }
    }

    /// Whether `granted` satisfies the policy.
    pub fn allows(&self, granted: &Scopes) -> bool {
        let mut required = self.scopes.iter().map(|s| &**s);
        if self.any {
            granted.contains_any(required)
        } else {
            required.all(|s| granted.contains(s))
        }
    }

    /// `Ok` when `granted` satisfies the policy, else an `insufficient_scope` error naming
    /// the required scopes.
    ///
    /// # Errors
    ///
    /// [`AuthErrorKind::InsufficientScope`](crate::AuthErrorKind::InsufficientScope).
    pub fn check(&self, granted: &Scopes) -> Result<(), AuthError> {
        if self.allows(granted) {
            Ok(())
        } else if self.any && self.scopes.len() > 1 {
            Err(AuthError::insufficient_scope_any_of(self.scopes.join(" ")))
        } else {
            Err(AuthError::insufficient_scope(self.scopes.join(" ")))
        }
    }
}

/// A route guard requiring all of `scopes` (use with axum's `route_layer`).
pub fn require_scopes<I, S>(scopes: I) -> RequireScopesLayer
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    RequireScopesLayer::new(ScopePolicy::all_of(scopes))
}

/// A route guard requiring at least one of `scopes`.
pub fn require_any_scope<I, S>(scopes: I) -> RequireScopesLayer
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    RequireScopesLayer::new(ScopePolicy::any_of(scopes))
}

/// A tower layer that answers 403 `insufficient_scope` unless the request's verified
/// [`Claims`] satisfy a [`ScopePolicy`]. Place it inside a
/// [`JwtAuthLayer`](crate::JwtAuthLayer); without one it answers 500.
#[derive(Clone, Debug)]
#[must_use]
pub struct RequireScopesLayer {
    policy: ScopePolicy,
}

impl RequireScopesLayer {
    /// A guard for `policy`.
    pub fn new(policy: ScopePolicy) -> Self {
        Self { policy }
    }
}

impl<S> Layer<S> for RequireScopesLayer {
    type Service = RequireScopes<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireScopes {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// The service of [`RequireScopesLayer`].
#[derive(Clone, Debug)]
pub struct RequireScopes<S> {
    inner: S,
    policy: ScopePolicy,
}

impl<S> RequireScopes<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Consumes the guard, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// What the guard decides for a request's extensions.
pub(crate) enum Guard {
    Allowed,
    Denied(AuthError, DefaultRejection),
    /// The authentication layer did not run for this request.
    NoLayer,
}

pub(crate) fn guard(extensions: &http::Extensions, policy: &ScopePolicy) -> Guard {
    // The challenge is cloned only for a refusal.
    let challenge = || extensions.get::<DefaultRejection>().cloned();
    match extensions.get::<Claims>() {
        Some(claims) => match policy.check(claims.scopes()) {
            Ok(()) => Guard::Allowed,
            Err(e) => Guard::Denied(e, challenge().unwrap_or_default()),
        },
        // Optional authentication let an anonymous request through.
        None => match challenge() {
            Some(challenge) => Guard::Denied(AuthError::missing_token(), challenge),
            None => Guard::NoLayer,
        },
    }
}

pub(crate) const NO_LAYER: &str =
    "bearer-guard: no JwtAuthLayer ran for this route (add it with Router::layer or route_layer)";

pub(crate) fn no_layer_response<B: From<Bytes>>() -> Response<B> {
    tracing::error!("{NO_LAYER}");
    let mut res = Response::new(B::from(Bytes::from_static(NO_LAYER.as_bytes())));
    *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireScopes<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = GuardFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        match guard(req.extensions(), &self.policy) {
            Guard::Allowed => GuardFuture::inner(self.inner.call(req)),
            Guard::Denied(e, challenge) => {
                log(&e);
                GuardFuture::done(challenge.reject(e))
            }
            Guard::NoLayer => GuardFuture::done(no_layer_response()),
        }
    }
}

pin_project! {
    /// The response future of [`RequireScopes`].
    pub struct GuardFuture<F, B> {
        #[pin]
        state: GuardState<F, B>,
    }
}

pin_project! {
    #[project = GuardProj]
    enum GuardState<F, B> {
        Inner {
            #[pin]
            fut: F,
        },
        Done {
            res: Option<Response<B>>,
        },
    }
}

impl<F, B> GuardFuture<F, B> {
    pub(crate) fn inner(fut: F) -> Self {
        Self {
            state: GuardState::Inner { fut },
        }
    }

    pub(crate) fn done(res: Response<B>) -> Self {
        Self {
            state: GuardState::Done { res: Some(res) },
        }
    }
}

impl<F, B, E> Future for GuardFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            GuardProj::Inner { fut } => fut.poll(cx),
            GuardProj::Done { res } => match res.take() {
                Some(res) => Poll::Ready(Ok(res)),
                None => Poll::Pending,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_of_needs_every_scope() {
        let p = ScopePolicy::all_of(["a", "b"]);
        assert!(p.allows(&Scopes::parse("a b c").expect("scopes")));
        assert!(!p.allows(&Scopes::parse("a").expect("scopes")));
    }

    #[test]
    fn any_of_needs_one_scope() {
        let p = ScopePolicy::any_of(["a", "b"]);
        assert!(p.allows(&Scopes::parse("b").expect("scopes")));
        assert!(!p.allows(&Scopes::parse("c").expect("scopes")));
    }

    #[test]
    fn a_refusal_names_the_required_scopes() {
        let e = ScopePolicy::all_of(["a", "b"])
            .check(&Scopes::default())
            .expect_err("refused");
        assert_eq!(e.required_scopes(), Some("a b"));
    }

    #[test]
    fn an_any_of_refusal_says_that_any_one_scope_is_enough() {
        let e = ScopePolicy::any_of(["write:orders", "admin"])
            .check(&Scopes::default())
            .expect_err("refused");
        assert_eq!(e.required_scopes(), Some("write:orders admin"));
        assert!(e.description().contains("any one of them is enough"), "{e}");
        let e = ScopePolicy::all_of(["write:orders", "admin"])
            .check(&Scopes::default())
            .expect_err("refused");
        assert!(!e.description().contains("any one"), "{e}");
    }
}
