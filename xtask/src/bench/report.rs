//! The bench's report: its cells and what it ran on, the medians and ratios of a scenario,
//! the Markdown and JSON written to `target/bench/`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::data::{MIB, Workload};
use super::{proc, target_dir};

/// Results of one contender in one scenario.
#[derive(Debug, Default, Serialize)]
pub(super) struct Cell {
    pub(super) workload: String,
    pub(super) scenario: String,
    pub(super) contender: String,
    /// Wall seconds of each timed run.
    pub(super) runs: Vec<f64>,
    pub(super) median_s: Option<f64>,
    pub(super) min_s: Option<f64>,
    pub(super) max_s: Option<f64>,
    /// Median over the floor's median (same scenario, same run set).
    pub(super) ratio_to_floor: Option<f64>,
    /// Median over skopeo's median.
    pub(super) ratio_to_skopeo: Option<f64>,
    /// Largest peak RSS over the runs (for the floor: the largest single curl process).
    pub(super) peak_rss_mib: Option<f64>,
    /// Requests of one copy: ours from its JSON report (each timed run; min..max if they
    /// differ), everyone else from the counting proxy.
    pub(super) requests: Option<String>,
    /// Requests the counting proxy saw in the untimed counting run.
    pub(super) proxy_requests: Option<u64>,
    /// Body bytes through the counting proxy (both directions), MiB.
    pub(super) proxy_mib: Option<f64>,
    /// Retried requests ours reported, summed over the timed runs.
    pub(super) retried_requests: Option<u64>,
    /// Ours: blobs copied/mounted/skipped in the last run.
    pub(super) blobs: Option<String>,
    pub(super) errors: Vec<String>,
    #[serde(skip)]
    pub(super) ours_requests: Vec<u64>,
}

#[derive(Debug, Serialize)]
pub(super) struct Machine {
    pub(super) nproc: usize,
    pub(super) cpu: String,
    pub(super) memory: String,
    pub(super) kernel: String,
}

#[derive(Debug, Serialize)]
pub(super) struct WorkloadInfo {
    pub(super) key: String,
    pub(super) title: String,
    pub(super) blobs: usize,
    pub(super) bytes: u64,
    pub(super) digest: String,
}

#[derive(Debug, Serialize)]
pub(super) struct BigResult {
    pub(super) layer: String,
    pub(super) secs: f64,
    pub(super) peak_rss_mib: Option<f64>,
    pub(super) requests: Option<u64>,
    /// Ours' largest peak RSS on workload A, for comparison.
    pub(super) peak_rss_mib_on_a: Option<f64>,
}

#[derive(Debug, Serialize)]
pub(super) struct Report {
    pub(super) network: String,
    pub(super) quick: bool,
    pub(super) runs: usize,
    pub(super) machine: Machine,
    pub(super) versions: BTreeMap<String, String>,
    pub(super) workloads: Vec<WorkloadInfo>,
    pub(super) results: Vec<Cell>,
    pub(super) big: Option<BigResult>,
    pub(super) notes: Vec<String>,
}

/// The median, the least and the most of some timings (`None`s when there are none).
pub(super) fn spread(runs: &[f64]) -> (Option<f64>, Option<f64>, Option<f64>) {
    let mut v = runs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = match n {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    };
    (median, v.first().copied(), v.last().copied())
}

/// Medians, ranges and ratios of one scenario's cells.
pub(super) fn finish_row(row: &mut [Cell]) {
    for c in row.iter_mut() {
        (c.median_s, c.min_s, c.max_s) = spread(&c.runs);
        let (lo, hi) = (
            c.ours_requests.iter().min().copied(),
            c.ours_requests.iter().max().copied(),
        );
        c.requests = match (lo, hi) {
            (Some(lo), Some(hi)) if lo == hi => Some(lo.to_string()),
            (Some(lo), Some(hi)) => Some(format!("{lo}..{hi}")),
            _ => c.proxy_requests.map(|r| r.to_string()),
        };
    }
    let median_of = |name: &str| {
        row.iter()
            .find(|c| c.contender == name)
            .and_then(|c| c.median_s)
    };
    let (floor, skopeo) = (median_of("floor"), median_of("skopeo"));
    for c in row.iter_mut() {
        c.ratio_to_floor = c.median_s.zip(floor).map(|(m, f)| m / f);
        c.ratio_to_skopeo = c.median_s.zip(skopeo).map(|(m, s)| m / s);
    }
}

