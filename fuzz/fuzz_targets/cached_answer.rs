//! An introspection answer read back from a shared store (`CachedAnswer::from_bytes`):
//! what a Redis entry holds, planted or edited by anyone who can write to that Redis when
//! the fleet secret is not set. Any bytes: never a panic; a store entry is a miss (`None`)
//! or an answer that writes back to the same bytes, active exactly when it says so, with
//! claims that every accessor reads without panicking.
#![no_main]

use bearer_guard::introspection::CachedAnswer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(answer) = CachedAnswer::from_bytes(data) else {
        return;
    };
    assert_eq!(
        answer.to_bytes(),
        data,
        "an answer must write back to its bytes"
    );
    assert_eq!(answer.is_active(), data.first() == Some(&b'A'));
    let Some(claims) = answer.claims() else {
        assert!(!answer.is_active());
        return;
    };
    assert!(answer.is_active());
    assert!(claims.is_introspected());
    assert!(claims.as_json().is_object());
    for s in claims.scopes().iter() {
        assert!(
            bearer_guard::ScopeToken::new(s).is_ok(),
            "invalid scope token {s:?}"
        );
    }
    let _ = (
        claims.issuer(),
        claims.subject(),
        claims.audience(),
        claims.expires_at(),
        claims.expiry(),
        claims.not_before(),
        claims.issued_at(),
        claims.jwt_id(),
        claims.client_id(),
        claims.confirmation_jkt(),
        claims.confirmation_x5t_s256(),
        claims.get("cnf"),
        claims.deserialize::<serde_json::Value>(),
    );
});
