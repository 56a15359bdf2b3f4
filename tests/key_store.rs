//! The key store: discovery, fetching, caching, refresh, rate limits, outages, and the
//! verified-token cache, against a local JWKS server.
#![cfg(all(
    feature = "dev-issuer",
    any(feature = "aws-lc-rs", feature = "rust-crypto")
))]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bearer_guard::dev_issuer::SigningKey;
use bearer_guard::{Algorithm, AuthErrorKind, InvalidTokenReason as R, KeyHealth, Verifier};
use common::{
    AUD, Metadata, OAUTH_PATH, OIDC_PATH, Reply, Server, claims, key, mint_with_header, reason,
    token, unsigned,
};
use serde_json::json;
use tokio::time::Instant;

fn k1() -> SigningKey {
    key(Algorithm::RS256, 0, "k1")
}

fn k2() -> SigningKey {
    key(Algorithm::ES256, 0, "k2")
}

/// A token whose `kid` no key has (its signature is never checked).
fn bogus(kid: &str) -> String {
    unsigned(&json!({"alg": "RS256", "kid": kid}))
}

fn assert_keys_unavailable(result: Result<bearer_guard::Claims, bearer_guard::AuthError>) {
    match result {
        Err(e) => assert_eq!(e.kind(), AuthErrorKind::KeysUnavailable, "{e:?}"),
        Ok(c) => panic!("expected keys to be unavailable, the token was accepted: {c:?}"),
    }
}

/// Polls `done` every 20 ms until it holds or `deadline` passes; returns whether it held.
async fn eventually(deadline: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

// ---- discovery ----

#[tokio::test]
async fn keys_are_found_by_oidc_discovery() {
    let server = Server::start(&[&k1()]).await;
    let issuer = server.base_url();
    server.metadata(Metadata::Oidc(issuer.clone()));
    let v = Verifier::builder()
        .issuer(&issuer)
        .audience(AUD)
        .build()
        .expect("verifier");
    let mut c = claims();
    c["iss"] = json!(issuer);
    let t = common::mint(&k1(), &c);
    v.verify(&t).await.expect("accepted");
    assert_eq!(server.hits(OIDC_PATH), 1);
    assert_eq!(server.hits(OAUTH_PATH), 0);
    assert_eq!(server.jwks_hits(), 1);
    server.stop().await;
}

#[tokio::test]
async fn rfc8414_metadata_is_used_when_oidc_discovery_is_not_found() {
    let server = Server::start(&[&k1()]).await;
    let issuer = server.base_url();
    server.metadata(Metadata::Rfc8414(issuer.clone()));
    let v = Verifier::builder()
        .issuer(&issuer)
        .audience(AUD)
        .build()
        .expect("verifier");
    let mut c = claims();
    c["iss"] = json!(issuer);
    v.verify(&common::mint(&k1(), &c)).await.expect("accepted");
    assert_eq!(server.hits(OIDC_PATH), 1, "OIDC discovery is tried first");
    assert_eq!(server.hits(OAUTH_PATH), 1);
    assert_eq!(server.jwks_hits(), 1);
    server.stop().await;
}

#[tokio::test]
async fn the_discovered_jwks_uri_is_reused_by_later_refreshes() {
    let server = Server::start(&[&k1()]).await;
    let issuer = server.base_url();
    server.metadata(Metadata::Oidc(issuer.clone()));
    let v = Verifier::builder()
        .issuer(&issuer)
        .audience(AUD)
        .build()
        .expect("verifier");
    v.refresh_keys().await.expect("first load");
    v.refresh_keys().await.expect("second load");
    assert_eq!(server.hits(OIDC_PATH), 1);
    assert_eq!(server.jwks_hits(), 2);
    server.stop().await;
}

#[tokio::test]
async fn metadata_naming_another_issuer_is_refused() {
    let server = Server::start(&[&k1()]).await;
    let issuer = server.base_url();
    server.metadata(Metadata::Oidc("https://evil.test".into()));
    let v = Verifier::builder()
        .issuer(&issuer)
        .audience(AUD)
        .build()
        .expect("verifier");
    let mut c = claims();
    c["iss"] = json!(issuer);
    assert_keys_unavailable(v.verify(&common::mint(&k1(), &c)).await);
    assert_eq!(
        server.jwks_hits(),
        0,
        "the JWKS of a foreign issuer was fetched"
    );
    assert_eq!(v.key_health(), KeyHealth::Missing);
    server.stop().await;
}

#[tokio::test]
async fn a_trailing_slash_mismatch_says_which_issuer_to_configure() {
    let server = Server::start(&[&k1()]).await;
    let base = server.base_url();
    server.metadata(Metadata::Oidc(format!("{base}/")));
    let v = Verifier::builder()
        .issuer(&base)
        .audience(AUD)
        .build()
        .expect("verifier");
    let err = v.refresh_keys().await.expect_err("wrong issuer");
    let advice = format!("configure `.issuer(\"{base}/\")` exactly");
    assert!(err.to_string().contains(&advice), "{err}");
    let why = v.key_error().expect("why the keys are missing");
    assert!(why.to_string().contains(&advice), "{why}");
    server.stop().await;
}

#[tokio::test]
async fn the_key_error_says_why_and_clears_once_keys_are_fresh() {
    let server = Server::start(&[&k1()]).await;
    server.reply(Reply::Status(503));
    let v = server.builder().build().expect("verifier");
    let why = v.key_error().expect("no keys yet");
    assert!(
        why.to_string().contains("no key set was fetched yet"),
        "{why}"
    );
    assert!(v.refresh_keys().await.is_err());
    let why = v.key_error().expect("the fetch failed");
    assert!(why.to_string().contains("HTTP 503"), "{why}");
    server.reply(Reply::Jwks);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    v.refresh_keys().await.expect("loaded");
    assert!(v.key_error().is_none());
    server.stop().await;
}

#[tokio::test]
async fn an_issuer_taken_from_discovery_is_compared_exactly() {
    let server = Server::start(&[&k1()]).await;
    let base = server.base_url();
    let published = format!("{base}/");
    server.metadata(Metadata::Oidc(published.clone()));
    let v = Verifier::builder()
        .issuer_from_discovery(&base)
        .audience(AUD)
        .build()
        .expect("verifier");
    v.refresh_keys().await.expect("discovered");
    assert_eq!(v.issuer(), published);
    let mut c = claims();
    c["iss"] = json!(published);
    v.verify(&common::mint(&k1(), &c)).await.expect("accepted");
    c["iss"] = json!(base);
    assert_eq!(
        reason(v.verify(&common::mint(&k1(), &c)).await),
        R::WrongIssuer
    );
    server.stop().await;
}

#[tokio::test]
async fn an_issuer_from_discovery_of_another_origin_is_refused() {
    let server = Server::start(&[&k1()]).await;
    server.metadata(Metadata::Oidc("https://evil.test/".into()));
    let v = Verifier::builder()
        .issuer_from_discovery(server.base_url())
        .audience(AUD)
        .build()
        .expect("verifier");
    let err = v.refresh_keys().await.expect_err("another origin");
    assert!(err.to_string().contains("origin"), "{err}");
    assert_eq!(server.jwks_hits(), 0);
    let mut c = claims();
    c["iss"] = json!("https://evil.test/");
    assert_keys_unavailable(v.verify(&common::mint(&k1(), &c)).await);
    server.stop().await;
}

#[tokio::test]
async fn userinfo_in_a_jwks_url_is_never_shown() {
    let server = Server::start(&[&k1()]).await;
    server.reply(Reply::Status(500));
    let url = server.jwks_uri().replace("http://", "http://user:s3cret@");
    let v = Verifier::builder()
        .issuer(common::ISSUER)
        .audience(AUD)
        .jwks_uri(url)
        .build()
        .expect("verifier");
    let err = v.refresh_keys().await.expect_err("HTTP 500");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("HTTP 500"), "{shown}");
    assert!(
        !shown.contains("s3cret") && !shown.contains("user:"),
        "{shown}"
    );
    server.stop().await;
}

