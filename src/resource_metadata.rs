//! RFC 9728 OAuth 2.0 Protected Resource Metadata, opt-in: [`ProtectedResourceMetadata`].
//!
//! A client that is refused (401) finds in the challenge's `resource_metadata` parameter the
//! URL of a small JSON document telling which authorization servers issue tokens for this
//! API, which scopes exist and how to send the token (MCP clients and other modern clients
//! look for it). Two steps turn it on:
//!
//! 1. serve the document at `/.well-known/oauth-protected-resource` with
//!    [`router`](ProtectedResourceMetadata::router) (axum) or
//!    [`response`](ProtectedResourceMetadata::response) (any `http` stack), on a public route;
//! 2. name its URL in the challenges with
//!    [`JwtAuthLayer::resource_metadata`](crate::JwtAuthLayer::resource_metadata) (or
//!    [`DefaultRejection::resource_metadata`](crate::DefaultRejection::resource_metadata)).
//!
//! ```
//! # #[cfg(feature = "axum")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use axum::{Router, routing::get};
//! use bearer_guard::{JwtAuthLayer, ProtectedResourceMetadata, Verifier};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//!
//! let verifier = Verifier::builder()
//!     .issuer("https://issuer.example/")
//!     .audience("https://api.example/")
//!     .hmac_secret(b"an-example-secret-of-at-least-32-bytes!!")
//!     .build()
//!     .unwrap();
//! // `resource` = the audience, `authorization_servers` = the issuer.
//! let metadata = ProtectedResourceMetadata::from_verifier(&verifier)
//!     .scopes_supported(["directions", "geocode:location"]);
//! let url = metadata.metadata_url().unwrap();
//! assert_eq!(url, "https://api.example/.well-known/oauth-protected-resource");
//!
//! let app = Router::new()
//!     .route("/api/directions", get(|| async { "north" }))
//!     .layer(JwtAuthLayer::new(verifier).resource_metadata(&url))
//!     .merge(metadata.router());
//!
//! // The document is public.
//! let req = Request::get("/.well-known/oauth-protected-resource").body(axum::body::Body::empty()).unwrap();
//! let res = app.clone().oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
//! let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
//! assert_eq!(doc["resource"], "https://api.example/");
//! assert_eq!(doc["authorization_servers"], serde_json::json!(["https://issuer.example/"]));
//! assert_eq!(doc["bearer_methods_supported"], serde_json::json!(["header"]));
//!
//! // A refused request is told where it is.
//! let req = Request::get("/api/directions").body(axum::body::Body::empty()).unwrap();
//! let res = app.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(
//!     res.headers()["www-authenticate"],
//!     r#"Bearer realm="api", resource_metadata="https://api.example/.well-known/oauth-protected-resource""#,
//! );
//! # }
//! # #[cfg(not(feature = "axum"))]
//! # fn main() {}
//! ```
//!
//! # Deployment caveats
//!
//! - RFC 9728 wants the `resource` to be an https URL, and the client checks that the
//!   document's `resource` is the one it asked about. An API identifier that is not a URL
//!   (Auth0 allows `urn:…`) still works for clients that follow the challenge's
//!   `resource_metadata` URL, but cannot be derived into one: give that URL yourself.
//! - Behind a proxy or under a path prefix, the public URL of the document is what the
//!   challenge must name.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use serde::Serialize;
use url::Url;

use crate::verify::Verifier;

/// The well-known path of the document (RFC 9728 §3).
pub const WELL_KNOWN_PATH: &str = "/.well-known/oauth-protected-resource";

/// An RFC 9728 protected-resource metadata document. See the
/// [module docs](crate::resource_metadata).
#[derive(Debug, Clone, Serialize)]
#[must_use]
pub struct ProtectedResourceMetadata {
    resource: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    authorization_servers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    scopes_supported: Vec<String>,
    bearer_methods_supported: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_documentation: Option<String>,
}

impl ProtectedResourceMetadata {
    /// A document for the resource identifier `resource` (an https URL per RFC 9728; often
    /// the API's audience), with `bearer_methods_supported` `["header"]` (the only way this
    /// crate reads an RFC 6750 token).
    pub fn new(resource: impl Into<String>) -> Self {
        Self {
            resource: resource.into(),
            authorization_servers: Vec::new(),
            scopes_supported: Vec::new(),
            bearer_methods_supported: vec!["header"],
            resource_name: None,
            resource_documentation: None,
        }
    }

