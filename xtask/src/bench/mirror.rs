//! `cargo xtask bench --mirror`: a mirror of a generated catalog, ours (`acr import
//! --from-file`) against `skopeo sync` (its YAML source form), first run and unchanged re-run.
//!
//! The catalog: 60 repositories in the source registry, each with 5 tags (`v1.0.0` … `v1.3.0`
//! and `v2.0.0-rc.1`); both contenders select the same 4 (ours with `semver: ">=1.0, <2"`,
//! skopeo with `images-by-tag-regex: ^v1\.`), so both list every repository's tags: 240 tags.
//! Every image is one platform with small layers: a base layer every repository shares, one
//! of three runtime layers shared by a third of them, a layer of its own and its config.
//!
//! Scenarios: **first run** into an empty prefix of the target registry (a new one for every
//! run and contender), and **re-run** onto a complete prefix (filled once, untimed, and checked)
//! where nothing changed. Contenders run interleaved; every run is checked afterwards (each of
//! the 240 target tags holds the source's digest). Requests come from one extra untimed run
//! per contender and scenario through counting proxies in front of the registries.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use acr_import_reference::{Digest, DigestAlgorithm};
use acr_import_transfer::{Manifest, Registry, Transport, UploadStart, manifest};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;

use super::data::{KIB, LayerSpec, human};
use super::proc::{self, Peak};
use super::report::{f0, f2, or_dash, spread_cells};
use super::{Args, Net, WAN_DELAY};

/// Repositories in the catalog.
const REPOS: usize = 60;
/// The tags both contenders select.
const TAGS: [&str; 4] = ["v1.0.0", "v1.1.0", "v1.2.0", "v1.3.0"];
/// A tag both list and leave out (a pre-release outside the range, and not `^v1\.`).
const SKIPPED_TAG: &str = "v2.0.0-rc.1";
/// The source repositories' prefix.
const SOURCE_PREFIX: &str = "catalog";

/// The generated catalog: every selected (repository, tag) and its digest.
struct Catalog {
    /// `catalog/r00` … in the source.
    repos: Vec<String>,
    /// (repository, tag) → digest, for the selected tags.
    digests: BTreeMap<(String, String), Digest>,
    /// Distinct blobs and their bytes over the selected tags.
    blobs: usize,
    bytes: u64,
}

/// Who mirrors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Ours,
    Skopeo { isolated: bool },
}

impl Who {
    fn name(self) -> &'static str {
        match self {
            Who::Ours => "ours",
            Who::Skopeo { .. } => "skopeo sync",
        }
    }
    fn slug(self) -> &'static str {
        match self {
            Who::Ours => "ours",
            Who::Skopeo { .. } => "skopeo",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    First,
    Rerun,
}

impl Scenario {
    fn label(self) -> &'static str {
        match self {
            Scenario::First => "first run (empty target)",
            Scenario::Rerun => "re-run (nothing changed)",
        }
    }
    fn slug(self) -> &'static str {
        match self {
            Scenario::First => "first",
            Scenario::Rerun => "rerun",
        }
    }
}

/// One contender in one scenario.
#[derive(Debug, Default, Serialize)]
struct Cell {
    scenario: String,
    contender: String,
    runs: Vec<f64>,
    median_s: Option<f64>,
    min_s: Option<f64>,
    max_s: Option<f64>,
    ratio_to_skopeo: Option<f64>,
    peak_rss_mib: Option<f64>,
    /// Requests to the source and to the target in the counting run.
    source_requests: Option<usize>,
    target_requests: Option<usize>,
    /// Requests by method and kind (`HEAD manifests`, `GET tags/list`…), both registries.
    request_kinds: BTreeMap<String, usize>,
    errors: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    network: String,
    runs: usize,
    repositories: usize,
    tags: usize,
    blobs: usize,
    bytes: u64,
    machine: super::report::Machine,
    load_before: String,
    load_after: String,
    versions: BTreeMap<String, String>,
    results: Vec<Cell>,
    notes: Vec<String>,
}

struct MirrorBench<'a> {
    rt: &'a tokio::runtime::Runtime,
    scratch: &'a Path,
    acr: &'a Path,
    catalog: Catalog,
    timeout: Duration,
}

