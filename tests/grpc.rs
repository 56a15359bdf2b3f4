//! The layer on tonic servers: real tonic clients over sockets on `127.0.0.1:0`, gRPC-native
//! answers, claims in handlers, per-method scopes, and tonic services mounted in axum.
#![cfg(all(
    feature = "tonic",
    feature = "dev-issuer",
    any(feature = "aws-lc-rs", feature = "rust-crypto")
))]

#[path = "../examples/grpc/app.rs"]
mod app;
#[path = "../examples/grpc/world_mappers.rs"]
mod world_mappers;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bearer_guard::dev_issuer::{DevIssuer, SigningKey, jwk_set};
use bearer_guard::{
    Algorithm, AuthError, ClaimsExt, DefaultRejection, GrpcRejection, GrpcScopesLayer,
    JwtAuthLayer, Rejection, ScopePolicy, Verifier,
};
use http::{Request, Response};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic::{Code, Status};
use tower::ServiceExt;

use world_mappers::world_mappers_client::WorldMappersClient;
use world_mappers::world_mappers_server::{WorldMappers, WorldMappersServer};
use world_mappers::{
    DirectionsReply, DirectionsRequest, GeocodeReply, GeocodeRequest, ReverseGeocodeReply,
    ReverseGeocodeRequest,
};

const ISSUER: &str = "https://issuer.test/";
const AUD: &str = "urn:worldmappers";

fn key() -> SigningKey {
    SigningKey::from_pool(Algorithm::RS256, 0, "grpc-test-1").expect("pool key")
}

/// A verifier trusting `key()`, with a static JWK Set (no network).
fn verifier() -> Verifier {
    Verifier::builder()
        .issuer(ISSUER)
        .audience(AUD)
        .jwks_json(jwk_set([&key()]).to_string())
        .build()
        .expect("verifier")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A token for `scope`, signed by `key()`; `extra` claims override the defaults.
fn token(scope: &str, extra: Value) -> String {
    let mut claims = json!({
        "iss": ISSUER, "aud": AUD, "sub": "gift-deliveries@clients",
        "client_id": "gift-deliveries", "iat": now(), "exp": now() + 300, "scope": scope,
    });
    if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    key().sign(&claims).expect("sign")
}

const ALL: &str = "geocode:location reverse-geocode:location directions";

/// A running server, stopped on drop.
struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn listen() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, addr)
}

fn spawn<F>(serve: impl FnOnce(tokio::net::TcpListener, oneshot::Receiver<()>) -> F) -> Running
where
    F: Future<Output = ()> + Send + 'static,
{
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    std_listener.set_nonblocking(true).expect("nonblocking");
    let addr = std_listener.local_addr().expect("addr");
    let listener = tokio::net::TcpListener::from_std(std_listener).expect("tokio listener");
    let (stop, stopped) = oneshot::channel();
    tokio::spawn(serve(listener, stopped));
    Running {
        addr,
        stop: Some(stop),
    }
}

/// The example's configuration: `Server::builder().layer(auth)` with every method mapped.
fn serve_example(verifier: Verifier) -> Running {
    serve_with(app::auth(verifier))
}

/// A tonic server with `layer` around the World Mappers service.
fn serve_with<L>(layer: L) -> Running
where
    L: tower::Layer<tonic::service::Routes> + Clone + Send + 'static,
    L::Service: tower::Service<
            Request<tonic::body::Body>,
            Response = Response<tonic::body::Body>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    <L::Service as tower::Service<Request<tonic::body::Body>>>::Future: Send,
{
    spawn(move |listener, stopped| async move {
        Server::builder()
            .layer(layer)
            .add_service(app::service())
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = stopped.await;
            })
            .await
            .expect("server");
    })
}

async fn client(addr: SocketAddr) -> WorldMappersClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    WorldMappersClient::new(channel)
}

fn request<T>(message: T, authorization: Option<&str>) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    if let Some(value) = authorization {
        req.metadata_mut()
            .insert("authorization", value.parse().expect("metadata value"));
    }
    req
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn geocode(addr: SocketAddr, authorization: Option<&str>) -> Result<GeocodeReply, Status> {
    client(addr)
        .await
        .geocode(request(GeocodeRequest::default(), authorization))
        .await
        .map(tonic::Response::into_inner)
}

