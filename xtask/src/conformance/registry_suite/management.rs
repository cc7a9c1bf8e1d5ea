//! Content management checks: deletions (`management/…`).

use super::*;
use acr_import_tests::Names;

impl Ctx {
    /// Whether `tag` of `repo` resolves (`HEAD`).
    async fn tag_resolves(&self, repo: &str, tag: &str) -> anyhow::Result<bool> {
        Ok(self
            .reg
            .head_manifest(&repo.repo(), &tag.at())
            .await?
            .is_some())
    }

    /// `DELETE /v2/<repo>/<what>` through our connections, with pull and delete rights.
    async fn raw_delete(&self, repo: &str, what: &str) -> anyhow::Result<RawResponse> {
        let scopes = ScopeSet::new().with(Scope::repository(repo, ["pull", "delete"]));
        let path = format!("/v2/{repo}/{what}");
        self.raw
            .send(Method::DELETE, &path, &[], Bytes::new(), &scopes)
            .await
    }

    pub(super) async fn delete_tag(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let m = s.variant("deleted by tag")?;
        self.reg
            .put_manifest(&s.repo.repo(), &"delete-me".at(), &m)
            .await?;
        let resp = self.raw_delete(&s.repo, "manifests/delete-me").await?;
        match resp.status {
            202 => {
                anyhow::ensure!(
                    !self.tag_resolves(&s.repo, "delete-me").await?,
                    "202, but the tag is still there"
                );
                Ok(Outcome::Pass("202; the tag is gone".to_owned()))
            }
            400 | 405 => {
                anyhow::ensure!(
                    self.tag_resolves(&s.repo, "delete-me").await?,
                    "refused ({}), but the tag is gone",
                    resp.describe()
                );
                Ok(Outcome::Pass(format!(
                    "refuses to delete a tag ({}), which the spec allows (400 or 405); our client \
                     deletes manifests by digest only",
                    resp.describe()
                )))
            }
            _ => anyhow::bail!("DELETE of a tag answered {}", resp.describe()),
        }
    }

    pub(super) async fn delete_manifest(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let m = s.variant(&format!("deleted by digest {}", self.salt))?;
        self.reg
            .put_manifest(&s.repo.repo(), &"delete-by-digest".at(), &m)
            .await?;
        match self.reg.delete_manifest(&s.repo.repo(), &m.digest).await {
            Ok(()) => {}
            Err(e) if matches!(e.status(), Some(400 | 405)) => {
                return Ok(Outcome::Pass(format!(
                    "manifest deletes are disabled ({e}), which the spec allows"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        refused(
            self.reg
                .get_manifest(&s.repo.repo(), &m.digest.clone().into())
                .await,
            404,
            "MANIFEST_UNKNOWN",
            |_| "still served by digest after the DELETE".to_owned(),
        )?;
        anyhow::ensure!(
            !self.tag_resolves(&s.repo, "delete-by-digest").await?,
            "its tag still resolves"
        );
        Ok(Outcome::Pass(
            "202; then 404 MANIFEST_UNKNOWN by digest, and its tag is gone".to_owned(),
        ))
    }

    pub(super) async fn delete_blob(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let (blob, d) = self.salted(1013, 1500);
        self.reg
            .push_blob(&s.repo.repo(), &d, blob, u64::MAX)
            .await?;
        let resp = self.raw_delete(&s.repo, &format!("blobs/{d}")).await?;
        match resp.status {
            202 => {
                anyhow::ensure!(
                    self.reg.head_blob(&s.repo.repo(), &d).await?.is_none(),
                    "202, but HEAD still finds the blob"
                );
                Ok(Outcome::Pass("202; then HEAD 404".to_owned()))
            }
            405 => Ok(Outcome::Pass(format!(
                "blob deletes are disabled ({}), which the spec allows",
                resp.describe()
            ))),
            _ => anyhow::bail!("DELETE of a blob answered {}", resp.describe()),
        }
    }
}
