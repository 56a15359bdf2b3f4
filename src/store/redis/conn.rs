//! The connection (standalone or Cluster, made lazily), the per-call timeout and the
//! circuit that keeps a dead Redis from costing every request its timeout.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Consecutive failures that open the circuit.
pub(super) const OPEN_AFTER: u32 = 2;
/// The first pause of an open circuit; it doubles at each failed probe.
pub(super) const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause of an open circuit: Redis back is noticed within this time.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Where to connect.
#[derive(Clone)]
#[allow(clippy::large_enum_variant)] // one per store, made once
pub(super) enum Target {
    Single(redis::Client),
    Cluster(redis::cluster::ClusterClient),
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    async fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> redis::RedisResult<T> {
        match self {
            Self::Single(c) => cmd.query_async(c).await,
            Self::Cluster(c) => cmd.query_async(c).await,
        }
    }
}

/// Why a call was not answered (the text is for logs: no key, value or secret in it).
#[derive(Debug, Clone)]
pub(super) enum CallError {
    /// The circuit is open: Redis failed recently; no call was made.
    CircuitOpen,
    /// No answer within the timeout.
    Timeout,
    /// Redis answered an error, or the connection failed.
    Redis(String),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CircuitOpen => f.write_str("Redis is unreachable (circuit open, backing off)"),
            Self::Timeout => f.write_str("Redis did not answer in time"),
            Self::Redis(e) => write!(f, "Redis failed: {e}"),
        }
    }
}

#[derive(Debug, Default)]
struct CircuitState {
    failures: u32,
    open_until: Option<Instant>,
    backoff: Duration,
    /// The probe in flight (the one call let through an open circuit), if any.
    probe: Option<Probe>,
    /// Numbers the probes, so that a probe given up late cannot release its successor.
    probes: u64,
}

/// The probe in flight: its number, and until when it holds the place: its own bound
/// (four times, and 50 ms) from its start, whatever the bound of the calls that come
/// meanwhile (a 10 ms call must not take a 500 ms snapshot probe for abandoned).
#[derive(Debug, Clone, Copy)]
struct Probe {
    id: u64,
    until: Instant,
}

/// How long a probe holds its place, for a probe of bound `bound`: normally it ends
/// (answered, timed out or dropped) long before; this only replaces one whose future is
/// no longer polled.
fn probe_hold(bound: Duration) -> Duration {
    bound.saturating_mul(4) + Duration::from_millis(50)
}

/// Closed: calls go through. Open after [`OPEN_AFTER`] consecutive failures: calls fail at
/// once for a pause (100 ms, doubling to 2 s); then one call probes, and its success
/// closes the circuit.
#[derive(Debug, Default)]
pub(super) struct Circuit {
    state: Mutex<CircuitState>,
}

impl Circuit {
    /// Whether a call of bound `bound` may go now (`Err(())`: the circuit is open). `Ok`
    /// carries the probe's number when the call is the probe of an open circuit.
    pub(super) fn admit(&self, bound: Duration) -> Result<Option<u64>, ()> {
        let Ok(mut s) = self.state.lock() else {
            return Ok(None);
        };
        let Some(until) = s.open_until else {
            return Ok(None);
        };
        let now = Instant::now();
        if now < until {
            return Err(());
        }
        // One probe at a time (a probe whose caller went away is replaced after a while).
        if s.probe.is_some_and(|p| now < p.until) {
            return Err(());
        }
        s.probes = s.probes.wrapping_add(1);
        let id = s.probes;
        s.probe = Some(Probe {
            id,
            until: now + probe_hold(bound),
        });
        Ok(Some(id))
    }

    /// Records a call's result; returns `Some(true)` when it closed the circuit and
    /// `Some(false)` when it opened it.
    pub(super) fn record(&self, ok: bool) -> Option<bool> {
        let Ok(mut s) = self.state.lock() else {
            return None;
        };
        if ok {
            let was_open = s.open_until.is_some();
            let probes = s.probes;
            *s = CircuitState {
                probes,
                ..CircuitState::default()
            };
            return was_open.then_some(true);
        }
        s.failures = s.failures.saturating_add(1);
        s.probe = None;
        if s.failures < OPEN_AFTER {
            return None;
        }
        let was_open = s.open_until.is_some();
        s.backoff = if was_open {
            s.backoff.saturating_mul(2).min(MAX_BACKOFF)
        } else {
            FIRST_BACKOFF
        };
        s.open_until = Some(Instant::now() + s.backoff);
        (!was_open).then_some(false)
    }

