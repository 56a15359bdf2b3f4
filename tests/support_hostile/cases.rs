//! The attack table: hostile requests and the answer each must get.

use bearer_guard::dev_issuer::SigningKey;
use bearer_guard::{Algorithm, InvalidTokenReason as R};
use serde_json::{Value, json};

use super::{
    AUD, Answer, ISS, Keys, b64, claims, ecdsa_to_der, header, pem, rsa_public_der, sign, sign_raw,
    unb64,
};

/// The answer a case must get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// 200 from the handler.
    Accepted,
    /// 401 with a bare challenge (no credentials, or another scheme).
    NoCredentials,
    /// 400 `invalid_request` from the layer.
    BadRequest,
    /// 400 from the HTTP server itself, before the layer (the request is not valid HTTP).
    HttpBadRequest,
    /// A status from the HTTP server itself, before the layer (e.g. 431).
    HttpStatus(u16),
    /// 401 `invalid_token`, with a description containing this text when given.
    Invalid(Option<String>),
    /// 403 `insufficient_scope`.
    Forbidden,
}

/// One hostile request.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub path: String,
    /// Each element is one `Authorization` header value.
    pub auth: Vec<Vec<u8>>,
    pub expect: Expect,
}

impl Case {
    /// Checks an answer; `Err` says what is wrong.
    pub fn check(&self, a: &Answer) -> Result<(), String> {
        let code = a.error_code();
        let ok = match &self.expect {
            Expect::Accepted => a.status == 200,
            Expect::NoCredentials => {
                a.status == 401
                    && code.is_none()
                    && a.challenge.as_deref() == Some("Bearer realm=\"api\"")
            }
            Expect::BadRequest => a.status == 400 && code.as_deref() == Some("invalid_request"),
            Expect::HttpBadRequest => a.status == 400,
            Expect::HttpStatus(s) => a.status == *s,
            Expect::Invalid(desc) => {
                a.status == 401
                    && code.as_deref() == Some("invalid_token")
                    && desc
                        .as_ref()
                        .is_none_or(|d| a.description().is_some_and(|got| got.contains(d.as_str())))
            }
            Expect::Forbidden => a.status == 403 && code.as_deref() == Some("insufficient_scope"),
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "expected {:?}, got {} challenge={:?} body={:?}",
                self.expect,
                a.status,
                a.challenge,
                super::truncate(&a.body, 200)
            ))
        }
    }
}

fn why(r: R) -> Expect {
    Expect::Invalid(Some(r.description().to_owned()))
}

fn claim_invalid(name: &str) -> Expect {
    Expect::Invalid(Some(format!("the token's claim '{name}' is invalid")))
}

fn claim_missing(name: &str) -> Expect {
    Expect::Invalid(Some(format!("the token lacks the claim '{name}'")))
}

fn any_invalid() -> Expect {
    Expect::Invalid(None)
}

/// A `Bearer` header value.
fn bearer(token: &str) -> Vec<u8> {
    format!("Bearer {token}").into_bytes()
}

struct Table {
    cases: Vec<Case>,
}

impl Table {
    fn add(&mut self, name: impl Into<String>, auth: Vec<Vec<u8>>, expect: Expect) {
        self.add_at("/me", name, auth, expect);
    }

    fn add_at(&mut self, path: &str, name: impl Into<String>, auth: Vec<Vec<u8>>, expect: Expect) {
        self.cases.push(Case {
            name: name.into(),
            path: path.to_owned(),
            auth,
            expect,
        });
    }

    /// One `Bearer` token.
    fn token(&mut self, name: impl Into<String>, token: &str, expect: Expect) {
        self.add(name, vec![bearer(token)], expect);
    }
}

/// A token whose header and claims are JSON values, signed by `key`.
fn jwt(key: &SigningKey, header: &Value, claims: &Value) -> String {
    sign_raw(
        key,
        header.to_string().as_bytes(),
        claims.to_string().as_bytes(),
    )
}

/// A token with this raw signature.
fn with_sig(header: &Value, claims: &Value, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string()),
        b64(claims.to_string()),
        b64(sig)
    )
}

/// The signing input of a token (`header.payload`).
fn message(header: &Value, claims: &Value) -> String {
    format!("{}.{}", b64(header.to_string()), b64(claims.to_string()))
}

