//! Finding the bearer token in a request (RFC 6750 §2.1).
//!
//! - exactly one `Authorization` header; two or more are a malformed request;
//! - the scheme `Bearer`, case-insensitive, then one or more spaces (`credentials = "Bearer"
//!   1*SP b64token`), then the token in `b64token` syntax
//!   (`1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`);
//! - `Bearer` with no token, two tokens, or a character outside `b64token` are malformed
//!   (400 `invalid_request`, with a description saying which);
//! - another scheme (`Basic …`) counts as *no credentials* (401 without an error code,
//!   RFC 6750 §3.1: "attempted using an unsupported authentication method");
//! - no token is taken from the query string or the body.

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};

use crate::error::AuthError;

/// Where the layer looks for the token. The `Authorization: Bearer` header is always
/// looked at first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSource {
    /// Only the `Authorization: Bearer` header (the default).
    #[default]
    AuthorizationHeader,
    /// Also a cookie of this name, when there is no `Authorization` header.
    Cookie(String),
    /// Also this header, holding the bare token, when there is no `Authorization` header.
    Header(http::HeaderName),
}

/// Whether `token` is in RFC 6750 `b64token` syntax.
pub(crate) fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty() && all_bytes(body.as_bytes(), is_b64token_byte)
}

/// A `b64token` character other than the `=` padding. Branch-free (`|`, not `||`), so that
/// [`all_bytes`] vectorizes.
fn is_b64token_byte(b: u8) -> bool {
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    letter
        | digit
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

/// Whether every byte passes `ok`, without stopping at the first that fails: the loop has
/// no branch and is vectorized. These checks read a whole token (about 1 KiB) on every
/// request: about 0.1 µs so, 1 µs with a loop that stops early.
fn all_bytes(bytes: &[u8], ok: impl Fn(u8) -> bool) -> bool {
    bytes.iter().fold(true, |all, &b| all & ok(b))
}

/// Parses one `Authorization` header value.
///
/// Returns `Ok(Some(token))` for a well-formed `Bearer` credential, `Ok(None)` for another
/// scheme, and a [`MalformedRequest`](crate::AuthErrorKind::MalformedRequest) error otherwise.
///
/// ```
/// use bearer_guard::parse_authorization;
/// assert_eq!(parse_authorization(b"Bearer abc.def.ghi").unwrap(), Some("abc.def.ghi"));
/// assert_eq!(parse_authorization(b"bearer abc").unwrap(), Some("abc"));
/// assert_eq!(parse_authorization(b"Basic dXNlcjpwYXNz").unwrap(), None);
/// assert!(parse_authorization(b"Bearer").is_err());
/// assert_eq!(parse_authorization(b"Bearer  abc").unwrap(), Some("abc"));
/// assert!(parse_authorization(b"Bearer a b").is_err());
/// assert!(parse_authorization(b"Bearer a,b").is_err());
/// ```
///
/// # Errors
///
/// A malformed-request error when the value is not visible ASCII, or is a `Bearer`
/// credential that is not one or more spaces then one `b64token`.
pub fn parse_authorization(value: &[u8]) -> Result<Option<&str>, AuthError> {
    let value = Some(value)
        .filter(|v| all_bytes(v, |b| (0x20..0x7f).contains(&b)))
        .and_then(|v| std::str::from_utf8(v).ok())
        .ok_or_else(|| {
            AuthError::malformed_request("the Authorization header is not visible ASCII")
        })?;
    let (scheme, rest) = match value.split_once(' ') {
        Some((s, r)) => (s, Some(r)),
        None => (value, None),
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    // RFC 6750 §2.1: `1*SP` between the scheme and the token.
    match rest.map(|r| r.trim_start_matches(' ')) {
        None | Some("") => Err(AuthError::malformed_request(
            "the Bearer credential has no token",
        )),
        Some(token) if is_b64token(token) => Ok(Some(token)),
        Some(token) if token.contains(' ') => Err(AuthError::malformed_request(
            "the Bearer credential is more than one token (a space follows the token)",
        )),
        Some(_) => Err(AuthError::malformed_request(
            "the token has a character outside the token syntax (RFC 6750 b64token)",
        )),
    }
}

/// The token of a request's one `Authorization: Bearer` header (after the one or more
/// spaces that follow the scheme), without the syntax checks of [`bearer_token`]: only for
/// looking the token up in the verified-token cache. Every cached token passed
/// [`Verifier::verify`](crate::Verifier::verify), so it is three base64url parts joined by
/// dots, a `b64token` in visible ASCII; when the cache holds these bytes, [`bearer_token`]
/// would have answered the same token. That spares a reused token the
/// per-byte checks (about half of the layer's work on a cache hit).
pub(crate) fn bearer_candidate(headers: &HeaderMap) -> Option<&[u8]> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return None;
    };
    let (scheme, rest) = value.as_bytes().split_at_checked(BEARER.len())?;
    if !scheme.eq_ignore_ascii_case(BEARER) {
        return None;
    }
    // RFC 6750 §2.1: `1*SP`; almost always one, so this loop rarely runs.
    let spaces = rest.iter().take_while(|&&b| b == b' ').count();
    rest.get(spaces..)
}

