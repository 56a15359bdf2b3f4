//! The World Mappers API: routes, scopes and answers (shared by the example and its tests).

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use bearer_guard::{
    Claims, Dpop, JwtAuthLayer, KeyHealth, Mtls, ProtectedResourceMetadata, RequireScopes,
    Verifier, require_scopes, scope_requirement,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The API's scopes.
pub(crate) const SCOPES: [&str; 3] = ["geocode:location", "reverse-geocode:location", "directions"];

scope_requirement!(
    /// `GET /api/location/geocode` needs `geocode:location`.
    pub(crate) Geocode = all_of["geocode:location"]
);
scope_requirement!(
    /// `GET /api/location/reverse-geocode` needs `reverse-geocode:location`.
    pub(crate) ReverseGeocode = all_of["reverse-geocode:location"]
);

/// The whole application: public health routes, the public RFC 9728 protected-resource
/// metadata, and the protected API. `public_url` is where clients reach the API (for
/// example `http://127.0.0.1:7001`): 401 answers name the metadata document there.
#[allow(dead_code)] // tests/world_mappers.rs uses it; the example uses `app_with_dpop`.
pub(crate) fn app(verifier: Verifier, public_url: &str) -> Router {
    app_with_dpop(verifier, public_url, None)
}

/// [`app`], accepting DPoP-bound tokens (RFC 9449) as `dpop` says (`None`: bearer tokens
/// only).
#[allow(dead_code)] // the tests use it; the example uses `app_with`.
pub(crate) fn app_with_dpop(verifier: Verifier, public_url: &str, dpop: Option<Dpop>) -> Router {
    app_with_layer(verifier, public_url, dpop, |layer| layer)
}

/// [`app_with_dpop`], also accepting certificate-bound tokens (RFC 8705) as `mtls` says
/// (`None`: no certificate source).
#[allow(dead_code)] // the tests use it; the example uses `app_with_layer`.
pub(crate) fn app_with(
    verifier: Verifier,
    public_url: &str,
    dpop: Option<Dpop>,
    mtls: Option<Mtls>,
) -> Router {
    app_with_layer(verifier, public_url, dpop, move |layer| match mtls {
        Some(mtls) => layer.mtls(mtls),
        None => layer,
    })
}

/// [`app_with_dpop`], with `configure` applied to the layer last (the example adds
/// introspection of opaque tokens there).
#[allow(dead_code)] // the example uses it; some tests only `app`.
pub(crate) fn app_with_layer(
    verifier: Verifier,
    public_url: &str,
    dpop: Option<Dpop>,
    configure: impl FnOnce(JwtAuthLayer) -> JwtAuthLayer,
) -> Router {
    let ready = verifier.clone();
    // RFC 9728: `resource` is the audience, `authorization_servers` the issuer.
    let metadata = ProtectedResourceMetadata::from_verifier(&verifier)
        .scopes_supported(SCOPES)
        .resource_name("World Mappers API");
    let metadata_url = format!(
        "{}{}",
        public_url.trim_end_matches('/'),
        metadata.well_known_path()
    );
    let api = Router::new()
        // Any valid token, no scope: lets a client check its credentials (and the load
        // harness compare a protected route with `/healthz`, handler for handler).
        .route("/api/ping", get(|| async { "ok" }))
        .route("/api/location/geocode", get(geocode))
        .route("/api/location/reverse-geocode", get(reverse_geocode))
        .merge(
            // The route-layer style: the guard runs before the handler.
            Router::new()
                .route("/api/directions", get(directions))
                .route_layer(require_scopes(["directions"])),
        )
        .layer(configure(match dpop {
            Some(dpop) => JwtAuthLayer::new(verifier)
                .resource_metadata(metadata_url)
                .dpop(dpop),
            None => JwtAuthLayer::new(verifier).resource_metadata(metadata_url),
        }));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            // For the operator's probe: says why it is not ready (an unreachable issuer, a
            // wrong issuer string, ...). Clients' 503 answers stay generic.
            get(move || {
                let health = ready.key_health();
                let why = ready.key_error();
                async move {
                    match health {
                        KeyHealth::Missing => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            match why {
                                Some(e) => format!("not ready: {e}"),
                                None => "not ready: no keys yet".to_owned(),
                            },
                        ),
                        _ => (StatusCode::OK, "ready".to_owned()),
                    }
                }
            }),
        )
        .merge(metadata.router())
        .merge(api)
}

/// A place's coordinates.
#[derive(Serialize)]
struct Coordinates {
    lat: f64,
    lng: f64,
}

/// A place's address.
#[derive(Serialize)]
struct Address {
    city: &'static str,
    state: &'static str,
    street: &'static str,
}

