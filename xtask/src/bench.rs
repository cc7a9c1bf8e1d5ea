//! `cargo xtask bench`: times our client-side engine (the release `acr` binary) against
//! skopeo and the raw-transfer floor (parallel curl pipelines), on real distribution
//! registries on loopback, optionally behind a 20 ms-per-direction latency proxy (`--wan`).
//!
//! Workloads (seeded, incompressible, pushed into the source registry once with our transfer
//! crate): A, a 3-platform OCI index with 4 distinct layers per platform (1, 8, 32, 64 MiB:
//! 315 MiB in all); B, one image of 40 × 256 KiB layers. Scenarios per workload: a copy into
//! an empty repository of the target registry, a re-copy onto a complete target, and a copy to
//! a new repository of the same registry. Contenders run interleaved (run 1: ours, skopeo,
//! floor, others; run 2: …), each timed from spawn to exit, with its peak RSS polled from
//! `/proc/<pid>/status`. Request counts come from our JSON report and, for every contender,
//! from one extra untimed run through a counting proxy. The floor batches blobs under 4 MiB
//! through files; `--floor-pipes` adds it with a pipeline for every blob.
//!
//! Output: a table on stdout, `target/bench/report.md` and `target/bench/report.json`.
//! Never run in CI as a timed test.

mod data;
mod digest_tags;
mod floor;
mod mirror;
mod proc;
mod report;

use acr_import_tests::Names;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use acr_import_testsupport::{LatencyProxy, Proxy, ProxyOptions, Registry};
use acr_import_transfer::Transport;

use data::{KIB, MIB, Workload, human};
use proc::Peak;
use report::{BigResult, Cell, Report, WorkloadInfo, finish_row};

/// The one-way delay of `--wan`.
const WAN_DELAY: Duration = Duration::from_millis(20);
/// The uid skopeo runs as, so that its blob-info cache lives in a directory of ours.
const NOBODY: &str = "65534";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A smoke run under a minute: small layers, 2 runs.
    #[arg(long)]
    quick: bool,
    /// Put each registry behind a TCP proxy holding every chunk 20 ms per direction (a 40 ms
    /// round trip).
    #[arg(long)]
    wan: bool,
    /// Timed runs per contender and scenario (default 5; 2 with --quick).
    #[arg(long)]
    runs: Option<usize>,
    /// Another contender: 'NAME=COMMAND {src} {dst}', where {src} and {dst} expand to
    /// host/repository:tag references. Repeatable.
    #[arg(long = "contender", value_name = "NAME=COMMAND")]
    contenders: Vec<String>,
    /// Also copy an image with a single 1 GiB layer with ours and report its peak RSS.
    #[arg(long)]
    big: bool,
    /// Also time the floor as the issue words it: every blob, small ones too, as its own
    /// `curl GET | curl PUT` pipeline (the `floor-pipes` contender; ratios stay to `floor`).
    #[arg(long)]
    floor_pipes: bool,
    /// Instead of the image workloads: mirror a generated catalog of 60 repositories × 4 tags
    /// with `acr import --from-file` and with `skopeo sync`, first run and unchanged re-run.
    #[arg(long)]
    mirror: bool,
    /// Instead: time the two ways of finding an image's cosign digest tags (a HEAD per tag,
    /// or one tag listing) on repositories of 10 to 3000 tags.
    #[arg(long)]
    digest_tags: bool,
}

/// Who copies.
#[derive(Debug)]
enum Kind {
    /// The release `acr` binary.
    Ours(PathBuf),
    /// `skopeo copy --all`; as `nobody` with a fresh blob-info cache when `isolated`.
    Skopeo { isolated: bool },
    /// curl pipelines; blobs below `small` bytes through files in two batches.
    Floor { small: u64 },
    /// A command template with `{src}` and `{dst}`.
    Custom(String),
}

#[derive(Debug)]
struct Contender {
    name: String,
    slug: String,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Empty,
    Recopy,
    SameRegistry,
}

impl Scenario {
    const ALL: [Scenario; 3] = [Scenario::Empty, Scenario::Recopy, Scenario::SameRegistry];

    fn label(self) -> &'static str {
        match self {
            Scenario::Empty => "empty target",
            Scenario::Recopy => "re-copy (complete target)",
            Scenario::SameRegistry => "same registry, new repo",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Scenario::Empty => "empty",
            Scenario::Recopy => "recopy",
            Scenario::SameRegistry => "same",
        }
    }
}