pub(super) fn markdown(r: &Report) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "# acr-import benchmark\n\nNetwork: {}. Runs: {}{}.\n\n",
        r.network,
        r.runs,
        if r.quick {
            " (--quick: small layers)"
        } else {
            ""
        }
    ));
    s.push_str(&format!(
        "Machine: {} CPUs ({}), {}, Linux {}.\n\n",
        r.machine.nproc, r.machine.cpu, r.machine.memory, r.machine.kernel
    ));
    s.push_str("Versions:\n\n");
    for (k, v) in &r.versions {
        s.push_str(&format!("- {k}: {v}\n"));
    }
    s.push_str("\nWorkloads:\n\n");
    for w in &r.workloads {
        s.push_str(&format!(
            "- {}: {} ({} blobs, {} bytes)\n",
            w.key, w.title, w.blobs, w.bytes
        ));
    }
    s.push('\n');
    let header = [
        "workload",
        "scenario",
        "contender",
        "median s",
        "min s",
        "max s",
        "× floor",
        "× skopeo",
        "peak RSS MiB",
        "requests",
        "proxy req",
        "proxy MiB",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    for c in &r.results {
        let mut row = vec![c.workload.clone(), c.scenario.clone(), c.contender.clone()];
        row.extend(spread_cells(c.median_s, c.min_s, c.max_s));
        row.extend([
            f2(c.ratio_to_floor),
            f2(c.ratio_to_skopeo),
            f0(c.peak_rss_mib),
            or_dash(c.requests.as_ref()),
            or_dash(c.proxy_requests),
            f0(c.proxy_mib),
        ]);
        rows.push(row);
    }
    s.push_str(&table(&header, &rows, 3));
    let extra: Vec<String> = r
        .results
        .iter()
        .filter_map(|c| {
            let mut parts = Vec::new();
            if let Some(b) = &c.blobs {
                parts.push(format!("blobs copied/mounted/skipped {b}"));
            }
            if let Some(n) = c.retried_requests.filter(|n| *n > 0) {
                parts.push(format!("{n} retried requests"));
            }
            for e in &c.errors {
                parts.push(format!("ERROR {e}"));
            }
            (!parts.is_empty()).then(|| {
                format!(
                    "- {} / {} / {}: {}",
                    c.workload,
                    c.scenario,
                    c.contender,
                    parts.join("; ")
                )
            })
        })
        .collect();
    if !extra.is_empty() {
        s.push_str("\nDetails:\n\n");
        for e in extra {
            s.push_str(&e);
            s.push('\n');
        }
    }
    if let Some(b) = &r.big {
        s.push_str(&format!(
            "\nBig layer (ours, empty target): one {} layer in {:.2} s, peak RSS {} MiB \
             (on workload A, largest layer 64 MiB or less: {} MiB), {} requests.\n",
            b.layer,
            b.secs,
            f0(b.peak_rss_mib),
            f0(b.peak_rss_mib_on_a),
            or_dash(b.requests)
        ));
    }
    s.push_str("\nNotes:\n\n");
    for n in &r.notes {
        s.push_str(&format!("- {n}\n"));
    }
    s
}

/// A Markdown table with aligned columns (readable as plain text too), the columns from
/// `numeric_from` on right-aligned.
pub(super) fn table(header: &[&str], rows: &[Vec<String>], numeric_from: usize) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let numeric = |i: usize| i >= numeric_from;
    let line = |cells: Vec<String>| {
        let mut s = String::from("|");
        for (i, (c, w)) in cells.iter().zip(&width).enumerate() {
            let pad = w - c.chars().count();
            if numeric(i) {
                s.push_str(&format!(" {}{c} |", " ".repeat(pad)));
            } else {
                s.push_str(&format!(" {c}{} |", " ".repeat(pad)));
            }
        }
        s.push('\n');
        s
    };
    let mut s = line(header.iter().map(|h| (*h).to_owned()).collect());
    s.push('|');
    for (i, w) in width.iter().enumerate() {
        if numeric(i) {
            s.push_str(&format!("{}:|", "-".repeat(w + 1)));
        } else {
            s.push_str(&format!("{}|", "-".repeat(w + 2)));
        }
    }
    s.push('\n');
    for r in rows {
        s.push_str(&line(r.clone()));
    }
    s
}

pub(super) fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |text: &str, key: &str| {
        text.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
    };
    Machine {
        nproc: std::thread::available_parallelism().map_or(1, usize::from),
        cpu: field(&cpuinfo, "model name").unwrap_or_else(|| "unknown".into()),
        memory: field(&meminfo, "MemTotal")
            .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or_else(
                || "unknown memory".into(),
                |k| format!("{:.1} GiB RAM", k as f64 / MIB as f64),
            ),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into()),
    }
}

