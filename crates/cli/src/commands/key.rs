//! `tenantscope key`: the key that encrypts stored secrets.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Subcommand;

use super::Global;

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// After the key was lost: remove the stored sign-ins and app credentials that only it could
    /// decrypt, and go on with the current key. Tenants, dataprints and history are kept.
    Reset {
        /// Confirm: the removed sign-ins and credentials must be made again.
        #[arg(long)]
        yes: bool,
    },
    /// Re-encrypt every stored secret under a new key, in one transaction, and make it the key
    /// file. A rotation killed at any point leaves either the old or the new key working.
    Rotate,
}

pub async fn run(cmd: KeyCommand, g: &Global) -> anyhow::Result<ExitCode> {
    match cmd {
        KeyCommand::Reset { yes } => {
            if !yes {
                bail!(
                    "this removes every stored sign-in and app credential that the current key cannot decrypt; run it again with --yes"
                );
            }
            let data_dir = g.data_dir.clone().unwrap_or_else(super::default_data_dir);
            crate::context::private_dir(&data_dir)?;
            let key = store::Key::from_env_or_file(&data_dir).context("cannot load the encryption key")?;
            let url = crate::context::database_url(g, &data_dir);
            let (store, removed) = store::open_discarding_secrets(&url, key)
                .await
                .with_context(|| format!("cannot open the database {}", crate::context::redact_url(&url)))?;
            store.close().await;
            if removed == 0 {
                eprintln!("The stored secrets open with the current key: nothing was removed.");
            } else {
                eprintln!(
                    "Removed {removed} stored secret(s) that only the lost key could decrypt. Sign in again (`tenantscope login`) and add app credentials again (`tenantscope tenants add-app`)."
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        KeyCommand::Rotate => rotate(g).await,
    }
}

/// The key's rotation: the new key is written beside the old one and synced, every secret is
/// re-encrypted in one transaction, and only then is the new key renamed over the old one. A
/// rotation killed before its commit leaves the old key working; after it, the next command
/// finds the new key beside the old and installs it (`Ctx::open`).
async fn rotate(g: &Global) -> anyhow::Result<ExitCode> {
    if std::env::var(store::KEY_ENV).is_ok_and(|v| !v.trim().is_empty()) {
        bail!(
            "the key comes from {env}: a rotation writes the new key to the key file. Put the current key in `key` in the data directory (mode 0600), unset {env}, rotate, then set {env} to the new file's content if you keep the key in the environment",
            env = store::KEY_ENV
        );
    }
    let data_dir = g.data_dir.clone().unwrap_or_else(super::default_data_dir);
    // Opening the context settles an earlier interrupted rotation and checks the current key.
    let ctx = crate::context::Ctx::open(g).await?;
    ctx.store.close().await;
    drop(ctx);
    let current = store::Key::read_file(&data_dir.join(store::KEY_FILE_NAME)).context("cannot read the key file")?;
    let new = store::Key::generate();
    store::Key::write_next(&data_dir, &new).context("cannot write the new key")?;
    let url = crate::context::database_url(g, &data_dir);
    let old_fingerprint = current.fingerprint();
    let moved = match store::rotate_key(&url, current, &new).await {
        Ok(moved) => moved,
        Err(e) => {
            // Nothing was committed: the old key stays.
            let _ = store::Key::discard_next(&data_dir);
            return Err(anyhow::Error::new(e).context("the rotation was not made; the key is unchanged"));
        }
    };
    store::Key::install_next(&data_dir).context(
        "the secrets are under the new key, but it could not replace the key file: the next command installs it",
    )?;
    eprintln!(
        "Rotated the key: {moved} secret(s) re-encrypted; key {old_fingerprint} replaced by {}. Backups of the database taken before now need the old key.",
        new.fingerprint()
    );
    Ok(ExitCode::SUCCESS)
}
