//! The DPoP attack suite (RFC 9449): each attack its own test, through the tower layer and
//! axum (oneshot, as tests/layer.rs does), with bound tokens minted by the development
//! issuer's keys and proofs signed at run time (keys generated per test with aws-lc-rs; with
//! only the rust-crypto backend, the development key pool).
#![cfg(all(
    feature = "axum",
    feature = "dev-issuer",
    any(feature = "aws-lc-rs", feature = "rust-crypto")
))]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use base64::Engine as _;
use bearer_guard::dev_issuer::{SigningKey, jwk_set};
use bearer_guard::dpop::{Dpop, DpopMode, InMemoryReplayStore, Nonces, jwk_thumbprint};
use bearer_guard::{
    Algorithm, AuthError, AuthErrorKind, Claims, DpopConfirmation, DpopProofReason,
    InvalidTokenReason, JwtAuthLayer, Verifier,
};
use http::{Request, Response, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

const ISS: &str = "https://issuer.test/";
const AUD: &str = "urn:worldmappers";
const ORIGIN: &str = "https://api.example";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
    )
    .expect("fits")
}

fn issuer_key() -> SigningKey {
    SigningKey::from_pool(Algorithm::RS256, 0, "k1").expect("pool key")
}

fn verifier() -> Verifier {
    Verifier::builder()
        .issuer(ISS)
        .audience(AUD)
        .jwks_json(jwk_set([&issuer_key()]).to_string())
        .build()
        .expect("verifier")
}

type Signer = Box<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

/// A client's DPoP key: its public JWK and a signer.
struct ProofKey {
    alg: &'static str,
    jwk: Value,
    sign: Signer,
}

impl ProofKey {
    /// A fresh ES256 key.
    fn es256() -> Self {
        Self::generate(Algorithm::ES256)
    }

    #[cfg(feature = "aws-lc-rs")]
    fn generate(alg: Algorithm) -> Self {
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
        };
        match alg {
            Algorithm::ES256 => {
                let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("key");
                let point = kp.public_key().as_ref().to_vec();
                let jwk = json!({"kty": "EC", "crv": "P-256",
                    "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])});
                let rng = aws_lc_rs::rand::SystemRandom::new();
                Self {
                    alg: "ES256",
                    jwk,
                    sign: Box::new(move |m| kp.sign(&rng, m).expect("sign").as_ref().to_vec()),
                }
            }
            Algorithm::EdDSA => {
                let kp = Ed25519KeyPair::generate().expect("key");
                let jwk = json!({"kty": "OKP", "crv": "Ed25519",
                    "x": B64.encode(kp.public_key().as_ref())});
                Self {
                    alg: "EdDSA",
                    jwk,
                    sign: Box::new(move |m| kp.sign(m).as_ref().to_vec()),
                }
            }
            other => panic!("no generator for {other}"),
        }
    }

    #[cfg(not(feature = "aws-lc-rs"))]
    fn generate(alg: Algorithm) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let index = NEXT.fetch_add(1, Ordering::Relaxed) % 2;
        let key = SigningKey::from_pool(alg, index, "p").expect("pool key");
        let mut jwk = key.public_jwk();
        for m in ["kid", "alg", "use"] {
            jwk.as_object_mut().expect("object").remove(m);
        }
        Self {
            alg: alg.as_str(),
            jwk,
            sign: Box::new(move |m| key.sign_bytes(m).expect("sign")),
        }
    }

    fn jkt(&self) -> String {
        jwk_thumbprint(self.jwk.as_object().expect("object")).expect("thumbprint")
    }

    fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": self.alg, "jwk": self.jwk})
    }

    fn sign_with(&self, header: &Value, claims: &Value) -> String {
        let msg = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = (self.sign)(msg.as_bytes());
        format!("{msg}.{}", B64.encode(sig))
    }

    /// A valid proof for `method` on `url` with `token`'s hash.
    fn proof(&self, method: &str, url: &str, token: &str) -> String {
        self.sign_with(&self.header(), &proof_claims(method, url, token))
    }
}

fn ath(token: &str) -> String {
    B64.encode(Sha256::digest(token.as_bytes()))
}

