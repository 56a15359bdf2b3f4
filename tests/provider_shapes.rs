//! Access tokens shaped like those of real identity providers, as their documentation
//! describes them (claims and JOSE headers), signed at test time with the crate's own
//! development keys. Each provider needs at most one builder call beyond `issuer` and
//! `audience`; each test below shows which, and that it is enough.
//!
//! | provider | builder call | shape |
//! |---|---|---|
//! | Auth0 | none; `.permissions_as_scopes()` with RBAC | `iss` with a trailing slash, `aud` string or array, `scope` string, `permissions`, `gty`, `azp`, `sub` = `<client_id>@clients` |
//! | Okta | none | `scp` array, `cid`, no `typ` |
//! | Microsoft Entra ID | none for `scp`; `.roles_as_scopes(["roles"])` for app roles | v1 `https://sts.windows.net/<tid>/`, v2 `https://login.microsoftonline.com/<tid>/v2.0` |
//! | Keycloak | `.roles_as_scopes(["realm_access.roles", "resource_access.<client>.roles"])` | nested roles, `azp`, `aud` array |
//! | AWS Cognito | `.audience_from_client_id()` | no `aud`; `client_id`, `token_use: access` |
//! | Google | none; `.require_claim("email")` to insist on an identity | `email`, no scope |
#![cfg(all(
    feature = "dev-issuer",
    any(feature = "aws-lc-rs", feature = "rust-crypto")
))]

use std::time::{SystemTime, UNIX_EPOCH};

use bearer_guard::dev_issuer::{SigningKey, jwk_set};
use bearer_guard::{
    Algorithm, AuthErrorKind, Claims, InvalidTokenReason, Verifier, VerifierBuilder,
};
use serde_json::{Value, json};

const KID: &str = "provider-key-1";

fn key() -> SigningKey {
    SigningKey::from_pool(Algorithm::RS256, 1, KID).expect("pool key")
}

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    i64::try_from(secs).expect("time")
}

/// Signs `claims` under exactly `header` (plus `alg` and `kid`, as every provider sends).
fn sign(header: Value, claims: &Value) -> String {
    let mut header = header;
    header["alg"] = json!("RS256");
    header["kid"] = json!(KID);
    key()
        .sign_raw(header.to_string().as_bytes(), claims.to_string().as_bytes())
        .expect("sign")
}

/// The provider's configuration: issuer, audience, and the test's static keys (instead of
/// the discovery a deployment would use).
fn provider(issuer: &str, audience: &str) -> VerifierBuilder {
    Verifier::builder()
        .issuer(issuer)
        .audience(audience)
        .jwks_json(jwk_set([&key()]).to_string())
}

async fn accept(builder: VerifierBuilder, token: &str) -> Claims {
    let verifier = builder.build().expect("verifier");
    match verifier.verify(token).await {
        Ok(claims) => claims,
        Err(e) => panic!("refused: {e}"),
    }
}

async fn refuse(builder: VerifierBuilder, token: &str) -> InvalidTokenReason {
    let verifier = builder.build().expect("verifier");
    match verifier.verify(token).await.map_err(|e| e.kind()) {
        Err(AuthErrorKind::InvalidToken(reason)) => reason,
        other => panic!("expected an invalid token, got {other:?}"),
    }
}

fn scopes(claims: &Claims) -> Vec<&str> {
    claims.scopes().iter().collect()
}

// ---- Auth0 ---------------------------------------------------------------------------------
// https://auth0.com/docs/secure/tokens/access-tokens/access-token-profiles
// https://auth0.com/docs/get-started/apis/enable-role-based-access-control-for-apis

const AUTH0_ISS: &str = "https://worldmappers.eu.auth0.com/";
const AUTH0_AUD: &str = "urn:worldmappers";
const AUTH0_CLIENT: &str = "tHlQ7xWaxDeHRAFlGBSGq3UEz1V0yVno";

/// An Auth0 client-credentials token (access token profile "Auth0", RBAC on).
fn auth0_token(aud: Value) -> String {
    let t = now();
    sign(
        json!({"typ": "JWT"}),
        &json!({
            "iss": AUTH0_ISS,
            "sub": format!("{AUTH0_CLIENT}@clients"),
            "aud": aud,
            "iat": t,
            "exp": t + 86_400,
            "scope": "directions geocode:location",
            "gty": "client-credentials",
            "azp": AUTH0_CLIENT,
            "permissions": ["directions", "geocode:location", "reverse-geocode:location"],
        }),
    )
}

