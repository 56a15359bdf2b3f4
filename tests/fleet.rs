//! A fleet of World Mappers processes sharing one Redis (issue 17): the example binary
//! (`examples/world_mappers`, built here with this test's features) run twice, with
//! `REDIS_URL` and `KEYSET_SNAPSHOT_SECRET`, in front of a development issuer started in
//! this process, and a real `redis-server` on a loopback port. Every server is started and
//! stopped (killed on drop) by the test that needs it.
//!
//! Needs `redis-server` and `redis-cli`; without them each test passes after printing why it
//! was skipped, unless `BEARER_GUARD_REDIS=require` is set.
#![cfg(all(
    feature = "redis",
    feature = "axum",
    feature = "dev-issuer",
    feature = "introspection",
    any(feature = "aws-lc-rs", feature = "rust-crypto")
))]
#![allow(clippy::unwrap_used)]

mod support_redis;

use std::io::{BufRead as _, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bearer_guard::Algorithm;
use bearer_guard::dev_issuer::{DevIssuer, SigningKey};
use bearer_guard::dpop::jwk_thumbprint;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support_redis::{RedisServer, free_port, require_redis};

const AUD: &str = "urn:worldmappers";
/// Where clients reach the fleet (behind its load balancer): DPoP proofs name this origin,
/// whichever replica answers.
const PUBLIC_URL: &str = "http://api.worldmappers.test";
const SECRET: &str = "fleet-secret-of-at-least-32-bytes!!";
const OTHER_SECRET: &str = "another-secret-of-at-least-32-bytes";
const INTROSPECTOR: (&str, &str) = ("world-mappers", "wm-introspection-secret");
/// The Redis call bound of the tests about what is shared (not about time): generous, so
/// that a loaded machine does not turn a slow answer into "Redis unreachable".
const PATIENT: (&str, &str) = ("REDIS_TIMEOUT_MS", "500");
/// The Redis call bound of the outage tests. The default, 10 ms
/// (`store::redis::DEFAULT_TIMEOUT`), is for a Redis next to an API that has CPU to spare;
/// on a test machine shared by parallel builds a process is sometimes not scheduled for
/// longer than that, and a call answered in time by Redis runs out of time (a 503 for
/// DPoP), which would make "normal service again" flaky.
const OUTAGE_TIMEOUT: Duration = Duration::from_millis(250);
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

// ---------------------------------------------------------------------------------------
// The World Mappers binary and its processes

/// The crate features this test was built with: the example is built with the same ones
/// (so the library build is shared, and the rust-crypto run builds a rust-crypto example).
fn features() -> String {
    [
        ("aws-lc-rs", cfg!(feature = "aws-lc-rs")),
        ("rust-crypto", cfg!(feature = "rust-crypto")),
        ("tls", cfg!(feature = "tls")),
        ("axum", cfg!(feature = "axum")),
        ("dev-issuer", cfg!(feature = "dev-issuer")),
        ("tonic", cfg!(feature = "tonic")),
        ("client", cfg!(feature = "client")),
        ("introspection", cfg!(feature = "introspection")),
        ("metrics", cfg!(feature = "metrics")),
        ("mtls", cfg!(feature = "mtls")),
        ("redis", cfg!(feature = "redis")),
    ]
    .iter()
    .filter(|(_, on)| *on)
    .map(|(name, _)| *name)
    .collect::<Vec<_>>()
    .join(",")
}

/// `target/<profile>/examples/world_mappers`, built once per run (`cargo test` builds the
/// examples, but not `cargo test --test fleet`; when it is up to date this only checks).
fn world_mappers_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .args([
                "build",
                "--example",
                "world_mappers",
                "--no-default-features",
            ])
            .args(["--features", &features()])
            .arg("--message-format=json-render-diagnostics")
            .stderr(Stdio::inherit());
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        let out = cmd.output().expect("cargo build --example world_mappers");
        assert!(
            out.status.success(),
            "the World Mappers example did not build"
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|m| {
                m["reason"] == "compiler-artifact" && m["target"]["name"] == "world_mappers"
            })
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo named the world_mappers executable")
    })
}

