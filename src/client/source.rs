//! [`ClientCredentials`]: the cached token, single-flight refreshes, and what happens when a
//! refresh fails.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::config::ClientCredentialsBuilder;
use super::dpop::{Dpop, DpopKey};
use super::endpoint::Endpoint;
use super::error::TokenError;
use super::token::AccessToken;

/// First pause after a failed refresh before the next one is tried (doubling per failure).
const FIRST_COOLDOWN: Duration = Duration::from_secs(1);
/// Longest pause between failed refreshes.
const MAX_COOLDOWN: Duration = Duration::from_secs(30);
/// At most one renewal forced by a resource server's refusal per this period.
pub(super) const FORCED_RENEWAL_INTERVAL: Duration = Duration::from_secs(10);

/// What [`ClientCredentials::refused`] did with a token a resource server refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// It was the cached token: dropped, the next caller gets a new one.
    Dropped,
    /// A newer token is cached, or a renewal is under way: nothing to drop.
    Replaced,
    /// It was the cached token, but a refusal already forced a renewal less than
    /// [`FORCED_RENEWAL_INTERVAL`] ago: kept (the server refuses new tokens too).
    Kept,
}

/// A client-credentials token source (RFC 6749 §4.4): asks the authorization server for an
/// access token, caches it, and renews it shortly before it expires.
///
/// Build one with [`ClientCredentials::builder`], keep it for the life of the process and
/// clone it freely (clones share the cache). See the [module docs](crate::client) for the
/// caching and retry rules.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use bearer_guard::client::ClientCredentials;
///
/// let source = ClientCredentials::builder()
///     .issuer("https://tenant.eu.auth0.com/")
///     .client_id("gift-deliveries")
///     .client_secret(std::env::var("CLIENT_SECRET")?)
///     .audience("urn:worldmappers")
///     .build()?;
///
/// // The first call asks the token endpoint; later ones reuse the token until shortly
/// // before it expires.
/// let token = source.token().await?;
/// let directions = reqwest::Client::new()
///     .get("https://api.example.com/api/directions?destination=Lapland")
///     .header(http::header::AUTHORIZATION, token.authorization())
///     .send()
///     .await?
///     .text()
///     .await?;
/// assert_eq!(source.token().await?, token);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ClientCredentials {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Endpoint,
    min_skew: Duration,
    state: Mutex<State>,
    /// Held by the one caller that is refreshing.
    refresh: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    token: Option<AccessToken>,
    /// Bumped at the end of every refresh (successful or not), so that callers who waited
    /// for it share its outcome instead of trying again.
    generation: u64,
    /// The error of the last refresh, if it failed.
    last_error: Option<TokenError>,
    /// Consecutive failed refreshes.
    failures: u32,
    /// After a failure, no new refresh before this.
    cooldown_until: Option<Instant>,
    /// When a refusal last dropped the cached token.
    last_forced: Option<Instant>,
}

/// What a caller of `token` does after looking at the state.
enum Next {
    Done(Result<AccessToken, TokenError>),
    /// The token is stale but usable: renew it unless a renewal is in flight.
    RenewIfIdle(AccessToken),
    /// No usable token: wait for the refresh lock; the generation seen.
    Wait(u64),
}

impl State {
    fn cooling_down(&self, now: Instant) -> bool {
        self.cooldown_until.is_some_and(|until| now < until)
    }
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("endpoint", &self.inner.endpoint)
            .field("refresh_skew", &self.inner.min_skew)
            .field("token", &self.state().token)
            .finish()
    }
}

impl ClientCredentials {
    /// A builder with the defaults.
    pub fn builder() -> ClientCredentialsBuilder {
        ClientCredentialsBuilder::new()
    }

