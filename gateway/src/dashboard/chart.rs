//! Charts as inline SVG, drawn on the server: no chart library, no script, and
//! readable without JavaScript. Colours come from `dashboard.css` classes
//! (`.chart .bar`), never from `style=` attributes (the CSP refuses those).
//! Each chart carries a `<title>` and a visually hidden table of its numbers,
//! so a screen reader (and a test) reads the values, not the shapes.

use maud::{Markup, html};

/// One bar: its label under the axis and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: f64,
}

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 180.0;
const AXIS: f64 = 24.0;
const TOP: f64 = 16.0;

/// A bar chart; `format` prints a value (on the bar's tooltip and in the table).
pub fn bars(title: &str, bars: &[Bar], format: impl Fn(f64) -> String) -> Markup {
    let max = bars.iter().map(|b| b.value).fold(0.0_f64, f64::max);
    let n = bars.len().max(1) as f64;
    let slot = WIDTH / n;
    let bar_w = (slot * 0.7).max(1.0);
    let plot_h = HEIGHT - AXIS - TOP;
    html! {
        figure.chart {
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(title) {
                title { (title) }
                line.axis x1="0" y1=(HEIGHT - AXIS) x2=(WIDTH) y2=(HEIGHT - AXIS) {}
                @for (i, bar) in bars.iter().enumerate() {
                    @let h = if max > 0.0 { bar.value / max * plot_h } else { 0.0 };
                    @let x = i as f64 * slot + (slot - bar_w) / 2.0;
                    g {
                        title { (bar.label) ": " (format(bar.value)) }
                        rect.bar x=(round(x)) y=(round(HEIGHT - AXIS - h)) width=(round(bar_w)) height=(round(h)) {}
                        text.value x=(round(x + bar_w / 2.0)) y=(round(HEIGHT - AXIS - h - 4.0)) text-anchor="middle" {
                            (format(bar.value))
                        }
                        text.label x=(round(x + bar_w / 2.0)) y=(HEIGHT - 6.0) text-anchor="middle" { (bar.label) }
                    }
                }
            }
            figcaption.visually-hidden {
                table {
                    caption { (title) }
                    @for bar in bars { tr { th scope="row" { (bar.label) } td { (format(bar.value)) } } }
                }
            }
        }
    }
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_and_labels_are_escaped() {
        let svg = bars(
            "Messages <per> day",
            &[Bar { label: "Mon".into(), value: 5.0 }, Bar { label: "<b>".into(), value: 10.0 }],
            |v| format!("{v}"),
        )
        .into_string();
        assert!(svg.contains("height=\"140\""), "the largest bar fills the plot: {svg}");
        assert!(svg.contains("height=\"70\""), "half of it: {svg}");
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"), "{svg}");
        let empty = bars("none", &[], |v| format!("{v}")).into_string();
        assert!(empty.contains("<svg"), "an empty chart still renders");
    }
}
