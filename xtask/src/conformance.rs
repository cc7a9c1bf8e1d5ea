//! `cargo xtask conformance`: two suites, run through our own transport and copy engine.
//!
//! 1. **Registry conformance** ([`registry_suite`]): the OCI distribution specification —
//!    pull, push, content discovery, content management and the error codes — checked
//!    against a registry: the local distribution registry the task starts (default), or any
//!    registry given with `--registry` (read-only checks only, unless `--allow-writes REPO`).
//!    Where a registry deviates from the spec, the check says `registry deviation: …` and how
//!    our transport copes. Deviations each registry kind is known for are listed, with
//!    reasons, in `xtask/conformance-expected.json`; an unexpected deviation and an
//!    unexpected pass both fail the run, so the list stays true. The same file can list
//!    `known_failures` (bugs of ours awaiting a fix): reported, not failing the run, until
//!    they pass.
//! 2. **Copy conformance** ([`copy_suite`]): a generated matrix of images copied registry →
//!    registry, registry → OCI layout → registry, and within one registry, each verified
//!    byte for byte with our client and cross-checked with `skopeo inspect --raw`.
//!
//! 3. **Registry personalities** ([`personalities`]): the copy matrix again against each
//!    registry personality of the test support — Docker Hub, GHCR, MCR, ECR, Quay and ACR as
//!    their documentation and known client issues describe them — as the target and as the
//!    source (`out-of-registry`), and a check per registry manner (pulls counted once, a CDN
//!    that gets no credentials, schema 1 refused, the referrers API…). What a registry's
//!    manners make deviate is listed under `personalities` in the same file, with reasons
//!    (an entry may end with `*` to cover the checks it prefixes).
//!
//! The output is a table per suite (check, result, time) and, as the last line,
//! `N passed, N failed`; the exit status is non-zero when anything failed. Apart from the
//! timings the output is deterministic: ports and temporary paths are never printed.

mod copy_suite;
mod personalities;
mod raw;
mod registry_suite;

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use acr_import_auth::{Credential, CredentialProvider, Secret, StaticCredentials};
use acr_import_transfer::{RetryPolicy, Transport};
use anyhow::Context as _;

/// `cargo xtask conformance` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Check this registry (`host[:port]`, or `https://…`/`http://…` to fix the scheme)
    /// instead of a local distribution registry started for the run.
    #[arg(long, value_name = "URL")]
    registry: Option<String>,
    /// Username for `--registry`.
    #[arg(long, requires = "registry")]
    username: Option<String>,
    /// Read the password (or token) for `--username` from standard input.
    #[arg(long, requires = "username")]
    password_stdin: bool,
    /// Allow writes to this repository (and repositories below it, `REPO/…`) of
    /// `--registry`: the push, delete and copy checks run there. The local registry always
    /// allows writes (to `REPO`, default `conformance`).
    #[arg(long, value_name = "REPO")]
    allow_writes: Option<String>,
    /// An existing repository for the read-only checks of `--registry` (default: the image
    /// the write checks push, with `--allow-writes`).
    #[arg(long, requires = "reference")]
    repository: Option<String>,
    /// The tag or digest in `--repository` the read-only checks read.
    #[arg(long, requires = "repository")]
    reference: Option<String>,
    /// The registry kind whose expected deviations apply (default: from the host:
    /// `distribution` for the local registry, `acr` for *.azurecr.io, `ghcr` for ghcr.io,
    /// `dockerhub` for Docker Hub, else `other`).
    #[arg(long)]
    kind: Option<String>,
    /// Reach `--registry` over plain http / without certificate verification.
    #[arg(long)]
    insecure: bool,
    /// The expected-deviations file.
    #[arg(long, value_name = "FILE")]
    expected: Option<PathBuf>,
    /// Run only checks whose name contains this text.
    #[arg(long)]
    filter: Option<String>,
    /// Run only one suite.
    #[arg(long, value_enum)]
    suite: Option<SuiteName>,
    /// Run the copy matrix against these registry personalities (dockerhub, ghcr, mcr, ecr,
    /// quay, acr), `all` or `none`. Repeatable. Default: all with the local registry, none
    /// with `--registry`.
    #[arg(long = "personality", value_name = "NAME")]
    personalities: Vec<String>,
    /// Also write a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