async fn reverse_geocode(
    addr: SocketAddr,
    authorization: Option<&str>,
) -> Result<ReverseGeocodeReply, Status> {
    client(addr)
        .await
        .reverse_geocode(request(ReverseGeocodeRequest::default(), authorization))
        .await
        .map(tonic::Response::into_inner)
}

async fn directions(
    addr: SocketAddr,
    authorization: Option<&str>,
) -> Result<DirectionsReply, Status> {
    client(addr)
        .await
        .directions(request(
            DirectionsRequest {
                origin: String::new(),
                destination: "Seattle".to_owned(),
            },
            authorization,
        ))
        .await
        .map(tonic::Response::into_inner)
}

fn challenge(status: &Status) -> String {
    status
        .metadata()
        .get("www-authenticate")
        .expect("www-authenticate")
        .to_str()
        .expect("ascii")
        .to_owned()
}

/// The answer does not echo any part of the token.
fn assert_no_token_content(status: &Status, token: &str) {
    let mut texts = vec![status.message().to_owned()];
    if let Some(c) = status.metadata().get("www-authenticate") {
        texts.push(c.to_str().expect("ascii").to_owned());
    }
    for text in texts {
        for part in token.split('.') {
            let probe = &part[..part.len().min(12)];
            assert!(!text.contains(probe), "{text:?} echoes the token");
        }
    }
}

#[tokio::test]
async fn a_valid_token_calls_every_method() {
    let s = serve_example(verifier());
    let t = bearer(&token(ALL, json!({})));
    let geo = geocode(s.addr, Some(&t)).await.expect("geocode");
    assert_eq!((geo.lat, geo.lng), (47.6178819, -122.194041));
    let place = reverse_geocode(s.addr, Some(&t)).await.expect("reverse");
    assert_eq!(
        (
            place.street.as_str(),
            place.city.as_str(),
            place.state.as_str()
        ),
        ("10900 NE 8th Street", "Bellevue", "Washington")
    );
    let steps = directions(s.addr, Some(&t))
        .await
        .expect("directions")
        .steps;
    // The handler read the claims from the request's extensions.
    assert_eq!(steps[0], "Directions for gift-deliveries");
    assert_eq!(
        steps.last().map(String::as_str),
        Some("Follow the signs to Seattle")
    );
}

#[tokio::test]
async fn no_token_is_unauthenticated_with_a_bare_challenge() {
    let s = serve_example(verifier());
    let status = geocode(s.addr, None).await.expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "no bearer token in the request");
    assert_eq!(challenge(&status), "Bearer realm=\"api\"");
}

#[tokio::test]
async fn an_expired_token_is_unauthenticated_and_says_why() {
    let s = serve_example(verifier());
    let t = token(ALL, json!({"iat": now() - 7200, "exp": now() - 3600}));
    let status = geocode(s.addr, Some(&bearer(&t)))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "the token has expired");
    assert!(challenge(&status).contains("error=\"invalid_token\""));
    assert_no_token_content(&status, &t);
}

#[tokio::test]
async fn a_tampered_token_is_unauthenticated_without_echoing_it() {
    let s = serve_example(verifier());
    let t = token(ALL, json!({}));
    let (head, payload_sig) = t.split_once('.').expect("jwt");
    let (_, sig) = payload_sig.split_once('.').expect("jwt");
    let forged_payload = base64_url(
        &json!({"iss": ISSUER, "aud": AUD, "exp": now() + 300, "scope": ALL}).to_string(),
    );
    let forged = format!("{head}.{forged_payload}.{sig}");
    let status = geocode(s.addr, Some(&bearer(&forged)))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "the token's signature is invalid");
    assert_no_token_content(&status, &forged);
}

