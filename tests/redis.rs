//! A fleet sharing state on Redis (feature `redis`): real `redis-server` processes on
//! loopback ports, started and stopped by each test (a standalone server, and a three-node
//! Cluster made with `redis-cli --cluster create`).
//!
//! Needs `redis-server` and `redis-cli` (Debian: `apt-get install redis-server
//! redis-tools`). Without them every test passes after printing why it was skipped, unless
//! `BEARER_GUARD_REDIS=require` is set (as `.ci/run` does), which turns a skip into a failure.
#![cfg(all(
    feature = "redis",
    feature = "axum",
    feature = "dev-issuer",
    any(feature = "aws-lc-rs", feature = "rust-crypto")
))]
#![allow(clippy::unwrap_used)]

mod common;
mod support_redis;

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use base64::Engine as _;
use bearer_guard::dev_issuer::{SigningKey, jwk_set};
use bearer_guard::dpop::{Dpop, ReplayCheck, ReplayKey, ReplayStore, jwk_thumbprint};
use bearer_guard::store::redis::RedisStore;
use bearer_guard::{Algorithm, AuthErrorKind, JwtAuthLayer, Verifier};
use http::{Request, Response, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support_redis::{RedisServer, free_port, require_redis};
use tower::ServiceExt;

const SECRET: &[u8] = b"fleet-secret-of-at-least-32-bytes!!";
const OTHER_SECRET: &[u8] = b"another-secret-of-at-least-32-bytes";

async fn store(server: &RedisServer, prefix: &str) -> RedisStore {
    let s = RedisStore::builder(server.url())
        .key_prefix(prefix)
        .timeout(Duration::from_millis(100))
        .snapshot_secret(SECRET.to_vec())
        .build()
        .expect("store");
    s.connect().await.expect("connected");
    s
}

// ---------------------------------------------------------------------------------------
// DPoP: tokens, proofs, two replicas

const ISS: &str = "https://issuer.test/";
const AUD: &str = "urn:worldmappers";
const ORIGIN: &str = "https://api.example";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn issuer_key() -> SigningKey {
    SigningKey::from_pool(Algorithm::RS256, 0, "k1").expect("pool key")
}

/// A client's DPoP key (a pool key: the same code with both crypto backends).
struct ProofKey(SigningKey, Value);

impl ProofKey {
    fn new() -> Self {
        let key = SigningKey::from_pool(Algorithm::ES256, 0, "p").expect("pool key");
        let mut jwk = key.public_jwk();
        for m in ["kid", "alg", "use"] {
            jwk.as_object_mut().unwrap().remove(m);
        }
        Self(key, jwk)
    }

    fn jkt(&self) -> String {
        jwk_thumbprint(self.1.as_object().unwrap()).unwrap()
    }

    fn proof(&self, path: &str, token: &str) -> String {
        static JTI: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = JTI.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.1});
        let claims = json!({"jti": format!("jti-{n}-{}-{}", now(), std::process::id()),
            "htm": "GET", "htu": format!("{ORIGIN}{path}"), "iat": now(),
            "ath": B64.encode(Sha256::digest(token.as_bytes()))});
        let msg = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = self.0.sign_bytes(msg.as_bytes()).unwrap();
        format!("{msg}.{}", B64.encode(sig))
    }

    fn bound_token(&self) -> String {
        issuer_key()
            .sign(
                &json!({"iss": ISS, "aud": AUD, "sub": "gift-deliveries@clients",
                "exp": now() + 600, "iat": now(), "cnf": {"jkt": self.jkt()}}),
            )
            .unwrap()
    }
}

/// One replica: the World Mappers route behind the layer, DPoP replay checked in `replay`.
fn replica(replay: RedisStore) -> Router {
    let verifier = Verifier::builder()
        .issuer(ISS)
        .audience(AUD)
        .jwks_json(jwk_set([&issuer_key()]).to_string())
        .build()
        .unwrap();
    let dpop = Dpop::builder()
        .public_url(ORIGIN)
        .replay_store(replay)
        .replay_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    Router::new()
        .route("/maps", get(|| async { "maps" }))
        .layer(JwtAuthLayer::new(verifier).dpop(dpop))
}

async fn send(app: &Router, token: &str, proof: &str) -> Response<Body> {
    let req = Request::builder()
        .uri("/maps")
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .body(Body::empty())
        .unwrap();
    app.clone().oneshot(req).await.unwrap()
}

fn kind(res: &Response<Body>) -> Option<AuthErrorKind> {
    res.extensions()
        .get::<bearer_guard::AuthError>()
        .map(bearer_guard::AuthError::kind)
}