fn nested_array(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

fn nested_object(depth: usize) -> String {
    format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
}

/// The order of the P-256 group, big-endian.
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// Every case of the attack suite. `attacker_url` is a server the attacker controls (the
/// tests check that nothing is ever fetched from it); `issuer_base` the real issuer's base.
#[allow(clippy::too_many_lines)]
pub fn attack_cases(k: &Keys, attacker_url: &str, issuer_base: &str) -> Vec<Case> {
    let mut t = Table { cases: Vec::new() };
    let c = claims(&json!({}));
    let h_rs = header("RS256", "rsa-rs");
    // Most claim-level cases are signed with Ed25519: fast with either backend, even unoptimized.
    let h_ed = header("EdDSA", "ed");
    let good = sign(&k.rs, &c);
    let (good_msg, good_sig) = good.rsplit_once('.').expect("jwt");
    let rs_sig = unb64(good_sig);

    // --- baseline: the suite's keys work
    t.token("valid RS256", &good, Expect::Accepted);
    t.token("valid PS256", &sign(&k.ps, &c), Expect::Accepted);
    t.token("valid ES256", &sign(&k.ec, &c), Expect::Accepted);
    t.token("valid EdDSA", &sign(&k.ed, &c), Expect::Accepted);
    t.token(
        "valid RS256 without kid (the only RS256 key)",
        &jwt(&k.rs, &json!({"alg": "RS256"}), &c),
        Expect::Accepted,
    );
    t.token(
        "kid null (not a string)",
        &jwt(&k.rs, &json!({"alg": "RS256", "kid": null}), &c),
        why(R::Malformed),
    );

    // --- alg none, in every spelling
    for alg in [
        "none",
        "None",
        "NONE",
        "nOnE",
        "NoNe",
        "none ",
        " none",
        "none\u{0}",
        "",
        "null",
        "rs256",
        "RS256 ",
        "Rs256",
        "RS-256",
        "HS256",
        "HS384",
        "HS512",
        "ES512",
        "RSA-OAEP",
        "dir",
    ] {
        let h = json!({"alg": alg, "kid": "rsa-rs"});
        t.token(
            format!("alg {alg:?} without a signature"),
            &format!("{}.", message(&h, &c)),
            why(R::Malformed),
        );
        t.token(
            format!("alg {alg:?} with a signature"),
            &with_sig(&h, &c, &rs_sig),
            why(R::AlgorithmNotAllowed),
        );
        t.token(
            format!("alg {alg:?} without kid"),
            &with_sig(&json!({"alg": alg}), &c, b"x"),
            why(R::AlgorithmNotAllowed),
        );
    }
    for (name, h) in [
        ("alg missing", json!({"kid": "rsa-rs"})),
        ("alg null", json!({"alg": null, "kid": "rsa-rs"})),
        ("alg a number", json!({"alg": 256, "kid": "rsa-rs"})),
        ("alg an array", json!({"alg": ["RS256"], "kid": "rsa-rs"})),
        (
            "alg an object",
            json!({"alg": {"none": true}, "kid": "rsa-rs"}),
        ),
        ("alg true", json!({"alg": true, "kid": "rsa-rs"})),
    ] {
        t.token(name, &with_sig(&h, &c, &rs_sig), why(R::Malformed));
    }

    // --- HS256 signed with the RSA public key as the secret
    let (pkcs1, spki) = rsa_public_der(&k.rs.public_jwk());
    let spki_pem = pem("PUBLIC KEY", &spki);
    let n = unb64(k.rs.public_jwk()["n"].as_str().expect("n"));
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("SPKI PEM", spki_pem.clone().into_bytes()),
        (
            "SPKI PEM without the final newline",
            spki_pem.trim_end().as_bytes().to_vec(),
        ),
        ("PKCS#1 PEM", pem("RSA PUBLIC KEY", &pkcs1).into_bytes()),
        ("SPKI DER", spki),
        ("PKCS#1 DER", pkcs1),
        ("raw modulus bytes", n.clone()),
        (
            "modulus as base64url text",
            k.rs.public_jwk()["n"]
                .as_str()
                .expect("n")
                .as_bytes()
                .to_vec(),
        ),
        (
            "the JWK as JSON text",
            k.rs.public_jwk().to_string().into_bytes(),
        ),
    ];
    for (what, secret) in &secrets {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let hk = SigningKey::hmac(alg, secret, "rsa-rs").expect("hmac key");
            t.token(
                format!("{alg} with the RSA public key ({what}) as the secret, kid rsa-rs"),
                &sign(&hk, &c),
                why(R::AlgorithmNotAllowed),
            );
        }
        let hk = SigningKey::hmac(Algorithm::HS256, secret, "").expect("hmac key");
        t.token(
            format!("HS256 with the RSA public key ({what}) as the secret, no kid"),
            &jwt(&hk, &json!({"alg": "HS256"}), &c),
            why(R::AlgorithmNotAllowed),
        );
    }

    // --- RS256 <-> PS256 and other swaps under a key bound to another algorithm
    let rsa1 = |alg| SigningKey::from_pool(alg, 0, "rsa-rs").expect("pool key");
    let rsa2 = |alg| SigningKey::from_pool(alg, 1, "rsa-ps").expect("pool key");
    t.token(
        "PS256 under the RS256-bound key",
        &sign(&rsa1(Algorithm::PS256), &c),
        why(R::KeyAlgorithmMismatch),
    );
    t.token(
        "RS256 under the PS256-bound key",
        &sign(&rsa2(Algorithm::RS256), &c),
        why(R::KeyAlgorithmMismatch),
    );
    t.token(
        "RS384 under the RS256-bound key",
        &sign(&rsa1(Algorithm::RS384), &c),
        why(R::KeyAlgorithmMismatch),
    );
    t.token(
        "PS512 under the PS256-bound key",
        &sign(&rsa2(Algorithm::PS512), &c),
        why(R::KeyAlgorithmMismatch),
    );
    t.token(
        "PS256 without kid, signed by the RS256 key",
        &jwt(&rsa1(Algorithm::PS256), &json!({"alg": "PS256"}), &c),
        why(R::BadSignature),
    );
    {
        let h = header("PS256", "rsa-ps");
        let pkcs1_sig = rsa2(Algorithm::RS256)
            .sign_bytes(message(&h, &c).as_bytes())
            .expect("sign");
        t.token(
            "PS256 header carrying a PKCS#1 v1.5 signature",
            &with_sig(&h, &c, &pkcs1_sig),
            why(R::BadSignature),
        );
        let pss_sig = rsa1(Algorithm::PS256)
            .sign_bytes(message(&h_rs, &c).as_bytes())
            .expect("sign");
        t.token(
            "RS256 header carrying a PSS signature",
            &with_sig(&h_rs, &c, &pss_sig),
            why(R::BadSignature),
        );
    }

    // --- a token naming the EC key's kid, signed otherwise
    t.token(
        "RS256 naming the EC key",
        &jwt(&k.rs, &header("RS256", "ec"), &c),
        why(R::KeyAlgorithmMismatch),
    );
    t.token(
        "ES256 naming the EC key with an RSA signature",
        &with_sig(&header("ES256", "ec"), &c, &rs_sig),
        why(R::BadSignature),
    );
    t.token(
        "EdDSA naming the EC key",
        &jwt(&k.ed, &header("EdDSA", "ec"), &c),
        why(R::KeyAlgorithmMismatch),
    );
    t.token(
        "ES384 naming the P-256 key",
        &with_sig(&header("ES384", "ec"), &c, &[0; 96]),
        why(R::KeyAlgorithmMismatch),
    );
    t.token(
        "ES256 naming the RSA key",
        &jwt(&k.ec, &header("ES256", "rsa-rs"), &c),
        why(R::KeyAlgorithmMismatch),
    );
    t.token(
        "EdDSA naming the RSA key",
        &jwt(&k.ed, &header("EdDSA", "rsa-rs"), &c),
        why(R::KeyAlgorithmMismatch),
    );

    // --- kid path traversal and injection (validly signed by the real key)
    let long_kid = "k".repeat(8000);
    let kids: Vec<String> = [
        "../../../../etc/passwd",
        "..\\..\\..\\windows\\win.ini",
        "/dev/random",
        "/proc/self/environ",
        "file:///etc/passwd",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "rsa-rs/../rsa-rs",
        "' OR '1'='1",
        "rsa-rs' --",
        "rsa-rs\u{0}",
        "rsa-rs\n",
        "rsa-rs\r\nX-Injected: 1",
        "${jndi:ldap://127.0.0.1:1/a}",
        "<script>alert(1)</script>",
        "{{7*7}}",
        "| cat /etc/passwd",
        "$(id)",
        "`id`",
        "*",
        "rsa-*",
        "RSA-RS",
        " rsa-rs",
        "rsa-rs ",
        "rs\u{430}-rs",
        "",
        "\u{202e}sr-asr",
        "null",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([
        attacker_url.to_owned(),
        format!("{issuer_base}/attacker-jwks"),
    ])
    .collect();
    for kid in &kids {
        t.token(
            format!("kid {:?}", super::truncate(kid, 40)),
            &jwt(&k.ed, &header("EdDSA", kid), &c),
            why(R::UnknownKey),
        );
    }
    // Longer than MAX_KID_BYTES: refused before any key lookup, saying so.
    t.token(
        format!("kid {:?}", super::truncate(&long_kid, 40)),
        &jwt(&k.ed, &header("EdDSA", &long_kid), &c),
        Expect::Invalid(Some("the token's kid is longer than 256 bytes".into())),
    );
    for (name, kid) in [
        ("kid a number", json!(1)),
        ("kid an array", json!(["rsa-rs"])),
        ("kid an object", json!({"$ne": null})),
        ("kid true", json!(true)),
    ] {
        t.token(
            name,
            &jwt(&k.ed, &json!({"alg": "EdDSA", "kid": kid}), &c),
            why(R::Malformed),
        );
    }

    // --- jwk / jku / x5u / x5c pointing at the attacker's key or server
    let evil = k.attacker.public_jwk();
    let evil_ec = k.attacker_ec.public_jwk();
    let x5c = b64(b"0\x82\x01\x0a\x02\x82\x01\x01\x00attacker certificate");
    for (name, h, expect) in [
        (
            "embedded jwk, no kid",
            json!({"alg": "RS256", "jwk": evil}),
            why(R::BadSignature),
        ),
        (
            "embedded jwk with the attacker's kid",
            json!({"alg": "RS256", "kid": "attacker", "jwk": evil}),
            why(R::UnknownKey),
        ),
        (
            "embedded jwk under the real kid",
            json!({"alg": "RS256", "kid": "rsa-rs", "jwk": evil}),
            why(R::BadSignature),
        ),
        (
            "jku to the attacker, attacker's kid",
            json!({"alg": "RS256", "kid": "attacker", "jku": attacker_url}),
            why(R::UnknownKey),
        ),
        (
            "jku to the attacker, real kid",
            json!({"alg": "RS256", "kid": "rsa-rs", "jku": attacker_url}),
            why(R::BadSignature),
        ),
        (
            "jku to the attacker, no kid",
            json!({"alg": "RS256", "jku": attacker_url}),
            why(R::BadSignature),
        ),
        (
            "jku to another path of the issuer",
            json!({"alg": "RS256", "kid": "attacker", "jku": format!("{issuer_base}/attacker-jwks")}),
            why(R::UnknownKey),
        ),
        (
            "x5u to the attacker",
            json!({"alg": "RS256", "kid": "attacker", "x5u": attacker_url}),
            why(R::UnknownKey),
        ),
        (
            "x5u to the attacker, real kid",
            json!({"alg": "RS256", "kid": "rsa-rs", "x5u": attacker_url}),
            why(R::BadSignature),
        ),
        (
            "x5c with the attacker's certificate",
            json!({"alg": "RS256", "kid": "attacker", "x5c": [x5c]}),
            why(R::UnknownKey),
        ),
        (
            "x5c, no kid",
            json!({"alg": "RS256", "x5c": [x5c]}),
            why(R::BadSignature),
        ),
        (
            "x5t#S256 with the attacker's kid",
            json!({"alg": "RS256", "kid": "attacker", "x5t#S256": b64([7u8; 32])}),
            why(R::UnknownKey),
        ),
        (
            "embedded EC jwk, no kid",
            json!({"alg": "ES256", "jwk": evil_ec}),
            why(R::BadSignature),
        ),
        (
            "every key-location header at once",
            json!({"alg": "RS256", "kid": "attacker", "jwk": evil, "jku": attacker_url, "x5u": attacker_url, "x5c": [x5c]}),
            why(R::UnknownKey),
        ),
    ] {
        let signer = if h["alg"] == "ES256" {
            &k.attacker_ec
        } else {
            &k.attacker
        };
        t.token(name, &jwt(signer, &h, &c), expect);
    }

    // --- crit
    for (name, h) in [
        (
            "crit naming an unknown extension",
            json!({"alg": "RS256", "kid": "rsa-rs", "crit": ["exp"], "exp": 1}),
        ),
        (
            "crit b64=false (unencoded payload)",
            json!({"alg": "RS256", "kid": "rsa-rs", "crit": ["b64"], "b64": false}),
        ),
        (
            "crit empty",
            json!({"alg": "RS256", "kid": "rsa-rs", "crit": []}),
        ),
        (
            "crit a string",
            json!({"alg": "RS256", "kid": "rsa-rs", "crit": "b64"}),
        ),
        (
            "crit null",
            json!({"alg": "RS256", "kid": "rsa-rs", "crit": null}),
        ),
        (
            "crit naming a missing extension",
            json!({"alg": "RS256", "kid": "rsa-rs", "crit": ["http://evil/ext"]}),
        ),
    ] {
        t.token(name, &jwt(&k.rs, &h, &c), why(R::UnsupportedCritical));
    }

    // --- ECDSA signatures of the wrong form
    let h_ec = header("ES256", "ec");
    let ec_good =
        k.ec.sign_bytes(message(&h_ec, &c).as_bytes())
            .expect("sign");
    let mut n_n = P256_N.to_vec();
    n_n.extend_from_slice(&P256_N);
    let mut zero_der = vec![0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00];
    let mut r_n = P256_N.to_vec();
    r_n.extend_from_slice(&ec_good[32..]);
    let mut longer = ec_good.clone();
    longer.push(0);
    for (name, sig) in [
        ("ES256 all-zero signature", vec![0u8; 64]),
        ("ES256 DER-encoded signature", ecdsa_to_der(&ec_good)),
        ("ES256 DER-encoded r=0 s=0", std::mem::take(&mut zero_der)),
        ("ES256 r=s=n", n_n),
        ("ES256 r=n", r_n),
        ("ES256 one byte too long", longer),
        ("ES256 one byte short", ec_good[..63].to_vec()),
        ("ES256 r and s swapped", {
            let mut s = ec_good[32..].to_vec();
            s.extend_from_slice(&ec_good[..32]);
            s
        }),
        ("ES256 all-ones signature", vec![0xff; 64]),
    ] {
        t.token(name, &with_sig(&h_ec, &c, &sig), why(R::BadSignature));
    }
    t.token(
        "EdDSA all-zero signature",
        &with_sig(&header("EdDSA", "ed"), &c, &[0; 64]),
        why(R::BadSignature),
    );
    t.token(
        "RS256 all-zero signature",
        &with_sig(&h_rs, &c, &[0; 256]),
        why(R::BadSignature),
    );
    t.token(
        "RS256 one-byte signature",
        &with_sig(&h_rs, &c, &[1]),
        why(R::BadSignature),
    );

    // --- stripped, truncated and extra segments
    let (h_seg, rest) = good.split_once('.').expect("jwt");
    let (p_seg, s_seg) = rest.split_once('.').expect("jwt");
    for (name, tok, expect) in [
        (
            "header and payload only",
            good_msg.to_owned(),
            why(R::Malformed),
        ),
        ("empty signature", format!("{good_msg}."), why(R::Malformed)),
        (
            "empty payload",
            format!("{h_seg}..{s_seg}"),
            why(R::Malformed),
        ),
        (
            "empty header",
            format!(".{p_seg}.{s_seg}"),
            why(R::Malformed),
        ),
        ("a single segment", h_seg.to_owned(), why(R::Malformed)),
        ("two dots", "..".to_owned(), why(R::Malformed)),
        ("one dot", ".".to_owned(), why(R::Malformed)),
        ("a trailing dot", format!("{good}."), why(R::Malformed)),
        ("four segments", format!("{good}.e30"), why(R::Malformed)),
        (
            "five segments (JWE shape)",
            format!("{h_seg}.{p_seg}.{s_seg}.{p_seg}.{s_seg}"),
            why(R::Malformed),
        ),
        (
            "signature one character short",
            good[..good.len() - 1].to_owned(),
            any_invalid(),
        ),
        (
            "signature two characters short",
            good[..good.len() - 2].to_owned(),
            any_invalid(),
        ),
        (
            "signature four characters short",
            good[..good.len() - 4].to_owned(),
            any_invalid(),
        ),
        (
            "payload truncated",
            format!("{h_seg}.{}.{s_seg}", &p_seg[..p_seg.len() - 4]),
            why(R::BadSignature),
        ),
        (
            "signature of another token",
            format!(
                "{}.{s_seg}",
                message(&h_rs, &claims(&json!({"sub": "admin"})))
            ),
            why(R::BadSignature),
        ),
        (
            "payload of another token",
            format!(
                "{h_seg}.{}.{s_seg}",
                b64(claims(&json!({"sub": "admin"})).to_string())
            ),
            why(R::BadSignature),
        ),
        ("signature doubled", format!("{good}{s_seg}"), any_invalid()),
    ] {
        t.token(name, &tok, expect);
    }

    // --- non-base64url and padded segments
    let std_sig =
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD_NO_PAD, &rs_sig);
    assert_ne!(
        std_sig, good_sig,
        "the signature uses both alphabets' differing characters"
    );
    for (name, tok, expect) in [
        (
            "signature in the standard alphabet",
            format!("{good_msg}.{std_sig}"),
            why(R::Malformed),
        ),
        (
            "padded signature",
            format!("{good_msg}.{good_sig}=="),
            why(R::Malformed),
        ),
        (
            "padded header",
            format!("{h_seg}==.{p_seg}.{s_seg}"),
            Expect::BadRequest,
        ),
        (
            "padded payload",
            format!("{h_seg}.{p_seg}=.{s_seg}"),
            Expect::BadRequest,
        ),
        (
            "a tilde in the signature",
            format!("{good}~"),
            why(R::Malformed),
        ),
        (
            "a plus in the header",
            format!("+{good}"),
            why(R::Malformed),
        ),
        (
            "a slash in the payload",
            format!("{h_seg}./{p_seg}.{s_seg}"),
            any_invalid(),
        ),
        (
            "an exclamation mark",
            format!("{good}!"),
            Expect::BadRequest,
        ),
        (
            "a percent-encoded dot",
            good.replacen('.', "%2E", 1),
            Expect::BadRequest,
        ),
        (
            "a comma-separated pair",
            format!("{good},{good}"),
            Expect::BadRequest,
        ),
        ("a quoted token", format!("\"{good}\""), Expect::BadRequest),
        ("only padding", "====".to_owned(), Expect::BadRequest),
        (
            "a space inside",
            good.replacen('.', ". ", 1),
            Expect::BadRequest,
        ),
    ] {
        t.token(name, &tok, expect);
    }

    // --- non-UTF-8 and non-object JSON in header and payload
    let raw_cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        (
            "header not UTF-8",
            vec![0xff, 0xfe, 0x7b, 0x7d],
            c.to_string().into_bytes(),
        ),
        (
            "header with an invalid UTF-8 kid",
            b"{\"alg\":\"RS256\",\"kid\":\"rsa-rs\xff\"}".to_vec(),
            c.to_string().into_bytes(),
        ),
        (
            "header with invalid UTF-8 in an unknown member",
            b"{\"alg\":\"RS256\",\"kid\":\"rsa-rs\",\"x\":\"a\xffb\"}".to_vec(),
            c.to_string().into_bytes(),
        ),
        (
            "header with a byte-order mark",
            [b"\xef\xbb\xbf".as_slice(), h_ed.to_string().as_bytes()].concat(),
            c.to_string().into_bytes(),
        ),
        (
            "header in UTF-16",
            h_ed.to_string()
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect(),
            c.to_string().into_bytes(),
        ),
        (
            "header an array",
            b"[]".to_vec(),
            c.to_string().into_bytes(),
        ),
        (
            "header a string",
            b"\"RS256\"".to_vec(),
            c.to_string().into_bytes(),
        ),
        (
            "header a number",
            b"256".to_vec(),
            c.to_string().into_bytes(),
        ),
        ("header null", b"null".to_vec(), c.to_string().into_bytes()),
        ("header true", b"true".to_vec(), c.to_string().into_bytes()),
        (
            "header an empty object",
            b"{}".to_vec(),
            c.to_string().into_bytes(),
        ),
        (
            "header with trailing garbage",
            [h_ed.to_string().as_bytes(), b"x"].concat(),
            c.to_string().into_bytes(),
        ),
        (
            "header a JSON array of the header",
            format!("[{h_ed}]").into_bytes(),
            c.to_string().into_bytes(),
        ),
        (
            "payload not UTF-8",
            h_ed.to_string().into_bytes(),
            vec![0xff, 0xfe, 0xfd],
        ),
        (
            "payload with an invalid UTF-8 string",
            h_ed.to_string().into_bytes(),
            c.to_string()
                .replace("deliveries", "deli\u{1}ries")
                .into_bytes()
                .into_iter()
                .map(|b| if b == 1 { 0xff } else { b })
                .collect(),
        ),
        (
            "payload an array",
            h_ed.to_string().into_bytes(),
            b"[]".to_vec(),
        ),
        (
            "payload a string",
            h_ed.to_string().into_bytes(),
            b"\"admin\"".to_vec(),
        ),
        (
            "payload a number",
            h_ed.to_string().into_bytes(),
            b"1".to_vec(),
        ),
        (
            "payload null",
            h_ed.to_string().into_bytes(),
            b"null".to_vec(),
        ),
        (
            "payload an array of the claims",
            h_ed.to_string().into_bytes(),
            format!("[{c}]").into_bytes(),
        ),
        (
            "payload with trailing garbage",
            h_ed.to_string().into_bytes(),
            format!("{c}{{}}").into_bytes(),
        ),
        (
            "payload with a lone surrogate",
            h_ed.to_string().into_bytes(),
            c.to_string()
                .replace("gift-deliveries", "\\ud800")
                .into_bytes(),
        ),
        (
            "payload empty object",
            h_ed.to_string().into_bytes(),
            b"{}".to_vec(),
        ),
    ];
    for (name, h, p) in raw_cases {
        let expect = if name == "payload empty object" {
            claim_missing("iss")
        } else {
            why(R::Malformed)
        };
        t.token(name, &sign_raw(&k.ed, &h, &p), expect);
    }

    // --- exp / nbf / iat of every odd type and size
    let now = super::now();
    let time_cases: Vec<(&str, Value, Expect)> = vec![
        (
            "exp a string",
            json!({"exp": (now + 600).to_string()}),
            claim_invalid("exp"),
        ),
        (
            "exp a float",
            json!({"exp": now as f64 + 600.5}),
            Expect::Accepted,
        ),
        ("exp 1e300", json!({"exp": 1e300}), claim_invalid("exp")),
        ("exp -1e300", json!({"exp": -1e300}), claim_invalid("exp")),
        (
            "exp u64::MAX",
            json!({"exp": u64::MAX}),
            claim_invalid("exp"),
        ),
        (
            "exp i64::MAX",
            json!({"exp": i64::MAX}),
            claim_invalid("exp"),
        ),
        (
            "exp i64::MIN",
            json!({"exp": i64::MIN}),
            claim_invalid("exp"),
        ),
        (
            "exp year 9999",
            json!({"exp": 253_402_300_799_i64}),
            Expect::Accepted,
        ),
        (
            "exp year 10000",
            json!({"exp": 253_402_300_800_i64}),
            claim_invalid("exp"),
        ),
        ("exp negative", json!({"exp": -1}), why(R::Expired)),
        ("exp zero", json!({"exp": 0}), why(R::Expired)),
        ("exp true", json!({"exp": true}), claim_invalid("exp")),
        (
            "exp an array",
            json!({"exp": [now + 600]}),
            claim_invalid("exp"),
        ),
        (
            "exp an object",
            json!({"exp": {"$date": now + 600}}),
            claim_invalid("exp"),
        ),
        ("exp null", json!({"exp": null}), claim_missing("exp")),
        (
            "nbf a string",
            json!({"nbf": now.to_string()}),
            claim_invalid("nbf"),
        ),
        (
            "nbf a float in the past",
            json!({"nbf": now as f64 - 10.5}),
            Expect::Accepted,
        ),
        (
            "nbf in an hour",
            json!({"nbf": now + 3600}),
            why(R::NotYetValid),
        ),
        (
            "nbf year 9999",
            json!({"nbf": 253_402_300_799_i64}),
            why(R::NotYetValid),
        ),
        ("nbf negative", json!({"nbf": -1}), Expect::Accepted),
        ("nbf 1e300", json!({"nbf": 1e300}), claim_invalid("nbf")),
        ("nbf -1e300", json!({"nbf": -1e300}), claim_invalid("nbf")),
        (
            "nbf u64::MAX",
            json!({"nbf": u64::MAX}),
            claim_invalid("nbf"),
        ),
        (
            "iat a string",
            json!({"iat": now.to_string()}),
            claim_invalid("iat"),
        ),
        (
            "iat a float",
            json!({"iat": now as f64 - 0.25}),
            Expect::Accepted,
        ),
        (
            "iat in an hour",
            json!({"iat": now + 3600}),
            why(R::IssuedInFuture),
        ),
        ("iat negative", json!({"iat": -1}), Expect::Accepted),
        ("iat 1e300", json!({"iat": 1e300}), claim_invalid("iat")),
        (
            "iat i64::MIN",
            json!({"iat": i64::MIN}),
            claim_invalid("iat"),
        ),
    ];
    for (name, extra, expect) in time_cases {
        t.token(name, &sign(&k.ed, &claims(&extra)), expect);
    }
    t.token(
        "exp 1e400 (not a finite number)",
        &sign_raw(
            &k.ed,
            h_ed.to_string().as_bytes(),
            format!("{{\"iss\":\"{ISS}\",\"aud\":\"{AUD}\",\"exp\":1e400}}").as_bytes(),
        ),
        why(R::Malformed),
    );

    // --- duplicate JSON keys
    let base = format!("\"iss\":\"{ISS}\",\"aud\":\"{AUD}\",\"exp\":{}", now + 600);
    for (name, payload) in [
        (
            "duplicate exp",
            format!("{{{base},\"exp\":{}}}", now + 99_999),
        ),
        (
            "duplicate iss",
            format!("{{{base},\"iss\":\"https://evil.test/\"}}"),
        ),
        ("duplicate aud", format!("{{\"aud\":\"urn:other\",{base}}}")),
        (
            "duplicate exp spelled with an escape",
            format!("{{{base},\"\\u0065xp\":1}}"),
        ),
        (
            "duplicate scope",
            format!("{{{base},\"scope\":\"a\",\"scope\":\"directions\"}}"),
        ),
    ] {
        t.token(
            name,
            &sign_raw(&k.ed, h_ed.to_string().as_bytes(), payload.as_bytes()),
            why(R::Malformed),
        );
    }
    for (name, h) in [
        (
            "duplicate alg in the header",
            r#"{"alg":"RS256","alg":"none","kid":"rsa-rs"}"#,
        ),
        (
            "duplicate alg in the header, none first",
            r#"{"alg":"none","alg":"RS256","kid":"rsa-rs"}"#,
        ),
        (
            "duplicate kid in the header",
            r#"{"alg":"RS256","kid":"attacker","kid":"rsa-rs"}"#,
        ),
        (
            "duplicate alg spelled with an escape",
            r#"{"alg":"RS256","\u0061lg":"RS256","kid":"rsa-rs"}"#,
        ),
        (
            "duplicate typ in the header",
            r#"{"alg":"RS256","kid":"rsa-rs","typ":"JWT","typ":"JWT"}"#,
        ),
    ] {
        t.token(
            name,
            &sign_raw(&k.ed, h.as_bytes(), c.to_string().as_bytes()),
            why(R::Malformed),
        );
    }
    t.token(
        "duplicate keys nested inside a custom claim (only the top level matters)",
        &sign_raw(
            &k.ed,
            h_ed.to_string().as_bytes(),
            format!("{{{base},\"ext\":{{\"a\":1,\"a\":2}}}}").as_bytes(),
        ),
        Expect::Accepted,
    );

    // --- aud, iss and other claims of the wrong type
    for (name, extra, expect) in [
        ("aud a number", json!({"aud": 42}), claim_invalid("aud")),
        (
            "aud an object",
            json!({"aud": {"aud": AUD}}),
            claim_invalid("aud"),
        ),
        (
            "aud an array with a number",
            json!({"aud": [AUD, 42]}),
            claim_invalid("aud"),
        ),
        (
            "aud a nested array",
            json!({"aud": [[AUD]]}),
            claim_invalid("aud"),
        ),
        ("aud true", json!({"aud": true}), claim_invalid("aud")),
        ("aud empty array", json!({"aud": []}), claim_missing("aud")),
        ("aud null", json!({"aud": null}), claim_missing("aud")),
        (
            "aud empty string",
            json!({"aud": ""}),
            why(R::WrongAudience),
        ),
        (
            "aud other case",
            json!({"aud": AUD.to_uppercase()}),
            why(R::WrongAudience),
        ),
        (
            "aud with a NUL",
            json!({"aud": format!("{AUD}\u{0}")}),
            why(R::WrongAudience),
        ),
        (
            "aud a prefix",
            json!({"aud": &AUD[..AUD.len() - 1]}),
            why(R::WrongAudience),
        ),
        (
            "aud an array holding it",
            json!({"aud": ["urn:other", AUD]}),
            Expect::Accepted,
        ),
        ("iss an array", json!({"iss": [ISS]}), claim_invalid("iss")),
        ("iss a number", json!({"iss": 1}), claim_invalid("iss")),
        (
            "iss without the trailing slash",
            json!({"iss": ISS.trim_end_matches('/')}),
            why(R::WrongIssuer),
        ),
        ("iss missing", json!({"iss": null}), claim_missing("iss")),
        ("sub a number", json!({"sub": 1}), claim_invalid("sub")),
        (
            "client_id an object",
            json!({"client_id": {}}),
            claim_invalid("client_id"),
        ),
        ("jti an array", json!({"jti": []}), claim_invalid("jti")),
        (
            "scope a number",
            json!({"scope": 1}),
            claim_invalid("scope"),
        ),
        (
            "scope an array with a number",
            json!({"scope": ["directions", 1]}),
            claim_invalid("scope"),
        ),
        (
            "scope with a NUL",
            json!({"scope": "directions\u{0}"}),
            claim_invalid("scope"),
        ),
        (
            "scope with a quote",
            json!({"scope": "directions\""}),
            claim_invalid("scope"),
        ),
        (
            "scp an object",
            json!({"scp": {"directions": true}}),
            claim_invalid("scope"),
        ),
    ] {
        t.token(name, &sign(&k.ed, &claims(&extra)), expect);
    }
    for (name, extra, expect) in [
        ("scope granted", json!({}), Expect::Accepted),
        (
            "scope among others",
            json!({"scope": "read directions  write"}),
            Expect::Accepted,
        ),
        (
            "scope in scp",
            json!({"scope": null, "scp": ["directions"]}),
            Expect::Accepted,
        ),
        ("no scope", json!({"scope": null}), Expect::Forbidden),
        (
            "scope of another case",
            json!({"scope": "DIRECTIONS"}),
            Expect::Forbidden,
        ),
        (
            "scope a longer token",
            json!({"scope": "directions:admin"}),
            Expect::Forbidden,
        ),
        (
            "scope a prefix",
            json!({"scope": "direction"}),
            Expect::Forbidden,
        ),
        (
            "scope with a tab",
            json!({"scope": "x\tdirections"}),
            claim_invalid("scope"),
        ),
    ] {
        t.add_at(
            "/directions",
            format!("guarded route, {name}"),
            vec![bearer(&sign(&k.ed, &claims(&extra)))],
            expect,
        );
    }

    // --- very large tokens and very many claims
    let limit = bearer_guard::DEFAULT_MAX_TOKEN_BYTES;
    let (at_limit, over_limit) = tokens_around(&k.ed, limit);
    t.token(
        "a token of exactly the size limit",
        &at_limit,
        Expect::Accepted,
    );
    t.token(
        "a token one byte over the limit",
        &over_limit,
        why(R::TooLarge),
    );
    for size in [64 * 1024, 300 * 1024] {
        let pad = "A".repeat(size);
        t.token(
            format!("a {} KiB token", size / 1024),
            &format!("{good_msg}{pad}.{good_sig}"),
            why(R::TooLarge),
        );
    }
    t.token(
        "a 1 MiB token of dots",
        &".".repeat(1024 * 1024),
        Expect::HttpStatus(431),
    );
    let mut many = serde_json::Map::new();
    for i in 0..700 {
        many.insert(format!("c{i}"), json!(i));
    }
    t.token(
        "700 claims",
        &sign(&k.ed, &claims(&Value::Object(many))),
        Expect::Accepted,
    );
    let scopes: Vec<String> = (0..1500).map(|i| format!("s{i}")).collect();
    t.token(
        "1,500 scopes",
        &sign(&k.ed, &claims(&json!({"scope": scopes.join(" ")}))),
        Expect::Accepted,
    );
    let auds: Vec<String> = (0..1000)
        .map(|i| format!("a{i}"))
        .chain([AUD.to_owned()])
        .collect();
    t.token(
        "1,001 audiences",
        &sign(&k.ed, &claims(&json!({"aud": auds}))),
        Expect::Accepted,
    );

    // --- deep nesting
    let cs = c.to_string();
    let cs = &cs[..cs.len() - 1];
    for (name, payload, expect) in [
        (
            "payload nested 100 deep",
            format!("{cs},\"x\":{}}}", nested_array(100)),
            Expect::Accepted,
        ),
        (
            "payload nested 1,000 deep",
            format!("{cs},\"x\":{}}}", nested_array(1000)),
            why(R::Malformed),
        ),
        (
            "payload objects nested 1,000 deep",
            format!("{cs},\"x\":{}}}", nested_object(1000)),
            why(R::Malformed),
        ),
        (
            "payload nested 5,000 deep",
            format!("{cs},\"x\":{}}}", nested_array(5000)),
            why(R::Malformed),
        ),
    ] {
        t.token(
            name,
            &sign_raw(&k.ed, h_ed.to_string().as_bytes(), payload.as_bytes()),
            expect,
        );
    }
    let hs = h_ed.to_string();
    let hs = &hs[..hs.len() - 1];
    for (name, h, expect) in [
        (
            "header nested 100 deep",
            format!("{hs},\"x\":{}}}", nested_array(100)),
            Expect::Accepted,
        ),
        (
            // The header is read in full, within serde_json's nesting limit (128).
            "header nested 5,000 deep",
            format!("{hs},\"x\":{}}}", nested_array(5000)),
            why(R::Malformed),
        ),
        (
            "header objects nested 1,000 deep",
            format!("{hs},\"x\":{}}}", nested_object(1000)),
            why(R::Malformed),
        ),
        (
            "crit nested 5,000 deep",
            format!("{hs},\"crit\":{}}}", nested_array(5000)),
            why(R::Malformed),
        ),
        (
            "alg nested",
            format!("{{\"alg\":{},\"kid\":\"rsa-rs\"}}", nested_array(3000)),
            why(R::Malformed),
        ),
    ] {
        t.token(
            name,
            &sign_raw(&k.ed, h.as_bytes(), c.to_string().as_bytes()),
            expect,
        );
    }

    // --- the Authorization header itself
    let b = |s: &str| s.as_bytes().to_vec();
    for (name, auth, expect) in [
        ("no Authorization header", vec![], Expect::NoCredentials),
        (
            "two Authorization headers",
            vec![bearer(&good), bearer(&good)],
            Expect::BadRequest,
        ),
        (
            "Bearer and Basic",
            vec![bearer(&good), b("Basic dXNlcjpwYXNz")],
            Expect::BadRequest,
        ),
        (
            "two empty Authorization headers",
            vec![b(""), b("")],
            Expect::BadRequest,
        ),
        (
            "an empty Authorization header",
            vec![b("")],
            Expect::NoCredentials,
        ),
        (
            "Basic only",
            vec![b("Basic dXNlcjpwYXNz")],
            Expect::NoCredentials,
        ),
        (
            "another scheme",
            vec![b(&format!("Token {good}"))],
            Expect::NoCredentials,
        ),
        (
            "Bearer: with a colon",
            vec![b(&format!("Bearer: {good}"))],
            Expect::NoCredentials,
        ),
        (
            "Bearer glued to the token",
            vec![b(&format!("Bearer{good}"))],
            Expect::NoCredentials,
        ),
        (
            "lowercase bearer",
            vec![b(&format!("bearer {good}"))],
            Expect::Accepted,
        ),
        (
            "uppercase BEARER",
            vec![b(&format!("BEARER {good}"))],
            Expect::Accepted,
        ),
        ("Bearer alone", vec![b("Bearer")], Expect::BadRequest),
        ("Bearer and a space", vec![b("Bearer ")], Expect::BadRequest),
        // RFC 6750 §2.1: `"Bearer" 1*SP b64token`.
        (
            "two spaces",
            vec![b(&format!("Bearer  {good}"))],
            Expect::Accepted,
        ),
        (
            "a tab instead of the space",
            vec![b(&format!("Bearer\t{good}"))],
            Expect::BadRequest,
        ),
        (
            "a tab after the space",
            vec![b(&format!("Bearer \t{good}"))],
            Expect::BadRequest,
        ),
        // RFC 9110 §5.5: leading and trailing whitespace is not part of a field value.
        (
            "a leading space (stripped by HTTP)",
            vec![b(&format!(" Bearer {good}"))],
            Expect::Accepted,
        ),
        (
            "a trailing space (stripped by HTTP)",
            vec![b(&format!("Bearer {good} "))],
            Expect::Accepted,
        ),
        (
            "a trailing tab (stripped by HTTP)",
            vec![b(&format!("Bearer {good}\t"))],
            Expect::Accepted,
        ),
        (
            "two tokens",
            vec![b(&format!("Bearer {good} {good}"))],
            Expect::BadRequest,
        ),
        (
            "Bearer twice",
            vec![b(&format!("Bearer Bearer {good}"))],
            Expect::BadRequest,
        ),
        (
            "a no-break space",
            vec![[b("Bearer\u{a0}"), b(&good)].concat()],
            Expect::BadRequest,
        ),
        (
            "a byte-order mark before the token",
            vec![[b("Bearer \u{feff}"), b(&good)].concat()],
            Expect::BadRequest,
        ),
        (
            "a Latin-1 byte in the token",
            vec![[bearer(&good), vec![0xe9]].concat()],
            Expect::BadRequest,
        ),
        (
            "the token in quotes",
            vec![b(&format!("Bearer \"{good}\""))],
            Expect::BadRequest,
        ),
        (
            "a DEL character",
            vec![[bearer(&good), vec![0x7f]].concat()],
            Expect::HttpBadRequest,
        ),
        (
            "a NUL character",
            vec![[bearer(&good), vec![0]].concat()],
            Expect::HttpBadRequest,
        ),
        (
            "a control character before the token",
            vec![[b("Bearer \u{1}"), b(&good)].concat()],
            Expect::HttpBadRequest,
        ),
        (
            "an ANSI escape",
            vec![[b("Bearer \u{1b}[31m"), b(&good)].concat()],
            Expect::HttpBadRequest,
        ),
        (
            "a bare carriage return",
            vec![[b("Bearer "), b(&good[..10]), b("\r"), b(&good[10..])].concat()],
            Expect::HttpBadRequest,
        ),
        (
            "a folded header line",
            vec![[b("Bearer\r\n "), b(&good)].concat()],
            Expect::HttpBadRequest,
        ),
    ] {
        t.add(name, auth, expect);
    }
    t.add_at(
        &format!("/me?access_token={good}"),
        "the token in the query string only",
        vec![],
        Expect::NoCredentials,
    );

    t.cases
}

