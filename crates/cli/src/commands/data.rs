//! The data tenantscope keeps: `forget` (everything about one customer), `prune` (history by
//! age or by count) and `db` (backup, restore, check).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use store::TenantId;

use super::Global;
use crate::context::Ctx;

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// The customer (id, domain or name). A tenant id that tenantscope no longer lists is
    /// accepted, to remove what is left of it.
    #[arg(long)]
    pub tenant: String,
    /// Confirm: what is removed cannot be recovered (but from a backup).
    #[arg(long)]
    pub yes: bool,
    /// Print what was removed as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove history older than this: a number of days (`90d`), weeks (`12w`) or hours (`48h`).
    /// Each tenant's latest result and last good dataprint always stay.
    #[arg(long, value_parser = parse_age)]
    pub older_than: Option<chrono::Duration>,
    /// Keep only the newest N dataprints of each tenant (at least 1).
    #[arg(long)]
    pub keep: Option<usize>,
    /// Print what was removed as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Write a consistent copy of the SQLite database, taken while it is in use, to FILE (mode
    /// 0600). For PostgreSQL it says how to use pg_dump.
    Backup {
        /// The backup file; it must not exist.
        file: PathBuf,
    },
    /// Replace the database with a backup, after checking that it opens with the current key
    /// and passes its integrity check. The database it replaces is kept beside it. Stop
    /// `tenantscope serve` and other commands on this data directory first.
    Restore {
        /// A file written by `db backup`.
        file: PathBuf,
        /// Confirm the replacement.
        #[arg(long)]
        yes: bool,
    },
    /// Run the database's consistency checks.
    Check,
}

/// `90d`, `12w`, `48h`, or a bare number of days.
fn parse_age(text: &str) -> Result<chrono::Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&text[..i], &text[i..]),
        None => (text, "d"),
    };
    let n: i64 =
        number.parse().map_err(|_| format!("expected a number of days, weeks or hours such as 90d, not {text:?}"))?;
    if n <= 0 {
        return Err("the age must be more than zero".into());
    }
    let hours = match unit {
        "h" => n,
        "d" => n.saturating_mul(24),
        "w" => n.saturating_mul(24 * 7),
        _ => return Err(format!("unknown unit {unit:?}: use h, d or w (for example 90d)")),
    };
    chrono::Duration::try_hours(hours).ok_or_else(|| "the age is too large".to_string())
}

