//! Certificate-bound tokens (RFC 8705) on tonic's own TLS server (feature `tonic-tls`): a
//! real tonic server on 127.0.0.1 with `ServerTlsConfig` and a client CA, the layer in
//! `Mtls::peer_certificate()` mode and nothing else, and tonic clients with and without a
//! client identity. Certificates and keys are generated per test run with rcgen.
#![cfg(all(
    feature = "tonic-tls",
    feature = "dev-issuer",
    any(feature = "aws-lc-rs", feature = "rust-crypto")
))]

#[path = "../examples/grpc/app.rs"]
mod app;
#[path = "../examples/grpc/world_mappers.rs"]
mod world_mappers;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use bearer_guard::dev_issuer::{SigningKey, jwk_set};
use bearer_guard::mtls::{CertificateThumbprint, Mtls, MtlsMode};
use bearer_guard::{Algorithm, ClaimsExt, GrpcRejection, JwtAuthLayer, Verifier};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity, Server, ServerTlsConfig};
use tonic::{Code, Request, Response, Status};

use world_mappers::world_mappers_client::WorldMappersClient;
use world_mappers::world_mappers_server::{WorldMappers, WorldMappersServer};
use world_mappers::{
    DirectionsReply, DirectionsRequest, GeocodeReply, GeocodeRequest, ReverseGeocodeReply,
    ReverseGeocodeRequest,
};

const ISS: &str = "https://issuer.test/";
const AUD: &str = "urn:worldmappers";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn issuer_key() -> SigningKey {
    SigningKey::from_pool(Algorithm::RS256, 0, "k1").expect("pool key")
}

fn verifier() -> Verifier {
    Verifier::builder()
        .issuer(ISS)
        .audience(AUD)
        .jwks_json(jwk_set([&issuer_key()]).to_string())
        .build()
        .expect("verifier")
}

fn token(extra: Value) -> String {
    let mut claims = json!({"iss": ISS, "aud": AUD, "sub": "gift-deliveries@clients",
        "exp": now() + 600, "iat": now()});
    for (k, v) in extra.as_object().expect("object") {
        claims[k] = v.clone();
    }
    issuer_key().sign(&claims).expect("sign")
}

fn thumbprint(der: &[u8]) -> String {
    CertificateThumbprint::of_der(der).as_str().to_owned()
}

/// A token bound to the certificate with these DER bytes.
fn bound_token(der: &[u8]) -> String {
    token(json!({"cnf": {"x5t#S256": thumbprint(der)}}))
}

/// A test CA, generated at run time.
fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA")
}

/// A certificate and key signed by `ca`: a client one for `name`, or a server one for
/// `localhost`.
struct Leaf {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Leaf {
    fn new(ca: &CertifiedIssuer<'static, KeyPair>, name: &str, server: bool) -> Self {
        let sans = if server {
            vec!["localhost".to_owned()]
        } else {
            Vec::new()
        };
        let mut params = CertificateParams::new(sans).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, ca).expect("leaf");
        Self { cert, key }
    }

    fn der(&self) -> &[u8] {
        self.cert.der()
    }

    fn identity(&self) -> Identity {
        Identity::from_pem(self.cert.pem(), self.key.serialize_pem())
    }
}

/// The handlers: `directions` answers who called and the certificate binding it saw.
#[derive(Debug, Clone, Copy)]
struct Api;

#[tonic::async_trait]
impl WorldMappers for Api {
    async fn geocode(&self, _: Request<GeocodeRequest>) -> Result<Response<GeocodeReply>, Status> {
        Ok(Response::new(GeocodeReply::default()))
    }

    async fn reverse_geocode(
        &self,
        _: Request<ReverseGeocodeRequest>,
    ) -> Result<Response<ReverseGeocodeReply>, Status> {
        Ok(Response::new(ReverseGeocodeReply::default()))
    }

    async fn directions(
        &self,
        request: Request<DirectionsRequest>,
    ) -> Result<Response<DirectionsReply>, Status> {
        let subject = request.claims()?.subject().unwrap_or_default().to_owned();
        let x5t = request
            .mtls()?
            .map_or_else(|| "unbound".to_owned(), |m| m.x5t_s256().to_owned());
        Ok(Response::new(DirectionsReply {
            steps: vec![subject, x5t],
        }))
    }
}

