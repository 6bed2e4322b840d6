//! Encryption of secrets at rest with XChaCha20-Poly1305.
//!
//! A sealed secret is `version (1 byte) || nonce (24 bytes) || ciphertext and
//! tag`. The nonce is random per record: XChaCha's 192-bit nonce makes random
//! nonces safe for any number of records under one key. The associated data
//! is the record's identity (its table and key, plus the columns that decide
//! where the secret is used), so a ciphertext copied into another row, or a
//! row whose tenant was edited, fails authentication instead of handing one
//! tenant's token to another.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::zeroize::Zeroize;
use secrecy::{ExposeSecret, SecretString};

use crate::error::{Result, StoreError};
use crate::key::Key;

/// The format version written in front of every sealed secret, so that a
/// later change of algorithm can still read old rows.
const VERSION: u8 = 1;

/// Length of the XChaCha20 nonce.
const NONCE_LEN: usize = 24;

/// Length of the Poly1305 tag.
const TAG_LEN: usize = 16;

/// The identity of a sealed record, used as associated data.
///
/// Parts are length-prefixed so that no two different identities encode to
/// the same bytes (`("ab", "c")` differs from `("a", "bc")`).
pub(crate) struct RecordId {
    aad: Vec<u8>,
    label: String,
}

impl RecordId {
    /// Builds an identity from a table name and the identifying columns.
    /// `label` names the record in error messages and must not be secret.
    pub(crate) fn new(table: &str, parts: &[&str], label: String) -> RecordId {
        let mut aad = Vec::with_capacity(64);
        aad.extend_from_slice(b"tenantscope.store/v1");
        for part in std::iter::once(&table).chain(parts.iter()) {
            aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        RecordId { aad, label }
    }

    /// The human name of the record, for errors.
    #[cfg(test)]
    pub(crate) fn label(&self) -> &str {
        &self.label
    }
}

/// Encrypts a secret for one record.
pub(crate) fn seal(key: &Key, record: &RecordId, secret: &SecretString) -> Result<Vec<u8>> {
    let cipher = XChaCha20Poly1305::new(key.bytes().into());
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let payload = Payload { msg: secret.expose_secret().as_bytes(), aad: &record.aad };
    let ciphertext =
        cipher.encrypt(&nonce, payload).map_err(|_| StoreError::Crypto { record: record.label.clone() })?;
    let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
    sealed.push(VERSION);
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

/// Decrypts a secret sealed for this record. Any failure (wrong key, altered
/// bytes, a ciphertext from another row, a truncated value) is the same
/// [`StoreError::Crypto`] error naming the record.
pub(crate) fn open(key: &Key, record: &RecordId, sealed: &[u8]) -> Result<SecretString> {
    let fail = || StoreError::Crypto { record: record.label.clone() };
    if sealed.len() < 1 + NONCE_LEN + TAG_LEN || sealed[0] != VERSION {
        return Err(fail());
    }
    let (nonce, ciphertext) = sealed[1..].split_at(NONCE_LEN);
    let cipher = XChaCha20Poly1305::new(key.bytes().into());
    let payload = Payload { msg: ciphertext, aad: &record.aad };
    let plaintext = cipher.decrypt(XNonce::from_slice(nonce), payload).map_err(|_| fail())?;
    match String::from_utf8(plaintext) {
        Ok(text) => Ok(SecretString::from(text)),
        Err(err) => {
            // Authentication succeeded, so this is our own bytes, but not
            // text; wipe them before reporting.
            let mut bytes = err.into_bytes();
            bytes.zeroize();
            Err(StoreError::corrupt(format!("{}: decrypted secret is not UTF-8", record.label)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(key: &str) -> RecordId {
        RecordId::new("token_cache", &[key, "tenant"], format!("entry {key:?}"))
    }

    #[test]
    fn round_trip() {
        let key = Key::generate();
        let secret = SecretString::from("refresh-token-value");
        let sealed = seal(&key, &id("a"), &secret).expect("seal");
        assert!(!sealed.windows(5).any(|w| w == b"fresh"));
        let opened = open(&key, &id("a"), &sealed).expect("open");
        assert_eq!(opened.expose_secret(), "refresh-token-value");
    }

    #[test]
    fn nonces_differ_per_record() {
        let key = Key::generate();
        let secret = SecretString::from("same");
        let a = seal(&key, &id("a"), &secret).expect("seal");
        let b = seal(&key, &id("a"), &secret).expect("seal");
        assert_ne!(a, b);
    }

    #[test]
    fn wrong_key_wrong_record_and_tampering_fail_cleanly() {
        let key = Key::generate();
        let sealed = seal(&key, &id("a"), &SecretString::from("s")).expect("seal");
        let other_key = Key::generate();
        for (k, record, bytes) in [
            (&other_key, id("a"), sealed.clone()),
            (&key, id("b"), sealed.clone()),
            (&key, id("a"), {
                let mut b = sealed.clone();
                let last = b.len() - 1;
                b[last] ^= 1;
                b
            }),
            (&key, id("a"), sealed[..10].to_vec()),
            (&key, id("a"), Vec::new()),
        ] {
            let err = open(k, &record, &bytes).expect_err("must fail");
            assert!(matches!(err, StoreError::Crypto { .. }), "{err}");
            assert!(err.to_string().contains(record.label()));
        }
    }

    #[test]
    fn identity_parts_are_unambiguous() {
        let a = RecordId::new("t", &["ab", "c"], String::new());
        let b = RecordId::new("t", &["a", "bc"], String::new());
        assert_ne!(a.aad, b.aad);
    }
}
