//! The metrics (feature `metrics`), read back from metrics-util's debugging recorder.
//!
//! Each test runs a current-thread runtime inside `metrics::with_local_recorder`, so that
//! every task (the layer, the key store's fetch task, the development issuer) records into
//! that test's own recorder.
#![cfg(all(
    feature = "metrics",
    feature = "axum",
    feature = "dev-issuer",
    any(feature = "aws-lc-rs", feature = "rust-crypto")
))]

use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use bearer_guard::dev_issuer::DevIssuer;
use bearer_guard::metrics::{
    JWKS_AGE, JWKS_FETCHES_TOTAL, JWKS_KEYS, REQUESTS_TOTAL, TOKEN_CACHE_HITS, TOKEN_CACHE_MISSES,
    VERIFICATION_DURATION,
};
use bearer_guard::{Claims, JwtAuthLayer, Verifier, require_scopes};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use serde_json::json;
use tower::ServiceExt;

const AUD: &str = "urn:worldmappers";

/// Runs `test` on a current-thread runtime with its own recorder; returns what was recorded
/// and what the test returned.
fn recorded<T, F: Future<Output = T>>(test: impl FnOnce() -> F) -> (Recorded, T) {
    let recorder = DebuggingRecorder::new();
    let snapshotter: Snapshotter = recorder.snapshotter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let out = metrics::with_local_recorder(&recorder, || rt.block_on(test()));
    let values = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            (key.name().to_owned(), labels, value)
        })
        .collect();
    (Recorded(values), out)
}

/// A metric's name, its sorted labels, and its value.
type Entry = (String, Vec<(String, String)>, DebugValue);

struct Recorded(Vec<Entry>);

