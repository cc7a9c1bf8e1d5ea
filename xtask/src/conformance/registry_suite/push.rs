//! Push checks: blob uploads of every kind, mounts, and manifests (`push/…`).

use super::*;
use acr_import_tests::Names;

impl Ctx {
    // ---- Push: blobs --------------------------------------------------------------------

    pub(super) async fn blob_post_put(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let (blob, d) = self.salted(1001, 4096);
        let session = self.new_session(&s.repo).await?;
        self.reg.put_blob_bytes(session, &d, blob.clone()).await?;
        anyhow::ensure!(
            self.reg.head_blob(&s.repo.repo(), &d).await? == Some(4096),
            "the blob is not there after 201"
        );
        self.same_bytes_back(&s.repo, &d, &blob).await?;
        Ok(Outcome::Pass(
            "POST → 202 + Location, PUT ?digest= → 201; same bytes back".to_owned(),
        ))
    }

    pub(super) async fn blob_single_post(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let (blob, d) = self.salted(1002, 2048);
        let resp = self
            .raw
            .send(
                Method::POST,
                &format!("/v2/{}/blobs/uploads/?digest={d}", s.repo),
                &octet_stream(blob.len()),
                blob.clone(),
                &push(&s.repo),
            )
            .await?;
        match resp.status {
            201 => {
                anyhow::ensure!(
                    resp.header("location").is_some(),
                    "201 without a Location header"
                );
                anyhow::ensure!(
                    self.reg.head_blob(&s.repo.repo(), &d).await? == Some(2048),
                    "201, but the blob is not there"
                );
                Ok(Outcome::Pass(
                    "one POST ?digest= with the bytes → 201; blob present".to_owned(),
                ))
            }
            202 => {
                let stored = self.reg.head_blob(&s.repo.repo(), &d).await?;
                let location = resp
                    .header("location")
                    .context("202 without a Location header")?
                    .to_owned();
                // The spec's fallback: finish the session it opened with PUT ?digest=, which
                // is how our push_blob always uploads.
                let put = self
                    .raw
                    .send(
                        Method::PUT,
                        &with_digest(&resolve(&self.raw_base(), &location)?, &d),
                        &octet_stream(blob.len()),
                        blob.clone(),
                        &push(&s.repo),
                    )
                    .await?;
                anyhow::ensure!(
                    self.reg.head_blob(&s.repo.repo(), &d).await? == Some(2048)
                        && put.status == 201,
                    "completing the session it opened failed: {}",
                    put.describe()
                );
                Ok(Outcome::Deviation(format!(
                    "registry deviation: answered 202 (an upload session) to a one-request \
                     `POST ?digest=` upload and {}; our push_blob never relies on the \
                     one-request form: it always sends POST then PUT ?digest=, and completing the \
                     session this way stored the blob",
                    if stored.is_some() {
                        "stored it anyway"
                    } else {
                        "stored nothing"
                    }
                )))
            }
            _ => anyhow::bail!("answered {}", resp.describe()),
        }
    }

    /// A `GET` of the blob `d` of `repo` gives `blob` back.
    async fn same_bytes_back(&self, repo: &str, d: &Digest, blob: &Bytes) -> anyhow::Result<()> {
        let back = self
            .reg
            .get_blob(&repo.repo(), d, Some(blob.len() as u64), true)
            .await?
            .collect(1 << 20)
            .await?;
        anyhow::ensure!(back == *blob, "other bytes came back");
        Ok(())
    }

    /// `scheme://host[:port]` of the registry, to resolve relative upload locations.
    pub(super) fn raw_base(&self) -> String {
        format!("{}://{}", self.scheme, self.reg.host())
    }

    pub(super) async fn blob_chunked(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        // Through push_blob: four PATCH chunks and a closing PUT.
        let (blob, d) = self.salted(1003, 200_000);
        self.reg
            .push_blob(&s.repo.repo(), &d, blob.clone(), 64 * 1024)
            .await?;
        self.same_bytes_back(&s.repo, &d, &blob).await?;
        // Step by step: the status of a session tells the offset to resume from.
        let other = data(1004 + self.salt, 100_000);
        let od = sha256(&other);
        let session = self.new_session(&s.repo).await?;
        let session = self
            .reg
            .upload_chunk(session, other.slice(..60_000))
            .await?;
        anyhow::ensure!(
            session.offset() == 60_000,
            "offset {} after 60000 bytes",
            session.offset()
        );
        let status = self.reg.upload_status(&session).await?;
        anyhow::ensure!(
            status.offset() == 60_000,
            "GET on the session: Range ends at {} for 60000 bytes",
            status.offset()
        );
        let session = self.reg.upload_chunk(status, other.slice(60_000..)).await?;
        self.reg.put_blob_bytes(session, &od, Bytes::new()).await?;
        anyhow::ensure!(
            self.reg.head_blob(&s.repo.repo(), &od).await? == Some(100_000),
            "the blob is not there after the closing PUT"
        );
        Ok(Outcome::Pass(
            "PATCH chunks with Content-Range, GET status (204, Range: 0-59999), closing PUT ?digest="
                .to_owned(),
        ))
    }

