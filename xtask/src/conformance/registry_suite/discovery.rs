//! Content discovery checks: tags and referrers (`discovery/…`).

use super::*;
use acr_import_tests::Names;

impl Ctx {
    // ---- Content discovery --------------------------------------------------------------

    /// The repository and the tags the tag checks list: pushed ones, or the given image's.
    pub(super) async fn tag_repo(&self) -> anyhow::Result<(String, Option<Vec<String>>)> {
        let Some(s) = &self.seeded else {
            return Ok((self.image()?.repo.clone(), None));
        };
        let repo = format!("{}/tags", s.repo);
        let m = s.variant("tagged")?;
        self.push_blobs(&repo, &[&s.config, &s.layer]).await?;
        // Pushed in no particular order, so that storage order is not lexical order.
        let tags = ["b1", "a2", "c0", "0z", "b0", "a10", "z9", "a1"];
        for t in tags {
            self.reg.put_manifest(&repo.repo(), &t.at(), &m).await?;
        }
        let mut sorted: Vec<String> = tags.iter().map(|t| (*t).to_owned()).collect();
        sorted.sort();
        Ok((repo, Some(sorted)))
    }

    pub(super) async fn tags_list(&self) -> anyhow::Result<Outcome> {
        let (repo, pushed) = self.tag_repo().await?;
        let tags = self.reg.list_tags(&repo.repo(), None).await?;
        if pushed.is_none() && tags.len() < 2 {
            return Ok(Outcome::Skip(format!(
                "{repo} has {} tag(s); the order needs 2",
                tags.len()
            )));
        }
        let mut sorted = tags.clone();
        sorted.sort();
        match &pushed {
            Some(p) => anyhow::ensure!(&sorted == p, "listed {tags:?}, pushed {p:?}"),
            None => {
                if let Some(t) = &self.image()?.tag {
                    anyhow::ensure!(tags.contains(t), "{t} is not listed");
                }
            }
        }
        if sorted != tags {
            return Ok(Outcome::Deviation(format!(
                "registry deviation: the {} tags are listed in storage order, not in the \
                 lexical order the spec requires; our client does not rely on the order \
                 (`acr repository show-tags` sorts the tags list_tags collects)",
                tags.len()
            )));
        }
        Ok(Outcome::Pass(format!(
            "all {} tags, in lexical order",
            tags.len()
        )))
    }

    pub(super) async fn tags_list_pagination(&self) -> anyhow::Result<Outcome> {
        let (repo, pushed) = self.tag_repo().await?;
        let mut all = self.reg.list_tags(&repo.repo(), None).await?;
        all.sort();
        if let Some(p) = &pushed {
            anyhow::ensure!(&all == p, "listed {all:?}, pushed {p:?}");
        }
        if all.len() < 3 {
            return Ok(Outcome::Skip(format!(
                "{repo} has {} tags; pagination needs 3",
                all.len()
            )));
        }
        // Through the transport: n=2, following Link to the end.
        let mut paged = self.reg.list_tags(&repo.repo(), Some(2)).await?;
        paged.sort();
        anyhow::ensure!(
            paged == all,
            "list_tags with n=2 collected {paged:?}, the repository has {all:?}"
        );
        // By hand: what each page holds.
        let scopes = pull(&repo);
        let page = |query: String| {
            let scopes = scopes.clone();
            async move {
                let resp = self
                    .raw
                    .send(Method::GET, &query, &[], Bytes::new(), &scopes)
                    .await?;
                anyhow::ensure!(resp.status == 200, "{query}: {}", resp.describe());
                #[derive(serde::Deserialize)]
                struct Page {
                    #[serde(default)]
                    tags: Option<Vec<String>>,
                }
                let p: Page = serde_json::from_slice(&resp.body)?;
                anyhow::Ok((p.tags.unwrap_or_default(), resp))
            }
        };
        let (first, resp) = page(format!("/v2/{repo}/tags/list?n=2")).await?;
        if first.len() > 2 {
            return Ok(Outcome::Deviation(format!(
                "registry deviation: ignores `n` (asked for 2 tags, got all {} in one page{}); \
                 our list_tags asks with n and follows Link only when there is one, so it still \
                 collected every tag",
                first.len(),
                if resp.header("link").is_some() {
                    ""
                } else {
                    ", no Link header"
                }
            )));
        }
        anyhow::ensure!(
            first == all[..2],
            "the first page is {first:?}, expected {:?} (lexical order)",
            &all[..2]
        );
        let link = resp
            .header("link")
            .context("a first page of 2 tags out of more has no Link header")?;
        anyhow::ensure!(
            link.contains("rel=\"next\""),
            "the Link header `{link}` has no rel=\"next\""
        );
        let (after, _) = page(format!("/v2/{repo}/tags/list?n=2&last={}", all[1])).await?;
        anyhow::ensure!(
            after == all[2..all.len().min(4)],
            "n=2&last={} gave {after:?}, expected {:?}",
            all[1],
            &all[2..all.len().min(4)]
        );
        Ok(Outcome::Pass(format!(
            "n=2 pages in lexical order with Link rel=\"next\"; last= continues; list_tags \
             followed {} pages",
            all.len().div_ceil(2)
        )))
    }