// The extractor style: the scope check is in the handler's signature.
async fn geocode(_: RequireScopes<Geocode>) -> Json<Coordinates> {
    Json(Coordinates {
        lat: 47.6178819,
        lng: -122.194041,
    })
}

async fn reverse_geocode(_: RequireScopes<ReverseGeocode>) -> Json<Address> {
    Json(Address {
        city: "Bellevue",
        state: "Washington",
        street: "10900 NE 8th Street",
    })
}

#[derive(Deserialize)]
struct Destination {
    destination: Option<String>,
}

async fn directions(claims: Claims, Query(q): Query<Destination>) -> impl IntoResponse {
    let destination = q.destination.unwrap_or_else(|| "the North Pole".to_owned());
    Json(json!({
        "destination": destination,
        "requested_by": claims.client_id().or(claims.subject()),
        "steps": [
            "Head north on 108th Ave NE toward NE 8th St",
            "Turn right onto NE 8th St",
            "Merge onto I-405 N",
            format!("Follow the signs to {destination}"),
        ],
    }))
}

/// The rustls configuration [`tls_settings`] gives for HTTPS.
#[allow(dead_code)] // the example and tests/interop.rs use it; other tests only the routes.
pub(crate) type TlsConfig = std::sync::Arc<bearer_guard::mtls::ServerConfig>;

/// `TLS_CERT` + `TLS_KEY` (HTTPS), `TLS_CLIENT_CA` (client certificates, required, verified
/// and bound to tokens), or `CLIENT_CERT_HEADER` (a proxy's RFC 9440 header, trusted), read
/// through `var` (the environment, in `main`): the TLS configuration and the certificate
/// source.
#[allow(dead_code)] // the example and tests/interop.rs use it; other tests only the routes.
pub(crate) fn tls_settings(
    var: impl Fn(&str) -> Option<String>,
) -> Result<(Option<TlsConfig>, Option<Mtls>), String> {
    let var = |name: &str| var(name).filter(|v| !v.is_empty());
    let read = |name: &str, path: &str| {
        std::fs::read(path).map_err(|e| format!("{name} {path:?} cannot be read: {e}"))
    };
    let header = match var("CLIENT_CERT_HEADER") {
        Some(name) => Some(
            http::HeaderName::try_from(name.as_str())
                .map_err(|_| format!("CLIENT_CERT_HEADER {name:?} is not a header name"))?,
        ),
        None => None,
    };
    let tls = match (var("TLS_CERT"), var("TLS_KEY")) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let ca = match var("TLS_CLIENT_CA") {
                Some(path) => Some(read("TLS_CLIENT_CA", &path)?),
                None => None,
            };
            if ca.is_some() && header.is_some() {
                return Err(
                    "TLS_CLIENT_CA and CLIENT_CERT_HEADER name two certificate sources: choose one"
                        .to_owned(),
                );
            }
            let config = bearer_guard::mtls::server_config(
                &read("TLS_CERT", &cert)?,
                &read("TLS_KEY", &key)?,
                ca.as_deref(),
            )
            .map_err(|e| format!("TLS: {e}"))?;
            Some((config, ca.is_some()))
        }
        _ => return Err("TLS_CERT and TLS_KEY go together".to_owned()),
    };
    if tls.is_none() && var("TLS_CLIENT_CA").is_some() {
        return Err("TLS_CLIENT_CA needs TLS_CERT and TLS_KEY".to_owned());
    }
    let mtls = match (&tls, header) {
        (_, Some(name)) => Some(Mtls::trusted_header(name)),
        (Some((_, true)), None) => Some(Mtls::peer_certificate()),
        _ => None,
    };
    Ok((tls.map(|(config, _)| config), mtls))
}

