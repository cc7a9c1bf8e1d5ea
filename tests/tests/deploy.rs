//! `deploy/kubernetes/mirror-job.yaml` is what the Kubernetes API accepts and runs the shards
//! it says: each document parses into the real API type (k8s-openapi, `batch/v1` `Job` and
//! `CronJob`, `v1` `ConfigMap`, `Secret`, `ServiceAccount`) with no field left over, the pods
//! pass `--shard $(JOB_COMPLETION_INDEX)/N` with N the Job's completions and the index variable
//! defined, and the ConfigMap's mirror file is one `acr import --from-file` reads.

use std::path::PathBuf;

use acr_import_acr::mirror::{MirrorEntry, MirrorFile};
use k8s_openapi::api::batch::v1::{CronJob, Job, JobSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Secret, ServiceAccount};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn manifest() -> Vec<Value> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes/mirror-job.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .collect()
}

/// The first path (`spec.template.…`) where `original` holds something `typed` lost.
fn lost(original: &Value, typed: &Value, at: &str) -> Option<String> {
    match (original, typed) {
        (Value::Object(a), Value::Object(b)) => a.iter().find_map(|(k, v)| {
            let here = format!("{at}.{k}");
            match b.get(k) {
                None => Some(here),
                Some(w) => lost(v, w, &here),
            }
        }),
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (v, w))| lost(v, w, &format!("{at}[{i}]"))),
        (a, b) if a == b => None,
        _ => Some(at.to_owned()),
    }
}

/// Parses `doc` as `T`, refusing any field that `T` does not have (its serialized form must
/// hold everything the document says).
fn strict<T: DeserializeOwned + serde::Serialize>(doc: &Value) -> T {
    let typed: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{} {}: {e}", doc["kind"], doc["metadata"]["name"]));
    let back = serde_json::to_value(&typed).unwrap();
    if let Some(path) = lost(doc, &back, "") {
        panic!(
            "{} {}: `{path}` is not a field of the API type (misspelt or misplaced)",
            doc["kind"], doc["metadata"]["name"]
        );
    }
    typed
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// The pod's container runs `import --from-file F --shard $(JOB_COMPLETION_INDEX)/N` with N
/// the completions, the index variable from the completion-index annotation.
fn check_shards(spec: &JobSpec) -> String {
    assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
    let n = spec.completions.expect("completions");
    assert!(n >= 1);
    assert!(spec.parallelism.unwrap_or(1) <= n);
    let pod = spec.template.spec.as_ref().expect("pod spec");
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    let c: &Container = &pod.containers[0];
    let args = c.args.as_ref().expect("args");
    assert_eq!(args[0], "import");
    let at = args.iter().position(|a| a == "--shard").expect("--shard");
    assert_eq!(args[at + 1], format!("$(JOB_COMPLETION_INDEX)/{n}"));
    let env = c.env.as_ref().expect("env");
    let index = env
        .iter()
        .find(|e| e.name == "JOB_COMPLETION_INDEX")
        .expect("JOB_COMPLETION_INDEX is defined, so that $(…) expands");
    let field = index
        .value_from
        .as_ref()
        .and_then(|v| v.field_ref.as_ref())
        .map(|f| f.field_path.as_str());
    assert_eq!(
        field,
        Some("metadata.annotations['batch.kubernetes.io/job-completion-index']")
    );
    let file = &args[args
        .iter()
        .position(|a| a == "--from-file")
        .expect("--from-file")
        + 1];
    // The file is in the ConfigMap's volume.
    let mount = c
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| file.starts_with(&format!("{}/", m.mount_path)))
        .expect("the mirror file is on a mounted volume");
    let volume = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == mount.name)
        .unwrap();
    let config_map = volume.config_map.as_ref().expect("from a ConfigMap");
    assert_eq!(file.rsplit('/').next(), Some("mirror.yaml"));
    config_map.name.clone()
}

#[test]
fn the_kubernetes_manifests_are_valid_api_objects_that_run_every_shard() {
    let docs = manifest();
    assert_eq!(
        docs.len(),
        5,
        "ConfigMap, Secret, ServiceAccount, Job, CronJob"
    );
    let jobs = kind(&docs, "Job");
    let crons = kind(&docs, "CronJob");
    assert_eq!((jobs.len(), crons.len()), (1, 1));
    let job: Job = strict(jobs[0]);
    let cron: CronJob = strict(crons[0]);
    for d in kind(&docs, "Secret") {
        let _: Secret = strict(d);
    }
    let accounts: Vec<ServiceAccount> = kind(&docs, "ServiceAccount")
        .into_iter()
        .map(strict)
        .collect();
    let maps: Vec<ConfigMap> = kind(&docs, "ConfigMap").into_iter().map(strict).collect();

    let job_spec = job.spec.as_ref().unwrap();
    let cron_spec = cron.spec.as_ref().unwrap();
    assert_eq!(cron_spec.concurrency_policy.as_deref(), Some("Forbid"));
    let cron_job = cron_spec.job_template.spec.as_ref().unwrap();
    let map_name = check_shards(job_spec);
    assert_eq!(check_shards(cron_job), map_name);
    // The CronJob runs the same pods as the Job.
    assert_eq!(cron_job.template, job_spec.template);

    let pod = job_spec.template.spec.as_ref().unwrap();
    let account = pod.service_account_name.as_deref().unwrap();
    assert!(accounts.iter().any(|a| {
        a.metadata.name.as_deref() == Some(account)
            && a.metadata
                .annotations
                .as_ref()
                .is_some_and(|m| m.contains_key("azure.workload.identity/client-id"))
    }));
    let labels = job_spec.template.metadata.as_ref().unwrap().labels.as_ref();
    assert_eq!(
        labels
            .and_then(|l| l.get("azure.workload.identity/use"))
            .map(String::as_str),
        Some("true")
    );

    let map = maps
        .iter()
        .find(|m| m.metadata.name.as_deref() == Some(map_name.as_str()))
        .expect("the ConfigMap the Job mounts");
    let text = &map.data.as_ref().unwrap()["mirror.yaml"];
    let file = MirrorFile::parse(text, "ConfigMap acr-mirror").unwrap();
    assert!(
        file.entries
            .iter()
            .any(|e| matches!(e, MirrorEntry::Repository(_)))
    );
}

#[test]
fn an_unknown_field_is_caught() {
    let mut docs = manifest();
    let job = docs.iter_mut().find(|d| d["kind"] == "Job").unwrap();
    job["spec"]["template"]["spec"]["containers"][0]["argz"] = serde_json::json!(["x"]);
    let caught = std::panic::catch_unwind(|| strict::<Job>(job));
    let message = caught
        .err()
        .and_then(|e| e.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    assert!(
        message.contains(".spec.template.spec.containers[0].argz"),
        "{message}"
    );
}
