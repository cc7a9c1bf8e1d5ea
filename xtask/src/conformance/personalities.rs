//! The copy matrix against each registry personality of the test support (Docker Hub, GHCR,
//! MCR, ECR, Quay, ACR: a proxy in front of the real registry with that registry's
//! documented manners), and a check per manner the engine must meet.
//!
//! Each personality is the target of the usual routes and the source of one more,
//! `out-of-registry` (its copy of the case, read as its users read it, into a local
//! registry). Where a registry's manner makes a check deviate (MCR takes no pushes, ECR
//! mounts nothing), `xtask/conformance-expected.json` lists it under `personalities`, with
//! the reason; an unlisted deviation and a listed check that passes both fail the run.

use acr_import_tests::Names;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use acr_import_auth::{Credential, Secret, StaticCredentials};
use acr_import_testsupport::{Kind, Personality};
use acr_import_transfer::{
    Copier, CopyOptions, Endpoint, ReferrersSource, Registry, Source, Target, TransferError,
    Transport,
};

use super::copy_suite::{self, PERSONALITY_ROUTES, PersonalityCtx};
use super::{KindEntry, Outcome, Row, Scrub, Setup, judge_all};
use acr_import_testsupport::seed as fixtures;

/// The checks of each kind's own manners, beyond the matrix.
pub const QUIRKS: &[(Kind, &str)] = &[
    (Kind::DockerHub, "quirk/pulls-counted-once"),
    (Kind::DockerHub, "quirk/cdn-takes-no-credentials"),
    (Kind::Ghcr, "quirk/anonymous-token-from-the-registry-host"),
    (Kind::Mcr, "quirk/anonymous-without-challenge"),
    (Kind::Mcr, "quirk/cdn-takes-no-credentials"),
    (Kind::Ecr, "quirk/digest-computed-without-header"),
    (Kind::Ecr, "quirk/cdn-takes-no-credentials"),
    (Kind::Quay, "quirk/schema1-tag-refused"),
    (Kind::Acr, "quirk/referrers-api"),
];

/// Every check name of a personality's run (without the kind prefix).
pub fn check_names(kind: Kind) -> Vec<String> {
    copy_suite::check_names_of(PERSONALITY_ROUTES)
        .into_iter()
        .chain(
            QUIRKS
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, q)| (*q).to_owned()),
        )
        .collect()
}

/// Every check name of every personality, with its kind prefix (`dockerhub/copy/…`).
pub fn all_check_names() -> Vec<String> {
    Kind::ALL
        .iter()
        .flat_map(|k| check_names(*k).into_iter().map(move |n| format!("{k}/{n}")))
        .collect()
}

/// Every entry of the expected file's `personalities` names a personality, and each of its
/// deviations names a check (or, ending with `*`, prefixes at least one).
pub fn check_expected(expected: &BTreeMap<String, KindEntry>) -> anyhow::Result<()> {
    for (name, entry) in expected {
        let kind: Kind = name.parse()?;
        let names = check_names(kind);
        for key in entry.deviations.keys() {
            let matched = match key.strip_suffix('*') {
                Some(prefix) => names.iter().any(|n| n.starts_with(prefix)),
                None => names.contains(key),
            };
            anyhow::ensure!(
                matched,
                "`{name}` lists a deviation for `{key}`, which is no check"
            );
        }
    }
    Ok(())
}

/// The personalities `--personality` selects: every one by default with the local
/// registry, none with `--registry`.
pub fn selected(args: &[String], remote: bool) -> anyhow::Result<Vec<Kind>> {
    if args.is_empty() {
        return Ok(if remote {
            Vec::new()
        } else {
            Kind::ALL.to_vec()
        });
    }
    let mut kinds = Vec::new();
    for a in args {
        match a.as_str() {
            "all" => kinds.extend(Kind::ALL),
            "none" => {}
            name => kinds.push(name.parse()?),
        }
    }
    kinds.dedup();
    Ok(kinds)
}

