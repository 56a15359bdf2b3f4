//! Verification keys, each bound to exactly one algorithm, pre-parsed once.
//!
//! With the `aws-lc-rs` feature the signature step calls aws-lc-rs directly on a
//! `ParsedPublicKey` (no per-request key parsing). With only `rust-crypto`, it goes through
//! jsonwebtoken's RustCrypto provider. When both features are on, aws-lc-rs is used; when
//! neither is, `build()` fails with [`ConfigError::NoCryptoBackend`](crate::ConfigError).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::algorithm::{Algorithm, Family};

/// Whether a crypto backend is compiled in.
pub(crate) const HAS_BACKEND: bool = cfg!(any(feature = "aws-lc-rs", feature = "rust-crypto"));

static NEXT_KEY_ID: AtomicU64 = AtomicU64::new(1);

/// Raw public key material, as found in a JWK or a PEM file.
pub(crate) enum KeyMaterial {
    /// RSA modulus and exponent, big-endian (from a JWK, or from a PEM key's DER).
    RsaComponents { n: Vec<u8>, e: Vec<u8> },
    /// An uncompressed SEC1 point `04 || x || y`.
    EcPoint(Vec<u8>),
    /// A raw Ed25519 public key (32 bytes).
    Ed25519(Vec<u8>),
    /// An HMAC secret.
    Secret(Vec<u8>),
}

impl KeyMaterial {
    pub(crate) fn family(&self) -> Family {
        match self {
            Self::RsaComponents { .. } => Family::Rsa,
            Self::EcPoint(_) => Family::Ec,
            Self::Ed25519(_) => Family::Okp,
            Self::Secret(_) => Family::Hmac,
        }
    }
}

/// A verification key bound to one algorithm.
pub(crate) struct Key {
    kid: Option<String>,
    alg: Algorithm,
    /// Unique for the life of the process: ties cached verifications to this key.
    id: u64,
    verifier: Verifier,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// Builds a key bound to `alg`. Fails when the material does not fit the algorithm or
    /// is not a valid key.
    pub(crate) fn new(
        kid: Option<String>,
        alg: Algorithm,
        material: KeyMaterial,
    ) -> Result<Self, &'static str> {
        if material.family() != alg.family() {
            return Err("the key type does not fit the algorithm");
        }
        check_material(alg, &material)?;
        let verifier = Verifier::new(alg, material)?;
        Ok(Self {
            kid,
            alg,
            id: NEXT_KEY_ID.fetch_add(1, Ordering::Relaxed),
            verifier,
        })
    }

    pub(crate) fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    pub(crate) fn alg(&self) -> Algorithm {
        self.alg
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Verifies `signature` over `message` with this key's bound algorithm.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.verifier.verify(self.alg, message, signature)
    }
}

/// Checks that do not depend on the backend: sizes that the algorithms require.
fn check_material(alg: Algorithm, material: &KeyMaterial) -> Result<(), &'static str> {
    match (alg, material) {
        (_, KeyMaterial::RsaComponents { n, e }) => {
            let bits = bit_len(n);
            if bits < 2048 {
                return Err("the RSA modulus is shorter than 2048 bits");
            }
            if bits > 8192 {
                return Err("the RSA modulus is longer than 8192 bits");
            }
            // An odd exponent of 3 to 33 bits (e = 1 would make the signature the padded
            // message itself).
            if !(2..=33).contains(&bit_len(e)) || e.last().is_none_or(|b| b & 1 == 0) {
                return Err("the RSA exponent is invalid");
            }
            if has_roca_fingerprint(n) {
                return Err("the RSA modulus has the ROCA fingerprint (CVE-2017-15361)");
            }
            Ok(())
        }
        (Algorithm::ES256, KeyMaterial::EcPoint(p)) if p.len() != 65 => {
            Err("the EC point is not a P-256 point")
        }
        (Algorithm::ES384, KeyMaterial::EcPoint(p)) if p.len() != 97 => {
            Err("the EC point is not a P-384 point")
        }
        (Algorithm::ES512, KeyMaterial::EcPoint(p)) if p.len() != 133 => {
            Err("the EC point is not a P-521 point")
        }
        (_, KeyMaterial::EcPoint(p)) if p.first() != Some(&4) => {
            Err("the EC point is not uncompressed")
        }
        (_, KeyMaterial::Ed25519(x)) if x.len() != 32 => Err("the Ed25519 key is not 32 bytes"),
        (_, KeyMaterial::Secret(s)) if s.len() < min_secret_len(alg) => {
            Err("the HMAC secret is shorter than the hash output")
        }
        _ => Ok(()),
    }
}