/// The two suites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SuiteName {
    /// The OCI distribution spec checks.
    Registry,
    /// The copy matrix.
    Copy,
}

/// What a check found.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// As the spec says; with an optional note.
    Pass(String),
    /// The registry deviates from the spec, and our transport copes (the text says how).
    Deviation(String),
    /// Wrong.
    Fail(String),
    /// Not run, and why.
    Skip(String),
}

/// One row of a suite's table.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub status: Status,
    pub detail: String,
    pub elapsed: Duration,
}

/// The verdict of a row, after the expectations are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    ExpectedDeviation,
    Fail,
    /// Failed, and listed in `known_failures`: reported, but the run does not fail.
    KnownFailure,
    Skip,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::ExpectedDeviation => "deviation (expected)",
            Status::Fail => "FAIL",
            Status::KnownFailure => "FAIL (known)",
            Status::Skip => "skip",
        }
    }
}

/// The expected-deviations file: per registry kind, the registry checks it is known to
/// deviate on, with the reason.
#[derive(Debug, serde::Deserialize)]
struct ExpectedFile {
    kinds: BTreeMap<String, KindEntry>,
    /// Per registry personality, the checks its manners make deviate, with the reason.
    #[serde(default)]
    personalities: BTreeMap<String, KindEntry>,
    /// Checks that fail because of a bug of ours, with the reason.
    #[serde(default)]
    known_failures: BTreeMap<String, String>,
}

#[derive(Debug, serde::Deserialize)]
pub struct KindEntry {
    #[serde(default)]
    deviations: BTreeMap<String, String>,
}

/// Replaces run-specific text (ports, temporary paths) with stable placeholders.
#[derive(Debug, Clone, Default)]
pub struct Scrub {
    pairs: Vec<(String, String)>,
}

impl Scrub {
    pub fn add(&mut self, from: impl Into<String>, to: impl Into<String>) {
        let from = from.into();
        if !from.is_empty() {
            self.pairs.push((from, to.into()));
        }
    }

    pub fn apply(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (from, to) in &self.pairs {
            out = out.replace(from, to);
        }
        out
    }
}

/// Everything a suite needs about the registry it writes to and reads from.
pub struct Setup {
    /// The transport for the registry under test.
    pub transport: Transport,
    /// The transport for the local registries (no proxy, fast retries).
    pub local_transport: Transport,
    pub credentials: Arc<dyn CredentialProvider>,
    /// For skopeo: `user:password`, when `--username` was given.
    pub basic: Option<(String, String)>,
    pub insecure_hosts: Vec<String>,
    /// The registry under test, as addressed (`host[:port]` or with a scheme).
    pub address: String,
    /// Whether the registry under test is the local one.
    pub local: bool,
    /// The repository writes go to, when allowed.
    pub write_repo: Option<String>,
    /// An existing image to read, from `--repository`/`--reference`.
    pub read_image: Option<(String, String)>,
    pub filter: Option<String>,
}

impl Setup {
    pub fn selected(&self, name: &str) -> bool {
        self.filter.as_deref().is_none_or(|f| name.contains(f))
    }
}

/// Runs a check future, turning an error into a failure, and times it.
pub async fn timed<F>(fut: F) -> (Outcome, Duration)
where
    F: std::future::Future<Output = anyhow::Result<Outcome>>,
{
    let started = Instant::now();
    let outcome = match fut.await {
        Ok(o) => o,
        Err(e) => Outcome::Fail(format!("{e:#}")),
    };
    (outcome, started.elapsed())
}

/// The `cargo xtask conformance` task.
pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?;
    let failed = runtime.block_on(run_async(args))?;
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

