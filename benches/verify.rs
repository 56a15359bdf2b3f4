//! `Verifier::verify` cold and warm, with the backend's raw signature check beside it as the
//! floor. See BENCHMARKS.md for the command, the machine and the figures.
//!
//! ```sh
//! cargo bench --bench verify                    # wall time
//! BENCH_CLOCK=cpu cargo bench --bench verify    # the thread's CPU time (a busy machine)
//! ```
//!
//! For each of RS256, PS256, ES256, EdDSA and HS256:
//!
//! - `raw`: the backend alone (aws-lc-rs `ParsedPublicKey::verify_sig`, or `hmac::verify`)
//!   on the same signing input and signature, with a key parsed once: the floor;
//! - `cold`: the verified-token cache off, 64 distinct tokens in turn: every call parses,
//!   checks the signature and reads the claims;
//! - `warm`: one token over and over, cache on (the default 10,000 entries): every call
//!   after the first is a cache hit.
//!
//! For RS256 also:
//!
//! - `miss`: the cache on (the default), 4,096 distinct tokens in turn through a 64-entry
//!   cache, so nearly every call misses: the cold path plus the cache's own cost (hash,
//!   lookup, insert, eviction); `cold/4096 tokens` beside it, the same tokens with the cache
//!   off (4,096 tokens do not fit in the CPU's caches as 64 do);
//! - `jsonwebtoken_decode`: jsonwebtoken's `decode` with a `DecodingKey` made once, for
//!   comparison (it re-parses the RSA key on every call).
//!
//! And `layer`: a trivial tower service alone, and behind `JwtAuthLayer` with a cached
//! token: the whole cost of the layer on a request carrying a reused token.

use std::cell::LazyCell;
use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bearer_guard::Algorithm;
use bearer_guard::Verifier;
use bearer_guard::dev_issuer::{SigningKey, jwk_set};
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BenchmarkId, Criterion};
use serde_json::{Value, json};
use tokio::runtime::Runtime;

const ISSUER: &str = "https://bench.example/";
const AUDIENCE: &str = "urn:worldmappers";
const HMAC_SECRET: &[u8] = b"a-bench-secret-of-at-least-32-bytes!!";

/// Claims shaped like Auth0's client-credentials tokens; `n` makes each token distinct.
fn claims(n: usize) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    json!({
        "iss": ISSUER,
        "sub": "gift-deliveries@clients",
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 86_400,
        "scope": "geocode:location reverse-geocode:location directions",
        "gty": "client-credentials",
        "azp": "gift-deliveries",
        "client_id": "gift-deliveries",
        "jti": format!("bench-{n:08}"),
    })
}

/// The signing key of each benchmarked algorithm.
fn signing_key(alg: Algorithm) -> SigningKey {
    match alg {
        Algorithm::HS256 => SigningKey::hmac(alg, HMAC_SECRET, "hs"),
        _ => SigningKey::from_pool(alg, 0, format!("{alg}-bench")),
    }
    .expect("bench key")
}

/// A verifier trusting `key` (fixed keys: nothing is fetched), with `cache` entries.
fn verifier(key: &SigningKey, cache: u64) -> Verifier {
    let builder = Verifier::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .token_cache(cache);
    let builder = match key.alg() {
        Algorithm::HS256 => builder.hmac_secret(HMAC_SECRET),
        _ => builder.jwks_json(jwk_set([key]).to_string()),
    };
    builder.build().expect("bench verifier")
}

fn tokens(key: &SigningKey, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| key.sign(&claims(i)).expect("sign"))
        .collect()
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The backend alone, with the key parsed once: the floor.
#[cfg(feature = "aws-lc-rs")]
mod raw {
    use aws_lc_rs::signature::{self as sig, ParsedPublicKey};
    use base64::Engine as _;
    use bearer_guard::Algorithm;
    use bearer_guard::dev_issuer::SigningKey;

    const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

    pub(crate) enum Floor {
        Public(ParsedPublicKey),
        Hmac(Box<aws_lc_rs::hmac::Key>),
    }

