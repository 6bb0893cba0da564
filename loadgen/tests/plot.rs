//! `auction-loadgen plot`: the SVG of JSON reports, one line each, and the reports it refuses
//! (writing nothing).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use auction_loadgen::report::{Latency, Percentile};
use hdrhistogram::Histogram;

/// A folder of this test's own, emptied.
fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-plot-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `n` samples of latency from `low_ms` rising to `high_ms` (on a curve: most are low, a tail
/// is high), in microseconds as the generator records them.
fn samples(n: u64, low_ms: f64, high_ms: f64) -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(1, 600_000_000, 3).unwrap();
    for i in 0..n {
        #[allow(clippy::cast_precision_loss)]
        let q = i as f64 / n as f64;
        let ms = low_ms + (high_ms - low_ms) * q.powi(8);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        h.record((ms * 1000.0) as u64).unwrap();
    }
    h
}

/// A report as `--output json` writes it, with the given ack and fan-out samples.
fn report(ack: &Histogram<u64>, fanout: Option<&Histogram<u64>>, open: bool) -> serde_json::Value {
    serde_json::json!({
        "mode": if open { "open" } else { "closed" },
        "target_rate": if open { Some(1000.0) } else { None },
        "concurrency": if open { None } else { Some(200) },
        "nodes": 1, "auctions": 100, "bidders": 200,
        "watchers": if fanout.is_some() { 500 } else { 0 },
        "warmup_s": 2.0, "duration_s": 10.0,
        "attempted": ack.len(), "accepted": ack.len(), "rejected": {}, "rejected_total": 0,
        "errors": 0, "skipped": 0, "achieved_rate": 1000.0, "accepted_rate": 1000.0,
        "ack_latency_ms": Latency::from_histogram(ack),
        "fanout_latency_ms": fanout.and_then(Latency::from_histogram),
        "ack_distribution_ms": Percentile::distribution(ack),
        "fanout_distribution_ms": fanout.and_then(Percentile::distribution),
    })
}

fn write(dir: &Path, name: &str, report: &serde_json::Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(report).unwrap()).unwrap();
    path
}

/// Runs `auction-loadgen plot` with these arguments: success, and stderr.
fn plot(args: &[&Path]) -> (bool, String) {
    let output =
        std::process::Command::new(env!("CARGO_BIN_EXE_auction-loadgen")).arg("plot").args(args).output().unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// The elements named `tag` in `svg`, each as its text from `<tag` to its end.
fn elements<'a>(svg: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag} ");
    svg.match_indices(&open).map(|(at, _)| &svg[at..at + svg[at..].find('>').unwrap() + 1]).collect()
}

/// The value of `attribute` in one element's text.
fn attribute<'a>(element: &'a str, attribute: &str) -> Option<&'a str> {
    let key = format!(" {attribute}=\"");
    let start = element.find(&key)? + key.len();
    Some(&element[start..start + element[start..].find('"')?])
}

/// Checks that `svg` is a whole SVG document whose elements all close, and returns the colours of
/// its data lines: the polylines drawn two pixels wide (each line's path and its legend sample),
/// with the number of points of the longest of each colour.
fn lines(svg: &str) -> std::collections::BTreeMap<String, usize> {
    let svg = svg.trim();
    assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"), "not an SVG document: {svg:.200}");
    // XML-ish: every element opened is closed, by `/>` or by its own end tag.
    let opened = svg.matches('<').count() - svg.matches("</").count();
    let closed = svg.matches("/>").count() + svg.matches("</").count();
    assert_eq!(opened, closed, "unbalanced elements");
    let mut colours = std::collections::BTreeMap::new();
    for line in elements(svg, "polyline") {
        if attribute(line, "stroke-width") == Some("2") {
            let points = attribute(line, "points").unwrap().split_whitespace().count();
            let longest = colours.entry(attribute(line, "stroke").unwrap().to_owned()).or_insert(0);
            *longest = (*longest).max(points);
        }
    }
    colours
}

