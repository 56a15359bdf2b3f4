//! Parsing a JWK Set (RFC 7517) into verification keys, each bound to one algorithm.
//!
//! A key that cannot be used is skipped with a reason, never fails the whole set:
//! unknown `kty` or `crv`, `use` other than `sig`, `key_ops` without `verify`, an `alg`
//! outside the allow-list or not fitting the key, undecodable material, symmetric (`oct`)
//! keys (an HMAC secret never comes from a JWKS), a `kid` longer than
//! [`MAX_KID_BYTES`](crate::MAX_KID_BYTES), and keys sharing a `kid` with another key of
//! the same type (ambiguous: both are dropped; keys of different types may share a `kid`,
//! RFC 7517 §4.5). At most `max_keys` keys are kept.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::algorithm::{Algorithm, Family};
use crate::crypto::{Key, KeyMaterial};
use crate::fetch::truncate;

/// base64url without padding, strict (RFC 7515 §2, RFC 7517).
pub(crate) const B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
);

/// The keys found in a JWK Set, and why the others were skipped.
#[derive(Debug, Default)]
pub(crate) struct ParsedJwks {
    pub(crate) keys: Vec<Arc<Key>>,
    pub(crate) skipped: Vec<String>,
}

/// Parses a JWK Set document. Fails only when the document itself is not a JWK Set.
pub(crate) fn parse_jwk_set(
    body: &[u8],
    allowed: &[Algorithm],
    max_keys: usize,
) -> Result<ParsedJwks, &'static str> {
    let doc: Value = serde_json::from_slice(body).map_err(|_| "the JWK Set is not valid JSON")?;
    let Some(keys) = doc.get("keys").and_then(Value::as_array) else {
        return Err("the JWK Set has no \"keys\" array");
    };
    let mut out = ParsedJwks::default();
    for (i, jwk) in keys.iter().enumerate() {
        if out.keys.len() >= max_keys {
            out.skipped.push(format!(
                "{} keys beyond the limit of {max_keys} were ignored",
                keys.len() - i
            ));
            break;
        }
        match parse_jwk(jwk, allowed) {
            Ok(key) => out.keys.push(Arc::new(key)),
            Err(reason) => out
                .skipped
                .push(format!("key {}: {reason}", describe(jwk, i))),
        }
    }
    drop_duplicate_kids(&mut out);
    Ok(out)
}

fn describe(jwk: &Value, index: usize) -> String {
    match jwk.get("kid").and_then(Value::as_str) {
        // The kid comes from the issuer, not from a token; keep logs short all the same.
        Some(kid) => format!("#{index} (kid {:?})", truncate(kid, 64)),
        None => format!("#{index}"),
    }
}

/// Keys of one type sharing a `kid` are ambiguous: all of them are dropped. Keys of
/// different types may share a `kid` (RFC 7517 §4.5: "equivalent alternatives"): they are
/// kept, and a token's `alg` picks among them.
fn drop_duplicate_kids(out: &mut ParsedJwks) {
    let mut seen = std::collections::HashMap::<(&str, u8), (Family, usize)>::new();
    for k in &out.keys {
        if let Some(kid) = k.kid() {
            let family = k.alg().family();
            seen.entry((kid, family as u8)).or_insert((family, 0)).1 += 1;
        }
    }
    let dups: Vec<(String, Family)> = seen
        .into_iter()
        .filter(|&(_, (_, n))| n > 1)
        .map(|((kid, _), (family, _))| (kid.to_owned(), family))
        .collect();
    if dups.is_empty() {
        return;
    }
    out.keys.retain(|k| {
        k.kid().is_none_or(|kid| {
            !dups
                .iter()
                .any(|(d, family)| d == kid && *family == k.alg().family())
        })
    });
    for (kid, _) in dups {
        out.skipped.push(format!(
            "keys with kid {:?} are ambiguous (the kid is used twice for one key type) and \
             were ignored",
            truncate(&kid, 64)
        ));
    }
}

