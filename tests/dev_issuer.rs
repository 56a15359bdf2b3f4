//! The development issuer over real sockets (127.0.0.1 only): the token endpoint, its
//! errors, discovery, the JWKS, rotation, and minting, checked against `Verifier`.
#![cfg(all(
    feature = "dev-issuer",
    any(feature = "aws-lc-rs", feature = "rust-crypto")
))]

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use bearer_guard::dev_issuer::{DevClient, DevIssuer, DevIssuerError, SigningKey};
use bearer_guard::{Algorithm, AuthErrorKind, InvalidTokenReason, Verifier};
use reqwest::StatusCode;
use serde_json::{Value, json};

const API: &str = "urn:worldmappers";
const OTHER_API: &str = "urn:other-api";
const CLIENT: &str = "gift-deliveries";
const SECRET: &str = "gift-deliveries-secret";

/// An issuer for two APIs with one client allowed both, and one restricted to `OTHER_API`.
async fn dev() -> DevIssuer {
    DevIssuer::builder()
        .audience(API)
        .audience(OTHER_API)
        .client(CLIENT, SECRET, ["geocode:location", "directions"])
        .register(
            DevClient::new("other-client", "other-secret")
                .scopes(["read"])
                .audiences([OTHER_API]),
        )
        .start()
        .await
        .expect("dev issuer starts")
}

fn verifier(dev: &DevIssuer) -> Verifier {
    Verifier::builder()
        .issuer(dev.issuer())
        .audience(API)
        .build()
        .expect("verifier")
}

/// A good client_secret_post form, with `changes` applied (an empty value removes a field).
fn form(changes: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut fields = vec![
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT),
        ("client_secret", SECRET),
        ("audience", API),
    ];
    for &(name, value) in changes {
        fields.retain(|(n, _)| *n != name);
        if !value.is_empty() {
            fields.push((name, value));
        }
    }
    fields
}

async fn post_form(dev: &DevIssuer, fields: &[(&str, &str)]) -> reqwest::Response {
    reqwest::Client::new()
        .post(dev.token_endpoint())
        .form(fields)
        .send()
        .await
        .expect("token request")
}

async fn access_token(response: reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// Status and `error` of an RFC 6749 §5.2 error response.
async fn oauth_error(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.expect("json error body");
    assert!(body["error_description"].is_string(), "{body}");
    (status, body["error"].as_str().expect("error").to_owned())
}

fn decode_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("part");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("json")
}

async fn get_json(url: &str) -> (reqwest::header::HeaderMap, Value) {
    let response = reqwest::get(url).await.expect("get");
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    (headers, response.json().await.expect("json"))
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

// --- The token endpoint: success -------------------------------------------------------

#[tokio::test]
async fn client_secret_post_in_a_form_gets_a_token_the_verifier_accepts_with_every_allowed_scope() {
    let dev = dev().await;
    let token = access_token(post_form(&dev, &form(&[])).await).await;
    let claims = verifier(&dev).verify(&token).await.expect("accepted");
    assert!(
        claims
            .scopes()
            .contains_all(["geocode:location", "directions"])
    );
    assert_eq!(claims.scopes().len(), 2);
}

#[tokio::test]
async fn client_secret_basic_gets_a_token_the_verifier_accepts() {
    let dev = dev().await;
    let response = reqwest::Client::new()
        .post(dev.token_endpoint())
        .basic_auth(CLIENT, Some(SECRET))
        .form(&[("grant_type", "client_credentials"), ("audience", API)])
        .send()
        .await
        .expect("token request");
    let token = access_token(response).await;
    let claims = verifier(&dev).verify(&token).await.expect("accepted");
    assert_eq!(claims.client_id(), Some(CLIENT));
}

#[tokio::test]
async fn a_json_body_is_accepted_like_a_form() {
    let dev = dev().await;
    let response = reqwest::Client::new()
        .post(dev.token_endpoint())
        .json(&json!({
            "grant_type": "client_credentials",
            "client_id": CLIENT,
            "client_secret": SECRET,
            "audience": API,
        }))
        .send()
        .await
        .expect("token request");
    let token = access_token(response).await;
    assert!(verifier(&dev).verify(&token).await.is_ok());
}

#[tokio::test]
async fn the_rfc8707_resource_parameter_names_the_audience() {
    let dev = dev().await;
    let response = post_form(&dev, &form(&[("audience", ""), ("resource", API)])).await;
    let token = access_token(response).await;
    assert!(verifier(&dev).verify(&token).await.is_ok());
}

#[tokio::test]
async fn the_token_response_is_a_bearer_token_with_expires_in_scope_and_no_store() {
    let dev = dev().await;
    let response = post_form(&dev, &form(&[])).await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 86_400);
    assert_eq!(body["scope"], "geocode:location directions");
}