#[tokio::test]
async fn auth0_needs_the_issuer_with_its_trailing_slash() {
    let token = auth0_token(json!(AUTH0_AUD));
    let claims = accept(provider(AUTH0_ISS, AUTH0_AUD), &token).await;
    assert_eq!(claims.issuer(), AUTH0_ISS);
    assert_eq!(
        claims.subject(),
        Some(format!("{AUTH0_CLIENT}@clients").as_str())
    );
    assert_eq!(claims.client_id(), Some(AUTH0_CLIENT), "azp");
    assert_eq!(claims.get("gty"), Some(&json!("client-credentials")));
    assert_eq!(scopes(&claims), ["directions", "geocode:location"]);

    let without_slash = AUTH0_ISS.trim_end_matches('/');
    assert_eq!(
        refuse(provider(without_slash, AUTH0_AUD), &token).await,
        InvalidTokenReason::WrongIssuer
    );
}

#[tokio::test]
async fn auth0_audience_arrays_are_accepted() {
    // A token requested with the `openid` scope also names the userinfo endpoint.
    let token = auth0_token(json!([AUTH0_AUD, format!("{AUTH0_ISS}userinfo")]));
    let claims = accept(provider(AUTH0_ISS, AUTH0_AUD), &token).await;
    assert_eq!(claims.audience().len(), 2);
    assert_eq!(
        refuse(provider(AUTH0_ISS, "urn:other"), &token).await,
        InvalidTokenReason::WrongAudience
    );
}

#[tokio::test]
async fn auth0_rbac_permissions_count_as_scopes_with_permissions_as_scopes() {
    let token = auth0_token(json!(AUTH0_AUD));
    let plain = accept(provider(AUTH0_ISS, AUTH0_AUD), &token).await;
    assert!(!plain.scopes().contains("reverse-geocode:location"));
    let rbac = accept(
        provider(AUTH0_ISS, AUTH0_AUD).permissions_as_scopes(),
        &token,
    )
    .await;
    assert_eq!(
        scopes(&rbac),
        ["directions", "geocode:location", "reverse-geocode:location"]
    );
}

// ---- Okta ----------------------------------------------------------------------------------
// https://developer.okta.com/docs/api/openapi/okta-oauth/guides/overview/ (access token)

#[tokio::test]
async fn okta_scp_arrays_are_scopes_by_default() {
    let iss = "https://worldmappers.okta.com/oauth2/default";
    let t = now();
    // No `typ` header: Okta sends only `kid` and `alg`.
    let token = sign(
        json!({}),
        &json!({
            "ver": 1,
            "jti": "AT.0mP4JKAZX1iACIT4vbEDF7LpvDVjxypPMf0D7uX39RE",
            "iss": iss,
            "aud": "api://default",
            "iat": t,
            "exp": t + 3600,
            "cid": "0oa1gnj8b3sW6cPcF5d7",
            "scp": ["directions", "geocode:location"],
            "sub": "0oa1gnj8b3sW6cPcF5d7",
        }),
    );
    let claims = accept(provider(iss, "api://default"), &token).await;
    assert_eq!(scopes(&claims), ["directions", "geocode:location"]);
    assert_eq!(claims.get("cid"), Some(&json!("0oa1gnj8b3sW6cPcF5d7")));
}

// ---- Microsoft Entra ID --------------------------------------------------------------------
// https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const ENTRA_API: &str = "api://worldmappers";
const ENTRA_API_ID: &str = "6e74172b-be56-4843-9ff4-e66a39bb12e3";
const ENTRA_CLIENT: &str = "b4f6c0c5-a1f2-4c52-a2c8-3f2f2f9c2b11";

fn entra_v1_issuer() -> String {
    format!("https://sts.windows.net/{TENANT}/")
}

fn entra_v2_issuer() -> String {
    format!("https://login.microsoftonline.com/{TENANT}/v2.0")
}

/// An Entra ID v1.0 app-only token (client credentials): `roles`, no `scp`.
fn entra_v1_app_token() -> String {
    let t = now();
    sign(
        json!({"typ": "JWT", "x5t": "nOo3ZDrODXEK1jKWhXslHR_KXEg"}),
        &json!({
            "aud": ENTRA_API,
            "iss": entra_v1_issuer(),
            "iat": t, "nbf": t, "exp": t + 3599,
            "aio": "E2ZgYJg1u3XZ1aX4tEh3AA==",
            "appid": ENTRA_CLIENT,
            "appidacr": "1",
            "idp": entra_v1_issuer(),
            "idtyp": "app",
            "oid": "3f0e1a4c-2b7e-4c1c-9f55-0c1b1a1e7e44",
            "roles": ["Maps.Read", "directions"],
            "sub": "3f0e1a4c-2b7e-4c1c-9f55-0c1b1a1e7e44",
            "tid": TENANT,
            "uti": "mKxOnCSK5k2AmuBQmiMFAA",
            "ver": "1.0",
        }),
    )
}

