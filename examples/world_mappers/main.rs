//! The World Mappers API: Auth0's resource-server sample, protected by bearer-guard.
//!
//! ```sh
//! cargo run --example world_mappers
//! ```
//!
//! Configuration (the names Auth0's own middleware uses):
//! `ISSUER_BASE_URL` (the exact issuer; keys by discovery), `AUDIENCE` (default
//! `urn:worldmappers`), `JWKS_URI` (optional: skip discovery), `PORT` (default 7001).
//! `TOKEN_CACHE` sets how many verified tokens are remembered (default 10,000; `0` turns the
//! cache off), for the load harness `scripts/load.sh`. `PUBLIC_URL` is where clients reach
//! the API (default `http://127.0.0.1:PORT`): 401 answers point at the RFC 9728
//! protected-resource metadata, `{PUBLIC_URL}/.well-known/oauth-protected-resource`.
//! With no `ISSUER_BASE_URL`, a development issuer starts in-process with a "Gift Deliveries"
//! client, and the commands to get a token and call each route are printed.
//!
//! DPoP (RFC 9449): `DPOP` = `off` (bearer tokens only: a DPoP-bound token is refused) |
//! `allowed` (default: bearer and DPoP-bound tokens) |
//! `required` (DPoP only); `DPOP_NONCE=1` turns server nonces on. Proofs are checked against
//! `PUBLIC_URL` (the external origin: set it behind a proxy).
//!
//! Opaque tokens (RFC 7662, built with `--features introspection`): when
//! `INTROSPECTION_CLIENT_ID` and `INTROSPECTION_CLIENT_SECRET` are set, tokens that are not
//! JWTs are introspected at the issuer's discovered `introspection_endpoint` (JWTs are still
//! verified locally); `INTROSPECTION_URL` overrides the endpoint, `INTROSPECTION_CACHE_SECS`
//! the cache time of active answers (default 120: a revoked token is accepted that long at
//! most), and `INTROSPECTION_JWT=1` asks for signed responses (RFC 9701 JWT responses, verified
//! with the issuer's keys; the client must be registered for them at the issuer). With the
//! development issuer, `OPAQUE_TOKENS=1` makes it issue opaque tokens, and the introspection
//! client is registered there (it signs responses when asked).
//!
//! Mutual TLS (RFC 8705, certificate-bound tokens): `TLS_CERT` and `TLS_KEY` (PEM files)
//! serve HTTPS; `TLS_CLIENT_CA` (PEM) also asks for client certificates, verifies them
//! against that CA and checks certificate-bound tokens against them. Behind a proxy that
//! ends TLS, `CLIENT_CERT_HEADER=client-cert` trusts the proxy's RFC 9440 header instead
//! (the proxy must strip that header from clients' requests). Without these variables
//! nothing changes. `ISSUER_CA` (PEM) also trusts that CA for the issuer's HTTPS (an
//! authorization server with a private CA's certificate).
//!
//! A fleet of replicas (feature `redis`, see `fleet.rs`): `REDIS_URL` shares the DPoP replay
//! store and the introspection cache through Redis, under `worldmappers:` (`REDIS_TIMEOUT_MS`
//! bounds each call, default 10, at most 5,000); `KEYSET_SNAPSHOT_SECRET` also shares the
//! issuer's last good key set and seals the introspection cache's entries (without it, Redis
//! is trusted for that cache). Without them nothing changes.

mod app;
mod fleet;

use std::net::SocketAddr;
use std::process::ExitCode;

use bearer_guard::Verifier;
use bearer_guard::dev_issuer::{DevIssuer, DevIssuerBuilder};
use bearer_guard::dpop::{Dpop, DpopMode, Nonces};

use app::SCOPES;

