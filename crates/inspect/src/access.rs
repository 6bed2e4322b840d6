//! How tenantscope reaches a tenant: one policy, used by inspections, `doctor` and the server.
//!
//! A tenant can be reachable in several ways at once: an app credential added for it
//! (`tenants add-app`), a user of that tenant signed in directly (`login --direct`), the partner's
//! own sign-in (for the partner tenant itself), or the partner's refresh token redeemed through GDAP.
//! The per-tenant choices an engineer made explicitly win over the general one, so the order is:
//! app credential, direct sign-in, the partner's own tenant, then GDAP.

use microsoft::{Account, AccountRole, AppCredential, Authenticator, ExposeSecret, Grant};
use store::{CredentialKind, TenantId, TenantRecord};

use crate::storage::InspectStore;

use crate::child::AuthMode;

/// Why a tenant given by the user cannot be reached.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(
        "no tenant matches '{0}': give a tenant id, one of its verified domains, or its name as `tenantscope tenants` shows it"
    )]
    NotFound(String),
    #[error("'{query}' matches several tenants: {}; give one of their ids", .matches.join(", "))]
    Ambiguous { query: String, matches: Vec<String> },
    #[error("nobody is signed in and no app credential is set for {0}: run `tenantscope login` first")]
    Unreachable(String),
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    Microsoft(#[from] microsoft::Error),
}

/// A tenant the user named, and how it is reached.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub access: Access,
    /// Its name as tenantscope knows it (the id when it is not known yet).
    pub display_name: String,
    /// The stored tenant, when tenantscope has seen it.
    pub record: Option<TenantRecord>,
}

/// Finds the tenant a user means (an id, a verified domain or a display name, in any case) among
/// the stored tenants and the signed-in accounts, and chooses how to reach it. A GUID that names no
/// known tenant is taken as the id of a tenant not inspected yet.
pub async fn resolve<S: InspectStore + ?Sized>(
    store: &S,
    auth: &Authenticator,
    query: &str,
) -> Result<Resolved, AccessError> {
    let query = query.trim();
    let accounts = auth.accounts().await?;
    let record = match find_record(store, query).await? {
        Some(record) => Some(record),
        None => discover(store, auth, query).await?,
    };
    let (tenant_id, domains) = match &record {
        Some(r) => (r.id.clone(), store.tenant_domains(&r.id).await?),
        None => {
            let as_id = TenantId::new(query);
            let account = accounts.iter().find(|a| {
                as_id == a.home_tenant.as_str()
                    || a.upn
                        .as_deref()
                        .and_then(|u| u.rsplit_once('@'))
                        .is_some_and(|(_, d)| d.eq_ignore_ascii_case(query))
            });
            match account {
                Some(a) => (TenantId::new(&a.home_tenant), vec![query.to_string()]),
                None if as_id.is_guid() => (as_id, Vec::new()),
                None => return Err(AccessError::NotFound(query.to_string())),
            }
        }
    };
    let credential = store.credential_get(&tenant_id).await?;
    let access = choose(&tenant_id, &domains, credential.as_ref(), &accounts)
        .ok_or_else(|| AccessError::Unreachable(query.to_string()))?;
    // A tenant not inspected yet is called what the user called it, when that was not its id.
    let display_name = match &record {
        Some(r) => r.display_name.clone(),
        None if tenant_id == *query => tenant_id.to_string(),
        None => query.to_string(),
    };
    Ok(Resolved { access, display_name, record })
}

/// The stored tenant behind a domain tenantscope has not recorded (a customer whose dataprint could
/// not be read, say): the identity platform's discovery document gives the domain's tenant id, and
/// the domain is recorded for next time. `None` when the query is not a domain, Microsoft knows no
/// tenant with it, or the tenant it names is not one tenantscope knows.
pub async fn discover<S: InspectStore + ?Sized>(
    store: &S,
    auth: &Authenticator,
    query: &str,
) -> Result<Option<TenantRecord>, AccessError> {
    let query = query.trim();
    if !query.contains('.') || query.contains(char::is_whitespace) {
        return Ok(None);
    }
    let Some(id) = microsoft::discovery::tenant_id_of_domain(&auth.oauth.transport, &auth.cloud, query).await? else {
        return Ok(None);
    };
    let id = TenantId::new(id);
    let record = store.get_tenant(&id).await?;
    if record.is_some() {
        store.set_tenant_domains(&id, "discovery", &[query.to_ascii_lowercase()]).await?;
    }
    Ok(record)
}

/// The stored tenant a query names, which must exist.
pub async fn require_tenant<S: InspectStore + ?Sized>(store: &S, query: &str) -> Result<TenantRecord, AccessError> {
    find_record(store, query).await?.ok_or_else(|| AccessError::NotFound(query.trim().to_string()))
}

/// The stored tenant a query names: its id, any of its verified domains, or its display name,
/// ignoring case. A query that matches several tenants is an error listing them, unless exactly one
/// matches by id.
pub async fn find_record<S: InspectStore + ?Sized>(
    store: &S,
    query: &str,
) -> Result<Option<TenantRecord>, AccessError> {
    let query = query.trim();
    let mut matches = store.resolve_tenants(query).await?;
    if matches.len() > 1 {
        let by_id: Vec<usize> = matches.iter().enumerate().filter(|(_, t)| t.id == *query).map(|(i, _)| i).collect();
        if let [only] = by_id[..] {
            return Ok(Some(matches.swap_remove(only)));
        }
        return Err(AccessError::Ambiguous {
            query: query.to_string(),
            matches: matches.iter().map(|t| format!("{} ({})", t.display_name, t.id)).collect(),
        });
    }
    Ok(matches.pop())
}

