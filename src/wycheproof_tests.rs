//! Conformance test against Google's Wycheproof JSON Web Signature and JSON Web Key vectors
//! (`tests/vectors/wycheproof/`, Apache-2.0, see the LICENSE file there).
//!
//! The vectors' payloads are not claim sets, so the test stops at the signature step. Keys are
//! built the way the crate builds them in production:
//!
//! - public JWKs through [`parse_jwk`] / [`parse_jwk_set`] with an allow-list of every
//!   algorithm the backend supports (ES512 only with `aws-lc-rs`);
//! - `oct` JWKs (HMAC secrets) through [`Key::new`] with [`KeyMaterial::Secret`], since the
//!   crate never takes a symmetric key from a JWK Set (it is configured with
//!   `hmac_secret`). A key set made of `oct` keys only is read as such secrets, one key per
//!   `kid`; a key set holding any other key is a JWK Set and goes through [`parse_jwk_set`]
//!   whole (which drops its `oct` keys).
//!
//! Each compact JWS then goes through the checks of `Verifier::verify` up to the claims, in
//! its order: size; three non-empty segments; strict base64url (`crate::jwks::B64`); a
//! header read as `verify.rs` reads it, with `alg` (a duplicated `alg`/`kid`/`typ`/`crit`
//! refused); `alg` in the allow-list; no `crit` (not even `null`); key lookup
//! by `kid` (or, without a `kid`, by `alg`; a `kid` held by two keys is ambiguous and finds
//! nothing); `alg` equal to the key's bound algorithm; the signature; and the payload's
//! base64url (decoded by the claims step). A vector is accepted only if every check passes.
//!
//! Vectors the crate cannot agree with are not skipped: each is listed in [`DEVIATIONS`]
//! with the outcome the crate gives and why, that outcome is asserted, and
//! [`deviation_evidence`] shows that the vector is defective or that the crate refuses it by
//! a deliberate rule (and not because of a crypto failure). Vectors that need ES512 are
//! listed in [`NEEDS_ES512`] and must be rejected without the `aws-lc-rs` backend.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::algorithm::Algorithm;
use crate::config::{DEFAULT_MAX_KEYS, DEFAULT_MAX_TOKEN_BYTES};
use crate::crypto::{Key, KeyMaterial};
use crate::jwks::{B64, parse_jwk, parse_jwk_set};
use crate::verify::read_header;
use crate::{AuthErrorKind, InvalidTokenReason};

const JWS_FILE: &str = include_str!("../tests/vectors/wycheproof/json_web_signature_test.json");
const JWK_FILE: &str = include_str!("../tests/vectors/wycheproof/json_web_key_test.json");
const JWS_NAME: &str = "json_web_signature_test.json";
const JWK_NAME: &str = "json_web_key_test.json";

/// Whether the active backend verifies ES512 (jsonwebtoken, behind `rust-crypto`, has no
/// ES512; when both features are on, aws-lc-rs is used).
const ES512_SUPPORTED: bool = cfg!(feature = "aws-lc-rs");

/// Why a vector was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Reject {
    /// The key (set) could not be loaded: `parse_jwk`, `parse_jwk_set` or `Key::new` refused it.
    KeyRefused,
    /// Longer than the default maximum token size.
    TooLarge,
    /// Not three non-empty segments, not strict base64url, or a bad header.
    Malformed,
    /// `alg` unknown (`none` included) or outside the allow-list.
    AlgorithmNotAllowed,
    /// A `crit` header member.
    Critical,
    /// No key (or more than one) for the token's `kid` / `alg`.
    UnknownKey,
    /// The header `alg` is not the algorithm the key is bound to.
    KeyAlgorithmMismatch,
    /// The signature does not verify.
    BadSignature,
    /// The payload is not strict base64url (found by the claims step, after the signature).
    BadPayload,
}

type Outcome = Result<(), Reject>;

/// The keys of a group, or why they could not be loaded.
type Keys = Result<Vec<Arc<Key>>, String>;

/// The allow-list: every algorithm the active backend supports.
fn allowed() -> Vec<Algorithm> {
    Algorithm::ALL
        .into_iter()
        .filter(|&a| a != Algorithm::ES512 || ES512_SUPPORTED)
        .collect()
}

