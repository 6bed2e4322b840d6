//! The vocabulary every tenantscope crate shares.
//!
//! Crates that know nothing of each other (the pure `diagnose` and `history`, the `store`, the
//! `microsoft` client) still talk about the same things: how severe a finding is, which tenant
//! something belongs to, which directory role a GDAP relationship grants. Each of those is defined
//! once, here, so that no crate converts another's copy through JSON or text.
//!
//! This crate has no IO and depends on nothing but serde.

mod severity;
mod tenant;

pub mod roles;
pub use roles::{DirectoryRole, ROLES, role, role_name};
pub use severity::{Severity, UnknownSeverity};
pub use tenant::TenantId;