/// Runs the mirror benchmark.
pub fn run(args: &Args, acr: &Path) -> anyhow::Result<()> {
    let runs = args.runs.unwrap_or(if args.quick { 2 } else { 5 }).max(1);
    let load_before = load();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let scratch = tempfile::Builder::new()
        .prefix("acr-bench-mirror-")
        .tempdir()?;
    super::set_mode(scratch.path(), 0o755)?;
    let lab = super::Bench {
        rt,
        scratch,
        timeout: Duration::from_secs(900),
        transport: Transport::builder().proxy_from_env(false).build()?,
    };
    let (rt, scratch) = (&lab.rt, &lab.scratch);
    let net = &lab.net(args.wan)?;

    eprintln!(
        "bench: seeding {REPOS} repositories × {} tags …",
        TAGS.len() + 1
    );
    let seeded = Instant::now();
    let catalog = rt.block_on(seed(&net.src_direct, args.quick))?;
    eprintln!(
        "bench: seeded in {:.1} s: {} selected tags, {} distinct blobs, {}",
        seeded.elapsed().as_secs_f64(),
        catalog.digests.len(),
        catalog.blobs,
        human(catalog.bytes)
    );

    let mut notes = Vec::new();
    let mut who = vec![Who::Ours];
    match super::skopeo_isolation() {
        None => notes.push("skopeo is not on PATH: no skopeo column.".to_owned()),
        Some(isolated) => who.push(Who::Skopeo { isolated }),
    }
    let bench = MirrorBench {
        rt,
        scratch: scratch.path(),
        acr,
        catalog,
        timeout: Duration::from_secs(900),
    };

    // The complete target of the re-runs, filled once by ours and checked.
    bench.mirror(Who::Ours, &net.src_host, &net.dst_host, "complete")?;
    bench.verify(&net.dst_direct, "complete")?;

    let mut cells = Vec::new();
    for scenario in [Scenario::First, Scenario::Rerun] {
        cells.extend(bench.scenario(net, &who, runs, scenario));
    }
    notes.extend(notes_for(args, &who));
    let report = Report {
        network: super::network(args.wan),
        runs,
        repositories: REPOS,
        tags: bench.catalog.digests.len(),
        blobs: bench.catalog.blobs,
        bytes: bench.catalog.bytes,
        machine: super::report::machine(),
        load_before,
        load_after: load(),
        versions: super::report::versions(acr),
        results: cells,
        notes,
    };
    let md = markdown(&report);
    println!("{md}");
    let dir = super::target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let suffix = if args.wan { "wan" } else { "lan" };
    std::fs::write(dir.join(format!("mirror-{suffix}.md")), &md)?;
    std::fs::write(
        dir.join(format!("mirror-{suffix}.json")),
        serde_json::to_string_pretty(&report)?,
    )?;
    eprintln!(
        "bench: wrote {}",
        dir.join(format!("mirror-{suffix}.md")).display()
    );
    let failed: usize = report.results.iter().map(|c| c.errors.len()).sum();
    anyhow::ensure!(failed == 0, "{failed} mirror runs failed (see the report)");
    Ok(())
}

fn notes_for(args: &Args, who: &[Who]) -> Vec<String> {
    let mut notes = vec![
        format!(
            "Catalog: {REPOS} repositories with tags {} and {SKIPPED_TAG}; ours selects with \
             `tags: {{semver: \">=1.0, <2\"}}`, skopeo sync with `images-by-tag-regex: ^v1\\.`: \
             both list every repository's tags and copy the same {} tags.",
            TAGS.join(", "),
            REPOS * TAGS.len()
        ),
        "Wall time is spawn to exit. Medians over the timed runs; the contenders run \
         interleaved. Every run is checked: each target tag holds the source's digest."
            .to_owned(),
        "Requests: one extra untimed run per contender and scenario through counting proxies \
         in front of the registries (no latency there)."
            .to_owned(),
    ];
    if who.contains(&Who::Skopeo { isolated: true }) {
        notes.push(
            "skopeo runs as uid 65534 with a fresh HOME per run, so its blob-info cache starts \
             empty."
                .to_owned(),
        );
    }
    if args.wan {
        notes.push(format!(
            "--wan: each registry behind a TCP proxy holding every chunk {} ms per direction.",
            WAN_DELAY.as_millis()
        ));
    }
    notes
}

