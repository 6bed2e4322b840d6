//! How much something matters: change events, alerts and warnings share one scale.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How much a finding matters, from `info` to `critical`.
///
/// The order of the variants is the order of importance, so severities can be compared and
/// filtered with `>=`. The lower-case names are the spelling in JSON, TOML, the database and on the
/// command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth recording, not worth reading.
    #[default]
    Info,
    /// Routine administration.
    Low,
    /// Worth a look.
    Medium,
    /// Weakens security or access, or will break soon; someone should check it today.
    High,
    /// Grants tenant-wide control, removes a main protection, or has already broken access.
    Critical,
}

/// Every severity, from the least to the most severe.
const ALL: [Severity; 5] = [Severity::Info, Severity::Low, Severity::Medium, Severity::High, Severity::Critical];

impl Severity {
    /// Every severity, from the least to the most severe.
    pub const ALL: &'static [Severity] = &ALL;

    /// The lower-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Position on the scale, 0 for `info` to 4 for `critical`; stored beside the name so that a
    /// database can filter on a minimum severity.
    pub const fn rank(self) -> i64 {
        self as i64
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a severity that is not one of the five names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSeverity(pub String);

impl fmt::Display for UnknownSeverity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown severity `{}` (expected info, low, medium, high or critical)", self.0)
    }
}

impl std::error::Error for UnknownSeverity {}

impl FromStr for Severity {
    type Err = UnknownSeverity;

    /// Parses a name, ignoring case and surrounding spaces.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim();
        ALL.iter()
            .copied()
            .find(|s| s.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| UnknownSeverity(text.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_order() {
        for s in Severity::ALL {
            assert_eq!(s.as_str().parse::<Severity>(), Ok(*s));
            assert_eq!(serde_json::to_string(s).expect("json"), format!("\"{s}\""));
        }
        assert_eq!(" HIGH ".parse::<Severity>(), Ok(Severity::High));
        assert!("urgent".parse::<Severity>().is_err());
        assert!(Severity::Critical > Severity::High && Severity::Info < Severity::Low);
        assert_eq!(Severity::Critical.rank(), 4);
    }
}