#[tokio::test]
async fn issued_tokens_are_shaped_like_auth0_client_credentials_tokens() {
    let dev = dev().await;
    let token = access_token(post_form(&dev, &form(&[])).await).await;
    let header = decode_part(&token, 0);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["kid"], dev.current_key().kid());
    let claims = decode_part(&token, 1);
    assert_eq!(claims["iss"], dev.issuer());
    assert!(dev.issuer().starts_with("http://127.0.0.1:") && dev.issuer().ends_with('/'));
    assert_eq!(claims["sub"], "gift-deliveries@clients");
    assert_eq!(claims["aud"], API);
    assert_eq!(claims["gty"], "client-credentials");
    assert_eq!(claims["azp"], CLIENT);
    assert_eq!(claims["client_id"], CLIENT);
    assert_eq!(claims["scope"], "geocode:location directions");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    let (iat, exp) = (claims["iat"].as_i64(), claims["exp"].as_i64());
    assert_eq!(exp.zip(iat).map(|(e, i)| e - i), Some(86_400));
}

#[tokio::test]
async fn the_token_ttl_sets_exp_and_expires_in() {
    let dev = DevIssuer::builder()
        .audience(API)
        .client(CLIENT, SECRET, ["directions"])
        .token_ttl(Duration::from_secs(300))
        .start()
        .await
        .expect("dev issuer");
    let response = post_form(&dev, &form(&[])).await;
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["expires_in"], 300);
    let claims = decode_part(body["access_token"].as_str().expect("token"), 1);
    assert_eq!(
        claims["exp"]
            .as_i64()
            .zip(claims["iat"].as_i64())
            .map(|(e, i)| e - i),
        Some(300)
    );
}

#[tokio::test]
async fn a_requested_subset_of_scopes_is_granted_exactly() {
    let dev = dev().await;
    let token = access_token(post_form(&dev, &form(&[("scope", "directions")])).await).await;
    let claims = verifier(&dev).verify(&token).await.expect("accepted");
    assert!(claims.scopes().contains("directions"));
    assert!(!claims.scopes().contains("geocode:location"));
}

// --- The token endpoint: errors --------------------------------------------------------