/// The variables World Mappers reads: none is inherited from the test's environment.
const WORLD_MAPPERS_VARIABLES: [&str; 21] = [
    "ISSUER_BASE_URL",
    "AUDIENCE",
    "JWKS_URI",
    "PORT",
    "TOKEN_CACHE",
    "PUBLIC_URL",
    "DPOP",
    "DPOP_NONCE",
    "INTROSPECTION_CLIENT_ID",
    "INTROSPECTION_CLIENT_SECRET",
    "INTROSPECTION_URL",
    "INTROSPECTION_CACHE_SECS",
    "OPAQUE_TOKENS",
    "TLS_CERT",
    "TLS_KEY",
    "TLS_CLIENT_CA",
    "CLIENT_CERT_HEADER",
    "REDIS_URL",
    "KEYSET_SNAPSHOT_SECRET",
    "REDIS_TIMEOUT_MS",
    "RUST_LOG",
];

/// Its output (stdout and stderr), kept for the assertions and for failure messages.
const MAX_LOG_BYTES: usize = 4 * 1024 * 1024;

/// One World Mappers process on a loopback port, killed on drop.
struct Replica {
    name: &'static str,
    child: Child,
    base: String,
    log: Arc<Mutex<String>>,
}

impl Replica {
    /// Starts World Mappers with `vars` and waits until it serves (its own line saying so,
    /// printed once it holds the port, then `/healthz`). A port taken meanwhile by another
    /// test's server is retried with another.
    async fn start(name: &'static str, vars: &[(&str, &str)]) -> Self {
        for _ in 0..3 {
            if let Some(replica) = Self::try_start(name, vars).await {
                return replica;
            }
        }
        panic!("replica {name}: no free port in three tries");
    }

    async fn try_start(name: &'static str, vars: &[(&str, &str)]) -> Option<Self> {
        let port = free_port(false);
        let mut cmd = Command::new(world_mappers_binary());
        for v in WORLD_MAPPERS_VARIABLES {
            cmd.env_remove(v);
        }
        cmd.env("PORT", port.to_string())
            .env("AUDIENCE", AUD)
            .env("PUBLIC_URL", PUBLIC_URL)
            .env("RUST_LOG", "info")
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("world_mappers started");
        let log = Arc::new(Mutex::new(String::new()));
        keep_output(child.stdout.take().expect("stdout"), log.clone());
        keep_output(child.stderr.take().expect("stderr"), log.clone());
        let mut replica = Self {
            name,
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        let serving = format!("World Mappers API on {}", replica.base);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(_)) = replica.child.try_wait() {
                let log = replica.log();
                if log.contains("cannot listen") {
                    return None;
                }
                panic!("replica {name} exited:\n{log}");
            }
            if replica.log().contains(&serving)
                && let Ok(res) = client()
                    .get(format!("{}/healthz", replica.base))
                    .send()
                    .await
                && res.status() == 200
            {
                return Some(replica);
            }
            assert!(
                Instant::now() < deadline,
                "replica {name} did not start serving:\n{}",
                replica.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether its output has `text`, waiting up to 5 s for it (the output is read on
    /// another thread).
    async fn logged(&self, text: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.log().contains(text) {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Panics (with its output) if the process exited, or if it logged a panic.
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("replica {} exited ({status}):\n{}", self.name, self.log());
        }
        let log = self.log();
        assert!(
            !log.contains("panicked"),
            "replica {} panicked:\n{log}",
            self.name
        );
    }

    /// `GET path` with `Authorization: <scheme> <token>` (and a `DPoP` proof if given).
    async fn get(&self, path: &str, auth: Option<(&str, &str)>, proof: Option<&str>) -> Answer {
        let mut req = client().get(format!("{}{path}", self.base));
        if let Some((scheme, token)) = auth {
            req = req.header("authorization", format!("{scheme} {token}"));
        }
        if let Some(proof) = proof {
            req = req.header("dpop", proof);
        }
        let started = Instant::now();
        let res = req.send().await.expect("the replica answered");
        let header = |name: &str| {
            res.headers()
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap_or("").to_owned())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let www_authenticate = header("www-authenticate");
        let retry_after = res.headers().contains_key("retry-after");
        let status = res.status().as_u16();
        let _ = res.bytes().await;
        Answer {
            status,
            www_authenticate,
            retry_after,
            elapsed: started.elapsed(),
            done: Instant::now(),
        }
    }

    async fn bearer(&self, token: &str) -> Answer {
        self.get("/api/ping", Some(("Bearer", token)), None).await
    }

    async fn dpop(&self, token: &str, proof: &str) -> Answer {
        self.get("/api/ping", Some(("DPoP", token)), Some(proof))
            .await
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads a child's output into `log` (bounded) on its own thread.
fn keep_output(out: impl Read + Send + 'static, log: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut log) = log.lock()
                && log.len() + line.len() < MAX_LOG_BYTES
            {
                log.push_str(&line);
                log.push('\n');
            }
        }
    });
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    })
}

