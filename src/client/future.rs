//! [`ResponseFuture`]: get a token, call, and on `401` `invalid_token` drop the token, get a
//! new one and call once more; with a DPoP-bound token, a new proof per call, and on `401`
//! `use_dpop_nonce` one more call with the server's nonce.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::dpop::{Dpop, Role};
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
        origin: Option<Arc<str>>,
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
            uri: String,
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
            uri: String,
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
        origin: Option<Arc<str>>,
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
            origin,
        }
    }
}

fn token_future(source: &ClientCredentials) -> TokenFuture {
    let source = source.clone();
    Box::pin(async move { source.token().await })
}

/// Sets `Authorization`, and for a DPoP-bound token a new `DPoP` proof for this request
/// (with `ath` and the latest nonce of its origin).
fn authorize<B>(
    req: &mut Request<B>,
    token: &AccessToken,
    dpop: Option<&Dpop>,
    origin: Option<&str>,
) -> Result<(), BoxError> {
    req.headers_mut().remove(DPOP);
    if let (true, Some(dpop)) = (token.is_dpop_bound(), dpop) {
        let proof = dpop.proof(
            Role::Resource,
            req.method().as_str(),
            &target(req, origin),
            Some(token.secret()),
        )?;
        let mut value = HeaderValue::from_str(&proof)?;
        value.set_sensitive(true);
        req.headers_mut().insert(DPOP, value);
    }
    req.headers_mut()
        .insert(AUTHORIZATION, token.authorization());
    Ok(())
}

const DPOP: &str = "dpop";

/// The request's URI, made absolute with `origin` when it has no scheme and host.
fn target<B>(req: &Request<B>, origin: Option<&str>) -> String {
    let uri = req.uri();
    match (uri.scheme(), origin) {
        (None, Some(origin)) => format!(
            "{origin}{}",
            uri.path_and_query().map_or("/", |p| p.as_str())
        ),
        _ => uri.to_string(),
    }
}

/// Remembers the answer's `DPoP-Nonce`, if DPoP is on; whether there was a usable one.
fn remember(source: &ClientCredentials, uri: &str, headers: &HeaderMap) -> bool {
    source
        .dpop()
        .is_some_and(|d| d.remember(Role::Resource, uri, headers))
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
                    let origin = this.origin.as_deref();
                    if let Err(e) =
                        authorize(&mut req, &token, this.source.dpop().map(|d| &**d), origin)
                    {
                        return Poll::Ready(Err(e));
                    }
                    let uri = target(&req, origin);
                    let fut = inner.call(req);
                    let replay = replay.take();
                    this.state.set(State::First {
                        fut,
                        token,
                        uri,
                        replay,
                    });
                }
                StateProj::First {
                    fut,
                    token,
                    uri,
                    replay,
                } => {
                    let res = ready!(fut.poll(cx)).map_err(Into::into)?;
                    let new_nonce = remember(this.source, uri, res.headers());
                    if new_nonce
                        && token.is_dpop_bound()
                        && challenged(res.status(), res.headers(), "use_dpop_nonce")
                    {
                        // RFC 9449 §9: send the request again, with a proof carrying the nonce.
                        tracing::debug!(
                            retry = replay.is_some(),
                            "the server asked for a DPoP nonce (use_dpop_nonce)"
                        );
                        let Some(mut replay) = replay.take() else {
                            return Poll::Ready(Ok(res));
                        };
                        if let Err(e) = authorize(
                            &mut replay.0,
                            token,
                            this.source.dpop().map(|d| &**d),
                            this.origin.as_deref(),
                        ) {
                            return Poll::Ready(Err(e));
                        }
                        this.state.set(State::Ready {
                            replay: Some(replay),
                        });
                        continue;
                    }
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
                    if let Some((req, _)) = replay.as_mut()
                        && let Err(e) = authorize(
                            req,
                            &token,
                            this.source.dpop().map(|d| &**d),
                            this.origin.as_deref(),
                        )
                    {
                        return Poll::Ready(Err(e));
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
                    let uri = target(&req, this.origin.as_deref());
                    let fut = inner.call(req);
                    this.state.set(State::Last { fut, uri });
                }
                StateProj::Last { fut, uri } => {
                    let res = ready!(fut.poll(cx)).map_err(Into::into)?;
                    remember(this.source, uri, res.headers());
                    return Poll::Ready(Ok(res));
                }
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
    challenged(status, headers, "invalid_token")
}

/// `401` (or gRPC `UNAUTHENTICATED`) with a challenge carrying `error="<error>"`.
fn challenged(status: StatusCode, headers: &HeaderMap, error: &str) -> bool {
    let unauthenticated =
        status == StatusCode::UNAUTHORIZED || headers.get("grpc-status").is_some_and(|v| v == "16");
    unauthenticated
        && headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| has_error(v, error))
}

/// Whether a `WWW-Authenticate` value has an `error` parameter equal to `error` (quoted or
/// not, any case for the name).
fn has_error(value: &str, error: &str) -> bool {
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
        if let Some(after) = rest.strip_prefix(error)
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
