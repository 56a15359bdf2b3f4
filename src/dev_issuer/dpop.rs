//! DPoP at the token endpoint (RFC 9449 §5): a token request carrying a valid proof gets a
//! token bound to the proof's key (`cnf.jkt`, `token_type` `DPoP`). The proof is checked
//! with the resource server's own checker ([`ProofChecker`]) and each proof is accepted once
//! ([`InMemoryReplayStore`]).

use std::time::SystemTime;

use axum::http::{HeaderMap, StatusCode};

use crate::AuthErrorKind;
use crate::dpop::{
    InMemoryReplayStore, ProofChecker, ReplayCheck, ReplayKey, ReplayStore, RequestFacts,
};
use crate::error::ConfigError;

/// Proofs remembered against replay (the dev issuer serves tests and demos).
const REPLAY_CAPACITY: usize = 10_000;

/// Why a proof was refused: the status, the OAuth error code and a fixed description that
/// never echoes the proof.
#[derive(Debug)]
pub(super) struct ProofRefusal {
    pub(super) status: StatusCode,
    pub(super) code: &'static str,
    pub(super) description: &'static str,
}

impl ProofRefusal {
    fn invalid(description: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_dpop_proof",
            description,
        }
    }
}

/// The token endpoint's proof checks.
#[derive(Debug)]
pub(super) struct TokenDpop {
    checker: ProofChecker,
    replay: InMemoryReplayStore,
}

impl TokenDpop {
    pub(super) fn new() -> Result<Self, ConfigError> {
        Ok(Self {
            checker: ProofChecker::builder().build()?,
            replay: InMemoryReplayStore::new(REPLAY_CAPACITY),
        })
    }

    /// The proof algorithms accepted (`dpop_signing_alg_values_supported`).
    pub(super) fn algorithms(&self) -> Vec<&'static str> {
        self.checker
            .algorithms()
            .iter()
            .map(|a| a.as_str())
            .collect()
    }

    /// The thumbprint to bind the token to when the request carries a valid proof for
    /// `POST htu`; `None` without a `DPoP` header.
    pub(super) async fn check(
        &self,
        headers: &HeaderMap,
        htu: &str,
    ) -> Result<Option<String>, ProofRefusal> {
        let mut values = headers.get_all("dpop").iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(ProofRefusal::invalid("more than one DPoP header"));
        }
        let proof = value
            .to_str()
            .map_err(|_| ProofRefusal::invalid("the DPoP header is not a JWS"))?;
        let verified = self
            .checker
            .check(&RequestFacts::new("POST", htu, proof, SystemTime::now()))
            .map_err(|e| match e.kind() {
                AuthErrorKind::InvalidDpopProof(reason) => {
                    ProofRefusal::invalid(reason.description())
                }
                _ => ProofRefusal::invalid("the DPoP proof is invalid"),
            })?;
        let ttl = self.checker.max_age() + self.checker.leeway();
        match self
            .replay
            .check_and_insert(ReplayKey::new(verified.jkt(), verified.jti()), ttl)
            .await
        {
            Ok(ReplayCheck::Fresh) => Ok(Some(verified.jkt().to_owned())),
            Ok(_) => Err(ProofRefusal::invalid("the DPoP proof was used before")),
            Err(_) => Err(ProofRefusal {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "temporarily_unavailable",
                description: "the DPoP proof cannot be checked for replay now",
            }),
        }
    }
}