/// One copy to do.
#[derive(Debug)]
struct Job<'a> {
    src: &'a str,
    src_repo: &'a str,
    dst: &'a str,
    dst_repo: &'a str,
    tag: &'a str,
    workload: &'a Workload,
}

/// What one copy did.
#[derive(Debug, Default)]
struct Done {
    secs: f64,
    peak_kib: Option<u64>,
    /// Requests as the contender itself reports them (ours: its JSON; floor: its curls).
    requests: Option<u64>,
    retried: Option<u64>,
    /// Ours: blobs copied/mounted/skipped.
    blobs: Option<String>,
    /// Whether it found the target complete (ours and the floor tell).
    up_to_date: Option<bool>,
}

/// Where the registries are.
struct Net {
    /// `lan` or `wan`.
    label: &'static str,
    /// What contenders address (the latency proxies with `--wan`).
    src_host: String,
    dst_host: String,
    /// Direct handles, for seeding and checking.
    src_direct: acr_import_transfer::Registry,
    dst_direct: acr_import_transfer::Registry,
    /// Counting proxies straight in front of the registries.
    src_count: Proxy,
    dst_count: Proxy,
    /// The latency proxies (`--wan`) and the registries, kept running.
    _latency: Option<(LatencyProxy, LatencyProxy)>,
    _registries: (Registry, Registry),
}

/// Everything the runs share.
struct Bench {
    rt: tokio::runtime::Runtime,
    scratch: tempfile::TempDir,
    timeout: Duration,
    transport: Transport,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.digest_tags {
        return digest_tags::run(args.wan, args.runs.unwrap_or(5).max(1));
    }
    anyhow::ensure!(
        proc::first_line("curl", &["--version"]).is_some(),
        "curl is needed for the floor"
    );
    let runs = args.runs.unwrap_or(if args.quick { 2 } else { 5 }).max(1);
    let mut notes = Vec::new();

    eprintln!("bench: building the release acr …");
    let acr = crate::build_acr(true)?;
    if args.mirror {
        return mirror::run(&args, &acr);
    }
    let bench_started = Instant::now();

    let contenders = contenders(&args, &acr, &mut notes)?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let scratch = tempfile::Builder::new().prefix("acr-bench-").tempdir()?;
    set_mode(scratch.path(), 0o755)?;
    let bench = Bench {
        rt,
        scratch,
        timeout: Duration::from_secs(if args.big { 1800 } else { 900 }),
        transport: Transport::builder().proxy_from_env(false).build()?,
    };

    let net = bench.net(args.wan)?;
    let workloads = bench.seed(&net, args.quick)?;
    let mut cells: Vec<Cell> = Vec::new();
    for w in &workloads {
        for scenario in Scenario::ALL {
            cells.extend(bench.scenario(&net, &contenders, runs, w, scenario)?);
        }
    }

    let big = if args.big {
        Some(
            bench.big(
                &contenders[0],
                &net,
                cells
                    .iter()
                    .filter(|c| c.workload == "A" && c.contender == "ours")
                    .filter_map(|c| c.peak_rss_mib)
                    .reduce(f64::max),
            )?,
        )
    } else {
        None
    };

    notes.extend(report::notes(args.wan.then_some(WAN_DELAY)));
    let report = Report {
        network: network(args.wan),
        quick: args.quick,
        runs,
        machine: report::machine(),
        versions: report::versions(&acr),
        workloads: workloads.iter().map(WorkloadInfo::of).collect(),
        results: cells,
        big,
        notes,
    };
    report.write(args.wan, args.quick, bench_started)
}

impl Bench {
    /// Two registries, behind latency proxies with `wan`, and a counting proxy in front of each.
    fn net(&self, wan: bool) -> anyhow::Result<Net> {
        eprintln!("bench: starting two registries …");
        let (src_reg, dst_reg) = self.rt.block_on(async {
            let a = Registry::start().await?;
            let b = Registry::start().await?;
            anyhow::Ok((a, b))
        })?;
        let latency = if wan {
            Some(self.rt.block_on(async {
                let a = LatencyProxy::start(src_reg.addr(), WAN_DELAY).await?;
                let b = LatencyProxy::start(dst_reg.addr(), WAN_DELAY).await?;
                anyhow::Ok((a, b))
            })?)
        } else {
            None
        };
        let (src_host, dst_host) = match &latency {
            Some((a, b)) => (a.host(), b.host()),
            None => (src_reg.host(), dst_reg.host()),
        };
        let (src_count, dst_count) = self.rt.block_on(async {
            let a = Proxy::start(src_reg.addr(), ProxyOptions::default()).await?;
            let b = Proxy::start(dst_reg.addr(), ProxyOptions::default()).await?;
            anyhow::Ok((a, b))
        })?;
        Ok(Net {
            label: if wan { "wan" } else { "lan" },
            src_host,
            dst_host,
            src_direct: self.transport.registry(&src_reg.url())?,
            dst_direct: self.transport.registry(&dst_reg.url())?,
            src_count,
            dst_count,
            _latency: latency,
            _registries: (src_reg, dst_reg),
        })
    }

