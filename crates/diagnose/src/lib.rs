//! diagnose: turns a failure from Microsoft (token endpoint, Graph, network or pasted text)
//! plus what is known about the tenant into one named cause, with evidence and a fix.
//!
//! The crate is pure: no IO, no network, no clock (time arrives in the facts), no async.
//! Its vocabulary is documented in `docs/causes.md`.
//!
//! ```
//! use diagnose::{Cause, Check, explain};
//!
//! let e = explain(r#"{"error":"invalid_grant","error_description":"AADSTS700082: The refresh token has expired due to inactivity.","error_codes":[700082]}"#);
//! assert_eq!(e.cause, Cause::RefreshTokenExpired);
//! assert_eq!(e.candidates[0].check, Check::TokenRetrieval);
//! assert_eq!(e.candidates[0].docs, "docs/causes.md#refresh_token_expired");
//! ```
//!
//! With facts, the same failure can name a different cause:
//!
//! ```
//! use diagnose::{Auth, Cause, Context, Facts, Failure, TokenClaims, TokenEndpointFailure, diagnose};
//!
//! let facts = Facts {
//!     failure: Some(Failure::TokenEndpoint(TokenEndpointFailure {
//!         http_status: 400,
//!         error: "interaction_required".into(),
//!         error_codes: vec![50076],
//!         description: "AADSTS50076: you must use multi-factor authentication".into(),
//!         ..Default::default()
//!     })),
//!     claims: Some(TokenClaims { amr: vec!["pwd".into()], ..Default::default() }),
//!     context: Some(Context { auth: Auth::Gdap, ..Default::default() }),
//!     ..Default::default()
//! };
//! assert_eq!(diagnose(&facts).cause, Cause::MfaClaimMissing);
//! ```

pub mod aadsts;
mod advice;
mod cause;
mod diagnosis;
mod evidence;
mod explain;
mod facts;
mod field;
mod graph;
mod hosts;
mod parse;
mod rules;
mod signin;
mod text;
mod warnings;

pub use advice::generalize_fix;
pub use cause::{Cause, Check, UnknownId};
pub use diagnosis::{Diagnosis, Evidence, Explanation};
pub use explain::{explain, explain_with};
pub use facts::{
    Auth, CacheFacts, ConsentFacts, Context, Facts, Failure, GdapAssignment, GdapFacts, GdapRelationship, GraphFailure,
    LicenceFacts, Need, NetworkFacts, TokenClaims, TokenEndpointFailure, TransportFailure, TransportKind,
};
pub use parse::{MAX_SCAN_BYTES, parse_failure};
pub use rules::{candidates, diagnose};
pub use signin::{CauseGroup, Count, MAX_SIGN_IN_LOG_BYTES, SignInLogError, SignInSummary, summarize_sign_in_logs};
pub use warnings::{
    EXPIRY_WARN_DAYS, REFRESH_WARN_DAYS, REFRESH_WINDOW_DAYS, SecretInfo, Severity, Warning, WarningInput, WarningKind,
    warnings,
};