/// `ISSUER_CA` (a PEM file, one or more CA certificates), read through `var`: an HTTP client
/// for the issuer's metadata and keys that also trusts those CAs (an issuer served with a
/// private CA's certificate), following no redirects. `None` without it: the verifier's own
/// client.
#[allow(dead_code)] // the example and tests/interop.rs use it; other tests only the routes.
#[cfg(feature = "tls")]
pub(crate) fn issuer_http_client(
    var: impl Fn(&str) -> Option<String>,
) -> Result<Option<reqwest::Client>, String> {
    let Some(path) = var("ISSUER_CA").filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let pem =
        std::fs::read(&path).map_err(|e| format!("ISSUER_CA {path:?} cannot be read: {e}"))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("ISSUER_CA {path:?}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("ISSUER_CA {path:?} holds no certificate"));
    }
    reqwest::Client::builder()
        .tls_certs_merge(certs)
        .connect_timeout(std::time::Duration::from_secs(3))
        .timeout(std::time::Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map(Some)
        .map_err(|e| format!("ISSUER_CA: the HTTP client could not be built: {e}"))
}

/// Without the `tls` feature: refuses `ISSUER_CA`.
#[allow(dead_code)] // the example and tests/interop.rs use it; other tests only the routes.
#[cfg(not(feature = "tls"))]
pub(crate) fn issuer_http_client(
    var: impl Fn(&str) -> Option<String>,
) -> Result<Option<reqwest::Client>, String> {
    match var("ISSUER_CA").filter(|v| !v.is_empty()) {
        Some(_) => Err("ISSUER_CA needs the `tls` feature".to_owned()),
        None => Ok(None),
    }
}

/// The introspection settings, read through `var`: `INTROSPECTION_CLIENT_ID` and
/// `INTROSPECTION_CLIENT_SECRET` (both or neither), `INTROSPECTION_URL`,
/// `INTROSPECTION_CACHE_SECS` and `INTROSPECTION_JWT` (`1` or `0`). `http` is the client
/// for the issuer (from `ISSUER_CA`), used for discovery and introspection as well. Returns
/// the builder (for the caller to add a shared cache) and whether signed responses are
/// asked for, or `None` when introspection is off. A setting given without the client, or
/// one of the pair without the other, is refused by name.
#[allow(dead_code)] // the example and tests/world_mappers.rs use it; other tests only the routes.
#[cfg(feature = "introspection")]
pub(crate) fn introspection_settings(
    var: impl Fn(&str) -> Option<String>,
    issuer: &str,
    audience: &str,
    verifier: &Verifier,
    http: Option<reqwest::Client>,
) -> Result<Option<(bearer_guard::introspection::IntrospectorBuilder, bool)>, String> {
    let var = |name: &str| var(name).filter(|v| !v.is_empty());
    let (id, secret) = match (
        var("INTROSPECTION_CLIENT_ID"),
        var("INTROSPECTION_CLIENT_SECRET"),
    ) {
        (Some(id), Some(secret)) => (id, secret),
        (Some(_), None) => {
            return Err(
                "INTROSPECTION_CLIENT_ID is set without INTROSPECTION_CLIENT_SECRET".into(),
            );
        }
        (None, Some(_)) => {
            return Err(
                "INTROSPECTION_CLIENT_SECRET is set without INTROSPECTION_CLIENT_ID".into(),
            );
        }
        (None, None) => {
            for name in [
                "INTROSPECTION_URL",
                "INTROSPECTION_CACHE_SECS",
                "INTROSPECTION_JWT",
            ] {
                if var(name).is_some() {
                    return Err(format!(
                        "{name} is set, but introspection is off: it needs \
                         INTROSPECTION_CLIENT_ID and INTROSPECTION_CLIENT_SECRET"
                    ));
                }
            }
            return Ok(None);
        }
    };
    let mut builder = bearer_guard::introspection::Introspector::builder()
        .issuer(issuer)
        .client_id(id)
        .client_secret(secret)
        .audience(audience);
    if let Some(http) = http {
        builder = builder.http_client(http);
    }
    if let Some(url) = var("INTROSPECTION_URL") {
        builder = builder.introspection_endpoint(url);
    }
    if let Some(secs) = var("INTROSPECTION_CACHE_SECS") {
        let secs: u64 = secs
            .parse()
            .map_err(|_| format!("INTROSPECTION_CACHE_SECS {secs:?} is not a number"))?;
        builder = builder.max_cache_ttl(std::time::Duration::from_secs(secs));
    }
    let signed = match var("INTROSPECTION_JWT").as_deref() {
        None | Some("0") => false,
        Some("1") => true,
        Some(other) => return Err(format!("INTROSPECTION_JWT {other:?} is not 1 or 0")),
    };
    if signed {
        builder = builder.jwt_responses(verifier);
    }
    Ok(Some((builder, signed)))
}

/// Without the `introspection` feature: refuses the introspection settings by name.
#[allow(dead_code)] // the example and tests/world_mappers.rs use it; other tests only the routes.
#[cfg(not(feature = "introspection"))]
pub(crate) fn introspection_settings(
    var: impl Fn(&str) -> Option<String>,
    _issuer: &str,
    _audience: &str,
    _verifier: &Verifier,
    _http: Option<reqwest::Client>,
) -> Result<Option<((), bool)>, String> {
    for name in [
        "INTROSPECTION_CLIENT_ID",
        "INTROSPECTION_CLIENT_SECRET",
        "INTROSPECTION_URL",
        "INTROSPECTION_CACHE_SECS",
        "INTROSPECTION_JWT",
    ] {
        if var(name).is_some_and(|v| !v.is_empty()) {
            return Err(format!(
                "{name} is set, but this build has no introspection: \
                 run with `--features introspection`"
            ));
        }
    }
    Ok(None)
}
