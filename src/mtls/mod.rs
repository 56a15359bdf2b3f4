//! Certificate-bound access tokens (RFC 8705 §3): a token whose `cnf` claim carries
//! `x5t#S256` is accepted only on a request whose client certificate has that SHA-256
//! thumbprint.
//!
//! The checks here are plain functions of plain data: the token's [`Claims`] and the
//! [`CertificateThumbprint`] of the certificate the request came with (or none). The
//! [layer](crate::JwtAuthLayer::mtls) gathers that certificate from the one
//! [`CertificateSource`] the server states, runs [`Mtls::check`] on **every** request (a token
//! answered from the verified-token cache too), and puts an [`MtlsConfirmation`] in the
//! request's extensions for handlers.
//!
//! # Where the certificate comes from
//!
//! - **TLS ends in the process** ([`CertificateSource::PeerCertificate`]): the server puts a
//!   [`PeerCertificate`] in each request's extensions, its thumbprint computed once per
//!   connection. [`serve`](https://docs.rs/bearer-guard/latest/bearer_guard/mtls/fn.serve.html) (feature `mtls`) does so for axum and hyper
//!   services on rustls; [`WithPeerCertificate`](https://docs.rs/bearer-guard/latest/bearer_guard/mtls/struct.WithPeerCertificate.html) does it in your own accept loop.
//!   With tonic's own TLS (`Server::builder().tls_config(..)`, feature `tonic-tls`) there is
//!   nothing to add: the layer reads the certificate from the record tonic puts on each
//!   request (see [certificate-bound tokens on tonic's TLS](https://docs.rs/bearer-guard/latest/bearer_guard/tonic/#certificate-bound-tokens-on-tonics-tls)).
//! - **TLS ends at a proxy** ([`CertificateSource::TrustedHeader`]): the proxy forwards the
//!   client certificate in the RFC 9440 `Client-Cert` header (a structured-field byte
//!   sequence, `:base64(DER):`). The header is read **only** when you opt in to trusting it,
//!   and a malformed one is answered `400 invalid_request`.
//!
//! # Trust caveats
//!
//! - A trusted `Client-Cert` header is only as good as the proxy: it must **remove any
//!   `Client-Cert` header a client sends** and set it only from a handshake it verified, and
//!   the service must be reachable through that proxy only. Otherwise any client can claim
//!   any certificate.
//! - This module checks the binding, not the certificate chain: which client certificates are
//!   accepted at all (the client CA, expiry) is the TLS server's (or the proxy's) job, e.g.
//!   rustls' `WebPkiClientVerifier`.
//!
//! # Modes
//!
//! [`MtlsMode::BoundWhenClaimed`] (the default): a bound token needs its certificate, an
//! unbound token passes. [`MtlsMode::Required`]: every token must be certificate-bound.
//! [`MtlsMode::Off`]: no check, bound tokens accepted as bearer tokens. A layer with no
//! `.mtls(..)` at all refuses certificate-bound tokens: it cannot check their binding.
//!
//! With [DPoP](crate::dpop) on as well, a token bound both ways must satisfy both: the DPoP
//! proof and the certificate.
//!
//! ```
//! use bearer_guard::mtls::{CertificateThumbprint, Mtls, MtlsMode};
//!
//! let mtls = Mtls::peer_certificate().mode(MtlsMode::BoundWhenClaimed);
//! let der = b"\x30\x03\x02\x01\x01"; // a certificate's DER bytes
//! let thumbprint = CertificateThumbprint::of_der(der);
//! assert_eq!(thumbprint.as_str().len(), 43); // base64url of a SHA-256 digest
//! # let _ = mtls;
//! ```

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderName;
use sha2::{Digest, Sha256};

use crate::claims::Claims;
use crate::error::{AuthError, InvalidTokenReason};

mod header;
#[cfg(feature = "mtls")]
#[cfg_attr(docsrs, doc(cfg(feature = "mtls")))]
mod server;

