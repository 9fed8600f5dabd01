//! What a run prints and writes: the final table (stdout), `--json`, `--hgrm` (HdrHistogram
//! percentile distribution text format) and `--plot` (an SVG latency-by-percentile chart,
//! drawn by hand).

use hdrhistogram::Histogram;
use serde_json::json;
use std::fmt::Write;

use crate::runner::Outcome;
use crate::stats::LatencySummary;

/// A finished run with its description.
pub struct Report {
    pub scenario: String,
    pub label: Option<String>,
    pub url: String,
    pub serializer: &'static str,
    pub realm: String,
    pub params: Vec<(&'static str, String)>,
    /// What `sent`/`delivered` count: "events", "calls", "sessions".
    pub unit: &'static str,
    pub warmup_secs: f64,
    pub outcome: Outcome,
    /// Idle: sessions held (for RSS per session).
    pub held_sessions: Option<u64>,
}

impl Report {
    pub fn sent_per_sec(&self) -> f64 {
        per_sec(self.outcome.window.sent, self.outcome.window_secs)
    }

    pub fn delivered_per_sec(&self) -> f64 {
        per_sec(self.outcome.window.delivered, self.outcome.window_secs)
    }

    pub fn latency(&self) -> LatencySummary {
        LatencySummary::of(&self.outcome.latency)
    }

    /// Router RSS growth per held session, bytes.
    pub fn rss_per_session(&self) -> Option<f64> {
        let [before, ready, _] = self.outcome.rss?;
        let n = self.held_sessions.filter(|&n| n > 0)?;
        if self.outcome.totals.disconnects > 0 {
            // Fewer sessions than asked were held: no per-session figure.
            return None;
        }
        Some((ready as f64 - before as f64) / n as f64)
    }

    /// Deliveries per second of router CPU time: the rate one dedicated core would reach if
    /// the cost per message stayed the same (a projection, useful on a shared machine).
    pub fn delivered_per_router_cpu_sec(&self) -> Option<f64> {
        let c = self.outcome.router_cpu?;
        (c.run_ns > 0 && self.held_sessions.is_none())
            .then(|| self.outcome.window.delivered as f64 / (c.run_ns as f64 / 1e9))
    }

    pub fn table(&self) -> String {
        let o = &self.outcome;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "loadgen {}{} — {} {} realm {}",
            self.scenario,
            self.label
                .as_ref()
                .map(|l| format!(" [{l}]"))
                .unwrap_or_default(),
            self.url,
            self.serializer,
            self.realm
        );
        let params: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(s, "  parameters    {}", params.join(" "));
        let _ = writeln!(
            s,
            "  window        {:.2} s after {:.1} s warm-up; setup {:.2} s",
            o.window_secs, self.warmup_secs, o.setup_secs
        );
        if self.held_sessions.is_none() {
            self.traffic_lines(&mut s);
        } else if o.totals.disconnects > 0 {
            let _ = writeln!(
                s,
                "  disconnects   {} of the held sessions were closed by the router (no per-session RSS)",
                o.totals.disconnects
            );
        }
        let l = self.latency();
        if l.count > 0 {
            let _ = writeln!(
                s,
                "  latency µs    p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  (mean {:.1}, {} samples)",
                l.p50, l.p90, l.p99, l.p999, l.max, l.mean, l.count
            );
        }
        let cores = |ns: u64| ns as f64 / 1e9 / o.window_secs.max(1e-9);
        for (who, c) in [("router CPU", o.router_cpu), ("loadgen CPU", o.loadgen_cpu)] {
            if let Some(c) = c {
                let _ = writeln!(
                    s,
                    "  {who:<13} {:.2} cores busy, {:.2} cores' worth runnable but waiting for a CPU",
                    cores(c.run_ns),
                    cores(c.wait_ns)
                );
            }
        }
        if let Some(per) = self.delivered_per_router_cpu_sec() {
            let _ = writeln!(
                s,
                "  efficiency    {} {} delivered per router CPU-second",
                group(per),
                self.unit
            );
        }
        if let Some([before, ready, end]) = o.rss {
            let _ = writeln!(
                s,
                "  router RSS    before {:.1} MiB, after setup {:.1} MiB, end {:.1} MiB",
                mib(before),
                mib(ready),
                mib(end)
            );
            if let Some(per) = self.rss_per_session() {
                let _ = writeln!(
                    s,
                    "  per session   {:.0} B ({:.2} KiB) over {} sessions",
                    per,
                    per / 1024.0,
                    self.held_sessions.unwrap_or(0)
                );
            }
        }
        s
    }

