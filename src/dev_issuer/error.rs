//! [`DevIssuerError`]: why a development issuer could not start or mint a token.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use super::keys::SigningError;
use crate::Algorithm;

/// Why [`DevIssuerBuilder::start`](super::DevIssuerBuilder::start) failed, or why a token
/// could not be minted. The message names the bad input; its text is not API.
#[derive(Debug)]
#[non_exhaustive]
pub enum DevIssuerError {
    /// No audience was configured (see [`DevIssuerBuilder::audience`](super::DevIssuerBuilder::audience)).
    NoAudience,
    /// An audience is the empty string.
    EmptyAudience,
    /// The algorithm has no key in the development key pool (HMAC, or ES512).
    UnsupportedAlgorithm(Algorithm),
    /// The token lifetime is shorter than one second.
    TokenTtlTooShort,
    /// The bind address is not a loopback address: the development issuer only listens on
    /// this machine.
    NotLoopback(SocketAddr),
    /// A client registration is unusable.
    InvalidClient {
        /// The client id as registered.
        client_id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The listening socket could not be bound.
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        source: io::Error,
    },
    /// A token could not be signed (for example, no crypto backend is compiled in).
    Signing(SigningError),
    /// The claims given to a `mint` method are not a JSON object.
    ClaimsNotAnObject,
}

impl fmt::Display for DevIssuerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoAudience => f.write_str("the dev issuer needs at least one audience"),
            Self::EmptyAudience => f.write_str("a dev issuer audience is the empty string"),
            Self::UnsupportedAlgorithm(alg) => write!(
                f,
                "the dev issuer cannot sign with {alg}: the key pool has RSA (RS*/PS*), ES256, \
                 ES384 and EdDSA keys"
            ),
            Self::TokenTtlTooShort => f.write_str("the dev issuer's token TTL is under 1 s"),
            Self::NotLoopback(addr) => write!(
                f,
                "the dev issuer binds only loopback addresses, not {addr}"
            ),
            Self::InvalidClient { client_id, reason } => {
                write!(f, "dev issuer client {client_id:?}: {reason}")
            }
            Self::Bind { addr, source } => {
                write!(f, "the dev issuer could not bind {addr}: {source}")
            }
            Self::Signing(e) => write!(f, "the dev issuer could not sign: {e}"),
            Self::ClaimsNotAnObject => f.write_str("the claims to mint are not a JSON object"),
        }
    }
}

impl std::error::Error for DevIssuerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Bind { source, .. } => Some(source),
            Self::Signing(e) => Some(e),
            _ => None,
        }
    }
}

impl From<SigningError> for DevIssuerError {
    fn from(e: SigningError) -> Self {
        Self::Signing(e)
    }
}
