//! Several trusted issuers behind one `Verifier`: two development issuers that share
//! nothing (keys, audiences, clients), selected by the token's unverified `iss`.
#![cfg(all(
    feature = "axum",
    feature = "dev-issuer",
    any(feature = "aws-lc-rs", feature = "rust-crypto")
))]

use axum::Router;
use axum::routing::get;
use bearer_guard::dev_issuer::DevIssuer;
use bearer_guard::{
    AuthErrorKind, Claims, ConfigError, InvalidTokenReason, JwtAuthLayer, KeyHealth, MAX_ISSUERS,
    Verifier,
};
use serde_json::json;
use tower::ServiceExt;

const AUD_A: &str = "urn:staff-api";
const AUD_B: &str = "urn:partner-api";

struct Two {
    a: DevIssuer,
    b: DevIssuer,
    verifier: Verifier,
}

async fn dev(audience: &str, key_offset: usize) -> DevIssuer {
    DevIssuer::builder()
        .audience(audience)
        .key_offset(key_offset)
        .start()
        .await
        .expect("dev issuer")
}

fn single(dev: &DevIssuer, audience: &str) -> Verifier {
    Verifier::builder()
        .issuer(dev.issuer())
        .audience(audience)
        .build()
        .expect("verifier")
}

/// Two issuers with distinct pool keys (offsets 0 and 1), each with its own audience.
async fn two() -> Two {
    let a = dev(AUD_A, 0).await;
    let b = dev(AUD_B, 1).await;
    assert_ne!(a.current_key().kid(), b.current_key().kid());
    assert_ne!(a.jwks(), b.jwks());
    let verifier =
        Verifier::multi([single(&a, AUD_A), single(&b, AUD_B)]).expect("multi-issuer verifier");
    Two { a, b, verifier }
}

fn reason(kind: AuthErrorKind) -> Option<InvalidTokenReason> {
    match kind {
        AuthErrorKind::InvalidToken(r) => Some(r),
        _ => None,
    }
}

#[tokio::test]
async fn each_issuer_verifies_its_own_tokens() {
    let t = two().await;
    let from_a = t.a.mint(json!({"sub": "alice"})).expect("mint");
    let from_b = t.b.mint(json!({"sub": "bob"})).expect("mint");
    let claims = t.verifier.verify(&from_a).await.expect("a's token");
    assert_eq!(
        (claims.issuer(), claims.subject()),
        (t.a.issuer(), Some("alice"))
    );
    let claims = t.verifier.verify(&from_b).await.expect("b's token");
    assert_eq!(
        (claims.issuer(), claims.subject()),
        (t.b.issuer(), Some("bob"))
    );
    assert_eq!(t.verifier.issuers(), [t.a.issuer(), t.b.issuer()]);
}

#[tokio::test]
async fn each_issuer_keeps_its_own_audiences() {
    let t = two().await;
    // A's token for B's audience: A's configuration verifies it, and refuses the audience.
    let token = t.a.mint(json!({"aud": AUD_B})).expect("mint");
    let err = t.verifier.verify(&token).await.expect_err("wrong audience");
    assert_eq!(reason(err.kind()), Some(InvalidTokenReason::WrongAudience));
}

#[tokio::test]
async fn a_token_claiming_the_other_issuer_is_checked_with_the_other_issuers_keys() {
    let t = two().await;
    // Signed by A, claiming B (and B's audience): B's key set has no such key.
    let forged =
        t.a.mint(json!({"iss": t.b.issuer(), "aud": AUD_B}))
            .expect("mint");
    let err = t.verifier.verify(&forged).await.expect_err("forged");
    assert_eq!(reason(err.kind()), Some(InvalidTokenReason::UnknownKey));

    // Signed by A under B's `kid`: B's key does not verify A's signature.
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": t.b.current_key().kid()});
    let forged =
        t.a.mint_with_header(header, json!({"iss": t.b.issuer(), "aud": AUD_B}))
            .expect("mint");
    let err = t.verifier.verify(&forged).await.expect_err("forged");
    assert_eq!(reason(err.kind()), Some(InvalidTokenReason::BadSignature));

    // B's genuine tokens still pass.
    let genuine = t.b.mint(json!({})).expect("mint");
    assert!(t.verifier.verify(&genuine).await.is_ok());
}

#[tokio::test]
async fn an_unknown_issuer_is_refused_before_any_fetch() {
    let t = two().await;
    let a_iss = t.a.issuer().to_owned();
    let unknown = [
        "https://elsewhere.example/".to_owned(),
        // Prefixes and extensions of a trusted issuer are not that issuer.
        a_iss.trim_end_matches('/').to_owned(),
        format!("{a_iss}tenant/"),
        a_iss.to_uppercase(),
    ];
    for iss in &unknown {
        let token = t.a.mint(json!({"iss": iss})).expect("mint");
        let err = t.verifier.verify(&token).await.expect_err(iss);
        assert_eq!(
            reason(err.kind()),
            Some(InvalidTokenReason::WrongIssuer),
            "{iss}"
        );
    }
    // Nor does a token without `iss`.
    let token = t.a.mint(json!({"iss": null})).expect("mint");
    let err = t.verifier.verify(&token).await.expect_err("no iss");
    assert_eq!(reason(err.kind()), Some(InvalidTokenReason::MissingClaim));

    assert_eq!(t.verifier.jwks_fetches(), 0);
    assert_eq!((t.a.jwks_requests(), t.b.jwks_requests()), (0, 0));
    assert_eq!(t.verifier.key_health(), KeyHealth::Missing);
}

