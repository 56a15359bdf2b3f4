//! [`ResponseFuture`]: get a token, call, and on `401` `invalid_token` drop the token, get a
//! new one and call once more.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::error::TokenError;
use super::layer::BoxError;
use super::source::{ClientCredentials, Refusal};
use super::token::AccessToken;

type TokenFuture = Pin<Box<dyn Future<Output = Result<AccessToken, TokenError>> + Send>>;

pin_project! {
    /// The response future of [`AddBearer`](super::AddBearer).
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
        source: ClientCredentials,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        // Waiting for the first token.
        Token {
            fut: TokenFuture,
            req: Option<Request<B>>,
            inner: Option<S>,
            replay: Option<(Request<B>, S)>,
        },
        // The first call.
        First {
            #[pin]
            fut: S::Future,
            token: AccessToken,
            replay: Option<(Request<B>, S)>,
        },
        // The token was refused: waiting for a new one.
        Renew {
            fut: TokenFuture,
            replay: Option<(Request<B>, S)>,
        },
        // Readying the service for the retry.
        Ready {
            replay: Option<(Request<B>, S)>,
        },
        // The retry, or nothing more to do.
        Last {
            #[pin]
            fut: S::Future,
        },
        Failed {
            error: Option<BoxError>,
        },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(super) fn new(
        source: ClientCredentials,
        req: Request<B>,
        inner: S,
        replay: Option<(Request<B>, S)>,
    ) -> Self {
        Self {
            state: State::Token {
                fut: token_future(&source),
                req: Some(req),
                inner: Some(inner),
                replay,
            },
            source,
        }
    }
}

fn token_future(source: &ClientCredentials) -> TokenFuture {
    let source = source.clone();
    Box::pin(async move { source.token().await })
}

fn authorize<B>(req: &mut Request<B>, token: &AccessToken) {
    req.headers_mut()
        .insert(AUTHORIZATION, token.authorization());
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, B, ResB> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<Response<ResB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Token {
                    fut,
                    req,
                    inner,
                    replay,
                } => {
                    let token = match ready!(fut.as_mut().poll(cx)) {
                        Ok(token) => token,
                        Err(e) => return Poll::Ready(Err(e.into())),
                    };
                    let (Some(mut req), Some(mut inner)) = (req.take(), inner.take()) else {
                        return Poll::Ready(Err("the request was already sent".into()));
                    };
                    authorize(&mut req, &token);
                    let fut = inner.call(req);
                    let replay = replay.take();
                    this.state.set(State::First { fut, token, replay });
                }
                StateProj::First { fut, token, replay } => {
                    let res = ready!(fut.poll(cx)).map_err(Into::into)?;
                    if !refuses_token(res.status(), res.headers()) {
                        return Poll::Ready(Ok(res));
                    }
                    let refusal = this.source.refused(token);
                    tracing::debug!(
                        ?refusal,
                        retry = replay.is_some() && refusal != Refusal::Kept,
                        "the server refused the access token (invalid_token)"
                    );
                    if refusal == Refusal::Kept {
                        return Poll::Ready(Ok(res));
                    }
                    let Some(replay) = replay.take() else {
                        return Poll::Ready(Ok(res));
                    };
                    this.state.set(State::Renew {
                        fut: token_future(this.source),
                        replay: Some(replay),
                    });
                }
                StateProj::Renew { fut, replay } => {
                    let token = match ready!(fut.as_mut().poll(cx)) {
                        Ok(token) => token,
                        Err(e) => return Poll::Ready(Err(e.into())),
                    };
                    let mut replay = replay.take();
                    if let Some((req, _)) = replay.as_mut() {
                        authorize(req, &token);
                    }
                    this.state.set(State::Ready { replay });
                }
                StateProj::Ready { replay } => {
                    let Some((_, inner)) = replay.as_mut() else {
                        return Poll::Ready(Err("the request was already sent".into()));
                    };
                    if let Err(e) = ready!(inner.poll_ready(cx)) {
                        let error = Some(e.into());
                        this.state.set(State::Failed { error });
                        continue;
                    }
                    let Some((req, mut inner)) = replay.take() else {
                        continue;
                    };
                    let fut = inner.call(req);
                    this.state.set(State::Last { fut });
                }
                StateProj::Last { fut } => return fut.poll(cx).map_err(Into::into),
                StateProj::Failed { error } => {
                    return Poll::Ready(Err(error.take().unwrap_or_else(|| {
                        "the response future was polled after completion".into()
                    })));
                }
            }
        }
    }
}

/// `401` (or gRPC `UNAUTHENTICATED`) with a Bearer challenge carrying
/// `error="invalid_token"` (RFC 6750 §3).
pub(super) fn refuses_token(status: StatusCode, headers: &HeaderMap) -> bool {
    let unauthenticated =
        status == StatusCode::UNAUTHORIZED || headers.get("grpc-status").is_some_and(|v| v == "16");
    unauthenticated
        && headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(has_invalid_token)
}

/// Whether a `WWW-Authenticate` value has an `error` parameter equal to `invalid_token`
/// (quoted or not, any case for the name).
fn has_invalid_token(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut from = 0;
    while let Some(pos) = lower[from..].find("error") {
        let start = from + pos;
        from = start + "error".len();
        // A parameter name starts after a space, a comma, or the start.
        if start > 0 && !matches!(bytes[start - 1], b' ' | b',' | b'\t') {
            continue;
        }
        let rest = lower[from..].trim_start_matches([' ', '\t']);
        let Some(rest) = rest.strip_prefix('=') else {
            continue;
        };
        let rest = rest.trim_start_matches([' ', '\t']);
        let rest = rest.strip_prefix('"').unwrap_or(rest);
        if let Some(after) = rest.strip_prefix("invalid_token")
            && (after.is_empty() || after.starts_with(['"', ',', ' ', '\t']))
        {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_str(value).expect("header"),
        );
        h
    }

    #[test]
    fn a_401_with_invalid_token_refuses_the_token() {
        for v in [
            r#"Bearer error="invalid_token""#,
            r#"Bearer realm="api", error="invalid_token", error_description="expired""#,
            r#"Basic realm="x", Bearer error=invalid_token"#,
            r#"bearer ERROR = "invalid_token""#,
        ] {
            assert!(refuses_token(StatusCode::UNAUTHORIZED, &with(v)), "{v}");
        }
    }

    #[test]
    fn other_challenges_do_not() {
        for v in [
            r#"Bearer realm="api""#,
            r#"Bearer error="insufficient_scope""#,
            r#"Bearer error_description="invalid_token""#,
            r#"Bearer error="invalid_token_type""#,
            r#"Bearer xerror="invalid_token""#,
        ] {
            assert!(!refuses_token(StatusCode::UNAUTHORIZED, &with(v)), "{v}");
        }
        let h = with(r#"Bearer error="invalid_token""#);
        assert!(!refuses_token(StatusCode::FORBIDDEN, &h));
        assert!(!refuses_token(StatusCode::UNAUTHORIZED, &HeaderMap::new()));
    }

    #[test]
    fn grpc_unauthenticated_with_the_challenge_refuses_the_token() {
        let mut h = with(r#"Bearer error="invalid_token""#);
        h.insert("grpc-status", HeaderValue::from_static("16"));
        assert!(refuses_token(StatusCode::OK, &h));
        h.insert("grpc-status", HeaderValue::from_static("0"));
        assert!(!refuses_token(StatusCode::OK, &h));
    }
}
