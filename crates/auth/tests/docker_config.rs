//! Docker / containers configuration files and credential helpers, end to end.
//!
//! Every test builds its own files and its own `PATH` (a temp dir holding helper scripts it
//! writes), so the machine's real configuration and helpers are never consulted.
#![cfg(unix)]

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use acr_import_auth::{
    AuthError, Credential, CredentialProvider, DOCKER_HUB_SERVER_URL, DockerConfigSource,
    Explanation, Origin, Secret, SkipReason,
};
use base64::Engine as _;

/// Secrets used by the fixtures; none may ever appear in Debug or Display output.
const SECRETS: &[&str] = &[
    "hub-pa55",
    "local-pa55",
    "ghcr-pa55",
    "quay-pa55",
    "path-pa55",
    "id-token-value",
    "helper-pa55",
    "store-pa55",
    "refresh-from-helper",
    "LEAKED-stdout",
];

struct Fixture {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        Self { dir, bin }
    }

    fn file(&self, name: &str, json: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, json).unwrap();
        path
    }

    /// Writes `docker-credential-<name>` into the fixture's PATH directory.
    fn helper(&self, name: &str, body: &str) {
        let path = self.bin.join(format!("docker-credential-{name}"));
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A file the helpers append the server URL they were asked about to.
    fn log(&self) -> PathBuf {
        self.dir.path().join("helper.log")
    }

    fn logged(&self) -> Vec<String> {
        std::fs::read_to_string(self.log())
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// A helper answering `user`/`secret` for `server`, "not found" for anything else.
    fn answering_helper(&self, name: &str, server: &str, user: &str, secret: &str) {
        self.helper(
            name,
            &format!(
                r#"[ "$1" = get ] || exit 3
url=$(cat)
printf '%s\n' "$url" >> '{log}'
if [ "$url" = '{server}' ]; then
  printf '{{"ServerURL":"%s","Username":"{user}","Secret":"{secret}"}}\n' "$url"
else
  echo "credentials not found in native keychain"
  exit 1
fi"#,
                log = self.log().display()
            ),
        );
    }

    fn source(&self, paths: &[&Path]) -> DockerConfigSource {
        DockerConfigSource::new(
            paths.iter().map(|p| p.to_path_buf()),
            Some(OsString::from(&self.bin)),
        )
    }
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn basic(user: &str, pass: &str) -> Credential {
    Credential::Basic {
        username: user.into(),
        password: Secret::new(pass),
    }
}

fn assert_no_secret(shown: &str) {
    for secret in SECRETS {
        assert!(!shown.contains(secret), "`{secret}` leaked in: {shown}");
    }
}

fn show_explanation(e: &Explanation) -> String {
    let mut shown = format!("{e:?}");
    if let Some((credential, origin)) = &e.found {
        shown.push_str(&format!(
            "{credential:?} {} {origin}",
            credential.identity()
        ));
    }
    for skipped in &e.skipped {
        shown.push_str(&format!(" {skipped}"));
    }
    shown
}

#[tokio::test]
async fn auths_key_spellings_and_entry_kinds() {
    let fx = Fixture::new();
    let config = fx.file(
        "config.json",
        &format!(
            r#"{{
              "auths": {{
                "https://index.docker.io/v1/": {{ "auth": "{hub}" }},
                "http://localhost:5000": {{ "username": "local", "password": "local-pa55" }},
                "GHCR.IO": {{ "auth": "{ghcr}", "email": "x@example.com" }},
                "https://quay.io": {{ "auth": "{quay}", "identitytoken": "id-token-value" }},
                "myreg.example.com:8443/some/path": {{ "auth": "{path}" }},
                "acr.azurecr.io": {{ "username": "00000000-0000-0000-0000-000000000000", "password": "id-token-value" }}
              }}
            }}"#,
            hub = b64("hubuser:hub-pa55"),
            ghcr = b64("octo:ghcr-pa55"),
            quay = b64("<token>:"),
            path = b64("pathuser:path-pa55"),
        ),
    );
    let source = fx.source(&[&config]);
    let cases = [
        ("registry-1.docker.io", basic("hubuser", "hub-pa55")),
        ("docker.io", basic("hubuser", "hub-pa55")),
        ("index.docker.io", basic("hubuser", "hub-pa55")),
        ("localhost:5000", basic("local", "local-pa55")),
        ("ghcr.io", basic("octo", "ghcr-pa55")),
        (
            "quay.io",
            Credential::RefreshToken(Secret::new("id-token-value")),
        ),
        ("MyReg.Example.com:8443", basic("pathuser", "path-pa55")),
        (
            "acr.azurecr.io",
            Credential::RefreshToken(Secret::new("id-token-value")),
        ),
    ];
    for (registry, expected) in cases {
        let (credential, origin) = source.lookup(registry).await.unwrap().expect(registry);
        assert_eq!(credential, expected, "{registry}");
        assert!(
            matches!(origin, Origin::AuthsEntry { .. }),
            "{registry}: {origin:?}"
        );
        assert_eq!(origin.path(), config);
        assert_no_secret(&format!("{credential:?} {origin:?} {origin}"));
    }
    let (_, origin) = source
        .lookup("registry-1.docker.io")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        origin,
        Origin::AuthsEntry {
            path: config.clone(),
            key: "https://index.docker.io/v1/".into()
        }
    );
    assert!(source.lookup("localhost:5001").await.unwrap().is_none());
    assert!(source.lookup("myreg.example.com").await.unwrap().is_none());
}