pub(super) fn versions(acr: &Path) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    let acr = acr.to_string_lossy();
    let registry = acr_import_testsupport::registry_binary()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "docker-registry".into());
    for (name, program, args) in [
        ("acr", acr.as_ref(), &["--version"][..]),
        ("skopeo", "skopeo", &["--version"][..]),
        ("curl", "curl", &["--version"][..]),
        ("registry", registry.as_str(), &["--version"][..]),
    ] {
        if let Some(line) = proc::first_line(program, args) {
            v.insert(name.to_owned(), line);
        }
    }
    v
}

impl WorkloadInfo {
    pub(super) fn of(w: &Workload) -> Self {
        WorkloadInfo {
            key: w.key.to_owned(),
            title: w.title.clone(),
            blobs: w.blobs.len(),
            bytes: w.bytes(),
            digest: w.top.digest.to_string(),
        }
    }
}

/// How the figures were taken (and, with `wan`, the delay each way).
pub(super) fn notes(wan: Option<Duration>) -> Vec<String> {
    let mut notes = vec![
        "Wall time is spawn to exit of the contender's process (for the floor: from its first \
         curl to its last). Medians over the timed runs; ratios compare medians of the same \
         scenario and run set."
            .to_owned(),
        "Peak RSS is the largest VmHWM read from /proc/<pid>/status (polled every 5 ms) over \
         the runs; for the floor it is the largest single curl process, not their sum (likewise \
         for a --contender shell line: its largest process)."
            .to_owned(),
        "Requests: ours from its JSON report (`requests` summed over hosts) in every timed run; \
         the others from one extra untimed run through a counting proxy in front of each \
         registry (ours goes through it too, as a cross-check: `proxy`). Runs through the \
         counting proxy are never timed."
            .to_owned(),
        "The floor: GET the source manifest and HEAD the target tag; then per blob POST an \
         upload session and `curl GET | curl -T - PUT ?digest=` (all blobs in parallel), or on \
         the same registry a `POST ?mount=&from=`; then PUT the child manifests and the tagged \
         one. Blobs under 4 MiB go through files in two `curl --parallel` batches instead of \
         pipelines, and the manifest requests are batched too: starting a curl process costs \
         about 12 ms of CPU here. It knows the blob list without parsing manifests."
            .to_owned(),
    ];
    if let Some(delay) = wan {
        notes.push(format!(
            "--wan: every registry sits behind a TCP proxy holding each chunk {} ms per \
             direction ({} ms per round trip); the counting runs bypass it.",
            delay.as_millis(),
            2 * delay.as_millis()
        ));
    }
    notes
}

impl Report {
    /// Prints the Markdown table and writes `report.{md,json}` (and a copy named by network
    /// and quickness) under `target/bench`; fails when any copy failed.
    pub(super) fn write(&self, wan: bool, quick: bool, started: Instant) -> anyhow::Result<()> {
        let md = markdown(self);
        println!("{md}");
        let dir = target_dir().join("bench");
        std::fs::create_dir_all(&dir)?;
        let json = serde_json::to_string_pretty(self)?;
        let suffix = format!(
            "{}{}",
            if wan { "wan" } else { "lan" },
            if quick { "-quick" } else { "" }
        );
        for (name, body) in [
            ("report.md".to_owned(), &md),
            ("report.json".to_owned(), &json),
            (format!("report-{suffix}.md"), &md),
            (format!("report-{suffix}.json"), &json),
        ] {
            std::fs::write(dir.join(name), body)?;
        }
        eprintln!(
            "bench: wrote {} and {} (also report-{suffix}.*) after {:.0} s",
            dir.join("report.md").display(),
            dir.join("report.json").display(),
            started.elapsed().as_secs_f64()
        );
        let failed: usize = self.results.iter().map(|c| c.errors.len()).sum();
        anyhow::ensure!(failed == 0, "{failed} copies failed (see the report)");
        Ok(())
    }
}

/// A table cell: two decimals, or `-` when there is no figure.
pub(super) fn f2(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |x| format!("{x:.2}"))
}

/// A table cell: a whole number, or `-` when there is no figure.
pub(super) fn f0(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |x| format!("{x:.0}"))
}

/// A table cell: the value, or `-` when there is none.
pub(super) fn or_dash<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |x| x.to_string())
}

/// The median, fastest and slowest run, as table cells.
pub(super) fn spread_cells(median: Option<f64>, min: Option<f64>, max: Option<f64>) -> [String; 3] {
    [f2(median), f2(min), f2(max)]
}
