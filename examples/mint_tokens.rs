//! Mints many distinct, valid access tokens for load tests, and serves their issuer.
//!
//! ```sh
//! cargo run --release --example mint_tokens -- 2000 /tmp/tokens.txt
//! ```
//!
//! Starts a development issuer (see `bearer_guard::dev_issuer`; for tests and demos only),
//! writes `COUNT` tokens to `FILE`, one a line, all for the same client but each with its own
//! `jti`, prints `issuer <URL>` once they are written, then keeps serving the issuer's
//! discovery document and JWK Set until interrupted, so that an API started with
//! `ISSUER_BASE_URL=<URL>` (the World Mappers example) verifies them by discovery, exactly as
//! in production. `scripts/load.sh` uses it.
//!
//! Environment: `PORT` (the issuer's port; default: any free one), `AUDIENCE` (default
//! `urn:worldmappers`), `ALG` (default `RS256`; any algorithm the development issuer signs
//! with), `DPOP_JKT` (a DPoP key thumbprint: one more token, bound to that key by
//! `cnf.jkt`, is written to `FILE.dpop`, for `scripts/load-dpop.sh`).

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use bearer_guard::Algorithm;
use bearer_guard::dev_issuer::DevIssuer;
use serde_json::json;

const SCOPES: &str = "geocode:location reverse-geocode:location directions";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mint_tokens: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let (Some(count), Some(path), None) = (args.next(), args.next(), args.next()) else {
        return Err("usage: mint_tokens COUNT FILE".into());
    };
    let count: usize = count
        .parse()
        .map_err(|_| format!("COUNT {count:?} is not a number"))?;
    let port: u16 = match env("PORT") {
        Some(p) => p
            .parse()
            .map_err(|_| format!("PORT {p:?} is not a port number"))?,
        None => 0,
    };
    let alg: Algorithm = match env("ALG") {
        Some(a) => a.parse().map_err(|_| format!("ALG {a:?} is unknown"))?,
        None => Algorithm::RS256,
    };
    let audience = env("AUDIENCE").unwrap_or_else(|| "urn:worldmappers".to_owned());

    let dev = DevIssuer::builder()
        .audience(&audience)
        .algorithm(alg)
        .bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .start()
        .await
        .map_err(|e| format!("the development issuer did not start: {e}"))?;

    // Signing is the slow part (RSA): one thread per core.
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let tokens = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let dev = &dev;
                scope.spawn(move || {
                    (t..count)
                        .step_by(threads)
                        .map(|_| {
                            dev.mint(json!({
                                "sub": "gift-deliveries@clients",
                                "client_id": "gift-deliveries",
                                "azp": "gift-deliveries",
                                "gty": "client-credentials",
                                "scope": SCOPES,
                            }))
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| match w.join() {
                Ok(minted) => minted.map_err(|e| format!("minting failed: {e}")),
                Err(_) => Err("a minting thread panicked".to_owned()),
            })
            .collect::<Result<Vec<_>, _>>()
    })?;
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&path).map_err(|e| format!("cannot create {path}: {e}"))?,
    );
    for token in tokens.into_iter().flatten() {
        writeln!(out, "{token}").map_err(|e| format!("cannot write {path}: {e}"))?;
    }
    out.flush()
        .map_err(|e| format!("cannot write {path}: {e}"))?;
    drop(out);
    if let Some(jkt) = env("DPOP_JKT") {
        let bound = dev
            .mint(json!({
                "sub": "gift-deliveries@clients",
                "client_id": "gift-deliveries",
                "scope": SCOPES,
                "cnf": {"jkt": jkt},
            }))
            .map_err(|e| format!("minting failed: {e}"))?;
        std::fs::write(format!("{path}.dpop"), format!("{bound}\n"))
            .map_err(|e| format!("cannot write {path}.dpop: {e}"))?;
    }

    println!("issuer {}", dev.issuer());
    eprintln!("mint_tokens: {count} {alg} tokens in {path}; serving the issuer until interrupted");
    let _ = tokio::signal::ctrl_c().await;
    dev.shutdown().await;
    Ok(())
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}
