//! Charts drawn as SVG on the server: exact to the pixel, readable without
//! script, and the same in a browser, an e-mail and a saved file.

use std::fmt::Write as _;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use crate::escape;

/// One bar: its label under the axis, its tooltip title, and its parts
/// (series name, amount), bottom first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Series {
    /// Under the bar (e.g. the day of the month).
    pub label: String,
    /// The bar's tooltip (e.g. the date).
    pub title: String,
    /// (series, amount), drawn bottom up.
    pub parts: Vec<(String, Decimal)>,
}

/// Colours of the series, in the order of `order` (colour-blind safe).
const COLOURS: [&str; 9] = [
    "#0072b2", "#56b4e9", "#009e73", "#e69f00", "#f0e442", "#cc79a7", "#d55e00", "#7f7f7f",
    "#000000",
];

/// Stacked bars, one per entry of `bars`, with a legend of the series that
/// appear (coloured by their place in `order`). Amounts are in `unit`; the
/// drawing only scales them (floating point is used for pixels, never for
/// money), the exact numbers are in the page's table and the tooltips.
pub fn stacked_bars(bars: &[Series], unit: &str, order: &[&str]) -> String {
    let (width, height, left, bottom, top) = (760.0f64, 260.0f64, 56.0f64, 24.0f64, 28.0f64);
    let total = |bar: &Series| bar.parts.iter().map(|(_, a)| *a).sum::<Decimal>();
    let max = bars.iter().map(total).max().unwrap_or_default();
    let max_f = max.to_f64().unwrap_or(0.0).max(f64::MIN_POSITIVE);
    let plot = height - bottom - top;
    let slot = (width - left) / bars.len().max(1) as f64;
    let colour = |series: &str| {
        let k = order
            .iter()
            .position(|s| *s == series)
            .unwrap_or(order.len());
        COLOURS[k.min(COLOURS.len() - 1)]
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"Amounts in {unit} by bar, stacked by series\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"11\" font-family=\"system-ui,sans-serif\">",
        unit = escape(unit)
    );
    // Axis: zero and the largest bar.
    let _ = write!(
        out,
        "<line x1=\"{left}\" y1=\"{y0}\" x2=\"{width}\" y2=\"{y0}\" stroke=\"#9aa4b1\"/><text x=\"{lx}\" y=\"{y0}\" text-anchor=\"end\" dy=\"4\">0</text><text x=\"{width}\" y=\"{top}\" text-anchor=\"end\" dy=\"-4\">{max}</text><line x1=\"{left}\" y1=\"{top}\" x2=\"{width}\" y2=\"{top}\" stroke=\"#edf0f3\"/>",
        y0 = height - bottom,
        lx = left - 6.0,
        max = escape(&format!("{} {unit}", max.normalize())),
    );
    let mut seen: Vec<&str> = Vec::new();
    for (k, bar) in bars.iter().enumerate() {
        let x = left + slot * k as f64 + slot * 0.15;
        let w = (slot * 0.7).max(1.0);
        let mut y = height - bottom;
        for (series, amount) in &bar.parts {
            if !seen.contains(&series.as_str()) {
                seen.push(series);
            }
            let h = amount.to_f64().unwrap_or(0.0) / max_f * plot;
            if h <= 0.0 {
                continue;
            }
            y -= h;
            let _ = write!(
                out,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"{}\"><title>{}: {} {} {}</title></rect>",
                colour(series),
                escape(&bar.title),
                escape(series),
                amount.normalize(),
                escape(unit)
            );
        }
        if bars.len() <= 31 {
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                x + w / 2.0,
                height - bottom + 14.0,
                escape(&bar.label)
            );
        }
    }
    seen.sort_by_key(|s| order.iter().position(|o| o == s).unwrap_or(order.len()));
    let mut lx = left;
    for series in seen {
        let _ = write!(
            out,
            "<rect x=\"{lx}\" y=\"6\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"15\">{}</text>",
            colour(series),
            lx + 14.0,
            escape(series)
        );
        lx += 22.0 + 7.0 * series.len() as f64;
    }
    out.push_str("</svg>");
    out
}
