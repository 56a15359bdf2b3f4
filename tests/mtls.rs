//! The certificate-binding attack suite (RFC 8705): each attack its own test, through the
//! tower layer and axum (oneshot, the connection's certificate put in the extensions as
//! `mtls::serve` does), then over real mutual TLS on 127.0.0.1. Certificates and keys are
//! generated per test run with rcgen; none is checked in.
#![cfg(all(
    feature = "axum",
    feature = "dev-issuer",
    any(feature = "aws-lc-rs", feature = "rust-crypto")
))]

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use base64::Engine as _;
use bearer_guard::dev_issuer::{SigningKey, jwk_set};
use bearer_guard::dpop::{Dpop, jwk_thumbprint};
use bearer_guard::mtls::{CLIENT_CERT, CertificateThumbprint, Mtls, MtlsMode, PeerCertificate};
use bearer_guard::{
    Algorithm, AuthError, AuthErrorKind, Claims, DpopConfirmation, InvalidTokenReason,
    JwtAuthLayer, MtlsConfirmation, Verifier,
};
use http::{Request, Response, StatusCode};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

const ISS: &str = "https://issuer.test/";
const AUD: &str = "urn:worldmappers";
const ORIGIN: &str = "https://api.example";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn now() -> i64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    i64::try_from(d.as_secs()).expect("fits")
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

/// A test CA, generated at run time.
fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA")
}

/// A certificate for `name` signed by `ca` (a client certificate, or a server one for
/// `localhost` and 127.0.0.1), with its key.
fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    name: &str,
    server: bool,
) -> (rcgen::Certificate, KeyPair) {
    let sans = if server {
        vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
    } else {
        Vec::new()
    };
    let mut params = CertificateParams::new(sans).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, ca).expect("leaf");
    (cert, key)
}

/// A client certificate's DER bytes (from a fresh CA).
fn client_der(name: &str) -> Vec<u8> {
    leaf(&ca("test CA"), name, false).0.der().to_vec()
}

fn thumbprint(der: &[u8]) -> String {
    CertificateThumbprint::of_der(der).as_str().to_owned()
}

fn token(extra: Value) -> String {
    static JTI: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let jti = JTI.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut claims = json!({"iss": ISS, "aud": AUD, "sub": "gift-deliveries@clients",
        "exp": now() + 600, "iat": now(), "jti": format!("t-{jti}")});
    for (k, v) in extra.as_object().expect("object") {
        claims[k] = v.clone();
    }
    issuer_key().sign(&claims).expect("sign")
}

/// A token bound to the certificate with these DER bytes.
fn bound_token(der: &[u8]) -> String {
    token(json!({"cnf": {"x5t#S256": thumbprint(der)}}))
}

fn app(mtls: Mtls) -> Router {
    let handler = |c: Claims, m: Option<MtlsConfirmation>| async move {
        format!(
            "{} {}",
            c.subject().unwrap_or_default(),
            m.map_or_else(|| "unbound".to_owned(), |m| m.x5t_s256().to_owned())
        )
    };
    Router::new()
        .route("/maps", get(handler))
        .layer(JwtAuthLayer::new(verifier()).mtls(mtls))
}

async fn send(app: &Router, req: Request<Body>) -> Response<Body> {
    app.clone().oneshot(req).await.expect("infallible")
}

/// A bearer request, arriving on a connection whose client certificate is `peer`.
fn request(token: &str, peer: Option<&[u8]>) -> Request<Body> {
    let mut req = Request::get("/maps")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    if let Some(der) = peer {
        req.extensions_mut()
            .insert(PeerCertificate::from_der(der.to_vec()));
    }
    req
}

fn with_header(mut req: Request<Body>, value: &str) -> Request<Body> {
    req.headers_mut()
        .append(CLIENT_CERT, value.parse().expect("header value"));
    req
}

fn client_cert_header(der: &[u8]) -> String {
    format!(
        ":{}:",
        base64::engine::general_purpose::STANDARD.encode(der)
    )
}

