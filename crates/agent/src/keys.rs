//! An agent's keys: Ed25519 for the short-lived tokens that authenticate its every request, and
//! X25519 for the secrets the server seals to it. Both are generated on the agent at enrollment;
//! only the public halves ever leave it.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use crypto_box::aead::OsRng;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The audience of agents' tokens: a token for the agent API is not usable anywhere else.
pub const AUDIENCE: &str = "tenantscope-agent-api";

/// How long an agent's token is good for. Each request carries a fresh one, so a token seen by a
/// proxy that inspects TLS is worth two minutes at most.
pub const TOKEN_SECONDS: i64 = 120;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the agent's keys could not be generated: {0}")]
    Generate(String),
    #[error("{0}")]
    File(String),
    #[error("the agent's token could not be signed: {0}")]
    Sign(String),
    #[error("the agent's token is not valid: {0}")]
    Token(String),
    #[error("a sealed secret could not be opened (was it sealed to another agent's key?)")]
    Unseal,
    #[error("a secret could not be sealed: {0}")]
    Seal(String),
}

/// The claims of an agent's token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// An agent's private keys.
pub struct AgentKeys {
    signing_pkcs8: Vec<u8>,
    signing_public: Vec<u8>,
    sealing: crypto_box::SecretKey,
}

impl std::fmt::Debug for AgentKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentKeys").field("signing_public", &B64.encode(&self.signing_public)).finish_non_exhaustive()
    }
}

/// The keys as the agent keeps them on disk (mode 0600).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    signing_pkcs8: String,
    sealing_secret: String,
}

impl AgentKeys {
    /// New keys from the operating system's random source.
    pub fn generate() -> Result<AgentKeys, KeyError> {
        use aws_lc_rs::signature::KeyPair as _;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| KeyError::Generate("Ed25519 key generation failed".into()))?;
        let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        Ok(AgentKeys {
            signing_pkcs8: pkcs8.as_ref().to_vec(),
            signing_public: pair.public_key().as_ref().to_vec(),
            sealing: crypto_box::SecretKey::generate(&mut OsRng),
        })
    }

    fn from_parts(signing_pkcs8: Vec<u8>, sealing: [u8; 32]) -> Result<AgentKeys, KeyError> {
        use aws_lc_rs::signature::KeyPair as _;
        let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(&signing_pkcs8)
            .map_err(|e| KeyError::File(format!("the signing key is not an Ed25519 PKCS#8 key: {e}")))?;
        Ok(AgentKeys {
            signing_public: pair.public_key().as_ref().to_vec(),
            signing_pkcs8,
            sealing: crypto_box::SecretKey::from(sealing),
        })
    }

    /// The Ed25519 public key, base64 (what the server records).
    pub fn signing_public(&self) -> String {
        B64.encode(&self.signing_public)
    }

    /// The X25519 public key, base64 (what the server seals secrets to).
    pub fn sealing_public(&self) -> String {
        B64.encode(self.sealing.public_key().as_bytes())
    }

    /// A fresh token for one request, valid from `now` for [`TOKEN_SECONDS`].
    pub fn token(&self, agent_id: &str, now: DateTime<Utc>) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(agent_id.to_string());
        let claims = AgentClaims {
            iss: agent_id.to_string(),
            sub: agent_id.to_string(),
            aud: AUDIENCE.to_string(),
            iat: now.timestamp(),
            exp: now.timestamp() + TOKEN_SECONDS,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let key = EncodingKey::from_ed_der(&self.signing_pkcs8);
        jsonwebtoken::encode(&header, &claims, &key).map_err(|e| KeyError::Sign(e.to_string()))
    }

    /// Opens a secret the server sealed to this agent.
    pub fn unseal(&self, sealed: &str) -> Result<Vec<u8>, KeyError> {
        let bytes = B64.decode(sealed.trim()).map_err(|_| KeyError::Unseal)?;
        self.sealing.unseal(&bytes).map_err(|_| KeyError::Unseal)
    }

    /// Writes the keys to `path`, readable by the owner only, replacing the file atomically.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let file = KeyFile {
            signing_pkcs8: B64.encode(&self.signing_pkcs8),
            sealing_secret: B64.encode(self.sealing.to_bytes()),
        };
        let text = serde_json::to_vec_pretty(&file).map_err(|e| KeyError::File(e.to_string()))?;
        write_private(path, &text)
    }

    /// Reads keys written by [`AgentKeys::save`].
    pub fn load(path: &Path) -> Result<AgentKeys, KeyError> {
        let text = std::fs::read(path)
            .map_err(|e| KeyError::File(format!("cannot read the agent's keys at {}: {e}", path.display())))?;
        let file: KeyFile = serde_json::from_slice(&text)
            .map_err(|e| KeyError::File(format!("the agent's key file {} is damaged: {e}", path.display())))?;
        let pkcs8 = B64
            .decode(file.signing_pkcs8)
            .map_err(|_| KeyError::File(format!("the signing key in {} is not base64", path.display())))?;
        let sealing: [u8; 32] =
            B64.decode(file.sealing_secret).ok().and_then(|b| b.try_into().ok()).ok_or_else(|| {
                KeyError::File(format!("the sealing key in {} is not 32 bytes of base64", path.display()))
            })?;
        AgentKeys::from_parts(pkcs8, sealing)
    }
}