/// RFC 7518 §3.2: an HMAC key must be at least as long as the hash output.
pub(crate) const fn min_secret_len(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    }
}

/// ROCA (CVE-2017-15361): moduli generated by the vulnerable Infineon library can be
/// factored. Their primes are `k·M + (65537^a mod M)` with `M` a primorial, so for every
/// small prime `p` dividing `M`, `n mod p` lies in the subgroup generated by 65537. The test
/// of the ROCA authors checks the odd primes up to 167; a sound modulus passes it with a
/// negligible probability.
fn has_roca_fingerprint(n: &[u8]) -> bool {
    const PRIMES: [u32; 38] = [
        3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89,
        97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
    ];
    PRIMES.iter().all(|&p| {
        let r = n.iter().fold(0, |acc, &b| (acc * 256 + u32::from(b)) % p);
        let g = 65537 % p;
        let mut x = 1;
        loop {
            if x == r {
                return true;
            }
            x = x * g % p;
            if x == 1 {
                return false;
            }
        }
    })
}

fn bit_len(be: &[u8]) -> usize {
    match be.iter().position(|&b| b != 0) {
        None => 0,
        Some(i) => (be.len() - i) * 8 - be[i].leading_zeros() as usize,
    }
}

#[cfg(feature = "aws-lc-rs")]
enum Verifier {
    Public(aws_lc_rs::signature::ParsedPublicKey),
    // Boxed: an HMAC key is much larger than a parsed public key handle.
    Hmac(Box<aws_lc_rs::hmac::Key>),
}

#[cfg(feature = "aws-lc-rs")]
impl Verifier {
    fn new(alg: Algorithm, material: KeyMaterial) -> Result<Self, &'static str> {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::signature as sig;
        use aws_lc_rs::{hmac, rsa};

        let params: &'static dyn sig::VerificationAlgorithm = match alg {
            Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
            Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
            Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
            Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
            Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
            Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
            Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
            Algorithm::ES512 => &sig::ECDSA_P521_SHA512_FIXED,
            Algorithm::EdDSA => &sig::ED25519,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                let KeyMaterial::Secret(secret) = material else {
                    return Err("the key type does not fit the algorithm");
                };
                let h = match alg {
                    Algorithm::HS384 => hmac::HMAC_SHA384,
                    Algorithm::HS512 => hmac::HMAC_SHA512,
                    _ => hmac::HMAC_SHA256,
                };
                return Ok(Self::Hmac(Box::new(hmac::Key::new(h, &secret))));
            }
        };
        let bytes = match material {
            KeyMaterial::RsaComponents { n, e } => rsa::PublicKeyComponents { n, e }
                .as_der()
                .map_err(|_| "the RSA key is invalid")?
                .as_ref()
                .to_vec(),
            KeyMaterial::EcPoint(p) => p,
            KeyMaterial::Ed25519(x) => x,
            KeyMaterial::Secret(_) => return Err("the key type does not fit the algorithm"),
        };
        sig::ParsedPublicKey::new(params, bytes)
            .map(Self::Public)
            .map_err(|_| "the public key is invalid")
    }

    fn verify(&self, _alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Public(key) => key.verify_sig(message, signature).is_ok(),
            Self::Hmac(key) => aws_lc_rs::hmac::verify(key, message, signature).is_ok(),
        }
    }
}

#[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
struct Verifier(jsonwebtoken::DecodingKey);