async fn body(res: Response<Body>) -> String {
    let bytes = http_body_util::BodyExt::collect(res.into_body())
        .await
        .expect("body")
        .to_bytes();
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

fn auth_error(res: &Response<Body>) -> AuthErrorKind {
    res.extensions()
        .get::<AuthError>()
        .map(AuthError::kind)
        .expect("an AuthError in the response")
}

fn www(res: &Response<Body>) -> String {
    res.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("ascii").to_owned())
        .unwrap_or_default()
}

const MISMATCH: AuthErrorKind =
    AuthErrorKind::InvalidToken(InvalidTokenReason::CertificateMismatch);

/// Asserts a 401 `invalid_token` saying that the token is bound to a certificate.
fn assert_bound_refusal(res: &Response<Body>) {
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(auth_error(res), MISMATCH);
    let h = www(res);
    assert!(h.starts_with("Bearer "), "{h}");
    assert!(h.contains("error=\"invalid_token\""), "{h}");
    assert!(h.contains("bound to a client certificate"), "{h}");
}

#[tokio::test]
async fn a_bound_token_with_its_certificate_is_accepted_and_handlers_see_the_thumbprint() {
    let der = client_der("gift-deliveries");
    let res = send(
        &app(Mtls::peer_certificate()),
        request(&bound_token(&der), Some(&der)),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        body(res).await,
        format!("gift-deliveries@clients {}", thumbprint(&der))
    );
}

#[tokio::test]
async fn a_bound_token_without_a_certificate_is_refused() {
    let der = client_der("gift-deliveries");
    let res = send(
        &app(Mtls::peer_certificate()),
        request(&bound_token(&der), None),
    )
    .await;
    assert_bound_refusal(&res);
}

#[tokio::test]
async fn a_bound_token_with_another_certificate_is_refused() {
    let der = client_der("gift-deliveries");
    let other = client_der("thief");
    let res = send(
        &app(Mtls::peer_certificate()),
        request(&bound_token(&der), Some(&other)),
    )
    .await;
    assert_bound_refusal(&res);
}

#[tokio::test]
async fn a_bound_token_whose_thumbprint_claim_was_tampered_is_refused() {
    let der = client_der("gift-deliveries");
    let theirs = client_der("thief");
    let app = app(Mtls::peer_certificate());
    // A thief rewrites the token's `cnf` for their own certificate: the signature breaks.
    let original = bound_token(&der);
    let parts: Vec<&str> = original.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&B64.decode(parts[1]).expect("b64")).expect("json");
    payload["cnf"]["x5t#S256"] = json!(thumbprint(&theirs));
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(payload.to_string()),
        parts[2]
    );
    let res = send(&app, request(&forged, Some(&theirs))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        auth_error(&res),
        AuthErrorKind::InvalidToken(InvalidTokenReason::BadSignature)
    );
    // A (signed) thumbprint that differs in one character from the certificate's.
    let mut x5t = thumbprint(&der);
    let last = if x5t.ends_with('A') { "B" } else { "A" };
    x5t.replace_range(42.., last);
    let token = token(json!({"cnf": {"x5t#S256": x5t}}));
    assert_bound_refusal(&send(&app, request(&token, Some(&der))).await);
}

#[tokio::test]
async fn a_cached_token_is_still_checked_against_the_certificate() {
    let der = client_der("gift-deliveries");
    let app = app(Mtls::peer_certificate());
    let token = bound_token(&der);
    assert_eq!(
        send(&app, request(&token, Some(&der))).await.status(),
        StatusCode::OK
    );
    // The token is now in the verified-token cache.
    assert_eq!(
        send(&app, request(&token, Some(&der))).await.status(),
        StatusCode::OK
    );
    assert_bound_refusal(&send(&app, request(&token, None)).await);
    let other = client_der("thief");
    assert_bound_refusal(&send(&app, request(&token, Some(&other))).await);
}

#[tokio::test]
async fn a_client_cert_header_sent_by_the_client_is_ignored_when_not_trusted() {
    let der = client_der("gift-deliveries");
    let res = send(
        &app(Mtls::peer_certificate()),
        with_header(request(&bound_token(&der), None), &client_cert_header(&der)),
    )
    .await;
    assert_bound_refusal(&res);
}

