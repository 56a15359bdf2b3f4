//! Nothing leaked: all `tracing` output (TRACE and up) of an attack run, of a hostile
//! issuer's failures and of client-credentials exchanges holds no token, no signature and no
//! secret; and `Debug` of every public type holding a token or a secret hides it.
#![cfg(all(
    feature = "dev-issuer",
    feature = "axum",
    any(feature = "aws-lc-rs", feature = "rust-crypto")
))]

mod support_hostile;

use std::time::Duration;

use base64::Engine as _;
use bearer_guard::dev_issuer::{DevClient, DevIssuer, SigningKey, jwk_set};
use bearer_guard::{Algorithm, JwtAuthLayer, Verifier};
use serde_json::json;
use support_hostile::cases::{attack_cases, run_case};
use support_hostile::{
    AUD, ISS, Issuer, Keys, LogCapture, Mode, b64, call, claims, client, serve_app, sign,
};

const HMAC_SECRET: &str = "hmac-secret-that-must-never-be-logged!!";
const CLIENT_SECRET: &str = "client-secret-that-must-never-be-logged";
const WRONG_SECRET: &str = "wrong-secret-that-must-never-be-logged";

/// The strings that must not appear for a token: the token and each of its segments (long
/// enough not to occur by chance).
fn token_parts(token: &str) -> Vec<String> {
    let mut out = Vec::new();
    if token.len() >= 16 {
        out.push(token.to_owned());
    }
    out.extend(
        token
            .split('.')
            .filter(|s| s.len() >= 16)
            .map(str::to_owned),
    );
    out
}

/// The forms a secret could take in output: itself, base64, its `Debug` byte list.
fn secret_forms(secret: &str) -> Vec<String> {
    vec![
        secret.to_owned(),
        b64(secret),
        base64::engine::general_purpose::STANDARD.encode(secret),
        format!("{:?}", secret.as_bytes()),
        secret.bytes().map(|b| format!("{b:02x}")).collect(),
    ]
}

fn assert_absent(haystack: &str, needles: &[String], what: &str) {
    for n in needles {
        assert!(
            !haystack.contains(n.as_str()),
            "{what} contains {:?}",
            support_hostile::truncate(n, 60)
        );
    }
}

