use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::service::Shared;
use crate::claims::Claims;
use crate::error::AuthError;
use crate::rejection::{Rejection, log};

type VerifyFuture = Pin<Box<dyn Future<Output = Result<Claims, AuthError>> + Send>>;

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
        let verify: VerifyFuture = Box::pin(async move { verifier.verify(&token).await });
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
            state: State::Inner { fut },
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
                        (Ok(claims), Some(mut req), Some(mut inner)) => {
                            crate::metrics::accepted();
                            req.extensions_mut().insert(claims);
                            let fut = inner.call(req);
                            this.state.set(State::Inner { fut });
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
                StateProj::Inner { fut } => return fut.poll(cx),
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