    /// `PATCH` of `chunk` at `range` (`first-last`) to the session at `location`.
    async fn patch_chunk(
        &self,
        location: &str,
        range: &str,
        chunk: Bytes,
        scopes: &ScopeSet,
    ) -> anyhow::Result<RawResponse> {
        let mut headers = octet_stream(chunk.len());
        headers.push((header::CONTENT_RANGE, range.to_owned()));
        self.raw
            .send(Method::PATCH, location, &headers, chunk, scopes)
            .await
    }

    pub(super) async fn blob_chunk_out_of_order(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let blob = data(1005 + self.salt, 3072);
        let scopes = push(&s.repo);
        let start = self
            .raw
            .send(
                Method::POST,
                &format!("/v2/{}/blobs/uploads/", s.repo),
                &[(header::CONTENT_LENGTH, "0".to_owned())],
                Bytes::new(),
                &scopes,
            )
            .await?;
        anyhow::ensure!(start.status == 202, "POST answered {}", start.describe());
        let location = resolve(
            &self.raw_base(),
            start.header("location").context("no Location")?,
        )?;
        let first = self
            .patch_chunk(&location, "0-1023", blob.slice(..1024), &scopes)
            .await?;
        anyhow::ensure!(
            first.status == 202,
            "the first chunk answered {}",
            first.describe()
        );
        let location = resolve(
            &self.raw_base(),
            first.header("location").context("no Location")?,
        )?;
        let skipped = self
            .patch_chunk(&location, "2048-3071", blob.slice(2048..), &scopes)
            .await?;
        let cancel_at = skipped
            .header("location")
            .and_then(|l| resolve(&self.raw_base(), l).ok())
            .unwrap_or(location);
        let _ = self
            .raw
            .send(Method::DELETE, &cancel_at, &[], Bytes::new(), &scopes)
            .await;
        match skipped.status {
            416 => Ok(Outcome::Pass(
                "a chunk starting past the offset answered 416".to_owned(),
            )),
            202 => Ok(Outcome::Deviation(format!(
                "registry deviation: accepted a chunk whose Content-Range (2048-3071) does not \
                 start at the session's offset (1024) and appended it (Range: {}) instead of \
                 answering 416; our upload_chunk never sends one: each chunk starts at the offset \
                 the registry last reported, and the closing PUT ?digest= refuses mangled content",
                skipped.header("range").unwrap_or("none")
            ))),
            _ => anyhow::bail!("an out-of-order chunk answered {}", skipped.describe()),
        }
    }

    pub(super) async fn blob_digest_invalid(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let blob = data(1006 + self.salt, 1000);
        let wrong = sha256(b"not the content");
        let session = self.new_session(&s.repo).await?;
        refused(
            self.reg.put_blob_bytes(session, &wrong, blob).await,
            400,
            "DIGEST_INVALID",
            |_| "a PUT ?digest= with the wrong digest was accepted".to_owned(),
        )?;
        anyhow::ensure!(
            self.reg.head_blob(&s.repo.repo(), &wrong).await?.is_none(),
            "stored under the wrong digest"
        );
        Ok(Outcome::Pass(
            "400 DIGEST_INVALID; nothing stored under the digest claimed".to_owned(),
        ))
    }

    pub(super) async fn blob_mount(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let to = format!("{}/mount", s.repo);
        let d = sha256(&s.layer.bytes);
        match self
            .reg
            .start_upload(&to.repo(), Some((&d, &s.repo.repo())))
            .await?
        {
            UploadStart::Mounted => {
                anyhow::ensure!(
                    self.reg.head_blob(&to.repo(), &d).await? == Some(s.layer.bytes.len() as u64),
                    "201, but the blob is not in the target repository"
                );
                Ok(Outcome::Pass(
                    "POST ?mount=&from= → 201; the blob is in the other repository".to_owned(),
                ))
            }
            UploadStart::Session(session) => {
                self.reg.cancel_upload(&session).await;
                Ok(Outcome::Deviation(
                    "registry deviation: does not mount across repositories (202, an upload \
                     session); our copy engine then streams the blob into that session"
                        .to_owned(),
                ))
            }
        }
    }

    pub(super) async fn blob_mount_missing(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let to = format!("{}/mount", s.repo);
        let absent = sha256(b"acr-import conformance: a blob nobody pushed");
        match self
            .reg
            .start_upload(&to.repo(), Some((&absent, &s.repo.repo())))
            .await?
        {
            UploadStart::Mounted => anyhow::bail!("claimed to mount a blob that does not exist"),
            UploadStart::Session(session) => {
                self.reg.cancel_upload(&session).await;
                Ok(Outcome::Pass(
                    "202 and an upload session for a blob the source lacks".to_owned(),
                ))
            }
        }
    }

