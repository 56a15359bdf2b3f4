//! The RFC 7662 client: finds the endpoint (configured, or `introspection_endpoint` from
//! the issuer's metadata), authenticates as the client module does, and posts
//! `token=…&token_type_hint=access_token` with the JWKS fetches' hygiene: a timeout over the
//! whole exchange, a capped body, same-origin redirects only, https except to loopback.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use url::Url;

use crate::client::{ClientAuthMethod, Credential, authenticate};
use crate::fetch;

/// Where the endpoint comes from.
#[derive(Debug, Clone)]
pub(super) enum Target {
    Endpoint(Url),
    Discovery,
}

/// What the endpoint discovered says.
#[derive(Debug, Clone)]
struct Discovered {
    url: Url,
    method: ClientAuthMethod,
}

/// The body the endpoint answered with (status 200).
#[derive(Debug)]
pub(super) struct Body {
    pub(super) bytes: Vec<u8>,
    /// The `Content-Type` header: `Ok(None)` when absent, `Err(NotAscii)` when it is not
    /// visible ASCII.
    pub(super) content_type: Result<Option<String>, NotAscii>,
}

/// A header value that is not visible ASCII (not shown in logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct NotAscii;

/// Why the endpoint gave no usable answer. The text names URLs and statuses, never the
/// token or the credentials.
#[derive(Debug, Clone)]
pub(super) struct CallError {
    pub(super) reason: String,
    pub(super) retry_after: Option<Duration>,
    /// The endpoint refused our client credentials (401 / 403): a configuration error.
    pub(super) credentials_refused: bool,
}

impl CallError {
    fn new(reason: String) -> Self {
        Self {
            reason,
            retry_after: None,
            credentials_refused: false,
        }
    }
}