#[test]
fn the_plot_has_one_line_per_report_named_in_its_legend() {
    let dir = folder("lines");
    let fast = write(&dir, "half.json", &report(&samples(100_000, 0.3, 40.0), None, true));
    let slow = write(&dir, "max.json", &report(&samples(50_000, 2.0, 300.0), None, false));
    let proxy = write(&dir, "proxy-max.json", &report(&samples(20_000, 2.5, 250.0), None, false));
    let out = dir.join("ack.svg");
    let (ok, stderr) = plot(&[
        Path::new("--input"),
        &fast,
        Path::new("--input"),
        &slow,
        Path::new("--input"),
        &proxy,
        Path::new("--output"),
        &out,
    ]);
    assert!(ok, "{stderr}");
    let svg = std::fs::read_to_string(&out).unwrap();
    let colours = lines(&svg);
    assert_eq!(colours.len(), 3, "one colour per report: {colours:?}");
    // 100,000 samples reach p99.999: 41 points below p100, the max (p100) kept for the legend.
    assert!(colours.values().any(|n| *n == 41), "{colours:?}");
    let texts = elements(&svg, "text").len();
    assert!(texts > 10, "axis labels and the legend: {texts} texts");
    for name in
        ["\nhalf (open loop at 1000/s): p50", "\nmax (closed loop, 200 bidders): p50", "\nproxy-max (closed loop"]
    {
        assert_eq!(svg.matches(name).count(), 1, "{name} in the legend once:\n{svg}");
    }
    assert!(svg.contains("\np99.9\n") && svg.contains("\np90\n"), "the percentile axis is labelled in nines");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_fanout_plot_takes_the_fanout_distribution() {
    let dir = folder("fanout");
    let input = write(&dir, "fanout.json", &report(&samples(100, 1.0, 2.0), Some(&samples(30_000, 20.0, 120.0)), true));
    let out = dir.join("fanout.svg");
    let (ok, stderr) =
        plot(&[Path::new("--latency"), Path::new("fanout"), Path::new("--input"), &input, Path::new("--output"), &out]);
    assert!(ok, "{stderr}");
    let svg = std::fs::read_to_string(&out).unwrap();
    assert_eq!(lines(&svg).len(), 1);
    assert!(svg.contains("fanout (open loop at 1000/s, 500 watchers): p50"), "{svg}");
    assert!(svg.contains("fan-out latency"), "the default title names the latency");
    let _ = std::fs::remove_dir_all(dir);
}

/// Each bad input fails the command with a message naming the file and what is wrong, and no plot
/// is written, not even of the good inputs beside it.
#[test]
fn bad_reports_are_named_and_nothing_is_written() {
    let dir = folder("bad");
    let good = write(&dir, "good.json", &report(&samples(1000, 1.0, 9.0), None, true));
    let mut old = report(&samples(1000, 1.0, 9.0), None, true);
    old.as_object_mut().unwrap().remove("ack_distribution_ms");
    let old = write(&dir, "old.json", &old);
    let not_a_report = dir.join("other.json");
    std::fs::write(&not_a_report, r#"{"ceiling": 35000}"#).unwrap();
    let mut broken = report(&samples(1000, 1.0, 9.0), None, true);
    broken["ack_distribution_ms"][4]["percentile"] = serde_json::json!(1.0);
    let broken = write(&dir, "broken.json", &broken);
    let missing = dir.join("missing.json");
    let out = dir.join("out.svg");
    let cases: [(&Path, &str, &str); 6] = [
        (&missing, "ack", "reading"),
        (&not_a_report, "ack", "is not a JSON report of auction-loadgen"),
        (&old, "ack", "no ack_distribution_ms to plot: the report was written by an auction-loadgen older"),
        (&good, "fanout", "no fanout_distribution_ms to plot: the run had no watchers"),
        (&broken, "ack", "ack_distribution_ms is not a latency distribution: percentile 1 after 50"),
        (&good, "latency", "'latency'"),
    ];
    for (bad, latency, expected) in cases {
        let (ok, stderr) = plot(&[
            Path::new("--latency"),
            Path::new(latency),
            Path::new("--input"),
            &good,
            Path::new("--input"),
            bad,
            Path::new("--output"),
            &out,
        ]);
        assert!(!ok, "{bad:?} ({latency}) was plotted");
        assert!(stderr.contains(expected), "{bad:?} ({latency}): {stderr}");
        if latency != "latency" {
            assert!(stderr.contains(&bad.display().to_string()), "the file is named: {stderr}");
        }
        assert!(!out.exists(), "{bad:?} ({latency}): a plot was written");
    }
    let png = dir.join("out.png");
    let (ok, stderr) = plot(&[Path::new("--input"), &good, Path::new("--output"), &png]);
    assert!(!ok && stderr.contains("must end in .svg"), "{stderr}");
    assert!(!png.exists());
    let _ = std::fs::remove_dir_all(dir);
}
