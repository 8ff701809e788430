//! Text exposition format 0.0.4 (METRICS.md §4; Prometheus `exposition_formats.md`).
//!
//! Built on the `prometheus` crate's `TextEncoder`, which writes HELP/TYPE, escapes label
//! values (`\\`, `\"`, `\n`) and HELP (`\\`, `\n`), and spells the implicit histogram
//! bucket `le="+Inf"`. One spot is wrong for the wire: sample values are written with
//! Rust's `f64` Display, so infinities come out as `inf`/`-inf` instead of the canonical
//! `+Inf`/`-Inf`. [`encode`] fixes exactly that, line by line. It also sorts families and
//! series, which the encoder leaves in the given order.

use prometheus::proto::MetricFamily;
use prometheus::{Encoder, TextEncoder};

/// The content type of this format, for HTTP.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Encodes families as text 0.0.4: families sorted by name, series sorted by labels,
/// no timestamps. Errors only on an inconsistent family (a bug, not input).
pub fn encode(families: &[MetricFamily]) -> Result<String, prometheus::Error> {
    let mut fams: Vec<MetricFamily> = families.to_vec();
    fams.sort_by(|a, b| a.name().cmp(b.name()));
    for f in &mut fams {
        f.mut_metric().sort_by(|a, b| {
            let ka: Vec<(&str, &str)> = a
                .get_label()
                .iter()
                .map(|l| (l.name(), l.value()))
                .collect();
            let kb: Vec<(&str, &str)> = b
                .get_label()
                .iter()
                .map(|l| (l.name(), l.value()))
                .collect();
            ka.cmp(&kb)
        });
        for m in f.mut_metric() {
            m.set_timestamp_ms(0);
        }
    }
    let mut out = Vec::new();
    TextEncoder::new().encode(&fams, &mut out)?;
    let text = String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))?;
    Ok(fix_infinities(text))
}

/// `name{…} inf` → `name{…} +Inf`. A sample line's value is its last token (no
/// timestamps here), and label values cannot hold a raw newline, so lines are safe to
/// treat one by one.
fn fix_infinities(text: String) -> String {
    if !text.contains(" inf\n") && !text.contains(" -inf\n") {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.split_inclusive('\n') {
        if line.starts_with('#') {
            out.push_str(line);
        } else if let Some(head) = line.strip_suffix(" inf\n") {
            out.push_str(head);
            out.push_str(" +Inf\n");
        } else if let Some(head) = line.strip_suffix(" -inf\n") {
            out.push_str(head);
            out.push_str(" -Inf\n");
        } else {
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::proto::{Gauge, LabelPair, Metric, MetricType};

    fn gauge_family(name: &str, series: &[(&str, f64)]) -> MetricFamily {
        let mut mf = MetricFamily::default();
        mf.set_name(name.into());
        mf.set_help("Help with a \\ backslash\nand newline.".into());
        mf.set_field_type(MetricType::GAUGE);
        mf.set_metric(
            series
                .iter()
                .map(|(v, x)| {
                    let mut g = Gauge::default();
                    g.set_value(*x);
                    let mut m = Metric::from_gauge(g);
                    let mut lp = LabelPair::default();
                    lp.set_name("file".into());
                    lp.set_value(v.to_string());
                    m.set_label(vec![lp]);
                    m
                })
                .collect(),
        );
        mf
    }

    #[test]
    fn escapes_sorts_and_spells_infinity() {
        let fams = vec![
            gauge_family("zz", &[("b", 1.0)]),
            gauge_family(
                "aa",
                &[
                    ("q\"u\\o\nte", f64::INFINITY),
                    ("a", f64::NEG_INFINITY),
                    ("n", f64::NAN),
                ],
            ),
        ];
        let text = encode(&fams).unwrap();
        assert_eq!(
            text,
            "# HELP aa Help with a \\\\ backslash\\nand newline.\n# TYPE aa gauge\n\
             aa{file=\"a\"} -Inf\naa{file=\"n\"} NaN\naa{file=\"q\\\"u\\\\o\\nte\"} +Inf\n\
             # HELP zz Help with a \\\\ backslash\\nand newline.\n# TYPE zz gauge\nzz{file=\"b\"} 1\n"
        );
    }
}
