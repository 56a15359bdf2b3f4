//! Tests of the proof checks, with proofs signed by the development key pool.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::*;
use crate::dev_issuer::SigningKey;
use crate::jwks::B64;
use crate::{Algorithm, AuthErrorKind};

const HTU: &str = "https://api.example/maps";
const TOKEN: &str = "the.access.token";

fn key(alg: Algorithm) -> SigningKey {
    SigningKey::from_pool(alg, 0, "k").expect("pool key")
}

fn public_jwk(k: &SigningKey) -> Value {
    let mut jwk = k.public_jwk();
    if let Some(o) = jwk.as_object_mut() {
        o.remove("kid");
        o.remove("use");
        o.remove("alg");
    }
    jwk
}

fn ath(token: &str) -> String {
    B64.encode(Sha256::digest(token.as_bytes()))
}

fn now() -> SystemTime {
    SystemTime::now()
}

fn unix_now() -> i64 {
    proof::unix(now())
}

fn claims() -> Value {
    json!({"jti": "j-1", "htm": "GET", "htu": HTU, "iat": unix_now(), "ath": ath(TOKEN)})
}

fn sign(k: &SigningKey, header: &Value, payload: &Value) -> String {
    k.sign_raw(
        header.to_string().as_bytes(),
        payload.to_string().as_bytes(),
    )
    .expect("sign")
}

fn proof_with(k: &SigningKey, payload: &Value) -> String {
    let header = json!({"typ": "dpop+jwt", "alg": k.alg().as_str(), "jwk": public_jwk(k)});
    sign(k, &header, payload)
}

fn check(proof: &str) -> Result<VerifiedProof, AuthErrorKind> {
    ProofChecker::default()
        .check(&RequestFacts::new("GET", HTU, proof, now()).access_token(TOKEN))
        .map_err(|e| e.kind())
}

fn refused(reason: DpopProofReason) -> Result<VerifiedProof, AuthErrorKind> {
    Err(AuthErrorKind::InvalidDpopProof(reason))
}

#[test]
fn a_valid_es256_proof_gives_the_key_thumbprint() {
    let k = key(Algorithm::ES256);
    let p = check(&proof_with(&k, &claims())).expect("accepted");
    let jwk = public_jwk(&k);
    assert_eq!(
        Some(p.jkt()),
        jwk_thumbprint(jwk.as_object().expect("o")).as_deref()
    );
    assert_eq!(p.jti(), "j-1");
}

#[test]
fn valid_eddsa_es384_rs256_and_ps256_proofs_are_accepted() {
    for (alg, pool) in [
        (Algorithm::EdDSA, Algorithm::EdDSA),
        (Algorithm::ES384, Algorithm::ES384),
        (Algorithm::RS256, Algorithm::RS256),
        (Algorithm::PS256, Algorithm::PS256),
    ] {
        let k = key(pool);
        assert_eq!(k.alg(), alg);
        assert!(check(&proof_with(&k, &claims())).is_ok(), "{alg}");
    }
}

#[test]
fn an_oversized_proof_is_refused_before_parsing() {
    let junk = "x".repeat(DEFAULT_MAX_PROOF_BYTES + 1);
    assert_eq!(check(&junk), refused(DpopProofReason::TooLarge));
}

#[test]
fn a_proof_that_is_not_a_compact_jws_is_malformed() {
    for p in ["", "abc", "a.b", "a.b.c.d", "!!.!!.!!", "e30.e30.e30"] {
        assert!(
            matches!(
                check(p),
                Err(AuthErrorKind::InvalidDpopProof(
                    DpopProofReason::Malformed | DpopProofReason::WrongType
                ))
            ),
            "{p}"
        );
    }
}

#[test]
fn a_proof_without_the_dpop_type_is_refused() {
    let k = key(Algorithm::ES256);
    let header = json!({"typ": "JWT", "alg": "ES256", "jwk": public_jwk(&k)});
    assert_eq!(
        check(&sign(&k, &header, &claims())),
        refused(DpopProofReason::WrongType)
    );
}

#[test]
fn alg_none_hmac_and_algorithms_outside_the_list_are_refused() {
    let k = key(Algorithm::ES256);
    for alg in ["none", "HS256", "ES512", "RS512", "es256"] {
        let header = json!({"typ": "dpop+jwt", "alg": alg, "jwk": public_jwk(&k)});
        assert_eq!(
            check(&sign(&k, &header, &claims())),
            refused(DpopProofReason::AlgorithmNotAllowed),
            "{alg}"
        );
    }
}

