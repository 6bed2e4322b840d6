//! Fixed facts of Microsoft's cloud that every tenant shares: built-in directory roles, licence SKUs and
//! their service plans, and the Microsoft Graph permission ids.

use uuid::Uuid;

/// A built-in Entra directory role, identified by its role template id as Microsoft publishes it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RoleTemplate {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
}

pub(crate) const GLOBAL_ADMINISTRATOR: &str = "62e90394-69f5-4237-9190-012177145e10";
pub(crate) const GLOBAL_READER: &str = "f2ef992c-3afb-46b9-b7cf-a126ee74c451";
pub(crate) const SECURITY_READER: &str = "5d6b6bb7-de71-4623-b4af-96380a352509";
pub(crate) const SECURITY_ADMINISTRATOR: &str = "194ae4cb-b126-40b2-bd5b-6091b380977d";
pub(crate) const REPORTS_READER: &str = "4a5d8f65-41da-4de4-8968-e035b65339cf";
pub const DIRECTORY_READERS: &str = "88d8e3e3-8f55-4a1e-953a-9b9898b8876b";
pub(crate) const USER_ADMINISTRATOR: &str = "fe930be7-5e62-47db-91af-98c3a49a38b1";
pub(crate) const INTUNE_ADMINISTRATOR: &str = "3a2c62db-5318-420d-8d74-23affee5d9d5";
pub(crate) const PRIVILEGED_ROLE_ADMINISTRATOR: &str = "e8611ab8-c189-46e8-94e1-60213ab1f814";
pub(crate) const CLOUD_APPLICATION_ADMINISTRATOR: &str = "158c047a-c907-4556-b7ef-446551a6b5f7";
pub(crate) const APPLICATION_ADMINISTRATOR: &str = "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3";
pub(crate) const CONDITIONAL_ACCESS_ADMINISTRATOR: &str = "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9";
pub(crate) const HELPDESK_ADMINISTRATOR: &str = "729827e3-9c14-49f7-bb1b-9608f156bbb8";
pub(crate) const LICENSE_ADMINISTRATOR: &str = "4d6ac14f-3453-41d0-bef9-a3e0c569773a";
pub(crate) const EXCHANGE_ADMINISTRATOR: &str = "29232cdf-9323-42fd-ade2-1d097af3e4de";
pub(crate) const SHAREPOINT_ADMINISTRATOR: &str = "f28a1f50-f6e7-4571-818b-6a12f2af6b6c";
pub(crate) const TEAMS_ADMINISTRATOR: &str = "69091246-20e8-4a56-aa4d-066075b2a7a8";
pub(crate) const DIRECTORY_WRITERS: &str = "9360feb5-f418-4baa-8175-e2a00bac4301";
pub(crate) const SERVICE_SUPPORT_ADMINISTRATOR: &str = "f023fd81-a637-4b56-95fd-791ac0226033";
pub(crate) const AUTHENTICATION_ADMINISTRATOR: &str = "c4e39bd9-1100-46d3-8c65-fb160da0071f";
pub(crate) const PRIVILEGED_AUTHENTICATION_ADMINISTRATOR: &str = "7be44c8a-adaf-4e2a-84d6-ab2649e08a13";
pub(crate) const BILLING_ADMINISTRATOR: &str = "b0f54661-2d74-4c50-afa3-1ec803f12efe";
pub(crate) const COMPLIANCE_ADMINISTRATOR: &str = "17315797-102d-40b4-93e0-432062caca18";

