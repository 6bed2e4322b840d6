//! Changes to the world at run time. The control API, world scenarios and tests all go through these,
//! so that a change made one way behaves exactly like the same change made another.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{CaPolicy, GdapStatus, GrantControl, PerUserMfa, PolicyState, PolicyUsers, ServicePrincipal, User, World};
use crate::catalog;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Per-user MFA state of a user (`disabled`, `enabled`, `enforced`).
    SetPerUserMfa {
        user: String,
        state: PerUserMfa,
    },
    /// Turns security defaults on or off in a tenant.
    SetSecurityDefaults {
        tenant: String,
        enabled: bool,
    },
    /// Revokes every refresh token and session of a user, as "Revoke sessions" in the admin centre does.
    RevokeSessions {
        user: String,
    },
    /// Changes a user's password, which also revokes the user's sessions.
    ChangePassword {
        user: String,
        password: String,
    },
    SetUserEnabled {
        user: String,
        enabled: bool,
    },
    SetUserLocked {
        user: String,
        locked: bool,
    },
    SetPasswordExpired {
        user: String,
        expired: bool,
    },
    /// Marks a partner user as risky in its home tenant, which blocks delegated admin access.
    SetUserRisky {
        user: String,
        risky: bool,
    },
    CreateUser {
        tenant: String,
        upn: String,
        display_name: String,
        #[serde(default)]
        password: Option<String>,
        #[serde(default)]
        roles: Vec<String>,
    },
    DeleteUser {
        user: String,
    },
    AssignRole {
        user: String,
        role: String,
    },
    RemoveRole {
        user: String,
        role: String,
    },
    AddGroupMember {
        tenant: String,
        group: String,
        user: String,
    },
    RemoveGroupMember {
        tenant: String,
        group: String,
        user: String,
    },
    /// Sets the status of a GDAP relationship (for example `terminated`).
    SetGdapStatus {
        relationship: String,
        status: GdapStatus,
    },
    /// Ends a GDAP relationship now: it reads as expired from then on.
    ExpireGdap {
        relationship: String,
    },
    /// Replaces the roles of a GDAP relationship and of its access assignments.
    SetGdapRoles {
        relationship: String,
        roles: Vec<String>,
    },
    /// Grants consent to an app in a tenant: creates its service principal if needed and sets the grants.
    GrantConsent {
        tenant: String,
        app: String,
        #[serde(default)]
        delegated: Vec<String>,
        #[serde(default)]
        application: Vec<String>,
    },
    /// Removes an app's service principal, and with it every consent, from a tenant.
    WithdrawConsent {
        tenant: String,
        app: String,
    },
    /// Creates or replaces (by display name) a Conditional Access policy.
    SetCaPolicy {
        tenant: String,
        policy: CaPolicySpec,
    },
    DeleteCaPolicy {
        tenant: String,
        name: String,
    },
    SetLicence {
        tenant: String,
        sku: String,
        seats: u32,
    },
    RemoveLicence {
        tenant: String,
        sku: String,
    },
    /// Moves the end of every secret of an app to now, so that the next use reads as expired.
    ExpireAppSecrets {
        app: String,
    },
    /// Adds a certificate (PEM) to an app's credentials, valid for a year, as uploading one in the portal.
    AddAppCertificate {
        app: String,
        name: String,
        pem: String,
    },
    /// Adds a federated identity credential to an app (replacing one of the same name).
    AddFederatedCredential {
        app: String,
        name: String,
        issuer: String,
        subject: String,
        #[serde(default = "super::file::default_audiences")]
        audiences: Vec<String>,
    },
    SetFaults {
        faults: crate::faults::FaultConfig,
    },
}

/// A Conditional Access policy as actions and world files describe it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CaPolicySpec {
    pub name: String,
    #[serde(default = "enabled")]
    pub state: PolicyState,
    /// `all`, or omitted when `roles` or `users` is given.
    #[serde(default)]
    pub users: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub include_users: Vec<String>,
    #[serde(default)]
    pub exclude_users: Vec<String>,
    #[serde(default)]
    pub exclude_service_providers: bool,
    pub grant: GrantControl,
    /// Apply only outside these named locations (by display name).
    #[serde(default)]
    pub outside_locations: Option<Vec<String>>,
    #[serde(default)]
    pub sign_in_frequency_hours: Option<u32>,
}

