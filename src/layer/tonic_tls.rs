//! The client certificate of tonic's own TLS server (feature `tonic-tls`): tonic's
//! `Server::builder().tls_config(..)` puts a connection record (`TlsConnectInfo`, what
//! `tonic::Request::peer_certs` reads) on each request; with the layer's certificate source
//! [`CertificateSource::PeerCertificate`], the layer turns its leaf certificate into the
//! [`PeerCertificate`] extension that the binding check reads.
//!
//! tonic builds that record once per connection and clones it (an `Arc` of the chain) into
//! each request, so the thumbprint is remembered per chain: a request pays a cache lookup,
//! not a SHA-256, as with [`mtls::serve`](crate::mtls).

use std::fmt;
use std::sync::{Arc, OnceLock};

use http::Extensions;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::Connected;

use crate::mtls::{CertificateSource, Mtls, PeerCertificate};

/// tonic's `TlsConnectInfo<TcpConnectInfo>`: what its TLS server puts on each request of a TCP
/// connection. tonic exports that name only with one of its crypto-provider features
/// (`tls-aws-lc`, `tls-ring`); named through the stream it describes, it needs neither, and
/// the application keeps its choice of provider.
type TonicTlsInfo = <TlsStream<TcpStream> as Connected>::ConnectInfo;

/// A client's certificate chain as tonic's record holds it.
type Chain = Vec<CertificateDer<'static>>;

/// How many connections' certificates are remembered: more connections than this only cost
/// a thumbprint computation more, never a wrong answer.
const CAPACITY: usize = 1024;

/// Leaf certificates longer than this are not remembered (their thumbprint is computed on each
/// request): the memory stays under `CAPACITY` × 8 KiB (about 8 MiB) whatever the client CA
/// signs. Typical client certificates are 0.5–2 KiB.
const MAX_REMEMBERED_DER: usize = 8 * 1024;

/// The remembered certificates, by the address of the connection's chain (the cheap lookup).
///
/// The address alone proves nothing (a closed connection's chain is freed and another may be
/// allocated there), so a remembered certificate is used only when its bytes are those of the
/// chain's leaf: a byte comparison, far cheaper than the SHA-256 it saves. Another certificate
/// at a reused address is a miss, never a wrong answer.
type Memo = quick_cache::sync::Cache<usize, PeerCertificate>;

/// The layer's per-layer memory of tonic connections' certificates. Cheap to clone (clones
/// share it); allocated on first use.
#[derive(Clone, Default)]
pub(crate) struct TonicPeers {
    memo: Arc<OnceLock<Memo>>,
}

impl fmt::Debug for TonicPeers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TonicPeers")
            .field("remembered", &self.memo.get().map_or(0, Memo::len))
            .finish()
    }
}

impl TonicPeers {
    /// With the connection as certificate source, and no [`PeerCertificate`] there yet (one
    /// put there by the application wins), puts in `extensions` the leaf certificate of
    /// tonic's TLS record, when there is one and the client sent a certificate.
    pub(crate) fn gather(&self, mtls: &Mtls, extensions: &mut Extensions) {
        if *mtls.source() != CertificateSource::PeerCertificate
            || extensions.get::<PeerCertificate>().is_some()
        {
            return;
        }
        let Some(chain) = extensions
            .get::<TonicTlsInfo>()
            .and_then(|i| i.peer_certs())
        else {
            return;
        };
        if let Some(peer) = self.leaf(&chain) {
            extensions.insert(peer);
        }
    }

