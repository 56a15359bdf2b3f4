//! The token request: discovery of the endpoint, client authentication, the form, retries
//! with backoff, and parsing of the answer.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use serde::Deserialize;
use tokio::time::Instant;
use url::Url;

use super::auth::{Credential, authenticate};
use super::config::ClientAuthMethod;
use super::dpop::{Dpop, Role};
use super::error::{TokenError, TokenErrorKind, clean_remote};
use super::token::AccessToken;
use crate::fetch;

/// Where the token endpoint comes from.
#[derive(Debug, Clone)]
pub(super) enum Target {
    /// Configured.
    Endpoint(Url),
    /// Discovered from this issuer's metadata.
    Issuer(String),
}

/// What discovery found.
#[derive(Debug, Clone)]
pub(super) struct Discovered {
    url: Url,
    auth_method: ClientAuthMethod,
}

/// Everything needed to ask for a token.
pub(super) struct Endpoint {
    pub(super) http: reqwest::Client,
    pub(super) target: Target,
    pub(super) client_id: String,
    pub(super) credential: Credential,
    /// `None`: chosen from the metadata, `client_secret_post` by default.
    pub(super) auth_method: Option<ClientAuthMethod>,
    /// The form parameters besides `grant_type` and the credentials.
    pub(super) form: Vec<(String, String)>,
    pub(super) allow_http: bool,
    pub(super) timeout: Duration,
    pub(super) max_body: usize,
    pub(super) max_attempts: u32,
    pub(super) backoff: Duration,
    pub(super) max_backoff: Duration,
    pub(super) retry_budget: Duration,
    pub(super) default_expires_in: Duration,
    pub(super) discovered: Mutex<Option<Discovered>>,
    /// HTTP requests sent to the token endpoint (retries included).
    pub(super) requests: AtomicU64,
    /// DPoP: the key the tokens are bound to, and the servers' nonces.
    pub(super) dpop: Option<Arc<Dpop>>,
}