/// One personality's suite: started, run, judged against its expected deviations; the
/// heading printed.
pub async fn suite(
    kind: Kind,
    base: &Setup,
    source_url: &str,
    layouts: &Path,
    expected: &BTreeMap<String, KindEntry>,
    known_failures: &BTreeMap<String, String>,
    scrub: &mut Scrub,
) -> Vec<Row> {
    let deviations: BTreeMap<String, String> = expected
        .get(kind.name())
        .map(|e| {
            e.deviations
                .iter()
                .map(|(k, v)| (format!("{kind}/{k}"), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    println!();
    println!(
        "Copy conformance against the {} personality ({} expected deviation{})",
        kind.title(),
        deviations.len(),
        if deviations.len() == 1 { "" } else { "s" }
    );
    let outcomes = match start(kind).await {
        Ok(started) => {
            scrub.add(started.personality.host(), format!("<{kind}>"));
            if let Some(cdn) = started.personality.cdn_url() {
                scrub.add(cdn.trim_start_matches("http://").to_owned(), "<cdn>");
            }
            scrub.add(started.ctx.out.host().to_owned(), "<local>");
            run(&started, base, source_url, layouts).await
        }
        Err(e) => vec![(
            format!("{kind}/setup"),
            Outcome::Fail(format!("cannot start the {kind} personality: {e:#}")),
            Duration::ZERO,
        )],
    };
    judge_all(outcomes, &deviations, known_failures, kind.name())
}

/// A transport to `host` with `credentials` (none: anonymous), fast retries.
fn transport(host: &str, credentials: Option<(&str, &str)>) -> anyhow::Result<Transport> {
    let mut creds = StaticCredentials::new();
    if let Some((user, password)) = credentials {
        creds.insert(
            host,
            Credential::from_username_password(user.to_owned(), Secret::new(password)),
        );
    }
    super::local_transport(creds)
}

/// The personality, its handles and the local registry the out route copies to.
pub struct Started {
    pub personality: Personality,
    ctx: PersonalityCtx,
    _out: acr_import_testsupport::Registry,
    writer: Transport,
}

/// Starts `kind`'s personality (with the manners the checks exercise) and a local target.
pub async fn start(kind: Kind) -> anyhow::Result<Started> {
    let mut builder = Personality::builder(kind);
    if kind == Kind::Quay {
        builder = builder.schema1_tag("legacy/etcd", "v2.0.0");
    }
    let (personality, out) =
        tokio::join!(builder.start(), acr_import_testsupport::Registry::start());
    let (personality, out) = (personality?, out?);
    let host = personality.host();
    let writer = transport(&host, kind.credentials())?;
    // Users read Docker Hub, GHCR, MCR and Quay's public images anonymously; ECR and ACR
    // need credentials.
    let reader = match kind {
        Kind::Ecr | Kind::Acr => writer.clone(),
        _ => transport(&host, None)?,
    };
    let ctx = PersonalityCtx {
        publisher: writer.registry(&personality.publish_url())?,
        seeder: personality.seeder()?,
        reader: reader.registry(&personality.url())?,
        out: transport(&out.host(), None)?.registry(&out.url())?,
    };
    Ok(Started {
        personality,
        ctx,
        _out: out,
        writer,
    })
}

/// Runs the matrix and `kind`'s quirk checks against the started personality.
pub async fn run(
    started: &Started,
    base: &Setup,
    source_url: &str,
    layouts: &Path,
) -> Vec<(String, Outcome, Duration)> {
    let p = &started.personality;
    let kind = p.kind();
    let setup = Setup {
        transport: started.writer.clone(),
        local_transport: base.local_transport.clone(),
        credentials: base.credentials.clone(),
        basic: kind
            .credentials()
            .map(|(u, pw)| (u.to_owned(), pw.to_owned())),
        insecure_hosts: Vec::new(),
        address: p.url(),
        local: true,
        write_repo: Some("conformance".to_owned()),
        read_image: None,
        filter: base.filter.clone(),
    };
    let layouts = layouts.join(kind.name());
    if let Err(e) = std::fs::create_dir_all(&layouts) {
        return vec![(
            format!("{kind}/setup"),
            Outcome::Fail(format!("cannot create {}: {e}", layouts.display())),
            Duration::ZERO,
        )];
    }
    let mut rows: Vec<(String, Outcome, Duration)> = copy_suite::run_along(
        &setup,
        source_url,
        &layouts,
        PERSONALITY_ROUTES,
        Some(&started.ctx),
    )
    .await;
    for (k, quirk) in QUIRKS {
        if *k != kind || !setup.selected(quirk) {
            continue;
        }
        let begun = Instant::now();
        let outcome = match check_quirk(started, quirk).await {
            Ok(note) => Outcome::Pass(note),
            Err(e) => Outcome::Fail(format!("{e:#}")),
        };
        rows.push(((*quirk).to_owned(), outcome, begun.elapsed()));
    }
    rows.into_iter()
        .map(|(n, o, d)| (format!("{kind}/{n}"), o, d))
        .collect()
}

async fn copy_out(
    from: &Registry,
    repo: &str,
    tag: &str,
    to: &Registry,
    to_repo: &str,
) -> Result<acr_import_transfer::CopyReport, TransferError> {
    let tag: acr_import_reference::Tag = tag
        .parse()
        .map_err(|e| TransferError::Config(format!("the tag `{tag}`: {e}")))?;
    Copier::new(CopyOptions::default())
        .copy(
            &Source {
                endpoint: Endpoint::registry(from.clone(), repo.repo()),
                reference: tag.clone().into(),
            },
            &[Target {
                endpoint: Endpoint::registry(to.clone(), to_repo.repo()),
                tag: Some(tag),
            }],
        )
        .await
}

async fn check_quirk(started: &Started, quirk: &str) -> anyhow::Result<String> {
    let p = &started.personality;
    let ctx = &started.ctx;
    match quirk {
        "quirk/pulls-counted-once" => {
            // A 3-platform image: its index and children are read once, and not at all
            // when the target holds it.
            let repo = "quirks/multi";
            fixtures::multi_arch(&ctx.seeder, repo, "v1", 3).await?;
            let before = p.anonymous_pulls();
            let first = copy_out(&ctx.reader, repo, "v1", &ctx.out, repo).await?;
            let counted = p.anonymous_pulls() - before;
            anyhow::ensure!(
                first.source_pulls as usize == counted,
                "the report says {} pulls, Docker Hub counted {counted}",
                first.source_pulls
            );
            let again = copy_out(&ctx.reader, repo, "v1", &ctx.out, repo).await?;
            anyhow::ensure!(
                again.up_to_date
                    && again.source_pulls == 0
                    && p.anonymous_pulls() - before == counted,
                "the unchanged re-run spent {} pulls",
                again.source_pulls
            );
            Ok(format!(
                "first import {counted} pulls (an index, 3 platforms, an attestation), re-run 0"
            ))
        }
        "quirk/cdn-takes-no-credentials" => {
            let served = p.cdn_requests();
            anyhow::ensure!(
                !served.is_empty(),
                "no blob was redirected to the CDN origin"
            );
            anyhow::ensure!(
                !p.cdn_saw_authorization(),
                "a credential reached the CDN origin"
            );
            Ok(format!(
                "{} blob downloads from the CDN origin, none with an Authorization header",
                served.len()
            ))
        }
        "quirk/anonymous-token-from-the-registry-host" => {
            let tokens = p
                .requests()
                .iter()
                .filter(|r| r.path.starts_with("/token?") && !r.has_authorization())
                .count();
            anyhow::ensure!(tokens > 0, "no anonymous token was asked for at /token");
            Ok(format!(
                "{tokens} anonymous token requests to the registry's own /token"
            ))
        }
        "quirk/anonymous-without-challenge" => {
            let challenged = p.requests().iter().any(|r| r.status == Some(401));
            anyhow::ensure!(!challenged, "the registry challenged a client");
            anyhow::ensure!(
                p.requests().iter().all(|r| !r.has_authorization()),
                "a credential was sent to a registry that asks for none"
            );
            Ok("every read anonymous, no challenge".to_owned())
        }
        "quirk/digest-computed-without-header" => {
            let repo = "cases/docker-v2";
            let by_tag = ctx.reader.get_manifest(&repo.repo(), &"v1".at()).await?;
            let head = ctx
                .reader
                .head_manifest(&repo.repo(), &"v1".at())
                .await?
                .and_then(|h| h.digest)
                .ok_or_else(|| anyhow::anyhow!("the HEAD sent no Docker-Content-Digest"))?;
            anyhow::ensure!(
                by_tag.digest == head,
                "computed {} from the GET, the HEAD says {head}",
                by_tag.digest
            );
            Ok(
                "GET by tag without Docker-Content-Digest: the digest computed from the bytes"
                    .to_owned(),
            )
        }
        "quirk/schema1-tag-refused" => {
            let gets = p.manifest_gets();
            let err = copy_out(
                &ctx.reader,
                "legacy/etcd",
                "v2.0.0",
                &ctx.out,
                "legacy/etcd",
            )
            .await
            .err()
            .ok_or_else(|| anyhow::anyhow!("a schema 1 tag was copied"))?;
            let text = err.to_string();
            anyhow::ensure!(
                matches!(err, TransferError::Schema1(_))
                    && text.contains("legacy/etcd:v2.0.0")
                    && text.contains("import a newer tag"),
                "not the schema 1 refusal naming the tag: {text}"
            );
            anyhow::ensure!(p.manifest_gets() == gets, "the schema 1 manifest was read");
            Ok("refused on its HEAD, naming the tag and what to do".to_owned())
        }
        "quirk/referrers-api" => {
            let repo = "r2r/referrers";
            let top = ctx.publisher.get_manifest(&repo.repo(), &"v1".at()).await?;
            let listed = ctx
                .publisher
                .referrers(&repo.repo(), &top.digest, None)
                .await?;
            anyhow::ensure!(
                listed.source == ReferrersSource::Api && listed.descriptors.len() == 2,
                "{} referrers through {:?}",
                listed.descriptors.len(),
                listed.source
            );
            Ok("the copied signature and SBOM listed by the referrers API".to_owned())
        }
        other => anyhow::bail!("no such check: {other}"),
    }
}