fn enabled() -> PolicyState {
    PolicyState::Enabled
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub(crate) enum ActionError {
    #[error("no tenant {0}")]
    NoTenant(String),
    #[error("no user {0}")]
    NoUser(String),
    #[error("no group {group} in tenant {tenant}")]
    NoGroup { tenant: String, group: String },
    #[error("no GDAP relationship {0}")]
    NoRelationship(String),
    #[error("no app {0}")]
    NoApp(String),
    #[error("no role {0}")]
    NoRole(String),
    #[error("no licence SKU {0}")]
    NoSku(String),
    #[error("no named location {0}")]
    NoLocation(String),
    #[error("user {0} exists already")]
    UserExists(String),
    #[error("no Conditional Access policy {0}")]
    NoPolicy(String),
    #[error("{0}")]
    Invalid(String),
}

fn role_id(key: &str) -> Result<String, ActionError> {
    catalog::role_template(key).map(|r| r.id.to_string()).ok_or_else(|| ActionError::NoRole(key.to_string()))
}

impl World {
    fn tenant_index_of(&self, key: &str) -> Result<usize, ActionError> {
        let id = self.resolve_tenant(key).map(|t| t.id).ok_or_else(|| ActionError::NoTenant(key.to_string()))?;
        self.tenant_index.get(&id).copied().ok_or_else(|| ActionError::NoTenant(key.to_string()))
    }

    fn locate_user(&self, upn: &str) -> Result<(usize, Uuid), ActionError> {
        let (tenant, user) = match Uuid::parse_str(upn) {
            Ok(id) => self.home_of_user(id),
            Err(_) => self.user_by_upn(upn),
        }
        .ok_or_else(|| ActionError::NoUser(upn.to_string()))?;
        let ti = self.tenant_index.get(&tenant.id).copied().ok_or_else(|| ActionError::NoUser(upn.to_string()))?;
        Ok((ti, user.id))
    }

    fn with_user(&mut self, upn: &str, f: impl FnOnce(&mut User)) -> Result<(), ActionError> {
        let (ti, id) = self.locate_user(upn)?;
        let user = self.tenants[ti].user_mut(id).ok_or_else(|| ActionError::NoUser(upn.to_string()))?;
        f(user);
        Ok(())
    }

    fn relationship_index(&self, key: &str) -> Result<usize, ActionError> {
        self.gdap
            .iter()
            .position(|r| r.id == key || r.display_name.eq_ignore_ascii_case(key))
            .ok_or_else(|| ActionError::NoRelationship(key.to_string()))
    }

    pub(crate) fn app_by_key(&self, key: &str) -> Option<&super::App> {
        match Uuid::parse_str(key) {
            Ok(id) => self.app(id),
            Err(_) => self.apps.iter().find(|a| a.display_name.eq_ignore_ascii_case(key)),
        }
    }

    fn group_id(&self, ti: usize, tenant: &str, group: &str) -> Result<Uuid, ActionError> {
        let t = &self.tenants[ti];
        t.groups
            .iter()
            .find(|g| g.display_name.eq_ignore_ascii_case(group) || g.id.to_string() == group)
            .map(|g| g.id)
            .ok_or_else(|| ActionError::NoGroup { tenant: tenant.to_string(), group: group.to_string() })
    }

    /// Applies one action at the simulated time `now`.
    pub(crate) fn apply(&mut self, action: &Action, now: DateTime<Utc>) -> Result<(), ActionError> {
        match action {
            Action::SetPerUserMfa { user, state } => self.with_user(user, |u| u.per_user_mfa = *state),
            Action::SetSecurityDefaults { tenant, enabled } => {
                let ti = self.tenant_index_of(tenant)?;
                self.tenants[ti].security_defaults = *enabled;
                Ok(())
            }
            Action::RevokeSessions { user } => self.with_user(user, |u| u.sessions_valid_after = now),
            Action::ChangePassword { user, password } => self.with_user(user, |u| {
                u.password = password.clone();
                u.password_changed = now;
                u.password_expired = false;
                u.sessions_valid_after = now;
            }),
            Action::SetUserEnabled { user, enabled } => self.with_user(user, |u| u.enabled = *enabled),
            Action::SetUserLocked { user, locked } => self.with_user(user, |u| u.locked = *locked),
            Action::SetPasswordExpired { user, expired } => self.with_user(user, |u| u.password_expired = *expired),
            Action::SetUserRisky { user, risky } => self.with_user(user, |u| u.risky = *risky),
            Action::CreateUser { tenant, upn, display_name, password, roles } => {
                let ti = self.tenant_index_of(tenant)?;
                if self.tenants[ti].user_by_upn(upn).is_some() {
                    return Err(ActionError::UserExists(upn.clone()));
                }
                let roles = roles.iter().map(|r| role_id(r)).collect::<Result<Vec<_>, _>>()?;
                let (given, surname) = display_name.split_once(' ').unwrap_or((display_name.as_str(), ""));
                let user = User {
                    id: Uuid::new_v4(),
                    upn: upn.clone(),
                    display_name: display_name.clone(),
                    given_name: given.to_string(),
                    surname: surname.to_string(),
                    job_title: None,
                    department: None,
                    password: password.clone().unwrap_or_else(|| format!("Sim-{}!", Uuid::new_v4().simple())),
                    enabled: true,
                    locked: false,
                    guest: false,
                    password_changed: now,
                    password_expired: false,
                    totp_secret: None,
                    per_user_mfa: PerUserMfa::Disabled,
                    roles,
                    licences: Vec::new(),
                    created: now,
                    last_sign_in: None,
                    sessions_valid_after: now - Duration::days(3650),
                    risky: false,
                };
                self.tenants[ti].users.push(user);
                self.tenants[ti].reindex();
                Ok(())
            }
            Action::DeleteUser { user } => {
                let (ti, id) = self.locate_user(user)?;
                let t = &mut self.tenants[ti];
                t.users.retain(|u| u.id != id);
                for g in &mut t.groups {
                    g.members.retain(|m| *m != id);
                }
                t.reindex();
                Ok(())
            }
            Action::AssignRole { user, role } => {
                let role = role_id(role)?;
                self.with_user(user, |u| {
                    if !u.roles.contains(&role) {
                        u.roles.push(role);
                    }
                })
            }
            Action::RemoveRole { user, role } => {
                let role = role_id(role)?;
                self.with_user(user, |u| u.roles.retain(|r| *r != role))
            }
            Action::AddGroupMember { tenant, group, user } | Action::RemoveGroupMember { tenant, group, user } => {
                let ti = self.tenant_index_of(tenant)?;
                let gid = self.group_id(ti, tenant, group)?;
                let uid = self.tenants[ti]
                    .user_by_upn(user)
                    .map(|u| u.id)
                    .ok_or_else(|| ActionError::NoUser(user.clone()))?;
                let adding = matches!(action, Action::AddGroupMember { .. });
                if let Some(g) = self.tenants[ti].groups.iter_mut().find(|g| g.id == gid) {
                    g.members.retain(|m| *m != uid);
                    if adding {
                        g.members.push(uid);
                    }
                }
                Ok(())
            }
            Action::SetGdapStatus { relationship, status } => {
                let i = self.relationship_index(relationship)?;
                let rel = &mut self.gdap[i];
                rel.status = *status;
                rel.modified = now;
                if matches!(status, GdapStatus::Terminated | GdapStatus::Expired) {
                    rel.end = Some(rel.end.map_or(now, |e| e.min(now)));
                }
                Ok(())
            }
            Action::ExpireGdap { relationship } => {
                let i = self.relationship_index(relationship)?;
                let rel = &mut self.gdap[i];
                rel.end = Some(now);
                rel.modified = now;
                Ok(())
            }
            Action::SetGdapRoles { relationship, roles } => {
                let roles = roles.iter().map(|r| role_id(r)).collect::<Result<Vec<_>, _>>()?;
                let i = self.relationship_index(relationship)?;
                let rel = &mut self.gdap[i];
                rel.roles = roles.clone();
                for a in &mut rel.assignments {
                    a.roles = roles.clone();
                }
                rel.modified = now;
                Ok(())
            }
            Action::GrantConsent { tenant, app, delegated, application } => {
                let ti = self.tenant_index_of(tenant)?;
                let app = self.app_by_key(app).cloned().ok_or_else(|| ActionError::NoApp(app.clone()))?;
                let t = &mut self.tenants[ti];
                match t.service_principals.iter_mut().find(|sp| sp.app_id == app.client_id) {
                    Some(sp) => {
                        sp.delegated = delegated.clone();
                        sp.application = application.clone();
                        sp.consent_changed = now;
                    }
                    None => t.service_principals.push(ServicePrincipal {
                        id: Uuid::new_v4(),
                        app_id: app.client_id,
                        display_name: app.display_name.clone(),
                        delegated: delegated.clone(),
                        application: application.clone(),
                        created: now,
                        consent_changed: now,
                    }),
                }
                Ok(())
            }
            Action::WithdrawConsent { tenant, app } => {
                let ti = self.tenant_index_of(tenant)?;
                let app = self.app_by_key(app).map(|a| a.client_id).ok_or_else(|| ActionError::NoApp(app.clone()))?;
                self.tenants[ti].service_principals.retain(|sp| sp.app_id != app);
                Ok(())
            }
            Action::SetCaPolicy { tenant, policy } => {
                let ti = self.tenant_index_of(tenant)?;
                let compiled = self.compile_ca_policy(ti, policy, now)?;
                let t = &mut self.tenants[ti];
                match t.ca_policies.iter_mut().find(|p| p.display_name.eq_ignore_ascii_case(&policy.name)) {
                    Some(existing) => {
                        let id = existing.id;
                        let created = existing.created;
                        *existing = CaPolicy { id, created, ..compiled };
                    }
                    None => t.ca_policies.push(compiled),
                }
                Ok(())
            }
            Action::DeleteCaPolicy { tenant, name } => {
                let ti = self.tenant_index_of(tenant)?;
                let t = &mut self.tenants[ti];
                let before = t.ca_policies.len();
                t.ca_policies.retain(|p| !p.display_name.eq_ignore_ascii_case(name));
                if t.ca_policies.len() == before {
                    return Err(ActionError::NoPolicy(name.clone()));
                }
                Ok(())
            }
            Action::SetLicence { tenant, sku, seats } => {
                let ti = self.tenant_index_of(tenant)?;
                let sku = catalog::sku(sku).ok_or_else(|| ActionError::NoSku(sku.clone()))?;
                let t = &mut self.tenants[ti];
                match t.licences.iter_mut().find(|l| l.sku.id == sku.id) {
                    Some(l) => l.seats = *seats,
                    None => t.licences.push(super::Licence { sku, seats: *seats }),
                }
                Ok(())
            }
            Action::RemoveLicence { tenant, sku } => {
                let ti = self.tenant_index_of(tenant)?;
                let sku = catalog::sku(sku).ok_or_else(|| ActionError::NoSku(sku.clone()))?;
                self.tenants[ti].licences.retain(|l| l.sku.id != sku.id);
                Ok(())
            }
            Action::ExpireAppSecrets { app } => {
                let id = self.app_by_key(app).map(|a| a.client_id).ok_or_else(|| ActionError::NoApp(app.clone()))?;
                if let Some(a) = self.apps.iter_mut().find(|a| a.client_id == id) {
                    for s in &mut a.secrets {
                        s.end = s.end.min(now);
                    }
                }
                Ok(())
            }
            Action::AddAppCertificate { app, name, pem } => {
                let id = self.app_by_key(app).map(|a| a.client_id).ok_or_else(|| ActionError::NoApp(app.clone()))?;
                let cert = super::file::certificate_from_pem(Uuid::new_v4(), name, pem, now, now + Duration::days(365))
                    .map_err(|e| ActionError::Invalid(e.to_string()))?;
                if let Some(a) = self.apps.iter_mut().find(|a| a.client_id == id) {
                    a.certificates.push(cert);
                }
                Ok(())
            }
            Action::AddFederatedCredential { app, name, issuer, subject, audiences } => {
                let id = self.app_by_key(app).map(|a| a.client_id).ok_or_else(|| ActionError::NoApp(app.clone()))?;
                if let Some(a) = self.apps.iter_mut().find(|a| a.client_id == id) {
                    a.federated_credentials.retain(|f| f.name != *name);
                    a.federated_credentials.push(super::FederatedCredential {
                        name: name.clone(),
                        issuer: issuer.clone(),
                        subject: subject.clone(),
                        audiences: audiences.clone(),
                    });
                }
                Ok(())
            }
            Action::SetFaults { faults } => {
                self.faults = faults.clone();
                Ok(())
            }
        }
    }

    pub(crate) fn compile_ca_policy(
        &self,
        ti: usize,
        spec: &CaPolicySpec,
        now: DateTime<Utc>,
    ) -> Result<CaPolicy, ActionError> {
        let t = &self.tenants[ti];
        let users = if !spec.roles.is_empty() {
            PolicyUsers::Roles(spec.roles.iter().map(|r| role_id(r)).collect::<Result<_, _>>()?)
        } else if !spec.include_users.is_empty() {
            PolicyUsers::Users(
                spec.include_users
                    .iter()
                    .map(|u| t.user_by_upn(u).map(|u| u.id).ok_or_else(|| ActionError::NoUser(u.clone())))
                    .collect::<Result<_, _>>()?,
            )
        } else {
            PolicyUsers::All
        };
        let exclude_users = spec
            .exclude_users
            .iter()
            .map(|u| t.user_by_upn(u).map(|u| u.id).ok_or_else(|| ActionError::NoUser(u.clone())))
            .collect::<Result<_, _>>()?;
        let outside_locations = match &spec.outside_locations {
            None => None,
            Some(names) => Some(
                names
                    .iter()
                    .map(|n| {
                        t.named_locations
                            .iter()
                            .find(|l| l.display_name.eq_ignore_ascii_case(n))
                            .map(|l| l.id)
                            .ok_or_else(|| ActionError::NoLocation(n.clone()))
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(CaPolicy {
            id: Uuid::new_v4(),
            display_name: spec.name.clone(),
            state: spec.state,
            users,
            exclude_users,
            exclude_service_providers: spec.exclude_service_providers,
            grant: spec.grant,
            outside_locations,
            sign_in_frequency_hours: spec.sign_in_frequency_hours,
            created: now,
            modified: now,
        })
    }
}
