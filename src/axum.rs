//! axum extractors (feature `axum`).
//!
//! | extractor | gives | refuses with |
//! |---|---|---|
//! | [`Claims`] | the verified claims | 401 if the request was anonymous (optional auth) |
//! | `Option<Claims>` | `None` for anonymous requests (optional auth) | — |
//! | [`Scopes`] | the granted scopes | as `Claims` |
//! | [`Auth<C>`] | your own claims type | 401 `invalid_token` if the claims don't fit `C` (naming a missing field; serde's message is logged at WARN) |
//! | [`RequireScopes<T>`] | the claims, once `T`'s scopes are granted | 403 `insufficient_scope` |
//!
//! If no [`JwtAuthLayer`](crate::JwtAuthLayer) ran for the route, every extractor answers
//! 500 with a message saying so (as axum's `Extension` does), not 401.
//!
//! ```
//! use axum::{Router, routing::get};
//! use bearer_guard::{Claims, RequireScopes, scope_requirement};
//!
//! scope_requirement!(
//!     /// `GET /api/directions` needs the `directions` scope.
//!     pub Directions = all_of["directions"]
//! );
//!
//! async fn directions(RequireScopes(claims, ..): RequireScopes<Directions>) -> String {
//!     format!("directions for {}", claims.subject().unwrap_or("someone"))
//! }
//!
//! async fn me(claims: Claims) -> String {
//!     claims.scopes().to_string()
//! }
//!
//! # fn app(verifier: bearer_guard::Verifier) -> Router {
//! Router::new()
//!     .route("/api/directions", get(directions))
//!     .route("/api/me", get(me))
//!     .layer(bearer_guard::JwtAuthLayer::new(verifier))
//! # }
//! ```

use std::fmt;
use std::marker::PhantomData;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use serde::de::DeserializeOwned;

use crate::claims::{Claims, ClaimsError, Scopes};
use crate::error::{AuthError, InvalidTokenReason};
use crate::rejection::{DefaultRejection, Limiter, Rejection, escaped, log};
use crate::scope::{Guard, NO_LAYER, ScopePolicy, guard, no_layer_response};
use crate::verify::sanitize;

/// Why an extractor refused a request.
#[derive(Debug)]
#[non_exhaustive]
pub enum AuthRejection {
    /// The request is not authenticated or not authorized (401 / 403, RFC 6750).
    Denied(AuthError, DefaultRejection),
    /// No `JwtAuthLayer` ran for this route: a server misconfiguration (500).
    LayerMissing,
}

impl AuthRejection {
    /// The status this rejection answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Denied(e, c) => c.status(e),
            Self::LayerMissing => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A text description of the rejection.
    pub fn body_text(&self) -> String {
        match self {
            Self::Denied(e, _) => e.to_string(),
            Self::LayerMissing => NO_LAYER.to_owned(),
        }
    }
}

impl fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.body_text())
    }
}

impl std::error::Error for AuthRejection {}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Denied(e, challenge) => {
                log(&e);
                challenge.reject(e)
            }
            Self::LayerMissing => no_layer_response(),
        }
    }
}

fn claims_of(parts: &Parts) -> Result<Option<Claims>, AuthRejection> {
    match parts.extensions.get::<Claims>() {
        Some(c) => Ok(Some(c.clone())),
        None if parts.extensions.get::<DefaultRejection>().is_some() => Ok(None),
        // Logged once, when the rejection becomes the 500 response.
        None => Err(AuthRejection::LayerMissing),
    }
}

fn challenge_of(parts: &Parts) -> DefaultRejection {
    parts
        .extensions
        .get::<DefaultRejection>()
        .cloned()
        .unwrap_or_default()
}

fn required(parts: &Parts) -> Result<Claims, AuthRejection> {
    claims_of(parts)?
        .ok_or_else(|| AuthRejection::Denied(AuthError::missing_token(), challenge_of(parts)))
}

impl<S: Send + Sync> FromRequestParts<S> for Claims {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        required(parts)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Claims {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        claims_of(parts)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Scopes {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        required(parts).map(|c| c.scopes().clone())
    }
}

/// Your own claims type, deserialized from the verified claims.
///
/// ```
/// use bearer_guard::Auth;
///
/// #[derive(serde::Deserialize)]
/// struct M2mClaims { azp: String, gty: Option<String> }
///
/// async fn handler(Auth(claims): Auth<M2mClaims>) -> String {
///     claims.azp
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Auth<C>(pub C);

impl<S: Send + Sync, C: DeserializeOwned> FromRequestParts<S> for Auth<C> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let claims = required(parts)?;
        claims
            .deserialize::<C>()
            .map(Auth)
            .map_err(|e| AuthRejection::Denied(shape_error::<C>(&e), challenge_of(parts)))
    }
}

/// At most one WARN line a minute for claims that do not fit a handler's type.
static SHAPE_LOG: Limiter = Limiter::new();

/// The refusal of a verified token whose claims do not fit `C`. serde's message goes to the
/// log (escaped: it can quote a claim's value); the description names the missing field when
/// that is the reason (a name from `C`, never token content), else stays generic.
fn shape_error<C>(e: &ClaimsError) -> AuthError {
    if let Some(suppressed) = SHAPE_LOG.allow_now() {
        tracing::warn!(
            claims_type = std::any::type_name::<C>(),
            error = %escaped(&e.to_string()),
            suppressed,
            "bearer-guard refused a verified token whose claims do not fit the Auth<C> type"
        );
    }
    match e.missing_claim() {
        Some(name) => AuthError::invalid_with(
            InvalidTokenReason::MissingClaim,
            format!(
                "the token's claims lack the field '{}'",
                sanitize(crate::fetch::truncate(name, 64))
            ),
        ),
        None => AuthError::invalid_with(
            InvalidTokenReason::InvalidClaim,
            "the token's claims do not have the expected shape",
        ),
    }
}