/// An Entra ID v2.0 delegated token: `scp` string, `azp`.
fn entra_v2_user_token() -> String {
    let t = now();
    sign(
        json!({"typ": "JWT"}),
        &json!({
            "aud": ENTRA_API_ID,
            "iss": entra_v2_issuer(),
            "iat": t, "nbf": t, "exp": t + 3599,
            "azp": ENTRA_CLIENT,
            "azpacr": "1",
            "name": "Ada Lovelace",
            "oid": "9a1c6c5e-54b0-4c1e-b5f3-7f2d4bfa1c0e",
            "preferred_username": "ada@worldmappers.example",
            "scp": "directions geocode:location",
            "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
            "tid": TENANT,
            "ver": "2.0",
        }),
    )
}

#[tokio::test]
async fn entra_v1_app_roles_are_scopes_with_roles_as_scopes() {
    let token = entra_v1_app_token();
    let iss = entra_v1_issuer();
    let plain = accept(provider(&iss, ENTRA_API), &token).await;
    assert!(plain.scopes().is_empty(), "app-only tokens carry no scp");
    let claims = accept(provider(&iss, ENTRA_API).roles_as_scopes(["roles"]), &token).await;
    assert_eq!(scopes(&claims), ["Maps.Read", "directions"]);
    assert_eq!(claims.get("appid"), Some(&json!(ENTRA_CLIENT)));
}

#[tokio::test]
async fn entra_v2_scp_strings_are_scopes_by_default() {
    let token = entra_v2_user_token();
    let claims = accept(provider(&entra_v2_issuer(), ENTRA_API_ID), &token).await;
    assert_eq!(scopes(&claims), ["directions", "geocode:location"]);
    assert_eq!(claims.client_id(), Some(ENTRA_CLIENT), "azp");
}

#[tokio::test]
async fn entra_v1_and_v2_issuers_are_different_issuers() {
    // The token version follows the API's `accessTokenAcceptedVersion`, not the endpoint:
    // configure the issuer of the version the API receives.
    assert_eq!(
        refuse(
            provider(&entra_v2_issuer(), ENTRA_API),
            &entra_v1_app_token()
        )
        .await,
        InvalidTokenReason::WrongIssuer
    );
    assert_eq!(
        refuse(
            provider(&entra_v1_issuer(), ENTRA_API_ID),
            &entra_v2_user_token()
        )
        .await,
        InvalidTokenReason::WrongIssuer
    );
}

// ---- Keycloak ------------------------------------------------------------------------------
// https://www.keycloak.org/docs/latest/server_admin/#_oidc_token_role_mappings

const KEYCLOAK_ISS: &str = "https://sso.worldmappers.example/realms/worldmappers";

fn keycloak_token() -> String {
    let t = now();
    sign(
        json!({"typ": "JWT"}),
        &json!({
            "exp": t + 300,
            "iat": t,
            "jti": "5d5c7f1e-8f3a-4a63-9a4f-3f2b8d7c1e21",
            "iss": KEYCLOAK_ISS,
            // An audience mapper adds the API; `account` comes with the default roles.
            "aud": ["worldmappers", "account"],
            "sub": "c2d3e8f1-9b7a-4c6e-8d2f-1a3b5c7d9e0f",
            "typ": "Bearer",
            "azp": "gift-deliveries",
            "acr": "1",
            "realm_access": {
                "roles": ["offline_access", "default-roles-worldmappers", "uma_authorization", "mappers"]
            },
            "resource_access": {
                "worldmappers": {"roles": ["directions", "geocode:location"]},
                "account": {"roles": ["manage-account", "view-profile"]}
            },
            "scope": "profile email",
            "clientHost": "192.0.2.10",
            "email_verified": false,
            "preferred_username": "service-account-gift-deliveries",
            "client_id": "gift-deliveries",
        }),
    )
}

#[tokio::test]
async fn keycloak_realm_and_client_roles_are_scopes_with_roles_as_scopes() {
    let token = keycloak_token();
    let claims = accept(
        provider(KEYCLOAK_ISS, "worldmappers")
            .roles_as_scopes(["realm_access.roles", "resource_access.worldmappers.roles"]),
        &token,
    )
    .await;
    assert_eq!(
        scopes(&claims),
        [
            "default-roles-worldmappers",
            "directions",
            "email",
            "geocode:location",
            "mappers",
            "offline_access",
            "profile",
            "uma_authorization",
        ]
    );
    assert!(
        !claims.scopes().contains("manage-account"),
        "another client's roles stay out"
    );
    assert_eq!(claims.client_id(), Some("gift-deliveries"));

    let plain = accept(provider(KEYCLOAK_ISS, "worldmappers"), &token).await;
    assert_eq!(scopes(&plain), ["email", "profile"]);
}

