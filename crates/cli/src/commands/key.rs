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
            let url = match &g.database_url {
                Some(u) => u.clone(),
                None => format!("sqlite://{}?mode=rwc", data_dir.join("tenantscope.db").display()),
            };
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
    }
}