#[tokio::test]
async fn credential_provider_falls_back_to_anonymous() {
    let fx = Fixture::new();
    let config = fx.file(
        "config.json",
        r#"{"auths": {"ghcr.io": {"username": "octo", "password": "ghcr-pa55"}}}"#,
    );
    let missing = fx.dir.path().join("nope.json");
    let provider: Box<dyn CredentialProvider> = Box::new(fx.source(&[&missing, &config]));
    assert_eq!(
        provider.credential("ghcr.io").await.unwrap(),
        basic("octo", "ghcr-pa55")
    );
    assert_eq!(
        provider.credential("quay.io").await.unwrap(),
        Credential::Anonymous
    );
}

#[tokio::test]
async fn first_file_with_an_entry_wins() {
    let fx = Fixture::new();
    let first = fx.file(
        "auth.json",
        r#"{"auths": {"quay.io": {"username": "first", "password": "quay-pa55"}}}"#,
    );
    let second = fx.file(
        "config.json",
        r#"{"auths": {
            "quay.io": {"username": "second", "password": "quay-pa55"},
            "ghcr.io": {"username": "octo", "password": "ghcr-pa55"}
        }}"#,
    );
    let missing = fx.dir.path().join("runtime/containers/auth.json");
    let source = fx.source(&[&missing, &first, &second]);

    let (credential, origin) = source.lookup("quay.io").await.unwrap().unwrap();
    assert_eq!(credential, basic("first", "quay-pa55"));
    assert_eq!(origin.path(), first);

    let explanation = source.explain("ghcr.io").await.unwrap();
    let (credential, origin) = explanation.found.clone().unwrap();
    assert_eq!(credential, basic("octo", "ghcr-pa55"));
    assert_eq!(origin.path(), second);
    assert_eq!(explanation.registry, "ghcr.io");
    let reasons: Vec<_> = explanation
        .skipped
        .iter()
        .map(|s| (s.path.clone(), s.reason.clone()))
        .collect();
    assert_eq!(
        reasons,
        [(missing, SkipReason::Missing), (first, SkipReason::NoEntry)]
    );
    assert_no_secret(&show_explanation(&explanation));
}