    /// Workloads A and B, pushed into the source registry (smaller with `quick`).
    fn seed(&self, net: &Net, quick: bool) -> anyhow::Result<Vec<Workload>> {
        eprintln!("bench: seeding the workloads …");
        let seeded = Instant::now();
        let (a_sizes, b_count, b_size) = if quick {
            (vec![64 * KIB, 512 * KIB, 2 * MIB, 4 * MIB], 40, 16 * KIB)
        } else {
            (vec![MIB, 8 * MIB, 32 * MIB, 64 * MIB], 40, 256 * KIB)
        };
        let src = &net.src_direct;
        let workloads = self.rt.block_on(async {
            let a = data::seed_index(src, "bench/multi", "v1", &a_sizes).await?;
            let b = data::seed_image("B", src, "bench/layers", "v1", b_count, b_size, 2000).await?;
            anyhow::Ok(vec![a, b])
        })?;
        eprintln!(
            "bench: seeded {} in {:.1} s",
            workloads
                .iter()
                .map(|w| format!("{}: {}", w.key, human(w.bytes())))
                .collect::<Vec<_>>()
                .join(", "),
            seeded.elapsed().as_secs_f64()
        );
        Ok(workloads)
    }

    /// A fresh directory under the scratch dir.
    fn scratch_dir(&self, prefix: &str) -> anyhow::Result<tempfile::TempDir> {
        Ok(tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(self.scratch.path())?)
    }

    /// Runs one copy with contender `c`.
    fn copy(&self, c: &Contender, job: &Job<'_>) -> anyhow::Result<Done> {
        let src = format!("{}/{}:{}", job.src, job.src_repo, job.tag);
        let dst = format!("{}/{}:{}", job.dst, job.dst_repo, job.tag);
        let dir = self.scratch_dir("run-")?;
        match &c.kind {
            Kind::Ours(bin) => {
                let mut cmd = Command::new(bin);
                proc::no_proxy_env(&mut cmd);
                cmd.args(["import", "-n", job.dst, "--source", &src, "-t"])
                    .arg(format!("{}:{}", job.dst_repo, job.tag))
                    .args(["--mode", "client", "-o", "json"]);
                let out = proc::run(cmd, dir.path(), self.timeout, Peak::default())?;
                let report: serde_json::Value = serde_json::from_str(&out.stdout).map_err(|e| {
                    anyhow::anyhow!("ours printed no JSON report ({e}): {}", out.stdout)
                })?;
                let requests = report["requests"]
                    .as_object()
                    .map(|m| m.values().filter_map(serde_json::Value::as_u64).sum());
                let t = &report["totals"];
                Ok(Done {
                    secs: out.secs,
                    peak_kib: out.peak_kib,
                    requests,
                    retried: report["retried_requests"].as_u64(),
                    up_to_date: report["up_to_date"].as_bool(),
                    blobs: Some(format!(
                        "{}/{}/{}",
                        t["blobs_copied"], t["blobs_mounted"], t["blobs_skipped"]
                    )),
                })
            }
            Kind::Skopeo { isolated } => {
                let mut cmd = skopeo_command(*isolated, dir.path())?;
                proc::no_proxy_env(&mut cmd);
                cmd.args([
                    "copy",
                    "--all",
                    "--quiet",
                    "--src-tls-verify=false",
                    "--dest-tls-verify=false",
                ])
                .arg(format!("docker://{src}"))
                .arg(format!("docker://{dst}"));
                let out = proc::run(cmd, dir.path(), self.timeout, Peak::default())?;
                Ok(Done {
                    secs: out.secs,
                    peak_kib: out.peak_kib,
                    ..Done::default()
                })
            }
            Kind::Floor { small } => {
                let mut peak = Peak::default();
                let started = Instant::now();
                let f = floor::FloorCopy {
                    small: *small,
                    src: job.src,
                    src_repo: job.src_repo,
                    dst: job.dst,
                    dst_repo: job.dst_repo,
                    tag: job.tag,
                    workload: job.workload,
                    scratch: dir.path(),
                };
                let out = floor::copy(&f, &mut peak, started + self.timeout)?;
                Ok(Done {
                    secs: started.elapsed().as_secs_f64(),
                    peak_kib: peak.kib(),
                    requests: Some(out.requests),
                    up_to_date: Some(out.up_to_date),
                    ..Done::default()
                })
            }
            Kind::Custom(template) => {
                let line = template.replace("{src}", &src).replace("{dst}", &dst);
                let simple = !line.contains(['|', ';', '&', '<', '>', '(', '`', '\n']);
                let mut cmd = Command::new("sh");
                proc::no_proxy_env(&mut cmd);
                // `exec` keeps the measured pid the contender's own (for its RSS); a shell
                // line is measured with its descendants.
                cmd.arg("-c")
                    .arg(if simple { format!("exec {line}") } else { line });
                let peak = if simple {
                    Peak::default()
                } else {
                    Peak::with_descendants()
                };
                let out = proc::run(cmd, dir.path(), self.timeout, peak)?;
                Ok(Done {
                    secs: out.secs,
                    peak_kib: out.peak_kib,
                    ..Done::default()
                })
            }
        }
    }