/// How one tenant is reached.
#[derive(Debug, Clone)]
pub struct Access {
    /// The tenant.
    pub tenant_id: TenantId,
    /// How tokens are obtained for it.
    pub grant: Grant,
    /// The kind of access, for display and diagnosis.
    pub mode: AuthMode,
    /// The account whose refresh token is used (partner or direct), when there is one.
    pub account: Option<Account>,
}

/// The grant of a stored app credential.
pub fn app_grant(credential: &store::AppCredential) -> Grant {
    let credential_kind = match credential.kind {
        CredentialKind::Secret => AppCredential::Secret(credential.secret.clone()),
        CredentialKind::Certificate => AppCredential::Certificate {
            private_key_pem: credential.secret.clone(),
            certificate_pem: credential.certificate_pem.clone().unwrap_or_default(),
            pss: false,
        },
        // A source that does not parse was not written by `add-app`; it fails at the token request as
        // an unreadable file would, naming what is stored.
        CredentialKind::Federated => AppCredential::Federated(
            microsoft::FederatedSource::parse(credential.secret.expose_secret())
                .unwrap_or_else(|| microsoft::FederatedSource::File(credential.secret.expose_secret().into())),
        ),
    };
    Grant::App { client_id: credential.client_id.clone(), credential: credential_kind }
}

/// Chooses how to reach `tenant`, given what is known: its app credential, the signed-in accounts
/// and its verified domains (a direct account is matched by its home tenant or the domain of its
/// user name). `None` when nothing reaches it: no credential, no account of that tenant, and no
/// partner signed in.
pub fn choose(
    tenant: &TenantId,
    domains: &[String],
    credential: Option<&store::AppCredential>,
    accounts: &[Account],
) -> Option<Access> {
    if let Some(credential) = credential {
        return Some(Access {
            tenant_id: tenant.clone(),
            grant: app_grant(credential),
            mode: AuthMode::App,
            account: None,
        });
    }
    let of_tenant = |a: &&Account| {
        *tenant == *a.home_tenant.as_str()
            || a.upn
                .as_deref()
                .and_then(|u| u.rsplit_once('@'))
                .is_some_and(|(_, d)| domains.iter().any(|x| x.eq_ignore_ascii_case(d)))
    };
    if let Some(direct) = accounts.iter().filter(|a| a.role == AccountRole::Direct).find(of_tenant) {
        return Some(Access {
            tenant_id: TenantId::new(&direct.home_tenant),
            grant: Grant::Direct { home_account: direct.home_account_id.clone() },
            mode: AuthMode::Direct,
            account: Some(direct.clone()),
        });
    }
    let partner = accounts.iter().find(|a| a.role == AccountRole::Partner)?;
    let mode = if *tenant == *partner.home_tenant.as_str() { AuthMode::Partner } else { AuthMode::Gdap };
    Some(Access { tenant_id: tenant.clone(), grant: Grant::Partner, mode, account: Some(partner.clone()) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use store::SecretString;

    const PARTNER: &str = "11111111-1111-1111-1111-111111111111";
    const CUSTOMER: &str = "22222222-2222-2222-2222-222222222222";

    fn account(tenant: &str, upn: &str, role: AccountRole) -> Account {
        Account {
            home_account_id: format!("oid.{tenant}"),
            home_tenant: tenant.into(),
            oid: "oid".into(),
            upn: Some(upn.into()),
            client_id: "app".into(),
            signed_in_at: None,
            role,
            claims: None,
        }
    }

    fn credential() -> store::AppCredential {
        store::AppCredential {
            tenant_id: TenantId::new(CUSTOMER),
            client_id: "customer-app".into(),
            kind: CredentialKind::Secret,
            secret: SecretString::from("s"),
            certificate_pem: None,
            expires_at: None,
            label: None,
            added_at: Utc::now(),
        }
    }

    #[test]
    fn explicit_choices_win_over_gdap() {
        let customer = TenantId::new(CUSTOMER);
        let partner = account(PARTNER, "admin@partner.example", AccountRole::Partner);
        let direct = account(CUSTOMER, "it@customer.example", AccountRole::Direct);
        let both = [partner.clone(), direct.clone()];

        let app = choose(&customer, &[], Some(&credential()), &both).expect("reachable");
        assert_eq!(app.mode, AuthMode::App);
        assert!(matches!(app.grant, Grant::App { ref client_id, .. } if client_id == "customer-app"));

        assert_eq!(choose(&customer, &[], None, &both).expect("reachable").mode, AuthMode::Direct);
        // A direct account is found by the domain of its user name too.
        let other_id = TenantId::new("33333333-3333-3333-3333-333333333333");
        let by_domain = choose(&other_id, &["CUSTOMER.example".into()], None, &both).expect("reachable");
        assert_eq!(by_domain.mode, AuthMode::Direct);

        let gdap = choose(&customer, &[], None, std::slice::from_ref(&partner)).expect("reachable");
        assert_eq!(gdap.mode, AuthMode::Gdap);
        let own = choose(&TenantId::new(PARTNER), &[], None, &[partner]).expect("reachable");
        assert_eq!(own.mode, AuthMode::Partner);

        assert_eq!(choose(&customer, &[], None, &[direct]).map(|a| a.mode), Some(AuthMode::Direct));
        assert!(choose(&other_id, &[], None, &[]).is_none());
    }
}