#[test]
fn an_hmac_algorithm_cannot_be_allowed() {
    assert!(
        ProofChecker::builder()
            .algorithms([Algorithm::HS256])
            .build()
            .is_err()
    );
    assert!(ProofChecker::builder().algorithms([]).build().is_err());
}

#[test]
fn a_jwk_with_a_private_member_is_refused() {
    let k = key(Algorithm::ES256);
    for member in ["d", "p", "q", "dp", "dq", "qi", "k"] {
        let mut jwk = public_jwk(&k);
        jwk[member] = json!("AAAA");
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
        assert_eq!(
            check(&sign(&k, &header, &claims())),
            refused(DpopProofReason::PrivateKey),
            "{member}"
        );
    }
}

#[test]
fn an_alg_that_does_not_fit_the_key_is_refused() {
    // The header says ES384 over a P-256 key; RS256 over an EC key; EdDSA over RSA.
    let ec = key(Algorithm::ES256);
    let rsa = key(Algorithm::RS256);
    for (alg, k) in [("ES384", &ec), ("RS256", &ec), ("EdDSA", &rsa)] {
        let header = json!({"typ": "dpop+jwt", "alg": alg, "jwk": public_jwk(k)});
        assert_eq!(
            check(&sign(k, &header, &claims())),
            refused(DpopProofReason::KeyAlgorithmMismatch),
            "{alg}"
        );
    }
}

#[test]
fn a_missing_or_symmetric_jwk_is_refused() {
    let k = key(Algorithm::ES256);
    let header = json!({"typ": "dpop+jwt", "alg": "ES256"});
    assert_eq!(
        check(&sign(&k, &header, &claims())),
        refused(DpopProofReason::InvalidKey)
    );
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": "not an object"});
    assert_eq!(
        check(&sign(&k, &header, &claims())),
        refused(DpopProofReason::InvalidKey)
    );
}

#[test]
fn a_proof_signed_by_another_key_than_its_jwk_is_refused() {
    let k = key(Algorithm::ES256);
    let other = SigningKey::from_pool(Algorithm::ES256, 1, "o").expect("pool key");
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(&k)});
    assert_eq!(
        check(&sign(&other, &header, &claims())),
        refused(DpopProofReason::BadSignature)
    );
}

#[test]
fn a_critical_header_is_refused() {
    let k = key(Algorithm::ES256);
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(&k), "crit": ["x"]});
    assert_eq!(
        check(&sign(&k, &header, &claims())),
        refused(DpopProofReason::UnsupportedCritical)
    );
}

