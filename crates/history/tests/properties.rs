//! Property tests: diff, metrics and drift never panic, whatever the JSON,
//! and a dataprint compared with itself shows no change.

use chrono::{DateTime, Utc};
use history::{Baseline, builtin_metrics, diff, drift, evaluate};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Field names the named handlers look at, so that random objects hit their
/// code paths with unexpected types and values.
const KEYS: &[&str] = &[
    "id",
    "displayName",
    "userPrincipalName",
    "accountEnabled",
    "isMfaRegistered",
    "isAdmin",
    "state",
    "members",
    "roleTemplateId",
    "roleDefinitionId",
    "principalId",
    "principal",
    "directoryScopeId",
    "scope",
    "clientId",
    "consentType",
    "appRoleValue",
    "status",
    "endDateTime",
    "autoExtendDuration",
    "isEnabled",
    "authenticationType",
    "prepaidUnits",
    "enabled",
    "consumedUnits",
    "createdDateTime",
    "currentScore",
    "maxScore",
    "signInActivity",
    "lastSignInDateTime",
    "assignedLicenses",
    "userType",
    "passwordCredentials",
    "authenticationMethodConfigurations",
    "a/b~c",
];

const STRINGS: &[&str] = &[
    "",
    "enabled",
    "disabled",
    "active",
    "expired",
    "terminated",
    "PT0S",
    "Federated",
    "Managed",
    "AllPrincipals",
    "Directory.ReadWrite.All User.Read",
    "full_access_as_app",
    "Guest",
    "62e90394-69f5-4237-9190-012177145e10",
    "2026-11-28T12:00:00Z",
    "2026-12-10T00:00:00Z",
    "not a date",
    "/",
];

const COLLECTIONS: &[&str] = &[
    "users",
    "userRegistrationDetails",
    "directoryRoles",
    "roleAssignments",
    "roleDefinitions",
    "conditionalAccessPolicies",
    "namedLocations",
    "securityDefaults",
    "authorizationPolicy",
    "authenticationMethodsPolicy",
    "subscribedSkus",
    "secureScores",
    "domains",
    "servicePrincipals",
    "appRoleAssignments",
    "oauth2PermissionGrants",
    "applications",
    "delegatedAdminRelationships",
    "delegatedAdminCustomers",
    "groups",
    "signIns",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-5i64..100).prop_map(Value::from),
        (-1.0e3f64..1.0e3).prop_map(Value::from),
        prop::sample::select(STRINGS).prop_map(Value::from),
        "[a-z]{0,4}".prop_map(Value::from),
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(KEYS), inner, 0..6)
                .prop_map(|m| { Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()) }),
        ]
    })
}

/// A collection: usually a map of ids to objects, sometimes any JSON.
fn arb_collection() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => prop::collection::btree_map("[a-c]{1,2}", arb_json(), 0..5)
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<String, Value>>())),
        1 => arb_json(),
    ]
}

fn arb_dataprint() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["customer", "partner", "other"]),
        prop::sample::select(vec!["2026-11-27T12:00:00Z", "2026-11-28T12:00:00Z", "bad"]),
        prop::collection::btree_map(prop::sample::select(COLLECTIONS), arb_collection(), 0..8),
    )
        .prop_map(|(role, started, collections)| {
            json!({
                "schema": "tenantscope.dataprint/1",
                "tenant": {"id": "t1", "role": role},
                "run": {"started_at": started},
                "collections": collections
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect::<Map<String, Value>>(),
            })
        })
}

fn now() -> DateTime<Utc> {
    "2026-11-28T12:00:00Z".parse().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn diff_with_itself_is_empty(x in arb_dataprint()) {
        let events = diff(&x, &x).unwrap();
        prop_assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn diff_never_panics_on_dataprints(x in arb_dataprint(), y in arb_dataprint()) {
        let first = diff(&x, &y).unwrap();
        // Deterministic: the same input gives the same events.
        prop_assert_eq!(first, diff(&x, &y).unwrap());
    }

    #[test]
    fn diff_never_panics_on_arbitrary_json(x in arb_json(), y in arb_json()) {
        let _ = diff(&x, &y);
    }

    #[test]
    fn metrics_and_drift_never_panic(x in arb_dataprint(), y in arb_dataprint()) {
        let values = evaluate(&builtin_metrics(), &x, now());
        prop_assert_eq!(values.len(), builtin_metrics().len());
        let baseline = Baseline::from_dataprint("gold", &x).unwrap();
        prop_assert!(drift(&baseline, &x).unwrap().is_empty());
        let _ = drift(&baseline, &y).unwrap();
    }
}
