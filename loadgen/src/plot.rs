//! `auction-loadgen plot`: latency percentile plots, as SVG, from the JSON reports of runs (their
//! `ack_distribution_ms` or `fanout_distribution_ms`).
//!
//! The percentile axis is a log scale of `1 / (1 - q)`: p0, p90, p99, p99.9 ... are evenly
//! spaced, so the tail, where stalls show, is as wide as the body. Latency is on a log scale
//! too, so a 0.3 ms median and a 300 ms tail read on the same plot.

use std::path::Path;

use anyhow::{Context, bail};
use plotters::prelude::*;

use crate::opt::{LatencyKind, PlotOpt};
use crate::report::{Percentile, Report};

/// The plot's width, and the height of its chart, in pixels; the legend goes below the chart,
/// [`LEGEND_ROW`] pixels a line, so that it never hides a line's tail.
const SIZE: (u32, u32) = (960, 560);
const LEGEND_ROW: u32 = 22;

/// The lines' colours, in turn: dark enough on white, and far enough apart to tell.
const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 100, 180),
    RGBColor(220, 90, 20),
    RGBColor(40, 150, 60),
    RGBColor(200, 30, 40),
    RGBColor(120, 70, 170),
    RGBColor(110, 80, 60),
    RGBColor(20, 150, 160),
    RGBColor(90, 90, 90),
];

/// One line of a plot: a report's distribution of the chosen latency.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// The legend: the file's name, the run's kind, its p50, p99 and max.
    pub label: String,
    /// `(x, ms)` for each point below p100, where `x` is `log10(1 / (1 - q))` (see [`x_of`]).
    pub points: Vec<(f64, f64)>,
}

/// Reads every input, then writes the plot: nothing is written when an input is bad.
pub fn run(opt: &PlotOpt) -> anyhow::Result<()> {
    if opt.output.extension().is_none_or(|ext| ext != "svg") {
        bail!("--output {}: the plot is an SVG file, so its name must end in .svg", opt.output.display());
    }
    let lines = opt.inputs.iter().map(|path| read(path, opt.latency)).collect::<anyhow::Result<Vec<_>>>()?;
    let title = opt.title.clone().unwrap_or_else(|| {
        match opt.latency {
            LatencyKind::Ack => "ack latency (scheduled send to answer) by percentile",
            LatencyKind::Fanout => "fan-out latency (scheduled send to bid_placed at each watcher) by percentile",
        }
        .to_owned()
    });
    let svg = draw(&title, &lines)?;
    std::fs::write(&opt.output, svg).with_context(|| format!("writing the plot to {}", opt.output.display()))
}

/// The line of one report: its distribution of `kind`, checked.
pub fn read(path: &Path, kind: LatencyKind) -> anyhow::Result<Line> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let report: Report = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a JSON report of auction-loadgen (--output json)", path.display()))?;
    let (field, distribution, summary) = match kind {
        LatencyKind::Ack => ("ack_distribution_ms", &report.ack_distribution_ms, &report.ack_latency_ms),
        LatencyKind::Fanout => ("fanout_distribution_ms", &report.fanout_distribution_ms, &report.fanout_latency_ms),
    };
    let Some(distribution) = distribution else {
        let why = if summary.is_some() {
            "the report was written by an auction-loadgen older than the distributions; run it again"
        } else if kind == LatencyKind::Fanout && report.watchers == 0 {
            "the run had no watchers (--watchers)"
        } else {
            "the run measured none"
        };
        bail!("{}: no {field} to plot: {why}", path.display());
    };
    check(distribution).with_context(|| format!("{}: {field} is not a latency distribution", path.display()))?;
    let name = path.file_stem().map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into_owned());
    let figures = summary
        .as_ref()
        .map(|l| format!(": p50 {:.2}, p99 {:.2}, max {:.1} ms", l.p50, l.p99, l.max))
        .unwrap_or_default();
    Ok(Line {
        label: format!("{name} ({}){figures}", describe(&report, kind)),
        points: distribution.iter().filter(|p| p.percentile < 100.0).map(|p| (x_of(p.percentile), p.ms)).collect(),
    })
}

/// Percentiles rising from 0 to at most 100, latencies positive and finite.
fn check(distribution: &[Percentile]) -> anyhow::Result<()> {
    if distribution.is_empty() {
        bail!("it has no points");
    }
    let mut last = -1.0;
    for p in distribution {
        if !(p.percentile > last && p.percentile <= 100.0) {
            bail!("percentile {} after {last}: percentiles must rise, from 0 to at most 100", p.percentile);
        }
        if !(p.ms.is_finite() && p.ms > 0.0) {
            bail!("{} ms at percentile {}: a latency must be a positive number", p.ms, p.percentile);
        }
        last = p.percentile;
    }
    Ok(())
}

/// What kind of run the report is of, for the legend.
fn describe(report: &Report, kind: LatencyKind) -> String {
    let mut out = match (report.target_rate, report.concurrency) {
        (Some(rate), _) => format!("open loop at {rate:.0}/s"),
        (None, Some(c)) => format!("closed loop, {c} bidders"),
        (None, None) => report.mode.clone(),
    };
    if kind == LatencyKind::Fanout {
        out += &format!(", {} watchers", report.watchers);
    }
    if report.proxy_share > 0.0 {
        out += &format!(", {:.0}% by max", report.proxy_share * 100.0);
    }
    if let Some(rate) = report.list_rate {
        out += &format!(", {rate:.0} lists/s");
    }
    out
}

