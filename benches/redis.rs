//! A DPoP request with the Redis replay store against the in-memory one, and the Redis round
//! trips per request. See BENCHMARKS.md ("Redis replay store").
//!
//! ```sh
//! cargo bench --bench redis --features redis          # needs redis-server on the PATH
//! ```
//!
//! Starts its own `redis-server` on a free loopback port. In alternating rounds, 200 DPoP
//! requests (a cached bound token, a fresh proof signed outside the timed part) go through
//! `JwtAuthLayer` to a trivial service, one request at a time, once with the in-memory replay
//! store and once with a `RedisStore`: wall time per request for each, their ratio (req/s of
//! Redis over in-memory, median and range of the rounds) and the latency Redis adds per request. The
//! round trips are counted by Redis itself (`INFO commandstats`: `SET` calls over requests).
//! Then the same under load: 32 clients in flight on a two-worker runtime (a closed loop, each
//! client sending its next request when the last one is answered), req/s of each store in
//! alternating rounds and their ratio.

#[cfg(all(feature = "redis", feature = "axum", feature = "dev-issuer"))]
mod bench {
    use std::net::TcpListener;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    use axum::Router;
    use axum::body::Body;
    use base64::Engine as _;
    use bearer_guard::dev_issuer::{SigningKey, jwk_set};
    use bearer_guard::dpop::{Dpop, InMemoryReplayStore, ReplayStore, jwk_thumbprint};
    use bearer_guard::store::redis::RedisStore;
    use bearer_guard::{Algorithm, JwtAuthLayer, Verifier};
    use http::{Request, StatusCode};
    use serde_json::json;
    use sha2::Digest as _;
    use tower::ServiceExt as _;