#[tokio::test]
async fn the_logs_of_an_attack_run_hold_no_token_signature_or_secret() {
    let log = LogCapture::start();
    let mut forbidden: Vec<String> = Vec::new();

    // 1. The whole attack table against a JWKS-backed API.
    let keys = Keys::new();
    let issuer = Issuer::start(Mode::Jwks(keys.published())).await;
    let attacker = Issuer::start(Mode::Jwks(jwk_set([&keys.attacker]))).await;
    let verifier = Verifier::builder()
        .issuer(ISS)
        .audience(AUD)
        .jwks_uri(issuer.url())
        .fetch_timeout(Duration::from_secs(2))
        .fetch_backoff(Duration::from_millis(50), Duration::from_millis(100))
        .build()
        .expect("verifier");
    let app = serve_app(verifier.clone()).await;
    let http = client();
    let cases = attack_cases(&keys, &attacker.url(), &issuer.base_url());
    for case in &cases {
        run_case(&http, &app, case)
            .await
            .expect("documented answer");
        for a in &case.auth {
            let value = String::from_utf8_lossy(a);
            let token = value.split(' ').next_back().unwrap_or_default();
            forbidden.extend(token_parts(token));
        }
    }

    // 2. The issuer fails: WARN lines, with URLs and reasons, but no key material matters
    // here; a token sent meanwhile must not show up either.
    issuer.set(Mode::Status(500));
    assert!(verifier.refresh_keys().await.is_err());
    let during = sign(&keys.rs, &claims(&json!({"jti": "during-outage"})));
    let a = call(&http, &app.base, "/me", &[&format!("Bearer {during}")]).await;
    assert_eq!(a.status, 200);
    forbidden.extend(token_parts(&during));

    // 3. An HMAC verifier, with good and forged tokens.
    let hmac = Verifier::builder()
        .issuer(ISS)
        .audience(AUD)
        .hmac_secret(HMAC_SECRET)
        .build()
        .expect("hmac verifier");
    let hk = SigningKey::hmac(Algorithm::HS256, HMAC_SECRET.as_bytes(), "h").expect("key");
    let good = sign(&hk, &claims(&json!({})));
    hmac.verify(&good).await.expect("valid");
    let forged = format!("{}x", &good[..good.len() - 1]);
    assert!(hmac.verify(&forged).await.is_err());
    forbidden.extend(token_parts(&good));
    forbidden.extend(token_parts(&forged));
    forbidden.extend(secret_forms(HMAC_SECRET));

    // 4. The development issuer's token endpoint, with the right and a wrong secret, and its
    // token through an API that finds the keys by discovery.
    let dev = DevIssuer::builder()
        .audience(AUD)
        .client("leak-test", CLIENT_SECRET, ["directions"])
        .start()
        .await
        .expect("dev issuer");
    let ask = |secret: &'static str| {
        http.post(dev.token_endpoint()).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "leak-test"),
            ("client_secret", secret),
            ("audience", AUD),
        ])
    };
    let answer: serde_json::Value = ask(CLIENT_SECRET)
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("json");
    let access = answer["access_token"].as_str().expect("token").to_owned();
    assert_eq!(
        ask(WRONG_SECRET).send().await.expect("request").status(),
        401
    );
    let basic = http
        .post(dev.token_endpoint())
        .basic_auth("leak-test", Some(WRONG_SECRET))
        .form(&[("grant_type", "client_credentials"), ("audience", AUD)])
        .send()
        .await
        .expect("request");
    assert_eq!(basic.status(), 401);
    let dev_verifier = Verifier::builder()
        .issuer(dev.issuer())
        .audience(AUD)
        .build()
        .expect("verifier");
    let dev_app = serve_app(dev_verifier).await;
    let a = call(&http, &dev_app.base, "/me", &[&format!("Bearer {access}")]).await;
    assert_eq!(a.status, 200, "{a:?}");
    // One signature character in the middle changed.
    let i = access.len() - 20;
    let c = if &access[i..=i] == "A" { "B" } else { "A" };
    let tampered = format!("{}{c}{}", &access[..i], &access[i + 1..]);
    let a = call(
        &http,
        &dev_app.base,
        "/me",
        &[&format!("Bearer {tampered}")],
    )
    .await;
    assert_eq!(a.status, 401, "{a:?}");
    forbidden.extend(token_parts(&access));
    forbidden.extend(token_parts(&tampered));
    forbidden.extend(secret_forms(CLIENT_SECRET));
    forbidden.extend(secret_forms(WRONG_SECRET));

    // 5. The client side (feature `client`): a token source with the right and a wrong secret.
    #[cfg(feature = "client")]
    {
        use bearer_guard::client::ClientCredentials;
        let source = ClientCredentials::builder()
            .token_endpoint(dev.token_endpoint())
            .client_id("leak-test")
            .client_secret(CLIENT_SECRET)
            .audience(AUD)
            .dangerous_allow_insecure_http()
            .build()
            .expect("source");
        let token = source.token().await.expect("token");
        forbidden.extend(token_parts(token.secret()));
        let wrong = ClientCredentials::builder()
            .token_endpoint(dev.token_endpoint())
            .client_id("leak-test")
            .client_secret(WRONG_SECRET)
            .audience(AUD)
            .dangerous_allow_insecure_http()
            .build()
            .expect("source");
        assert!(wrong.token().await.is_err());
    }
    dev.shutdown().await;

    let text = log.text();
    assert!(
        text.contains("bearer-guard rejected a request") && text.contains(" WARN "),
        "the capture saw the run's events: {}",
        support_hostile::truncate(&text, 2000)
    );
    assert!(
        text.lines().count() > cases.len() / 2,
        "{} lines",
        text.lines().count()
    );
    forbidden.sort_unstable();
    forbidden.dedup();
    assert_absent(&text, &forbidden, "the log");
    // Nor any private key of the pool.
    assert!(!text.contains("PRIVATE KEY"));
}

#[test]
fn debug_of_signing_keys_hides_the_private_key_and_the_secret() {
    for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
        let k = SigningKey::from_pool(alg, 0, "kid-1").expect("pool key");
        let d = format!("{k:?} {k:#?}");
        assert!(!d.contains("PRIVATE") && !d.contains("MII"), "{d}");
        assert!(d.contains("kid-1"), "{d}");
    }
    let k = SigningKey::hmac(Algorithm::HS256, HMAC_SECRET.as_bytes(), "h").expect("key");
    assert_absent(
        &format!("{k:?} {k:#?}"),
        &secret_forms(HMAC_SECRET),
        "SigningKey",
    );
}

#[test]
fn debug_of_a_verifier_and_its_builder_hides_the_hmac_secret() {
    let builder = Verifier::builder()
        .issuer(ISS)
        .audience(AUD)
        .hmac_secret(HMAC_SECRET);
    assert_absent(
        &format!("{builder:?} {builder:#?}"),
        &secret_forms(HMAC_SECRET),
        "VerifierBuilder",
    );
    let verifier = builder.build().expect("verifier");
    assert_absent(
        &format!("{verifier:?} {verifier:#?}"),
        &secret_forms(HMAC_SECRET),
        "Verifier",
    );
    let layer = JwtAuthLayer::new(verifier);
    assert_absent(
        &format!("{layer:?} {layer:#?}"),
        &secret_forms(HMAC_SECRET),
        "JwtAuthLayer",
    );
}

