//! The attack suite: hostile tokens and `Authorization` headers sent to a running API over
//! real sockets. Each gets the documented answer (400, 401, 403 or 503), never a panic, a
//! 500 or a hang; nothing is ever fetched from a URL a token names.
#![cfg(all(
    feature = "dev-issuer",
    feature = "axum",
    any(feature = "aws-lc-rs", feature = "rust-crypto")
))]

mod support_hostile;

use std::time::{Duration, Instant};

use bearer_guard::{Algorithm, InvalidTokenReason, Verifier};
use serde_json::json;
use support_hostile::cases::{Case, Expect, attack_cases, run_case};
use support_hostile::{
    App, Issuer, Keys, Mode, call, claims, client, pem, rsa_public_der, serve_app, sign,
};
use tokio::task::JoinSet;

struct Suite {
    keys: Keys,
    issuer: Issuer,
    attacker: Issuer,
    verifier: Verifier,
    app: App,
}

/// The issuer publishes the suite's keys; the attacker's server publishes the attacker's.
async fn suite() -> Suite {
    let keys = Keys::new();
    let issuer = Issuer::start(Mode::Jwks(keys.published())).await;
    let attacker = Issuer::start(Mode::Jwks(bearer_guard::dev_issuer::jwk_set([
        &keys.attacker,
        &keys.attacker_ec,
    ])))
    .await;
    let verifier = Verifier::builder()
        .issuer(support_hostile::ISS)
        .audience(support_hostile::AUD)
        .jwks_uri(issuer.url())
        .fetch_timeout(Duration::from_secs(3))
        .build()
        .expect("verifier");
    verifier.refresh_keys().await.expect("initial keys");
    let app = serve_app(verifier.clone()).await;
    Suite {
        keys,
        issuer,
        attacker,
        verifier,
        app,
    }
}

fn cases(s: &Suite) -> Vec<Case> {
    attack_cases(&s.keys, &s.attacker.url(), &s.issuer.base_url())
}

/// Nothing was fetched from the attacker, and only the configured JWKS URL from the issuer.
fn assert_nothing_fetched_from_tokens(s: &Suite, started: Instant) {
    assert_eq!(s.attacker.hits(), 0, "the attacker's server was contacted");
    let paths = s.issuer.paths();
    assert!(
        paths.iter().all(|p| p == "/jwks"),
        "the issuer saw requests for other paths: {paths:?}"
    );
    // One initial fetch, the unknown-kid burst (2), one more per cooldown (30 s).
    let allowed = 3 + started.elapsed().as_secs() / 30 + 1;
    assert!(
        s.verifier.jwks_fetches() <= allowed,
        "{} JWKS fetches (at most {allowed} expected)",
        s.verifier.jwks_fetches()
    );
}

