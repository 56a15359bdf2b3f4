use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::dpop::BearerRule;
use super::future::ResponseFuture;
use super::resolve::Introspection;
use crate::AuthErrorKind;
use crate::dpop::{Dpop, DpopMode};
use crate::error::AuthError;
use crate::extract::{TokenSource, bearer_candidate, bearer_token};
use crate::mtls::Mtls;
use crate::rejection::{DefaultRejection, Rejection, log};
use crate::verify::Verifier;

pub(crate) struct Shared<R> {
    pub(crate) verifier: Verifier,
    pub(crate) rejection: R,
    pub(crate) challenge: DefaultRejection,
    pub(crate) source: TokenSource,
    pub(crate) optional: bool,
    /// DPoP settings, when DPoP is allowed or required.
    pub(crate) dpop: Option<Dpop>,
    /// What a DPoP-bound token sent as `Bearer` gets; set by `.dpop(..)` (refused unless
    /// [`DpopMode::Off`] says to accept it unchecked).
    pub(crate) bearer_rule: BearerRule,
    /// Opaque tokens: RFC 7662 introspection (feature `introspection`).
    pub(crate) introspection: Introspection,
    /// Certificate-binding settings (RFC 8705), when a certificate source is configured.
    pub(crate) mtls: Option<Mtls>,
    /// The certificates of tonic's TLS connections (feature `tonic-tls`).
    #[cfg(feature = "tonic-tls")]
    pub(crate) tonic_peers: super::tonic_tls::TonicPeers,
}

impl<R: Clone> Clone for Shared<R> {
    fn clone(&self) -> Self {
        Self {
            verifier: self.verifier.clone(),
            rejection: self.rejection.clone(),
            challenge: self.challenge.clone(),
            source: self.source.clone(),
            optional: self.optional,
            dpop: self.dpop.clone(),
            bearer_rule: self.bearer_rule,
            introspection: self.introspection.clone(),
            mtls: self.mtls.clone(),
            #[cfg(feature = "tonic-tls")]
            tonic_peers: self.tonic_peers.clone(),
        }
    }
}

/// The middleware service made by [`JwtAuthLayer`](super::JwtAuthLayer).
pub struct JwtAuth<S, R = DefaultRejection> {
    inner: S,
    shared: Arc<Shared<R>>,
}

impl<S, R> JwtAuth<S, R> {
    pub(crate) fn from_parts(inner: S, shared: Arc<Shared<R>>) -> Self {
        Self { inner, shared }
    }

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
}

impl<S: Clone, R> Clone for JwtAuth<S, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, R> fmt::Debug for JwtAuth<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuth")
            .field("inner", &self.inner)
            .field("verifier", &self.shared.verifier)
            .finish_non_exhaustive()
    }
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for JwtAuth<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    R: Rejection<ResBody>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, ResBody, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let shared = &*self.shared;
        // The challenge marks that the layer ran, for guards, extractors and rejections.
        req.extensions_mut().insert(shared.challenge.clone());
        // RFC 8705: the client certificate from the configured source, read before any token
        // work (a malformed trusted header is a 400 whatever the token).
        // With `MtlsMode::Off` no certificate is read (the check passes every token).
        if let Some(mtls) = shared
            .mtls
            .as_ref()
            .filter(|m| m.get_mode() != crate::mtls::MtlsMode::Off)
        {
            let (mut head, body) = req.into_parts();
            if let Err(e) = super::mtls::gather(mtls, &head.headers, &mut head.extensions) {
                log(&e);
                return ResponseFuture::rejected(shared.rejection.reject_request(e, &head));
            }
            // tonic's own TLS: the connection's certificate from tonic's record.
            #[cfg(feature = "tonic-tls")]
            shared.tonic_peers.gather(mtls, &mut head.extensions);
            req = Request::from_parts(head, body);
        }
        // DPoP (RFC 9449): a `DPoP` request takes its own path; with DPoP required, nothing
        // else is a credential.
        if let Some(dpop) = &shared.dpop {
            match super::dpop::dpop_credentials(req.headers()) {
                Ok(Some((token, proof))) => {
                    let (token, proof) = (token.to_owned(), proof.to_owned());
                    let htu = match dpop.htu(req.headers(), req.uri().path()) {
                        Ok(htu) => htu,
                        Err(e) => {
                            log(&e);
                            let (head, _) = req.into_parts();
                            return ResponseFuture::rejected(
                                shared.rejection.reject_request(e, &head),
                            );
                        }
                    };
                    let verify = Box::pin(super::dpop::verify(
                        shared.verifier.clone(),
                        shared.introspection.clone(),
                        dpop.clone(),
                        token,
                        proof,
                        req.method().clone(),
                        htu,
                    ));
                    let clone = self.inner.clone();
                    let inner = std::mem::replace(&mut self.inner, clone);
                    return ResponseFuture::verify_dpop(self.shared.clone(), verify, req, inner);
                }
                Ok(None) if dpop.mode() == DpopMode::Required => {
                    let e = AuthError::missing_token();
                    if shared.optional && req.headers().get(http::header::AUTHORIZATION).is_none() {
                        crate::metrics::anonymous();
                        return ResponseFuture::inner(self.inner.call(req));
                    }
                    log(&e);
                    let (head, _) = req.into_parts();
                    return ResponseFuture::rejected(shared.rejection.reject_request(e, &head));
                }
                Ok(None) => {}
                Err(e) => {
                    log(&e);
                    let (head, _) = req.into_parts();
                    return ResponseFuture::rejected(shared.rejection.reject_request(e, &head));
                }
            }
        }
        // A reused token is answered from the verified-token cache right here: no syntax
        // checks (a cached token passed them), no copy of the token, no boxed future, and the
        // service that was readied is called in place (no clone of it).
        let cached = bearer_candidate(req.headers())
            .and_then(|candidate| shared.introspection.cached(&shared.verifier, candidate));
        // The cached token's bindings, checked on every request: as `Bearer` it must not be
        // DPoP-bound (no downgrade), and a certificate binding needs its certificate.
        let cached = cached.map(|r| {
            r.and_then(|claims| {
                shared.bearer_rule.check(&claims)?;
                let confirmation =
                    super::mtls::bind(shared.mtls.as_ref(), &claims, req.extensions())?;
                Ok((claims, confirmation))
            })
        });
        match cached {
            Some(Ok((claims, confirmation))) => {
                crate::metrics::accepted();
                req.extensions_mut().insert(claims);
                if let Some(confirmation) = confirmation {
                    req.extensions_mut().insert(confirmation);
                }
                return ResponseFuture::inner(self.inner.call(req));
            }
            Some(Err(e)) => {
                log(&e);
                let (head, _) = req.into_parts();
                return ResponseFuture::rejected(shared.rejection.reject_request(e, &head));
            }
            None => {}
        }
        let token = match bearer_token(req.headers(), &shared.source) {
            Ok(token) => token.to_owned(),
            // Anonymous.
            Err(e) if e.kind() == AuthErrorKind::MissingToken && shared.optional => {
                crate::metrics::anonymous();
                return ResponseFuture::inner(self.inner.call(req));
            }
            Err(e) => {
                log(&e);
                let (head, _) = req.into_parts();
                return ResponseFuture::rejected(shared.rejection.reject_request(e, &head));
            }
        };
        // The verification finishes later: the future takes the service that was readied and
        // leaves a clone in its place.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::verify(self.shared.clone(), token, req, inner)
    }
}
