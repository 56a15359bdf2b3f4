//! Client authentication at the authorization server (RFC 6749 §2.3.1, RFC 7523 §2.2),
//! shared by the token request and token introspection (RFC 7662 §2.1): which credential
//! the client holds, and how it goes into a form request.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderValue;

use super::assertion::{AssertionKey, JWT_BEARER};
use super::config::ClientAuthMethod;
use super::error::{TokenError, TokenErrorKind};
use super::token::Secret;
use crate::algorithm::Algorithm;
use crate::error::ConfigError;

/// How the client proves who it is.
#[derive(Debug)]
pub(crate) enum Credential {
    /// A client secret (`client_secret_post` or `client_secret_basic`).
    Secret(Secret),
    /// A private key (`private_key_jwt`), and the assertions' audience.
    Assertion { key: AssertionKey, audience: String },
    /// A client certificate, on the HTTP client (`tls_client_auth`,
    /// `self_signed_tls_client_auth`, RFC 8705 §2).
    Certificate,
}

/// The credential a configuration describes: a private key when the method is
/// `private_key_jwt`, else the client secret. The assertion audience is asked for only
/// for a key.
///
/// # Errors
///
/// A [`ConfigError`] naming the bad setting (never the secret): `private_key_jwt` without a
/// key, a key with another method, no secret, or a key that does not parse or sign.
pub(crate) fn credential(
    secret: Option<&Secret>,
    private_key: Option<&(Algorithm, Secret)>,
    private_key_id: Option<String>,
    method: Option<ClientAuthMethod>,
    assertion_audience: impl FnOnce() -> String,
) -> Result<Credential, ConfigError> {
    let invalid = |what, value: &str, reason| ConfigError::InvalidValue {
        what,
        value: value.to_owned(),
        reason,
    };
    match (private_key, method) {
        (None, Some(m)) if m.is_mutual_tls() => Ok(Credential::Certificate),
        (Some((alg, pem)), Some(ClientAuthMethod::PrivateKeyJwt)) => {
            let key = AssertionKey::from_pem(*alg, pem.expose().as_bytes(), private_key_id)?;
            Ok(Credential::Assertion {
                key,
                audience: assertion_audience(),
            })
        }
        (_, Some(ClientAuthMethod::PrivateKeyJwt)) => Err(invalid(
            "auth_method",
            "private_key_jwt",
            "needs a key: use `.private_key_jwt(algorithm, pem)`",
        )),
        (Some(_), _) => Err(invalid(
            "auth_method",
            method.map_or("", ClientAuthMethod::as_str),
            "a private_key_jwt key was also given: choose one method",
        )),
        (None, _) => match secret {
            Some(s) if !s.expose().is_empty() => Ok(Credential::Secret(s.clone())),
            _ => Err(invalid("client_secret", "", "is missing or empty")),
        },
    }
}

/// Adds the client's credentials to a form request: `client_id` and `client_secret`
/// (`client_secret_post`) or a new signed assertion (`private_key_jwt`) in the form; for
/// `client_secret_basic`, the `Authorization` value to send.
pub(crate) fn authenticate(
    client_id: &str,
    credential: &Credential,
    method: ClientAuthMethod,
    form: &mut url::form_urlencoded::Serializer<'_, String>,
) -> Result<Option<HeaderValue>, TokenError> {
    match credential {
        Credential::Secret(secret) if method == ClientAuthMethod::ClientSecretBasic => {
            basic(client_id, secret).map(Some)
        }
        Credential::Secret(secret) => {
            form.append_pair("client_id", client_id);
            form.append_pair("client_secret", secret.expose());
            Ok(None)
        }
        Credential::Certificate => {
            form.append_pair("client_id", client_id);
            Ok(None)
        }
        Credential::Assertion { key, audience } => {
            form.append_pair("client_id", client_id);
            form.append_pair("client_assertion_type", JWT_BEARER);
            form.append_pair("client_assertion", &key.assertion(client_id, audience)?);
            Ok(None)
        }
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1), marked sensitive.
fn basic(client_id: &str, secret: &Secret) -> Result<HeaderValue, TokenError> {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let credentials = format!("{}:{}", encode(client_id), encode(secret.expose()));
    let mut value = HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(credentials)))
        .map_err(|_| {
            TokenError::new(
                TokenErrorKind::InvalidResponse,
                "the Basic credentials cannot be sent in a header",
            )
        })?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form_of(method: ClientAuthMethod) -> (String, Option<HeaderValue>) {
        let cred = Credential::Secret(Secret::new("p@ss:word".into()));
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        let h = authenticate("my client", &cred, method, &mut form).expect("auth");
        (form.finish(), h)
    }

    #[test]
    fn basic_credentials_are_form_encoded_first() {
        let v = basic("my client", &Secret::new("p@ss:word".into())).expect("header");
        assert!(v.is_sensitive());
        let decoded = STANDARD
            .decode(v.to_str().expect("ascii").trim_start_matches("Basic "))
            .expect("base64");
        assert_eq!(decoded, b"my+client:p%40ss%3Aword");
    }

    #[test]
    fn client_secret_basic_puts_nothing_in_the_form() {
        let (form, header) = form_of(ClientAuthMethod::ClientSecretBasic);
        assert_eq!(form, "");
        assert!(header.is_some());
    }

    #[test]
    fn client_secret_post_puts_id_and_secret_in_the_form() {
        let (form, header) = form_of(ClientAuthMethod::ClientSecretPost);
        assert_eq!(form, "client_id=my+client&client_secret=p%40ss%3Aword");
        assert!(header.is_none());
    }

    #[test]
    fn private_key_jwt_needs_a_key() {
        let e = credential(
            Some(&Secret::new("s".into())),
            None,
            None,
            Some(ClientAuthMethod::PrivateKeyJwt),
            String::new,
        )
        .expect_err("refused");
        assert!(e.to_string().contains("private_key_jwt"), "{e}");
    }
}
