//! Tests of the binding check, with claims made from JSON.

use serde_json::{Value, json};

use super::*;
use crate::{Algorithm, AuthErrorKind};

const CERT: &[u8] = b"\x30\x03\x02\x01\x01";
const OTHER: &[u8] = b"\x30\x03\x02\x01\x02";

fn claims_of(payload: &Value) -> Claims {
    let mut payload = payload.clone();
    if let Some(o) = payload.as_object_mut() {
        o.insert("iss".into(), json!("i"));
        o.insert("aud".into(), json!("a"));
    }
    crate::claims::read_claims(payload.to_string(), Algorithm::ES256, None, &[]).expect("claims")
}

fn bound_to(der: &[u8]) -> Claims {
    let x5t = CertificateThumbprint::of_der(der);
    claims_of(&json!({"iss": "i", "aud": "a", "exp": 9_999_999_999_i64,
        "cnf": {"x5t#S256": x5t.as_str()}}))
}

fn unbound() -> Claims {
    claims_of(&json!({"iss": "i", "aud": "a", "exp": 9_999_999_999_i64}))
}

fn kind(r: Result<Option<MtlsConfirmation>, AuthError>) -> AuthErrorKind {
    r.expect_err("refused").kind()
}

const MISMATCH: AuthErrorKind =
    AuthErrorKind::InvalidToken(InvalidTokenReason::CertificateMismatch);

#[test]
fn the_thumbprint_is_the_base64url_sha256_of_the_der_bytes() {
    // RFC 8705 §3.1 over the DER bytes; the digest of "abc" is a known vector.
    assert_eq!(
        CertificateThumbprint::of_der(b"abc").as_str(),
        "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
    );
    let peer = PeerCertificate::from_der(CERT.to_vec());
    assert_eq!(peer.der(), CERT);
    assert_eq!(peer.thumbprint(), &CertificateThumbprint::of_der(CERT));
}

#[test]
fn a_bound_token_with_its_certificate_is_confirmed() {
    let cert = CertificateThumbprint::of_der(CERT);
    let confirmation = Mtls::peer_certificate()
        .check(&bound_to(CERT), Some(&cert))
        .expect("accepted")
        .expect("confirmed");
    assert_eq!(confirmation.x5t_s256(), cert.as_str());
    assert_eq!(bound_to(CERT).confirmation_x5t_s256(), Some(cert.as_str()));
}

#[test]
fn a_bound_token_without_a_certificate_is_refused_as_bound_to_one() {
    let e = Mtls::peer_certificate()
        .check(&bound_to(CERT), None)
        .expect_err("refused");
    assert_eq!(e.kind(), MISMATCH);
    assert!(
        e.description().contains("bound to a client certificate"),
        "{e}"
    );
}

#[test]
fn a_bound_token_with_another_certificate_is_refused() {
    let other = CertificateThumbprint::of_der(OTHER);
    let e = Mtls::peer_certificate()
        .check(&bound_to(CERT), Some(&other))
        .expect_err("refused");
    assert_eq!(e.kind(), MISMATCH);
    assert!(
        e.description().contains("bound to a client certificate"),
        "{e}"
    );
}

#[test]
fn a_thumbprint_claim_differing_in_one_character_is_refused() {
    let cert = CertificateThumbprint::of_der(CERT);
    let mut tampered = cert.as_str().to_owned();
    let last = if tampered.ends_with('A') { "B" } else { "A" };
    tampered.replace_range(42.., last);
    let claims = claims_of(&json!({"exp": 9_999_999_999_i64, "cnf": {"x5t#S256": tampered}}));
    assert_eq!(
        kind(Mtls::peer_certificate().check(&claims, Some(&cert))),
        MISMATCH
    );
}

#[test]
fn an_unbound_token_passes_unless_binding_is_required() {
    let cert = CertificateThumbprint::of_der(CERT);
    let mtls = Mtls::peer_certificate();
    assert_eq!(mtls.check(&unbound(), None).expect("passes"), None);
    assert_eq!(mtls.check(&unbound(), Some(&cert)).expect("passes"), None);
    let required = mtls.mode(MtlsMode::Required);
    assert_eq!(
        kind(required.check(&unbound(), Some(&cert))),
        AuthErrorKind::InvalidToken(InvalidTokenReason::NotCertificateBound)
    );
    assert!(required.check(&bound_to(CERT), Some(&cert)).is_ok());
}

#[test]
fn the_off_mode_checks_nothing() {
    let off = Mtls::peer_certificate().mode(MtlsMode::Off);
    assert_eq!(off.check(&bound_to(CERT), None).expect("off"), None);
}

#[test]
fn a_cnf_of_the_wrong_shape_is_an_invalid_claim() {
    let invalid = AuthErrorKind::InvalidToken(InvalidTokenReason::InvalidClaim);
    for cnf in [json!("x"), json!({"x5t#S256": 1}), json!({"x5t#S256": ""})] {
        let claims = claims_of(&json!({"exp": 9_999_999_999_i64, "cnf": cnf}));
        assert_eq!(kind(Mtls::peer_certificate().check(&claims, None)), invalid);
    }
}

#[test]
fn a_dpop_only_cnf_is_not_certificate_bound() {
    let claims = claims_of(&json!({"exp": 9_999_999_999_i64, "cnf": {"jkt": "abc"}}));
    assert_eq!(
        Mtls::peer_certificate()
            .check(&claims, None)
            .expect("unbound"),
        None
    );
}

#[test]
fn an_escaped_cnf_member_is_still_read() {
    let cert = CertificateThumbprint::of_der(CERT);
    let escaped = format!(
        r#"{{"iss":"i","aud":"a","exp":9999999999,"\u0063nf":{{"x5t#S256":"{}"}}}}"#,
        cert.as_str()
    );
    let claims = crate::claims::read_claims(escaped, Algorithm::ES256, None, &[]).expect("c");
    assert_eq!(
        kind(Mtls::peer_certificate().check(&claims, None)),
        MISMATCH
    );
}
