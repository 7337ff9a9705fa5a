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
//! | `prefer` (default) | when the server offers TLS | not checked; with `sslrootcert`, its chain |
//! | `require` | always | not checked; with `sslrootcert`, its chain (as libpq does) |
//! | `verify-ca` | always | chain to a root of `sslrootcert` |
//! | `verify-full` | always | chain, and the host name (or IP address) connected to |
//!
//! `sslrootcert` is a PEM file of root certificates, or `system` for the platform's roots,
//! which (as in libpq 16) means `verify-full` and refuses anything weaker. The verifying modes
//! need it (libpq would read `~/.postgresql/root.crt`; a server has no home directory worth
//! trusting). A certificate that is not checked still encrypts the connection (against a
//! passive listener), as with libpq; only the verifying modes stop an active one.
//!
//! Where this differs from libpq: `allow` is refused; under `prefer`, a TLS handshake that
//! fails is an error rather than a retry in plain text, and a connection string with no host
//! name (addresses only) stays plain; names are checked against the certificate's
//! subjectAltName only (rustls ignores the common name), and a server certificate that is
//! itself marked as a CA is refused wherever the chain is checked.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// What connecting to a database URL takes: tokio-postgres's configuration and the TLS
/// connector (root certificates read). The one place the URL is read, for the pool,
/// `check-config` and `report`.
pub fn prepare(url: &str) -> Result<(tokio_postgres::Config, MakeRustlsConnect), String> {
    let tls = DbTls::parse(url)?;
    Ok((tls.config()?, tls.connector()?))
}

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
                        "allow" => {
                            return Err("sslmode: `allow` is not supported (use prefer or \
                                        disable)"
                                .to_owned());
                        }
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
        // The parameters other than ours are kept byte for byte.
        let mut kept: Vec<&str> = Vec::new();
        let base = match url_parameters(url) {
            Some((base, query)) => {
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    let decode = |text: &str| {
                        percent_encoding::percent_decode_str(text)
                            .decode_utf8()
                            .map(|t| t.into_owned())
                            .map_err(|_| format!("{text}: not UTF-8"))
                    };
                    if !take(&decode(k)?, &decode(v)?)? {
                        kept.push(pair);
                    }
                }
                Some(base)
            }
            None => {
                for item in key_values(url)? {
                    if !take(item.key, &item.value)? {
                        kept.push(item.text);
                    }
                }
                None
            }
        };
        // libpq (16 and later): the system's roots mean verify-full, and nothing weaker.
        let mode = match (mode, &root_certs) {
            (None | Some(SslMode::VerifyFull), Some(RootCerts::System)) => SslMode::VerifyFull,
            (Some(_), Some(RootCerts::System)) => {
                return Err("sslmode: sslrootcert=system needs sslmode=verify-full".to_owned());
            }
            (mode, _) => mode.unwrap_or(SslMode::Prefer),
        };
        if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && root_certs.is_none() {
            return Err(NEEDS_ROOTS.to_owned());
        }
        let pg_mode = match mode {
            SslMode::Disable => "sslmode=disable",
            SslMode::Prefer => "sslmode=prefer",
            _ => "sslmode=require",
        };
        kept.push(pg_mode);
        let url = match base {
            Some(base) => format!("{base}?{}", kept.join("&")),
            None => kept.join(" "),
        };
        Ok(DbTls {
            url,
            mode,
            root_certs,
        })
    }

    /// tokio-postgres's configuration for [`DbTls::url`]. Under `prefer`, a connection
    /// string with addresses only (`hostaddr`, no host name) is given `disable`: TLS needs a
    /// name to check or send, and tokio-postgres would fail where libpq falls back to plain.
    pub fn config(&self) -> Result<tokio_postgres::Config, String> {
        let mut config = tokio_postgres::Config::from_str(&self.url)
            .map_err(|e| format!("not a PostgreSQL connection string ({e})"))?;
        let named = config
            .get_hosts()
            .iter()
            .any(|h| matches!(h, tokio_postgres::config::Host::Tcp(_)));
        if self.mode == SslMode::Prefer && !named {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
        }
        Ok(config)
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

/// For a URL (`postgres://` or `postgresql://`), the part before its parameters and the
/// parameters, split where tokio-postgres splits them: at the first `?` after the
/// credentials (a password may hold a `?`). `None` for a key=value string.
fn url_parameters(url: &str) -> Option<(&str, &str)> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))?;
    let prefix = url.len() - rest.len();
    let after_credentials = rest.find('@').map_or(0, |i| i + 1);
    match rest[after_credentials..].find('?') {
        Some(i) => {
            let at = prefix + after_credentials + i;
            Some((&url[..at], &url[at + 1..]))
        }
        None => Some((url, "")),
    }
}

/// One `key = value` of a key=value connection string.
struct KeyValue<'a> {
    key: &'a str,
    /// Unquoted and unescaped.
    value: String,
    /// The item as written, from its key to the end of its value.
    text: &'a str,
}

