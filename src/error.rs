//! Errors: [`ConfigError`] from `build()`, [`AuthError`] from verification.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// A configuration mistake found by a builder's `build()`.
///
/// The message names the offending value (never a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// No issuer was configured.
    MissingIssuer,
    /// No audience was configured; the `aud` check cannot be skipped.
    MissingAudience,
    /// An audience was the empty string.
    EmptyAudience,
    /// A URL (issuer, JWKS URI, …) could not be parsed.
    InvalidUrl {
        /// Which setting.
        what: &'static str,
        /// The value given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// A URL uses plain `http` for a host that is not loopback.
    InsecureUrl {
        /// Which setting.
        what: &'static str,
        /// The value given.
        value: String,
    },
    /// Two key sources were configured (for example a JWKS URL and static keys, or an HMAC
    /// secret beside a JWKS).
    ConflictingKeySources {
        /// The first source.
        first: &'static str,
        /// The second source.
        second: &'static str,
    },
    /// The algorithm allow-list is empty.
    NoAlgorithms,
    /// The allow-list mixes algorithms that the key source cannot serve (for example an HMAC
    /// algorithm with a JWKS, or an asymmetric one with an HMAC secret).
    AlgorithmNotUsable {
        /// The algorithm.
        algorithm: crate::Algorithm,
        /// Why.
        reason: &'static str,
    },
    /// The HMAC secret is too short for the algorithm.
    WeakSecret {
        /// The algorithm.
        algorithm: crate::Algorithm,
        /// Minimum length in bytes.
        min_len: usize,
        /// The length given.
        len: usize,
    },
    /// A static key (PEM or JWKS) could not be used.
    InvalidKey {
        /// Which key (its position or `kid`).
        key: String,
        /// Why.
        reason: String,
    },
    /// Static keys were configured but none is usable with the allowed algorithms.
    NoUsableKeys {
        /// Why each key was skipped.
        reasons: String,
    },
    /// A scope, claim name or other token was not valid.
    InvalidValue {
        /// Which setting.
        what: &'static str,
        /// The value given.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// A duration or size setting was out of range.
    OutOfRange {
        /// Which setting.
        what: &'static str,
        /// The value given, formatted.
        value: String,
        /// The accepted range, formatted.
        range: &'static str,
    },
    /// No crypto backend feature is enabled: enable `aws-lc-rs` (the default) or `rust-crypto`.
    NoCryptoBackend,
    /// The default HTTP client could not be built.
    HttpClient(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingIssuer => f.write_str("no issuer configured: call `.issuer(..)`"),
            Self::MissingAudience => f.write_str(
                "no audience configured: call `.audience(..)` (the `aud` check cannot be skipped)",
            ),
            Self::EmptyAudience => f.write_str("an audience is the empty string"),
            Self::InvalidUrl {
                what,
                value,
                reason,
            } => write!(f, "{what} {value:?} is not a valid URL: {reason}"),
            Self::InsecureUrl { what, value } => write!(
                f,
                "{what} {value:?} is not https and not a loopback host: use an https URL \
                 (only if the network between this service and that host is trusted, \
                 `dangerous_allow_insecure_http()` allows plain http)"
            ),
            Self::ConflictingKeySources { first, second } => {
                write!(
                    f,
                    "two key sources configured: {first} and {second}; choose one"
                )
            }
            Self::NoAlgorithms => f.write_str("the algorithm allow-list is empty"),
            Self::AlgorithmNotUsable { algorithm, reason } => {
                write!(f, "algorithm {algorithm} cannot be allowed: {reason}")
            }
            Self::WeakSecret {
                algorithm,
                min_len,
                len,
            } => write!(
                f,
                "the HMAC secret is {len} bytes; {algorithm} needs at least {min_len}"
            ),
            Self::InvalidKey { key, reason } => write!(f, "key {key} is not usable: {reason}"),
            Self::NoUsableKeys { reasons } => write!(
                f,
                "none of the static keys is usable with the allowed algorithms: {reasons}"
            ),
            Self::InvalidValue {
                what,
                value,
                reason,
            } => write!(f, "{what} {value:?} is invalid: {reason}"),
            Self::OutOfRange { what, value, range } => {
                write!(f, "{what} = {value} is out of range ({range})")
            }
            Self::NoCryptoBackend => f.write_str(
                "no crypto backend: enable the `aws-lc-rs` (default) or `rust-crypto` feature \
                 of bearer-guard",
            ),
            Self::HttpClient(reason) => write!(f, "the HTTP client could not be built: {reason}"),
        }
    }
}

