//! The Gift Deliveries example (examples/gift_deliveries/) against the World Mappers example
//! and the development issuer: the scope it requests, what it says on a 403, and the
//! environment names it reads (its own, and those of Auth0's Node samples).
#![cfg(all(
    feature = "client",
    feature = "axum",
    feature = "dev-issuer",
    any(feature = "aws-lc-rs", feature = "rust-crypto")
))]

#[path = "../examples/gift_deliveries/app.rs"]
#[allow(dead_code)]
mod gift;
#[path = "../examples/world_mappers/app.rs"]
#[allow(dead_code)]
mod world;

use std::collections::HashMap;

use bearer_guard::Verifier;
use bearer_guard::dev_issuer::DevIssuer;
use gift::{Settings, TokenFrom};

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

/// The World Mappers API trusting a development issuer that knows `gift-deliveries`, allowed
/// `directions` and `geocode:location`.
async fn world() -> World {
    world_with(world::app).await
}

/// [`world`], with the app built by `app` from the verifier and the base URL.
async fn world_with(app: impl FnOnce(Verifier, &str) -> axum::Router) -> World {
    let dev = DevIssuer::builder()
        .audience(AUD)
        .client(
            "gift-deliveries",
            "gd-secret",
            ["geocode:location", "directions"],
        )
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
    let app = app(verifier, &base);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    World { dev, base, task }
}

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

fn settings(w: &World, extra: &[(&str, &str)]) -> Settings {
    let mut pairs = vec![
        ("ISSUER_BASE_URL", w.dev.issuer()),
        ("CLIENT_ID", "gift-deliveries"),
        ("CLIENT_SECRET", "gd-secret"),
        ("API_URL", w.base.as_str()),
    ];
    pairs.extend_from_slice(extra);
    Settings::from_vars(vars(&pairs)).expect("settings")
}

#[tokio::test]
async fn it_requests_the_directions_scope_by_default_and_gets_directions() {
    let w = world().await;
    let s = settings(&w, &[]);
    assert_eq!(s.scope, "directions");
    let body = gift::directions(&s, "Seattle").await.expect("directions");
    assert!(gift::directions_text(&body).starts_with("Directions to Seattle:"));
}

#[tokio::test]
async fn with_dpop_it_gets_a_bound_token_and_calls_with_proofs() {
    let w = world_with(|verifier, base| {
        let dpop = bearer_guard::dpop::Dpop::builder()
            .public_url(base)
            .mode(bearer_guard::dpop::DpopMode::Required)
            .build()
            .expect("dpop");
        world::app_with_dpop(verifier, base, Some(dpop))
    })
    .await;
    let s = settings(&w, &[("DPOP", "1")]);
    assert!(s.dpop);
    // DPoP is required by this API: a bearer token would be answered 401.
    let body = gift::directions(&s, "Seattle").await.expect("directions");
    assert!(gift::directions_text(&body).starts_with("Directions to Seattle:"));
    let bearer = settings(&w, &[]);
    let line = gift::directions(&bearer, "Seattle")
        .await
        .expect_err("a bearer token is refused where DPoP is required");
    assert!(line.contains("HTTP 401"), "{line}");
}

#[test]
fn dpop_other_than_1_or_0_is_refused() {
    let err = Settings::from_vars(vars(&[
        ("ISSUER_BASE_URL", "https://issuer.example/"),
        ("CLIENT_ID", "id"),
        ("CLIENT_SECRET", "secret"),
        ("DPOP", "yes"),
    ]))
    .expect_err("refused");
    assert!(err.contains("DPOP"), "{err}");
}

