//! The floor: the same copy as a handful of parallel `curl` pipelines, with no request a
//! copier could do without. What a copier can hope to reach.
//!
//! 1. `GET` the source's tagged manifest and `HEAD` the target's tag, in parallel; stop when
//!    the target already has that digest.
//! 2. In parallel: for every blob, `POST` an upload session on the target (or, when source
//!    and target are the same registry, `POST ?mount=&from=`, which is the whole copy), and
//!    `GET` every child manifest from the source.
//! 3. For every blob, in parallel: `curl GET` of the source blob piped into `curl PUT
//!    ?digest=` on the session (streamed with chunked encoding: `-T -`, not
//!    `--data-binary @-`, which would read the whole blob into memory first).
//! 4. `PUT` the child manifests (in parallel), then the tagged manifest under its tag.
//!
//! The floor knows the blob list from the workload instead of parsing the manifests.

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use acr_import_reference::DigestAlgorithm;

use super::data::Workload;
use super::proc::{Peak, no_proxy_env, tail, wait_all};

const ACCEPT: &str = "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// One floor copy.
#[derive(Debug)]
pub struct FloorCopy<'a> {
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
}

/// What a floor copy did.
#[derive(Debug, Default)]
pub struct FloorOutcome {
    /// Requests sent (one per curl process).
    pub requests: u64,
    /// The target already had the image.
    pub up_to_date: bool,
}

fn curl() -> Command {
    let mut c = Command::new("curl");
    no_proxy_env(&mut c);
    c.args(["-sS", "--fail", "--noproxy", "*"]);
    c
}

/// Spawns every command (stdout and stderr piped), waits for all, and returns their stdouts;
/// an error naming the first that failed.
fn run_all(
    cmds: Vec<(String, Command, Option<Vec<u8>>)>,
    peak: &mut Peak,
    deadline: Instant,
) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut labels = Vec::new();
    let mut children: Vec<Child> = Vec::new();
    for (label, mut cmd, input) in cmds {
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
            // Manifests only: a few KiB, well within the pipe buffer.
            stdin.write_all(&bytes)?;
        }
        labels.push(label);
        children.push(child);
    }
    collect(labels, children, peak, deadline)
}

fn collect(
    labels: Vec<String>,
    mut children: Vec<Child>,
    peak: &mut Peak,
    deadline: Instant,
) -> anyhow::Result<Vec<Vec<u8>>> {
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

fn upload_url(dst: &str, location: &str, digest: &str) -> String {
    let base = if location.starts_with("http://") || location.starts_with("https://") {
        location.to_owned()
    } else {
        format!("http://{dst}{location}")
    };
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}digest={digest}")
}

