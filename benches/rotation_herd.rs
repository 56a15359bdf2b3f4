//! The rotation herd: the issuer publishes a new key and 10,000 requests carrying tokens
//! signed by it arrive at once. Expected: exactly one JWKS fetch, shared by all of them.
//!
//! ```sh
//! cargo bench --bench rotation_herd
//! ```
//!
//! A local JWKS server (its own thread and runtime, on `127.0.0.1:0`) counts the fetches.
//! Each round starts a fresh verifier (default settings, keys from `jwks_uri`), loads the
//! first key set, then publishes a second key and mints `HERD_TOKENS` tokens with it (100
//! by default: many clients, each reusing its new token). `HERD_REQUESTS` requests (10,000 by
//! default) go through a `JwtAuthLayer` in front of a trivial handler, in-process (tower
//! `oneshot`, no sockets, so that the herd is not limited by file descriptors), each in its
//! own task on a multi-thread runtime with one worker per core; the tasks wait behind one
//! gate and are released together. It prints, per round, the JWKS fetches the herd caused
//! (counted by the server, and by the verifier), the time from the release until every
//! request was answered, the p50 and p99 of the requests' latencies, and how many answered
//! 200. Rounds: `HERD_ROUNDS` (default 5).
//!
//! Run without `--bench` (as `cargo test --benches` does), it does one small round.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::routing::get;
use bearer_guard::dev_issuer::{SigningKey, jwk_set};
use bearer_guard::{Algorithm, JwtAuthLayer, Verifier};
use http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt as _;

const ISSUER: &str = "https://herd.example/";
const AUDIENCE: &str = "urn:worldmappers";

/// The JWKS server's state: the document it serves, and how many times it was fetched.
#[derive(Default)]
struct Jwks {
    doc: Mutex<Value>,
    fetches: AtomicU64,
}

/// Serves `/jwks` on its own thread and runtime, like a separate issuer.
fn start_jwks_server(jwks: Arc<Jwks>) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("jwks runtime");
        rt.block_on(async move {
            let app = Router::new()
                .route(
                    "/jwks",
                    get(|State(j): State<Arc<Jwks>>| async move {
                        j.fetches.fetch_add(1, Ordering::SeqCst);
                        let body = j.doc.lock().expect("jwks lock").to_string();
                        ([(header::CONTENT_TYPE, "application/json")], body)
                    }),
                )
                .with_state(jwks);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr"))
                .expect("send addr");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    rx.recv().expect("jwks server address")
}

fn claims(n: usize) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 3600,
        "sub": format!("client-{n}@clients"), "client_id": format!("client-{n}"),
        "scope": "directions", "jti": format!("herd-{n}"),
    })
}

struct Round {
    server_fetches: u64,
    verifier_fetches: u64,
    all_answered: Duration,
    p50: Duration,
    p99: Duration,
    ok: usize,
}

async fn round(n: usize, requests: usize, tokens: usize, addr: SocketAddr, jwks: &Jwks) -> Round {
    // Distinct kids each round: the new key is new to this round's verifier.
    let old = SigningKey::from_pool(Algorithm::RS256, 0, format!("old-{n}")).expect("pool key");
    let new = SigningKey::from_pool(Algorithm::RS256, 1, format!("new-{n}")).expect("pool key");
    *jwks.doc.lock().expect("jwks lock") = jwk_set([&old]);

    let verifier = Verifier::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .jwks_uri(format!("http://{addr}/jwks"))
        .build()
        .expect("verifier");
    verifier.refresh_keys().await.expect("first key set");
    let app = Router::new()
        .route("/api/directions", get(|| async { "turn left" }))
        .layer(JwtAuthLayer::new(verifier.clone()));

    // The rotation: the issuer publishes the new key and signs new tokens with it.
    let toks: Vec<String> = (0..tokens)
        .map(|i| new.sign(&claims(i)).expect("sign"))
        .collect();
    *jwks.doc.lock().expect("jwks lock") = jwk_set([&old, &new]);
    let before = (jwks.fetches.load(Ordering::SeqCst), verifier.jwks_fetches());

    let gate = Arc::new(tokio::sync::Barrier::new(requests + 1));
    let mut tasks = Vec::with_capacity(requests);
    for i in 0..requests {
        let req = Request::builder()
            .uri("/api/directions")
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", toks[i % tokens]),
            )
            .body(Body::empty())
            .expect("request");
        let app = app.clone();
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            gate.wait().await;
            let res = app.oneshot(req).await.expect("infallible");
            (res.status(), Instant::now())
        }));
    }
    gate.wait().await;
    let start = Instant::now();
    let mut latencies = Vec::with_capacity(requests);
    let mut ok = 0;
    for t in tasks {
        let (status, done) = t.await.expect("task");
        ok += usize::from(status == StatusCode::OK);
        latencies.push(done.saturating_duration_since(start));
    }
    latencies.sort();
    let all_answered = latencies.last().copied().unwrap_or_default();
    let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
    Round {
        server_fetches: jwks.fetches.load(Ordering::SeqCst) - before.0,
        verifier_fetches: verifier.jwks_fetches() - before.1,
        all_answered,
        p50: pct(50),
        p99: pct(99),
        ok,
    }
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (requests, tokens, rounds) = if bench {
        (
            env_or("HERD_REQUESTS", 10_000),
            env_or("HERD_TOKENS", 100),
            env_or("HERD_ROUNDS", 5),
        )
    } else {
        (1_000, 10, 1)
    };
    let jwks = Arc::new(Jwks::default());
    let addr = start_jwks_server(jwks.clone());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "rotation herd: {requests} concurrent requests, {tokens} distinct tokens under a newly \
         published RS256 key, {} worker threads",
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    println!("| round | JWKS fetches (server) | (verifier) | all answered | p50 | p99 | 200s |");
    println!("|---|---|---|---|---|---|---|");
    let mut failed = false;
    for n in 1..=rounds {
        let r = rt.block_on(round(n, requests, tokens, addr, &jwks));
        println!(
            "| {n} | {} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {} |",
            r.server_fetches,
            r.verifier_fetches,
            r.all_answered.as_secs_f64() * 1e3,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.ok,
        );
        failed |= r.server_fetches != 1 || r.ok != requests;
    }
    if failed {
        eprintln!("rotation herd: expected exactly one fetch and every request answered 200");
        std::process::exit(1);
    }
}
