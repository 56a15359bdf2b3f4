//! A development authorization server, for tests and demos (feature `dev-issuer`).
//!
//! **Not an authorization server for production**: its private keys ship in this crate's
//! source.

mod keys;

pub use keys::{SigningError, SigningKey, jwk_set};