async fn run_async(args: Args) -> anyhow::Result<usize> {
    let started = Instant::now();
    let (expected_path, expected) = ExpectedFile::load(&args)?;
    let kinds = personalities::selected(&args.personalities, args.registry.is_some())?;
    let remote_host = args.registry.as_deref().map(host_of);
    let kind = match (&args.kind, &remote_host) {
        (Some(k), _) => k.clone(),
        (None, None) => "distribution".to_owned(),
        (None, Some(h)) => kind_of_host(h).to_owned(),
    };
    let deviations = expected
        .kinds
        .get(&kind)
        .map(|k| k.deviations.clone())
        .with_context(|| {
            format!(
                "{} has no entry for registry kind `{kind}` (known: {})",
                expected_path.display(),
                expected
                    .kinds
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;

    // The local registries: the source of the copy matrix, and (by default) the registry
    // under test, which is also the copy target.
    let run_registry = args.suite != Some(SuiteName::Copy);
    let run_copy = args.suite != Some(SuiteName::Registry);
    let (source_server, target_server) =
        tokio::join!(start_local(run_copy), start_local(args.registry.is_none()));
    let (source_server, target_server) = (source_server?, target_server?);
    let mut scrub = Scrub::default();
    if let Some(s) = &source_server {
        scrub.add(s.host(), "<source>");
    }
    if let Some(t) = &target_server {
        scrub.add(t.host(), "<registry>");
    }
    let (address, description) = match (&args.registry, &target_server) {
        (Some(r), _) => (r.clone(), r.clone()),
        (None, Some(t)) => (
            t.url(),
            format!("local distribution registry ({})", registry_version()),
        ),
        (None, None) => unreachable!("a local registry is started without --registry"),
    };
    let setup = Setup::new(&args, remote_host.as_deref(), address)?;

    println!("acr-import conformance");
    println!("registry under test: {description}");
    println!(
        "registry kind: {kind} ({} expected deviation{} in {})",
        deviations.len(),
        if deviations.len() == 1 { "" } else { "s" },
        expected_path
            .strip_prefix(crate::workspace_root())
            .unwrap_or(&expected_path)
            .display()
    );
    println!(
        "writes: {}",
        match &setup.write_repo {
            Some(r) => format!("repository `{r}` and below"),
            None => "none (read-only: pass --allow-writes REPO)".to_owned(),
        }
    );

    let mut suites: Vec<(&str, Vec<Row>)> = Vec::new();
    if run_registry {
        println!();
        println!("Registry conformance: the OCI distribution spec, through our transport");
        let outcomes = registry_suite::run(&setup).await;
        let rows = judge_all(outcomes, &deviations, &expected.known_failures, &kind);
        print_table(&rows, &scrub);
        suites.push(("registry", rows));
    }
    if run_copy {
        println!();
        println!(
            "Copy conformance: the image matrix through our copy engine, verified byte for byte"
        );
        let source = source_server
            .as_ref()
            .context("the source registry is started for the copy suite")?;
        let layouts = tempfile::Builder::new()
            .prefix("acr-import-conformance-")
            .tempdir()?;
        scrub.add(layouts.path().display().to_string(), "<layouts>");
        let outcomes = copy_suite::run(&setup, &source.url(), layouts.path()).await;
        let rows = judge_all(outcomes, &BTreeMap::new(), &expected.known_failures, &kind);
        print_table(&rows, &scrub);
        suites.push(("copy", rows));
        for kind in kinds {
            let rows = personalities::suite(
                kind,
                &setup,
                &source.url(),
                layouts.path(),
                &expected.personalities,
                &expected.known_failures,
                &mut scrub,
            )
            .await;
            print_table(&rows, &scrub);
            suites.push((kind.name(), rows));
        }
    }

    if let Some(path) = &args.junit {
        write_junit(path, &suites, &scrub)
            .with_context(|| format!("writing the JUnit report {}", path.display()))?;
        println!();
        println!("JUnit report: {}", path.display());
    }
    let failed = summary(&suites, started);
    drop(source_server);
    drop(target_server);
    Ok(failed)
}

/// A local registry, when `wanted`.
async fn start_local(wanted: bool) -> anyhow::Result<Option<acr_import_testsupport::Registry>> {
    Ok(if wanted {
        Some(acr_import_testsupport::Registry::start().await?)
    } else {
        None
    })
}

impl ExpectedFile {
    /// Reads `--expected` (or `xtask/conformance-expected.json`) and checks that every
    /// check it names is one.
    fn load(args: &Args) -> anyhow::Result<(PathBuf, ExpectedFile)> {
        let path = args
            .expected
            .clone()
            .unwrap_or_else(|| crate::workspace_root().join("xtask/conformance-expected.json"));
        let expected: ExpectedFile = serde_json::from_slice(
            &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("parsing {}", path.display()))?;
        let is_registry_check = |name: &str| registry_suite::CHECKS.iter().any(|c| c.name == name);
        for name in expected.known_failures.keys() {
            anyhow::ensure!(
                is_registry_check(name)
                    || copy_suite::check_names().contains(name)
                    || personalities::all_check_names().contains(name),
                "{}: `known_failures` lists `{name}`, which is no check",
                path.display()
            );
        }
        for (kind, entry) in &expected.kinds {
            for name in entry.deviations.keys() {
                anyhow::ensure!(
                    is_registry_check(name),
                    "{}: kind `{kind}` lists a deviation for `{name}`, which is no registry check",
                    path.display()
                );
            }
        }
        personalities::check_expected(&expected.personalities)
            .with_context(|| format!("{}: `personalities`", path.display()))?;
        Ok((path, expected))
    }
}

impl Setup {
    /// The transports and what the suites may do, from the arguments: the registry at
    /// `address` (`remote_host`, signed in with `--username`, unless it is the local one).
    fn new(args: &Args, remote_host: Option<&str>, address: String) -> anyhow::Result<Self> {
        let password = if args.password_stdin {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the password from standard input")?;
            Some(text.trim_end_matches(['\r', '\n']).to_owned())
        } else {
            None
        };
        let mut creds = StaticCredentials::new();
        let mut basic = None;
        if let (Some(host), Some(user)) = (remote_host, &args.username) {
            let password = password.unwrap_or_default();
            creds.insert(
                host,
                Credential::from_username_password(user.clone(), Secret::new(password.clone())),
            );
            basic = Some((user.clone(), password));
        }
        let credentials: Arc<dyn CredentialProvider> = Arc::new(creds);
        let insecure_hosts: Vec<String> = match (remote_host, args.insecure) {
            (Some(h), true) => vec![h.to_owned()],
            _ => Vec::new(),
        };
        let mut builder = Transport::builder()
            .credentials(credentials.clone())
            .idle_timeout(Duration::from_secs(60))
            .retry(RetryPolicy {
                max_retries: 2,
                base_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(2),
            });
        for h in &insecure_hosts {
            builder = builder.insecure_host(h.clone());
        }
        let local_transport = local_transport(StaticCredentials::new())?;
        let local = args.registry.is_none();
        Ok(Setup {
            transport: if local {
                local_transport.clone()
            } else {
                builder.build()?
            },
            local_transport,
            credentials,
            basic,
            insecure_hosts,
            address,
            local,
            write_repo: match (&args.allow_writes, local) {
                (Some(r), _) => Some(r.clone()),
                (None, true) => Some("conformance".to_owned()),
                (None, false) => None,
            },
            read_image: args.repository.clone().zip(args.reference.clone()),
            filter: args.filter.clone(),
        })
    }
}

/// A transport to loopback registries (no proxy), signed in with `credentials`, fast retries.
fn local_transport(credentials: StaticCredentials) -> anyhow::Result<Transport> {
    let credentials: Arc<dyn CredentialProvider> = Arc::new(credentials);
    Ok(Transport::builder()
        .credentials(credentials)
        .proxy_from_env(false)
        .idle_timeout(Duration::from_secs(60))
        .retry(RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_secs(1),
        })
        .build()?)
}

/// Prints the totals of every suite; returns how many checks failed.
fn summary(suites: &[(&str, Vec<Row>)], started: Instant) -> usize {
    let all: Vec<&Row> = suites.iter().flat_map(|(_, r)| r.iter()).collect();
    let count = |status: Status| all.iter().filter(|r| r.status == status).count();
    let deviated = count(Status::ExpectedDeviation);
    let known = count(Status::KnownFailure);
    let (passed, failed, skipped) = (
        count(Status::Pass) + deviated,
        count(Status::Fail),
        count(Status::Skip),
    );
    println!();
    println!(
        "{} checks in {:.1} s: {deviated} expected registry deviation{}, {known} known failure{}, {skipped} skipped",
        all.len(),
        started.elapsed().as_secs_f64(),
        if deviated == 1 { "" } else { "s" },
        if known == 1 { "" } else { "s" },
    );
    println!("{passed} passed, {failed} failed");
    failed
}

/// [`judge`] for each of a suite's outcomes.
fn judge_all(
    outcomes: Vec<(impl AsRef<str>, Outcome, Duration)>,
    deviations: &BTreeMap<String, String>,
    known_failures: &BTreeMap<String, String>,
    kind: &str,
) -> Vec<Row> {
    outcomes
        .into_iter()
        .map(|(name, outcome, elapsed)| {
            judge(
                name.as_ref(),
                outcome,
                elapsed,
                deviations,
                known_failures,
                kind,
            )
        })
        .collect()
}

/// Applies the expected deviations to what a check found.
fn judge(
    name: &str,
    outcome: Outcome,
    elapsed: Duration,
    deviations: &BTreeMap<String, String>,
    known_failures: &BTreeMap<String, String>,
    kind: &str,
) -> Row {
    if let Some(reason) = known_failures.get(name) {
        let (status, detail) = match outcome {
            Outcome::Fail(text) => (
                Status::KnownFailure,
                format!("known failure ({reason}): {text}"),
            ),
            Outcome::Skip(why) => (Status::Skip, why),
            Outcome::Pass(_) | Outcome::Deviation(_) => (
                Status::Fail,
                format!(
                    "unexpected pass: conformance-expected.json lists this as a known failure \
                     ({reason}); remove the entry"
                ),
            ),
        };
        return Row {
            name: name.to_owned(),
            status,
            detail,
            elapsed,
        };
    }
    let expected = deviation_for(deviations, name);
    let (status, detail) = match (outcome, expected) {
        (Outcome::Skip(why), _) => (Status::Skip, why),
        (Outcome::Pass(note), None) => (Status::Pass, note),
        (Outcome::Pass(note), Some(reason)) => (
            Status::Fail,
            format!(
                "unexpected pass: conformance-expected.json lists a deviation of `{kind}` here \
                 ({reason}); remove it if the registry is fixed{}",
                if note.is_empty() {
                    String::new()
                } else {
                    format!(". {note}")
                }
            ),
        ),
        (Outcome::Deviation(text), Some(_)) => (Status::ExpectedDeviation, text),
        (Outcome::Deviation(text), None) => (
            Status::Fail,
            format!(
                "unexpected deviation (not listed for `{kind}` in conformance-expected.json): {text}"
            ),
        ),
        (Outcome::Fail(text), Some(reason)) => (
            Status::Fail,
            format!(
                "{text} (a deviation is expected here — {reason} — but our transport did not cope)"
            ),
        ),
        (Outcome::Fail(text), None) => (Status::Fail, text),
    };
    Row {
        name: name.to_owned(),
        status,
        detail,
        elapsed,
    }
}

/// The expected deviation of `name`: its own entry, or an entry ending with `*` that
/// prefixes it.
fn deviation_for<'a>(deviations: &'a BTreeMap<String, String>, name: &str) -> Option<&'a String> {
    deviations.get(name).or_else(|| {
        deviations
            .iter()
            .find(|(k, _)| k.strip_suffix('*').is_some_and(|p| name.starts_with(p)))
            .map(|(_, v)| v)
    })
}