impl StdError for ConfigError {}

/// What went wrong with a request's credentials; see [`AuthError::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthErrorKind {
    /// The request carried no credentials (RFC 6750 §3.1: answer without an error code).
    MissingToken,
    /// The request was malformed: two `Authorization` headers, `Bearer` with no token, a token
    /// that is not `b64token` syntax, … (`invalid_request`).
    MalformedRequest,
    /// The token was refused (`invalid_token`), for the reason given.
    InvalidToken(InvalidTokenReason),
    /// The token is valid but lacks a required scope (`insufficient_scope`).
    InsufficientScope,
    /// The issuer's keys could not be obtained; the token could not be checked. Not the
    /// client's fault: answer 503, not 401.
    KeysUnavailable,
    /// The DPoP proof (RFC 9449) was refused (`invalid_dpop_proof`), for the reason given.
    InvalidDpopProof(DpopProofReason),
    /// The DPoP proof lacks the server nonce, or its nonce is stale or forged
    /// (`use_dpop_nonce`, RFC 9449 §8): the answer carries a fresh `DPoP-Nonce`.
    UseDpopNonce,
    /// The DPoP replay store could not record the proof (full of live entries, or
    /// unreachable): the proof cannot be accepted safely. Not the client's fault: answer 503
    /// with `Retry-After`.
    ReplayStoreUnavailable,
    /// The authorization server's introspection endpoint (RFC 7662) could not say whether
    /// an opaque token is active: unreachable, too slow, an error status, an answer that is
    /// not an introspection response, or our client credentials refused. Not the client's
    /// fault: answer 503 with `Retry-After`, never 401.
    IntrospectionUnavailable,
}

/// Why a DPoP proof (RFC 9449 §4.3) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DpopProofReason {
    /// Longer than the configured maximum (checked before any parsing).
    TooLarge,
    /// Not a compact JWS of three base64url parts whose header and payload are JSON objects.
    Malformed,
    /// More than one `DPoP` header, or one holding more than one proof.
    MultipleProofs,
    /// The request uses the `DPoP` scheme but has no `DPoP` header.
    Missing,
    /// The `typ` header is not `dpop+jwt`.
    WrongType,
    /// The `alg` header is not in the allow-list (this includes `none` and HMAC).
    AlgorithmNotAllowed,
    /// The header carries a `crit` extension this library does not understand.
    UnsupportedCritical,
    /// The `jwk` header is missing or is not a usable public key.
    InvalidKey,
    /// The `jwk` header holds private key material (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`, `k`).
    PrivateKey,
    /// The `alg` header does not fit the key's type or curve.
    KeyAlgorithmMismatch,
    /// The signature does not verify under the `jwk` header's key.
    BadSignature,
    /// A required claim (`jti`, `htm`, `htu`, `iat`) is missing or has the wrong type.
    MissingClaim,
    /// A claim has an invalid value (for example a `jti` longer than the maximum).
    InvalidClaim,
    /// `htm` is not the request's method.
    WrongMethod,
    /// `htu` is not the request's URI (without query and fragment).
    WrongUri,
    /// `iat` is further in the future than the leeway.
    IssuedInFuture,
    /// `iat` is older than the accepted window.
    TooOld,
    /// `ath` is missing or is not the hash of the access token.
    WrongAccessTokenHash,
    /// The proof was used before (same key, same `jti`, within the window).
    Replayed,
    /// The proof's key is not the one the access token is bound to (`cnf.jkt`).
    KeyNotBound,
}

