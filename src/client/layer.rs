//! [`AddBearerLayer`] → [`AddBearer`]: the outgoing side, a tower middleware that sends the
//! token and retries once when the server refuses it; [`ReplayBody`], which says whether a
//! request can be sent twice.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::future::ResponseFuture;
use super::source::ClientCredentials;

/// The error type of [`AddBearer`]: the inner service's error, or a
/// [`TokenError`](super::TokenError) when no token could be obtained (find it with
/// `downcast_ref`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Whether, and how, a request body can be sent a second time, for the retry after a `401`
/// `invalid_token` answer.
///
/// Implemented by [`CloneBody`] (any `B: Clone`: `String`, `Vec<u8>`, `Bytes`,
/// `http_body_util::Full<Bytes>`, `Empty<Bytes>`, …), by [`NoReplay`] (never retry: for
/// streaming bodies such as tonic's or axum's `Body`), and by any closure
/// `Fn(&B) -> Option<B>` (for example `|b: &reqwest::Body| b.as_bytes().map(|b|
/// reqwest::Body::from(b.to_vec()))`, which replays in-memory bodies only).
pub trait ReplayBody<B> {
    /// A copy of `body` to send again, or `None` when it cannot be replayed (the request is
    /// then sent once, and a `401` is returned as it is).
    fn try_clone_body(&self, body: &B) -> Option<B>;
}

/// Replays bodies that are [`Clone`] (the default of [`AddBearerLayer`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct CloneBody;

impl<B: Clone> ReplayBody<B> for CloneBody {
    fn try_clone_body(&self, body: &B) -> Option<B> {
        Some(body.clone())
    }
}

/// Never replays: a request is sent once (for bodies that cannot be cloned, such as
/// streams). A `401` `invalid_token` answer still drops the cached token, so the next request
/// gets a new one.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoReplay;

impl<B> ReplayBody<B> for NoReplay {
    fn try_clone_body(&self, _body: &B) -> Option<B> {
        None
    }
}

impl<B, F> ReplayBody<B> for F
where
    F: Fn(&B) -> Option<B>,
{
    fn try_clone_body(&self, body: &B) -> Option<B> {
        self(body)
    }
}

/// A tower [`Layer`] that adds `Authorization: Bearer <token>` to every request, with the
/// token from a [`ClientCredentials`] source, and retries once with a new token when the
/// server answers `401` with `error="invalid_token"`. With a DPoP-bound token it sends
/// `Authorization: DPoP <token>` and a new `DPoP` proof per request, and retries once on
/// `401` `use_dpop_nonce`. See the [module docs](crate::client).
///
/// `P` says how to replay a request for that retry: [`CloneBody`] by default (the service
/// then needs `B: Clone`); [`without_retry`](Self::without_retry) for bodies that cannot be
/// cloned (a tonic `Channel`, axum's `Body`); or your own [`ReplayBody`] via
/// [`replay`](Self::replay).
#[must_use]
#[derive(Clone)]
pub struct AddBearerLayer<P = CloneBody> {
    source: ClientCredentials,
    replay: P,
    origin: Option<Arc<str>>,
}

impl<P> fmt::Debug for AddBearerLayer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddBearerLayer")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl AddBearerLayer {
    /// A layer sending tokens from `source`, replaying requests whose body is `Clone`.
    pub fn new(source: ClientCredentials) -> Self {
        Self {
            source,
            replay: CloneBody,
            origin: None,
        }
    }
}

impl<P> AddBearerLayer<P> {
    /// Replays requests for the retry with `replay` (a [`ReplayBody`], e.g. a closure
    /// `Fn(&B) -> Option<B>`).
    pub fn replay<P2>(self, replay: P2) -> AddBearerLayer<P2> {
        AddBearerLayer {
            source: self.source,
            replay,
            origin: self.origin,
        }
    }

    /// The origin (`https://api.example.com`, or with a path prefix) that DPoP proofs name
    /// (`htu`) for requests whose URI has no scheme and host. A tonic client made with
    /// `Client::new(channel)` sends such URIs (`/package.Service/Method`): set this to the
    /// server's URL. Requests with an absolute URI use their own.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidValue`](crate::ConfigError::InvalidValue) when `origin` is not
    /// an absolute `http`/`https` URL without query or fragment.
    pub fn dpop_origin(mut self, origin: &str) -> Result<Self, crate::ConfigError> {
        let invalid = |reason| crate::ConfigError::InvalidValue {
            what: "dpop_origin",
            value: origin.to_owned(),
            reason,
        };
        let url = url::Url::parse(origin).map_err(|_| invalid("not an absolute URL"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(invalid("not an http or https URL"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("has a query or a fragment"));
        }
        self.origin = Some(Arc::from(origin.trim_end_matches('/')));
        Ok(self)
    }

    /// Never retries, so that any body type works (tonic `Channel`, streaming bodies). A
    /// `401` `invalid_token` answer still drops the cached token.
    pub fn without_retry(self) -> AddBearerLayer<NoReplay> {
        self.replay(NoReplay)
    }

    /// The token source.
    pub fn source(&self) -> &ClientCredentials {
        &self.source
    }
}

impl<S, P: Clone> Layer<S> for AddBearerLayer<P> {
    type Service = AddBearer<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        AddBearer {
            inner,
            source: self.source.clone(),
            replay: self.replay.clone(),
            origin: self.origin.clone(),
        }
    }
}

/// The middleware service made by [`AddBearerLayer`].
///
/// Its error type is [`BoxError`]: the inner service's error, or the
/// [`TokenError`](super::TokenError) when no token could be obtained.
pub struct AddBearer<S, P = CloneBody> {
    inner: S,
    source: ClientCredentials,
    replay: P,
    origin: Option<Arc<str>>,
}

impl<S> AddBearer<S> {
    /// Wraps `inner`, with tokens from `source` (the same as
    /// `AddBearerLayer::new(source).layer(inner)`).
    pub fn new(inner: S, source: ClientCredentials) -> Self {
        Self {
            inner,
            source,
            replay: CloneBody,
            origin: None,
        }
    }
}

impl<S, P> AddBearer<S, P> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the middleware, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The token source.
    pub fn source(&self) -> &ClientCredentials {
        &self.source
    }
}

impl<S: Clone, P: Clone> Clone for AddBearer<S, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            source: self.source.clone(),
            replay: self.replay.clone(),
            origin: self.origin.clone(),
        }
    }
}

impl<S: fmt::Debug, P> fmt::Debug for AddBearer<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddBearer")
            .field("inner", &self.inner)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl<S, P, B, ResB> Service<Request<B>> for AddBearer<S, P>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    P: ReplayBody<B>,
{
    type Response = Response<ResB>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // Take the service that was readied, leave a clone in its place.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let replay = self.replay.try_clone_body(req.body()).map(|body| {
            let mut copy = Request::new(body);
            *copy.method_mut() = req.method().clone();
            *copy.uri_mut() = req.uri().clone();
            *copy.version_mut() = req.version();
            *copy.headers_mut() = req.headers().clone();
            *copy.extensions_mut() = req.extensions().clone();
            // A second clone for the retry: it is readied before use.
            (copy, self.inner.clone())
        });
        ResponseFuture::new(self.source.clone(), self.origin.clone(), req, inner, replay)
    }
}
