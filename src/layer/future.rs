use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::service::Shared;
use crate::claims::Claims;
use crate::dpop::DpopConfirmation;
use crate::error::AuthError;
use crate::rejection::{DPOP_NONCE, Rejection, log};

type VerifyFuture = Pin<Box<dyn Future<Output = Result<Accepted, AuthError>> + Send>>;

/// What an accepted request carries on: its claims, its DPoP confirmation (a `DPoP`
/// request), and a fresh DPoP nonce for the response.
pub(crate) struct Accepted {
    pub(crate) claims: Claims,
    pub(crate) dpop: Option<DpopConfirmation>,
    pub(crate) nonce: Option<HeaderValue>,
}

pin_project! {
    /// The response future of [`JwtAuth`](super::JwtAuth): verification, then the inner
    /// service (or the rejection).
    pub struct ResponseFuture<S, ReqBody, ResBody, R>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    {
        #[pin]
        state: State<S, ReqBody, ResBody, R>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody, ResBody, R>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    {
        Verify {
            verify: VerifyFuture,
            shared: Arc<Shared<R>>,
            req: Option<Request<ReqBody>>,
            inner: Option<S>,
        },
        Inner {
            #[pin]
            fut: S::Future,
            // A `DPoP-Nonce` to add to the response.
            nonce: Option<HeaderValue>,
        },
        Rejected {
            res: Option<Response<ResBody>>,
        },
    }
}

impl<S, ReqBody, ResBody, R> ResponseFuture<S, ReqBody, ResBody, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    pub(crate) fn verify(
        shared: Arc<Shared<R>>,
        token: String,
        req: Request<ReqBody>,
        inner: S,
    ) -> Self {
        let verifier = shared.verifier.clone();
        let introspection = shared.introspection.clone();
        // A token sent as `Bearer` must not be DPoP-bound (no downgrade).
        let bearer_rule = shared.bearer_rule;
        let verify: VerifyFuture = Box::pin(async move {
            let claims = introspection.resolve(&verifier, &token).await?;
            bearer_rule.check(&claims)?;
            Ok(Accepted {
                claims,
                dpop: None,
                nonce: None,
            })
        });
        Self::verifying(verify, shared, req, inner)
    }

    /// A `DPoP` request: the future of [`super::dpop::verify`].
    pub(crate) fn verify_dpop(
        shared: Arc<Shared<R>>,
        verify: VerifyFuture,
        req: Request<ReqBody>,
        inner: S,
    ) -> Self {
        Self::verifying(verify, shared, req, inner)
    }

    fn verifying(
        verify: VerifyFuture,
        shared: Arc<Shared<R>>,
        req: Request<ReqBody>,
        inner: S,
    ) -> Self {
        Self {
            state: State::Verify {
                verify,
                shared,
                req: Some(req),
                inner: Some(inner),
            },
        }
    }

    pub(crate) fn inner(fut: S::Future) -> Self {
        Self {
            state: State::Inner { fut, nonce: None },
        }
    }

    pub(crate) fn rejected(res: Response<ResBody>) -> Self {
        Self {
            state: State::Rejected { res: Some(res) },
        }
    }
}

impl<S, ReqBody, ResBody, R> Future for ResponseFuture<S, ReqBody, ResBody, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: Rejection<ResBody>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Verify {
                    verify,
                    shared,
                    req,
                    inner,
                } => {
                    let result = ready!(verify.as_mut().poll(cx));
                    match (result, req.take(), inner.take()) {
                        (Ok(accepted), Some(mut req), Some(mut inner)) => {
                            // RFC 8705: the certificate binding, after the token (and its
                            // DPoP proof) passed.
                            let bound = super::mtls::bind(
                                shared.mtls.as_ref(),
                                &accepted.claims,
                                req.extensions(),
                            );
                            let confirmation = match bound {
                                Ok(c) => c,
                                Err(e) => {
                                    let e = if accepted.dpop.is_some() {
                                        e.dpop_scheme()
                                    } else {
                                        e
                                    };
                                    log(&e);
                                    let res =
                                        shared.rejection.reject_request(e, &req.into_parts().0);
                                    this.state.set(State::Rejected { res: Some(res) });
                                    continue;
                                }
                            };
                            if let Some(confirmation) = confirmation {
                                req.extensions_mut().insert(confirmation);
                            }
                            crate::metrics::accepted();
                            req.extensions_mut().insert(accepted.claims);
                            if let Some(confirmation) = accepted.dpop {
                                req.extensions_mut().insert(confirmation);
                                // Later answers (a missing scope) carry the `DPoP` challenge.
                                let challenge = shared.challenge.clone().for_dpop_request();
                                req.extensions_mut().insert(challenge);
                            }
                            let fut = inner.call(req);
                            this.state.set(State::Inner {
                                fut,
                                nonce: accepted.nonce,
                            });
                        }
                        (Err(e), req, _) => {
                            log(&e);
                            let res = match req {
                                Some(req) => {
                                    shared.rejection.reject_request(e, &req.into_parts().0)
                                }
                                None => shared.rejection.reject(e),
                            };
                            this.state.set(State::Rejected { res: Some(res) });
                        }
                        // Polled again after completion: the request is gone.
                        (Ok(_), _, _) => {
                            let res = shared.rejection.reject(AuthError::malformed_request(
                                "the request was already handled",
                            ));
                            this.state.set(State::Rejected { res: Some(res) });
                        }
                    }
                }
                StateProj::Inner { fut, nonce } => {
                    let mut res = ready!(fut.poll(cx));
                    if let (Ok(res), Some(nonce)) = (&mut res, nonce.take()) {
                        res.headers_mut().insert(DPOP_NONCE, nonce);
                    }
                    return Poll::Ready(res);
                }
                StateProj::Rejected { res } => {
                    return match res.take() {
                        Some(res) => Poll::Ready(Ok(res)),
                        None => Poll::Pending,
                    };
                }
            }
        }
    }
}
