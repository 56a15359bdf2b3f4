//! The RFC 9440 `Client-Cert` header: the client certificate a TLS-terminating proxy
//! forwards, as a structured-field byte sequence (RFC 8941 §3.3.5): `:base64(DER):`.

use base64::Engine as _;
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http::HeaderName;

use crate::error::AuthError;

/// The RFC 9440 `Client-Cert` header name.
pub const CLIENT_CERT: HeaderName = HeaderName::from_static("client-cert");

/// The largest `Client-Cert` value read (base64 of a certificate of about 12 KB); a longer
/// one is refused as malformed.
pub const MAX_CLIENT_CERT_HEADER_BYTES: usize = 16 * 1024;

/// Standard base64; RFC 8941 parsers should not fail on missing padding.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The DER certificate in an RFC 9440 `Client-Cert` value.
///
/// ```
/// use bearer_guard::mtls::parse_client_cert;
/// assert_eq!(parse_client_cert(b":MAMCAQE=:").unwrap(), b"\x30\x03\x02\x01\x01");
/// assert!(parse_client_cert(b"MAMCAQE=").is_err());
/// ```
///
/// # Errors
///
/// `invalid_request` ([`AuthErrorKind::MalformedRequest`](crate::AuthErrorKind)) for a value
/// that is not one byte sequence of base64, is empty, longer than
/// [`MAX_CLIENT_CERT_HEADER_BYTES`], or does not hold a DER sequence.
pub fn parse_client_cert(value: &[u8]) -> Result<Vec<u8>, AuthError> {
    let malformed = || AuthError::malformed_request("the client certificate header is malformed");
    if value.len() > MAX_CLIENT_CERT_HEADER_BYTES {
        return Err(malformed());
    }
    let value = value.trim_ascii();
    let inner = value
        .strip_prefix(b":")
        .and_then(|v| v.strip_suffix(b":"))
        .ok_or_else(malformed)?;
    if inner.is_empty() {
        return Err(malformed());
    }
    let der = LENIENT.decode(inner).map_err(|_| malformed())?;
    // A certificate is a DER SEQUENCE.
    if der.first() != Some(&0x30) {
        return Err(malformed());
    }
    Ok(der)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuthErrorKind;

    #[test]
    fn a_byte_sequence_gives_its_der_bytes() {
        assert_eq!(
            parse_client_cert(b":MAMCAQE=:").expect("valid"),
            b"\x30\x03\x02\x01\x01"
        );
        // Unpadded, and surrounded by spaces.
        assert_eq!(
            parse_client_cert(b" :MAMCAQE: ").expect("valid"),
            b"\x30\x03\x02\x01\x01"
        );
    }

    #[test]
    fn malformed_values_are_invalid_requests() {
        let long = vec![b'A'; MAX_CLIENT_CERT_HEADER_BYTES + 1];
        for v in [
            &b""[..],
            b":",
            b"::",
            b"MAMCAQE=",
            b":MAMCAQE=",
            b":MAMC*AQE=:",
            b":MAMCAQE=:, :MAMCAQE=:",
            b":AAAA:",
            b":-_-_:",
            &long,
        ] {
            assert_eq!(
                parse_client_cert(v).map_err(|e| e.kind()),
                Err(AuthErrorKind::MalformedRequest),
                "{}",
                String::from_utf8_lossy(&v[..v.len().min(40)])
            );
        }
    }
}
