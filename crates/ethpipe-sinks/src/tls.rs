//! TLS to PostgreSQL: libpq's `sslmode` and `sslrootcert`, turned into the one
//! rustls connector that every connection ethpipe opens uses (the sink's, the
//! ledger's pool and locks, and `serve`'s read pool).
//!
//! The modes keep libpq's meanings. `prefer` and `require` encrypt but trust
//! any certificate (libpq does the same without a root certificate), unless
//! `require` is given `sslrootcert`, which makes it `verify-ca` as in libpq.
//! `verify-ca` checks the chain against the roots; `verify-full` checks the
//! chain and that the certificate names the host in the URL. The roots are the
//! `sslrootcert` file, or else the system's store (`/etc/ssl/certs` and
//! friends), so a CA an administrator installed system-wide is trusted too.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`, all five values ethpipe supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    /// The mode libpq uses when the URL names none.
    pub const DEFAULT: SslMode = SslMode::Prefer;

    /// What tokio-postgres should do when the server refuses TLS: only
    /// `prefer` carries on in plain text.
    pub fn driver_mode(self) -> tokio_postgres::config::SslMode {
        match self {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = TlsError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let all = [
            SslMode::Disable,
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyCa,
            SslMode::VerifyFull,
        ];
        all.into_iter()
            .find(|mode| mode.as_str() == text)
            .ok_or_else(|| TlsError::UnknownMode(text.to_string()))
    }
}

/// A `sslmode`/`sslrootcert` pair that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("sslmode '{0}' is not one of disable, prefer, require, verify-ca, verify-full")]
    UnknownMode(String),
    #[error("cannot read sslrootcert {}: {source}", .path.display())]
    RootCertUnreadable {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("sslrootcert {} holds no usable certificate", .path.display())]
    RootCertEmpty { path: PathBuf },
    #[error("sslmode={0} needs root certificates, and the system has none; pass sslrootcert=PATH")]
    NoSystemRoots(SslMode),
    #[error("cannot set up TLS: {0}")]
    Setup(#[source] rustls::Error),
    #[error("cannot set up certificate verification: {0}")]
    Verifier(#[source] rustls::client::VerifierBuilderError),
}

/// The TLS side of a PostgreSQL URL: its mode and the connector built for it.
/// Cheap to clone; every connection of one URL shares one rustls config.
#[derive(Clone)]
pub struct PgTls {
    mode: SslMode,
    connector: MakeRustlsConnect,
}

impl fmt::Debug for PgTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTls").field("mode", &self.mode).finish()
    }
}

impl PgTls {
    /// Builds the connector for `mode`, reading `root_cert` (PEM) if given.
    /// Everything that can be wrong with the settings is found here, before
    /// any connection is tried.
    pub fn new(mode: SslMode, root_cert: Option<&Path>) -> Result<PgTls, TlsError> {
        // libpq: with a root certificate, `require` verifies the chain.
        let mode = match (mode, root_cert) {
            (SslMode::Require, Some(_)) => SslMode::VerifyCa,
            (mode, _) => mode,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match mode {
            SslMode::Disable | SslMode::Prefer | SslMode::Require => {
                Arc::new(EncryptOnly(provider.clone()))
            }
            SslMode::VerifyCa | SslMode::VerifyFull => {
                let roots = match root_cert {
                    Some(path) => roots_from_file(path)?,
                    None => system_roots(mode)?,
                };
                let chain =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(TlsError::Verifier)?;
                Arc::new(Verifying {
                    chain,
                    check_host: mode == SslMode::VerifyFull,
                })
            }
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Setup)?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(PgTls {
            mode,
            connector: MakeRustlsConnect::new(config),
        })
    }

    /// The mode in force (`require` with a root certificate reads `verify-ca`).
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// The connector to hand to `Config::connect` or a deadpool `Manager`.
    pub fn connector(&self) -> MakeRustlsConnect {
        self.connector.clone()
    }
}

fn roots_from_file(path: &Path) -> Result<RootCertStore, TlsError> {
    let unreadable = |source| TlsError::RootCertUnreadable {
        path: path.to_path_buf(),
        source,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(unreadable)? {
        roots.add_parsable_certificates([cert.map_err(unreadable)?]);
    }
    if roots.is_empty() {
        return Err(TlsError::RootCertEmpty {
            path: path.to_path_buf(),
        });
    }
    Ok(roots)
}

fn system_roots(mode: SslMode) -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::debug!("skipping a system root certificate: {error}");
    }
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        return Err(TlsError::NoSystemRoots(mode));
    }
    Ok(roots)
}

/// `prefer` and `require`: the session is encrypted and the handshake's
/// signatures are checked, but any certificate is accepted, as in libpq.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca` and `verify-full`: webpki checks the chain, then the name.
/// It checks the chain first, so for `verify-ca` a name mismatch is the only
/// error left to forgive.
#[derive(Debug)]
struct Verifying {
    chain: Arc<WebPkiServerVerifier>,
    check_host: bool,
}

impl ServerCertVerifier for Verifying {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.chain.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        match verified {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_host => Ok(ServerCertVerified::assertion()),
            Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
                // As a plain `Other` error, so rustls prints our text rather
                // than the variant's debug form.
                Err(rustls::Error::Other(rustls::OtherError(Arc::new(
                    UntrustedIssuer,
                ))))
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

/// rustls names this case `UnknownIssuer`; say what it means and what to do.
#[derive(Debug, thiserror::Error)]
#[error(
    "the server's certificate is not signed by a trusted root (unknown issuer: \
     self-signed or from a private CA? pass sslrootcert=PATH)"
)]
struct UntrustedIssuer;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_as_libpq_spells_them() {
        for text in ["disable", "prefer", "require", "verify-ca", "verify-full"] {
            assert_eq!(text.parse::<SslMode>().unwrap().to_string(), text);
        }
        let error = "bogus".parse::<SslMode>().unwrap_err().to_string();
        assert!(
            error.contains("'bogus'") && error.contains("verify-full"),
            "{error}"
        );
        assert_eq!(
            SslMode::VerifyFull.driver_mode(),
            tokio_postgres::config::SslMode::Require
        );
    }

    #[test]
    fn require_with_a_root_certificate_verifies_the_chain() {
        let missing = Path::new("/nonexistent/ca.pem");
        let error = PgTls::new(SslMode::Require, Some(missing)).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("cannot read sslrootcert /nonexistent/ca.pem"),
            "{error}"
        );
        assert_eq!(
            PgTls::new(SslMode::Require, None).unwrap().mode(),
            SslMode::Require
        );
    }
}