    /// The leaf certificate of `chain` (the first), its thumbprint remembered.
    fn leaf(&self, chain: &Arc<Chain>) -> Option<PeerCertificate> {
        let memo = self.memo.get_or_init(|| Memo::new(CAPACITY));
        let address = Arc::as_ptr(chain).addr();
        let leaf = chain.first()?.as_ref();
        if let Some(peer) = memo.get(&address).filter(|peer| peer.der() == leaf) {
            return Some(peer);
        }
        let peer = PeerCertificate::from_der(leaf);
        if leaf.len() <= MAX_REMEMBERED_DER {
            memo.insert(address, peer.clone());
        }
        Some(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mtls::CertificateThumbprint;

    fn chain(leaf: &[u8]) -> Arc<Chain> {
        Arc::new(vec![
            CertificateDer::from(leaf.to_vec()),
            CertificateDer::from(b"\x30\x03\x02\x01\x09".to_vec()),
        ])
    }

    #[test]
    fn the_leaf_is_the_first_certificate_of_the_chain() {
        let peers = TonicPeers::default();
        let leaf = peers.leaf(&chain(b"\x30\x03\x02\x01\x01")).expect("leaf");
        assert_eq!(leaf.der(), b"\x30\x03\x02\x01\x01");
        assert_eq!(
            leaf.thumbprint(),
            &CertificateThumbprint::of_der(b"\x30\x03\x02\x01\x01")
        );
    }

    #[test]
    fn an_empty_chain_has_no_leaf() {
        assert!(TonicPeers::default().leaf(&Arc::new(Vec::new())).is_none());
    }

    #[test]
    fn each_connection_s_chain_gets_its_own_certificate_and_a_repeat_is_remembered() {
        let peers = TonicPeers::default();
        let (a, b) = (
            chain(b"\x30\x03\x02\x01\x01"),
            chain(b"\x30\x03\x02\x01\x02"),
        );
        let first = peers.leaf(&a).expect("a");
        assert_eq!(peers.leaf(&b).expect("b").der(), b"\x30\x03\x02\x01\x02");
        assert_eq!(peers.memo.get().map(Memo::len), Some(2));
        // The same chain again (another request of that connection): the remembered one.
        let again = peers.leaf(&Arc::clone(&a)).expect("a again");
        assert_eq!(again.thumbprint(), first.thumbprint());
        assert_eq!(peers.memo.get().map(Memo::len), Some(2));
    }

    #[test]
    fn chains_made_one_after_another_never_get_a_dropped_chain_s_certificate() {
        // A closed connection's chain is freed; a new one may be allocated anywhere but at a
        // remembered address. Each new chain must get its own leaf.
        let peers = TonicPeers::default();
        for i in 0..200u8 {
            let der = [0x30, 0x03, 0x02, 0x01, i];
            let c = chain(&der);
            assert_eq!(peers.leaf(&c).expect("leaf").der(), der);
            drop(c);
        }
    }

    #[test]
    fn a_remembered_certificate_of_other_bytes_at_the_chain_s_address_is_not_used() {
        // As after a closed connection's chain was freed and a new one took its address.
        let peers = TonicPeers::default();
        let c = chain(b"\x30\x03\x02\x01\x01");
        let memo = peers.memo.get_or_init(|| Memo::new(CAPACITY));
        memo.insert(
            Arc::as_ptr(&c).addr(),
            PeerCertificate::from_der(b"\x30\x03\x02\x01\x02".to_vec()),
        );
        assert_eq!(peers.leaf(&c).expect("leaf").der(), b"\x30\x03\x02\x01\x01");
    }

    #[test]
    fn a_large_leaf_is_not_remembered_but_still_given() {
        let peers = TonicPeers::default();
        let mut der = vec![0x30, 0x82, 0x20, 0x00];
        der.resize(4 + 0x2000, 0);
        let c = chain(&der);
        assert_eq!(peers.leaf(&c).expect("leaf").der(), der.as_slice());
        assert_eq!(peers.memo.get().map(Memo::len), Some(0));
    }

    #[test]
    fn the_record_is_read_only_with_the_connection_as_source_and_no_certificate_there_yet() {
        let peers = TonicPeers::default();
        let theirs = PeerCertificate::from_der(b"\x30\x03\x02\x01\x07".to_vec());
        let mut ext = Extensions::new();
        ext.insert(theirs.clone());
        peers.gather(&Mtls::peer_certificate(), &mut ext);
        assert_eq!(
            ext.get::<PeerCertificate>()
                .map(PeerCertificate::thumbprint),
            Some(theirs.thumbprint())
        );
        let mut ext = Extensions::new();
        peers.gather(&Mtls::trusted_header(crate::mtls::CLIENT_CERT), &mut ext);
        peers.gather(&Mtls::peer_certificate(), &mut ext);
        assert!(ext.get::<PeerCertificate>().is_none());
    }
}
