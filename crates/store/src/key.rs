//! The data-encryption key: where it comes from and how it is kept in memory.
//!
//! The key is 32 random bytes. It comes from `TENANTSCOPE_KEY` (base64 or
//! hex) or from `<data_dir>/key`, which is created on first use with mode
//! 0600. A key file that group or others can read is refused rather than
//! silently used, because anyone who can read it can decrypt every token in
//! the database.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use chacha20poly1305::aead::OsRng;
use chacha20poly1305::aead::rand_core::RngCore;
use secrecy::zeroize::Zeroize;

use crate::error::{Result, StoreError};

/// The environment variable that holds the key, base64 or hex.
pub const KEY_ENV: &str = "TENANTSCOPE_KEY";

/// The key file name inside the data directory.
pub const KEY_FILE_NAME: &str = "key";

/// The file name of the key a rotation is moving the secrets to, beside [`KEY_FILE_NAME`] until
/// the rotation's transaction has committed and the file is renamed over the old key.
pub const NEXT_KEY_FILE_NAME: &str = "key.next";

/// Length of the key in bytes.
pub const KEY_LEN: usize = 32;

/// A 32-byte XChaCha20-Poly1305 key.
///
/// `Debug` never shows the bytes, and the bytes are zeroed when the key is
/// dropped. The key lives on the heap so that moving a `Key` around does not
/// leave stray copies on the stack.
pub struct Key(Box<[u8; KEY_LEN]>);

impl Key {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Key {
        let mut bytes = bytes;
        let key = Key(Box::new(bytes));
        bytes.zeroize();
        key
    }

    /// Generates a fresh random key from the operating system's generator.
    pub fn generate() -> Key {
        let mut key = Key(Box::new([0u8; KEY_LEN]));
        OsRng.fill_bytes(&mut key.0[..]);
        key
    }