pub(crate) const ROLE_TEMPLATES: &[RoleTemplate] = &[
    RoleTemplate {
        id: GLOBAL_ADMINISTRATOR,
        name: "Global Administrator",
        description: "Can manage all aspects of Microsoft Entra ID and Microsoft services that use Microsoft Entra identities.",
    },
    RoleTemplate {
        id: GLOBAL_READER,
        name: "Global Reader",
        description: "Can read everything that a Global Administrator can, but not update anything.",
    },
    RoleTemplate {
        id: SECURITY_READER,
        name: "Security Reader",
        description: "Can read security information and reports in Microsoft Entra ID and Office 365.",
    },
    RoleTemplate {
        id: SECURITY_ADMINISTRATOR,
        name: "Security Administrator",
        description: "Can read security information and reports, and manage configuration in Microsoft Entra ID and Office 365.",
    },
    RoleTemplate { id: REPORTS_READER, name: "Reports Reader", description: "Can read sign-in and audit reports." },
    RoleTemplate {
        id: DIRECTORY_READERS,
        name: "Directory Readers",
        description: "Can read basic directory information. Commonly used to grant directory read access to applications and guests.",
    },
    RoleTemplate {
        id: USER_ADMINISTRATOR,
        name: "User Administrator",
        description: "Can manage all aspects of users and groups, including resetting passwords for limited admins.",
    },
    RoleTemplate {
        id: INTUNE_ADMINISTRATOR,
        name: "Intune Administrator",
        description: "Can manage all aspects of the Intune product.",
    },
    RoleTemplate {
        id: PRIVILEGED_ROLE_ADMINISTRATOR,
        name: "Privileged Role Administrator",
        description: "Can manage role assignments in Microsoft Entra ID, and all aspects of Privileged Identity Management.",
    },
    RoleTemplate {
        id: CLOUD_APPLICATION_ADMINISTRATOR,
        name: "Cloud Application Administrator",
        description: "Can create and manage all aspects of app registrations and enterprise apps except App Proxy.",
    },
    RoleTemplate {
        id: APPLICATION_ADMINISTRATOR,
        name: "Application Administrator",
        description: "Can create and manage all aspects of app registrations and enterprise apps.",
    },
    RoleTemplate {
        id: CONDITIONAL_ACCESS_ADMINISTRATOR,
        name: "Conditional Access Administrator",
        description: "Can manage Conditional Access capabilities.",
    },
    RoleTemplate {
        id: HELPDESK_ADMINISTRATOR,
        name: "Helpdesk Administrator",
        description: "Can reset passwords for non-administrators and Helpdesk Administrators.",
    },
    RoleTemplate {
        id: LICENSE_ADMINISTRATOR,
        name: "License Administrator",
        description: "Can manage product licenses on users and groups.",
    },
    RoleTemplate {
        id: EXCHANGE_ADMINISTRATOR,
        name: "Exchange Administrator",
        description: "Can manage all aspects of the Exchange product.",
    },
    RoleTemplate {
        id: SHAREPOINT_ADMINISTRATOR,
        name: "SharePoint Administrator",
        description: "Can manage all aspects of the SharePoint service.",
    },
    RoleTemplate {
        id: TEAMS_ADMINISTRATOR,
        name: "Teams Administrator",
        description: "Can manage the Microsoft Teams service.",
    },
    RoleTemplate {
        id: DIRECTORY_WRITERS,
        name: "Directory Writers",
        description: "Can read and write basic directory information. For granting access to applications, not intended for users.",
    },
    RoleTemplate {
        id: SERVICE_SUPPORT_ADMINISTRATOR,
        name: "Service Support Administrator",
        description: "Can read service health information and manage support tickets.",
    },
    RoleTemplate {
        id: AUTHENTICATION_ADMINISTRATOR,
        name: "Authentication Administrator",
        description: "Can access to view, set and reset authentication method information for any non-admin user.",
    },
    RoleTemplate {
        id: PRIVILEGED_AUTHENTICATION_ADMINISTRATOR,
        name: "Privileged Authentication Administrator",
        description: "Can access to view, set and reset authentication method information for any user (admin or non-admin).",
    },
    RoleTemplate {
        id: BILLING_ADMINISTRATOR,
        name: "Billing Administrator",
        description: "Can perform common billing related tasks like updating payment information.",
    },
    RoleTemplate {
        id: COMPLIANCE_ADMINISTRATOR,
        name: "Compliance Administrator",
        description: "Can read and manage compliance configuration and reports in Microsoft Entra ID and Microsoft 365.",
    },
];

/// Finds a role template by id or by display name (case-insensitive), as world files may use either.
pub(crate) fn role_template(key: &str) -> Option<&'static RoleTemplate> {
    ROLE_TEMPLATES.iter().find(|r| r.id.eq_ignore_ascii_case(key) || r.name.eq_ignore_ascii_case(key))
}

/// The parts of Graph that an authorization decision distinguishes. Directory roles grant read access
/// to areas, and each Graph endpoint belongs to exactly one area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Area {
    Basic,
    Users,
    Groups,
    Licences,
    Roles,
    Policies,
    Reports,
    AuditLogs,
    SecureScore,
    Apps,
    Devices,
    Intune,
    Gdap,
    Contracts,
}

impl Area {
    pub(crate) const ALL: &'static [Area] = &[
        Area::Basic,
        Area::Users,
        Area::Groups,
        Area::Licences,
        Area::Roles,
        Area::Policies,
        Area::Reports,
        Area::AuditLogs,
        Area::SecureScore,
        Area::Apps,
        Area::Devices,
        Area::Intune,
        Area::Gdap,
        Area::Contracts,
    ];
}

/// What a member user of a tenant may read without any directory role (Entra's default user permissions).
pub(crate) const MEMBER_DEFAULT_AREAS: &[Area] =
    &[Area::Basic, Area::Users, Area::Groups, Area::Licences, Area::Roles, Area::Apps, Area::Devices, Area::Contracts];

