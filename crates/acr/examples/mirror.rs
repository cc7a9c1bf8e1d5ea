//! A mirror file, the way `acr import --from-file` runs it: every entry planned and looked up
//! at once, what changed copied on one engine, a line per finished entry.
//!
//! `cargo run -p acr-import-acr --example mirror -- TARGET MIRROR.yaml [I/N]`
use acr_import_acr::mirror::{MirrorFile, MirrorRequest};
use acr_import_acr::{Cloud, ImportEvent, Importer, ImporterConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(target), Some(path)) = (args.next(), args.next()) else {
        return Err("usage: mirror TARGET MIRROR.yaml [I/N]".into());
    };
    let file = MirrorFile::read(path.as_ref())?;
    let mut request =
        MirrorRequest::new(target, file).credentials_from(|name| std::env::var(name).ok())?;
    if let Some(shard) = args.next() {
        request.shard = shard.parse()?;
    }
    let importer = Importer::new(ImporterConfig::from_env(Cloud::azure_cloud()));
    let show = |event: &ImportEvent| {
        if let ImportEvent::MirrorEntry(entry) = event {
            eprintln!("{}", entry.summary());
        }
    };
    let report = importer.mirror(&request, &show).await?;
    println!("{}", report.summary());
    match report.failed().count() {
        0 => Ok(()),
        n => Err(format!("{n} entries failed").into()),
    }
}
