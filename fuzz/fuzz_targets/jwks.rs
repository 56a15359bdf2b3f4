//! Any bytes as a static JWK Set (`Verifier::builder().jwks_json(..).build()`): never a
//! panic; when the set builds, verifying real tokens never panics, and a token is accepted
//! only if the document publishes its key's material (under the algorithm it is bound to).
#![no_main]

mod common;

use std::sync::OnceLock;

use base64::Engine as _;
use bearer_guard::dev_issuer::SigningKey;
use bearer_guard::{Algorithm, Verifier};
use common::{AUD, B64, ISS, fixture};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

/// Real tokens of the pool keys, with kid and without.
fn tokens() -> &'static Vec<(SigningKey, String)> {
    static T: OnceLock<Vec<(SigningKey, String)>> = OnceLock::new();
    T.get_or_init(|| {
        let f = fixture();
        let claims = json!({"iss": ISS, "aud": AUD, "exp": 4_102_444_800_i64, "scope": "a"});
        let mut out = Vec::new();
        for key in [&f.rs, &f.ed, &f.ec, &f.ps] {
            out.push((key.clone(), key.sign(&claims).expect("sign")));
            let header = json!({"alg": key.alg().as_str()}).to_string();
            out.push((
                key.clone(),
                key.sign_raw(header.as_bytes(), claims.to_string().as_bytes())
                    .expect("sign"),
            ));
        }
        out
    })
}

fn strip(mut b: &[u8]) -> &[u8] {
    while let [0, rest @ ..] = b {
        b = rest;
    }
    b
}

fn field(jwk: &Value, name: &str) -> Option<Vec<u8>> {
    B64.decode(jwk.get(name)?.as_str()?).ok()
}

/// Whether `doc` publishes `key`'s public material.
fn publishes(doc: &Value, key: &SigningKey) -> bool {
    let want = key.public_jwk();
    let Some(keys) = doc.get("keys").and_then(Value::as_array) else {
        return false;
    };
    keys.iter().any(|jwk| match want["kty"].as_str() {
        Some("RSA") => {
            field(jwk, "n")
                .is_some_and(|n| strip(&n) == strip(&field(&want, "n").unwrap_or_default()))
                && field(jwk, "e")
                    .is_some_and(|e| strip(&e) == strip(&field(&want, "e").unwrap_or_default()))
        }
        Some("EC") => field(jwk, "x") == field(&want, "x") && field(jwk, "y") == field(&want, "y"),
        Some("OKP") => field(jwk, "x") == field(&want, "x"),
        _ => false,
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut algorithms = Algorithm::DEFAULT_ALLOWED.to_vec();
    algorithms.push(Algorithm::ES512);
    let Ok(verifier) = Verifier::builder()
        .issuer(ISS)
        .audience(AUD)
        .algorithms(algorithms)
        .jwks_json(text)
        .token_cache(0)
        .build()
    else {
        return;
    };
    let _ = format!("{verifier:?}");
    let doc: Value = serde_json::from_str(text).expect("a JWK Set that builds is JSON");
    let f = fixture();
    for (key, token) in tokens() {
        if let Ok(claims) = f.rt.block_on(verifier.verify(token)) {
            assert_eq!(claims.algorithm(), key.alg());
            assert!(
                publishes(&doc, key),
                "accepted a {} token whose key the set does not publish",
                key.alg()
            );
        }
    }
});
