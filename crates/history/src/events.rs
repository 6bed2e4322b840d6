//! Change events: the data types and the diff of two dataprints.
//!
//! [`diff`] first runs the named handlers (see `named/`), which turn the
//! changes MSPs care about into events with a meaning and a severity, and
//! record which objects and fields they explained ("claims"). The generic
//! diff then reports every remaining difference of the collections, so that
//! no change goes unseen and none is reported twice.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::dataprint::{Dataprint, Role, check_schema};
use crate::error::HistoryError;
use crate::{generic, named};

/// How much a change matters, from `info` to `critical`: the scale alerts and warnings share.
pub use vocab::Severity;

/// One change between two dataprints of a tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// What happened, as a stable snake_case id (see [`EVENT_KINDS`]).
    pub kind: String,
    /// How much it matters.
    pub severity: Severity,
    /// The tenant the dataprints belong to.
    pub tenant_id: String,
    /// The collection the object lives in, for example `users`.
    pub collection: String,
    /// The id of the object that changed (for role events, the principal).
    pub object_id: String,
    /// The object's human name, when it has one.
    #[serde(default)]
    pub display_name: Option<String>,
    /// The changed field as a JSON pointer into the object (for role events,
    /// the role definition id).
    #[serde(default)]
    pub field: Option<String>,
    /// The value before the change; `None` when the object or field is new.
    #[serde(default)]
    pub before: Option<Value>,
    /// The value after the change; `None` when the object or field is gone.
    #[serde(default)]
    pub after: Option<Value>,
    /// One line for people.
    pub summary: String,
}

/// Every event kind [`diff`] can produce.
pub const EVENT_KINDS: &[&str] = &[
    "user_added",
    "user_removed",
    "user_enabled",
    "user_disabled",
    "admin_role_assigned",
    "admin_role_removed",
    "global_admin_assigned",
    "global_admin_removed",
    "mfa_registration_lost",
    "ca_policy_created",
    "ca_policy_changed",
    "ca_policy_disabled",
    "ca_policy_deleted",
    "security_defaults_enabled",
    "security_defaults_disabled",
    "licence_count_changed",
    "consent_granted",
    "service_principal_with_app_permissions_added",
    "domain_added",
    "domain_removed",
    "domain_authentication_changed",
    "secure_score_changed",
    "gdap_relationship_created",
    "gdap_relationship_changed",
    "gdap_relationship_ending_soon",
    "gdap_relationship_expired",
    "gdap_relationship_terminated",
    "customer_gained",
    "customer_lost",
    "object_added",
    "object_removed",
    "field_changed",
];

/// Delegated scopes and application permissions that give broad write or
/// read access to directory, mail or files. A consent that includes one of
/// them is called out with a higher severity.
pub(crate) const HIGH_PRIVILEGE_PERMISSIONS: &[&str] = &[
    "Directory.ReadWrite.All",
    "RoleManagement.ReadWrite.Directory",
    "Application.ReadWrite.All",
    "AppRoleAssignment.ReadWrite.All",
    "DelegatedPermissionGrant.ReadWrite.All",
    "Policy.ReadWrite.ConditionalAccess",
    "User.ReadWrite.All",
    "Group.ReadWrite.All",
    "Domain.ReadWrite.All",
    "Mail.Read",
    "Mail.ReadWrite",
    "Mail.Send",
    "MailboxSettings.ReadWrite",
    "Files.ReadWrite.All",
    "Sites.ReadWrite.All",
    "Sites.FullControl.All",
    "EWS.AccessAsUser.All",
    "full_access_as_app",
];

/// Whether a scope or application permission is in
/// [`HIGH_PRIVILEGE_PERMISSIONS`]; Microsoft treats permission names as
/// case-insensitive, so this does too.
pub(crate) fn is_high_privilege(permission: &str) -> bool {
    HIGH_PRIVILEGE_PERMISSIONS.iter().any(|p| p.eq_ignore_ascii_case(permission))
}