/// Two valid tokens signed by `key`: one of exactly `limit` bytes, one of `limit + 1`
/// (padding both the header and the payload reaches every length).
fn tokens_around(key: &SigningKey, limit: usize) -> (String, String) {
    let sig_len = sign(key, &claims(&json!({})))
        .rsplit_once('.')
        .expect("jwt")
        .1
        .len();
    let make = |hpad: usize, ppad: usize| {
        let mut h = header(key.alg().as_str(), key.kid());
        h["p"] = json!("h".repeat(hpad));
        let cl = claims(&json!({ "pad": "x".repeat(ppad) }));
        let len = b64(h.to_string()).len() + b64(cl.to_string()).len() + sig_len + 2;
        (h, cl, len)
    };
    let find = |target: usize| {
        for hpad in 0..4 {
            for ppad in (limit * 3 / 4 - 1024)..(limit * 3 / 4 + 1024) {
                let (h, cl, len) = make(hpad, ppad);
                if len == target {
                    let token = jwt(key, &h, &cl);
                    assert_eq!(token.len(), target);
                    return token;
                }
            }
        }
        panic!("no padding gives a token of {target} bytes");
    };
    (find(limit), find(limit + 1))
}

/// Sends one case to the API and checks the answer; `Err` names the case and says what is
/// wrong. Requests that an HTTP client cannot send go over raw TCP.
pub async fn run_case(
    client: &reqwest::Client,
    app: &super::App,
    case: &Case,
) -> Result<(), String> {
    let raw = matches!(case.expect, Expect::HttpBadRequest | Expect::HttpStatus(_))
        || case
            .auth
            .iter()
            .any(|a| axum::http::HeaderValue::from_bytes(a).is_err());
    let answer = if raw {
        let auth: Vec<&[u8]> = case.auth.iter().map(Vec::as_slice).collect();
        super::raw_call(app.addr, &super::raw_request(&case.path, &auth)).await
    } else {
        let auth: Vec<String> = case
            .auth
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let all_utf8 = case.auth.iter().all(|a| std::str::from_utf8(a).is_ok());
        if all_utf8 {
            let auth: Vec<&str> = auth.iter().map(String::as_str).collect();
            super::try_call(client, &app.base, &case.path, &auth)
                .await
                .map_err(|e| format!("case {:?}: no answer: {e}", case.name))?
        } else {
            let auth: Vec<&[u8]> = case.auth.iter().map(Vec::as_slice).collect();
            super::raw_call(app.addr, &super::raw_request(&case.path, &auth)).await
        }
    };
    if answer.status >= 500 {
        return Err(format!(
            "case {:?}: server error {}: {:?}",
            case.name, answer.status, answer.body
        ));
    }
    case.check(&answer)
        .map_err(|e| format!("case {:?}: {e}", case.name))
}