/// Parses one JWK into a key bound to one allowed algorithm.
pub(crate) fn parse_jwk(jwk: &Value, allowed: &[Algorithm]) -> Result<Key, String> {
    let obj = jwk.as_object().ok_or("not a JSON object")?;
    let kty = str_field(obj, "kty")?.ok_or("no \"kty\"")?;
    if let Some(u) = str_field(obj, "use")?
        && u != "sig"
    {
        return Err(format!("\"use\" is {:?}, not \"sig\"", truncate(u, 32)));
    }
    if let Some(ops) = obj.get("key_ops") {
        let ops = ops.as_array().ok_or("\"key_ops\" is not an array")?;
        if !ops.iter().any(|o| o.as_str() == Some("verify")) {
            return Err("\"key_ops\" does not include \"verify\"".into());
        }
    }
    let kid = str_field(obj, "kid")?.map(str::to_owned);
    if kid
        .as_ref()
        .is_some_and(|k| k.len() > crate::verify::MAX_KID_BYTES)
    {
        return Err(format!(
            "the kid is longer than {} bytes",
            crate::verify::MAX_KID_BYTES
        ));
    }
    let declared = match str_field(obj, "alg")? {
        Some(name) => Some(
            Algorithm::from_jose(name)
                .ok_or_else(|| format!("unsupported \"alg\" {:?}", truncate(name, 32)))?,
        ),
        None => None,
    };
    let (alg, material) = match kty {
        "RSA" => {
            if obj.contains_key("d") {
                return Err("an RSA private key is published in the JWK Set".into());
            }
            let n = b64_field(obj, "n")?;
            let e = b64_field(obj, "e")?;
            let alg = match declared {
                Some(a) => a,
                None => rsa_default(allowed).ok_or("no RSA algorithm is allowed")?,
            };
            (alg, KeyMaterial::RsaComponents { n, e })
        }
        "EC" => {
            if obj.contains_key("d") {
                return Err("an EC private key is published in the JWK Set".into());
            }
            let crv = str_field(obj, "crv")?.ok_or("no \"crv\"")?;
            let curve_alg = match crv {
                "P-256" => Algorithm::ES256,
                "P-384" => Algorithm::ES384,
                "P-521" => Algorithm::ES512,
                other => return Err(format!("unsupported curve {:?}", truncate(other, 32))),
            };
            if declared.is_some_and(|a| a != curve_alg) {
                return Err(format!("\"alg\" does not fit curve {crv}"));
            }
            let x = b64_field(obj, "x")?;
            let y = b64_field(obj, "y")?;
            let size = match curve_alg {
                Algorithm::ES256 => 32,
                Algorithm::ES384 => 48,
                _ => 66,
            };
            if x.len() != size || y.len() != size {
                return Err(format!("the coordinates do not fit curve {crv}"));
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (curve_alg, KeyMaterial::EcPoint(point))
        }
        "OKP" => {
            if obj.contains_key("d") {
                return Err("an OKP private key is published in the JWK Set".into());
            }
            let crv = str_field(obj, "crv")?.ok_or("no \"crv\"")?;
            if crv != "Ed25519" {
                return Err(format!("unsupported curve {:?}", truncate(crv, 32)));
            }
            if declared.is_some_and(|a| a != Algorithm::EdDSA) {
                return Err("\"alg\" does not fit an Ed25519 key".into());
            }
            (Algorithm::EdDSA, KeyMaterial::Ed25519(b64_field(obj, "x")?))
        }
        "oct" => return Err("symmetric keys are never taken from a JWK Set".into()),
        other => return Err(format!("unsupported \"kty\" {:?}", truncate(other, 32))),
    };
    if alg.family() != material.family() {
        return Err(format!("\"alg\" {alg} does not fit a {kty} key"));
    }
    if !allowed.contains(&alg) {
        return Err(format!("algorithm {alg} is not allowed"));
    }
    Key::new(kid, alg, material).map_err(str::to_owned)
}

/// RSA keys published without `alg` are bound to RS256, or else to the first allowed RSA
/// algorithm in the order RS256, RS384, RS512, PS256, PS384, PS512.
fn rsa_default(allowed: &[Algorithm]) -> Option<Algorithm> {
    [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ]
    .into_iter()
    .find(|a| allowed.contains(a))
}

fn str_field<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("\"{name}\" is not a string")),
    }
}

fn b64_field(obj: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let s = str_field(obj, name)?.ok_or_else(|| format!("no \"{name}\""))?;
    B64.decode(s)
        .map_err(|_| format!("\"{name}\" is not base64url"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ALL: &[Algorithm] = &Algorithm::DEFAULT_ALLOWED;

    #[test]
    fn a_document_without_keys_is_refused() {
        assert!(parse_jwk_set(b"{}", ALL, 10).is_err());
        assert!(parse_jwk_set(b"<html>", ALL, 10).is_err());
        assert!(parse_jwk_set(b"[]", ALL, 10).is_err());
    }

    #[test]
    fn unusable_keys_are_skipped_not_fatal() {
        let doc = json!({"keys": [
            {"kty": "XYZ", "kid": "a"},
            {"kty": "oct", "kid": "b", "k": "AAAA"},
            {"kty": "EC", "crv": "P-256", "kid": "c", "use": "enc", "x": "AA", "y": "AA"},
            "not an object",
        ]});
        let parsed = parse_jwk_set(doc.to_string().as_bytes(), ALL, 10).expect("a set");
        assert!(parsed.keys.is_empty());
        assert_eq!(parsed.skipped.len(), 4);
    }

    #[test]
    fn key_ops_without_verify_is_skipped() {
        let doc = json!({"kty": "OKP", "crv": "Ed25519", "key_ops": ["sign"], "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        assert!(parse_jwk(&doc, ALL).is_err());
    }

    #[test]
    fn an_alg_that_does_not_fit_the_curve_is_skipped() {
        let doc = json!({"kty": "OKP", "crv": "Ed25519", "alg": "ES256", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        assert!(parse_jwk(&doc, ALL).is_err());
    }

    #[test]
    fn padded_base64_is_refused() {
        let doc = json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo="});
        assert!(parse_jwk(&doc, ALL).is_err());
    }
}