pub async fn forget(args: ForgetArgs, g: &Global) -> anyhow::Result<ExitCode> {
    if !args.yes {
        bail!(
            "this deletes everything tenantscope holds about the tenant (dataprints, history, alerts, tokens, credentials); run it again with --yes"
        );
    }
    let ctx = Ctx::open(g).await?;
    let record = inspect::access::find_record(ctx.store.as_ref(), &args.tenant).await?;
    let (id, name) = match &record {
        Some(r) => (r.id.clone(), r.display_name.clone()),
        None if uuid::Uuid::parse_str(args.tenant.trim()).is_ok() => {
            (TenantId::new(args.tenant.trim()), args.tenant.trim().to_string())
        }
        None => return Err(inspect::access::AccessError::NotFound(args.tenant.clone()).into()),
    };
    // Still reachable: the next inspection would read it again.
    let reachable = record.as_ref().is_some_and(|r| r.gone_since.is_none() && r.role == store::TenantRole::Customer);
    let report = ctx.store.forget_tenant(&id).await?;
    ctx.store.close().await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"tenant_id": id, "removed": report}))?);
    } else {
        let name = crate::terminal::safe(&name);
        println!("Forgot {name} ({id}):");
        let lines = [
            ("tenant record", u64::from(report.tenant)),
            ("dataprints", report.dataprints),
            ("collection blobs only it used", report.blobs),
            ("tenant results", report.tenant_runs),
            ("metric points", report.metrics),
            ("change events", report.events),
            ("alerts", report.alerts),
            ("pending notifications", report.notifications),
            ("cached tokens", report.tokens),
            ("app credentials", report.credentials),
            ("delta links", report.delta_links),
            ("domains", report.domains),
            ("runs whose warnings named it", report.runs_scrubbed),
            ("schedule, pool, mutes and job entries", report.other),
        ];
        for (what, n) in lines {
            println!("  {n:>6}  {what}");
        }
        for b in &report.baselines {
            println!("  baseline {} (taken from this tenant)", crate::terminal::safe(b));
        }
    }
    if reachable {
        eprintln!(
            "note: the partner's GDAP relationships still reach this customer, so the next `tenantscope inspect` reads it again; end the relationship in Partner Center first, or inspect with --tenant"
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn prune(args: PruneArgs, g: &Global) -> anyhow::Result<ExitCode> {
    if args.older_than.is_none() && args.keep.is_none() {
        bail!("say what to remove: --older-than AGE (for example 90d), --keep N dataprints per tenant, or both");
    }
    let ctx = Ctx::open(g).await?;
    let mut total = store::PruneReport::default();
    if let Some(age) = args.older_than {
        let cutoff = chrono::Utc::now().checked_sub_signed(age).context("the age reaches before the calendar")?;
        total = ctx.store.prune_older_than(cutoff).await?;
    }
    if let Some(keep) = args.keep {
        let r = ctx.store.prune(keep).await?;
        total.dataprints_deleted += r.dataprints_deleted;
        total.sets_deleted += r.sets_deleted;
        total.blobs_deleted += r.blobs_deleted;
    }
    ctx.store.close().await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&total)?);
    } else {
        println!(
            "Removed {} dataprint(s), {} blob(s), {} tenant result(s), {} run(s), {} metric point(s), {} change event(s) and {} resolved alert(s).",
            total.dataprints_deleted,
            total.blobs_deleted,
            total.tenant_runs,
            total.runs_deleted,
            total.metrics_deleted,
            total.events_deleted,
            total.alerts_deleted
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn db(cmd: DbCommand, g: &Global) -> anyhow::Result<ExitCode> {
    match cmd {
        DbCommand::Backup { file } => {
            let ctx = Ctx::open(g).await?;
            let written = backup(ctx.store.as_ref(), &file).await;
            ctx.store.close().await;
            written?;
            eprintln!(
                "Backed up to {}. Its secrets need this data directory's key: keep a copy of the key file (or TENANTSCOPE_KEY) with it.",
                file.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        DbCommand::Restore { file, yes } => restore(&file, yes, g).await,
        DbCommand::Check => {
            let ctx = Ctx::open(g).await?;
            let problems = ctx.store.integrity_problems().await?;
            ctx.store.close().await;
            if problems.is_empty() {
                println!("The database passes its consistency checks.");
                Ok(ExitCode::SUCCESS)
            } else {
                for p in &problems {
                    println!("problem: {p}");
                }
                Ok(ExitCode::from(1))
            }
        }
    }
}

/// Writes the backup through an empty 0600 file created exclusively beside the target, renamed
/// into place once complete: a backup holds every customer's data, and a half-written one must
/// never look finished.
async fn backup(store: &dyn store::Store, file: &Path) -> anyhow::Result<()> {
    if file.exists() {
        bail!("{} exists; give a new file name", file.display());
    }
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let temp = tempfile::Builder::new()
        .prefix(".tenantscope-backup-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o600))?;
    }
    store.backup(temp.path()).await?;
    temp.as_file().sync_all()?;
    temp.persist_noclobber(file).map_err(|e| e.error).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(())
}

async fn restore(file: &Path, yes: bool, g: &Global) -> anyhow::Result<ExitCode> {
    if g.database_url.as_deref().is_some_and(|u| u.starts_with("postgres")) {
        bail!(
            "a PostgreSQL database is restored with `pg_restore --clean --if-exists --dbname <database> <dump>` (stop `tenantscope serve` first)"
        );
    }
    if !yes {
        bail!(
            "this replaces the database with {} (the current one is kept beside it); run it again with --yes",
            file.display()
        );
    }
    let data_dir = g.data_dir.clone().unwrap_or_else(super::default_data_dir);
    let live = match &g.database_url {
        Some(url) => PathBuf::from(
            url.trim_start_matches("sqlite://").trim_start_matches("sqlite:").split('?').next().unwrap_or_default(),
        ),
        None => data_dir.join("tenantscope.db"),
    };
    let dir = live.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    // The candidate is a private copy: checking it migrates it, and the backup stays untouched.
    let candidate = dir.join(".tenantscope-restore.db");
    let _ = std::fs::remove_file(&candidate);
    copy_private(file, &candidate)?;
    let key = store::Key::from_env_or_file(&data_dir).context("cannot load the encryption key")?;
    let checked = async {
        let store = store::open(&format!("sqlite://{}", candidate.display()), key).await?;
        let problems = store.integrity_problems().await?;
        store.close().await;
        anyhow::Ok(problems)
    }
    .await;
    let problems = match checked {
        Ok(p) => p,
        Err(e) => {
            let _ = std::fs::remove_file(&candidate);
            return Err(e.context(format!("{} cannot be restored", file.display())));
        }
    };
    if !problems.is_empty() {
        let _ = std::fs::remove_file(&candidate);
        bail!("{} fails its integrity check: {}", file.display(), problems.join("; "));
    }
    // The current database is kept as it is now, by the same consistent copy a backup makes.
    let kept = dir.join(format!("{BEFORE_RESTORE}{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")));
    if live.exists() {
        let ctx = Ctx::open(g).await?;
        let copied = backup(ctx.store.as_ref(), &kept).await;
        ctx.store.close().await;
        copied?;
    }
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", live.display()));
        match std::fs::remove_file(&side) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", side.display())),
        }
    }
    std::fs::rename(&candidate, &live).with_context(|| format!("cannot replace {}", live.display()))?;
    // The check closed the candidate cleanly, so its own WAL and shared-memory files hold
    // nothing; they are not left behind under the temporary name.
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", candidate.display()));
    }
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    eprintln!(
        "Restored {} from {}; the database it replaced is kept as {}.",
        live.display(),
        file.display(),
        if kept.exists() { kept.display().to_string() } else { "(there was none)".to_string() }
    );
    for removed in prune_before_restore(&dir) {
        eprintln!("Removed an older copy kept by a restore: {}", removed.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// How the copies of replaced databases are named, before the time of the restore.
const BEFORE_RESTORE: &str = "tenantscope.db.before-restore-";

/// How many of those copies a restore keeps: each is a whole database, and an operator who
/// restores again and again (testing backups, say) would otherwise fill the disk with them.
const BEFORE_RESTORE_KEPT: usize = 3;

/// Removes all but the newest [`BEFORE_RESTORE_KEPT`] copies in `dir` (their names sort by time);
/// returns the paths removed. A copy that cannot be removed is left, and said so.
fn prune_before_restore(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut copies: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(BEFORE_RESTORE)))
        .map(|e| e.path())
        .collect();
    copies.sort();
    let excess = copies.len().saturating_sub(BEFORE_RESTORE_KEPT);
    let mut removed = Vec::new();
    for old in copies.into_iter().take(excess) {
        match std::fs::remove_file(&old) {
            Ok(()) => removed.push(old),
            Err(e) => eprintln!("warning: cannot remove {}: {e}", old.display()),
        }
    }
    removed
}

/// Copies a file to a new path readable by its owner only.
fn copy_private(from: &Path, to: &Path) -> anyhow::Result<()> {
    let mut source = std::fs::File::open(from).with_context(|| format!("cannot read {}", from.display()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut target = options.open(to).with_context(|| format!("cannot write {}", to.display()))?;
    std::io::copy(&mut source, &mut target)?;
    target.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_age;

    #[test]
    fn a_restore_keeps_the_newest_copies_of_replaced_databases() {
        let dir = tempfile::tempdir().expect("dir");
        let names = ["20261201T100000.000Z", "20261203T100000.000Z", "20261202T100000.000Z", "20261204T090000.500Z"];
        for n in names {
            std::fs::write(dir.path().join(format!("{}{n}", super::BEFORE_RESTORE)), b"db").expect("copy");
        }
        std::fs::write(dir.path().join("tenantscope.db"), b"live").expect("live");
        std::fs::create_dir(dir.path().join(format!("{}19990101T000000.000Z", super::BEFORE_RESTORE))).expect("dir");
        let removed = super::prune_before_restore(dir.path());
        assert_eq!(removed, vec![dir.path().join(format!("{}20261201T100000.000Z", super::BEFORE_RESTORE))]);
        assert!(dir.path().join("tenantscope.db").exists(), "the live database is not a copy");
        assert!(super::prune_before_restore(dir.path()).is_empty(), "three are kept");
    }

    #[test]
    fn ages() {
        assert_eq!(parse_age("90d").unwrap(), chrono::Duration::days(90));
        assert_eq!(parse_age("12w").unwrap(), chrono::Duration::weeks(12));
        assert_eq!(parse_age("48h").unwrap(), chrono::Duration::hours(48));
        assert_eq!(parse_age("30").unwrap(), chrono::Duration::days(30));
        assert!(parse_age("0d").is_err());
        assert!(parse_age("5y").is_err());
        assert!(parse_age("").is_err());
        assert!(parse_age("99999999999999999d").is_err());
    }
}