impl DpopProofReason {
    /// A short, fixed description, safe to send to clients (it never echoes proof content).
    pub const fn description(self) -> &'static str {
        match self {
            Self::TooLarge => "the DPoP proof is too large",
            Self::Malformed => "the DPoP proof is malformed",
            Self::MultipleProofs => "the request carries more than one DPoP proof",
            Self::Missing => "the request lacks a DPoP proof",
            Self::WrongType => "the DPoP proof type is not dpop+jwt",
            Self::AlgorithmNotAllowed => "the DPoP proof's signing algorithm is not allowed",
            Self::UnsupportedCritical => "the DPoP proof has an unsupported critical header",
            Self::InvalidKey => "the DPoP proof's jwk is not a usable public key",
            Self::PrivateKey => "the DPoP proof's jwk contains private key material",
            Self::KeyAlgorithmMismatch => "the DPoP proof's algorithm does not fit its key",
            Self::BadSignature => "the DPoP proof's signature is invalid",
            Self::MissingClaim => "the DPoP proof lacks a required claim",
            Self::InvalidClaim => "the DPoP proof has an invalid claim",
            Self::WrongMethod => "the DPoP proof is for another method",
            Self::WrongUri => "the DPoP proof is for another URI",
            Self::IssuedInFuture => "the DPoP proof was issued in the future",
            Self::TooOld => "the DPoP proof is too old",
            Self::WrongAccessTokenHash => "the DPoP proof's ath does not match the access token",
            Self::Replayed => "the DPoP proof was already used",
            Self::KeyNotBound => "the DPoP proof's key is not the key the token is bound to",
        }
    }

    /// A stable snake_case name, for logs and metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::MultipleProofs => "multiple_proofs",
            Self::Missing => "missing",
            Self::WrongType => "wrong_type",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::UnsupportedCritical => "unsupported_critical",
            Self::InvalidKey => "invalid_key",
            Self::PrivateKey => "private_key",
            Self::KeyAlgorithmMismatch => "key_algorithm_mismatch",
            Self::BadSignature => "bad_signature",
            Self::MissingClaim => "missing_claim",
            Self::InvalidClaim => "invalid_claim",
            Self::WrongMethod => "wrong_method",
            Self::WrongUri => "wrong_uri",
            Self::IssuedInFuture => "issued_in_future",
            Self::TooOld => "too_old",
            Self::WrongAccessTokenHash => "wrong_access_token_hash",
            Self::Replayed => "replayed",
            Self::KeyNotBound => "key_not_bound",
        }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidTokenReason {
    /// Longer than the configured maximum.
    TooLarge,
    /// Not three base64url segments, or a segment is not valid JSON of the right shape.
    Malformed,
    /// The header's `alg` is not in the allow-list (this includes `none`).
    AlgorithmNotAllowed,
    /// The header carries a `crit` extension this library does not understand.
    UnsupportedCritical,
    /// The `typ` header is not acceptable.
    WrongType,
    /// No key with the token's `kid` (or, without `kid`, no single key for its `alg`).
    UnknownKey,
    /// The key the token names is bound to another algorithm.
    KeyAlgorithmMismatch,
    /// The signature does not verify.
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    IssuedInFuture,
    /// `iat` is older than the configured maximum token age.
    TooOld,
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// `aud` contains none of the configured audiences.
    WrongAudience,
    /// A required claim is missing.
    MissingClaim,
    /// A claim has the wrong type or an invalid value.
    InvalidClaim,
    /// A custom claim validator refused the token.
    Rejected,
    /// The token is DPoP-bound (`cnf.jkt`) but was sent with the `Bearer` scheme (no
    /// downgrade, RFC 9449 §7.2).
    BoundTokenAsBearer,
    /// The token is not DPoP-bound but was sent with the `DPoP` scheme.
    UnboundTokenAsDpop,
    /// The authorization server's introspection endpoint says the (opaque) token is not
    /// active (RFC 7662 `"active": false`): revoked, expired, or unknown to it.
    Inactive,
    /// The token is bound to a client certificate (`cnf.x5t#S256`, RFC 8705) that the
    /// request did not come with: no certificate, or another one.
    CertificateMismatch,
    /// The token is not bound to a client certificate, and certificate-bound tokens are
    /// required ([`MtlsMode::Required`](crate::mtls::MtlsMode::Required)).
    NotCertificateBound,
}

