//! The HTTP side of the development issuer: routes, metadata and JWKS documents, and the
//! server task with its graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::keys::jwk_set;
use super::state::Shared;
use super::token_endpoint::{self, MAX_BODY_BYTES};

/// Path of the OIDC discovery document.
pub(super) const OIDC_DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
/// Path of the RFC 8414 metadata document (the same document).
pub(super) const OAUTH_METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
/// Path of the JWK Set.
pub(super) const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Path of the token endpoint.
pub(super) const TOKEN_PATH: &str = "/oauth/token";
/// Path of the introspection endpoint (RFC 7662).
pub(super) const INTROSPECTION_PATH: &str = "/oauth/introspect";

/// `Cache-Control` of the JWKS: verifiers keep it 10 minutes (rotation is picked up sooner,
/// through the unknown-`kid` refresh).
const JWKS_CACHE_CONTROL: &str = "public, max-age=600";

/// How long [`Server::shutdown`] waits for open requests before aborting the task.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The running server task.
#[derive(Debug)]
pub(super) struct Server {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves the issuer's routes on `listener` until stopped.
    pub(super) fn spawn(listener: TcpListener, shared: Arc<Shared>) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(shared);
        let task = tokio::spawn(async move {
            let signal = async move {
                // An error means the handle was dropped: stop too.
                let _ = stopped.await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await
            {
                tracing::warn!(error = %e, "dev issuer: the server stopped with an error");
            }
        });
        Self {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Serves the issuer's routes over TLS ([`crate::mtls::serve`]: each request carries the
    /// client's certificate) until stopped.
    #[cfg(feature = "mtls")]
    pub(super) fn spawn_tls(
        listener: TcpListener,
        tls: Arc<crate::mtls::ServerConfig>,
        shared: Arc<Shared>,
    ) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(shared);
        let task = tokio::spawn(async move {
            tokio::select! {
                () = crate::mtls::serve(listener, tls, app) => {}
                _ = stopped => {}
            }
        });
        Self {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops accepting connections and waits (up to 5 s) for open requests to finish.
    pub(super) async fn shutdown(&mut self) {
        self.signal_stop();
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }

    /// Tells the server to stop, without waiting.
    pub(super) fn signal_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(OIDC_DISCOVERY_PATH, get(metadata))
        .route(OAUTH_METADATA_PATH, get(metadata))
        .route(JWKS_PATH, get(jwks))
        .route(
            TOKEN_PATH,
            post(token_endpoint::token).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .route(
            INTROSPECTION_PATH,
            post(super::introspection::introspect).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .with_state(shared)
}

/// The discovery document (served at both well-known paths).
async fn metadata(State(shared): State<Arc<Shared>>) -> Response {
    let algs: Vec<&str> = {
        let keys = shared.keys();
        let mut algs: Vec<&str> = Vec::new();
        for key in keys.published() {
            let alg = key.alg().as_str();
            if !algs.contains(&alg) {
                algs.push(alg);
            }
        }
        if algs.is_empty() {
            algs.push(keys.current().alg().as_str());
        }
        algs
    };
    let mut scopes: Vec<&str> = Vec::new();
    for client in &shared.clients {
        for scope in client.allowed_scopes() {
            if !scopes.contains(&scope.as_str()) {
                scopes.push(scope);
            }
        }
    }
    let mut doc = json!({
        "issuer": shared.issuer,
        "jwks_uri": shared.jwks_uri,
        "token_endpoint": shared.token_endpoint,
        "introspection_endpoint": shared.introspection_endpoint,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_signing_alg_values_supported": [shared.keys().current().alg().as_str()],
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "id_token_signing_alg_values_supported": algs,
        "scopes_supported": scopes,
    });
    if let Some(dpop) = &shared.dpop {
        doc["dpop_signing_alg_values_supported"] = json!(dpop.algorithms());
    }
    axum::Json(doc).into_response()
}

/// The JWK Set of the published keys, with `Cache-Control` and an `ETag` (a matching
/// `If-None-Match` gets 304). Every request is counted.
async fn jwks(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    shared.count_jwks_request();
    let (doc, generation) = {
        let keys = shared.keys();
        (jwk_set(keys.published()), keys.generation())
    };
    let etag = format!("\"{:016x}-{generation}\"", shared.instance_tag);
    let matches = headers.get_all(IF_NONE_MATCH).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .map(str::trim)
                .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
        })
    });
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                CONTENT_TYPE,
                HeaderValue::from_static("application/jwk-set+json"),
            )],
            doc.to_string(),
        )
            .into_response()
    };
    let h = response.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static(JWKS_CACHE_CONTROL));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(ETAG, v);
    }
    response
}
