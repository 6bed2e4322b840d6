//! The output of a diagnosis.

use serde::{Deserialize, Serialize};

use crate::cause::{Cause, Check};
use crate::facts::Failure;

/// One observed fact supporting a diagnosis, shown as `name: value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub name: String,
    pub value: String,
}

impl Evidence {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Evidence { name: name.into(), value: value.into() }
    }
}

/// One named cause with what supports it and how to fix it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub cause: Cause,
    /// One line saying what went wrong, in the user's terms.
    pub summary: String,
    pub evidence: Vec<Evidence>,
    /// Concrete steps, naming the admin-centre page to open where one exists.
    pub fix: Vec<String>,
    /// How sure the rules are, from 0 to 1.
    pub confidence: f32,
    /// The doctor check that finds this cause.
    pub check: Check,
    /// `docs/causes.md#<id>`.
    pub docs: String,
}

/// What `explain` made of a pasted text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The best cause; equal to `candidates[0].cause`.
    pub cause: Cause,
    pub candidates: Vec<Diagnosis>,
    /// What would tell the candidates apart.
    pub distinguish: Vec<String>,
    /// How the text was understood.
    pub parsed: Failure,
}
