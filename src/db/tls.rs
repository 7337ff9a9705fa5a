//! TLS to PostgreSQL, with libpq's meanings of `sslmode` and `sslrootcert` in the database URL.
//!
//! tokio-postgres knows `sslmode` `disable`, `prefer` and `require` only, and no root
//! certificates; libpq's URLs also say `verify-ca`, `verify-full` and `sslrootcert`. This module
//! takes those two parameters out of the URL, hands tokio-postgres the rest (with `require` for
//! the two verifying modes), and builds the rustls configuration that does what libpq does:
//!
//! | `sslmode` | encrypted | the server's certificate |
//! | --- | --- | --- |
//! | `disable` | never | - |
//! | `prefer` (default) | when the server offers TLS | not checked |
//! | `require` | always | not checked; with `sslrootcert`, its chain (as libpq does) |
//! | `verify-ca` | always | chain to a root of `sslrootcert` |
//! | `verify-full` | always | chain, and the host name (or IP address) connected to |
//!
//! `sslrootcert` is a PEM file of root certificates, or `system` for the platform's roots. The
//! verifying modes need it (libpq would read `~/.postgresql/root.crt`; a server has no home
//! directory worth trusting). A certificate that is not checked still encrypts the connection
//! (against a passive listener), as with libpq; only the verifying modes stop an active one.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

const NEEDS_ROOTS: &str = "sslmode: verify-ca and verify-full need sslrootcert=PATH (a PEM file \
     of root certificates) or sslrootcert=system";

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it (libpq's default).
    Prefer,
    /// TLS always.
    Require,
    /// TLS, the chain checked.
    VerifyCa,
    /// TLS, the chain and the host name checked.
    VerifyFull,
}

/// Where root certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCerts {
    /// A PEM file.
    File(PathBuf),
    /// The platform's trust store.
    System,
}

/// The TLS part of a database URL, and the URL tokio-postgres is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbTls {
    /// The connection string without `sslrootcert`, `sslmode` mapped to what tokio-postgres
    /// knows.
    pub url: String,
    /// The mode asked for.
    pub mode: SslMode,
    /// The roots asked for.
    pub root_certs: Option<RootCerts>,
}

impl DbTls {
    /// Reads `sslmode` and `sslrootcert` from a libpq URL (`postgres://...?sslmode=...`) or
    /// key=value string (`host=... sslmode=...`). Errors name the parameter.
    pub fn parse(url: &str) -> Result<DbTls, String> {
        let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
        let mut mode = None;
        let mut root_certs = None;
        let mut take = |key: &str, value: &str| -> Result<bool, String> {
            match key {
                "sslmode" => {
                    mode = Some(match value {
                        "disable" => SslMode::Disable,
                        "prefer" => SslMode::Prefer,
                        "require" => SslMode::Require,
                        "verify-ca" => SslMode::VerifyCa,
                        "verify-full" => SslMode::VerifyFull,
                        other => {
                            return Err(format!(
                                "sslmode: `{other}` is not one of disable, prefer, require, \
                                 verify-ca, verify-full"
                            ));
                        }
                    });
                    Ok(true)
                }
                "sslrootcert" if value.is_empty() => Err("sslrootcert: empty".to_owned()),
                "sslrootcert" => {
                    root_certs = Some(if value == "system" {
                        RootCerts::System
                    } else {
                        RootCerts::File(PathBuf::from(value))
                    });
                    Ok(true)
                }
                _ => Ok(false),
            }
        };
        let rest = if is_url {
            let (base, query) = url.split_once('?').unwrap_or((url, ""));
            let mut kept = Vec::new();
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let v = percent_encoding::percent_decode_str(v)
                    .decode_utf8()
                    .map_err(|_| format!("{k}: not UTF-8"))?;
                if !take(k, &v)? {
                    kept.push(pair);
                }
            }
            (base, kept)
        } else {
            let mut kept = Vec::new();
            for token in url.split_whitespace() {
                let (k, v) = token.split_once('=').unwrap_or((token, ""));
                let v = v.trim_matches('\'');
                if !take(k.trim(), v)? {
                    kept.push(token);
                }
            }
            ("", kept)
        };
        let mode = mode.unwrap_or(SslMode::Prefer);
        if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && root_certs.is_none() {
            return Err(NEEDS_ROOTS.to_owned());
        }
        let (base, mut kept) = rest;
        let pg_mode = match mode {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            _ => "require",
        };
        let pg_mode = format!("sslmode={pg_mode}");
        kept.push(&pg_mode);
        let url = if is_url {
            format!("{base}?{}", kept.join("&"))
        } else {
            kept.join(" ")
        };
        Ok(DbTls {
            url,
            mode,
            root_certs,
        })
    }

    /// The connector for tokio-postgres. Reads the root certificates; errors name the file.
    pub fn connector(&self) -> Result<MakeRustlsConnect, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let roots = match &self.root_certs {
            Some(source) => Some(Arc::new(load_roots(source)?)),
            None => None,
        };
        let chain = match roots {
            Some(roots) => Some(
                WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| format!("sslrootcert: {e}"))?,
            ),
            None => None,
        };
        let verifier: Arc<dyn ServerCertVerifier> = match (self.mode, chain) {
            (SslMode::VerifyFull, Some(chain)) => chain,
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => return Err(NEEDS_ROOTS.to_owned()),
            (_, chain) => Arc::new(NameNotChecked {
                chain,
                provider: provider.clone(),
            }),
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS configuration: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }
}