/// The load average, for the report (the machine is shared).
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Puts `bytes` into `repo`: mounted from `from` when given, uploaded otherwise.
async fn put_blob(
    reg: &Registry,
    repo: &str,
    bytes: &Bytes,
    from: Option<&str>,
) -> anyhow::Result<Digest> {
    let digest = acr_import_transfer::digest_of(DigestAlgorithm::Sha256, bytes);
    if let Some(from) = from
        && let UploadStart::Mounted = reg.start_upload(repo, Some((&digest, from))).await?
    {
        return Ok(digest);
    }
    reg.push_blob(repo, &digest, bytes.clone(), u64::MAX)
        .await?;
    Ok(digest)
}

/// Seeds the catalog.
async fn seed(reg: &Registry, quick: bool) -> anyhow::Result<Catalog> {
    let (base_size, runtime_size, app_size) = if quick {
        (128 * KIB, 32 * KIB, 8 * KIB)
    } else {
        (1024 * KIB, 256 * KIB, 32 * KIB)
    };
    let base = LayerSpec {
        seed: 7000,
        payload: base_size,
    }
    .generate()?;
    let runtimes: Vec<(Bytes, Digest)> = (0..3)
        .map(|i| {
            LayerSpec {
                seed: 7100 + i,
                payload: runtime_size,
            }
            .generate()
        })
        .collect::<anyhow::Result<_>>()?;
    let first = format!("{SOURCE_PREFIX}/r00");
    put_blob(reg, &first, &base.0, None).await?;
    for r in &runtimes {
        put_blob(reg, &first, &r.0, None).await?;
    }
    let repos: Vec<String> = (0..REPOS)
        .map(|i| format!("{SOURCE_PREFIX}/r{i:02}"))
        .collect();
    let per_repo = futures_util::stream::iter(repos.iter().enumerate().map(|(i, repo)| {
        let (base, runtimes, first) = (&base, &runtimes, &first);
        async move {
            let runtime = &runtimes[i % 3];
            let shared = [
                (base, put_blob(reg, repo, &base.0, Some(first)).await?),
                (
                    runtime,
                    put_blob(reg, repo, &runtime.0, Some(first)).await?,
                ),
            ];
            let mut out = Vec::new();
            let all_tags = TAGS.iter().copied().chain([SKIPPED_TAG]);
            for (t, tag) in all_tags.enumerate() {
                let app = LayerSpec {
                    seed: 8000 + (i * 10 + t) as u64,
                    payload: app_size,
                }
                .generate()?;
                let app_digest = put_blob(reg, repo, &app.0, None).await?;
                let mut layers = Vec::new();
                let mut diff_ids = Vec::new();
                let mut blobs = Vec::new();
                for ((bytes, diff_id), digest) in shared
                    .iter()
                    .map(|(l, d)| (*l, d))
                    .chain([(&app, &app_digest)])
                {
                    layers.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest.to_string(), "size": bytes.len()}));
                    diff_ids.push(diff_id.to_string());
                    blobs.push((digest.clone(), bytes.len() as u64));
                }
                let config = Bytes::from(serde_json::to_vec(&serde_json::json!({
                    "architecture": "amd64", "os": "linux", "config": {"Labels": {"tag": tag}},
                    "rootfs": {"type": "layers", "diff_ids": diff_ids},
                }))?);
                let config_digest = put_blob(reg, repo, &config, None).await?;
                blobs.push((config_digest.clone(), config.len() as u64));
                let body = Bytes::from(serde_json::to_vec(&serde_json::json!({
                    "schemaVersion": 2,
                    "mediaType": manifest::OCI_MANIFEST,
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
                    "layers": layers,
                }))?);
                let m = Manifest {
                    digest: acr_import_transfer::digest_of(DigestAlgorithm::Sha256, &body),
                    bytes: body,
                    media_type: manifest::OCI_MANIFEST.to_owned(),
                };
                reg.put_manifest(repo, tag, &m).await?;
                if tag != SKIPPED_TAG {
                    out.push(((repo.clone(), tag.to_owned()), m.digest, blobs));
                }
            }
            anyhow::Ok(out)
        }
    }))
    .buffer_unordered(8)
    .try_collect::<Vec<_>>()
    .await?;
    let mut digests = BTreeMap::new();
    let mut blobs = BTreeMap::new();
    for (key, digest, bs) in per_repo.into_iter().flatten() {
        digests.insert(key, digest);
        for (d, size) in bs {
            blobs.insert(d, size);
        }
    }
    Ok(Catalog {
        repos,
        digests,
        blobs: blobs.len(),
        bytes: blobs.values().sum(),
    })
}

