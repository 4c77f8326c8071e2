//! The report's plots, drawn as inline SVG: line charts (with interval bands or error bars,
//! linear or log scale, marked positions), and annotated heatmaps. Self-contained text, so
//! `report.html` opens in any browser with no network and no script.
//!
//! Why not a plotting crate: the report needs four kinds of chart, each a few dozen lines of
//! SVG; writing them here keeps the output exact (labels, colours, sizes) and the build free of a
//! font-rendering stack that SVG text does not need.

use std::fmt::Write;

/// Series colours (Okabe–Ito, readable by colour-blind readers).
pub const COLORS: [&str; 8] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#000000", "#56B4E9", "#F0E442",
];

/// One line of a chart.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// (x, y) points; NaN y values leave a gap.
    pub points: Vec<(f64, f64)>,
    /// Optional interval per point (lo, hi): a shaded band, or error bars with `bars`.
    pub band: Option<Vec<(f64, f64)>>,
    /// Draw the interval as error bars instead of a band.
    pub bars: bool,
    /// Dashed line.
    pub dashed: bool,
}

/// A line chart.
#[derive(Debug, Clone, Default)]
pub struct LineChart {
    /// Title above the plot.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
    /// Logarithmic y axis (non-positive values are left out).
    pub log_y: bool,
    /// Vertical marker lines at x, with a label.
    pub markers: Vec<(f64, String)>,
    /// Category labels for integer x positions (replaces numeric ticks).
    pub x_categories: Option<Vec<String>>,
}

const W: f64 = 640.0;
const H: f64 = 360.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 50.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// About `n` round tick values covering [lo, hi].
fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return vec![lo];
    }
    let raw = (hi - lo) / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

/// A number as a short tick label.
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        "–".into()
    } else if v == 0.0 {
        "0".into()
    } else if a >= 1e6 {
        format!("{v:.2e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else if a >= 0.001 {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.1e}")
    }
}