    impl Floor {
        pub(crate) fn new(key: &SigningKey) -> Self {
            let jwk = key.public_jwk();
            let field = |name: &str| {
                B64.decode(jwk[name].as_str().expect("jwk field"))
                    .expect("jwk base64")
            };
            let (params, bytes): (&'static dyn sig::VerificationAlgorithm, Vec<u8>) =
                match key.alg() {
                    Algorithm::RS256 | Algorithm::PS256 => {
                        use aws_lc_rs::encoding::AsDer;
                        let der = aws_lc_rs::rsa::PublicKeyComponents {
                            n: field("n"),
                            e: field("e"),
                        }
                        .as_der()
                        .expect("rsa der")
                        .as_ref()
                        .to_vec();
                        let params: &'static dyn sig::VerificationAlgorithm =
                            if key.alg() == Algorithm::RS256 {
                                &sig::RSA_PKCS1_2048_8192_SHA256
                            } else {
                                &sig::RSA_PSS_2048_8192_SHA256
                            };
                        (params, der)
                    }
                    Algorithm::ES256 => {
                        let mut point = vec![4];
                        point.extend(field("x"));
                        point.extend(field("y"));
                        (&sig::ECDSA_P256_SHA256_FIXED, point)
                    }
                    Algorithm::EdDSA => (&sig::ED25519, field("x")),
                    Algorithm::HS256 => {
                        return Self::Hmac(Box::new(aws_lc_rs::hmac::Key::new(
                            aws_lc_rs::hmac::HMAC_SHA256,
                            super::HMAC_SECRET,
                        )));
                    }
                    other => unreachable!("no floor for {other}"),
                };
            Self::Public(ParsedPublicKey::new(params, bytes).expect("parsed key"))
        }

        /// The signing input and the decoded signature of `token`.
        pub(crate) fn split(token: &str) -> (Vec<u8>, Vec<u8>) {
            let dot = token.rfind('.').expect("three parts");
            let sig = B64.decode(&token[dot + 1..]).expect("signature");
            (token.as_bytes()[..dot].to_vec(), sig)
        }

        pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
            match self {
                Self::Public(k) => k.verify_sig(message, signature).is_ok(),
                Self::Hmac(k) => aws_lc_rs::hmac::verify(k, message, signature).is_ok(),
            }
        }
    }
}

/// What the benches of one algorithm need, made only when one of them runs (a filter given
/// on the command line skips the others' setup).
struct Setup {
    toks: Vec<String>,
    #[cfg(feature = "aws-lc-rs")]
    floor: (raw::Floor, Vec<u8>, Vec<u8>),
    cold: Verifier,
    warm: Verifier,
}

impl Setup {
    fn new(rt: &Runtime, alg: Algorithm, count: usize) -> Self {
        let key = signing_key(alg);
        let toks = tokens(&key, count);
        #[cfg(feature = "aws-lc-rs")]
        let floor = {
            let floor = raw::Floor::new(&key);
            let (message, signature) = raw::Floor::split(&toks[0]);
            assert!(floor.verify(&message, &signature), "the floor verifies");
            (floor, message, signature)
        };
        let cold = verifier(&key, 0);
        for t in &toks {
            rt.block_on(cold.verify(t)).expect("a valid token");
        }
        let warm = verifier(&key, bearer_guard::DEFAULT_TOKEN_CACHE_ENTRIES);
        rt.block_on(warm.verify(&toks[0])).expect("a valid token");
        Self {
            toks,
            #[cfg(feature = "aws-lc-rs")]
            floor,
            cold,
            warm,
        }
    }
}

/// The algorithms benchmarked one by one.
const ALGORITHMS: [Algorithm; 5] = [
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::EdDSA,
    Algorithm::HS256,
];

fn per_algorithm<M: Measurement + 'static>(c: &mut Criterion<M>) {
    let rt = runtime();
    for alg in ALGORITHMS {
        let setup = LazyCell::new(|| Setup::new(&rt, alg, 64));
        let mut group = c.benchmark_group(format!("verify/{alg}"));

        #[cfg(feature = "aws-lc-rs")]
        group.bench_function("raw", |b| {
            let (floor, message, signature) = &setup.floor;
            b.iter(|| floor.verify(black_box(message), black_box(signature)));
        });

        let mut i = 0;
        group.bench_function("cold", |b| {
            let s = &*setup;
            b.to_async(&rt).iter(|| {
                i = (i + 1) % s.toks.len();
                let fut = s.cold.verify(black_box(&s.toks[i]));
                async move { fut.await.expect("valid") }
            });
        });

        group.bench_function("warm", |b| {
            let s = &*setup;
            b.to_async(&rt).iter(|| {
                let fut = s.warm.verify(black_box(&s.toks[0]));
                async move { fut.await.expect("valid") }
            });
        });
        group.finish();
    }
}