const CLIENT_ID: &str = "gift-deliveries";

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,bearer_guard=debug".into()),
        )
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("world_mappers: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let audience = env("AUDIENCE").unwrap_or_else(|| "urn:worldmappers".to_owned());
    let port: u16 = match env("PORT") {
        Some(p) => p
            .parse()
            .map_err(|_| format!("PORT {p:?} is not a port number"))?,
        None => 7001,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let (tls, mtls) = app::tls_settings(env)?;
    if let Some(bearer_guard::mtls::CertificateSource::TrustedHeader(name)) =
        mtls.as_ref().map(bearer_guard::Mtls::source)
    {
        tracing::warn!(
            header = %name,
            "client certificates are taken from the {name} header of every request: the \
             proxy in front must strip it from clients' requests, and this port must be \
             reachable only through that proxy"
        );
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    let public_url = env("PUBLIC_URL").unwrap_or_else(|| format!("{scheme}://{addr}"));
    let fleet = fleet::from_env().await?;
    let dpop = dpop_settings(&public_url, fleet.as_ref())?;

    // The development issuer, unless a real one is configured.
    let (issuer, dev) = match env("ISSUER_BASE_URL") {
        Some(issuer) => (issuer, None),
        None => {
            let secret = random_secret();
            let mut dev = DevIssuerBuilder::default()
                .audience(&audience)
                .client(CLIENT_ID, &secret, SCOPES);
            if let (Some(id), Some(s)) = (
                env("INTROSPECTION_CLIENT_ID"),
                env("INTROSPECTION_CLIENT_SECRET"),
            ) {
                dev = dev.client(id, s, Vec::<String>::new());
            }
            if env("OPAQUE_TOKENS").as_deref() == Some("1") {
                dev = dev.opaque_tokens();
            }
            let dev = dev
                .start()
                .await
                .map_err(|e| format!("the development issuer did not start: {e}"))?;
            (dev.issuer().to_owned(), Some((dev, secret)))
        }
    };

    let mut builder = Verifier::builder().issuer(&issuer).audience(&audience);
    let issuer_http = app::issuer_http_client(env)?;
    if let Some(http) = &issuer_http {
        builder = builder.http_client(http.clone());
    }
    if let Some(jwks) = env("JWKS_URI") {
        builder = builder.jwks_uri(jwks);
    }
    if let Some(fleet) = &fleet {
        builder = fleet.verifier(builder);
    }
    if let Some(entries) = env("TOKEN_CACHE") {
        let entries: u64 = entries
            .parse()
            .map_err(|_| format!("TOKEN_CACHE {entries:?} is not a number of entries"))?;
        builder = builder.token_cache(entries);
    }
    let verifier = builder.build().map_err(|e| format!("configuration: {e}"))?;
    // Warm the key store; if the issuer is down, requests get 503 until it answers.
    if verifier.refresh_keys().await.is_err() {
        tracing::warn!(%issuer, "the issuer's keys are not available yet");
    }

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let mode = dpop.as_ref().map_or(DpopMode::Off, Dpop::mode);
    if let Some(fleet) = &fleet {
        println!(
            "Fleet: DPoP replay shared through Redis; key-set snapshots {}",
            if fleet.snapshots {
                "on"
            } else {
                "off (no KEYSET_SNAPSHOT_SECRET)"
            }
        );
    }
    println!(
        "World Mappers API on {scheme}://{addr} (issuer {issuer}, audience {audience}, DPoP {mode:?}{})",
        if dpop.as_ref().is_some_and(|d| d.nonces().is_some()) {
            ", nonces on"
        } else {
            ""
        }
    );
    if let Some((dev, secret)) = &dev {
        print_walkthrough(dev, secret, &audience, addr, mode);
    }
    if tls.is_some() {
        print_mtls_walkthrough(addr, mtls.is_some());
    }

    let introspection = introspection(&issuer, &audience, &verifier, issuer_http, fleet.as_ref())?;
    let router = app::app_with_layer(verifier, &public_url, dpop, move |layer| {
        let layer = match mtls {
            Some(mtls) => layer.mtls(mtls),
            None => layer,
        };
        match introspection {
            #[cfg(feature = "introspection")]
            Some(i) => layer.introspection(i, bearer_guard::introspection::TokenRouting::ByShape),
            _ => layer,
        }
    });
    match tls {
        // HTTPS: each request carries the client's certificate (bearer_guard::mtls::serve).
        Some(tls) => {
            tokio::select! {
                () = bearer_guard::mtls::serve(listener, tls, router) => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        None => axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| format!("server error: {e}"))?,
    }
    if let Some((dev, _)) = dev {
        dev.shutdown().await;
    }
    println!("World Mappers API stopped");
    Ok(())
}

/// The introspector the `INTROSPECTION_*` settings ask for ([`app::introspection_settings`]),
/// if any, with `http` (from `ISSUER_CA`) for the issuer; its cache is the fleet's (Redis)
/// when `REDIS_URL` is set.
#[cfg(feature = "introspection")]
fn introspection(
    issuer: &str,
    audience: &str,
    verifier: &Verifier,
    http: Option<reqwest::Client>,
    fleet: Option<&fleet::Fleet>,
) -> Result<Option<bearer_guard::introspection::Introspector>, String> {
    let Some((mut builder, signed)) =
        app::introspection_settings(env, issuer, audience, verifier, http)?
    else {
        return Ok(None);
    };
    if let Some(fleet) = fleet {
        builder = fleet.introspection(builder);
    }
    let introspector = builder
        .build()
        .map_err(|e| format!("introspection configuration: {e}"))?;
    println!(
        "Opaque tokens are introspected (RFC 7662{}); JWTs are verified locally",
        if signed {
            "; signed responses only, RFC 9701"
        } else {
            ""
        }
    );
    Ok(Some(introspector))
}

/// Without the `introspection` feature: refuses the introspection settings.
#[cfg(not(feature = "introspection"))]
fn introspection(
    issuer: &str,
    audience: &str,
    verifier: &Verifier,
    http: Option<reqwest::Client>,
    _fleet: Option<&fleet::Fleet>,
) -> Result<Option<()>, String> {
    app::introspection_settings(env, issuer, audience, verifier, http).map(|_| None)
}

fn print_mtls_walkthrough(addr: SocketAddr, client_certs: bool) {
    if client_certs {
        println!(
            r#"Mutual TLS: the server asks for a client certificate signed by TLS_CLIENT_CA; a token
bound to it (cnf.x5t#S256) is accepted only with that certificate:
  curl -i --cacert server-ca.pem --cert client.pem --key client.key \
    https://{addr}/api/ping -H "Authorization: Bearer $TOKEN"
The Gift Deliveries client sends its certificate with CLIENT_CERT and CLIENT_KEY.
"#
        );
    } else {
        println!(
            r#"HTTPS: curl -i --cacert server-ca.pem https://{addr}/api/ping -H "Authorization: Bearer $TOKEN"
"#
        );
    }
}

/// `DPOP` (off | allowed | required, default allowed) and `DPOP_NONCE=1`.
fn dpop_settings(public_url: &str, fleet: Option<&fleet::Fleet>) -> Result<Option<Dpop>, String> {
    let mode: DpopMode = match env("DPOP") {
        Some(m) => m.parse().map_err(|e| format!("DPOP: {e}"))?,
        None => DpopMode::Allowed,
    };
    if mode == DpopMode::Off {
        return Ok(None);
    }
    let mut builder = Dpop::builder().mode(mode).public_url(public_url);
    if env("DPOP_NONCE").as_deref() == Some("1") {
        builder = builder.nonces(Nonces::random().map_err(|e| format!("DPOP_NONCE: {e}"))?);
    }
    if let Some(fleet) = fleet {
        builder = fleet.dpop(builder);
    }
    builder
        .build()
        .map(Some)
        .map_err(|e| format!("DPoP configuration: {e}"))
}

fn print_walkthrough(
    dev: &DevIssuer,
    secret: &str,
    audience: &str,
    addr: SocketAddr,
    mode: DpopMode,
) {
    let token_url = dev.token_endpoint();
    println!(
        r#"
Development issuer: {issuer} (for demos and tests only)
Client "Gift Deliveries": CLIENT_ID={CLIENT_ID} CLIENT_SECRET={secret}

Get a token (client credentials):
  TOKEN=$(curl -s -X POST {token_url} -H 'content-type: application/json' \
    -d '{{"grant_type":"client_credentials","client_id":"{CLIENT_ID}","client_secret":"{secret}","audience":"{audience}"}}' \
    | sed -E 's/.*"access_token":"([^"]+)".*/\1/')

Call the API:
  curl -i http://{addr}/api/location/geocode -H "Authorization: Bearer $TOKEN"
  curl -i http://{addr}/api/location/reverse-geocode -H "Authorization: Bearer $TOKEN"
  curl -i 'http://{addr}/api/directions?destination=Seattle' -H "Authorization: Bearer $TOKEN"
  curl -i http://{addr}/api/directions        # no token: 401
  curl -i http://{addr}/healthz               # public
  curl -i http://{addr}/readyz                # 200 once the issuer's keys are held
  curl -s http://{addr}/.well-known/oauth-protected-resource   # RFC 9728 metadata

Or run the Gift Deliveries client:
  ISSUER_BASE_URL={issuer} CLIENT_ID={CLIENT_ID} CLIENT_SECRET={secret} \
    cargo run --example gift_deliveries
"#,
        issuer = dev.issuer(),
    );
    if mode != DpopMode::Off {
        println!(
            r#"DPoP ({mode:?}): a DPoP call sends `Authorization: DPoP <bound token>` and a fresh
proof per request (`DPoP: <signed JWT naming the method and URL>`):
  curl -i http://{addr}/api/ping -H "Authorization: DPoP $TOKEN" -H "DPoP: $PROOF"
The Gift Deliveries client does both (it gets a DPoP-bound token and signs each proof):
  DPOP=1 ISSUER_BASE_URL={issuer} CLIENT_ID={CLIENT_ID} CLIENT_SECRET={secret} \
    cargo run --example gift_deliveries --features client
"#,
            issuer = dev.issuer(),
        );
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn random_secret() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..32)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)]))
        .collect()
}