/// An `oct` JWK as the crate takes an HMAC secret: `Key::new(.., KeyMaterial::Secret(..))`,
/// bound to the JWK's `alg` (which must be an allowed HMAC algorithm), with the metadata
/// rules `parse_jwk` applies to every key (`use` is `sig`, `key_ops` includes `verify`).
fn secret_key(jwk: &Value, allowed: &[Algorithm]) -> Result<Key, String> {
    let obj = jwk.as_object().ok_or("not a JSON object")?;
    if obj.get("kty").and_then(Value::as_str) != Some("oct") {
        return Err("not an oct key".into());
    }
    if let Some(u) = obj.get("use")
        && u.as_str() != Some("sig")
    {
        return Err(format!("\"use\" is {u}, not \"sig\""));
    }
    if let Some(ops) = obj.get("key_ops") {
        let ops = ops.as_array().ok_or("\"key_ops\" is not an array")?;
        if !ops.iter().any(|o| o.as_str() == Some("verify")) {
            return Err("\"key_ops\" does not include \"verify\"".into());
        }
    }
    let name = obj.get("alg").and_then(Value::as_str).ok_or("no \"alg\"")?;
    let alg = Algorithm::from_jose(name)
        .filter(|a| a.is_symmetric() && allowed.contains(a))
        .ok_or_else(|| format!("{name:?} is not an allowed HMAC algorithm"))?;
    let k = obj.get("k").and_then(Value::as_str).ok_or("no \"k\"")?;
    let secret = B64.decode(k).map_err(|_| "\"k\" is not base64url")?;
    let kid = obj.get("kid").and_then(Value::as_str).map(str::to_owned);
    Key::new(kid, alg, KeyMaterial::Secret(secret)).map_err(str::to_owned)
}

/// The keys of a JSON Web Signature group: its public JWK, else its `oct` secret.
fn jws_group_keys(group: &Value, allowed: &[Algorithm]) -> Keys {
    let key = match group.get("public") {
        Some(public) => parse_jwk(public, allowed)?,
        None => secret_key(&group["private"], allowed)?,
    };
    Ok(vec![Arc::new(key)])
}

/// The keys of a JSON Web Key group: its public key set, else its private one. A set of
/// `oct` keys only is read as HMAC secrets (all must load); any other set is a JWK Set.
fn jwk_group_keys(group: &Value, allowed: &[Algorithm]) -> Keys {
    let set = group.get("public").unwrap_or(&group["private"]);
    let members = set["keys"].as_array().ok_or("no \"keys\" array")?;
    let all_oct = members
        .iter()
        .all(|k| k.get("kty").and_then(Value::as_str) == Some("oct"));
    if all_oct {
        return members
            .iter()
            .map(|k| secret_key(k, allowed).map(Arc::new))
            .collect();
    }
    let parsed = parse_jwk_set(set.to_string().as_bytes(), allowed, DEFAULT_MAX_KEYS)?;
    if parsed.keys.is_empty() {
        return Err(parsed.skipped.join("; "));
    }
    Ok(parsed.keys)
}

/// The key for a token, as the key store finds it: by `kid`, else the only key bound to the
/// token's `alg`. A `kid` held by more than one key is ambiguous and finds nothing (a JWK
/// Set never gets that far: `parse_jwk_set` drops keys sharing a `kid`).
fn lookup<'k>(keys: &'k [Arc<Key>], kid: Option<&str>, alg: Algorithm) -> Option<&'k Key> {
    let mut fits = keys.iter().filter(|k| match kid {
        Some(kid) => k.kid() == Some(kid),
        None => k.alg() == alg,
    });
    match (fits.next(), fits.next()) {
        (Some(k), None) => Some(k),
        _ => None,
    }
}

