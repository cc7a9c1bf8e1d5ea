//! One import, the way `acr import` runs it: server-side through Azure Resource Manager when
//! the target is an ACR it can reach, client-side otherwise.
//!
//! `cargo run -p acr-import-acr --example import -- TARGET SOURCE [REPO:TAG]`
use acr_import_acr::{Cloud, ImportEvent, ImportRequest, Importer, ImporterConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(target), Some(source)) = (args.next(), args.next()) else {
        return Err("usage: import TARGET SOURCE [REPO:TAG]".into());
    };
    let mut request = ImportRequest::new(target, source);
    if let Some(image) = args.next() {
        request = request.image(image);
    }
    let importer = Importer::new(ImporterConfig::from_env(Cloud::azure_cloud()));
    let show = |event: &ImportEvent| {
        if let ImportEvent::Warning(text) | ImportEvent::Note(text) = event {
            eprintln!("{text}");
        }
    };
    let report = importer.import(&request, &show).await?;
    println!("{}", report.summary());
    Ok(())
}
