//! HTTP: authorization-server metadata discovery and JWKS download.
//!
//! Every fetch is bounded in time (the fetch timeout wraps the whole exchange, whatever
//! client is injected) and in size (the body is read in chunks up to a cap). The token's
//! `kid` never goes into a URL.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use http::header::{ACCEPT, CACHE_CONTROL, ETAG, IF_NONE_MATCH};
use url::Url;

/// Why a fetch failed. The text is for logs (it never contains token material).
#[derive(Debug, Clone)]
pub(crate) struct FetchError(pub(crate) String);

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the JWKS URI comes from.
#[derive(Debug, Clone)]
pub(crate) enum RemoteSource {
    /// OIDC discovery, then RFC 8414 metadata, from the issuer.
    Discovery,
    /// A configured JWKS URI.
    Jwks(Url),
}

/// A JWKS download.
#[derive(Debug)]
pub(crate) enum JwksResponse {
    /// 304: the set we hold is current.
    NotModified { max_age: Option<Duration> },
    /// A new document.
    Body {
        bytes: Vec<u8>,
        etag: Option<String>,
        max_age: Option<Duration>,
    },
}

#[derive(Debug)]
pub(crate) struct Fetcher {
    client: reqwest::Client,
    source: RemoteSource,
    issuer: String,
    allow_http: bool,
    timeout: Duration,
    max_body: usize,
    discovered: Mutex<Option<Url>>,
    /// With [`VerifierBuilder::issuer_from_discovery`](crate::VerifierBuilder): `issuer` is
    /// the discovery base, and the metadata's `issuer` (same origin) is set here, once.
    discovered_issuer: Option<Arc<OnceLock<String>>>,
    /// When a misconfiguration (the metadata naming another issuer) was last logged at
    /// ERROR: the first occurrence, then at most once per [`MISCONFIGURATION_LOG_EVERY`].
    misconfiguration_logged: Mutex<Option<Instant>>,
}

/// How often a persisting misconfiguration is logged again at ERROR.
const MISCONFIGURATION_LOG_EVERY: Duration = Duration::from_secs(600);

impl Fetcher {
    pub(crate) fn new(
        client: reqwest::Client,
        source: RemoteSource,
        issuer: String,
        allow_http: bool,
        timeout: Duration,
        max_body: usize,
    ) -> Self {
        Self {
            client,
            source,
            issuer,
            allow_http,
            timeout,
            max_body,
            discovered: Mutex::new(None),
            discovered_issuer: None,
            misconfiguration_logged: Mutex::new(None),
        }
    }

    /// Takes the issuer from the metadata found under the configured discovery base.
    pub(crate) fn with_discovered_issuer(mut self, issuer: Arc<OnceLock<String>>) -> Self {
        self.discovered_issuer = Some(issuer);
        self
    }