/// The signature step of `Verifier::verify` for one compact JWS.
fn check(token: &str, keys: &Keys, allowed: &[Algorithm]) -> Outcome {
    // Keys are loaded before any token arrives (configuration or JWKS fetch).
    let keys = keys.as_ref().map_err(|_| Reject::KeyRefused)?;
    if token.len() > DEFAULT_MAX_TOKEN_BYTES {
        return Err(Reject::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Reject::Malformed);
    };
    if h.is_empty() || p.is_empty() || sig.is_empty() {
        return Err(Reject::Malformed);
    }
    let header_bytes = B64.decode(h).map_err(|_| Reject::Malformed)?;
    // The header is read exactly as production reads it.
    let (header, alg) = read_header(&header_bytes, false, allowed).map_err(|e| match e.kind() {
        AuthErrorKind::InvalidToken(InvalidTokenReason::AlgorithmNotAllowed) => {
            Reject::AlgorithmNotAllowed
        }
        AuthErrorKind::InvalidToken(InvalidTokenReason::UnsupportedCritical) => Reject::Critical,
        _ => Reject::Malformed,
    })?;
    let key = lookup(keys, header.kid.as_deref(), alg).ok_or(Reject::UnknownKey)?;
    if key.alg() != alg {
        return Err(Reject::KeyAlgorithmMismatch);
    }
    let signature = B64.decode(sig).map_err(|_| Reject::Malformed)?;
    let message = &token[..h.len() + 1 + p.len()];
    if !key.verify(message.as_bytes(), &signature) {
        return Err(Reject::BadSignature);
    }
    B64.decode(p).map_err(|_| Reject::BadPayload)?;
    Ok(())
}

/// A vector whose expected result the crate does not give, on purpose.
struct Deviation {
    file: &'static str,
    tc_id: u64,
    comment: &'static str,
    /// What the crate does with it (asserted).
    outcome: Outcome,
    why: &'static str,
}

const EMPTY_PAYLOAD: &str = "a valid JWS with an empty payload (RFC 7515 allows one); the crate \
    refuses an empty segment before any key lookup, since an access token's payload is a JSON \
    object, never empty. The signature itself verifies (see deviation_evidence).";
const FIGURE20: &str = "RFC 7520 Figure 20 is PS384, but the group's JWK says \"alg\": \"PS256\"; \
    the crate binds a key to its JWK alg (RFC 8725 §3.1), as this file's own WrongPrimitive \
    vectors (tcId 331-340) require. With \"alg\": \"PS384\" the JWS verifies.";
const FIGURE27: &str = "the group's JWK says \"alg\": \"ES521\", which is no JOSE algorithm; the \
    crate refuses a key with an unknown alg rather than guess (the key file's tcId 19 expects \
    the same refusal). With \"alg\": \"ES512\" the JWS verifies (aws-lc-rs backend).";
const SAME_AS_357: &str = "defective upstream: this JWS is byte for byte tcId 357 (ValidMac, \
    valid) with the same key; the padding it is named after is missing. It is accepted.";
const QUESTION_MARK: &str = "defective upstream: a '?' inserted into a segment of tcId 357; \
    RFC 7515 §2 base64url has no '?', and the signing input (the segments as received) is \
    no longer the one that was MACed. Strict base64url refuses the header; with the '?' in the \
    payload, the signature check (which comes before the payload is decoded) fails first.";