const BEARER: &[u8] = b"Bearer ";

/// Finds the bearer token in request headers, following `source`.
///
/// # Errors
///
/// [`MissingToken`](crate::AuthErrorKind::MissingToken) when there is none (or only
/// another scheme), [`MalformedRequest`](crate::AuthErrorKind::MalformedRequest) when the
/// request is malformed (see the module docs).
pub fn bearer_token<'a>(
    headers: &'a HeaderMap,
    source: &TokenSource,
) -> Result<&'a str, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    match (values.next(), values.next()) {
        (Some(_), Some(_)) => {
            return Err(AuthError::malformed_request(
                "more than one Authorization header",
            ));
        }
        (Some(v), None) => {
            return match parse_authorization(v.as_bytes())? {
                Some(t) => Ok(t),
                None => Err(AuthError::missing_token()),
            };
        }
        (None, _) => {}
    }
    match source {
        TokenSource::AuthorizationHeader => Err(AuthError::missing_token()),
        TokenSource::Header(name) => {
            let mut values = headers.get_all(name).iter();
            match (values.next(), values.next()) {
                (None, _) => Err(AuthError::missing_token()),
                (Some(_), Some(_)) => Err(AuthError::malformed_request(
                    "the token header appears twice",
                )),
                (Some(v), None) => match v.to_str() {
                    Ok(t) if is_b64token(t) => Ok(t),
                    _ => Err(AuthError::malformed_request(
                        "the token header is not a b64token",
                    )),
                },
            }
        }
        TokenSource::Cookie(name) => {
            let mut found = None;
            for header in headers.get_all(COOKIE) {
                let Ok(header) = header.to_str() else {
                    continue;
                };
                for pair in header.split(';') {
                    if let Some((k, v)) = pair.trim().split_once('=')
                        && k == name
                    {
                        if found.is_some() {
                            return Err(AuthError::malformed_request(
                                "the token cookie appears twice",
                            ));
                        }
                        found = Some(v);
                    }
                }
            }
            match found {
                None => Err(AuthError::missing_token()),
                Some(t) if is_b64token(t) => Ok(t),
                Some(_) => Err(AuthError::malformed_request(
                    "the token cookie is not a b64token",
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_branch_free_b64token_byte_test_is_rfc6750s() {
        for b in 0..=255u8 {
            let spec =
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
            assert_eq!(is_b64token_byte(b), spec, "{b:#04x}");
        }
    }
    use crate::AuthErrorKind;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, v.parse().expect("header value"));
        }
        h
    }

    fn kind(values: &[&str]) -> Result<String, AuthErrorKind> {
        bearer_token(&headers(values), &TokenSource::AuthorizationHeader)
            .map(str::to_owned)
            .map_err(|e| e.kind())
    }

    #[test]
    fn no_header_is_a_missing_token() {
        assert_eq!(kind(&[]), Err(AuthErrorKind::MissingToken));
    }

    #[test]
    fn the_scheme_is_case_insensitive() {
        assert_eq!(kind(&["BEARER a.b.c"]), Ok("a.b.c".into()));
        assert_eq!(kind(&["bEaReR a.b.c"]), Ok("a.b.c".into()));
    }

    #[test]
    fn padding_is_allowed_only_at_the_end() {
        assert_eq!(kind(&["Bearer abc=="]), Ok("abc==".into()));
        assert_eq!(kind(&["Bearer a=bc"]), Err(AuthErrorKind::MalformedRequest));
        assert_eq!(kind(&["Bearer ==="]), Err(AuthErrorKind::MalformedRequest));
    }

    #[test]
    fn two_authorization_headers_are_malformed() {
        assert_eq!(
            kind(&["Bearer a", "Bearer b"]),
            Err(AuthErrorKind::MalformedRequest)
        );
    }

    #[test]
    fn another_scheme_counts_as_no_credentials() {
        assert_eq!(
            kind(&["Basic dXNlcjpwYXNz"]),
            Err(AuthErrorKind::MissingToken)
        );
        assert_eq!(kind(&["Bearerx abc"]), Err(AuthErrorKind::MissingToken));
    }

    #[test]
    fn bearer_without_a_token_is_malformed() {
        assert_eq!(kind(&["Bearer"]), Err(AuthErrorKind::MalformedRequest));
        assert_eq!(kind(&["Bearer "]), Err(AuthErrorKind::MalformedRequest));
    }

    #[test]
    fn one_or_more_spaces_after_the_scheme_are_accepted() {
        assert_eq!(kind(&["Bearer  abc"]), Ok("abc".into()));
        assert_eq!(kind(&["bearer     a.b.c"]), Ok("a.b.c".into()));
        assert_eq!(kind(&["Bearer   "]), Err(AuthErrorKind::MalformedRequest));
    }

    #[test]
    fn the_cache_lookup_skips_every_space_after_the_scheme() {
        let h = headers(&["Bearer    a.b.c"]);
        assert_eq!(bearer_candidate(&h), Some(&b"a.b.c"[..]));
        let h = headers(&["bearer a.b.c"]);
        assert_eq!(bearer_candidate(&h), Some(&b"a.b.c"[..]));
        let h = headers(&["Bearer   "]);
        assert_eq!(bearer_candidate(&h), Some(&b""[..]));
    }

    fn description(value: &str) -> String {
        match parse_authorization(value.as_bytes()) {
            Err(e) => e.description().to_owned(),
            Ok(t) => panic!("accepted: {t:?}"),
        }
    }

    #[test]
    fn a_character_outside_b64token_is_described_as_such() {
        for value in ["Bearer a,b", "Bearer a=b", "Bearer a\"b", "Bearer  a@b.c"] {
            let d = description(value);
            assert!(
                d.contains("character outside the token syntax"),
                "{value}: {d}"
            );
        }
    }

    #[test]
    fn two_tokens_are_described_as_more_than_one_token() {
        let d = description("Bearer a b");
        assert!(d.contains("more than one token"), "{d}");
    }

    #[test]
    fn odd_whitespace_is_malformed() {
        assert_eq!(kind(&["Bearer abc "]), Err(AuthErrorKind::MalformedRequest));
        assert_eq!(kind(&["Bearer\tabc"]), Err(AuthErrorKind::MalformedRequest));
        assert_eq!(kind(&["Bearer a b"]), Err(AuthErrorKind::MalformedRequest));
    }

    #[test]
    fn a_cookie_is_read_only_when_opted_in() {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, "theme=dark; at=abc.def".parse().expect("hv"));
        assert!(bearer_token(&h, &TokenSource::AuthorizationHeader).is_err());
        assert_eq!(
            bearer_token(&h, &TokenSource::Cookie("at".into())).ok(),
            Some("abc.def")
        );
    }
}
