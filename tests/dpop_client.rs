//! DPoP on the client side (RFC 9449): `ClientCredentials` asking a token endpoint for
//! DPoP-bound tokens, and `AddBearer` sending them with a proof per request. The token
//! endpoint and the API here are local stubs (127.0.0.1, port 0) that verify every proof
//! independently: jsonwebtoken's decoder with the key from the proof's own `jwk` header,
//! then each claim.
#![cfg(all(
    feature = "client",
    feature = "dev-issuer",
    any(feature = "aws-lc-rs", feature = "rust-crypto")
))]

#[cfg(feature = "axum")]
#[path = "../examples/world_mappers/app.rs"]
mod app;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bearer_guard::Algorithm;
use bearer_guard::client::{
    AddBearerLayer, BoxError, ClientCredentials, DpopKey, TokenError, TokenErrorKind, ath,
};
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};

fn install_provider() {
    #[cfg(feature = "aws-lc-rs")]
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
}

/// What a stub saw in one verified proof.
#[derive(Debug, Clone)]
struct Seen {
    jkt: String,
    htm: String,
    htu: String,
    jti: String,
    ath: Option<String>,
    nonce: Option<String>,
}

/// RFC 7638 thumbprint of a public JWK (EC or OKP), computed here from the proof's header.
fn jkt(jwk: &Value) -> String {
    let s = |m: &str| jwk[m].as_str().unwrap_or_default().to_owned();
    let canonical = match jwk["kty"].as_str() {
        Some("EC") => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            s("crv"),
            s("x"),
            s("y")
        ),
        _ => format!(r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#, s("crv"), s("x")),
    };
    B64.encode(Sha256::digest(canonical.as_bytes()))
}

/// Verifies a DPoP proof as a resource server would (RFC 9449 §4.3), for `method` and
/// `htu`; panics on any defect.
fn verify_proof(proof: &str, method: &str, htu: &str) -> Seen {
    install_provider();
    let header = decode_header(proof).expect("a JWS header");
    assert_eq!(header.typ.as_deref(), Some("dpop+jwt"));
    let raw: Value = serde_json::from_slice(
        &B64.decode(proof.split('.').next().expect("part"))
            .expect("b64"),
    )
    .expect("json");
    let jwk_value = raw["jwk"].clone();
    for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
        assert!(jwk_value.get(private).is_none(), "private member {private}");
    }
    let jwk = header.jwk.expect("a jwk header");
    let key = DecodingKey::from_jwk(&jwk).expect("a usable jwk");
    let mut validation = Validation::new(header.alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let claims = decode::<Value>(proof, &key, &validation)
        .expect("the signature verifies")
        .claims;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let iat = claims["iat"].as_u64().expect("iat");
    assert!(iat.abs_diff(now) <= 5, "iat {iat}, now {now}");
    assert_eq!(claims["htm"], method);
    assert_eq!(claims["htu"], htu);
    let text = |m: &str| claims.get(m).and_then(Value::as_str).map(str::to_owned);
    Seen {
        jkt: jkt(&jwk_value),
        htm: method.to_owned(),
        htu: htu.to_owned(),
        jti: text("jti").expect("jti"),
        ath: text("ath"),
        nonce: text("nonce"),
    }
}

fn one_dpop_header(headers: &HeaderMap) -> &str {
    let all: Vec<_> = headers.get_all("dpop").iter().collect();
    assert_eq!(all.len(), 1, "exactly one DPoP header");
    all[0].to_str().expect("ascii")
}

// ---------------------------------------------------------------------------------------
// The stub authorization server and API.

#[derive(Default)]
struct Stub {
    addr: Mutex<Option<SocketAddr>>,
    /// The token_type the token endpoint answers.
    token_type: Mutex<String>,
    /// When set, the token endpoint requires this nonce.
    as_nonce: Mutex<Option<String>>,
    /// When set, the API requires this nonce.
    api_nonce: Mutex<Option<String>>,
    token_proofs: Mutex<Vec<Seen>>,
    api_proofs: Mutex<Vec<Seen>>,
    /// Every proof received, as sent.
    raw_proofs: Mutex<Vec<String>>,
    /// The tokens issued, each with the thumbprint it is bound to.
    issued: Mutex<Vec<(String, String)>>,
    /// The token endpoint asks for a new nonce on every request.
    rotate_as_nonce: Mutex<bool>,
    /// The API asks for a new nonce on every request.
    rotate_api_nonce: Mutex<bool>,
    /// The API sends this `DPoP-Nonce` with its successful answers (RFC 9449 §8.2).
    nonce_on_success: Mutex<Option<String>>,
    /// The API answers 401 invalid_token to this token once.
    refuse_token: Mutex<Option<String>>,
}