/// The areas a directory role may read. The mapping follows the role descriptions in Microsoft's
/// built-in role reference, reduced to reads, which is all tenantscope does.
pub(crate) fn role_areas(template_id: &str) -> &'static [Area] {
    use Area::*;
    match template_id {
        GLOBAL_ADMINISTRATOR | GLOBAL_READER => Area::ALL,
        SECURITY_READER | SECURITY_ADMINISTRATOR => {
            &[Basic, Users, Groups, Roles, Policies, Reports, AuditLogs, SecureScore, Apps, Devices, Gdap]
        }
        REPORTS_READER => &[Basic, Reports, AuditLogs],
        DIRECTORY_READERS => &[Basic, Users, Groups, Licences, Roles, Apps, Devices, Contracts, Gdap],
        USER_ADMINISTRATOR | HELPDESK_ADMINISTRATOR | DIRECTORY_WRITERS => &[Basic, Users, Groups, Licences],
        LICENSE_ADMINISTRATOR => &[Basic, Users, Licences],
        INTUNE_ADMINISTRATOR => &[Basic, Users, Groups, Devices, Intune],
        PRIVILEGED_ROLE_ADMINISTRATOR => &[Basic, Roles, Apps, Policies],
        CLOUD_APPLICATION_ADMINISTRATOR | APPLICATION_ADMINISTRATOR => &[Basic, Apps],
        CONDITIONAL_ACCESS_ADMINISTRATOR => &[Basic, Policies],
        AUTHENTICATION_ADMINISTRATOR | PRIVILEGED_AUTHENTICATION_ADMINISTRATOR => &[Basic, Users, Reports],
        EXCHANGE_ADMINISTRATOR | SHAREPOINT_ADMINISTRATOR | TEAMS_ADMINISTRATOR => &[Basic, Users, Groups, Reports],
        SERVICE_SUPPORT_ADMINISTRATOR | BILLING_ADMINISTRATOR => &[Basic, Licences],
        COMPLIANCE_ADMINISTRATOR => &[Basic, AuditLogs],
        _ => &[Basic],
    }
}

/// A service plan: the unit of licensing that features such as Conditional Access depend on.
#[derive(Debug, Clone, Copy)]
pub struct ServicePlan {
    pub id: &'static str,
    pub name: &'static str,
}

pub(crate) const PLAN_AAD_PREMIUM: ServicePlan =
    ServicePlan { id: "41781fb2-bc02-4b7c-bd55-b576c07bb09d", name: "AAD_PREMIUM" };
pub(crate) const PLAN_AAD_PREMIUM_P2: ServicePlan =
    ServicePlan { id: "eec0eb4f-6444-4f95-aba0-50c24d67f998", name: "AAD_PREMIUM_P2" };
pub(crate) const PLAN_INTUNE_A: ServicePlan =
    ServicePlan { id: "c1ec4a95-1f05-45b3-a911-aa3fa01094f5", name: "INTUNE_A" };
pub(crate) const PLAN_EXCHANGE_STANDARD: ServicePlan =
    ServicePlan { id: "9aaf7827-d63c-4b61-89c3-182f06f82e5c", name: "EXCHANGE_S_STANDARD" };
pub(crate) const PLAN_EXCHANGE_ENTERPRISE: ServicePlan =
    ServicePlan { id: "efb87545-963c-4e0d-99df-69c6916d9eb0", name: "EXCHANGE_S_ENTERPRISE" };
pub(crate) const PLAN_SHAREPOINT: ServicePlan =
    ServicePlan { id: "c7699d2e-19aa-44de-8edf-1736da088ca1", name: "SHAREPOINTSTANDARD" };
pub(crate) const PLAN_TEAMS: ServicePlan = ServicePlan { id: "57ff2da0-773e-42df-b2af-ffb7a2317929", name: "TEAMS1" };
pub(crate) const PLAN_MFA_PREMIUM: ServicePlan =
    ServicePlan { id: "8a256a2b-b617-496d-b51b-e76466e88db0", name: "MFA_PREMIUM" };

/// A licence SKU as `subscribedSkus` reports it.
#[derive(Debug, Clone, Copy)]
pub struct Sku {
    pub id: &'static str,
    pub part_number: &'static str,
    pub plans: &'static [ServicePlan],
}

