//! Interop with a real authorization server: `oidc-provider` (panva, OpenID Certified), run
//! by Node.js from `interop/` as child processes on free 127.0.0.1 ports. Its tokens go, over
//! real sockets, through the World Mappers example API.
//!
//! Needs `node` and `interop/node_modules` (`cd interop && npm ci`; `.ci/interop` does both).
//! Without them every test here passes after printing why it was skipped, unless
//! `BEARER_GUARD_INTEROP=require` is set (as `.ci/interop` does), which turns a skip into a
//! failure.
//!
//! The `dpop` tests (feature `client`) get DPoP-bound tokens (RFC 9449) from oidc-provider
//! with bearer-guard's client, whose proofs the IdP verifies, and with an independent client
//! made with `jose` (interop/dpop_client.mjs).
//!
//! `express_parity` also runs the 39 requests of the express-oauth2-jwt-bearer behaviour
//! matrix and, with `BEARER_GUARD_WRITE_COMPARISON=1`, rewrites the table in
//! docs/COMPARISON.md.
#![cfg(all(
    feature = "axum",
    feature = "dev-issuer",
    any(feature = "aws-lc-rs", feature = "rust-crypto")
))]

#[path = "../examples/world_mappers/app.rs"]
mod app;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bearer_guard::{Algorithm, Verifier, VerifierBuilder};
use serde_json::{Value, json};

/// The World Mappers API's identifier at the IdP (an RFC 8707 resource indicator).
const AUD: &str = "https://worldmappers.example/api";
const SCOPES: &str = "directions geocode:location";

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// Whether the IdP can run; prints why not (or panics when interop is required).
fn idp_available() -> bool {
    let modules = interop_dir().join("node_modules").join("oidc-provider");
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let why = if !node {
        "`node` is not on PATH"
    } else if !modules.is_dir() {
        "interop/node_modules is missing (run `npm ci` in interop/, or .ci/interop)"
    } else {
        return true;
    };
    if std::env::var("BEARER_GUARD_INTEROP").as_deref() == Ok("require") {
        panic!("interop test cannot run: {why}");
    }
    eprintln!("SKIPPED: interop test needs oidc-provider: {why}");
    false
}

macro_rules! require_idp {
    () => {
        if !idp_available() {
            return;
        }
    };
}

/// A private temporary folder, removed on drop (the IdP's key pool lives here).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "bearer-guard-interop-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    fn keys(&self) -> PathBuf {
        self.0.join("keys.private.json")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How to start one oidc-provider instance (see interop/idp.mjs).
#[derive(Clone)]
struct IdpConfig {
    keys: PathBuf,
    /// 0: any free port.
    port: u16,
    /// Default: `http://127.0.0.1:<port>`.
    issuer: Option<String>,
    kids: &'static str,
    short_ttl: u64,
    scopes: String,
    /// The token endpoint requires DPoP server nonces (`IDP_DPOP_NONCE=1`).
    dpop_nonce: bool,
    /// Resources whose access tokens are opaque (`IDP_OPAQUE_RESOURCES`).
    opaque_resources: String,
}

impl IdpConfig {
    fn new(keys: PathBuf) -> Self {
        Self {
            keys,
            port: 0,
            issuer: None,
            kids: "rsa-1,ec-1,ed-1",
            short_ttl: 1,
            scopes: app::SCOPES.join(" "),
            dpop_nonce: false,
            opaque_resources: String::new(),
        }
    }
}

/// A running oidc-provider; killed on drop.
struct Idp {
    child: Child,
    issuer: String,
    port: u16,
    stderr: Arc<Mutex<String>>,
}

impl Idp {
    async fn start(config: IdpConfig) -> Self {
        tokio::task::spawn_blocking(move || Self::start_blocking(&config))
            .await
            .expect("idp start task")
    }

    fn start_blocking(config: &IdpConfig) -> Self {
        let mut cmd = Command::new("node");
        cmd.arg("idp.mjs")
            .current_dir(interop_dir())
            .env("IDP_PORT", config.port.to_string())
            .env("IDP_KEYS", &config.keys)
            .env("IDP_KIDS", config.kids)
            .env("IDP_SHORT_TTL", config.short_ttl.to_string())
            .env("IDP_SCOPES", &config.scopes)
            .env("IDP_DPOP_NONCE", if config.dpop_nonce { "1" } else { "0" })
            .env("IDP_OPAQUE_RESOURCES", &config.opaque_resources)
            .env_remove("IDP_ISSUER")
            .env_remove("IDP_RESOURCES")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(issuer) = &config.issuer {
            cmd.env("IDP_ISSUER", issuer);
        }
        let mut child = cmd.spawn().expect("spawn node interop/idp.mjs");

        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0_u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut s) = sink.lock() {
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(json) = line.strip_prefix("READY ") {
                    let _ = tx.send(json.to_owned());
                }
            }
        });
        // Node and oidc-provider take a few seconds on a loaded machine (RSA key generation
        // on the first start of a key pool).
        let ready = rx.recv_timeout(Duration::from_secs(90));
        let mut idp = Self {
            child,
            issuer: String::new(),
            port: 0,
            stderr,
        };
        let ready: Value = match ready {
            Ok(json) => serde_json::from_str(&json).expect("READY json"),
            Err(_) => panic!("the IdP did not start; its stderr:\n{}", idp.stderr_text()),
        };
        idp.issuer = ready["issuer"].as_str().expect("issuer").to_owned();
        idp.port = ready["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .expect("port");
        idp
    }

    fn stderr_text(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn token_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// A client-credentials token response from client `client` (secret `<client>-secret`),
    /// authenticating as the client's name says (`-basic`: HTTP Basic, `-post`: form fields).
    async fn token_response(&self, client: &str, resource: &str, scope: &str) -> Value {
        let secret = format!("{client}-secret");
        let mut form = vec![("grant_type", "client_credentials"), ("resource", resource)];
        if !scope.is_empty() {
            form.push(("scope", scope));
        }
        let mut req = reqwest::Client::new().post(self.token_endpoint());
        if client.ends_with("-post") {
            form.push(("client_id", client));
            form.push(("client_secret", &secret));
        } else {
            req = req.basic_auth(client, Some(&secret));
        }
        let res = req.form(&form).send().await.expect("token request");
        let status = res.status();
        let body: Value = res.json().await.expect("token response json");
        assert!(status.is_success(), "token request for {client}: {body}");
        body
    }

    async fn token(&self, client: &str, scope: &str) -> String {
        access_token(&self.token_response(client, AUD, scope).await)
    }

    /// Stops the IdP (SIGKILL) and waits for it to exit.
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One access token (see [`Idp::token_response`]).
async fn get(idp: &Idp, client: &str, resource: &str, scope: &str) -> String {
    access_token(&idp.token_response(client, resource, scope).await)
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
    }
}

