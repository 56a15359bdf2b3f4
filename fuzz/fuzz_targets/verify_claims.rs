//! Any header and payload bytes, validly signed (HS256 with the verifier's secret), so that
//! the fuzzer reaches the header and claim checks behind the signature: never a panic, and
//! an accepted token's claims satisfy every rule (issuer, audience, times, scopes) and are
//! the payload's JSON object.
//!
//! Input: `header \n payload`; without a newline, the whole input is the payload under the
//! header `{"alg":"HS256","typ":"at+jwt"}`.
#![no_main]

mod common;

use common::{check_accepted_claims, fixture};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let (header, payload): (&[u8], &[u8]) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (br#"{"alg":"HS256","typ":"at+jwt"}"#, data),
    };
    let token = f.hs.sign_raw(header, payload).expect("sign");
    let Ok(claims) = f.rt.block_on(f.hmac.verify(&token)) else {
        return;
    };
    check_accepted_claims(&claims);
    assert_eq!(claims.algorithm(), bearer_guard::Algorithm::HS256);
    assert!(
        std::str::from_utf8(header).is_ok(),
        "accepted a header that is not UTF-8"
    );
    // Members the verifier skips are not checked in full (e.g. a number out of f64 range), so
    // a full parse may fail; when it works, `alg` and `crit` must be as the verifier saw them.
    if let Ok(header) = serde_json::from_slice::<serde_json::Value>(header) {
        assert_eq!(header["alg"], "HS256");
        assert!(header.get("crit").is_none(), "accepted a crit header");
    }
    let payload: serde_json::Value =
        serde_json::from_slice(payload).expect("an accepted payload is JSON");
    assert_eq!(&payload, claims.as_json(), "the claims are not the payload");
});
