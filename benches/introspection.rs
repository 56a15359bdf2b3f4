//! Opaque tokens (RFC 7662): what a request with a cached opaque token costs through
//! `JwtAuthLayer`, against the same request with a cached JWT, and how many introspection
//! calls a load of concurrent requests makes. See BENCHMARKS.md.
//!
//! ```sh
//! cargo bench --bench introspection --features introspection              # criterion + load
//! BENCH_PAIRED=1 cargo bench --bench introspection --features introspection   # paired ratio
//! ```
//!
//! - criterion (`layer` group): one request through the layer with a cached RS256 JWT, and
//!   one with a cached opaque token; requests built outside the measured time.
//! - `paired` (thread CPU time): in alternating rounds, 256 requests through the layer to a
//!   trivial service with a cached RS256 JWT (the verified-token cache), and 256 with a cached
//!   opaque token (the introspection cache: SHA-256 of the token, the in-memory lookup, the
//!   time check, the claims clone). The requests are built outside the timed batches. The
//!   ratio of each round is opaque / JWT; the median and quartiles are printed, with the
//!   median time per request of each.
//! - `load`: 100 distinct new opaque tokens, each sent by 100 concurrent requests (10,000 in
//!   all) to an endpoint that answers after 50 ms: the introspection calls made (100 expected,
//!   one per token) and the wall time.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use bearer_guard::dev_issuer::{SigningKey, jwk_set};
use bearer_guard::introspection::{Introspector, TokenRouting};
use bearer_guard::{Algorithm, JwtAuthLayer, Verifier};
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use serde_json::json;
use tower::{Service, ServiceExt as _};