#[tokio::test]
async fn a_trusted_client_cert_header_binds_like_a_connection() {
    let der = client_der("gift-deliveries");
    let app = app(Mtls::trusted_header(CLIENT_CERT));
    let token = bound_token(&der);
    let res = send(
        &app,
        with_header(request(&token, None), &client_cert_header(&der)),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(body(res).await.ends_with(&thumbprint(&der)));
    // With that source, the connection's certificate is not the one read.
    assert_bound_refusal(&send(&app, request(&token, Some(&der))).await);
    let other = client_der("thief");
    let res = send(
        &app,
        with_header(request(&token, None), &client_cert_header(&other)),
    )
    .await;
    assert_bound_refusal(&res);
}

#[tokio::test]
async fn a_malformed_client_cert_header_is_an_invalid_request() {
    let der = client_der("gift-deliveries");
    let app = app(Mtls::trusted_header(CLIENT_CERT));
    let token = bound_token(&der);
    for value in ["not-a-byte-sequence", ":%%%:", "::", ":AAAA:"] {
        let res = send(&app, with_header(request(&token, None), value)).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{value}");
        assert_eq!(auth_error(&res), AuthErrorKind::MalformedRequest, "{value}");
        assert!(www(&res).contains("error=\"invalid_request\""), "{value}");
    }
    let twice = with_header(
        with_header(request(&token, None), &client_cert_header(&der)),
        &client_cert_header(&der),
    );
    assert_eq!(send(&app, twice).await.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn in_mode_off_the_certificate_header_is_not_even_read() {
    let der = client_der("gift-deliveries");
    let app = app(Mtls::trusted_header(CLIENT_CERT).mode(MtlsMode::Off));
    let res = send(
        &app,
        with_header(request(&bound_token(&der), None), "not-a-byte-sequence"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_unbound_token_passes_unless_binding_is_required() {
    let der = client_der("gift-deliveries");
    let unbound = token(json!({}));
    let res = send(
        &app(Mtls::peer_certificate()),
        request(&unbound, Some(&der)),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body(res).await, "gift-deliveries@clients unbound");
    let required = app(Mtls::peer_certificate().mode(MtlsMode::Required));
    let res = send(&required, request(&unbound, Some(&der))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        auth_error(&res),
        AuthErrorKind::InvalidToken(InvalidTokenReason::NotCertificateBound)
    );
    let res = send(&required, request(&bound_token(&der), Some(&der))).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn without_mtls_configured_a_bound_token_is_refused_and_only_mode_off_accepts_it() {
    // A layer without `.mtls(..)` cannot check the binding: the bound token is refused, a
    // certificate or not, the second time from the verified-token cache; an unbound token
    // passes.
    let der = client_der("gift-deliveries");
    let app = Router::new()
        .route("/maps", get(|| async { "ok" }))
        .layer(JwtAuthLayer::new(verifier()));
    let bound = bound_token(&der);
    for peer in [None, Some(der.as_slice())] {
        let res = send(&app, request(&bound, peer)).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            auth_error(&res),
            AuthErrorKind::InvalidToken(InvalidTokenReason::CertificateMismatch)
        );
        assert!(
            www(&res).contains("checks no certificate binding"),
            "{}",
            www(&res)
        );
    }
    assert_eq!(
        send(&app, request(&token(json!({})), None)).await.status(),
        StatusCode::OK
    );
    // `MtlsMode::Off` says so explicitly: bound tokens pass unchecked.
    let off = self::app(Mtls::peer_certificate().mode(MtlsMode::Off));
    assert_eq!(
        send(&off, request(&bound_token(&der), None)).await.status(),
        StatusCode::OK
    );
}

/// A DPoP key from the development pool, and proofs signed with it.
struct ProofKey(SigningKey);

impl ProofKey {
    fn new() -> Self {
        Self(SigningKey::from_pool(Algorithm::ES256, 1, "p").expect("pool key"))
    }

    fn jwk(&self) -> Value {
        let mut jwk = self.0.public_jwk();
        for m in ["kid", "alg", "use"] {
            jwk.as_object_mut().expect("object").remove(m);
        }
        jwk
    }

    fn jkt(&self) -> String {
        jwk_thumbprint(self.jwk().as_object().expect("object")).expect("thumbprint")
    }

    fn proof(&self, url: &str, token: &str) -> String {
        static JTI: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = JTI.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk()});
        let claims = json!({"jti": format!("p-{n}"), "htm": "GET", "htu": url, "iat": now(),
            "ath": B64.encode(Sha256::digest(token.as_bytes()))});
        self.0
            .sign_raw(header.to_string().as_bytes(), claims.to_string().as_bytes())
            .expect("sign")
    }
}

#[tokio::test]
async fn a_token_bound_to_a_dpop_key_and_a_certificate_needs_both() {
    let der = client_der("gift-deliveries");
    let key = ProofKey::new();
    let dpop = Dpop::builder().public_url(ORIGIN).build().expect("dpop");
    let app = Router::new()
        .route(
            "/maps",
            get(|d: DpopConfirmation, m: MtlsConfirmation| async move {
                format!("{} {}", d.jkt(), m.x5t_s256())
            }),
        )
        .layer(
            JwtAuthLayer::new(verifier())
                .dpop(dpop)
                .mtls(Mtls::peer_certificate()),
        );
    let token = token(json!({"cnf": {"jkt": key.jkt(), "x5t#S256": thumbprint(&der)}}));
    let dpop_request = |peer: Option<&[u8]>| {
        let mut req = Request::get("/maps")
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", key.proof(&format!("{ORIGIN}/maps"), &token))
            .body(Body::empty())
            .expect("request");
        if let Some(der) = peer {
            req.extensions_mut()
                .insert(PeerCertificate::from_der(der.to_vec()));
        }
        req
    };
    // Both: accepted, and the handler sees both confirmations.
    let res = send(&app, dpop_request(Some(&der))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        body(res).await,
        format!("{} {}", key.jkt(), thumbprint(&der))
    );
    // The proof without the certificate: refused, with a DPoP challenge.
    let res = send(&app, dpop_request(None)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(auth_error(&res), MISMATCH);
    assert!(www(&res).starts_with("DPoP "), "{}", www(&res));
    // Another certificate: refused.
    let other = client_der("thief");
    assert_eq!(
        auth_error(&send(&app, dpop_request(Some(&other))).await),
        MISMATCH
    );
    // The certificate without the proof (sent as a bearer token): refused.
    let res = send(&app, request(&token, Some(&der))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        auth_error(&res),
        AuthErrorKind::InvalidToken(InvalidTokenReason::BoundTokenAsBearer)
    );
}

#[cfg(feature = "tonic")]
#[tokio::test]
async fn a_grpc_call_with_a_bound_token_and_no_certificate_gets_status_16() {
    use bearer_guard::{ClaimsExt, GrpcRejection};
    let der = client_der("gift-deliveries");
    let svc = tower::ServiceBuilder::new()
        .layer(
            JwtAuthLayer::new(verifier())
                .mtls(Mtls::peer_certificate())
                .rejection(GrpcRejection::new()),
        )
        .service_fn(|req: Request<tonic::body::Body>| async move {
            let x5t = req
                .extensions()
                .mtls()
                .expect("layer")
                .map(|m| m.x5t_s256().to_owned())
                .unwrap_or_default();
            let mut res = Response::new(tonic::body::Body::empty());
            res.headers_mut()
                .insert("x5t", x5t.parse().expect("header"));
            Ok::<_, std::convert::Infallible>(res)
        });
    let call = |peer: Option<&[u8]>| {
        let mut req = Request::post("/world_mappers.v1.WorldMappers/Geocode")
            .header("content-type", "application/grpc")
            .header("authorization", format!("Bearer {}", bound_token(&der)))
            .body(tonic::body::Body::empty())
            .expect("request");
        if let Some(der) = peer {
            req.extensions_mut()
                .insert(PeerCertificate::from_der(der.to_vec()));
        }
        req
    };
    let res = svc.clone().oneshot(call(None)).await.expect("infallible");
    assert_eq!(
        res.headers().get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"16"[..])
    );
    let res = svc
        .clone()
        .oneshot(call(Some(&der)))
        .await
        .expect("infallible");
    assert!(res.headers().get("grpc-status").is_none());
    assert_eq!(
        res.headers()
            .get("x5t")
            .map(|v| v.to_str().expect("ascii").to_owned()),
        Some(thumbprint(&der))
    );
}

/// Over real mutual TLS: `mtls::serve` with client certificates required and verified
/// against a client CA, and reqwest clients with and without identities.
#[cfg(all(feature = "mtls", feature = "tls"))]
mod over_tls {
    use super::*;
    use bearer_guard::mtls::{serve, server_config};

    struct Server {
        url: String,
        server_ca: String,
        task: tokio::task::JoinHandle<()>,
    }

    impl Server {
        async fn start(client_ca: &CertifiedIssuer<'static, KeyPair>) -> Self {
            let server_ca = ca("server CA");
            let (cert, key) = leaf(&server_ca, "localhost", true);
            let tls = server_config(
                cert.pem().as_bytes(),
                key.serialize_pem().as_bytes(),
                Some(client_ca.pem().as_bytes()),
            )
            .expect("server config");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let port = listener.local_addr().expect("addr").port();
            let task = tokio::spawn(serve(listener, tls, app(Mtls::peer_certificate())));
            Self {
                url: format!("https://localhost:{port}/maps"),
                server_ca: server_ca.pem(),
                task,
            }
        }

        fn client(&self, identity: Option<(&rcgen::Certificate, &KeyPair)>) -> reqwest::Client {
            let mut b = reqwest::Client::builder()
                .tls_certs_only([
                    reqwest::Certificate::from_pem(self.server_ca.as_bytes()).expect("CA")
                ])
                .resolve("localhost", ([127, 0, 0, 1], 0).into())
                .no_proxy();
            if let Some((cert, key)) = identity {
                let pem = format!("{}{}", cert.pem(), key.serialize_pem());
                b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"));
            }
            b.build().expect("client")
        }

        fn stop(self) {
            self.task.abort();
        }
    }

    async fn get(
        client: &reqwest::Client,
        url: &str,
        token: &str,
    ) -> reqwest::Result<reqwest::Response> {
        client.get(url).bearer_auth(token).send().await
    }

    #[tokio::test]
    async fn a_bound_token_is_accepted_over_mutual_tls_with_its_certificate() {
        let client_ca = ca("client CA");
        let server = Server::start(&client_ca).await;
        let (cert, key) = leaf(&client_ca, "gift-deliveries", false);
        let client = server.client(Some((&cert, &key)));
        let res = get(&client, &server.url, &bound_token(cert.der()))
            .await
            .expect("sent");
        assert_eq!(res.status(), StatusCode::OK);
        assert!(
            res.text()
                .await
                .expect("body")
                .ends_with(&thumbprint(cert.der()))
        );
        server.stop();
    }

    #[tokio::test]
    async fn a_bound_token_is_refused_over_mutual_tls_with_another_valid_certificate() {
        let client_ca = ca("client CA");
        let server = Server::start(&client_ca).await;
        let (cert, _) = leaf(&client_ca, "gift-deliveries", false);
        let (thief, thief_key) = leaf(&client_ca, "thief", false);
        let client = server.client(Some((&thief, &thief_key)));
        let res = get(&client, &server.url, &bound_token(cert.der()))
            .await
            .expect("sent");
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let h = res.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(h.contains("bound to a client certificate"), "{h}");
        server.stop();
    }

    #[tokio::test]
    async fn a_certificate_that_does_not_chain_to_the_client_ca_fails_the_handshake() {
        let client_ca = ca("client CA");
        let server = Server::start(&client_ca).await;
        let rogue_ca = ca("client CA");
        let (cert, key) = leaf(&rogue_ca, "gift-deliveries", false);
        let client = server.client(Some((&cert, &key)));
        let sent = get(&client, &server.url, &bound_token(cert.der())).await;
        assert!(sent.is_err(), "{sent:?}");
        server.stop();
    }

    #[tokio::test]
    async fn a_client_without_a_certificate_fails_the_handshake() {
        let client_ca = ca("client CA");
        let server = Server::start(&client_ca).await;
        let (cert, _) = leaf(&client_ca, "gift-deliveries", false);
        let sent = get(&server.client(None), &server.url, &bound_token(cert.der())).await;
        assert!(sent.is_err(), "{sent:?}");
        server.stop();
    }
}

/// The client side (RFC 8705 §2): `tls_client_auth` at a token endpoint that requires a
/// client certificate, found through `mtls_endpoint_aliases`, and the same identity on the
/// API call.
#[cfg(all(feature = "mtls", feature = "tls", feature = "client"))]
mod client_side {
    use super::*;
    use axum::Extension;
    use axum::routing::post;
    use bearer_guard::client::{ClientAuthMethod, ClientCredentials};
    use bearer_guard::mtls::{serve, server_config};

    /// A token endpoint (mutual TLS) that binds its tokens to the client's certificate, its
    /// metadata, and the API, all on one TLS server requiring client certificates.
    async fn issuer_and_api(
        client_ca: &CertifiedIssuer<'static, KeyPair>,
    ) -> (String, String, tokio::task::JoinHandle<()>) {
        let server_ca = ca("server CA");
        let (cert, key) = leaf(&server_ca, "localhost", true);
        let tls = server_config(
            cert.pem().as_bytes(),
            key.serialize_pem().as_bytes(),
            Some(client_ca.pem().as_bytes()),
        )
        .expect("server config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!(
            "https://localhost:{}",
            listener.local_addr().expect("addr").port()
        );
        let meta_base = base.clone();
        let router = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || async move {
                    axum::Json(json!({
                        "issuer": meta_base,
                        "token_endpoint": format!("{meta_base}/plain-token"),
                        "mtls_endpoint_aliases": {"token_endpoint": format!("{meta_base}/token")},
                    }))
                }),
            )
            .route(
                "/plain-token",
                post(|| async {
                    (
                        StatusCode::BAD_REQUEST,
                        axum::Json(json!({"error": "invalid_client"})),
                    )
                }),
            )
            .route(
                "/token",
                post(
                    |peer: Option<Extension<PeerCertificate>>, form: String| async move {
                        let ok = form.contains("client_id=gift-deliveries")
                            && form.contains("grant_type=client_credentials")
                            && !form.contains("client_secret");
                        match peer {
                            Some(Extension(peer)) if ok => (
                                StatusCode::OK,
                                axum::Json(json!({
                                    "access_token": bound_token(peer.der()),
                                    "token_type": "Bearer",
                                    "expires_in": 300,
                                })),
                            ),
                            _ => (
                                StatusCode::UNAUTHORIZED,
                                axum::Json(json!({"error": "invalid_client"})),
                            ),
                        }
                    },
                ),
            )
            .merge(app(Mtls::peer_certificate()));
        let task = tokio::spawn(serve(listener, tls, router));
        (base, server_ca.pem(), task)
    }

    fn http(server_ca: &str, cert: &rcgen::Certificate, key: &KeyPair) -> reqwest::Client {
        let pem = format!("{}{}", cert.pem(), key.serialize_pem());
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(server_ca.as_bytes()).expect("CA")])
            .resolve("localhost", ([127, 0, 0, 1], 0).into())
            .no_proxy()
            .identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"))
            .build()
            .expect("client")
    }

    #[tokio::test]
    async fn tls_client_auth_gets_a_bound_token_from_the_mtls_alias_and_uses_it_with_its_certificate()
     {
        let client_ca = ca("client CA");
        let (base, server_ca, task) = issuer_and_api(&client_ca).await;
        let (cert, key) = leaf(&client_ca, "gift-deliveries", false);
        let creds = ClientCredentials::builder()
            .issuer(&base)
            .client_id("gift-deliveries")
            .auth_method(ClientAuthMethod::TlsClientAuth)
            .http_client(http(&server_ca, &cert, &key))
            .build()
            .expect("client credentials");
        let token = creds.token().await.expect("a token");
        let res = creds
            .http_client()
            .get(format!("{base}/maps"))
            .bearer_auth(token.secret())
            .send()
            .await
            .expect("sent");
        assert_eq!(res.status(), StatusCode::OK);
        assert!(
            res.text()
                .await
                .expect("body")
                .ends_with(&thumbprint(cert.der()))
        );
        // Another workload's certificate (same CA) cannot use that token.
        let (thief, thief_key) = leaf(&client_ca, "thief", false);
        let res = http(&server_ca, &thief, &thief_key)
            .get(format!("{base}/maps"))
            .bearer_auth(token.secret())
            .send()
            .await
            .expect("sent");
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        task.abort();
    }

    #[tokio::test]
    async fn client_certificate_with_root_certificates_reaches_a_private_ca_issuer_and_api() {
        let client_ca = ca("client CA");
        let (base, server_ca, task) = issuer_and_api(&client_ca).await;
        let (cert, key) = leaf(&client_ca, "gift-deliveries", false);
        let pem = format!("{}{}", cert.pem(), key.serialize_pem());
        let builder = || {
            ClientCredentials::builder()
                .issuer(&base)
                .client_id("gift-deliveries")
                .client_certificate(pem.clone())
        };
        // The platform's roots alone do not know the private CA.
        let alone = builder().build().expect("client credentials");
        assert!(alone.token().await.is_err(), "an unknown CA was trusted");
        let creds = builder()
            .root_certificates(server_ca)
            .build()
            .expect("client credentials");
        let token = creds.token().await.expect("a token");
        // The same client (certificate and CA) reaches the API.
        let res = creds
            .http_client()
            .get(format!("{base}/maps"))
            .bearer_auth(token.secret())
            .send()
            .await
            .expect("sent");
        assert_eq!(res.status(), StatusCode::OK);
        task.abort();
    }

    #[test]
    fn a_mutual_tls_method_needs_a_certificate_and_a_certificate_needs_such_a_method() {
        let base = || {
            ClientCredentials::builder()
                .token_endpoint("https://idp.example/token")
                .client_id("gift-deliveries")
        };
        assert!(
            base()
                .auth_method(ClientAuthMethod::TlsClientAuth)
                .build()
                .is_err()
        );
        let err = base()
            .client_certificate("not PEM")
            .build()
            .expect_err("bad PEM");
        assert!(err.to_string().contains("client_certificate"), "{err}");
        let ca = ca("client CA");
        let (cert, key) = leaf(&ca, "gift-deliveries", false);
        let pem = format!("{}{}", cert.pem(), key.serialize_pem());
        assert!(base().client_certificate(pem.clone()).build().is_ok());
        assert!(
            base()
                .client_certificate(pem.clone())
                .auth_method(ClientAuthMethod::SelfSignedTlsClientAuth)
                .build()
                .is_ok()
        );
        assert!(
            base()
                .client_certificate(pem)
                .auth_method(ClientAuthMethod::ClientSecretPost)
                .client_secret("s")
                .build()
                .is_err()
        );
    }
}