#[tokio::test]
async fn a_dpop_proof_accepted_by_one_replica_is_refused_by_the_other() {
    require_redis!();
    let server = RedisServer::start();
    let a = replica(store(&server, "wm:").await);
    let b = replica(store(&server, "wm:").await);
    let key = ProofKey::new();
    let token = key.bound_token();
    let proof = key.proof("/maps", &token);
    assert_eq!(send(&a, &token, &proof).await.status(), StatusCode::OK);
    let again = send(&b, &token, &proof).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        kind(&again),
        Some(AuthErrorKind::InvalidDpopProof(
            bearer_guard::DpopProofReason::Replayed
        ))
    );
    // A fresh proof is still accepted by either.
    let fresh = key.proof("/maps", &token);
    assert_eq!(send(&b, &token, &fresh).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn replay_keys_are_fixed_size_hashes_under_the_prefix_with_the_proofs_lifetime() {
    require_redis!();
    let server = RedisServer::start();
    let s = store(&server, "wm:").await;
    let key = ReplayKey::new("thumbprint", "the-jti");
    assert_eq!(
        s.check_and_insert(key, Duration::from_secs(90)).await,
        Ok(ReplayCheck::Fresh)
    );
    let keys = server.cli(&["KEYS", "*"]);
    let keys: Vec<&str> = keys.lines().collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].starts_with("wm:dpop:") && keys[0].len() == "wm:dpop:".len() + 64);
    assert!(!keys[0].contains("the-jti") && !keys[0].contains("thumbprint"));
    let ttl: u64 = server.cli(&["PTTL", keys[0]]).trim().parse().unwrap();
    assert!((80_000..=90_000).contains(&ttl), "{ttl}");
}