impl InvalidTokenReason {
    /// A short, fixed description, safe to send to clients (RFC 6750 `error_description`
    /// characters only).
    pub const fn description(self) -> &'static str {
        match self {
            Self::TooLarge => "the token is too large",
            Self::Malformed => "the token is malformed",
            Self::AlgorithmNotAllowed => "the token's signing algorithm is not allowed",
            Self::UnsupportedCritical => "the token has an unsupported critical header",
            Self::WrongType => "the token type is not accepted",
            Self::UnknownKey => "the token's signing key is unknown",
            Self::KeyAlgorithmMismatch => "the token's algorithm does not match its key",
            Self::BadSignature => "the token's signature is invalid",
            Self::Expired => "the token has expired",
            Self::NotYetValid => "the token is not valid yet",
            Self::IssuedInFuture => "the token was issued in the future",
            Self::TooOld => "the token is too old",
            Self::WrongIssuer => "the token's issuer is not accepted",
            Self::WrongAudience => "the token's audience is not accepted",
            Self::MissingClaim => "the token lacks a required claim",
            Self::InvalidClaim => "the token has an invalid claim",
            Self::Rejected => "the token was rejected",
            Self::BoundTokenAsBearer => "the token is DPoP-bound: send it with the DPoP scheme",
            Self::UnboundTokenAsDpop => "the token is not DPoP-bound",
            Self::Inactive => "the token is not active",
            Self::CertificateMismatch => {
                "the token is bound to a client certificate the request did not present"
            }
            Self::NotCertificateBound => "the token is not bound to a client certificate",
        }
    }

    /// A stable snake_case name, for logs and metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::UnsupportedCritical => "unsupported_critical",
            Self::WrongType => "wrong_type",
            Self::UnknownKey => "unknown_key",
            Self::KeyAlgorithmMismatch => "key_algorithm_mismatch",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInFuture => "issued_in_future",
            Self::TooOld => "too_old",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::MissingClaim => "missing_claim",
            Self::InvalidClaim => "invalid_claim",
            Self::Rejected => "rejected",
            Self::BoundTokenAsBearer => "bound_token_as_bearer",
            Self::UnboundTokenAsDpop => "unbound_token_as_dpop",
            Self::Inactive => "inactive",
            Self::CertificateMismatch => "certificate_mismatch",
            Self::NotCertificateBound => "not_certificate_bound",
        }
    }
}

impl AuthErrorKind {
    /// A stable snake_case name, for logs and metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::MalformedRequest => "malformed_request",
            Self::InvalidToken(_) => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::KeysUnavailable => "keys_unavailable",
            Self::InvalidDpopProof(_) => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::ReplayStoreUnavailable => "replay_store_unavailable",
            Self::IntrospectionUnavailable => "introspection_unavailable",
        }
    }
}

/// Why a request was not authenticated or authorized.
///
/// Opaque: inspect it with [`kind`](Self::kind). `Display` gives a description that is safe to
/// show to the client (it never contains token content).
#[derive(Clone)]
pub struct AuthError {
    kind: AuthErrorKind,
    detail: Cow<'static, str>,
    required_scopes: Option<std::sync::Arc<str>>,
    retry_after: Option<Duration>,
    source: Option<std::sync::Arc<dyn StdError + Send + Sync>>,
    dpop: DpopContext,
}

/// What an error knows of DPoP: whether the request used the `DPoP` scheme (so the answer's
/// challenge is a `DPoP` one) and the fresh nonce to send.
#[derive(Clone, Default)]
struct DpopContext {
    scheme: bool,
    nonce: Option<std::sync::Arc<str>>,
}

