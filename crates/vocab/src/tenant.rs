//! Tenant ids, normalised once.

use std::borrow::Borrow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// A Microsoft Entra tenant id: a GUID, kept in lower case.
///
/// Microsoft spells tenant ids in either case (Partner Center in upper case, tokens in lower case),
/// so an id is trimmed and lower-cased once, when it is made, and compared as it is afterwards.
/// Domains and display names are not tenant ids: resolving them is the store's job.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Default)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    /// Normalises an id read from anywhere (a token, Graph, the command line, the database).
    pub fn new(id: impl AsRef<str>) -> TenantId {
        TenantId(id.as_ref().trim().to_ascii_lowercase())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the id is a GUID (8-4-4-4-12 hexadecimal digits), as Entra tenant ids are.
    pub fn is_guid(&self) -> bool {
        let b = self.0.as_bytes();
        b.len() == 36
            && b.iter().enumerate().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => *c == b'-',
                _ => c.is_ascii_hexdigit(),
            })
    }

    /// Whether the id is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The id as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(TenantId::new)
    }
}

impl From<&str> for TenantId {
    fn from(id: &str) -> TenantId {
        TenantId::new(id)
    }
}

impl From<String> for TenantId {
    fn from(id: String) -> TenantId {
        TenantId::new(id)
    }
}

impl From<&String> for TenantId {
    fn from(id: &String) -> TenantId {
        TenantId::new(id)
    }
}

impl From<&TenantId> for TenantId {
    fn from(id: &TenantId) -> TenantId {
        id.clone()
    }
}

impl AsRef<str> for TenantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for TenantId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for TenantId {
    fn eq(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other.trim())
    }
}

impl PartialEq<&str> for TenantId {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_once() {
        let a = TenantId::new(" 4F1C5A3E-0000-4000-8000-00000000AAAA ");
        assert_eq!(a.as_str(), "4f1c5a3e-0000-4000-8000-00000000aaaa");
        assert!(a.is_guid());
        assert_eq!(a, "4F1C5A3E-0000-4000-8000-00000000AAAA");
        let back: TenantId = serde_json::from_str("\"4F1C5A3E-0000-4000-8000-00000000AAAA\"").expect("json");
        assert_eq!(back, a);
        assert!(!TenantId::new("contoso.onmicrosoft.com").is_guid());
    }
}
