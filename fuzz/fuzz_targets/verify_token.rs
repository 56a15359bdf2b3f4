//! Any bytes as a token, against fixed keys: never a panic, and a token is accepted only if
//! the reference signer produced it (re-signing `header.payload` with the fixed key gives
//! the same signature; RS256, EdDSA and HS256 signatures are deterministic).
#![no_main]

mod common;

use bearer_guard::Algorithm;
use common::{B64, check_accepted_claims, fixture};
use libfuzzer_sys::fuzz_target;

use base64::Engine as _;

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let token = String::from_utf8_lossy(data);
    for verifier in [&f.jwks, &f.hmac] {
        let Ok(claims) = f.rt.block_on(verifier.verify(&token)) else {
            continue;
        };
        check_accepted_claims(&claims);
        let (message, signature) = token.rsplit_once('.').expect("an accepted token has dots");
        let key = match claims.algorithm() {
            Algorithm::RS256 => &f.rs,
            Algorithm::EdDSA => &f.ed,
            Algorithm::HS256 => &f.hs,
            other => panic!("accepted {other}, which no fixed key is bound to"),
        };
        let reference = key
            .sign_bytes(message.as_bytes())
            .expect("reference signature");
        let got = B64
            .decode(signature)
            .expect("an accepted signature is base64url");
        assert_eq!(
            got,
            reference,
            "accepted a {} token the reference signer did not produce",
            claims.algorithm()
        );
    }
});