impl AuthError {
    pub(crate) fn new(kind: AuthErrorKind, detail: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            required_scopes: None,
            retry_after: None,
            source: None,
            dpop: DpopContext::default(),
        }
    }

    pub(crate) fn invalid_dpop_proof(reason: DpopProofReason) -> Self {
        Self::new(
            AuthErrorKind::InvalidDpopProof(reason),
            reason.description(),
        )
        .dpop_scheme()
    }

    pub(crate) fn use_dpop_nonce(nonce: impl Into<std::sync::Arc<str>>) -> Self {
        let mut e = Self::new(
            AuthErrorKind::UseDpopNonce,
            "the DPoP proof must carry the server's current nonce",
        )
        .dpop_scheme();
        e.dpop.nonce = Some(nonce.into());
        e
    }

    pub(crate) fn replay_store_unavailable(retry_after: Option<Duration>) -> Self {
        let mut e = Self::new(
            AuthErrorKind::ReplayStoreUnavailable,
            "the DPoP replay check is unavailable",
        )
        .dpop_scheme();
        e.retry_after = retry_after;
        e
    }

    /// Marks the error as an answer to a request made with the `DPoP` scheme.
    pub(crate) fn dpop_scheme(mut self) -> Self {
        self.dpop.scheme = true;
        self
    }

    /// Whether the request was made with the `DPoP` authorization scheme (RFC 9449), so that
    /// its challenge is a `DPoP` one.
    pub fn is_dpop(&self) -> bool {
        self.dpop.scheme
    }

    /// For [`AuthErrorKind::UseDpopNonce`]: the nonce to send in the `DPoP-Nonce` header.
    pub fn dpop_nonce(&self) -> Option<&str> {
        self.dpop.nonce.as_deref()
    }

    pub(crate) fn invalid(reason: InvalidTokenReason) -> Self {
        Self::new(AuthErrorKind::InvalidToken(reason), reason.description())
    }

    pub(crate) fn invalid_with(
        reason: InvalidTokenReason,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(AuthErrorKind::InvalidToken(reason), detail)
    }

    pub(crate) fn missing_token() -> Self {
        Self::new(
            AuthErrorKind::MissingToken,
            "no bearer token in the request",
        )
    }

    pub(crate) fn malformed_request(detail: &'static str) -> Self {
        Self::new(AuthErrorKind::MalformedRequest, detail)
    }

    /// The introspection endpoint could not answer, with the reason (URLs and statuses,
    /// never token content) kept as the source for logs.
    #[cfg(feature = "introspection")]
    pub(crate) fn introspection_unavailable(
        retry_after: Option<Duration>,
        reason: impl Into<String>,
    ) -> Self {
        let mut e = Self::new(
            AuthErrorKind::IntrospectionUnavailable,
            "the authorization server could not be asked about the token",
        );
        e.retry_after = retry_after;
        e.with_source(KeysError(reason.into().into()))
    }

    pub(crate) fn keys_unavailable(retry_after: Option<Duration>) -> Self {
        let mut e = Self::new(
            AuthErrorKind::KeysUnavailable,
            "the issuer's signing keys are unavailable",
        );
        e.retry_after = retry_after;
        e
    }

    /// Keys unavailable, with the reason the last fetch failed (for [`refresh_keys`] and
    /// operators: the reason names URLs and issuers, never token content).
    ///
    /// [`refresh_keys`]: crate::Verifier::refresh_keys
    pub(crate) fn keys_unavailable_because(
        retry_after: Option<Duration>,
        reason: impl Into<std::sync::Arc<str>>,
    ) -> Self {
        let reason = KeysError(reason.into());
        let mut e = Self::new(
            AuthErrorKind::KeysUnavailable,
            format!("the issuer's signing keys are unavailable: {reason}"),
        );
        e.retry_after = retry_after;
        e.with_source(reason)
    }

    /// An `insufficient_scope` error naming the scopes the resource requires
    /// (space-separated, as in the `scope` challenge parameter).
    pub fn insufficient_scope(required: impl Into<std::sync::Arc<str>>) -> Self {
        let mut e = Self::new(
            AuthErrorKind::InsufficientScope,
            "the token lacks a required scope",
        );
        e.required_scopes = Some(required.into());
        e
    }

    /// An `insufficient_scope` error for a resource that accepts any one of `scopes`
    /// (space-separated): its description says that one of them is enough.
    pub(crate) fn insufficient_scope_any_of(scopes: impl Into<std::sync::Arc<str>>) -> Self {
        let mut e = Self::insufficient_scope(scopes);
        e.detail = Cow::Borrowed(
            "the token has none of the scopes in scope, and any one of them is enough",
        );
        e
    }

    /// A custom rejection of a valid token, for claim validators. `description` must use only
    /// the characters RFC 6750 allows in `error_description` (others are replaced when sent).
    pub fn rejected(description: impl Into<Cow<'static, str>>) -> Self {
        Self::invalid_with(InvalidTokenReason::Rejected, description)
    }

    #[allow(dead_code)]
    pub(crate) fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(std::sync::Arc::new(source));
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> AuthErrorKind {
        self.kind
    }

    /// A description safe to send to the client.
    pub fn description(&self) -> &str {
        &self.detail
    }

    /// For [`AuthErrorKind::InsufficientScope`]: the required scopes, space-separated.
    pub fn required_scopes(&self) -> Option<&str> {
        self.required_scopes.as_deref()
    }

    /// For [`AuthErrorKind::KeysUnavailable`] and [`AuthErrorKind::ReplayStoreUnavailable`]:
    /// when trying again may help.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Debug for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("AuthError");
        d.field("kind", &self.kind).field("detail", &self.detail);
        if let Some(s) = &self.required_scopes {
            d.field("required_scopes", s);
        }
        if let Some(r) = &self.retry_after {
            d.field("retry_after", r);
        }
        if let Some(s) = &self.source {
            d.field("source", &s.to_string());
        }
        if self.dpop.scheme {
            d.field("dpop", &true);
        }
        d.finish()
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl StdError for AuthError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

