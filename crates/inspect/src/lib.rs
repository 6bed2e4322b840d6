//! Inspections: the collector catalog, the partner and customer inspections, the dataprint model, and
//! the run that ties them to the store.
//!
//! This crate decides what to read and how to assemble it; it has no SQL (the store does that) and
//! serves nothing over HTTP. Everything it says to Microsoft goes through the `microsoft` crate; every
//! failure it meets is handed to the `diagnose` crate with the facts around it.

pub mod access;
pub mod canon;
pub mod catalog;
pub mod child;
pub mod clock;
pub mod dataprint;
pub mod doctor;
pub mod facts;
pub mod gdap;
pub mod partner;
pub mod permissions;
pub mod run;
pub mod storage;
pub mod tokens;
pub mod turn;

pub use access::Access;
pub use child::{AuthMode, TenantTarget};
pub use clock::{Clock, ManualClock, SystemClock};
pub use doctor::{CheckResult, CheckStatus, DoctorReport};
pub use run::{Observer, RunOptions, RunReport, Runner, Silent, TenantSummary};
pub use storage::InspectStore;
pub use tokens::StoreTokens;