fn proof_claims(method: &str, url: &str, token: &str) -> Value {
    static JTI: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = JTI.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    json!({"jti": format!("jti-{n}-{}", now()), "htm": method, "htu": url, "iat": now(), "ath": ath(token)})
}

fn with(mut claims: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().expect("object") {
        if v.is_null() {
            claims.as_object_mut().expect("object").remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

fn token(extra: Value) -> String {
    static JTI: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let jti = JTI.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let claims = with(
        json!({"iss": ISS, "aud": AUD, "sub": "gift-deliveries@clients", "exp": now() + 600, "iat": now(), "jti": format!("t-{jti}")}),
        extra,
    );
    issuer_key().sign(&claims).expect("sign")
}

/// A token bound to `key`.
fn bound_token(key: &ProofKey) -> String {
    token(json!({"cnf": {"jkt": key.jkt()}}))
}

fn dpop() -> bearer_guard::dpop::DpopBuilder {
    Dpop::builder().public_url(ORIGIN)
}

bearer_guard::scope_requirement!(Directions = all_of["directions"]);

fn app(dpop: Dpop) -> Router {
    let handler = |c: Claims, d: Option<DpopConfirmation>| async move {
        format!(
            "{} {}",
            c.subject().unwrap_or_default(),
            d.map_or_else(|| "bearer".to_owned(), |d| d.jkt().to_owned())
        )
    };
    Router::new()
        .route("/maps", get(handler).post(handler))
        .route(
            "/strict",
            get(|d: DpopConfirmation| async move { d.jkt().to_owned() }),
        )
        .route("/strict-post", post(|| async { "posted" }))
        .route(
            "/directions",
            get(|_: bearer_guard::RequireScopes<Directions>| async { "directions" }),
        )
        .layer(JwtAuthLayer::new(verifier()).dpop(dpop))
}

async fn send(app: &Router, req: Request<Body>) -> Response<Body> {
    app.clone().oneshot(req).await.expect("infallible")
}

fn dpop_req(method: &str, path: &str, token: &str, proofs: &[&str]) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("DPoP {token}"));
    for p in proofs {
        b = b.header("dpop", *p);
    }
    b.body(Body::empty()).expect("request")
}

async fn body(res: Response<Body>) -> String {
    let bytes = http_body_util::BodyExt::collect(res.into_body())
        .await
        .expect("body")
        .to_bytes();
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

fn www(res: &Response<Body>) -> Vec<String> {
    res.headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect()
}

fn auth_error(res: &Response<Body>) -> AuthErrorKind {
    res.extensions()
        .get::<AuthError>()
        .map(AuthError::kind)
        .expect("an AuthError in the response")
}

/// Asserts a 401 `invalid_dpop_proof` for `reason` with a `DPoP` challenge.
fn assert_proof_refused(res: &Response<Body>, reason: DpopProofReason) {
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(auth_error(res), AuthErrorKind::InvalidDpopProof(reason));
    let h = www(res);
    assert_eq!(h.len(), 1, "{h:?}");
    assert!(h[0].starts_with("DPoP "), "{h:?}");
    assert!(h[0].contains("error=\"invalid_dpop_proof\""), "{h:?}");
    assert!(
        h[0].contains("algs=\"ES256 ES384 EdDSA RS256 PS256\""),
        "{h:?}"
    );
}

fn url(path: &str) -> String {
    format!("{ORIGIN}{path}")
}

#[tokio::test]
async fn a_bound_token_with_a_fresh_proof_is_accepted_and_the_handler_sees_the_thumbprint() {
    let app = app(dpop().build().expect("dpop"));
    let key = ProofKey::es256();
    let t = bound_token(&key);
    let res = send(
        &app,
        dpop_req("GET", "/maps", &t, &[&key.proof("GET", &url("/maps"), &t)]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        body(res).await,
        format!("gift-deliveries@clients {}", key.jkt())
    );
}

#[tokio::test]
async fn an_eddsa_proof_is_accepted() {
    let app = app(dpop().build().expect("dpop"));
    let key = ProofKey::generate(Algorithm::EdDSA);
    let t = bound_token(&key);
    let res = send(
        &app,
        dpop_req("GET", "/maps", &t, &[&key.proof("GET", &url("/maps"), &t)]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_replayed_proof_is_refused() {
    let app = app(dpop().build().expect("dpop"));
    let key = ProofKey::es256();
    let t = bound_token(&key);
    let p = key.proof("GET", &url("/maps"), &t);
    assert_eq!(
        send(&app, dpop_req("GET", "/maps", &t, &[&p]))
            .await
            .status(),
        StatusCode::OK
    );
    let res = send(&app, dpop_req("GET", "/maps", &t, &[&p])).await;
    assert_proof_refused(&res, DpopProofReason::Replayed);
}

#[tokio::test]
async fn a_cached_token_still_has_its_proof_checked_on_every_request() {
    let app = app(dpop().build().expect("dpop"));
    let key = ProofKey::es256();
    let t = bound_token(&key);
    let good = key.proof("GET", &url("/maps"), &t);
    assert_eq!(
        send(&app, dpop_req("GET", "/maps", &t, &[&good]))
            .await
            .status(),
        StatusCode::OK
    );
    // The token is now in the verified-token cache; the next proof is for another URL.
    let bad = key.proof("GET", &url("/other"), &t);
    let res = send(&app, dpop_req("GET", "/maps", &t, &[&bad])).await;
    assert_proof_refused(&res, DpopProofReason::WrongUri);
}

#[tokio::test]
async fn a_proof_for_another_method_is_refused() {
    let app = app(dpop().build().expect("dpop"));
    let key = ProofKey::es256();
    let t = bound_token(&key);
    let res = send(
        &app,
        dpop_req("POST", "/maps", &t, &[&key.proof("GET", &url("/maps"), &t)]),
    )
    .await;
    assert_proof_refused(&res, DpopProofReason::WrongMethod);
}

#[tokio::test]
async fn a_proof_for_another_url_is_refused() {
    let app = app(dpop().build().expect("dpop"));
    let key = ProofKey::es256();
    let t = bound_token(&key);
    let p = key.proof("GET", "https://other.example/maps", &t);
    let res = send(&app, dpop_req("GET", "/maps", &t, &[&p])).await;
    assert_proof_refused(&res, DpopProofReason::WrongUri);
}

#[tokio::test]
async fn a_query_string_only_difference_is_accepted() {
    let app = app(dpop().build().expect("dpop"));
    let key = ProofKey::es256();
    let t = bound_token(&key);
    let p = key.proof("GET", &url("/maps?zoom=3"), &t);
    let res = send(&app, dpop_req("GET", "/maps?zoom=4&x=1", &t, &[&p])).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_stale_proof_is_refused() {
    let app = app(dpop().build().expect("dpop"));
    let key = ProofKey::es256();
    let t = bound_token(&key);
    let claims = with(
        proof_claims("GET", &url("/maps"), &t),
        json!({"iat": now() - 120}),
    );
    let res = send(
        &app,
        dpop_req(
            "GET",
            "/maps",
            &t,
            &[&key.sign_with(&key.header(), &claims)],
        ),
    )
    .await;
    assert_proof_refused(&res, DpopProofReason::TooOld);
}

#[tokio::test]
async fn a_proof_from_the_future_is_refused() {
    let app = app(dpop().build().expect("dpop"));
    let key = ProofKey::es256();
    let t = bound_token(&key);
    let claims = with(
        proof_claims("GET", &url("/maps"), &t),
        json!({"iat": now() + 120}),
    );
    let res = send(
        &app,
        dpop_req(
            "GET",
            "/maps",
            &t,
            &[&key.sign_with(&key.header(), &claims)],
        ),
    )
    .await;
    assert_proof_refused(&res, DpopProofReason::IssuedInFuture);
}

#[tokio::test]
async fn a_proof_without_ath_is_refused() {
    let app = app(dpop().build().expect("dpop"));
    let key = ProofKey::es256();
    let t = bound_token(&key);
    let claims = with(proof_claims("GET", &url("/maps"), &t), json!({"ath": null}));
    let res = send(
        &app,
        dpop_req(
            "GET",
            "/maps",
            &t,
            &[&key.sign_with(&key.header(), &claims)],
        ),
    )
    .await;
    assert_proof_refused(&res, DpopProofReason::WrongAccessTokenHash);
}

#[tokio::test]
async fn a_proof_with_the_ath_of_another_token_is_refused() {
    let app = app(dpop().build().expect("dpop"));
    let key = ProofKey::es256();
    let t = bound_token(&key);
    let other = bound_token(&key);
    let res = send(
        &app,
        dpop_req(
            "GET",
            "/maps",
            &t,
            &[&key.proof("GET", &url("/maps"), &other)],
        ),
    )
    .await;
    assert_proof_refused(&res, DpopProofReason::WrongAccessTokenHash);
}

#[tokio::test]
async fn a_proof_by_a_key_other_than_cnf_jkt_is_refused() {
    let app = app(dpop().build().expect("dpop"));
    let owner = ProofKey::es256();
    let thief = ProofKey::generate(Algorithm::EdDSA);
    let t = bound_token(&owner);
    let res = send(
        &app,
        dpop_req(
            "GET",
            "/maps",
            &t,
            &[&thief.proof("GET", &url("/maps"), &t)],
        ),
    )
    .await;
    assert_proof_refused(&res, DpopProofReason::KeyNotBound);
}

#[tokio::test]
async fn a_jwk_with_a_private_member_is_refused() {
    let app = app(dpop().build().expect("dpop"));
    let key = ProofKey::es256();
    let t = bound_token(&key);
    let mut header = key.header();
    header["jwk"]["d"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let p = key.sign_with(&header, &proof_claims("GET", &url("/maps"), &t));
    let res = send(&app, dpop_req("GET", "/maps", &t, &[&p])).await;
    assert_proof_refused(&res, DpopProofReason::PrivateKey);
}

#[tokio::test]
async fn alg_none_is_refused() {
    let app = app(dpop().build().expect("dpop"));
    let key = ProofKey::es256();
    let t = bound_token(&key);
    let mut header = key.header();
    header["alg"] = json!("none");
    let claims = proof_claims("GET", &url("/maps"), &t);
    let p = format!(
        "{}.{}.",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let res = send(&app, dpop_req("GET", "/maps", &t, &[&p])).await;
    assert_proof_refused(&res, DpopProofReason::AlgorithmNotAllowed);
}

#[tokio::test]
async fn alg_hs256_is_refused() {
    let app = app(dpop().build().expect("dpop"));
    let key = ProofKey::es256();
    let t = bound_token(&key);
    let mut header = key.header();
    header["alg"] = json!("HS256");
    let p = key.sign_with(&header, &proof_claims("GET", &url("/maps"), &t));
    let res = send(&app, dpop_req("GET", "/maps", &t, &[&p])).await;
    assert_proof_refused(&res, DpopProofReason::AlgorithmNotAllowed);
}

#[tokio::test]
async fn an_algorithm_outside_the_allow_list_is_refused() {
    let checker = bearer_guard::dpop::ProofChecker::builder()
        .algorithms([Algorithm::ES256])
        .build()
        .expect("checker");
    let app = app(dpop().proof_checker(checker).build().expect("dpop"));
    let key = ProofKey::generate(Algorithm::EdDSA);
    let t = bound_token(&key);
    let res = send(
        &app,
        dpop_req("GET", "/maps", &t, &[&key.proof("GET", &url("/maps"), &t)]),
    )
    .await;
    assert_eq!(
        auth_error(&res),
        AuthErrorKind::InvalidDpopProof(DpopProofReason::AlgorithmNotAllowed)
    );
    assert!(www(&res)[0].contains("algs=\"ES256\""), "{:?}", www(&res));
}

#[tokio::test]
async fn two_dpop_headers_are_refused() {
    let app = app(dpop().build().expect("dpop"));
    let key = ProofKey::es256();
    let t = bound_token(&key);
    let (a, b) = (
        key.proof("GET", &url("/maps"), &t),
        key.proof("GET", &url("/maps"), &t),
    );
    let res = send(&app, dpop_req("GET", "/maps", &t, &[&a, &b])).await;
    assert_proof_refused(&res, DpopProofReason::MultipleProofs);
}

#[tokio::test]
async fn a_proof_that_is_not_a_jws_is_refused() {
    let app = app(dpop().build().expect("dpop"));
    let key = ProofKey::es256();
    let t = bound_token(&key);
    let res = send(&app, dpop_req("GET", "/maps", &t, &["not-a-jws"])).await;
    assert_proof_refused(&res, DpopProofReason::Malformed);
}

#[tokio::test]
async fn an_oversized_proof_is_refused_before_parsing() {
    let app = app(dpop().build().expect("dpop"));
    let key = ProofKey::es256();
    let t = bound_token(&key);
    // 9 KiB of base64url in three parts: over the 8 KiB bound, never decoded.
    let huge = format!(
        "{}.{}.{}",
        "e".repeat(3072),
        "e".repeat(3072),
        "e".repeat(3072)
    );
    let res = send(&app, dpop_req("GET", "/maps", &t, &[&huge])).await;
    assert_proof_refused(&res, DpopProofReason::TooLarge);
}

#[tokio::test]
async fn a_bound_token_sent_as_bearer_is_refused() {
    let app = app(dpop().build().expect("dpop"));
    let key = ProofKey::es256();
    let t = bound_token(&key);
    let bearer = || {
        Request::get("/maps")
            .header("authorization", format!("Bearer {t}"))
            .body(Body::empty())
            .expect("request")
    };
    let res = send(&app, bearer()).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        auth_error(&res),
        AuthErrorKind::InvalidToken(InvalidTokenReason::BoundTokenAsBearer)
    );
    assert!(www(&res)[0].starts_with("DPoP "), "{:?}", www(&res));
    // Once the token is in the verified-token cache (a DPoP request), still refused.
    let ok = send(
        &app,
        dpop_req("GET", "/maps", &t, &[&key.proof("GET", &url("/maps"), &t)]),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK);
    let res = send(&app, bearer()).await;
    assert_eq!(
        auth_error(&res),
        AuthErrorKind::InvalidToken(InvalidTokenReason::BoundTokenAsBearer)
    );
}

#[tokio::test]
async fn without_dpop_configured_a_bound_token_is_refused_and_only_mode_off_accepts_it() {
    // A layer without `.dpop(..)` checks no proof, so it cannot check the binding: the bound
    // token is refused, the second time from the verified-token cache; an unbound one passes.
    let handler = |c: Claims| async move { c.subject().unwrap_or_default().to_owned() };
    let no_dpop = Router::new()
        .route("/maps", get(handler))
        .layer(JwtAuthLayer::new(verifier()));
    let bearer = |t: &str| {
        Request::get("/maps")
            .header("authorization", format!("Bearer {t}"))
            .body(Body::empty())
            .expect("request")
    };
    let t = bound_token(&ProofKey::es256());
    for _ in 0..2 {
        let res = send(&no_dpop, bearer(&t)).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            auth_error(&res),
            AuthErrorKind::InvalidToken(InvalidTokenReason::BoundTokenAsBearer)
        );
        // The API offers no DPoP, so the challenge is a Bearer one.
        let h = www(&res);
        assert!(
            h[0].starts_with("Bearer ") && h[0].contains("accepts no DPoP"),
            "{h:?}"
        );
    }
    let unbound = token(json!({}));
    assert_eq!(
        send(&no_dpop, bearer(&unbound)).await.status(),
        StatusCode::OK
    );
    // A malformed `cnf` is refused too, not taken for unbound.
    let odd = token(json!({"cnf": {"jkt": 7}}));
    assert_eq!(
        send(&no_dpop, bearer(&odd)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // `DpopMode::Off` says so explicitly: the bound token passes unchecked, as a bearer one.
    let off = app(dpop().mode(DpopMode::Off).build().expect("dpop"));
    let res = send(&off, bearer(&t)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body(res).await, "gift-deliveries@clients bearer");
}

#[tokio::test]
async fn an_unbound_token_sent_as_dpop_is_refused() {
    let app = app(dpop().build().expect("dpop"));
    let key = ProofKey::es256();
    let t = token(json!({}));
    let res = send(
        &app,
        dpop_req("GET", "/maps", &t, &[&key.proof("GET", &url("/maps"), &t)]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        auth_error(&res),
        AuthErrorKind::InvalidToken(InvalidTokenReason::UnboundTokenAsDpop)
    );
    assert!(www(&res)[0].starts_with("DPoP "), "{:?}", www(&res));
    assert!(
        www(&res)[0].contains("error=\"invalid_token\""),
        "{:?}",
        www(&res)
    );
}

#[tokio::test]
async fn an_unbound_token_sent_as_bearer_still_passes_in_allowed_mode() {
    let app = app(dpop().build().expect("dpop"));
    let t = token(json!({}));
    let req = Request::get("/maps")
        .header("authorization", format!("Bearer {t}"))
        .body(Body::empty())
        .expect("request");
    let res = send(&app, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body(res).await, "gift-deliveries@clients bearer");
}

#[tokio::test]
async fn without_credentials_allowed_mode_sends_both_challenges() {
    let app = app(dpop().build().expect("dpop"));
    let res = send(
        &app,
        Request::get("/maps").body(Body::empty()).expect("request"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        www(&res),
        vec![
            "Bearer realm=\"api\"".to_owned(),
            "DPoP realm=\"api\", algs=\"ES256 ES384 EdDSA RS256 PS256\"".to_owned()
        ]
    );
}

#[tokio::test]
async fn in_required_mode_a_bearer_token_counts_as_no_credentials() {
    let app = app(dpop().mode(DpopMode::Required).build().expect("dpop"));
    let t = token(json!({}));
    let req = Request::get("/maps")
        .header("authorization", format!("Bearer {t}"))
        .body(Body::empty())
        .expect("request");
    let res = send(&app, req).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        www(&res),
        vec!["DPoP realm=\"api\", algs=\"ES256 ES384 EdDSA RS256 PS256\"".to_owned()]
    );
}

#[tokio::test]
async fn a_handler_requiring_dpop_refuses_a_bearer_request() {
    let app = app(dpop().build().expect("dpop"));
    let t = token(json!({}));
    let req = Request::get("/strict")
        .header("authorization", format!("Bearer {t}"))
        .body(Body::empty())
        .expect("request");
    let res = send(&app, req).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(www(&res)[0].starts_with("DPoP "), "{:?}", www(&res));
}

fn nonce_app(secret: &[u8]) -> Router {
    app(dpop()
        .nonces(Nonces::with_secret(secret).expect("nonces"))
        .build()
        .expect("dpop"))
}

fn nonce_proof(key: &ProofKey, t: &str, nonce: Option<&str>) -> String {
    let mut claims = proof_claims("GET", &url("/maps"), t);
    if let Some(n) = nonce {
        claims["nonce"] = json!(n);
    }
    key.sign_with(&key.header(), &claims)
}

fn assert_use_nonce(res: &Response<Body>) -> String {
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(auth_error(res), AuthErrorKind::UseDpopNonce);
    assert!(
        www(res)[0].contains("error=\"use_dpop_nonce\""),
        "{:?}",
        www(res)
    );
    res.headers()["dpop-nonce"]
        .to_str()
        .expect("ascii")
        .to_owned()
}

#[tokio::test]
async fn a_proof_without_the_server_nonce_gets_use_dpop_nonce_and_then_passes_with_it() {
    let app = nonce_app(&[5; 32]);
    let key = ProofKey::es256();
    let t = bound_token(&key);
    let res = send(
        &app,
        dpop_req("GET", "/maps", &t, &[&nonce_proof(&key, &t, None)]),
    )
    .await;
    let nonce = assert_use_nonce(&res);
    let res = send(
        &app,
        dpop_req("GET", "/maps", &t, &[&nonce_proof(&key, &t, Some(&nonce))]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get("dpop-nonce").is_none());
}

#[tokio::test]
async fn a_stale_nonce_is_refused_with_a_fresh_one() {
    let secret = [6; 32];
    let app = nonce_app(&secret);
    let key = ProofKey::es256();
    let t = bound_token(&key);
    let stale = Nonces::with_secret(&secret)
        .expect("nonces")
        .current(SystemTime::now() - Duration::from_secs(700));
    let res = send(
        &app,
        dpop_req("GET", "/maps", &t, &[&nonce_proof(&key, &t, Some(&stale))]),
    )
    .await;
    assert_ne!(assert_use_nonce(&res), stale);
}

#[tokio::test]
async fn a_forged_nonce_is_refused() {
    let app = nonce_app(&[7; 32]);
    let key = ProofKey::es256();
    let t = bound_token(&key);
    let forged = Nonces::with_secret(&[8; 32])
        .expect("nonces")
        .current(SystemTime::now());
    let res = send(
        &app,
        dpop_req("GET", "/maps", &t, &[&nonce_proof(&key, &t, Some(&forged))]),
    )
    .await;
    assert_use_nonce(&res);
}

#[tokio::test]
async fn a_nonce_of_the_previous_step_passes_and_a_fresh_one_is_sent_ahead_of_its_expiry() {
    let secret = [9; 32];
    let app = nonce_app(&secret);
    let key = ProofKey::es256();
    let t = bound_token(&key);
    let previous = Nonces::with_secret(&secret)
        .expect("nonces")
        .current(SystemTime::now() - Duration::from_secs(300));
    let res = send(
        &app,
        dpop_req(
            "GET",
            "/maps",
            &t,
            &[&nonce_proof(&key, &t, Some(&previous))],
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let fresh = res.headers()["dpop-nonce"].to_str().expect("ascii");
    assert_ne!(fresh, previous);
}

#[tokio::test]
async fn a_full_replay_store_answers_503_with_retry_after() {
    let app = app(dpop()
        .replay_store(InMemoryReplayStore::new(1))
        .build()
        .expect("dpop"));
    let key = ProofKey::es256();
    let t = bound_token(&key);
    let first = send(
        &app,
        dpop_req("GET", "/maps", &t, &[&key.proof("GET", &url("/maps"), &t)]),
    )
    .await;
    assert_eq!(first.status(), StatusCode::OK);
    let res = send(
        &app,
        dpop_req("GET", "/maps", &t, &[&key.proof("GET", &url("/maps"), &t)]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(auth_error(&res), AuthErrorKind::ReplayStoreUnavailable);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .expect("a")
        .parse()
        .expect("secs");
    assert!((1..=61).contains(&retry), "{retry}");
}

#[tokio::test]
async fn descriptions_never_echo_proof_or_token_content() {
    let app = app(dpop().build().expect("dpop"));
    let key = ProofKey::es256();
    let t = bound_token(&key);
    let mut header = key.header();
    header["typ"] = json!("SECRET-TYP-MARKER");
    let p = key.sign_with(&header, &proof_claims("GET", &url("/maps"), &t));
    let res = send(&app, dpop_req("GET", "/maps", &t, &[&p])).await;
    let h = www(&res).join(" ");
    let b = body(res).await;
    for s in [&h, &b] {
        assert!(
            !s.contains("SECRET-TYP-MARKER") && !s.contains(&t[..20]) && !s.contains(&p[..20]),
            "{s}"
        );
    }
}

#[tokio::test]
async fn trusted_forwarded_headers_give_the_external_url() {
    let app = app(Dpop::builder()
        .trust_forwarded_headers()
        .build()
        .expect("dpop"));
    let key = ProofKey::es256();
    let t = bound_token(&key);
    let p = key.proof("GET", "https://maps.example:8443/maps", &t);
    let mut req = dpop_req("GET", "/maps", &t, &[&p]);
    req.headers_mut()
        .insert("x-forwarded-proto", "https".parse().expect("v"));
    req.headers_mut()
        .insert("x-forwarded-host", "maps.example:8443".parse().expect("v"));
    assert_eq!(send(&app, req).await.status(), StatusCode::OK);
    // Without the proxy headers and without a public URL: a clear 400.
    let p = key.proof("GET", "https://maps.example:8443/maps", &t);
    let res = send(&app, dpop_req("GET", "/maps", &t, &[&p])).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_host_header_is_never_trusted_for_htu() {
    let app = app(dpop().build().expect("dpop"));
    let key = ProofKey::es256();
    let t = bound_token(&key);
    let p = key.proof("GET", "https://evil.example/maps", &t);
    let mut req = dpop_req("GET", "/maps", &t, &[&p]);
    req.headers_mut()
        .insert("host", "evil.example".parse().expect("v"));
    assert_proof_refused(&send(&app, req).await, DpopProofReason::WrongUri);
}

#[cfg(feature = "tonic")]
mod grpc {
    use super::*;
    use bearer_guard::{ClaimsExt, GrpcRejection};

    fn svc(
        dpop: Dpop,
    ) -> impl tower::Service<
        Request<tonic::body::Body>,
        Response = Response<tonic::body::Body>,
        Error = std::convert::Infallible,
        Future: Send,
    > + Clone {
        tower::ServiceBuilder::new()
            .layer(
                JwtAuthLayer::new(verifier())
                    .dpop(dpop)
                    .rejection(GrpcRejection::new()),
            )
            .service_fn(|req: Request<tonic::body::Body>| async move {
                let jkt = req
                    .extensions()
                    .dpop()
                    .expect("layer")
                    .map(|d| d.jkt().to_owned());
                let mut res = Response::new(tonic::body::Body::empty());
                res.headers_mut()
                    .insert("x-jkt", jkt.unwrap_or_default().parse().expect("v"));
                Ok::<_, std::convert::Infallible>(res)
            })
    }

    const METHOD: &str = "/world_mappers.v1.WorldMappers/Geocode";

    fn call(t: &str, proof: &str) -> Request<tonic::body::Body> {
        Request::post(METHOD)
            .header("content-type", "application/grpc")
            .header("authorization", format!("DPoP {t}"))
            .header("dpop", proof)
            .body(tonic::body::Body::empty())
            .expect("request")
    }

    #[tokio::test]
    async fn a_grpc_call_with_a_proof_for_post_and_the_method_url_is_accepted() {
        let key = ProofKey::es256();
        let t = bound_token(&key);
        let res = svc(dpop().build().expect("dpop"))
            .oneshot(call(&t, &key.proof("POST", &url(METHOD), &t)))
            .await
            .expect("infallible");
        assert_eq!(res.headers()["x-jkt"], key.jkt().as_str());
    }

    #[tokio::test]
    async fn a_refused_grpc_call_gets_status_16_with_the_dpop_challenge() {
        let key = ProofKey::es256();
        let t = bound_token(&key);
        let res = svc(dpop().build().expect("dpop"))
            .oneshot(call(&t, &key.proof("GET", &url(METHOD), &t)))
            .await
            .expect("infallible");
        assert_eq!(res.headers()["grpc-status"], "16");
        let h = res.headers()["www-authenticate"].to_str().expect("ascii");
        assert!(
            h.starts_with("DPoP ") && h.contains("invalid_dpop_proof"),
            "{h}"
        );
    }
}

#[tokio::test]
async fn a_dpop_request_lacking_a_scope_gets_403_with_the_dpop_challenge() {
    let app = app(dpop().build().expect("dpop"));
    let key = ProofKey::es256();
    let t = bound_token(&key);
    let p = key.proof("GET", &url("/directions"), &t);
    let res = send(&app, dpop_req("GET", "/directions", &t, &[&p])).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let h = www(&res);
    assert!(
        h[0].starts_with("DPoP ") && h[0].contains("insufficient_scope"),
        "{h:?}"
    );
}

#[tokio::test]
async fn in_off_mode_the_dpop_scheme_counts_as_no_credentials() {
    let app = app(dpop().mode(DpopMode::Off).build().expect("dpop"));
    let key = ProofKey::es256();
    let t = bound_token(&key);
    let res = send(
        &app,
        dpop_req("GET", "/maps", &t, &[&key.proof("GET", &url("/maps"), &t)]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(www(&res), vec!["Bearer realm=\"api\"".to_owned()]);
}

#[tokio::test]
async fn in_required_mode_a_dpop_request_is_accepted() {
    let app = app(dpop().mode(DpopMode::Required).build().expect("dpop"));
    let key = ProofKey::es256();
    let t = bound_token(&key);
    let res = send(
        &app,
        dpop_req("GET", "/maps", &t, &[&key.proof("GET", &url("/maps"), &t)]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
}