/// A tonic server terminating TLS itself, with the layer in front of the service; stopped
/// on drop.
struct Running {
    addr: SocketAddr,
    server_ca: String,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves over TLS with client certificates verified against `client_ca` (required unless
/// `optional`), the layer binding tokens in `mode`.
async fn serve(
    client_ca: &CertifiedIssuer<'static, KeyPair>,
    optional: bool,
    mode: MtlsMode,
) -> Running {
    // The whole setup: tonic's TLS and the layer with the connection as certificate source.
    let auth = JwtAuthLayer::new(verifier())
        .mtls(Mtls::peer_certificate().mode(mode))
        .rejection(GrpcRejection::new());
    serve_with(client_ca, optional, auth, WorldMappersServer::new(Api)).await
}

/// Serves `service` behind `layer` over TLS with client certificates verified against
/// `client_ca` (required unless `optional`).
async fn serve_with<L, S>(
    client_ca: &CertifiedIssuer<'static, KeyPair>,
    optional: bool,
    layer: L,
    service: S,
) -> Running
where
    L: tower::Layer<tonic::service::Routes> + Clone + Send + 'static,
    L::Service: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    <L::Service as tower::Service<http::Request<tonic::body::Body>>>::Future: Send,
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = Infallible,
        > + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let server_ca = ca("server CA");
    let server = Leaf::new(&server_ca, "localhost", true);
    let tls = ServerTlsConfig::new()
        .identity(server.identity())
        .client_ca_root(Certificate::from_pem(client_ca.pem()))
        .client_auth_optional(optional);
    let router = Server::builder()
        .tls_config(tls)
        .expect("tls config")
        .layer(layer)
        .add_service(service);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        router
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = stopped.await;
            })
            .await
            .expect("server");
    });
    Running {
        addr,
        server_ca: server_ca.pem(),
        stop: Some(stop),
    }
}

impl Running {
    /// A client over TLS, presenting `identity` when given.
    async fn client(
        &self,
        identity: Option<&Leaf>,
    ) -> Result<WorldMappersClient<Channel>, tonic::transport::Error> {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.server_ca))
            .domain_name("localhost");
        if let Some(leaf) = identity {
            tls = tls.identity(leaf.identity());
        }
        let channel = Channel::from_shared(format!("https://{}", self.addr))
            .expect("uri")
            .tls_config(tls)?
            .connect()
            .await?;
        Ok(WorldMappersClient::new(channel))
    }
}

/// A `Directions` call with `token`: the handler's (subject, binding) or the refusal.
async fn directions(
    client: &mut WorldMappersClient<Channel>,
    token: &str,
) -> Result<(String, String), Status> {
    let mut req = Request::new(DirectionsRequest::default());
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("metadata value"),
    );
    let steps = client.directions(req).await?.into_inner().steps;
    Ok((steps[0].clone(), steps[1].clone()))
}

/// Asserts status 16 saying that the token is bound to a certificate.
fn assert_bound_refusal(status: &Status) {
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(
        status.message().contains("bound to a client certificate"),
        "{status:?}"
    );
    let challenge = status
        .metadata()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
}

#[tokio::test]
async fn a_bound_token_with_its_certificate_is_accepted_and_the_handler_sees_the_thumbprint() {
    let client_ca = ca("client CA");
    let gift = Leaf::new(&client_ca, "gift-deliveries", false);
    let s = serve(&client_ca, false, MtlsMode::BoundWhenClaimed).await;
    let mut client = s.client(Some(&gift)).await.expect("connect");
    let t = bound_token(gift.der());
    let answer = directions(&mut client, &t).await.expect("accepted");
    assert_eq!(
        answer,
        ("gift-deliveries@clients".to_owned(), thumbprint(gift.der()))
    );
    // Another call on the same connection (the token now from the verified-token cache, the
    // certificate from the layer's memory of the connection): the same answer.
    assert_eq!(directions(&mut client, &t).await.expect("again"), answer);
}

#[tokio::test]
async fn a_bound_token_with_another_client_certificate_is_unauthenticated() {
    let client_ca = ca("client CA");
    let gift = Leaf::new(&client_ca, "gift-deliveries", false);
    let other = Leaf::new(&client_ca, "someone-else", false);
    let s = serve(&client_ca, false, MtlsMode::BoundWhenClaimed).await;
    // `other` is a valid client certificate: the handshake succeeds, the binding does not.
    let mut client = s.client(Some(&other)).await.expect("connect");
    let status = directions(&mut client, &bound_token(gift.der()))
        .await
        .expect_err("refused");
    assert_bound_refusal(&status);
}