    fn traffic_lines(&self, s: &mut String) {
        let t = &self.outcome.totals;
        let o = &self.outcome;
        let _ = writeln!(
            *s,
            "  sent          {:>14} {}/s   (run total {})",
            group(self.sent_per_sec()),
            self.unit,
            t.sent
        );
        let _ = writeln!(
            *s,
            "  delivered     {:>14} {}/s   (run total {}, expected {})",
            group(self.delivered_per_sec()),
            self.unit,
            t.delivered,
            t.expected
        );
        if t.acked > 0 {
            let _ = writeln!(*s, "  acknowledged  {:>14}", t.acked);
        }
        let loss_pct = if t.expected > 0 {
            100.0 * t.lost() as f64 / t.expected as f64
        } else {
            0.0
        };
        let _ = writeln!(
            *s,
            "  lost          {:>14}   ({loss_pct:.4} %){}{}",
            t.lost(),
            if o.drain_timed_out {
                "  drain timed out"
            } else {
                ""
            },
            if t.surplus() > 0 {
                format!("  SURPLUS {}", t.surplus())
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            *s,
            "  errors        {:>14}   disconnects {}",
            t.errors, t.disconnects
        );
    }

    pub fn json(&self) -> serde_json::Value {
        let o = &self.outcome;
        let t = &o.totals;
        let l = self.latency();
        let params: serde_json::Map<String, serde_json::Value> = self
            .params
            .iter()
            .map(|(k, v)| ((*k).to_string(), json!(v)))
            .collect();
        json!({
            "scenario": self.scenario,
            "label": self.label,
            "url": self.url,
            "serializer": self.serializer,
            "realm": self.realm,
            "params": params,
            "unit": self.unit,
            "warmup_secs": self.warmup_secs,
            "window_secs": o.window_secs,
            "setup_secs": o.setup_secs,
            "sent_per_sec": self.sent_per_sec(),
            "delivered_per_sec": self.delivered_per_sec(),
            "totals": {
                "sent": t.sent,
                "expected": t.expected,
                "delivered": t.delivered,
                "acknowledged": t.acked,
                "lost": t.lost(),
                "surplus": t.surplus(),
                "errors": t.errors,
                "disconnects": t.disconnects,
            },
            "drain_timed_out": o.drain_timed_out,
            "latency_us": {
                "count": l.count,
                "mean": l.mean,
                "p50": l.p50,
                "p90": l.p90,
                "p99": l.p99,
                "p99_9": l.p999,
                "max": l.max,
            },
            "router_cpu": o.router_cpu.map(|c| json!({
                "busy_cores": c.run_ns as f64 / 1e9 / o.window_secs.max(1e-9),
                "waiting_cores": c.wait_ns as f64 / 1e9 / o.window_secs.max(1e-9),
            })),
            "loadgen_cpu": o.loadgen_cpu.map(|c| json!({
                "busy_cores": c.run_ns as f64 / 1e9 / o.window_secs.max(1e-9),
                "waiting_cores": c.wait_ns as f64 / 1e9 / o.window_secs.max(1e-9),
            })),
            "delivered_per_router_cpu_sec": self.delivered_per_router_cpu_sec(),
            "router_rss_bytes": o.rss.map(|[b, r, e]| json!({"before": b, "after_setup": r, "end": e})),
            "held_sessions": self.held_sessions,
            "rss_per_session_bytes": self.rss_per_session(),
        })
    }
}

fn per_sec(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / 1048576.0
}

/// `1234567.8` → `1,234,568`.
pub fn group(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// The HdrHistogram percentile distribution text format (as `outputPercentileDistribution`
/// writes it, 5 ticks per half distance), values in milliseconds.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let scale = 1e6; // ns → ms
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if !h.is_empty() {
        let mut total = 0u64;
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let q = v.quantile_iterated_to();
            let value = v.value_iterated_to() as f64 / scale;
            if q < 1.0 {
                let _ = writeln!(
                    s,
                    "{value:12.3} {q:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(s, "{value:12.3} {q:2.12} {total:10}");
            }
        }
    }
    let (mean, sd, max) = if h.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (h.mean() / scale, h.stdev() / scale, h.max() as f64 / scale)
    };
    let _ = writeln!(s, "#[Mean    = {mean:12.3}, StdDeviation   = {sd:12.3}]");
    let _ = writeln!(
        s,
        "#[Max     = {max:12.3}, Total count    = {:12}]",
        h.len()
    );
    let _ = writeln!(
        s,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        h.distinct_values()
    );
    s
}