#[tokio::test]
async fn cred_helpers_beat_auths_which_beat_creds_store() {
    let fx = Fixture::new();
    fx.answering_helper("pertest", "quay.io", "helperuser", "helper-pa55");
    fx.answering_helper("store", "ghcr.io", "storeuser", "store-pa55");
    let config = fx.file(
        "config.json",
        r#"{
          "auths": {
            "quay.io": {"username": "inline", "password": "quay-pa55"},
            "example.com": {"username": "inline", "password": "quay-pa55"},
            "ghcr.io": {}
          },
          "credHelpers": {"quay.io": "pertest", "example.com": "pertest"},
          "credsStore": "store"
        }"#,
    );
    let source = fx.source(&[&config]);

    // credHelpers first.
    let (credential, origin) = source.lookup("quay.io").await.unwrap().unwrap();
    assert_eq!(credential, basic("helperuser", "helper-pa55"));
    assert_eq!(
        origin,
        Origin::CredHelper {
            path: config.clone(),
            key: "quay.io".into(),
            helper: "pertest".into(),
            server_url: "quay.io".into()
        }
    );

    // The helper has nothing for example.com: the inline entry is next.
    let explanation = source.explain("example.com").await.unwrap();
    let (credential, origin) = explanation.found.clone().unwrap();
    assert_eq!(credential, basic("inline", "quay-pa55"));
    assert!(matches!(origin, Origin::AuthsEntry { ref key, .. } if key == "example.com"));
    assert_eq!(
        explanation.skipped[0].reason,
        SkipReason::HelperHadNone {
            helper: "pertest".into(),
            server_url: "example.com".into()
        }
    );

    // An empty auths entry (Docker Desktop's marker) defers to the credsStore.
    let explanation = source.explain("ghcr.io").await.unwrap();
    let (credential, origin) = explanation.found.clone().unwrap();
    assert_eq!(credential, basic("storeuser", "store-pa55"));
    assert!(matches!(origin, Origin::CredsStore { ref helper, .. } if helper == "store"));
    assert_eq!(
        explanation.skipped[0].reason,
        SkipReason::EmptyEntry {
            key: "ghcr.io".into()
        }
    );
    assert_no_secret(&show_explanation(&explanation));

    // The credsStore is the default for registries not named anywhere; "not found" ⇒ none.
    let explanation = source.explain("nowhere.example").await.unwrap();
    assert!(explanation.found.is_none());
    assert!(matches!(
        explanation.skipped[..],
        [ref s] if matches!(s.reason, SkipReason::HelperHadNone { ref helper, .. } if helper == "store")
    ));

    assert_eq!(
        fx.logged(),
        ["quay.io", "example.com", "ghcr.io", "nowhere.example"]
    );
}

#[tokio::test]
async fn docker_hub_is_asked_for_as_index_v1() {
    let fx = Fixture::new();
    fx.answering_helper("desktop", DOCKER_HUB_SERVER_URL, "hubuser", "store-pa55");
    let config = fx.file(
        "config.json",
        r#"{"auths": {"https://index.docker.io/v1/": {}}, "credsStore": "desktop"}"#,
    );
    let source = fx.source(&[&config]);
    for registry in ["registry-1.docker.io", "docker.io", "index.docker.io"] {
        let (credential, origin) = source.lookup(registry).await.unwrap().unwrap();
        assert_eq!(credential, basic("hubuser", "store-pa55"));
        assert_eq!(
            origin,
            Origin::CredsStore {
                path: config.clone(),
                helper: "desktop".into(),
                server_url: DOCKER_HUB_SERVER_URL.into()
            }
        );
    }
    assert_eq!(fx.logged(), [DOCKER_HUB_SERVER_URL; 3]);
}

#[tokio::test]
async fn token_username_means_identity_token() {
    let fx = Fixture::new();
    fx.answering_helper("acr", "myacr.azurecr.io", "<token>", "refresh-from-helper");
    let config = fx.file(
        "config.json",
        r#"{"credHelpers": {"https://MyACR.azurecr.io": "acr"}}"#,
    );
    let source = fx.source(&[&config]);
    let (credential, origin) = source.lookup("myacr.azurecr.io").await.unwrap().unwrap();
    assert_eq!(
        credential,
        Credential::RefreshToken(Secret::new("refresh-from-helper"))
    );
    assert_no_secret(&format!("{credential:?} {origin:?} {origin}"));
}

