//! `cargo xtask man`: the man page of `acr`, from its clap definition.

use clap::CommandFactory;

pub fn run() -> anyhow::Result<()> {
    let dir = crate::workspace_root().join("target").join("man");
    std::fs::create_dir_all(&dir)?;
    let cmd = acr_import_cli::args::Cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    std::fs::write(dir.join("acr.1"), page)?;
    for sub in cmd.get_subcommands() {
        let mut page = Vec::new();
        let name = format!("acr-{}", sub.get_name());
        clap_mangen::Man::new(sub.clone().display_name(name.clone())).render(&mut page)?;
        std::fs::write(dir.join(format!("{name}.1")), page)?;
    }
    println!("wrote {}", dir.display());
    Ok(())
}