impl LineChart {
    /// The chart as an `<svg>` element.
    pub fn render(&self) -> String {
        let tr = |y: f64| if self.log_y { y.log10() } else { y };
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for s in &self.series {
            for (i, &(x, y)) in s.points.iter().enumerate() {
                xs.push(x);
                let mut cand = vec![y];
                if let Some(b) = &s.band {
                    cand.extend([b[i].0, b[i].1]);
                }
                for v in cand {
                    if v.is_finite() && (!self.log_y || v > 0.0) {
                        ys.push(tr(v));
                    }
                }
            }
        }
        for (x, _) in &self.markers {
            xs.push(*x);
        }
        let (x0, x1) = min_max(&xs, 0.0, 1.0);
        let (mut y0, mut y1) = min_max(&ys, 0.0, 1.0);
        if !self.log_y && y0 > 0.0 && y0 < 0.5 * y1 {
            y0 = 0.0;
        }
        if y1 - y0 < 1e-12 {
            y1 = y0 + 1.0;
        }
        let pad = (y1 - y0) * 0.05;
        let (y0, y1) = (y0 - if y0 == 0.0 { 0.0 } else { pad }, y1 + pad);
        let (x0, x1) = if x1 - x0 < 1e-12 || self.x_categories.is_some() {
            (x0 - 0.5, x1 + 0.5)
        } else {
            (x0, x1)
        };
        let pw = W - LEFT - RIGHT;
        let ph = H - TOP - BOTTOM;
        let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * pw;
        let py = |y: f64| TOP + ph - (tr(y) - y0) / (y1 - y0) * ph;
        let mut s = header(&self.title);
        // Axes and ticks.
        let _ = write!(
            s,
            r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>"##
        );
        let yt: Vec<(f64, String)> = if self.log_y {
            let (a, b) = (y0.floor() as i32, y1.ceil() as i32);
            (a..=b)
                .map(|e| 10f64.powi(e))
                .filter(|v| {
                    let l = v.log10();
                    l >= y0 && l <= y1
                })
                .map(|v| (v, fmt_num(v)))
                .collect()
        } else {
            ticks(y0, y1, 5)
                .into_iter()
                .map(|v| (v, fmt_num(v)))
                .collect()
        };
        for (v, label) in yt {
            let y = py(v);
            let _ = write!(
                s,
                r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end" font-size="11">{}</text>"##,
                LEFT + pw,
                LEFT - 5.0,
                y + 4.0,
                esc(&label)
            );
        }
        let xt: Vec<(f64, String)> = match &self.x_categories {
            Some(c) => c
                .iter()
                .enumerate()
                .map(|(i, l)| (i as f64, l.clone()))
                .collect(),
            None => ticks(x0, x1, 8)
                .into_iter()
                .map(|v| (v, fmt_num(v)))
                .collect(),
        };
        for (v, label) in xt {
            let x = px(v);
            let _ = write!(
                s,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{}" y2="{}" stroke="#888"/><text x="{x:.1}" y="{}" text-anchor="middle" font-size="11">{}</text>"##,
                TOP + ph,
                TOP + ph + 4.0,
                TOP + ph + 16.0,
                esc(&label)
            );
        }
        for (x, label) in &self.markers {
            let x = px(*x);
            let _ = write!(
                s,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{}" stroke="#999" stroke-dasharray="4 3"/><text x="{:.1}" y="{}" font-size="10" fill="#555" transform="rotate(-90 {:.1} {})">{}</text>"##,
                TOP + ph,
                x - 3.0,
                TOP + 4.0,
                x - 3.0,
                TOP + 4.0,
                esc(label)
            );
        }
        // Bands first, then lines.
        for (i, ser) in self.series.iter().enumerate() {
            let c = COLORS[i % COLORS.len()];
            let Some(band) = &ser.band else { continue };
            let pts: Vec<(f64, f64, f64)> = ser
                .points
                .iter()
                .zip(band)
                .filter(|(_, (lo, hi))| {
                    lo.is_finite() && hi.is_finite() && (!self.log_y || *lo > 0.0)
                })
                .map(|(&(x, _), &(lo, hi))| (x, lo, hi))
                .collect();
            if ser.bars {
                for (x, lo, hi) in pts {
                    let _ = write!(
                        s,
                        r##"<line x1="{:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="{c}" stroke-width="1.5"/>"##,
                        px(x),
                        px(x),
                        py(lo),
                        py(hi)
                    );
                }
            } else if pts.len() > 1 {
                let mut d = String::new();
                for (j, (x, _, hi)) in pts.iter().enumerate() {
                    let _ = write!(
                        d,
                        "{}{:.1},{:.1} ",
                        if j == 0 { "M" } else { "L" },
                        px(*x),
                        py(*hi)
                    );
                }
                for (x, lo, _) in pts.iter().rev() {
                    let _ = write!(d, "L{:.1},{:.1} ", px(*x), py(*lo));
                }
                let _ = write!(
                    s,
                    r##"<path d="{d}Z" fill="{c}" fill-opacity="0.15" stroke="none"/>"##
                );
            }
        }
        for (i, ser) in self.series.iter().enumerate() {
            let c = COLORS[i % COLORS.len()];
            let mut d = String::new();
            let mut pen = false;
            for &(x, y) in &ser.points {
                if !y.is_finite() || (self.log_y && y <= 0.0) {
                    pen = false;
                    continue;
                }
                let _ = write!(
                    d,
                    "{}{:.1},{:.1} ",
                    if pen { "L" } else { "M" },
                    px(x),
                    py(y)
                );
                pen = true;
            }
            let dash = if ser.dashed {
                r#" stroke-dasharray="6 3""#
            } else {
                ""
            };
            let _ = write!(
                s,
                r##"<path d="{d}" fill="none" stroke="{c}" stroke-width="2"{dash}/>"##
            );
            for &(x, y) in &ser.points {
                if y.is_finite() && (!self.log_y || y > 0.0) {
                    let _ = write!(
                        s,
                        r##"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{c}"><title>{}: {} = {}</title></circle>"##,
                        px(x),
                        py(y),
                        esc(&ser.name),
                        fmt_num(x),
                        fmt_num(y)
                    );
                }
            }
            let ly = TOP + 10.0 + 16.0 * i as f64;
            let _ = write!(
                s,
                r##"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{c}" stroke-width="2"{dash}/><text x="{}" y="{}" font-size="11">{}</text>"##,
                W - RIGHT + 10.0,
                W - RIGHT + 30.0,
                W - RIGHT + 35.0,
                ly + 4.0,
                esc(&ser.name)
            );
        }
        axis_labels(&mut s, &self.x_label, &self.y_label);
        s.push_str("</svg>");
        s
    }
}