#[tokio::test]
async fn a_403_says_which_scope_the_token_lacks() {
    let w = world().await;
    // The token then holds only what was requested: geocode:location, not directions.
    let s = settings(&w, &[("SCOPE", "geocode:location")]);
    let line = gift::directions(&s, "Seattle").await.expect_err("refused");
    assert!(line.contains("HTTP 403"), "{line}");
    assert!(
        line.contains(r#"the token lacks the scope "directions""#),
        "{line}"
    );
    assert!(line.contains(r#"asked for "geocode:location""#), "{line}");
}

#[test]
fn the_scope_parameter_is_read_from_the_challenge() {
    let c = r#"Bearer realm="api", error="insufficient_scope", error_description="the token lacks a required scope", scope="directions""#;
    assert_eq!(gift::param(c, "scope"), Some("directions"));
    assert_eq!(gift::param(c, "error"), Some("insufficient_scope"));
    assert_eq!(gift::param(c, "nonce"), None);
    assert_eq!(gift::param("Basic realm=\"x\"", "realm"), None);
}

#[test]
fn auth0_sample_names_are_read_when_ours_are_unset() {
    let s = Settings::from_vars(vars(&[
        ("AUTH0_DOMAIN", "tenant.eu.auth0.com"),
        ("RESOURCE_SERVER", "https://api.worldmappers.example"),
        ("AUTH0_CLIENT_ID", "auth0-id"),
        ("AUTH0_CLIENT_SECRET", "auth0-secret"),
    ]))
    .expect("settings");
    assert_eq!(
        s.token_from,
        TokenFrom::Issuer("https://tenant.eu.auth0.com/".into())
    );
    assert_eq!(s.audience, "https://api.worldmappers.example");
    assert_eq!(s.client_id, "auth0-id");
    assert_eq!(s.client_secret, "auth0-secret");
    assert_eq!(
        gift::auth0_issuer("https://tenant.auth0.com/"),
        "https://tenant.auth0.com/"
    );
}

#[test]
fn our_names_win_over_auth0_sample_names() {
    let s = Settings::from_vars(vars(&[
        ("AUTH0_DOMAIN", "tenant.auth0.com"),
        ("ISSUER_BASE_URL", "https://issuer.example/"),
        ("RESOURCE_SERVER", "urn:theirs"),
        ("AUDIENCE", "urn:ours"),
        ("AUTH0_CLIENT_ID", "theirs"),
        ("CLIENT_ID", "ours"),
        ("AUTH0_CLIENT_SECRET", "their-secret"),
        ("CLIENT_SECRET", "our-secret"),
    ]))
    .expect("settings");
    assert_eq!(
        s.token_from,
        TokenFrom::Issuer("https://issuer.example/".into())
    );
    assert_eq!(s.audience, "urn:ours");
    assert_eq!(s.client_id, "ours");
    assert_eq!(s.client_secret, "our-secret");
    // TOKEN_URL, ours too, wins over both issuers.
    let s = Settings::from_vars(vars(&[
        ("AUTH0_DOMAIN", "tenant.auth0.com"),
        ("TOKEN_URL", "https://issuer.example/token"),
        ("CLIENT_ID", "ours"),
        ("CLIENT_SECRET", "our-secret"),
    ]))
    .expect("settings");
    assert_eq!(
        s.token_from,
        TokenFrom::Endpoint("https://issuer.example/token".into())
    );
}

#[test]
fn missing_credentials_name_both_variables() {
    let e = Settings::from_vars(vars(&[("ISSUER_BASE_URL", "https://issuer.example/")]))
        .expect_err("no client id");
    assert!(e.contains("CLIENT_ID (or AUTH0_CLIENT_ID)"), "{e}");
}

/// Opaque tokens (RFC 7662): the development issuer issues opaque access tokens (as World
/// Mappers' `OPAQUE_TOKENS=1` makes its in-process issuer do) and World Mappers introspects
/// them as `introspector` (its `INTROSPECTION_CLIENT_ID`), asking for signed responses when
/// `signed` (`INTROSPECTION_JWT=1`). Gift Deliveries is not told anything.
#[cfg(feature = "introspection")]
async fn opaque_world(signed: bool) -> World {
    use bearer_guard::introspection::{Introspector, TokenRouting};
    let dev = DevIssuer::builder()
        .audience(AUD)
        .client(
            "gift-deliveries",
            "gd-secret",
            ["geocode:location", "directions"],
        )
        .client("introspector", "in-secret", Vec::<String>::new())
        .opaque_tokens()
        .start()
        .await
        .expect("dev issuer");
    let verifier = Verifier::builder()
        .issuer(dev.issuer())
        .audience(AUD)
        .build()
        .expect("verifier");
    let mut introspector = Introspector::builder()
        .issuer(dev.issuer())
        .client_id("introspector")
        .client_secret("in-secret")
        .audience(AUD);
    if signed {
        introspector = introspector.jwt_responses(&verifier);
    }
    let introspector = introspector.build().expect("introspector");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = world::app_with_layer(verifier, &base, None, move |layer| {
        layer.introspection(introspector, TokenRouting::ByShape)
    });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    World { dev, base, task }
}

#[cfg(feature = "introspection")]
#[tokio::test]
async fn it_works_unchanged_with_opaque_tokens_world_mappers_introspects() {
    let w = opaque_world(false).await;
    let s = settings(&w, &[]);
    let body = gift::directions(&s, "Seattle").await.expect("directions");
    assert!(gift::directions_text(&body).starts_with("Directions to Seattle:"));
    assert_eq!(
        w.dev.introspection_requests(),
        1,
        "the token was opaque and introspected"
    );
}

#[cfg(feature = "introspection")]
#[tokio::test]
async fn it_works_unchanged_with_opaque_tokens_and_signed_introspection_responses() {
    let w = opaque_world(true).await;
    let s = settings(&w, &[]);
    let body = gift::directions(&s, "Seattle").await.expect("directions");
    assert!(gift::directions_text(&body).starts_with("Directions to Seattle:"));
    assert_eq!(w.dev.introspection_requests(), 1);
}

#[cfg(feature = "introspection")]
#[tokio::test]
async fn with_opaque_tokens_a_403_still_says_which_scope_the_token_lacks() {
    let w = opaque_world(false).await;
    let s = settings(&w, &[("SCOPE", "geocode:location")]);
    let line = gift::directions(&s, "Seattle").await.expect_err("refused");
    assert!(line.contains("HTTP 403"), "{line}");
    assert!(
        line.contains(r#"the token lacks the scope "directions""#),
        "{line}"
    );
}
