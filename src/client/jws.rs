//! Compact JWS signing with the crate's crypto backend, shared by the `private_key_jwt`
//! assertions and the DPoP proofs.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::EncodingKey;

use crate::algorithm::Algorithm;
use crate::crypto;

/// Signs `message` with `key` under `alg` (the raw JWS signature).
pub(super) fn sign_bytes(
    alg: Algorithm,
    key: &EncodingKey,
    message: &[u8],
) -> Result<Vec<u8>, String> {
    let provider = crypto::provider().ok_or("no crypto backend")?;
    let jwt_alg =
        crypto::to_jwt(alg).ok_or_else(|| format!("{alg} cannot sign with this backend"))?;
    let signer = (provider.signer_factory)(&jwt_alg, key).map_err(|e| e.to_string())?;
    signer.try_sign(message).map_err(|e| e.to_string())
}

/// `base64url(header).base64url(claims).base64url(signature)`.
pub(super) fn sign_compact(
    alg: Algorithm,
    key: &EncodingKey,
    header: &serde_json::Value,
    claims: &serde_json::Value,
) -> Result<String, String> {
    let message = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let signature = sign_bytes(alg, key, message.as_bytes())?;
    Ok(format!("{message}.{}", B64.encode(signature)))
}
