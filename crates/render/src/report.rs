//! The self-contained HTML report: one file that opens offline, with no script and nothing fetched.

use askama::Template;

use crate::RenderError;
use crate::views::ReportView;

/// The report page.
#[derive(Template)]
#[template(path = "report.html")]
struct ReportPage<'a> {
    v: &'a ReportView,
    css: &'static str,
}

/// The styles of every page (the report inlines them; the dashboard serves them as a file).
pub const CSS: &str = include_str!("../assets/tenantscope.css");

/// Renders the report.
pub fn report_html(view: &ReportView) -> Result<String, RenderError> {
    Ok(ReportPage { v: view, css: CSS }.render()?)
}
