//! Microsoft Entra built-in directory roles: the one table of ids and names that GDAP, the
//! collector catalog, diagnosis and change events all use.
//!
//! Role template ids are the same in every tenant and every cloud
//! (<https://learn.microsoft.com/entra/identity/role-based-access-control/permissions-reference>).

/// A built-in directory role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectoryRole {
    /// The role template id (what GDAP relationships and `wids` claims carry).
    pub id: &'static str,
    /// The display name, as the Entra admin centre shows it.
    pub name: &'static str,
    /// The role can only read: it changes nothing in the tenant.
    pub read_only: bool,
    /// Microsoft labels the role PRIVILEGED: it can change security settings or credentials, or
    /// read data that leads to them. Read-only roles can carry the label too (Global Reader and
    /// Security Reader do), which is why tenantscope asks for them only when nothing narrower
    /// covers a collector.
    pub privileged: bool,
    /// Whoever holds the role can take over the tenant or its security controls (assign roles,
    /// change authentication, Conditional Access, apps' credentials, mail or files of everyone):
    /// assigning it is a high-severity change.
    pub takeover: bool,
}

const fn def(id: &'static str, name: &'static str, read_only: bool, privileged: bool) -> DirectoryRole {
    DirectoryRole { id, name, read_only, privileged, takeover: false }
}

const fn takeover(id: &'static str, name: &'static str) -> DirectoryRole {
    DirectoryRole { id, name, read_only: false, privileged: true, takeover: true }
}

/// Global Administrator.
pub const GLOBAL_ADMINISTRATOR: &str = "62e90394-69f5-4237-9190-012177145e10";
/// Global Reader.
pub const GLOBAL_READER: &str = "f2ef992c-3afb-46b9-b7cf-a126ee74c451";
/// Security Reader.
pub const SECURITY_READER: &str = "5d6b6bb7-de71-4623-b4af-96380a352509";
/// Security Administrator.
pub const SECURITY_ADMINISTRATOR: &str = "194ae4cb-b126-40b2-bd5b-6091b380977d";
/// Reports Reader.
pub const REPORTS_READER: &str = "4a5d8f65-41da-4de4-8968-e035b65339cf";
/// Directory Readers.
pub const DIRECTORY_READERS: &str = "88d8e3e3-8f55-4a1e-953a-9b9898b8876b";
/// Conditional Access Administrator.
pub const CONDITIONAL_ACCESS_ADMINISTRATOR: &str = "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9";
/// Intune Administrator.
pub const INTUNE_ADMINISTRATOR: &str = "3a2c62db-5318-420d-8d74-23affee5d9d5";
/// User Administrator.
pub const USER_ADMINISTRATOR: &str = "fe930be7-5e62-47db-91af-98c3a49a38b1";
/// Privileged Role Administrator.
pub const PRIVILEGED_ROLE_ADMINISTRATOR: &str = "e8611ab8-c189-46e8-94e1-60213ab1f814";
/// Cloud Application Administrator.
pub const CLOUD_APPLICATION_ADMINISTRATOR: &str = "158c047a-c907-4556-b7ef-446551a6b5f7";
/// Application Administrator.
pub const APPLICATION_ADMINISTRATOR: &str = "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3";

/// The built-in roles tenantscope names. Unknown ids are shown as ids.
pub const ROLES: &[DirectoryRole] = &[
    takeover(GLOBAL_ADMINISTRATOR, "Global Administrator"),
    def(GLOBAL_READER, "Global Reader", true, true),
    def(SECURITY_READER, "Security Reader", true, true),
    takeover(SECURITY_ADMINISTRATOR, "Security Administrator"),
    def(REPORTS_READER, "Reports Reader", true, false),
    def(DIRECTORY_READERS, "Directory Readers", true, false),
    takeover(CONDITIONAL_ACCESS_ADMINISTRATOR, "Conditional Access Administrator"),
    def(INTUNE_ADMINISTRATOR, "Intune Administrator", false, true),
    takeover(USER_ADMINISTRATOR, "User Administrator"),
    takeover(PRIVILEGED_ROLE_ADMINISTRATOR, "Privileged Role Administrator"),
    takeover(CLOUD_APPLICATION_ADMINISTRATOR, "Cloud Application Administrator"),
    takeover(APPLICATION_ADMINISTRATOR, "Application Administrator"),
    takeover("7be44c8a-adaf-4e2a-84d6-ab2649e08a13", "Privileged Authentication Administrator"),
    takeover("c4e39bd9-1100-46d3-8c65-fb160da0071f", "Authentication Administrator"),
    takeover("8ac3fc64-6eca-42ea-9e69-59f4c7b60eb2", "Hybrid Identity Administrator"),
    def("729827e3-9c14-49f7-bb1b-9608f156bbb8", "Helpdesk Administrator", false, true),
    takeover("29232cdf-9323-42fd-ade2-1d097af3e4de", "Exchange Administrator"),
    def("69091246-20e8-4a56-aa4d-066075b2a7a8", "Teams Administrator", false, false),
    takeover("f28a1f50-f6e7-4571-818b-6a12f2af6b6c", "SharePoint Administrator"),
    def("9360feb5-f418-4baa-8175-e2a00bac4301", "Directory Writers", false, true),
    def("0526716b-113d-4c15-b2c8-68e3c22b9f80", "Authentication Policy Administrator", false, false),
    def("b0f54661-2d74-4c50-afa3-1ec803f12efe", "Billing Administrator", false, false),
    def("4d6ac14f-3453-41d0-bef9-a3e0c569773a", "License Administrator", false, false),
    def("f023fd81-a637-4b56-95fd-791ac0226033", "Service Support Administrator", false, false),
    def("8329153b-31d0-4727-b945-745eb3bc5f31", "Domain Name Administrator", false, true),
    def("7698a772-787b-4ac8-901f-60d6b08affd2", "Cloud Device Administrator", false, true),
    def("17315797-102d-40b4-93e0-432062caca18", "Compliance Administrator", false, false),
    def("5f2222b1-57c3-48ba-8ad5-d4759f1fde6f", "Security Operator", false, true),
    def("790c1fb9-7f7d-4f88-86a1-ef1f95c05c1b", "Message Center Reader", true, false),
    def("75941009-915a-4869-abe7-691bff18279e", "Skype for Business Administrator", false, false),
];

/// The role with a template id, ignoring case.
pub fn role(id: &str) -> Option<&'static DirectoryRole> {
    let id = id.trim();
    ROLES.iter().find(|r| r.id.eq_ignore_ascii_case(id))
}

/// The display name of a role template id, or "directory role" for one not in the table.
pub fn role_name(id: &str) -> &'static str {
    role(id).map_or("directory role", |r| r.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_lower_case_guids() {
        for (i, r) in ROLES.iter().enumerate() {
            assert_eq!(r.id, r.id.to_ascii_lowercase(), "{}", r.name);
            assert!(crate::TenantId::new(r.id).is_guid(), "{}", r.name);
            assert!(ROLES[i + 1..].iter().all(|o| o.id != r.id && o.name != r.name), "{} twice", r.name);
        }
        assert_eq!(role_name("62E90394-69F5-4237-9190-012177145E10"), "Global Administrator");
        assert_eq!(role_name("00000000-0000-0000-0000-000000000000"), "directory role");
        assert!(role(GLOBAL_READER).is_some_and(|r| r.read_only));
        assert!(role(GLOBAL_ADMINISTRATOR).is_some_and(|r| !r.read_only && r.privileged));
    }
}