/// An SVG chart of latency (µs, y) by percentile (x, logarithmic in 1/(1-p): 0 %, 90 %, 99 %,
/// …), one line per series.
pub fn svg(title: &str, series: &[(String, &Histogram<u64>)]) -> String {
    const W: f64 = 800.0;
    const H: f64 = 480.0;
    const L: f64 = 70.0;
    const R: f64 = 20.0;
    const T: f64 = 40.0;
    const B: f64 = 60.0;
    const COLORS: [&str; 6] = [
        "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
    ];
    let pw = W - L - R;
    let ph = H - T - B;
    // Series of (nines, µs) points; nines = log10(1/(1-p)).
    let mut lines: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut max_nines: f64 = 3.0;
    let mut max_us: f64 = 1.0;
    for (_, h) in series {
        let mut pts = Vec::new();
        if !h.is_empty() {
            let cap = 1.0 - 1.0 / h.len() as f64;
            for v in h.iter_quantiles(5) {
                let q = v.quantile_iterated_to().min(cap.max(0.0));
                let nines = -(1.0 - q).log10();
                let us = v.value_iterated_to() as f64 / 1000.0;
                pts.push((nines, us));
                max_nines = max_nines.max(nines);
                max_us = max_us.max(us);
            }
        }
        lines.push(pts);
    }
    let max_nines = max_nines.ceil().min(7.0);
    let y_top = nice_ceiling(max_us * 1.05);
    let x = |n: f64| L + pw * (n / max_nines).min(1.0);
    let y = |v: f64| T + ph * (1.0 - (v / y_top).min(1.0));
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        W / 2.0,
        escape(title)
    );
    for i in 0..=5 {
        let v = y_top * i as f64 / 5.0;
        let yy = y(v);
        let _ = writeln!(
            s,
            r##"<line x1="{L}" y1="{yy:.1}" x2="{}" y2="{yy:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - R,
            L - 6.0,
            yy + 4.0,
            trim(v)
        );
    }
    for n in 0..=(max_nines as usize) {
        let xx = x(n as f64);
        let label = if n == 0 {
            "0%".to_string()
        } else {
            format!("{}%", trim(100.0 * (1.0 - 10f64.powi(-(n as i32)))))
        };
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" y1="{T}" x2="{xx:.1}" y2="{}" stroke="#ddd"/><text x="{xx:.1}" y="{}" text-anchor="middle">{label}</text>"##,
            T + ph,
            T + ph + 16.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">percentile</text>"#,
        L + pw / 2.0,
        H - 18.0
    );
    let _ = writeln!(
        s,
        r#"<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">latency (µs)</text>"#,
        T + ph / 2.0,
        T + ph / 2.0
    );
    let _ = writeln!(
        s,
        r#"<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
    );
    for (i, ((name, _), pts)) in series.iter().zip(&lines).enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = pts
            .iter()
            .map(|&(n, v)| format!("{:.1},{:.1}", x(n), y(v)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        let ly = T + 16.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            L + 12.0,
            L + 36.0,
            L + 42.0,
            ly + 4.0,
            escape(name)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn nice_ceiling(v: f64) -> f64 {
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * mag >= v {
            return m * mag;
        }
    }
    10.0 * mag
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    #[test]
    fn hgrm_counts_every_sample() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 100).unwrap();
        }
        let text = hgrm(&h);
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| {
                !l.starts_with('#') && l.trim_start().starts_with(|c: char| c.is_ascii_digit())
            })
            .collect();
        let last: Vec<&str> = rows.last().unwrap().split_whitespace().collect();
        assert_eq!(last[1], "1.000000000000");
        assert_eq!(last[2], "10000");
        assert!(text.contains("Total count    =        10000"));
    }

    #[test]
    fn svg_has_one_line_per_series() {
        let mut a = new_histogram();
        let mut b = new_histogram();
        for v in 1..=1000u64 {
            a.record(v * 1000).unwrap();
            b.record(v * 2000).unwrap();
        }
        let s = svg("t <x>", &[("a".into(), &a), ("b".into(), &b)]);
        assert_eq!(s.matches("<polyline").count(), 2);
        assert!(s.contains("t &lt;x&gt;"));
        assert!(s.ends_with("</svg>\n"));
    }

    #[test]
    fn groups_thousands() {
        assert_eq!(group(1234567.4), "1,234,567");
        assert_eq!(group(12.0), "12");
        assert_eq!(group(999.6), "1,000");
    }
}