fn access_token(response: &Value) -> String {
    response["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// The decoded JOSE header and payload of a JWT.
fn decode(token: &str) -> (Value, Value) {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let mut part = || -> Value {
        let bytes = b64.decode(parts.next().expect("part")).expect("base64url");
        serde_json::from_slice(&bytes).expect("json")
    };
    (part(), part())
}

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    i64::try_from(secs).expect("time")
}

/// The World Mappers API on a free port, trusting `issuer` (keys by discovery).
struct Api {
    base: String,
    verifier: Verifier,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Api {
    async fn start(builder: VerifierBuilder) -> Self {
        Self::start_inner(builder, None).await
    }

    /// World Mappers accepting DPoP as its example does by default (`DPOP=allowed`, the
    /// public URL for `htu`), with server nonces when `nonces` (`DPOP_NONCE=1`).
    #[cfg(feature = "client")]
    async fn start_with_dpop(builder: VerifierBuilder, nonces: bool) -> Self {
        Self::start_inner(builder, Some(nonces)).await
    }

    async fn start_inner(builder: VerifierBuilder, dpop_nonces: Option<bool>) -> Self {
        let verifier = builder.build().expect("verifier");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let dpop = dpop_nonces.map(|nonces| {
            let mut b = bearer_guard::Dpop::builder().public_url(&base);
            if nonces {
                b = b.nonces(bearer_guard::dpop::Nonces::random().expect("nonces"));
            }
            b.build().expect("dpop")
        });
        let router = app::app_with_dpop(verifier.clone(), &base, dpop);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            base,
            verifier,
            task,
        }
    }

    /// `GET path` with the token; the status, `WWW-Authenticate` and body.
    async fn call(&self, path: &str, token: &str) -> (u16, String, String) {
        let res = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        let www = res
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (status, www, res.text().await.expect("body"))
    }

    async fn status(&self, path: &str, token: &str) -> u16 {
        self.call(path, token).await.0
    }
}

fn trusting(issuer: &str) -> VerifierBuilder {
    Verifier::builder().issuer(issuer).audience(AUD)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_every_algorithm_and_client_authentication_are_accepted() {
    require_idp!();
    let tmp = TempDir::new();
    let idp = Idp::start(IdpConfig::new(tmp.keys())).await;
    let api = Api::start(trusting(&idp.issuer)).await;

    for (client, alg, kid) in [
        ("rs256-basic", Algorithm::RS256, "rsa-1"),
        ("rs256-post", Algorithm::RS256, "rsa-1"),
        ("es256-basic", Algorithm::ES256, "ec-1"),
        ("es256-post", Algorithm::ES256, "ec-1"),
        ("eddsa-basic", Algorithm::EdDSA, "ed-1"),
        ("eddsa-post", Algorithm::EdDSA, "ed-1"),
    ] {
        let response = idp.token_response(client, AUD, SCOPES).await;
        let token = access_token(&response);
        let (header, payload) = decode(&token);
        assert_eq!(header["typ"], "at+jwt", "{client}");
        assert_eq!(header["kid"], kid, "{client}");

        // Through the API: the granted scopes open their routes, and only those.
        let (status, _, body) = api.call("/api/directions?destination=Oslo", &token).await;
        assert_eq!(status, 200, "{client}: {body}");
        let body: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(body["requested_by"], client);
        assert_eq!(body["destination"], "Oslo");
        assert_eq!(api.status("/api/location/geocode", &token).await, 200);
        let (status, www, _) = api.call("/api/location/reverse-geocode", &token).await;
        assert_eq!(status, 403, "{client}");
        assert!(www.contains("insufficient_scope"), "{www}");

        // The claims, as issued.
        let claims = api.verifier.verify(&token).await.expect("claims");
        assert_eq!(claims.issuer(), idp.issuer);
        assert_eq!(claims.audience(), [AUD]);
        assert_eq!(claims.client_id(), Some(client));
        assert_eq!(claims.subject(), Some(client));
        assert_eq!(claims.algorithm(), alg);
        assert_eq!(claims.key_id(), Some(kid));
        assert_eq!(claims.jwt_id(), payload["jti"].as_str());
        assert_eq!(Some(claims.expires_at()), payload["exp"].as_i64());
        assert_eq!(claims.issued_at(), payload["iat"].as_i64());
        let mut granted: Vec<&str> = response["scope"]
            .as_str()
            .expect("scope")
            .split(' ')
            .collect();
        granted.sort_unstable();
        assert_eq!(claims.scopes().iter().collect::<Vec<_>>(), granted);
        assert_eq!(payload["scope"], response["scope"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_another_resource_is_refused() {
    require_idp!();
    let tmp = TempDir::new();
    let idp = Idp::start(IdpConfig::new(tmp.keys())).await;
    let api = Api::start(trusting(&idp.issuer)).await;

    let good = idp.token("rs256-basic", SCOPES).await;
    let other = access_token(
        &idp.token_response("rs256-basic", "https://other.example/api", SCOPES)
            .await,
    );
    assert_eq!(decode(&other).1["aud"], "https://other.example/api");
    assert_eq!(api.status("/api/directions", &good).await, 200);
    let (status, www, _) = api.call("/api/directions", &other).await;
    assert_eq!(status, 401);
    assert!(www.contains(r#"error="invalid_token""#), "{www}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_another_issuer_with_the_same_keys_is_refused() {
    require_idp!();
    let tmp = TempDir::new();
    let idp = Idp::start(IdpConfig::new(tmp.keys())).await;
    // A second oidc-provider on its own port: same key pool, so same kids and signatures,
    // but its own issuer identifier.
    let other = Idp::start(IdpConfig::new(tmp.keys())).await;
    assert_ne!(idp.issuer, other.issuer);
    let api = Api::start(trusting(&idp.issuer)).await;

    let token = other.token("rs256-basic", SCOPES).await;
    let (header, payload) = decode(&token);
    assert_eq!(header["kid"], "rsa-1");
    assert_eq!(payload["iss"], other.issuer.as_str());
    let (status, www, _) = api.call("/api/directions", &token).await;
    assert_eq!(status, 401);
    assert!(www.contains(r#"error="invalid_token""#), "{www}");
    // The same request with the trusted issuer's token passes.
    let token = idp.token("rs256-basic", SCOPES).await;
    assert_eq!(api.status("/api/directions", &token).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lived_token_is_refused_once_expired() {
    require_idp!();
    let tmp = TempDir::new();
    let idp = Idp::start(IdpConfig {
        short_ttl: 3,
        ..IdpConfig::new(tmp.keys())
    })
    .await;
    let leeway = 1;
    let api = Api::start(trusting(&idp.issuer).leeway(Duration::from_secs(leeway))).await;

    let token = idp.token("short-lived", SCOPES).await;
    let exp = decode(&token).1["exp"].as_i64().expect("exp");
    assert!(exp - now() <= 3);
    assert_eq!(api.status("/api/directions", &token).await, 200);

    // Past `exp` plus the leeway (and a second for the clock's granularity).
    let wait = exp + i64::try_from(leeway).expect("leeway") + 1 - now();
    if wait > 0 {
        tokio::time::sleep(Duration::from_secs(wait.unsigned_abs())).await;
    }
    let (status, www, _) = api.call("/api/directions", &token).await;
    assert_eq!(status, 401, "accepted after exp {exp} at {}", now());
    assert!(www.contains(r#"error="invalid_token""#), "{www}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_at_the_idp_needs_no_api_restart() {
    require_idp!();
    let tmp = TempDir::new();
    let mut idp = Idp::start(IdpConfig::new(tmp.keys())).await;
    let (issuer, port) = (idp.issuer.clone(), idp.port);
    let api = Api::start(trusting(&issuer)).await;

    let before = idp.token("rs256-basic", SCOPES).await;
    assert_eq!(decode(&before).0["kid"], "rsa-1");
    assert_eq!(api.status("/api/directions", &before).await, 200);
    let fetches = api.verifier.jwks_fetches();

    // The IdP restarts with a new key published first (so it signs), the old one kept.
    idp.stop();
    let idp = Idp::start(IdpConfig {
        port,
        kids: "rsa-2,rsa-1,ec-1,ed-1",
        ..IdpConfig::new(tmp.keys())
    })
    .await;
    assert_eq!(idp.issuer, issuer);
    let after = idp.token("rs256-basic", SCOPES).await;
    assert_eq!(decode(&after).0["kid"], "rsa-2");
    assert_eq!(api.status("/api/directions", &after).await, 200);
    assert!(
        api.verifier.jwks_fetches() > fetches,
        "the new kid was fetched"
    );
    // Tokens under the old key stay valid while it is published.
    assert_eq!(api.status("/api/directions", &before).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_idp_down_cached_keys_verify_and_a_new_key_waits_for_it() {
    require_idp!();
    let tmp = TempDir::new();
    let mut idp = Idp::start(IdpConfig::new(tmp.keys())).await;
    let (issuer, port) = (idp.issuer.clone(), idp.port);
    // Quick retries, so that the test does not wait out the default backoff.
    let api = Api::start(
        trusting(&issuer)
            .fetch_backoff(Duration::from_millis(50), Duration::from_millis(200))
            .unknown_kid_refresh(10, Duration::from_millis(100)),
    )
    .await;

    let warm = idp.token("rs256-basic", SCOPES).await;
    assert_eq!(api.status("/api/directions", &warm).await, 200);
    // Tokens not yet seen by the API (so not in its verified-token cache).
    let rs256 = idp.token("rs256-post", SCOPES).await;
    let es256 = idp.token("es256-basic", SCOPES).await;
    let eddsa = idp.token("eddsa-post", SCOPES).await;
    // A token for the same issuer under a key the API has never seen (rsa-2), minted by a
    // helper instance that only claims the issuer's name.
    let mut minter = Idp::start(IdpConfig {
        issuer: Some(issuer.clone()),
        kids: "rsa-2",
        ..IdpConfig::new(tmp.keys())
    })
    .await;
    let fresh = minter.token("rs256-basic", SCOPES).await;
    assert_eq!(decode(&fresh).0["kid"], "rsa-2");
    minter.stop();
    idp.stop();

    for token in [&rs256, &es256, &eddsa] {
        assert_eq!(api.status("/api/directions", token).await, 200);
    }
    for _ in 0..2 {
        let (status, _, body) = api.call("/api/directions", &fresh).await;
        assert_eq!(status, 503, "{body}");
    }

    // The IdP is back, now publishing the new key.
    let _idp = Idp::start(IdpConfig {
        port,
        kids: "rsa-2,rsa-1,ec-1,ed-1",
        ..IdpConfig::new(tmp.keys())
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = api.status("/api/directions", &fresh).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "while the key set is being fetched again");
        assert!(Instant::now() < deadline, "the new key was never fetched");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(api.status("/api/directions", &warm).await, 200);
}

// ---- parity with express-oauth2-jwt-bearer ---------------------------------------------------

/// The audience of the reference API in the express matrix.
const PARITY_AUD: &str = "https://api.example.com/";

/// The 39 cases of the express-oauth2-jwt-bearer 1.10.0 behaviour matrix (its instance
/// `dpop-off`: plain RFC 6750 Bearer; `default` and `json` answer with the same statuses),
/// with express's status and bearer-guard's (asserted, so the table cannot go stale).
const PARITY: [(&str, u16, u16); 39] = [
    ("no Authorization header", 401, 401),
    ("`Authorization: Bearer` (no token)", 400, 400),
    ("`Authorization: Bearer ` (trailing space)", 400, 400),
    ("`Authorization: Basic dXNlcjpwYXNz`", 400, 401),
    (
        "`Authorization: Token <valid jwt>` (unknown scheme)",
        400,
        401,
    ),
    ("`Authorization: <valid jwt>` (no scheme)", 400, 401),
    ("garbage token `Bearer abc`", 401, 401),
    ("garbage 3-part token `Bearer a.b.c`", 401, 401),
    ("`Bearer  <valid>` (two spaces)", 400, 200),
    ("`bearer <valid>` (lower-case scheme)", 200, 200),
    ("`BEARER <valid>` (upper-case scheme)", 200, 200),
    ("expired: IdP token, ttl 2 s, used ~9 s later", 401, 200),
    ("expired: forged, exp = now-3600 (rsa-1)", 401, 401),
    ("no exp claim (forged)", 401, 401),
    ("nbf = now+3600 (forged)", 401, 401),
    ("iat = now+3600 (forged)", 200, 401),
    (
        "wrong audience: IdP token for resource=https://other.example/",
        401,
        401,
    ),
    ("aud = [other, API] array (forged)", 200, 200),
    (
        "wrong issuer: second oidc-provider, same keys (its own issuer)",
        401,
        401,
    ),
    (
        "wrong issuer: forged iss, key rsa-1 (served by the IdP)",
        401,
        401,
    ),
    (
        "foreign issuer: a third oidc-provider with its own keys (express: oauth2-mock-server)",
        401,
        401,
    ),
    ("alg none, signature part empty (`h.p.`)", 401, 401),
    ("alg none, two parts only (`h.p`)", 401, 401),
    (
        "HS256 keyed with the RSA public key (alg confusion)",
        401,
        401,
    ),
    ("kid rsa-2: valid key pair, not in JWKS", 401, 401),
    ("no kid in header (forged, rsa-1)", 200, 200),
    ("kid ec-1 on an RS256 token", 401, 401),
    ("tampered payload (signature mismatch)", 401, 401),
    ("typ `JWT` instead of `at+jwt` (forged)", 200, 200),
    ("no typ header (forged)", 200, 200),
    ("valid, scope `write:maps` only (lacks read:maps)", 403, 403),
    ("valid, no scope claim", 403, 403),
    (
        "valid, no scope claim, route without requiredScopes (/api/me)",
        200,
        200,
    ),
    ("valid RS256, scope `read:maps write:maps`", 200, 200),
    ("valid ES256, scope `read:maps`", 200, 200),
    ("valid EdDSA, scope `read:maps`", 200, 200),
    ("valid token in `?access_token=` query, no header", 200, 401),
    ("token both in header and in query", 400, 200),
    (
        "two Authorization headers: `Bearer abc`, then `Bearer <valid>`",
        401,
        400,
    ),
];

/// The reference API's routes, protected by the layer with its defaults: `GET /api/maps`
/// needs `read:maps`, `GET /api/me` any valid token.
async fn parity_api(issuer: &str) -> Api {
    use axum::routing::get;
    let verifier = trusting(issuer)
        .audience(PARITY_AUD)
        .build()
        .expect("verifier");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let router = axum::Router::new()
        .route(
            "/api/maps",
            get(|c: bearer_guard::Claims| async move {
                axum::Json(json!({"maps": ["north", "south"], "sub": c.subject()}))
            })
            .route_layer(bearer_guard::require_scopes(["read:maps"])),
        )
        .route(
            "/api/me",
            // Express echoes the whole header and payload; the stable part suffices here.
            get(|c: bearer_guard::Claims| async move {
                axum::Json(json!({"sub": c.subject(), "client_id": c.client_id(),
                    "scope": c.scopes().to_string()}))
            }),
        )
        .layer(bearer_guard::JwtAuthLayer::new(verifier.clone()));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Api {
        base,
        verifier,
        task,
    }
}

/// The SPKI PEM of a public JWK, by `jose` (the HS256 confusion secret).
fn spki_pem(jwk: &Value) -> String {
    let out = Command::new("node")
        .args([
            "--input-type=module",
            "-e",
            "import * as jose from 'jose'; \
             const k = await jose.importJWK(JSON.parse(process.env.JWK), 'RS256'); \
             process.stdout.write(await jose.exportSPKI(k));",
        ])
        .env("JWK", jwk.to_string())
        .current_dir(interop_dir())
        .output()
        .expect("node");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("pem")
}

fn b64_json(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn express_parity() {
    use bearer_guard::dev_issuer::SigningKey;
    require_idp!();
    let tmp = TempDir::new();
    // The IdP signs with the crate's development keys, so that the test can forge tokens
    // under the very keys the IdP publishes.
    let pem = |name: &str| {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("src/dev_issuer/keys/{name}.pem")),
        )
        .expect("dev key")
    };
    let pool = json!({
        "rsa-1": {"alg": "RS256", "pem": pem("rsa-1")},
        "rsa-2": {"alg": "RS256", "pem": pem("rsa-2")},
        "ec-1": {"alg": "ES256", "pem": pem("ec256-1")},
        "ed-1": {"alg": "EdDSA", "pem": pem("ed-1")},
    });
    std::fs::write(tmp.keys(), pool.to_string()).expect("key pool");
    let config = IdpConfig {
        short_ttl: 2,
        scopes: "read:maps write:maps".into(),
        ..IdpConfig::new(tmp.keys())
    };
    let idp = Idp::start(config.clone()).await;
    let idp2 = Idp::start(config.clone()).await;
    let foreign_dir = TempDir::new();
    let foreign = Idp::start(IdpConfig {
        scopes: "read:maps write:maps".into(),
        ..IdpConfig::new(foreign_dir.keys())
    })
    .await;
    let api = parity_api(&idp.issuer).await;

    let started = Instant::now();
    let short = get(&idp, "short-lived", PARITY_AUD, "read:maps").await;
    let valid = get(&idp, "rs256-basic", PARITY_AUD, "read:maps write:maps").await;
    let es256 = get(&idp, "es256-basic", PARITY_AUD, "read:maps").await;
    let eddsa = get(&idp, "eddsa-basic", PARITY_AUD, "read:maps").await;
    let write_only = get(&idp, "rs256-basic", PARITY_AUD, "write:maps").await;
    let no_scope = get(&idp, "rs256-basic", PARITY_AUD, "").await;
    let wrong_aud = get(&idp, "rs256-basic", "https://other.example/", "read:maps").await;
    let from_idp2 = get(&idp2, "rs256-basic", PARITY_AUD, "read:maps").await;
    let from_foreign = get(&foreign, "rs256-basic", PARITY_AUD, "read:maps").await;

    let rsa1 = SigningKey::from_pool(Algorithm::RS256, 0, "rsa-1").expect("rsa-1");
    let rsa2 = SigningKey::from_pool(Algorithm::RS256, 1, "rsa-2").expect("rsa-2");
    let t = now();
    let forge = |key: &SigningKey, header: Value, claims: Value| {
        let mut h = json!({"alg": "RS256", "typ": "at+jwt", "kid": key.kid()});
        let mut c = json!({
            "jti": format!("forged-{}", rand_suffix()), "sub": "rs256-basic", "iat": t,
            "exp": t + 3600, "scope": "read:maps", "client_id": "rs256-basic",
            "iss": idp.issuer, "aud": PARITY_AUD,
        });
        merge(&mut h, header);
        merge(&mut c, claims);
        key.sign_raw(h.to_string().as_bytes(), c.to_string().as_bytes())
            .expect("sign")
    };
    let forged_expired = forge(&rsa1, json!({}), json!({"iat": t - 7200, "exp": t - 3600}));
    let forged_aud_array = forge(
        &rsa1,
        json!({}),
        json!({"aud": ["https://other.example/", PARITY_AUD]}),
    );
    let forged_nbf = forge(&rsa1, json!({}), json!({"nbf": t + 3600}));
    let forged_typ_jwt = forge(&rsa1, json!({"typ": "JWT"}), json!({}));
    let forged_no_typ = forge(&rsa1, json!({"typ": null}), json!({}));
    let forged_unknown_kid = forge(&rsa2, json!({}), json!({}));
    let forged_no_kid = forge(&rsa1, json!({"kid": null}), json!({}));
    let forged_wrong_iss = forge(&rsa1, json!({}), json!({"iss": "http://127.0.0.1:9"}));
    let forged_no_exp = forge(&rsa1, json!({}), json!({"exp": null}));
    let forged_iat_future = forge(&rsa1, json!({}), json!({"iat": t + 3600}));

    let parts: Vec<&str> = valid.split('.').collect();
    let (h, p, sig) = (parts[0], parts[1], parts[2]);
    let none_header = b64_json(&json!({"alg": "none", "typ": "at+jwt"}));
    let alg_none = format!("{none_header}.{p}.");
    let alg_none_two_parts = format!("{none_header}.{p}");
    let rsa1_public = rsa1.public_jwk();
    let confusion_key = SigningKey::hmac(
        Algorithm::HS256,
        spki_pem(&json!({"kty": "RSA", "n": rsa1_public["n"], "e": rsa1_public["e"]})).as_bytes(),
        "rsa-1",
    )
    .expect("hmac");
    let payload = decode(&valid).1;
    let hs256 = confusion_key
        .sign_raw(
            json!({"alg": "HS256", "typ": "at+jwt", "kid": "rsa-1"})
                .to_string()
                .as_bytes(),
            payload.to_string().as_bytes(),
        )
        .expect("hs256");
    let mut tampered_payload = payload.clone();
    tampered_payload["scope"] = json!("read:maps write:maps admin");
    let tampered = format!("{h}.{}.{sig}", b64_json(&tampered_payload));
    let kid_mismatch = format!(
        "{}.{p}.{sig}",
        b64_json(&json!({"alg": "RS256", "typ": "at+jwt", "kid": "ec-1"}))
    );

    // As express's harness does: wait out the short-lived token (2 s) plus express's 5 s
    // clock tolerance.
    if let Some(left) = Duration::from_secs(9).checked_sub(started.elapsed()) {
        tokio::time::sleep(left).await;
    }

    let bearer = |t: &str| vec![format!("Bearer {t}")];
    let requests: Vec<(String, Vec<String>)> = vec![
        ("/api/maps".into(), vec![]),
        ("/api/maps".into(), vec!["Bearer".into()]),
        ("/api/maps".into(), vec!["Bearer ".into()]),
        ("/api/maps".into(), vec!["Basic dXNlcjpwYXNz".into()]),
        ("/api/maps".into(), vec![format!("Token {valid}")]),
        ("/api/maps".into(), vec![valid.clone()]),
        ("/api/maps".into(), bearer("abc")),
        ("/api/maps".into(), bearer("a.b.c")),
        ("/api/maps".into(), vec![format!("Bearer  {valid}")]),
        ("/api/maps".into(), vec![format!("bearer {valid}")]),
        ("/api/maps".into(), vec![format!("BEARER {valid}")]),
        ("/api/maps".into(), bearer(&short)),
        ("/api/maps".into(), bearer(&forged_expired)),
        ("/api/maps".into(), bearer(&forged_no_exp)),
        ("/api/maps".into(), bearer(&forged_nbf)),
        ("/api/maps".into(), bearer(&forged_iat_future)),
        ("/api/maps".into(), bearer(&wrong_aud)),
        ("/api/maps".into(), bearer(&forged_aud_array)),
        ("/api/maps".into(), bearer(&from_idp2)),
        ("/api/maps".into(), bearer(&forged_wrong_iss)),
        ("/api/maps".into(), bearer(&from_foreign)),
        ("/api/maps".into(), bearer(&alg_none)),
        ("/api/maps".into(), bearer(&alg_none_two_parts)),
        ("/api/maps".into(), bearer(&hs256)),
        ("/api/maps".into(), bearer(&forged_unknown_kid)),
        ("/api/maps".into(), bearer(&forged_no_kid)),
        ("/api/maps".into(), bearer(&kid_mismatch)),
        ("/api/maps".into(), bearer(&tampered)),
        ("/api/maps".into(), bearer(&forged_typ_jwt)),
        ("/api/maps".into(), bearer(&forged_no_typ)),
        ("/api/maps".into(), bearer(&write_only)),
        ("/api/maps".into(), bearer(&no_scope)),
        ("/api/me".into(), bearer(&no_scope)),
        ("/api/maps".into(), bearer(&valid)),
        ("/api/maps".into(), bearer(&es256)),
        ("/api/maps".into(), bearer(&eddsa)),
        (format!("/api/maps?access_token={valid}"), vec![]),
        (format!("/api/maps?access_token={valid}"), bearer(&valid)),
        (
            "/api/maps".into(),
            vec!["Bearer abc".into(), format!("Bearer {valid}")],
        ),
    ];
    assert_eq!(requests.len(), PARITY.len());

    let client = reqwest::Client::new();
    let mut table = String::from(
        "| # | case | express | bearer-guard | | bearer-guard `WWW-Authenticate` | bearer-guard body |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let mut mismatches = Vec::new();
    for (i, ((path, auth), (name, express, expected))) in
        requests.iter().zip(PARITY.iter()).enumerate()
    {
        let mut req = client.get(format!("{}{path}", api.base));
        for value in auth {
            req = req.header("authorization", value);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let www = res
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map_or_else(|| "—".to_owned(), |v| format!("`{v}`"));
        let body = res.text().await.expect("body");
        let body = if body.is_empty() {
            "—".to_owned()
        } else {
            let short: String = body.chars().take(100).collect();
            let more = if short.len() < body.len() { "…" } else { "" };
            format!("`{}{more}`", short.replace('|', "\\|"))
        };
        if status != *expected {
            mismatches.push(format!("#{} {name}: {status}, expected {expected}", i + 1));
        }
        let same = if status == *express {
            "same"
        } else {
            "**differs**"
        };
        table.push_str(&format!(
            "| {} | {name} | {express} | {status} | {same} | {www} | {body} |\n",
            i + 1
        ));
    }
    eprintln!("{table}");

    if std::env::var("BEARER_GUARD_WRITE_COMPARISON").as_deref() == Ok("1") {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/COMPARISON.md");
        let doc = std::fs::read_to_string(&path).expect("docs/COMPARISON.md");
        let (start, end) = ("<!-- table:start -->\n", "<!-- table:end -->");
        let a = doc.find(start).expect("table start marker") + start.len();
        let b = doc.find(end).expect("table end marker");
        let updated = format!("{}{table}{}", &doc[..a], &doc[b..]);
        std::fs::write(&path, updated).expect("write docs/COMPARISON.md");
    }
    assert!(mismatches.is_empty(), "answers changed: {mismatches:#?}");
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        for (k, v) in from {
            if v.is_null() {
                into.remove(&k);
            } else {
                into.insert(k, v);
            }
        }
    }
}

fn rand_suffix() -> u128 {
    static N: AtomicU32 = AtomicU32::new(0);
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        + u128::from(N.fetch_add(1, Ordering::Relaxed))
}

/// DPoP (RFC 9449) against oidc-provider, whose `features.dPoP` verifies the token-endpoint
/// proofs and binds the tokens (`cnf.jkt`).
#[cfg(feature = "client")]
mod dpop {
    use super::*;
    use bearer_guard::client::{ClientAuthMethod, ClientCredentials, DpopKey};

    /// bearer-guard's client for the IdP's `dpop-basic` client (registered with
    /// `dpop_bound_access_tokens`: it refuses token requests without a proof).
    fn our_client(idp: &Idp, key: &DpopKey) -> ClientCredentials {
        ClientCredentials::builder()
            .token_endpoint(idp.token_endpoint())
            .client_id("dpop-basic")
            .client_secret("dpop-basic-secret")
            .auth_method(ClientAuthMethod::ClientSecretBasic)
            .resource(AUD)
            .scope(SCOPES)
            .dpop(key.clone())
            .build()
            .expect("client")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn oidc_provider_binds_our_clients_tokens_to_our_key() {
        require_idp!();
        let tmp = TempDir::new();
        let idp = Idp::start(IdpConfig::new(tmp.keys())).await;
        for alg in [Algorithm::ES256, Algorithm::EdDSA] {
            let key = DpopKey::generate(alg).expect("key");
            let source = our_client(&idp, &key);
            let token = source
                .token()
                .await
                .unwrap_or_else(|e| panic!("{alg}: {e}; IdP stderr:\n{}", idp.stderr_text()));
            assert!(token.is_dpop_bound(), "{alg}: token_type DPoP");
            let (header, payload) = decode(token.secret());
            assert_eq!(header["typ"], "at+jwt");
            assert_eq!(payload["cnf"]["jkt"], key.thumbprint(), "{alg}: cnf.jkt");
            assert_eq!(payload["client_id"], "dpop-basic");
            assert_eq!(source.token_requests(), 1, "{alg}: no nonce asked");
            // The token itself verifies as any access token of this issuer.
            let verifier = trusting(&idp.issuer).build().expect("verifier");
            let claims = verifier.verify(token.secret()).await.expect("claims");
            assert_eq!(claims.client_id(), Some("dpop-basic"));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn our_client_answers_oidc_providers_nonce_challenge() {
        require_idp!();
        let tmp = TempDir::new();
        let idp = Idp::start(IdpConfig {
            dpop_nonce: true,
            ..IdpConfig::new(tmp.keys())
        })
        .await;
        let key = DpopKey::generate(Algorithm::ES256).expect("key");
        let source = our_client(&idp, &key);
        let token = source
            .token()
            .await
            .unwrap_or_else(|e| panic!("{e}; IdP stderr:\n{}", idp.stderr_text()));
        assert_eq!(decode(token.secret()).1["cnf"]["jkt"], key.thumbprint());
        assert_eq!(source.token_requests(), 2, "use_dpop_nonce, then the retry");
        // The nonce is remembered: a new token needs one request only.
        assert!(source.invalidate(&token));
        source.token().await.expect("a second token");
        assert_eq!(source.token_requests(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_dpop_the_dpop_bound_client_is_refused_by_oidc_provider() {
        require_idp!();
        let tmp = TempDir::new();
        let idp = Idp::start(IdpConfig::new(tmp.keys())).await;
        let source = ClientCredentials::builder()
            .token_endpoint(idp.token_endpoint())
            .client_id("dpop-basic")
            .client_secret("dpop-basic-secret")
            .auth_method(ClientAuthMethod::ClientSecretBasic)
            .resource(AUD)
            .build()
            .expect("client");
        let e = source.token().await.expect_err("refused without a proof");
        assert_eq!(e.oauth_error(), Some("invalid_grant"), "{e}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_jose_client_gets_a_token_bound_to_its_own_key() {
        require_idp!();
        let tmp = TempDir::new();
        let idp = Idp::start(IdpConfig {
            dpop_nonce: true,
            ..IdpConfig::new(tmp.keys())
        })
        .await;
        let endpoint = idp.token_endpoint();
        let out = tokio::task::spawn_blocking(move || jose_client(&endpoint, "ES256", &[]))
            .await
            .expect("task");
        assert_eq!(out["token_type"], "DPoP");
        let token = out["access_token"].as_str().expect("token");
        assert_eq!(decode(token).1["cnf"]["jkt"], out["jkt"]);
    }

    /// The independent client (interop/dpop_client.mjs, `jose`, nothing from bearer-guard):
    /// its token response from `token_endpoint`, its key's thumbprint (`jkt`), and one proof
    /// per `(htm, htu)` call (`proofs`). Blocking.
    fn jose_client(token_endpoint: &str, alg: &str, calls: &[(&str, &str)]) -> Value {
        let input = json!({
            "token_endpoint": token_endpoint,
            "client_id": "dpop-basic",
            "client_secret": "dpop-basic-secret",
            "resource": AUD,
            "scope": SCOPES,
            "alg": alg,
            "calls": calls.iter().map(|(htm, htu)| json!({"htm": htm, "htu": htu})).collect::<Vec<_>>(),
        });
        let out = Command::new("node")
            .arg("dpop_client.mjs")
            .arg(input.to_string())
            .current_dir(interop_dir())
            .output()
            .expect("run node interop/dpop_client.mjs");
        assert!(
            out.status.success(),
            "dpop_client.mjs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("dpop_client.mjs output")
    }

    /// The World Mappers API accepting DPoP (mode `allowed`, its default), trusting `idp`.
    async fn dpop_api(idp: &Idp, nonces: bool) -> Api {
        Api::start_with_dpop(trusting(&idp.issuer), nonces).await
    }

    /// `GET url` with `Authorization: DPoP <token>` and `DPoP: <proof>`: status and
    /// `WWW-Authenticate`.
    async fn dpop_call(url: &str, token: &str, proof: &str) -> (u16, String) {
        let res = reqwest::Client::new()
            .get(url)
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .send()
            .await
            .expect("request");
        let www = res
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (res.status().as_u16(), www)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn world_mappers_accepts_our_clients_dpop_calls_with_oidc_providers_tokens() {
        use bearer_guard::client::{AddBearerLayer, BoxError};
        use tower::{ServiceBuilder, ServiceExt};

        require_idp!();
        let tmp = TempDir::new();
        let idp = Idp::start(IdpConfig {
            dpop_nonce: true,
            ..IdpConfig::new(tmp.keys())
        })
        .await;
        // Server nonces at both ends: the IdP's token endpoint and the API.
        let api = dpop_api(&idp, true).await;
        for alg in [Algorithm::ES256, Algorithm::EdDSA] {
            let key = DpopKey::generate(alg).expect("key");
            let source = our_client(&idp, &key);
            let http = reqwest::Client::new();
            let client = ServiceBuilder::new()
                .layer(AddBearerLayer::new(source.clone()))
                .service_fn(move |req: http::Request<bytes::Bytes>| {
                    let http = http.clone();
                    async move {
                        let req = reqwest::Request::try_from(req.map(reqwest::Body::from))?;
                        let res = http.execute(req).await?;
                        let mut out = http::Response::builder().status(res.status());
                        if let Some(h) = out.headers_mut() {
                            *h = res.headers().clone();
                        }
                        Ok::<_, BoxError>(out.body(res.bytes().await?)?)
                    }
                });
            for destination in ["Oslo", "Rovaniemi"] {
                let req = http::Request::get(format!(
                    "{}/api/directions?destination={destination}",
                    api.base
                ))
                .body(bytes::Bytes::new())
                .expect("request");
                let res = client.clone().oneshot(req).await.expect("answer");
                assert_eq!(
                    res.status(),
                    200,
                    "{alg}: {:?} {}",
                    res.headers(),
                    String::from_utf8_lossy(res.body())
                );
                let body: Value = serde_json::from_slice(res.body()).expect("json");
                assert_eq!(body["requested_by"], "dpop-basic");
                assert_eq!(body["destination"], destination);
            }
            // The bound token, sent as a bearer token: refused (no downgrade).
            let token = source.token().await.expect("token");
            let (status, www, _) = api.call("/api/directions", token.secret()).await;
            assert_eq!(status, 401, "{alg}: a bound token as Bearer");
            assert!(www.contains("invalid_token"), "{www}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn world_mappers_accepts_proofs_made_by_jose_and_refuses_a_replayed_one() {
        require_idp!();
        let tmp = TempDir::new();
        let idp = Idp::start(IdpConfig::new(tmp.keys())).await;
        let api = dpop_api(&idp, false).await;
        for alg in ["ES256", "EdDSA"] {
            let endpoint = idp.token_endpoint();
            let htu = format!("{}/api/directions", api.base);
            let calls_htu = htu.clone();
            let out = tokio::task::spawn_blocking(move || {
                jose_client(
                    &endpoint,
                    alg,
                    &[
                        ("GET", &calls_htu),
                        ("GET", &calls_htu),
                        ("GET", &calls_htu),
                    ],
                )
            })
            .await
            .expect("task");
            let token = out["access_token"].as_str().expect("token");
            assert_eq!(out["token_type"], "DPoP");
            assert_eq!(decode(token).1["cnf"]["jkt"], out["jkt"]);
            let proofs: Vec<&str> = out["proofs"]
                .as_array()
                .expect("proofs")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let url = format!("{htu}?destination=Oslo");
            let (status, www) = dpop_call(&url, token, proofs[0]).await;
            assert_eq!(status, 200, "{alg}: jose's proof: {www}");
            // The same proof again: a replay.
            let (status, www) = dpop_call(&url, token, proofs[0]).await;
            assert_eq!(status, 401, "{alg}: a replayed proof");
            assert!(www.contains("invalid_dpop_proof"), "{www}");
            // jose's next proof passes.
            let (status, www) = dpop_call(&url, token, proofs[1]).await;
            assert_eq!(status, 200, "{alg}: jose's second proof: {www}");
            // jose's unused third proof with another (unbound) token: refused.
            let other = idp.token("es256-basic", SCOPES).await;
            let (status, _) = dpop_call(&url, &other, proofs[2]).await;
            assert_eq!(status, 401, "{alg}: another token");
        }
    }
}

/// Opaque access tokens (RFC 7662, issue 16): oidc-provider issues opaque client-credentials
/// tokens for the World Mappers resource, and the example API introspects them at the
/// discovered endpoint with its own client, as `INTROSPECTION_CLIENT_ID` /
/// `INTROSPECTION_CLIENT_SECRET` make it do.
#[cfg(feature = "introspection")]
mod opaque {
    use super::*;
    use bearer_guard::introspection::{Introspector, TokenRouting, is_jwt_shaped};

    /// Another API of the same IdP, also with opaque tokens.
    const OTHER: &str = "https://other.example/api";
    /// How long World Mappers caches an active answer here.
    /// (Long enough that a loaded machine revokes and asks again within it.)
    const CACHE: Duration = Duration::from_secs(4);

    async fn opaque_idp(tmp: &TempDir) -> Idp {
        let mut config = IdpConfig::new(tmp.keys());
        config.opaque_resources = format!("{AUD},{OTHER}");
        Idp::start(config).await
    }

    /// World Mappers with introspection on (JWTs still verified locally).
    async fn api(issuer: &str) -> Api {
        let introspector = Introspector::builder()
            .issuer(issuer)
            .client_id("introspector")
            .client_secret("introspector-secret")
            .audience(AUD)
            .max_cache_ttl(CACHE)
            .timeout(Duration::from_secs(2))
            .build()
            .expect("introspector");
        let verifier = trusting(issuer).build().expect("verifier");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let router = app::app_with_layer(verifier.clone(), &base, None, move |layer| {
            layer.introspection(introspector, TokenRouting::ByShape)
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Api {
            base,
            verifier,
            task,
        }
    }

    async fn revoke(idp: &Idp, client: &str, token: &str) {
        let res = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/token/revocation", idp.port))
            .basic_auth(client, Some(format!("{client}-secret")))
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .expect("revocation request");
        assert!(res.status().is_success(), "revocation: {}", res.status());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn opaque_tokens_are_accepted_then_refused_after_revocation_once_the_cache_ends() {
        require_idp!();
        let tmp = TempDir::new();
        let idp = opaque_idp(&tmp).await;
        let api = api(&idp.issuer).await;
        let token = idp.token("rs256-basic", SCOPES).await;
        assert!(
            !is_jwt_shaped(&token),
            "oidc-provider issued an opaque token"
        );

        let cached_at = Instant::now();
        let (status, _, body) = api.call("/api/directions?destination=Oslo", &token).await;
        assert_eq!(status, 200, "{body}");
        let body: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(body["requested_by"], "rs256-basic");
        let (status, www, _) = api.call("/api/location/reverse-geocode", &token).await;
        assert_eq!(status, 403);
        assert!(www.contains("insufficient_scope"), "{www}");

        revoke(&idp, "rs256-basic", &token).await;
        // Within the cache time the revocation is not seen yet (the documented trade-off)...
        let status = api.status("/api/ping", &token).await;
        if cached_at.elapsed() < CACHE {
            assert_eq!(status, 200);
        }
        // ...and once the entry ends, it is.
        tokio::time::sleep(CACHE + Duration::from_millis(300)).await;
        let (status, www, _) = api.call("/api/ping", &token).await;
        assert_eq!(status, 401);
        assert!(www.contains("invalid_token"), "{www}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_audiences_opaque_token_is_refused() {
        require_idp!();
        let tmp = TempDir::new();
        let idp = opaque_idp(&tmp).await;
        let api = api(&idp.issuer).await;
        let other = get(&idp, "rs256-basic", OTHER, SCOPES).await;
        assert!(!is_jwt_shaped(&other));
        let (status, www, _) = api.call("/api/ping", &other).await;
        assert_eq!(status, 401);
        assert!(www.contains("invalid_token"), "{www}");
        // A JWT (another resource, not opaque) still goes to the verifier.
        let jwt = get(&idp, "rs256-basic", "https://jwt.example/api", SCOPES).await;
        assert!(is_jwt_shaped(&jwt));
        assert_eq!(
            api.status("/api/ping", &jwt).await,
            401,
            "wrong aud, locally"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn while_the_provider_is_down_an_uncached_token_gets_503() {
        require_idp!();
        let tmp = TempDir::new();
        let mut idp = opaque_idp(&tmp).await;
        let api = api(&idp.issuer).await;
        let cached = idp.token("rs256-basic", SCOPES).await;
        let uncached = idp.token("rs256-post", SCOPES).await;
        assert_eq!(api.status("/api/ping", &cached).await, 200);
        idp.stop();
        let res = reqwest::Client::new()
            .get(format!("{}/api/ping", api.base))
            .bearer_auth(&uncached)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status().as_u16(), 503);
        assert!(res.headers().contains_key("retry-after"));
        // The token answered before the outage is still served from the cache.
        assert_eq!(api.status("/api/ping", &cached).await, 200);
    }
}

/// Signed introspection responses (RFC 9701, issue 16): oidc-provider's `jwtIntrospection`
/// feature answers the World Mappers API's introspection requests with JWTs signed by its
/// keys, which the API verifies with its verifier's key store (`INTROSPECTION_JWT=1`).
#[cfg(feature = "introspection")]
mod jwt_introspection {
    use super::*;
    use bearer_guard::introspection::{Introspector, TokenRouting, is_jwt_shaped};

    const JWT_MEDIA_TYPE: &str = "application/token-introspection+jwt";

    async fn opaque_idp(tmp: &TempDir) -> Idp {
        let mut config = IdpConfig::new(tmp.keys());
        config.opaque_resources = AUD.to_owned();
        Idp::start(config).await
    }

    /// World Mappers introspecting as `client` (secret `<client>-secret`), asking for signed
    /// responses checked with `verifier`'s keys.
    async fn api(issuer: &str, client: &str, verifier: Verifier) -> Api {
        let introspector = Introspector::builder()
            .issuer(issuer)
            .client_id(client)
            .client_secret(format!("{client}-secret"))
            .audience(AUD)
            .timeout(Duration::from_secs(2))
            .jwt_responses(&verifier)
            .build()
            .expect("introspector");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let router = app::app_with_layer(verifier.clone(), &base, None, move |layer| {
            layer.introspection(introspector, TokenRouting::ByShape)
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Api {
            base,
            verifier,
            task,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn oidc_providers_signed_introspection_response_is_a_token_introspection_jwt() {
        require_idp!();
        let tmp = TempDir::new();
        let idp = opaque_idp(&tmp).await;
        let token = idp.token("rs256-basic", SCOPES).await;
        let res = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/token/introspection", idp.port))
            .basic_auth("introspector", Some("introspector-secret"))
            .header("accept", JWT_MEDIA_TYPE)
            .form(&[("token", token.as_str())])
            .send()
            .await
            .expect("introspection request");
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(content_type.starts_with(JWT_MEDIA_TYPE), "{content_type}");
        let jwt = res.text().await.expect("body");
        assert!(is_jwt_shaped(&jwt));
        let (header, claims) = decode(&jwt);
        assert_eq!(header["typ"], "token-introspection+jwt");
        assert_eq!(header["alg"], "RS256");
        assert_eq!(claims["iss"], idp.issuer.as_str());
        assert_eq!(claims["aud"], "introspector");
        assert!(claims["iat"].is_number());
        assert_eq!(claims["token_introspection"]["active"], true);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn world_mappers_accepts_opaque_tokens_through_signed_responses() {
        require_idp!();
        let tmp = TempDir::new();
        let idp = opaque_idp(&tmp).await;
        let api = api(
            &idp.issuer,
            "introspector",
            trusting(&idp.issuer).build().expect("verifier"),
        )
        .await;
        let token = idp.token("rs256-basic", SCOPES).await;
        assert!(!is_jwt_shaped(&token));
        let (status, _, body) = api.call("/api/directions?destination=Oslo", &token).await;
        assert_eq!(status, 200, "{body}");
        let body: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(body["requested_by"], "rs256-basic");
        let (status, www, _) = api.call("/api/location/reverse-geocode", &token).await;
        assert_eq!(status, 403);
        assert!(www.contains("insufficient_scope"), "{www}");
        assert!(
            api.verifier.jwks_fetches() >= 1,
            "the IdP's keys were fetched"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_es256_signed_response_is_verified_with_the_ec_key() {
        require_idp!();
        let tmp = TempDir::new();
        let idp = opaque_idp(&tmp).await;
        // The introspector-es256 client's responses are signed with oidc-provider's ec-1 key
        // (ES256, which the verifier allows by default).
        let verifier = trusting(&idp.issuer).build().expect("verifier");
        let api = api(&idp.issuer, "introspector-es256", verifier).await;
        let token = idp.token("rs256-basic", SCOPES).await;
        assert_eq!(api.status("/api/ping", &token).await, 200);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_revoked_token_is_inactive_inside_the_signed_response() {
        require_idp!();
        let tmp = TempDir::new();
        let idp = opaque_idp(&tmp).await;
        let api = api(
            &idp.issuer,
            "introspector",
            trusting(&idp.issuer).build().expect("verifier"),
        )
        .await;
        let token = idp.token("rs256-basic", SCOPES).await;
        let res = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/token/revocation", idp.port))
            .basic_auth("rs256-basic", Some("rs256-basic-secret"))
            .form(&[
                ("token", token.as_str()),
                ("token_type_hint", "access_token"),
            ])
            .send()
            .await
            .expect("revocation request");
        assert!(res.status().is_success(), "revocation: {}", res.status());
        let (status, www, _) = api.call("/api/ping", &token).await;
        assert_eq!(status, 401);
        assert!(www.contains("invalid_token"), "{www}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn signed_responses_the_verifier_cannot_verify_get_503() {
        require_idp!();
        let tmp = TempDir::new();
        let idp = opaque_idp(&tmp).await;
        // A verifier of the right issuer holding another key under oidc-provider's kid: the
        // signature cannot verify.
        let impostor =
            bearer_guard::dev_issuer::SigningKey::from_pool(Algorithm::RS256, 2, "rsa-1")
                .expect("pool key");
        let verifier = trusting(&idp.issuer)
            .jwks_json(bearer_guard::dev_issuer::jwk_set([&impostor]).to_string())
            .build()
            .expect("verifier");
        let impostor_api = api(&idp.issuer, "introspector", verifier).await;
        let token = idp.token("rs256-basic", SCOPES).await;
        let res = reqwest::Client::new()
            .get(format!("{}/api/ping", impostor_api.base))
            .bearer_auth(&token)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status().as_u16(), 503);
        assert!(res.headers().contains_key("retry-after"));
        // And an ES256-signing client whose responses an RS256-only verifier refuses (the
        // algorithm allow-list applies to responses as to tokens).
        let rs256_only = trusting(&idp.issuer)
            .algorithms([Algorithm::RS256])
            .build()
            .expect("verifier");
        let es256_api = api(&idp.issuer, "introspector-es256", rs256_only).await;
        assert_eq!(es256_api.status("/api/ping", &token).await, 503);
    }
}
