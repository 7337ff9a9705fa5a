//! Converts prometheus-client's OpenMetrics text into the Prometheus text format 0.0.4.
//!
//! prometheus-client 0.25 only writes OpenMetrics 1.0 text, in which a counter family is named
//! without its `_total` suffix (`# TYPE x counter` followed by `x_total 1`), units get a
//! `# UNIT` line and the exposition ends with `# EOF`. Prometheus scrapes that fine when asked
//! with the OpenMetrics `Accept` header, but `promtool check metrics` (and many other scrapers)
//! read the classic 0.0.4 format, where the family name is the sample name. This module does
//! the small, exact rewrite: counter families get `_total` in their `# HELP`/`# TYPE` lines,
//! `# UNIT` and `# EOF` lines are dropped, `unknown` becomes `untyped`. Sample lines are
//! unchanged (we use no exemplars, which 0.0.4 could not carry).

/// Content type of the body produced by `to_prometheus_text`.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Rewrites an OpenMetrics exposition into the Prometheus 0.0.4 text format.
pub(crate) fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // The HELP line comes before its TYPE line; hold it until the type is known.
    let mut pending_help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            flush_help(&mut out, pending_help.take(), false);
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            pending_help = Some((name, help));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let counter = kind == "counter";
            let kind = match kind {
                "unknown" => "untyped",
                other => other,
            };
            match pending_help.take() {
                Some((help_name, help)) if help_name == name => {
                    flush_help(&mut out, Some((help_name, help)), counter);
                }
                other => flush_help(&mut out, other, false),
            }
            out.push_str("# TYPE ");
            out.push_str(name);
            if counter {
                out.push_str("_total");
            }
            out.push(' ');
            out.push_str(kind);
            out.push('\n');
            continue;
        }
        flush_help(&mut out, pending_help.take(), false);
        out.push_str(line);
        out.push('\n');
    }
    flush_help(&mut out, pending_help.take(), false);
    out
}

fn flush_help(out: &mut String, help: Option<(&str, &str)>, counter: bool) {
    if let Some((name, text)) = help {
        out.push_str("# HELP ");
        out.push_str(name);
        if counter {
            out.push_str("_total");
        }
        out.push(' ');
        out.push_str(text);
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_families_take_the_total_suffix_and_openmetrics_lines_go() {
        let om = "# HELP a_bytes Bytes.\n# TYPE a_bytes counter\n# UNIT a_bytes bytes\n\
                  a_bytes_total{x=\"1\"} 3\n# HELP g A gauge.\n# TYPE g gauge\ng 2\n# EOF\n";
        let want = "# HELP a_bytes_total Bytes.\n# TYPE a_bytes_total counter\n\
                    a_bytes_total{x=\"1\"} 3\n# HELP g A gauge.\n# TYPE g gauge\ng 2\n";
        assert_eq!(to_prometheus_text(om), want);
    }

    #[test]
    fn histograms_pass_through_unchanged() {
        let om = "# HELP h_seconds Latency.\n# TYPE h_seconds histogram\n# UNIT h_seconds seconds\n\
                  h_seconds_sum 0.5\nh_seconds_count 1\nh_seconds_bucket{le=\"+Inf\"} 1\n# EOF\n";
        let want = "# HELP h_seconds Latency.\n# TYPE h_seconds histogram\n\
                    h_seconds_sum 0.5\nh_seconds_count 1\nh_seconds_bucket{le=\"+Inf\"} 1\n";
        assert_eq!(to_prometheus_text(om), want);
    }
}