#[tokio::test]
async fn not_found_continues_to_the_next_file() {
    let fx = Fixture::new();
    fx.helper(
        "empty",
        "cat >/dev/null\necho 'credentials not found in native keychain'\nexit 1",
    );
    let first = fx.file("auth.json", r#"{"credHelpers": {"ghcr.io": "empty"}}"#);
    let second = fx.file(
        "config.json",
        r#"{"auths": {"ghcr.io": {"username": "octo", "password": "ghcr-pa55"}}}"#,
    );
    let source = fx.source(&[&first, &second]);
    let (credential, origin) = source.lookup("ghcr.io").await.unwrap().unwrap();
    assert_eq!(credential, basic("octo", "ghcr-pa55"));
    assert_eq!(origin.path(), second);
}

#[tokio::test]
async fn helper_failures_never_repeat_stdout() {
    let fx = Fixture::new();
    fx.helper(
        "broken",
        "cat >/dev/null\necho '{\"Username\":\"u\",\"Secret\":\"LEAKED-stdout\"}'\necho 'keychain locked' >&2\nexit 2",
    );
    fx.helper(
        "chatty",
        "cat >/dev/null\necho 'Secret is LEAKED-stdout' >&2\nexit 4",
    );
    fx.helper("garbage", "cat >/dev/null\necho 'Secret: LEAKED-stdout'");
    let config = fx.file(
        "config.json",
        r#"{"credHelpers": {"a.example": "broken", "b.example": "chatty", "c.example": "garbage"}}"#,
    );
    let source = fx.source(&[&config]);

    let e = source.lookup("a.example").await.unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(
        matches!(e, AuthError::CredentialHelper { ref helper, .. } if helper == "broken"),
        "{shown}"
    );
    assert!(shown.contains("docker-credential-broken"), "{shown}");
    assert!(shown.contains("exit status: 2"), "{shown}");
    assert!(shown.contains("keychain locked"), "{shown}");
    assert_no_secret(&shown);

    let e = source.lookup("b.example").await.unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(shown.contains("exit status: 4"), "{shown}");
    assert!(!shown.contains("Secret is"), "{shown}");
    assert_no_secret(&shown);

    let e = source.lookup("c.example").await.unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(shown.contains("not a JSON object"), "{shown}");
    assert_no_secret(&shown);
}

#[tokio::test]
async fn slow_helpers_are_stopped() {
    let fx = Fixture::new();
    fx.helper("slow", "exec sleep 30");
    let config = fx.file("config.json", r#"{"credsStore": "slow"}"#);
    let source = fx
        .source(&[&config])
        .with_helper_timeout(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let e = source.lookup("quay.io").await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(e.to_string().contains("did not answer"), "{e}");
}

#[tokio::test]
async fn helpers_are_only_found_on_the_given_path() {
    // This machine may ship a real docker-credential-gcloud on its PATH: it must not be run.
    let fx = Fixture::new();
    let config = fx.file("config.json", r#"{"credHelpers": {"gcr.io": "gcloud"}}"#);
    let e = fx.source(&[&config]).lookup("gcr.io").await.unwrap_err();
    assert!(
        matches!(e, AuthError::CredentialHelper { ref helper, .. } if helper == "gcloud"),
        "{e}"
    );
    assert!(e.to_string().contains("not on PATH"), "{e}");

    let no_path = DockerConfigSource::new([&config], None);
    assert!(no_path.lookup("gcr.io").await.is_err());
    // Other registries do not need the helper.
    assert!(no_path.lookup("quay.io").await.unwrap().is_none());

    // A non-executable file of the right name is not a helper.
    let plain = fx.bin.join("docker-credential-gcloud");
    std::fs::write(&plain, "#!/bin/sh\nexit 0\n").unwrap();
    assert!(fx.source(&[&config]).lookup("gcr.io").await.is_err());

    // Nor is a name that tries to leave the PATH directories.
    let sneaky = fx.file("sneaky.json", r#"{"credsStore": "../bin/x"}"#);
    assert!(fx.source(&[&sneaky]).lookup("gcr.io").await.is_err());
}

#[tokio::test]
async fn malformed_files_name_the_file_and_entry() {
    let fx = Fixture::new();
    let bad_json = fx.file("bad.json", r#"{"auths": {"quay.io": {"auth": "quay-pa55"#);
    let e = fx.source(&[&bad_json]).lookup("quay.io").await.unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(
        matches!(e, AuthError::DockerConfigMalformed { .. }),
        "{shown}"
    );
    assert!(shown.contains(&bad_json.display().to_string()), "{shown}");
    assert_no_secret(&shown);

    let bad_base64 = fx.file(
        "bad64.json",
        r#"{"auths": {"https://quay.io": {"auth": "quay-pa55!!"}}}"#,
    );
    let e = fx
        .source(&[&bad_base64])
        .lookup("quay.io")
        .await
        .unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(shown.contains(&bad_base64.display().to_string()), "{shown}");
    assert!(shown.contains("auths[\"https://quay.io\"]"), "{shown}");
    assert!(shown.contains("base64"), "{shown}");
    assert_no_secret(&shown);
    // An entry for another registry is not decoded.
    assert!(
        fx.source(&[&bad_base64])
            .lookup("ghcr.io")
            .await
            .unwrap()
            .is_none()
    );

    // A path that exists but is not a readable file.
    let e = fx
        .source(&[fx.dir.path()])
        .lookup("quay.io")
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::DockerConfigUnreadable { .. }), "{e}");
}
