//! Plots as SVG, drawn on the server: a line through one marker per point, every marker with
//! its value as a `<title>` (hover) and, when there is room, as a label, so the plot reads
//! without colour. Each plot has its own marker shape.

use std::fmt::Write as _;

use crate::data::Point;
use crate::escape::escape;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 44.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 48.0;
/// Points labelled with their value at most (beyond, values are in the markers' titles).
const LABELLED: usize = 16;

/// The marker drawn at each point.
#[derive(Clone, Copy)]
pub enum Marker {
    Circle,
    Square,
    Triangle,
}

/// An SVG line plot of `points` (oldest first) with `id`, a title and values shown by `show`.
pub fn line_plot(
    id: &str,
    title: &str,
    points: &[Point],
    marker: Marker,
    show: &dyn Fn(f64) -> String,
) -> String {
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<figure class="plot"><figcaption>{title}</figcaption><svg id="{id}" role="img" aria-label="{title}" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg">"#,
        title = escape(title),
        id = escape(id),
    );
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let max = points.iter().map(|p| p.value).fold(0.0f64, f64::max);
    let max = if max > 0.0 { max } else { 1.0 };
    // Axes and the top and bottom values.
    let _ = write!(
        svg,
        r#"<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{y0}"/><line class="axis" x1="{LEFT}" y1="{y0}" x2="{x1}" y2="{y0}"/><text class="tick" x="{tx}" y="{ty}" text-anchor="end">{top}</text><text class="tick" x="{tx}" y="{y0}" text-anchor="end">{zero}</text>"#,
        y0 = TOP + plot_h,
        x1 = LEFT + plot_w,
        tx = LEFT - 6.0,
        ty = TOP + 4.0,
        top = escape(&show(max)),
        zero = escape(&show(0.0)),
    );
    if points.is_empty() {
        let _ = write!(
            svg,
            r#"<text x="{x}" y="{y}" text-anchor="middle">no snapshots</text></svg></figure>"#,
            x = LEFT + plot_w / 2.0,
            y = TOP + plot_h / 2.0
        );
        return svg;
    }
    let step = if points.len() > 1 {
        plot_w / (points.len() - 1) as f64
    } else {
        0.0
    };
    let at = |i: usize, v: f64| {
        let x = if points.len() > 1 {
            LEFT + step * i as f64
        } else {
            LEFT + plot_w / 2.0
        };
        (x, TOP + plot_h - v / max * plot_h)
    };
    let line: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (x, y) = at(i, p.value);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let _ = write!(
        svg,
        r#"<polyline class="line" fill="none" points="{}"/>"#,
        line.join(" ")
    );
    for (i, p) in points.iter().enumerate() {
        let (x, y) = at(i, p.value);
        let shape = match marker {
            Marker::Circle => format!(r#"<circle cx="{x:.1}" cy="{y:.1}" r="4"/>"#),
            Marker::Square => format!(
                r#"<rect x="{:.1}" y="{:.1}" width="8" height="8"/>"#,
                x - 4.0,
                y - 4.0
            ),
            Marker::Triangle => format!(
                r#"<polygon points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}"/>"#,
                x,
                y - 5.0,
                x - 5.0,
                y + 4.0,
                x + 5.0,
                y + 4.0
            ),
        };
        let value = show(p.value);
        let _ = write!(
            svg,
            r#"<g class="point" data-value="{raw}"><title>{time} {short}: {value}</title>{shape}"#,
            raw = p.value,
            time = escape(&p.time),
            short = escape(&p.short_id),
            value = escape(&value),
        );
        if points.len() <= LABELLED {
            let _ = write!(
                svg,
                r#"<text class="value" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                y - 8.0,
                escape(&value)
            );
        }
        svg.push_str("</g>");
    }
    // The first and last times under the x axis.
    let first = &points[0];
    let last = &points[points.len() - 1];
    let _ = write!(
        svg,
        r#"<text class="tick" x="{LEFT}" y="{y}">{a}</text><text class="tick" x="{x}" y="{y}" text-anchor="end">{b}</text>"#,
        y = HEIGHT - BOTTOM + 18.0,
        x = LEFT + plot_w,
        a = escape(first.time.get(..16).unwrap_or(&first.time)),
        b = escape(last.time.get(..16).unwrap_or(&last.time)),
    );
    svg.push_str("</svg></figure>");
    svg
}