fn base64_url(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

#[tokio::test]
async fn a_malformed_authorization_is_unauthenticated_invalid_request() {
    let s = serve_example(verifier());
    let status = geocode(s.addr, Some("Bearer")).await.expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(challenge(&status).contains("error=\"invalid_request\""));
}

#[tokio::test]
async fn a_missing_scope_is_permission_denied_naming_it() {
    let s = serve_example(verifier());
    let t = token("geocode:location", json!({}));
    assert!(geocode(s.addr, Some(&bearer(&t))).await.is_ok());
    let status = directions(s.addr, Some(&bearer(&t)))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        status.message(),
        "the token lacks a required scope; required: directions"
    );
    let c = challenge(&status);
    assert!(c.contains("error=\"insufficient_scope\""), "{c}");
    assert!(c.contains("scope=\"directions\""), "{c}");
    assert_no_token_content(&status, &t);
}

#[tokio::test]
async fn issuer_down_and_no_keys_is_unavailable() {
    // A port nothing listens on.
    let (listener, addr) = listen().await;
    drop(listener);
    let verifier = Verifier::builder()
        .issuer(ISSUER)
        .audience(AUD)
        .jwks_uri(format!("http://{addr}/jwks"))
        .fetch_timeout(Duration::from_secs(1))
        .build()
        .expect("verifier");
    let s = serve_example(verifier);
    let t = token(ALL, json!({}));
    let status = geocode(s.addr, Some(&bearer(&t)))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        status.message(),
        "the issuer's signing keys are unavailable"
    );
    assert!(status.metadata().get("www-authenticate").is_none());
}

