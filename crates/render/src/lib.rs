//! What tenantscope shows people, rendered once for every place that shows it.
//!
//! The HTML report (`tenantscope report --format html`) and the dashboard (`tenantscope serve`) show
//! the same figures, causes, fixes, warnings, alerts and changes. This crate builds their view
//! models from the store ([`views`]), draws charts as SVG ([`chart`]) and renders compile-checked
//! templates (askama, `templates/`). It reads the store through its traits and never writes.
//!
//! Every string from a tenant is escaped by the templates; fix steps and summaries go through
//! [`text::rich`], which escapes first and then shows commands as code and URLs as links.

pub mod chart;
pub mod csv;
pub mod dashboard;
pub mod pages;
pub mod report;
pub mod text;
pub mod views;

pub use csv::report_csv;
pub use report::report_html;
pub use views::{ReportView, fleet_view, report_view};

/// What can go wrong while gathering or rendering.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    #[error("nothing to report yet: run `tenantscope inspect` first")]
    NoRun,
    #[error("no run {0}")]
    UnknownRun(String),
    #[error("the page could not be rendered: {0}")]
    Template(#[from] askama::Error),
}
