//! Gift Deliveries: a backend service (an M2M client) that gets an access token with the
//! client-credentials grant and calls the World Mappers API with it.
//!
//! ```text
//! cargo run --example world_mappers        # prints the client credentials to use
//! ISSUER_BASE_URL=http://127.0.0.1:…/ CLIENT_ID=gift-deliveries CLIENT_SECRET=… \
//!     cargo run --example gift_deliveries -- Seattle
//! ```
//!
//! Environment: `ISSUER_BASE_URL` (the token endpoint is discovered) or `TOKEN_URL` (the
//! token endpoint itself), `CLIENT_ID`, `CLIENT_SECRET`, `AUDIENCE` (default
//! `urn:worldmappers`), `SCOPE` (the scopes requested, default `directions`: the scope of
//! the route called), `API_URL` (default `http://127.0.0.1:7001`). The names of Auth0's Node
//! samples work too when ours are unset: `AUTH0_DOMAIN` (the issuer
//! `https://<AUTH0_DOMAIN>/`), `RESOURCE_SERVER` (the audience), `AUTH0_CLIENT_ID`,
//! `AUTH0_CLIENT_SECRET`. `DPOP=1` gets a DPoP-bound token for a new ES256 key and sends each
//! call with a proof (RFC 9449). `CLIENT_CERT` and `CLIENT_KEY` (PEM files) authenticate
//! with that client certificate instead of a secret (RFC 8705 `tls_client_auth`) and call the
//! API over mutual TLS with it, so that a certificate-bound token travels with its
//! certificate; `CA_CERT` (PEM) trusts a private CA's servers. The destination is the command
//! line (default: the North Pole).
//!
//! Any failure (wrong credentials, an API refusal, nothing listening) ends with one line on
//! stderr and exit code 1; a 403 says which scope the token lacks.

mod app;

use std::process::ExitCode;

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
    let settings = app::Settings::from_vars(|name| std::env::var(name).ok())?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let destination = if args.is_empty() {
        DEFAULT_DESTINATION.to_owned()
    } else {
        args.join(" ")
    };
    let body = app::directions(&settings, &destination).await?;
    println!("{}", app::directions_text(&body));
    Ok(())
}