// ---- AWS Cognito ---------------------------------------------------------------------------
// https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-using-the-access-token.html

const COGNITO_ISS: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123";
const COGNITO_CLIENT: &str = "1example23456789abcdefghij";

/// A Cognito client-credentials access token: no `aud`, `client_id` and `token_use`.
fn cognito_access_token(client_id: &str) -> String {
    let t = now();
    sign(
        json!({}),
        &json!({
            "sub": client_id,
            "token_use": "access",
            "scope": "worldmappers/directions worldmappers/geocode",
            "auth_time": t,
            "iss": COGNITO_ISS,
            "exp": t + 3600,
            "iat": t,
            "version": 2,
            "jti": "b1f8c5e2-3a4d-4e6f-8a9b-0c1d2e3f4a5b",
            "client_id": client_id,
        }),
    )
}

/// A Cognito ID token: `aud` is the app client id, `token_use` is `id`.
fn cognito_id_token() -> String {
    let t = now();
    sign(
        json!({}),
        &json!({
            "sub": "aaaaaaaa-bbbb-cccc-dddd-example",
            "aud": COGNITO_CLIENT,
            "email_verified": true,
            "token_use": "id",
            "auth_time": t,
            "iss": COGNITO_ISS,
            "cognito:username": "ada",
            "exp": t + 3600,
            "iat": t,
            "email": "ada@worldmappers.example",
        }),
    )
}

#[tokio::test]
async fn cognito_access_tokens_need_audience_from_client_id() {
    let token = cognito_access_token(COGNITO_CLIENT);
    assert_eq!(
        refuse(provider(COGNITO_ISS, COGNITO_CLIENT), &token).await,
        InvalidTokenReason::MissingClaim,
        "without the option, a token without aud is refused"
    );
    let claims = accept(
        provider(COGNITO_ISS, COGNITO_CLIENT).audience_from_client_id(),
        &token,
    )
    .await;
    assert_eq!(
        scopes(&claims),
        ["worldmappers/directions", "worldmappers/geocode"]
    );
    assert_eq!(claims.client_id(), Some(COGNITO_CLIENT));
    assert!(claims.audience().is_empty());
}

#[tokio::test]
async fn cognito_tokens_of_another_app_client_are_refused() {
    let token = cognito_access_token("2another34567890abcdefghij");
    assert_eq!(
        refuse(
            provider(COGNITO_ISS, COGNITO_CLIENT).audience_from_client_id(),
            &token
        )
        .await,
        InvalidTokenReason::WrongAudience
    );
}

#[tokio::test]
async fn cognito_id_tokens_are_refused_with_audience_from_client_id() {
    let token = cognito_id_token();
    // Without the option the ID token's aud matches the client id; the option's token_use
    // check is what keeps ID tokens out.
    accept(provider(COGNITO_ISS, COGNITO_CLIENT), &token).await;
    assert_eq!(
        refuse(
            provider(COGNITO_ISS, COGNITO_CLIENT).audience_from_client_id(),
            &token
        )
        .await,
        InvalidTokenReason::InvalidClaim
    );
}

// ---- Google --------------------------------------------------------------------------------
// https://cloud.google.com/run/docs/authenticating/service-to-service (ID tokens as bearer
// tokens; Google's own access tokens are opaque)

const GOOGLE_ISS: &str = "https://accounts.google.com";
const GOOGLE_AUD: &str = "https://worldmappers-abc123-ew.a.run.app";

fn google_token(email: Option<&str>) -> String {
    let t = now();
    let mut claims = json!({
        "aud": GOOGLE_AUD,
        "azp": "102345678901234567890",
        "exp": t + 3600,
        "iat": t,
        "iss": GOOGLE_ISS,
        "sub": "102345678901234567890",
    });
    if let Some(email) = email {
        claims["email"] = json!(email);
        claims["email_verified"] = json!(true);
    }
    sign(json!({"typ": "JWT"}), &claims)
}

#[tokio::test]
async fn google_id_tokens_carry_an_email_and_no_scope() {
    let sa = "gift-deliveries@worldmappers.iam.gserviceaccount.com";
    let claims = accept(provider(GOOGLE_ISS, GOOGLE_AUD), &google_token(Some(sa))).await;
    assert_eq!(claims.get("email"), Some(&json!(sa)));
    assert!(claims.scopes().is_empty(), "authorize by email, not scope");

    // `require_claim("email")` refuses tokens minted without it (no `include_email`).
    let strict = || provider(GOOGLE_ISS, GOOGLE_AUD).require_claim("email");
    accept(strict(), &google_token(Some(sa))).await;
    assert_eq!(
        refuse(strict(), &google_token(None)).await,
        InvalidTokenReason::MissingClaim
    );
}
