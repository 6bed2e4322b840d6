//! Token signing keys (RSA 2048, RS256), published as a JWKS and rotated on demand.
//!
//! Keys live in the state directory so that tokens a client cached survive a simulator restart. On
//! rotation the new key signs from then on and the old one stays published, as Microsoft does, so that
//! tokens already issued keep validating until they expire.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use rcgen::{CertificateParams, DnType, KeyPair};
use serde_json::{Value, json};

use crate::tls::{TlsError, rsa_public_components, sha1, write_private};

pub struct SigningKey {
    pub kid: String,
    encoding: EncodingKey,
    pub decoding: DecodingKey,
    jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl SigningKey {
    fn from_pem(key_pem: &str, issuer_url: &str) -> Result<SigningKey, TlsError> {
        let corrupt = || TlsError::Corrupt { path: "signing key".into() };
        let key = KeyPair::from_pem(key_pem).map_err(|_| corrupt())?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, "accounts.simulator.tenantscope");
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2039, 1, 1);
        let cert = params.self_signed(&key)?;
        let der = cert.der().to_vec();
        let kid = URL_SAFE_NO_PAD.encode(sha1(&der));
        let (n, e) = rsa_public_components(key.public_key_raw()).ok_or_else(corrupt)?;
        let encoding = EncodingKey::from_rsa_pem(key_pem.as_bytes()).map_err(|_| corrupt())?;
        let decoding = DecodingKey::from_rsa_raw_components(&n, &e);
        let jwk = json!({
            "kty": "RSA",
            "use": "sig",
            "kid": kid,
            "x5t": kid,
            "n": URL_SAFE_NO_PAD.encode(&n),
            "e": URL_SAFE_NO_PAD.encode(&e),
            "x5c": [base64::engine::general_purpose::STANDARD.encode(&der)],
            "cloud_instance_name": "microsoftonline.com",
            "issuer": format!("{issuer_url}/{{tenantid}}/v2.0"),
        });
        Ok(SigningKey { kid, encoding, decoding, jwk })
    }

    /// Signs a JWT whose header carries the fields Microsoft puts in Graph tokens (`x5t`, `kid`, and
    /// optionally the `nonce` that makes Graph tokens unverifiable by third parties).
    pub fn sign(&self, claims: &Value, nonce: Option<&str>) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = json!({ "typ": "JWT", "alg": "RS256", "x5t": self.kid, "kid": self.kid });
        if let Some(n) = nonce {
            header["nonce"] = Value::String(n.to_string());
        }
        let h = URL_SAFE_NO_PAD.encode(header.to_string());
        let p = URL_SAFE_NO_PAD.encode(claims.to_string());
        let message = format!("{h}.{p}");
        let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding, Algorithm::RS256)?;
        Ok(format!("{message}.{sig}"))
    }
}

pub struct Keys {
    dir: PathBuf,
    issuer_url: String,
    keys: RwLock<Vec<Arc<SigningKey>>>,
}

impl Keys {
    /// Loads the keys from `dir`, creating the first one if there is none.
    pub fn load(dir: &Path, issuer_url: &str) -> Result<Keys, TlsError> {
        std::fs::create_dir_all(dir).map_err(|source| TlsError::Io { path: dir.display().to_string(), source })?;
        let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
            .map_err(|source| TlsError::Io { path: dir.display().to_string(), source })?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let n = name.strip_prefix("signing-")?.strip_suffix(".pem")?.parse::<u32>().ok()?;
                Some((n, e.path()))
            })
            .collect();
        found.sort();
        let mut keys = Vec::new();
        for (_, path) in found.iter().rev().take(2).rev() {
            let pem = std::fs::read_to_string(path)
                .map_err(|source| TlsError::Io { path: path.display().to_string(), source })?;
            keys.push(Arc::new(SigningKey::from_pem(&pem, issuer_url)?));
        }
        let this = Keys { dir: dir.to_path_buf(), issuer_url: issuer_url.to_string(), keys: RwLock::new(keys) };
        if found.is_empty() {
            this.rotate()?;
        }
        Ok(this)
    }

    fn next_number(&self) -> u32 {
        std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                name.strip_prefix("signing-")?.strip_suffix(".pem")?.parse::<u32>().ok()
            })
            .max()
            .map_or(1, |n| n + 1)
    }

    /// Creates a new active key; the previous one stays published for tokens already issued.
    pub fn rotate(&self) -> Result<String, TlsError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)?;
        let pem = key.serialize_pem();
        let path = self.dir.join(format!("signing-{}.pem", self.next_number()));
        write_private(&path, &pem)?;
        let signing = Arc::new(SigningKey::from_pem(&pem, &self.issuer_url)?);
        let kid = signing.kid.clone();
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        keys.push(signing);
        if keys.len() > 2 {
            keys.remove(0);
        }
        Ok(kid)
    }

    pub fn active(&self) -> Option<Arc<SigningKey>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).last().cloned()
    }

    pub fn find(&self, kid: &str) -> Option<Arc<SigningKey>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).iter().find(|k| k.kid == kid).cloned()
    }

    pub fn jwks(&self) -> Value {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        json!({ "keys": keys.iter().rev().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
    }
}