    /// One scenario of one workload: the timed runs, interleaved, then one counting run per
    /// contender.
    fn scenario(
        &self,
        net: &Net,
        contenders: &[Contender],
        runs: usize,
        w: &Workload,
        scenario: Scenario,
    ) -> anyhow::Result<Vec<Cell>> {
        let complete = format!("bench/{}-complete", w.key.to_ascii_lowercase());
        if scenario == Scenario::Recopy {
            // The complete target, copied once, untimed.
            let job = Job {
                src: &net.src_host,
                src_repo: &w.repo,
                dst: &net.dst_host,
                dst_repo: &complete,
                tag: &w.tag,
                workload: w,
            };
            let floor = contenders
                .iter()
                .find(|c| c.slug == "floor")
                .ok_or_else(|| anyhow::anyhow!("no floor contender"))?;
            self.copy(floor, &job)?;
            self.verify(&net.dst_direct, &complete, w)?;
        }
        let repo_for = |c: &Contender, run: &str| match scenario {
            Scenario::Recopy => complete.clone(),
            s => format!(
                "bench/{}-{}-{}-{run}",
                w.key.to_ascii_lowercase(),
                s.slug(),
                c.slug
            ),
        };
        let mut row: Vec<Cell> = contenders
            .iter()
            .map(|c| Cell {
                workload: w.key.to_owned(),
                scenario: scenario.label().to_owned(),
                contender: c.name.clone(),
                ..Cell::default()
            })
            .collect();
        let (dst, direct) = match scenario {
            Scenario::SameRegistry => (&net.src_host, &net.src_direct),
            _ => (&net.dst_host, &net.dst_direct),
        };
        for run in 1..=runs {
            for (c, cell) in contenders.iter().zip(row.iter_mut()) {
                let dst_repo = repo_for(c, &run.to_string());
                let job = Job {
                    src: &net.src_host,
                    src_repo: &w.repo,
                    dst,
                    dst_repo: &dst_repo,
                    tag: &w.tag,
                    workload: w,
                };
                let result = self.copy(c, &job).and_then(|d| {
                    self.verify(direct, &dst_repo, w)?;
                    let recopy = scenario == Scenario::Recopy;
                    anyhow::ensure!(
                        d.up_to_date.is_none_or(|u| u == recopy),
                        "it reported up_to_date = {:?} (expected {recopy})",
                        d.up_to_date
                    );
                    Ok(d)
                });
                let at = format!("{} / {} / run {run}/{runs}", w.key, scenario.label());
                match result {
                    Ok(d) => {
                        eprintln!(
                            "bench: {at}: {:<8} {:>7.2} s  {:>6} MiB{}",
                            c.name,
                            d.secs,
                            d.peak_kib
                                .map_or_else(|| "-".to_owned(), |k| format!("{:.0}", mib(k))),
                            d.requests
                                .map(|r| format!("  {r} requests"))
                                .unwrap_or_default()
                        );
                        cell.runs.push(d.secs);
                        cell.peak_rss_mib = max_opt(cell.peak_rss_mib, d.peak_kib.map(mib));
                        if matches!(c.kind, Kind::Ours(_)) {
                            if let Some(r) = d.requests {
                                cell.ours_requests.push(r);
                            }
                            if let Some(r) = d.retried {
                                *cell.retried_requests.get_or_insert(0) += r;
                            }
                            cell.blobs = d.blobs;
                        }
                    }
                    Err(e) => {
                        eprintln!("bench: {at}: {} FAILED: {e:#}", c.name);
                        cell.errors.push(format!("run {run}: {e:#}"));
                    }
                }
            }
        }
        for (c, cell) in contenders.iter().zip(row.iter_mut()) {
            let dst_repo = repo_for(c, "count");
            if let Err(e) = self.count(net, c, cell, w, scenario, &dst_repo) {
                eprintln!(
                    "bench: {} / {} / counting run: {} FAILED: {e:#}",
                    w.key,
                    scenario.label(),
                    c.name
                );
                cell.errors.push(format!("counting run: {e:#}"));
            }
        }
        finish_row(&mut row);
        Ok(row)
    }