#[tokio::test]
async fn errors_and_claims_never_carry_the_token() {
    let keys = Keys::new();
    let verifier = Verifier::builder()
        .issuer(ISS)
        .audience(AUD)
        .jwks_json(keys.published().to_string())
        .build()
        .expect("verifier");
    let good = sign(&keys.rs, &claims(&json!({})));
    let claims_of_good = verifier.verify(&good).await.expect("valid");
    assert_absent(
        &format!("{claims_of_good:?} {claims_of_good:#?}"),
        &token_parts(&good),
        "Claims",
    );
    let bad = [
        format!("{}x", &good[..good.len() - 1]),
        sign(&keys.attacker, &claims(&json!({}))),
        sign(&keys.rs, &claims(&json!({"exp": 1}))),
        sign(&keys.rs, &claims(&json!({"aud": "urn:other"}))),
        sign(&keys.rs, &claims(&json!({"exp": "soon"}))),
        format!("{good}.extra"),
    ];
    for token in &bad {
        let e = verifier.verify(token).await.expect_err("invalid");
        let shown = format!("{e} {e:?} {e:#?} {}", e.description());
        assert_absent(&shown, &token_parts(token), "AuthError");
    }
}

#[tokio::test]
async fn debug_of_the_dev_issuer_and_its_clients_hides_the_secret() {
    let c = DevClient::new("leak-test", CLIENT_SECRET).scopes(["directions"]);
    assert_absent(
        &format!("{c:?} {c:#?}"),
        &secret_forms(CLIENT_SECRET),
        "DevClient",
    );
    let builder =
        DevIssuer::builder()
            .audience(AUD)
            .client("leak-test", CLIENT_SECRET, ["directions"]);
    assert_absent(
        &format!("{builder:?} {builder:#?}"),
        &secret_forms(CLIENT_SECRET),
        "DevIssuerBuilder",
    );
    let dev = builder.start().await.expect("dev issuer");
    assert_absent(
        &format!("{dev:?} {dev:#?}"),
        &secret_forms(CLIENT_SECRET),
        "DevIssuer",
    );
    dev.shutdown().await;
}

#[cfg(feature = "client")]
#[tokio::test]
async fn debug_of_the_client_side_hides_the_secret_and_the_token() {
    use bearer_guard::client::{AddBearerLayer, ClientCredentials};
    let dev = DevIssuer::builder()
        .audience(AUD)
        .client("leak-test", CLIENT_SECRET, ["directions"])
        .start()
        .await
        .expect("dev issuer");
    let builder = ClientCredentials::builder()
        .token_endpoint(dev.token_endpoint())
        .client_id("leak-test")
        .client_secret(CLIENT_SECRET)
        .audience(AUD)
        .dangerous_allow_insecure_http();
    assert_absent(
        &format!("{builder:?} {builder:#?}"),
        &secret_forms(CLIENT_SECRET),
        "ClientCredentialsBuilder",
    );
    let source = builder.build().expect("source");
    let token = source.token().await.expect("token");
    let mut forbidden = secret_forms(CLIENT_SECRET);
    forbidden.extend(token_parts(token.secret()));
    assert_absent(&format!("{token:?} {token:#?}"), &forbidden, "AccessToken");
    assert_absent(
        &format!("{source:?} {source:#?}"),
        &forbidden,
        "ClientCredentials",
    );
    let layer = AddBearerLayer::new(source.clone());
    assert_absent(
        &format!("{layer:?} {layer:#?}"),
        &forbidden,
        "AddBearerLayer",
    );
    let wrong = ClientCredentials::builder()
        .token_endpoint(dev.token_endpoint())
        .client_id("leak-test")
        .client_secret(WRONG_SECRET)
        .audience(AUD)
        .dangerous_allow_insecure_http()
        .build()
        .expect("source");
    let e = wrong.token().await.expect_err("wrong secret");
    assert_absent(
        &format!("{e} {e:?} {e:#?}"),
        &secret_forms(WRONG_SECRET),
        "TokenError",
    );
    dev.shutdown().await;
}

// ---- refusals for a wrong issuer or audience: WARN, rate-limited, values escaped ----------

fn static_verifier(keys: &Keys) -> Verifier {
    Verifier::builder()
        .issuer(ISS)
        .audience(AUD)
        .jwks_json(keys.published().to_string())
        .build()
        .expect("verifier")
}