    /// A document whose `resource` is the verifier's (first) audience and whose
    /// `authorization_servers` are its issuers (all of them for a
    /// [multi-issuer](Verifier::multi) verifier).
    pub fn from_verifier(verifier: &Verifier) -> Self {
        let resource = verifier.audiences().first().cloned().unwrap_or_default();
        Self::new(resource).authorization_servers(verifier.issuers())
    }

    /// Adds authorization servers (issuer identifiers, as in RFC 8414).
    pub fn authorization_servers<I, S>(mut self, issuers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.authorization_servers
            .extend(issuers.into_iter().map(Into::into));
        self
    }

    /// Adds scopes to `scopes_supported`.
    pub fn scopes_supported<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes_supported
            .extend(scopes.into_iter().map(Into::into));
        self
    }

    /// A human-readable name (`resource_name`).
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// A URL of developer documentation (`resource_documentation`).
    pub fn resource_documentation(mut self, url: impl Into<String>) -> Self {
        self.resource_documentation = Some(url.into());
        self
    }

    /// The resource identifier.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The path the document is served at: [`WELL_KNOWN_PATH`], followed by the resource
    /// URL's path when it has one (`https://api.example/v1` → `/.well-known/oauth-protected-resource/v1`,
    /// RFC 9728 §3.1).
    pub fn well_known_path(&self) -> String {
        match self.resource_url() {
            Some(url) => {
                let path = url.path().trim_end_matches('/');
                format!("{WELL_KNOWN_PATH}{path}")
            }
            None => WELL_KNOWN_PATH.to_owned(),
        }
    }

    /// The URL of the document, derived from an http(s) resource identifier (`None` for
    /// another one, such as `urn:…`: give the URL where you serve it yourself).
    pub fn metadata_url(&self) -> Option<String> {
        let url = self.resource_url()?;
        let host = url.host_str()?;
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        Some(format!(
            "{}://{host}{port}{}",
            url.scheme(),
            self.well_known_path()
        ))
    }

    fn resource_url(&self) -> Option<Url> {
        Url::parse(&self.resource)
            .ok()
            .filter(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some())
    }

    /// The document as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The `200 OK` `application/json` answer serving the document.
    pub fn response<B: From<Bytes>>(&self) -> Response<B> {
        // Serialized from the struct: `resource` first, as in the RFC's examples.
        let body = Bytes::from(serde_json::to_vec(self).unwrap_or_default());
        let mut res = Response::new(B::from(body));
        *res.status_mut() = StatusCode::OK;
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        res
    }

    /// An axum router serving the document (`GET`) at [`well_known_path`](Self::well_known_path).
    /// Merge it beside the protected routes, not under the layer: the document is public.
    #[cfg(feature = "axum")]
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    pub fn router<S>(&self) -> axum::Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let doc = self.clone();
        axum::Router::new().route(
            &self.well_known_path(),
            axum::routing::get(move || {
                let res = doc.response::<axum::body::Body>();
                async move { res }
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_has_the_rfc_9728_names() {
        let doc = ProtectedResourceMetadata::new("https://api.example/")
            .authorization_servers(["https://issuer.example/"])
            .scopes_supported(["directions"])
            .resource_name("World Mappers");
        assert_eq!(
            doc.to_json(),
            serde_json::json!({
                "resource": "https://api.example/",
                "authorization_servers": ["https://issuer.example/"],
                "scopes_supported": ["directions"],
                "bearer_methods_supported": ["header"],
                "resource_name": "World Mappers",
            })
        );
    }

    #[test]
    fn the_path_follows_the_resource_path() {
        let doc = ProtectedResourceMetadata::new("https://api.example:8443/v1/");
        assert_eq!(
            doc.well_known_path(),
            "/.well-known/oauth-protected-resource/v1"
        );
        assert_eq!(
            doc.metadata_url().as_deref(),
            Some("https://api.example:8443/.well-known/oauth-protected-resource/v1")
        );
    }

    #[test]
    fn a_urn_resource_has_no_derived_url() {
        let doc = ProtectedResourceMetadata::new("urn:worldmappers");
        assert_eq!(doc.well_known_path(), WELL_KNOWN_PATH);
        assert_eq!(doc.metadata_url(), None);
    }
}
