//! A hostile or broken issuer: a JWKS server that answers errors, HTML, truncated JSON,
//! unusable keys, 10,000 keys, 50 MB, a trickle, redirects elsewhere or in a loop, or nothing
//! at all, and that goes down and comes back with rotated keys. Each time: bounded time and
//! memory, the last good keys kept, a WARN line saying why, and recovery when it comes back.
#![cfg(all(
    feature = "dev-issuer",
    feature = "axum",
    any(feature = "aws-lc-rs", feature = "rust-crypto")
))]

mod support_hostile;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bearer_guard::dev_issuer::{SigningKey, jwk_set};
use bearer_guard::{
    Algorithm, AuthErrorKind, InvalidTokenReason, KeyHealth, Verifier, VerifierBuilder,
};
use serde_json::{Value, json};
use support_hostile::{AUD, ISS, Issuer, LogCapture, Mode, call, claims, client, serve_app, sign};

const FETCH_TIMEOUT: Duration = Duration::from_millis(800);
const MAX_BACKOFF: Duration = Duration::from_millis(400);

/// Short durations: a fetch gives up after 800 ms, retries after 100 ms doubling to 400 ms;
/// the key set lives a minute (no refresh but the ones the test causes).
fn builder(url: &str) -> VerifierBuilder {
    Verifier::builder()
        .issuer(ISS)
        .audience(AUD)
        .jwks_uri(url)
        .fetch_timeout(FETCH_TIMEOUT)
        .jwks_ttl(
            Duration::from_secs(60),
            Duration::from_secs(60),
            Duration::from_secs(60),
        )
        .fetch_backoff(Duration::from_millis(100), MAX_BACKOFF)
        .unknown_kid_refresh(10, Duration::from_millis(50))
}

fn key(i: usize, kid: &str) -> SigningKey {
    SigningKey::from_pool(Algorithm::RS256, i, kid).expect("pool key")
}

fn token(k: &SigningKey) -> String {
    sign(k, &claims(&json!({})))
}

/// Polls `f` every 50 ms until it holds, for at most `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if f().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn reason_of(e: &bearer_guard::AuthError) -> Option<InvalidTokenReason> {
    match e.kind() {
        AuthErrorKind::InvalidToken(r) => Some(r),
        _ => None,
    }
}