#[tokio::test]
async fn a_bound_token_without_a_client_certificate_is_unauthenticated() {
    let client_ca = ca("client CA");
    let gift = Leaf::new(&client_ca, "gift-deliveries", false);
    // Client certificates optional: a client without one gets through the handshake.
    let s = serve(&client_ca, true, MtlsMode::BoundWhenClaimed).await;
    let mut client = s.client(None).await.expect("connect");
    let status = directions(&mut client, &bound_token(gift.der()))
        .await
        .expect_err("refused");
    assert_bound_refusal(&status);
    // An unbound token on that connection still passes (bound-when-claimed).
    let answer = directions(&mut client, &token(json!({})))
        .await
        .expect("accepted");
    assert_eq!(answer.1, "unbound");
}

#[tokio::test]
async fn an_unbound_token_passes_when_bound_when_claimed_and_is_refused_when_binding_is_required() {
    let client_ca = ca("client CA");
    let gift = Leaf::new(&client_ca, "gift-deliveries", false);
    let unbound = token(json!({}));

    let s = serve(&client_ca, false, MtlsMode::BoundWhenClaimed).await;
    let mut client = s.client(Some(&gift)).await.expect("connect");
    let answer = directions(&mut client, &unbound).await.expect("accepted");
    assert_eq!(
        answer,
        ("gift-deliveries@clients".to_owned(), "unbound".to_owned())
    );

    let s = serve(&client_ca, false, MtlsMode::Required).await;
    let mut client = s.client(Some(&gift)).await.expect("connect");
    let status = directions(&mut client, &unbound)
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    // The bound token with its certificate passes in required mode.
    let answer = directions(&mut client, &bound_token(gift.der()))
        .await
        .expect("accepted");
    assert_eq!(answer.1, thumbprint(gift.der()));
}

#[tokio::test]
async fn clients_with_different_certificates_on_one_server_each_need_their_own() {
    let client_ca = ca("client CA");
    let s = serve(&client_ca, false, MtlsMode::BoundWhenClaimed).await;
    let leaves: Vec<Leaf> = (0..4)
        .map(|i| Leaf::new(&client_ca, &format!("client-{i}"), false))
        .collect();
    let mut clients = Vec::new();
    for leaf in &leaves {
        clients.push(s.client(Some(leaf)).await.expect("connect"));
    }
    // Interleaved calls: each connection's own certificate, never another's.
    for round in 0..2 {
        for (i, client) in clients.iter_mut().enumerate() {
            let own = bound_token(leaves[i].der());
            let answer = directions(client, &own).await.expect("own token");
            assert_eq!(answer.1, thumbprint(leaves[i].der()), "round {round}");
            let neighbour = bound_token(leaves[(i + 1) % leaves.len()].der());
            let status = directions(client, &neighbour)
                .await
                .expect_err("another client's token");
            assert_bound_refusal(&status);
        }
    }
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_fails_the_handshake() {
    let client_ca = ca("client CA");
    let stranger = Leaf::new(&ca("another CA"), "gift-deliveries", false);
    let s = serve(&client_ca, false, MtlsMode::BoundWhenClaimed).await;
    // With TLS 1.3 the server refuses the certificate after the client's side of the
    // handshake: connecting or the first call fails. (Had the handshake passed, the call
    // would succeed: the token is bound to the certificate presented.)
    let refused = match s.client(Some(&stranger)).await {
        Err(_) => true,
        Ok(mut client) => directions(&mut client, &bound_token(stranger.der()))
            .await
            .is_err(),
    };
    assert!(refused, "a certificate from another CA got through");
}

#[tokio::test]
async fn the_grpc_example_s_layers_bind_tokens_to_the_client_certificate_over_tonic_tls() {
    // examples/grpc_world_mappers.rs with TLS_CLIENT_CA: the same layers, per-method scopes
    // included.
    let client_ca = ca("client CA");
    let gift = Leaf::new(&client_ca, "gift-deliveries", false);
    let other = Leaf::new(&client_ca, "someone-else", false);
    let auth = app::auth_with(verifier(), None, Some(Mtls::peer_certificate()));
    let s = serve_with(&client_ca, false, auth, app::service()).await;
    let t = token(
        json!({"scope": "directions", "client_id": "gift-deliveries",
        "cnf": {"x5t#S256": thumbprint(gift.der())}}),
    );
    let call = |mut client: WorldMappersClient<Channel>, t: String| async move {
        let mut req = Request::new(DirectionsRequest::default());
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {t}").parse().expect("metadata value"),
        );
        client.directions(req).await.map(|r| r.into_inner().steps)
    };
    let steps = call(s.client(Some(&gift)).await.expect("connect"), t.clone())
        .await
        .expect("accepted");
    assert_eq!(steps[0], "Directions for gift-deliveries");
    let status = call(s.client(Some(&other)).await.expect("connect"), t)
        .await
        .expect_err("refused");
    assert_bound_refusal(&status);
}