/// The longest `Retry-After` taken into account (longer ones exceed any retry budget).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<serde_json::Value>,
    token_type: Option<serde_json::Value>,
    expires_in: Option<serde_json::Value>,
    scope: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: Option<serde_json::Value>,
    error_description: Option<serde_json::Value>,
    error_uri: Option<serde_json::Value>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("target", &self.target)
            .field("client_id", &self.client_id)
            .field("credential", &self.credential)
            .field("auth_method", &self.auth_method)
            .field("form", &self.form)
            .field("timeout", &self.timeout)
            .field("max_attempts", &self.max_attempts)
            .field("retry_budget", &self.retry_budget)
            .field("dpop", &self.dpop.as_ref().map(|d| &d.key))
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Token requests sent so far.
    pub(super) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Asks for a token: discovery if needed, then up to `max_attempts` attempts within the
    /// retry budget.
    pub(super) async fn fetch(&self, min_skew: Duration) -> Result<AccessToken, TokenError> {
        let deadline = Instant::now() + self.retry_budget;
        let (url, auth) = self.resolve().await?;
        let mut backoff = self.backoff;
        let mut attempt = 1;
        loop {
            let per_attempt = self
                .timeout
                .min(deadline.saturating_duration_since(Instant::now()));
            let sent = Instant::now();
            let result =
                match tokio::time::timeout(per_attempt, self.attempt(&url, auth, sent, min_skew))
                    .await
                {
                    Ok(r) => r,
                    Err(_) => Err(TokenError::new(
                        TokenErrorKind::Timeout,
                        format!(
                            "the token endpoint did not answer within {} ms",
                            per_attempt.as_millis()
                        ),
                    )),
                };
            let err = match result {
                Ok(token) => {
                    tracing::debug!(
                        endpoint = %fetch::redact(&url),
                        lifetime_secs = token.lifetime().as_secs(),
                        scope = token.scope().unwrap_or(""),
                        "access token obtained"
                    );
                    return Ok(token);
                }
                Err(e) => e,
            };
            let wait = err.retry_after().unwrap_or_else(|| jitter(backoff));
            let retry = err.is_transient()
                && attempt < self.max_attempts
                && Instant::now() + wait < deadline;
            if !retry {
                if !matches!(err.kind(), TokenErrorKind::OAuth(_)) {
                    // The endpoint may have moved: discover it again next time.
                    self.forget_discovered();
                }
                return Err(err);
            }
            tracing::debug!(
                attempt,
                error = %err,
                wait_ms = wait.as_millis() as u64,
                "token request failed; retrying"
            );
            tokio::time::sleep(wait).await;
            backoff = backoff.saturating_mul(2).min(self.max_backoff);
            attempt += 1;
        }
    }

    /// One token request: a POST, and with DPoP a second one when the server asks for a
    /// nonce (`use_dpop_nonce`, RFC 9449 §8) and sent one.
    async fn attempt(
        &self,
        url: &Url,
        auth: ClientAuthMethod,
        sent: Instant,
        min_skew: Duration,
    ) -> Result<AccessToken, TokenError> {
        match self.send(url, auth, sent, min_skew).await {
            (Err(e), true) if e.oauth_error() == Some("use_dpop_nonce") => {
                tracing::debug!(endpoint = %url, "the token endpoint asked for a DPoP nonce; retrying with it");
                self.send(url, auth, Instant::now(), min_skew).await.0
            }
            (result, _) => result,
        }
    }

    /// One POST to the token endpoint, and whether its answer carried a new DPoP nonce.
    async fn send(
        &self,
        url: &Url,
        auth: ClientAuthMethod,
        sent: Instant,
        min_skew: Duration,
    ) -> (Result<AccessToken, TokenError>, bool) {
        let mut new_nonce = false;
        let result = self
            .send_inner(url, auth, sent, min_skew, &mut new_nonce)
            .await;
        (result, new_nonce)
    }

    async fn send_inner(
        &self,
        url: &Url,
        auth: ClientAuthMethod,
        sent: Instant,
        min_skew: Duration,
        new_nonce: &mut bool,
    ) -> Result<AccessToken, TokenError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let (body, authorization) = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials");
            let authorization = authenticate(&self.client_id, &self.credential, auth, &mut form)?;
            for (name, value) in &self.form {
                form.append_pair(name, value);
            }
            (form.finish(), authorization)
        };
        let mut req = self
            .http
            .post(url.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(body);
        if let Some(authorization) = authorization {
            req = req.header(AUTHORIZATION, authorization);
        }
        if let Some(dpop) = &self.dpop {
            let proof = dpop
                .proof(Role::AuthorizationServer, "POST", url.as_str(), None)
                .map_err(|e| TokenError::new(TokenErrorKind::InvalidResponse, e.to_string()))?;
            req = req.header("dpop", proof);
        }
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let retry_after = retry_after(resp.headers(), SystemTime::now());
        *new_nonce = self
            .dpop
            .as_ref()
            .is_some_and(|d| d.remember(Role::AuthorizationServer, url.as_str(), resp.headers()));
        let body = fetch::read_capped(resp, self.max_body).await;
        if !status.is_success() {
            let oauth = body.ok().and_then(|b| oauth_error(&b));
            return Err(TokenError::from_status(status, oauth, retry_after));
        }
        let body = body.map_err(|e| {
            TokenError::new(
                TokenErrorKind::InvalidResponse,
                format!("the token response could not be read: {e}"),
            )
            .with_status(status)
        })?;
        self.parse(&body, sent, min_skew)
            .map_err(|e| e.with_status(status))
    }

    /// A successful token response (RFC 6749 §5.1).
    fn parse(
        &self,
        body: &[u8],
        sent: Instant,
        min_skew: Duration,
    ) -> Result<AccessToken, TokenError> {
        let invalid = |what: String| TokenError::new(TokenErrorKind::InvalidResponse, what);
        let resp: TokenResponse = serde_json::from_slice(body)
            .map_err(|_| invalid("the token response is not a JSON object".into()))?;
        let token = match resp.access_token {
            Some(serde_json::Value::String(s)) if !s.is_empty() => s,
            _ => return Err(invalid("the token response has no access_token".into())),
        };
        let dpop = self.dpop.is_some();
        match resp.token_type {
            None if !dpop => {}
            Some(serde_json::Value::String(t)) if !dpop && t.eq_ignore_ascii_case("bearer") => {}
            Some(serde_json::Value::String(t)) if dpop && t.eq_ignore_ascii_case("dpop") => {}
            other if dpop => {
                // RFC 9449 §5: a server that does not support DPoP answers with a Bearer
                // token; it is refused rather than sent unbound.
                let shown = other.map_or_else(
                    || "none".to_owned(),
                    |t| t.as_str().map_or_else(|| t.to_string(), str::to_owned),
                );
                return Err(invalid(format!(
                    "a DPoP-bound token was asked for, but the token_type is {:?}, not DPoP \
                     (does the authorization server support DPoP for this client?)",
                    clean_remote(&shown)
                )));
            }
            other => {
                let shown = other.map_or_else(
                    || "none".to_owned(),
                    |t| t.as_str().map_or_else(|| t.to_string(), str::to_owned),
                );
                return Err(invalid(format!(
                    "the token_type {:?} is not Bearer",
                    clean_remote(&shown)
                )));
            }
        }
        let lifetime = match resp.expires_in.as_ref().and_then(expires_in) {
            Some(l) => l,
            None => {
                if resp.expires_in.is_some() {
                    tracing::debug!(
                        "the token response's expires_in is not a number; using the default"
                    );
                }
                self.default_expires_in
            }
        };
        let scope = match resp.scope {
            Some(serde_json::Value::String(s)) => Some(clean_remote(&s)),
            _ => None,
        };
        AccessToken::with_type(&token, dpop, scope, lifetime, min_skew, sent)
            .map_err(|reason| invalid(reason.to_owned()))
    }

    /// The token endpoint and the authentication method.
    async fn resolve(&self) -> Result<(Url, ClientAuthMethod), TokenError> {
        let (url, method) = self.resolve_endpoint().await?;
        match self.credential {
            Credential::Assertion { .. } => Ok((url, ClientAuthMethod::PrivateKeyJwt)),
            Credential::Secret(_) | Credential::Certificate => Ok((url, method)),
        }
    }

    async fn resolve_endpoint(&self) -> Result<(Url, ClientAuthMethod), TokenError> {
        let issuer = match &self.target {
            Target::Endpoint(url) => {
                return Ok((
                    url.clone(),
                    self.auth_method
                        .unwrap_or(ClientAuthMethod::ClientSecretPost),
                ));
            }
            Target::Issuer(issuer) => issuer,
        };
        let cached = self.discovered.lock().ok().and_then(|d| d.clone());
        let found = match cached {
            Some(d) => d,
            None => {
                let found = match tokio::time::timeout(self.timeout, self.discover(issuer)).await {
                    Ok(r) => r?,
                    Err(_) => {
                        return Err(TokenError::new(
                            TokenErrorKind::Discovery,
                            format!(
                                "discovering the token endpoint of {} timed out after {} ms",
                                fetch::redact_str(issuer),
                                self.timeout.as_millis()
                            ),
                        ));
                    }
                };
                tracing::debug!(
                    issuer = %fetch::redact_str(issuer),
                    endpoint = %fetch::redact(&found.url),
                    "token endpoint discovered"
                );
                if let Ok(mut d) = self.discovered.lock() {
                    *d = Some(found.clone());
                }
                found
            }
        };
        Ok((found.url, found.auth_method))
    }

    fn forget_discovered(&self) {
        if let Ok(mut d) = self.discovered.lock() {
            *d = None;
        }
    }

    /// OIDC discovery, then RFC 8414.
    async fn discover(&self, issuer: &str) -> Result<Discovered, TokenError> {
        let urls = fetch::metadata_urls(issuer)
            .map_err(|e| TokenError::new(TokenErrorKind::Discovery, e.0))?;
        let mut errors = Vec::new();
        for url in urls {
            match self.fetch_metadata(&url, issuer).await {
                Ok(d) => return Ok(d),
                Err(e) => errors.push(e),
            }
        }
        Err(TokenError::new(
            TokenErrorKind::Discovery,
            format!(
                "the token endpoint of {} could not be discovered: {}",
                fetch::redact_str(issuer),
                errors.join("; ")
            ),
        ))
    }

    async fn fetch_metadata(&self, url: &Url, issuer: &str) -> Result<Discovered, String> {
        let shown = fetch::redact(url);
        let doc = fetch::get_metadata(&self.http, url, self.max_body).await?;
        // RFC 8414 §3.3: the identical string, trailing slash included.
        let found = doc.get("issuer").and_then(|v| v.as_str());
        if found != Some(issuer) {
            let advice = match found {
                Some(f) if f.trim_end_matches('/') == issuer.trim_end_matches('/') => format!(
                    ": they differ only by a trailing slash; configure `.issuer({:?})` exactly",
                    clean_remote(f)
                ),
                _ => String::new(),
            };
            return Err(format!(
                "GET {shown}: the metadata's issuer {:?} is not {:?}{advice}",
                found.map(clean_remote),
                fetch::redact_str(issuer),
            ));
        }
        // RFC 8705 §5: a client authenticating with its certificate uses the mutual-TLS
        // alias of the token endpoint when the metadata has one.
        let alias = doc
            .get("mtls_endpoint_aliases")
            .and_then(|a| a.get("token_endpoint"))
            .and_then(|v| v.as_str())
            .filter(|_| matches!(self.credential, Credential::Certificate));
        let endpoint = alias
            .or_else(|| doc.get("token_endpoint").and_then(|v| v.as_str()))
            .ok_or_else(|| format!("GET {shown}: the metadata has no token_endpoint"))?;
        let endpoint = Url::parse(endpoint).map_err(|e| {
            format!(
                "GET {shown}: token_endpoint {:?} is invalid: {e}",
                clean_remote(&fetch::redact_str(endpoint))
            )
        })?;
        fetch::check_scheme(&endpoint, self.allow_http).map_err(|reason| {
            format!(
                "GET {shown}: token_endpoint {}: {reason}",
                fetch::redact(&endpoint)
            )
        })?;
        let supported: Option<Vec<&str>> = doc
            .get("token_endpoint_auth_methods_supported")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|m| m.as_str()).collect());
        let auth_method = self.auth_method.unwrap_or_else(|| match supported {
            Some(list)
                if !list.contains(&"client_secret_post")
                    && list.contains(&"client_secret_basic") =>
            {
                ClientAuthMethod::ClientSecretBasic
            }
            _ => ClientAuthMethod::ClientSecretPost,
        });
        Ok(Discovered {
            url: endpoint,
            auth_method,
        })
    }
}

