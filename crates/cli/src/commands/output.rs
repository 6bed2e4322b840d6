//! Printing: plain tables, and a live progress display for runs.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use inspect::TenantSummary;
use inspect::dataprint::Status;
use microsoft::http::Stats;

/// A plain text table, columns sized to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count().min(60));
            }
        }
    }
    let line = |cells: Vec<String>| -> String {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let w = widths.get(i).copied().unwrap_or(0);
                let c: String =
                    if c.chars().count() > 60 { c.chars().take(57).chain("...".chars()).collect() } else { c.clone() };
                if i + 1 == cells.len() { c } else { format!("{c:<w$}") }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut out = line(headers.iter().map(|h| h.to_string()).collect());
    out.push('\n');
    out.push_str(&line(widths.iter().map(|w| "-".repeat(*w)).collect()));
    for r in rows {
        out.push('\n');
        out.push_str(&line(r.clone()));
    }
    out
}

/// The live display of a run: tenants done and failed, requests, throttling waits.
pub struct Progress {
    bar: ProgressBar,
    done: AtomicU64,
    failed: AtomicU64,
    partial: AtomicU64,
    stats: Mutex<Option<Arc<Stats>>>,
}

impl Progress {
    pub fn new(enabled: bool) -> Arc<Progress> {
        let bar = if enabled && std::io::stderr().is_terminal() {
            let b = ProgressBar::new(0);
            b.set_draw_target(ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template("{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} tenants {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b.enable_steady_tick(Duration::from_millis(200));
            b
        } else {
            ProgressBar::hidden()
        };
        Arc::new(Progress {
            bar,
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            partial: AtomicU64::new(0),
            stats: Mutex::new(None),
        })
    }

    pub fn watch(&self, stats: Arc<Stats>) {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = Some(stats);
    }

    fn refresh(&self) {
        let (requests, throttled, wait) = match &*self.stats.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(s) => (Stats::get(&s.requests), Stats::get(&s.throttled), Stats::get(&s.throttle_wait_ms)),
            None => (0, 0, 0),
        };
        self.bar.set_message(format!(
            "· {} failed · {} partial · {requests} requests · {throttled} throttled ({:.1}s waited)",
            self.failed.load(Ordering::Relaxed),
            self.partial.load(Ordering::Relaxed),
            wait as f64 / 1000.0
        ));
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl inspect::Observer for Progress {
    fn planned(&self, tenants: usize) {
        self.bar.set_length(tenants as u64);
        self.refresh();
    }

    fn tenant_done(&self, r: &TenantSummary) {
        self.done.fetch_add(1, Ordering::Relaxed);
        match r.status {
            Status::Failed => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
            Status::Partial => {
                self.partial.fetch_add(1, Ordering::Relaxed);
            }
            Status::Ok => {}
        }
        self.bar.inc(1);
        self.refresh();
    }

    fn note(&self, message: &str) {
        // The progress bar writes to the terminal itself, past the shadowed print macros.
        self.bar.println(crate::terminal::safe(message));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let t = table(&["a", "bb"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "a    bb\n---  --\nxxx  y");
    }
}
