//! [`DevClient`]: a client registered with the development issuer, and client authentication.

use std::fmt;

use sha2::{Digest, Sha256};

use super::error::DevIssuerError;
use crate::claims::is_scope_token;

/// A client registered with the development issuer: an id, a secret, the scopes it may get
/// and, optionally, the only audiences it may get tokens for (by default, every audience of
/// the issuer).
///
/// Its `Debug` output never shows the secret.
///
/// ```
/// use bearer_guard::dev_issuer::DevClient;
///
/// let client = DevClient::new("gift-deliveries", "not-a-real-secret")
///     .scopes(["geocode:location", "directions"])
///     .audiences(["urn:worldmappers"]);
/// assert_eq!(client.id(), "gift-deliveries");
/// assert!(!format!("{client:?}").contains("not-a-real-secret"));
/// ```
#[derive(Clone)]
#[must_use]
pub struct DevClient {
    id: String,
    secret: String,
    scopes: Vec<String>,
    audiences: Option<Vec<String>>,
}

impl fmt::Debug for DevClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevClient")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("scopes", &self.scopes)
            .field("audiences", &self.audiences)
            .finish()
    }
}

impl DevClient {
    /// A client with this id and secret, no scopes, allowed every audience.
    pub fn new(id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            secret: secret.into(),
            scopes: Vec::new(),
            audiences: None,
        }
    }

    /// Adds scopes the client may get (each an RFC 6749 §3.3 scope token).
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for scope in scopes {
            let scope = scope.into();
            if !self.scopes.contains(&scope) {
                self.scopes.push(scope);
            }
        }
        self
    }

    /// Restricts the client to these audiences (each must be an audience of the issuer).
    /// Call again to add more.
    pub fn audiences<I, S>(mut self, audiences: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.audiences
            .get_or_insert_with(Vec::new)
            .extend(audiences.into_iter().map(Into::into));
        self
    }

    /// The client id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The scopes the client may get, in registration order.
    pub(super) fn allowed_scopes(&self) -> &[String] {
        &self.scopes
    }

    /// Whether the client may get `scope`.
    pub(super) fn allows_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Whether the client may get tokens for `audience` (assumed to be one of the issuer's).
    pub(super) fn may_get(&self, audience: &str) -> bool {
        self.audiences
            .as_ref()
            .is_none_or(|list| list.iter().any(|a| a == audience))
    }

    /// Checks the registration against the issuer's audiences.
    pub(super) fn check(&self, audiences: &[String]) -> Result<(), DevIssuerError> {
        let invalid = |reason: String| DevIssuerError::InvalidClient {
            client_id: self.id.clone(),
            reason,
        };
        if self.id.is_empty() {
            return Err(invalid("the client id is empty".into()));
        }
        if self.secret.is_empty() {
            return Err(invalid("the client secret is empty".into()));
        }
        if let Some(bad) = self.scopes.iter().find(|s| !is_scope_token(s)) {
            return Err(invalid(format!("{bad:?} is not an RFC 6749 scope token")));
        }
        if let Some(list) = &self.audiences {
            if list.is_empty() {
                return Err(invalid("its audience list is empty".into()));
            }
            if let Some(bad) = list.iter().find(|a| !audiences.contains(a)) {
                return Err(invalid(format!("{bad:?} is not an audience of the issuer")));
            }
        }
        Ok(())
    }
}

/// The registered client with this id and secret, if any. The secret comparison does not
/// exit early, and an unknown id costs the same comparison, so timing tells little.
pub(super) fn authenticate<'a>(
    clients: &'a [DevClient],
    id: &str,
    secret: &str,
) -> Option<&'a DevClient> {
    match clients.iter().find(|c| c.id == id) {
        Some(client) => secrets_equal(&client.secret, secret).then_some(client),
        None => {
            let _ = secrets_equal("unknown client", secret);
            None
        }
    }
}

/// Compares the SHA-256 digests of both strings without early exit: the time taken depends
/// on neither the position of the first difference nor the registered secret's length.
fn secrets_equal(registered: &str, presented: &str) -> bool {
    let a = Sha256::digest(registered.as_bytes());
    let b = Sha256::digest(presented.as_bytes());
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clients() -> Vec<DevClient> {
        vec![DevClient::new("a", "s3cret").scopes(["x"])]
    }

    #[test]
    fn the_right_secret_authenticates() {
        assert!(authenticate(&clients(), "a", "s3cret").is_some());
    }

    #[test]
    fn a_wrong_secret_of_any_length_does_not_authenticate() {
        for wrong in ["", "s3cre", "s3cret!", "S3cret"] {
            assert!(authenticate(&clients(), "a", wrong).is_none(), "{wrong:?}");
        }
    }

    #[test]
    fn an_unknown_client_does_not_authenticate() {
        assert!(authenticate(&clients(), "b", "s3cret").is_none());
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let shown = format!("{:?}", DevClient::new("a", "hunter2-secret"));
        assert!(!shown.contains("hunter2-secret"), "{shown}");
    }

    #[test]
    fn an_audience_restriction_must_name_issuer_audiences() {
        let client = DevClient::new("a", "s").audiences(["urn:other"]);
        assert!(client.check(&["urn:api".to_owned()]).is_err());
        let client = DevClient::new("a", "s").audiences(["urn:api"]);
        assert!(client.check(&["urn:api".to_owned()]).is_ok());
    }

    #[test]
    fn scopes_must_be_scope_tokens() {
        let client = DevClient::new("a", "s").scopes(["two words"]);
        assert!(client.check(&["urn:api".to_owned()]).is_err());
    }
}