const ISS: &str = "https://bench.example/";
const AUD: &str = "urn:worldmappers";
const BATCH: usize = 256;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A local introspection endpoint answering every token as active (after `delay`), and its
/// call counter.
async fn endpoint(delay: Duration) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let app = Router::new().route(
        "/introspect",
        post(move || {
            let calls = counted.clone();
            async move {
                calls.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(delay).await;
                axum::Json(json!({
                    "active": true, "exp": now() + 3600, "iat": now(), "aud": AUD,
                    "scope": "geocode:location directions", "client_id": "gift-deliveries",
                    "sub": "gift-deliveries",
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/introspect", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, calls)
}

fn introspector(url: &str) -> Introspector {
    Introspector::builder()
        .issuer(ISS)
        .introspection_endpoint(url)
        .client_id("world-mappers")
        .client_secret("bench-secret")
        .audience(AUD)
        .max_cache_ttl(Duration::from_secs(3600))
        .build()
        .expect("introspector")
}

fn request(value: &http::HeaderValue) -> Request<Body> {
    Request::builder()
        .uri("/api/location/geocode")
        .header(AUTHORIZATION, value.clone())
        .body(Body::empty())
        .expect("request")
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i]
}

async fn paired() {
    let key = SigningKey::from_pool(Algorithm::RS256, 0, "k1").expect("key");
    let jwt = key
        .sign(&json!({
            "iss": ISS, "aud": AUD, "exp": now() + 3600, "iat": now(),
            "sub": "gift-deliveries", "scope": "geocode:location directions",
        }))
        .expect("signed");
    let opaque = "2YotnFZFEjr1zCsicMWpAA-an-opaque-access-token-of-64-characters-xx";
    let verifier = Verifier::builder()
        .issuer(ISS)
        .audience(AUD)
        .jwks_json(jwk_set([&key]).to_string())
        .build()
        .expect("verifier");
    let (url, calls) = endpoint(Duration::ZERO).await;
    let bare = tower::service_fn(|_: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    });
    let mut svc = tower::ServiceBuilder::new()
        .layer(JwtAuthLayer::new(verifier).introspection(introspector(&url), TokenRouting::ByShape))
        .service(bare);
    let jwt_value = http::HeaderValue::from_str(&format!("Bearer {jwt}")).expect("value");
    let opaque_value = http::HeaderValue::from_str(&format!("Bearer {opaque}")).expect("value");
    // Warm both caches.
    for v in [&jwt_value, &opaque_value] {
        let res = svc.clone().oneshot(request(v)).await.expect("infallible");
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(calls.load(Ordering::Relaxed), 1);

    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(600);
    let mut time_batch = async |value: &http::HeaderValue| {
        let reqs: Vec<_> = (0..BATCH).map(|_| request(value)).collect();
        let start = cpu_time::ThreadTime::now();
        for req in reqs {
            std::future::poll_fn(|cx| svc.poll_ready(cx))
                .await
                .expect("ready");
            let res = svc.call(req).await.expect("infallible");
            debug_assert_eq!(res.status(), StatusCode::OK);
            std::hint::black_box(res);
        }
        start.elapsed().as_secs_f64() / BATCH as f64
    };
    let (mut ratios, mut jwt_times, mut opaque_times) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (j, o) = if round % 2 == 0 {
            let j = time_batch(&jwt_value).await;
            (j, time_batch(&opaque_value).await)
        } else {
            let o = time_batch(&opaque_value).await;
            (time_batch(&jwt_value).await, o)
        };
        ratios.push(o / j);
        jwt_times.push(j);
        opaque_times.push(o);
    }
    assert_eq!(
        calls.load(Ordering::Relaxed),
        1,
        "every request hit a cache"
    );
    println!(
        "paired ({rounds} rounds of {BATCH}): cached opaque / cached JWT per request: median \
         {:.3} (quartiles {:.3} – {:.3}); cached JWT {:.3} µs, cached opaque {:.3} µs",
        quantile(&mut ratios, 0.5),
        quantile(&mut ratios, 0.25),
        quantile(&mut ratios, 0.75),
        quantile(&mut jwt_times, 0.5) * 1e6,
        quantile(&mut opaque_times, 0.5) * 1e6,
    );
}

async fn load() {
    let (url, calls) = endpoint(Duration::from_millis(50)).await;
    let verifier = Verifier::builder()
        .issuer(ISS)
        .audience(AUD)
        .hmac_secret(b"an-unused-secret-of-at-least-32-bytes!!")
        .build()
        .expect("verifier");
    let svc = tower::ServiceBuilder::new()
        .layer(JwtAuthLayer::new(verifier).introspection(introspector(&url), TokenRouting::ByShape))
        .service(tower::service_fn(|_: Request<Body>| async {
            Ok::<_, Infallible>(Response::new(Body::empty()))
        }));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..100 {
        let value =
            http::HeaderValue::from_str(&format!("Bearer opaque-load-token-{t}")).expect("value");
        for _ in 0..100 {
            let svc = svc.clone();
            let value = value.clone();
            tasks.push(tokio::spawn(async move {
                svc.oneshot(request(&value))
                    .await
                    .expect("infallible")
                    .status()
            }));
        }
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.expect("task") == StatusCode::OK {
            ok += 1;
        }
    }
    println!(
        "load: 10,000 concurrent requests carrying 100 new opaque tokens: {ok} accepted, {} \
         introspection calls, {:.0} ms",
        calls.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64() * 1e3
    );
}

/// The layer with both caches warm, and the header values of a cached JWT and a cached
/// opaque token.
async fn warm_layer() -> (
    impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send>
    + Clone
    + Send
    + 'static,
    http::HeaderValue,
    http::HeaderValue,
) {
    let key = SigningKey::from_pool(Algorithm::RS256, 0, "k1").expect("key");
    let jwt = key
        .sign(&json!({
            "iss": ISS, "aud": AUD, "exp": now() + 3600, "iat": now(),
            "sub": "gift-deliveries", "scope": "geocode:location directions",
        }))
        .expect("signed");
    let opaque = "2YotnFZFEjr1zCsicMWpAA-an-opaque-access-token-of-64-characters-xx";
    let verifier = Verifier::builder()
        .issuer(ISS)
        .audience(AUD)
        .jwks_json(jwk_set([&key]).to_string())
        .build()
        .expect("verifier");
    let (url, _calls) = endpoint(Duration::ZERO).await;
    let svc = tower::ServiceBuilder::new()
        .layer(JwtAuthLayer::new(verifier).introspection(introspector(&url), TokenRouting::ByShape))
        .service(tower::service_fn(|_: Request<Body>| async {
            Ok::<_, Infallible>(Response::new(Body::empty()))
        }));
    let jwt_value = http::HeaderValue::from_str(&format!("Bearer {jwt}")).expect("value");
    let opaque_value = http::HeaderValue::from_str(&format!("Bearer {opaque}")).expect("value");
    for v in [&jwt_value, &opaque_value] {
        let res = svc.clone().oneshot(request(v)).await.expect("infallible");
        assert_eq!(res.status(), StatusCode::OK);
    }
    (svc, jwt_value, opaque_value)
}

fn criterion_layer(rt: &tokio::runtime::Runtime) {
    let mut c = criterion::Criterion::default().configure_from_args();
    let (svc, jwt_value, opaque_value) = rt.block_on(warm_layer());
    let mut group = c.benchmark_group("layer");
    for (name, value) in [
        ("cached RS256 JWT", jwt_value),
        ("cached opaque token", opaque_value),
    ] {
        group.bench_function(name, |b| {
            b.to_async(rt).iter_batched(
                || request(&value),
                |req| {
                    let fut = svc.clone().oneshot(req);
                    async move {
                        let res = fut.await.expect("infallible");
                        assert_eq!(res.status(), StatusCode::OK);
                        res
                    }
                },
                criterion::BatchSize::SmallInput,
            );
        });
    }
    group.finish();
    c.final_summary();
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if std::env::var("BENCH_PAIRED").is_ok_and(|v| v == "1") {
        rt.block_on(paired());
        return;
    }
    rt.block_on(load());
    criterion_layer(&rt);
}
