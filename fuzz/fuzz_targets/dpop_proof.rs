//! DPoP proofs (RFC 9449) through `ProofChecker::check`, in two modes chosen by the first
//! byte:
//! - `0`: the rest is the `DPoP` header value, as sent;
//! - otherwise: `header \n payload` JSON, **validly signed** with the pool's Ed25519 key
//!   (deterministic), so that the fuzzer gets past the signature to the header and claim
//!   checks.
//!
//! Never panics. An accepted proof names `GET` and the fixed URL (query aside), has an `iat`
//! within the window of the fixed time, hashes the fixed token, and its `jkt` is the
//! thumbprint of its `jwk`; in mode 0 the `jwk` must be the pool key's (nobody else can sign)
//! and re-signing `header.payload` must give the same signature bytes.
#![no_main]

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bearer_guard::Algorithm;
use bearer_guard::dev_issuer::SigningKey;
use bearer_guard::dpop::{ProofChecker, RequestFacts, jwk_thumbprint};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

mod common;
use common::B64;

/// 2100-01-01T00:00:00Z: the seeds' `iat`.
const NOW: u64 = 4_102_444_800;
const HTU: &str = "https://api.fuzz/maps";
const TOKEN: &str = "fuzz.access.token";

fn key() -> &'static SigningKey {
    static K: std::sync::OnceLock<SigningKey> = std::sync::OnceLock::new();
    K.get_or_init(|| SigningKey::from_pool(Algorithm::EdDSA, 0, "ed").expect("pool key"))
}

fn checker() -> &'static ProofChecker {
    static C: std::sync::OnceLock<ProofChecker> = std::sync::OnceLock::new();
    C.get_or_init(|| ProofChecker::builder().build().expect("checker"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let proof = if mode == 0 {
        match std::str::from_utf8(rest) {
            Ok(p) => p.to_owned(),
            Err(_) => return,
        }
    } else {
        let (header, payload) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => return,
        };
        match key().sign_raw(header, payload) {
            Ok(p) => p,
            Err(_) => return,
        }
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(NOW);
    let facts = RequestFacts::new("GET", HTU, &proof, now).access_token(TOKEN);
    let Ok(verified) = checker().check(&facts) else {
        return;
    };
    // What holds for every accepted proof.
    let mut parts = proof.split('.');
    let (h, p, s) = (
        parts.next().expect("header"),
        parts.next().expect("payload"),
        parts.next().expect("signature"),
    );
    assert!(parts.next().is_none());
    let header: Value = serde_json::from_slice(&B64.decode(h).expect("b64")).expect("json");
    let claims: Value = serde_json::from_slice(&B64.decode(p).expect("b64")).expect("json");
    assert!(
        header["typ"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt"))
    );
    assert!(!matches!(
        header["alg"].as_str(),
        Some("none" | "HS256" | "HS384" | "HS512")
    ));
    let jwk = header["jwk"].as_object().expect("a jwk object");
    assert!(!jwk.contains_key("d"), "accepted a private key");
    assert_eq!(jwk_thumbprint(jwk).as_deref(), Some(verified.jkt()));
    assert_eq!(claims["htm"], "GET");
    let iat = verified.issued_at();
    let now = i64::try_from(NOW).expect("fits");
    assert!(
        iat <= now + 30 && iat >= now - 60,
        "iat {iat} outside the window"
    );
    assert_eq!(
        claims["ath"].as_str(),
        Some(B64.encode(sha256(TOKEN.as_bytes())).as_str())
    );
    if mode == 0 {
        let pool = key().public_jwk();
        for m in ["kty", "crv", "x"] {
            assert_eq!(
                jwk.get(m),
                pool.get(m),
                "accepted a proof of an unknown key"
            );
        }
        let again = key().sign_raw(&B64.decode(h).expect("b64"), &B64.decode(p).expect("b64"));
        assert_eq!(again.expect("sign").rsplit('.').next(), Some(s));
    }
});

fn sha256(data: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).to_vec()
}