/// Runs the floor copy; `peak` gets the largest RSS of any of its curl processes.
pub fn copy(f: &FloorCopy<'_>, peak: &mut Peak, deadline: Instant) -> anyhow::Result<FloorOutcome> {
    let w = f.workload;
    let same_registry = f.src == f.dst;
    let mut requests = 0u64;

    // 1. The source's manifest and the target's tag.
    let mut get_top = curl();
    get_top
        .args(["-H", ACCEPT])
        .arg(format!("http://{}/v2/{}/manifests/{}", f.src, f.src_repo, f.tag));
    let mut head = curl();
    head.args(["-I", "-o", "/dev/null", "-w", "%header{docker-content-digest}"])
        .args(["-H", ACCEPT])
        .arg(format!("http://{}/v2/{}/manifests/{}", f.dst, f.dst_repo, f.tag))
        // A 404 is an answer here, not a failure.
        .args(["--no-fail"]);
    let outs = run_all(
        vec![
            ("GET source manifest".into(), get_top, None),
            ("HEAD target tag".into(), head, None),
        ],
        peak,
        deadline,
    )?;
    requests += 2;
    let top = outs[0].clone();
    let top_digest = acr_import_transfer::digest_of(DigestAlgorithm::Sha256, &top).to_string();
    anyhow::ensure!(
        top_digest == w.top.digest.to_string(),
        "floor: the source's manifest is {top_digest}, expected {}",
        w.top.digest
    );
    if String::from_utf8_lossy(&outs[1]).trim() == top_digest {
        return Ok(FloorOutcome {
            requests,
            up_to_date: true,
        });
    }

    // 2. Upload sessions (or mounts) and the child manifests.
    let mut cmds = Vec::new();
    for b in &w.blobs {
        let mut post = curl();
        post.args(["-X", "POST", "-o", "/dev/null"]);
        if same_registry {
            post.args(["-w", "%{http_code}"]).arg(format!(
                "http://{}/v2/{}/blobs/uploads/?mount={}&from={}",
                f.dst, f.dst_repo, b.digest, f.src_repo
            ));
        } else {
            post.args(["-w", "%header{location}"])
                .arg(format!("http://{}/v2/{}/blobs/uploads/", f.dst, f.dst_repo));
        }
        cmds.push((format!("POST upload {}", b.digest), post, None));
    }
    for c in &w.children {
        let mut get = curl();
        get.args(["-H", ACCEPT]).arg(format!(
            "http://{}/v2/{}/manifests/{}",
            f.src, f.src_repo, c.digest
        ));
        cmds.push((format!("GET manifest {}", c.digest), get, None));
    }
    let outs = run_all(cmds, peak, deadline)?;
    requests += outs.len() as u64;
    let (sessions, children) = outs.split_at(w.blobs.len());

    // 3. The bytes: GET piped into PUT, every blob at once.
    if same_registry {
        for (b, code) in w.blobs.iter().zip(sessions) {
            let code = String::from_utf8_lossy(code);
            anyhow::ensure!(
                code.trim() == "201",
                "floor: mounting {} answered {code}",
                b.digest
            );
        }
    } else {
        let mut labels = Vec::new();
        let mut procs = Vec::new();
        for (b, location) in w.blobs.iter().zip(sessions) {
            let location = String::from_utf8_lossy(location).trim().to_owned();
            anyhow::ensure!(
                !location.is_empty(),
                "floor: no upload Location for {}",
                b.digest
            );
            let mut get = curl();
            get.arg(format!(
                "http://{}/v2/{}/blobs/{}",
                f.src, f.src_repo, b.digest
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
            let mut get = get.spawn()?;
            let body = get
                .stdout
                .take()
                .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
            let mut put = curl();
            put.args(["-T", "-", "-o", "/dev/null"])
                .args(["-H", "Content-Type: application/octet-stream", "-H", "Expect:"])
                .arg(upload_url(f.dst, &location, &b.digest.to_string()))
                .stdin(Stdio::from(body))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let put = put.spawn()?;
            labels.push(format!("GET blob {}", b.digest));
            procs.push(get);
            labels.push(format!("PUT blob {}", b.digest));
            procs.push(put);
        }
        requests += procs.len() as u64;
        collect(labels, procs, peak, deadline)?;
    }

    // 4. Manifests: the children, then the tagged one.
    let mut puts = Vec::new();
    for (c, bytes) in w.children.iter().zip(children) {
        let mut put = curl();
        put.args(["-X", "PUT", "--data-binary", "@-", "-o", "/dev/null"])
            .args(["-H", &format!("Content-Type: {}", c.media_type)])
            .args(["-H", "Expect:"])
            .arg(format!(
                "http://{}/v2/{}/manifests/{}",
                f.dst, f.dst_repo, c.digest
            ));
        puts.push((format!("PUT manifest {}", c.digest), put, Some(bytes.clone())));
    }
    if !puts.is_empty() {
        requests += puts.len() as u64;
        run_all(puts, peak, deadline)?;
    }
    let mut put = curl();
    put.args(["-X", "PUT", "--data-binary", "@-", "-o", "/dev/null"])
        .args(["-H", &format!("Content-Type: {}", w.top.media_type)])
        .args(["-H", "Expect:"])
        .arg(format!(
            "http://{}/v2/{}/manifests/{}",
            f.dst, f.dst_repo, f.tag
        ));
    run_all(
        vec![("PUT tagged manifest".into(), put, Some(top))],
        peak,
        deadline,
    )?;
    requests += 1;
    Ok(FloorOutcome {
        requests,
        up_to_date: false,
    })
}
