//! Change history for tenantscope dataprints.
//!
//! This crate is pure: it never reads files, the network or the clock.
//! Every function that needs the current time takes it as a parameter, so
//! that the same inputs always give the same outputs and tests stay exact.
//!
//! It offers four capabilities over dataprints (see `docs/dataprint.md`):
//!
//! - change detection: [`diff`] turns two dataprints of one tenant into
//!   named [`ChangeEvent`]s, with a generic field-level diff for the rest;
//! - metrics: JMESPath expressions over a dataprint, a built-in library
//!   ([`builtin_metrics`]) and user-defined ones from TOML ([`parse_config`]),
//!   evaluated with [`evaluate`] and filtered across tenants with
//!   [`WhereFilter`]; [`Query`] runs any JMESPath over any JSON;
//! - alerts: threshold, change and presence rules evaluated with
//!   [`evaluate_alerts`], and signed webhook requests built with
//!   [`build_webhook`] and checked with [`verify_signature`];
//! - baselines: [`Baseline::from_dataprint`] and [`drift`].

mod alerts;
mod baseline;
mod builtin;
mod config;
mod dataprint;
mod error;
mod eval;
mod events;
mod generic;
mod metrics;
mod named;
mod need;
mod webhook;

pub use alerts::{
    Alert, AlertCondition, AlertOutcome, AlertRule, AlertStatus, ChangeDirection, Comparison, evaluate_alerts,
};
pub use baseline::{BASELINE_SCHEMA, Baseline, Drift, DriftKind, drift, drift_reads};
pub use builtin::builtin_metrics;
pub use config::{Config, parse_config};
pub use error::{HistoryError, SignatureError};
pub use eval::EXTRA_FUNCTIONS;
pub use events::{ChangeEvent, EVENT_KINDS, Severity, diff};
pub use metrics::{Metric, MetricValue, Query, WhereFilter, evaluate, metric_object};
pub use need::{Need, project_elements};
pub use webhook::{WebhookFormat, WebhookRequest, build_for, outbox_payload, verify_signature};