pub(super) struct Client {
    pub(super) http: reqwest::Client,
    pub(super) target: Target,
    pub(super) issuer: String,
    pub(super) client_id: String,
    pub(super) credential: Credential,
    /// `None`: from the metadata (`introspection_endpoint_auth_methods_supported`), else
    /// `client_secret_basic`, which RFC 6749 §2.3.1 requires servers to support.
    pub(super) method: Option<ClientAuthMethod>,
    pub(super) allow_http: bool,
    pub(super) timeout: Duration,
    pub(super) max_body: usize,
    /// The `Accept` header: `application/json`, or the JWT response media type (RFC 9701).
    pub(super) accept: &'static str,
    discovered: Mutex<Option<Discovered>>,
    calls: AtomicU64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("target", &self.target)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("credential", &self.credential)
            .field("method", &self.method)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        http: reqwest::Client,
        target: Target,
        issuer: String,
        client_id: String,
        credential: Credential,
        method: Option<ClientAuthMethod>,
        allow_http: bool,
        timeout: Duration,
        max_body: usize,
        accept: &'static str,
    ) -> Self {
        Self {
            http,
            target,
            issuer,
            client_id,
            credential,
            method,
            allow_http,
            timeout,
            max_body,
            accept,
            discovered: Mutex::new(None),
            calls: AtomicU64::new(0),
        }
    }

    /// Introspection requests sent so far.
    pub(super) fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Asks the endpoint about `token`, discovery included, within the timeout.
    pub(super) async fn introspect(&self, token: &str) -> Result<Body, CallError> {
        match tokio::time::timeout(self.timeout, self.introspect_inner(token)).await {
            Ok(r) => r,
            Err(_) => Err(CallError::new(format!(
                "the introspection endpoint did not answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    async fn introspect_inner(&self, token: &str) -> Result<Body, CallError> {
        let (url, method) = self.endpoint().await?;
        let shown = fetch::redact(&url);
        let (body, authorization) = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("token", token);
            form.append_pair("token_type_hint", "access_token");
            let authorization = authenticate(&self.client_id, &self.credential, method, &mut form)
                .map_err(|e| CallError::new(format!("POST {shown}: {e}")))?;
            (form.finish(), authorization)
        };
        let mut req = self
            .http
            .post(url.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, self.accept)
            .body(body);
        if let Some(a) = authorization {
            req = req.header(AUTHORIZATION, a);
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        let resp = req.send().await.map_err(|e| {
            self.forget_discovered();
            CallError::new(format!("POST {shown}: {}", fetch::request_error(e)))
        })?;
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(CallError {
                reason: format!(
                    "POST {shown}: HTTP {status}: the authorization server refused our client \
                     credentials (client_id {:?}, {}): check the introspection client id, \
                     secret and authentication method",
                    fetch::truncate(&self.client_id, 100),
                    method.as_str()
                ),
                retry_after: None,
                credentials_refused: true,
            });
        }
        if !status.is_success() {
            let retry_after = resp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| Duration::from_secs(s.min(3600)));
            if status.is_server_error() {
                self.forget_discovered();
            }
            return Err(CallError {
                reason: format!("POST {shown}: HTTP {status}"),
                retry_after,
                credentials_refused: false,
            });
        }
        let content_type = match resp.headers().get(CONTENT_TYPE) {
            None => Ok(None),
            Some(v) => v.to_str().map(|v| Some(v.to_owned())).map_err(|_| NotAscii),
        };
        let bytes = fetch::read_capped(resp, self.max_body)
            .await
            .map_err(|e| CallError::new(format!("POST {shown}: {e}")))?;
        Ok(Body {
            bytes,
            content_type,
        })
    }

    fn forget_discovered(&self) {
        if matches!(self.target, Target::Discovery)
            && let Ok(mut d) = self.discovered.lock()
        {
            *d = None;
        }
    }

    /// The endpoint and the authentication method.
    async fn endpoint(&self) -> Result<(Url, ClientAuthMethod), CallError> {
        let credential_method = |m: ClientAuthMethod| match self.credential {
            Credential::Assertion { .. } => ClientAuthMethod::PrivateKeyJwt,
            Credential::Secret(_) | Credential::Certificate => m,
        };
        if let Target::Endpoint(url) = &self.target {
            let m = self.method.unwrap_or(ClientAuthMethod::ClientSecretBasic);
            return Ok((url.clone(), credential_method(m)));
        }
        if let Some(d) = self.discovered.lock().ok().and_then(|d| d.clone()) {
            return Ok((d.url, credential_method(d.method)));
        }
        let d = self.discover().await?;
        tracing::debug!(
            issuer = %fetch::redact_str(&self.issuer),
            endpoint = %fetch::redact(&d.url),
            "introspection endpoint discovered"
        );
        if let Ok(mut slot) = self.discovered.lock() {
            *slot = Some(d.clone());
        }
        Ok((d.url, credential_method(d.method)))
    }

    /// OIDC discovery, then RFC 8414: the metadata's `issuer` must be ours exactly.
    async fn discover(&self) -> Result<Discovered, CallError> {
        let urls = fetch::metadata_urls(&self.issuer).map_err(|e| CallError::new(e.0))?;
        let mut errors = Vec::new();
        for url in urls {
            match self.fetch_metadata(&url).await {
                Ok(d) => return Ok(d),
                Err(e) => errors.push(e),
            }
        }
        Err(CallError::new(format!(
            "the introspection endpoint of {} could not be discovered: {}",
            fetch::redact_str(&self.issuer),
            errors.join("; ")
        )))
    }

    async fn fetch_metadata(&self, url: &Url) -> Result<Discovered, String> {
        let shown = fetch::redact(url);
        let doc = fetch::get_metadata(&self.http, url, self.max_body).await?;
        let found = doc.get("issuer").and_then(|v| v.as_str());
        if found != Some(self.issuer.as_str()) {
            return Err(format!(
                "GET {shown}: the metadata's issuer {:?} is not {:?}",
                found.map(|f| fetch::truncate(f, 200).escape_debug().to_string()),
                fetch::redact_str(&self.issuer),
            ));
        }
        let endpoint = doc
            .get("introspection_endpoint")
            .and_then(|v| v.as_str())
            .ok_or_else(|| format!("GET {shown}: the metadata has no introspection_endpoint"))?;
        let endpoint = Url::parse(endpoint).map_err(|e| {
            format!(
                "GET {shown}: introspection_endpoint {:?} is invalid: {e}",
                fetch::truncate(endpoint, 200).escape_debug().to_string()
            )
        })?;
        fetch::check_scheme(&endpoint, self.allow_http).map_err(|reason| {
            format!(
                "GET {shown}: introspection_endpoint {}: {reason}",
                fetch::redact(&endpoint)
            )
        })?;
        let supported: Option<Vec<&str>> = doc
            .get("introspection_endpoint_auth_methods_supported")
            .or_else(|| doc.get("token_endpoint_auth_methods_supported"))
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|m| m.as_str()).collect());
        let method = self.method.unwrap_or(match supported {
            Some(list)
                if !list.contains(&"client_secret_basic")
                    && list.contains(&"client_secret_post") =>
            {
                ClientAuthMethod::ClientSecretPost
            }
            _ => ClientAuthMethod::ClientSecretBasic,
        });
        Ok(Discovered {
            url: endpoint,
            method,
        })
    }
}