    /// A call its caller dropped before it ended: a failure when `failed` (see
    /// `RedisStore::call_within`), otherwise nothing but its probe's place given back, so
    /// that the next call probes at once. Returns what [`record`](Self::record) does.
    pub(super) fn abandon(&self, probe: Option<u64>, failed: bool) -> Option<bool> {
        if failed {
            return self.record(false);
        }
        if let (Some(id), Ok(mut s)) = (probe, self.state.lock())
            && s.probe.is_some_and(|p| p.id == id)
        {
            s.probe = None;
        }
        None
    }

    /// Whether the circuit is open now.
    pub(super) fn is_open(&self) -> bool {
        self.state
            .lock()
            .map(|s| s.open_until.is_some())
            .unwrap_or(false)
    }
}

/// The lazily made connection, shared by every call.
pub(super) struct Connection {
    target: Target,
    connect_timeout: Duration,
    conn: ArcSwapOption<Conn>,
    connecting: AtomicBool,
    connected: Notify,
    pub(super) circuit: Circuit,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field(
                "kind",
                &match self.target {
                    Target::Single(_) => "standalone",
                    Target::Cluster(_) => "cluster",
                },
            )
            .field("connected", &self.conn.load().is_some())
            .field("circuit_open", &self.circuit.is_open())
            .finish_non_exhaustive()
    }
}

impl Connection {
    pub(super) fn new(target: Target, connect_timeout: Duration) -> Self {
        Self {
            target,
            connect_timeout,
            conn: ArcSwapOption::empty(),
            connecting: AtomicBool::new(false),
            connected: Notify::new(),
            circuit: Circuit::default(),
        }
    }

    /// Runs `cmd` on the connection (made first if need be), with no time bound.
    pub(super) async fn query<T: FromRedisValue>(
        self: &std::sync::Arc<Self>,
        cmd: &Cmd,
        response_timeout: Duration,
    ) -> Result<T, CallError> {
        let mut conn = self.get(response_timeout).await?;
        conn.query(cmd)
            .await
            .map_err(|e| CallError::Redis(describe(&e)))
    }

    async fn get(
        self: &std::sync::Arc<Self>,
        response_timeout: Duration,
    ) -> Result<Conn, CallError> {
        loop {
            if let Some(c) = self.conn.load_full() {
                return Ok((*c).clone());
            }
            let notified = self.connected.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(c) = self.conn.load_full() {
                return Ok((*c).clone());
            }
            self.start_connect(response_timeout);
            notified.await;
            if self.conn.load().is_none() {
                return Err(CallError::Redis("could not connect".into()));
            }
        }
    }

    /// Connects in a task of its own (a caller that gives up does not cancel it).
    fn start_connect(self: &std::sync::Arc<Self>, response_timeout: Duration) {
        if self.connecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let made =
                tokio::time::timeout(this.connect_timeout, this.connect(response_timeout)).await;
            match made {
                Ok(Ok(c)) => {
                    this.conn.store(Some(std::sync::Arc::new(c)));
                    tracing::debug!("bearer-guard: connected to Redis");
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %describe(&e), "bearer-guard: cannot connect to Redis");
                }
                Err(_) => tracing::warn!("bearer-guard: connecting to Redis timed out"),
            }
            this.connecting.store(false, Ordering::Release);
            this.connected.notify_waiters();
        });
    }

    async fn connect(&self, response_timeout: Duration) -> redis::RedisResult<Conn> {
        match &self.target {
            Target::Single(client) => {
                // Reconnects by itself after a failure, in the background; a call meanwhile
                // fails at once (and counts against the circuit).
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_response_timeout(Some(response_timeout.max(Duration::from_millis(1))))
                    .set_number_of_retries(2)
                    .set_max_delay(MAX_BACKOFF);
                Ok(Conn::Single(
                    ConnectionManager::new_with_config(client.clone(), config).await?,
                ))
            }
            Target::Cluster(client) => Ok(Conn::Cluster(client.get_async_connection().await?)),
        }
    }
}

/// An error's kind and category, without the server's text (which may echo arguments).
fn describe(e: &redis::RedisError) -> String {
    format!("{:?} ({})", e.kind(), e.category())
}
