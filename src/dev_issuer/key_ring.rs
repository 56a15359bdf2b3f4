//! The development issuer's key ring: the key that signs new tokens, the keys published in
//! the JWKS, and rotation through the compiled-in key pool.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::keys::{SigningError, SigningKey};
use crate::Algorithm;

/// Where the next issuer started without an explicit key offset begins in the pool, so that
/// issuers started one after the other hold different keys.
static NEXT_KEY_OFFSET: AtomicUsize = AtomicUsize::new(0);

/// The next process-wide key offset.
pub(super) fn next_key_offset() -> usize {
    NEXT_KEY_OFFSET.fetch_add(1, Ordering::Relaxed)
}

/// How many pool keys sign `alg`, or `None` when the pool has none.
pub(super) fn pool_size(alg: Algorithm) -> Option<usize> {
    match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => Some(4),
        Algorithm::ES256 | Algorithm::EdDSA => Some(2),
        Algorithm::ES384 => Some(1),
        _ => None,
    }
}

/// The signing key and the published keys.
#[derive(Debug)]
pub(super) struct KeyRing {
    alg: Algorithm,
    pool_size: usize,
    /// Pool index of the current key.
    index: usize,
    current: SigningKey,
    published: Vec<SigningKey>,
    /// Bumped on every change of the published set (for the JWKS `ETag`).
    generation: u64,
}

impl KeyRing {
    /// A ring signing with pool key `offset` (modulo the pool size) for `alg`.
    pub(super) fn new(
        alg: Algorithm,
        pool_size: usize,
        offset: usize,
    ) -> Result<Self, SigningError> {
        let index = offset % pool_size;
        let current = SigningKey::from_pool(alg, index, new_kid(alg, index))?;
        Ok(Self {
            alg,
            pool_size,
            index,
            published: vec![current.clone()],
            current,
            generation: 0,
        })
    }

    /// Publishes the next pool key (wrapping around) under a fresh `kid` and signs with it
    /// from now on; the previous keys stay published. Returns the new `kid`.
    pub(super) fn rotate(&mut self) -> Result<String, SigningError> {
        let index = (self.index + 1) % self.pool_size;
        let key = SigningKey::from_pool(self.alg, index, new_kid(self.alg, index))?;
        let kid = key.kid().to_owned();
        self.index = index;
        self.published.push(key.clone());
        self.current = key;
        self.generation += 1;
        Ok(kid)
    }

    /// Unpublishes the key `kid`; whether it was published.
    pub(super) fn retire(&mut self, kid: &str) -> bool {
        let before = self.published.len();
        self.published.retain(|k| k.kid() != kid);
        let removed = self.published.len() != before;
        if removed {
            self.generation += 1;
        }
        removed
    }

    /// The key that signs new tokens.
    pub(super) fn current(&self) -> &SigningKey {
        &self.current
    }

    /// The published keys, oldest first.
    pub(super) fn published(&self) -> &[SigningKey] {
        &self.published
    }

    /// Changes with every change of the published set.
    pub(super) fn generation(&self) -> u64 {
        self.generation
    }
}

/// `dev-<alg>-<pool number>-<random>`: unique even when a pool key comes round again.
fn new_kid(alg: Algorithm, index: usize) -> String {
    format!(
        "dev-{}-{}-{:06x}",
        alg.as_str().to_ascii_lowercase(),
        index + 1,
        rand::random::<u32>() & 0x00ff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_the_old_key_published_and_signs_with_the_new_one() {
        let mut ring = KeyRing::new(Algorithm::RS256, 4, 0).expect("ring");
        let old = ring.current().kid().to_owned();
        let new = ring.rotate().expect("rotate");
        assert_ne!(old, new);
        assert_eq!(ring.current().kid(), new);
        let kids: Vec<_> = ring.published().iter().map(SigningKey::kid).collect();
        assert_eq!(kids, [old.as_str(), new.as_str()]);
    }

    #[test]
    fn rotation_wraps_around_the_pool_with_fresh_kids() {
        let mut ring = KeyRing::new(Algorithm::ES384, 1, 7).expect("ring");
        let first = ring.current().kid().to_owned();
        let second = ring.rotate().expect("rotate");
        assert_ne!(first, second);
        assert_eq!(ring.published().len(), 2);
    }

    #[test]
    fn retiring_unpublishes_only_that_key() {
        let mut ring = KeyRing::new(Algorithm::EdDSA, 2, 0).expect("ring");
        let old = ring.current().kid().to_owned();
        let new = ring.rotate().expect("rotate");
        let generation = ring.generation();
        assert!(ring.retire(&old));
        assert!(!ring.retire(&old));
        assert_eq!(ring.published().len(), 1);
        assert_eq!(ring.published()[0].kid(), new);
        assert_eq!(ring.generation(), generation + 1);
    }

    #[test]
    fn every_pool_algorithm_has_a_pool_size_and_hmac_has_none() {
        for alg in Algorithm::DEFAULT_ALLOWED {
            assert!(pool_size(alg).is_some(), "{alg}");
        }
        assert_eq!(pool_size(Algorithm::HS256), None);
        assert_eq!(pool_size(Algorithm::ES512), None);
    }
}