fn with(changes: Value) -> Value {
    let mut c = claims();
    for (k, v) in changes.as_object().expect("object") {
        if v.is_null() {
            c.as_object_mut().expect("object").remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

#[test]
fn a_proof_for_another_method_is_refused() {
    let k = key(Algorithm::ES256);
    assert_eq!(
        check(&proof_with(&k, &with(json!({"htm": "POST"})))),
        refused(DpopProofReason::WrongMethod)
    );
}

#[test]
fn a_proof_for_another_uri_is_refused_but_a_query_difference_is_not() {
    let k = key(Algorithm::ES256);
    assert_eq!(
        check(&proof_with(
            &k,
            &with(json!({"htu": "https://api.example/other"}))
        )),
        refused(DpopProofReason::WrongUri)
    );
    assert!(
        check(&proof_with(
            &k,
            &with(json!({"htu": "https://API.example:443/maps?x=1#f"}))
        ))
        .is_ok()
    );
}

#[test]
fn stale_and_future_proofs_are_refused() {
    let k = key(Algorithm::ES256);
    let now = unix_now();
    assert_eq!(
        check(&proof_with(&k, &with(json!({"iat": now - 61})))),
        refused(DpopProofReason::TooOld)
    );
    assert_eq!(
        check(&proof_with(&k, &with(json!({"iat": now + 31})))),
        refused(DpopProofReason::IssuedInFuture)
    );
    assert!(check(&proof_with(&k, &with(json!({"iat": now - 55})))).is_ok());
}

#[test]
fn a_missing_or_wrong_ath_is_refused() {
    let k = key(Algorithm::ES256);
    assert_eq!(
        check(&proof_with(&k, &with(json!({"ath": null})))),
        refused(DpopProofReason::WrongAccessTokenHash)
    );
    assert_eq!(
        check(&proof_with(&k, &with(json!({"ath": ath("another.token")})))),
        refused(DpopProofReason::WrongAccessTokenHash)
    );
}

#[test]
fn a_missing_or_overlong_jti_is_refused() {
    let k = key(Algorithm::ES256);
    assert_eq!(
        check(&proof_with(&k, &with(json!({"jti": null})))),
        refused(DpopProofReason::MissingClaim)
    );
    assert_eq!(
        check(&proof_with(&k, &with(json!({"jti": "j".repeat(257)})))),
        refused(DpopProofReason::InvalidClaim)
    );
}

#[test]
fn duplicate_claims_make_the_proof_malformed() {
    let k = key(Algorithm::ES256);
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(&k)});
    let payload = format!(
        r#"{{"jti":"a","jti":"b","htm":"GET","htu":"{HTU}","iat":{},"ath":"{}"}}"#,
        unix_now(),
        ath(TOKEN)
    );
    let p = k
        .sign_raw(header.to_string().as_bytes(), payload.as_bytes())
        .expect("sign");
    assert_eq!(check(&p), refused(DpopProofReason::Malformed));
}

#[test]
fn a_proof_with_invalid_utf8_in_an_unknown_member_is_malformed() {
    // Found by the dpop_proof fuzz target: a byte that is not UTF-8 inside a member the
    // checker skips was accepted, though a JWS header and a JWT payload must be UTF-8 JSON.
    let k = key(Algorithm::ES256);
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(&k)}).to_string();
    let payload = claims().to_string();
    let bad = |json: &str| {
        let mut v = json.trim_end_matches('}').as_bytes().to_vec();
        v.extend_from_slice(b",\"x\":\"\xfe\"}");
        v
    };
    let good = k
        .sign_raw(header.as_bytes(), payload.as_bytes())
        .expect("sign");
    assert!(check(&good).is_ok(), "the unaltered proof is accepted");
    let in_payload = k.sign_raw(header.as_bytes(), &bad(&payload)).expect("sign");
    assert_eq!(check(&in_payload), refused(DpopProofReason::Malformed));
    let in_header = k.sign_raw(&bad(&header), payload.as_bytes()).expect("sign");
    assert_eq!(check(&in_header), refused(DpopProofReason::Malformed));
}

fn bound_claims(jkt: &str) -> crate::Claims {
    let payload = json!({"iss": "i", "aud": "a", "exp": unix_now() + 60, "cnf": {"jkt": jkt}});
    crate::claims::read_claims(payload.to_string(), Algorithm::ES256, None, &[]).expect("claims")
}

fn dpop(nonces: Option<Nonces>) -> Dpop {
    let mut b = Dpop::builder().public_url("https://api.example");
    if let Some(n) = nonces {
        b = b.nonces(n);
    }
    b.build().expect("dpop")
}

fn jkt_of(k: &SigningKey) -> String {
    jwk_thumbprint(public_jwk(k).as_object().expect("o")).expect("jkt")
}

#[tokio::test]
async fn a_bound_token_with_its_keys_proof_passes_once() {
    let k = key(Algorithm::ES256);
    let d = dpop(None);
    let p = proof_with(&k, &claims());
    let facts = RequestFacts::new("GET", HTU, &p, now()).access_token(TOKEN);
    let claims = bound_claims(&jkt_of(&k));
    let ok = d.check(&facts, &claims).await.expect("accepted");
    assert_eq!(ok.confirmation().jkt(), jkt_of(&k));
    let again = d.check(&facts, &claims).await.map_err(|e| e.kind());
    assert_eq!(
        again.err(),
        Some(AuthErrorKind::InvalidDpopProof(DpopProofReason::Replayed))
    );
}

#[tokio::test]
async fn a_proof_by_another_key_than_cnf_jkt_is_refused() {
    let k = key(Algorithm::ES256);
    let other = key(Algorithm::EdDSA);
    let p = proof_with(&k, &claims());
    let facts = RequestFacts::new("GET", HTU, &p, now()).access_token(TOKEN);
    let r = dpop(None)
        .check(&facts, &bound_claims(&jkt_of(&other)))
        .await;
    assert_eq!(
        r.map_err(|e| e.kind()).err(),
        Some(AuthErrorKind::InvalidDpopProof(
            DpopProofReason::KeyNotBound
        ))
    );
}