    /// The subject and referrers the referrer checks look for (pushed once), or `None` when
    /// reading only.
    pub(super) async fn referrers_seed(&self) -> anyhow::Result<Option<&ReferrersSeed>> {
        let Some(s) = &self.seeded else {
            return Ok(None);
        };
        let seed = self
            .referrers
            .get_or_init(|| async {
                let make = async {
                    let subject = self.push_subject("subject with referrers").await?;
                    let sbom = self
                        .push_artifact(&s.repo, SBOM, 1010, Some(&subject))
                        .await?;
                    let sig = self
                        .push_artifact(&s.repo, SIGNATURE, 1011, Some(&subject))
                        .await?;
                    let artifacts = vec![(sbom, SBOM), (sig, SIGNATURE)];
                    anyhow::Ok(ReferrersSeed { subject, artifacts })
                };
                make.await.map_err(|e| format!("{e:#}"))
            })
            .await;
        seed.as_ref()
            .map(Some)
            .map_err(|e| anyhow::anyhow!("pushing the referrers failed: {e}"))
    }

    pub(super) async fn get_referrers(
        &self,
        repo: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> anyhow::Result<RawResponse> {
        let mut path = format!("/v2/{repo}/referrers/{subject}");
        if let Some(t) = artifact_type {
            path.push_str(&format!("?artifactType={}", t.replace('+', "%2B")));
        }
        self.raw
            .send(
                Method::GET,
                &path,
                &[(header::ACCEPT, OCI_INDEX.to_owned())],
                Bytes::new(),
                &pull(repo),
            )
            .await
    }

    /// On a registry without the referrers API, records the seeded referrers in the fallback
    /// tag, as our copy engine does (and as the spec asks of clients).
    pub(super) async fn ensure_fallback(&self, seed: &ReferrersSeed) -> anyhow::Result<()> {
        let s = self.seeded()?;
        let list: Vec<(&Manifest, &str)> = seed.artifacts.iter().map(|(m, t)| (m, *t)).collect();
        self.attach(&s.repo, &seed.subject, &list).await?;
        Ok(())
    }

    pub(super) async fn referrers_api(&self) -> anyhow::Result<Outcome> {
        let (repo, subject, expected) = match self.referrers_seed().await? {
            Some(seed) => (
                self.seeded()?.repo.clone(),
                seed.subject.digest.clone(),
                Some(seed),
            ),
            None => {
                let img = self.image()?;
                (img.repo.clone(), img.top.digest.clone(), None)
            }
        };
        let resp = self.get_referrers(&repo, &subject, None).await?;
        if resp.status == 200 {
            let ct = resp.header("content-type").unwrap_or_default();
            anyhow::ensure!(
                ct.starts_with(OCI_INDEX),
                "200 with Content-Type `{ct}`, expected {OCI_INDEX}"
            );
            let index = acr_import_transfer::ManifestContent::parse(&resp.body)
                .map_err(|e| anyhow::anyhow!("the referrers response: {e}"))?;
            if let Some(seed) = expected {
                for (m, t) in &seed.artifacts {
                    let found = index
                        .manifests
                        .iter()
                        .find(|d| d.digest == m.digest)
                        .with_context(|| format!("the {t} referrer is not listed"))?;
                    anyhow::ensure!(
                        found.artifact_type.as_deref() == Some(*t),
                        "the {t} referrer is listed with artifactType {:?}",
                        found.artifact_type
                    );
                }
            }
            let ours = self.reg.referrers(&repo.repo(), &subject, None).await?;
            anyhow::ensure!(
                ours.source == ReferrersSource::Api,
                "our transport did not use the API"
            );
            return Ok(Outcome::Pass(format!(
                "200, an OCI index of {} referrer{} with their artifactType",
                index.manifests.len(),
                if index.manifests.len() == 1 { "" } else { "s" }
            )));
        }
        anyhow::ensure!(
            resp.status == 404 && !resp.codes().iter().any(|c| c == "NAME_UNKNOWN"),
            "GET …/referrers/<digest> answered {}",
            resp.describe()
        );
        // No API: our transport falls back to the tag schema.
        if let Some(seed) = expected {
            self.ensure_fallback(seed).await?;
        }
        let ours = self.reg.referrers(&repo.repo(), &subject, None).await?;
        anyhow::ensure!(
            ours.source == ReferrersSource::TagSchema,
            "our transport did not fall back to the tag schema"
        );
        if let Some(seed) = expected {
            for (m, t) in &seed.artifacts {
                anyhow::ensure!(
                    ours.descriptors.iter().any(|d| d.digest == m.digest),
                    "the {t} referrer is not found through the fallback tag"
                );
            }
        }
        Ok(Outcome::Deviation(format!(
            "registry deviation: no referrers API (GET /v2/<name>/referrers/<digest> answered \
             {}); our transport falls back to the `<alg>-<hex>` tag schema and found the {} \
             referrer{} there",
            resp.describe(),
            ours.descriptors.len(),
            if ours.descriptors.len() == 1 { "" } else { "s" }
        )))
    }

    /// Our transport lists exactly the seeded SBOM for `artifactType` SBOM (`what` it did
    /// otherwise, and how many it found, is the error).
    async fn filtered_by_us(
        &self,
        repo: &str,
        seed: &ReferrersSeed,
        what: &str,
    ) -> anyhow::Result<()> {
        let sbom = &seed.artifacts[0].0;
        let ours = self
            .reg
            .referrers(&repo.repo(), &seed.subject.digest, Some(SBOM))
            .await?;
        anyhow::ensure!(
            ours.descriptors.len() == 1 && ours.descriptors[0].digest == sbom.digest,
            "{what} {} referrers for artifactType {SBOM}, expected the one SBOM",
            ours.descriptors.len()
        );
        Ok(())
    }

    pub(super) async fn referrers_filter(&self) -> anyhow::Result<Outcome> {
        let seed = self
            .referrers_seed()
            .await?
            .context("writes are not allowed")?;
        let repo = self.seeded()?.repo.clone();
        let resp = self
            .get_referrers(&repo, &seed.subject.digest, Some(SBOM))
            .await?;
        let sbom = &seed.artifacts[0].0;
        if resp.status == 200 {
            let index = acr_import_transfer::ManifestContent::parse(&resp.body)
                .map_err(|e| anyhow::anyhow!("the referrers response: {e}"))?;
            self.filtered_by_us(&repo, seed, "our transport returned")
                .await?;
            let applied = resp
                .header("oci-filters-applied")
                .is_some_and(|f| f.contains("artifactType"));
            if applied {
                anyhow::ensure!(
                    index.manifests.len() == 1 && index.manifests[0].digest == sbom.digest,
                    "OCI-Filters-Applied: artifactType, but {} entries",
                    index.manifests.len()
                );
                return Ok(Outcome::Pass(
                    "filtered by the registry (OCI-Filters-Applied: artifactType)".to_owned(),
                ));
            }
            return Ok(Outcome::Pass(
                "not filtered by the registry (allowed: no OCI-Filters-Applied); our transport \
                 filters the list itself"
                    .to_owned(),
            ));
        }
        anyhow::ensure!(
            resp.status == 404,
            "GET …/referrers/<digest>?artifactType= answered {}",
            resp.describe()
        );
        self.ensure_fallback(seed).await?;
        self.filtered_by_us(&repo, seed, "filtering the fallback index gave")
            .await?;
        Ok(Outcome::Deviation(format!(
            "registry deviation: no referrers API, so no artifactType filter ({}); our transport \
             filters the fallback tag's index itself: 1 of 2 referrers is {SBOM}",
            resp.describe()
        )))
    }

    pub(super) async fn referrers_fallback(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let subject = self.push_subject("subject of the fallback tag").await?;
        let sig = self
            .push_artifact(&s.repo, SIGNATURE, 1012 + self.salt, Some(&subject))
            .await?;
        let index = self.attach(&s.repo, &subject, &[(&sig, SIGNATURE)]).await?;
        let tag = subject.digest.referrers_tag();
        let back = self
            .reg
            .get_manifest(&s.repo.repo(), &tag.clone().into())
            .await?;
        anyhow::ensure!(back == index, "the fallback tag serves other bytes");
        let ours = self
            .reg
            .referrers(&s.repo.repo(), &subject.digest, None)
            .await?;
        let found = ours
            .descriptors
            .iter()
            .find(|d| d.digest == sig.digest)
            .context("the referrer is not found")?;
        anyhow::ensure!(
            found.artifact_type.as_deref() == Some(SIGNATURE),
            "found with artifactType {:?}",
            found.artifact_type
        );
        Ok(Outcome::Pass(format!(
            "an OCI index under the tag `{}-<hex>`; our transport finds the referrer ({})",
            subject.digest.algorithm().as_str(),
            match ours.source {
                ReferrersSource::Api => "through the referrers API",
                ReferrersSource::TagSchema => "through the tag",
            }
        )))
    }
}