fn transport(mut e: reqwest::Error) -> TokenError {
    // The error is kept as the source: its URL must not show userinfo.
    if let Some(u) = e.url_mut() {
        let _ = u.set_username("");
        let _ = u.set_password(None);
    }
    let kind = if e.is_timeout() {
        TokenErrorKind::Timeout
    } else {
        TokenErrorKind::Transport
    };
    let detail = if e.is_connect() {
        "the token endpoint could not be reached"
    } else {
        "the token request failed"
    };
    TokenError::new(kind, detail).with_source(e)
}

/// The RFC 6749 §5.2 fields of an error body, if it is one.
fn oauth_error(body: &[u8]) -> Option<(String, Option<String>, Option<String>)> {
    let resp: ErrorResponse = serde_json::from_slice(body).ok()?;
    let text = |v: Option<serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => Some(s),
        _ => None,
    };
    let error = text(resp.error).filter(|e| !e.is_empty())?;
    Some((error, text(resp.error_description), text(resp.error_uri)))
}

/// `expires_in` as a number of seconds, or a string of digits (some servers quote it).
fn expires_in(v: &serde_json::Value) -> Option<Duration> {
    match v {
        serde_json::Value::Number(n) => n.as_u64().map(Duration::from_secs).or_else(|| {
            n.as_f64()
                .filter(|f| *f >= 0.0)
                .map(|f| Duration::from_secs_f64(f.min(1e10)))
        }),
        serde_json::Value::String(s) => s.trim().parse::<u64>().ok().map(Duration::from_secs),
        _ => None,
    }
}

