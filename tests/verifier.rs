//! The verifier's rules: claims, `typ`, scopes, algorithms and the algorithm a key is bound
//! to, and the header checks that run before any key is fetched.
#![cfg(all(
    feature = "dev-issuer",
    any(feature = "aws-lc-rs", feature = "rust-crypto")
))]

mod common;

use std::time::Duration;

use bearer_guard::dev_issuer::{SigningKey, jwk_set};
use bearer_guard::{Algorithm, InvalidTokenReason as R, Verifier, VerifierBuilder};
use common::{
    AUD, ISSUER, Server, claims, claims_with, key, mint, mint_with_header, now, reason, token,
    unsigned,
};
use serde_json::{Value, json};

fn rsa() -> SigningKey {
    key(Algorithm::RS256, 0, "rsa-1")
}

/// A verifier for [`ISSUER`] and [`AUD`] with the RS256 key `rsa-1` as a static JWKS.
fn builder() -> VerifierBuilder {
    Verifier::builder()
        .issuer(ISSUER)
        .audience(AUD)
        .jwks_json(jwk_set([&rsa()]).to_string())
}

fn verifier() -> Verifier {
    builder().build().expect("verifier")
}

/// Verifies a token signed by `rsa-1` with these claims, by a verifier built from `b`.
async fn verify_claims(
    b: VerifierBuilder,
    claims: Value,
) -> Result<bearer_guard::Claims, bearer_guard::AuthError> {
    let v = b.build().expect("verifier");
    v.verify(&mint(&rsa(), &claims)).await
}

/// A token signed by `rsa-1` with `typ` set as given (absent when `None`).
fn token_with_typ(typ: Option<&str>, claims: &Value) -> String {
    let mut header = json!({"alg": "RS256", "kid": "rsa-1"});
    if let Some(t) = typ {
        header["typ"] = json!(t);
    }
    mint_with_header(&rsa(), &header, claims)
}

// ---- exp, nbf, iat, maximum age ----

#[tokio::test]
async fn a_valid_token_is_accepted_and_its_claims_are_exposed() {
    let c = verify_claims(builder(), claims_with(json!({"sub": "alice"})))
        .await
        .expect("accepted");
    assert_eq!(c.issuer(), ISSUER);
    assert_eq!(c.subject(), Some("alice"));
    assert_eq!(c.audience(), [AUD]);
    assert_eq!(c.algorithm(), Algorithm::RS256);
    assert_eq!(c.key_id(), Some("rsa-1"));
}

#[tokio::test]
async fn a_token_without_exp_is_refused() {
    let r = verify_claims(builder(), claims_with(json!({"exp": null}))).await;
    assert_eq!(reason(r), R::MissingClaim);
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let r = verify_claims(
        builder(),
        claims_with(json!({"exp": now() - 60, "iat": now() - 600})),
    )
    .await;
    assert_eq!(reason(r), R::Expired);
}