/// Many DPoP requests at once, each timed: (status, Retry-After present, elapsed).
async fn burst(
    app: &Router,
    key: &ProofKey,
    token: &str,
    n: usize,
) -> Vec<(StatusCode, bool, Duration)> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let app = app.clone();
        let proof = key.proof("/maps", token);
        let token = token.to_owned();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let res = send(&app, &token, &proof).await;
            (
                res.status(),
                res.headers().contains_key("retry-after"),
                t.elapsed(),
            )
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("no panic"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_under_load_fails_closed_fast_and_service_returns_with_it() {
    require_redis!();
    let mut server = RedisServer::start();
    let timeout = Duration::from_millis(100);
    let s = RedisStore::builder(server.url())
        .timeout(timeout)
        .build()
        .unwrap();
    s.connect().await.unwrap();
    let app = replica(s.clone());
    let key = ProofKey::new();
    let token = key.bound_token();
    for (status, _, _) in burst(&app, &key, &token, 20).await {
        assert_eq!(status, StatusCode::OK);
    }
    // Under load: stop Redis while requests run.
    let load = {
        let (app, token) = (app.clone(), token.clone());
        tokio::spawn(async move {
            let key = ProofKey::new();
            let mut all = Vec::new();
            for _ in 0..10 {
                all.extend(burst(&app, &key, &token, 10).await);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            all
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.stop();
    let during = load.await.expect("no panic");
    // Generous for verification on a shared 2-core machine, but far below what an
    // unbounded wait would cost.
    let bound = timeout + Duration::from_millis(400);
    for (status, retry_after, elapsed) in &during {
        assert!(
            *status == StatusCode::OK
                || (*status == StatusCode::SERVICE_UNAVAILABLE && *retry_after),
            "{status} retry-after {retry_after}"
        );
        assert!(*elapsed <= bound, "a request took {elapsed:?}");
    }
    // Redis down: every request is answered 503 + Retry-After, fast (the circuit is open).
    let down = burst(&app, &key, &token, 20).await;
    for (status, retry_after, elapsed) in &down {
        assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(*retry_after);
        assert!(*elapsed <= bound, "{elapsed:?}");
    }
    assert!(s.is_unavailable(), "the circuit is open");
    // Redis back: service resumes on its own (within the circuit's longest pause).
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        let proof = key.proof("/maps", &token);
        if send(&app, &token, &proof).await.status() == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "service did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (status, _, _) in burst(&app, &key, &token, 20).await {
        assert_eq!(status, StatusCode::OK);
    }
}

#[tokio::test]
async fn with_the_opt_in_fallback_a_dead_redis_means_replay_checked_in_memory() {
    require_redis!();
    let mut server = RedisServer::start();
    let s = RedisStore::builder(server.url())
        .timeout(Duration::from_millis(100))
        .replay_fallback_in_memory(1000)
        .build()
        .unwrap();
    s.connect().await.unwrap();
    let app = replica(s);
    server.stop();
    let key = ProofKey::new();
    let token = key.bound_token();
    let proof = key.proof("/maps", &token);
    assert_eq!(send(&app, &token, &proof).await.status(), StatusCode::OK);
    let again = send(&app, &token, &proof).await;
    assert_eq!(
        again.status(),
        StatusCode::UNAUTHORIZED,
        "replay still refused in this replica"
    );
}

// ---------------------------------------------------------------------------------------
// Key-set snapshots

fn replica_verifier(issuer: &common::Server, snapshots: RedisStore) -> Verifier {
    issuer
        .builder()
        .keyset_snapshots(snapshots, Duration::from_secs(3600))
        .build()
        .unwrap()
}

/// Waits until the first replica's snapshot is in Redis.
async fn wait_for_snapshot(server: &RedisServer) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let keys = server.cli(&["KEYS", "*keyset:*"]);
        if let Some(k) = keys.lines().next().filter(|k| !k.is_empty()) {
            return k.to_owned();
        }
        assert!(Instant::now() < deadline, "no snapshot was written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_replica_started_while_the_issuer_is_down_serves_tokens_from_the_snapshot() {
    require_redis!();
    let server = RedisServer::start();
    let k = common::key(Algorithm::RS256, 0, "k1");
    let issuer = common::Server::start(&[&k]).await;
    let token = common::token(&k);
    let first = replica_verifier(&issuer, store(&server, "wm:").await);
    first
        .verify(&token)
        .await
        .expect("first replica fetched the keys");
    let key = wait_for_snapshot(&server).await;
    assert_eq!(key.len(), "wm:keyset:".len() + 64, "{key}");
    issuer.reply(common::Reply::Status(503));
    let second = replica_verifier(&issuer, store(&server, "wm:").await);
    let claims = second
        .verify(&token)
        .await
        .expect("served from the snapshot");
    assert_eq!(claims.issuer(), common::ISSUER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_call_waits_longer_than_a_call_on_the_request_path() {
    require_redis!();
    use bearer_guard::store::{KeySetSnapshot, KeySetSnapshots};
    let server = RedisServer::start();
    // The request path's bound is 30 ms; snapshots keep their default (500 ms).
    let s = RedisStore::builder(server.url())
        .timeout(Duration::from_millis(30))
        .snapshot_secret(SECRET.to_vec())
        .build()
        .expect("store");
    s.connect().await.expect("connected");
    let snapshot = KeySetSnapshot {
        document: br#"{"keys":[]}"#.to_vec(),
        fetched_at: SystemTime::now(),
    };
    // Redis stalls for 150 ms (frozen, then thawed): longer than a replay check may wait,
    // shorter than a snapshot call may.
    server.pause();
    let thaw = std::thread::spawn({
        let pid = server.pid();
        move || {
            std::thread::sleep(Duration::from_millis(150));
            let _ = Command::new("kill").args(["-CONT", &pid]).status();
        }
    });
    let (replay, saved) = tokio::join!(
        s.check_and_insert(ReplayKey::new("t", "stalled"), Duration::from_secs(90)),
        s.save("https://issuer.test/", &snapshot),
    );
    thaw.join().unwrap();
    assert!(
        replay.is_err(),
        "the replay check gave up at 30 ms: {replay:?}"
    );
    saved.expect("the snapshot call waited for the stalled Redis");
    let loaded = s
        .load("https://issuer.test/")
        .await
        .expect("load")
        .expect("the snapshot is there");
    assert_eq!(loaded.document, snapshot.document);
}

#[test]
fn a_snapshot_timeout_out_of_range_is_refused_by_build() {
    let err = RedisStore::builder("redis://127.0.0.1:6379/")
        .snapshot_timeout(Duration::from_secs(11))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("snapshot_timeout"), "{err}");
}

#[tokio::test]
async fn a_snapshot_written_with_another_secret_is_ignored() {
    require_redis!();
    let server = RedisServer::start();
    let k = common::key(Algorithm::RS256, 0, "k1");
    let issuer = common::Server::start(&[&k]).await;
    let token = common::token(&k);
    let other = RedisStore::builder(server.url())
        .key_prefix("wm:")
        .timeout(Duration::from_millis(100))
        .snapshot_secret(OTHER_SECRET.to_vec())
        .build()
        .unwrap();
    replica_verifier(&issuer, other)
        .verify(&token)
        .await
        .expect("fetched");
    wait_for_snapshot(&server).await;
    issuer.reply(common::Reply::Status(503));
    let second = replica_verifier(&issuer, store(&server, "wm:").await);
    let e = second.verify(&token).await.expect_err("no trusted keys");
    assert_eq!(e.kind(), AuthErrorKind::KeysUnavailable);
}

#[tokio::test]
async fn a_snapshot_edited_in_redis_is_ignored() {
    require_redis!();
    let server = RedisServer::start();
    let k = common::key(Algorithm::RS256, 0, "k1");
    let issuer = common::Server::start(&[&k]).await;
    let token = common::token(&k);
    replica_verifier(&issuer, store(&server, "wm:").await)
        .verify(&token)
        .await
        .expect("fetched");
    let key = wait_for_snapshot(&server).await;
    // One byte of the document changed (past the 45-byte header).
    let len: usize = server
        .cli(&["SETRANGE", &key, "60", "X"])
        .trim()
        .parse()
        .unwrap();
    assert!(len > 60, "{len}");
    issuer.reply(common::Reply::Status(503));
    let second = replica_verifier(&issuer, store(&server, "wm:").await);
    let e = second.verify(&token).await.expect_err("no trusted keys");
    assert_eq!(e.kind(), AuthErrorKind::KeysUnavailable);
}

#[tokio::test]
async fn a_replica_meeting_an_unknown_kid_takes_a_newer_snapshot_before_fetching() {
    require_redis!();
    let server = RedisServer::start();
    let k1 = common::key(Algorithm::RS256, 0, "k1");
    let k2 = common::key(Algorithm::RS256, 1, "k2");
    let issuer = common::Server::start(&[&k1]).await;
    let a = replica_verifier(&issuer, store(&server, "wm:").await);
    let b = replica_verifier(&issuer, store(&server, "wm:").await);
    a.verify(&common::token(&k1)).await.expect("a");
    b.verify(&common::token(&k1)).await.expect("b");
    // The issuer rotates; replica A meets the new kid first and fetches.
    issuer.set_keys(&[&k1, &k2]);
    tokio::time::sleep(Duration::from_millis(20)).await;
    a.verify(&common::token(&k2)).await.expect("a fetched k2");
    let fetches = issuer.jwks_hits();
    // Wait for A's snapshot (newer than B's keys), then B meets k2: no fetch of its own.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = store(&server, "wm:").await;
        let found = bearer_guard::store::KeySetSnapshots::load(&s, common::ISSUER)
            .await
            .unwrap();
        if found.is_some_and(|f| String::from_utf8_lossy(&f.document).contains("k2")) {
            break;
        }
        assert!(Instant::now() < deadline, "A's snapshot never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.verify(&common::token(&k2))
        .await
        .expect("b took the snapshot");
    assert_eq!(issuer.jwks_hits(), fetches, "B did not fetch");
}

// ---------------------------------------------------------------------------------------
// Redis Cluster

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_check_and_insert_works_on_a_three_node_cluster() {
    require_redis!();
    let nodes: Vec<RedisServer> = (0..3)
        .map(|_| RedisServer::start_on(free_port(true), true))
        .collect();
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let out = Command::new("redis-cli")
        .arg("--cluster")
        .arg("create")
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("redis-cli --cluster create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !nodes
        .iter()
        .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
    {
        assert!(Instant::now() < deadline, "the cluster did not form");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = RedisStore::builder(format!("redis+cluster://{}", addrs.join(",")))
        .timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    s.connect().await.expect("cluster connection");
    // Keys spread over the three nodes' slots.
    for i in 0..30 {
        let key = ReplayKey::new("jkt", &format!("jti-{i}"));
        assert_eq!(
            s.check_and_insert(key, Duration::from_secs(60)).await,
            Ok(ReplayCheck::Fresh),
            "{i}"
        );
        assert_eq!(
            s.check_and_insert(key, Duration::from_secs(60)).await,
            Ok(ReplayCheck::Replayed),
            "{i}"
        );
    }
    let held: usize = nodes
        .iter()
        .map(|n| n.cli(&["DBSIZE"]).trim().parse::<usize>().unwrap())
        .collect::<Vec<_>>()
        .iter()
        .inspect(|&&n| assert!(n > 0, "every node holds some keys"))
        .sum();
    assert_eq!(held, 30);
}

// ---------------------------------------------------------------------------------------
// The introspection cache

#[cfg(feature = "introspection")]
fn introspector(url: &str, cache: RedisStore) -> bearer_guard::introspection::Introspector {
    bearer_guard::introspection::Introspector::builder()
        .issuer(ISS)
        .audience(AUD)
        .introspection_endpoint(url)
        .client_id("world-mappers")
        .client_secret("wm-secret")
        .cache(cache)
        .build()
        .unwrap()
}

#[cfg(feature = "introspection")]
#[tokio::test]
async fn one_opaque_token_sent_to_two_replicas_is_introspected_once() {
    require_redis!();
    let server = RedisServer::start();
    let (url, calls) = introspection_endpoint().await;
    let a = introspector(&url, store(&server, "wm:").await);
    let b = introspector(&url, store(&server, "wm:").await);
    let token = "an-opaque-token-of-gift-deliveries";
    let ca = a.introspect(token).await.expect("a");
    let cb = b.introspect(token).await.expect("b: from the shared cache");
    assert_eq!(cb.subject(), ca.subject());
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    // The cache holds a hash of the token, never the token.
    let keys = server.cli(&["KEYS", "*"]);
    assert!(keys.contains("wm:introspection:"), "{keys}");
    assert!(!keys.contains(token));
    let key = keys.lines().find(|k| k.contains("introspection")).unwrap();
    let value = server.cli(&["GET", key]);
    assert!(!value.contains(token), "{value}");
}

#[cfg(feature = "introspection")]
#[tokio::test]
async fn with_redis_down_introspection_goes_to_the_endpoint_directly() {
    require_redis!();
    let mut server = RedisServer::start();
    let (url, calls) = introspection_endpoint().await;
    let a = introspector(&url, store(&server, "wm:").await);
    server.stop();
    a.introspect("token-one")
        .await
        .expect("answered by the endpoint");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------------------
// The introspection cache: bound to the configuration, authenticated, bounded reads

/// An RFC 7662 endpoint answering `inactive` for tokens containing "inactive", else
/// `active` for `AUD`; counts its calls.
#[cfg(feature = "introspection")]
async fn introspection_endpoint() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let app = Router::new().route(
        "/introspect",
        axum::routing::post(move |form: String| {
            let calls = counted.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                if form.contains("inactive") {
                    axum::Json(json!({"active": false}))
                } else {
                    axum::Json(json!({"active": true, "iss": ISS, "aud": AUD,
                        "exp": now() + 600, "iat": now(), "sub": "gift-deliveries",
                        "scope": "directions"}))
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/introspect"), calls)
}

/// The one introspection key in Redis.
#[cfg(feature = "introspection")]
fn introspection_key(server: &RedisServer) -> String {
    let keys = server.cli(&["KEYS", "*introspection:*"]);
    let mut lines = keys.lines().filter(|k| !k.is_empty());
    let key = lines.next().unwrap_or_else(|| panic!("no entry: {keys}"));
    assert!(lines.next().is_none(), "{keys}");
    key.to_owned()
}

#[cfg(feature = "introspection")]
fn calls_of(calls: &std::sync::atomic::AtomicUsize) -> usize {
    calls.load(std::sync::atomic::Ordering::SeqCst)
}

#[cfg(feature = "introspection")]
#[tokio::test]
async fn an_introspection_answer_cached_in_redis_for_another_audience_is_not_used() {
    require_redis!();
    let server = RedisServer::start();
    let (url, calls) = introspection_endpoint().await;
    // Two APIs of different audiences sharing a Redis under the default prefix.
    let api_a = introspector(&url, store(&server, "bearer-guard:").await);
    let api_b = bearer_guard::introspection::Introspector::builder()
        .issuer(ISS)
        .audience("urn:another-api")
        .introspection_endpoint(&url)
        .client_id("another-api")
        .client_secret("other-secret")
        .cache(store(&server, "bearer-guard:").await)
        .build()
        .unwrap();
    let token = "a-token-for-world-mappers";
    api_a.introspect(token).await.expect("active for A");
    let e = api_b.introspect(token).await.expect_err("not for B");
    assert_eq!(
        e.kind(),
        AuthErrorKind::InvalidToken(bearer_guard::InvalidTokenReason::WrongAudience)
    );
    assert_eq!(calls_of(&calls), 2, "B asked the endpoint itself");
}

#[cfg(feature = "introspection")]
#[tokio::test]
async fn an_introspection_entry_planted_in_redis_is_ignored_when_a_secret_is_set() {
    require_redis!();
    let server = RedisServer::start();
    let (url, calls) = introspection_endpoint().await;
    let a = introspector(&url, store(&server, "wm:").await);
    let b = introspector(&url, store(&server, "wm:").await);
    let token = "an-inactive-token";
    let e = a.introspect(token).await.expect_err("inactive");
    assert_eq!(
        e.kind(),
        AuthErrorKind::InvalidToken(bearer_guard::InvalidTokenReason::Inactive)
    );
    // Someone who can write to Redis turns the answer into an active one.
    let key = introspection_key(&server);
    let forged = format!(
        r#"A{{"iss":"{ISS}","aud":"{AUD}","exp":{},"sub":"mallory","scope":"directions"}}"#,
        now() + 600
    );
    assert_eq!(
        server.cli(&["SET", &key, &forged, "PX", "60000"]).trim(),
        "OK"
    );
    let e = b.introspect(token).await.expect_err("still inactive");
    assert_eq!(
        e.kind(),
        AuthErrorKind::InvalidToken(bearer_guard::InvalidTokenReason::Inactive)
    );
    assert_eq!(calls_of(&calls), 2, "the planted entry was a miss");
}

#[cfg(feature = "introspection")]
#[tokio::test]
async fn an_introspection_entry_edited_in_redis_is_ignored_when_a_secret_is_set() {
    require_redis!();
    let server = RedisServer::start();
    let (url, calls) = introspection_endpoint().await;
    let a = introspector(&url, store(&server, "wm:").await);
    let b = introspector(&url, store(&server, "wm:").await);
    let token = "an-active-token";
    a.introspect(token).await.expect("active");
    let key = introspection_key(&server);
    // One character of the answer's JSON changed (inside its last string value).
    let len: usize = server.cli(&["STRLEN", &key]).trim().parse().unwrap();
    server.cli(&["SETRANGE", &key, &(len - 3).to_string(), "Z"]);
    let claims = b
        .introspect(token)
        .await
        .expect("active, from the endpoint");
    assert_eq!(claims.subject(), Some("gift-deliveries"));
    assert_eq!(calls_of(&calls), 2, "the edited entry was a miss");
    // Written with another secret: a miss too.
    let other = RedisStore::builder(server.url())
        .key_prefix("wm:")
        .timeout(Duration::from_millis(100))
        .snapshot_secret(OTHER_SECRET.to_vec())
        .build()
        .unwrap();
    other.connect().await.unwrap();
    let c = introspector(&url, other);
    c.introspect(token).await.expect("active");
    assert_eq!(calls_of(&calls), 3, "another secret's entry was a miss");
}

/// `total_net_output_bytes` of the server.
#[cfg(feature = "introspection")]
fn bytes_sent(server: &RedisServer) -> u64 {
    let info = server.cli(&["INFO", "stats"]);
    info.lines()
        .find_map(|l| l.strip_prefix("total_net_output_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{info}"))
}

#[cfg(feature = "introspection")]
#[tokio::test]
async fn an_oversized_introspection_entry_is_read_no_further_than_the_cap() {
    require_redis!();
    let server = RedisServer::start();
    let (url, calls) = introspection_endpoint().await;
    // A generous timeout: the read is bounded by its size, not by the clock.
    let patient = RedisStore::builder(server.url())
        .key_prefix("wm:")
        .timeout(Duration::from_secs(5))
        .snapshot_secret(SECRET.to_vec())
        .build()
        .unwrap();
    patient.connect().await.unwrap();
    let a = introspector(&url, patient);
    let token = "an-active-token";
    a.introspect(token).await.expect("active");
    // Someone who can write to Redis grows the entry to 20 MB.
    let key = introspection_key(&server);
    server.cli(&["SETRANGE", &key, "20000000", "x"]);
    let b = introspector(&url, store(&server, "wm:").await);
    let before = bytes_sent(&server);
    b.introspect(token)
        .await
        .expect("active, from the endpoint");
    let sent = bytes_sent(&server) - before;
    assert!(sent < 1024 * 1024, "{sent} bytes read");
    assert_eq!(calls_of(&calls), 2, "the oversized entry was a miss");
}

/// Log lines of this test binary from WARN up, captured by one global subscriber (the only
/// one: a thread-local one would race with the other tests' threads over the callsites'
/// cached interest).
fn captured_logs() -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    use std::sync::{Arc, Mutex, OnceLock};
    #[derive(Clone)]
    struct Writer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Writer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let writer = Writer(logs.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .with_writer(move || writer.clone())
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        logs
    })
    .clone()
}

#[cfg(feature = "introspection")]
#[tokio::test]
async fn without_a_secret_replicas_share_introspection_answers_and_a_warning_says_redis_is_trusted()
{
    require_redis!();
    let logs = captured_logs();
    let server = RedisServer::start();
    let (url, calls) = introspection_endpoint().await;
    let bare = || {
        RedisStore::builder(server.url())
            .key_prefix("wm:")
            .timeout(Duration::from_millis(100))
            .build()
            .unwrap()
    };
    let a = introspector(&url, bare());
    let b = introspector(&url, bare());
    let token = "an-active-token";
    a.introspect(token).await.expect("a");
    b.introspect(token).await.expect("b: from the shared cache");
    assert_eq!(calls_of(&calls), 1);
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("introspection cache on Redis has no secret"))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);
}

// ---------------------------------------------------------------------------------------
// Review of the Redis store (helper rvstore): callers' bounds and the circuit, the probe,
// oversized and future-dated snapshots. Kept together.

mod review {
    use super::*;
    use bearer_guard::store::{KeySetSnapshot, KeySetSnapshots};

    /// Every WARN line of this test binary ([`captured_logs`]).
    fn logs() -> Logs {
        Logs(captured_logs())
    }

    /// Log lines, captured.
    struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Logs {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    /// The Redis key of `issuer`'s snapshot under `prefix`.
    fn snapshot_key(prefix: &str, issuer: &str) -> String {
        let hash: String = Sha256::digest(issuer.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{prefix}keyset:{hash}")
    }

    /// Bytes Redis has sent to its clients so far.
    fn sent_by(server: &RedisServer) -> u64 {
        server
            .cli(&["INFO", "stats"])
            .lines()
            .find_map(|l| l.strip_prefix("total_net_output_bytes:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_cutting_calls_shorter_than_the_stores_bound_still_opens_the_circuit_on_a_frozen_redis()
     {
        require_redis!();
        let server = RedisServer::start();
        // The request path's bound is 20 ms, a snapshot call's 2 s; the caller gives up
        // after 150 ms, every time.
        let s = RedisStore::builder(server.url())
            .timeout(Duration::from_millis(20))
            .snapshot_timeout(Duration::from_secs(2))
            .snapshot_secret(SECRET.to_vec())
            .build()
            .unwrap();
        s.connect().await.unwrap();
        server.pause();
        for _ in 0..2 {
            let cut = tokio::time::timeout(Duration::from_millis(150), s.load(ISS)).await;
            assert!(cut.is_err(), "the caller's bound fired: {cut:?}");
        }
        assert!(
            s.is_unavailable(),
            "two calls dropped after the store's own request-path bound open the circuit"
        );
        let t = Instant::now();
        let answer = s.load(ISS).await;
        assert!(answer.is_err(), "{answer:?}");
        // Without the open circuit this call would wait for the snapshot bound (2 s).
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "answered at once (not after the snapshot call's 2 s): {:?}",
            t.elapsed()
        );
        server.resume();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_giving_up_before_the_stores_own_timeout_does_not_open_the_circuit() {
        require_redis!();
        let server = RedisServer::start();
        let s = RedisStore::builder(server.url())
            .timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        s.connect().await.unwrap();
        server.pause();
        for n in 0..3 {
            let key = ReplayKey::new("t", &format!("given-up-{n}"));
            let cut = tokio::time::timeout(
                Duration::from_millis(30),
                s.check_and_insert(key, Duration::from_secs(90)),
            )
            .await;
            assert!(cut.is_err(), "{cut:?}");
        }
        assert!(
            !s.is_unavailable(),
            "a caller's own reasons (a client gone away) say nothing about Redis"
        );
        server.resume();
        assert_eq!(
            s.check_and_insert(ReplayKey::new("t", "after"), Duration::from_secs(90))
                .await,
            Ok(ReplayCheck::Fresh)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dpop_replay_timeout_shorter_than_the_stores_waits_for_it_and_a_frozen_redis_opens_the_circuit()
     {
        require_redis!();
        let server = RedisServer::start();
        let s = RedisStore::builder(server.url())
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        s.connect().await.unwrap();
        let verifier = Verifier::builder()
            .issuer(ISS)
            .audience(AUD)
            .jwks_json(jwk_set([&issuer_key()]).to_string())
            .build()
            .unwrap();
        // The DPoP layer's own bound (50 ms) is shorter than the store's (300 ms).
        let dpop = Dpop::builder()
            .public_url(ORIGIN)
            .replay_store(s.clone())
            .replay_timeout(Duration::from_millis(50))
            .build()
            .unwrap();
        let app = Router::new()
            .route("/maps", get(|| async { "maps" }))
            .layer(JwtAuthLayer::new(verifier).dpop(dpop));
        let key = ProofKey::new();
        let token = key.bound_token();
        assert_eq!(
            send(&app, &token, &key.proof("/maps", &token))
                .await
                .status(),
            StatusCode::OK
        );
        server.pause();
        for _ in 0..2 {
            let res = send(&app, &token, &key.proof("/maps", &token)).await;
            assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        }
        assert!(s.is_unavailable(), "the store's own timeouts were counted");
        let t = Instant::now();
        let res = send(&app, &token, &key.proof("/maps", &token)).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            t.elapsed() < Duration::from_millis(250),
            "answered at once (not after the store's 300 ms): {:?}",
            t.elapsed()
        );
        server.resume();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_key_store_waits_for_the_stores_snapshot_timeout_even_past_one_second() {
        require_redis!();
        let server = RedisServer::start();
        let k = common::key(Algorithm::RS256, 0, "k1");
        let issuer = common::Server::start(&[&k]).await;
        let token = common::token(&k);
        replica_verifier(&issuer, store(&server, "wm:").await)
            .verify(&token)
            .await
            .expect("first replica fetched the keys");
        wait_for_snapshot(&server).await;
        issuer.reply(common::Reply::Status(503));
        // The second replica's snapshot calls may take 5 s; Redis stalls for 2.5 s.
        let s = RedisStore::builder(server.url())
            .key_prefix("wm:")
            .timeout(Duration::from_millis(100))
            .snapshot_timeout(Duration::from_secs(5))
            .snapshot_secret(SECRET.to_vec())
            .build()
            .unwrap();
        s.connect().await.unwrap();
        let second = replica_verifier(&issuer, s);
        server.pause();
        let thaw = std::thread::spawn({
            let pid = server.pid();
            move || {
                std::thread::sleep(Duration::from_millis(2500));
                let _ = Command::new("kill").args(["-CONT", &pid]).status();
            }
        });
        let verified = second.verify(&token).await;
        thaw.join().unwrap();
        let claims = verified.expect("served from the snapshot, read after the stall");
        assert_eq!(claims.issuer(), common::ISSUER);
    }

    #[tokio::test]
    async fn a_snapshot_value_larger_than_the_cap_is_ignored_without_being_read_whole() {
        require_redis!();
        let logs = logs();
        let server = RedisServer::start();
        let s = store(&server, "big:").await;
        // About 4 MB (zeros, then one byte) at the snapshot's key.
        let key = snapshot_key("big:", ISS);
        let len: usize = server
            .cli(&["SETRANGE", &key, "4000000", "x"])
            .trim()
            .parse()
            .unwrap();
        assert_eq!(len, 4_000_001);
        let before = sent_by(&server);
        assert_eq!(s.load(ISS).await.unwrap(), None);
        let sent = sent_by(&server) - before;
        assert!(
            sent < 2_000_000,
            "Redis sent {sent} bytes for a load: the value was read whole"
        );
        assert!(
            logs.text()
                .contains("larger than the largest snapshot; ignored"),
            "{}",
            logs.text()
        );
    }

    #[tokio::test]
    async fn a_missing_snapshot_is_none() {
        require_redis!();
        let server = RedisServer::start();
        let s = store(&server, "none:").await;
        assert_eq!(s.load(ISS).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_key_set_too_large_to_share_is_not_saved_and_says_so() {
        require_redis!();
        let logs = logs();
        let server = RedisServer::start();
        let s = store(&server, "huge:").await;
        let snapshot = KeySetSnapshot {
            document: vec![b' '; bearer_guard::store::redis::MAX_SNAPSHOT_BYTES + 1],
            fetched_at: SystemTime::now(),
        };
        s.save("https://huge.test/", &snapshot).await.unwrap();
        assert_eq!(server.cli(&["KEYS", "huge:*"]).trim(), "");
        let text = logs.text();
        let line = text
            .lines()
            .find(|l| l.contains("too large to share"))
            .unwrap_or_else(|| panic!("no WARN line: {text}"));
        assert!(line.contains("WARN"), "{line}");
        assert!(line.contains("bytes=1048577"), "{line}");
    }

    /// The first replica's snapshot, re-written dated `ahead` in the future; then a second
    /// replica, started while the issuer is down, verifies a token.
    async fn second_replica_with_a_snapshot_dated_ahead(
        ahead: Duration,
    ) -> Result<bearer_guard::Claims, bearer_guard::AuthError> {
        let server = RedisServer::start();
        let k = common::key(Algorithm::RS256, 0, "k1");
        let issuer = common::Server::start(&[&k]).await;
        let token = common::token(&k);
        replica_verifier(&issuer, store(&server, "wm:").await)
            .verify(&token)
            .await
            .expect("first replica fetched the keys");
        wait_for_snapshot(&server).await;
        let s = store(&server, "wm:").await;
        let mut found = s.load(common::ISSUER).await.unwrap().unwrap();
        found.fetched_at = SystemTime::now() + ahead;
        s.save(common::ISSUER, &found).await.unwrap();
        issuer.reply(common::Reply::Status(503));
        replica_verifier(&issuer, store(&server, "wm:").await)
            .verify(&token)
            .await
    }

    #[tokio::test]
    async fn a_snapshot_dated_in_the_future_is_not_used() {
        require_redis!();
        let logs = logs();
        let e = second_replica_with_a_snapshot_dated_ahead(Duration::from_secs(3600))
            .await
            .expect_err("a snapshot an hour ahead is refused");
        assert_eq!(e.kind(), AuthErrorKind::KeysUnavailable);
        assert!(
            logs.text().contains("dated in the future"),
            "{}",
            logs.text()
        );
    }

    #[tokio::test]
    async fn a_snapshot_dated_a_few_seconds_ahead_is_used() {
        require_redis!();
        let claims = second_replica_with_a_snapshot_dated_ahead(Duration::from_secs(5))
            .await
            .expect("within the clocks' allowed difference");
        assert_eq!(claims.issuer(), common::ISSUER);
    }
}

#[cfg(feature = "introspection")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_introspection_cache_timeout_shorter_than_the_stores_waits_for_it_and_a_frozen_redis_opens_the_circuit()
 {
    require_redis!();
    let server = RedisServer::start();
    // With a secret: without one, the once-per-process "Redis is trusted" WARN would be
    // spent here, out of the sight of the test that looks for it.
    let s = RedisStore::builder(server.url())
        .timeout(Duration::from_millis(300))
        .snapshot_secret(SECRET.to_vec())
        .build()
        .unwrap();
    s.connect().await.unwrap();
    let (url, calls) = introspection_endpoint().await;
    // The introspector's own cache bound (50 ms) is shorter than the store's (300 ms).
    let introspector = bearer_guard::introspection::Introspector::builder()
        .issuer(ISS)
        .audience(AUD)
        .introspection_endpoint(url)
        .client_id("world-mappers")
        .client_secret("wm-secret")
        .cache(s.clone())
        .cache_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    server.pause();
    for i in 0..2 {
        // Redis frozen: each token is introspected at the endpoint directly.
        introspector
            .introspect(&format!("token-{i}"))
            .await
            .expect("active, from the endpoint");
    }
    server.resume();
    assert!(s.is_unavailable(), "the store's own timeouts were counted");
    assert!(calls.load(std::sync::atomic::Ordering::SeqCst) >= 2);
}