#[cfg(all(feature = "mtls", feature = "tls", feature = "client"))]
#[path = "../examples/gift_deliveries/app.rs"]
#[allow(dead_code)]
mod gift;
#[cfg(all(feature = "mtls", feature = "tls", feature = "client"))]
#[path = "../examples/world_mappers/app.rs"]
#[allow(dead_code)]
mod world;

/// The examples' contract: World Mappers (its router, with a certificate source) served over
/// mutual TLS, and Gift Deliveries with `CLIENT_CERT`, `CLIENT_KEY` and `CA_CERT` getting a
/// certificate-bound token and its directions.
#[cfg(all(feature = "mtls", feature = "tls", feature = "client"))]
mod examples {
    use super::*;
    use axum::Extension;
    use axum::routing::post;
    use bearer_guard::mtls::{serve, server_config};

    use super::{gift, world};

    /// A file in a fresh temporary directory (removed by the caller).
    fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path.to_str().expect("utf-8 path").to_owned()
    }

    #[tokio::test]
    async fn gift_deliveries_with_a_client_certificate_gets_directions_from_world_mappers_over_mutual_tls()
     {
        let client_ca = ca("client CA");
        let server_ca = ca("server CA");
        let (server_cert, server_key) = leaf(&server_ca, "localhost", true);
        let tls = server_config(
            server_cert.pem().as_bytes(),
            server_key.serialize_pem().as_bytes(),
            Some(client_ca.pem().as_bytes()),
        )
        .expect("server config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!(
            "https://localhost:{}",
            listener.local_addr().expect("addr").port()
        );
        // A token endpoint binding its tokens to the client certificate, beside the API.
        let token_endpoint = Router::new().route(
            "/oauth/token",
            post(|peer: Option<Extension<PeerCertificate>>| async move {
                match peer {
                    Some(Extension(peer)) => (
                        StatusCode::OK,
                        axum::Json(json!({
                            "access_token": token(json!({"scope": "directions",
                                "cnf": {"x5t#S256": peer.thumbprint().as_str()}})),
                            "token_type": "Bearer",
                            "expires_in": 300,
                        })),
                    ),
                    None => (
                        StatusCode::UNAUTHORIZED,
                        axum::Json(json!({"error": "invalid_client"})),
                    ),
                }
            }),
        );
        let router = world::app_with(verifier(), &base, None, Some(Mtls::peer_certificate()))
            .merge(token_endpoint);
        let task = tokio::spawn(serve(listener, tls, router));

        let dir = std::env::temp_dir().join(format!("bearer-guard-mtls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (cert, key) = leaf(&client_ca, "gift-deliveries", false);
        let vars: std::collections::HashMap<&str, String> = [
            ("TOKEN_URL", format!("{base}/oauth/token")),
            ("CLIENT_ID", "gift-deliveries".to_owned()),
            ("API_URL", base.clone()),
            ("CLIENT_CERT", write(&dir, "client.pem", &cert.pem())),
            (
                "CLIENT_KEY",
                write(&dir, "client.key", &key.serialize_pem()),
            ),
            ("CA_CERT", write(&dir, "server-ca.pem", &server_ca.pem())),
        ]
        .into_iter()
        .collect();
        let settings = gift::Settings::from_vars(|name| vars.get(name).cloned()).expect("settings");
        let body = gift::directions(&settings, "Seattle").await;
        // Without the certificate, the same kind of call is refused at the handshake.
        let mut no_cert = settings.clone();
        no_cert.client_cert = None;
        no_cert.client_secret = "unused".to_owned();
        let refused = gift::directions(&no_cert, "Seattle").await;
        std::fs::remove_dir_all(&dir).expect("clean up");
        task.abort();
        let body = body.expect("directions");
        assert!(
            String::from_utf8_lossy(&body).contains("Seattle"),
            "{body:?}"
        );
        assert!(refused.is_err(), "{refused:?}");
    }
}

/// The development issuer served over mutual TLS binds its tokens to the client's
/// certificate.
#[cfg(all(feature = "mtls", feature = "tls", feature = "client"))]
mod dev_issuer_side {
    use super::*;
    use bearer_guard::client::ClientCredentials;
    use bearer_guard::dev_issuer::DevIssuerBuilder;
    use bearer_guard::mtls::server_config;

    #[tokio::test]
    async fn the_dev_issuer_binds_tokens_to_the_certificate_a_client_presents() {
        let client_ca = ca("client CA");
        let server_ca = ca("server CA");
        let (server_cert, server_key) = leaf(&server_ca, "localhost", true);
        let tls = server_config(
            server_cert.pem().as_bytes(),
            server_key.serialize_pem().as_bytes(),
            Some(client_ca.pem().as_bytes()),
        )
        .expect("server config");
        let dev = DevIssuerBuilder::default()
            .audience(AUD)
            .client("gift-deliveries", "gd-secret", ["directions"])
            .tls(tls)
            .start()
            .await
            .expect("dev issuer");
        assert!(
            dev.issuer().starts_with("https://127.0.0.1:"),
            "{}",
            dev.issuer()
        );
        let (cert, key) = leaf(&client_ca, "gift-deliveries", false);
        let pem = format!("{}{}", cert.pem(), key.serialize_pem());
        let http = reqwest::Client::builder()
            .tls_certs_only([
                reqwest::Certificate::from_pem(server_ca.pem().as_bytes()).expect("CA")
            ])
            .identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"))
            .no_proxy()
            .build()
            .expect("client");
        let creds = ClientCredentials::builder()
            .issuer(dev.issuer())
            .client_id("gift-deliveries")
            .client_secret("gd-secret")
            .audience(AUD)
            .http_client(http)
            .build()
            .expect("client credentials");
        let token = creds.token().await.expect("a token");
        let payload = token.secret().split('.').nth(1).expect("payload");
        let claims: Value =
            serde_json::from_slice(&B64.decode(payload).expect("b64")).expect("json");
        assert_eq!(claims["cnf"]["x5t#S256"], json!(thumbprint(cert.der())));
        dev.shutdown().await;
    }
}
