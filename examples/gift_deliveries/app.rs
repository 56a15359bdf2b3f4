//! Gift Deliveries' settings and its call to the World Mappers API (shared with
//! `tests/gift_deliveries.rs`).

use std::time::Duration;

use bearer_guard::Algorithm;
use bearer_guard::client::{
    AddBearerLayer, BoxError, ClientAuthMethod, ClientCredentials, DpopKey, TokenError,
};
use bytes::Bytes;
use tower::{ServiceBuilder, ServiceExt};

pub(crate) const DEFAULT_AUDIENCE: &str = "urn:worldmappers";
pub(crate) const DEFAULT_API_URL: &str = "http://127.0.0.1:7001";
/// The scope of `GET /api/directions`, the route this client calls.
pub(crate) const DEFAULT_SCOPE: &str = "directions";

/// Where the token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenFrom {
    /// The token endpoint itself (`TOKEN_URL`).
    Endpoint(String),
    /// The issuer, whose metadata names the token endpoint (`ISSUER_BASE_URL`, or
    /// `https://<AUTH0_DOMAIN>/`).
    Issuer(String),
}

/// The configuration, read from the environment.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) audience: String,
    pub(crate) scope: String,
    pub(crate) api_url: String,
    pub(crate) token_from: TokenFrom,
    /// `DPOP=1`: get a DPoP-bound token for a new ES256 key and send each call with a proof.
    pub(crate) dpop: bool,
    /// `CLIENT_CERT` and `CLIENT_KEY` (PEM files): authenticate with this client certificate
    /// (RFC 8705 `tls_client_auth`, no secret) and call the API over mutual TLS with it.
    pub(crate) client_cert: Option<(String, String)>,
    /// `CA_CERT` (a PEM file): also trust this CA for TLS (a private CA's servers).
    pub(crate) ca_cert: Option<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("client_id", &self.client_id)
            .field("audience", &self.audience)
            .field("scope", &self.scope)
            .field("api_url", &self.api_url)
            .field("token_from", &self.token_from)
            .field("dpop", &self.dpop)
            .field("client_cert", &self.client_cert)
            .field("ca_cert", &self.ca_cert)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Reads the settings through `var` (the environment, in `main`). The crate's own names
    /// win; the names of Auth0's Node samples (`AUTH0_DOMAIN`, `RESOURCE_SERVER`,
    /// `AUTH0_CLIENT_ID`, `AUTH0_CLIENT_SECRET`) are read when those are unset, so that the
    /// same `.env` runs both.
    pub(crate) fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let either = |ours: &str, auth0: &str| var(ours).or_else(|| var(auth0));
        let required = |ours: &str, auth0: &str| {
            either(ours, auth0).ok_or_else(|| {
                format!(
                    "{ours} (or {auth0}) is not set (`cargo run --example world_mappers` \
                     prints development credentials)"
                )
            })
        };
        let client_id = required("CLIENT_ID", "AUTH0_CLIENT_ID")?;
        let client_cert = match (var("CLIENT_CERT"), var("CLIENT_KEY")) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => return Err("CLIENT_CERT and CLIENT_KEY go together".to_owned()),
        };
        // With a client certificate, the certificate is the credential.
        let client_secret = match &client_cert {
            Some(_) => either("CLIENT_SECRET", "AUTH0_CLIENT_SECRET").unwrap_or_default(),
            None => required("CLIENT_SECRET", "AUTH0_CLIENT_SECRET")?,
        };
        let token_from = match (
            var("TOKEN_URL"),
            var("ISSUER_BASE_URL"),
            var("AUTH0_DOMAIN"),
        ) {
            (Some(url), _, _) => TokenFrom::Endpoint(url),
            (None, Some(issuer), _) => TokenFrom::Issuer(issuer),
            (None, None, Some(domain)) => TokenFrom::Issuer(auth0_issuer(&domain)),
            (None, None, None) => {
                return Err(
                    "set ISSUER_BASE_URL (or TOKEN_URL, or AUTH0_DOMAIN); `cargo run \
                            --example world_mappers` prints development values"
                        .to_owned(),
                );
            }
        };
        let dpop = match var("DPOP").as_deref() {
            None | Some("0" | "false") => false,
            Some("1" | "true") => true,
            Some(other) => return Err(format!("DPOP {other:?} is not 1 or 0")),
        };
        Ok(Self {
            client_id,
            client_secret,
            audience: either("AUDIENCE", "RESOURCE_SERVER")
                .unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned()),
            scope: var("SCOPE").unwrap_or_else(|| DEFAULT_SCOPE.to_owned()),
            api_url: var("API_URL").unwrap_or_else(|| DEFAULT_API_URL.to_owned()),
            token_from,
            dpop,
            client_cert,
            ca_cert: var("CA_CERT"),
        })
    }

    /// The HTTP client for the token endpoint and the API: with `CLIENT_CERT`, it presents
    /// that certificate (so that a certificate-bound token travels with it).
    pub(crate) fn http_client(&self) -> Result<reqwest::Client, String> {
        let builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
        let builder = self.with_tls_files(builder)?;
        builder
            .build()
            .map_err(|e| format!("the HTTP client could not be built: {e}"))
    }

    #[cfg(feature = "tls")]
    fn with_tls_files(
        &self,
        mut builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, String> {
        let read = |name: &str, path: &str| {
            std::fs::read(path).map_err(|e| format!("{name} {path:?} cannot be read: {e}"))
        };
        if let Some(path) = &self.ca_cert {
            let ca = reqwest::Certificate::from_pem(&read("CA_CERT", path)?)
                .map_err(|e| format!("CA_CERT {path:?}: {e}"))?;
            builder = builder.add_root_certificate(ca);
        }
        if let Some((cert, key)) = &self.client_cert {
            let mut pem = read("CLIENT_CERT", cert)?;
            pem.push(b'\n');
            pem.extend(read("CLIENT_KEY", key)?);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                format!("CLIENT_CERT/CLIENT_KEY: not a PEM certificate and key: {e}")
            })?;
            builder = builder.identity(identity);
        }
        Ok(builder)
    }

    #[cfg(not(feature = "tls"))]
    fn with_tls_files(
        &self,
        builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, String> {
        if self.client_cert.is_some() || self.ca_cert.is_some() {
            return Err("CLIENT_CERT and CA_CERT need the `tls` feature".to_owned());
        }
        Ok(builder)
    }

    /// The token source these settings describe.
    pub(crate) fn token_source(&self) -> Result<ClientCredentials, String> {
        let builder = ClientCredentials::builder().client_id(&self.client_id);
        let builder = if self.client_cert.is_some() {
            // RFC 8705 §2.1: the certificate authenticates the client.
            builder
                .http_client(self.http_client()?)
                .auth_method(ClientAuthMethod::TlsClientAuth)
        } else {
            builder.client_secret(&self.client_secret)
        };
        let builder = builder
            .audience(&self.audience)
            // Authorization servers that grant only requested scopes (oidc-provider; Okta
            // requires `scope` for client credentials) would otherwise grant none.
            .scope(&self.scope);
        let mut builder = match &self.token_from {
            TokenFrom::Endpoint(url) => builder.token_endpoint(url),
            TokenFrom::Issuer(issuer) => builder.issuer(issuer),
        };
        if self.dpop {
            let key = DpopKey::generate(Algorithm::ES256).map_err(|e| e.to_string())?;
            builder = builder.dpop(key);
        }
        builder.build().map_err(|e| e.to_string())
    }
}