#[tokio::test]
async fn a_wrong_issuer_is_logged_at_warn_with_both_values_truncated_and_escaped() {
    let log = LogCapture::start();
    let keys = Keys::new();
    let verifier = static_verifier(&keys);
    let hostile = format!(
        "https://evil.test/\n2026-01-01 ERROR forged{}",
        "x".repeat(300)
    );
    let token = sign(&keys.rs, &claims(&json!({"iss": hostile})));
    verifier.verify(&token).await.expect_err("wrong issuer");
    let warnings = log.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    let line = &warnings[0];
    assert!(line.contains("issuer"), "{line}");
    assert!(line.contains(&format!("expected={ISS:?}")), "{line}");
    // Escaped (no line break of its own) and cut at 100 characters.
    assert!(
        line.contains(r#"received="https://evil.test/\n2026-01-01 ERROR forgedxxx"#),
        "{line}"
    );
    assert!(!line.contains(&"x".repeat(101)), "{line}");
    assert_eq!(log.text().matches("ERROR forged").count(), 1);
    assert!(!log.text().contains("\n2026-01-01 ERROR forged"));
    assert_absent(&log.text(), &token_parts(&token), "the logs");
}

#[tokio::test]
async fn a_wrong_audience_is_logged_at_warn_once_a_minute_naming_both_values() {
    let log = LogCapture::start();
    let keys = Keys::new();
    let verifier = static_verifier(&keys);
    for _ in 0..3 {
        let token = sign(
            &keys.rs,
            &claims(&json!({"aud": ["urn:other", "urn:\"quoted\""]})),
        );
        verifier.verify(&token).await.expect_err("wrong audience");
    }
    let warnings = log.warnings();
    assert_eq!(warnings.len(), 1, "one line a minute: {warnings:#?}");
    let line = &warnings[0];
    assert!(line.contains("audience"), "{line}");
    assert!(line.contains(&format!("expected=[{AUD:?}]")), "{line}");
    assert!(
        line.contains(r#"received=["urn:other", "urn:\"quoted\""]"#),
        "{line}"
    );
    assert!(line.contains("suppressed=0"), "{line}");
    // The issuer's limit is its own: a wrong issuer right after is still logged.
    let token = sign(&keys.rs, &claims(&json!({"iss": "https://other.test/"})));
    verifier.verify(&token).await.expect_err("wrong issuer");
    assert_eq!(log.warnings().len(), 2);
}

#[tokio::test]
async fn claims_that_do_not_fit_auth_c_are_logged_with_serdes_message_escaped() {
    use axum::extract::FromRequestParts;
    use bearer_guard::{Auth, DefaultRejection};

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Typed {
        org_id: u32,
    }

    let log = LogCapture::start();
    let keys = Keys::new();
    let verifier = static_verifier(&keys);
    let token = sign(&keys.rs, &claims(&json!({"org_id": "acme\nERROR forged"})));
    let claims = verifier.verify(&token).await.expect("valid");
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.extensions.insert(DefaultRejection::new());
    parts.extensions.insert(claims);
    let refused = Auth::<Typed>::from_request_parts(&mut parts, &())
        .await
        .expect_err("the claims do not fit");
    // The description stays generic: serde's message quotes the claim's value.
    assert_eq!(
        refused.body_text(),
        "the token's claims do not have the expected shape"
    );
    let warnings = log.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    let line = &warnings[0];
    assert!(line.contains("Typed"), "{line}");
    assert!(
        line.contains(r#"invalid type: string \"acme\\nERROR forged\", expected u32"#),
        "{line}"
    );
    assert!(!log.text().contains("\nERROR forged"));
}

#[tokio::test]
async fn a_missing_layer_is_logged_once_at_error() {
    use axum::routing::get;
    use bearer_guard::{Claims, RequireScopes, scope_requirement};
    use tower::ServiceExt as _;

    scope_requirement!(Directions = all_of["directions"]);
    let log = LogCapture::start();
    // No JwtAuthLayer: a server misconfiguration.
    let app = axum::Router::new()
        .route("/me", get(|_: Claims| async { "me" }))
        .route("/dir", get(|_: RequireScopes<Directions>| async { "dir" }));
    for path in ["/me", "/dir"] {
        log.clear();
        let req = http::Request::get(path)
            .body(axum::body::Body::empty())
            .expect("request");
        let res = app.clone().oneshot(req).await.expect("infallible");
        assert_eq!(res.status(), 500, "{path}");
        let errors = log.text().lines().filter(|l| l.contains(" ERROR ")).count();
        assert_eq!(errors, 1, "{path}: {}", log.text());
    }
}
