//! How a `--tenant` value is resolved against the store: the same rules for every command.

use chrono::Utc;
use inspect::access::{AccessError, find_record, require_tenant};
use store::{Key, TenantAuth, TenantId, TenantRecord, TenantRole};

fn tenant(id: &str, name: &str, domain: Option<&str>) -> TenantRecord {
    TenantRecord {
        id: TenantId::new(id),
        domain: domain.map(str::to_string),
        display_name: name.into(),
        role: TenantRole::Customer,
        auth: TenantAuth::Gdap,
        first_seen: Utc::now(),
        last_seen: Utc::now(),
        gone_since: None,
        gdap: None,
        label: None,
    }
}

#[tokio::test]
async fn a_name_shared_by_two_tenants_is_an_error_that_lists_them() {
    let store = store::open("sqlite::memory:", Key::generate()).await.expect("store");
    let a = tenant("11111111-0000-4000-8000-000000000001", "Contoso", Some("contoso.com"));
    let b = tenant("11111111-0000-4000-8000-000000000002", "contoso", Some("contoso-eu.com"));
    store.upsert_tenant(&a).await.expect("a");
    store.upsert_tenant(&b).await.expect("b");
    let err = find_record(store.as_ref(), " CONTOSO ").await.expect_err("ambiguous");
    let AccessError::Ambiguous { matches, .. } = &err else { panic!("{err}") };
    assert_eq!(matches.len(), 2);
    let text = err.to_string();
    assert!(text.contains(a.id.as_str()) && text.contains(b.id.as_str()), "{text}");
    // Each is still found by its id or its domain.
    assert_eq!(find_record(store.as_ref(), "CONTOSO-EU.com").await.expect("found").map(|t| t.id), Some(b.id.clone()));
    assert_eq!(
        find_record(store.as_ref(), &a.id.to_string().to_uppercase()).await.expect("found").map(|t| t.id),
        Some(a.id)
    );
    let missing = require_tenant(store.as_ref(), "fabrikam.com").await.expect_err("unknown");
    assert!(missing.to_string().starts_with("no tenant matches 'fabrikam.com'"), "{missing}");
}