// ---- first load ----

#[tokio::test]
async fn refresh_keys_loads_the_keys_before_the_first_request() {
    let server = Server::start(&[&k1()]).await;
    let v = server.builder().build().expect("verifier");
    assert_eq!(v.key_health(), KeyHealth::Missing);
    v.refresh_keys().await.expect("loaded");
    assert_eq!(v.key_health(), KeyHealth::Fresh { keys: 1 });
    v.verify(&token(&k1())).await.expect("accepted");
    assert_eq!(v.jwks_fetches(), 1);
    assert_eq!(server.jwks_hits(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_requests_share_one_fetch() {
    let server = Server::start(&[&k1()]).await;
    let v = server.builder().build().expect("verifier");
    let t: Arc<str> = token(&k1()).into();
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (v, t) = (v.clone(), t.clone());
            tokio::spawn(async move { v.verify(&t).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("accepted");
    }
    assert_eq!(v.jwks_fetches(), 1);
    assert_eq!(server.jwks_hits(), 1);
    server.stop().await;
}

// ---- rotation and unknown kids ----

#[tokio::test]
async fn a_key_published_after_the_first_load_is_accepted_on_first_try() {
    let server = Server::start(&[&k1()]).await;
    let v = server.builder().build().expect("verifier");
    v.verify(&token(&k1())).await.expect("k1 accepted");
    server.set_keys(&[&k1(), &k2()]);
    v.verify(&token(&k2())).await.expect("k2 accepted");
    assert_eq!(v.jwks_fetches(), 2);
    assert_eq!(server.jwks_hits(), 2);
    server.stop().await;
}

#[tokio::test]
async fn a_new_key_is_accepted_right_after_a_bogus_kid_was_tried() {
    let server = Server::start(&[&k1()]).await;
    let v = server.builder().build().expect("verifier");
    v.verify(&token(&k1())).await.expect("k1 accepted");
    assert_eq!(reason(v.verify(&bogus("bogus")).await), R::UnknownKey);
    server.set_keys(&[&k1(), &k2()]);
    v.verify(&token(&k2())).await.expect("k2 accepted");
    assert_eq!(v.jwks_fetches(), 3);
    assert_eq!(server.jwks_hits(), 3);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_verifications_under_a_new_kid_cause_one_fetch() {
    let server = Server::start(&[&k1()]).await;
    let v = server.builder().build().expect("verifier");
    v.verify(&token(&k1())).await.expect("k1 accepted");
    server.set_keys(&[&k1(), &k2()]);
    let t: Arc<str> = token(&k2()).into();
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let (v, t) = (v.clone(), t.clone());
            tokio::spawn(async move { v.verify(&t).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("k2 accepted");
    }
    assert_eq!(v.jwks_fetches(), 2);
    assert_eq!(server.jwks_hits(), 2);
    server.stop().await;
}

#[tokio::test]
async fn a_flood_of_random_kids_is_rate_limited() {
    let (burst, cooldown) = (2, Duration::from_millis(500));
    let server = Server::start(&[&k1()]).await;
    let v = server
        .builder()
        .unknown_kid_refresh(burst, cooldown)
        .build()
        .expect("verifier");
    v.verify(&token(&k1())).await.expect("k1 accepted");
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_millis(1200) {
        n += 1;
        let r = v.verify(&bogus(&format!("random-{n}"))).await;
        assert_eq!(reason(r), R::UnknownKey);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = start.elapsed();
    let flood_fetches = server.jwks_hits() - 1;
    let allowed = u64::from(burst) + elapsed.as_millis().div_ceil(cooldown.as_millis()) as u64;
    assert!(
        flood_fetches as u64 <= allowed,
        "{flood_fetches} fetches for {n} random kids in {elapsed:?}; at most {allowed} allowed"
    );
    assert!(
        flood_fetches >= burst as usize,
        "the burst was not used: {flood_fetches}"
    );
    assert_eq!(v.jwks_fetches(), server.jwks_hits() as u64);
    v.verify(&token(&k1())).await.expect("k1 still accepted");
    server.stop().await;
}

#[tokio::test]
async fn an_absurdly_long_kid_is_refused_without_a_fetch() {
    let server = Server::start(&[&k1()]).await;
    let v = server.builder().build().expect("verifier");
    v.verify(&token(&k1())).await.expect("k1 accepted");
    let long = "k".repeat(10 * 1024);
    for _ in 0..3 {
        assert_eq!(reason(v.verify(&bogus(&long)).await), R::UnknownKey);
    }
    let just_over = "k".repeat(bearer_guard::MAX_KID_BYTES + 1);
    assert_eq!(reason(v.verify(&bogus(&just_over)).await), R::UnknownKey);
    assert_eq!(server.jwks_hits(), 1, "a long kid caused a fetch");
    // A kid at the bound is looked up as usual.
    let at_bound = "k".repeat(bearer_guard::MAX_KID_BYTES);
    assert_eq!(reason(v.verify(&bogus(&at_bound)).await), R::UnknownKey);
    assert_eq!(server.jwks_hits(), 2);
    server.stop().await;
}

#[tokio::test]
async fn a_rotated_key_is_loaded_when_the_allowance_refills_without_further_requests() {
    let cooldown = Duration::from_millis(400);
    let server = Server::start(&[&k1()]).await;
    let v = server
        .builder()
        .unknown_kid_refresh(1, cooldown)
        .build()
        .expect("verifier");
    v.verify(&token(&k1())).await.expect("k1 accepted");
    // A bogus kid spends the allowance.
    assert_eq!(reason(v.verify(&bogus("bogus")).await), R::UnknownKey);
    assert_eq!(server.jwks_hits(), 2);
    // The issuer rotates; the first token under the new key is refused for now ...
    server.set_keys(&[&k1(), &k2()]);
    assert_eq!(reason(v.verify(&token(&k2())).await), R::UnknownKey);
    assert_eq!(server.jwks_hits(), 2);
    // ... and the key is loaded when the allowance refills, with no request's help.
    assert!(
        eventually(cooldown * 3, || server.jwks_hits() == 3).await,
        "no catch-up refresh: {} fetches",
        server.jwks_hits()
    );
    v.verify(&token(&k2())).await.expect("k2 accepted");
    assert_eq!(server.jwks_hits(), 3);
    server.stop().await;
}

#[tokio::test]
async fn a_kid_found_absent_is_remembered() {
    let server = Server::start(&[&k1()]).await;
    let v = server.builder().build().expect("verifier");
    v.verify(&token(&k1())).await.expect("k1 accepted");
    assert_eq!(reason(v.verify(&bogus("bogus")).await), R::UnknownKey);
    assert_eq!(server.jwks_hits(), 2);
    assert_eq!(reason(v.verify(&bogus("bogus")).await), R::UnknownKey);
    assert_eq!(server.jwks_hits(), 2, "the absent kid caused another fetch");
    assert_eq!(v.jwks_fetches(), 2);
    server.stop().await;
}

#[tokio::test]
async fn a_kid_remembered_as_absent_is_accepted_after_the_next_refresh() {
    let server = Server::start(&[&k1()]).await;
    let v = server.builder().build().expect("verifier");
    v.verify(&token(&k1())).await.expect("k1 accepted");
    assert_eq!(reason(v.verify(&token(&k2())).await), R::UnknownKey);
    server.set_keys(&[&k1(), &k2()]);
    assert_eq!(
        reason(v.verify(&token(&k2())).await),
        R::UnknownKey,
        "remembered as absent"
    );
    v.refresh_keys().await.expect("refreshed");
    v.verify(&token(&k2())).await.expect("k2 accepted");
    server.stop().await;
}

#[tokio::test]
async fn a_kid_remembered_as_absent_is_forgotten_after_the_cooldown() {
    let cooldown = Duration::from_millis(300);
    let server = Server::start(&[&k1()]).await;
    let v = server
        .builder()
        .unknown_kid_refresh(2, cooldown)
        .build()
        .expect("verifier");
    v.verify(&token(&k1())).await.expect("k1 accepted");
    // The issuer's CDN does not show k2 yet.
    assert_eq!(reason(v.verify(&token(&k2())).await), R::UnknownKey);
    server.set_keys(&[&k1(), &k2()]);
    assert_eq!(
        reason(v.verify(&token(&k2())).await),
        R::UnknownKey,
        "remembered as absent within the cooldown"
    );
    assert_eq!(server.jwks_hits(), 2);
    tokio::time::sleep(cooldown + Duration::from_millis(100)).await;
    v.verify(&token(&k2()))
        .await
        .expect("k2 accepted once the absence is forgotten");
    server.stop().await;
}

// ---- outages ----

#[tokio::test]
async fn known_keys_are_served_stale_through_an_outage() {
    let server = Server::start(&[&k1()]).await;
    let v = server
        .builder()
        .jwks_ttl(
            Duration::from_millis(300),
            Duration::from_millis(100),
            Duration::from_millis(300),
        )
        .fetch_backoff(Duration::from_millis(100), Duration::from_millis(200))
        .build()
        .expect("verifier");
    v.verify(&token(&k1())).await.expect("k1 accepted");
    server.reply(Reply::Status(500));
    let stale = eventually(Duration::from_secs(5), || {
        matches!(v.key_health(), KeyHealth::Stale { keys: 1, .. })
    })
    .await;
    assert!(stale, "health after the TTL: {:?}", v.key_health());
    assert!(server.jwks_hits() >= 2, "no refresh was tried");
    v.verify(&token(&k1()))
        .await
        .expect("k1 accepted from stale keys");
    server.stop().await;
}

#[tokio::test]
async fn a_new_kid_during_an_outage_is_keys_unavailable_not_unknown_key() {
    let server = Server::start(&[&k1()]).await;
    let v = server.builder().build().expect("verifier");
    v.verify(&token(&k1())).await.expect("k1 accepted");
    server.reply(Reply::Status(500));
    let err = v.verify(&token(&k2())).await.expect_err("refused");
    assert_eq!(err.kind(), AuthErrorKind::KeysUnavailable);
    assert!(err.retry_after().is_some());
    assert_eq!(server.jwks_hits(), 2);
    // Still within the backoff: refused the same way, without a fetch.
    assert_keys_unavailable(v.verify(&token(&k2())).await);
    assert_eq!(server.jwks_hits(), 2);
    server.stop().await;
}

#[tokio::test]
async fn a_new_kid_during_an_outage_is_keys_unavailable_even_once_the_refresh_allowance_is_spent() {
    let server = Server::start(&[&k1()]).await;
    let v = server
        .builder()
        .unknown_kid_refresh(1, Duration::from_secs(60))
        .fetch_backoff(Duration::from_millis(50), Duration::from_millis(50))
        .build()
        .expect("verifier");
    v.verify(&token(&k1())).await.expect("k1 accepted");
    server.reply(Reply::Status(500));
    // The one unknown-kid refresh allowed fails: keys unavailable.
    assert_keys_unavailable(v.verify(&token(&k2())).await);
    // Past the backoff, with no allowance left, the issuer is still failing: still
    // "keys unavailable" (503), not "unknown key" (401).
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_keys_unavailable(v.verify(&token(&k2())).await);
    server.stop().await;
}

#[tokio::test]
async fn keys_are_unavailable_when_none_was_ever_fetched() {
    let server = Server::start(&[&k1()]).await;
    server.reply(Reply::Status(503));
    let v = server.builder().build().expect("verifier");
    let err = v.verify(&token(&k1())).await.expect_err("refused");
    assert_eq!(err.kind(), AuthErrorKind::KeysUnavailable);
    let retry = err.retry_after().expect("a retry-after hint");
    assert!(retry > Duration::ZERO);
    assert_eq!(v.key_health(), KeyHealth::Missing);
    server.stop().await;
}

#[tokio::test]
async fn a_failing_issuer_is_not_asked_again_within_the_backoff() {
    let server = Server::start(&[&k1()]).await;
    server.reply(Reply::Status(503));
    let v = server.builder().build().expect("verifier");
    // Minted once: signing is slow in debug builds, and the loop must stay within the
    // first backoff (1 s).
    let t = token(&k1());
    for _ in 0..5 {
        assert_keys_unavailable(v.verify(&t).await);
    }
    assert_eq!(server.jwks_hits(), 1);
    assert_eq!(v.jwks_fetches(), 1);
    server.stop().await;
}

#[tokio::test]
async fn keys_are_loaded_in_the_background_once_the_issuer_recovers() {
    let server = Server::start(&[&k1()]).await;
    server.reply(Reply::Status(503));
    let v = server
        .builder()
        .fetch_backoff(Duration::from_millis(100), Duration::from_millis(200))
        .build()
        .expect("verifier");
    assert_keys_unavailable(v.verify(&token(&k1())).await);
    server.reply(Reply::Jwks);
    let fresh = eventually(Duration::from_secs(5), || {
        v.key_health() == KeyHealth::Fresh { keys: 1 }
    })
    .await;
    assert!(fresh, "health: {:?}", v.key_health());
    let fetches = server.jwks_hits();
    v.verify(&token(&k1())).await.expect("k1 accepted");
    assert_eq!(server.jwks_hits(), fetches, "the request had to fetch");
    server.stop().await;
}

#[tokio::test]
async fn a_broken_jwks_response_keeps_the_last_good_keys() {
    let server = Server::start(&[&k1()]).await;
    let v = server.builder().build().expect("verifier");
    v.verify(&token(&k1())).await.expect("k1 accepted");
    server.set_keys(&[&k2()]);
    for broken in [
        Reply::Status(500),
        Reply::Status(404),
        Reply::Html,
        Reply::Truncated,
    ] {
        server.reply(broken.clone());
        let r = v.refresh_keys().await;
        assert!(r.is_err(), "{broken:?} was accepted");
        v.verify(&token(&k1()))
            .await
            .unwrap_or_else(|e| panic!("k1 refused after {broken:?}: {e:?}"));
    }
    assert!(matches!(v.key_health(), KeyHealth::Stale { keys: 1, .. }));
    server.stop().await;
}

#[tokio::test]
async fn a_jwks_without_a_usable_key_replaces_the_keys() {
    let server = Server::start(&[&k1()]).await;
    let v = server.builder().build().expect("verifier");
    v.verify(&token(&k1())).await.expect("k1 accepted");
    server.set_jwks(json!({"keys": [{"kty": "XYZ", "kid": "k1"}]}));
    let err = v.refresh_keys().await.expect_err("no usable key");
    assert!(err.to_string().contains("no usable key"), "{err}");
    assert_eq!(v.key_health(), KeyHealth::Fresh { keys: 0 });
    assert_eq!(reason(v.verify(&token(&k1())).await), R::UnknownKey);
    server.stop().await;
}

#[tokio::test]
async fn an_empty_jwks_revokes_a_cached_token() {
    let server = Server::start(&[&k1()]).await;
    let v = server.builder().build().expect("verifier");
    let t = token(&k1());
    v.verify(&t).await.expect("k1 accepted");
    v.verify(&t).await.expect("k1 accepted from the cache");
    server.set_jwks(json!({"keys": []}));
    assert!(v.refresh_keys().await.is_err());
    assert_eq!(reason(v.verify(&t).await), R::UnknownKey);
    server.stop().await;
}

#[tokio::test]
async fn stale_keys_are_dropped_after_the_maximum_stale_age() {
    let server = Server::start(&[&k1()]).await;
    let v = server
        .builder()
        .max_stale_age(Duration::from_millis(400))
        .fetch_backoff(Duration::from_millis(50), Duration::from_millis(100))
        .build()
        .expect("verifier");
    let t = token(&k1());
    v.verify(&t).await.expect("k1 accepted");
    server.reply(Reply::Status(404));
    assert!(v.refresh_keys().await.is_err());
    v.verify(&t)
        .await
        .expect("kept within the maximum stale age");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let err = v.verify(&t).await.expect_err("dropped after it");
    assert_eq!(err.kind(), AuthErrorKind::KeysUnavailable, "{err:?}");
    assert!(err.retry_after().is_some(), "a Retry-After hint");
    let fresh = token(&k1());
    assert_keys_unavailable(v.verify(&fresh).await);
    assert_eq!(v.key_health(), KeyHealth::Missing);
    // The issuer comes back: the keys are loaded again.
    server.reply(Reply::Jwks);
    assert!(
        eventually(Duration::from_secs(3), || v.key_health()
            == KeyHealth::Fresh { keys: 1 })
        .await
    );
    v.verify(&fresh).await.expect("accepted again");
    server.stop().await;
}

#[tokio::test]
async fn a_successful_refresh_resets_the_stale_age() {
    let server = Server::start(&[&k1()]).await;
    let v = server
        .builder()
        .max_stale_age(Duration::from_millis(400))
        .fetch_backoff(Duration::from_millis(50), Duration::from_millis(100))
        .build()
        .expect("verifier");
    v.verify(&token(&k1())).await.expect("k1 accepted");
    server.reply(Reply::Status(500));
    assert!(v.refresh_keys().await.is_err());
    tokio::time::sleep(Duration::from_millis(250)).await;
    server.reply(Reply::Jwks);
    v.refresh_keys().await.expect("recovered");
    tokio::time::sleep(Duration::from_millis(250)).await;
    v.verify(&token(&k1())).await.expect("fresh keys are kept");
    assert_eq!(v.key_health(), KeyHealth::Fresh { keys: 1 });
    server.stop().await;
}

// ---- a store that cannot jam ----

/// Runs `f` on a runtime of its own, on another thread, then shuts that runtime down.
async fn on_a_runtime_that_then_ends<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(f());
        drop(rt);
    })
    .await
    .expect("the other runtime's thread");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_dropped_with_its_runtime_does_not_jam_the_store() {
    let server = Server::start(&[&k1()]).await;
    server.delay(Duration::from_secs(5));
    let v = server.builder().build().expect("verifier");
    let v2 = v.clone();
    on_a_runtime_that_then_ends(move || async move {
        // The fetch hangs; the runtime ends under it.
        let r = tokio::time::timeout(Duration::from_millis(200), v2.refresh_keys()).await;
        assert!(r.is_err(), "the fetch did not hang");
    })
    .await;
    server.delay(Duration::ZERO);
    v.refresh_keys()
        .await
        .expect("a new fetch after the dropped one");
    v.verify(&token(&k1())).await.expect("k1 accepted");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_refresher_is_restarted_on_a_new_runtime() {
    let server = Server::start(&[&k1()]).await;
    let v = server
        .builder()
        .jwks_ttl(
            Duration::from_millis(300),
            Duration::from_millis(100),
            Duration::from_millis(300),
        )
        .build()
        .expect("verifier");
    let v2 = v.clone();
    on_a_runtime_that_then_ends(move || async move {
        v2.verify(&token(&k1())).await.expect("k1 accepted");
    })
    .await;
    // A request on this runtime: the refresher, gone with the first runtime, starts again
    // and refreshes with no further request.
    v.verify(&token(&k1())).await.expect("k1 accepted");
    let hits = server.jwks_hits();
    assert!(
        eventually(Duration::from_secs(3), || server.jwks_hits() >= hits + 2).await,
        "no background refresh after the first runtime ended: {} fetches",
        server.jwks_hits()
    );
    server.stop().await;
}

#[tokio::test]
async fn a_max_age_of_u64_max_is_clamped_without_overflow() {
    let server = Server::start(&[&k1()]).await;
    server.cache_control("max-age=18446744073709551615");
    let v = server
        .builder()
        .jwks_ttl(
            Duration::from_secs(600),
            Duration::from_secs(300),
            bearer_guard::MAX_JWKS_TTL_BOUND,
        )
        .build()
        .expect("verifier");
    v.refresh_keys().await.expect("loaded");
    v.refresh_keys()
        .await
        .expect("loaded again: the store is not jammed");
    v.verify(&token(&k1())).await.expect("k1 accepted");
    assert_eq!(v.key_health(), KeyHealth::Fresh { keys: 1 });
    server.stop().await;
}

// ---- freshness: TTL, Cache-Control, ETag ----

#[tokio::test]
async fn the_keys_are_refreshed_in_the_background_before_max_age_expires() {
    let server = Server::start(&[&k1()]).await;
    server.cache_control("public, max-age=3");
    let v = server
        .builder()
        .jwks_ttl(
            Duration::from_secs(60),
            Duration::from_millis(100),
            Duration::from_secs(60),
        )
        .build()
        .expect("verifier");
    let start = Instant::now();
    v.verify(&token(&k1())).await.expect("k1 accepted");
    // Due at 80 % of max-age (2.4 s): not yet at 1.5 s, done before 3 s.
    tokio::time::sleep_until(start + Duration::from_millis(1500)).await;
    assert_eq!(server.jwks_hits(), 1, "refreshed long before max-age");
    let end = start + Duration::from_secs(3);
    while server.jwks_hits() < 2 && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        server.jwks_hits(),
        2,
        "not refreshed before max-age expired"
    );
    assert_eq!(v.key_health(), KeyHealth::Fresh { keys: 1 });
    server.stop().await;
}

#[tokio::test]
async fn without_max_age_the_default_ttl_applies() {
    let server = Server::start(&[&k1()]).await;
    let v = server
        .builder()
        .jwks_ttl(
            Duration::from_millis(400),
            Duration::from_millis(100),
            Duration::from_secs(60),
        )
        .build()
        .expect("verifier");
    v.verify(&token(&k1())).await.expect("k1 accepted");
    assert!(eventually(Duration::from_secs(5), || server.jwks_hits() >= 2).await);
    server.stop().await;
}

#[tokio::test]
async fn a_max_age_above_the_maximum_ttl_is_lowered() {
    let server = Server::start(&[&k1()]).await;
    server.cache_control("max-age=86400");
    let v = server
        .builder()
        .jwks_ttl(
            Duration::from_secs(60),
            Duration::from_millis(100),
            Duration::from_millis(400),
        )
        .build()
        .expect("verifier");
    v.verify(&token(&k1())).await.expect("k1 accepted");
    assert!(eventually(Duration::from_secs(5), || server.jwks_hits() >= 2).await);
    server.stop().await;
}

#[tokio::test]
async fn a_max_age_below_the_minimum_ttl_is_raised() {
    let server = Server::start(&[&k1()]).await;
    server.cache_control("no-cache, max-age=0");
    let v = server
        .builder()
        .jwks_ttl(
            Duration::from_secs(60),
            Duration::from_millis(1500),
            Duration::from_secs(60),
        )
        .build()
        .expect("verifier");
    v.verify(&token(&k1())).await.expect("k1 accepted");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(server.jwks_hits(), 1, "refreshed before the minimum TTL");
    server.stop().await;
}

#[tokio::test]
async fn an_etag_is_revalidated_and_a_304_keeps_the_keys() {
    let server = Server::start(&[&k1()]).await;
    server.etag("\"v1\"");
    let v = server.builder().build().expect("verifier");
    v.verify(&token(&k1())).await.expect("k1 accepted");
    // Whatever the server would now send, a 304 means "keep what you have".
    server.set_keys(&[&k2()]);
    v.refresh_keys().await.expect("revalidated");
    assert_eq!(server.if_none_match(), ["\"v1\""]);
    assert_eq!(server.not_modified(), 1);
    assert_eq!(v.key_health(), KeyHealth::Fresh { keys: 1 });
    v.verify(&token(&k1())).await.expect("k1 still accepted");
    server.stop().await;
}

// ---- bounds: time and size ----

#[tokio::test]
async fn a_slow_endpoint_is_bounded_by_the_fetch_timeout() {
    let server = Server::start(&[&k1()]).await;
    server.delay(Duration::from_secs(5));
    let timeout = Duration::from_millis(300);
    let v = server
        .builder()
        .fetch_timeout(timeout)
        .build()
        .expect("verifier");
    let start = Instant::now();
    assert_keys_unavailable(v.verify(&token(&k1())).await);
    let elapsed = start.elapsed();
    assert!(
        elapsed >= timeout,
        "gave up before the timeout: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "waited for the slow server: {elapsed:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_slow_endpoint_is_bounded_by_the_fetch_timeout_whatever_the_client() {
    let server = Server::start(&[&k1()]).await;
    server.delay(Duration::from_secs(5));
    let timeout = Duration::from_millis(300);
    let v = server
        .builder()
        .http_client(reqwest::Client::new())
        .fetch_timeout(timeout)
        .build()
        .expect("verifier");
    let start = Instant::now();
    assert_keys_unavailable(v.verify(&token(&k1())).await);
    let elapsed = start.elapsed();
    assert!(
        elapsed >= timeout,
        "gave up before the timeout: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "waited for the slow server: {elapsed:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_oversized_jwks_is_refused_and_the_last_good_keys_kept() {
    let server = Server::start(&[&k1()]).await;
    // A padded but valid document under the limit is read in full ...
    server.reply(Reply::Padded(3000));
    let v = server
        .builder()
        .max_jwks_bytes(4096)
        .build()
        .expect("verifier");
    v.verify(&token(&k1())).await.expect("k1 accepted");
    // ... the same over the limit is refused, although it is a valid JWK Set.
    server.set_keys(&[&k1(), &k2()]);
    server.reply(Reply::Padded(8192));
    assert!(
        v.refresh_keys().await.is_err(),
        "the oversized set was read"
    );
    assert!(matches!(v.key_health(), KeyHealth::Stale { keys: 1, .. }));
    v.verify(&token(&k1())).await.expect("k1 still accepted");
    assert!(
        v.verify(&token(&k2())).await.is_err(),
        "k2 from the oversized set was accepted"
    );
    server.stop().await;
}

#[tokio::test]
async fn unusable_and_kid_less_keys_do_not_break_the_others() {
    let ec = key(Algorithm::ES256, 1, "unused");
    let mut kid_less = ec.public_jwk();
    kid_less.as_object_mut().expect("object").remove("kid");
    let server = Server::start_with(json!({"keys": [
        {"kty": "XYZ", "kid": "weird"},
        {"kty": "oct", "kid": "secret", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"},
        {"kty": "RSA", "kid": "short", "n": "AQAB", "e": "AQAB"},
        {"kty": "EC", "kid": "enc", "use": "enc", "crv": "P-256", "x": "AA", "y": "AA"},
        kid_less,
        k1().public_jwk(),
    ]}))
    .await;
    let v = server.builder().build().expect("verifier");
    v.verify(&token(&k1())).await.expect("k1 accepted");
    let header = json!({"alg": "ES256", "typ": "at+jwt"});
    let c = v
        .verify(&mint_with_header(&ec, &header, &claims()))
        .await
        .expect("the kid-less key verifies a token without kid");
    assert_eq!(c.key_id(), None);
    assert_eq!(v.key_health(), KeyHealth::Fresh { keys: 2 });
    server.stop().await;
}

#[tokio::test]
async fn keys_of_different_types_sharing_a_kid_are_both_kept() {
    let rsa = key(Algorithm::RS256, 0, "same");
    let ec = key(Algorithm::ES256, 0, "same");
    let server = Server::start(&[&rsa, &ec]).await;
    let v = server.builder().build().expect("verifier");
    let c = v.verify(&token(&rsa)).await.expect("the RSA key verifies");
    assert_eq!(c.key_id(), Some("same"));
    v.verify(&token(&ec)).await.expect("the EC key verifies");
    assert_eq!(v.key_health(), KeyHealth::Fresh { keys: 2 });
    // A token naming the kid with a third algorithm matches neither key.
    let eddsa = key(Algorithm::EdDSA, 0, "same");
    assert_eq!(
        reason(v.verify(&token(&eddsa)).await),
        R::KeyAlgorithmMismatch
    );
    server.stop().await;
}

#[tokio::test]
async fn keys_of_one_type_sharing_a_kid_are_both_dropped() {
    let a = key(Algorithm::RS256, 0, "same");
    let b = key(Algorithm::RS256, 1, "same");
    let server = Server::start(&[&a, &b, &k2()]).await;
    let v = server.builder().build().expect("verifier");
    assert_eq!(reason(v.verify(&token(&a)).await), R::UnknownKey);
    v.verify(&token(&k2()))
        .await
        .expect("the other key is kept");
    assert_eq!(v.key_health(), KeyHealth::Fresh { keys: 1 });
    server.stop().await;
}

// ---- the verified-token cache ----

#[tokio::test]
async fn a_token_verified_twice_is_answered_from_the_cache() {
    let server = Server::start(&[&k1()]).await;
    let v = server.builder().build().expect("verifier");
    let t = token(&k1());
    let first = v.verify(&t).await.expect("accepted");
    let second = v.verify(&t).await.expect("accepted");
    // A cache hit hands out the claims verified the first time, not a fresh parse.
    assert!(std::ptr::eq(first.as_json(), second.as_json()));
    server.stop().await;
}

#[tokio::test]
async fn without_the_cache_every_verification_is_done_afresh() {
    let server = Server::start(&[&k1()]).await;
    let v = server.builder().token_cache(0).build().expect("verifier");
    let t = token(&k1());
    let first = v.verify(&t).await.expect("accepted");
    let second = v.verify(&t).await.expect("accepted");
    assert!(!std::ptr::eq(first.as_json(), second.as_json()));
    server.stop().await;
}

#[tokio::test]
async fn a_cached_token_is_refused_once_its_key_leaves_the_jwks() {
    let server = Server::start(&[&k1(), &k2()]).await;
    let v = server.builder().build().expect("verifier");
    let t = token(&k1());
    let first = v.verify(&t).await.expect("accepted");
    let cached = v.verify(&t).await.expect("accepted");
    assert!(
        std::ptr::eq(first.as_json(), cached.as_json()),
        "not cached"
    );
    server.set_keys(&[&k2()]);
    v.refresh_keys().await.expect("refreshed");
    assert_eq!(reason(v.verify(&t).await), R::UnknownKey);
    server.stop().await;
}

#[tokio::test]
async fn a_cached_token_stays_cached_across_a_refresh_that_keeps_its_key() {
    let server = Server::start(&[&k1(), &k2()]).await;
    let v = server.builder().build().expect("verifier");
    let t = token(&k1());
    let first = v.verify(&t).await.expect("accepted");
    v.refresh_keys().await.expect("refreshed");
    assert_eq!(server.jwks_hits(), 2);
    let again = v.verify(&t).await.expect("accepted");
    assert!(
        std::ptr::eq(first.as_json(), again.as_json()),
        "the refresh dropped the cached verification although k1 stayed"
    );
    server.stop().await;
}
