//! `tenantscope report --format html|json|csv`: the last inspection, per tenant: status, summary
//! figures, and every failure with its cause and fix. The HTML report is one self-contained file
//! (inline styles, no scripts, no external resources) that opens offline.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use super::Global;
use crate::context::Ctx;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Html,
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[arg(long, value_enum, default_value = "html")]
    pub format: Format,
    /// Where to write the report (default: stdout for JSON and CSV, a file in the data directory for HTML).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// The run to report (default: the last inspection).
    #[arg(long)]
    pub run: Option<String>,
}

pub async fn run(args: ReportArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::open(g).await?;
    let run_id = args.run.as_deref().map(store::RunId::new);
    let view = render::report_view(ctx.store.as_ref(), run_id.as_ref(), chrono::Utc::now()).await?;
    let (text, default_name) = match args.format {
        Format::Json => (serde_json::to_string_pretty(&view)?, "report.json"),
        Format::Csv => (render::report_csv(&view), "report.csv"),
        Format::Html => (render::report_html(&view)?, "report.html"),
    };
    let target: Option<PathBuf> = match (&args.output, args.format) {
        (Some(p), _) => Some(p.clone()),
        (None, Format::Html) => Some(ctx.data_dir.join(default_name)),
        (None, _) => None,
    };
    match target {
        Some(p) => {
            write_atomically(&p, &text)?;
            eprintln!("report written to {}", p.display());
        }
        None => println!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a file readable only by its owner (reports name every tenant and user), through a
/// temporary file created exclusively beside it (never following a link planted there) and renamed
/// over the target, so that a reader never sees half a file.
pub fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".tenantscope-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    // `tempfile` creates the file with mode 0600 and O_EXCL.
    tmp.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", tmp.path().display()))?;
    tmp.as_file().sync_all().with_context(|| format!("cannot write {}", tmp.path().display()))?;
    tmp.persist(path).map_err(|e| e.error).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