/// The issuer starts healthy, then misbehaves as `mode`: the refresh fails within the fetch
/// timeout with a WARN containing `reason`, the last good keys keep working (also through
/// the API), a token of a key not yet seen gets 503; then the issuer comes back with rotated
/// keys and they are picked up by themselves.
async fn scenario(mode: Mode, reason: &str) -> (Issuer, LogCapture) {
    let log = LogCapture::start();
    let old_key = key(0, "old");
    let new_key = key(1, "new");
    let issuer = Issuer::start(Mode::Jwks(jwk_set([&old_key]))).await;
    let verifier = builder(&issuer.url()).build().expect("verifier");
    verifier
        .refresh_keys()
        .await
        .expect("the first fetch works");
    let app = serve_app(verifier.clone()).await;
    let http = client();
    let old = token(&old_key);
    verifier.verify(&old).await.expect("a valid token");

    issuer.set(mode);
    let started = Instant::now();
    let refreshed = verifier.refresh_keys().await;
    let took = started.elapsed();
    assert!(refreshed.is_err(), "the refresh failed");
    assert!(
        took < FETCH_TIMEOUT + Duration::from_millis(700),
        "the failing refresh took {took:?}"
    );
    let warnings = log.warnings();
    assert!(
        warnings.iter().any(|w| w.contains(reason)),
        "no WARN line saying {reason:?}: {warnings:#?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("keeping the last good keys")),
        "{warnings:#?}"
    );
    assert!(matches!(
        verifier.key_health(),
        KeyHealth::Stale { keys: 1, .. }
    ));

    // The last good keys: the verified token, a new token of the same key, over HTTP too.
    verifier
        .verify(&old)
        .await
        .expect("the cached token still passes");
    let fresh = sign(&old_key, &claims(&json!({"jti": "fresh"})));
    verifier
        .verify(&fresh)
        .await
        .expect("the last good keys are kept");
    let a = call(&http, &app.base, "/me", &[&format!("Bearer {fresh}")]).await;
    assert_eq!(a.status, 200, "{a:?}");
    // A key the verifier has not seen: the issuer is failing, so 503, not 401.
    let rotated = token(&new_key);
    let err = verifier.verify(&rotated).await.expect_err("unknown key");
    assert_eq!(err.kind(), AuthErrorKind::KeysUnavailable, "{err:?}");
    let a = call(&http, &app.base, "/me", &[&format!("Bearer {rotated}")]).await;
    assert_eq!(a.status, 503, "{a:?}");
    assert!(a.retry_after.is_some());

    // The issuer comes back, rotated: the new key is picked up without a request's help
    // (the background retry) and the old one is dropped.
    issuer.set(Mode::Jwks(jwk_set([&new_key])));
    eventually(
        MAX_BACKOFF + FETCH_TIMEOUT + Duration::from_secs(2),
        "recovery",
        || {
            let v = verifier.clone();
            async move { matches!(v.key_health(), KeyHealth::Fresh { .. }) }
        },
    )
    .await;
    verifier
        .verify(&rotated)
        .await
        .expect("the rotated key is picked up");
    let a = call(&http, &app.base, "/me", &[&format!("Bearer {rotated}")]).await;
    assert_eq!(a.status, 200, "{a:?}");
    let err = verifier
        .verify(&old)
        .await
        .expect_err("the old key is gone");
    assert_eq!(reason_of(&err), Some(InvalidTokenReason::UnknownKey));
    (issuer, log)
}

fn doc_of(keys: &[&SigningKey]) -> Value {
    jwk_set(keys.iter().copied())
}

#[tokio::test]
async fn http_500() {
    scenario(Mode::Status(500), "HTTP 500").await;
}

#[tokio::test]
async fn http_404() {
    scenario(Mode::Status(404), "HTTP 404").await;
}

#[tokio::test]
async fn an_html_page() {
    scenario(Mode::Html, "the JWK Set is not valid JSON").await;
}

#[tokio::test]
async fn truncated_json() {
    let doc = doc_of(&[&key(0, "old")]);
    scenario(Mode::Truncated(doc), "the JWK Set is not valid JSON").await;
}