/// Auth0's issuer for a tenant domain: `https://<domain>/` (a scheme or a trailing slash
/// given with the domain is tolerated).
pub(crate) fn auth0_issuer(domain: &str) -> String {
    let domain = domain.trim();
    let domain = domain.strip_prefix("https://").unwrap_or(domain);
    format!("https://{}/", domain.trim_end_matches('/'))
}

/// Gets a token and calls `GET /api/directions?destination=…`: the answer's body, or one
/// readable line saying why not.
pub(crate) async fn directions(settings: &Settings, destination: &str) -> Result<Bytes, String> {
    let source = settings.token_source()?;
    // The API client: reqwest under the AddBearer middleware, which sends the token and,
    // should the API refuse it as invalid, gets a new one and retries once.
    let http = settings.http_client()?;
    let api = ServiceBuilder::new()
        .layer(AddBearerLayer::new(source))
        .service_fn(move |req: http::Request<Bytes>| {
            let http = http.clone();
            async move {
                let req = reqwest::Request::try_from(req.map(reqwest::Body::from))?;
                let res = http.execute(req).await?;
                let mut out = http::Response::builder().status(res.status());
                if let Some(h) = out.headers_mut() {
                    *h = res.headers().clone();
                }
                Ok::<_, BoxError>(out.body(res.bytes().await?)?)
            }
        });

    let api_url = &settings.api_url;
    let mut url = url::Url::parse(api_url)
        .and_then(|base| base.join("/api/directions"))
        .map_err(|e| format!("API_URL {api_url:?} is not a URL: {e}"))?;
    url.query_pairs_mut()
        .append_pair("destination", destination);
    let req = http::Request::get(url.as_str())
        .header(http::header::ACCEPT, "application/json")
        .body(Bytes::new())
        .map_err(|e| format!("the request could not be built: {e}"))?;

    let res = api
        .oneshot(req)
        .await
        .map_err(|e| match e.downcast_ref::<TokenError>() {
            Some(e) => format!("could not get an access token: {e}"),
            None => format!(
                "could not reach the World Mappers API at {api_url}: {}",
                chain(&*e)
            ),
        })?;
    if !res.status().is_success() {
        return Err(refusal(&res, &settings.scope));
    }
    Ok(res.into_body())
}