#[tokio::test]
async fn a_wrong_secret_is_401_invalid_client() {
    let dev = dev().await;
    let response = post_form(&dev, &form(&[("client_secret", "wrong")])).await;
    assert!(response.headers().get("www-authenticate").is_none());
    assert_eq!(
        oauth_error(response).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
}

#[tokio::test]
async fn a_wrong_secret_sent_with_http_basic_gets_a_basic_challenge() {
    let dev = dev().await;
    let response = reqwest::Client::new()
        .post(dev.token_endpoint())
        .basic_auth(CLIENT, Some("wrong"))
        .form(&[("grant_type", "client_credentials"), ("audience", API)])
        .send()
        .await
        .expect("token request");
    assert_eq!(
        response.headers()["www-authenticate"],
        "Basic realm=\"dev-issuer\""
    );
    assert_eq!(
        oauth_error(response).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
}

#[tokio::test]
async fn an_unknown_client_is_401_invalid_client() {
    let dev = dev().await;
    let response = post_form(&dev, &form(&[("client_id", "nobody")])).await;
    assert_eq!(
        oauth_error(response).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
}

#[tokio::test]
async fn a_request_without_client_credentials_is_401_invalid_client() {
    let dev = dev().await;
    let response = post_form(&dev, &form(&[("client_id", ""), ("client_secret", "")])).await;
    assert_eq!(
        oauth_error(response).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
}

#[tokio::test]
async fn an_unknown_audience_is_403_access_denied() {
    let dev = dev().await;
    let response = post_form(&dev, &form(&[("audience", "urn:unknown")])).await;
    assert_eq!(
        oauth_error(response).await,
        (StatusCode::FORBIDDEN, "access_denied".into())
    );
}

#[tokio::test]
async fn an_audience_the_client_is_not_registered_for_is_403_unauthorized_client() {
    let dev = dev().await;
    let response = post_form(
        &dev,
        &form(&[
            ("client_id", "other-client"),
            ("client_secret", "other-secret"),
        ]),
    )
    .await;
    assert_eq!(
        oauth_error(response).await,
        (StatusCode::FORBIDDEN, "unauthorized_client".into())
    );
}

#[tokio::test]
async fn an_unknown_rfc8707_resource_is_400_invalid_target() {
    let dev = dev().await;
    let response = post_form(
        &dev,
        &form(&[("audience", ""), ("resource", "urn:unknown")]),
    )
    .await;
    assert_eq!(
        oauth_error(response).await,
        (StatusCode::BAD_REQUEST, "invalid_target".into())
    );
}

#[tokio::test]
async fn a_scope_the_client_may_not_get_is_400_invalid_scope() {
    let dev = dev().await;
    let response = post_form(&dev, &form(&[("scope", "directions admin")])).await;
    assert_eq!(
        oauth_error(response).await,
        (StatusCode::BAD_REQUEST, "invalid_scope".into())
    );
}

#[tokio::test]
async fn a_grant_type_other_than_client_credentials_is_400_unsupported_grant_type() {
    let dev = dev().await;
    let response = post_form(&dev, &form(&[("grant_type", "password")])).await;
    assert_eq!(
        oauth_error(response).await,
        (StatusCode::BAD_REQUEST, "unsupported_grant_type".into())
    );
}

#[tokio::test]
async fn a_missing_grant_type_is_400_invalid_request() {
    let dev = dev().await;
    let response = post_form(&dev, &form(&[("grant_type", "")])).await;
    assert_eq!(
        oauth_error(response).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
}

#[tokio::test]
async fn a_missing_audience_is_400_invalid_request() {
    let dev = dev().await;
    let response = post_form(&dev, &form(&[("audience", "")])).await;
    assert_eq!(
        oauth_error(response).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
}

#[tokio::test]
async fn http_basic_together_with_a_body_secret_is_400_invalid_request() {
    let dev = dev().await;
    let response = reqwest::Client::new()
        .post(dev.token_endpoint())
        .basic_auth(CLIENT, Some(SECRET))
        .form(&form(&[]))
        .send()
        .await
        .expect("token request");
    assert_eq!(
        oauth_error(response).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
}

#[tokio::test]
async fn a_repeated_parameter_is_400_invalid_request() {
    let dev = dev().await;
    let mut fields = form(&[]);
    fields.push(("audience", OTHER_API));
    let response = post_form(&dev, &fields).await;
    assert_eq!(
        oauth_error(response).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
}

#[tokio::test]
async fn a_malformed_json_body_is_400_invalid_request() {
    let dev = dev().await;
    let response = reqwest::Client::new()
        .post(dev.token_endpoint())
        .header("content-type", "application/json")
        .body(r#"{"grant_type": "client_credentials", "#)
        .send()
        .await
        .expect("token request");
    assert_eq!(
        oauth_error(response).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
}

#[tokio::test]
async fn a_body_over_64_kib_is_refused_with_413() {
    let dev = dev().await;
    let padding = "x".repeat(65 * 1024);
    let mut fields = form(&[]);
    fields.push(("padding", padding.as_str()));
    let response = post_form(&dev, &fields).await;
    assert_eq!(
        oauth_error(response).await,
        (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request".into())
    );
}

// --- Discovery and JWKS -----------------------------------------------------------------

#[tokio::test]
async fn the_discovery_document_names_the_issuer_endpoints_grant_auth_methods_and_algorithm() {
    let dev = dev().await;
    let url = format!("{}.well-known/openid-configuration", dev.issuer());
    let (_, doc) = get_json(&url).await;
    assert_eq!(doc["issuer"], dev.issuer());
    assert_eq!(doc["jwks_uri"], dev.jwks_uri());
    assert_eq!(doc["token_endpoint"], dev.token_endpoint());
    assert_eq!(doc["grant_types_supported"], json!(["client_credentials"]));
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        json!(["client_secret_post", "client_secret_basic"])
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
}

#[tokio::test]
async fn the_rfc8414_metadata_is_the_discovery_document() {
    let dev = dev().await;
    let (_, oidc) = get_json(&format!("{}.well-known/openid-configuration", dev.issuer())).await;
    let (_, oauth) = get_json(&format!(
        "{}.well-known/oauth-authorization-server",
        dev.issuer()
    ))
    .await;
    assert_eq!(oidc, oauth);
}

#[tokio::test]
async fn the_jwks_is_a_jwk_set_cacheable_for_ten_minutes() {
    let dev = dev().await;
    let (headers, jwks) = get_json(dev.jwks_uri()).await;
    assert_eq!(headers["content-type"], "application/jwk-set+json");
    assert_eq!(headers["cache-control"], "public, max-age=600");
    assert_eq!(kids(&jwks), [dev.current_key().kid()]);
    assert_eq!(jwks, dev.jwks());
}

#[tokio::test]
async fn the_jwks_answers_304_to_a_matching_if_none_match() {
    let dev = dev().await;
    let (headers, _) = get_json(dev.jwks_uri()).await;
    let response = reqwest::Client::new()
        .get(dev.jwks_uri())
        .header("if-none-match", headers["etag"].clone())
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn jwks_requests_counts_the_key_set_downloads() {
    let dev = dev().await;
    let verifier = verifier(&dev);
    for _ in 0..3 {
        let token = dev.mint(json!({})).expect("mint");
        verifier.verify(&token).await.expect("accepted");
    }
    assert_eq!(dev.jwks_requests(), 1);
}

// --- Keys: algorithms, rotation, retirement ----------------------------------------------

#[tokio::test]
async fn a_token_from_a_rotated_key_verifies_without_restarting_the_verifier() {
    let dev = dev().await;
    let verifier = verifier(&dev);
    verifier
        .verify(&dev.mint(json!({})).expect("mint"))
        .await
        .expect("old key accepted");
    let kid = dev.rotate().expect("rotate");
    let token = access_token(post_form(&dev, &form(&[])).await).await;
    assert_eq!(decode_part(&token, 0)["kid"], kid.as_str());
    let claims = verifier.verify(&token).await.expect("new key accepted");
    assert_eq!(claims.key_id(), Some(kid.as_str()));
}

#[tokio::test]
async fn rotation_keeps_the_old_key_published() {
    let dev = dev().await;
    let old = dev.current_key().kid().to_owned();
    let new = dev.rotate().expect("rotate");
    let (_, jwks) = get_json(dev.jwks_uri()).await;
    assert_eq!(kids(&jwks), [old, new]);
}

#[tokio::test]
async fn a_retired_key_is_unpublished_and_its_tokens_are_refused() {
    let dev = dev().await;
    let old_token = dev.mint(json!({})).expect("mint");
    let old = dev.current_key().kid().to_owned();
    let new = dev.rotate().expect("rotate");
    assert!(dev.retire(&old));
    let (_, jwks) = get_json(dev.jwks_uri()).await;
    assert_eq!(kids(&jwks), [new]);
    let err = verifier(&dev)
        .verify(&old_token)
        .await
        .expect_err("refused");
    assert_eq!(
        err.kind(),
        AuthErrorKind::InvalidToken(InvalidTokenReason::UnknownKey)
    );
}

#[tokio::test]
async fn es256_and_eddsa_issuers_sign_tokens_the_verifier_accepts() {
    for alg in [Algorithm::ES256, Algorithm::EdDSA] {
        let dev = DevIssuer::builder()
            .audience(API)
            .client(CLIENT, SECRET, ["directions"])
            .algorithm(alg)
            .start()
            .await
            .expect("dev issuer");
        let token = access_token(post_form(&dev, &form(&[])).await).await;
        let claims = verifier(&dev).verify(&token).await.expect("accepted");
        assert_eq!(claims.algorithm(), alg);
    }
}

#[tokio::test]
async fn issuers_with_different_key_offsets_share_no_key() {
    let start = |offset| {
        DevIssuer::builder()
            .audience(API)
            .key_offset(offset)
            .start()
    };
    let a = start(0).await.expect("a");
    let b = start(1).await.expect("b");
    assert_ne!(a.jwks()["keys"][0]["n"], b.jwks()["keys"][0]["n"]);
    assert_ne!(a.current_key().kid(), b.current_key().kid());
}

// --- Minting -----------------------------------------------------------------------------

#[tokio::test]
async fn a_minted_token_gets_the_registered_claims_and_verifies() {
    let dev = dev().await;
    let token = dev
        .mint(json!({"sub": "tester", "scope": "directions"}))
        .expect("mint");
    let claims = verifier(&dev).verify(&token).await.expect("accepted");
    assert_eq!(claims.issuer(), dev.issuer());
    assert_eq!(claims.audience(), [API]);
    assert_eq!(claims.subject(), Some("tester"));
    assert!(claims.jwt_id().is_some());
    assert!(claims.issued_at().is_some());
}

#[tokio::test]
async fn a_claim_minted_as_null_is_left_out() {
    let dev = dev().await;
    let token = dev.mint(json!({"exp": null})).expect("mint");
    assert!(decode_part(&token, 1).get("exp").is_none());
    let err = verifier(&dev).verify(&token).await.expect_err("refused");
    assert_eq!(
        err.kind(),
        AuthErrorKind::InvalidToken(InvalidTokenReason::MissingClaim)
    );
}

#[tokio::test]
async fn a_token_minted_with_an_unpublished_key_is_refused() {
    let dev = dev().await;
    let stranger = SigningKey::from_pool(Algorithm::RS256, 0, "stranger").expect("key");
    let token = dev.mint_with_key(&stranger, json!({})).expect("mint");
    assert!(verifier(&dev).verify(&token).await.is_err());
}

#[tokio::test]
async fn mint_with_header_uses_the_header_verbatim() {
    let dev = dev().await;
    let header = json!({"alg": "RS256", "kid": dev.current_key().kid(), "typ": "JWT", "x": 1});
    let token = dev
        .mint_with_header(header.clone(), json!({}))
        .expect("mint");
    assert_eq!(decode_part(&token, 0), header);
}

// --- Lifecycle and configuration --------------------------------------------------------

#[tokio::test]
async fn shutdown_stops_the_server() {
    let dev = dev().await;
    let url = dev.jwks_uri().to_owned();
    dev.shutdown().await;
    assert!(reqwest::get(&url).await.is_err());
}

#[tokio::test]
async fn dropping_the_issuer_stops_the_server() {
    let dev = dev().await;
    let url = dev.jwks_uri().to_owned();
    drop(dev);
    let mut stopped = false;
    for _ in 0..50 {
        if reqwest::get(&url).await.is_err() {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stopped);
}

#[tokio::test]
async fn a_non_loopback_bind_address_is_refused() {
    let addr: SocketAddr = "0.0.0.0:0".parse().expect("addr");
    let err = DevIssuer::builder()
        .audience(API)
        .bind(addr)
        .start()
        .await
        .expect_err("refused");
    assert!(matches!(err, DevIssuerError::NotLoopback(_)), "{err}");
}

#[tokio::test]
async fn an_issuer_without_an_audience_is_refused() {
    let err = DevIssuer::builder().start().await.expect_err("refused");
    assert!(matches!(err, DevIssuerError::NoAudience), "{err}");
}

#[tokio::test]
async fn an_hmac_algorithm_is_refused() {
    let err = DevIssuer::builder()
        .audience(API)
        .algorithm(Algorithm::HS256)
        .start()
        .await
        .expect_err("refused");
    assert!(
        matches!(err, DevIssuerError::UnsupportedAlgorithm(Algorithm::HS256)),
        "{err}"
    );
}

#[test]
fn the_dev_issuer_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<DevIssuer>();
    assert_send_sync::<DevIssuerError>();
}

// ---------------------------------------------------------------------------------------
// DPoP (RFC 9449 §5): a token request with a valid proof gets a DPoP-bound token.

#[cfg(feature = "client")]
mod dpop {
    use super::*;
    use bearer_guard::client::{ClientCredentials, DpopKey};

    fn key() -> DpopKey {
        DpopKey::generate(Algorithm::ES256).expect("key")
    }

    async fn post_with_proofs(dev: &DevIssuer, proofs: &[&str]) -> reqwest::Response {
        let mut req = reqwest::Client::new()
            .post(dev.token_endpoint())
            .form(&form(&[]));
        for proof in proofs {
            req = req.header("dpop", *proof);
        }
        req.send().await.expect("token request")
    }

    async fn error(response: reqwest::Response) -> (StatusCode, String) {
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        (
            status,
            body["error"].as_str().unwrap_or_default().to_owned(),
        )
    }

    #[tokio::test]
    async fn a_token_request_with_a_proof_gets_a_token_bound_to_its_key() {
        let dev = dev().await;
        let key = key();
        let proof = key
            .proof("POST", dev.token_endpoint(), None, None)
            .expect("proof");
        let response = post_with_proofs(&dev, &[&proof]).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["token_type"], "DPoP");
        let token = body["access_token"].as_str().expect("token");
        let claims = verifier(&dev).verify(token).await.expect("claims");
        assert_eq!(claims.get("cnf"), Some(&json!({"jkt": key.thumbprint()})));
    }

    #[tokio::test]
    async fn a_token_request_without_a_proof_still_gets_a_bearer_token() {
        let dev = dev().await;
        let response = post_form(&dev, &form(&[])).await;
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["token_type"], "Bearer");
        let token = body["access_token"].as_str().expect("token");
        let claims = verifier(&dev).verify(token).await.expect("claims");
        assert_eq!(claims.get("cnf"), None);
    }

    #[tokio::test]
    async fn our_client_gets_a_dpop_bound_token_from_the_dev_issuer() {
        let dev = dev().await;
        let key = key();
        let source = ClientCredentials::builder()
            .issuer(dev.issuer())
            .client_id(CLIENT)
            .client_secret(SECRET)
            .audience(API)
            .dpop(key.clone())
            .build()
            .expect("client");
        let token = source.token().await.expect("token");
        assert!(token.is_dpop_bound());
        let claims = verifier(&dev).verify(token.secret()).await.expect("claims");
        assert_eq!(claims.get("cnf"), Some(&json!({"jkt": key.thumbprint()})));
    }

    #[tokio::test]
    async fn a_proof_for_another_url_is_refused() {
        let dev = dev().await;
        let proof = key()
            .proof("POST", "http://127.0.0.1:1/oauth/token", None, None)
            .expect("proof");
        let (status, code) = error(post_with_proofs(&dev, &[&proof]).await).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_dpop_proof")
        );
    }

    #[tokio::test]
    async fn a_proof_for_another_method_is_refused() {
        let dev = dev().await;
        let proof = key()
            .proof("GET", dev.token_endpoint(), None, None)
            .expect("proof");
        let (status, code) = error(post_with_proofs(&dev, &[&proof]).await).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_dpop_proof")
        );
    }

    #[tokio::test]
    async fn a_replayed_proof_is_refused() {
        let dev = dev().await;
        let proof = key()
            .proof("POST", dev.token_endpoint(), None, None)
            .expect("proof");
        assert_eq!(
            post_with_proofs(&dev, &[&proof]).await.status(),
            StatusCode::OK
        );
        let (status, code) = error(post_with_proofs(&dev, &[&proof]).await).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_dpop_proof")
        );
    }

    #[tokio::test]
    async fn two_dpop_headers_or_a_non_jws_are_refused() {
        let dev = dev().await;
        let k = key();
        let a = k
            .proof("POST", dev.token_endpoint(), None, None)
            .expect("proof");
        let b = k
            .proof("POST", dev.token_endpoint(), None, None)
            .expect("proof");
        let (status, code) = error(post_with_proofs(&dev, &[&a, &b]).await).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_dpop_proof")
        );
        let (status, code) = error(post_with_proofs(&dev, &["not-a-jws"]).await).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_dpop_proof")
        );
    }

    #[tokio::test]
    async fn the_metadata_lists_the_dpop_algorithms() {
        let dev = dev().await;
        let doc: Value = reqwest::get(format!("{}.well-known/openid-configuration", dev.issuer()))
            .await
            .expect("metadata")
            .json()
            .await
            .expect("json");
        let algs = doc["dpop_signing_alg_values_supported"]
            .as_array()
            .expect("dpop algs");
        assert!(algs.contains(&json!("ES256")) && algs.contains(&json!("EdDSA")));
    }
}