    /// One untimed copy through the counting proxies: requests and bytes into `cell`, the
    /// request log into `target/bench/requests/`.
    fn count(
        &self,
        net: &Net,
        c: &Contender,
        cell: &mut Cell,
        w: &Workload,
        scenario: Scenario,
        dst_repo: &str,
    ) -> anyhow::Result<()> {
        let same = scenario == Scenario::SameRegistry;
        let (dst_proxy, direct) = if same {
            (&net.src_count, &net.src_direct)
        } else {
            (&net.dst_count, &net.dst_direct)
        };
        net.src_count.clear_requests();
        net.dst_count.clear_requests();
        let (src_h, dst_h) = (net.src_count.host(), dst_proxy.host());
        let job = Job {
            src: &src_h,
            src_repo: &w.repo,
            dst: &dst_h,
            dst_repo,
            tag: &w.tag,
            workload: w,
        };
        self.copy(c, &job)?;
        self.verify(direct, dst_repo, w)?;
        let src_seen = net.src_count.requests();
        let dst_seen = if same {
            Vec::new()
        } else {
            net.dst_count.requests()
        };
        let seen: Vec<(&str, &acr_import_testsupport::RecordedRequest)> = src_seen
            .iter()
            .map(|r| ("src", r))
            .chain(dst_seen.iter().map(|r| ("dst", r)))
            .collect();
        cell.proxy_requests = Some(seen.len() as u64);
        cell.proxy_mib = Some(
            seen.iter()
                .map(|(_, r)| r.request_body_bytes + r.response_body_bytes)
                .sum::<u64>() as f64
                / MIB as f64,
        );
        let log: String = seen
            .iter()
            .map(|(side, r)| {
                format!(
                    "{side} {} {} -> {} ({} B up, {} B down)\n",
                    r.method,
                    r.path,
                    r.status.map_or_else(|| "-".to_owned(), |s| s.to_string()),
                    r.request_body_bytes,
                    r.response_body_bytes
                )
            })
            .collect();
        let dir = target_dir().join("bench").join("requests");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join(format!(
                "{}-{}-{}-{}.txt",
                net.label,
                w.key.to_ascii_lowercase(),
                scenario.slug(),
                c.slug
            )),
            log,
        )?;
        Ok(())
    }

    /// The target tag names the workload's digest (the registry checked, on every manifest
    /// `PUT`, that what it references is there).
    fn verify(
        &self,
        reg: &acr_import_transfer::Registry,
        repo: &str,
        w: &Workload,
    ) -> anyhow::Result<()> {
        let head = self
            .rt
            .block_on(reg.head_manifest(&repo.repo(), &w.tag.at()))?;
        let digest = head.and_then(|h| h.digest);
        anyhow::ensure!(
            digest.as_ref() == Some(&w.top.digest),
            "the target {repo}:{} holds {digest:?}, not {}",
            w.tag,
            w.top.digest
        );
        Ok(())
    }

    /// Seeds a single 1 GiB layer and copies it once with ours.
    fn big(
        &self,
        ours: &Contender,
        net: &Net,
        peak_on_a: Option<f64>,
    ) -> anyhow::Result<BigResult> {
        eprintln!("bench: seeding a 1 GiB layer …");
        let w = self.rt.block_on(data::seed_image(
            "big",
            &net.src_direct,
            "bench/big",
            "v1",
            1,
            1024 * MIB,
            3000,
        ))?;
        let job = Job {
            src: &net.src_host,
            src_repo: &w.repo,
            dst: &net.dst_host,
            dst_repo: "bench/big-copy",
            tag: &w.tag,
            workload: &w,
        };
        let d = self.copy(ours, &job)?;
        self.verify(&net.dst_direct, "bench/big-copy", &w)?;
        eprintln!(
            "bench: big: ours {:.2} s, peak RSS {} MiB",
            d.secs,
            d.peak_kib
                .map_or_else(|| "-".into(), |k| format!("{:.0}", mib(k)))
        );
        Ok(BigResult {
            layer: human(w.bytes()),
            secs: d.secs,
            peak_rss_mib: d.peak_kib.map(mib),
            requests: d.requests,
            peak_rss_mib_on_a: peak_on_a,
        })
    }
}

