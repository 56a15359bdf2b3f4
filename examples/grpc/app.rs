//! The World Mappers gRPC service: handlers, per-method scopes and the auth layers (shared by
//! examples/grpc_world_mappers.rs and tests/grpc.rs).

use bearer_guard::{
    ClaimsExt, GrpcRejection, GrpcScopesLayer, JwtAuthLayer, ScopePolicy, Verifier,
};
use tonic::server::NamedService;
use tonic::{Request, Response, Status};
use tower::layer::util::Stack;

use crate::world_mappers::world_mappers_server::{WorldMappers, WorldMappersServer};
use crate::world_mappers::{
    DirectionsReply, DirectionsRequest, GeocodeReply, GeocodeRequest, ReverseGeocodeReply,
    ReverseGeocodeRequest,
};

/// The scope each method needs, as in the HTTP example.
pub(crate) const METHOD_SCOPES: [(&str, &str); 3] = [
    ("Geocode", "geocode:location"),
    ("ReverseGeocode", "reverse-geocode:location"),
    ("Directions", "directions"),
];

/// The gRPC path of a World Mappers method: `/world_mappers.v1.WorldMappers/<method>`.
pub(crate) fn path(method: &str) -> String {
    format!("/{}/{method}", WorldMappersServer::<Api>::NAME)
}

/// Every method mapped to its scope; other methods are denied (the default).
pub(crate) fn scopes() -> GrpcScopesLayer {
    METHOD_SCOPES
        .iter()
        .fold(GrpcScopesLayer::new(), |layer, (method, scope)| {
            layer.method(path(method), ScopePolicy::all_of([*scope]))
        })
}

/// The token check (gRPC-native answers) around the per-method scope check, for
/// `Server::builder().layer(..)` or for one service (tests/grpc.rs uses it; the example
/// uses [`auth_with`]).
#[allow(dead_code)]
pub(crate) fn auth(verifier: Verifier) -> Stack<GrpcScopesLayer, JwtAuthLayer<GrpcRejection>> {
    auth_with(verifier, None, None)
}

/// [`auth`], accepting DPoP-bound tokens (RFC 9449) as `dpop` says (a call's proof names
/// `POST` and the method's URL, `{public URL}/world_mappers.v1.WorldMappers/Geocode`) and
/// certificate-bound tokens (RFC 8705) as `mtls` says (with tonic's own TLS and the feature
/// `tonic-tls`, `Mtls::peer_certificate()` is all it takes).
pub(crate) fn auth_with(
    verifier: Verifier,
    dpop: Option<bearer_guard::Dpop>,
    mtls: Option<bearer_guard::mtls::Mtls>,
) -> Stack<GrpcScopesLayer, JwtAuthLayer<GrpcRejection>> {
    let mut layer = JwtAuthLayer::new(verifier);
    if let Some(dpop) = dpop {
        layer = layer.dpop(dpop);
    }
    if let Some(mtls) = mtls {
        layer = layer.mtls(mtls);
    }
    Stack::new(scopes(), layer.rejection(GrpcRejection::new()))
}

/// The service.
pub(crate) fn service() -> WorldMappersServer<Api> {
    WorldMappersServer::new(Api)
}

/// The handlers. The scopes were checked by [`scopes`]; the claims are in the request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Api;

#[tonic::async_trait]
impl WorldMappers for Api {
    async fn geocode(
        &self,
        _request: Request<GeocodeRequest>,
    ) -> Result<Response<GeocodeReply>, Status> {
        Ok(Response::new(GeocodeReply {
            lat: 47.6178819,
            lng: -122.194041,
        }))
    }

    async fn reverse_geocode(
        &self,
        _request: Request<ReverseGeocodeRequest>,
    ) -> Result<Response<ReverseGeocodeReply>, Status> {
        Ok(Response::new(ReverseGeocodeReply {
            street: "10900 NE 8th Street".to_owned(),
            city: "Bellevue".to_owned(),
            state: "Washington".to_owned(),
        }))
    }

    async fn directions(
        &self,
        request: Request<DirectionsRequest>,
    ) -> Result<Response<DirectionsReply>, Status> {
        // The verified claims, read from the request's extensions.
        let claims = request.claims()?;
        let requested_by = claims
            .client_id()
            .or(claims.subject())
            .unwrap_or("someone")
            .to_owned();
        let destination = match request.get_ref().destination.as_str() {
            "" => "the North Pole".to_owned(),
            d => d.to_owned(),
        };
        Ok(Response::new(DirectionsReply {
            steps: vec![
                format!("Directions for {requested_by}"),
                "Head north on 108th Ave NE toward NE 8th St".to_owned(),
                "Turn right onto NE 8th St".to_owned(),
                "Merge onto I-405 N".to_owned(),
                format!("Follow the signs to {destination}"),
            ],
        }))
    }
}
