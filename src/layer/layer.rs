use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::dpop::BearerRule;
use super::resolve::Introspection;
use super::service::{JwtAuth, Shared};
use crate::dpop::{Dpop, DpopMode};
use crate::extract::TokenSource;
use crate::mtls::Mtls;
#[cfg(doc)]
use crate::mtls::MtlsMode;
use crate::rejection::DefaultRejection;
use crate::verify::Verifier;

/// A tower [`Layer`] that authenticates requests with bearer JWTs. See the
/// [module docs](crate::layer).
#[must_use]
pub struct JwtAuthLayer<R = DefaultRejection> {
    shared: Arc<Shared<R>>,
}

impl<R> Clone for JwtAuthLayer<R> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<R> fmt::Debug for JwtAuthLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthLayer")
            .field("verifier", &self.shared.verifier)
            .field("source", &self.shared.source)
            .field("optional", &self.shared.optional)
            .field("dpop", &self.shared.dpop)
            .field("bearer_rule", &self.shared.bearer_rule)
            .field("mtls", &self.shared.mtls)
            .finish_non_exhaustive()
    }
}

impl JwtAuthLayer {
    /// A layer verifying tokens with `verifier`, answering failures per RFC 6750.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            shared: Arc::new(Shared {
                verifier,
                rejection: DefaultRejection::new(),
                challenge: DefaultRejection::new(),
                source: TokenSource::AuthorizationHeader,
                optional: false,
                dpop: None,
                bearer_rule: BearerRule::Unconfigured,
                introspection: Introspection::default(),
                mtls: None,
                #[cfg(feature = "tonic-tls")]
                tonic_peers: Default::default(),
            }),
        }
    }
}

impl<R> JwtAuthLayer<R> {
    fn map_shared(self, f: impl FnOnce(&mut Shared<R>)) -> Self
    where
        R: Clone,
    {
        let mut shared = Arc::unwrap_or_clone(self.shared);
        f(&mut shared);
        Self {
            shared: Arc::new(shared),
        }
    }

    /// Replaces how rejections are answered (a [`Rejection`](crate::Rejection), e.g. a
    /// closure `Fn(AuthError) -> Response<B>`).
    pub fn rejection<R2>(self, rejection: R2) -> JwtAuthLayer<R2>
    where
        R: Clone,
    {
        let s = Arc::unwrap_or_clone(self.shared);
        JwtAuthLayer {
            shared: Arc::new(Shared {
                verifier: s.verifier,
                rejection,
                challenge: s.challenge,
                source: s.source,
                optional: s.optional,
                dpop: s.dpop,
                bearer_rule: s.bearer_rule,
                introspection: s.introspection,
                mtls: s.mtls,
                #[cfg(feature = "tonic-tls")]
                tonic_peers: s.tonic_peers,
            }),
        }
    }

    /// Also look for the token in this cookie or header when there is no `Authorization`
    /// header (off by default; never the query string or the body).
    pub fn token_source(self, source: TokenSource) -> Self
    where
        R: Clone,
    {
        self.map_shared(|s| s.source = source)
    }

    /// Optional authentication: a request **without** credentials passes as anonymous (no
    /// [`Claims`](crate::Claims) in its extensions; handlers see `Option<Claims>`), while a
    /// request with a malformed or invalid token is still rejected.
    pub fn optional(self) -> Self
    where
        R: Clone,
    {
        self.map_shared(|s| s.optional = true)
    }

    /// Accepts opaque access tokens too, checked by RFC 7662 introspection with
    /// `introspector` (see the [`introspection`](crate::introspection) module): with
    /// [`TokenRouting::ByShape`](crate::introspection::TokenRouting::ByShape) a JWT still
    /// goes to the verifier and anything else to introspection; with
    /// [`TokenRouting::IntrospectOnly`](crate::introspection::TokenRouting::IntrospectOnly)
    /// every token is introspected. Extractors, scope guards, DPoP binding (`cnf.jkt` of the
    /// response) and rejections are the same; an endpoint that cannot answer gives 503 with
    /// `Retry-After`.
    #[cfg(feature = "introspection")]
    #[cfg_attr(docsrs, doc(cfg(feature = "introspection")))]
    pub fn introspection(
        self,
        introspector: crate::introspection::Introspector,
        routing: crate::introspection::TokenRouting,
    ) -> Self
    where
        R: Clone,
    {
        self.map_shared(|s| s.introspection.routed = Some((introspector, routing)))
    }