/// Every vector the crate disagrees with, with the outcome it gives.
const DEVIATIONS: &[Deviation] = &[
    Deviation {
        file: JWS_NAME,
        tc_id: 259,
        comment: "emptyPayload",
        outcome: Err(Reject::Malformed),
        why: EMPTY_PAYLOAD,
    },
    Deviation {
        file: JWS_NAME,
        tc_id: 264,
        comment: "emptyPayload",
        outcome: Err(Reject::Malformed),
        why: EMPTY_PAYLOAD,
    },
    Deviation {
        file: JWS_NAME,
        tc_id: 268,
        comment: "emptyPayload",
        outcome: Err(Reject::Malformed),
        why: EMPTY_PAYLOAD,
    },
    Deviation {
        file: JWS_NAME,
        tc_id: 272,
        comment: "emptyPayload",
        outcome: Err(Reject::Malformed),
        why: EMPTY_PAYLOAD,
    },
    Deviation {
        file: JWS_NAME,
        tc_id: 320,
        comment: "emptyPayload",
        outcome: Err(Reject::Malformed),
        why: EMPTY_PAYLOAD,
    },
    Deviation {
        file: JWS_NAME,
        tc_id: 325,
        comment: "emptyPayload",
        outcome: Err(Reject::Malformed),
        why: EMPTY_PAYLOAD,
    },
    Deviation {
        file: JWS_NAME,
        tc_id: 346,
        comment: "Figure20",
        outcome: Err(Reject::KeyAlgorithmMismatch),
        why: FIGURE20,
    },
    Deviation {
        file: JWS_NAME,
        tc_id: 350,
        comment: "Figure20",
        outcome: Err(Reject::KeyAlgorithmMismatch),
        why: FIGURE20,
    },
    Deviation {
        file: JWS_NAME,
        tc_id: 347,
        comment: "Figure27",
        outcome: Err(Reject::KeyRefused),
        why: FIGURE27,
    },
    Deviation {
        file: JWS_NAME,
        tc_id: 351,
        comment: "Figure27",
        outcome: Err(Reject::KeyRefused),
        why: FIGURE27,
    },
    Deviation {
        file: JWS_NAME,
        tc_id: 367,
        comment: "invalidBase64Padding",
        outcome: Ok(()),
        why: SAME_AS_357,
    },
    Deviation {
        file: JWS_NAME,
        tc_id: 370,
        comment: "invalidBase64PaddingInPayload",
        outcome: Ok(()),
        why: SAME_AS_357,
    },
    Deviation {
        file: JWS_NAME,
        tc_id: 372,
        comment: "InvalidCharacterInsertedInHeader",
        outcome: Err(Reject::Malformed),
        why: QUESTION_MARK,
    },
    Deviation {
        file: JWS_NAME,
        tc_id: 373,
        comment: "InvalidCharacterInsertedInPayload",
        outcome: Err(Reject::BadSignature),
        why: QUESTION_MARK,
    },
];

/// Vectors that need ES512 (P-521): rejected without the aws-lc-rs backend.
const NEEDS_ES512: &[(u64, &str)] = &[(347, "Figure27"), (351, "Figure27")];

/// One vector, flattened.
struct Case<'a> {
    file: &'static str,
    group: &'a Value,
    group_index: usize,
    tc_id: u64,
    comment: &'a str,
    result: &'a str,
    jws: &'a str,
}

fn cases<'a>(file: &'static str, doc: &'a Value) -> Vec<Case<'a>> {
    let mut out = Vec::new();
    for (group_index, group) in doc["testGroups"]
        .as_array()
        .expect("testGroups")
        .iter()
        .enumerate()
    {
        for t in group["tests"].as_array().expect("tests") {
            out.push(Case {
                file,
                group,
                group_index,
                tc_id: t["tcId"].as_u64().expect("tcId"),
                comment: t["comment"].as_str().expect("comment"),
                result: t["result"].as_str().expect("result"),
                jws: t["jws"].as_str().expect("jws"),
            });
        }
    }
    out
}

fn find<'c, 'a>(cases: &'c [Case<'a>], file: &str, tc_id: u64) -> &'c Case<'a> {
    cases
        .iter()
        .find(|c| c.file == file && c.tc_id == tc_id)
        .unwrap_or_else(|| panic!("{file} has no tcId {tc_id}"))
}

/// Whether a vector needs ES512: its header says so or its key is on P-521.
fn needs_es512(case: &Case<'_>) -> bool {
    let header_alg = case
        .jws
        .split('.')
        .next()
        .and_then(|h| B64.decode(h).ok())
        .and_then(|h| serde_json::from_slice::<Value>(&h).ok())
        .and_then(|h| h.get("alg").and_then(Value::as_str).map(str::to_owned));
    header_alg.as_deref() == Some("ES512") || case.group.to_string().contains("\"P-521\"")
}

