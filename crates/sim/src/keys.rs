//! Token signing keys (RSA 2048, RS256), published as a JWKS and rotated on demand.
//!
//! Keys live in the state directory so that tokens a client cached survive a simulator restart. On
//! rotation the new key signs from then on and the old one stays published, as Microsoft does, so that
//! tokens already issued keep validating until they expire.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use rcgen::{CertificateParams, DnType, KeyPair};
use serde_json::{Value, json};

use crate::tls::{TlsError, rsa_public_components, sha1, write_private};

pub struct SigningKey {
    pub kid: String,
    /// The private key, parsed once: parsing validates the key and sets up blinding, which together cost
    /// more than the signature itself, so doing it per token would halve the grant rate.
    key_pair: aws_lc_rs::signature::RsaKeyPair,
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
        let der = crate::tls::pem_to_der(key_pem).ok_or_else(corrupt)?;
        let key_pair = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&der)
            .or_else(|_| aws_lc_rs::signature::RsaKeyPair::from_der(&der))
            .map_err(|_| corrupt())?;
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
        Ok(SigningKey { kid, key_pair, decoding, jwk })
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
        let mut signature = vec![0u8; self.key_pair.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.key_pair.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &rng, message.as_bytes(), &mut signature).map_err(
            |_| {
                jsonwebtoken::errors::Error::from(jsonwebtoken::errors::ErrorKind::InvalidRsaKey(
                    "signing failed".into(),
                ))
            },
        )?;
        Ok(format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

pub struct Keys {
    dir: PathBuf,
    issuer_url: String,
    keys: RwLock<Vec<Arc<SigningKey>>>,
    /// When the active key started signing, on the simulated clock; set at its first use.
    activated: std::sync::Mutex<Option<chrono::DateTime<chrono::Utc>>>,
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
        let this = Keys {
            dir: dir.to_path_buf(),
            issuer_url: issuer_url.to_string(),
            keys: RwLock::new(keys),
            activated: std::sync::Mutex::new(None),
        };
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
    pub(crate) fn rotate(&self) -> Result<String, TlsError> {
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
        *self.activated.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(kid)
    }

    /// Whether the active key has signed for `rotate_minutes` (0 never rotates) at `now`. The first call
    /// after a rotation starts the active key's period.
    pub(crate) fn rotation_due(&self, now: chrono::DateTime<chrono::Utc>, rotate_minutes: u64) -> bool {
        if rotate_minutes == 0 {
            return false;
        }
        let mut activated = self.activated.lock().unwrap_or_else(|e| e.into_inner());
        let since = *activated.get_or_insert(now);
        now - since >= chrono::Duration::minutes(rotate_minutes.min(525_600) as i64)
    }

    pub fn active(&self) -> Option<Arc<SigningKey>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).last().cloned()
    }

    pub(crate) fn find(&self, kid: &str) -> Option<Arc<SigningKey>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).iter().find(|k| k.kid == kid).cloned()
    }

    pub fn jwks(&self) -> Value {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        json!({ "keys": keys.iter().rev().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_with_the_published_key_and_rotation_keeps_two() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::load(dir.path(), "https://127.0.0.1:1").unwrap();
        let first = keys.active().unwrap();
        let token = first.sign(&json!({"sub": "x"}), Some("AQAB-nonce")).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(first.kid.as_str()));
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        v.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Value>(&token, &first.decoding, &v).unwrap();
        assert_eq!(data.claims["sub"], "x");
        let second = keys.rotate().unwrap();
        keys.rotate().unwrap();
        assert!(keys.find(&first.kid).is_none(), "the oldest key is retired after two rotations");
        assert!(keys.find(&second).is_some());
        assert_eq!(keys.jwks()["keys"].as_array().unwrap().len(), 2);
        // Reloading from the directory finds the same two keys.
        let again = Keys::load(dir.path(), "https://127.0.0.1:1").unwrap();
        assert_eq!(again.active().unwrap().kid, keys.active().unwrap().kid);
    }
}
