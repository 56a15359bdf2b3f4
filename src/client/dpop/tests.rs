//! Each proof is verified independently: jsonwebtoken's decoder with the key from the
//! proof's own `jwk` header, then every member checked.

use super::*;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};

const EC_PEM: &str = include_str!("../../dev_issuer/keys/ec256-1.pem");
const ED_PEM: &str = include_str!("../../dev_issuer/keys/ed-1.pem");

/// RFC 8037 Appendix A.1 (private key) and A.3 (thumbprint).
const RFC8037_ED25519: &str = r#"{"kty":"OKP","crv":"Ed25519","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
const RFC8037_THUMBPRINT: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";
/// RFC 7515 Appendix A.3's P-256 key.
const RFC7515_P256: &str = r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}"#;

fn install_provider() {
    // jsonwebtoken's decoder needs a process-wide provider when both backends are built.
    if let Some(p) = crypto::provider() {
        let _ = p.install_default();
    }
}

/// Verifies `proof` with the key in its own header and returns (header, claims).
fn verify(proof: &str, alg: jsonwebtoken::Algorithm) -> (Value, Value) {
    install_provider();
    let header = decode_header(proof).expect("header");
    assert_eq!(header.alg, alg);
    assert_eq!(header.typ.as_deref(), Some("dpop+jwt"));
    let jwk = header.jwk.expect("a jwk header");
    let key = DecodingKey::from_jwk(&jwk).expect("jwk key");
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let data = decode::<Value>(proof, &key, &validation).expect("the signature verifies");
    let raw_header: Value = serde_json::from_slice(
        &B64.decode(proof.split('.').next().expect("part"))
            .expect("b64"),
    )
    .expect("json");
    (raw_header, data.claims)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[test]
fn an_es256_proof_verifies_under_its_own_jwk_and_carries_every_member() {
    let key = DpopKey::generate(Algorithm::ES256).expect("key");
    let proof = key
        .proof(
            "POST",
            "https://api.example.com:8443/a/b?x=1#frag",
            Some("the-token"),
            Some("n-1"),
        )
        .expect("proof");
    let (header, claims) = verify(&proof, jsonwebtoken::Algorithm::ES256);
    assert_eq!(header["typ"], "dpop+jwt");
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["jwk"], *key.public_jwk());
    assert_eq!(
        header["jwk"].as_object().expect("object").len(),
        4,
        "kty, crv, x, y only: {header}"
    );
    assert_eq!(claims["htm"], "POST");
    assert_eq!(claims["htu"], "https://api.example.com:8443/a/b");
    assert_eq!(claims["ath"], ath("the-token"));
    assert_eq!(
        claims["ath"],
        B64.encode(Sha256::digest(b"the-token")).as_str()
    );
    assert_eq!(claims["nonce"], "n-1");
    let iat = claims["iat"].as_u64().expect("iat");
    assert!(iat.abs_diff(now()) <= 2, "iat {iat}");
    let jti = claims["jti"].as_str().expect("jti");
    assert_eq!(B64.decode(jti).expect("b64").len(), 16);
    assert_eq!(claims.as_object().expect("object").len(), 6, "{claims}");
}

#[test]
fn an_eddsa_proof_verifies_under_its_own_jwk() {
    let key = DpopKey::generate(Algorithm::EdDSA).expect("key");
    let proof = key
        .proof("GET", "http://127.0.0.1:3000/api", None, None)
        .expect("proof");
    let (header, claims) = verify(&proof, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["jwk"]["kty"], "OKP");
    assert_eq!(header["jwk"]["crv"], "Ed25519");
    assert!(header["jwk"].get("d").is_none());
    assert_eq!(claims["htm"], "GET");
    assert_eq!(claims["htu"], "http://127.0.0.1:3000/api");
    assert!(claims.get("ath").is_none() && claims.get("nonce").is_none());
}

#[test]
fn every_proof_has_a_new_jti() {
    let key = DpopKey::generate(Algorithm::ES256).expect("key");
    let jtis: std::collections::HashSet<String> = (0..50)
        .map(|_| {
            let p = key
                .proof("GET", "https://a.example/", None, None)
                .expect("proof");
            verify(&p, jsonwebtoken::Algorithm::ES256).1["jti"]
                .as_str()
                .expect("jti")
                .to_owned()
        })
        .collect();
    assert_eq!(jtis.len(), 50);
}

#[test]
fn generated_keys_differ() {
    let a = DpopKey::generate(Algorithm::ES256).expect("key");
    let b = DpopKey::generate(Algorithm::ES256).expect("key");
    assert_ne!(a.thumbprint(), b.thumbprint());
}