pub(crate) const SKUS: &[Sku] = &[
    Sku {
        id: "cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46",
        part_number: "SPB",
        plans: &[
            PLAN_AAD_PREMIUM,
            PLAN_INTUNE_A,
            PLAN_EXCHANGE_STANDARD,
            PLAN_SHAREPOINT,
            PLAN_TEAMS,
            PLAN_MFA_PREMIUM,
        ],
    },
    Sku {
        id: "f245ecc8-75af-4f8e-b61f-27d8114de5f3",
        part_number: "O365_BUSINESS_PREMIUM",
        plans: &[PLAN_EXCHANGE_STANDARD, PLAN_SHAREPOINT, PLAN_TEAMS],
    },
    Sku {
        id: "3b555118-da6a-4418-894f-7df1e2096870",
        part_number: "O365_BUSINESS_ESSENTIALS",
        plans: &[PLAN_EXCHANGE_STANDARD, PLAN_SHAREPOINT, PLAN_TEAMS],
    },
    Sku {
        id: "6fd2c87f-b296-42f0-b197-1e91e994b900",
        part_number: "ENTERPRISEPACK",
        plans: &[PLAN_EXCHANGE_ENTERPRISE, PLAN_SHAREPOINT, PLAN_TEAMS],
    },
    Sku {
        id: "05e9a617-0261-4cee-bb44-138d3ef5d965",
        part_number: "SPE_E3",
        plans: &[
            PLAN_AAD_PREMIUM,
            PLAN_INTUNE_A,
            PLAN_EXCHANGE_ENTERPRISE,
            PLAN_SHAREPOINT,
            PLAN_TEAMS,
            PLAN_MFA_PREMIUM,
        ],
    },
    Sku {
        id: "06ebc4ee-1bb5-47dd-8120-11324bc54e06",
        part_number: "SPE_E5",
        plans: &[
            PLAN_AAD_PREMIUM,
            PLAN_AAD_PREMIUM_P2,
            PLAN_INTUNE_A,
            PLAN_EXCHANGE_ENTERPRISE,
            PLAN_SHAREPOINT,
            PLAN_TEAMS,
            PLAN_MFA_PREMIUM,
        ],
    },
    Sku {
        id: "078d2b04-f1bd-4111-bbd4-b4b1b354cef4",
        part_number: "AAD_PREMIUM",
        plans: &[PLAN_AAD_PREMIUM, PLAN_MFA_PREMIUM],
    },
    Sku {
        id: "84a661c4-e949-4bd2-a560-ed7766fcaf2b",
        part_number: "AAD_PREMIUM_P2",
        plans: &[PLAN_AAD_PREMIUM, PLAN_AAD_PREMIUM_P2, PLAN_MFA_PREMIUM],
    },
    Sku { id: "061f9ace-7d42-4136-88ac-31dc755f143f", part_number: "INTUNE_A", plans: &[PLAN_INTUNE_A] },
    Sku {
        id: "efccb6f7-5641-4e0e-bd10-b4976e1bf68e",
        part_number: "EMS",
        plans: &[PLAN_AAD_PREMIUM, PLAN_INTUNE_A, PLAN_MFA_PREMIUM],
    },
];

pub(crate) fn sku(key: &str) -> Option<&'static Sku> {
    SKUS.iter().find(|s| s.part_number.eq_ignore_ascii_case(key) || s.id.eq_ignore_ascii_case(key))
}

/// The application id of Microsoft Graph, the same in every tenant and cloud.
pub(crate) const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

/// The resource identifiers that name Microsoft Graph in a scope or an audience.
pub(crate) const GRAPH_RESOURCES: &[&str] = &["https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000"];

/// Application permissions that Microsoft Graph's service principal lists among its app roles in
/// every tenant, beyond those the world's apps use.
pub(crate) const COMMON_APPLICATION_PERMISSIONS: &[&str] = &[
    "Application.Read.All",
    "Application.ReadWrite.All",
    "AppRoleAssignment.ReadWrite.All",
    "AuditLog.Read.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
    "Domain.ReadWrite.All",
    "Files.ReadWrite.All",
    "Group.Read.All",
    "Group.ReadWrite.All",
    "Mail.Read",
    "Mail.ReadWrite",
    "Mail.Send",
    "Policy.Read.All",
    "Policy.ReadWrite.ConditionalAccess",
    "Reports.Read.All",
    "RoleManagement.Read.Directory",
    "RoleManagement.ReadWrite.Directory",
    "Sites.FullControl.All",
    "Sites.ReadWrite.All",
    "User.Read.All",
    "User.ReadWrite.All",
];

/// Microsoft Graph permissions by value. The ids are stable ids derived from the name, because the
/// simulator only needs them to be consistent across its own responses.
pub(crate) fn permission_id(value: &str) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, format!("https://graph.microsoft.com/permissions/{value}").as_bytes())
}

/// Delegated scopes that identity requests carry but that do not name a Graph permission.
pub(crate) const OIDC_SCOPES: &[&str] = &["openid", "profile", "offline_access", "email"];