#[tokio::test]
async fn nonces_are_demanded_then_accepted() {
    let k = key(Algorithm::ES256);
    let n = Nonces::with_secret(&[3; 32]).expect("nonces");
    let d = dpop(Some(n.clone()));
    let claims = bound_claims(&jkt_of(&k));
    let p = proof_with(&k, &claims_json_with_jti("n-1", None));
    let e = d
        .check(
            &RequestFacts::new("GET", HTU, &p, now()).access_token(TOKEN),
            &claims,
        )
        .await
        .expect_err("a nonce is needed");
    assert_eq!(e.kind(), AuthErrorKind::UseDpopNonce);
    let nonce = e.dpop_nonce().expect("a fresh nonce").to_owned();
    let p = proof_with(&k, &claims_json_with_jti("n-2", Some(&nonce)));
    let ok = d
        .check(
            &RequestFacts::new("GET", HTU, &p, now()).access_token(TOKEN),
            &claims,
        )
        .await
        .expect("accepted");
    assert_eq!(ok.next_nonce(), None);
    // A nonce of the previous step passes, and a fresh one comes back.
    let later = now() + Duration::from_secs(300);
    let p = proof_with(
        &k,
        &with(json!({"jti": "n-3", "nonce": nonce, "iat": proof::unix(later)})),
    );
    let ok = d
        .check(
            &RequestFacts::new("GET", HTU, &p, later).access_token(TOKEN),
            &claims,
        )
        .await
        .expect("accepted");
    assert!(ok.next_nonce().is_some());
}

fn claims_json_with_jti(jti: &str, nonce: Option<&str>) -> Value {
    let mut c = with(json!({"jti": jti}));
    if let Some(n) = nonce {
        c["nonce"] = json!(n);
    }
    c
}

#[tokio::test]
async fn an_unbound_token_with_a_proof_is_refused() {
    let k = key(Algorithm::ES256);
    let p = proof_with(&k, &claims());
    let payload = json!({"iss": "i", "aud": "a", "exp": unix_now() + 60});
    let claims =
        crate::claims::read_claims(payload.to_string(), Algorithm::ES256, None, &[]).expect("c");
    let e = dpop(None)
        .check(
            &RequestFacts::new("GET", HTU, &p, now()).access_token(TOKEN),
            &claims,
        )
        .await
        .expect_err("unbound");
    assert_eq!(
        e.kind(),
        AuthErrorKind::InvalidToken(InvalidTokenReason::UnboundTokenAsDpop)
    );
}

#[test]
fn a_bound_token_is_refused_as_bearer_even_with_an_escaped_cnf() {
    assert!(Dpop::check_bearer(&bound_claims("abc")).is_err());
    let escaped = r#"{"iss":"i","aud":"a","exp":9999999999,"\u0063nf":{"jkt":"abc"}}"#;
    let claims =
        crate::claims::read_claims(escaped.into(), Algorithm::ES256, None, &[]).expect("c");
    assert_eq!(claims.confirmation_jkt(), Some("abc"));
    assert!(Dpop::check_bearer(&claims).is_err());
}

#[test]
fn the_public_url_is_required_and_forwarded_headers_only_when_trusted() {
    assert!(Dpop::builder().build().is_err());
    assert!(Dpop::builder().public_url("not a url").build().is_err());
    let mut h = HeaderMap::new();
    h.insert("x-forwarded-proto", "https".parse().expect("v"));
    h.insert("x-forwarded-host", "evil.example".parse().expect("v"));
    h.insert("host", "evil.example".parse().expect("v"));
    let fixed = dpop(None);
    assert_eq!(
        fixed.htu(&h, "/maps").expect("htu"),
        "https://api.example/maps"
    );
    let trusting = Dpop::builder()
        .trust_forwarded_headers()
        .build()
        .expect("dpop");
    assert_eq!(
        trusting.htu(&h, "/maps").expect("htu"),
        "https://evil.example/maps"
    );
    assert!(trusting.htu(&HeaderMap::new(), "/maps").is_err());
    let mut f = HeaderMap::new();
    f.insert(
        "forwarded",
        "for=1.2.3.4;proto=https;host=\"api.example:8443\""
            .parse()
            .expect("v"),
    );
    assert_eq!(
        trusting.htu(&f, "/m").expect("htu"),
        "https://api.example:8443/m"
    );
    let prefixed = Dpop::builder()
        .public_url("https://example.com/api/")
        .build()
        .expect("dpop");
    assert_eq!(
        prefixed.htu(&h, "/maps").expect("htu"),
        "https://example.com/api/maps"
    );
}

