//! Comparing the `htu` claim with the request's URI (RFC 9449 §4.3 point 9, RFC 3986 §6).
//!
//! Both sides are normalised the same way before they are compared byte for byte:
//! - query and fragment dropped (RFC 9449 §4.2);
//! - syntax-based normalisation (RFC 3986 §6.2.2), by the WHATWG URL parser of the `url`
//!   crate: scheme and host lower case, dot segments removed, an empty path made `/`;
//! - scheme-based normalisation (§6.2.3): the default port (80 for http, 443 for https)
//!   dropped;
//! - percent-encoding (§6.2.2.1, §6.2.2.2): the hex digits of every `%XX` upper case, and a
//!   `%XX` that encodes an unreserved character (`A-Z a-z 0-9 - . _ ~`) decoded.
//!
//! Only `http` and `https` URIs with a host are accepted; user information is refused.

use url::Url;

/// The normal form of an absolute http(s) URI without its query and fragment, or `None`
/// when it is not one.
pub(crate) fn normalize(uri: &str) -> Option<String> {
    let mut url = Url::parse(uri).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none_or(str::is_empty)
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    url.set_query(None);
    url.set_fragment(None);
    // `Url` already drops the scheme's default port and lower-cases scheme and host.
    Some(normalize_percent(url.as_str()))
}

/// Upper-cases the hex digits of each `%XX` and decodes those that stand for an unreserved
/// character.
fn normalize_percent(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|c| hex(*c)),
                bytes.get(i + 2).and_then(|c| hex(*c)),
            )
        {
            let c = h << 4 | l;
            if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(c));
            } else {
                out.push('%');
                out.push(char::from(bytes[i + 1].to_ascii_uppercase()));
                out.push(char::from(bytes[i + 2].to_ascii_uppercase()));
            }
            i += 3;
            continue;
        }
        // `Url::as_str` is ASCII (everything else is percent-encoded).
        out.push(char::from(b));
        i += 1;
    }
    out
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &str, b: &str) -> bool {
        normalize(a).is_some() && normalize(a) == normalize(b)
    }

    #[test]
    fn query_and_fragment_are_ignored() {
        assert!(same(
            "https://api.example/maps?x=1#top",
            "https://api.example/maps"
        ));
    }

    #[test]
    fn scheme_and_host_case_do_not_matter() {
        assert!(same("HTTPS://API.Example/maps", "https://api.example/maps"));
    }

    #[test]
    fn the_path_case_matters() {
        assert!(!same(
            "https://api.example/Maps",
            "https://api.example/maps"
        ));
    }

    #[test]
    fn the_default_port_is_dropped() {
        assert!(same(
            "https://api.example:443/maps",
            "https://api.example/maps"
        ));
        assert!(same(
            "http://api.example:80/maps",
            "http://api.example/maps"
        ));
        assert!(!same(
            "https://api.example:8443/maps",
            "https://api.example/maps"
        ));
    }

    #[test]
    fn percent_encoding_case_and_unreserved_escapes_are_normalised() {
        assert!(same(
            "https://a.example/%7euser/a%2fb",
            "https://a.example/~user/a%2Fb"
        ));
        assert!(same("https://a.example/%41", "https://a.example/A"));
        assert!(!same("https://a.example/a%2Fb", "https://a.example/a/b"));
    }

    #[test]
    fn dot_segments_and_an_empty_path_are_normalised() {
        assert!(same(
            "https://a.example/x/../maps",
            "https://a.example/maps"
        ));
        assert!(same("https://a.example", "https://a.example/"));
    }

    #[test]
    fn other_schemes_relative_uris_and_userinfo_are_refused() {
        assert_eq!(normalize("ftp://a.example/"), None);
        assert_eq!(normalize("/maps"), None);
        assert_eq!(normalize("https://user:pw@a.example/"), None);
    }
}