impl MirrorBench<'_> {
    /// Ours' mirror file: one repository entry per source repository.
    fn ours_file(&self, src: &str, prefix: &str) -> String {
        let mut s = String::new();
        for repo in &self.catalog.repos {
            let name = repo.rsplit('/').next().unwrap_or(repo);
            s.push_str(&format!(
                "- source: {src}/{repo}\n  target: {prefix}/{name}\n  tags: {{semver: \">=1.0, <2\"}}\n"
            ));
        }
        s
    }

    /// skopeo sync's YAML source: the same repositories and tags.
    fn skopeo_file(&self, src: &str) -> String {
        let mut s = format!("{src}:\n  tls-verify: false\n  images-by-tag-regex:\n");
        for repo in &self.catalog.repos {
            s.push_str(&format!("    {repo}: '^v1\\.'\n"));
        }
        s
    }

    /// One mirror run of `who` from `src` into `dst`'s `prefix`.
    fn mirror(
        &self,
        who: Who,
        src: &str,
        dst: &str,
        prefix: &str,
    ) -> anyhow::Result<proc::Outcome> {
        let dir = tempfile::Builder::new()
            .prefix("run-")
            .tempdir_in(self.scratch)?;
        let cmd = match who {
            Who::Ours => {
                let file = dir.path().join("mirror.yaml");
                std::fs::write(&file, self.ours_file(src, prefix))?;
                let mut cmd = Command::new(self.acr);
                cmd.args([
                    "import",
                    "-n",
                    dst,
                    "--mode",
                    "client",
                    "-o",
                    "json",
                    "--from-file",
                ])
                .arg(&file);
                cmd
            }
            Who::Skopeo { isolated } => {
                let file = dir.path().join("sync.yaml");
                std::fs::write(&file, self.skopeo_file(src))?;
                let mut cmd = super::skopeo_command(isolated, dir.path())?;
                cmd.args([
                    "sync",
                    "--all",
                    "--src",
                    "yaml",
                    "--dest",
                    "docker",
                    "--dest-tls-verify=false",
                ])
                .arg(&file)
                .arg(format!("{dst}/{prefix}"));
                cmd
            }
        };
        let mut cmd = cmd;
        proc::no_proxy_env(&mut cmd);
        proc::run(cmd, dir.path(), self.timeout, Peak::default())
    }

    /// Every selected tag under `prefix` holds the source's digest.
    fn verify(&self, dst: &Registry, prefix: &str) -> anyhow::Result<()> {
        let wrong: Vec<String> = self.rt.block_on(
            futures_util::stream::iter(self.catalog.digests.iter().map(|((repo, tag), want)| {
                let name = repo.rsplit('/').next().unwrap_or(repo).to_owned();
                async move {
                    let target = format!("{prefix}/{name}");
                    let head = dst.head_manifest(&target, tag).await;
                    match head {
                        Ok(Some(h)) if h.digest.as_ref() == Some(want) => None,
                        other => Some(format!("{target}:{tag}: {other:?}")),
                    }
                }
            }))
            .buffer_unordered(16)
            .filter_map(|x| async move { x })
            .collect(),
        );
        anyhow::ensure!(
            wrong.is_empty(),
            "{} of {} target tags are wrong, e.g. {}",
            wrong.len(),
            self.catalog.digests.len(),
            wrong.first().cloned().unwrap_or_default()
        );
        Ok(())
    }

    fn scenario(&self, net: &Net, who: &[Who], runs: usize, scenario: Scenario) -> Vec<Cell> {
        let mut cells: Vec<Cell> = who
            .iter()
            .map(|w| Cell {
                scenario: scenario.label().to_owned(),
                contender: w.name().to_owned(),
                ..Cell::default()
            })
            .collect();
        for run in 1..=runs {
            for (w, cell) in who.iter().zip(cells.iter_mut()) {
                let prefix = match scenario {
                    Scenario::First => format!("first-{run}-{}", w.slug()),
                    Scenario::Rerun => "complete".to_owned(),
                };
                let result = self
                    .mirror(*w, &net.src_host, &net.dst_host, &prefix)
                    .and_then(|o| {
                        self.verify(&net.dst_direct, &prefix)?;
                        Ok(o)
                    });
                let at = format!("mirror / {} / run {run}/{runs}", scenario.label());
                match result {
                    Ok(o) => {
                        eprintln!("bench: {at}: {:<12} {:>7.2} s", w.name(), o.secs);
                        cell.runs.push(o.secs);
                        cell.peak_rss_mib =
                            super::max_opt(cell.peak_rss_mib, o.peak_kib.map(super::mib));
                    }
                    Err(e) => {
                        eprintln!("bench: {at}: {} FAILED: {e:#}", w.name());
                        cell.errors.push(format!("run {run}: {e:#}"));
                    }
                }
            }
        }
        for (w, cell) in who.iter().zip(cells.iter_mut()) {
            if let Err(e) = self.count(net, *w, scenario, cell) {
                eprintln!("bench: mirror counting run: {} FAILED: {e:#}", w.name());
                cell.errors.push(format!("counting run: {e:#}"));
            }
        }
        for c in cells.iter_mut() {
            (c.median_s, c.min_s, c.max_s) = super::report::spread(&c.runs);
        }
        let skopeo = cells
            .iter()
            .find(|c| c.contender == "skopeo sync")
            .and_then(|c| c.median_s);
        for c in cells.iter_mut() {
            c.ratio_to_skopeo = c.median_s.zip(skopeo).map(|(m, s)| m / s);
        }
        cells
    }

    /// One untimed run through the counting proxies.
    fn count(
        &self,
        net: &Net,
        who: Who,
        scenario: Scenario,
        cell: &mut Cell,
    ) -> anyhow::Result<()> {
        let prefix = match scenario {
            Scenario::First => format!("count-{}", who.slug()),
            Scenario::Rerun => "complete".to_owned(),
        };
        net.src_count.clear_requests();
        net.dst_count.clear_requests();
        self.mirror(who, &net.src_count.host(), &net.dst_count.host(), &prefix)?;
        self.verify(&net.dst_direct, &prefix)?;
        let (src, dst) = (net.src_count.requests(), net.dst_count.requests());
        cell.source_requests = Some(src.len());
        cell.target_requests = Some(dst.len());
        let mut log = String::new();
        for (side, r) in src
            .iter()
            .map(|r| ("src", r))
            .chain(dst.iter().map(|r| ("dst", r)))
        {
            *cell
                .request_kinds
                .entry(format!("{side} {} {}", r.method, r.kind()))
                .or_default() += 1;
            log.push_str(&format!(
                "{side} {} {} -> {}\n",
                r.method,
                r.path,
                or_dash(r.status)
            ));
        }
        let dir = super::target_dir().join("bench").join("requests");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join(format!("mirror-{}-{}.txt", scenario.slug(), who.slug())),
            log,
        )?;
        Ok(())
    }
}