    /// Parses a key written as 64 hex digits or as base64 (standard or
    /// URL-safe alphabet, padded or not). `source_name` only labels errors;
    /// the text itself never appears in one.
    pub fn parse(text: &str, source_name: &str) -> Result<Key> {
        let text = text.trim();
        let invalid = |reason: String| StoreError::InvalidKey { source_name: source_name.to_owned(), reason };
        if text.is_empty() {
            return Err(invalid("the key is empty".into()));
        }
        let mut decoded = if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|_| invalid("not valid hex".into()))?
        } else {
            let engines = [
                &base64::engine::general_purpose::STANDARD,
                &base64::engine::general_purpose::STANDARD_NO_PAD,
                &base64::engine::general_purpose::URL_SAFE,
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ];
            engines
                .iter()
                .find_map(|engine| engine.decode(text).ok())
                .ok_or_else(|| invalid("expected 32 bytes as 64 hex digits or base64".into()))?
        };
        if decoded.len() != KEY_LEN {
            let len = decoded.len();
            decoded.zeroize();
            return Err(invalid(format!("expected 32 bytes, got {len} (generate one with `openssl rand -base64 32`)")));
        }
        let mut key = Key(Box::new([0u8; KEY_LEN]));
        key.0.copy_from_slice(&decoded);
        decoded.zeroize();
        Ok(key)
    }

    /// Loads the key from `TENANTSCOPE_KEY` if it is set and not empty,
    /// otherwise from `<data_dir>/key`, creating that file (mode 0600) with a
    /// fresh random key if it does not exist.
    pub fn from_env_or_file(data_dir: &Path) -> Result<Key> {
        let env = std::env::var(KEY_ENV).ok();
        Key::from_env_value_or_file(env.as_deref(), data_dir)
    }

    /// Same as [`Key::from_env_or_file`] with the environment value passed in,
    /// so that callers and tests need not touch the process environment.
    pub fn from_env_value_or_file(env_value: Option<&str>, data_dir: &Path) -> Result<Key> {
        match env_value {
            Some(value) if !value.trim().is_empty() => Key::parse(value, KEY_ENV),
            _ => Key::load_or_create_file(&data_dir.join(KEY_FILE_NAME)),
        }
    }

    /// Reads a key file, or creates it with a new key if it is absent.
    ///
    /// Creation is atomic: the key is written and synced to a temporary file
    /// which is then hard-linked to the final name. Linking fails if another
    /// process created the key first, and then that key is used, so two
    /// processes starting together can never end up with different keys, and
    /// a crash never leaves a half-written key file behind.
    pub fn load_or_create_file(path: &Path) -> Result<Key> {
        match Key::read_file(path) {
            Ok(key) => return Ok(key),
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        create_private_dir(&dir)?;
        let key = Key::generate();
        let tmp = dir.join(format!(".{KEY_FILE_NAME}.{}.{}.tmp", std::process::id(), uuid::Uuid::new_v4().simple()));
        let written = write_new_private_file(&tmp, &key);
        let linked = written.and_then(|()| match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(err) => Err(StoreError::io(path, err)),
        });
        // The temporary name is removed whatever happened; failing to remove
        // it leaves only a stray file, which is not worth failing for.
        let _ = std::fs::remove_file(&tmp);
        if linked? {
            sync_dir(&dir);
            Ok(key)
        } else {
            Key::read_file(path)
        }
    }

    /// Reads an existing key file, refusing one that group or others can
    /// read or write.
    pub fn read_file(path: &Path) -> Result<Key> {
        let metadata = std::fs::metadata(path).map_err(|err| StoreError::io(path, err))?;
        if !metadata.is_file() {
            return Err(StoreError::KeyFile { path: path.to_path_buf(), reason: "is not a regular file".into() });
        }
        check_private_mode(path, &metadata)?;
        let mut text = std::fs::read_to_string(path).map_err(|err| StoreError::io(path, err))?;
        let key = Key::parse(&text, &path.display().to_string()).map_err(|err| match err {
            StoreError::InvalidKey { reason, .. } => StoreError::KeyFile { path: path.to_path_buf(), reason },
            other => other,
        });
        text.zeroize();
        key
    }

    /// The key as text (standard base64), for `TENANTSCOPE_KEY` or a backup.
    /// The returned string is a secret: callers must not log it.
    pub fn to_base64(&self) -> secrecy::SecretString {
        base64::engine::general_purpose::STANDARD.encode(&self.0[..]).into()
    }

    /// The raw key bytes, for the cipher.
    /// A fingerprint of the key: what the database records to recognise the key its secrets were
    /// encrypted with. A hash of 256 random bits under a fixed label reveals nothing of them.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(b"tenantscope key fingerprint v1\0");
        h.update(&self.0[..]);
        hex::encode(&h.finalize()[..8])
    }

    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl Clone for Key {
    fn clone(&self) -> Key {
        Key(Box::new(*self.0))
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key([redacted])")
    }
}

/// Creates a directory (and its parents) readable only by the owner when it
/// is new. An existing directory is left as it is: it may be shared on
/// purpose, and the key file's own mode is what protects the key.
fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|err| StoreError::io(dir, err))
}

/// Writes the key as base64 text to a new file created with mode 0600, and
/// syncs it so that the later hard link never points at an empty file.
fn write_new_private_file(path: &Path, key: &Key) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|err| StoreError::io(path, err))?;
    let mut text = base64::engine::general_purpose::STANDARD.encode(&key.0[..]);
    text.push('\n');
    let result =
        file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(|err| StoreError::io(path, err));
    text.zeroize();
    result
}

impl Key {
    /// Writes `key` as the data directory's next key (`key.next`, mode 0600, synced), replacing
    /// one left by a rotation that never committed.
    pub fn write_next(data_dir: &Path, key: &Key) -> Result<PathBuf> {
        let path = data_dir.join(NEXT_KEY_FILE_NAME);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(StoreError::io(&path, err)),
        }
        write_new_private_file(&path, key)?;
        sync_dir(data_dir);
        Ok(path)
    }

    /// The next key a rotation left in the data directory, if any.
    pub fn read_next(data_dir: &Path) -> Result<Option<Key>> {
        let path = data_dir.join(NEXT_KEY_FILE_NAME);
        match Key::read_file(&path) {
            Ok(key) => Ok(Some(key)),
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Makes the next key the data directory's key: one atomic rename over the old key file.
    pub fn install_next(data_dir: &Path) -> Result<()> {
        let next = data_dir.join(NEXT_KEY_FILE_NAME);
        let key = data_dir.join(KEY_FILE_NAME);
        std::fs::rename(&next, &key).map_err(|err| StoreError::io(&key, err))?;
        sync_dir(data_dir);
        Ok(())
    }

    /// Removes the next key of a rotation that never committed.
    pub fn discard_next(data_dir: &Path) -> Result<()> {
        let path = data_dir.join(NEXT_KEY_FILE_NAME);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(StoreError::io(&path, err)),
        }
    }
}