/// `Retry-After`: delay-seconds or an IMF-fixdate HTTP-date (RFC 9110 §10.2.3), capped at an
/// hour. A date in the past means now.
pub(super) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let delay = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let at = UNIX_EPOCH + Duration::from_secs(parse_http_date(value)?);
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// Seconds since the Unix epoch of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn parse_http_date(s: &str) -> Option<u64> {
    let mut parts = s.split_ascii_whitespace();
    let _weekday = parts.next().filter(|w| w.len() == 4 && w.ends_with(','))?;
    let day: u64 = parts.next().filter(|d| d.len() == 2)?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: u64 = parts.next().filter(|y| y.len() == 4)?.parse().ok()?;
    let mut hms = parts.next()?.split(':');
    let mut field = |max: u64| -> Option<u64> {
        hms.next()
            .filter(|f| f.len() == 2)
            .and_then(|f| f.parse().ok())
            .filter(|v| *v <= max)
    };
    let (h, m, sec) = (field(23)?, field(59)?, field(60)?);
    if parts.next() != Some("GMT")
        || parts.next().is_some()
        || !(1..=31).contains(&day)
        || year < 1970
    {
        return None;
    }
    // Days from civil (Howard Hinnant), for years from 1970.
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

/// A random delay between half and all of `backoff`.
fn jitter(backoff: Duration) -> Duration {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let half = backoff / 2;
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(if nanos == 0 { 0 } else { random % (nanos + 1) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[cfg(any(feature = "aws-lc-rs", feature = "rust-crypto"))]
    /// Serves the JSON document `doc(addr)` at every path of a server on 127.0.0.1 (it stops
    /// with the test's runtime).
    async fn serve_json(doc: impl FnOnce(std::net::SocketAddr) -> serde_json::Value) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("address");
        let doc = doc(addr);
        let app = ::axum::Router::new().fallback(move || {
            let doc = doc.clone();
            async move { ::axum::Json(doc) }
        });
        tokio::spawn(async move {
            let _ = ::axum::serve(listener, app).await;
        });
        addr.to_string()
    }

    #[cfg(any(feature = "aws-lc-rs", feature = "rust-crypto"))]
    #[tokio::test]
    async fn discovery_compares_the_issuer_exactly() {
        let addr = serve_json(|addr| {
            serde_json::json!({
                "issuer": format!("http://{addr}/"),
                "token_endpoint": format!("http://{addr}/token"),
            })
        })
        .await;
        let source = crate::client::ClientCredentials::builder()
            .issuer(format!("http://{addr}"))
            .client_id("gift-deliveries")
            .client_secret("a-secret-of-some-length")
            .build()
            .expect("source");
        let e = source.token().await.expect_err("the issuer differs");
        assert_eq!(e.kind(), crate::client::TokenErrorKind::Discovery, "{e}");
        let advice = format!("configure `.issuer(\"http://{addr}/\")` exactly");
        assert!(e.to_string().contains(&advice), "{e}");
    }

    #[cfg(any(feature = "aws-lc-rs", feature = "rust-crypto"))]
    #[tokio::test]
    async fn userinfo_in_the_issuer_url_is_never_shown() {
        let addr = serve_json(|_| serde_json::json!({"issuer": "https://other.example/"})).await;
        let source = crate::client::ClientCredentials::builder()
            .issuer(format!("http://user:s3cret@{addr}/"))
            .client_id("gift-deliveries")
            .client_secret("a-secret-of-some-length")
            .build()
            .expect("source");
        let e = source.token().await.expect_err("another issuer");
        let (shown, debug) = (e.to_string(), format!("{e:?}"));
        assert!(shown.contains(&addr), "{shown}");
        assert!(
            !shown.contains("s3cret") && !debug.contains("s3cret"),
            "{debug}"
        );
        assert!(
            !shown.contains("user:") && !debug.contains("user:"),
            "{debug}"
        );
    }

    #[cfg(any(feature = "aws-lc-rs", feature = "rust-crypto"))]
    #[tokio::test]
    async fn userinfo_in_the_token_endpoint_url_is_never_shown() {
        // Nothing listens on port 1 of loopback: the request fails to connect.
        let source = crate::client::ClientCredentials::builder()
            .token_endpoint("http://user:s3cret@127.0.0.1:1/token")
            .client_id("gift-deliveries")
            .client_secret("a-secret-of-some-length")
            .build()
            .expect("source");
        let e = source.token().await.expect_err("unreachable");
        let debug = format!("{e:?} {e}");
        let mut chain = std::error::Error::source(&e);
        let mut all = debug.clone();
        while let Some(c) = chain {
            all.push_str(&format!(" {c} {c:?}"));
            chain = c.source();
        }
        assert!(!all.contains("s3cret"), "{all}");
    }

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(v).expect("header"));
        h
    }

    #[test]
    fn retry_after_in_seconds() {
        let now = SystemTime::now();
        assert_eq!(
            retry_after(&headers("7"), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(&headers("99999999999999999999"), now),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(retry_after(&headers("-1"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn retry_after_as_an_http_date() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2000 12:00:00 GMT"),
            Some(951_825_600)
        );
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777 - 30);
        assert_eq!(
            retry_after(&headers("Sun, 06 Nov 1994 08:49:37 GMT"), now),
            Some(Duration::from_secs(30))
        );
        let later = UNIX_EPOCH + Duration::from_secs(784_111_777 + 30);
        assert_eq!(
            retry_after(&headers("Sun, 06 Nov 1994 08:49:37 GMT"), later),
            Some(Duration::ZERO)
        );
        for bad in [
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 PST",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "soon",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn jitter_stays_within_half_and_all_of_the_backoff() {
        for _ in 0..100 {
            let d = jitter(Duration::from_millis(200));
            assert!(
                d >= Duration::from_millis(100) && d <= Duration::from_millis(200),
                "{d:?}"
            );
        }
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn expires_in_may_be_a_number_or_a_quoted_number() {
        use serde_json::json;
        assert_eq!(expires_in(&json!(3600)), Some(Duration::from_secs(3600)));
        assert_eq!(expires_in(&json!(1.5)), Some(Duration::from_millis(1500)));
        assert_eq!(expires_in(&json!("3599")), Some(Duration::from_secs(3599)));
        assert_eq!(expires_in(&json!(-5)), None);
        assert_eq!(expires_in(&json!(null)), None);
    }

    #[test]
    fn oauth_error_bodies_are_recognized() {
        assert_eq!(
            oauth_error(br#"{"error":"invalid_client","error_description":"bad"}"#),
            Some(("invalid_client".into(), Some("bad".into()), None))
        );
        assert_eq!(oauth_error(b"<html>"), None);
        assert_eq!(oauth_error(br#"{"error":42}"#), None);
        assert_eq!(oauth_error(br#"{"message":"nope"}"#), None);
    }
}