#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    www_authenticate: String,
    retry_after: bool,
    /// From sending the request to the end of the answer.
    elapsed: Duration,
    /// When the answer was complete.
    done: Instant,
}

// ---------------------------------------------------------------------------------------
// The issuer, tokens and proofs

async fn issuer() -> DevIssuer {
    DevIssuer::builder()
        .audience(AUD)
        .client("gift-deliveries", "gd-secret", ["directions"])
        .client(INTROSPECTOR.0, INTROSPECTOR.1, Vec::<String>::new())
        .start()
        .await
        .expect("dev issuer")
}

/// A plain Bearer JWT of the issuer.
fn jwt(dev: &DevIssuer) -> String {
    dev.mint(json!({"sub": "gift-deliveries@clients", "scope": "directions"}))
        .unwrap()
}

fn unix_now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// A client's DPoP key.
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

    /// An access token of `dev` bound to this key (`cnf.jkt`).
    fn bound_token(&self, dev: &DevIssuer) -> String {
        let jkt = jwk_thumbprint(self.1.as_object().unwrap()).unwrap();
        dev.mint(json!({"sub": "gift-deliveries@clients", "cnf": {"jkt": jkt}}))
            .unwrap()
    }

    /// A fresh proof for `GET {PUBLIC_URL}/api/ping` with `token`.
    fn proof(&self, token: &str) -> String {
        static JTI: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = JTI.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.1});
        let claims = json!({"jti": format!("fleet-{n}-{}-{}", unix_now(), std::process::id()),
            "htm": "GET", "htu": format!("{PUBLIC_URL}/api/ping"), "iat": unix_now(),
            "ath": B64.encode(Sha256::digest(token.as_bytes()))});
        let msg = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = self.0.sign_bytes(msg.as_bytes()).unwrap();
        format!("{msg}.{}", B64.encode(sig))
    }
}

