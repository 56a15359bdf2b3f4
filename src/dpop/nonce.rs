//! Server-provided nonces (RFC 9449 §8, §9), stateless.
//!
//! A nonce names a time step and carries a MAC of it: `base64url(step ‖ tag)`, where `step`
//! is the number of the time step (8 bytes, big-endian) and `tag` the first 16 bytes of
//! HMAC-SHA-256 under that step's key. Each step's key is derived from the secret
//! (HMAC-SHA-256 of the secret over a label and the step), so the key rotates every step
//! and no nonce is ever stored. A nonce is valid during its step and the next one; a proof
//! carrying one from the previous step is accepted and the response carries a fresh nonce
//! (`DPoP-Nonce`) ahead of its expiry.
//!
//! The secret is random per process by default. Replicas behind one load balancer share a
//! secret ([`Nonces::with_secret`]) so that a nonce from one is valid at the others.

use std::fmt;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::ConfigError;
use crate::jwks::B64;

type HmacSha256 = Hmac<Sha256>;

/// The default nonce time step: 5 minutes (a nonce lives 5 to 10 minutes).
pub const DEFAULT_NONCE_STEP: Duration = Duration::from_secs(300);

const LABEL: &[u8] = b"bearer-guard dpop-nonce v1";
const TAG_LEN: usize = 16;

/// How a nonce presented in a proof compares with the current time step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NonceState {
    /// Issued in the current step.
    Current,
    /// Issued in the previous step: still valid, expires at the end of this step; answer
    /// with a fresh nonce.
    Previous,
}

/// Issues and checks server nonces. Cheap to clone; the secret never appears in `Debug`.
#[derive(Clone)]
pub struct Nonces {
    secret: std::sync::Arc<[u8]>,
    step: Duration,
}

impl fmt::Debug for Nonces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nonces")
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

impl Nonces {
    /// Nonces under a random secret of this process, with the default step.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidValue`] when the system's random source fails.
    pub fn random() -> Result<Self, ConfigError> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|_| ConfigError::InvalidValue {
            what: "DPoP nonce secret",
            value: "random".into(),
            reason: "the system's random source failed",
        })?;
        Ok(Self {
            secret: secret.to_vec().into(),
            step: DEFAULT_NONCE_STEP,
        })
    }

    /// Nonces under a secret shared by every replica (at least 32 bytes).
    ///
    /// # Errors
    ///
    /// [`ConfigError::OutOfRange`] when the secret is shorter than 32 bytes.
    pub fn with_secret(secret: &[u8]) -> Result<Self, ConfigError> {
        if secret.len() < 32 {
            return Err(ConfigError::OutOfRange {
                what: "DPoP nonce secret length",
                value: secret.len().to_string(),
                range: "at least 32 bytes",
            });
        }
        Ok(Self {
            secret: secret.into(),
            step: DEFAULT_NONCE_STEP,
        })
    }

    /// The time step (default 5 min; 10 s – 1 h): a nonce is valid for one to two steps.
    ///
    /// # Errors
    ///
    /// [`ConfigError::OutOfRange`] outside 10 s – 1 h.
    pub fn step(mut self, step: Duration) -> Result<Self, ConfigError> {
        crate::config::check_range(
            "DPoP nonce step",
            step,
            Duration::from_secs(10),
            Duration::from_secs(3600),
            "10 s - 1 h",
        )?;
        self.step = step;
        Ok(self)
    }

    fn step_at(&self, now: SystemTime) -> u64 {
        let secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        secs / self.step.as_secs().max(1)
    }

    /// The tag of `step`: HMAC under the step's key (itself HMAC of the secret over the label
    /// and the step). `None` only if HMAC refused a key, which it never does.
    fn tag(&self, step: u64) -> Option<[u8; TAG_LEN]> {
        let mac = |key: &[u8], parts: &[&[u8]]| {
            let mut m = HmacSha256::new_from_slice(key).ok()?;
            for p in parts {
                m.update(p);
            }
            Some(m.finalize().into_bytes())
        };
        let key = mac(&self.secret, &[LABEL, &step.to_be_bytes()])?;
        let full = mac(&key, &[&step.to_be_bytes()])?;
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        Some(tag)
    }

    /// The nonce to hand out at `now`. (Empty, and never valid, only if HMAC failed, which
    /// it does not.)
    pub fn current(&self, now: SystemTime) -> String {
        let step = self.step_at(now);
        let Some(tag) = self.tag(step) else {
            return String::new();
        };
        let mut raw = [0u8; 8 + TAG_LEN];
        raw[..8].copy_from_slice(&step.to_be_bytes());
        raw[8..].copy_from_slice(&tag);
        B64.encode(raw)
    }

    /// Checks a nonce presented at `now`: `None` when it is forged, malformed or stale
    /// (older than the previous step, or from the future).
    pub fn check(&self, nonce: &str, now: SystemTime) -> Option<NonceState> {
        if nonce.len() != 32 {
            return None;
        }
        let raw = B64.decode(nonce).ok()?;
        let (step, tag) = raw.split_at_checked(8)?;
        let step = u64::from_be_bytes(step.try_into().ok()?);
        let current = self.step_at(now);
        let state = if step == current {
            NonceState::Current
        } else if step.checked_add(1) == Some(current) {
            NonceState::Previous
        } else {
            return None;
        };
        let expected = self.tag(step)?;
        crate::crypto::constant_time_eq(tag, &expected).then_some(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn nonces() -> Nonces {
        Nonces::with_secret(&[7; 32]).expect("secret")
    }

    #[test]
    fn a_nonce_is_valid_in_its_step_and_the_next() {
        let n = nonces();
        let v = n.current(at(1_000_000));
        assert_eq!(n.check(&v, at(1_000_000)), Some(NonceState::Current));
        assert_eq!(n.check(&v, at(1_000_000 + 300)), Some(NonceState::Previous));
    }

    #[test]
    fn a_nonce_two_steps_old_is_stale() {
        let n = nonces();
        let v = n.current(at(1_000_000));
        assert_eq!(n.check(&v, at(1_000_000 + 600)), None);
    }

    #[test]
    fn a_nonce_from_the_future_is_refused() {
        let n = nonces();
        let v = n.current(at(1_000_000 + 300));
        assert_eq!(n.check(&v, at(1_000_000)), None);
    }

    #[test]
    fn a_forged_nonce_is_refused() {
        let n = nonces();
        let v = n.current(at(1_000_000));
        let mut raw = B64.decode(&v).expect("b64");
        raw[20] ^= 1;
        assert_eq!(n.check(&B64.encode(raw), at(1_000_000)), None);
        let other = Nonces::with_secret(&[8; 32]).expect("secret");
        assert_eq!(n.check(&other.current(at(1_000_000)), at(1_000_000)), None);
        assert_eq!(n.check("not-a-nonce", at(1_000_000)), None);
    }

    #[test]
    fn replicas_sharing_a_secret_accept_each_others_nonces() {
        let v = nonces().current(at(5_000));
        assert_eq!(nonces().check(&v, at(5_000)), Some(NonceState::Current));
    }

    #[test]
    fn a_short_secret_is_refused_and_debug_hides_the_secret() {
        assert!(Nonces::with_secret(&[1; 16]).is_err());
        let d = format!("{:?}", Nonces::with_secret(&[0x41; 32]).expect("secret"));
        assert!(!d.contains("65") && !d.contains("AAAA"), "{d}");
    }
}
