//! Charts as SVG, drawn by plotters on the server: they need no JavaScript, print as they show, and
//! carry a text title and description for screen readers.

use chrono::{DateTime, Utc};
use plotters::prelude::*;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub points: Vec<(DateTime<Utc>, f64)>,
}

/// Colours that stay apart for the common forms of colour blindness (Okabe and Ito).
const PALETTE: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(230, 159, 0),
];

/// A line chart of one or more series over time, `width` by `height` pixels. An empty chart (no
/// point at all) says so in text instead.
pub fn line_chart(title: &str, series: &[Series], width: u32, height: u32) -> String {
    let points: Vec<&(DateTime<Utc>, f64)> = series.iter().flat_map(|s| s.points.iter()).collect();
    let desc = describe(series);
    if points.is_empty() {
        return format!(
            "<svg role=\"img\" aria-label=\"{t}: no data yet\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" xmlns=\"http://www.w3.org/2000/svg\"><title>{t}</title><text x=\"8\" y=\"{y}\" font-size=\"13\">No data yet</text></svg>",
            t = crate::text::esc(title),
            y = height / 2
        );
    }
    let (mut x0, mut x1) = (points[0].0, points[0].0);
    let (mut y0, mut y1) = (points[0].1, points[0].1);
    for (x, y) in &points {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y0 = y0.min(*y);
        y1 = y1.max(*y);
    }
    if x0 == x1 {
        x0 -= chrono::Duration::hours(12);
        x1 += chrono::Duration::hours(12);
    }
    // Within two days, the hour tells points apart; beyond, the day.
    let time_format = if x1 - x0 <= chrono::Duration::days(2) { "%H:%M" } else { "%d %b" };
    let pad = ((y1 - y0) * 0.1).max(1.0);
    let (y0, y1) = ((y0 - pad).max(0.0_f64.min(y0)), y1 + pad);
    let mut svg = String::new();
    let drawn = (|| -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(22)
            .y_label_area_size(40)
            .build_cartesian_2d(x0.timestamp() as f64..x1.timestamp() as f64, y0..y1)?;
        chart
            .configure_mesh()
            .light_line_style(RGBColor(235, 235, 235))
            .x_labels(4)
            .y_labels(4)
            .x_label_formatter(&|x| {
                DateTime::<Utc>::from_timestamp(*x as i64, 0)
                    .map(|d| d.format(time_format).to_string())
                    .unwrap_or_default()
            })
            .draw()?;
        for (i, s) in series.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            let line: Vec<(f64, f64)> = s.points.iter().map(|(x, y)| (x.timestamp() as f64, *y)).collect();
            chart.draw_series(LineSeries::new(line.clone(), colour.stroke_width(2)))?;
            chart.draw_series(line.iter().map(|p| Circle::new(*p, 2, colour.filled())))?;
        }
        root.present()?;
        Ok(())
    })();
    if drawn.is_err() {
        return format!("<p>{}</p>", crate::text::esc(&desc));
    }
    // The title and description make the picture readable without sight of it.
    let head = format!("<svg role=\"img\" aria-label=\"{}\" ", crate::text::esc(&format!("{title}. {desc}")));
    let svg = svg.replacen("<svg ", &head, 1);
    match svg.find('>') {
        Some(end) => format!(
            "{}<title>{}</title><desc>{}</desc>{}",
            &svg[..=end],
            crate::text::esc(title),
            crate::text::esc(&desc),
            &svg[end + 1..]
        ),
        None => svg,
    }
}

/// A text description of the series: the first and last value of each.
fn describe(series: &[Series]) -> String {
    series
        .iter()
        .filter_map(|s| {
            let first = s.points.first()?;
            let last = s.points.last()?;
            Some(format!(
                "{}: {} on {} to {} on {}",
                s.label,
                fmt(first.1),
                first.0.format("%Y-%m-%d"),
                fmt(last.1),
                last.0.format("%Y-%m-%d")
            ))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn fmt(v: f64) -> String {
    if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.1}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_accessible_svg() {
        let t0 = Utc::now() - chrono::Duration::days(3);
        let s =
            Series { label: "MFA <coverage>".into(), points: vec![(t0, 50.0), (t0 + chrono::Duration::days(1), 62.5)] };
        let svg = line_chart("Posture", &[s], 400, 160);
        assert!(svg.starts_with("<svg role=\"img\" aria-label=\"Posture. MFA &lt;coverage&gt;: 50"), "{}", &svg[..200]);
        assert!(
            svg.contains("<title>Posture</title>") && svg.contains("<polyline") || svg.contains("<path"),
            "a line is drawn"
        );
        assert!(!svg.contains("<coverage>"), "labels are escaped");
        assert!(line_chart("Empty", &[], 100, 50).contains("No data yet"));
    }
}
