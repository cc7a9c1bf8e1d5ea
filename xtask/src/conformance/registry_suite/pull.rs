//! API version and pull checks (`api/…`, `pull/…`).

use super::*;
use acr_import_tests::Names;

impl Ctx {
    // ---- API version --------------------------------------------------------------------

    pub(super) async fn version_check(&self) -> anyhow::Result<Outcome> {
        let ping = self.reg.ping().await?;
        Ok(Outcome::Pass(match ping.api_version {
            Some(v) => format!("GET /v2/ answered 200 ({v})"),
            None => "GET /v2/ answered 200 (no Docker-Distribution-API-Version)".to_owned(),
        }))
    }

    // ---- Pull ---------------------------------------------------------------------------

    pub(super) async fn manifest_by_tag(&self) -> anyhow::Result<Outcome> {
        let img = self.image()?;
        let Some(tag) = &img.tag else {
            return Ok(Outcome::Skip("--reference is a digest".to_owned()));
        };
        let m = self.reg.get_manifest(&img.repo.repo(), &tag.at()).await?;
        anyhow::ensure!(
            m == img.top,
            "the tag served {} ({}), expected {}",
            m.digest,
            m.media_type,
            img.top.digest
        );
        Ok(Outcome::Pass(format!(
            "{} bytes of {}, hashing to the digest announced",
            m.bytes.len(),
            m.media_type
        )))
    }

    pub(super) async fn manifest_by_digest(&self) -> anyhow::Result<Outcome> {
        let img = self.image()?;
        let m = self
            .reg
            .get_manifest(&img.repo.repo(), &img.top.digest.clone().into())
            .await?;
        anyhow::ensure!(m == img.top, "served other bytes than by tag");
        Ok(Outcome::Pass(String::new()))
    }

    pub(super) async fn manifest_head(&self) -> anyhow::Result<Outcome> {
        let img = self.image()?;
        let reference = img.tag.clone().unwrap_or(img.top.digest.to_string());
        let head = self
            .reg
            .head_manifest(&img.repo.repo(), &reference.at())
            .await?
            .context("HEAD answered 404 for a manifest GET serves")?;
        anyhow::ensure!(
            head.size == Some(img.top.bytes.len() as u64),
            "Content-Length {:?}, the manifest has {} bytes",
            head.size,
            img.top.bytes.len()
        );
        anyhow::ensure!(
            head.media_type.as_deref() == Some(img.top.media_type.as_str()),
            "Content-Type {:?}, GET serves {}",
            head.media_type,
            img.top.media_type
        );
        match head.digest {
            Some(d) if d == img.top.digest => Ok(Outcome::Pass(
                "Docker-Content-Digest, Content-Type and Content-Length as GET".to_owned(),
            )),
            Some(d) => anyhow::bail!(
                "Docker-Content-Digest {d}, the manifest is {}",
                img.top.digest
            ),
            None => Ok(Outcome::Pass(
                "no Docker-Content-Digest on HEAD (a SHOULD); our copy engine then reads the manifest"
                    .to_owned(),
            )),
        }
    }

    pub(super) async fn manifest_unknown(&self) -> anyhow::Result<Outcome> {
        let img = self.image()?;
        let tag = "conformance-absent-tag";
        let e = refused(
            self.reg.get_manifest(&img.repo.repo(), &tag.at()).await,
            404,
            "MANIFEST_UNKNOWN",
            |_| "a tag never pushed was served".to_owned(),
        )?;
        anyhow::ensure!(e.is_not_found(), "not classified as not found: {e}");
        anyhow::ensure!(
            self.reg
                .head_manifest(&img.repo.repo(), &tag.at())
                .await?
                .is_none(),
            "HEAD found it"
        );
        Ok(Outcome::Pass("404 MANIFEST_UNKNOWN".to_owned()))
    }

    pub(super) async fn blob_head(&self) -> anyhow::Result<Outcome> {
        let img = self.image()?;
        let size = self
            .reg
            .head_blob(&img.repo.repo(), &img.blob.digest)
            .await?;
        anyhow::ensure!(
            size == Some(img.blob.size),
            "HEAD told {size:?}, the descriptor says {}",
            img.blob.size
        );
        Ok(Outcome::Pass(String::new()))
    }

