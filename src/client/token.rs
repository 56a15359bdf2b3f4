//! [`AccessToken`]: a token from the token endpoint and when to renew it; the secret wrapper.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use tokio::time::Instant;

/// Longest token lifetime taken from `expires_in` (longer ones are shortened to this).
const MAX_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
/// Longest safety margin kept before `exp` when an old token is served after a failed
/// refresh.
const MAX_MARGIN: Duration = Duration::from_secs(5);

/// An access token obtained with the client-credentials grant.
///
/// Cheap to clone. `Debug` shows the granted scope and the remaining lifetime, never the
/// token itself; [`secret`](Self::secret) and [`authorization`](Self::authorization) give it.
///
/// ```
/// # async fn f(source: bearer_guard::client::ClientCredentials) -> Result<(), Box<dyn std::error::Error>> {
/// let token = source.token().await?;
/// let answer = reqwest::Client::new()
///     .get("https://api.example.com/api/directions?destination=home")
///     .header(http::header::AUTHORIZATION, token.authorization())
///     .send()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AccessToken {
    /// `Bearer <token>` or `DPoP <token>`, marked sensitive.
    header: HeaderValue,
    /// Bound to the client's DPoP key (`token_type` `DPoP`).
    dpop: bool,
    scope: Option<Arc<str>>,
    lifetime: Duration,
    /// After this, callers trigger a refresh (the token is still served meanwhile).
    refresh_at: Instant,
    /// After this, the token is no longer served, even when a refresh fails.
    usable_until: Instant,
    expires_at: Instant,
}

/// Why a token cannot be used (it is not sent in an `Authorization` header).
pub(super) const TOKEN_CHARS: &str =
    "the access_token contains characters that cannot be sent in a header";

impl AccessToken {
    /// A token received in answer to a request sent at `sent`, with this lifetime.
    #[cfg(test)]
    pub(super) fn new(
        token: &str,
        scope: Option<String>,
        lifetime: Duration,
        min_skew: Duration,
        sent: Instant,
    ) -> Result<Self, &'static str> {
        Self::with_type(token, false, scope, lifetime, min_skew, sent)
    }

    /// A token of type `DPoP` (`dpop`) or `Bearer`.
    pub(super) fn with_type(
        token: &str,
        dpop: bool,
        scope: Option<String>,
        lifetime: Duration,
        min_skew: Duration,
        sent: Instant,
    ) -> Result<Self, &'static str> {
        if token.is_empty() || !token.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(TOKEN_CHARS);
        }
        let scheme = if dpop { "DPoP" } else { "Bearer" };
        let mut header =
            HeaderValue::from_str(&format!("{scheme} {token}")).map_err(|_| TOKEN_CHARS)?;
        header.set_sensitive(true);
        let lifetime = lifetime.min(MAX_LIFETIME);
        let (skew, margin) = schedule(lifetime, min_skew);
        let expires_at = sent + lifetime;
        Ok(Self {
            header,
            dpop,
            scope: scope.map(Arc::from),
            lifetime,
            refresh_at: expires_at - skew,
            usable_until: expires_at - margin,
            expires_at,
        })
    }

    /// The token itself: send it as `Authorization: Bearer <token>` (or `DPoP <token>` with
    /// a proof, for a [DPoP-bound](Self::is_dpop_bound) token). Keep it out of logs.
    pub fn secret(&self) -> &str {
        // The header was built as "Bearer " or "DPoP " + token, all ASCII.
        self.header
            .to_str()
            .ok()
            .and_then(|h| h.split_once(' '))
            .map(|(_, token)| token)
            .unwrap_or_default()
    }

    /// Whether the token is bound to the client's DPoP key (the server answered
    /// `token_type` `DPoP`, RFC 9449 §5): it is sent as `Authorization: DPoP <token>`, each
    /// request with a proof.
    pub fn is_dpop_bound(&self) -> bool {
        self.dpop
    }

    /// The token type, and the `Authorization` scheme: `"Bearer"` or `"DPoP"`.
    pub fn token_type(&self) -> &'static str {
        if self.dpop { "DPoP" } else { "Bearer" }
    }

    /// The `Authorization` header value, `Bearer <token>` (or `DPoP <token>`), marked
    /// [sensitive](HeaderValue::set_sensitive) so that HTTP/2 never indexes it.
    pub fn authorization(&self) -> HeaderValue {
        self.header.clone()
    }

    /// The scope the server says it granted (`scope` in the token response), if it said.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The lifetime the server gave the token (`expires_in`, or the configured default
    /// when the response had none).
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// How long until the token expires (zero once it has).
    pub fn expires_in(&self) -> Duration {
        self.expires_at.saturating_duration_since(Instant::now())
    }

    /// Whether the token should be renewed at `now` (it is within the refresh skew of its
    /// expiry).
    pub(super) fn is_fresh(&self, now: Instant) -> bool {
        now < self.refresh_at
    }

    /// Whether the token may still be sent at `now` (if a refresh failed).
    pub(super) fn is_usable(&self, now: Instant) -> bool {
        now < self.usable_until
    }

    /// When a refresh is due.
    pub(super) fn refresh_at(&self) -> Instant {
        self.refresh_at
    }

    /// Whether `self` and `other` are the same token.
    pub(super) fn same_token(&self, other: &Self) -> bool {
        self.header == other.header
    }
}

