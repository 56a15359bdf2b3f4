//! Key-set snapshots on Redis, authenticated with HMAC-SHA-256 under the fleet's secret.
//!
//! Value: `bgks1` (format), the MAC (32 bytes), the fetch time (Unix milliseconds, 8 bytes
//! big-endian), the document. The MAC covers a label, the SHA-256 of the issuer, the time
//! and the document: a snapshot moved to another issuer's key, edited, or written with
//! another secret fails the check and is ignored.

use std::time::{Duration, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::RedisStore;
use super::conn::CallError;
use super::sealed::{Sealed, unix_ms};
use crate::store::{KeySetSnapshot, KeySetSnapshots, SnapshotError, SnapshotFuture};

const SEALED: Sealed = Sealed {
    magic: b"bgks1",
    label: b"bearer-guard key-set snapshot v1\0",
};

/// The value stored for `snapshot`.
pub(super) fn seal(secret: &[u8], issuer: &str, snapshot: &KeySetSnapshot) -> Option<Vec<u8>> {
    let issuer_hash: [u8; 32] = Sha256::digest(issuer.as_bytes()).into();
    SEALED.seal(
        secret,
        &issuer_hash,
        unix_ms(snapshot.fetched_at),
        &snapshot.document,
    )
}

/// The snapshot in `value`, if its MAC verifies under `secret` for `issuer`.
pub(super) fn open(secret: &[u8], issuer: &str, value: &[u8]) -> Option<KeySetSnapshot> {
    let issuer_hash: [u8; 32] = Sha256::digest(issuer.as_bytes()).into();
    let (millis, document) = SEALED.open(secret, &issuer_hash, value)?;
    Some(KeySetSnapshot {
        document: document.to_vec(),
        fetched_at: UNIX_EPOCH.checked_add(Duration::from_millis(millis))?,
    })
}

impl RedisStore {
    fn snapshot_key(&self, issuer: &str) -> String {
        self.key("keyset", &Sha256::digest(issuer.as_bytes()).into())
    }
}

fn error(e: CallError) -> SnapshotError {
    SnapshotError::new(e.to_string())
}

impl KeySetSnapshots for RedisStore {
    fn call_timeout(&self) -> Option<Duration> {
        Some(self.snapshot_timeout())
    }

    fn load<'a>(&'a self, issuer: &'a str) -> SnapshotFuture<'a, Option<KeySetSnapshot>> {
        Box::pin(async move {
            let Some(secret) = &self.inner.snapshot_secret else {
                return Ok(None);
            };
            // At most one byte more than the largest snapshot (`GETRANGE`'s end is
            // inclusive): a larger value planted in Redis (up to 512 MB) is never read whole.
            let limit = Sealed::HEADER + super::MAX_SNAPSHOT_BYTES;
            let mut cmd = redis::cmd("GETRANGE");
            cmd.arg(self.snapshot_key(issuer)).arg(0).arg(limit);
            let value = self
                .call_within::<Vec<u8>>("snapshot_load", cmd, self.snapshot_timeout())
                .await
                .map_err(error)?;
            if value.is_empty() {
                // No such key (`GETRANGE` answers an empty string).
                return Ok(None);
            }
            if value.len() > limit {
                tracing::warn!(
                    max_bytes = limit,
                    "bearer-guard: a key-set snapshot in Redis is larger than the largest \
                     snapshot; ignored (not read)"
                );
                return Ok(None);
            }
            match open(secret, issuer, &value) {
                Some(s) => Ok(Some(s)),
                None => {
                    tracing::warn!(
                        "bearer-guard: a key-set snapshot in Redis failed authentication \
                         (another secret, or edited); ignored"
                    );
                    Ok(None)
                }
            }
        })
    }

    fn save<'a>(&'a self, issuer: &'a str, snapshot: &'a KeySetSnapshot) -> SnapshotFuture<'a, ()> {
        Box::pin(async move {
            let Some(secret) = &self.inner.snapshot_secret else {
                return Ok(());
            };
            if snapshot.document.len() > super::MAX_SNAPSHOT_BYTES {
                tracing::warn!(
                    bytes = snapshot.document.len(),
                    max_bytes = super::MAX_SNAPSHOT_BYTES,
                    "bearer-guard: the key set is too large to share as a snapshot; not saved"
                );
                return Ok(());
            }
            let Some(value) = seal(secret, issuer, snapshot) else {
                return Err(SnapshotError::new("the snapshot could not be sealed"));
            };
            let mut cmd = redis::cmd("SET");
            cmd.arg(self.snapshot_key(issuer)).arg(value);
            self.call_within::<()>("snapshot_save", cmd, self.snapshot_timeout())
                .await
                .map_err(error)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn snap() -> KeySetSnapshot {
        KeySetSnapshot {
            document: br#"{"keys":[]}"#.to_vec(),
            fetched_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        }
    }

    #[test]
    fn a_sealed_snapshot_opens_with_the_same_secret_and_issuer() {
        let v = seal(SECRET, "https://issuer.example/", &snap()).unwrap_or_default();
        assert_eq!(open(SECRET, "https://issuer.example/", &v), Some(snap()));
    }

    #[test]
    fn another_secret_another_issuer_or_an_edit_fails_the_check() {
        let v = seal(SECRET, "https://issuer.example/", &snap()).unwrap_or_default();
        assert!(
            open(
                b"another-secret-of-thirty-two-byte",
                "https://issuer.example/",
                &v
            )
            .is_none()
        );
        assert!(open(SECRET, "https://other.example/", &v).is_none());
        for i in [5, 40, 44, v.len() - 1] {
            let mut edited = v.clone();
            edited[i] ^= 1;
            assert!(
                open(SECRET, "https://issuer.example/", &edited).is_none(),
                "byte {i}"
            );
        }
        assert!(open(SECRET, "https://issuer.example/", &v[..20]).is_none());
    }
}