/// RS256 with the cache on but missing, and jsonwebtoken's `decode` for comparison.
fn rs256_extra<M: Measurement + 'static>(c: &mut Criterion<M>) {
    let rt = runtime();
    let key = signing_key(Algorithm::RS256);
    let mut group = c.benchmark_group("verify/RS256");

    // The same 4,096 tokens through the cache (64 entries: nearly all miss) and without it.
    let distinct = LazyCell::new(|| {
        let toks = tokens(&key, 4096);
        (toks, verifier(&key, 64), verifier(&key, 0))
    });
    let mut i = 0;
    group.bench_with_input(
        BenchmarkId::new("miss", "4096 tokens, 64 entries"),
        &(),
        |b, ()| {
            let (toks, small, _) = &*distinct;
            b.to_async(&rt).iter(|| {
                i = (i + 1) % toks.len();
                let fut = small.verify(black_box(&toks[i]));
                async move { fut.await.expect("valid") }
            });
        },
    );
    let mut i = 0;
    group.bench_with_input(BenchmarkId::new("cold", "4096 tokens"), &(), |b, ()| {
        let (toks, _, off) = &*distinct;
        b.to_async(&rt).iter(|| {
            i = (i + 1) % toks.len();
            let fut = off.verify(black_box(&toks[i]));
            async move { fut.await.expect("valid") }
        });
    });

    #[cfg(feature = "aws-lc-rs")]
    jsonwebtoken_decode(&mut group, &key);
    group.finish();
}

/// jsonwebtoken 11's `decode` on aws-lc-rs, its `DecodingKey` made once.
#[cfg(feature = "aws-lc-rs")]
fn jsonwebtoken_decode<M: Measurement>(
    group: &mut criterion::BenchmarkGroup<'_, M>,
    key: &SigningKey,
) {
    let toks = LazyCell::new(|| tokens(key, 64));
    // With both backends compiled in, jsonwebtoken needs one chosen.
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let jwk = key.public_jwk();
    let decoding = jsonwebtoken::DecodingKey::from_rsa_components(
        jwk["n"].as_str().expect("n"),
        jwk["e"].as_str().expect("e"),
    )
    .expect("decoding key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    let mut j = 0;
    group.bench_function("jsonwebtoken_decode", |b| {
        b.iter(|| {
            j = (j + 1) % toks.len();
            jsonwebtoken::decode::<Value>(black_box(&toks[j]), &decoding, &validation)
                .expect("valid")
        });
    });
}

/// The tower layer's own cost with a cached token: the same trivial service with and without
/// `JwtAuthLayer` in front (finding the token, the cache hit, the request extensions, the
/// layer's future). The requests are made outside the measured time.
fn layer<M: Measurement + 'static>(c: &mut Criterion<M>) {
    use axum::body::Body;
    use http::{Request, Response, header::AUTHORIZATION};
    use tower::ServiceExt as _;

    let rt = runtime();
    let key = signing_key(Algorithm::RS256);
    let token = key.sign(&claims(0)).expect("sign");
    let verifier = verifier(&key, bearer_guard::DEFAULT_TOKEN_CACHE_ENTRIES);
    rt.block_on(verifier.verify(&token)).expect("a valid token");
    let value = http::HeaderValue::from_str(&format!("Bearer {token}")).expect("header value");
    let request = || {
        Request::builder()
            .uri("/api/location/geocode")
            .header(AUTHORIZATION, value.clone())
            .body(Body::empty())
            .expect("request")
    };
    let bare = tower::service_fn(|_: Request<Body>| async {
        Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
    });
    let protected = tower::ServiceBuilder::new()
        .layer(bearer_guard::JwtAuthLayer::new(verifier))
        .service(bare);

    let mut group = c.benchmark_group("layer");
    group.bench_function("bare service", |b| {
        b.to_async(&rt).iter_batched(
            request,
            |req| bare.oneshot(req),
            criterion::BatchSize::SmallInput,
        );
    });
    group.bench_function("JwtAuthLayer, cached RS256 token", |b| {
        b.to_async(&rt).iter_batched(
            request,
            |req| {
                let fut = protected.clone().oneshot(req);
                async move {
                    let res = fut.await.expect("infallible");
                    assert_eq!(res.status(), http::StatusCode::OK);
                    res
                }
            },
            criterion::BatchSize::SmallInput,
        );
    });
    group.finish();
}

/// The CPU time of the benchmarking thread (`CLOCK_THREAD_CPUTIME_ID`): time the thread spent
/// waiting for a core that other processes held is not counted, so figures taken on a busy
/// shared machine stay close to those of an idle one. Chosen with `BENCH_CLOCK=cpu`.
struct ThreadCpu;

/// Lends its duration formatting to [`ThreadCpu`].
static WALL: WallTime = WallTime;

impl Measurement for ThreadCpu {
    type Intermediate = cpu_time::ThreadTime;
    type Value = Duration;

    fn start(&self) -> Self::Intermediate {
        cpu_time::ThreadTime::now()
    }

    fn end(&self, start: Self::Intermediate) -> Self::Value {
        start.elapsed()
    }

    fn add(&self, a: &Self::Value, b: &Self::Value) -> Self::Value {
        *a + *b
    }

    fn zero(&self) -> Self::Value {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Self::Value) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}