/// Splits a key=value connection string as libpq does: spaces around `=` allowed, a value
/// either single-quoted (`\'` and `\\` escaped) or up to the next space.
fn key_values(s: &str) -> Result<Vec<KeyValue<'_>>, String> {
    let bytes = s.as_bytes();
    let mut items = Vec::new();
    let mut i = 0;
    let skip_spaces = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    loop {
        i = skip_spaces(i);
        if i == bytes.len() {
            return Ok(items);
        }
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &s[start..i];
        i = skip_spaces(i);
        if bytes.get(i) != Some(&b'=') {
            return Err(format!("`{key}`: missing `=` in the connection string"));
        }
        i = skip_spaces(i + 1);
        let mut value = Vec::new();
        if bytes.get(i) == Some(&b'\'') {
            i += 1;
            loop {
                match bytes.get(i) {
                    None => return Err(format!("{key}: unterminated quoted value")),
                    Some(b'\'') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < bytes.len() => {
                        value.push(bytes[i + 1]);
                        i += 2;
                    }
                    Some(&b) => {
                        value.push(b);
                        i += 1;
                    }
                }
            }
        } else {
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                if bytes[i] == b'\\' && i + 1 < bytes.len() {
                    i += 1;
                }
                value.push(bytes[i]);
                i += 1;
            }
        }
        let value = String::from_utf8(value).map_err(|_| format!("{key}: not UTF-8"))?;
        items.push(KeyValue {
            key,
            value,
            text: &s[start..i],
        });
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
    fn key_value_strings_are_split_as_libpq_splits_them() {
        let t = DbTls::parse(
            "host=db password='a  b\\'c' sslmode = verify-ca  sslrootcert='/etc/my ca.pem'",
        )
        .unwrap();
        assert_eq!(t.mode, SslMode::VerifyCa);
        assert_eq!(
            t.root_certs,
            Some(RootCerts::File(PathBuf::from("/etc/my ca.pem")))
        );
        // Other parameters are kept as written, quotes and inner spaces included.
        assert_eq!(t.url, "host=db password='a  b\\'c' sslmode=require");
        let config = t.config().unwrap();
        assert_eq!(config.get_password(), Some(&b"a  b'c"[..]));
        // A value that merely contains `sslmode=` is a value.
        let t = DbTls::parse("application_name='x sslmode=disable' host=db").unwrap();
        assert_eq!(t.mode, SslMode::Prefer);
        assert!(DbTls::parse("host=db sslmode").is_err());
        assert!(DbTls::parse("host='db").is_err());
    }

    #[test]
    fn the_query_starts_after_the_credentials_and_keys_are_decoded() {
        let t = DbTls::parse("postgres://u:p?w@db/x?sslmode=require").unwrap();
        assert_eq!(t.mode, SslMode::Require);
        assert_eq!(t.url, "postgres://u:p?w@db/x?sslmode=require");
        assert_eq!(t.config().unwrap().get_password(), Some(&b"p?w"[..]));
        let t = DbTls::parse("postgres://db/x?%73slmode=disable").unwrap();
        assert_eq!(t.mode, SslMode::Disable);
        assert_eq!(t.url, "postgres://db/x?sslmode=disable");
    }

    #[test]
    fn system_roots_mean_verify_full_as_in_libpq_16() {
        let t = DbTls::parse("postgres://db/x?sslrootcert=system").unwrap();
        assert_eq!(t.mode, SslMode::VerifyFull);
        let t = DbTls::parse("postgres://db/x?sslrootcert=system&sslmode=verify-full").unwrap();
        assert_eq!(t.mode, SslMode::VerifyFull);
        let e = DbTls::parse("postgres://db/x?sslrootcert=system&sslmode=require").unwrap_err();
        assert!(e.contains("verify-full"), "{e}");
    }

    #[test]
    fn prefer_without_a_host_name_stays_plain() {
        use tokio_postgres::config::SslMode as Pg;
        let t = DbTls::parse("postgres://u@/x?hostaddr=127.0.0.1").unwrap();
        assert_eq!(t.config().unwrap().get_ssl_mode(), Pg::Disable);
        let t = DbTls::parse("postgres://u@db/x?hostaddr=127.0.0.1").unwrap();
        assert_eq!(t.config().unwrap().get_ssl_mode(), Pg::Prefer);
        let t = DbTls::parse("postgres://u@/x?hostaddr=127.0.0.1&sslmode=require").unwrap();
        assert_eq!(t.config().unwrap().get_ssl_mode(), Pg::Require);
    }

    #[test]
    fn bad_values_name_the_parameter() {
        let e = DbTls::parse("postgres://db/x?sslmode=verify").unwrap_err();
        assert!(e.starts_with("sslmode:"), "{e}");
        let e = DbTls::parse("postgres://db/x?sslmode=verify-full").unwrap_err();
        assert!(e.contains("sslrootcert"), "{e}");
        let e = DbTls::parse("postgres://db/x?sslmode=allow").unwrap_err();
        assert!(e.contains("allow"), "{e}");
        let e = DbTls::parse("postgres://db/x?sslrootcert=").unwrap_err();
        assert!(e.starts_with("sslrootcert:"), "{e}");
        let t = DbTls::parse("postgres://db/x?sslmode=require&sslrootcert=/no/such.pem").unwrap();
        let e = t.connector().err().unwrap();
        assert!(e.contains("/no/such.pem"), "{e}");
    }
}