pub use header::{CLIENT_CERT, MAX_CLIENT_CERT_HEADER_BYTES, parse_client_cert};
#[cfg(feature = "mtls")]
pub use server::{WithPeerCertificate, serve, server_config};
/// The rustls server configuration [`serve`] takes (re-exported).
#[cfg(feature = "mtls")]
pub use tokio_rustls::rustls::ServerConfig;

/// The base64url (unpadded) SHA-256 digest of a DER certificate: the value of a bound
/// token's `cnf.x5t#S256` (RFC 8705 §3.1). Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CertificateThumbprint(Arc<str>);

impl CertificateThumbprint {
    /// The thumbprint of a certificate given as its DER bytes.
    pub fn of_der(der: &[u8]) -> Self {
        Self(URL_SAFE_NO_PAD.encode(Sha256::digest(der)).into())
    }

    /// The thumbprint, base64url without padding (43 characters).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CertificateThumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CertificateThumbprint")
            .field(&&*self.0)
            .finish()
    }
}

impl fmt::Display for CertificateThumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The client certificate of a connection, for the request extensions: its DER bytes and
/// its thumbprint, computed once (per connection, when the server clones it into each
/// request). Cheap to clone.
#[derive(Clone)]
pub struct PeerCertificate {
    der: Arc<[u8]>,
    thumbprint: CertificateThumbprint,
}

impl PeerCertificate {
    /// The peer certificate with these DER bytes (the end-entity certificate, the first of
    /// the chain the client sent).
    pub fn from_der(der: impl Into<Arc<[u8]>>) -> Self {
        let der = der.into();
        let thumbprint = CertificateThumbprint::of_der(&der);
        Self { der, thumbprint }
    }

    /// The certificate's DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The certificate's SHA-256 thumbprint.
    pub fn thumbprint(&self) -> &CertificateThumbprint {
        &self.thumbprint
    }
}

impl fmt::Debug for PeerCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerCertificate")
            .field("thumbprint", &self.thumbprint)
            .field("der_len", &self.der.len())
            .finish()
    }
}

/// What a request that passed the certificate-binding check carries in its extensions: the
/// thumbprint of the certificate its token is bound to. Handlers read it directly, with the
/// axum extractor (this type, or `Option<MtlsConfirmation>`), or with
/// [`ClaimsExt::mtls`](https://docs.rs/bearer-guard/latest/bearer_guard/tonic/trait.ClaimsExt.html#tymethod.mtls) in tonic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtlsConfirmation {
    thumbprint: CertificateThumbprint,
}

impl MtlsConfirmation {
    /// The SHA-256 thumbprint of the client certificate (the token's `cnf.x5t#S256`).
    pub fn x5t_s256(&self) -> &str {
        self.thumbprint.as_str()
    }

    /// The thumbprint, as a [`CertificateThumbprint`].
    pub fn thumbprint(&self) -> &CertificateThumbprint {
        &self.thumbprint
    }
}

/// How certificate-bound tokens are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MtlsMode {
    /// No binding check: certificate-bound tokens are accepted as bearer tokens, their
    /// binding unchecked (a layer with no `.mtls(..)` at all refuses them instead).
    Off,
    /// A token with `cnf.x5t#S256` needs its certificate; an unbound token passes (the
    /// default).
    #[default]
    BoundWhenClaimed,
    /// Every token must be certificate-bound, and come with its certificate.
    Required,
}

/// Where the layer finds the client certificate of a request: one source per layer, stated
/// by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertificateSource {
    /// A [`PeerCertificate`] in the request's extensions, put there by the TLS server
    /// ([`serve`](https://docs.rs/bearer-guard/latest/bearer_guard/mtls/fn.serve.html), [`WithPeerCertificate`](https://docs.rs/bearer-guard/latest/bearer_guard/mtls/struct.WithPeerCertificate.html), or your own code), or, with the
    /// `tonic-tls` feature, the leaf of tonic's TLS record (`TlsConnectInfo::peer_certs`).
    PeerCertificate,
    /// An RFC 9440 header set by a TLS-terminating proxy (usually [`CLIENT_CERT`]). Trusted
    /// as is: the proxy must strip this header from clients' requests.
    TrustedHeader(HeaderName),
}

