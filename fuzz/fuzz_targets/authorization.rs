//! Any bytes as an `Authorization` header value: `parse_authorization` and `bearer_token`
//! never panic and agree; a token found is exactly the bytes after `Bearer` and one or more
//! spaces (RFC 6750 §2.1: `"Bearer" 1*SP b64token`) and is a `b64token`. Also as a cookie and a custom header when those sources are enabled.
#![no_main]

use bearer_guard::{AuthErrorKind, TokenSource, bearer_token, parse_authorization};
use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

fn is_b64token(t: &str) -> bool {
    let body = t.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

fuzz_target!(|data: &[u8]| {
    let parsed = parse_authorization(data);
    match &parsed {
        Ok(Some(token)) => {
            assert!(is_b64token(token), "not a b64token: {token:?}");
            assert!(data[..7].eq_ignore_ascii_case(b"bearer "));
            let rest = &data[7..];
            let spaces = rest.iter().take_while(|&&b| b == b' ').count();
            assert_eq!(&rest[spaces..], token.as_bytes());
        }
        Ok(None) => {
            let scheme = data.split(|&b| b == b' ').next().unwrap_or_default();
            assert!(!scheme.eq_ignore_ascii_case(b"bearer"));
        }
        Err(e) => assert_eq!(e.kind(), AuthErrorKind::MalformedRequest),
    }
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, value.clone());
    let found = bearer_token(&headers, &TokenSource::AuthorizationHeader);
    match (&parsed, &found) {
        (Ok(Some(a)), Ok(b)) => assert_eq!(a, b),
        (Ok(None), Err(e)) => assert_eq!(e.kind(), AuthErrorKind::MissingToken),
        (Err(_), Err(e)) => assert_eq!(e.kind(), AuthErrorKind::MalformedRequest),
        (p, f) => panic!("parse_authorization {p:?} but bearer_token {f:?}"),
    }
    // Two headers are always refused.
    headers.append(AUTHORIZATION, value.clone());
    let two = bearer_token(&headers, &TokenSource::AuthorizationHeader);
    assert_eq!(
        two.map_err(|e| e.kind()),
        Err(AuthErrorKind::MalformedRequest)
    );
    // The same bytes as a cookie header and as a custom token header.
    let mut headers = HeaderMap::new();
    headers.insert(COOKIE, value.clone());
    if let Ok(t) = bearer_token(&headers, &TokenSource::Cookie("at".into())) {
        assert!(is_b64token(t));
    }
    let name = HeaderName::from_static("x-access-token");
    let mut headers = HeaderMap::new();
    headers.insert(name.clone(), value);
    if let Ok(t) = bearer_token(&headers, &TokenSource::Header(name)) {
        assert!(is_b64token(t));
        assert_eq!(t.as_bytes(), data);
    }
});