/// Diffs two dataprints of one tenant into change events.
///
/// Collections absent from either dataprint are skipped entirely: absent
/// means "not known in this run", so nothing in them can be said to be added
/// or removed. The events come in a deterministic order: most severe first,
/// then by kind, collection, object id and field.
///
/// # Errors
///
/// Fails when either document is not a dataprint of a supported schema
/// version, or when the two belong to different tenants.
pub fn diff(before: &Value, after: &Value) -> Result<Vec<ChangeEvent>, HistoryError> {
    let before = check_schema(before)?;
    let after = check_schema(after)?;
    let tenant_id = match (before.tenant_id(), after.tenant_id()) {
        (Some(b), Some(a)) if !b.eq_ignore_ascii_case(a) => {
            return Err(HistoryError::TenantMismatch { before: b.to_owned(), after: a.to_owned() });
        }
        (_, Some(a)) => a.to_owned(),
        (Some(b), None) => b.to_owned(),
        (None, None) => String::new(),
    };
    let mut ctx = DiffContext { before, after, tenant_id, events: Vec::new(), claims: Claims::default() };
    named::run(&mut ctx);
    generic::run(&mut ctx);
    let mut events = ctx.events;
    events.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.kind.cmp(&b.kind))
            .then_with(|| a.collection.cmp(&b.collection))
            .then_with(|| a.object_id.cmp(&b.object_id))
            .then_with(|| a.field.cmp(&b.field))
    });
    Ok(events)
}

/// What the named handlers have already explained, so that the generic diff
/// does not report it a second time.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    /// Collections handled as a whole.
    collections: HashSet<String>,
    /// Objects whose addition or removal is explained.
    objects: HashSet<(String, String)>,
    /// Fields (JSON pointers, with everything below them) explained per
    /// object.
    fields: HashMap<(String, String), Vec<String>>,
    /// Fields explained for every object of a collection.
    collection_fields: HashMap<String, Vec<String>>,
}

impl Claims {
    pub(crate) fn collection(&mut self, collection: &str) {
        self.collections.insert(collection.to_owned());
    }

    pub(crate) fn object(&mut self, collection: &str, id: &str) {
        self.objects.insert((collection.to_owned(), id.to_owned()));
    }

    pub(crate) fn field(&mut self, collection: &str, id: &str, pointer: &str) {
        self.fields.entry((collection.to_owned(), id.to_owned())).or_default().push(pointer.to_owned());
    }

    pub(crate) fn collection_field(&mut self, collection: &str, pointer: &str) {
        self.collection_fields.entry(collection.to_owned()).or_default().push(pointer.to_owned());
    }

    pub(crate) fn has_collection(&self, collection: &str) -> bool {
        self.collections.contains(collection)
    }

    pub(crate) fn has_object(&self, collection: &str, id: &str) -> bool {
        // The lookup allocates only when the set is not empty, which keeps
        // the common case of large unchanged collections cheap.
        !self.objects.is_empty() && self.objects.contains(&(collection.to_owned(), id.to_owned()))
    }

    /// Whether a field change at `pointer` is explained, either by a claim on
    /// that pointer or on one of its ancestors.
    pub(crate) fn has_field(&self, collection: &str, id: &str, pointer: &str) -> bool {
        let covers = |claimed: &String| {
            pointer == claimed
                || (pointer.starts_with(claimed.as_str()) && pointer.as_bytes().get(claimed.len()) == Some(&b'/'))
        };
        if let Some(list) = self.collection_fields.get(collection)
            && list.iter().any(covers)
        {
            return true;
        }
        if self.fields.is_empty() {
            return false;
        }
        self.fields.get(&(collection.to_owned(), id.to_owned())).is_some_and(|list| list.iter().any(covers))
    }
}

/// One collection of a dataprint: objects keyed by id.
pub(crate) type Collection<'a> = &'a Map<String, Value>;

/// The state shared by the named handlers and the generic diff.
pub(crate) struct DiffContext<'a> {
    pub(crate) before: Dataprint<'a>,
    pub(crate) after: Dataprint<'a>,
    pub(crate) tenant_id: String,
    pub(crate) events: Vec<ChangeEvent>,
    pub(crate) claims: Claims,
}

impl<'a> DiffContext<'a> {
    /// A collection in both dataprints, or `None` when either lacks it, in
    /// which case nothing about it can be compared.
    pub(crate) fn both(&self, name: &str) -> Option<(Collection<'a>, Collection<'a>)> {
        Some((self.before.collection(name)?, self.after.collection(name)?))
    }

    /// Whether customer-tenant rules apply.
    pub(crate) fn is_customer(&self) -> bool {
        self.after.role() != Role::Partner
    }