/// The certificate-binding settings of a resource server: the certificate source and the
/// [mode](MtlsMode). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Mtls {
    source: CertificateSource,
    mode: MtlsMode,
}

impl Mtls {
    /// Certificates from the TLS connection ([`CertificateSource::PeerCertificate`]), mode
    /// [`BoundWhenClaimed`](MtlsMode::BoundWhenClaimed).
    pub fn peer_certificate() -> Self {
        Self::new(CertificateSource::PeerCertificate)
    }

    /// Certificates from a proxy's RFC 9440 header `name` (usually [`CLIENT_CERT`]), which
    /// this server trusts: see the [trust caveats](self#trust-caveats).
    pub fn trusted_header(name: HeaderName) -> Self {
        Self::new(CertificateSource::TrustedHeader(name))
    }

    /// Certificates from `source`, mode [`BoundWhenClaimed`](MtlsMode::BoundWhenClaimed).
    pub fn new(source: CertificateSource) -> Self {
        Self {
            source,
            mode: MtlsMode::default(),
        }
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: MtlsMode) -> Self {
        self.mode = mode;
        self
    }

    /// The mode.
    pub fn get_mode(&self) -> MtlsMode {
        self.mode
    }

    /// The certificate source.
    pub fn source(&self) -> &CertificateSource {
        &self.source
    }

    /// The binding check of a verified token: `presented` is the thumbprint of the request's
    /// client certificate, if it came with one. `Ok(Some(_))` for a certificate-bound token
    /// with its certificate, `Ok(None)` for an unbound token (mode
    /// [`BoundWhenClaimed`](MtlsMode::BoundWhenClaimed) or [`Off`](MtlsMode::Off)).
    ///
    /// # Errors
    ///
    /// `invalid_token`: [`InvalidTokenReason::CertificateMismatch`] for a bound token without
    /// a certificate or with another one (compared in constant time),
    /// [`InvalidTokenReason::NotCertificateBound`] for an unbound token in mode
    /// [`Required`](MtlsMode::Required), [`InvalidTokenReason::InvalidClaim`] for a `cnf`
    /// claim of the wrong shape.
    pub fn check(
        &self,
        claims: &Claims,
        presented: Option<&CertificateThumbprint>,
    ) -> Result<Option<MtlsConfirmation>, AuthError> {
        if self.mode == MtlsMode::Off {
            return Ok(None);
        }
        let Some(bound) = claims.confirmation("x5t#S256")? else {
            if self.mode == MtlsMode::Required {
                return Err(AuthError::invalid(InvalidTokenReason::NotCertificateBound));
            }
            return Ok(None);
        };
        match presented {
            None => Err(AuthError::invalid_with(
                InvalidTokenReason::CertificateMismatch,
                "the token is bound to a client certificate, and the request came without one",
            )),
            Some(cert)
                if crate::crypto::constant_time_eq(bound.as_bytes(), cert.as_str().as_bytes()) =>
            {
                Ok(Some(MtlsConfirmation {
                    thumbprint: cert.clone(),
                }))
            }
            Some(_) => Err(AuthError::invalid(InvalidTokenReason::CertificateMismatch)),
        }
    }
}

/// A layer configured with no certificate source at all: a certificate-bound token is refused
/// (RFC 8705 §3: the binding is checked or the token is not accepted), an unbound one passes.
/// [`MtlsMode::Off`] is the explicit way to accept bound tokens unchecked.
pub(crate) fn refuse_unchecked_binding(claims: &Claims) -> Result<(), AuthError> {
    match claims.confirmation("x5t#S256")? {
        None => Ok(()),
        Some(_) => Err(AuthError::invalid_with(
            InvalidTokenReason::CertificateMismatch,
            "the token is bound to a client certificate (cnf.x5t#S256), and this API checks \
             no certificate binding",
        )),
    }
}

#[cfg(test)]
mod tests;
