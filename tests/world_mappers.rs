//! The World Mappers example's routes, called over real sockets with tokens from the
//! development issuer's token endpoint.
#![cfg(all(
    feature = "axum",
    feature = "dev-issuer",
    any(feature = "aws-lc-rs", feature = "rust-crypto")
))]

#[path = "../examples/world_mappers/app.rs"]
mod app;

use bearer_guard::Verifier;
use bearer_guard::dev_issuer::DevIssuer;
use serde_json::{Value, json};

const AUD: &str = "urn:worldmappers";

struct World {
    dev: DevIssuer,
    base: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for World {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn world() -> World {
    let dev = DevIssuer::builder()
        .audience(AUD)
        .client(
            "gift-deliveries",
            "gd-secret",
            ["geocode:location", "reverse-geocode:location", "directions"],
        )
        .client("mapper", "m-secret", ["geocode:location"])
        .start()
        .await
        .expect("dev issuer");
    let verifier = Verifier::builder()
        .issuer(dev.issuer())
        .audience(AUD)
        .build()
        .expect("verifier");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = app::app(verifier, &base);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    World { dev, base, task }
}

async fn token(w: &World, client: &str, secret: &str) -> String {
    let res: Value = reqwest::Client::new()
        .post(w.dev.token_endpoint())
        .json(&json!({"grant_type": "client_credentials", "client_id": client, "client_secret": secret, "audience": AUD}))
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("token json");
    res["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

async fn call(w: &World, path: &str, token: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().get(format!("{}{path}", w.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("request");
    (res.status().as_u16(), res.text().await.expect("body"))
}

#[tokio::test]
async fn geocode_answers_the_coordinates_with_its_scope() {
    let w = world().await;
    let t = token(&w, "gift-deliveries", "gd-secret").await;
    let (status, body) = call(&w, "/api/location/geocode", Some(&t)).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json"),
        json!({"lat": 47.6178819, "lng": -122.194041})
    );
}

#[tokio::test]
async fn reverse_geocode_answers_an_address() {
    let w = world().await;
    let t = token(&w, "gift-deliveries", "gd-secret").await;
    let (status, body) = call(&w, "/api/location/reverse-geocode", Some(&t)).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert!(v["street"].is_string() && v["city"].is_string() && v["state"].is_string());
}

#[tokio::test]
async fn directions_lists_steps_to_the_destination() {
    let w = world().await;
    let t = token(&w, "gift-deliveries", "gd-secret").await;
    let (status, body) = call(&w, "/api/directions?destination=Seattle", Some(&t)).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["destination"], "Seattle");
    assert!(v["steps"].as_array().is_some_and(|s| !s.is_empty()));
}

#[tokio::test]
async fn a_client_without_the_scope_gets_403() {
    let w = world().await;
    let t = token(&w, "mapper", "m-secret").await;
    assert_eq!(call(&w, "/api/location/geocode", Some(&t)).await.0, 200);
    assert_eq!(call(&w, "/api/directions", Some(&t)).await.0, 403);
    assert_eq!(
        call(&w, "/api/location/reverse-geocode", Some(&t)).await.0,
        403
    );
}

#[tokio::test]
async fn the_api_refuses_requests_without_a_token() {
    let w = world().await;
    for path in [
        "/api/location/geocode",
        "/api/location/reverse-geocode",
        "/api/directions",
        "/api/ping",
    ] {
        assert_eq!(call(&w, path, None).await.0, 401, "{path}");
    }
}

#[tokio::test]
async fn ping_answers_any_valid_token_whatever_its_scopes() {
    let w = world().await;
    let t = token(&w, "mapper", "m-secret").await;
    assert_eq!(call(&w, "/api/directions", Some(&t)).await.0, 403);
    assert_eq!(
        call(&w, "/api/ping", Some(&t)).await,
        (200, "ok".to_owned())
    );
    assert_eq!(call(&w, "/api/ping", Some("not-a-token")).await.0, 401);
}

#[tokio::test]
async fn health_and_readiness_are_public() {
    let w = world().await;
    assert_eq!(call(&w, "/healthz", None).await, (200, "ok".to_owned()));
    // Before any key set was fetched the API is not ready.
    assert_eq!(call(&w, "/readyz", None).await.0, 503);
    let t = token(&w, "gift-deliveries", "gd-secret").await;
    assert_eq!(call(&w, "/api/directions", Some(&t)).await.0, 200);
    assert_eq!(call(&w, "/readyz", None).await.0, 200);
}

#[tokio::test]
async fn the_protected_resource_metadata_names_the_audience_and_the_issuer() {
    let w = world().await;
    let res = reqwest::get(format!("{}/.well-known/oauth-protected-resource", w.base))
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let doc: Value = res.json().await.expect("json");
    assert_eq!(
        doc,
        json!({
            "resource": AUD,
            "authorization_servers": [w.dev.issuer()],
            "scopes_supported": ["geocode:location", "reverse-geocode:location", "directions"],
            "bearer_methods_supported": ["header"],
            "resource_name": "World Mappers API",
        })
    );
}

#[tokio::test]
async fn a_refused_request_is_pointed_at_the_metadata() {
    let w = world().await;
    let metadata_url = format!("{}/.well-known/oauth-protected-resource", w.base);
    let res = reqwest::get(format!("{}/api/directions", w.base))
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 401);
    let challenge = res.headers()["www-authenticate"].to_str().expect("ascii");
    assert_eq!(
        challenge,
        format!(r#"Bearer realm="api", resource_metadata="{metadata_url}""#)
    );
    // A client follows it to the issuer, gets a token there, and is let in.
    let doc: Value = reqwest::get(&metadata_url)
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(doc["authorization_servers"][0], w.dev.issuer());
    let t = token(&w, "gift-deliveries", "gd-secret").await;
    assert_eq!(call(&w, "/api/directions", Some(&t)).await.0, 200);
    // A 403 (valid token, scope missing) does not name it.
    let t = token(&w, "mapper", "m-secret").await;
    let res = reqwest::Client::new()
        .get(format!("{}/api/directions", w.base))
        .bearer_auth(&t)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 403);
    let challenge = res.headers()["www-authenticate"].to_str().expect("ascii");
    assert!(!challenge.contains("resource_metadata"), "{challenge}");
}

#[tokio::test]
async fn readiness_follows_the_key_store() {
    let w = world().await;
    let (status, body) = call(&w, "/readyz", None).await;
    assert_eq!(status, 503);
    assert_eq!(
        body,
        "not ready: the issuer's signing keys are unavailable: no key set was fetched yet"
    );
    // A malformed token is refused before any key lookup: still no keys.
    assert_eq!(call(&w, "/api/directions", Some("a.b.c")).await.0, 401);
    assert_eq!(call(&w, "/readyz", None).await.0, 503);
    let t = token(&w, "mapper", "m-secret").await;
    assert_eq!(call(&w, "/api/location/geocode", Some(&t)).await.0, 200);
    assert_eq!(call(&w, "/readyz", None).await, (200, "ready".to_owned()));
    // Public routes need no token even though the API does.
    assert_eq!(call(&w, "/healthz", None).await.0, 200);
}

/// The example's environment, as `main` reads it, for [`app::tls_settings`] and
/// [`app::issuer_http_client`].
fn env_of<'a>(pairs: &'a [(&str, &str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

#[test]
fn without_tls_variables_the_example_serves_plain_http_with_no_certificate_source() {
    let (tls, mtls) = app::tls_settings(env_of(&[])).expect("settings");
    assert!(tls.is_none() && mtls.is_none());
    assert!(
        app::issuer_http_client(env_of(&[]))
            .expect("no ISSUER_CA")
            .is_none()
    );
}

#[test]
fn tls_cert_without_tls_key_is_refused() {
    let e = app::tls_settings(env_of(&[("TLS_CERT", "cert.pem")])).expect_err("refused");
    assert!(e.contains("TLS_CERT and TLS_KEY"), "{e}");
}

#[test]
fn a_trusted_header_is_a_certificate_source_even_without_tls() {
    let (tls, mtls) =
        app::tls_settings(env_of(&[("CLIENT_CERT_HEADER", "client-cert")])).expect("settings");
    assert!(tls.is_none());
    assert_eq!(
        mtls.expect("a source").source(),
        &bearer_guard::mtls::CertificateSource::TrustedHeader(bearer_guard::mtls::CLIENT_CERT)
    );
}

#[cfg(feature = "tls")]
#[test]
fn an_issuer_ca_that_cannot_be_read_or_holds_no_certificate_is_refused_by_name() {
    let e = app::issuer_http_client(env_of(&[("ISSUER_CA", "/nonexistent/ca.pem")]))
        .expect_err("refused");
    assert!(e.contains("ISSUER_CA"), "{e}");
    let not_pem = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let e = app::issuer_http_client(env_of(&[("ISSUER_CA", not_pem)])).expect_err("refused");
    assert!(
        e.contains("ISSUER_CA") && e.contains("no certificate"),
        "{e}"
    );
}

#[cfg(feature = "introspection")]
#[test]
fn introspection_settings_without_their_client_or_with_half_of_it_are_refused_by_name() {
    let verifier = Verifier::builder()
        .issuer("https://issuer.example/")
        .audience(AUD)
        .build()
        .expect("verifier");
    let settings = |pairs: &[(&str, &str)]| {
        app::introspection_settings(
            env_of(pairs),
            "https://issuer.example/",
            AUD,
            &verifier,
            None,
        )
        .map(|s| s.map(|(_, signed)| signed))
    };
    assert_eq!(settings(&[]), Ok(None));
    let e = settings(&[("INTROSPECTION_CLIENT_ID", "wm")]).expect_err("refused");
    assert!(e.contains("INTROSPECTION_CLIENT_SECRET"), "{e}");
    let e = settings(&[("INTROSPECTION_CLIENT_SECRET", "s")]).expect_err("refused");
    assert!(e.contains("INTROSPECTION_CLIENT_ID"), "{e}");
    for name in [
        "INTROSPECTION_URL",
        "INTROSPECTION_CACHE_SECS",
        "INTROSPECTION_JWT",
    ] {
        let e = settings(&[(name, "1")]).expect_err("refused");
        assert!(
            e.starts_with(name) && e.contains("introspection is off"),
            "{e}"
        );
    }
    let both = [
        ("INTROSPECTION_CLIENT_ID", "wm"),
        ("INTROSPECTION_CLIENT_SECRET", "s"),
    ];
    assert_eq!(settings(&both), Ok(Some(false)));
    let e = settings(&[both[0], both[1], ("INTROSPECTION_JWT", "yes")]).expect_err("refused");
    assert!(e.contains("INTROSPECTION_JWT"), "{e}");
}

/// `ISSUER_CA` reaches the introspector too: an issuer served with a private CA's
/// certificate is asked about opaque tokens over that TLS.
#[cfg(all(feature = "introspection", feature = "mtls", feature = "tls"))]
#[tokio::test]
async fn with_issuer_ca_opaque_tokens_are_introspected_at_an_issuer_with_a_private_ca() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "private CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("server certificate");
    let tls = bearer_guard::mtls::server_config(
        cert.pem().as_bytes(),
        key.serialize_pem().as_bytes(),
        None,
    )
    .expect("server config");
    let dev = DevIssuer::builder()
        .audience(AUD)
        .client("gift-deliveries", "gd-secret", ["directions"])
        .client("world-mappers", "wm-secret", Vec::<String>::new())
        .opaque_tokens()
        .tls(tls)
        .start()
        .await
        .expect("dev issuer");
    let dir = std::env::temp_dir().join(format!("bg-issuer-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("CA file");
    let ca_path = ca_file.to_string_lossy().into_owned();
    let env = [
        ("ISSUER_CA", ca_path.as_str()),
        ("INTROSPECTION_CLIENT_ID", "world-mappers"),
        ("INTROSPECTION_CLIENT_SECRET", "wm-secret"),
    ];
    let http = app::issuer_http_client(env_of(&env))
        .expect("ISSUER_CA")
        .expect("a client");
    let res: Value = http
        .post(dev.token_endpoint())
        .json(
            &json!({"grant_type": "client_credentials", "client_id": "gift-deliveries",
            "client_secret": "gd-secret", "audience": AUD}),
        )
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("token json");
    let token = res["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    assert_eq!(token.split('.').count(), 1, "an opaque token");

    // The API as main builds it: with ISSUER_CA's client (served), and without (503: the
    // issuer's certificate is not trusted).
    let mut statuses = Vec::new();
    for http in [Some(http.clone()), None] {
        let mut builder = Verifier::builder().issuer(dev.issuer()).audience(AUD);
        if let Some(http) = &http {
            builder = builder.http_client(http.clone());
        }
        let verifier = builder.build().expect("verifier");
        let (introspector, _) =
            app::introspection_settings(env_of(&env), dev.issuer(), AUD, &verifier, http)
                .expect("settings")
                .expect("introspection on");
        let introspector = introspector.build().expect("introspector");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let router = app::app_with_layer(verifier, &base, None, |layer| {
            layer.introspection(
                introspector,
                bearer_guard::introspection::TokenRouting::ByShape,
            )
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let status = reqwest::Client::new()
            .get(format!("{base}/api/directions"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("call")
            .status()
            .as_u16();
        task.abort();
        statuses.push(status);
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(statuses, [200, 503]);
}
