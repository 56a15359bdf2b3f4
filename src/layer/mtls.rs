//! The layer's certificate part: gathering the request's client certificate from the
//! configured source, and running the binding check (the check itself is
//! [`crate::mtls`]'s) after every verification, a cached one too.

use http::{Extensions, HeaderMap};

use crate::claims::Claims;
use crate::error::AuthError;
use crate::mtls::{
    CertificateSource, CertificateThumbprint, Mtls, MtlsConfirmation, PeerCertificate,
    parse_client_cert,
};

/// The certificate a trusted RFC 9440 header gave, kept in the request's extensions from
/// [`gather`] to [`bind`] (private: nobody else can put one there).
#[derive(Clone)]
struct FromHeader(CertificateThumbprint);

/// Reads a trusted certificate header into the extensions (a connection's certificate is
/// there already). Called before any token work, so that a malformed header is answered
/// `400 invalid_request` whatever the token.
pub(crate) fn gather(
    mtls: &Mtls,
    headers: &HeaderMap,
    extensions: &mut Extensions,
) -> Result<(), AuthError> {
    let CertificateSource::TrustedHeader(name) = mtls.source() else {
        return Ok(());
    };
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(()),
        (Some(_), Some(_)) => Err(AuthError::malformed_request(
            "the request has more than one client certificate header",
        )),
        (Some(value), None) => {
            let der = parse_client_cert(value.as_bytes())?;
            extensions.insert(FromHeader(CertificateThumbprint::of_der(&der)));
            Ok(())
        }
    }
}

/// The binding check of verified `claims`, with the certificate the configured source gave;
/// without `.mtls(..)` on the layer (`None`), a certificate-bound token is refused.
pub(crate) fn bind(
    mtls: Option<&Mtls>,
    claims: &Claims,
    extensions: &Extensions,
) -> Result<Option<MtlsConfirmation>, AuthError> {
    let Some(mtls) = mtls else {
        return crate::mtls::refuse_unchecked_binding(claims).map(|()| None);
    };
    let presented = match mtls.source() {
        CertificateSource::PeerCertificate => extensions
            .get::<PeerCertificate>()
            .map(PeerCertificate::thumbprint),
        CertificateSource::TrustedHeader(_) => extensions.get::<FromHeader>().map(|h| &h.0),
    };
    mtls.check(claims, presented)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuthErrorKind;
    use crate::mtls::CLIENT_CERT;

    fn gathered(values: &[&str]) -> Result<Option<CertificateThumbprint>, AuthErrorKind> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(CLIENT_CERT, v.parse().expect("value"));
        }
        let mut ext = Extensions::new();
        gather(&Mtls::trusted_header(CLIENT_CERT), &headers, &mut ext).map_err(|e| e.kind())?;
        Ok(ext.get::<FromHeader>().map(|h| h.0.clone()))
    }

    #[test]
    fn a_trusted_header_gives_the_thumbprint_of_its_certificate() {
        assert_eq!(
            gathered(&[":MAMCAQE=:"]),
            Ok(Some(CertificateThumbprint::of_der(b"\x30\x03\x02\x01\x01")))
        );
        assert_eq!(gathered(&[]), Ok(None));
    }

    #[test]
    fn two_certificate_headers_or_a_malformed_one_are_invalid_requests() {
        let malformed = Err(AuthErrorKind::MalformedRequest);
        assert_eq!(gathered(&[":MAMCAQE=:", ":MAMCAQE=:"]), malformed);
        assert_eq!(gathered(&["MAMCAQE="]), malformed);
    }

    #[test]
    fn the_header_is_not_read_when_the_source_is_the_connection() {
        let mut headers = HeaderMap::new();
        headers.insert(CLIENT_CERT, "not even base64".parse().expect("value"));
        let mut ext = Extensions::new();
        assert!(gather(&Mtls::peer_certificate(), &headers, &mut ext).is_ok());
        assert!(ext.get::<FromHeader>().is_none());
    }
}
