//! End-to-end tests across the acr-import crates live in `tests/tests/`; this library holds
//! what they share and what moves bytes: the Azure Resource Manager emulator
//! ([`arm_emulator`]) and a ready-made Azure world ([`world`]) of Azure AD, two ACR login
//! servers and ARM, also used by the CLI's tests; and cosign signatures checked where they
//! were copied to ([`signatures`]).
#![deny(missing_docs)]

pub mod arm_emulator;
pub mod signatures;
pub mod world;

pub use arm_emulator::{
    ARM_API_VERSION, ArmEmulator, ArmEmulatorBuilder, ArmRegistry, ArmRequest, ArmRole,
    IMPORT_SERVICE_PRINCIPAL, PERMISSIONS_API_VERSION,
};
pub use world::{ArmWorld, ArmWorldOptions};

use acr_import_reference::{Repository, TagOrDigest};

/// Shorthands for the typed names the transport takes, from a test's literals:
/// `reg.get_manifest(&"team/app".repo(), &"v1".at())`. A name that does not parse is a
/// mistake in the test: it panics, naming the text.
pub trait Names {
    /// The text as a repository path.
    fn repo(&self) -> Repository;
    /// The text as a tag, or a digest when it has an `algorithm:`.
    fn at(&self) -> TagOrDigest;
}

impl Names for str {
    fn repo(&self) -> Repository {
        self.parse()
            .unwrap_or_else(|e| panic!("`{self}` is not a repository: {e}"))
    }

    fn at(&self) -> TagOrDigest {
        self.parse()
            .unwrap_or_else(|e| panic!("`{self}` is neither a tag nor a digest: {e}"))
    }
}