fn print_table(rows: &[Row], scrub: &Scrub) {
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(5).max(5) + 2;
    println!("{:<width$}{:<22}{:>8}", "CHECK", "RESULT", "TIME");
    for r in rows {
        println!(
            "{:<width$}{:<22}{:>8}",
            r.name,
            r.status.label(),
            format_time(r)
        );
        if !r.detail.is_empty() {
            for line in wrap(&scrub.apply(&r.detail), 100) {
                println!("    {line}");
            }
        }
    }
}

fn format_ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

fn format_time(r: &Row) -> String {
    if r.status == Status::Skip {
        "-".to_owned()
    } else {
        format_ms(r.elapsed)
    }
}

/// Wraps text at word boundaries.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.lines() {
        let mut line = String::new();
        for word in paragraph.split(' ') {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        lines.push(line);
    }
    lines
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

fn write_junit(path: &Path, suites: &[(&str, Vec<Row>)], scrub: &Scrub) -> anyhow::Result<()> {
    let count = |rows: &[Row], s: Status| rows.iter().filter(|r| r.status == s).count();
    let seconds = |rows: &[Row]| rows.iter().map(|r| r.elapsed.as_secs_f64()).sum::<f64>();
    let all: Vec<Row> = suites.iter().flat_map(|(_, r)| r.iter().cloned()).collect();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str(&format!(
        "<testsuites name=\"conformance\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">\n",
        all.len(),
        count(&all, Status::Fail),
        count(&all, Status::Skip),
        seconds(&all)
    ));
    for (suite, rows) in suites {
        xml.push_str(&format!(
            "  <testsuite name=\"{suite}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">\n",
            rows.len(),
            count(rows, Status::Fail),
            count(rows, Status::Skip),
            seconds(rows)
        ));
        for r in rows {
            let detail = xml_escape(&scrub.apply(&r.detail));
            xml.push_str(&format!(
                "    <testcase classname=\"conformance.{suite}\" name=\"{}\" time=\"{:.3}\"",
                xml_escape(&r.name),
                r.elapsed.as_secs_f64()
            ));
            match r.status {
                Status::Pass if detail.is_empty() => xml.push_str("/>\n"),
                Status::Pass | Status::ExpectedDeviation => xml.push_str(&format!(
                    ">\n      <system-out>{detail}</system-out>\n    </testcase>\n"
                )),
                Status::Skip => xml.push_str(&format!(
                    ">\n      <skipped message=\"{detail}\"/>\n    </testcase>\n"
                )),
                Status::Fail | Status::KnownFailure => xml.push_str(&format!(
                    ">\n      <failure message=\"{}\">{detail}</failure>\n    </testcase>\n",
                    xml_escape(&scrub.apply(r.detail.lines().next().unwrap_or_default()))
                )),
            }
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    std::fs::write(path, xml)?;
    Ok(())
}

/// `host[:port]` of a `--registry` value (scheme and trailing slash dropped, lowercase).
fn host_of(registry: &str) -> String {
    registry
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_ascii_lowercase()
}

fn kind_of_host(host: &str) -> &'static str {
    let bare = host.split(':').next().unwrap_or(host);
    if [".azurecr.io", ".azurecr.cn", ".azurecr.us"]
        .iter()
        .any(|s| bare.ends_with(s))
    {
        "acr"
    } else if bare == "ghcr.io" {
        "ghcr"
    } else if ["docker.io", "index.docker.io", "registry-1.docker.io"].contains(&bare) {
        "dockerhub"
    } else {
        "other"
    }
}

/// `docker-registry --version`, as the local registry's description.
fn registry_version() -> String {
    acr_import_testsupport::registry_binary()
        .ok()
        .and_then(|bin| {
            std::process::Command::new(bin)
                .arg("--version")
                .output()
                .ok()
        })
        .map(|o| {
            // `<argv0> github.com/docker/distribution 2.8.2+ds1`: drop the path of argv0.
            let text = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            match text.split_once(' ') {
                Some((_, rest)) => format!("docker-registry {rest}"),
                None => text,
            }
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "docker-registry".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_deviations_judge_every_check_they_prefix() {
        let deviations: BTreeMap<String, String> = [(
            "ecr/copy/same-registry/*".to_owned(),
            "no mounts".to_owned(),
        )]
        .into();
        let none = BTreeMap::new();
        let row =
            |name: &str, o: Outcome| judge(name, o, Duration::ZERO, &deviations, &none, "ecr");
        let deviated = row(
            "ecr/copy/same-registry/docker-v2",
            Outcome::Deviation("uploaded".into()),
        );
        assert_eq!(deviated.status, Status::ExpectedDeviation);
        let passed = row(
            "ecr/copy/same-registry/helm-chart",
            Outcome::Pass(String::new()),
        );
        assert_eq!(passed.status, Status::Fail, "an unexpected pass fails");
        let unlisted = row(
            "ecr/copy/registry-to-registry/docker-v2",
            Outcome::Deviation("uploaded".into()),
        );
        assert_eq!(unlisted.status, Status::Fail, "an unlisted deviation fails");
    }

    #[test]
    fn the_expected_file_names_only_real_checks() {
        let path = crate::workspace_root().join("xtask/conformance-expected.json");
        let file: ExpectedFile = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        personalities::check_expected(&file.personalities).unwrap();
        let bogus: BTreeMap<String, KindEntry> = [(
            "ecr".to_owned(),
            KindEntry {
                deviations: [("copy/nowhere/*".to_owned(), "x".to_owned())].into(),
            },
        )]
        .into();
        assert!(personalities::check_expected(&bogus).is_err());
    }
}
