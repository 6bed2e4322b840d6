//! Named change events: one module per area of the tenant.
//!
//! Each handler reads the collections it needs from both dataprints, does
//! nothing when either lacks them, pushes its events and claims what it
//! explained so that the generic diff stays silent about it.

mod apps;
mod conditional_access;
mod partner;
mod roles;
mod settings;
mod users;

use crate::events::DiffContext;

/// Runs every named handler that applies to the tenant's role.
pub(crate) fn run(ctx: &mut DiffContext<'_>) {
    if ctx.is_customer() {
        users::users(ctx);
        users::mfa_registration(ctx);
        roles::run(ctx);
        conditional_access::run(ctx);
        settings::security_defaults(ctx);
        settings::domains(ctx);
        settings::licences(ctx);
        settings::secure_score(ctx);
        apps::delegated_consents(ctx);
        apps::application_permissions(ctx);
    }
    if ctx.is_partner() {
        partner::relationships(ctx);
        partner::customers(ctx);
    }
}