#[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
impl Verifier {
    fn new(alg: Algorithm, material: KeyMaterial) -> Result<Self, &'static str> {
        use jsonwebtoken::DecodingKey;
        let key = match material {
            KeyMaterial::RsaComponents { n, e } => DecodingKey::from_rsa_raw_components(&n, &e),
            KeyMaterial::EcPoint(p) => DecodingKey::from_ec_der(&p),
            KeyMaterial::Ed25519(x) => DecodingKey::from_ed_der(&x),
            KeyMaterial::Secret(s) => DecodingKey::from_secret(&s),
        };
        // Build a verifier once so that a key the backend cannot use is refused at load time.
        let jwt_alg = to_jwt(alg).ok_or("ES512 needs the aws-lc-rs backend")?;
        (jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.verifier_factory)(&jwt_alg, &key)
            .map_err(|_| "the key is invalid")?;
        Ok(Self(key))
    }

    fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        let Some(jwt_alg) = to_jwt(alg) else {
            return false;
        };
        match (jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.verifier_factory)(
            &jwt_alg, &self.0,
        ) {
            Ok(v) => v.verify(message, &signature.to_vec()).is_ok(),
            Err(_) => false,
        }
    }
}

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
struct Verifier;

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
impl Verifier {
    fn new(_alg: Algorithm, _material: KeyMaterial) -> Result<Self, &'static str> {
        Err("no crypto backend feature is enabled")
    }

    fn verify(&self, _alg: Algorithm, _message: &[u8], _signature: &[u8]) -> bool {
        false
    }
}

/// The jsonwebtoken name of an algorithm (jsonwebtoken has no ES512).
#[allow(dead_code)]
pub(crate) fn to_jwt(alg: Algorithm) -> Option<jsonwebtoken::Algorithm> {
    Some(match alg {
        Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        Algorithm::RS384 => jsonwebtoken::Algorithm::RS384,
        Algorithm::RS512 => jsonwebtoken::Algorithm::RS512,
        Algorithm::PS256 => jsonwebtoken::Algorithm::PS256,
        Algorithm::PS384 => jsonwebtoken::Algorithm::PS384,
        Algorithm::PS512 => jsonwebtoken::Algorithm::PS512,
        Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::ES384 => jsonwebtoken::Algorithm::ES384,
        Algorithm::ES512 => return None,
        Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        Algorithm::HS256 => jsonwebtoken::Algorithm::HS256,
        Algorithm::HS384 => jsonwebtoken::Algorithm::HS384,
        Algorithm::HS512 => jsonwebtoken::Algorithm::HS512,
    })
}

/// The jsonwebtoken crypto provider of the active backend, for signing (dev issuer, tests).
#[allow(dead_code)]
pub(crate) fn provider() -> Option<&'static jsonwebtoken::crypto::CryptoProvider> {
    #[cfg(feature = "aws-lc-rs")]
    {
        Some(&jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER)
    }
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    {
        Some(&jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER)
    }
    #[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
    {
        None
    }
}

/// Parses a PEM public key for `alg` into key material.
pub(crate) fn material_from_pem(alg: Algorithm, pem: &[u8]) -> Result<KeyMaterial, String> {
    use jsonwebtoken::{DecodingKey, DecodingKeyKind};
    let key = match alg.family() {
        Family::Rsa => DecodingKey::from_rsa_pem(pem),
        Family::Ec => DecodingKey::from_ec_pem(pem),
        Family::Okp => DecodingKey::from_ed_pem(pem),
        Family::Hmac => return Err("HMAC algorithms take a secret, not a PEM key".into()),
    }
    .map_err(|e| e.to_string())?;
    match (alg.family(), key.kind()) {
        // Split into modulus and exponent, so that a PEM key gets the checks a JWK gets
        // (size, exponent, ROCA) whatever the backend.
        (Family::Rsa, DecodingKeyKind::SecretOrDer(der)) => {
            let (n, e) = rsa_public_key_der(der)
                .ok_or("the key is not a PKCS#1 RSAPublicKey (SEQUENCE of two INTEGERs)")?;
            Ok(KeyMaterial::RsaComponents { n, e })
        }
        (Family::Rsa, DecodingKeyKind::RsaModulusExponent { n, e }) => {
            Ok(KeyMaterial::RsaComponents {
                n: n.clone(),
                e: e.clone(),
            })
        }
        (Family::Ec, DecodingKeyKind::SecretOrDer(p)) => Ok(KeyMaterial::EcPoint(p.clone())),
        (Family::Okp, DecodingKeyKind::SecretOrDer(x)) => Ok(KeyMaterial::Ed25519(x.clone())),
        _ => Err("unexpected key encoding".into()),
    }
}

