//! Which check a token goes to: the JWT [`Verifier`], or RFC 7662 introspection (feature
//! `introspection`), as [`JwtAuthLayer::introspection`](super::JwtAuthLayer::introspection)
//! chose.

use crate::claims::Claims;
use crate::error::AuthError;
#[cfg(feature = "introspection")]
use crate::introspection::{Introspector, TokenRouting, is_jwt_shaped};
use crate::verify::Verifier;

/// The layer's introspection settings (none by default, or without the feature).
#[derive(Clone, Debug, Default)]
pub(crate) struct Introspection {
    #[cfg(feature = "introspection")]
    pub(crate) routed: Option<(Introspector, TokenRouting)>,
}

impl Introspection {
    /// The introspector `token` goes to, if it goes to one.
    #[cfg(feature = "introspection")]
    fn route(&self, token: &[u8]) -> Option<&Introspector> {
        match &self.routed {
            Some((i, TokenRouting::IntrospectOnly)) => Some(i),
            Some((i, _)) => {
                // Most opaque tokens have no two dots: no decoding for them.
                let jwt = dots(token) == 2 && std::str::from_utf8(token).is_ok_and(is_jwt_shaped);
                (!jwt).then_some(i)
            }
            None => None,
        }
    }

    /// What the caches answer for `token` (the verified-token cache, or the introspection
    /// cache for a token routed there), without a future; `None` on a miss.
    pub(crate) fn cached(
        &self,
        verifier: &Verifier,
        token: &[u8],
    ) -> Option<Result<Claims, AuthError>> {
        #[cfg(feature = "introspection")]
        if let Some((_, routing)) = &self.routed {
            // A JWT in the verified-token cache is answered without a look at its shape.
            if *routing == TokenRouting::ByShape
                && dots(token) == 2
                && let Some(hit) = verifier.verify_cached(token)
            {
                return Some(hit);
            }
            if let Some(i) = self.route(token) {
                return i.introspect_cached(token);
            }
        }
        verifier.verify_cached(token)
    }

    /// The claims of `token`: verified as a JWT, or introspected.
    pub(crate) async fn resolve(
        &self,
        verifier: &Verifier,
        token: &str,
    ) -> Result<Claims, AuthError> {
        #[cfg(feature = "introspection")]
        if let Some(i) = self.route(token.as_bytes()) {
            return i.introspect(token).await;
        }
        verifier.verify(token).await
    }
}

/// The number of dots in `token`.
#[cfg(feature = "introspection")]
fn dots(token: &[u8]) -> usize {
    memchr::memchr_iter(b'.', token).count()
}