#[tokio::test]
async fn every_attack_gets_the_documented_answer() {
    let started = Instant::now();
    let s = suite().await;
    let cases = cases(&s);
    assert!(cases.len() > 300, "{} cases", cases.len());
    let http = client();
    let mut failures = Vec::new();
    for case in &cases {
        let t = Instant::now();
        if let Err(e) = run_case(&http, &s.app, case).await {
            failures.push(e);
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "case {:?} took {:?}",
            case.name,
            t.elapsed()
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_nothing_fetched_from_tokens(&s, started);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_attacks_sent_all_at_once_get_the_same_answers() {
    let started = Instant::now();
    let s = suite().await;
    let cases = cases(&s);
    let http = client();
    let mut set = JoinSet::new();
    let app = std::sync::Arc::new(s.app);
    for case in cases {
        let http = http.clone();
        let app = app.clone();
        set.spawn(async move { run_case(&http, &app, &case).await });
    }
    let mut failures = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Err(e) = r.expect("no panic") {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(s.attacker.hits(), 0, "the attacker's server was contacted");
    assert!(s.issuer.paths().iter().all(|p| p == "/jwks"));
    assert!(s.verifier.jwks_fetches() <= 3 + started.elapsed().as_secs() / 30 + 1);
}

#[tokio::test]
async fn a_flood_of_random_kids_costs_a_bounded_number_of_fetches() {
    let s = suite().await;
    let http = client();
    let before = s.issuer.hits();
    for i in 0..300 {
        let token = sign(
            &bearer_guard::dev_issuer::SigningKey::from_pool(Algorithm::EdDSA, 0, format!("r{i}"))
                .expect("pool key"),
            &claims(&json!({})),
        );
        let a = call(&http, &s.app.base, "/me", &[&format!("Bearer {token}")]).await;
        assert_eq!(
            (a.status, a.description().as_deref()),
            (401, Some(InvalidTokenReason::UnknownKey.description())),
            "kid r{i}"
        );
    }
    // The burst of 2, and perhaps one more if the cooldown passed.
    let fetched = s.issuer.hits() - before;
    assert!(fetched <= 3, "{fetched} fetches for 300 unknown kids");
}

#[tokio::test]
async fn hmac_with_the_pem_key_as_secret_fails_against_a_pem_configured_verifier() {
    let keys = Keys::new();
    let (_, spki) = rsa_public_der(&keys.rs.public_jwk());
    let spki_pem = pem("PUBLIC KEY", &spki);
    let verifier = Verifier::builder()
        .issuer(support_hostile::ISS)
        .audience(support_hostile::AUD)
        .pem_key(Algorithm::RS256, &spki_pem)
        .build()
        .expect("verifier");
    let app = serve_app(verifier).await;
    let http = client();
    let c = claims(&json!({}));
    // The PEM key itself verifies a real token...
    let a = call(
        &http,
        &app.base,
        "/me",
        &[&format!("Bearer {}", sign(&keys.rs, &c))],
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    // ...and never serves as an HMAC secret.
    for secret in [spki_pem.as_bytes(), spki_pem.trim_end().as_bytes(), &spki] {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let hk = bearer_guard::dev_issuer::SigningKey::hmac(alg, secret, "x").expect("hmac");
            for token in [
                sign(&hk, &c),
                hk.sign_raw(
                    json!({"alg": alg.as_str()}).to_string().as_bytes(),
                    c.to_string().as_bytes(),
                )
                .expect("sign"),
            ] {
                let a = call(&http, &app.base, "/me", &[&format!("Bearer {token}")]).await;
                assert_eq!(
                    (a.status, a.description().as_deref()),
                    (
                        401,
                        Some(InvalidTokenReason::AlgorithmNotAllowed.description())
                    ),
                    "{alg} with the PEM as secret"
                );
            }
        }
    }
}

#[tokio::test]
async fn with_no_keys_a_well_formed_token_gets_503_and_a_malformed_one_401() {
    // A JWKS URL on a port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/jwks", closed.local_addr().expect("address"));
    drop(closed);
    let verifier = Verifier::builder()
        .issuer(support_hostile::ISS)
        .audience(support_hostile::AUD)
        .jwks_uri(url)
        .fetch_timeout(Duration::from_millis(500))
        .build()
        .expect("verifier");
    let app = serve_app(verifier.clone()).await;
    let http = client();
    let keys = Keys::new();
    let good = sign(&keys.rs, &claims(&json!({})));
    let a = call(&http, &app.base, "/me", &[&format!("Bearer {good}")]).await;
    assert_eq!(a.status, 503, "{a:?}");
    assert!(a.retry_after.is_some());
    assert!(a.challenge.is_none());
    // Checks that need no key come first: no fetch, and the client's fault is a 401.
    let fetches = verifier.jwks_fetches();
    for (name, token) in [
        (
            "alg none",
            format!("{}.", good.rsplit_once('.').expect("jwt").0),
        ),
        ("not a JWT", "abc".to_owned()),
        (
            "crit",
            keys.rs
                .sign_raw(br#"{"alg":"RS256","crit":["x"]}"#, b"{}")
                .expect("sign"),
        ),
    ] {
        let a = call(&http, &app.base, "/me", &[&format!("Bearer {token}")]).await;
        assert_eq!(a.status, 401, "{name}: {a:?}");
    }
    assert_eq!(verifier.jwks_fetches(), fetches);
    // The answer for the request's own faults does not depend on the keys.
    let a = call(
        &http,
        &app.base,
        "/me",
        &[&format!("Bearer {good}"), "Bearer x"],
    )
    .await;
    assert_eq!(a.status, 400);
}

#[test]
fn the_table_names_each_case_once() {
    let keys = Keys::new();
    let cases = attack_cases(&keys, "http://127.0.0.1:1/jwks", "http://127.0.0.1:2");
    let mut names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(names.len(), before, "case names must be unique");
    assert!(cases.iter().any(|c| c.expect == Expect::Accepted));
}
