//! The `acr` command.
fn main() {}
