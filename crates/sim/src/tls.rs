//! The simulator's TLS: a CA of its own and a server certificate for the names it listens on, kept in
//! the state directory so that clients that trusted the CA once keep trusting it across restarts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha1::Digest;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot generate certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot use state directory {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("stored certificate material in {path} is unreadable: delete it to regenerate")]
    Corrupt { path: String },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io { path: path.display().to_string(), source }
}

/// Writes a file that holds a private key so that only the owner can read it.
pub(crate) fn write_private(path: &Path, contents: &str) -> Result<(), TlsError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io_err(path))?;
    f.write_all(contents.as_bytes()).map_err(io_err(path))
}

/// Where the CA certificate was written, and the server configuration with a certificate it issued.
pub(crate) struct TlsMaterial {
    pub ca_path: PathBuf,
    pub server_config: Arc<rustls::ServerConfig>,
}

/// Loads the CA from `state_dir` or creates it, then issues a fresh server certificate for `names`
/// (DNS names and IP addresses).
pub(crate) fn prepare(state_dir: &Path, names: &[String]) -> Result<TlsMaterial, TlsError> {
    std::fs::create_dir_all(state_dir).map_err(io_err(state_dir))?;
    let ca_cert_path = state_dir.join("ca.pem");
    let ca_key_path = state_dir.join("ca-key.pem");
    let ca_key = if ca_cert_path.exists() && ca_key_path.exists() {
        // Only the key is needed here, but the certificate is read too, so that a CA file the clients
        // could not read fails the start rather than their connections.
        std::fs::read_to_string(&ca_cert_path).map_err(io_err(&ca_cert_path))?;
        let key_pem = std::fs::read_to_string(&ca_key_path).map_err(io_err(&ca_key_path))?;
        KeyPair::from_pem(&key_pem).map_err(|_| TlsError::Corrupt { path: ca_key_path.display().to_string() })?
    } else {
        let key = KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        let pem = cert.pem();
        write_private(&ca_key_path, &key.serialize_pem())?;
        std::fs::write(&ca_cert_path, &pem).map_err(io_err(&ca_cert_path))?;
        key
    };
    // The issuer is rebuilt from the same parameters and key as the stored CA certificate, so that the
    // server certificate chains to it without parsing it back.
    let issuer = Issuer::new(ca_params()?, &ca_key);
    let server_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.to_vec())?;
    params.distinguished_name.push(DnType::CommonName, names.first().map(String::as_str).unwrap_or("localhost"));
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2039, 1, 1);
    let server_cert = params.signed_by(&server_key, &issuer)?;
    let chain = vec![CertificateDer::from(server_cert.der().to_vec())];
    let key = PrivateKeyDer::from_pem_slice(server_key.serialize_pem().as_bytes())
        .map_err(|_| TlsError::Corrupt { path: "server key".into() })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsMaterial { ca_path: ca_cert_path, server_config: Arc::new(config) })
}

fn ca_params() -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, "tenantscope simulator CA");
    params.distinguished_name.push(DnType::OrganizationName, "tenantscope simulator");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2040, 1, 1);
    Ok(params)
}

/// The DER bytes of the first PEM block in `pem`.
pub(crate) fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body.trim()).ok().filter(|d| !d.is_empty())
}

pub(crate) fn sha1(data: &[u8]) -> Vec<u8> {
    sha1::Sha1::digest(data).to_vec()
}

/// Reads one DER TLV at the start of `input`: (tag, contents, rest).
fn der_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first & 0x80 == 0 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The modulus and public exponent of a PKCS#1 `RSAPublicKey`, without leading zero bytes.
pub(crate) fn rsa_public_components(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (tag, seq, _) = der_tlv(der)?;
    if tag != 0x30 {
        return None;
    }
    let (t1, n, rest) = der_tlv(seq)?;
    let (t2, e, _) = der_tlv(rest)?;
    if t1 != 0x02 || t2 != 0x02 {
        return None;
    }
    let strip = |v: &[u8]| v.iter().skip_while(|b| **b == 0).copied().collect::<Vec<u8>>();
    Some((strip(n), strip(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        // The CA file holds what each call loaded or created, so reading it after each call compares
        // the two CAs.
        let first = prepare(dir.path(), &names).unwrap();
        let first_ca = std::fs::read_to_string(&first.ca_path).unwrap();
        let second = prepare(dir.path(), &names).unwrap();
        assert_eq!(first_ca, std::fs::read_to_string(&second.ca_path).unwrap());
        assert!(first.ca_path.exists());
    }

    #[test]
    fn der_reader_rejects_truncated_input() {
        assert!(rsa_public_components(&[0x30, 0x05, 0x02, 0x01]).is_none());
        assert!(rsa_public_components(&[]).is_none());
        assert_eq!(
            rsa_public_components(&[0x30, 0x07, 0x02, 0x02, 0x00, 0xc1, 0x02, 0x01, 0x03]),
            Some((vec![0xc1], vec![0x03]))
        );
    }
}
