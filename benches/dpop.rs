//! DPoP (RFC 9449) on the resource server: what a DPoP request with a cached token costs,
//! against the raw backend verify of its proof's signature. See BENCHMARKS.md.
//!
//! ```sh
//! cargo bench --bench dpop                       # paired ratio, replay check, memory
//! BENCH_ROUNDS=300 cargo bench --bench dpop      # fewer rounds
//! ```
//!
//! - `paired` (thread CPU time, the `BENCH_CLOCK=cpu` clock of benches/verify.rs): in
//!   alternating rounds, 64 raw verifies of proof signatures — aws-lc-rs
//!   `UnparsedPublicKey::verify`, which parses the proof's public key and checks the
//!   signature, the least any DPoP verifier must do since each proof carries its key — and 64
//!   DPoP requests through `JwtAuthLayer` to a trivial service with a cached access token
//!   (credentials parsed, token from the verified-token cache, every proof check, thumbprint,
//!   binding, the in-memory replay check, extensions). Proofs are signed outside the timed
//!   batches. The ratio of each round is layer / raw; median and quartiles are printed, for
//!   ES256 and EdDSA.
//! - `replay`: one check-and-insert in the default in-memory store (a fresh key each time),
//!   thread CPU time, median over batches.
//! - `memory`: the resident memory that 1,000,000 live entries of the in-memory replay store
//!   take (`/proc/self/statm` before and after), per entry.

#[cfg(feature = "aws-lc-rs")]
mod bench {
    use std::hint::black_box;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::task::{Context, Poll, Waker};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use aws_lc_rs::signature::{
        self as sig, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
    };
    use axum::body::Body;
    use base64::Engine as _;
    use bearer_guard::dev_issuer::{SigningKey, jwk_set};
    use bearer_guard::dpop::{Dpop, InMemoryReplayStore, ReplayKey, ReplayStore, jwk_thumbprint};
    use bearer_guard::{Algorithm, JwtAuthLayer, Verifier};
    use http::{Request, Response, StatusCode};
    use serde_json::{Value, json};
    use sha2::Digest as _;
    use tower::{Service, ServiceExt as _};

    const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    const ISS: &str = "https://bench.example/";
    const AUD: &str = "urn:worldmappers";
    const URL: &str = "https://api.example/api/location/geocode";

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    enum ClientKey {
        Es(EcdsaKeyPair, aws_lc_rs::rand::SystemRandom),
        Ed(Ed25519KeyPair),
    }

    impl ClientKey {
        fn new(alg: Algorithm) -> Self {
            match alg {
                Algorithm::ES256 => Self::Es(
                    EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("key"),
                    aws_lc_rs::rand::SystemRandom::new(),
                ),
                _ => Self::Ed(Ed25519KeyPair::generate().expect("key")),
            }
        }

        fn public(&self) -> Vec<u8> {
            match self {
                Self::Es(k, _) => k.public_key().as_ref().to_vec(),
                Self::Ed(k) => k.public_key().as_ref().to_vec(),
            }
        }

