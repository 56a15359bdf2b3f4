//! [`TokenError`]: why no access token could be obtained.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

/// What kind of failure a [`TokenError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenErrorKind {
    /// The authorization server refused the request with an OAuth 2.0 error response
    /// (RFC 6749 §5.2). The code and description are in [`TokenError::oauth_error`] and
    /// [`TokenError::oauth_error_description`]. Retrying does not help: fix the
    /// configuration (credentials, audience, scopes).
    OAuth(OAuthErrorCode),
    /// `429 Too Many Requests`, still after the retries. See [`TokenError::retry_after`].
    RateLimited,
    /// A `5xx` answer, still after the retries.
    ServerError,
    /// Another status without an OAuth error body (for example `404`: the token endpoint URL
    /// is wrong, or a redirect, which is never followed).
    UnexpectedStatus,
    /// The server could not be reached, or the connection failed.
    Transport,
    /// No answer within the timeout (or the retry budget ran out).
    Timeout,
    /// A success status, but not a usable token response: not JSON, no `access_token`, a
    /// `token_type` other than `Bearer`, a token that cannot be sent in a header, or a body
    /// over the size limit.
    InvalidResponse,
    /// The token endpoint could not be discovered from the issuer's metadata.
    Discovery,
}

impl TokenErrorKind {
    /// A stable snake_case name, for logs and metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::OAuth(_) => "oauth",
            Self::RateLimited => "rate_limited",
            Self::ServerError => "server_error",
            Self::UnexpectedStatus => "unexpected_status",
            Self::Transport => "transport",
            Self::Timeout => "timeout",
            Self::InvalidResponse => "invalid_response",
            Self::Discovery => "discovery",
        }
    }

    /// Whether another attempt may succeed without a configuration change (rate limiting,
    /// server errors, network failures and timeouts).
    pub const fn is_transient(self) -> bool {
        matches!(
            self,
            Self::RateLimited | Self::ServerError | Self::Transport | Self::Timeout
        )
    }
}

/// The `error` code of an OAuth 2.0 error response (RFC 6749 §5.2, RFC 8707 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OAuthErrorCode {
    /// `invalid_request`: a parameter is missing, repeated or malformed.
    InvalidRequest,
    /// `invalid_client`: client authentication failed (unknown client, wrong secret, or an
    /// authentication method the client is not registered for).
    InvalidClient,
    /// `invalid_grant`.
    InvalidGrant,
    /// `unauthorized_client`: the client may not use this grant type (or, with Auth0, this
    /// audience).
    UnauthorizedClient,
    /// `unsupported_grant_type`.
    UnsupportedGrantType,
    /// `invalid_scope`: a requested scope is unknown or not granted to the client.
    InvalidScope,
    /// `invalid_target` (RFC 8707): the `resource` is unknown or not allowed.
    InvalidTarget,
    /// `access_denied` (Auth0 answers this for an audience it does not serve, or a client
    /// not authorized for the API).
    AccessDenied,
    /// Any other code; the code itself is in [`TokenError::oauth_error`].
    Other,
}

impl OAuthErrorCode {
    /// The code for an `error` value.
    pub fn from_code(code: &str) -> Self {
        match code {
            "invalid_request" => Self::InvalidRequest,
            "invalid_client" => Self::InvalidClient,
            "invalid_grant" => Self::InvalidGrant,
            "unauthorized_client" => Self::UnauthorizedClient,
            "unsupported_grant_type" => Self::UnsupportedGrantType,
            "invalid_scope" => Self::InvalidScope,
            "invalid_target" => Self::InvalidTarget,
            "access_denied" => Self::AccessDenied,
            _ => Self::Other,
        }
    }

    /// The `error` value (`"other"` for [`Other`](Self::Other)).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::AccessDenied => "access_denied",
            Self::Other => "other",
        }
    }
}