/// An annotated heatmap (rows × columns), colour from the smallest to the largest value.
#[derive(Debug, Clone, Default)]
pub struct Heatmap {
    /// Title.
    pub title: String,
    /// Row labels (top to bottom).
    pub rows: Vec<String>,
    /// Column labels.
    pub cols: Vec<String>,
    /// Values, row-major.
    pub values: Vec<Vec<f64>>,
    /// Axis names.
    pub row_axis: String,
    /// Axis names.
    pub col_axis: String,
    /// Write each value in its cell.
    pub annotate: bool,
}

impl Heatmap {
    /// The heatmap as an `<svg>` element.
    pub fn render(&self) -> String {
        let n = self.rows.len().max(1) as f64;
        let m = self.cols.len().max(1) as f64;
        let (left, top) = (100.0, 40.0);
        let cell = ((W - left - 30.0) / m)
            .min((H + 80.0 - top - 60.0) / n)
            .min(60.0);
        let width = left + cell * m + 30.0;
        let height = top + cell * n + 60.0;
        let all: Vec<f64> = self
            .values
            .iter()
            .flatten()
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        let (lo, hi) = min_max(&all, 0.0, 1.0);
        let mut s = format!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0} {height:.0}" width="{width:.0}" height="{height:.0}" font-family="sans-serif"><text x="{:.0}" y="20" text-anchor="middle" font-size="14" font-weight="bold">{}</text>"##,
            width / 2.0,
            esc(&self.title)
        );
        for (i, row) in self.values.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
                let (x, y) = (left + j as f64 * cell, top + i as f64 * cell);
                let fill = if v.is_finite() {
                    ramp(t)
                } else {
                    "#eee".to_string()
                };
                let _ = write!(
                    s,
                    r##"<rect x="{x:.1}" y="{y:.1}" width="{cell:.1}" height="{cell:.1}" fill="{fill}"><title>{} / {}: {}</title></rect>"##,
                    esc(&self.rows[i]),
                    esc(&self.cols[j]),
                    fmt_num(v)
                );
                if self.annotate && v.is_finite() {
                    let ink = if t > 0.6 { "#fff" } else { "#000" };
                    let _ = write!(
                        s,
                        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="{:.0}" fill="{ink}">{}</text>"##,
                        x + cell / 2.0,
                        y + cell / 2.0 + 4.0,
                        (cell / 4.5).clamp(7.0, 12.0),
                        fmt_num(v)
                    );
                }
            }
        }
        let fs = (cell / 3.0).clamp(7.0, 11.0);
        for (i, l) in self.rows.iter().enumerate() {
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="end" font-size="{fs:.0}">{}</text>"##,
                left - 4.0,
                top + (i as f64 + 0.5) * cell + 4.0,
                esc(l)
            );
        }
        for (j, l) in self.cols.iter().enumerate() {
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="{fs:.0}">{}</text>"##,
                left + (j as f64 + 0.5) * cell,
                top + n * cell + 14.0,
                esc(l)
            );
        }
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="12">{}</text><text x="14" y="{:.1}" text-anchor="middle" font-size="12" transform="rotate(-90 14 {:.1})">{}</text></svg>"##,
            left + m * cell / 2.0,
            top + n * cell + 36.0,
            esc(&self.col_axis),
            top + n * cell / 2.0,
            top + n * cell / 2.0,
            esc(&self.row_axis)
        );
        s
    }
}

/// One group of a scatter: its name, its points, and labels shown beside the first points.
pub type ScatterGroup = (String, Vec<(f64, f64)>, Vec<String>);

/// A 2-D scatter of labelled groups (for PCA projections).
#[derive(Debug, Clone, Default)]
pub struct Scatter {
    /// Title.
    pub title: String,
    /// Axis labels.
    pub x_label: String,
    /// Axis labels.
    pub y_label: String,
    /// (group name, points, point labels shown next to each point).
    pub groups: Vec<ScatterGroup>,
}

