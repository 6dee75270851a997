//! A TLS front for PostgreSQL with a certificate from a CA the test generates.
//!
//! The shared test server's own certificate (Debian's self-signed "snakeoil")
//! cannot be swapped while other tests use it, so certificate verification
//! that must succeed is tested through this front: it answers PostgreSQL's
//! `SSLRequest` with `S`, completes TLS with a certificate signed by a fresh
//! CA and naming only the hosts the test chose, then forwards the decrypted
//! bytes to the real server. A client that starts without `SSLRequest` is
//! forwarded as is, in plain text.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// The request code of PostgreSQL's `SSLRequest` (protocol docs, "SSL Session Encryption").
const SSL_REQUEST_CODE: u32 = 80877103;

pub struct PgTlsFront {
    port: u16,
    ca_pem: String,
    /// TLS handshakes completed, so a test can tell the session was encrypted.
    handshakes: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl PgTlsFront {
    /// Listens on 127.0.0.1 (a free port), forwarding to `upstream`
    /// (`host:port`); its certificate is valid for `server_names` only.
    pub async fn start(upstream: &str, server_names: &[&str]) -> anyhow::Result<PgTlsFront> {
        let (ca_pem, certificate, key) = issue(server_names)?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![certificate], key)?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let upstream = upstream.to_string();
        let handshakes = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&handshakes);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let upstream = upstream.clone();
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    // A client that gives up mid-handshake is its own business.
                    let _ = serve(client, &upstream, acceptor, &counter).await;
                });
            }
        });
        Ok(PgTlsFront {
            port,
            ca_pem,
            handshakes,
            task,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many clients completed a TLS handshake so far.
    pub fn handshakes(&self) -> u64 {
        self.handshakes.load(Ordering::SeqCst)
    }

    /// The CA that signed the front's certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Writes the CA to `dir/ca.pem`, for `sslrootcert=`.
    pub fn write_ca(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.ca_pem)?;
        Ok(path)
    }
}

impl Drop for PgTlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A fresh CA and a server certificate it signed: (CA PEM, server cert, server key).
fn issue(
    server_names: &[&str],
) -> anyhow::Result<(String, CertificateDer<'static>, PrivateKeyDer<'static>)> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "ethpipe test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key)?;

    let server_key = KeyPair::generate()?;
    let names: Vec<String> = server_names.iter().map(|name| name.to_string()).collect();
    let mut server_params = CertificateParams::new(names)?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "ethpipe test PostgreSQL");
    let server = server_params.signed_by(&server_key, &Issuer::new(ca_params, ca_key))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    Ok((ca.pem(), server.der().clone(), key))
}

/// One client: TLS if it asks (`SSLRequest`), then bytes both ways until either side closes.
async fn serve(
    mut client: TcpStream,
    upstream: &str,
    acceptor: TlsAcceptor,
    handshakes: &AtomicU64,
) -> anyhow::Result<()> {
    let mut first = [0u8; 8];
    client.read_exact(&mut first).await?;
    let length = u32::from_be_bytes([first[0], first[1], first[2], first[3]]);
    let code = u32::from_be_bytes([first[4], first[5], first[6], first[7]]);
    let mut server = TcpStream::connect(upstream).await?;
    if length == 8 && code == SSL_REQUEST_CODE {
        client.write_all(b"S").await?;
        let mut tls = acceptor.accept(client).await?;
        handshakes.fetch_add(1, Ordering::SeqCst);
        tokio::io::copy_bidirectional(&mut tls, &mut server).await?;
    } else {
        server.write_all(&first).await?;
        tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    }
    Ok(())
}
