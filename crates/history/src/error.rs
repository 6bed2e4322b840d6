//! Errors of the history crate.

use thiserror::Error;

/// Everything that can go wrong when reading dataprints, configuration or
/// baselines.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HistoryError {
    /// The document has no `schema` field, so it cannot be trusted to be a
    /// dataprint at all.
    #[error("the document has no `schema` field; it is not a tenantscope dataprint")]
    MissingSchema,
    /// The schema names a format or a major version this crate does not know.
    #[error("unsupported schema `{0}`: this version reads tenantscope.dataprint/1")]
    UnsupportedSchema(String),
    /// The document is not a JSON object or one of its mandatory parts has the
    /// wrong shape.
    #[error("not a dataprint: {0}")]
    Malformed(String),
    /// Two dataprints of different tenants cannot be diffed into changes.
    #[error("the dataprints belong to different tenants ({before} and {after})")]
    TenantMismatch {
        /// Tenant of the older dataprint.
        before: String,
        /// Tenant of the newer dataprint.
        after: String,
    },
    /// The configuration text is not valid TOML or does not have the expected
    /// shape.
    #[error("configuration: {0}")]
    Config(String),
    /// A metric is invalid: bad name or an expression that does not compile.
    #[error("metric `{name}`: {message}")]
    Metric {
        /// The metric's name as written.
        name: String,
        /// What is wrong with it.
        message: String,
    },
    /// An alert rule is invalid.
    #[error("alert `{name}`: {message}")]
    Alert {
        /// The rule's name as written.
        name: String,
        /// What is wrong with it.
        message: String,
    },
    /// A `--where` expression does not compile or does not evaluate.
    #[error("where expression: {0}")]
    Where(String),
    /// A baseline document is not valid.
    #[error("baseline: {0}")]
    Baseline(String),
}

/// Why a webhook signature was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SignatureError {
    /// The header is not of the form `t=<unix seconds>,v1=<hex>`.
    #[error("malformed signature header")]
    Malformed,
    /// The timestamp is further from now than the tolerance allows, which is
    /// how replayed deliveries are refused.
    #[error("signature timestamp outside the tolerance")]
    Expired,
    /// No `v1` signature matches the body and the secret.
    #[error("signature does not match")]
    Mismatch,
}