/// Why no access token could be obtained.
///
/// Opaque: inspect it with [`kind`](Self::kind). Cheap to clone (every caller waiting for one
/// refresh gets the same error). `Display` is one readable line, for example
/// `the token endpoint refused the request: invalid_client (Client authentication failed)
/// [HTTP 401]`; it and `Debug` never contain the client secret or a token. Strings that come
/// from the server are truncated and stripped of control characters.
#[derive(Clone)]
pub struct TokenError {
    inner: Arc<Inner>,
}

struct Inner {
    kind: TokenErrorKind,
    detail: String,
    status: Option<StatusCode>,
    oauth_error: Option<String>,
    oauth_description: Option<String>,
    oauth_uri: Option<String>,
    retry_after: Option<Duration>,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

/// Longest server-supplied string kept in an error.
const MAX_REMOTE_CHARS: usize = 300;

/// Printable ASCII only, at most [`MAX_REMOTE_CHARS`] characters.
pub(super) fn clean_remote(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_REMOTE_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().nth(MAX_REMOTE_CHARS).is_some() {
        out.push('…');
    }
    out
}

impl TokenError {
    pub(super) fn new(kind: TokenErrorKind, detail: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                kind,
                detail: detail.into(),
                status: None,
                oauth_error: None,
                oauth_description: None,
                oauth_uri: None,
                retry_after: None,
                source: None,
            }),
        }
    }

    /// An error answer from the token endpoint. `error` etc. come from an RFC 6749 §5.2
    /// body, when there was one.
    pub(super) fn from_status(
        status: StatusCode,
        oauth: Option<(String, Option<String>, Option<String>)>,
        retry_after: Option<Duration>,
    ) -> Self {
        let (code, description, uri) = match oauth {
            Some((c, d, u)) => (Some(clean_remote(&c)), d.map(|d| clean_remote(&d)), u),
            None => (None, None, None),
        };
        let kind = if status == StatusCode::TOO_MANY_REQUESTS {
            TokenErrorKind::RateLimited
        } else if status.is_server_error() {
            TokenErrorKind::ServerError
        } else if let Some(code) = &code {
            TokenErrorKind::OAuth(OAuthErrorCode::from_code(code))
        } else {
            TokenErrorKind::UnexpectedStatus
        };
        let detail = match kind {
            TokenErrorKind::OAuth(_) => "the token endpoint refused the request",
            TokenErrorKind::RateLimited => "the token endpoint is rate limiting this client",
            TokenErrorKind::ServerError => "the token endpoint failed",
            _ => "the token endpoint answered with an unexpected status",
        };
        Self {
            inner: Arc::new(Inner {
                kind,
                detail: detail.to_owned(),
                status: Some(status),
                oauth_error: code,
                oauth_description: description,
                oauth_uri: uri.map(|u| clean_remote(&u)),
                retry_after,
                source: None,
            }),
        }
    }

    pub(super) fn with_source(self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.map_inner(|i| i.source = Some(Box::new(source)))
    }

    pub(super) fn with_status(self, status: StatusCode) -> Self {
        self.map_inner(|i| i.status = Some(status))
    }

    fn map_inner(self, f: impl FnOnce(&mut Inner)) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                f(&mut inner);
                Self {
                    inner: Arc::new(inner),
                }
            }
            // Only fresh errors are changed, and those are not shared.
            Err(inner) => Self { inner },
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> TokenErrorKind {
        self.inner.kind
    }

    /// Whether another attempt may succeed without a configuration change.
    pub fn is_transient(&self) -> bool {
        self.inner.kind.is_transient()
    }

    /// The HTTP status of the token endpoint's (last) answer, when there was one.
    pub fn status(&self) -> Option<StatusCode> {
        self.inner.status
    }

    /// The OAuth `error` code of the answer (RFC 6749 §5.2), when it had one (also for a
    /// `5xx` or `429` answer with an OAuth body).
    pub fn oauth_error(&self) -> Option<&str> {
        self.inner.oauth_error.as_deref()
    }

    /// The OAuth `error_description` of the answer, when it had one.
    pub fn oauth_error_description(&self) -> Option<&str> {
        self.inner.oauth_description.as_deref()
    }

    /// The OAuth `error_uri` of the answer, when it had one.
    pub fn oauth_error_uri(&self) -> Option<&str> {
        self.inner.oauth_uri.as_deref()
    }

    /// The server's `Retry-After`, when it sent one (for example with `429`).
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }
}