impl Stub {
    fn base(&self) -> String {
        format!(
            "http://{}",
            self.addr.lock().expect("lock").expect("started")
        )
    }
}

async fn start() -> Arc<Stub> {
    let stub = Arc::new(Stub::default());
    *stub.token_type.lock().expect("lock") = "DPoP".into();
    let app = Router::new()
        .route("/oauth/token", post(token_endpoint))
        .route("/api/{*rest}", any(api))
        .with_state(stub.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    *stub.addr.lock().expect("lock") = Some(listener.local_addr().expect("addr"));
    // HTTP/1 and HTTP/2 (for the tonic channel).
    tokio::spawn(async move {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        use hyper_util::server::conn::auto;
        use hyper_util::service::TowerToHyperService;
        while let Ok((stream, _)) = listener.accept().await {
            let svc = TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    stub
}

async fn token_endpoint(State(stub): State<Arc<Stub>>, headers: HeaderMap) -> Response {
    let Some(proof) = headers.get("dpop") else {
        return (StatusCode::BAD_REQUEST, "no DPoP proof").into_response();
    };
    let url = format!("{}/oauth/token", stub.base());
    let proof = proof.to_str().expect("ascii");
    stub.raw_proofs.lock().expect("lock").push(proof.to_owned());
    let seen = verify_proof(proof, "POST", &url);
    assert!(seen.ath.is_none(), "no ath at the token endpoint");
    stub.token_proofs.lock().expect("lock").push(seen.clone());
    if *stub.rotate_as_nonce.lock().expect("lock") {
        let n = stub.token_proofs.lock().expect("lock").len();
        *stub.as_nonce.lock().expect("lock") = Some(format!("rotated-{n}"));
    }
    let required = stub.as_nonce.lock().expect("lock").clone();
    if let Some(nonce) = required
        && seen.nonce.as_deref() != Some(nonce.as_str())
    {
        let mut res = (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "use_dpop_nonce", "error_description": "nonce"})),
        )
            .into_response();
        res.headers_mut()
            .insert("dpop-nonce", HeaderValue::from_str(&nonce).expect("nonce"));
        return res;
    }
    let mut issued = stub.issued.lock().expect("lock");
    let token = format!("tok-{}", issued.len() + 1);
    issued.push((token.clone(), seen.jkt));
    let token_type = stub.token_type.lock().expect("lock").clone();
    axum::Json(json!({"access_token": token, "token_type": token_type, "expires_in": 300}))
        .into_response()
}

async fn api(State(stub): State<Arc<Stub>>, req: Request) -> Response {
    let challenge = |error: &str| {
        let mut res = StatusCode::UNAUTHORIZED.into_response();
        res.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_str(&format!(r#"DPoP algs="ES256 EdDSA", error="{error}""#))
                .expect("header"),
        );
        res
    };
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let Some(token) = auth.strip_prefix("DPoP ") else {
        return challenge("invalid_token");
    };
    let htu = format!("{}{}", stub.base(), req.uri().path());
    let proof = one_dpop_header(req.headers());
    stub.raw_proofs.lock().expect("lock").push(proof.to_owned());
    let seen = verify_proof(proof, req.method().as_str(), &htu);
    assert_eq!(seen.ath.as_deref(), Some(ath(token).as_str()), "ath");
    let n = {
        let mut proofs = stub.api_proofs.lock().expect("lock");
        proofs.push(seen.clone());
        proofs.len() - 1
    };
    if *stub.rotate_api_nonce.lock().expect("lock") {
        *stub.api_nonce.lock().expect("lock") = Some(format!("rotated-{n}"));
    }
    let bound = stub
        .issued
        .lock()
        .expect("lock")
        .iter()
        .any(|(t, jkt)| t == token && *jkt == seen.jkt);
    if !bound {
        return challenge("invalid_token");
    }
    let required = stub.api_nonce.lock().expect("lock").clone();
    if let Some(nonce) = required
        && seen.nonce.as_deref() != Some(nonce.as_str())
    {
        let mut res = challenge("use_dpop_nonce");
        res.headers_mut()
            .insert("dpop-nonce", HeaderValue::from_str(&nonce).expect("nonce"));
        return res;
    }
    let refuse = stub
        .refuse_token
        .lock()
        .expect("lock")
        .take_if(|t| t == token);
    if refuse.is_some() {
        return challenge("invalid_token");
    }
    let mut res = (StatusCode::OK, format!("{} {}", req.method(), token)).into_response();
    if let Some(nonce) = stub.nonce_on_success.lock().expect("lock").clone() {
        res.headers_mut()
            .insert("dpop-nonce", HeaderValue::from_str(&nonce).expect("nonce"));
    }
    res
}

fn source(stub: &Stub, key: &DpopKey) -> ClientCredentials {
    ClientCredentials::builder()
        .token_endpoint(format!("{}/oauth/token", stub.base()))
        .client_id("gift-deliveries")
        .client_secret("secret")
        .audience("urn:worldmappers")
        .dpop(key.clone())
        .build()
        .expect("builds")
}

fn es256() -> DpopKey {
    DpopKey::generate(Algorithm::ES256).expect("key")
}

// ---------------------------------------------------------------------------------------
// The token request.

#[tokio::test]
async fn the_token_request_carries_a_proof_and_gets_a_dpop_bound_token() {
    let stub = start().await;
    let key = es256();
    let source = source(&stub, &key);
    let token = source.token().await.expect("a token");
    assert!(token.is_dpop_bound());
    assert_eq!(token.token_type(), "DPoP");
    assert_eq!(token.authorization(), "DPoP tok-1");
    let proofs = stub.token_proofs.lock().expect("lock").clone();
    assert_eq!(proofs.len(), 1);
    assert_eq!(proofs[0].jkt, key.thumbprint(), "bound to our key");
    assert_eq!(proofs[0].htm, "POST");
    assert_eq!(proofs[0].htu, format!("{}/oauth/token", stub.base()));
    assert_eq!(
        source.dpop_key().map(DpopKey::thumbprint),
        Some(key.thumbprint())
    );
}

#[tokio::test]
async fn an_eddsa_key_works_the_same() {
    let stub = start().await;
    let key = DpopKey::generate(Algorithm::EdDSA).expect("key");
    let token = source(&stub, &key).token().await.expect("a token");
    assert!(token.is_dpop_bound());
    assert_eq!(
        stub.token_proofs.lock().expect("lock")[0].jkt,
        key.thumbprint()
    );
}

#[tokio::test]
async fn a_bearer_answer_to_a_dpop_request_is_refused() {
    let stub = start().await;
    *stub.token_type.lock().expect("lock") = "Bearer".into();
    let e: TokenError = source(&stub, &es256()).token().await.expect_err("refused");
    assert_eq!(e.kind(), TokenErrorKind::InvalidResponse);
    assert!(e.to_string().contains("not DPoP"), "{e}");
    assert!(!e.to_string().contains("tok-1"), "no token in errors: {e}");
}

#[tokio::test]
async fn use_dpop_nonce_from_the_token_endpoint_is_retried_once_with_the_nonce() {
    let stub = start().await;
    *stub.as_nonce.lock().expect("lock") = Some("as-nonce-1".into());
    let source = source(&stub, &es256());
    let token = source.token().await.expect("a token after one retry");
    assert!(token.is_dpop_bound());
    assert_eq!(source.token_requests(), 2);
    let proofs = stub.token_proofs.lock().expect("lock").clone();
    assert_eq!(proofs[0].nonce, None);
    assert_eq!(proofs[1].nonce.as_deref(), Some("as-nonce-1"));
    assert_ne!(proofs[0].jti, proofs[1].jti, "a new proof for the retry");

    // The nonce is remembered: the next token request sends it at once.
    assert!(source.invalidate(&token));
    source.token().await.expect("a second token");
    assert_eq!(source.token_requests(), 3);
    let proofs = stub.token_proofs.lock().expect("lock").clone();
    assert_eq!(proofs[2].nonce.as_deref(), Some("as-nonce-1"));
}

#[tokio::test]
async fn a_second_use_dpop_nonce_is_not_retried_again() {
    let stub = start().await;
    // A server that asks for a new nonce on every request.
    *stub.rotate_as_nonce.lock().expect("lock") = true;
    let source = source(&stub, &es256());
    let e = source.token().await.expect_err("refused");
    assert_eq!(e.oauth_error(), Some("use_dpop_nonce"));
    assert_eq!(source.token_requests(), 2, "one retry only");
}

// ---------------------------------------------------------------------------------------
// The middleware.

/// A tower service over reqwest (`http::Request<Bytes>` in, `http::Response<Bytes>` out).
#[derive(Clone)]
struct ReqwestService(reqwest::Client);

impl tower::Service<http::Request<Bytes>> for ReqwestService {
    type Response = http::Response<Bytes>;
    type Error = BoxError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Bytes>) -> Self::Future {
        let client = self.0.clone();
        Box::pin(async move {
            let req = reqwest::Request::try_from(req.map(reqwest::Body::from))?;
            let res = client.execute(req).await?;
            let status = res.status();
            let headers = res.headers().clone();
            let mut out = http::Response::new(res.bytes().await?);
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            Ok(out)
        })
    }
}

fn request(method: &str, url: String) -> http::Request<Bytes> {
    http::Request::builder()
        .method(method)
        .uri(url)
        .body(Bytes::from_static(b"{}"))
        .expect("request")
}

fn api_proofs(stub: &Stub) -> Vec<Seen> {
    stub.api_proofs.lock().expect("lock").clone()
}

#[tokio::test]
async fn the_layer_sends_the_dpop_scheme_and_a_fresh_proof_with_ath_per_request() {
    let stub = start().await;
    let key = es256();
    let source = source(&stub, &key);
    let client = ServiceBuilder::new()
        .layer(AddBearerLayer::new(source.clone()))
        .service(ReqwestService(reqwest::Client::new()));
    for (method, path) in [
        ("GET", "/api/directions?destination=Lapland#x"),
        ("POST", "/api/routes"),
        ("GET", "/api/directions?destination=Rovaniemi"),
    ] {
        let res = client
            .clone()
            .oneshot(request(method, format!("{}{path}", stub.base())))
            .await
            .expect("answer");
        assert_eq!(res.status(), 200, "{method} {path}");
        assert_eq!(res.body(), &format!("{method} tok-1"));
    }
    let proofs = api_proofs(&stub);
    assert_eq!(proofs.len(), 3);
    assert_eq!(proofs[0].htm, "GET");
    assert_eq!(proofs[0].htu, format!("{}/api/directions", stub.base()));
    assert_eq!(proofs[1].htm, "POST");
    assert_eq!(proofs[1].htu, format!("{}/api/routes", stub.base()));
    assert!(proofs.iter().all(|p| p.jkt == key.thumbprint()));
    assert!(
        proofs
            .iter()
            .all(|p| p.ath.as_deref() == Some(ath("tok-1").as_str()))
    );
    let jtis: HashSet<_> = proofs.iter().map(|p| p.jti.clone()).collect();
    assert_eq!(jtis.len(), 3, "a new proof per request");
    assert_eq!(source.token_requests(), 1);
}

#[tokio::test]
async fn a_use_dpop_nonce_from_the_api_is_retried_once_with_the_nonce() {
    let stub = start().await;
    *stub.api_nonce.lock().expect("lock") = Some("api-nonce-7".into());
    let client = ServiceBuilder::new()
        .layer(AddBearerLayer::new(source(&stub, &es256())))
        .service(ReqwestService(reqwest::Client::new()));
    let url = format!("{}/api/directions", stub.base());
    let res = client
        .clone()
        .oneshot(request("GET", url.clone()))
        .await
        .expect("answer");
    assert_eq!(res.status(), 200);
    let proofs = api_proofs(&stub);
    assert_eq!(proofs.len(), 2);
    assert_eq!(proofs[0].nonce, None);
    assert_eq!(proofs[1].nonce.as_deref(), Some("api-nonce-7"));
    assert_ne!(proofs[0].jti, proofs[1].jti);

    // Remembered for the API's origin: the next request carries it at once.
    let res = client.oneshot(request("GET", url)).await.expect("answer");
    assert_eq!(res.status(), 200);
    let proofs = api_proofs(&stub);
    assert_eq!(proofs.len(), 3);
    assert_eq!(proofs[2].nonce.as_deref(), Some("api-nonce-7"));
}

#[tokio::test]
async fn a_second_use_dpop_nonce_from_the_api_is_returned_as_it_is() {
    let stub = start().await;
    // An API that asks for a new nonce on every request.
    *stub.rotate_api_nonce.lock().expect("lock") = true;
    let client = ServiceBuilder::new()
        .layer(AddBearerLayer::new(source(&stub, &es256())))
        .service(ReqwestService(reqwest::Client::new()));
    let res = client
        .oneshot(request("GET", format!("{}/api/x", stub.base())))
        .await
        .expect("answer");
    assert_eq!(res.status(), 401);
    let proofs = api_proofs(&stub);
    assert_eq!(proofs.len(), 2, "one retry only");
    assert_eq!(proofs[1].nonce.as_deref(), Some("rotated-0"));
}

#[tokio::test]
async fn a_nonce_sent_with_a_successful_answer_is_used_by_the_next_proof() {
    let stub = start().await;
    *stub.nonce_on_success.lock().expect("lock") = Some("next-nonce".into());
    let client = ServiceBuilder::new()
        .layer(AddBearerLayer::new(source(&stub, &es256())))
        .service(ReqwestService(reqwest::Client::new()));
    let url = format!("{}/api/x", stub.base());
    for _ in 0..2 {
        let res = client
            .clone()
            .oneshot(request("GET", url.clone()))
            .await
            .expect("answer");
        assert_eq!(res.status(), 200);
    }
    let proofs = api_proofs(&stub);
    assert_eq!(proofs[0].nonce, None);
    assert_eq!(proofs[1].nonce.as_deref(), Some("next-nonce"));
}

#[tokio::test]
async fn without_retry_a_nonce_challenge_is_returned_but_the_nonce_is_kept() {
    let stub = start().await;
    *stub.api_nonce.lock().expect("lock") = Some("kept".into());
    let client = ServiceBuilder::new()
        .layer(AddBearerLayer::new(source(&stub, &es256())).without_retry())
        .service(ReqwestService(reqwest::Client::new()));
    let url = format!("{}/api/x", stub.base());
    let res = client
        .clone()
        .oneshot(request("GET", url.clone()))
        .await
        .expect("answer");
    assert_eq!(res.status(), 401);
    let res = client.oneshot(request("GET", url)).await.expect("answer");
    assert_eq!(res.status(), 200);
    assert_eq!(api_proofs(&stub)[1].nonce.as_deref(), Some("kept"));
}

#[tokio::test]
async fn an_invalid_token_answer_renews_the_token_and_sends_a_new_proof_for_it() {
    let stub = start().await;
    *stub.refuse_token.lock().expect("lock") = Some("tok-1".into());
    let source = source(&stub, &es256());
    let client = ServiceBuilder::new()
        .layer(AddBearerLayer::new(source.clone()))
        .service(ReqwestService(reqwest::Client::new()));
    let res = client
        .oneshot(request("GET", format!("{}/api/x", stub.base())))
        .await
        .expect("answer");
    assert_eq!(res.status(), 200);
    assert_eq!(res.body(), "GET tok-2");
    let proofs = api_proofs(&stub);
    assert_eq!(proofs[1].ath.as_deref(), Some(ath("tok-2").as_str()));
    assert_eq!(source.token_requests(), 2);
}

#[tokio::test]
async fn a_tonic_channel_gets_the_dpop_scheme_and_a_post_proof() {
    let stub = start().await;
    let key = es256();
    let channel = tonic::transport::Channel::from_shared(stub.base())
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let client = ServiceBuilder::new()
        .layer(AddBearerLayer::new(source(&stub, &key)).without_retry())
        .service(channel);
    let req = http::Request::builder()
        .method("POST")
        .uri(format!(
            "{}/api/worldmappers.v1.Routes/Directions",
            stub.base()
        ))
        .header("content-type", "application/grpc")
        .body(tonic::body::Body::empty())
        .expect("request");
    let res = client.oneshot(req).await.expect("answer");
    assert_eq!(res.status(), 200);
    let proofs = api_proofs(&stub);
    assert_eq!(proofs.len(), 1);
    assert_eq!(proofs[0].htm, "POST");
    assert_eq!(
        proofs[0].htu,
        format!("{}/api/worldmappers.v1.Routes/Directions", stub.base())
    );
    assert_eq!(proofs[0].jkt, key.thumbprint());
}

#[tokio::test]
async fn a_relative_request_uri_cannot_get_a_proof() {
    let stub = start().await;
    let client = ServiceBuilder::new()
        .layer(AddBearerLayer::new(source(&stub, &es256())))
        .service_fn(|_req: http::Request<Bytes>| async {
            Ok::<_, BoxError>(http::Response::new(Bytes::new()))
        });
    let e = client
        .oneshot(request("GET", "/api/x".into()))
        .await
        .expect_err("no proof for a relative URI");
    assert!(e.to_string().contains("absolute"), "{e}");
}

#[tokio::test]
async fn a_dpop_header_already_on_the_request_is_replaced() {
    let stub = start().await;
    let client = ServiceBuilder::new()
        .layer(AddBearerLayer::new(source(&stub, &es256())))
        .service(ReqwestService(reqwest::Client::new()));
    let mut req = request("GET", format!("{}/api/x", stub.base()));
    req.headers_mut()
        .append("dpop", HeaderValue::from_static("stale.proof.here"));
    // The stub asserts exactly one DPoP header, and verifies it.
    let res = client.oneshot(req).await.expect("answer");
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_tonic_client_with_relative_uris_names_the_configured_origin() {
    let stub = start().await;
    let key = es256();
    let channel = tonic::transport::Channel::from_shared(stub.base())
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    // A generated client made with `Client::new(channel)` sends `/package.Service/Method`.
    let layer = AddBearerLayer::new(source(&stub, &key))
        .without_retry()
        .dpop_origin(&stub.base())
        .expect("origin");
    let client = ServiceBuilder::new().layer(layer).service(channel);
    let req = http::Request::builder()
        .method("POST")
        .uri("/api/worldmappers.v1.Routes/Directions")
        .header("content-type", "application/grpc")
        .body(tonic::body::Body::empty())
        .expect("request");
    let res = client.oneshot(req).await.expect("answer");
    assert_eq!(res.status(), 200);
    let proofs = api_proofs(&stub);
    assert_eq!(
        proofs[0].htu,
        format!("{}/api/worldmappers.v1.Routes/Directions", stub.base())
    );
}

#[test]
fn a_bad_dpop_origin_is_a_config_error() {
    let source = ClientCredentials::builder()
        .token_endpoint("https://idp.example/oauth/token")
        .client_id("a")
        .client_secret("b")
        .dpop(es256())
        .build()
        .expect("builds");
    for bad in ["/relative", "ftp://h", "https://h/?q=1", "not a url"] {
        let e = AddBearerLayer::new(source.clone())
            .dpop_origin(bad)
            .expect_err(bad);
        assert!(e.to_string().contains("dpop_origin"), "{e}");
    }
    assert!(
        AddBearerLayer::new(source)
            .dpop_origin("https://api.example/prefix/")
            .is_ok()
    );
}

// ---------------------------------------------------------------------------------------
// End to end: the development issuer binds the token, World Mappers (DPoP allowed) checks
// the proofs with bearer-guard's resource-server side.

#[cfg(feature = "axum")]
#[tokio::test]
async fn world_mappers_accepts_a_dev_issuer_dpop_token_sent_by_the_layer() {
    use bearer_guard::dev_issuer::DevIssuer;
    use bearer_guard::{Dpop, Verifier};

    let dev = DevIssuer::builder()
        .audience("urn:worldmappers")
        .client("gift-deliveries", "dev-secret", ["directions"])
        .start()
        .await
        .expect("dev issuer");
    let verifier = Verifier::builder()
        .issuer(dev.issuer())
        .audience("urn:worldmappers")
        .build()
        .expect("verifier");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let dpop = Dpop::builder().public_url(&base).build().expect("dpop");
    let router = app::app_with_dpop(verifier, &base, Some(dpop));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });

    let key = es256();
    let source = ClientCredentials::builder()
        .issuer(dev.issuer())
        .client_id("gift-deliveries")
        .client_secret("dev-secret")
        .audience("urn:worldmappers")
        .dpop(key.clone())
        .build()
        .expect("client");
    let client = ServiceBuilder::new()
        .layer(AddBearerLayer::new(source.clone()))
        .service(ReqwestService(reqwest::Client::new()));
    for destination in ["Lapland", "Rovaniemi"] {
        let res = client
            .clone()
            .oneshot(request(
                "GET",
                format!("{base}/api/directions?destination={destination}"),
            ))
            .await
            .expect("answer");
        assert_eq!(res.status(), 200, "{:?}", res.headers());
        let body: Value = serde_json::from_slice(res.body()).expect("json");
        assert_eq!(body["destination"], destination);
    }
    let token = source.token().await.expect("token");
    assert!(token.is_dpop_bound());
    // The bound token without its proof, as a bearer token: refused.
    let res = reqwest::Client::new()
        .get(format!("{base}/api/directions"))
        .bearer_auth(token.secret())
        .send()
        .await
        .expect("answer");
    assert_eq!(res.status(), 401);
    server.abort();
    dev.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// Nothing leaks: no token, proof or private key in the logs (TRACE and up) or in `Debug`.

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Self;
    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

/// Every log line of this test binary (TRACE and up), captured by one global subscriber.
/// A thread-local one (`set_default`) lost all events now and then: a callsite first reached
/// by another test's thread, which had no subscriber, had its interest cached as `never`
/// for the whole process.
fn captured_logs() -> Captured {
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(logs.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        logs
    })
    .clone()
}

