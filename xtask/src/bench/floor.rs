//! The floor: the same copy as parallel `curl` transfers, with no request a copier could do
//! without. What a copier can hope to reach.
//!
//! 1. `GET` the source's tagged manifest and `HEAD` the target's tag, in parallel; stop when
//!    the target already has that digest.
//! 2. In parallel: for every blob, `POST` an upload session on the target (or, when source
//!    and target are the same registry, `POST ?mount=&from=`, which is the whole copy), and
//!    `GET` every child manifest from the source.
//! 3. For every blob of 4 MiB or more, in parallel: `curl GET` of the source blob piped into
//!    `curl -T -` (a streamed `PUT ?digest=` with chunked encoding; `--data-binary @-` would
//!    read the whole blob into memory before sending) on the session. Smaller blobs, where a
//!    process per request costs more than the bytes, go through files: one `curl --parallel`
//!    fetches them all, one uploads them all (`PUT ?digest=` with `Content-Length`), while
//!    the pipelines run.
//! 4. `PUT` the child manifests (in parallel), then the tagged manifest under its tag.
//!
//! Steps 1, 2 and each half of 4 are one `curl --parallel` process each (its transfers share
//! connections); step 3 is two processes per large blob and two for all small ones. The floor knows the blob list from the
//! workload instead of parsing the manifests.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use acr_import_reference::DigestAlgorithm;

use super::data::Workload;
use super::proc::{Peak, no_proxy_env, tail, wait_all};

const ACCEPT: &str = "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Blobs below this size are fetched into files and uploaded in two batches.
pub const SMALL: u64 = 4 * 1024 * 1024;

/// What `curl -w` prints for every transfer of a batch: status, URL, the two headers we use.
const WRITE_OUT: &str =
    "%{http_code}\t%{url_effective}\t%header{location}\t%header{docker-content-digest}\n";

/// One floor copy.
#[derive(Debug)]
pub struct FloorCopy<'a> {
    /// Blobs below this size go through files in two batches ([`SMALL`]; 0: none do).
    pub small: u64,
    /// Source `host:port`.
    pub src: &'a str,
    /// Source repository.
    pub src_repo: &'a str,
    /// Target `host:port`.
    pub dst: &'a str,
    /// Target repository.
    pub dst_repo: &'a str,
    /// The tag (same on both sides).
    pub tag: &'a str,
    /// What is copied.
    pub workload: &'a Workload,
    /// A directory for manifests in flight.
    pub scratch: &'a Path,
}

/// What a floor copy did.
#[derive(Debug, Default)]
pub struct FloorOutcome {
    /// Requests sent (one per transfer).
    pub requests: u64,
    /// The target already had the image.
    pub up_to_date: bool,
}

fn curl() -> Command {
    let mut c = Command::new("curl");
    no_proxy_env(&mut c);
    c.args(["-sS", "--no-progress-meter", "--noproxy", "*"]);
    c
}

/// One transfer's `-w` line.
#[derive(Debug)]
struct Answer {
    status: u16,
    url: String,
    location: String,
    digest: String,
}