fn markdown(r: &Report) -> String {
    let mut s = format!(
        "# acr-import mirror benchmark\n\nNetwork: {}. Runs: {}. Catalog: {} repositories, {} \
         tags selected, {} distinct blobs ({}).\n\n",
        r.network,
        r.runs,
        r.repositories,
        r.tags,
        r.blobs,
        human(r.bytes)
    );
    s.push_str(&format!(
        "Machine: {} CPUs ({}), {}, Linux {}; load average {} before, {} after.\n\n",
        r.machine.nproc,
        r.machine.cpu,
        r.machine.memory,
        r.machine.kernel,
        r.load_before,
        r.load_after
    ));
    for (k, v) in &r.versions {
        s.push_str(&format!("- {k}: {v}\n"));
    }
    s.push('\n');
    let header = [
        "scenario",
        "contender",
        "median s",
        "min s",
        "max s",
        "× skopeo",
        "peak RSS MiB",
        "source req",
        "target req",
    ];
    let rows: Vec<Vec<String>> = r
        .results
        .iter()
        .map(|c| {
            let mut row = vec![c.scenario.clone(), c.contender.clone()];
            row.extend(spread_cells(c.median_s, c.min_s, c.max_s));
            row.extend([
                f2(c.ratio_to_skopeo),
                f0(c.peak_rss_mib),
                or_dash(c.source_requests),
                or_dash(c.target_requests),
            ]);
            row
        })
        .collect();
    s.push_str(&super::report::table(&header, &rows, 2));
    s.push_str("\nRequests by kind (counting run):\n\n");
    for c in &r.results {
        let kinds: Vec<String> = c
            .request_kinds
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        s.push_str(&format!(
            "- {} / {}: {}\n",
            c.scenario,
            c.contender,
            kinds.join(", ")
        ));
        for e in &c.errors {
            s.push_str(&format!("  - ERROR {e}\n"));
        }
    }
    s.push_str("\nNotes:\n\n");
    for n in &r.notes {
        s.push_str(&format!("- {n}\n"));
    }
    s
}
