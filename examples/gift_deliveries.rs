//! Gift Deliveries: a backend service (an M2M client) that gets an access token with the
//! client-credentials grant and calls the World Mappers API with it.
//!
//! ```text
//! cargo run --example world_mappers        # prints the client credentials to use
//! ISSUER_BASE_URL=http://127.0.0.1:…/ CLIENT_ID=gift-deliveries CLIENT_SECRET=… \
//!     cargo run --example gift_deliveries --features client -- Seattle
//! ```
//!
//! Environment: `ISSUER_BASE_URL` (the token endpoint is discovered) or `TOKEN_URL` (the
//! token endpoint itself), `CLIENT_ID`, `CLIENT_SECRET`, `AUDIENCE` (default
//! `urn:worldmappers`), `API_URL` (default `http://127.0.0.1:7001`), `DPOP` (`1`: get a
//! DPoP-bound token for a new ES256 key and send each call with a proof, RFC 9449; default
//! `0`). The destination is the command line (default: the North Pole).
//!
//! Any failure (wrong credentials, an API refusal, nothing listening) ends with one line on
//! stderr and exit code 1.

use std::process::ExitCode;
use std::time::Duration;

use bearer_guard::Algorithm;
use bearer_guard::client::{AddBearerLayer, BoxError, ClientCredentials, DpopKey, TokenError};
use bytes::Bytes;
use tower::{ServiceBuilder, ServiceExt};

const DEFAULT_AUDIENCE: &str = "urn:worldmappers";
const DEFAULT_API_URL: &str = "http://127.0.0.1:7001";
const DEFAULT_DESTINATION: &str = "the North Pole";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gift_deliveries: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let client_id = required("CLIENT_ID")?;
    let client_secret = required("CLIENT_SECRET")?;
    let audience = env("AUDIENCE").unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned());
    let api_url = env("API_URL").unwrap_or_else(|| DEFAULT_API_URL.to_owned());
    let args: Vec<String> = std::env::args().skip(1).collect();
    let destination = if args.is_empty() {
        DEFAULT_DESTINATION.to_owned()
    } else {
        args.join(" ")
    };

    let mut builder = ClientCredentials::builder()
        .client_id(client_id)
        .client_secret(client_secret)
        .audience(audience);
    builder = match (env("TOKEN_URL"), env("ISSUER_BASE_URL")) {
        (Some(url), _) => builder.token_endpoint(url),
        (None, Some(issuer)) => builder.issuer(issuer),
        (None, None) => {
            return Err("set ISSUER_BASE_URL (or TOKEN_URL); `cargo run --example \
                        world_mappers` prints development values"
                .to_owned());
        }
    };
    if dpop()? {
        let key = DpopKey::generate(Algorithm::ES256).map_err(|e| e.to_string())?;
        builder = builder.dpop(key);
    }
    let source = builder.build().map_err(|e| e.to_string())?;

    // The API client: reqwest under the AddBearer middleware, which sends the token and,
    // should the API refuse it as invalid, gets a new one and retries once.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("the HTTP client could not be built: {e}"))?;
    let api = ServiceBuilder::new()
        .layer(AddBearerLayer::new(source))
        .service_fn(move |req: http::Request<Bytes>| {
            let http = http.clone();
            async move {
                let req = reqwest::Request::try_from(req.map(reqwest::Body::from))?;
                let res = http.execute(req).await?;
                let mut out = http::Response::builder().status(res.status());
                if let Some(h) = out.headers_mut() {
                    *h = res.headers().clone();
                }
                Ok::<_, BoxError>(out.body(res.bytes().await?)?)
            }
        });

    let mut url = url::Url::parse(&api_url)
        .and_then(|base| base.join("/api/directions"))
        .map_err(|e| format!("API_URL {api_url:?} is not a URL: {e}"))?;
    url.query_pairs_mut()
        .append_pair("destination", &destination);
    let req = http::Request::get(url.as_str())
        .header(http::header::ACCEPT, "application/json")
        .body(Bytes::new())
        .map_err(|e| format!("the request could not be built: {e}"))?;

    let res = api
        .oneshot(req)
        .await
        .map_err(|e| match e.downcast_ref::<TokenError>() {
            Some(e) => format!("could not get an access token: {e}"),
            None => format!(
                "could not reach the World Mappers API at {api_url}: {}",
                chain(&*e)
            ),
        })?;
    if !res.status().is_success() {
        return Err(refusal(&res));
    }
    print_directions(res.body());
    Ok(())
}

/// One line: the status, and the API's `WWW-Authenticate` challenge or the start of its body.
fn refusal(res: &http::Response<Bytes>) -> String {
    let detail = match res.headers().get(http::header::WWW_AUTHENTICATE) {
        Some(challenge) => String::from_utf8_lossy(challenge.as_bytes()).into_owned(),
        None => one_line(&String::from_utf8_lossy(res.body()), 200),
    };
    let mut line = format!(
        "the World Mappers API refused the request: HTTP {}",
        res.status()
    );
    if !detail.is_empty() {
        line.push_str(": ");
        line.push_str(&detail);
    }
    line
}

fn print_directions(body: &[u8]) {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let steps = parsed
        .as_ref()
        .and_then(|v| v.get("steps"))
        .and_then(|s| s.as_array());
    match (parsed.as_ref(), steps) {
        (Some(doc), Some(steps)) => {
            let to = doc
                .get("destination")
                .and_then(|d| d.as_str())
                .unwrap_or("the destination");
            println!("Directions to {to}:");
            for (i, step) in steps.iter().enumerate() {
                let step = step
                    .as_str()
                    .map_or_else(|| step.to_string(), str::to_owned);
                println!("  {}. {step}", i + 1);
            }
        }
        _ => println!("{}", String::from_utf8_lossy(body)),
    }
}

fn required(name: &str) -> Result<String, String> {
    env(name).ok_or_else(|| {
        format!(
            "{name} is not set (`cargo run --example world_mappers` prints development \
             credentials)"
        )
    })
}

/// `DPOP`: `1` (or `true`) asks for DPoP-bound tokens; `0`, `false` or unset does not.
fn dpop() -> Result<bool, String> {
    match env("DPOP").as_deref() {
        None | Some("0" | "false") => Ok(false),
        Some("1" | "true") => Ok(true),
        Some(other) => Err(format!("DPOP {other:?} is not 1 or 0")),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn one_line(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    flat.trim().to_owned()
}
