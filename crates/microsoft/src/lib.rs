//! Talking to Microsoft: clouds, OAuth flows, the token cache, claim reading and the Graph client.
//!
//! This is the only crate that sends HTTP to Microsoft. It knows nothing of the simulator: a cloud is a
//! login URL, a Graph URL and optionally an extra CA, whether built in (global, US government, China) or
//! read from a cloud file.
//!
//! Security rules it enforces: a bearer token goes only over HTTPS to the configured cloud's Graph host
//! (a `@odata.nextLink` or redirect elsewhere is an error and the token is not sent); secrets are
//! [`secrecy::SecretString`]s whose `Debug` redacts; debug traces ([`har`]) are redacted before they
//! are recorded.

mod auth;
pub mod cache;
mod claims;
mod cloud;
pub mod discovery;
mod error;
pub mod graph;
pub mod har;
pub mod http;
mod loopback;
pub mod oauth;
pub mod oidc;
pub mod reach;
pub mod retry;

pub use auth::{AccessToken, Account, AccountRole, Authenticator, Grant};
pub use cache::{MemoryTokenStore, StoredToken, TokenCache, TokenInfo, TokenKind, TokenStore};
pub use claims::Claims;
pub use cloud::Cloud;
pub use error::{Error, GraphError, TokenError, TransportError, TransportKind};
pub use graph::{BatchItem, GraphClient, GraphOptions, Page, RawDelta, RawPage, Target};
pub use oauth::{AppCredential, FederatedSource};
pub use secrecy::{ExposeSecret, SecretString};