        fn jwk(&self) -> (Value, &'static str) {
            let p = self.public();
            match self {
                Self::Es(..) => (
                    json!({"kty": "EC", "crv": "P-256", "x": B64.encode(&p[1..33]), "y": B64.encode(&p[33..])}),
                    "ES256",
                ),
                Self::Ed(_) => (
                    json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(&p)}),
                    "EdDSA",
                ),
            }
        }

        fn sign(&self, m: &[u8]) -> Vec<u8> {
            match self {
                Self::Es(k, rng) => k.sign(rng, m).expect("sign").as_ref().to_vec(),
                Self::Ed(k) => k.sign(m).as_ref().to_vec(),
            }
        }

        fn params(&self) -> &'static dyn sig::VerificationAlgorithm {
            match self {
                Self::Es(..) => &sig::ECDSA_P256_SHA256_FIXED,
                Self::Ed(_) => &sig::ED25519,
            }
        }

        /// A fresh proof for `GET URL` with `token`'s hash.
        fn proof(&self, token: &str) -> String {
            self.proof_for(URL, token, "bench")
        }

        /// A fresh proof for `GET url` with `token`'s hash, its `jti` starting with `prefix`.
        fn proof_for(&self, url: &str, token: &str, prefix: &str) -> String {
            static JTI: AtomicU64 = AtomicU64::new(0);
            let (jwk, alg) = self.jwk();
            let header = json!({"typ": "dpop+jwt", "alg": alg, "jwk": jwk});
            let claims = json!({
                "jti": format!("{prefix}-{}", JTI.fetch_add(1, Ordering::Relaxed)),
                "htm": "GET", "htu": url, "iat": now(),
                "ath": B64.encode(sha2::Sha256::digest(token.as_bytes())),
            });
            let msg = format!(
                "{}.{}",
                B64.encode(header.to_string()),
                B64.encode(claims.to_string())
            );
            let s = self.sign(msg.as_bytes());
            format!("{msg}.{}", B64.encode(s))
        }
    }

    /// The load-test helper of `scripts/load-dpop.sh`:
    /// - `load-key FILE`: writes a fresh ES256 client key (PKCS#8) to FILE and prints its
    ///   RFC 7638 thumbprint;
    /// - `load-proofs FILE COUNT URL TOKEN OUT`: writes COUNT fresh proofs (one a line, each
    ///   with its own `jti`) for `GET URL` with TOKEN's hash, signed with FILE's key, to OUT.
    pub(crate) fn load_helper(args: &[String]) -> Result<(), String> {
        match args {
            [_, file] => {
                let rng = aws_lc_rs::rand::SystemRandom::new();
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| "key generation failed")?;
                std::fs::write(file, doc.as_ref()).map_err(|e| format!("{file}: {e}"))?;
                let key = load_key(file)?;
                let (jwk, _) = key.jwk();
                println!(
                    "{}",
                    jwk_thumbprint(jwk.as_object().ok_or("jwk")?).ok_or("thumbprint")?
                );
                Ok(())
            }
            [_, file, count, url, token, out] => {
                use std::io::Write as _;
                let key = load_key(file)?;
                let count: usize = count.parse().map_err(|_| "COUNT is not a number")?;
                let prefix = format!(
                    "load-{}",
                    SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos())
                );
                let mut w = std::io::BufWriter::new(
                    std::fs::File::create(out).map_err(|e| format!("{out}: {e}"))?,
                );
                for _ in 0..count {
                    writeln!(w, "{}", key.proof_for(url, token, &prefix))
                        .map_err(|e| format!("{out}: {e}"))?;
                }
                w.flush().map_err(|e| format!("{out}: {e}"))
            }
            _ => Err("usage: load-key FILE | load-proofs FILE COUNT URL TOKEN OUT".into()),
        }
    }

    fn load_key(file: &str) -> Result<ClientKey, String> {
        let bytes = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &bytes)
            .map_err(|_| format!("{file}: not an ES256 PKCS#8 key"))?;
        Ok(ClientKey::Es(key, aws_lc_rs::rand::SystemRandom::new()))
    }

    fn split(proof: &str) -> (Vec<u8>, Vec<u8>) {
        let dot = proof.rfind('.').expect("three parts");
        (
            proof.as_bytes()[..dot].to_vec(),
            B64.decode(&proof[dot + 1..]).expect("signature"),
        )
    }

    fn quantile(v: &mut [f64], q: f64) -> f64 {
        v.sort_by(f64::total_cmp);
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        v[((v.len() - 1) as f64 * q).round() as usize]
    }

    pub(crate) fn paired() {
        let rounds: usize = std::env::var("BENCH_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(600);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let issuer = SigningKey::from_pool(Algorithm::ES256, 0, "k1").expect("pool key");
        let verifier = Verifier::builder()
            .issuer(ISS)
            .audience(AUD)
            .jwks_json(jwk_set([&issuer]).to_string())
            .build()
            .expect("verifier");
        println!("paired: {rounds} rounds of 64 proofs, thread CPU time");
        println!(
            "| proof algorithm | raw verify / proof | DPoP request, cached token / request | layer / raw: median | quartiles |"
        );
        println!("|---|---|---|---|---|");
        for alg in [Algorithm::ES256, Algorithm::EdDSA] {
            let client = ClientKey::new(alg);
            let (jwk, _) = client.jwk();
            let jkt = jwk_thumbprint(jwk.as_object().expect("object")).expect("jkt");
            let t = now();
            let token = issuer
                .sign(
                    &json!({"iss": ISS, "aud": AUD, "sub": "gift-deliveries@clients",
                    "iat": t, "exp": t + 86_400, "cnf": {"jkt": jkt},
                    "scope": "geocode:location reverse-geocode:location directions"}),
                )
                .expect("sign");
            rt.block_on(verifier.verify(&token)).expect("a valid token");
            let dpop = Dpop::builder()
                .public_url("https://api.example")
                .replay_store(InMemoryReplayStore::new(rounds * 64 * 2 + 1024))
                .build()
                .expect("dpop");
            let mut svc = tower::ServiceBuilder::new()
                .layer(JwtAuthLayer::new(verifier.clone()).dpop(dpop))
                .service(tower::service_fn(|_: Request<Body>| async {
                    Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
                }));
            let public = client.public();
            let params = client.params();
            let auth = format!("DPoP {token}");
            let (mut ratios, mut raws, mut layers) = (Vec::new(), Vec::new(), Vec::new());
            for round in 0..rounds {
                let proofs: Vec<String> = (0..64).map(|_| client.proof(&token)).collect();
                let inputs: Vec<_> = proofs.iter().map(|p| split(p)).collect();
                let requests: Vec<Request<Body>> = proofs
                    .iter()
                    .map(|p| {
                        Request::get("/api/location/geocode")
                            .header("authorization", &auth)
                            .header("dpop", p)
                            .body(Body::empty())
                            .expect("request")
                    })
                    .collect();
                let time_raw = || {
                    let start = cpu_time::ThreadTime::now();
                    for (m, s) in &inputs {
                        sig::UnparsedPublicKey::new(params, black_box(&public))
                            .verify(black_box(m), black_box(s))
                            .expect("valid");
                    }
                    start.elapsed()
                };
                let mut time_layer = |requests: Vec<Request<Body>>| {
                    let start = cpu_time::ThreadTime::now();
                    rt.block_on(async {
                        for req in requests {
                            let res = svc
                                .ready()
                                .await
                                .expect("ready")
                                .call(req)
                                .await
                                .expect("ok");
                            assert_eq!(res.status(), StatusCode::OK);
                            black_box(res);
                        }
                    });
                    start.elapsed()
                };
                let (r, l) = if round % 2 == 0 {
                    let r = time_raw();
                    (r, time_layer(requests))
                } else {
                    let l = time_layer(requests);
                    (time_raw(), l)
                };
                ratios.push(l.as_secs_f64() / r.as_secs_f64());
                raws.push(r.as_secs_f64() / 64.0);
                layers.push(l.as_secs_f64() / 64.0);
            }
            println!(
                "| {alg} | {:.2} µs | {:.2} µs | **{:.3}** | {:.3}–{:.3} |",
                quantile(&mut raws, 0.5) * 1e6,
                quantile(&mut layers, 0.5) * 1e6,
                quantile(&mut ratios, 0.5),
                quantile(&mut ratios, 0.25),
                quantile(&mut ratios, 0.75),
            );
        }
    }

    /// Where a DPoP request's time goes, per proof (thread CPU time, 2,000 proofs each):
    /// the raw verify, `ProofChecker::check`, `Dpop::check` (plus binding and replay), and
    /// the whole layer.
    pub(crate) fn breakdown() {
        use bearer_guard::dpop::{ProofChecker, RequestFacts};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let issuer = SigningKey::from_pool(Algorithm::ES256, 0, "k1").expect("pool key");
        let verifier = Verifier::builder()
            .issuer(ISS)
            .audience(AUD)
            .jwks_json(jwk_set([&issuer]).to_string())
            .build()
            .expect("verifier");
        for alg in [Algorithm::ES256, Algorithm::EdDSA] {
            let client = ClientKey::new(alg);
            let (jwk, _) = client.jwk();
            let jkt = jwk_thumbprint(jwk.as_object().expect("object")).expect("jkt");
            let t = now();
            let token = issuer
                .sign(&json!({"iss": ISS, "aud": AUD, "iat": t, "exp": t + 86_400, "cnf": {"jkt": jkt}}))
                .expect("sign");
            let claims = rt.block_on(verifier.verify(&token)).expect("valid");
            let dpop = Dpop::builder()
                .public_url("https://api.example")
                .replay_store(InMemoryReplayStore::new(100_000))
                .build()
                .expect("dpop");
            let checker = ProofChecker::default();
            let n = 2000;
            let proofs: Vec<String> = (0..n).map(|_| client.proof(&token)).collect();
            let inputs: Vec<_> = proofs.iter().map(|p| split(p)).collect();
            let public = client.public();
            let per = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(n);
            let start = cpu_time::ThreadTime::now();
            for (m, s) in &inputs {
                sig::UnparsedPublicKey::new(client.params(), &public)
                    .verify(m, s)
                    .expect("valid");
            }
            let raw = per(start.elapsed());
            let start = cpu_time::ThreadTime::now();
            for (m, s) in &inputs {
                sig::ParsedPublicKey::new(client.params(), &public)
                    .expect("key")
                    .verify_sig(m, s)
                    .expect("valid");
            }
            let parsed = per(start.elapsed());
            let start = cpu_time::ThreadTime::now();
            for (m, s) in &inputs {
                sig::UnparsedPublicKey::new(client.params(), &public)
                    .verify(m, s)
                    .expect("valid");
            }
            let raw2 = per(start.elapsed());
            let start = cpu_time::ThreadTime::now();
            for p in &proofs {
                let facts =
                    RequestFacts::new("GET", URL, p, SystemTime::now()).access_token(&token);
                black_box(checker.check(&facts).expect("valid"));
            }
            let check = per(start.elapsed());
            let start = cpu_time::ThreadTime::now();
            rt.block_on(async {
                for p in &proofs {
                    let facts =
                        RequestFacts::new("GET", URL, p, SystemTime::now()).access_token(&token);
                    black_box(dpop.check(&facts, &claims).await.expect("valid"));
                }
            });
            let full = per(start.elapsed());
            println!(
                "breakdown {alg}: raw {raw:.2} µs, ParsedPublicKey {parsed:.2} µs, raw again {raw2:.2} µs, ProofChecker::check {check:.2} µs, Dpop::check {full:.2} µs"
            );
        }
    }

    pub(crate) fn replay() {
        let store = InMemoryReplayStore::default();
        let ttl = Duration::from_secs(90);
        let mut cx = Context::from_waker(Waker::noop());
        let mut n: u64 = 0;
        let mut per_call = Vec::new();
        // 100 batches of 500 fresh keys: 50,000 live entries at the end (half the default
        // capacity); keys are hashed outside the timed batch.
        for _ in 0..100 {
            let keys: Vec<ReplayKey> = (0..500)
                .map(|_| {
                    n += 1;
                    ReplayKey::new("jkt", &n.to_string())
                })
                .collect();
            let start = cpu_time::ThreadTime::now();
            for k in keys {
                let mut fut = store.check_and_insert(k, ttl);
                let Poll::Ready(answer) = fut.as_mut().poll(&mut cx) else {
                    panic!("the in-memory store answers at once");
                };
                black_box(answer.expect("room"));
            }
            per_call.push(start.elapsed().as_secs_f64() / 500.0);
        }
        println!(
            "replay: in-memory check-and-insert (fresh key, up to 50,000 live entries): median {:.3} µs, p90 {:.3} µs",
            quantile(&mut per_call, 0.5) * 1e6,
            quantile(&mut per_call, 0.9) * 1e6
        );
    }

    fn resident_bytes() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        pages * 4096
    }

    pub(crate) fn memory() {
        const N: u64 = 1_000_000;
        let before = resident_bytes();
        let store = InMemoryReplayStore::new(usize::try_from(N).expect("fits"));
        let ttl = Duration::from_secs(90);
        let mut cx = Context::from_waker(Waker::noop());
        for i in 0..N {
            let mut fut = store.check_and_insert(ReplayKey::new("jkt", &i.to_string()), ttl);
            assert!(matches!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
        }
        let after = resident_bytes();
        assert_eq!(store.len(), 1_000_000);
        #[allow(clippy::cast_precision_loss)]
        let per = (after.saturating_sub(before)) as f64 / N as f64;
        println!(
            "memory: 1,000,000 live replay entries: {:.1} MiB resident, {per:.0} bytes per entry",
            (after.saturating_sub(before)) as f64 / (1024.0 * 1024.0)
        );
        drop(black_box(store));
    }
}

fn main() {
    #[cfg(feature = "aws-lc-rs")]
    {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if args
            .first()
            .is_some_and(|a| a == "load-key" || a == "load-proofs")
        {
            if let Err(e) = bench::load_helper(&args) {
                eprintln!("dpop bench: {e}");
                std::process::exit(1);
            }
            return;
        }
        // `cargo bench` passes `--bench`; a filter argument picks one part.
        let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
        let run = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
        if run("breakdown") {
            bench::breakdown();
        }
        if run("memory") {
            bench::memory();
        }
        if run("replay") {
            bench::replay();
        }
        if run("paired") {
            bench::paired();
        }
    }
    #[cfg(not(feature = "aws-lc-rs"))]
    println!("benches/dpop.rs needs the aws-lc-rs backend");
}
