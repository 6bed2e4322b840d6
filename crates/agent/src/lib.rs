//! tenantscope's agents.
//!
//! An agent runs inspections from a network the MSP chooses (a host with a static egress address
//! that customers' Conditional Access allows), for a server it reaches over HTTPS: it enrolls
//! once with a one-time token, then long-polls for its pool's jobs, runs them where it is, and
//! works on the server's store through the agent API. The server never connects to it.
//!
//! - [`protocol`]: the messages of the agent API (the server answers them).
//! - [`keys`]: the agent's Ed25519 and X25519 keys, its tokens, sealed secrets.
//! - [`execute`]: one attempt of a job, the same in the server's in-process worker and here.
//! - [`remote`]: the server's store and the partner's tokens, as an agent reaches them.
//! - [`client`]: the HTTPS client of the agent API.
//! - [`run`]: enrollment and the agent's loop.

pub mod client;
pub mod execute;
pub mod keys;
pub mod protocol;
pub mod remote;
pub mod run;

/// The version agents report and the server compares with its own.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