/// One line: the status, what is missing for a 403 `insufficient_scope`, and the API's
/// `WWW-Authenticate` challenge or the start of its body.
pub(crate) fn refusal(res: &http::Response<Bytes>, requested_scope: &str) -> String {
    let challenge = res
        .headers()
        .get(http::header::WWW_AUTHENTICATE)
        .map(|c| String::from_utf8_lossy(c.as_bytes()).into_owned());
    let detail = match &challenge {
        Some(challenge) => challenge.clone(),
        None => one_line(&String::from_utf8_lossy(res.body()), 200),
    };
    let mut line = format!(
        "the World Mappers API refused the request: HTTP {}",
        res.status()
    );
    if res.status() == http::StatusCode::FORBIDDEN
        && let Some(needed) = challenge.as_deref().and_then(|c| param(c, "scope"))
    {
        line.push_str(&format!(
            ": the token lacks the scope {needed:?} (this client asked for {requested_scope:?}: \
             set SCOPE, and let the client be granted it at the authorization server)"
        ));
    }
    if !detail.is_empty() {
        line.push_str(": ");
        line.push_str(&detail);
    }
    line
}

/// A quoted parameter of a `WWW-Authenticate: Bearer` challenge (RFC 6750 §3).
pub(crate) fn param<'a>(challenge: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = challenge.strip_prefix("Bearer")?;
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        let (key, after) = rest.split_once('=')?;
        let after = after.strip_prefix('"')?;
        let end = after.find('"')?;
        if key.trim() == name {
            return Some(&after[..end]);
        }
        rest = &after[end + 1..];
    }
}

/// The directions in the API's answer, as lines for the terminal.
pub(crate) fn directions_text(body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let steps = parsed
        .as_ref()
        .and_then(|v| v.get("steps"))
        .and_then(|s| s.as_array());
    match (parsed.as_ref(), steps) {
        (Some(doc), Some(steps)) => {
            let to = doc
                .get("destination")
                .and_then(|d| d.as_str())
                .unwrap_or("the destination");
            let mut out = format!("Directions to {to}:");
            for (i, step) in steps.iter().enumerate() {
                let step = step
                    .as_str()
                    .map_or_else(|| step.to_string(), str::to_owned);
                out.push_str(&format!("\n  {}. {step}", i + 1));
            }
            out
        }
        _ => String::from_utf8_lossy(body).into_owned(),
    }
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn one_line(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    flat.trim().to_owned()
}