/// Reads a PKCS#1 `RSAPublicKey` (RFC 8017 §A.1.1: `SEQUENCE { modulus INTEGER,
/// publicExponent INTEGER }`, DER) into its modulus and exponent, big-endian without
/// leading zeros. Anything else (trailing bytes, a negative or non-minimal integer, a
/// non-DER length) is refused.
fn rsa_public_key_der(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (seq, rest) = der_element(der, 0x30)?;
    if !rest.is_empty() {
        return None;
    }
    let (n, seq) = der_element(seq, 0x02)?;
    let (e, seq) = der_element(seq, 0x02)?;
    if !seq.is_empty() {
        return None;
    }
    Some((der_unsigned(n)?, der_unsigned(e)?))
}

/// One DER element of type `tag`: its content and the bytes after it.
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        if bytes[0] == 0 {
            return None; // not minimal
        }
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        if len < 0x80 {
            return None; // the short form was required
        }
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    Some(rest.split_at(len))
}

/// A DER INTEGER's content as an unsigned big-endian number; negative or non-minimal
/// encodings are refused.
fn der_unsigned(int: &[u8]) -> Option<Vec<u8>> {
    match int {
        [] => None,
        [b, ..] if b & 0x80 != 0 => None,
        [0, next, ..] if next & 0x80 == 0 => None,
        [0, rest @ ..] => Some(rest.to_vec()),
        _ => Some(int.to_vec()),
    }
}

/// Compares without stopping at the first difference.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rsa_public_key_der_is_split_into_modulus_and_exponent() {
        let der = [0x30, 0x08, 0x02, 0x03, 0x00, 0x80, 0x01, 0x02, 0x01, 0x03];
        assert_eq!(
            rsa_public_key_der(&der),
            Some((vec![0x80, 0x01], vec![0x03]))
        );
    }

    #[test]
    fn a_malformed_rsa_public_key_der_is_refused() {
        for der in [
            &[
                0x30, 0x08, 0x02, 0x03, 0x00, 0x80, 0x01, 0x02, 0x01, 0x03, 0x00,
            ][..],
            &[0x30, 0x06, 0x02, 0x01, 0x80, 0x02, 0x01, 0x03],
            &[0x30, 0x07, 0x02, 0x02, 0x00, 0x01, 0x02, 0x01, 0x03],
            &[0x30, 0x03, 0x02, 0x01, 0x03],
            &[0x30, 0x81, 0x03, 0x02, 0x01, 0x03],
            &[0x31, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x03],
            &[0x30, 0x09, 0x02, 0x01, 0x05, 0x02, 0x01, 0x03],
            &[],
        ] {
            assert_eq!(rsa_public_key_der(der), None, "{der:02x?}");
        }
    }

    #[test]
    fn bit_length_ignores_leading_zeros() {
        assert_eq!(bit_len(&[0, 0, 1]), 1);
        assert_eq!(bit_len(&[0x80, 0]), 16);
        assert_eq!(bit_len(&[]), 0);
    }

    #[test]
    fn a_short_rsa_modulus_is_refused() {
        let n = vec![0xC3; 128]; // 1024 bits
        let r = Key::new(
            None,
            Algorithm::RS256,
            KeyMaterial::RsaComponents {
                n,
                e: vec![1, 0, 1],
            },
        );
        assert!(r.is_err());
    }

    #[test]
    fn a_key_of_the_wrong_family_is_refused() {
        let r = Key::new(None, Algorithm::RS256, KeyMaterial::Ed25519(vec![0; 32]));
        assert_eq!(r.err(), Some("the key type does not fit the algorithm"));
    }

    #[test]
    fn a_short_hmac_secret_is_refused() {
        let r = Key::new(None, Algorithm::HS256, KeyMaterial::Secret(vec![7; 16]));
        assert!(r.is_err());
    }
}