    const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    const ISS: &str = "https://bench.example/";
    const AUD: &str = "urn:worldmappers";
    const BATCH: usize = 200;
    const ROUNDS: usize = 15;
    /// Redis call timeout for the bench. The default (10 ms) is for a production host; on this
    /// shared two-core machine, with builds running beside it, `redis-server` is sometimes
    /// descheduled for longer, and the bench measures the cost of a call, not the timeout policy.
    const TIMEOUT: Duration = Duration::from_millis(250);
    /// 503 answers (a Redis call past `TIMEOUT`), reported at the end.
    static UNAVAILABLE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    /// Clients in flight in the concurrent measure.
    const CLIENTS: usize = 32;
    /// Requests per client per concurrent round.
    const PER_CLIENT: usize = 40;

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    struct Server(Child, u16);

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn redis_server() -> Option<Server> {
        let port = TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .ok()?;
        let s = Server(child, port);
        for _ in 0..200 {
            if cli(port, &["PING"]).trim() == "PONG" {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn cli(port: u16, args: &[&str]) -> String {
        Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    fn set_calls(port: u16) -> u64 {
        cli(port, &["INFO", "commandstats"])
            .lines()
            .find_map(|l| l.strip_prefix("cmdstat_set:calls="))
            .and_then(|r| r.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    fn app(store: impl ReplayStore, issuer: &SigningKey) -> Router {
        let verifier = Verifier::builder()
            .issuer(ISS)
            .audience(AUD)
            .jwks_json(jwk_set([issuer]).to_string())
            .build()
            .expect("verifier");
        let dpop = Dpop::builder()
            .public_url("https://api.example")
            .replay_store(store)
            .build()
            .expect("dpop");
        Router::new()
            .route("/maps", axum::routing::get(|| async { "maps" }))
            .layer(JwtAuthLayer::new(verifier).dpop(dpop))
    }

    struct Client {
        key: SigningKey,
        jwk: serde_json::Value,
        token: String,
        n: u64,
    }

    impl Client {
        fn proof(&mut self) -> String {
            self.n += 1;
            let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk});
            let claims = json!({"jti": format!("b-{}-{}", self.n, now()), "htm": "GET",
                "htu": "https://api.example/maps", "iat": now(),
                "ath": B64.encode(sha2::Sha256::digest(self.token.as_bytes()))});
            let msg = format!(
                "{}.{}",
                B64.encode(header.to_string()),
                B64.encode(claims.to_string())
            );
            let sig = self.key.sign_bytes(msg.as_bytes()).expect("sign");
            format!("{msg}.{}", B64.encode(sig))
        }
    }

    async fn batch(app: &Router, token: &str, proofs: Vec<String>) -> Duration {
        let t = Instant::now();
        for p in proofs {
            let req = Request::builder()
                .uri("/maps")
                .header("authorization", format!("DPoP {token}"))
                .header("dpop", p)
                .body(Body::empty())
                .expect("request");
            let res = app.clone().oneshot(req).await.expect("infallible");
            match res.status() {
                StatusCode::OK => {}
                // A Redis call past its timeout (or the circuit open): counted and reported.
                StatusCode::SERVICE_UNAVAILABLE => {
                    UNAVAILABLE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                other => panic!("unexpected status {other}"),
            }
        }
        t.elapsed()
    }

    /// `CLIENTS` tasks, each sending its proofs one after another; the wall time of all.
    async fn concurrent(app: &Router, token: &str, proofs: Vec<Vec<String>>) -> Duration {
        let t = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for p in proofs {
            let (app, token) = (app.clone(), token.to_owned());
            tasks.spawn(async move { batch(&app, &token, p).await });
        }
        while let Some(r) = tasks.join_next().await {
            r.expect("client task");
        }
        t.elapsed()
    }

    fn median(v: &mut [f64]) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    /// The client (its DPoP key and bound token, proofs numbered from `first`) and the two
    /// apps: the in-memory replay store's and the Redis store's (Redis on `port`).
    async fn setup(port: u16, first: u64) -> (Client, Router, Router) {
        let issuer = SigningKey::from_pool(Algorithm::RS256, 0, "k1").expect("key");
        let key = SigningKey::from_pool(Algorithm::ES256, 0, "p").expect("key");
        let mut jwk = key.public_jwk();
        for m in ["kid", "alg", "use"] {
            jwk.as_object_mut().map(|o| o.remove(m));
        }
        let jkt = jwk_thumbprint(jwk.as_object().expect("object")).expect("jkt");
        let token = issuer
            .sign(
                &json!({"iss": ISS, "aud": AUD, "sub": "bench", "exp": now() + 3600,
                "cnf": {"jkt": jkt}}),
            )
            .expect("token");
        let redis = RedisStore::builder(format!("redis://127.0.0.1:{port}/"))
            .timeout(TIMEOUT)
            .build()
            .expect("store");
        redis.connect().await.expect("redis");
        let client = Client {
            key,
            jwk,
            token,
            n: first,
        };
        (
            client,
            app(InMemoryReplayStore::default(), &issuer),
            app(redis, &issuer),
        )
    }

    pub(crate) fn run() {
        let Some(server) = redis_server() else {
            eprintln!("SKIPPED: benches/redis.rs needs redis-server and redis-cli");
            return;
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (mut client, memory_app, redis_app) = setup(server.1, 0).await;
            let token = client.token.clone();
            // Warm-up (token cache, connection).
            let warm: Vec<String> = (0..50).map(|_| client.proof()).collect();
            batch(&memory_app, &token, warm).await;
            let warm: Vec<String> = (0..50).map(|_| client.proof()).collect();
            batch(&redis_app, &token, warm).await;
            let (mut ratios, mut mem_us, mut red_us) = (Vec::new(), Vec::new(), Vec::new());
            let mut redis_requests = 0u64;
            let sets_before = set_calls(server.1);
            for round in 0..ROUNDS {
                let (first, second) = if round % 2 == 0 {
                    (&memory_app, &redis_app)
                } else {
                    (&redis_app, &memory_app)
                };
                let p: Vec<String> = (0..BATCH).map(|_| client.proof()).collect();
                let a = batch(first, &token, p).await;
                let p: Vec<String> = (0..BATCH).map(|_| client.proof()).collect();
                let b = batch(second, &token, p).await;
                let (m, r) = if round % 2 == 0 { (a, b) } else { (b, a) };
                redis_requests += BATCH as u64;
                ratios.push(m.as_secs_f64() / r.as_secs_f64());
                mem_us.push(m.as_secs_f64() * 1e6 / BATCH as f64);
                red_us.push(r.as_secs_f64() * 1e6 / BATCH as f64);
            }
            let trips = (set_calls(server.1) - sets_before) as f64 / redis_requests as f64;
            let (m, r) = (median(&mut mem_us), median(&mut red_us));
            println!("redis/in-memory DPoP request, one at a time, {ROUNDS} rounds of {BATCH}:");
            println!("  in-memory replay store: {m:.1} µs/request");
            println!("  Redis replay store:     {r:.1} µs/request");
            let mut sorted = ratios.clone();
            sorted.sort_by(f64::total_cmp);
            println!(
                "  req/s ratio (Redis / in-memory): median {:.2}, range {:.2}..{:.2}",
                median(&mut ratios),
                sorted[0],
                sorted[sorted.len() - 1]
            );
            println!("  added latency: {:.1} µs/request", r - m);
            println!("  Redis round trips per request: {trips:.2}");
        });
        drop(rt);

        // Under load: a two-worker runtime (the machine has two cores), CLIENTS in flight.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (mut client, memory_app, redis_app) = setup(server.1, 1_000_000).await;
            let token = client.token.clone();
            let mut proofs = |per: usize| -> Vec<Vec<String>> {
                (0..CLIENTS)
                    .map(|_| (0..per).map(|_| client.proof()).collect())
                    .collect()
            };
            concurrent(&memory_app, &token, proofs(10)).await;
            concurrent(&redis_app, &token, proofs(10)).await;
            let total = (CLIENTS * PER_CLIENT) as f64;
            let (mut ratios, mut mem_rps, mut red_rps) = (Vec::new(), Vec::new(), Vec::new());
            let sets_before = set_calls(server.1);
            for round in 0..ROUNDS {
                // Alternate which store goes first, so that neither always follows the other.
                let (first, second) = if round % 2 == 0 {
                    (&memory_app, &redis_app)
                } else {
                    (&redis_app, &memory_app)
                };
                let a = concurrent(first, &token, proofs(PER_CLIENT)).await;
                let b = concurrent(second, &token, proofs(PER_CLIENT)).await;
                let (m, r) = if round % 2 == 0 { (a, b) } else { (b, a) };
                ratios.push(m.as_secs_f64() / r.as_secs_f64());
                mem_rps.push(total / m.as_secs_f64());
                red_rps.push(total / r.as_secs_f64());
            }
            let trips =
                (set_calls(server.1) - sets_before) as f64 / (total * ROUNDS as f64);
            let mut sorted = ratios.clone();
            sorted.sort_by(f64::total_cmp);
            println!(
                "redis/in-memory DPoP requests, {CLIENTS} in flight, 2 workers, {ROUNDS} alternating rounds of {}:",
                CLIENTS * PER_CLIENT
            );
            println!("  in-memory replay store: {:.0} req/s", median(&mut mem_rps));
            println!("  Redis replay store:     {:.0} req/s", median(&mut red_rps));
            println!(
                "  req/s ratio (Redis / in-memory): median {:.2}, range {:.2}..{:.2}",
                median(&mut ratios),
                sorted[0],
                sorted[sorted.len() - 1]
            );
            println!("  Redis round trips per request: {trips:.2}");
        });
        println!(
            "503 answers (a Redis call past {} ms): {}",
            TIMEOUT.as_millis(),
            UNAVAILABLE.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
}

fn main() {
    #[cfg(all(feature = "redis", feature = "axum", feature = "dev-issuer"))]
    bench::run();
    #[cfg(not(all(feature = "redis", feature = "axum", feature = "dev-issuer")))]
    eprintln!("benches/redis.rs needs --features redis");
}