fn check_with(checker: &ProofChecker, proof: &str) -> Result<VerifiedProof, AuthErrorKind> {
    checker
        .check(&RequestFacts::new("GET", HTU, proof, now()).access_token(TOKEN))
        .map_err(|e| e.kind())
}

#[test]
fn a_cached_header_still_refuses_a_bad_signature() {
    let checker = ProofChecker::default();
    let k = key(Algorithm::ES256);
    check_with(&checker, &proof_with(&k, &claims())).expect("accepted");
    assert_eq!(checker.cached_headers(), 1);
    // The same header text (a cache hit), signed by another key.
    let other = SigningKey::from_pool(Algorithm::ES256, 1, "o").expect("pool key");
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(&k)});
    assert_eq!(
        check_with(&checker, &sign(&other, &header, &claims())),
        refused(DpopProofReason::BadSignature)
    );
    // And a tampered payload under a valid header and signature.
    let good = proof_with(&k, &claims());
    let mut parts: Vec<&str> = good.split('.').collect();
    let mut changed = claims();
    changed["jti"] = json!("j-2");
    let tampered = B64.encode(serde_json::to_vec(&changed).expect("json"));
    parts[1] = &tampered;
    assert_eq!(
        check_with(&checker, &parts.join(".")),
        refused(DpopProofReason::BadSignature)
    );
    assert_eq!(checker.cached_headers(), 1);
}

#[test]
fn a_repeated_header_is_checked_once_and_gives_the_same_thumbprint() {
    let checker = ProofChecker::default();
    let k = key(Algorithm::EdDSA);
    let a = check_with(&checker, &proof_with(&k, &claims())).expect("accepted");
    let b = check_with(&checker, &proof_with(&k, &claims())).expect("accepted");
    assert_eq!(checker.cached_headers(), 1);
    assert_eq!(a.jkt(), b.jkt());
    assert_eq!(
        Some(a.jkt().to_owned()),
        jwk_thumbprint(public_jwk(&k).as_object().expect("object"))
    );
}

#[test]
fn two_different_jwks_never_share_a_cache_entry() {
    let checker = ProofChecker::default();
    let k1 = key(Algorithm::ES256);
    let k2 = SigningKey::from_pool(Algorithm::ES256, 1, "o").expect("pool key");
    let a = check_with(&checker, &proof_with(&k1, &claims())).expect("accepted");
    let b = check_with(&checker, &proof_with(&k2, &claims())).expect("accepted");
    assert_eq!(checker.cached_headers(), 2);
    assert_ne!(a.jkt(), b.jkt());
    for (k, p) in [(&k1, &a), (&k2, &b)] {
        assert_eq!(
            Some(p.jkt().to_owned()),
            jwk_thumbprint(public_jwk(k).as_object().expect("object"))
        );
    }
}

#[test]
fn a_refused_header_is_not_cached_and_is_refused_again() {
    let checker = ProofChecker::default();
    let k = key(Algorithm::ES256);
    let header = json!({"typ": "JWT", "alg": "ES256", "jwk": public_jwk(&k)});
    let p = sign(&k, &header, &claims());
    for _ in 0..2 {
        assert_eq!(
            check_with(&checker, &p),
            refused(DpopProofReason::WrongType)
        );
    }
    assert_eq!(checker.cached_headers(), 0);
}

#[test]
fn a_checker_without_a_key_cache_checks_every_header() {
    let checker = ProofChecker::builder()
        .key_cache_entries(0)
        .build()
        .expect("valid");
    let k = key(Algorithm::ES256);
    check_with(&checker, &proof_with(&k, &claims())).expect("accepted");
    assert_eq!(checker.cached_headers(), 0);
    assert!(
        ProofChecker::builder()
            .key_cache_entries(70_000)
            .build()
            .is_err()
    );
}