/// Where percentile `p` (below 100) falls on the plot's axis: `log10(1 / (1 - q))`, so p0 is at
/// 0, p90 at 1, p99 at 2, p99.9 at 3.
pub fn x_of(percentile: f64) -> f64 {
    -(1.0 - percentile / 100.0).log10()
}

/// The percentile at a whole `x`: p0, p90, p99, p99.9, ...
fn percentile_label(x: f64) -> String {
    #[allow(clippy::cast_possible_truncation)]
    let nines = x.round() as i32;
    match nines {
        ..=0 => "p0".to_owned(),
        1 => "p90".to_owned(),
        _ => format!("p{:.*}", usize::try_from(nines - 2).unwrap_or_default(), 100.0 - 10f64.powi(2 - nines)),
    }
}

/// A latency axis label, in as many decimals as its size needs.
fn ms_label(ms: f64) -> String {
    match ms {
        ms if ms >= 10.0 => format!("{ms:.0}"),
        ms if ms >= 1.0 => format!("{ms:.1}"),
        ms if ms >= 0.1 => format!("{ms:.2}"),
        ms => format!("{ms:.3}"),
    }
}

/// The plot as SVG text: one line per input, in its own colour, with a legend below.
pub fn draw(title: &str, lines: &[Line]) -> anyhow::Result<String> {
    let all = || lines.iter().flat_map(|l| l.points.iter());
    // To the next whole nine (p99.999 at 5, within rounding, ends the axis at 5, not 6), and a
    // hair past it, so that its label is drawn.
    let x_end = (all().map(|p| p.0).fold(1.0, f64::max) - 1e-9).ceil() + 1e-9;
    let low = all().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let high = all().map(|p| p.1).fold(0.0, f64::max);
    // Whole powers of ten, so that the latency axis is labelled at its ends; at least one
    // factor of ten between them.
    let (low, high) = if low.is_finite() {
        let low = 10f64.powf(low.log10().floor());
        (low, 10f64.powf(high.log10().ceil()).max(low * 10.0))
    } else {
        (0.1, 10.0)
    };
    let mut svg = String::new();
    {
        let rows = u32::try_from(lines.len()).unwrap_or(u32::MAX / LEGEND_ROW - SIZE.1);
        let root = SVGBackend::with_string(&mut svg, (SIZE.0, SIZE.1 + LEGEND_ROW * rows + 16)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let (upper, legend) = root.split_vertically(SIZE.1);
        let mut chart = ChartBuilder::on(&upper)
            .caption(title, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d((0.0..x_end).step(1.0), (low..high).log_scale())
            .map_err(drawing)?;
        chart
            .configure_mesh()
            .x_desc("percentile (log scale of 1 / (1 - q))")
            .y_desc("latency, ms (log scale)")
            .x_label_formatter(&|x| percentile_label(*x))
            .y_label_formatter(&|ms| ms_label(*ms))
            .y_max_light_lines(9)
            .draw()
            .map_err(drawing)?;
        for (i, line) in lines.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            chart.draw_series(LineSeries::new(line.points.iter().copied(), colour.stroke_width(2))).map_err(drawing)?;
            #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
            let y = (LEGEND_ROW * i as u32) as i32 + 4;
            legend.draw(&PathElement::new(vec![(80, y + 8), (110, y + 8)], colour.stroke_width(2))).map_err(drawing)?;
            legend.draw(&Text::new(line.label.as_str(), (120, y), ("sans-serif", 14))).map_err(drawing)?;
        }
        root.present().map_err(drawing)?;
    }
    Ok(svg)
}

fn drawing(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing the plot: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_percentile_axis_spaces_the_nines_evenly() {
        assert_eq!(x_of(0.0), 0.0);
        for (p, x) in [(90.0, 1.0), (99.0, 2.0), (99.9, 3.0), (99.99, 4.0)] {
            assert!((x_of(p) - x).abs() < 1e-9, "p{p} at {}", x_of(p));
        }
        let labels: Vec<String> = (0..=5).map(|x| percentile_label(f64::from(x))).collect();
        assert_eq!(labels, ["p0", "p90", "p99", "p99.9", "p99.99", "p99.999"]);
    }

    #[test]
    fn latency_labels_keep_the_digits_that_matter() {
        let labels: Vec<String> = [0.05, 0.5, 2.0, 20.0, 2000.0].into_iter().map(ms_label).collect();
        assert_eq!(labels, ["0.050", "0.50", "2.0", "20", "2000"]);
    }

    #[test]
    fn bad_distributions_are_named() {
        let p = |percentile, ms| Percentile { percentile, ms };
        assert!(check(&[p(0.0, 0.1), p(50.0, 0.2), p(100.0, 3.0)]).is_ok());
        let err = |d: &[Percentile]| check(d).unwrap_err().to_string();
        assert_eq!(err(&[]), "it has no points");
        assert!(err(&[p(50.0, 0.1), p(50.0, 0.2)]).contains("percentile 50 after 50"), "{}", err(&[]));
        assert!(err(&[p(0.0, 0.1), p(101.0, 0.2)]).contains("percentile 101"));
        assert!(err(&[p(0.0, 0.0)]).contains("0 ms at percentile 0"));
        assert!(err(&[p(0.0, f64::NAN)]).contains("NaN ms"));
    }
}