#[tokio::test]
async fn the_layer_takes_a_multi_issuer_verifier() {
    let t = two().await;
    let app = Router::new()
        .route("/me", get(|c: Claims| async move { c.issuer().to_owned() }))
        .layer(JwtAuthLayer::new(t.verifier.clone()));
    let call = |token: String| {
        let app = app.clone();
        async move {
            let req = http::Request::get("/me")
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::empty())
                .expect("request");
            let res = app.oneshot(req).await.expect("infallible");
            let status = res.status().as_u16();
            let challenge = res
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().expect("ascii").to_owned());
            let body = axum::body::to_bytes(res.into_body(), 1 << 16)
                .await
                .expect("body");
            (
                status,
                String::from_utf8_lossy(&body).into_owned(),
                challenge,
            )
        }
    };
    let (status, body, _) = call(t.a.mint(json!({})).expect("mint")).await;
    assert_eq!((status, body.as_str()), (200, t.a.issuer()));
    let (status, body, _) = call(t.b.mint(json!({})).expect("mint")).await;
    assert_eq!((status, body.as_str()), (200, t.b.issuer()));
    let (status, _, challenge) = call(
        t.a.mint(json!({"iss": "https://elsewhere.example/"}))
            .expect("mint"),
    )
    .await;
    assert_eq!(status, 401);
    let challenge = challenge.expect("challenge");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains("issuer is not accepted"), "{challenge}");
}

#[tokio::test]
async fn key_health_is_the_worst_of_the_issuers() {
    let t = two().await;
    assert_eq!(t.verifier.key_health(), KeyHealth::Missing);
    // Only A's keys fetched: B's are still missing.
    let a = t.verifier.for_issuer(t.a.issuer()).expect("a");
    a.refresh_keys().await.expect("a's keys");
    assert_eq!(a.key_health(), KeyHealth::Fresh { keys: 1 });
    assert_eq!(t.verifier.key_health(), KeyHealth::Missing);
    // Both.
    t.verifier.refresh_keys().await.expect("all keys");
    assert_eq!(t.verifier.key_health(), KeyHealth::Fresh { keys: 2 });
    assert_eq!(t.verifier.jwks_fetches(), 3);
    assert_eq!((t.a.jwks_requests(), t.b.jwks_requests()), (2, 1));
}

#[tokio::test]
async fn for_issuer_matches_exactly_and_shares_the_key_store() {
    let t = two().await;
    let b = t.verifier.for_issuer(t.b.issuer()).expect("b");
    assert_eq!(
        (b.issuer(), b.audiences()),
        (t.b.issuer(), &[AUD_B.to_owned()][..])
    );
    assert!(
        t.verifier
            .for_issuer(t.b.issuer().trim_end_matches('/'))
            .is_none()
    );
    let token = t.b.mint(json!({})).expect("mint");
    t.verifier.verify(&token).await.expect("verified");
    // The per-issuer handle sees the keys the multi-issuer verifier fetched.
    assert_eq!(b.key_health(), KeyHealth::Fresh { keys: 1 });
    assert_eq!(b.jwks_fetches(), 1);
    // A single-issuer verifier answers for its own issuer only.
    let single = single(&t.a, AUD_A);
    assert_eq!(single.issuers(), [t.a.issuer()]);
    assert!(single.for_issuer(t.a.issuer()).is_some());
    assert!(single.for_issuer(t.b.issuer()).is_none());
}

fn static_verifier(issuer: &str) -> Verifier {
    Verifier::builder()
        .issuer(issuer)
        .audience("urn:x")
        .hmac_secret(b"a-test-secret-of-at-least-thirty-two-bytes")
        .build()
        .expect("verifier")
}

#[test]
fn the_configuration_is_checked() {
    let err = Verifier::multi([]).expect_err("empty");
    assert!(
        matches!(
            err,
            ConfigError::OutOfRange {
                what: "issuers",
                ..
            }
        ),
        "{err}"
    );

    let err = Verifier::multi([
        static_verifier("https://a.example/"),
        static_verifier("https://a.example/"),
    ])
    .expect_err("duplicate");
    assert!(
        matches!(err, ConfigError::InvalidValue { what: "issuer", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("https://a.example/"), "{err}");

    let many = |n: usize| (0..n).map(|i| static_verifier(&format!("https://i{i}.example/")));
    assert!(Verifier::multi(many(MAX_ISSUERS)).is_ok());
    let err = Verifier::multi(many(MAX_ISSUERS + 1)).expect_err("too many");
    assert!(
        matches!(
            err,
            ConfigError::OutOfRange {
                what: "issuers",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn nested_multi_issuer_verifiers_are_flattened() {
    let ab = Verifier::multi([
        static_verifier("https://a.example/"),
        static_verifier("https://b.example/"),
    ])
    .expect("ab");
    let abc = Verifier::multi([ab.clone(), static_verifier("https://c.example/")]).expect("abc");
    assert_eq!(
        abc.issuers(),
        [
            "https://a.example/",
            "https://b.example/",
            "https://c.example/"
        ]
    );
    assert!(Verifier::multi([ab, static_verifier("https://a.example/")]).is_err());
    let debug = format!("{abc:?}");
    assert!(debug.contains("https://c.example/"), "{debug}");
}