impl fmt::Debug for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        let mut d = f.debug_struct("TokenError");
        d.field("kind", &i.kind).field("detail", &i.detail);
        if let Some(s) = &i.status {
            d.field("status", &s.as_u16());
        }
        if let Some(e) = &i.oauth_error {
            d.field("oauth_error", e);
        }
        if let Some(e) = &i.oauth_description {
            d.field("oauth_error_description", e);
        }
        if let Some(r) = &i.retry_after {
            d.field("retry_after", r);
        }
        if let Some(s) = &i.source {
            d.field("source", &s.to_string());
        }
        d.finish()
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.write_str(&i.detail)?;
        if let Some(code) = &i.oauth_error {
            write!(f, ": {code}")?;
            if let Some(d) = &i.oauth_description {
                write!(f, " ({d})")?;
            }
        }
        if let Some(s) = &i.status {
            write!(f, " [HTTP {}]", s.as_u16())?;
        }
        if let Some(r) = &i.retry_after {
            write!(f, " (retry after {} s)", r.as_secs())?;
        }
        if let Some(s) = &i.source {
            write!(f, ": {s}")?;
            let mut cur = s.source();
            while let Some(c) = cur {
                write!(f, ": {c}")?;
                cur = c.source();
            }
        }
        Ok(())
    }
}

impl StdError for TokenError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oauth_error_names_its_code_and_description() {
        let e = TokenError::from_status(
            StatusCode::UNAUTHORIZED,
            Some((
                "invalid_client".into(),
                Some("Client authentication failed".into()),
                None,
            )),
            None,
        );
        assert_eq!(
            e.kind(),
            TokenErrorKind::OAuth(OAuthErrorCode::InvalidClient)
        );
        assert_eq!(e.oauth_error(), Some("invalid_client"));
        assert_eq!(
            e.to_string(),
            "the token endpoint refused the request: invalid_client \
             (Client authentication failed) [HTTP 401]"
        );
        assert!(!e.is_transient());
    }

    #[test]
    fn statuses_decide_the_kind_before_the_body() {
        let oauth = || Some(("temporarily_unavailable".to_owned(), None, None));
        let e = TokenError::from_status(StatusCode::SERVICE_UNAVAILABLE, oauth(), None);
        assert_eq!(e.kind(), TokenErrorKind::ServerError);
        assert_eq!(e.oauth_error(), Some("temporarily_unavailable"));
        let e = TokenError::from_status(
            StatusCode::TOO_MANY_REQUESTS,
            None,
            Some(Duration::from_secs(7)),
        );
        assert_eq!(e.kind(), TokenErrorKind::RateLimited);
        assert!(e.to_string().contains("retry after 7 s"), "{e}");
        let e = TokenError::from_status(StatusCode::NOT_FOUND, None, None);
        assert_eq!(e.kind(), TokenErrorKind::UnexpectedStatus);
        let e = TokenError::from_status(StatusCode::BAD_REQUEST, oauth(), None);
        assert_eq!(e.kind(), TokenErrorKind::OAuth(OAuthErrorCode::Other));
    }

    #[test]
    fn remote_strings_are_cleaned_and_truncated() {
        let long = format!("a\r\nb{}", "x".repeat(1000));
        let cleaned = clean_remote(&long);
        assert!(cleaned.starts_with("a  b"));
        assert!(cleaned.chars().count() <= MAX_REMOTE_CHARS + 1);
    }

    #[test]
    fn unknown_codes_round_trip_as_other() {
        assert_eq!(
            OAuthErrorCode::from_code("slow_down"),
            OAuthErrorCode::Other
        );
        assert_eq!(
            OAuthErrorCode::from_code(OAuthErrorCode::InvalidTarget.as_str()),
            OAuthErrorCode::InvalidTarget
        );
    }
}