#[tokio::test]
async fn an_unlisted_method_is_denied_by_default() {
    // Directions is not in the map: even a token with every scope is refused.
    let scopes = GrpcScopesLayer::new()
        .method(
            app::path("Geocode"),
            ScopePolicy::all_of(["geocode:location"]),
        )
        .method(
            app::path("ReverseGeocode"),
            ScopePolicy::all_of(["reverse-geocode:location"]),
        );
    let auth = JwtAuthLayer::new(verifier()).rejection(GrpcRejection::new());
    let s = serve_with(tower::layer::util::Stack::new(scopes, auth));
    let t = bearer(&token(ALL, json!({})));
    assert!(geocode(s.addr, Some(&t)).await.is_ok());
    let status = directions(s.addr, Some(&t)).await.expect_err("refused");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "no scope policy allows this method");
    // Without a token, the answer is still UNAUTHENTICATED.
    let status = directions(s.addr, None).await.expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn allow_unlisted_lets_any_verified_token_call_unlisted_methods() {
    let scopes = GrpcScopesLayer::new()
        .method(
            app::path("Geocode"),
            ScopePolicy::all_of(["geocode:location"]),
        )
        .allow_unlisted();
    let auth = JwtAuthLayer::new(verifier()).rejection(GrpcRejection::new());
    let s = serve_with(tower::layer::util::Stack::new(scopes, auth));
    let t = bearer(&token("reverse-geocode:location", json!({})));
    // Unlisted: a verified token suffices, whatever its scopes.
    assert!(directions(s.addr, Some(&t)).await.is_ok());
    // Listed: its policy applies.
    let status = geocode(s.addr, Some(&t)).await.expect_err("refused");
    assert_eq!(status.code(), Code::PermissionDenied);
    // No token: refused.
    let status = directions(s.addr, None).await.expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_service_policy_covers_its_unlisted_methods() {
    let scopes = GrpcScopesLayer::new()
        .service(
            <WorldMappersServer<app::Api> as NamedService>::NAME,
            ScopePolicy::any_of(["geocode:location", "directions"]),
        )
        .method(app::path("Directions"), ScopePolicy::all_of(["directions"]));
    let auth = JwtAuthLayer::new(verifier()).rejection(GrpcRejection::new());
    let s = serve_with(tower::layer::util::Stack::new(scopes, auth));
    let t = bearer(&token("geocode:location", json!({})));
    assert!(reverse_geocode(s.addr, Some(&t)).await.is_ok());
    let status = directions(s.addr, Some(&t)).await.expect_err("refused");
    assert_eq!(status.code(), Code::PermissionDenied);
}

/// A service checking scopes in its handlers with [`ClaimsExt`] (no [`GrpcScopesLayer`]).
#[derive(Debug, Clone, Copy)]
struct HandlerChecks;

#[tonic::async_trait]
impl WorldMappers for HandlerChecks {
    async fn geocode(
        &self,
        request: tonic::Request<GeocodeRequest>,
    ) -> Result<tonic::Response<GeocodeReply>, Status> {
        // Optional authentication: anonymous calls get a coarse answer.
        Ok(tonic::Response::new(match request.optional_claims()? {
            Some(_) => GeocodeReply {
                lat: 47.6178819,
                lng: -122.194041,
            },
            None => GeocodeReply {
                lat: 47.6,
                lng: -122.2,
            },
        }))
    }

    async fn reverse_geocode(
        &self,
        request: tonic::Request<ReverseGeocodeRequest>,
    ) -> Result<tonic::Response<ReverseGeocodeReply>, Status> {
        #[derive(serde::Deserialize)]
        struct Mine {
            client_id: String,
        }
        let mine: Mine = request.claims_as()?;
        Ok(tonic::Response::new(ReverseGeocodeReply {
            street: mine.client_id,
            ..Default::default()
        }))
    }

    async fn directions(
        &self,
        request: tonic::Request<DirectionsRequest>,
    ) -> Result<tonic::Response<DirectionsReply>, Status> {
        let claims = request.require_scopes(&ScopePolicy::all_of(["directions"]))?;
        Ok(tonic::Response::new(DirectionsReply {
            steps: vec![claims.subject().unwrap_or_default().to_owned()],
        }))
    }
}

#[tokio::test]
async fn handlers_read_claims_and_check_scopes_with_claims_ext() {
    let auth = JwtAuthLayer::new(verifier())
        .optional()
        .rejection(GrpcRejection::new());
    let s = spawn(move |listener, stopped| async move {
        Server::builder()
            .layer(auth)
            .add_service(WorldMappersServer::new(HandlerChecks))
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = stopped.await;
            })
            .await
            .expect("server");
    });
    // Anonymous: optional claims are None; required claims are UNAUTHENTICATED.
    assert_eq!(geocode(s.addr, None).await.expect("anonymous").lat, 47.6);
    let status = directions(s.addr, None).await.expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(challenge(&status), "Bearer realm=\"api\"");

    let t = bearer(&token("geocode:location", json!({})));
    assert_eq!(geocode(s.addr, Some(&t)).await.expect("ok").lat, 47.6178819);
    assert_eq!(
        reverse_geocode(s.addr, Some(&t)).await.expect("ok").street,
        "gift-deliveries"
    );
    let status = directions(s.addr, Some(&t)).await.expect_err("refused");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(challenge(&status).contains("scope=\"directions\""));

    let t = bearer(&token("directions", json!({})));
    assert_eq!(
        directions(s.addr, Some(&t)).await.expect("ok").steps,
        ["gift-deliveries@clients"]
    );
    // A token without `client_id`: the claims do not fit the handler's type.
    let t = bearer(&token("directions", json!({"client_id": null})));
    let status = reverse_geocode(s.addr, Some(&t))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn the_layers_can_wrap_one_service_and_use_the_dev_issuer() {
    // The development issuer: discovery, JWKS and a client-credentials token.
    let dev = DevIssuer::builder()
        .audience(AUD)
        .client("gift-deliveries", "dev-secret", ["geocode:location"])
        .start()
        .await
        .expect("dev issuer");
    let verifier = Verifier::builder()
        .issuer(dev.issuer())
        .audience(AUD)
        .build()
        .expect("verifier");
    let answer: Value = reqwest::Client::new()
        .post(dev.token_endpoint())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "gift-deliveries"),
            ("client_secret", "dev-secret"),
            ("audience", AUD),
        ])
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("token answer");
    let t = bearer(answer["access_token"].as_str().expect("access_token"));

    // The layers around one service only (JwtAuth and GrpcScopes are NamedServices).
    let guarded = tower::ServiceBuilder::new()
        .layer(app::auth(verifier))
        .service(app::service());
    let s = spawn(move |listener, stopped| async move {
        Server::builder()
            .add_service(guarded)
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = stopped.await;
            })
            .await
            .expect("server");
    });
    assert_eq!(geocode(s.addr, Some(&t)).await.expect("ok").lat, 47.6178819);
    let status = directions(s.addr, Some(&t)).await.expect_err("refused");
    assert_eq!(status.code(), Code::PermissionDenied);
    dev.shutdown().await;
}