    pub(super) async fn blob_get(&self) -> anyhow::Result<Outcome> {
        let img = self.image()?;
        let (head, total) = read_blob(&self.reg, &img.repo, &img.blob, 1 << 20).await?;
        anyhow::ensure!(total == img.blob.size, "{total} bytes");
        if let Some(b) = &img.blob_bytes {
            anyhow::ensure!(head == b.slice(..head.len()), "other bytes than pushed");
        }
        Ok(Outcome::Pass(format!(
            "{total} bytes, digest verified while streaming"
        )))
    }

    pub(super) async fn blob_range(&self) -> anyhow::Result<Outcome> {
        let img = self.image()?;
        if img.blob.size < 2 {
            return Ok(Outcome::Skip(
                "the blob is too small for a range".to_owned(),
            ));
        }
        let last = img.blob.size.min(4096) - 1;
        let first = last / 2;
        let (prefix, _) = read_blob(&self.reg, &img.repo, &img.blob, last as usize + 1).await?;
        let want = prefix.slice(first as usize..=last as usize);
        let resp = self
            .raw
            .send(
                Method::GET,
                &format!("/v2/{}/blobs/{}", img.repo, img.blob.digest),
                &[(header::RANGE, format!("bytes={first}-{last}"))],
                Bytes::new(),
                &pull(&img.repo),
            )
            .await?;
        match resp.status {
            206 => {
                let expected_range = format!("bytes {first}-{last}/{}", img.blob.size);
                anyhow::ensure!(
                    resp.header("content-range") == Some(expected_range.as_str()),
                    "Content-Range {:?}, expected `{expected_range}`",
                    resp.header("content-range")
                );
                anyhow::ensure!(resp.body == want, "the range holds other bytes");
                Ok(Outcome::Pass(format!(
                    "206 with Content-Range: bytes {first}-{last}/{} and those bytes",
                    img.blob.size
                )))
            }
            200 => Ok(Outcome::Deviation(format!(
                "registry deviation: ignored `Range: bytes={first}-{last}` and sent the whole \
                 blob (200); our blob reader copes: a download resumed with Range skips the bytes \
                 it already has when the answer is 200"
            ))),
            _ => anyhow::bail!("a Range GET answered {}", resp.describe()),
        }
    }

    pub(super) async fn blob_unknown(&self) -> anyhow::Result<Outcome> {
        let img = self.image()?;
        let absent = sha256(b"acr-import conformance: a blob nobody pushed");
        refused(
            self.reg
                .get_blob(&img.repo.repo(), &absent, None, true)
                .await,
            404,
            "BLOB_UNKNOWN",
            |_| "a blob never pushed was served".to_owned(),
        )?;
        anyhow::ensure!(
            self.reg
                .head_blob(&img.repo.repo(), &absent)
                .await?
                .is_none(),
            "HEAD found it"
        );
        Ok(Outcome::Pass("404 BLOB_UNKNOWN; HEAD 404".to_owned()))
    }

    pub(super) async fn name_unknown(&self) -> anyhow::Result<Outcome> {
        let img = self.image()?;
        let repo = format!("{}/conformance-absent", img.repo);
        refused(
            self.reg.list_tags(&repo.repo(), None).await,
            404,
            "NAME_UNKNOWN",
            |tags| format!("a repository never pushed lists tags {tags:?}"),
        )?;
        Ok(Outcome::Pass(
            "404 NAME_UNKNOWN for the tags of a repository never pushed".to_owned(),
        ))
    }

    pub(super) async fn name_invalid(&self) -> anyhow::Result<Outcome> {
        let img = self.image()?;
        let name = format!("{}/Invalid_Name-", img.repo);
        let parsed = name.parse::<Repository>();
        let resp = self
            .raw
            .send(
                Method::GET,
                &format!("/v2/{name}/tags/list"),
                &[],
                Bytes::new(),
                &pull(&img.repo),
            )
            .await?;
        if resp.status == 400 && resp.codes().iter().any(|c| c == "NAME_INVALID") {
            return Ok(Outcome::Pass("400 NAME_INVALID".to_owned()));
        }
        let refused = match parsed {
            Ok(_) => anyhow::bail!(
                "the registry answered {} and our reference parser accepts `{name}`",
                resp.describe()
            ),
            Err(e) => e,
        };
        Ok(Outcome::Deviation(format!(
            "registry deviation: a repository name outside the spec's grammar \
             (uppercase, trailing separator) answered {} instead of 400 NAME_INVALID; our client \
             never sends one: the reference parser refuses it ({refused})",
            resp.describe()
        )))
    }
}