    /// Whether partner-tenant rules apply.
    pub(crate) fn is_partner(&self) -> bool {
        self.after.role() != Role::Customer
    }

    /// Starts an event of this tenant.
    pub(crate) fn event(&self, kind: &str, severity: Severity, collection: &str, object_id: &str) -> EventBuilder {
        EventBuilder(ChangeEvent {
            kind: kind.to_owned(),
            severity,
            tenant_id: self.tenant_id.clone(),
            collection: collection.to_owned(),
            object_id: object_id.to_owned(),
            display_name: None,
            field: None,
            before: None,
            after: None,
            summary: String::new(),
        })
    }

    pub(crate) fn push(&mut self, builder: EventBuilder) {
        self.events.push(builder.0);
    }
}

/// Fills in the optional parts of an event.
pub(crate) struct EventBuilder(ChangeEvent);

impl EventBuilder {
    pub(crate) fn name(mut self, name: Option<String>) -> Self {
        self.0.display_name = name;
        self
    }

    pub(crate) fn field(mut self, field: impl Into<String>) -> Self {
        self.0.field = Some(field.into());
        self
    }

    pub(crate) fn before(mut self, value: Option<Value>) -> Self {
        self.0.before = value;
        self
    }

    pub(crate) fn after(mut self, value: Option<Value>) -> Self {
        self.0.after = value;
        self
    }

    pub(crate) fn summary(mut self, summary: String) -> Self {
        self.0.summary = summary;
        self
    }
}

/// The sorted union of the keys of two collections.
pub(crate) fn union_keys<'m>(a: &'m Map<String, Value>, b: &'m Map<String, Value>) -> Vec<&'m str> {
    let mut keys: Vec<&str> = a.keys().chain(b.keys()).map(String::as_str).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Named event kinds, each produced by a dedicated rule. They and the generic kinds are listed
    /// apart here so that `kinds_are_consistent` checks that `EVENT_KINDS` holds both families, in
    /// order.
    const NAMED_EVENT_KINDS: &[&str] = &[
        "user_added",
        "user_removed",
        "user_enabled",
        "user_disabled",
        "admin_role_assigned",
        "admin_role_removed",
        "global_admin_assigned",
        "global_admin_removed",
        "mfa_registration_lost",
        "ca_policy_created",
        "ca_policy_changed",
        "ca_policy_disabled",
        "ca_policy_deleted",
        "security_defaults_enabled",
        "security_defaults_disabled",
        "licence_count_changed",
        "consent_granted",
        "service_principal_with_app_permissions_added",
        "domain_added",
        "domain_removed",
        "domain_authentication_changed",
        "secure_score_changed",
        "gdap_relationship_created",
        "gdap_relationship_changed",
        "gdap_relationship_ending_soon",
        "gdap_relationship_expired",
        "gdap_relationship_terminated",
        "customer_gained",
        "customer_lost",
    ];

    /// The kinds of the generic field-level diff.
    const GENERIC_EVENT_KINDS: &[&str] = &["object_added", "object_removed", "field_changed"];

    #[test]
    fn severity_order_and_names() {
        assert!(Severity::Critical > Severity::High);
        assert!(Severity::Info < Severity::Low);
        assert_eq!("HIGH".parse::<Severity>(), Ok(Severity::High));
        assert!("urgent".parse::<Severity>().is_err());
        assert_eq!(serde_json::to_string(&Severity::Medium).ok().as_deref(), Some("\"medium\""));
    }

    #[test]
    fn kinds_are_consistent() {
        let all: Vec<&str> = NAMED_EVENT_KINDS.iter().chain(GENERIC_EVENT_KINDS).copied().collect();
        assert_eq!(all, EVENT_KINDS);
    }

    #[test]
    fn claims_cover_descendants_only() {
        let mut claims = Claims::default();
        claims.field("users", "1", "/accountEnabled");
        assert!(claims.has_field("users", "1", "/accountEnabled"));
        assert!(claims.has_field("users", "1", "/accountEnabled/x"));
        assert!(!claims.has_field("users", "1", "/accountEnabledX"));
        assert!(!claims.has_field("users", "2", "/accountEnabled"));
    }

    #[test]
    fn high_privilege_is_case_insensitive() {
        assert!(is_high_privilege("directory.readwrite.all"));
        assert!(!is_high_privilege("User.Read"));
    }
}