impl<S: Send + Sync, C: DeserializeOwned> OptionalFromRequestParts<S> for Auth<C> {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        match claims_of(parts)? {
            None => Ok(None),
            Some(_) => <Self as FromRequestParts<S>>::from_request_parts(parts, state)
                .await
                .map(Some),
        }
    }
}

/// A set of scopes a handler requires; declare one with [`scope_requirement!`](crate::scope_requirement).
pub trait ScopeRequirement {
    /// The scopes.
    const SCOPES: &'static [&'static str];
    /// `true`: any one of them suffices; `false`: all are required.
    const ANY: bool = false;
}

/// Declares a [`ScopeRequirement`] type for [`RequireScopes`].
///
/// ```
/// use bearer_guard::scope_requirement;
/// scope_requirement!(pub Geocode = all_of["geocode:location"]);
/// scope_requirement!(pub AnyLocation = any_of["geocode:location", "reverse-geocode:location"]);
/// ```
#[macro_export]
macro_rules! scope_requirement {
    ($(#[$m:meta])* $vis:vis $name:ident = all_of[$($scope:expr),+ $(,)?]) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy)]
        $vis struct $name;
        impl $crate::ScopeRequirement for $name {
            const SCOPES: &'static [&'static str] = &[$($scope),+];
        }
    };
    ($(#[$m:meta])* $vis:vis $name:ident = any_of[$($scope:expr),+ $(,)?]) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy)]
        $vis struct $name;
        impl $crate::ScopeRequirement for $name {
            const SCOPES: &'static [&'static str] = &[$($scope),+];
            const ANY: bool = true;
        }
    };
}

/// The verified claims, once the scopes of `T` are granted (else 403 `insufficient_scope`).
pub struct RequireScopes<T>(pub Claims, pub PhantomData<T>);

impl<T> fmt::Debug for RequireScopes<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RequireScopes").field(&self.0).finish()
    }
}

impl<T> Clone for RequireScopes<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone(), PhantomData)
    }
}

impl<S: Send + Sync, T: ScopeRequirement> FromRequestParts<S> for RequireScopes<T> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Granted: no policy is built (it is needed only to answer a refusal).
        if let Some(claims) = parts.extensions.get::<Claims>() {
            let granted = claims.scopes();
            let allowed = if T::ANY {
                granted.contains_any(T::SCOPES.iter().copied())
            } else {
                T::SCOPES.iter().all(|s| granted.contains(s))
            };
            if allowed {
                return Ok(Self(claims.clone(), PhantomData));
            }
        }
        let policy = if T::ANY {
            ScopePolicy::any_of(T::SCOPES)
        } else {
            ScopePolicy::all_of(T::SCOPES)
        };
        match guard(&parts.extensions, &policy) {
            Guard::Allowed => Ok(Self(required(parts)?, PhantomData)),
            Guard::Denied(e, challenge) => Err(AuthRejection::Denied(e, challenge)),
            Guard::NoLayer => Err(AuthRejection::LayerMissing),
        }
    }
}

/// A binding confirmation the layer put in the request's extensions (DPoP, certificate):
/// `None` when the request was not bound that way, 500 without the layer.
fn confirmation<T: Clone + Send + Sync + 'static>(
    parts: &Parts,
) -> Result<Option<T>, AuthRejection> {
    match parts.extensions.get::<T>() {
        Some(c) => Ok(Some(c.clone())),
        None if parts.extensions.get::<DefaultRejection>().is_some() => Ok(None),
        None => {
            tracing::error!("{NO_LAYER}");
            Err(AuthRejection::LayerMissing)
        }
    }
}

/// [`confirmation`], or `refusal` answered with the layer's challenge settings.
fn required_confirmation<T: Clone + Send + Sync + 'static>(
    parts: &Parts,
    refusal: impl FnOnce() -> AuthError,
) -> Result<T, AuthRejection> {
    confirmation(parts)?.ok_or_else(|| {
        let challenge = parts
            .extensions
            .get::<DefaultRejection>()
            .cloned()
            .unwrap_or_default();
        AuthRejection::Denied(refusal(), challenge)
    })
}

/// The request's DPoP confirmation: 401 `invalid_dpop_proof` when the request was not
/// made with a DPoP proof (a bearer token), 500 without the layer.
impl<S: Send + Sync> FromRequestParts<S> for crate::dpop::DpopConfirmation {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AuthRejection> {
        required_confirmation(parts, || {
            AuthError::invalid_dpop_proof(crate::error::DpopProofReason::Missing)
        })
    }
}

/// `None` when the request was not DPoP-verified.
impl<S: Send + Sync> OptionalFromRequestParts<S> for crate::dpop::DpopConfirmation {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, AuthRejection> {
        confirmation(parts)
    }
}

/// The request's certificate binding: 401 `invalid_token` when the token was not
/// certificate-bound, 500 without the layer.
impl<S: Send + Sync> FromRequestParts<S> for crate::mtls::MtlsConfirmation {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AuthRejection> {
        required_confirmation(parts, || {
            AuthError::invalid(InvalidTokenReason::NotCertificateBound)
        })
    }
}

/// `None` when the token was not certificate-bound.
impl<S: Send + Sync> OptionalFromRequestParts<S> for crate::mtls::MtlsConfirmation {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, AuthRejection> {
        confirmation(parts)
    }
}
