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
