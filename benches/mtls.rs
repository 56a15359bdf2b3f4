//! Certificate-bound tokens (RFC 8705) on the resource server: what the binding check costs
//! per request. See BENCHMARKS.md.
//!
//! ```sh
//! cargo bench --bench mtls
//! ```
//!
//! - `check/bound`: `Mtls::check` of a bound token's claims against the connection's
//!   thumbprint (computed once per connection): the per-request cost with TLS in the process.
//! - `check/unbound`: the same for a token without `cnf` (a scan of the payload, no parse).
//! - `thumbprint/der`: SHA-256 + base64url of a client certificate: once per connection with
//!   TLS in the process, once per request with a trusted `Client-Cert` header.
//! - `client_cert_header`: parsing an RFC 9440 `Client-Cert` value and its thumbprint (the
//!   per-request cost behind a proxy).
//! - `layer/*`: a bearer request with a cached token through `JwtAuthLayer` to a trivial
//!   service, without and with the binding (the certificate's extension inserted per request
//!   as `mtls::serve` does).

#[cfg(all(
    feature = "dev-issuer",
    any(feature = "aws-lc-rs", feature = "rust-crypto")
))]
mod bench {
    use std::hint::black_box;
    use std::time::{SystemTime, UNIX_EPOCH};

    use axum::body::Body;
    use base64::Engine as _;
    use bearer_guard::dev_issuer::{SigningKey, jwk_set};
    use bearer_guard::mtls::{CertificateThumbprint, Mtls, PeerCertificate, parse_client_cert};
    use bearer_guard::{Algorithm, Claims, JwtAuthLayer, Verifier};
    use criterion::Criterion;
    use http::{Request, Response};
    use serde_json::json;
    use tower::{Layer, Service, ServiceExt as _};

    const ISS: &str = "https://bench.example/";
    const AUD: &str = "urn:worldmappers";

    fn key() -> SigningKey {
        SigningKey::from_pool(Algorithm::RS256, 0, "k1").expect("pool key")
    }

    fn verifier() -> Verifier {
        Verifier::builder()
            .issuer(ISS)
            .audience(AUD)
            .jwks_json(jwk_set([&key()]).to_string())
            .build()
            .expect("verifier")
    }

    fn token(cnf: Option<&str>) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut claims = json!({"iss": ISS, "aud": AUD, "sub": "gift-deliveries@clients",
            "exp": now + 3600, "iat": now, "scope": "directions"});
        if let Some(x5t) = cnf {
            claims["cnf"] = json!({"x5t#S256": x5t});
        }
        key().sign(&claims).expect("token")
    }

    /// A client certificate's DER bytes (generated, about 400 bytes for P-256).
    fn certificate() -> Vec<u8> {
        let key = rcgen::KeyPair::generate().expect("key");
        let params =
            rcgen::CertificateParams::new(vec!["gift-deliveries".to_owned()]).expect("params");
        params
            .self_signed(&key)
            .expect("certificate")
            .der()
            .to_vec()
    }

    pub(crate) fn run() {
        let mut c = Criterion::default().configure_from_args();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let der = certificate();
        let peer = PeerCertificate::from_der(der.clone());
        let x5t = peer.thumbprint().as_str().to_owned();
        let bound = token(Some(&x5t));
        let unbound = token(None);
        let v = verifier();
        let bound_claims: Claims = rt.block_on(v.verify(&bound)).expect("claims");
        let unbound_claims: Claims = rt.block_on(v.verify(&unbound)).expect("claims");
        let mtls = Mtls::peer_certificate();
        let thumb = peer.thumbprint().clone();

        c.bench_function("mtls/check/bound", |b| {
            b.iter(|| black_box(mtls.check(black_box(&bound_claims), Some(&thumb))));
        });
        c.bench_function("mtls/check/unbound", |b| {
            b.iter(|| black_box(mtls.check(black_box(&unbound_claims), Some(&thumb))));
        });
        c.bench_function("mtls/thumbprint/der", |b| {
            b.iter(|| black_box(CertificateThumbprint::of_der(black_box(&der))));
        });
        let header = format!(
            ":{}:",
            base64::engine::general_purpose::STANDARD.encode(&der)
        );
        c.bench_function("mtls/client_cert_header", |b| {
            b.iter(|| {
                let der = parse_client_cert(black_box(header.as_bytes())).expect("valid");
                black_box(CertificateThumbprint::of_der(&der))
            });
        });

        let echo = tower::service_fn(|_: Request<Body>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
        });
        let plain = JwtAuthLayer::new(verifier()).layer(echo);
        let with_mtls = JwtAuthLayer::new(verifier())
            .mtls(Mtls::peer_certificate())
            .layer(echo);
        let request = |token: &str, peer: Option<&PeerCertificate>| {
            let mut req = Request::get("/api/location/geocode")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .expect("request");
            if let Some(p) = peer {
                req.extensions_mut().insert(p.clone());
            }
            req
        };
        // Warm the verified-token caches.
        for (svc, t) in [(&plain, &unbound), (&with_mtls, &bound)] {
            let res = rt.block_on(svc.clone().oneshot(request(t, Some(&peer))));
            assert_eq!(res.expect("infallible").status(), 200);
        }
        let mut group = c.benchmark_group("mtls/layer");
        group.bench_function("cached_bearer", |b| {
            let mut svc = plain.clone();
            b.to_async(&rt).iter(|| {
                let req = request(&unbound, None);
                let fut = svc.call(req);
                async move { black_box(fut.await.expect("infallible")) }
            });
        });
        group.bench_function("cached_bound_with_certificate", |b| {
            let mut svc = with_mtls.clone();
            b.to_async(&rt).iter(|| {
                let req = request(&bound, Some(&peer));
                let fut = svc.call(req);
                async move { black_box(fut.await.expect("infallible")) }
            });
        });
        group.finish();
        c.final_summary();
    }
}

fn main() {
    #[cfg(all(
        feature = "dev-issuer",
        any(feature = "aws-lc-rs", feature = "rust-crypto")
    ))]
    bench::run();
}