#[tokio::test]
async fn json_that_is_not_a_jwk_set() {
    scenario(
        Mode::Raw(br#"[{"keys": []}]"#.to_vec()),
        r#"the JWK Set has no "keys" array"#,
    )
    .await;
}

#[tokio::test]
async fn only_keys_of_unknown_kty_replace_the_keys_loudly() {
    let log = LogCapture::start();
    let old_key = key(0, "old");
    let new_key = key(1, "new");
    let issuer = Issuer::start(Mode::Jwks(jwk_set([&old_key]))).await;
    let verifier = builder(&issuer.url()).build().expect("verifier");
    verifier
        .refresh_keys()
        .await
        .expect("the first fetch works");
    let old = token(&old_key);
    verifier.verify(&old).await.expect("a valid token");

    // A well-formed set without a usable key is the issuer's answer: the old key is gone.
    issuer.set(Mode::Jwks(json!({"keys": [
        {"kty": "XYZ", "kid": "a", "n": "AQAB"},
        {"kty": "oct", "kid": "b", "k": "c2VjcmV0"},
        {"kty": "RSA", "kid": "c"},
    ]})));
    let err = verifier.refresh_keys().await.expect_err("no usable key");
    assert!(err.to_string().contains("no usable key"), "{err}");
    let text = log.text();
    assert!(text.contains(r#"unsupported "kty" "XYZ""#), "{text}");
    assert!(text.contains("symmetric keys are never taken"), "{text}");
    let errors = log.errors();
    assert!(
        errors.iter().any(|e| e.contains("no usable key")),
        "no ERROR line: {errors:#?}"
    );
    assert_eq!(verifier.key_health(), KeyHealth::Fresh { keys: 0 });
    let err = verifier
        .verify(&old)
        .await
        .expect_err("the old key is gone");
    assert_eq!(reason_of(&err), Some(InvalidTokenReason::UnknownKey));

    issuer.set(Mode::Jwks(jwk_set([&new_key])));
    verifier.refresh_keys().await.expect("a usable key again");
    verifier
        .verify(&token(&new_key))
        .await
        .expect("the new key verifies");
}

#[tokio::test]
async fn a_50_mb_body_with_content_length_is_refused_unread() {
    let (issuer, _) = scenario(
        Mode::Huge {
            bytes: 50 << 20,
            content_length: true,
        },
        "larger than the 524288-byte limit",
    )
    .await;
    assert!(
        issuer.streamed() < 20 << 20,
        "{} bytes were produced",
        issuer.streamed()
    );
}

#[tokio::test]
async fn a_50_mb_streamed_body_is_cut_at_the_limit() {
    let (issuer, _) = scenario(
        Mode::Huge {
            bytes: 50 << 20,
            content_length: false,
        },
        "larger than the 524288-byte limit",
    )
    .await;
    // The client stopped reading at 512 KiB; what the server produced beyond that sat in
    // socket buffers.
    assert!(
        issuer.streamed() < 20 << 20,
        "{} bytes were produced",
        issuer.streamed()
    );
}

#[tokio::test]
async fn a_body_that_trickles() {
    let doc = doc_of(&[&key(0, "old")]);
    scenario(
        Mode::Trickle {
            doc,
            chunk: 8,
            every: Duration::from_millis(100),
        },
        "timed out",
    )
    .await;
}

#[tokio::test]
async fn an_answer_that_never_comes() {
    scenario(Mode::Hang, "timed out").await;
}

#[tokio::test]
async fn a_redirect_loop() {
    scenario(Mode::RedirectLoop, "too many redirects").await;
}

/// The attacker's JWKS server, publishing the attacker's key under the kid of the next
/// rotated key: if the verifier followed the redirect it would trust the attacker.
async fn attacker_on(addr: &str) -> Issuer {
    let evil = key(2, "new");
    Issuer::start_on(
        addr.parse::<SocketAddr>().expect("address"),
        Mode::Jwks(doc_of(&[&evil])),
    )
    .await
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed() {
    let attacker = attacker_on("127.0.0.2:0").await;
    scenario(Mode::Redirect(attacker.url()), "redirect to another").await;
    assert_eq!(attacker.hits(), 0);
}

#[tokio::test]
async fn a_redirect_to_another_port_is_not_followed() {
    let attacker = attacker_on("127.0.0.1:0").await;
    scenario(Mode::Redirect(attacker.url()), "redirect to another").await;
    assert_eq!(attacker.hits(), 0);
}

#[tokio::test]
async fn a_redirect_to_another_scheme_is_not_followed() {
    // Same host and port, another scheme: the origin differs.
    let issuer = Issuer::start(Mode::Status(500)).await;
    let https = format!("https://{}/jwks", issuer.addr());
    scenario(Mode::Redirect(https), "redirect to another").await;
}

#[tokio::test]
async fn a_redirect_within_the_issuer_is_followed() {
    let k = key(0, "k");
    let issuer = Issuer::start(Mode::RedirectHere {
        to: "/keys/current".into(),
        then: doc_of(&[&k]),
    })
    .await;
    let verifier = builder(&issuer.url()).build().expect("verifier");
    verifier.refresh_keys().await.expect("redirect followed");
    verifier.verify(&token(&k)).await.expect("valid");
    assert_eq!(issuer.paths(), ["/jwks", "/keys/current"]);
}

#[tokio::test]
async fn keys_without_kid_serve_tokens_without_kid() {
    let log = LogCapture::start();
    let k = key(0, "unused");
    let mut jwk = k.public_jwk();
    jwk.as_object_mut().expect("object").remove("kid");
    let issuer = Issuer::start(Mode::Jwks(json!({"keys": [jwk]}))).await;
    let verifier = builder(&issuer.url()).build().expect("verifier");
    verifier.refresh_keys().await.expect("keys");
    let c = claims(&json!({}));
    let no_kid = k
        .sign_raw(br#"{"alg":"RS256"}"#, c.to_string().as_bytes())
        .expect("sign");
    verifier
        .verify(&no_kid)
        .await
        .expect("matched by algorithm");
    // A token naming a kid is not matched to a key without one.
    let err = verifier.verify(&token(&k)).await.expect_err("kid unknown");
    assert_eq!(reason_of(&err), Some(InvalidTokenReason::UnknownKey));
    // Two keys without kid for one algorithm: a token without kid is ambiguous.
    let mut jwk2 = key(1, "x").public_jwk();
    jwk2.as_object_mut().expect("object").remove("kid");
    let mut jwk1 = k.public_jwk();
    jwk1.as_object_mut().expect("object").remove("kid");
    issuer.set(Mode::Jwks(json!({"keys": [jwk1, jwk2]})));
    verifier.refresh_keys().await.expect("keys");
    let err = verifier.verify(&no_kid).await.expect_err("ambiguous");
    assert_eq!(reason_of(&err), Some(InvalidTokenReason::UnknownKey));
    assert!(log.warnings().is_empty(), "{:#?}", log.warnings());
}

/// 10,000 keys (the same P-256 key under 10,000 kids).
fn ten_thousand_keys(k: &SigningKey) -> Value {
    let jwk = k.public_jwk();
    let keys: Vec<Value> = (0..10_000)
        .map(|i| {
            let mut j = jwk.clone();
            j["kid"] = json!(format!("k{i}"));
            j
        })
        .collect();
    json!({ "keys": keys })
}

#[tokio::test]
async fn ten_thousand_keys_are_refused_by_size() {
    let ec = SigningKey::from_pool(Algorithm::ES256, 0, "k5").expect("pool key");
    let doc = ten_thousand_keys(&ec);
    assert!(doc.to_string().len() > bearer_guard::DEFAULT_MAX_JWKS_BYTES);
    scenario(Mode::Jwks(doc), "larger than the 524288-byte limit").await;
}

#[tokio::test]
async fn of_ten_thousand_keys_only_the_first_max_keys_are_taken() {
    let log = LogCapture::start();
    let ec = |kid: &str| SigningKey::from_pool(Algorithm::ES256, 0, kid).expect("pool key");
    let issuer = Issuer::start(Mode::Jwks(ten_thousand_keys(&ec("k0")))).await;
    // A 4 MB document in a debug build on a loaded machine: the 800 ms fetch bound of the
    // other scenarios could cut the unknown-kid refetch below (a 503, not the refusal this
    // test is about), so this one waits longer. The time bound on the first refresh only
    // rules out work growing with the square of the keys, not a performance claim.
    let verifier = builder(&issuer.url())
        .max_jwks_bytes(4 << 20)
        .fetch_timeout(Duration::from_secs(30))
        .build()
        .expect("verifier");
    let started = Instant::now();
    verifier.refresh_keys().await.expect("keys");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(verifier.key_health(), KeyHealth::Fresh { keys: 100 });
    verifier
        .verify(&token(&ec("k99")))
        .await
        .expect("within the first 100");
    let err = verifier
        .verify(&token(&ec("k100")))
        .await
        .expect_err("beyond");
    assert_eq!(
        reason_of(&err),
        Some(InvalidTokenReason::UnknownKey),
        "{err}"
    );
    let warnings = log.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("9900 keys beyond the limit of 100 were ignored")),
        "{warnings:#?}"
    );
}

#[tokio::test]
async fn a_hanging_refresh_does_not_hold_requests_with_known_keys() {
    let k = SigningKey::from_pool(Algorithm::EdDSA, 0, "k").expect("pool key");
    let issuer = Issuer::start(Mode::Jwks(doc_of(&[&k]))).await;
    let verifier = builder(&issuer.url()).build().expect("verifier");
    verifier.refresh_keys().await.expect("keys");
    issuer.set(Mode::Hang);
    let v = verifier.clone();
    let stuck = tokio::spawn(async move { v.refresh_keys().await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 0..20 {
        let t = sign(&k, &claims(&json!({"jti": format!("j{i}")})));
        let started = Instant::now();
        verifier.verify(&t).await.expect("valid");
        assert!(
            started.elapsed() < Duration::from_millis(200),
            "{:?}",
            started.elapsed()
        );
    }
    assert!(stuck.await.expect("task").is_err());
}

#[tokio::test]
async fn with_no_key_set_ever_obtained_the_answer_is_503_until_the_issuer_works() {
    let log = LogCapture::start();
    let k = key(0, "k");
    let issuer = Issuer::start(Mode::Status(503)).await;
    let verifier = builder(&issuer.url()).build().expect("verifier");
    let app = serve_app(verifier.clone()).await;
    let http = client();
    let t = token(&k);
    let a = call(&http, &app.base, "/me", &[&format!("Bearer {t}")]).await;
    assert_eq!(a.status, 503, "{a:?}");
    assert_eq!(verifier.key_health(), KeyHealth::Missing);
    assert!(log.warnings().iter().any(|w| w.contains("HTTP 503")));
    issuer.set(Mode::Jwks(doc_of(&[&k])));
    eventually(Duration::from_secs(3), "recovery", || {
        let v = verifier.clone();
        async move { matches!(v.key_health(), KeyHealth::Fresh { .. }) }
    })
    .await;
    let a = call(&http, &app.base, "/me", &[&format!("Bearer {t}")]).await;
    assert_eq!(a.status, 200, "{a:?}");
}

#[tokio::test]
async fn a_long_outage_is_not_hammered_and_rotated_keys_are_picked_up_after_it() {
    let log = LogCapture::start();
    // Ed25519 keys: fast to sign with either backend, so the loop below sends many requests.
    let ed = |i, kid: &str| SigningKey::from_pool(Algorithm::EdDSA, i, kid).expect("pool key");
    let old_key = ed(0, "old");
    let new_key = ed(1, "new");
    let mut issuer = Issuer::start(Mode::Jwks(doc_of(&[&old_key]))).await;
    let verifier = builder(&issuer.url()).build().expect("verifier");
    verifier.refresh_keys().await.expect("keys");
    let app = serve_app(verifier.clone()).await;
    let http = client();

    issuer.go_down().await;
    let fetches_before = verifier.jwks_fetches();
    let outage = Duration::from_secs(3);
    let started = Instant::now();
    let mut requests = 0u32;
    while started.elapsed() < outage {
        // Known key: answered from the keys held. Unknown key: 503, the issuer is down.
        let known = sign(&old_key, &claims(&json!({"jti": format!("j{requests}")})));
        let a = call(&http, &app.base, "/me", &[&format!("Bearer {known}")]).await;
        assert_eq!(a.status, 200, "{a:?}");
        let unknown = sign(&ed(1, &format!("u{requests}")), &claims(&json!({})));
        let a = call(&http, &app.base, "/me", &[&format!("Bearer {unknown}")]).await;
        assert_eq!(a.status, 503, "{a:?}");
        requests += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let fetches = verifier.jwks_fetches() - fetches_before;
    // Backoff 100 ms doubling to 400 ms: about 9 attempts in 3 s, whatever the traffic.
    assert!(
        fetches <= 12,
        "{fetches} fetches during a 3 s outage ({requests} rounds of requests)"
    );
    assert!(requests > 10, "{requests} rounds");
    let warnings = log.warnings();
    assert!(
        warnings.iter().any(|w| w.contains("onnection refused")),
        "{warnings:#?}"
    );
    assert!(matches!(verifier.key_health(), KeyHealth::Stale { .. }));

    issuer.set(Mode::Jwks(doc_of(&[&new_key])));
    issuer.come_back().await;
    let took = eventually(Duration::from_secs(5), "recovery", || {
        let v = verifier.clone();
        async move { matches!(v.key_health(), KeyHealth::Fresh { .. }) }
    })
    .await;
    assert!(
        took <= MAX_BACKOFF + FETCH_TIMEOUT + Duration::from_millis(500),
        "{took:?}"
    );
    let a = call(
        &http,
        &app.base,
        "/me",
        &[&format!("Bearer {}", token(&new_key))],
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    let a = call(
        &http,
        &app.base,
        "/me",
        &[&format!("Bearer {}", token(&old_key))],
    )
    .await;
    assert_eq!(a.status, 401, "{a:?}");
}

#[tokio::test]
async fn an_issuer_differing_by_a_trailing_slash_is_explained_once_at_error() {
    let log = LogCapture::start();
    let issuer = Issuer::start(Mode::Status(404)).await;
    let base = issuer.base_url();
    // What Auth0 publishes: the issuer with a trailing slash.
    issuer.set(Mode::Raw(
        json!({"issuer": format!("{base}/"), "jwks_uri": issuer.url()})
            .to_string()
            .into_bytes(),
    ));
    let verifier = Verifier::builder()
        .issuer(&base)
        .audience(AUD)
        .fetch_backoff(Duration::from_millis(10), Duration::from_millis(20))
        .build()
        .expect("verifier");
    let advice = format!("configure `.issuer(\"{base}/\")` exactly");
    for _ in 0..3 {
        let err = verifier.refresh_keys().await.expect_err("wrong issuer");
        assert_eq!(err.kind(), AuthErrorKind::KeysUnavailable);
        assert!(err.to_string().contains(&advice), "{err}");
        let source = std::error::Error::source(&err).expect("a source");
        assert!(source.to_string().contains(&advice), "{source}");
    }
    let why = verifier.key_error().expect("a key error");
    assert!(why.to_string().contains(&advice), "{why}");
    let errors = log.errors();
    assert_eq!(
        errors.iter().filter(|e| e.contains(&advice)).count(),
        1,
        "logged at ERROR once, then rate-limited: {errors:#?}"
    );
}

#[tokio::test]
async fn keys_stale_beyond_the_maximum_age_are_answered_503_with_retry_after() {
    let k = key(0, "k");
    let issuer = Issuer::start(Mode::Jwks(doc_of(&[&k]))).await;
    let verifier = builder(&issuer.url())
        .max_stale_age(Duration::from_millis(300))
        .build()
        .expect("verifier");
    verifier.refresh_keys().await.expect("keys");
    let app = serve_app(verifier.clone()).await;
    let http = client();
    let t = token(&k);
    let bearer = format!("Bearer {t}");
    assert_eq!(call(&http, &app.base, "/me", &[&bearer]).await.status, 200);
    // The key is withdrawn and the JWKS answers 404 for good: kept for a while ...
    issuer.set(Mode::Status(404));
    assert!(verifier.refresh_keys().await.is_err());
    assert_eq!(call(&http, &app.base, "/me", &[&bearer]).await.status, 200);
    // ... then no longer trusted: 503, with a hint when to come back.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let a = call(&http, &app.base, "/me", &[&bearer]).await;
    assert_eq!(a.status, 503, "{a:?}");
    assert!(a.retry_after.is_some(), "{a:?}");
    assert_eq!(verifier.key_health(), KeyHealth::Missing);
}
