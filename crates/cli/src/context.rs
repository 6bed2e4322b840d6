//! What every command needs: the data directory, the store, the cloud, the app, the Microsoft client.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail};
use inspect::StoreTokens;
use microsoft::graph::{GraphClient, GraphOptions};
use microsoft::har::HarRecorder;
use microsoft::http::{Transport, TransportOptions};
use microsoft::{Authenticator, Cloud};
use serde_json::json;
use store::Store;

use crate::commands::Global;

pub struct Ctx {
    pub data_dir: PathBuf,
    pub store: Arc<dyn Store>,
    pub cloud: Cloud,
    pub cloud_spec: String,
}

/// Creates a directory readable only by its owner (it holds the key and the database).
pub fn private_dir(path: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

/// The database of a data directory: `--database-url`, else SQLite in the directory.
pub fn database_url(global: &Global, data_dir: &Path) -> String {
    match &global.database_url {
        Some(u) => u.clone(),
        None => format!("sqlite://{}?mode=rwc", data_dir.join("tenantscope.db").display()),
    }
}

/// Opens the store, first settling a key rotation that a killed `key rotate` left behind: if its
/// transaction committed, the database needs the next key, which is installed as the key; if it
/// did not, the next key is removed. Either way the key file and the database agree after.
async fn open_store(url: &str, key: store::Key, data_dir: &Path) -> Result<Arc<dyn Store>, store::StoreError> {
    let from_env = std::env::var(store::KEY_ENV).is_ok_and(|v| !v.trim().is_empty());
    let next = if from_env { None } else { store::Key::read_next(data_dir)? };
    let Some(next) = next else { return store::open(url, key).await };
    match store::open(url, key).await {
        Ok(store) => {
            store::Key::discard_next(data_dir)?;
            eprintln!("note: an interrupted key rotation had not committed; the key is unchanged");
            Ok(store)
        }
        Err(store::StoreError::WrongKey { expected, .. }) if expected == next.fingerprint() => {
            store::Key::install_next(data_dir)?;
            eprintln!("note: finished an interrupted key rotation; the new key is now the key file");
            store::open(url, next).await
        }
        Err(e) => Err(e),
    }
}

impl Ctx {
    pub async fn open(global: &Global) -> anyhow::Result<Ctx> {
        let data_dir = global.data_dir.clone().unwrap_or_else(crate::commands::default_data_dir);
        private_dir(&data_dir)?;
        let key = store::Key::from_env_or_file(&data_dir).context("cannot load the encryption key")?;
        let url = database_url(global, &data_dir);
        let store = match open_store(&url, key, &data_dir).await {
            Ok(store) => store,
            // It already names the file and says why.
            Err(e @ store::StoreError::Open { .. }) => return Err(e.into()),
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("cannot open the database {}", redact_url(&url))));
            }
        };
        let saved = store.setting_get("cloud").await?.and_then(|v| v.as_str().map(str::to_string));
        let cloud_spec = global.cloud.clone().or(saved).unwrap_or_else(|| "global".to_string());
        let mut cloud = Cloud::resolve(&cloud_spec).map_err(|e| anyhow!("{e}"))?;
        if let Some(ca) = &global.ca_file {
            cloud = cloud.with_ca_file(ca).map_err(|e| anyhow!("{e}"))?;
        }
        Ok(Ctx { data_dir, store, cloud, cloud_spec })
    }

    /// The app that signs users in: the flag, else the one used at the last sign-in.
    pub async fn client_id(&self, flag: Option<&str>) -> anyhow::Result<String> {
        if let Some(id) = flag {
            return Ok(id.to_string());
        }
        match self.store.setting_get("client_id").await?.and_then(|v| v.as_str().map(str::to_string)) {
            Some(id) => Ok(id),
            None => bail!(
                "no app is configured: pass --client-id with the application (client) id of your tenantscope app registration, or set TENANTSCOPE_CLIENT_ID"
            ),
        }
    }

    pub async fn remember(&self, client_id: &str) -> anyhow::Result<()> {
        self.store.setting_put("client_id", &json!(client_id)).await?;
        // A cloud file is remembered by its absolute path, so that later commands find it from any
        // directory.
        let spec = match std::fs::canonicalize(&self.cloud_spec) {
            Ok(path) if Cloud::resolve(&self.cloud_spec).is_ok() && path.is_file() => path.display().to_string(),
            _ => self.cloud_spec.clone(),
        };
        self.store.setting_put("cloud", &json!(spec)).await?;
        Ok(())
    }

    pub fn auth(&self, client_id: &str, har: Option<Arc<HarRecorder>>) -> anyhow::Result<Arc<Authenticator>> {
        let transport = Transport::new(&self.cloud, TransportOptions::default(), har).map_err(|e| anyhow!("{e}"))?;
        Ok(Arc::new(Authenticator::new(
            self.cloud.clone(),
            transport,
            Arc::new(StoreTokens { store: self.store.clone() }),
            client_id,
        )))
    }

    pub fn graph(&self, auth: Arc<Authenticator>) -> GraphClient {
        GraphClient::new(auth, GraphOptions::default())
    }

    /// The tenant a `--tenant` value names, and how it is reached ([`inspect::access`]).
    pub async fn resolve(&self, auth: &Authenticator, query: &str) -> anyhow::Result<inspect::access::Resolved> {
        Ok(inspect::access::resolve(self.store.as_ref(), auth, query).await?)
    }

    /// Where a HAR trace goes: the given file, or a timestamped file in the data directory.
    pub fn har_path(&self, debug: &Option<Option<PathBuf>>, command: &str) -> anyhow::Result<Option<PathBuf>> {
        Ok(match debug {
            None => None,
            Some(Some(p)) => Some(p.clone()),
            Some(None) => {
                let dir = self.data_dir.join("debug");
                private_dir(&dir)?;
                Some(dir.join(format!("{command}-{}.har", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"))))
            }
        })
    }
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("REDACTED"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
