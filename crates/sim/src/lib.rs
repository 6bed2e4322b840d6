//! A faithful simulator of Microsoft's identity platform (v2.0) and of Microsoft Graph, for the demo and
//! for every test of tenantscope.
//!
//! The simulator speaks only HTTPS, with a CA of its own, and answers the way Microsoft answers: the same
//! paths, parameters, payload shapes, AADSTS error bodies, Graph error bodies, throttling and paging.
//! Microsoft's own client libraries work against it unmodified except for their authority, instance
//! discovery and trusted CA. It depends on no other tenantscope crate.
//!
//! - [`world`]: tenants, users, apps, GDAP relationships and policies, from a file, a generator or the
//!   built-in demo; changed at run time through `world::actions::Action`.
//! - [`identity`]: discovery, keys, the token and device-code endpoints, and the sign-in pages.
//! - [`graph`]: the Graph resources, with authorization, throttling, faults, delta and `$batch`.
//! - `control`: the control API under `/_sim/`.
//! - [`signin`]: the scripted user that completes sign-ins on the HTML pages.

pub mod catalog;
mod clock;
mod control;
mod errors;
pub mod faults;
pub mod graph;
pub mod identity;
pub mod keys;
mod server;
pub mod signin;
mod state;
mod tls;
pub mod world;

pub use server::{CloudFile, ReadyInfo, RunningSim, SimConfig, SimError, WorldSource, start};