    /// The issuer the keys are fetched for.
    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Downloads the JWKS (discovering its URI first if needed), conditionally on `etag`.
    pub(crate) async fn fetch_jwks(&self, etag: Option<&str>) -> Result<JwksResponse, FetchError> {
        match tokio::time::timeout(self.timeout, self.fetch_jwks_inner(etag)).await {
            Ok(r) => r,
            Err(_) => Err(FetchError(format!(
                "timed out after {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    async fn fetch_jwks_inner(&self, etag: Option<&str>) -> Result<JwksResponse, FetchError> {
        let uri = self.jwks_uri().await?;
        let mut req = self
            .client
            .get(uri.clone())
            .header(ACCEPT, "application/jwk-set+json, application/json");
        if let Some(tag) = etag {
            req = req.header(IF_NONE_MATCH, tag);
        }
        let shown = redact(&uri);
        let resp = req
            .send()
            .await
            .map_err(|e| FetchError(format!("GET {shown}: {}", request_error(e))))?;
        let status = resp.status();
        let max_age = max_age(resp.headers());
        if status == reqwest::StatusCode::NOT_MODIFIED && etag.is_some() {
            return Ok(JwksResponse::NotModified { max_age });
        }
        if !status.is_success() {
            if matches!(self.source, RemoteSource::Discovery) {
                // The metadata may have moved the JWKS: discover again next time.
                self.forget_discovered();
            }
            return Err(FetchError(format!("GET {shown}: HTTP {status}")));
        }
        let etag = resp
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= 256)
            .map(str::to_owned);
        let bytes = read_capped(resp, self.max_body)
            .await
            .map_err(|e| FetchError(format!("GET {shown}: {e}")))?;
        Ok(JwksResponse::Body {
            bytes,
            etag,
            max_age,
        })
    }

    fn forget_discovered(&self) {
        if let Ok(mut d) = self.discovered.lock() {
            *d = None;
        }
    }

    async fn jwks_uri(&self) -> Result<Url, FetchError> {
        match &self.source {
            RemoteSource::Jwks(u) => Ok(u.clone()),
            RemoteSource::Discovery => {
                if let Some(u) = self.discovered.lock().ok().and_then(|d| d.clone()) {
                    return Ok(u);
                }
                let u = self.discover().await?;
                if let Ok(mut d) = self.discovered.lock() {
                    *d = Some(u.clone());
                }
                Ok(u)
            }
        }
    }

    /// OIDC discovery first, then RFC 8414; the metadata's `issuer` must be ours.
    async fn discover(&self) -> Result<Url, FetchError> {
        let mut errors = Vec::new();
        for url in metadata_urls(&self.issuer)? {
            match self.fetch_metadata(&url).await {
                Ok(u) => return Ok(u),
                Err(e) => errors.push(e.0),
            }
        }
        Err(FetchError(format!(
            "discovery failed: {}",
            errors.join("; ")
        )))
    }

    async fn fetch_metadata(&self, url: &Url) -> Result<Url, FetchError> {
        let shown = redact(url);
        let resp = self
            .client
            .get(url.clone())
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| FetchError(format!("GET {shown}: {}", request_error(e))))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(FetchError(format!("GET {shown}: HTTP {status}")));
        }
        let body = read_capped(resp, self.max_body)
            .await
            .map_err(|e| FetchError(format!("GET {shown}: {e}")))?;
        let doc: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| FetchError(format!("GET {shown}: the metadata is not JSON")))?;
        let issuer = doc.get("issuer").and_then(|v| v.as_str());
        match &self.discovered_issuer {
            Some(found) => self.take_issuer(found, url, issuer)?,
            None if issuer != Some(self.issuer.as_str()) => {
                let msg = format!(
                    "GET {shown}: the metadata's issuer {:?} is not the configured issuer {:?}{}",
                    issuer.map(|s| truncate(s, 200)),
                    self.issuer,
                    issuer.map_or_else(String::new, |i| issuer_advice(&self.issuer, i)),
                );
                self.log_misconfiguration(&msg);
                return Err(FetchError(msg));
            }
            None => {}
        }
        let jwks = doc
            .get("jwks_uri")
            .and_then(|v| v.as_str())
            .ok_or_else(|| FetchError(format!("GET {shown}: the metadata has no jwks_uri")))?;
        let jwks = Url::parse(jwks).map_err(|e| {
            FetchError(format!(
                "GET {shown}: jwks_uri {:?} is invalid: {e}",
                truncate(jwks, 200)
            ))
        })?;
        check_scheme(&jwks, self.allow_http).map_err(|reason| {
            FetchError(format!("GET {shown}: jwks_uri {}: {reason}", redact(&jwks)))
        })?;
        Ok(jwks)
    }

    /// `issuer_from_discovery`: the metadata's `issuer` must be an https (or loopback http)
    /// URL of the discovery URL's origin; the first one found is kept, and later metadata
    /// must name the same.
    fn take_issuer(
        &self,
        found: &OnceLock<String>,
        url: &Url,
        issuer: Option<&str>,
    ) -> Result<(), FetchError> {
        let shown = redact(url);
        let issuer =
            issuer.ok_or_else(|| FetchError(format!("GET {shown}: the metadata has no issuer")))?;
        let parsed = Url::parse(issuer).map_err(|e| {
            FetchError(format!(
                "GET {shown}: the metadata's issuer {:?} is not a URL: {e}",
                truncate(issuer, 200)
            ))
        })?;
        if parsed.origin() != url.origin()
            || check_scheme(&parsed, false).is_err()
            || !parsed.username().is_empty()
            || parsed.password().is_some()
            || parsed.fragment().is_some()
            || issuer.trim() != issuer
        {
            let msg = format!(
                "GET {shown}: the metadata's issuer {:?} is not an https (or loopback) URL \
                 of the discovery URL's origin {}: refused",
                truncate(issuer, 200),
                url.origin().ascii_serialization()
            );
            self.log_misconfiguration(&msg);
            return Err(FetchError(msg));
        }
        let kept = found.get_or_init(|| issuer.to_owned());
        if kept != issuer {
            let msg = format!(
                "GET {shown}: the metadata's issuer {:?} differs from the issuer discovered \
                 first, {kept:?}: refused (restart to accept a new issuer)",
                truncate(issuer, 200)
            );
            self.log_misconfiguration(&msg);
            return Err(FetchError(msg));
        }
        Ok(())
    }