/// Writes a file only its owner can read: created with mode 0600 under a temporary name (which
/// must not exist yet), then renamed over `path`, so that a crash never leaves half a file.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let fail = |e: std::io::Error| KeyError::File(format!("cannot write {}: {e}", path.display()));
    let mut file = options.open(&tmp).map_err(fail)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(e)
    })
}

/// The agent id a token claims to be from (its `kid`), before anything is verified: it says which
/// public key to verify it with.
pub fn token_agent(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token).ok().filter(|h| h.alg == Algorithm::EdDSA).and_then(|h| h.kid)
}

/// Verifies an agent's token against its recorded public key: the signature, the audience, that
/// it is the agent's own, and that it is current (with a minute of leeway for clocks).
pub fn verify(token: &str, agent_id: &str, signing_public: &str) -> Result<AgentClaims, KeyError> {
    let public =
        B64.decode(signing_public.trim()).map_err(|_| KeyError::Token("the recorded key is not base64".into()))?;
    let key = DecodingKey::from_ed_der(&public);
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "aud", "sub", "iat"]);
    validation.leeway = 60;
    let data =
        jsonwebtoken::decode::<AgentClaims>(token, &key, &validation).map_err(|e| KeyError::Token(e.to_string()))?;
    if data.claims.sub != agent_id || data.claims.iss != agent_id {
        return Err(KeyError::Token("the token names another agent".into()));
    }
    if data.claims.exp - data.claims.iat > TOKEN_SECONDS + 60 {
        return Err(KeyError::Token(format!("the token is valid for longer than {TOKEN_SECONDS} s")));
    }
    Ok(data.claims)
}

/// Seals `plaintext` to an agent's X25519 public key (base64): only that agent can open it.
pub fn seal(sealing_public: &str, plaintext: &[u8]) -> Result<String, KeyError> {
    let public: [u8; 32] = B64
        .decode(sealing_public.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| KeyError::Seal("the agent's recorded sealing key is not 32 bytes of base64".into()))?;
    let sealed =
        crypto_box::PublicKey::from(public).seal(&mut OsRng, plaintext).map_err(|e| KeyError::Seal(e.to_string()))?;
    Ok(B64.encode(sealed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_with_their_agents_key_and_audience() {
        let keys = AgentKeys::generate().expect("keys");
        let other = AgentKeys::generate().expect("keys");
        let token = keys.token("agent-1", Utc::now()).expect("token");
        assert_eq!(token_agent(&token).as_deref(), Some("agent-1"));
        assert!(verify(&token, "agent-1", &keys.signing_public()).is_ok());
        assert!(verify(&token, "agent-1", &other.signing_public()).is_err(), "another key");
        assert!(verify(&token, "agent-2", &keys.signing_public()).is_err(), "another agent");
        let old = keys.token("agent-1", Utc::now() - chrono::Duration::minutes(10)).expect("token");
        assert!(verify(&old, "agent-1", &keys.signing_public()).is_err(), "expired");
        // A token whose signature was tampered with.
        let mut forged = token.clone();
        forged.pop();
        forged.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(verify(&forged, "agent-1", &keys.signing_public()).is_err());
        assert!(token_agent("not a token").is_none());
    }

    #[test]
    fn sealed_secrets_open_only_for_their_agent() {
        let keys = AgentKeys::generate().expect("keys");
        let other = AgentKeys::generate().expect("keys");
        let sealed = seal(&keys.sealing_public(), b"refresh token").expect("seal");
        assert_eq!(keys.unseal(&sealed).expect("unseal"), b"refresh token");
        assert!(other.unseal(&sealed).is_err());
        assert!(keys.unseal("bm90IHNlYWxlZA==").is_err());
        assert!(seal("short", b"x").is_err());
    }

    #[test]
    fn keys_survive_a_round_trip_through_a_private_file() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("agent-keys.json");
        let keys = AgentKeys::generate().expect("keys");
        keys.save(&path).expect("save");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
        }
        let loaded = AgentKeys::load(&path).expect("load");
        assert_eq!(loaded.signing_public(), keys.signing_public());
        assert_eq!(loaded.sealing_public(), keys.sealing_public());
        std::fs::write(&path, "{}").expect("damage");
        assert!(AgentKeys::load(&path).is_err());
    }
}