impl PartialEq for AccessToken {
    fn eq(&self, other: &Self) -> bool {
        self.same_token(other)
    }
}

impl Eq for AccessToken {}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("token_type", &self.token_type())
            .field("scope", &self.scope)
            .field("lifetime", &self.lifetime)
            .field("expires_in", &self.expires_in())
            .finish()
    }
}

/// How long before expiry a token is renewed (the skew) and how long before expiry it stops
/// being served after failed refreshes (the margin), for a token of `lifetime`.
///
/// The skew is the larger of `min_skew` and 10 % of the lifetime, but never more than half
/// the lifetime, so that a short-lived token is still used for half its life. The margin is
/// half the skew, at most 5 s.
pub(super) fn schedule(lifetime: Duration, min_skew: Duration) -> (Duration, Duration) {
    let skew = min_skew.max(lifetime / 10).min(lifetime / 2);
    let margin = (skew / 2).min(MAX_MARGIN);
    (skew, margin)
}

/// The client secret: kept out of `Debug`.
#[derive(Clone)]
pub(crate) struct Secret(Arc<str>);

impl Secret {
    pub(crate) fn new(secret: String) -> Self {
        Self(Arc::from(secret))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_day_long_token_is_renewed_ten_percent_early() {
        assert_eq!(schedule(secs(86_400), MIN), (secs(8_640), secs(5)));
    }

    #[test]
    fn an_hour_long_token_is_renewed_six_minutes_early() {
        assert_eq!(schedule(secs(3_600), MIN).0, secs(360));
    }

    #[test]
    fn a_ten_minute_token_is_renewed_a_minute_early() {
        assert_eq!(schedule(secs(600), MIN).0, secs(60));
    }

    #[test]
    fn a_short_token_is_used_for_half_its_life() {
        assert_eq!(schedule(secs(60), MIN), (secs(30), secs(5)));
        assert_eq!(schedule(secs(4), MIN), (secs(2), secs(1)));
        assert_eq!(
            schedule(Duration::ZERO, MIN),
            (Duration::ZERO, Duration::ZERO)
        );
    }

    #[test]
    fn tokens_with_spaces_or_controls_are_refused() {
        let now = Instant::now();
        for bad in ["", "a b", "a\nb", "é"] {
            assert!(
                AccessToken::new(bad, None, secs(60), MIN, now).is_err(),
                "{bad:?}"
            );
        }
        let t = AccessToken::new("abc.def-_~+/=", None, secs(60), MIN, now).expect("token");
        assert_eq!(t.secret(), "abc.def-_~+/=");
        assert!(t.authorization().is_sensitive());
    }

    #[test]
    fn a_dpop_token_uses_the_dpop_scheme() {
        let t = AccessToken::with_type("abc", true, None, secs(60), MIN, Instant::now())
            .expect("token");
        assert_eq!(t.authorization(), "DPoP abc");
        assert_eq!(t.secret(), "abc");
        assert!(t.is_dpop_bound() && t.token_type() == "DPoP");
        let b = AccessToken::new("abc", None, secs(60), MIN, Instant::now()).expect("token");
        assert_eq!(b.authorization(), "Bearer abc");
        assert!(!b.is_dpop_bound() && b.token_type() == "Bearer");
        assert_ne!(t, b);
    }

    #[test]
    fn debug_hides_the_token_and_the_secret() {
        let t = AccessToken::new(
            "sekrit-token",
            Some("a b".into()),
            secs(60),
            MIN,
            Instant::now(),
        )
        .expect("token");
        assert!(!format!("{t:?}").contains("sekrit"));
        assert!(!format!("{:?}", Secret::new("hunter2".into())).contains("hunter2"));
    }

    #[test]
    fn a_token_is_fresh_then_stale_then_unusable() {
        let sent = Instant::now();
        let t = AccessToken::new("t", None, secs(100), MIN, sent).expect("token");
        assert!(t.is_fresh(sent + secs(49)));
        assert!(!t.is_fresh(sent + secs(50)));
        assert!(t.is_usable(sent + secs(94)));
        assert!(!t.is_usable(sent + secs(95)));
    }
}
