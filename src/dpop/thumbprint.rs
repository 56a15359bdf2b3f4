//! JWK thumbprints (RFC 7638) with SHA-256, as `cnf.jkt` carries them (RFC 9449 §6.1).

use base64::Engine as _;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::jwks::B64;

/// The RFC 7638 SHA-256 thumbprint of a public JWK, base64url without padding (43
/// characters), or `None` when the key lacks a required member or its `kty` is not `EC`,
/// `OKP` or `RSA`.
///
/// Only the required members take part, in lexicographic order and without whitespace
/// (RFC 7638 §3.2): `crv`, `kty`, `x`, `y` for EC; `crv`, `kty`, `x` for OKP; `e`, `kty`,
/// `n` for RSA. Other members (`kid`, `alg`, `use`, …) do not change it.
///
/// ```
/// // RFC 7638 §3.1.
/// let jwk = serde_json::json!({
///     "kty": "RSA",
///     "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
///     "e": "AQAB",
///     "alg": "RS256",
///     "kid": "2011-04-29"
/// });
/// assert_eq!(
///     bearer_guard::dpop::jwk_thumbprint(jwk.as_object().unwrap()).as_deref(),
///     Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
/// );
/// ```
pub fn jwk_thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let kty = jwk.get("kty")?.as_str()?;
    let members: &[&str] = match kty {
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        "RSA" => &["e", "kty", "n"],
        _ => return None,
    };
    let mut canonical = String::with_capacity(256);
    canonical.push('{');
    for (i, name) in members.iter().enumerate() {
        let value = jwk.get(*name)?.as_str()?;
        if i > 0 {
            canonical.push(',');
        }
        canonical.push('"');
        canonical.push_str(name);
        canonical.push_str("\":");
        // The values of a usable key are base64url and names (`EC`, `P-256`): nothing to
        // escape, written as they are. Anything else is escaped by serde_json, exactly as
        // RFC 7638 §3.3 asks (RFC 8259 strings).
        if value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            canonical.push('"');
            canonical.push_str(value);
            canonical.push('"');
        } else {
            canonical.push_str(&serde_json::to_string(value).ok()?);
        }
    }
    canonical.push('}');
    Some(B64.encode(Sha256::digest(canonical.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tp(v: Value) -> Option<String> {
        jwk_thumbprint(v.as_object().expect("object"))
    }

    const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

    #[test]
    fn the_rfc7638_section_3_1_vector_gives_its_thumbprint() {
        let jwk =
            json!({"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"});
        assert_eq!(
            tp(jwk).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
    }

    #[test]
    fn optional_members_and_member_order_do_not_change_the_thumbprint() {
        let a = json!({"e": "AQAB", "n": RFC7638_N, "kty": "RSA"});
        let b = json!({"kty": "RSA", "use": "sig", "kid": "x", "n": RFC7638_N, "e": "AQAB"});
        assert_eq!(tp(a), tp(b));
    }

    #[test]
    fn the_rfc8037_ed25519_vector_gives_its_thumbprint() {
        // RFC 8037 Appendix A.3.
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        assert_eq!(
            tp(jwk).as_deref(),
            Some("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k")
        );
    }

    #[test]
    fn values_that_need_escaping_are_escaped_as_json() {
        // Not a usable key, but the canonical form must still be RFC 8259 JSON.
        let odd = json!({"kty": "OKP", "crv": "Ed25519", "x": "a\"b"});
        let expected = B64.encode(Sha256::digest(
            br#"{"crv":"Ed25519","kty":"OKP","x":"a\"b"}"#,
        ));
        assert_eq!(tp(odd), Some(expected));
    }

    #[test]
    fn a_key_without_a_required_member_has_no_thumbprint() {
        assert_eq!(tp(json!({"kty": "EC", "crv": "P-256", "x": "AA"})), None);
        assert_eq!(tp(json!({"kty": "oct", "k": "AA"})), None);
        assert_eq!(tp(json!({"kty": "RSA", "n": 5, "e": "AQAB"})), None);
    }
}