/// Why the issuer's keys could not be obtained: the [`source`](StdError::source) of a
/// [`KeysUnavailable`](AuthErrorKind::KeysUnavailable) error from
/// [`Verifier::refresh_keys`](crate::Verifier::refresh_keys), and of an
/// [`IntrospectionUnavailable`](AuthErrorKind::IntrospectionUnavailable) error.
#[derive(Debug, Clone)]
struct KeysError(std::sync::Arc<str>);

impl fmt::Display for KeysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for KeysError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn errors_are_send_and_sync() {
        assert_send_sync::<AuthError>();
        assert_send_sync::<ConfigError>();
    }

    #[test]
    fn descriptions_use_only_rfc6750_characters() {
        let all = [
            InvalidTokenReason::TooLarge,
            InvalidTokenReason::Malformed,
            InvalidTokenReason::AlgorithmNotAllowed,
            InvalidTokenReason::UnsupportedCritical,
            InvalidTokenReason::WrongType,
            InvalidTokenReason::UnknownKey,
            InvalidTokenReason::KeyAlgorithmMismatch,
            InvalidTokenReason::BadSignature,
            InvalidTokenReason::Expired,
            InvalidTokenReason::NotYetValid,
            InvalidTokenReason::IssuedInFuture,
            InvalidTokenReason::TooOld,
            InvalidTokenReason::WrongIssuer,
            InvalidTokenReason::WrongAudience,
            InvalidTokenReason::MissingClaim,
            InvalidTokenReason::InvalidClaim,
            InvalidTokenReason::Rejected,
            InvalidTokenReason::BoundTokenAsBearer,
            InvalidTokenReason::UnboundTokenAsDpop,
        ];
        for r in all {
            assert!(
                r.description()
                    .bytes()
                    .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E)),
                "{r:?}"
            );
        }
    }

    #[test]
    fn config_error_names_the_bad_value() {
        let e = ConfigError::InsecureUrl {
            what: "issuer",
            value: "http://idp.example.com/".into(),
        };
        assert!(e.to_string().contains("http://idp.example.com/"));
    }

    #[test]
    fn the_http_hint_says_use_https_before_the_dangerous_opt_in() {
        let e = ConfigError::InsecureUrl {
            what: "issuer",
            value: "http://idp.example.com/".into(),
        }
        .to_string();
        let https = e.find("use an https URL").expect(&e);
        let opt_in = e.find("dangerous_allow_insecure_http").expect(&e);
        assert!(https < opt_in, "{e}");
    }
}