#[test]
fn the_rfc_8037_ed25519_key_gives_its_public_key_and_thumbprint() {
    let key = DpopKey::from_jwk(RFC8037_ED25519).expect("key");
    assert_eq!(key.algorithm(), Algorithm::EdDSA);
    assert_eq!(
        key.public_jwk()["x"],
        "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    );
    assert_eq!(key.thumbprint(), RFC8037_THUMBPRINT);
}

#[test]
fn the_rfc_7515_p256_key_gives_its_public_key() {
    let key = DpopKey::from_jwk(RFC7515_P256).expect("key");
    assert_eq!(key.algorithm(), Algorithm::ES256);
    let p = key
        .proof("GET", "https://a.example/", None, None)
        .expect("proof");
    verify(&p, jsonwebtoken::Algorithm::ES256);
}

#[test]
fn a_jwk_whose_public_part_does_not_match_is_refused() {
    let wrong = RFC7515_P256.replace("f83OJ3D2", "g83OJ3D2");
    let e = DpopKey::from_jwk(&wrong).expect_err("mismatch");
    assert!(e.to_string().contains("x does not match"), "{e}");
    assert!(!e.to_string().contains("jpsQnnGQ"), "d never shown: {e}");
}

#[test]
fn bad_jwks_are_refused_with_a_reason() {
    for (jwk, reason) in [
        ("not json", "not JSON"),
        (r#"{"kty":"RSA","n":"x","e":"AQAB"}"#, "neither"),
        (r#"{"kty":"EC","crv":"P-384","d":"AA"}"#, "neither"),
        (
            r#"{"kty":"EC","crv":"P-256","x":"a","y":"b"}"#,
            "private member d",
        ),
        (
            r#"{"kty":"EC","crv":"P-256","d":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#,
            "not a P-256 scalar",
        ),
        (
            r#"{"kty":"OKP","crv":"Ed25519","alg":"ES256","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}"#,
            "does not fit",
        ),
    ] {
        let e = DpopKey::from_jwk(jwk).expect_err(jwk);
        assert!(e.to_string().contains(reason), "{jwk}: {e}");
    }
}

#[test]
fn pem_keys_load_for_es256_and_eddsa() {
    let ec = DpopKey::from_pem(Algorithm::ES256, EC_PEM).expect("ec");
    let p = ec
        .proof("GET", "https://a.example/", None, None)
        .expect("proof");
    verify(&p, jsonwebtoken::Algorithm::ES256);
    let ed = DpopKey::from_pem(Algorithm::EdDSA, ED_PEM).expect("ed");
    let p = ed
        .proof("GET", "https://a.example/", None, None)
        .expect("proof");
    verify(&p, jsonwebtoken::Algorithm::EdDSA);
    assert!(DpopKey::from_pem(Algorithm::EdDSA, EC_PEM).is_err());
    assert!(DpopKey::from_pem(Algorithm::ES256, "not a pem").is_err());
}

#[test]
fn other_algorithms_are_refused() {
    for alg in [Algorithm::RS256, Algorithm::HS256, Algorithm::ES384] {
        assert!(matches!(
            DpopKey::generate(alg),
            Err(ConfigError::AlgorithmNotUsable { .. })
        ));
    }
}

#[test]
fn debug_shows_the_thumbprint_but_not_the_key() {
    let key = DpopKey::from_jwk(RFC8037_ED25519).expect("key");
    let shown = format!("{key:?}");
    assert!(shown.contains(RFC8037_THUMBPRINT), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
    assert!(!shown.contains("nWGxne"), "{shown}");
}

#[test]
fn htu_drops_query_fragment_and_user_info() {
    assert_eq!(
        htu("https://user:pw@API.example.com:443/p/q?x=1#f").expect("htu"),
        "https://api.example.com/p/q"
    );
    assert_eq!(htu("http://h:8080").expect("htu"), "http://h:8080/");
    for bad in ["/relative", "ftp://h/x", "not a uri", "data:text/plain,x"] {
        assert!(htu(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_bad_method_makes_no_proof() {
    let key = DpopKey::generate(Algorithm::ES256).expect("key");
    assert!(key.proof("", "https://a.example/", None, None).is_err());
    assert!(key.proof("GE T", "https://a.example/", None, None).is_err());
}

#[test]
fn nonces_are_remembered_per_origin_and_bounded() {
    const RS: Role = Role::Resource;
    let dpop = Dpop::new(DpopKey::generate(Algorithm::ES256).expect("key"));
    let mut h = http::HeaderMap::new();
    h.insert("dpop-nonce", http::HeaderValue::from_static("n-a"));
    assert!(dpop.remember(RS, "https://a.example/token?x", &h));
    assert_eq!(
        dpop.nonce(RS, "https://a.example/api").as_deref(),
        Some("n-a")
    );
    assert_eq!(dpop.nonce(RS, "https://a.example:8443/api"), None);
    assert_eq!(dpop.nonce(RS, "https://b.example/api"), None);
    h.insert("dpop-nonce", http::HeaderValue::from_static("n-b"));
    assert!(dpop.remember(RS, "https://a.example/other", &h));
    assert_eq!(dpop.nonce(RS, "https://a.example/").as_deref(), Some("n-b"));
    h.insert("dpop-nonce", http::HeaderValue::from_static("bad\"quote"));
    assert!(!dpop.remember(RS, "https://a.example/", &h));
    assert_eq!(dpop.nonce(RS, "https://a.example/").as_deref(), Some("n-b"));
    h.insert("dpop-nonce", http::HeaderValue::from_static("n"));
    for i in 0..200 {
        dpop.remember(RS, &format!("https://h{i}.example/"), &h);
    }
    assert!(dpop.lock().len() <= MAX_NONCE_ORIGINS);
}

#[test]
fn the_token_endpoint_and_an_api_at_the_same_origin_keep_their_own_nonces() {
    let dpop = Dpop::new(DpopKey::generate(Algorithm::ES256).expect("key"));
    let mut h = http::HeaderMap::new();
    h.insert("dpop-nonce", http::HeaderValue::from_static("as-nonce"));
    dpop.remember(
        Role::AuthorizationServer,
        "https://a.example/oauth/token",
        &h,
    );
    h.insert("dpop-nonce", http::HeaderValue::from_static("api-nonce"));
    dpop.remember(Role::Resource, "https://a.example/api/x", &h);
    assert_eq!(
        dpop.nonce(Role::AuthorizationServer, "https://a.example/oauth/token")
            .as_deref(),
        Some("as-nonce")
    );
    assert_eq!(
        dpop.nonce(Role::Resource, "https://a.example/api/y")
            .as_deref(),
        Some("api-nonce")
    );
}