    /// Logs a misconfiguration at ERROR: the first time, then at most once per
    /// [`MISCONFIGURATION_LOG_EVERY`] (each failed fetch is logged at WARN anyway).
    fn log_misconfiguration(&self, msg: &str) {
        let Ok(mut last) = self.misconfiguration_logged.lock() else {
            return;
        };
        let now = Instant::now();
        if last.is_some_and(|t| now.saturating_duration_since(t) < MISCONFIGURATION_LOG_EVERY) {
            return;
        }
        *last = Some(now);
        tracing::error!(
            issuer = %self.issuer,
            "the issuer is misconfigured, every token will be refused with 503 until it is \
             fixed: {msg}"
        );
    }
}

/// When the configured and the discovered issuer differ only by a trailing slash, the
/// string to configure.
fn issuer_advice(configured: &str, discovered: &str) -> String {
    if configured != discovered
        && configured.trim_end_matches('/') == discovered.trim_end_matches('/')
    {
        format!(
            ": they differ only by a trailing slash, and tokens carry the metadata's issuer \
             in `iss`: configure `.issuer({discovered:?})` exactly"
        )
    } else {
        String::new()
    }
}

/// A URL string as it may be logged or shown: without userinfo when it parses as a URL,
/// else as given.
#[cfg(feature = "client")]
pub(crate) fn redact_str(url: &str) -> String {
    match Url::parse(url) {
        Ok(u) if !u.username().is_empty() || u.password().is_some() => redact(&u),
        _ => url.to_owned(),
    }
}

/// A URL as it may be logged or shown: without userinfo (`user:password@`).
pub(crate) fn redact(url: &Url) -> String {
    if url.username().is_empty() && url.password().is_none() {
        return url.to_string();
    }
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

/// The first `max` characters of `s` (for log lines about issuer-supplied text).
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The metadata URLs to try for an issuer: OIDC discovery (RFC 8414 §5 compatible form),
/// then RFC 8414 §3 (`/.well-known/oauth-authorization-server` inserted before the path).
pub(crate) fn metadata_urls(issuer: &str) -> Result<Vec<Url>, FetchError> {
    let base = Url::parse(issuer).map_err(|e| FetchError(format!("issuer: {e}")))?;
    let path = base.path().trim_end_matches('/').to_owned();
    let mut oidc = base.clone();
    oidc.set_path(&format!("{path}/.well-known/openid-configuration"));
    oidc.set_query(None);
    let mut oauth = base;
    oauth.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    oauth.set_query(None);
    Ok(vec![oidc, oauth])
}

/// `https`, or `http` to a loopback host, or `http` anywhere when allowed.
pub(crate) fn check_scheme(url: &Url, allow_http: bool) -> Result<(), &'static str> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_http || is_loopback(url) => Ok(()),
        "http" => Err("plain http is allowed only to loopback hosts"),
        _ => Err("the scheme is not http or https"),
    }
}

/// 127.0.0.0/8, ::1 or `localhost`.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// `max-age` from `Cache-Control` (`no-cache` / `no-store` count as 0).
pub(crate) fn max_age(headers: &http::HeaderMap) -> Option<Duration> {
    let mut out = None;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let directive = directive.trim();
            let (name, arg) = match directive.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                None => (directive, None),
            };
            if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store") {
                return Some(Duration::ZERO);
            }
            if name.eq_ignore_ascii_case("max-age")
                && let Some(secs) = arg.and_then(|a| a.parse::<u64>().ok())
            {
                out = Some(Duration::from_secs(secs));
            }
        }
    }
    out
}

/// GETs an authorization server's metadata document (RFC 8414) as JSON, its body capped at
/// `max_body` bytes. Errors name the URL without userinfo; the issuer check is the caller's.
#[cfg(feature = "client")]
pub(crate) async fn get_metadata(
    http: &reqwest::Client,
    url: &Url,
    max_body: usize,
) -> Result<serde_json::Value, String> {
    let shown = redact(url);
    let resp = http
        .get(url.clone())
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("GET {shown}: {}", request_error(e)))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("GET {shown}: HTTP {status}"));
    }
    let body = read_capped(resp, max_body)
        .await
        .map_err(|e| format!("GET {shown}: {e}"))?;
    serde_json::from_slice(&body).map_err(|_| format!("GET {shown}: the metadata is not JSON"))
}