/// Waits until a key-set snapshot is in Redis; returns its key.
async fn wait_for_snapshot(redis: &RedisServer) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let keys = redis.cli(&["KEYS", "*keyset:*"]);
        if let Some(k) = keys.lines().next().filter(|k| !k.is_empty()) {
            return k.to_owned();
        }
        assert!(Instant::now() < deadline, "no snapshot was written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stops the issuer and checks that it no longer answers.
async fn stop_issuer(dev: DevIssuer) {
    let discovery = format!("{}.well-known/openid-configuration", dev.issuer());
    dev.shutdown().await;
    assert!(
        client().get(&discovery).send().await.is_err(),
        "the issuer still answers"
    );
}

// ---------------------------------------------------------------------------------------
// The tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_proof_accepted_by_one_replica_process_is_refused_by_the_other() {
    require_redis!();
    let redis = RedisServer::start();
    let url = redis.url();
    let dev = issuer().await;
    let vars = [
        ("ISSUER_BASE_URL", dev.issuer()),
        ("REDIS_URL", url.as_str()),
        PATIENT,
    ];
    let a = Replica::start("A", &vars).await;
    let b = Replica::start("B", &vars).await;
    let key = ProofKey::new();
    let token = key.bound_token(&dev);

    // A accepts a proof (a 503 means Redis did not answer within its bound: that proof was
    // not checked, so another is tried).
    let mut proof = key.proof(&token);
    let mut first = a.dpop(&token, &proof).await;
    for _ in 0..5 {
        if first.status != 503 {
            break;
        }
        proof = key.proof(&token);
        first = a.dpop(&token, &proof).await;
    }
    assert_eq!(first.status, 200, "{first:?}\n{}", a.log());

    // The same proof at B: refused as a replay.
    let mut again = b.dpop(&token, &proof).await;
    for _ in 0..5 {
        if again.status != 503 {
            break;
        }
        again = b.dpop(&token, &proof).await;
    }
    assert_eq!(again.status, 401, "{again:?}");
    assert!(
        again
            .www_authenticate
            .contains(r#"error="invalid_dpop_proof""#)
            && again
                .www_authenticate
                .contains("the DPoP proof was already used"),
        "{}",
        again.www_authenticate
    );
    // A fresh proof is accepted by B: it is the replay that was refused.
    let fresh = b.dpop(&token, &key.proof(&token)).await;
    assert_eq!(fresh.status, 200, "{fresh:?}\n{}", b.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_opaque_token_sent_to_two_replica_processes_is_introspected_once() {
    require_redis!();
    let redis = RedisServer::start();
    let url = redis.url();
    let dev = issuer().await;
    let vars = [
        ("ISSUER_BASE_URL", dev.issuer()),
        ("REDIS_URL", url.as_str()),
        PATIENT,
        ("INTROSPECTION_CLIENT_ID", INTROSPECTOR.0),
        ("INTROSPECTION_CLIENT_SECRET", INTROSPECTOR.1),
    ];
    let a = Replica::start("A", &vars).await;
    let b = Replica::start("B", &vars).await;
    let token = dev
        .mint_opaque(json!({"sub": "gift-deliveries@clients", "scope": "directions"}))
        .unwrap();
    assert_eq!(dev.introspection_requests(), 0);

    let at_a = a.bearer(&token).await;
    assert_eq!(at_a.status, 200, "{at_a:?}\n{}", a.log());
    assert_eq!(dev.introspection_requests(), 1);
    let at_b = b.bearer(&token).await;
    assert_eq!(at_b.status, 200, "{at_b:?}\n{}", b.log());
    assert_eq!(
        dev.introspection_requests(),
        1,
        "B took A's answer from Redis instead of asking the issuer"
    );
    // The shared entry is keyed by a hash of the token, never the token.
    let keys = redis.cli(&["KEYS", "*introspection:*"]);
    assert_eq!(keys.lines().count(), 1, "{keys}");
    assert!(!keys.contains(&token));
    // Every key is under World Mappers' own prefix (another API sharing Redis has its own).
    let all = redis.cli(&["KEYS", "*"]);
    assert!(all.lines().all(|k| k.starts_with("worldmappers:")), "{all}");
    // A revoked token stays accepted for the cache time (documented), by either replica.
    assert!(dev.revoke(&token));
    assert_eq!(b.bearer(&token).await.status, 200);
    assert_eq!(dev.introspection_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_started_while_the_issuer_is_down_serves_tokens_from_the_snapshot() {
    require_redis!();
    let redis = RedisServer::start();
    let url = redis.url();
    let dev = issuer().await;
    let issuer_url = dev.issuer().to_owned();
    let token = jwt(&dev);
    let vars = [
        ("ISSUER_BASE_URL", issuer_url.as_str()),
        ("REDIS_URL", url.as_str()),
        PATIENT,
        ("KEYSET_SNAPSHOT_SECRET", SECRET),
    ];
    let a = Replica::start("A", &vars).await;
    assert_eq!(a.bearer(&token).await.status, 200);
    wait_for_snapshot(&redis).await;
    stop_issuer(dev).await;

    let b = Replica::start("B", &vars).await;
    let at_b = b.bearer(&token).await;
    assert_eq!(at_b.status, 200, "{at_b:?}\n{}", b.log());
    assert!(
        b.logged("key set taken from the fleet's authenticated snapshot")
            .await,
        "{}",
        b.log()
    );
    assert_eq!(b.get("/readyz", None, None).await.status, 200);
    // Without the secret, a replica started now has no keys: it is the snapshot that serves.
    let c = Replica::start("C", &vars[..3]).await;
    assert_eq!(c.bearer(&token).await.status, 503);
}

/// Starts replica A with `writer_secret` while the issuer is up (it writes the snapshot),
/// lets `tamper` act on the snapshot's key in Redis, stops the issuer, and returns the
/// answer of replica B (started with the fleet's `SECRET`) to a valid token, and B's log.
async fn second_replica_with_a_snapshot(
    writer_secret: &str,
    tamper: impl FnOnce(&RedisServer, &str),
) -> (Answer, String) {
    let redis = RedisServer::start();
    let url = redis.url();
    let dev = issuer().await;
    let issuer_url = dev.issuer().to_owned();
    let token = jwt(&dev);
    let a = Replica::start(
        "A",
        &[
            ("ISSUER_BASE_URL", issuer_url.as_str()),
            ("REDIS_URL", url.as_str()),
            PATIENT,
            ("KEYSET_SNAPSHOT_SECRET", writer_secret),
        ],
    )
    .await;
    assert_eq!(a.bearer(&token).await.status, 200);
    let key = wait_for_snapshot(&redis).await;
    stop_issuer(dev).await;
    drop(a);
    tamper(&redis, &key);
    let b = Replica::start(
        "B",
        &[
            ("ISSUER_BASE_URL", issuer_url.as_str()),
            ("REDIS_URL", url.as_str()),
            PATIENT,
            ("KEYSET_SNAPSHOT_SECRET", SECRET),
        ],
    )
    .await;
    let answer = b.bearer(&token).await;
    assert!(b.logged("failed authentication").await, "{}", b.log());
    (answer, b.log())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_written_with_another_secret_is_ignored_by_a_replica_started_while_the_issuer_is_down()
 {
    require_redis!();
    let (answer, log) = second_replica_with_a_snapshot(OTHER_SECRET, |_, _| {}).await;
    assert_eq!(answer.status, 503, "{answer:?}\n{log}");
    assert!(!log.contains("key set taken from the fleet's authenticated snapshot"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_edited_in_redis_is_ignored_by_a_replica_started_while_the_issuer_is_down() {
    require_redis!();
    let (answer, log) = second_replica_with_a_snapshot(SECRET, |redis, key| {
        // One byte of the JWK Set document changed (past the 45-byte header).
        let old = redis.cli(&["GETRANGE", key, "60", "60"]);
        let new = if old.trim() == "X" { "Y" } else { "X" };
        let len: usize = redis
            .cli(&["SETRANGE", key, "60", new])
            .trim()
            .parse()
            .unwrap();
        assert!(len > 60, "{len}");
    })
    .await;
    assert_eq!(answer.status, 503, "{answer:?}\n{log}");
    assert!(!log.contains("key set taken from the fleet's authenticated snapshot"));
}

/// What a request of the load carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A DPoP-bound JWT and a fresh proof: the replay check needs Redis.
    Dpop,
    /// A plain Bearer JWT: verified locally.
    Bearer,
    /// An opaque token: introspected, the answer cached in Redis.
    Opaque,
}

const KINDS: [Kind; 3] = [Kind::Dpop, Kind::Bearer, Kind::Opaque];

/// One request of the load: which kind, when it was sent, and its answer.
#[derive(Debug)]
struct Sent {
    kind: Kind,
    at: Instant,
    answer: Answer,
}

/// The tokens the load sends.
#[derive(Clone)]
struct Tokens {
    key: Arc<ProofKey>,
    bound: String,
    jwt: String,
    opaque: String,
}

impl Tokens {
    async fn send(&self, replica: &Replica, kind: Kind) -> Answer {
        match kind {
            Kind::Dpop => {
                replica
                    .dpop(&self.bound, &self.key.proof(&self.bound))
                    .await
            }
            Kind::Bearer => replica.bearer(&self.jwt).await,
            Kind::Opaque => replica.bearer(&self.opaque).await,
        }
    }
}

/// `workers` loops, each going round the replicas and the kinds of request until `until`.
async fn load(
    replicas: &[Arc<Replica>],
    tokens: &Tokens,
    workers: usize,
    until: Instant,
) -> Vec<Sent> {
    let mut tasks = Vec::new();
    for w in 0..workers {
        let replicas = replicas.to_vec();
        let tokens = tokens.clone();
        tasks.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            let mut i = w;
            while Instant::now() < until {
                let replica = &replicas[i % replicas.len()];
                let kind = KINDS[(i / replicas.len()) % KINDS.len()];
                let at = Instant::now();
                let answer = tokens.send(replica, kind).await;
                sent.push(Sent { kind, at, answer });
                i += 1;
            }
            sent
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("a load task"));
    }
    all
}

/// How Redis goes away under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outage {
    /// The process is killed: connections are refused at once.
    Killed,
    /// The process is frozen (`SIGSTOP`): connections stay open and nothing answers, so
    /// each call runs into its timeout.
    Frozen,
}

/// Two replicas under load (DPoP and Bearer requests) while Redis goes away as `outage`
/// says, then comes back on the same port.
async fn redis_lost_under_load(outage: Outage) {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let dev = issuer().await;
    let vars = [
        ("ISSUER_BASE_URL", dev.issuer()),
        ("REDIS_URL", url.as_str()),
        ("REDIS_TIMEOUT_MS", &OUTAGE_TIMEOUT.as_millis().to_string()),
        ("KEYSET_SNAPSHOT_SECRET", SECRET),
        ("INTROSPECTION_CLIENT_ID", INTROSPECTOR.0),
        ("INTROSPECTION_CLIENT_SECRET", INTROSPECTOR.1),
    ];
    let replicas = [
        Arc::new(Replica::start("A", &vars).await),
        Arc::new(Replica::start("B", &vars).await),
    ];
    let key = Arc::new(ProofKey::new());
    let tokens = Tokens {
        bound: key.bound_token(&dev),
        key,
        jwt: jwt(&dev),
        opaque: dev
            .mint_opaque(json!({"sub": "gift-deliveries@clients", "scope": "directions"}))
            .unwrap(),
    };
    // One request: at most one Redis call's bound (a dead Redis is then not called: the
    // circuit is open) plus the verification, or one introspection; generous for a loaded
    // machine, far below what waiting on a dead Redis would cost.
    let bound_per_request = OUTAGE_TIMEOUT + Duration::from_millis(750);
    for replica in &replicas {
        assert_eq!(tokens.send(replica, Kind::Opaque).await.status, 200);
    }

    // Under load, Redis goes away.
    let started = Instant::now();
    let stop_at = started + Duration::from_millis(1500);
    let until = started + Duration::from_millis(4000);
    let running = {
        let (replicas, tokens) = (replicas.clone(), tokens.clone());
        tokio::spawn(async move { load(&replicas, &tokens, 6, until).await })
    };
    tokio::time::sleep_until(stop_at.into()).await;
    let introspected_before = dev.introspection_requests();
    match outage {
        Outage::Killed => redis.stop(),
        Outage::Frozen => redis.pause(),
    }
    let stopped = Instant::now();
    let sent = running.await.expect("the load ran");

    let before = sent.iter().filter(|s| s.at < stop_at).count();
    let after = sent.iter().filter(|s| s.at > stopped).count();
    assert!(before > 10 && after > 10, "{before} before, {after} after");
    for s in &sent {
        let a = &s.answer;
        assert!(
            a.elapsed <= bound_per_request,
            "a request took {:?}: {s:?}",
            a.elapsed
        );
        match s.kind {
            // Accepted while Redis answered in time, else refused fail-closed with
            // Retry-After.
            Kind::Dpop => assert!(
                a.status == 200 || (a.status == 503 && a.retry_after),
                "{s:?}"
            ),
            Kind::Bearer => assert_eq!(a.status, 200, "a Bearer JWT needs no Redis: {s:?}"),
            Kind::Opaque => assert_eq!(a.status, 200, "introspected directly: {s:?}"),
        }
    }
    // Without Redis, opaque tokens are introspected at the endpoint directly.
    assert!(dev.introspection_requests() > introspected_before);
    // Once Redis has been gone for a while, every DPoP request is refused (fail closed).
    let settled = stopped + Duration::from_millis(500);
    let late_dpop: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.kind == Kind::Dpop && s.at > settled)
        .collect();
    assert!(!late_dpop.is_empty());
    for s in &late_dpop {
        assert_eq!(s.answer.status, 503, "{s:?}");
        assert!(s.answer.retry_after, "{s:?}");
    }
    // Before, every request was served.
    let early: Vec<&Sent> = sent.iter().filter(|s| s.answer.done < stop_at).collect();
    assert!(early.iter().any(|s| s.kind == Kind::Dpop));
    for s in early {
        assert_eq!(s.answer.status, 200, "before Redis went away: {s:?}");
    }

    // The outage is logged in a few lines (rate-limited, with the count of lines left
    // out), not in one or more lines per request (two thirds of the requests need Redis;
    // each of those logged one to three WARN lines before).
    assert!(after >= 30, "{after} requests during the outage");
    let mut warned = Vec::new();
    for replica in &replicas {
        let log = replica.log();
        let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
        assert!(
            warnings.len() <= 12,
            "replica {}: {} WARN lines for {after} requests, such as:\n{}",
            replica.name,
            warnings.len(),
            warnings[..5].join("\n")
        );
        warned.push(warnings.len());
    }

    let slowest = sent.iter().map(|s| s.answer.elapsed).max();
    eprintln!(
        "Redis {outage:?} under load: {} requests ({before} before, {after} after), slowest \
         {slowest:?}, WARN lines per replica {warned:?}",
        sent.len()
    );

    // Redis returns on the same port: service resumes by itself (the circuit probes within
    // 2 s).
    match outage {
        Outage::Killed => redis.spawn(),
        Outage::Frozen => redis.resume(),
    }
    for replica in &replicas {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let a = tokens.send(replica, Kind::Dpop).await;
            if a.status == 200 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "replica {} did not resume: {a:?}",
                replica.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for replica in &replicas {
        for _ in 0..10 {
            for kind in KINDS {
                let a = tokens.send(replica, kind).await;
                assert_eq!(a.status, 200, "{kind:?} {a:?}");
            }
        }
    }
    // A replay is caught across the fleet again.
    let proof = tokens.key.proof(&tokens.bound);
    assert_eq!(replicas[0].dpop(&tokens.bound, &proof).await.status, 200);
    assert_eq!(replicas[1].dpop(&tokens.bound, &proof).await.status, 401);
    // No replica panicked or exited.
    for replica in replicas {
        let mut replica = Arc::try_unwrap(replica).ok().expect("the load ended");
        replica.assert_running();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_load_gives_the_documented_answers_fast_and_service_returns_with_it() {
    require_redis!();
    redis_lost_under_load(Outage::Killed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_frozen_under_load_gives_the_documented_answers_fast_and_service_returns_with_it() {
    require_redis!();
    redis_lost_under_load(Outage::Frozen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_started_before_redis_refuse_dpop_then_share_it_once_redis_is_up() {
    require_redis!();
    let port = free_port(false);
    let url = format!("redis://127.0.0.1:{port}/");
    let dev = issuer().await;
    let vars = [
        ("ISSUER_BASE_URL", dev.issuer()),
        ("REDIS_URL", url.as_str()),
        PATIENT,
    ];
    let a = Replica::start("A", &vars).await;
    let b = Replica::start("B", &vars).await;
    let key = ProofKey::new();
    let bound = key.bound_token(&dev);
    let jwt = jwt(&dev);
    // No Redis yet: DPoP refused (fail closed), Bearer JWTs served.
    for replica in [&a, &b] {
        let answer = replica.dpop(&bound, &key.proof(&bound)).await;
        assert_eq!(answer.status, 503, "{answer:?}");
        assert!(answer.retry_after);
        assert_eq!(replica.bearer(&jwt).await.status, 200);
    }
    // Redis starts on the configured port: both replicas connect by themselves.
    let _redis = RedisServer::start_on(port, false);
    for replica in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answer = replica.dpop(&bound, &key.proof(&bound)).await;
            if answer.status == 200 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "replica {} never used Redis: {answer:?}\n{}",
                replica.name,
                replica.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // And they share it: a proof accepted by A is refused by B.
    let proof = key.proof(&bound);
    let mut first = a.dpop(&bound, &proof).await;
    for _ in 0..5 {
        if first.status != 503 {
            break;
        }
        first = a.dpop(&bound, &proof).await;
    }
    assert_eq!(first.status, 200, "{first:?}");
    let mut again = b.dpop(&bound, &proof).await;
    for _ in 0..5 {
        if again.status != 503 {
            break;
        }
        again = b.dpop(&bound, &proof).await;
    }
    assert!(
        again.status == 401 && again.www_authenticate.contains("already used"),
        "{again:?}"
    );
}

/// World Mappers run with `vars` until it exits (it must, within 60 s): its exit status
/// and output.
fn world_mappers_exit(vars: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let mut cmd = Command::new(world_mappers_binary());
    for v in WORLD_MAPPERS_VARIABLES {
        cmd.env_remove(v);
    }
    let mut child = cmd
        .env("PORT", free_port(false).to_string())
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("world_mappers started");
    let log = Arc::new(Mutex::new(String::new()));
    keep_output(child.stdout.take().expect("stdout"), log.clone());
    keep_output(child.stderr.take().expect("stderr"), log.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            // The reading threads end with the pipes.
            std::thread::sleep(Duration::from_millis(100));
            return (status, log.lock().map(|l| l.clone()).unwrap_or_default());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("world_mappers did not exit: {}", log.lock().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bad_fleet_settings_stop_world_mappers_with_a_message_naming_them() {
    let url = format!("redis://127.0.0.1:{}/", free_port(false));
    let url = url.as_str();
    for (vars, expected) in [
        (
            vec![("REDIS_URL", url), ("REDIS_TIMEOUT_MS", "soon")],
            r#"REDIS_TIMEOUT_MS "soon" is not a number of milliseconds"#,
        ),
        (
            vec![("REDIS_URL", url), ("REDIS_TIMEOUT_MS", "0")],
            "redis timeout",
        ),
        (
            vec![
                ("REDIS_URL", url),
                ("KEYSET_SNAPSHOT_SECRET", "tiny-secret"),
            ],
            "snapshot_secret length",
        ),
        (
            vec![("REDIS_URL", "memcached://127.0.0.1:1/")],
            "not a redis://",
        ),
        (
            vec![("REDIS_TIMEOUT_MS", "100")],
            "REDIS_TIMEOUT_MS needs REDIS_URL",
        ),
        (
            vec![("KEYSET_SNAPSHOT_SECRET", SECRET)],
            "KEYSET_SNAPSHOT_SECRET needs REDIS_URL",
        ),
    ] {
        let (status, log) = world_mappers_exit(&vars);
        assert!(!status.success(), "{vars:?}: {log}");
        assert!(log.contains(expected), "{vars:?}: {log}");
        assert!(!log.contains("panicked"), "{vars:?}: {log}");
        assert!(
            !log.contains("tiny-secret"),
            "the secret is not echoed: {log}"
        );
    }
}

#[test]
fn a_bad_fleet_setting_is_named_alone_and_an_empty_snapshot_secret_is_refused() {
    let url = format!("redis://127.0.0.1:{}/", free_port(false));
    let url = url.as_str();
    for (vars, expected) in [
        (
            vec![("REDIS_URL", url), ("REDIS_TIMEOUT_MS", "0")],
            "REDIS_TIMEOUT_MS: redis timeout",
        ),
        (
            vec![("REDIS_URL", "memcached://127.0.0.1:1/")],
            "REDIS_URL: redis url",
        ),
        (
            vec![
                ("REDIS_URL", url),
                ("KEYSET_SNAPSHOT_SECRET", "tiny-secret"),
            ],
            "KEYSET_SNAPSHOT_SECRET: snapshot_secret length",
        ),
        (
            // Set but empty: not silently "snapshots off".
            vec![("REDIS_URL", url), ("KEYSET_SNAPSHOT_SECRET", "")],
            "KEYSET_SNAPSHOT_SECRET is set but empty",
        ),
        (
            // Longer than the callers may be raised to wait for it.
            vec![("REDIS_URL", url), ("REDIS_TIMEOUT_MS", "6000")],
            "REDIS_TIMEOUT_MS 6000 is out of range",
        ),
    ] {
        let (status, log) = world_mappers_exit(&vars);
        assert!(!status.success(), "{vars:?}: {log}");
        assert!(log.contains(expected), "{vars:?}: {log}");
        assert!(
            !log.contains("REDIS_URL / KEYSET_SNAPSHOT_SECRET"),
            "{vars:?}: {log}"
        );
        assert!(!log.contains("panicked"), "{vars:?}: {log}");
        assert!(
            !log.contains("tiny-secret"),
            "the secret is not echoed: {log}"
        );
    }
}