    pub(super) fn from_endpoint(endpoint: Endpoint, min_skew: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                endpoint,
                min_skew,
                state: Mutex::new(State::default()),
                refresh: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// A valid access token: the cached one while it is fresh, else a new one from the
    /// token endpoint.
    ///
    /// - Only one request to the token endpoint is in flight at a time: concurrent callers
    ///   wait for it and share its outcome.
    /// - Within the refresh skew before expiry, one caller renews the token while the others
    ///   keep getting the current one without waiting.
    /// - If renewing fails while the current token is still valid, the current token is
    ///   returned (and a warning logged); the next attempt waits a cooldown (1 s, doubling
    ///   per failure up to 30 s).
    /// - With no valid token, a failure is returned, and returned again without a new
    ///   request during the cooldown.
    ///
    /// # Errors
    ///
    /// A [`TokenError`] when there is no valid token and none could be obtained: an OAuth
    /// error answer (`invalid_client`, …), `429`/`5xx` after the retries, a network failure,
    /// a timeout, an unusable answer, or a failed discovery.
    pub async fn token(&self) -> Result<AccessToken, TokenError> {
        let now = Instant::now();
        let next = {
            let state = self.state();
            match &state.token {
                Some(t) if t.is_fresh(now) => Next::Done(Ok(t.clone())),
                Some(t) if t.is_usable(now) && state.cooling_down(now) => Next::Done(Ok(t.clone())),
                Some(t) if t.is_usable(now) => Next::RenewIfIdle(t.clone()),
                _ => match &state.last_error {
                    Some(e) if state.cooling_down(now) => Next::Done(Err(e.clone())),
                    _ => Next::Wait(state.generation),
                },
            }
        };
        let seen = match next {
            Next::Done(result) => return result,
            Next::RenewIfIdle(current) => {
                // Renew in this caller unless another one already is.
                let Ok(guard) = self.inner.refresh.try_lock() else {
                    return Ok(current);
                };
                if let Some(t) = self.fresh_token() {
                    return Ok(t);
                }
                return self.refresh(guard).await;
            }
            Next::Wait(seen) => seen,
        };
        let guard = self.inner.refresh.lock().await;
        {
            let state = self.state();
            let now = Instant::now();
            if let Some(t) = state.token.as_ref().filter(|t| t.is_fresh(now)) {
                return Ok(t.clone());
            }
            if state.generation != seen {
                // A refresh ended while this caller waited: share its outcome.
                if let Some(t) = state.token.as_ref().filter(|t| t.is_usable(now)) {
                    return Ok(t.clone());
                }
                if let Some(e) = &state.last_error {
                    return Err(e.clone());
                }
            }
        }
        self.refresh(guard).await
    }

    /// Asks the token endpoint, holding the refresh lock, and records the outcome.
    async fn refresh(
        &self,
        _guard: tokio::sync::MutexGuard<'_, ()>,
    ) -> Result<AccessToken, TokenError> {
        let result = self.inner.endpoint.fetch(self.inner.min_skew).await;
        let now = Instant::now();
        let mut state = self.state();
        state.generation = state.generation.wrapping_add(1);
        match result {
            Ok(token) => {
                state.token = Some(token.clone());
                state.last_error = None;
                state.failures = 0;
                state.cooldown_until = None;
                Ok(token)
            }
            Err(e) => {
                state.failures = state.failures.saturating_add(1);
                let cooldown = FIRST_COOLDOWN
                    .saturating_mul(1 << (state.failures - 1).min(8))
                    .min(MAX_COOLDOWN);
                state.cooldown_until = Some(now + cooldown);
                state.last_error = Some(e.clone());
                match state.token.as_ref().filter(|t| t.is_usable(now)) {
                    Some(current) => {
                        tracing::warn!(
                            error = %e,
                            expires_in_secs = current.expires_in().as_secs(),
                            "access token refresh failed; the current token is used until it expires"
                        );
                        Ok(current.clone())
                    }
                    None => {
                        tracing::warn!(error = %e, "no access token could be obtained");
                        Err(e)
                    }
                }
            }
        }
    }

    /// The cached token if it is fresh.
    fn fresh_token(&self) -> Option<AccessToken> {
        let now = Instant::now();
        self.state().token.clone().filter(|t| t.is_fresh(now))
    }

    /// Drops `token` from the cache, if it is the cached one (a newer token is kept): the
    /// next [`token`](Self::token) call asks for a new one. For a token the resource server
    /// refused with `invalid_token` (the [`AddBearer`](super::AddBearer) middleware does this
    /// by itself, at most once per 10 s). Returns whether the token was dropped.
    pub fn invalidate(&self, token: &AccessToken) -> bool {
        let mut state = self.state();
        if state.token.as_ref().is_some_and(|t| t.same_token(token)) {
            state.token = None;
            true
        } else {
            false
        }
    }

    /// Drops `token`, which a resource server refused, unless a newer one is cached or a
    /// refusal already forced a renewal within [`FORCED_RENEWAL_INTERVAL`].
    pub(super) fn refused(&self, token: &AccessToken) -> Refusal {
        let now = Instant::now();
        let mut state = self.state();
        match &state.token {
            Some(t) if t.same_token(token) => {
                if state
                    .last_forced
                    .is_some_and(|at| now < at + FORCED_RENEWAL_INTERVAL)
                {
                    return Refusal::Kept;
                }
                state.token = None;
                state.last_forced = Some(now);
                Refusal::Dropped
            }
            _ => Refusal::Replaced,
        }
    }

    /// When the cached token is due for renewal, if there is one.
    pub fn refresh_due_in(&self) -> Option<Duration> {
        let now = Instant::now();
        self.state()
            .token
            .as_ref()
            .map(|t| t.refresh_at().saturating_duration_since(now))
    }

    /// HTTP requests sent to the token endpoint so far (retries included; discovery
    /// requests not), for metrics and tests.
    pub fn token_requests(&self) -> u64 {
        self.inner.endpoint.requests()
    }

    /// The DPoP key the tokens are bound to, when DPoP is on
    /// ([`ClientCredentialsBuilder::dpop`]).
    pub fn dpop_key(&self) -> Option<&DpopKey> {
        self.inner.endpoint.dpop.as_ref().map(|d| &d.key)
    }

    /// The DPoP state (key and nonces), when DPoP is on.
    pub(super) fn dpop(&self) -> Option<&Arc<Dpop>> {
        self.inner.endpoint.dpop.as_ref()
    }

    /// The HTTP client used for the token endpoint. With a
    /// [client certificate](ClientCredentialsBuilder::client_certificate), it carries that
    /// identity: send the API calls with it, so that a certificate-bound token (RFC 8705)
    /// travels with its certificate. (It has the token requests' timeout and no redirects.)
    pub fn http_client(&self) -> &reqwest::Client {
        &self.inner.endpoint.http
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.inner.endpoint.client_id
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every write leaves the state consistent: a poisoned lock is still usable.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