    pub(super) async fn upload_cancel(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let session = self.new_session(&s.repo).await?;
        let session = self
            .reg
            .upload_chunk(session, data(1007 + self.salt, 100))
            .await?;
        self.reg.cancel_upload(&session).await;
        refused(
            self.reg.upload_status(&session).await,
            404,
            "BLOB_UPLOAD_UNKNOWN",
            |s| {
                format!(
                    "the session is still there after DELETE (offset {})",
                    s.offset()
                )
            },
        )?;
        Ok(Outcome::Pass(
            "DELETE on the session, then its status: 404 BLOB_UPLOAD_UNKNOWN".to_owned(),
        ))
    }

    // ---- Push: manifests ----------------------------------------------------------------

    pub(super) async fn push_manifest_by_tag(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let m = s.variant("pushed by tag")?;
        let pushed = self
            .reg
            .push_manifest(&s.repo.repo(), &"by-tag".at(), &m)
            .await?;
        anyhow::ensure!(pushed.digest == m.digest, "stored as {}", pushed.digest);
        let back = self
            .reg
            .get_manifest(&s.repo.repo(), &"by-tag".at())
            .await?;
        anyhow::ensure!(back == m, "the tag serves other bytes");
        Ok(Outcome::Pass(
            "201 with Docker-Content-Digest of the bytes sent; the tag serves them".to_owned(),
        ))
    }

    pub(super) async fn push_manifest_by_digest(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let m = s.variant("pushed by digest")?;
        self.reg
            .push_manifest(&s.repo.repo(), &m.digest.clone().into(), &m)
            .await?;
        let back = self
            .reg
            .get_manifest(&s.repo.repo(), &m.digest.clone().into())
            .await?;
        anyhow::ensure!(back == m, "the digest serves other bytes");
        Ok(Outcome::Pass(String::new()))
    }

    pub(super) async fn manifest_blob_unknown(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let missing = Blob::layer(1008 + self.salt, 512);
        let value = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest::OCI_MANIFEST,
            "config": s.config.descriptor(),
            "layers": [missing.descriptor()],
        });
        let m = ours(fixtures::manifest_of(&value, manifest::OCI_MANIFEST)?)?;
        self.manifest_refused(
            "blob-unknown",
            &m,
            "MANIFEST_BLOB_UNKNOWN",
            "whose layer is missing",
        )
        .await
    }

    /// Pushing `m` under `tag` is refused with 400 `code` (`m` is a manifest `what`).
    async fn manifest_refused(
        &self,
        tag: &str,
        m: &Manifest,
        code: &str,
        what: &str,
    ) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        refused(
            self.reg.put_manifest(&s.repo.repo(), &tag.at(), m).await,
            400,
            code,
            |_| format!("a manifest {what} was accepted"),
        )?;
        Ok(Outcome::Pass(format!("400 {code}")))
    }

    pub(super) async fn manifest_invalid(&self) -> anyhow::Result<Outcome> {
        let bytes = Bytes::from_static(b"{\"schemaVersion\": 2, \"config\": not json");
        let m = Manifest {
            digest: sha256(&bytes),
            bytes,
            media_type: manifest::OCI_MANIFEST.to_owned(),
        };
        self.manifest_refused("invalid", &m, "MANIFEST_INVALID", "that is not JSON")
            .await
    }

    pub(super) async fn manifest_with_subject(&self) -> anyhow::Result<Outcome> {
        let s = self.seeded()?;
        let subject = self.push_subject("subject of a pushed artifact").await?;
        let a = self
            .push_artifact(&s.repo, SBOM, 1009 + self.salt, None)
            .await?;
        // The same artifact with a subject.
        let mut value: serde_json::Value = serde_json::from_slice(&a.bytes)?;
        value["subject"] = descriptor_json(&subject);
        let m = ours(fixtures::manifest_of(&value, manifest::OCI_MANIFEST)?)?;
        let pushed = self
            .reg
            .push_manifest(&s.repo.repo(), &m.digest.clone().into(), &m)
            .await?;
        match pushed.oci_subject {
            Some(d) if d == subject.digest => Ok(Outcome::Pass(
                "201 with OCI-Subject naming the subject".to_owned(),
            )),
            Some(d) => anyhow::bail!("OCI-Subject names {d}, the subject is {}", subject.digest),
            None => Ok(Outcome::Deviation(
                "registry deviation: no OCI-Subject header on a manifest with a subject (the \
                 registry does not index referrers); as the spec then asks of clients, our copy \
                 engine records the referrers it discovers and copies in the `<alg>-<hex>` \
                 fallback tag (see discovery/referrers-fallback; copy/*/artifact-with-subject \
                 covers a copied manifest that has a subject itself)"
                    .to_owned(),
            )),
        }
    }
}