    /// Accepts certificate-bound tokens (RFC 8705) as `mtls` says: where the client
    /// certificate comes from and the [mode](crate::mtls::MtlsMode) (see the
    /// [`mtls` module](crate::mtls)). The binding check runs on every request, a token from
    /// the verified-token cache too; a confirmed binding puts an
    /// [`MtlsConfirmation`](crate::MtlsConfirmation) in the request's extensions.
    ///
    /// Without this setting, a certificate-bound token (`cnf.x5t#S256`) is refused with
    /// `invalid_token`: the layer cannot check its binding, and RFC 8705 accepts such a token
    /// only with its certificate. [`MtlsMode::Off`] is the explicit way to accept bound tokens
    /// unchecked (as bearer tokens).
    ///
    /// ```
    /// # #[cfg(feature = "aws-lc-rs")]
    /// # fn main() {
    /// use bearer_guard::mtls::{CLIENT_CERT, Mtls, MtlsMode};
    /// use bearer_guard::{JwtAuthLayer, Verifier};
    /// let verifier = Verifier::builder()
    ///     .issuer("https://issuer.example/")
    ///     .audience("urn:worldmappers")
    ///     .hmac_secret(b"an-example-secret-of-at-least-32-bytes!!")
    ///     .build()
    ///     .unwrap();
    /// // TLS ends at a proxy that strips `Client-Cert` from clients and sets it itself.
    /// let layer = JwtAuthLayer::new(verifier)
    ///     .mtls(Mtls::trusted_header(CLIENT_CERT).mode(MtlsMode::Required));
    /// # }
    /// # #[cfg(not(feature = "aws-lc-rs"))]
    /// # fn main() {}
    /// ```
    pub fn mtls(self, mtls: Mtls) -> Self
    where
        R: Clone,
    {
        self.map_shared(|s| {
            s.mtls = Some(mtls);
        })
    }

    /// The verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.shared.verifier
    }
}

impl JwtAuthLayer<DefaultRejection> {
    /// Sets the RFC 6750 challenge settings (realm, descriptions, RFC 9728 resource
    /// metadata), used for the layer's answers and the extractors' 403 answers. To combine
    /// them with a custom [`rejection`](Self::rejection), call this first.
    ///
    /// ```
    /// # fn f(verifier: bearer_guard::Verifier) {
    /// use bearer_guard::{DefaultRejection, JwtAuthLayer};
    /// let layer = JwtAuthLayer::new(verifier)
    ///     .challenge(DefaultRejection::new().realm(Some("world-mappers")).error_description(false));
    /// # }
    /// ```
    pub fn challenge(self, challenge: DefaultRejection) -> Self {
        self.map_shared(|s| {
            let challenge = challenge.with_dpop_of(&s.challenge);
            s.rejection = challenge.clone();
            s.challenge = challenge;
        })
    }

    /// Accepts DPoP-bound tokens (RFC 9449) as `dpop` says: its
    /// [mode](crate::dpop::DpopMode), proof checks, replay store, nonces and public URL (see
    /// the [`dpop` module](crate::dpop)). The 401 answers gain the `DPoP` challenge. Without
    /// this call, a DPoP-bound token is refused (no proof is checked, so its binding could not
    /// be); [`DpopMode::Off`](crate::dpop::DpopMode::Off) accepts it unchecked. Call it
    /// before [`rejection`](Self::rejection) (a custom rejection reads the challenge
    /// settings from the request, as [`GrpcRejection`](https://docs.rs/bearer-guard/latest/bearer_guard/tonic/struct.GrpcRejection.html) does).
    ///
    /// ```
    /// # #[cfg(feature = "aws-lc-rs")]
    /// # fn main() {
    /// use bearer_guard::dpop::{Dpop, DpopMode};
    /// use bearer_guard::{JwtAuthLayer, Verifier};
    /// let verifier = Verifier::builder()
    ///     .issuer("https://issuer.example/")
    ///     .audience("urn:worldmappers")
    ///     .hmac_secret(b"an-example-secret-of-at-least-32-bytes!!")
    ///     .build()
    ///     .unwrap();
    /// let dpop = Dpop::builder().public_url("https://api.example").mode(DpopMode::Required);
    /// let layer = JwtAuthLayer::new(verifier).dpop(dpop.build().unwrap());
    /// # }
    /// # #[cfg(not(feature = "aws-lc-rs"))]
    /// # fn main() {}
    /// ```
    pub fn dpop(self, dpop: Dpop) -> Self {
        self.map_shared(|s| {
            if dpop.mode() == DpopMode::Off {
                s.dpop = None;
                s.bearer_rule = BearerRule::Unchecked;
                return;
            }
            s.bearer_rule = BearerRule::Downgrade;
            let required = dpop.mode() == DpopMode::Required;
            s.challenge = s.challenge.clone().dpop(dpop.algs(), required);
            s.rejection = s.challenge.clone();
            s.dpop = Some(dpop);
        })
    }

    /// Adds `resource_metadata="url"` (RFC 9728) to the 401 challenges, keeping the other
    /// challenge settings: `url` is where the
    /// [`ProtectedResourceMetadata`](crate::ProtectedResourceMetadata) document is served.
    /// Call it after [`challenge`](Self::challenge).
    pub fn resource_metadata(self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.map_shared(|s| {
            s.challenge = s.challenge.clone().resource_metadata(url);
            s.rejection = s.challenge.clone();
        })
    }
}

impl<S, R> Layer<S> for JwtAuthLayer<R> {
    type Service = JwtAuth<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtAuth::from_parts(inner, self.shared.clone())
    }
}