/// Reads a response body, refusing it once it passes `max` bytes.
pub(crate) async fn read_capped(
    mut resp: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(format!("the body is larger than the {max}-byte limit"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading the body: {}", request_error(e)))?
    {
        if body.len() + chunk.len() > max {
            return Err(format!("the body is larger than the {max}-byte limit"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A reqwest error's text and causes, without its URL: the caller names the URL,
/// [redacted](redact) (reqwest's copy would show userinfo).
pub(crate) fn request_error(e: reqwest::Error) -> String {
    // reqwest's Display names the URL too (userinfo included).
    error_chain(&e.without_url())
}

pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The default client: connect timeout, total timeout, and redirects only to the same origin
/// (scheme, host and port): a redirect elsewhere could swap the keys, or downgrade https.
pub(crate) fn default_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(timeout.min(Duration::from_secs(3)))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            let same_origin = attempt
                .previous()
                .first()
                .is_some_and(|first| first.origin() == attempt.url().origin());
            if attempt.previous().len() >= 5 {
                attempt.error("too many redirects")
            } else if !same_origin {
                attempt.error("a redirect to another origin (scheme, host or port) is not followed")
            } else {
                attempt.follow()
            }
        }))
        .user_agent(concat!("bearer-guard/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_urls_for_an_issuer_with_a_trailing_slash() {
        let u = metadata_urls("https://tenant.auth0.com/").expect("urls");
        assert_eq!(
            u[0].as_str(),
            "https://tenant.auth0.com/.well-known/openid-configuration"
        );
        assert_eq!(
            u[1].as_str(),
            "https://tenant.auth0.com/.well-known/oauth-authorization-server"
        );
    }

    #[test]
    fn metadata_urls_for_an_issuer_with_a_path() {
        let u = metadata_urls("https://idp.example.com/realms/acme").expect("urls");
        assert_eq!(
            u[0].as_str(),
            "https://idp.example.com/realms/acme/.well-known/openid-configuration"
        );
        assert_eq!(
            u[1].as_str(),
            "https://idp.example.com/.well-known/oauth-authorization-server/realms/acme"
        );
    }

    #[test]
    fn userinfo_is_stripped_from_shown_urls() {
        let u = Url::parse("https://user:secret@idp.example.com/jwks").expect("url");
        assert_eq!(redact(&u), "https://idp.example.com/jwks");
        let u = Url::parse("https://idp.example.com/jwks").expect("url");
        assert_eq!(redact(&u), "https://idp.example.com/jwks");
    }

    #[test]
    fn a_trailing_slash_difference_gets_advice() {
        let advice = issuer_advice("https://t.auth0.com", "https://t.auth0.com/");
        assert!(
            advice.contains(r#"configure `.issuer("https://t.auth0.com/")` exactly"#),
            "{advice}"
        );
        assert_eq!(issuer_advice("https://a.example", "https://b.example/"), "");
    }

    #[test]
    fn loopback_hosts_may_use_http() {
        for ok in [
            "http://127.0.0.1:1/",
            "http://127.9.9.9/",
            "http://[::1]:8/",
            "http://localhost/",
        ] {
            assert!(
                check_scheme(&Url::parse(ok).expect("url"), false).is_ok(),
                "{ok}"
            );
        }
        assert!(check_scheme(&Url::parse("http://10.0.0.1/").expect("url"), false).is_err());
        assert!(check_scheme(&Url::parse("http://10.0.0.1/").expect("url"), true).is_ok());
        assert!(check_scheme(&Url::parse("ftp://localhost/").expect("url"), true).is_err());
    }

    #[test]
    fn cache_control_max_age_is_read() {
        let mut h = http::HeaderMap::new();
        h.insert(
            CACHE_CONTROL,
            "public, max-age=300, must-revalidate".parse().expect("hv"),
        );
        assert_eq!(max_age(&h), Some(Duration::from_secs(300)));
        h.insert(CACHE_CONTROL, "no-store".parse().expect("hv"));
        assert_eq!(max_age(&h), Some(Duration::ZERO));
        h.clear();
        assert_eq!(max_age(&h), None);
    }
}