/// One `curl --parallel` process running `transfers` (each its own options, URL last).
fn batch_command(transfers: &[Vec<String>]) -> Command {
    let mut cmd = curl();
    cmd.args([
        "--parallel",
        "--parallel-immediate",
        "--parallel-max",
        "100",
    ]);
    for (i, t) in transfers.iter().enumerate() {
        if i > 0 {
            cmd.args(["--next", "-sS", "--no-progress-meter", "--noproxy", "*"]);
        }
        cmd.args(["-w", WRITE_OUT]).args(t);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// The `-w` lines of a batch, in the order of `transfers` (matched by URL, which must be
/// unique unless those transfers are interchangeable).
fn parse_answers(transfers: &[Vec<String>], out: &[u8]) -> anyhow::Result<Vec<Answer>> {
    let mut answers: Vec<Option<Answer>> = Vec::new();
    answers.resize_with(transfers.len(), || None);
    for line in String::from_utf8_lossy(out).lines() {
        let mut f = line.split('\t');
        let a = Answer {
            status: f.next().and_then(|s| s.parse().ok()).unwrap_or(0),
            url: f.next().unwrap_or_default().to_owned(),
            location: f.next().unwrap_or_default().trim().to_owned(),
            digest: f.next().unwrap_or_default().trim().to_owned(),
        };
        // The first free slot whose transfer has this URL.
        let slot = transfers
            .iter()
            .zip(answers.iter())
            .position(|(t, a2)| a2.is_none() && t.last().is_some_and(|u| *u == a.url))
            .ok_or_else(|| anyhow::anyhow!("floor: an answer for an unknown URL {}", a.url))?;
        answers[slot] = Some(a);
    }
    answers
        .into_iter()
        .zip(transfers)
        .map(|(a, t)| {
            a.ok_or_else(|| anyhow::anyhow!("floor: no answer for {}", t.last().map_or("?", |u| u)))
        })
        .collect()
}

/// Runs `transfers` in one `curl --parallel` process and returns their answers.
fn batch(
    transfers: &[Vec<String>],
    peak: &mut Peak,
    deadline: Instant,
) -> anyhow::Result<Vec<Answer>> {
    let child = batch_command(transfers).spawn()?;
    let out = collect(vec!["curl --parallel".into()], vec![child], peak, deadline)?;
    parse_answers(transfers, &out[0])
}

/// Waits for `children` (stdout and stderr piped) and returns their stdouts; an error naming
/// the first that failed.
fn collect(
    labels: Vec<String>,
    mut children: Vec<Child>,
    peak: &mut Peak,
    deadline: Instant,
) -> anyhow::Result<Vec<Vec<u8>>> {
    // Stdout of a batch is one short line per transfer, of a PUT empty: within the pipe
    // buffer, so reading after the exit cannot deadlock.
    let statuses = wait_all(&mut children, peak, deadline)?;
    let mut outs = Vec::new();
    for ((label, mut child), status) in labels.into_iter().zip(children).zip(statuses) {
        let mut out = Vec::new();
        if let Some(mut s) = child.stdout.take() {
            std::io::Read::read_to_end(&mut s, &mut out)?;
        }
        let mut err = String::new();
        if let Some(mut s) = child.stderr.take() {
            std::io::Read::read_to_string(&mut s, &mut err)?;
        }
        anyhow::ensure!(
            status.success(),
            "floor: {label}: curl {status}: {}",
            tail(&err)
        );
        outs.push(out);
    }
    Ok(outs)
}

fn expect(a: &Answer, status: u16, what: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.status == status,
        "floor: {what} answered {} (expected {status})",
        a.status
    );
    Ok(())
}

fn upload_url(dst: &str, location: &str, digest: &str) -> String {
    let base = if location.starts_with("http://") || location.starts_with("https://") {
        location.to_owned()
    } else {
        format!("http://{dst}{location}")
    };
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}digest={digest}")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Runs the floor copy; `peak` gets the largest RSS of any of its curl processes.
pub fn copy(f: &FloorCopy<'_>, peak: &mut Peak, deadline: Instant) -> anyhow::Result<FloorOutcome> {
    let w = f.workload;
    let file = |name: String| f.scratch.join(name).to_string_lossy().into_owned();
    let top_file = file("top.json".into());
    let mut requests = 2;
    if target_is_current(f, &top_file, peak, deadline)? {
        return Ok(FloorOutcome {
            requests,
            up_to_date: true,
        });
    }
    let child_files: Vec<String> = (0..w.children.len())
        .map(|i| file(format!("child-{i}.json")))
        .collect();
    let sessions = sessions_and_children(f, &child_files, peak, deadline)?;
    requests += (sessions.len() + child_files.len()) as u64;
    if f.src == f.dst {
        for a in &sessions {
            expect(a, 201, "a mount")?;
        }
    } else {
        requests += blobs(f, &sessions, &file, peak, deadline)?;
    }
    requests += manifests(f, &top_file, &child_files, peak, deadline)?;
    Ok(FloorOutcome {
        requests,
        up_to_date: false,
    })
}

/// Step 1, the source's manifest (into `top_file`) and the target's tag (two requests): whether
/// the target's tag is the source's manifest already.
fn target_is_current(
    f: &FloorCopy<'_>,
    top_file: &str,
    peak: &mut Peak,
    deadline: Instant,
) -> anyhow::Result<bool> {
    let w = f.workload;
    let mut get = args(&["-H", ACCEPT, "-o", top_file]);
    get.push(format!(
        "http://{}/v2/{}/manifests/{}",
        f.src, f.src_repo, f.tag
    ));
    let mut head = args(&["-I", "-o", "/dev/null", "-H", ACCEPT]);
    head.push(format!(
        "http://{}/v2/{}/manifests/{}",
        f.dst, f.dst_repo, f.tag
    ));
    let answers = batch(&[get, head], peak, deadline)?;
    expect(&answers[0], 200, "GET of the source manifest")?;
    let top = std::fs::read(top_file)?;
    let top_digest = acr_import_transfer::digest_of(DigestAlgorithm::Sha256, &top).to_string();
    anyhow::ensure!(
        top_digest == w.top.digest.to_string(),
        "floor: the source's manifest is {top_digest}, expected {}",
        w.top.digest
    );
    Ok(answers[1].status == 200 && answers[1].digest == top_digest)
}

/// Step 2, upload sessions (or mounts, on the same registry) and the child manifests (into
/// `child_files`): the sessions' answers, one per blob.
fn sessions_and_children(
    f: &FloorCopy<'_>,
    child_files: &[String],
    peak: &mut Peak,
    deadline: Instant,
) -> anyhow::Result<Vec<Answer>> {
    let w = f.workload;
    let mut phase = Vec::new();
    for b in &w.blobs {
        let mut t = args(&["-X", "POST", "-o", "/dev/null"]);
        t.push(if f.src == f.dst {
            format!(
                "http://{}/v2/{}/blobs/uploads/?mount={}&from={}",
                f.dst, f.dst_repo, b.digest, f.src_repo
            )
        } else {
            format!("http://{}/v2/{}/blobs/uploads/", f.dst, f.dst_repo)
        });
        phase.push(t);
    }
    for (c, path) in w.children.iter().zip(child_files) {
        let mut t = args(&["-H", ACCEPT, "-o", path]);
        t.push(format!(
            "http://{}/v2/{}/manifests/{}",
            f.src, f.src_repo, c.digest
        ));
        phase.push(t);
    }
    let mut sessions = batch(&phase, peak, deadline)?;
    for a in sessions.split_off(w.blobs.len()) {
        expect(&a, 200, "GET of a child manifest")?;
    }
    Ok(sessions)
}

/// Step 3, the bytes, every blob at once: large ones as GET piped into PUT, small ones (where
/// a process per request would cost more than the transfer) in two batches through files.
/// Returns the requests sent.
fn blobs(
    f: &FloorCopy<'_>,
    sessions: &[Answer],
    file: &dyn Fn(String) -> String,
    peak: &mut Peak,
    deadline: Instant,
) -> anyhow::Result<u64> {
    let mut requests = 0;
    let mut labels = Vec::new();
    let mut procs = Vec::new();
    let mut small_get = Vec::new();
    let mut small_put = Vec::new();
    for (i, (b, a)) in f.workload.blobs.iter().zip(sessions).enumerate() {
        expect(a, 202, "opening an upload session")?;
        anyhow::ensure!(
            !a.location.is_empty(),
            "floor: an upload session without Location"
        );
        let blob_url = format!("http://{}/v2/{}/blobs/{}", f.src, f.src_repo, b.digest);
        let put_url = upload_url(f.dst, &a.location, b.digest.as_str());
        if b.size < f.small {
            let path = file(format!("blob-{i}"));
            small_get.push(vec!["-o".to_owned(), path.clone(), blob_url]);
            let mut t = args(&["-T", &path, "-o", "/dev/null", "-H", "Expect:", "-H"]);
            t.push("Content-Type: application/octet-stream".to_owned());
            t.push(put_url);
            small_put.push(t);
            continue;
        }
        let (get, put) = pipeline(&blob_url, &put_url)?;
        labels.push(format!("GET blob {}", b.digest));
        procs.push(get);
        labels.push(format!("PUT blob {}", b.digest));
        procs.push(put);
    }
    requests += procs.len() as u64;
    if !small_get.is_empty() {
        // The pipelines run on while the small blobs are fetched.
        let get = batch_command(&small_get).spawn()?;
        let out = collect(vec!["GET small blobs".into()], vec![get], peak, deadline)?;
        for a in parse_answers(&small_get, &out[0])? {
            expect(&a, 200, "GET of a blob")?;
        }
        labels.push("PUT small blobs".into());
        procs.push(batch_command(&small_put).spawn()?);
        requests += 2 * small_get.len() as u64;
    }
    let outs = collect(labels, procs, peak, deadline)?;
    if !small_put.is_empty() {
        for a in parse_answers(&small_put, outs.last().map_or(&[][..], Vec::as_slice))? {
            expect(&a, 201, "PUT of a blob")?;
        }
    }
    Ok(requests)
}

/// `curl GET blob_url | curl PUT put_url`, both started.
fn pipeline(blob_url: &str, put_url: &str) -> anyhow::Result<(Child, Child)> {
    let mut get = curl();
    get.arg("--fail")
        .arg(blob_url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut get = get.spawn()?;
    let body = get
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut put = curl();
    put.args(["--fail", "-T", "-", "-o", "/dev/null"])
        .args([
            "-H",
            "Content-Type: application/octet-stream",
            "-H",
            "Expect:",
        ])
        .arg(put_url)
        .stdin(Stdio::from(body))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Ok((get, put.spawn()?))
}

/// Step 4, manifests: the children, then the tagged one. Returns the requests sent.
fn manifests(
    f: &FloorCopy<'_>,
    top_file: &str,
    child_files: &[String],
    peak: &mut Peak,
    deadline: Instant,
) -> anyhow::Result<u64> {
    let w = f.workload;
    let mut requests = 0;
    let put_manifest = |path: &str, media_type: &str, reference: &str| {
        let mut t = args(&["-X", "PUT", "--data-binary"]);
        t.push(format!("@{path}"));
        t.extend(args(&["-o", "/dev/null", "-H", "Expect:", "-H"]));
        t.push(format!("Content-Type: {media_type}"));
        t.push(format!(
            "http://{}/v2/{}/manifests/{reference}",
            f.dst, f.dst_repo
        ));
        t
    };
    if !w.children.is_empty() {
        let phase: Vec<Vec<String>> = w
            .children
            .iter()
            .zip(child_files)
            .map(|(c, path)| put_manifest(path, &c.media_type, c.digest.as_str()))
            .collect();
        let answers = batch(&phase, peak, deadline)?;
        requests += answers.len() as u64;
        for a in &answers {
            expect(a, 201, "PUT of a child manifest")?;
        }
    }
    let answers = batch(
        &[put_manifest(top_file, &w.top.media_type, f.tag)],
        peak,
        deadline,
    )?;
    requests += 1;
    expect(&answers[0], 201, "PUT of the tagged manifest")?;
    Ok(requests)
}
