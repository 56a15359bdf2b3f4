//! Writes the seed corpora in `corpus/<target>/` (run from `fuzz/`:
//! `cargo run --example make_seeds`). Tokens expire in 2100, so the seeds stay valid.

use std::path::Path;

use bearer_guard::Algorithm;
use bearer_guard::dev_issuer::{SigningKey, jwk_set};
use serde_json::json;

const ISS: &str = "https://issuer.fuzz/";
const AUD: &str = "urn:fuzz";
const SECRET: &[u8] = b"fuzzing-secret-of-32-bytes-long!";
const EXP: i64 = 4_102_444_800;

fn write(target: &str, name: &str, bytes: impl AsRef<[u8]>) {
    let dir = Path::new("corpus").join(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    std::fs::write(dir.join(name), bytes).expect("write seed");
}

fn main() {
    let rs = SigningKey::from_pool(Algorithm::RS256, 0, "rs").expect("pool key");
    let ed = SigningKey::from_pool(Algorithm::EdDSA, 0, "ed").expect("pool key");
    let ec = SigningKey::from_pool(Algorithm::ES256, 0, "ec").expect("pool key");
    let ps = SigningKey::from_pool(Algorithm::PS256, 1, "ps").expect("pool key");
    let hs = SigningKey::hmac(Algorithm::HS256, SECRET, "hs").expect("hmac key");
    let claims = json!({
        "iss": ISS, "aud": AUD, "exp": EXP, "iat": 1_700_000_000, "nbf": 1_700_000_000,
        "sub": "fuzz@clients", "client_id": "fuzz", "jti": "j1", "scope": "read write:maps",
    });

    // verify_token: real tokens of each fixed key, and near misses.
    write("verify_token", "rs256", rs.sign(&claims).expect("sign"));
    write("verify_token", "eddsa", ed.sign(&claims).expect("sign"));
    write("verify_token", "hs256", hs.sign(&claims).expect("sign"));
    write(
        "verify_token",
        "rs256-no-kid",
        rs.sign_raw(br#"{"alg":"RS256"}"#, claims.to_string().as_bytes())
            .expect("sign"),
    );
    write(
        "verify_token",
        "hs256-scp-array",
        hs.sign(&json!({"iss": ISS, "aud": [AUD, "other"], "exp": EXP, "scp": ["a", "b"]}))
            .expect("sign"),
    );
    write(
        "verify_token",
        "alg-none",
        "eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2lzc3Vlci5mdXp6LyJ9.",
    );
    write("verify_token", "es256", ec.sign(&claims).expect("sign"));

    // verify_claims: header \n payload.
    let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": "hs"}).to_string();
    let cases = [
        ("full", claims.clone()),
        (
            "floats-and-arrays",
            json!({"iss": ISS, "aud": ["x", AUD], "exp": 4.1e9, "iat": 1.5e9, "scp": ["a", "b:c"], "permissions": ["p"]}),
        ),
        ("minimal", json!({"iss": ISS, "aud": AUD, "exp": EXP})),
        (
            "nested",
            json!({"iss": ISS, "aud": AUD, "exp": EXP, "ext": {"a": [1, {"b": null}], "c": "d"}}),
        ),
    ];
    for (name, c) in cases {
        write("verify_claims", name, format!("{header}\n{c}"));
    }
    write(
        "verify_claims",
        "bare-payload",
        json!({"iss": ISS, "aud": AUD, "exp": EXP, "azp": "x"}).to_string(),
    );
    write(
        "verify_claims",
        "crit",
        format!(
            r#"{{"alg":"HS256","crit":["b64"],"b64":false}}{}{claims}"#,
            '\n'
        ),
    );

    // jwks: real sets and near misses.
    write("jwks", "all", jwk_set([&rs, &ed, &ec, &ps]).to_string());
    write("jwks", "rsa", jwk_set([&rs]).to_string());
    let mut no_alg = ec.public_jwk();
    no_alg.as_object_mut().expect("object").remove("alg");
    write(
        "jwks",
        "mixed",
        json!({"keys": [
            no_alg,
            {"kty": "oct", "k": "AAAA", "kid": "o"},
            {"kty": "XYZ", "kid": "x"},
            {"kty": "OKP", "crv": "X25519", "x": "AAAA"},
            ed.public_jwk(),
            ed.public_jwk(),
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "use": "enc"},
            {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA", "key_ops": ["verify"]},
        ]})
        .to_string(),
    );

    // authorization: header values.
    for (name, v) in [
        ("bearer", "Bearer abc.def.ghi".to_owned()),
        ("lower", "bearer a-b_c~d+e/f==".to_owned()),
        ("basic", "Basic dXNlcjpwYXNz".to_owned()),
        ("double-space", "Bearer  abc".to_owned()),
        ("empty", "Bearer ".to_owned()),
        (
            "real",
            format!("Bearer {}", hs.sign(&claims).expect("sign")),
        ),
        ("cookie", "theme=dark; at=abc.def; at=x".to_owned()),
    ] {
        write("authorization", name, v);
    }

    // scopes.
    for (name, v) in [
        ("two", "directions geocode:location"),
        ("spaces", "  a   b  "),
        ("odd", "!#$%&'()*+,-./:;<=>?@[]^_`{|}~"),
        ("invalid", "a \"b\" c\\d"),
        ("empty", ""),
    ] {
        write("scopes", name, v);
    }
    // dpop_proof: mode 0 (a proof as sent) and mode 1 (`header \n payload`, signed by the
    // target with the Ed25519 pool key).
    let ed_jwk = {
        let mut j = ed.public_jwk();
        for m in ["kid", "alg", "use"] {
            j.as_object_mut().expect("object").remove(m);
        }
        j
    };
    let ath = {
        use base64::Engine as _;
        use sha2::Digest as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(b"fuzz.access.token"))
    };
    let dpop_header = json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": ed_jwk});
    let dpop_claims = json!({"jti": "seed-1", "htm": "GET", "htu": "https://api.fuzz/maps?q=1",
        "iat": EXP, "ath": ath, "nonce": "n"});
    let proof = ed
        .sign_raw(
            dpop_header.to_string().as_bytes(),
            dpop_claims.to_string().as_bytes(),
        )
        .expect("sign");
    let mode0 = |p: &str| [&[0u8][..], p.as_bytes()].concat();
    let mode1 = |h: &serde_json::Value, c: &serde_json::Value| {
        [
            &[1u8][..],
            h.to_string().as_bytes(),
            b"\n",
            c.to_string().as_bytes(),
        ]
        .concat()
    };
    write("dpop_proof", "valid", mode0(&proof));
    write("dpop_proof", "not-a-jws", mode0("not-a-jws"));
    write(
        "dpop_proof",
        "alg-none",
        mode0("eyJhbGciOiJub25lIiwidHlwIjoiZHBvcCtqd3QifQ.e30."),
    );
    write(
        "dpop_proof",
        "signed-claims",
        mode1(&dpop_header, &dpop_claims),
    );
    let mut private = dpop_header.clone();
    private["jwk"]["d"] = json!("AAAA");
    write("dpop_proof", "private-jwk", mode1(&private, &dpop_claims));
    let mut ec_header = dpop_header.clone();
    ec_header["alg"] = json!("ES256");
    ec_header["jwk"] = json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"});
    write("dpop_proof", "ec-mismatch", mode1(&ec_header, &dpop_claims));
    // A valid proof but for a byte that is not UTF-8 in a member the checker skips (the
    // class of CI's crash, kept as found in `regression-utf8-in-skipped-member`).
    let claims_text = dpop_claims.to_string();
    let skipped = [
        claims_text.trim_end_matches('}').as_bytes(),
        b",\"x\":\"\xfe\"}",
    ]
    .concat();
    write(
        "dpop_proof",
        "utf8-in-skipped-member",
        [
            &[1u8][..],
            dpop_header.to_string().as_bytes(),
            b"\n",
            &skipped,
        ]
        .concat(),
    );

    // cached_answer: introspection answers as a shared store holds them.
    let answer = json!({"iss": "https://issuer.example/", "aud": "urn:worldmappers",
        "exp": EXP, "iat": 1_700_000_000, "scope": "geocode:location directions",
        "client_id": "gift-deliveries", "sub": "gift-deliveries@clients",
        "cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}, "token_type": "Bearer"});
    write("cached_answer", "active", format!("A{answer}"));
    write(
        "cached_answer",
        "minimal",
        r#"A{"iss":"i","aud":["a","b"],"exp":1,"nbf":0,"scope":""}"#,
    );
    write("cached_answer", "inactive", "Rinactive");
    write("cached_answer", "wrong-audience", "Rwrong_audience");
}
