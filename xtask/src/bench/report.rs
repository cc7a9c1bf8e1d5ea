//! The bench report: timings' spread, the markdown tables, what machine and tools ran; and the
//! small helpers the benches share (file modes, the target directory, units).

use super::*;

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
    let f2 = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |x| format!("{x:.2}"));
    let f0 = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |x| format!("{x:.0}"));
    for c in &r.results {
        rows.push(vec![
            c.workload.clone(),
            c.scenario.clone(),
            c.contender.clone(),
            f2(c.median_s),
            f2(c.min_s),
            f2(c.max_s),
            f2(c.ratio_to_floor),
            f2(c.ratio_to_skopeo),
            f0(c.peak_rss_mib),
            c.requests.clone().unwrap_or_else(|| "-".into()),
            c.proxy_requests
                .map_or_else(|| "-".to_owned(), |r| r.to_string()),
            f0(c.proxy_mib),
        ]);
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
            b.requests.map_or_else(|| "-".to_owned(), |r| r.to_string())
        ));
    }
    s.push_str("\nNotes:\n\n");
    for n in &r.notes {
        s.push_str(&format!("- {n}\n"));
    }
    s
}

/// A Markdown table with aligned columns (readable as plain text too).
/// Columns from `numeric_from` on are right-aligned.
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

pub(super) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target"))
}

pub(super) fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

pub(super) fn mib(kib: u64) -> f64 {
    kib as f64 / KIB as f64
}

pub(super) fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}