/// Ours, skopeo (when installed), the floor and the `--contender`s, in run order.
fn contenders(args: &Args, acr: &Path, notes: &mut Vec<String>) -> anyhow::Result<Vec<Contender>> {
    let mut contenders = vec![Contender {
        name: "ours".into(),
        slug: "ours".into(),
        kind: Kind::Ours(acr.to_owned()),
    }];
    if let Some(isolated) = skopeo_isolation() {
        notes.push(if isolated {
            "skopeo runs as uid 65534 (setpriv) with a fresh HOME/XDG_DATA_HOME per copy, so its \
             blob-info cache starts empty: it cannot mount blobs it saw in earlier runs (it \
             does not mount in the same-registry scenario either, as a cold client)."
                .to_owned()
        } else {
            "skopeo runs as this user: its blob-info cache persists across runs and may turn \
             copies into mounts of earlier runs' blobs."
                .to_owned()
        });
        contenders.push(Contender {
            name: "skopeo".into(),
            slug: "skopeo".into(),
            kind: Kind::Skopeo { isolated },
        });
    } else {
        notes.push("skopeo is not on PATH: no skopeo column.".to_owned());
    }
    contenders.push(Contender {
        name: "floor".into(),
        slug: "floor".into(),
        kind: Kind::Floor {
            small: floor::SMALL,
        },
    });
    if args.floor_pipes {
        contenders.push(Contender {
            name: "floor-pipes".into(),
            slug: "floor-pipes".into(),
            kind: Kind::Floor { small: 0 },
        });
        notes.push(
            "floor-pipes: the floor with every blob, however small, in its own `curl GET | \
             curl PUT` pipeline, as the issue words the floor; ratios are to `floor`, which \
             batches blobs under 4 MiB."
                .to_owned(),
        );
    }
    for spec in &args.contenders {
        let (name, template) = spec
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--contender wants NAME=COMMAND, got `{spec}`"))?;
        let slug: String = name
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        anyhow::ensure!(
            !slug.is_empty() && contenders.iter().all(|c| c.slug != slug),
            "--contender name `{name}` is empty or taken"
        );
        contenders.push(Contender {
            name: name.to_owned(),
            slug,
            kind: Kind::Custom(template.to_owned()),
        });
    }

    Ok(contenders)
}

/// What `--wan` or its absence means, for a report.
fn network(wan: bool) -> String {
    if wan {
        format!(
            "wan: {} ms each way in front of both registries",
            WAN_DELAY.as_millis()
        )
    } else {
        "loopback".to_owned()
    }
}

/// `None` when skopeo is not on PATH; otherwise whether it can run as [`NOBODY`] (with a
/// fresh blob-info cache per run).
fn skopeo_isolation() -> Option<bool> {
    proc::first_line("skopeo", &["--version"])?;
    let isolated = Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            "skopeo",
            "--version",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    Some(isolated)
}

/// `skopeo`, as [`NOBODY`] with `dir` for its home and caches when `isolated`.
fn skopeo_command(isolated: bool, dir: &Path) -> anyhow::Result<Command> {
    if !isolated {
        return Ok(Command::new("skopeo"));
    }
    set_mode(dir, 0o777)?;
    let mut cmd = Command::new("setpriv");
    cmd.args([
        &format!("--reuid={NOBODY}"),
        &format!("--regid={NOBODY}"),
        "--clear-groups",
        "skopeo",
    ]);
    for v in [
        "HOME",
        "XDG_DATA_HOME",
        "XDG_RUNTIME_DIR",
        "XDG_CONFIG_HOME",
        "TMPDIR",
    ] {
        cmd.env(v, dir);
    }
    Ok(cmd)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target"))
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn mib(kib: u64) -> f64 {
    kib as f64 / KIB as f64
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}