#[tokio::test]
async fn a_token_expired_within_the_leeway_is_accepted() {
    let r = verify_claims(
        builder(),
        claims_with(json!({"exp": now() - 10, "iat": now() - 600})),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
}

#[tokio::test]
async fn a_token_expired_just_now_is_refused_without_leeway() {
    let r = verify_claims(
        builder().leeway(Duration::ZERO),
        claims_with(json!({"exp": now() - 1})),
    )
    .await;
    assert_eq!(reason(r), R::Expired);
}

/// The current whole second, once the clock is early in it (fraction below 0.3), so that a
/// test has 0.6 s before a claim at `second + 0.9` is reached.
async fn early_in_a_second() -> f64 {
    loop {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970");
        if t.subsec_millis() < 300 {
            #[allow(clippy::cast_precision_loss)]
            return t.as_secs() as f64;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_fractional_nbf_is_not_accepted_early_without_leeway() {
    let second = early_in_a_second().await;
    let r = verify_claims(
        builder().leeway(Duration::ZERO),
        claims_with(json!({"nbf": second + 0.9})),
    )
    .await;
    assert_eq!(reason(r), R::NotYetValid);
}

#[tokio::test]
async fn a_fractional_exp_is_not_refused_early_without_leeway() {
    let second = early_in_a_second().await;
    let r = verify_claims(
        builder().leeway(Duration::ZERO),
        claims_with(json!({"exp": second + 0.9})),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
}

#[tokio::test]
async fn a_fractional_iat_later_in_this_second_is_in_the_future_without_leeway() {
    let second = early_in_a_second().await;
    let r = verify_claims(
        builder().leeway(Duration::ZERO),
        claims_with(json!({"iat": second + 0.9})),
    )
    .await;
    assert_eq!(reason(r), R::IssuedInFuture);
}

#[tokio::test]
async fn a_token_not_valid_before_a_future_time_is_refused() {
    let r = verify_claims(builder(), claims_with(json!({"nbf": now() + 120}))).await;
    assert_eq!(reason(r), R::NotYetValid);
}

#[tokio::test]
async fn a_token_whose_nbf_is_within_the_leeway_is_accepted() {
    let r = verify_claims(builder(), claims_with(json!({"nbf": now() + 10}))).await;
    assert!(r.is_ok(), "{r:?}");
}

#[tokio::test]
async fn a_token_issued_in_the_future_beyond_the_leeway_is_refused() {
    let r = verify_claims(builder(), claims_with(json!({"iat": now() + 120}))).await;
    assert_eq!(reason(r), R::IssuedInFuture);
}

#[tokio::test]
async fn a_token_issued_in_the_future_within_the_leeway_is_accepted() {
    let r = verify_claims(builder(), claims_with(json!({"iat": now() + 10}))).await;
    assert!(r.is_ok(), "{r:?}");
}

#[tokio::test]
async fn a_token_older_than_the_maximum_age_is_refused() {
    let b = builder().max_token_age(Duration::from_secs(60));
    let r = verify_claims(b, claims_with(json!({"iat": now() - 300}))).await;
    assert_eq!(reason(r), R::TooOld);
}

#[tokio::test]
async fn a_token_younger_than_the_maximum_age_is_accepted() {
    let b = builder().max_token_age(Duration::from_secs(60));
    let r = verify_claims(b, claims_with(json!({"iat": now() - 45}))).await;
    assert!(r.is_ok(), "{r:?}");
}

#[tokio::test]
async fn a_maximum_age_requires_iat() {
    let b = builder().max_token_age(Duration::from_secs(60));
    let r = verify_claims(b, claims_with(json!({"iat": null}))).await;
    assert_eq!(reason(r), R::MissingClaim);
}

#[tokio::test]
async fn a_time_claim_that_is_not_a_number_is_invalid() {
    let r = verify_claims(
        builder(),
        claims_with(json!({"exp": (now() + 600).to_string()})),
    )
    .await;
    assert_eq!(reason(r), R::InvalidClaim);
}

// ---- iss, aud, required claims ----

#[tokio::test]
async fn a_token_without_iss_is_refused() {
    let r = verify_claims(builder(), claims_with(json!({"iss": null}))).await;
    assert_eq!(reason(r), R::MissingClaim);
}

#[tokio::test]
async fn another_issuer_is_refused() {
    let r = verify_claims(builder(), claims_with(json!({"iss": "https://evil.test/"}))).await;
    assert_eq!(reason(r), R::WrongIssuer);
}

#[tokio::test]
async fn the_issuer_is_compared_exactly_trailing_slash_included() {
    let without_slash = ISSUER.trim_end_matches('/');
    let r = verify_claims(builder(), claims_with(json!({"iss": without_slash}))).await;
    assert_eq!(reason(r), R::WrongIssuer);
}

#[tokio::test]
async fn an_audience_string_is_accepted() {
    let c = verify_claims(builder(), claims_with(json!({"aud": AUD})))
        .await
        .expect("accepted");
    assert_eq!(c.audience(), [AUD]);
}

#[tokio::test]
async fn an_audience_array_containing_ours_is_accepted() {
    let c = verify_claims(builder(), claims_with(json!({"aud": ["urn:other", AUD]})))
        .await
        .expect("accepted");
    assert_eq!(c.audience(), ["urn:other", AUD]);
}

#[tokio::test]
async fn any_of_several_configured_audiences_is_accepted() {
    let b = Verifier::builder()
        .issuer(ISSUER)
        .audiences(["urn:first", "urn:second"])
        .jwks_json(jwk_set([&rsa()]).to_string());
    let r = verify_claims(b, claims_with(json!({"aud": "urn:second"}))).await;
    assert!(r.is_ok(), "{r:?}");
}

#[tokio::test]
async fn another_audience_is_refused() {
    let r = verify_claims(builder(), claims_with(json!({"aud": "urn:other"}))).await;
    assert_eq!(reason(r), R::WrongAudience);
}

#[tokio::test]
async fn an_audience_array_without_ours_is_refused() {
    let r = verify_claims(builder(), claims_with(json!({"aud": ["urn:a", "urn:b"]}))).await;
    assert_eq!(reason(r), R::WrongAudience);
}

#[tokio::test]
async fn a_token_without_aud_is_refused() {
    let r = verify_claims(builder(), claims_with(json!({"aud": null}))).await;
    assert_eq!(reason(r), R::MissingClaim);
}

#[tokio::test]
async fn an_empty_audience_array_is_refused() {
    let r = verify_claims(builder(), claims_with(json!({"aud": []}))).await;
    assert_eq!(reason(r), R::MissingClaim);
}

#[tokio::test]
async fn a_required_claim_must_be_present() {
    let b = builder().require_claim("org_id");
    let r = verify_claims(b, claims()).await;
    assert_eq!(reason(r), R::MissingClaim);
}

#[tokio::test]
async fn a_required_claim_that_is_null_counts_as_missing() {
    let b = builder().require_claim("org_id");
    let mut c = claims();
    c["org_id"] = Value::Null;
    let r = verify_claims(b, c).await;
    assert_eq!(reason(r), R::MissingClaim);
}

#[tokio::test]
async fn a_required_claim_that_is_present_is_accepted() {
    let b = builder().require_claim("org_id");
    let c = verify_claims(b, claims_with(json!({"org_id": "acme"})))
        .await
        .expect("accepted");
    assert_eq!(c.get("org_id"), Some(&json!("acme")));
}

// ---- typ and strict RFC 9068 ----

#[tokio::test]
async fn by_default_typ_may_be_absent_jwt_or_at_jwt() {
    let v = verifier();
    for typ in [
        None,
        Some("JWT"),
        Some("at+jwt"),
        Some("application/at+jwt"),
    ] {
        let r = v.verify(&token_with_typ(typ, &claims())).await;
        assert!(r.is_ok(), "typ {typ:?}: {r:?}");
    }
}

#[tokio::test]
async fn by_default_another_typ_is_refused() {
    let v = verifier();
    for typ in ["id_token+jwt", "JOSE", "secevent+jwt", ""] {
        let r = v.verify(&token_with_typ(Some(typ), &claims())).await;
        assert_eq!(reason(r), R::WrongType, "typ {typ:?}");
    }
}

fn rfc9068_claims() -> Value {
    claims_with(json!({"client_id": "client-1"}))
}

#[tokio::test]
async fn strict_rfc9068_accepts_a_complete_at_jwt_token() {
    let v = builder().strict_rfc9068(true).build().expect("verifier");
    for typ in ["at+jwt", "application/at+jwt"] {
        let r = v
            .verify(&token_with_typ(Some(typ), &rfc9068_claims()))
            .await;
        assert!(r.is_ok(), "typ {typ}: {r:?}");
    }
}

#[tokio::test]
async fn strict_rfc9068_refuses_a_typ_other_than_at_jwt() {
    let v = builder().strict_rfc9068(true).build().expect("verifier");
    for typ in [None, Some("JWT")] {
        let r = v.verify(&token_with_typ(typ, &rfc9068_claims())).await;
        assert_eq!(reason(r), R::WrongType, "typ {typ:?}");
    }
}

#[tokio::test]
async fn strict_rfc9068_requires_iat_sub_client_id_and_jti() {
    let v = builder().strict_rfc9068(true).build().expect("verifier");
    for name in ["iat", "sub", "client_id", "jti"] {
        let mut c = rfc9068_claims();
        c.as_object_mut().expect("object").remove(name);
        let r = v.verify(&token_with_typ(Some("at+jwt"), &c)).await;
        assert_eq!(reason(r), R::MissingClaim, "without {name}");
    }
}

// ---- scopes ----

#[tokio::test]
async fn scopes_are_read_from_a_scope_string() {
    let c = verify_claims(
        builder(),
        claims_with(json!({"scope": "directions  geocode:location"})),
    )
    .await
    .expect("accepted");
    assert_eq!(
        c.scopes().iter().collect::<Vec<_>>(),
        ["directions", "geocode:location"]
    );
}

#[tokio::test]
async fn scopes_are_read_from_an_scp_array() {
    let c = verify_claims(
        builder(),
        claims_with(json!({"scp": ["directions", "geocode:location"]})),
    )
    .await
    .expect("accepted");
    assert!(c.scopes().contains_all(["directions", "geocode:location"]));
    assert_eq!(c.scopes().len(), 2);
}

#[tokio::test]
async fn permissions_are_not_scopes_by_default() {
    let c = verify_claims(
        builder(),
        claims_with(json!({"permissions": ["read:maps"]})),
    )
    .await
    .expect("accepted");
    assert!(c.scopes().is_empty());
}

#[tokio::test]
async fn permissions_are_scopes_with_permissions_as_scopes() {
    let b = builder().permissions_as_scopes();
    let c = verify_claims(
        b,
        claims_with(json!({"scope": "directions", "permissions": ["read:maps"]})),
    )
    .await
    .expect("accepted");
    assert_eq!(
        c.scopes().iter().collect::<Vec<_>>(),
        ["directions", "read:maps"]
    );
}

#[tokio::test]
async fn a_token_with_an_invalid_scope_token_is_refused() {
    let v = verifier();
    for bad in [
        json!({"scope": "ok bad\"quote"}),
        json!({"scope": "caf\u{e9}"}),
        json!({"scp": ["two words"]}),
        json!({"scp": [1]}),
        json!({"scope": 7}),
    ] {
        let r = v.verify(&mint(&rsa(), &claims_with(bad.clone()))).await;
        assert_eq!(reason(r), R::InvalidClaim, "{bad}");
    }
}

// ---- algorithms ----

/// Serves `signer`'s public key from a local JWKS and verifies one of its tokens.
async fn verified_from_a_jwks(signer: &SigningKey) -> bearer_guard::Claims {
    let server = Server::start(&[signer]).await;
    let v = server.builder().build().expect("verifier");
    let c = v.verify(&token(signer)).await.expect("accepted");
    server.stop().await;
    c
}

#[tokio::test]
async fn rs256_is_verified_from_a_jwks() {
    let c = verified_from_a_jwks(&key(Algorithm::RS256, 0, "rs")).await;
    assert_eq!(c.algorithm(), Algorithm::RS256);
}

#[tokio::test]
async fn ps256_is_verified_from_a_jwks() {
    let c = verified_from_a_jwks(&key(Algorithm::PS256, 1, "ps")).await;
    assert_eq!(c.algorithm(), Algorithm::PS256);
}

#[tokio::test]
async fn es256_is_verified_from_a_jwks() {
    let c = verified_from_a_jwks(&key(Algorithm::ES256, 0, "es")).await;
    assert_eq!(c.algorithm(), Algorithm::ES256);
}

#[tokio::test]
async fn es384_is_verified_from_a_jwks() {
    let c = verified_from_a_jwks(&key(Algorithm::ES384, 0, "es384")).await;
    assert_eq!(c.algorithm(), Algorithm::ES384);
}

#[tokio::test]
async fn eddsa_is_verified_from_a_jwks() {
    let c = verified_from_a_jwks(&key(Algorithm::EdDSA, 0, "ed")).await;
    assert_eq!(c.algorithm(), Algorithm::EdDSA);
}

const SECRET: &[u8] = b"a shared secret of at least 32 bytes, for HS256";

fn hmac_verifier() -> Verifier {
    Verifier::builder()
        .issuer(ISSUER)
        .audience(AUD)
        .hmac_secret(SECRET)
        .build()
        .expect("verifier")
}

#[tokio::test]
async fn hs256_is_verified_with_an_hmac_secret() {
    let signer = SigningKey::hmac(Algorithm::HS256, SECRET, "h").expect("hmac key");
    let header = json!({"alg": "HS256", "typ": "JWT"});
    let c = hmac_verifier()
        .verify(&mint_with_header(&signer, &header, &claims()))
        .await
        .expect("accepted");
    assert_eq!(c.algorithm(), Algorithm::HS256);
}

#[tokio::test]
async fn hs256_naming_a_kid_is_verified_with_an_hmac_secret() {
    // The secret has no kid; the token's kid cannot name another key.
    let signer = SigningKey::hmac(Algorithm::HS256, SECRET, "2024-key").expect("hmac key");
    let c = hmac_verifier()
        .verify(&token(&signer))
        .await
        .expect("accepted");
    assert_eq!(c.algorithm(), Algorithm::HS256);
}

#[tokio::test]
async fn hs256_signed_with_another_secret_is_refused() {
    let signer = SigningKey::hmac(Algorithm::HS256, b"another secret, also 32 bytes long", "h")
        .expect("hmac key");
    assert_eq!(
        reason(hmac_verifier().verify(&token(&signer)).await),
        R::BadSignature
    );
}

/// The public key of the dev-issuer pool key `rsa-1`.
const RSA_1_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtqRK8NWddXg2u/R18Ee3
liZjqtNqWAgvg4ZkOGSK67MSeFFntJC9wJ96GaLYGs1uRJ/N9oZLcaM9o2Uwh3jd
6LORJY3wg4ISOwcar6KjZgEZqBVJ4DqP+Lnsm1V7eW44w75egoBxHS74TWRw6gT5
ioriSM5P92rBxnxxjpI5HpxLfR+7l4vhXDp1x7VZ2Tt2xqnzlQceb+GZKk9HAhf2
KgMS+/qyXsq1r9mlUauX2o7bZNIIdgg6NaXCUjbr5Rg628GKECzXt62hVfz1TVNo
0hBIcotlqnl+GTwsLfdxt6F6FNeKW+TfjaIapv1NmNmzTiSYMqDJfMocPtWdCeqt
OQIDAQAB
-----END PUBLIC KEY-----
";

#[tokio::test]
async fn a_pem_key_verifies_tokens_with_or_without_kid() {
    let v = Verifier::builder()
        .issuer(ISSUER)
        .audience(AUD)
        .pem_key(Algorithm::RS256, RSA_1_PEM)
        .build()
        .expect("verifier");
    v.verify(&token(&rsa()))
        .await
        .expect("token with kid accepted");
    let header = json!({"alg": "RS256"});
    v.verify(&mint_with_header(&rsa(), &header, &claims()))
        .await
        .expect("token without kid accepted");
    let other = key(Algorithm::RS256, 1, "rsa-2");
    assert_eq!(reason(v.verify(&token(&other)).await), R::BadSignature);
}

#[tokio::test]
async fn a_static_jwks_refuses_a_kid_it_does_not_have() {
    let stranger = key(Algorithm::RS256, 0, "not-rsa-1");
    assert_eq!(
        reason(verifier().verify(&token(&stranger)).await),
        R::UnknownKey
    );
}

#[tokio::test]
async fn a_tampered_payload_is_refused() {
    let t = token(&rsa());
    let mut parts: Vec<&str> = t.split('.').collect();
    let other = token(&rsa());
    parts[1] = other.split('.').nth(1).expect("payload");
    let forged = parts.join(".");
    assert_eq!(reason(verifier().verify(&forged).await), R::BadSignature);
}

// ---- the header read once, for tokens that repeat it ----

#[tokio::test]
async fn a_remembered_header_serves_only_tokens_with_the_same_header_text() {
    // Cache off: every call reads the token afresh, and the verifier remembers the last
    // header it read.
    let v = builder().token_cache(0).build().expect("verifier");
    let good = token(&rsa());
    v.verify(&good).await.expect("accepted");
    // Another header naming the same key is read, not taken for the remembered one.
    let ps = key(Algorithm::PS256, 0, "rsa-1");
    assert_eq!(reason(v.verify(&token(&ps)).await), R::KeyAlgorithmMismatch);
    let none = mint_with_header(&rsa(), &json!({"alg": "none", "kid": "rsa-1"}), &claims());
    assert_eq!(reason(v.verify(&none).await), R::AlgorithmNotAllowed);
    // The remembered header does not vouch for the rest of a token.
    let (head, _) = good.split_once('.').expect("header");
    let other = token(&rsa());
    let (_, rest) = other.split_once('.').expect("payload");
    let spliced = format!("{head}.{rest}");
    v.verify(&spliced)
        .await
        .expect("same header, another valid token");
    let forged = format!("{head}.{}", good.split('.').nth(1).expect("payload"))
        + "."
        + other.rsplit('.').next().expect("sig");
    assert_eq!(reason(v.verify(&forged).await), R::BadSignature);
    for bad in [
        format!("{head}.{}", good.split('.').nth(1).expect("p")),
        format!("{good}.x"),
        format!("{head}..x"),
    ] {
        assert_eq!(reason(v.verify(&bad).await), R::Malformed, "{bad}");
    }
    v.verify(&good).await.expect("still accepted");
}

/// A server publishing the RS256 key `rsa-1` and the ES256 key `ec-1`.
async fn rsa_and_ec_server() -> Server {
    Server::start(&[&rsa(), &key(Algorithm::ES256, 0, "ec-1")]).await
}

#[tokio::test]
async fn a_ps256_token_naming_an_rs256_key_is_refused() {
    let server = rsa_and_ec_server().await;
    let v = server.builder().build().expect("verifier");
    // Same RSA key pair, signed with PS256: only the key's bound algorithm may be used.
    let ps = key(Algorithm::PS256, 0, "rsa-1");
    assert_eq!(reason(v.verify(&token(&ps)).await), R::KeyAlgorithmMismatch);
    server.stop().await;
}

#[tokio::test]
async fn an_rs256_token_naming_an_ec_key_is_refused() {
    let server = rsa_and_ec_server().await;
    let v = server.builder().build().expect("verifier");
    let rs = key(Algorithm::RS256, 0, "ec-1");
    assert_eq!(reason(v.verify(&token(&rs)).await), R::KeyAlgorithmMismatch);
    server.stop().await;
}

#[tokio::test]
async fn an_es384_token_naming_an_es256_key_is_refused() {
    let server = rsa_and_ec_server().await;
    let v = server.builder().build().expect("verifier");
    let es384 = key(Algorithm::ES384, 0, "ec-1");
    assert_eq!(
        reason(v.verify(&token(&es384)).await),
        R::KeyAlgorithmMismatch
    );
    server.stop().await;
}

#[tokio::test]
async fn an_rsa_key_published_without_alg_is_bound_to_rs256() {
    let mut jwk = rsa().public_jwk();
    jwk.as_object_mut().expect("object").remove("alg");
    let v = Verifier::builder()
        .issuer(ISSUER)
        .audience(AUD)
        .jwks_json(json!({"keys": [jwk]}).to_string())
        .build()
        .expect("verifier");
    assert!(v.verify(&token(&rsa())).await.is_ok());
    let ps = key(Algorithm::PS256, 0, "rsa-1");
    assert_eq!(reason(v.verify(&token(&ps)).await), R::KeyAlgorithmMismatch);
}

/// Verifies `t` against a fresh server and verifier allowing only `allowed`; returns the
/// reason and checks that nothing was fetched.
async fn refused_without_fetch(allowed: &[Algorithm], t: &str) -> R {
    let server = rsa_and_ec_server().await;
    let v = server
        .builder()
        .algorithms(allowed.iter().copied())
        .build()
        .expect("verifier");
    let r = reason(v.verify(t).await);
    assert_eq!(v.jwks_fetches(), 0, "the verifier fetched");
    assert_eq!(server.jwks_hits(), 0, "the server was asked");
    server.stop().await;
    r
}

#[tokio::test]
async fn an_algorithm_outside_the_allow_list_is_refused_without_a_fetch() {
    let t = token(&key(Algorithm::ES256, 0, "ec-1"));
    let r = refused_without_fetch(&[Algorithm::RS256], &t).await;
    assert_eq!(r, R::AlgorithmNotAllowed);
}

#[tokio::test]
async fn alg_none_is_refused_without_a_fetch() {
    let t = unsigned(&json!({"alg": "none", "kid": "rsa-1"}));
    assert_eq!(
        refused_without_fetch(&Algorithm::DEFAULT_ALLOWED, &t).await,
        R::AlgorithmNotAllowed
    );
}

#[tokio::test]
async fn alg_none_with_an_empty_signature_is_refused_without_a_fetch() {
    let t = unsigned(&json!({"alg": "none"}));
    let (unsigned_part, _) = t.rsplit_once('.').expect("three parts");
    let t = format!("{unsigned_part}.");
    assert_eq!(
        refused_without_fetch(&Algorithm::DEFAULT_ALLOWED, &t).await,
        R::Malformed
    );
}

#[tokio::test]
async fn hs256_against_a_jwks_is_refused_without_a_fetch() {
    // The classic confusion: an HMAC keyed with the issuer's public key.
    let public = rsa().public_jwk().to_string();
    let forger = SigningKey::hmac(Algorithm::HS256, public.as_bytes(), "rsa-1").expect("hmac key");
    let t = token(&forger);
    assert_eq!(
        refused_without_fetch(&Algorithm::DEFAULT_ALLOWED, &t).await,
        R::AlgorithmNotAllowed
    );
}

#[tokio::test]
async fn a_lowercase_algorithm_name_is_refused_without_a_fetch() {
    let t = unsigned(&json!({"alg": "rs256", "kid": "rsa-1"}));
    assert_eq!(
        refused_without_fetch(&Algorithm::DEFAULT_ALLOWED, &t).await,
        R::AlgorithmNotAllowed
    );
}

#[tokio::test]
async fn a_crit_header_is_refused_without_a_fetch() {
    let t = unsigned(&json!({"alg": "RS256", "kid": "new", "crit": ["exp"]}));
    assert_eq!(
        refused_without_fetch(&Algorithm::DEFAULT_ALLOWED, &t).await,
        R::UnsupportedCritical
    );
}

#[tokio::test]
async fn a_header_that_is_not_json_is_refused_without_a_fetch() {
    let t = unsigned(&json!({"alg": "RS256", "kid": "new"}));
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (_, rest) = t.split_once('.').expect("three parts");
    let t = format!("{}.{rest}", base64::Engine::encode(&b64, "{not json"));
    assert_eq!(
        refused_without_fetch(&Algorithm::DEFAULT_ALLOWED, &t).await,
        R::Malformed
    );
}

#[tokio::test]
async fn a_header_without_alg_is_refused_without_a_fetch() {
    let t = unsigned(&json!({"kid": "new"}));
    assert_eq!(
        refused_without_fetch(&Algorithm::DEFAULT_ALLOWED, &t).await,
        R::Malformed
    );
}

#[tokio::test]
async fn a_token_without_three_segments_is_refused_without_a_fetch() {
    let t = unsigned(&json!({"alg": "RS256", "kid": "new"}));
    for bad in [
        t.rsplit_once('.').expect("parts").0.to_owned(),
        format!("{t}.extra"),
        String::new(),
        "..".to_owned(),
        "not a token".to_owned(),
    ] {
        assert_eq!(
            refused_without_fetch(&Algorithm::DEFAULT_ALLOWED, &bad).await,
            R::Malformed,
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn a_token_over_the_size_limit_is_refused_without_a_fetch() {
    let server = rsa_and_ec_server().await;
    let v = server
        .builder()
        .max_token_bytes(1024)
        .build()
        .expect("verifier");
    let big = mint(&rsa(), &claims_with(json!({"pad": "x".repeat(2000)})));
    assert_eq!(reason(v.verify(&big).await), R::TooLarge);
    assert_eq!(v.jwks_fetches(), 0);
    assert_eq!(server.jwks_hits(), 0);
    server.stop().await;
}

// ---- tokens without kid ----

fn without_kid(signer: &SigningKey) -> String {
    let header = json!({"alg": signer.alg().as_str(), "typ": "at+jwt"});
    mint_with_header(signer, &header, &claims())
}

#[tokio::test]
async fn a_token_without_kid_is_verified_by_the_one_key_for_its_algorithm() {
    let server = rsa_and_ec_server().await;
    let v = server.builder().build().expect("verifier");
    let c = v.verify(&without_kid(&rsa())).await.expect("accepted");
    assert_eq!(c.key_id(), Some("rsa-1"));
    server.stop().await;
}

#[tokio::test]
async fn a_token_without_kid_is_refused_when_two_keys_fit_its_algorithm() {
    let second = key(Algorithm::RS256, 1, "rsa-2");
    let server = Server::start(&[&rsa(), &second]).await;
    let v = server.builder().build().expect("verifier");
    assert_eq!(reason(v.verify(&without_kid(&rsa())).await), R::UnknownKey);
    assert_eq!(reason(v.verify(&without_kid(&second)).await), R::UnknownKey);
    server.stop().await;
}

#[tokio::test]
async fn a_token_without_kid_is_refused_when_no_key_fits_its_algorithm() {
    let server = rsa_and_ec_server().await;
    let v = server.builder().build().expect("verifier");
    let ed = key(Algorithm::EdDSA, 0, "ed");
    assert_eq!(reason(v.verify(&without_kid(&ed)).await), R::UnknownKey);
    server.stop().await;
}