impl Recorded {
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<&DebugValue> {
        let mut want: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        want.sort();
        self.0
            .iter()
            .find(|(n, l, _)| n == name && *l == want)
            .map(|(_, _, v)| v)
    }

    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        match self.get(name, labels) {
            Some(DebugValue::Counter(n)) => *n,
            None => 0,
            Some(other) => panic!("{name} is not a counter: {other:?}"),
        }
    }

    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        match self.get(name, labels) {
            Some(DebugValue::Gauge(v)) => Some(v.into_inner()),
            None => None,
            Some(other) => panic!("{name} is not a gauge: {other:?}"),
        }
    }

    fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        match self.get(name, labels) {
            Some(DebugValue::Histogram(v)) => v.iter().map(|x| x.into_inner()).collect(),
            None => Vec::new(),
            Some(other) => panic!("{name} is not a histogram: {other:?}"),
        }
    }

    fn names(&self) -> Vec<&str> {
        self.0.iter().map(|(n, _, _)| n.as_str()).collect()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

async fn dev() -> DevIssuer {
    DevIssuer::builder()
        .audience(AUD)
        .start()
        .await
        .expect("dev issuer")
}

fn verifier(issuer: &str) -> Verifier {
    Verifier::builder()
        .issuer(issuer)
        .audience(AUD)
        .build()
        .expect("verifier")
}

fn app(layer: JwtAuthLayer) -> Router {
    Router::new()
        .route(
            "/directions",
            get(|c: Claims| async move { c.subject().unwrap_or_default().to_owned() }),
        )
        .route_layer(require_scopes(["directions"]))
        .route(
            "/maybe",
            get(|c: Option<Claims>| async move { c.is_some().to_string() }),
        )
        .layer(layer)
}

/// The status of `GET path` with these `Authorization` headers.
async fn status(app: &Router, path: &str, authorization: &[&str]) -> u16 {
    let mut req = http::Request::get(path);
    for a in authorization {
        req = req.header("authorization", *a);
    }
    let req = req.body(axum::body::Body::empty()).expect("request");
    app.clone()
        .oneshot(req)
        .await
        .expect("infallible")
        .status()
        .as_u16()
}

#[test]
fn every_outcome_is_counted_by_reason() {
    let (r, ()) = recorded(|| async {
        let dev = dev().await;
        let api = app(JwtAuthLayer::new(verifier(dev.issuer())));
        let good = format!(
            "Bearer {}",
            dev.mint(json!({"sub": "gift-deliveries", "scope": "directions"}))
                .expect("mint")
        );
        let no_scope = format!("Bearer {}", dev.mint(json!({})).expect("mint"));
        let expired = format!(
            "Bearer {}",
            dev.mint(json!({"exp": now() - 3600})).expect("mint")
        );
        let other_aud = format!(
            "Bearer {}",
            dev.mint(json!({"aud": "urn:other"})).expect("mint")
        );
        assert_eq!(status(&api, "/directions", &[&good]).await, 200);
        assert_eq!(status(&api, "/directions", &[&good]).await, 200);
        assert_eq!(status(&api, "/directions", &[&no_scope]).await, 403);
        assert_eq!(status(&api, "/directions", &[&expired]).await, 401);
        assert_eq!(status(&api, "/directions", &[&other_aud]).await, 401);
        assert_eq!(status(&api, "/directions", &[]).await, 401);
        assert_eq!(status(&api, "/directions", &[&good, &good]).await, 400);

        // Optional authentication: the anonymous request passes.
        let optional = app_optional(&dev);
        assert_eq!(status(&optional, "/maybe", &[]).await, 200);

        // An issuer that is down: 503.
        let down = app(JwtAuthLayer::new(verifier("http://127.0.0.1:1/")));
        assert_eq!(status(&down, "/directions", &[&good]).await, 503);
    });
    let requests = |labels: &[(&str, &str)]| r.counter(REQUESTS_TOTAL, labels);
    assert_eq!(requests(&[("outcome", "accepted")]), 3, "{:?}", r.names());
    assert_eq!(requests(&[("outcome", "insufficient_scope")]), 1);
    assert_eq!(
        requests(&[("outcome", "invalid_token"), ("reason", "expired")]),
        1
    );
    assert_eq!(
        requests(&[("outcome", "invalid_token"), ("reason", "wrong_audience")]),
        1
    );
    assert_eq!(requests(&[("outcome", "missing_token")]), 1);
    assert_eq!(requests(&[("outcome", "malformed_request")]), 1);
    assert_eq!(requests(&[("outcome", "anonymous")]), 1);
    assert_eq!(requests(&[("outcome", "keys_unavailable")]), 1);

    // Every verification is timed, by outcome.
    assert_eq!(
        r.histogram(VERIFICATION_DURATION, &[("outcome", "accepted")])
            .len(),
        3
    );
    assert_eq!(
        r.histogram(VERIFICATION_DURATION, &[("outcome", "invalid_token")])
            .len(),
        2
    );
    let down = r.histogram(VERIFICATION_DURATION, &[("outcome", "keys_unavailable")]);
    assert_eq!(down.len(), 1);
    assert!(down.iter().all(|s| *s >= 0.0 && *s < 60.0), "{down:?}");

    // The second use of the good token was a cache hit.
    assert_eq!(r.counter(TOKEN_CACHE_HITS, &[]), 1);
    assert_eq!(r.counter(TOKEN_CACHE_MISSES, &[]), 5);
}

fn app_optional(dev: &DevIssuer) -> Router {
    app(JwtAuthLayer::new(verifier(dev.issuer())).optional())
}

#[test]
fn jwks_fetches_and_the_key_set_are_reported_per_issuer() {
    let (r, issuer) = recorded(|| async {
        let dev = dev().await;
        let v = verifier(dev.issuer());
        v.refresh_keys().await.expect("keys");
        dev.rotate().expect("rotate");
        v.refresh_keys().await.expect("keys again");
        // A readiness probe updates the age.
        let _ = v.key_health();

        let down = verifier("http://127.0.0.1:1/");
        assert!(down.refresh_keys().await.is_err());
        dev.issuer().to_owned()
    });
    let iss = issuer.as_str();
    assert_eq!(
        r.counter(
            JWKS_FETCHES_TOTAL,
            &[("issuer", iss), ("result", "success")]
        ),
        2
    );
    assert_eq!(
        r.counter(
            JWKS_FETCHES_TOTAL,
            &[("issuer", "http://127.0.0.1:1/"), ("result", "failure")]
        ),
        1
    );
    assert_eq!(r.gauge(JWKS_KEYS, &[("issuer", iss)]), Some(2.0));
    let age = r.gauge(JWKS_AGE, &[("issuer", iss)]).expect("age");
    assert!((0.0..60.0).contains(&age), "{age}");
    // Nothing is held for the issuer that is down.
    assert_eq!(
        r.gauge(JWKS_KEYS, &[("issuer", "http://127.0.0.1:1/")]),
        None
    );
}

#[test]
fn a_multi_issuer_verifier_labels_each_issuer() {
    let (r, issuers) = recorded(|| async {
        let a = dev().await;
        let b = dev().await;
        let v = Verifier::multi([verifier(a.issuer()), verifier(b.issuer())]).expect("multi");
        v.refresh_keys().await.expect("keys");
        let t = b.mint(json!({})).expect("mint");
        v.verify(&t).await.expect("verified");
        let unknown = a
            .mint(json!({"iss": "https://elsewhere.example/"}))
            .expect("mint");
        assert!(v.verify(&unknown).await.is_err());
        [a.issuer().to_owned(), b.issuer().to_owned()]
    });
    for iss in &issuers {
        assert_eq!(
            r.counter(
                JWKS_FETCHES_TOTAL,
                &[("issuer", iss.as_str()), ("result", "success")]
            ),
            1,
            "{iss}"
        );
        assert_eq!(r.gauge(JWKS_KEYS, &[("issuer", iss.as_str())]), Some(1.0));
    }
    assert_eq!(
        r.histogram(VERIFICATION_DURATION, &[("outcome", "invalid_token")])
            .len(),
        1
    );
}

#[test]
fn building_a_verifier_records_nothing() {
    // Metrics appear with traffic, not with configuration.
    let (r, ()) = recorded(|| async {
        let _ = verifier("https://issuer.example/");
    });
    assert!(r.names().is_empty(), "{:?}", r.names());
}

#[test]
fn concurrent_misses_of_one_token_share_one_verification() {
    let (r, accepted) = recorded(|| async {
        let dev = dev().await;
        let v = verifier(dev.issuer());
        let token = dev.mint(json!({"sub": "gift-deliveries"})).expect("mint");
        // The first verification waits for the keys (discovery, then the JWKS): the others
        // arrive meanwhile and wait for it rather than verifying the token themselves.
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let (v, token) = (v.clone(), token.clone());
            tasks.spawn(async move { v.verify(&token).await.is_ok() });
        }
        tasks.join_all().await.into_iter().filter(|ok| *ok).count()
    });
    assert_eq!(accepted, 20);
    assert_eq!(r.counter(TOKEN_CACHE_MISSES, &[]), 1);
    assert_eq!(r.counter(TOKEN_CACHE_HITS, &[]), 19);
}