/// Serves `router` as `axum::serve` would, over HTTP/1 and HTTP/2.
#[cfg(feature = "axum")]
fn serve_axum(router: axum::Router) -> Running {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    use hyper_util::service::TowerToHyperService;

    spawn(move |listener, mut stopped| async move {
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(_) => break,
                },
                _ = &mut stopped => break,
            };
            let svc = TowerToHyperService::new(router.clone());
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn a_tonic_service_mounted_in_axum_gets_grpc_answers_and_rest_routes_http_ones() {
    use axum::routing::get;

    // One layer for the gRPC service and a REST route: gRPC calls get gRPC answers, the REST
    // route gets RFC 6750 ones.
    let router = axum::Router::new()
        .route_service(
            &format!(
                "/{}/{{*method}}",
                <WorldMappersServer<app::Api> as NamedService>::NAME
            ),
            tower::ServiceBuilder::new()
                .layer(app::scopes())
                .service(app::service()),
        )
        .route(
            "/api/me",
            get(|claims: bearer_guard::Claims| async move {
                claims.subject().unwrap_or_default().to_owned()
            }),
        )
        .layer(JwtAuthLayer::new(verifier()).rejection(GrpcRejection::new()));
    let s = serve_axum(router);

    let t = bearer(&token("geocode:location", json!({})));
    assert_eq!(geocode(s.addr, Some(&t)).await.expect("ok").lat, 47.6178819);
    let status = geocode(s.addr, None).await.expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = directions(s.addr, Some(&t)).await.expect_err("refused");
    assert_eq!(status.code(), Code::PermissionDenied);
    let expired = token(ALL, json!({"iat": now() - 7200, "exp": now() - 3600}));
    let status = geocode(s.addr, Some(&bearer(&expired)))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "the token has expired");

    let http = reqwest::Client::new();
    let url = format!("http://{}/api/me", s.addr);
    let res = http.get(&url).send().await.expect("rest call");
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"api\"");
    assert!(res.headers().get("grpc-status").is_none());
    let res = http
        .get(&url)
        .header("authorization", &t)
        .send()
        .await
        .expect("rest call");
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.expect("body"), "gift-deliveries@clients");
}

/// A rejection that answers by path, to show what the layer passes to `reject_request`.
#[derive(Debug, Clone)]
struct ByPath;

impl Rejection<tonic::body::Body> for ByPath {
    fn reject(&self, _error: AuthError) -> Response<tonic::body::Body> {
        Status::internal("no request head").into_http()
    }

    fn reject_request(
        &self,
        error: AuthError,
        request: &http::request::Parts,
    ) -> Response<tonic::body::Body> {
        // The head of the rejected request, with the layer's challenge settings.
        let realm_set = request.extensions.get::<DefaultRejection>().is_some();
        Status::unauthenticated(format!("{} at {} ({realm_set})", error, request.uri.path()))
            .into_http()
    }
}

#[tokio::test]
async fn a_custom_rejection_sees_the_request_head() {
    let svc = tower::ServiceBuilder::new()
        .layer(JwtAuthLayer::new(verifier()).rejection(ByPath))
        .service_fn(|_req: Request<tonic::body::Body>| async {
            Ok::<_, Infallible>(Response::new(tonic::body::Body::empty()))
        });
    let req = Request::post("/world_mappers.v1.WorldMappers/Geocode")
        .header("content-type", "application/grpc")
        .body(tonic::body::Body::empty())
        .expect("request");
    let res = svc.oneshot(req).await.expect("response");
    let status = Status::from_header_map(res.headers()).expect("status");
    assert_eq!(
        status.message(),
        "no bearer token in the request at /world_mappers.v1.WorldMappers/Geocode (true)"
    );
}