impl Scatter {
    /// The scatter as an `<svg>` element.
    pub fn render(&self) -> String {
        let xs: Vec<f64> = self
            .groups
            .iter()
            .flat_map(|g| g.1.iter().map(|p| p.0))
            .collect();
        let ys: Vec<f64> = self
            .groups
            .iter()
            .flat_map(|g| g.1.iter().map(|p| p.1))
            .collect();
        let (x0, x1) = min_max(&xs, -1.0, 1.0);
        let (y0, y1) = min_max(&ys, -1.0, 1.0);
        let (dx, dy) = ((x1 - x0).max(1e-9) * 0.05, (y1 - y0).max(1e-9) * 0.05);
        let (x0, x1, y0, y1) = (x0 - dx, x1 + dx, y0 - dy, y1 + dy);
        let pw = W - LEFT - RIGHT;
        let ph = H - TOP - BOTTOM;
        let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * pw;
        let py = |y: f64| TOP + ph - (y - y0) / (y1 - y0) * ph;
        let mut s = header(&self.title);
        let _ = write!(
            s,
            r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>"##
        );
        for (i, (name, pts, labels)) in self.groups.iter().enumerate() {
            let c = COLORS[i % COLORS.len()];
            for (j, &(x, y)) in pts.iter().enumerate() {
                let _ = write!(
                    s,
                    r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{c}" fill-opacity="0.6"/>"##,
                    px(x),
                    py(y)
                );
                if let Some(l) = labels.get(j) {
                    let _ = write!(
                        s,
                        r##"<text x="{:.1}" y="{:.1}" font-size="9">{}</text>"##,
                        px(x) + 4.0,
                        py(y) - 3.0,
                        esc(l)
                    );
                }
            }
            let ly = TOP + 10.0 + 16.0 * i as f64;
            let _ = write!(
                s,
                r##"<circle cx="{}" cy="{ly}" r="4" fill="{c}"/><text x="{}" y="{}" font-size="11">{}</text>"##,
                W - RIGHT + 20.0,
                W - RIGHT + 30.0,
                ly + 4.0,
                esc(name)
            );
        }
        axis_labels(&mut s, &self.x_label, &self.y_label);
        s.push_str("</svg>");
        s
    }
}

fn header(title: &str) -> String {
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" font-family="sans-serif"><text x="{}" y="20" text-anchor="middle" font-size="14" font-weight="bold">{}</text>"##,
        LEFT + (W - LEFT - RIGHT) / 2.0,
        esc(title)
    )
}

fn axis_labels(s: &mut String, x: &str, y: &str) {
    let _ = write!(
        s,
        r##"<text x="{}" y="{}" text-anchor="middle" font-size="12">{}</text><text x="16" y="{}" text-anchor="middle" font-size="12" transform="rotate(-90 16 {})">{}</text>"##,
        LEFT + (W - LEFT - RIGHT) / 2.0,
        H - 10.0,
        esc(x),
        TOP + (H - TOP - BOTTOM) / 2.0,
        TOP + (H - TOP - BOTTOM) / 2.0,
        esc(y)
    );
}

fn min_max(v: &[f64], lo: f64, hi: f64) -> (f64, f64) {
    let f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if f.is_empty() {
        return (lo, hi);
    }
    (
        f.iter().copied().fold(f64::INFINITY, f64::min),
        f.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    )
}

/// White to dark blue.
fn ramp(t: f64) -> String {
    let t = t.clamp(0.0, 1.0);
    let lerp = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        lerp(247.0, 8.0),
        lerp(251.0, 48.0),
        lerp(255.0, 107.0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_well_formed_svg_with_every_series() {
        let c = LineChart {
            title: "t <1>".into(),
            series: vec![
                Series {
                    name: "a".into(),
                    points: vec![(0.0, 1.0), (1.0, 10.0), (2.0, f64::NAN)],
                    band: Some(vec![(0.5, 2.0), (5.0, 20.0), (f64::NAN, f64::NAN)]),
                    ..Default::default()
                },
                Series {
                    name: "b".into(),
                    points: vec![(0.0, 0.0), (1.0, 3.0)],
                    ..Default::default()
                },
            ],
            log_y: true,
            markers: vec![(1.0, "boundary".into())],
            ..Default::default()
        };
        let s = c.render();
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
        assert!(s.contains("t &lt;1&gt;") && s.contains(">a<") && s.contains(">b<"));
        assert!(!s.contains("NaN") && !s.contains("inf"));
        let h = Heatmap {
            rows: vec!["r".into()],
            cols: vec!["x".into(), "y".into()],
            values: vec![vec![0.25, f64::NAN]],
            annotate: true,
            ..Default::default()
        }
        .render();
        assert!(h.contains(">0.25<") && !h.contains("NaN"));
        let t: Vec<String> = ticks(0.0, 1.0, 5).into_iter().map(fmt_num).collect();
        assert_eq!(t, ["0", "0.2", "0.4", "0.6", "0.8", "1"]);
    }
}
