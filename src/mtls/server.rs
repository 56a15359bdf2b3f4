//! Serving a tower service (an axum `Router`, a hyper service) over TLS with rustls, each
//! request carrying the connection's [`PeerCertificate`].
//!
//! Built on tokio-rustls and hyper-util, both already in the dependency tree (reqwest's TLS,
//! hyper's server): the peer certificate is read right after the handshake, its thumbprint
//! computed once per connection. A crate such as axum-server would add a dependency and hide
//! the handshake behind its own acceptor, which then needs a wrapper to reach the
//! certificate anyway.

use std::error::Error as StdError;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tower_service::Service;

use super::PeerCertificate;
use crate::error::ConfigError;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A service that puts a connection's [`PeerCertificate`] (if the client sent one) into the
/// extensions of each of its requests. Make one per connection, after the handshake.
#[derive(Debug, Clone)]
pub struct WithPeerCertificate<S> {
    inner: S,
    peer: Option<PeerCertificate>,
}

impl<S> WithPeerCertificate<S> {
    /// `inner`, its requests carrying `peer`.
    pub fn new(inner: S, peer: Option<PeerCertificate>) -> Self {
        Self { inner, peer }
    }
}

impl<S, B> Service<Request<B>> for WithPeerCertificate<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if let Some(peer) = &self.peer {
            req.extensions_mut().insert(peer.clone());
        }
        self.inner.call(req)
    }
}

/// Serves `service` over TLS on `listener` with `tls` (see [`server_config`]), HTTP/1.1 and
/// HTTP/2, each request carrying the client's [`PeerCertificate`] when it sent one. Runs
/// until the task is dropped or aborted (connections already open finish on their own
/// tasks); failed handshakes are logged at debug level and do not stop the server.
///
/// ```no_run
/// # async fn f(router: axum::Router, tls: std::sync::Arc<tokio_rustls::rustls::ServerConfig>) {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8443").await.unwrap();
/// bearer_guard::mtls::serve(listener, tls, router).await;
/// # }
/// ```
pub async fn serve<S, B>(listener: TcpListener, tls: Arc<ServerConfig>, service: S)
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (tcp, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let service = service.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%remote, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote, "TLS handshake timed out");
                    return;
                }
            };
            let peer = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|der| PeerCertificate::from_der(der.as_ref()));
            let service = TowerToHyperService::new(WithPeerCertificate::new(service, peer));
            if let Err(e) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
        });
    }
}

/// A rustls server configuration from PEM: the server's certificate chain and private key,
/// and, with `client_ca`, client certificates **required** and verified against those CA
/// certificates (without it, no client certificate is asked for).
///
/// # Errors
///
/// [`ConfigError::InvalidValue`] naming the PEM input that could not be used.
pub fn server_config(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: Option<&[u8]>,
) -> Result<Arc<ServerConfig>, ConfigError> {
    let invalid =
        |what: &'static str, value: String, reason: &'static str| ConfigError::InvalidValue {
            what,
            value,
            reason,
        };
    let certs = CertificateDer::pem_slice_iter(cert_chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("TLS certificate", e.to_string(), "it is not PEM"))?;
    if certs.is_empty() {
        return Err(invalid(
            "TLS certificate",
            String::new(),
            "it holds no CERTIFICATE block",
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
        invalid(
            "TLS key",
            e.to_string(),
            "it holds no usable PEM private key",
        )
    })?;
    // The provider is named, not taken from the process default, which panics when more
    // than one is compiled in.
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("TLS versions", e.to_string(), "unsupported"))?;
    let builder = match client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let mut roots = tokio_rustls::rustls::RootCertStore::empty();
            for ca in CertificateDer::pem_slice_iter(pem) {
                let ca =
                    ca.map_err(|e| invalid("TLS client CA", e.to_string(), "it is not PEM"))?;
                roots.add(ca).map_err(|e| {
                    invalid(
                        "TLS client CA",
                        e.to_string(),
                        "a CA certificate is invalid",
                    )
                })?;
            }
            if roots.is_empty() {
                return Err(invalid(
                    "TLS client CA",
                    String::new(),
                    "it holds no CERTIFICATE block",
                ));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| {
                    invalid(
                        "TLS client CA",
                        e.to_string(),
                        "no client verifier can be built",
                    )
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        invalid(
            "TLS certificate",
            e.to_string(),
            "the certificate and key do not fit together",
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
