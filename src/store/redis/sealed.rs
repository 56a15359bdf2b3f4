//! The authenticated values the fleet writes to Redis (key-set snapshots, introspection
//! answers): `magic | HMAC-SHA256 tag | stamp (u64, big-endian) | payload`, the tag over a
//! label, a 32-byte context (what the value is for), the stamp and the payload. A value
//! that does not verify under the fleet's secret for that context is not used.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// One kind of sealed value: its magic prefix and the label its tags are computed over
/// (distinct per kind, so that a value of one kind never opens as another).
pub(super) struct Sealed {
    pub(super) magic: &'static [u8; 5],
    pub(super) label: &'static [u8],
}

impl Sealed {
    /// The bytes a sealed value adds to its payload.
    pub(super) const HEADER: usize = 5 + 32 + 8;

    /// (HMAC takes keys of any length: `None` never happens in practice.)
    fn mac(
        &self,
        secret: &[u8],
        context: &[u8; 32],
        stamp: u64,
        payload: &[u8],
    ) -> Option<Hmac<Sha256>> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).ok()?;
        m.update(self.label);
        m.update(context);
        m.update(&stamp.to_be_bytes());
        m.update(payload);
        Some(m)
    }

    /// The value stored for `payload` with `stamp`, for `context`.
    pub(super) fn seal(
        &self,
        secret: &[u8],
        context: &[u8; 32],
        stamp: u64,
        payload: &[u8],
    ) -> Option<Vec<u8>> {
        let tag = self
            .mac(secret, context, stamp, payload)?
            .finalize()
            .into_bytes();
        let mut v = Vec::with_capacity(Self::HEADER + payload.len());
        v.extend_from_slice(self.magic);
        v.extend_from_slice(&tag);
        v.extend_from_slice(&stamp.to_be_bytes());
        v.extend_from_slice(payload);
        Some(v)
    }

    /// The stamp and payload of `value`, if its tag verifies under `secret` for `context`
    /// (compared in constant time).
    pub(super) fn open<'a>(
        &self,
        secret: &[u8],
        context: &[u8; 32],
        value: &'a [u8],
    ) -> Option<(u64, &'a [u8])> {
        let rest = value.strip_prefix(self.magic)?;
        let (tag, rest) = rest.split_at_checked(32)?;
        let (stamp, payload) = rest.split_at_checked(8)?;
        let stamp = u64::from_be_bytes(stamp.try_into().ok()?);
        self.mac(secret, context, stamp, payload)?
            .verify_slice(tag)
            .ok()?;
        Some((stamp, payload))
    }
}

/// `t` in milliseconds since the Unix epoch (0 before it, `u64::MAX` far after).
pub(super) fn unix_ms(t: SystemTime) -> u64 {
    u64::try_from(
        t.duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis(),
    )
    .unwrap_or(u64::MAX)
}