/// RFC 8037 Appendix A.1's Ed25519 private key.
const ED25519_D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";

#[tokio::test]
async fn no_token_proof_or_private_key_appears_in_logs_or_debug() {
    let logs = captured_logs();

    let stub = start().await;
    *stub.as_nonce.lock().expect("lock") = Some("as-n".into());
    *stub.api_nonce.lock().expect("lock") = Some("api-n".into());
    let key = DpopKey::from_jwk(&format!(
        r#"{{"kty":"OKP","crv":"Ed25519","d":"{ED25519_D}"}}"#
    ))
    .expect("key");
    let source = source(&stub, &key);
    let layer = AddBearerLayer::new(source.clone());
    let client = ServiceBuilder::new()
        .layer(layer.clone())
        .service(ReqwestService(reqwest::Client::new()));
    // A nonce challenge from the AS and from the API, then a refused token and its renewal.
    let res = client
        .clone()
        .oneshot(request("GET", format!("{}/api/x", stub.base())))
        .await
        .expect("answer");
    assert_eq!(res.status(), 200);
    *stub.refuse_token.lock().expect("lock") = Some("tok-1".into());
    let res = client
        .oneshot(request("GET", format!("{}/api/x", stub.base())))
        .await
        .expect("answer");
    assert_eq!(
        res.status(),
        200,
        "{:?} {:?}",
        res.headers(),
        api_proofs(&stub)
    );
    let token = source.token().await.expect("token");
    assert_eq!(token.secret(), "tok-2");
    let debug = format!("{key:?} {source:?} {layer:?} {token:?}");

    let logs = String::from_utf8(logs.0.lock().expect("lock").clone()).expect("utf-8");
    // The capture holds this test's own events (the token endpoint's nonce challenge).
    assert!(
        logs.contains("the token endpoint asked for a DPoP nonce"),
        "the capture works"
    );
    let proofs = stub.raw_proofs.lock().expect("lock").clone();
    assert!(proofs.len() >= 4, "token and API proofs: {}", proofs.len());
    let mut secrets: Vec<String> = vec![ED25519_D.to_owned(), "tok-1".into(), "tok-2".into()];
    for p in &proofs {
        secrets.push(p.clone());
        // The signature, and the claims (each proof's jti makes them unique).
        secrets.extend(p.split('.').skip(1).map(str::to_owned));
    }
    for s in &secrets {
        assert!(!logs.contains(s.as_str()), "the logs hold {s:.40}");
        assert!(!debug.contains(s.as_str()), "Debug holds {s:.40}");
    }
}

#[tokio::test]
async fn a_hyper_client_gets_the_dpop_scheme_and_a_proof() {
    use http_body_util::{BodyExt as _, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let stub = start().await;
    let key = es256();
    let hyper = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let client = ServiceBuilder::new()
        .layer(AddBearerLayer::new(source(&stub, &key)))
        .service(hyper);
    let req = http::Request::builder()
        .method("PUT")
        .uri(format!("{}/api/routes/7?dry-run=1", stub.base()))
        .body(Full::new(Bytes::from_static(b"{}")))
        .expect("request");
    let res = client.oneshot(req).await.expect("answer");
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(body, "PUT tok-1");
    let proofs = api_proofs(&stub);
    assert_eq!(proofs[0].htm, "PUT");
    assert_eq!(proofs[0].htu, format!("{}/api/routes/7", stub.base()));
    assert_eq!(proofs[0].jkt, key.thumbprint());
}