/// `BENCH_PAIRED=1 cargo bench --bench verify`: the cold path and the floor measured in
/// alternation rather than one after the other, so that a neighbour's load or a change of
/// clock speed weighs on both alike. Each round times (in the thread's CPU time) one batch
/// of the floor over 64 distinct tokens (each its own signing input and signature) and one
/// batch of `verify` over the same tokens with the cache off, in alternating order; the
/// ratio of each round is cold / floor. Prints the median and quartiles of the rounds'
/// ratios and the median time per token of each side. `BENCH_ROUNDS` (default 600).
///
/// A control beside it: each round also times the floor with a `serde_json::Value` parse of
/// each token's payload between the signatures, and the two apart. "Interference" is what the
/// interleaved batch costs beyond the two: how much other work between signature checks
/// slows them (caches, predictors), which the tight floor loop never pays.
#[cfg(feature = "aws-lc-rs")]
fn paired(rt: &Runtime) {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(600);
    println!("paired: {rounds} rounds of 64 distinct tokens, thread CPU time");
    println!(
        "| algorithm | floor / token | cold / token | cold / floor: median | quartiles | interference / token |"
    );
    println!("|---|---|---|---|---|---|");
    for alg in ALGORITHMS {
        let setup = Setup::new(rt, alg, 64);
        let floor = &setup.floor.0;
        let inputs: Vec<_> = setup.toks.iter().map(|t| raw::Floor::split(t)).collect();
        let time_floor = || {
            let start = cpu_time::ThreadTime::now();
            for (message, signature) in &inputs {
                assert!(floor.verify(black_box(message), black_box(signature)));
            }
            start.elapsed()
        };
        let time_cold = || {
            let start = cpu_time::ThreadTime::now();
            rt.block_on(async {
                for t in &setup.toks {
                    black_box(setup.cold.verify(black_box(t)).await).expect("valid");
                }
            });
            start.elapsed()
        };
        let payloads: Vec<String> = inputs
            .iter()
            .map(|(message, _)| {
                use base64::Engine as _;
                let dot = message.iter().position(|&b| b == b'.').expect("two parts");
                let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(&message[dot + 1..])
                    .expect("payload");
                String::from_utf8(payload).expect("utf-8")
            })
            .collect();
        let time_json = || {
            let start = cpu_time::ThreadTime::now();
            for p in &payloads {
                black_box(serde_json::from_str::<Value>(black_box(p)).expect("json"));
            }
            start.elapsed()
        };
        let time_interleaved = || {
            let start = cpu_time::ThreadTime::now();
            for ((message, signature), p) in inputs.iter().zip(&payloads) {
                assert!(floor.verify(black_box(message), black_box(signature)));
                black_box(serde_json::from_str::<Value>(black_box(p)).expect("json"));
            }
            start.elapsed()
        };
        let (mut ratios, mut floors, mut colds) = (Vec::new(), Vec::new(), Vec::new());
        let mut interference = Vec::new();
        for round in 0..rounds {
            let (f, j, both) = (time_floor(), time_json(), time_interleaved());
            interference.push((both.as_secs_f64() - f.as_secs_f64() - j.as_secs_f64()) / 64.0);
            let (f, c) = if round % 2 == 0 {
                (time_floor(), time_cold())
            } else {
                let c = time_cold();
                (time_floor(), c)
            };
            ratios.push(c.as_secs_f64() / f.as_secs_f64());
            floors.push(f.as_secs_f64() / 64.0);
            colds.push(c.as_secs_f64() / 64.0);
        }
        let quantile = |v: &mut Vec<f64>, q: f64| {
            v.sort_by(f64::total_cmp);
            v[((v.len() - 1) as f64 * q).round() as usize]
        };
        println!(
            "| {alg} | {:.2} µs | {:.2} µs | **{:.3}** | {:.3}–{:.3} | {:.3} µs |",
            quantile(&mut floors, 0.5) * 1e6,
            quantile(&mut colds, 0.5) * 1e6,
            quantile(&mut ratios, 0.5),
            quantile(&mut ratios, 0.25),
            quantile(&mut ratios, 0.75),
            quantile(&mut interference, 0.5) * 1e6,
        );
    }
}

fn main() {
    #[cfg(feature = "aws-lc-rs")]
    if std::env::var("BENCH_PAIRED").is_ok_and(|v| v == "1") {
        paired(&runtime());
        return;
    }
    if std::env::var("BENCH_CLOCK").is_ok_and(|v| v == "cpu") {
        let mut c = Criterion::default()
            .with_measurement(ThreadCpu)
            .configure_from_args();
        per_algorithm(&mut c);
        rs256_extra(&mut c);
        layer(&mut c);
        c.final_summary();
    } else {
        let mut c = Criterion::default().configure_from_args();
        per_algorithm(&mut c);
        rs256_extra(&mut c);
        layer(&mut c);
        c.final_summary();
    }
}