fn load_roots(source: &RootCerts) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match source {
        RootCerts::File(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("sslrootcert: {}: {e}", path.display()))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("sslrootcert: {}: {e}", path.display()))?;
            let (added, _ignored) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "sslrootcert: {}: no usable certificate in the file",
                    path.display()
                ));
            }
        }
        RootCerts::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err("sslrootcert=system: the platform has no root certificates".into());
            }
        }
    }
    Ok(roots)
}

/// The verifier of every mode but `verify-full`: the chain checked when there are roots
/// (`verify-ca`, and `require` with `sslrootcert`), the name never, and nothing when there are
/// no roots (`prefer`, `require`: encrypted, not authenticated). The handshake's signatures
/// are always checked against the certificate presented.
#[derive(Debug)]
struct NameNotChecked {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for NameNotChecked {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parameters_are_taken_out_and_the_mode_mapped() {
        let t = DbTls::parse(
            "postgres://u:p@db:5432/x?application_name=a&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(t.mode, SslMode::VerifyFull);
        assert_eq!(
            t.root_certs,
            Some(RootCerts::File(PathBuf::from("/etc/ca.pem")))
        );
        assert_eq!(
            t.url,
            "postgres://u:p@db:5432/x?application_name=a&sslmode=require"
        );
        let t = DbTls::parse("postgresql://db/x").unwrap();
        assert_eq!(t.mode, SslMode::Prefer);
        assert_eq!(t.url, "postgresql://db/x?sslmode=prefer");
        let t = DbTls::parse("postgres://db/x?sslmode=disable").unwrap();
        assert_eq!(
            (t.mode, t.url.as_str()),
            (SslMode::Disable, "postgres://db/x?sslmode=disable")
        );
    }

    #[test]
    fn key_value_strings_work_too() {
        let t = DbTls::parse("host=db user=u sslmode=verify-ca sslrootcert=system").unwrap();
        assert_eq!(t.mode, SslMode::VerifyCa);
        assert_eq!(t.root_certs, Some(RootCerts::System));
        assert_eq!(t.url, "host=db user=u sslmode=require");
    }

    #[test]
    fn bad_values_name_the_parameter() {
        let e = DbTls::parse("postgres://db/x?sslmode=verify").unwrap_err();
        assert!(e.starts_with("sslmode:"), "{e}");
        let e = DbTls::parse("postgres://db/x?sslmode=verify-full").unwrap_err();
        assert!(e.contains("sslrootcert"), "{e}");
        let e = DbTls::parse("postgres://db/x?sslrootcert=").unwrap_err();
        assert!(e.starts_with("sslrootcert:"), "{e}");
        let t = DbTls::parse("postgres://db/x?sslmode=require&sslrootcert=/no/such.pem").unwrap();
        let e = t.connector().err().unwrap();
        assert!(e.contains("/no/such.pem"), "{e}");
    }
}