/// Shows that each deviation is a defective vector or a deliberate rule of the crate, not a
/// failing signature check. Returns a description of what did not hold.
fn deviation_evidence(
    cases: &[Case<'_>],
    d: &Deviation,
    allowed: &[Algorithm],
) -> Result<(), String> {
    let case = find(cases, d.file, d.tc_id);
    let keys = jws_group_keys(case.group, allowed);
    match d.why {
        EMPTY_PAYLOAD => {
            let (message, sig) = case.jws.rsplit_once('.').ok_or("no signature")?;
            if !message.ends_with('.') {
                return Err("the payload is not empty".into());
            }
            let key = keys.map_err(|e| format!("key refused: {e}"))?;
            let sig = B64
                .decode(sig)
                .map_err(|_| "the signature is not base64url")?;
            if !key[0].verify(message.as_bytes(), &sig) {
                return Err("the signature does not verify".into());
            }
            Ok(())
        }
        FIGURE20 | FIGURE27 => {
            let fixed = if d.why == FIGURE20 { "PS384" } else { "ES512" };
            let mut group = case.group.clone();
            group["public"]["alg"] = json!(fixed);
            let keys = jws_group_keys(&group, allowed);
            let outcome = check(case.jws, &keys, allowed);
            match (fixed, ES512_SUPPORTED) {
                ("ES512", false) if outcome == Err(Reject::KeyRefused) => Ok(()),
                (_, _) if outcome.is_ok() => Ok(()),
                _ => Err(format!(
                    "with \"alg\": {fixed:?} the outcome is {outcome:?}"
                )),
            }
        }
        SAME_AS_357 => {
            if case.jws == find(cases, JWS_NAME, 357).jws {
                Ok(())
            } else {
                Err("the JWS is not that of tcId 357".into())
            }
        }
        QUESTION_MARK => {
            let original = find(cases, JWS_NAME, 357).jws;
            if case.jws.replacen('?', "", 1) == original {
                Ok(())
            } else {
                Err("the JWS is not tcId 357 with one '?' inserted".into())
            }
        }
        _ => Err("no evidence for this deviation".into()),
    }
}

#[derive(Default)]
struct Tally {
    valid: usize,
    invalid: usize,
    acceptable: usize,
    acceptable_accepted: usize,
    unsupported: usize,
    deviations: usize,
    reasons: BTreeMap<Reject, usize>,
}

#[test]
fn wycheproof_jws_and_jwk_vectors() {
    let allowed = allowed();
    let jws_doc: Value = serde_json::from_str(JWS_FILE).expect("JWS vectors");
    let jwk_doc: Value = serde_json::from_str(JWK_FILE).expect("JWK vectors");
    let mut all = cases(JWS_NAME, &jws_doc);
    all.extend(cases(JWK_NAME, &jwk_doc));

    let failures = std::cell::RefCell::new(Vec::<String>::new());
    let fail = |case: &Case<'_>, what: String| {
        failures.borrow_mut().push(format!(
            "{} tcId {} ({}): {what}",
            case.file, case.tc_id, case.comment
        ));
    };
    let fail_group = |what: String| failures.borrow_mut().push(what);

    // The files are the ones the lists below were written for.
    for (doc, name, n) in [(&jws_doc, JWS_NAME, 401), (&jwk_doc, JWK_NAME, 26)] {
        let count = all.iter().filter(|c| c.file == name).count();
        assert_eq!(count, n, "{name}: {count} vectors");
        assert_eq!(doc["numberOfTests"].as_u64(), Some(n as u64), "{name}");
    }
    for d in DEVIATIONS {
        let case = find(&all, d.file, d.tc_id);
        assert_eq!(case.comment, d.comment, "{} tcId {}", d.file, d.tc_id);
        if let Err(e) = deviation_evidence(&all, d, &allowed) {
            fail(case, format!("listed deviation without evidence: {e}"));
        }
    }
    for case in all
        .iter()
        .filter(|c| c.result == "valid" && c.jws.contains(".."))
    {
        let listed = DEVIATIONS
            .iter()
            .any(|d| d.file == case.file && d.tc_id == case.tc_id && d.why == EMPTY_PAYLOAD);
        if !listed {
            fail(
                case,
                "valid with an empty payload, but not listed in DEVIATIONS".into(),
            );
        }
    }
    for &(tc_id, comment) in NEEDS_ES512 {
        assert_eq!(find(&all, JWS_NAME, tc_id).comment, comment, "tcId {tc_id}");
    }
    for case in all.iter().filter(|c| needs_es512(c)) {
        if !NEEDS_ES512.contains(&(case.tc_id, case.comment)) || case.file != JWS_NAME {
            fail(case, "needs ES512 but is not listed in NEEDS_ES512".into());
        }
    }

    // Private key material is never taken from a JWK (Set).
    for (name, doc) in [(JWS_NAME, &jws_doc), (JWK_NAME, &jwk_doc)] {
        for group in doc["testGroups"].as_array().expect("groups") {
            let private = &group["private"];
            let members = match private.get("keys").and_then(Value::as_array) {
                Some(keys) => keys.clone(),
                None => vec![private.clone()],
            };
            for jwk in members.iter().filter(|k| k.get("d").is_some()) {
                let set = json!({ "keys": [jwk] }).to_string();
                let parsed = parse_jwk_set(set.as_bytes(), &allowed, DEFAULT_MAX_KEYS);
                if parse_jwk(jwk, &allowed).is_ok() || parsed.is_ok_and(|p| !p.keys.is_empty()) {
                    fail_group(format!(
                        "{name} group {:?}: a private JWK was accepted",
                        group["comment"]
                    ));
                }
            }
        }
    }

    let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut key_cache: BTreeMap<(&str, usize), Keys> = BTreeMap::new();
    for case in &all {
        let keys = key_cache
            .entry((case.file, case.group_index))
            .or_insert_with(|| {
                if case.file == JWS_NAME {
                    jws_group_keys(case.group, &allowed)
                } else {
                    jwk_group_keys(case.group, &allowed)
                }
            });
        let outcome = check(case.jws, keys, &allowed);
        let tally = tallies.entry(case.file).or_default();
        if let Err(r) = outcome {
            *tally.reasons.entry(r).or_default() += 1;
        }

        let unsupported = !ES512_SUPPORTED && NEEDS_ES512.contains(&(case.tc_id, case.comment));
        let deviation = DEVIATIONS
            .iter()
            .find(|d| d.file == case.file && d.tc_id == case.tc_id);
        if unsupported {
            tally.unsupported += 1;
            if outcome.is_ok() {
                fail(
                    case,
                    "needs ES512, unsupported by this backend, yet accepted".into(),
                );
            }
        } else if let Some(d) = deviation {
            tally.deviations += 1;
            if outcome != d.outcome {
                fail(
                    case,
                    format!(
                        "listed deviation: expected {:?}, got {outcome:?} ({})",
                        d.outcome, d.why
                    ),
                );
            }
        } else {
            match case.result {
                "valid" => {
                    tally.valid += 1;
                    if let Err(r) = outcome {
                        fail(case, format!("valid, but rejected: {r:?}"));
                    }
                }
                "invalid" => {
                    tally.invalid += 1;
                    if outcome.is_ok() {
                        fail(case, "invalid, but accepted".into());
                    }
                    // The key file tests key (set) validation: its invalid vectors must be
                    // refused for the key, except the one with a modified signature.
                    let sig_case = case.comment == "rejectsModifiedSignature";
                    let right_step = if sig_case {
                        outcome == Err(Reject::BadSignature)
                    } else {
                        matches!(outcome, Err(Reject::KeyRefused | Reject::UnknownKey))
                    };
                    if case.file == JWK_NAME && outcome.is_err() && !right_step {
                        fail(case, format!("rejected at the wrong step: {outcome:?}"));
                    }
                }
                "acceptable" => {
                    tally.acceptable += 1;
                    tally.acceptable_accepted += usize::from(outcome.is_ok());
                }
                other => fail(case, format!("unknown result {other:?}")),
            }
        }
    }

    let mut summary = String::new();
    let backend = if cfg!(feature = "aws-lc-rs") {
        "aws-lc-rs"
    } else {
        "rust-crypto"
    };
    let _ = writeln!(
        summary,
        "Wycheproof JWS/JWK conformance ({backend} backend):"
    );
    for (file, t) in &tallies {
        let _ = writeln!(
            summary,
            "  {file}: {} valid (must be accepted), {} invalid (must be rejected), \
             {} acceptable ({} accepted), {} unsupported by the backend (rejected), \
             {} listed deviations",
            t.valid, t.invalid, t.acceptable, t.acceptable_accepted, t.unsupported, t.deviations
        );
        let _ = writeln!(summary, "    rejections by step: {:?}", t.reasons);
    }
    for d in DEVIATIONS {
        if ES512_SUPPORTED || !NEEDS_ES512.contains(&(d.tc_id, d.comment)) {
            let _ = writeln!(
                summary,
                "  deviation {} tcId {} ({}): {:?}",
                d.file, d.tc_id, d.comment, d.outcome
            );
        }
    }
    let _ = writeln!(summary, "  {JWK_NAME} key sets refused:");
    for ((file, index), keys) in &key_cache {
        if let (true, Err(reason)) = (*file == JWK_NAME, keys) {
            let group = &jwk_doc["testGroups"][*index];
            let _ = writeln!(summary, "    {}: {reason}", group["comment"]);
        }
    }
    println!("{summary}");
    let failures = failures.into_inner();
    assert!(
        failures.is_empty(),
        "{} Wycheproof vector(s) did not give the expected result:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

/// The checks no vector exercises: a duplicated header member, `crit`, and a `kid` shared by
/// two usable keys (the key file's DuplicateKid set is refused earlier, for a second key whose
/// `k` is not canonical base64url).
#[test]
fn wycheproof_harness_refuses_duplicates_and_crit() {
    let allowed = allowed();
    let secret = |kid: &str, byte: u8| {
        Key::new(
            Some(kid.into()),
            Algorithm::HS256,
            KeyMaterial::Secret(vec![byte; 32]),
        )
        .map(Arc::new)
        .map_err(str::to_owned)
    };
    let keys = secret("k", 7).map(|k| vec![k]);
    let token = |header: &str| format!("{}.Zm9v.AAAA", B64.encode(header));
    assert_eq!(
        check(&token(r#"{"alg":"HS256","alg":"HS256"}"#), &keys, &allowed),
        Err(Reject::Malformed)
    );
    assert_eq!(
        check(
            &token(r#"{"alg":"HS256","kid":"k","kid":"k"}"#),
            &keys,
            &allowed
        ),
        Err(Reject::Malformed)
    );
    assert_eq!(
        check(&token(r#"{"alg":"HS256","crit":["exp"]}"#), &keys, &allowed),
        Err(Reject::Critical)
    );
    assert_eq!(
        check(&token(r#"{"alg":"HS256","crit":null}"#), &keys, &allowed),
        Err(Reject::Critical)
    );
    assert_eq!(
        check(&token(r#"{"alg":"HS256","kid":"k"}"#), &keys, &allowed),
        Err(Reject::BadSignature)
    );

    // Two secrets under one kid: ambiguous, no key is used.
    let both: Keys = [secret("k", 7), secret("k", 8)].into_iter().collect();
    assert_eq!(
        check(&token(r#"{"alg":"HS256","kid":"k"}"#), &both, &allowed),
        Err(Reject::UnknownKey)
    );

    // Two public keys of one type under one kid in a JWK Set: parse_jwk_set drops both.
    // Keys of different types may share a kid (RFC 7517 §4.5): both are kept.
    let doc: Value = serde_json::from_str(JWS_FILE).expect("JWS vectors");
    let groups = doc["testGroups"].as_array().expect("groups");
    let public = |comment: &str| {
        let mut jwk = groups
            .iter()
            .find(|g| g["comment"] == comment && g.get("public").is_some())
            .expect("group")["public"]
            .clone();
        jwk["kid"] = json!("dup");
        jwk
    };
    let set = json!({ "keys": [public("es256"), public("es256")] }).to_string();
    let parsed = parse_jwk_set(set.as_bytes(), &allowed, DEFAULT_MAX_KEYS).expect("a set");
    assert!(parsed.keys.is_empty(), "{:?}", parsed.skipped);
    let set = json!({ "keys": [public("es256"), public("rs256")] }).to_string();
    let parsed = parse_jwk_set(set.as_bytes(), &allowed, DEFAULT_MAX_KEYS).expect("a set");
    assert_eq!(parsed.keys.len(), 2, "{:?}", parsed.skipped);
    let set = json!({ "keys": [public("es256")] }).to_string();
    let parsed = parse_jwk_set(set.as_bytes(), &allowed, DEFAULT_MAX_KEYS).expect("a set");
    assert_eq!(parsed.keys.len(), 1, "{:?}", parsed.skipped);
}
