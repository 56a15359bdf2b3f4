//! Any bytes as a scope string (`Scopes::parse`) and a scope token (`ScopeToken::new`):
//! never a panic; a parsed set round-trips through `Display`, and each of its tokens is a
//! valid RFC 6749 §3.3 scope token that the set contains.
#![no_main]

use bearer_guard::{ScopeToken, Scopes};
use libfuzzer_sys::fuzz_target;

fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    assert_eq!(ScopeToken::new(&text).is_ok(), is_scope_token(&text));
    match Scopes::parse(&text) {
        Ok(scopes) => {
            let expected: std::collections::BTreeSet<&str> =
                text.split(' ').filter(|t| !t.is_empty()).collect();
            assert_eq!(scopes.len(), expected.len());
            for s in scopes.iter() {
                assert!(is_scope_token(s), "{s:?}");
                assert!(scopes.contains(s));
                assert!(expected.contains(s));
            }
            let again = Scopes::parse(&scopes.to_string()).expect("round trip");
            assert_eq!(again, scopes);
            let _ = format!("{scopes:?}");
        }
        Err(_) => {
            assert!(
                text.split(' ')
                    .filter(|t| !t.is_empty())
                    .any(|t| !is_scope_token(t)),
                "refused a valid scope string {text:?}"
            );
        }
    }
});