/// Makes a new directory entry durable. Failure is ignored: some file
/// systems do not support syncing a directory, and the key was synced.
fn sync_dir(dir: &Path) {
    if let Ok(handle) = std::fs::File::open(dir) {
        let _ = handle.sync_all();
    }
}

#[cfg(unix)]
fn check_private_mode(path: &Path, metadata: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(StoreError::KeyFile {
            path: path.to_path_buf(),
            reason: format!(
                "is accessible by group or others (mode {mode:04o}); it protects every stored token, so restrict it with `chmod 600 {}`",
                path.display()
            ),
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private_mode(_path: &Path, _metadata: &std::fs::Metadata) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn debug_redacts() {
        let key = Key::from_bytes([7u8; 32]);
        let shown = format!("{key:?}");
        assert_eq!(shown, "Key([redacted])");
    }

    #[test]
    fn parses_hex_and_base64() {
        let bytes = [0xabu8; 32];
        let hex_text = hex::encode(bytes);
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        for text in [hex_text.as_str(), b64.as_str(), b64url.as_str()] {
            let key = Key::parse(&format!(" {text}\n"), "test").expect("valid key");
            assert_eq!(key.bytes(), &bytes);
        }
    }

    #[test]
    fn rejects_bad_keys_without_echoing_them() {
        for text in ["", "c2hvcnQ=", "not a key at all!", &"ab".repeat(31)] {
            let err = Key::parse(text, KEY_ENV).expect_err("must fail");
            let message = err.to_string();
            assert!(message.contains(KEY_ENV), "{message}");
            if !text.is_empty() {
                assert!(!message.contains(text), "{message}");
            }
        }
    }

    #[test]
    fn env_value_wins_over_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bytes = [3u8; 32];
        let key = Key::from_env_value_or_file(Some(&hex::encode(bytes)), dir.path()).expect("key");
        assert_eq!(key.bytes(), &bytes);
        assert!(!dir.path().join(KEY_FILE_NAME).exists());
    }

    #[cfg(unix)]
    #[test]
    fn creates_key_file_with_private_mode_and_reuses_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("nested/data");
        let first = Key::from_env_value_or_file(Some("  "), &data_dir).expect("created");
        let path = data_dir.join(KEY_FILE_NAME);
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let second = Key::from_env_value_or_file(None, &data_dir).expect("read back");
        assert_eq!(first.bytes(), second.bytes());
        let leftovers: Vec<_> = std::fs::read_dir(&data_dir)
            .expect("list")
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.file_name() != KEY_FILE_NAME)
            .collect();
        assert!(leftovers.is_empty(), "temporary files left behind");
        assert_eq!(first.to_base64().expose_secret().trim(), std::fs::read_to_string(&path).expect("read").trim());
    }

    #[cfg(unix)]
    #[test]
    fn refuses_key_file_readable_by_others() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let _ = Key::from_env_value_or_file(None, dir.path()).expect("created");
        let path = dir.path().join(KEY_FILE_NAME);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = Key::from_env_value_or_file(None, dir.path()).expect_err("refused");
        let message = err.to_string();
        assert!(matches!(err, StoreError::KeyFile { .. }), "{message}");
        assert!(message.contains("chmod 600"), "{message}");
    }

    #[cfg(unix)]
    #[test]
    fn refuses_garbage_key_file_without_echoing_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(KEY_FILE_NAME);
        std::fs::write(&path, "sekrit-but-wrong").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let err = Key::read_file(&path).expect_err("refused");
        assert!(matches!(err, StoreError::KeyFile { .. }));
        assert!(!err.to_string().contains("sekrit"));
    }
}
