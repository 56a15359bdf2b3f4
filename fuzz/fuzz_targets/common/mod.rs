//! What the targets share: fixed keys, the verifiers under test and a reference signer.
#![allow(dead_code)]

use std::sync::OnceLock;

use bearer_guard::dev_issuer::{SigningKey, jwk_set};
use bearer_guard::{Algorithm, Claims, Verifier};

pub const ISS: &str = "https://issuer.fuzz/";
pub const AUD: &str = "urn:fuzz";
/// HS256 secret of the HMAC verifier (32 bytes).
pub const SECRET: &[u8] = b"fuzzing-secret-of-32-bytes-long!";
pub const LEEWAY_SECS: i64 = 30;

/// base64url, no padding, strict: the encoding of JWS segments.
pub const B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
);

pub struct Fixture {
    pub rt: tokio::runtime::Runtime,
    /// Static JWKS: RS256 (kid `rs`), EdDSA (kid `ed`). Deterministic signatures only, so
    /// that an accepted token can be checked by re-signing.
    pub jwks: Verifier,
    /// HS256 with [`SECRET`].
    pub hmac: Verifier,
    pub rs: SigningKey,
    pub ed: SigningKey,
    pub hs: SigningKey,
    /// Other pool keys, for the JWKS target.
    pub ec: SigningKey,
    pub ps: SigningKey,
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rs = SigningKey::from_pool(Algorithm::RS256, 0, "rs").expect("pool key");
        let ed = SigningKey::from_pool(Algorithm::EdDSA, 0, "ed").expect("pool key");
        let hs = SigningKey::hmac(Algorithm::HS256, SECRET, "hs").expect("hmac key");
        let ec = SigningKey::from_pool(Algorithm::ES256, 0, "ec").expect("pool key");
        let ps = SigningKey::from_pool(Algorithm::PS256, 1, "ps").expect("pool key");
        let jwks = Verifier::builder()
            .issuer(ISS)
            .audience(AUD)
            .jwks_json(jwk_set([&rs, &ed]).to_string())
            .token_cache(0)
            .build()
            .expect("jwks verifier");
        let hmac = Verifier::builder()
            .issuer(ISS)
            .audience(AUD)
            .hmac_secret(SECRET)
            .token_cache(0)
            .build()
            .expect("hmac verifier");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        Fixture {
            rt,
            jwks,
            hmac,
            rs,
            ed,
            hs,
            ec,
            ps,
        }
    })
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// What must hold for every accepted token, whatever its bytes.
pub fn check_accepted_claims(claims: &Claims) {
    let now = now();
    assert_eq!(claims.issuer(), ISS, "accepted a token of another issuer");
    assert!(
        claims.audience().iter().any(|a| a == AUD),
        "accepted a token for another audience"
    );
    assert!(
        claims.expires_at() + LEEWAY_SECS > now,
        "accepted an expired token"
    );
    if let Some(nbf) = claims.not_before() {
        assert!(nbf <= now + LEEWAY_SECS, "accepted a token not valid yet");
    }
    if let Some(iat) = claims.issued_at() {
        assert!(
            iat <= now + LEEWAY_SECS,
            "accepted a token issued in the future"
        );
    }
    for s in claims.scopes().iter() {
        assert!(
            bearer_guard::ScopeToken::new(s).is_ok(),
            "invalid scope token {s:?}"
        );
    }
}
