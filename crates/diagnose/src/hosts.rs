//! Microsoft hosts and the clouds they belong to.

/// What a host is to tenantscope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostKind {
    /// An identity platform (login) host.
    Login,
    /// A Microsoft Graph host (or legacy Azure AD Graph).
    Graph,
    /// Another Microsoft API (Partner Center, Exchange, Azure Resource Manager, ...).
    OtherApi,
    /// Anything else (documentation links, the user's own services).
    Other,
}

/// The cloud of a Microsoft host, as the `--cloud` names them.
pub(crate) fn cloud_of_host(host: &str) -> Option<&'static str> {
    let h = host.to_ascii_lowercase();
    let h = h.as_str();
    if h.ends_with("microsoftonline.us") || h.ends_with("dod-graph.microsoft.us") {
        if h.starts_with("dod-graph") {
            return Some("usgov-dod");
        }
        return Some("usgov");
    }
    if h.ends_with("graph.microsoft.us") || h.ends_with(".usgovcloudapi.net") {
        return Some("usgov");
    }
    if h.ends_with("chinacloudapi.cn") || h.ends_with("microsoftonline.cn") {
        return Some("china");
    }
    if h.ends_with("microsoftonline.de") || h.ends_with("graph.microsoft.de") {
        return Some("germany");
    }
    if h.ends_with("microsoftonline.com")
        || h == "graph.microsoft.com"
        || h == "login.windows.net"
        || h == "sts.windows.net"
        || h == "graph.windows.net"
        || h == "login.microsoft.com"
    {
        return Some("global");
    }
    None
}

/// The host of a URL, lower-cased, without port or credentials.
pub(crate) fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let host = authority.split(':').next()?.trim().to_ascii_lowercase();
    if host.is_empty() { None } else { Some(host) }
}

/// Classifies a host.
pub(crate) fn kind_of_host(host: &str) -> HostKind {
    let h = host.to_ascii_lowercase();
    if h.starts_with("login.") || h == "sts.windows.net" {
        return HostKind::Login;
    }
    if h.contains("graph.microsoft.") || h == "graph.windows.net" || h == "microsoftgraph.chinacloudapi.cn" {
        return HostKind::Graph;
    }
    if h.ends_with(".microsoft.com")
        || h.ends_with(".microsoft.us")
        || h.ends_with(".office365.com")
        || h.ends_with(".office.com")
        || h.ends_with(".azure.com")
        || h.ends_with(".windows.net")
        || h.ends_with(".sharepoint.com")
        || h.ends_with("chinacloudapi.cn")
    {
        if h == "learn.microsoft.com" || h == "docs.microsoft.com" || h == "aka.ms" {
            return HostKind::Other;
        }
        return HostKind::OtherApi;
    }
    HostKind::Other
}

/// The tenant segment of an identity-platform URL (`/{tenant}/oauth2/...`).
pub(crate) fn tenant_of_login_url(url: &str) -> Option<String> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let mut segments = rest.split(['?', '#']).next()?.split('/').skip(1);
    let tenant = segments.next()?.trim();
    let next = segments.next().unwrap_or("");
    let looks_like_tenant = !tenant.is_empty()
        && tenant != "error"
        && tenant != "oauth2"
        && (next.eq_ignore_ascii_case("oauth2") || next.eq_ignore_ascii_case("v2.0") || next.is_empty());
    if looks_like_tenant { Some(tenant.to_string()) } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_classified() {
        assert_eq!(
            host_of("https://login.microsoftonline.com/contoso.com/oauth2/v2.0/token").as_deref(),
            Some("login.microsoftonline.com")
        );
        assert_eq!(kind_of_host("login.microsoftonline.com"), HostKind::Login);
        assert_eq!(kind_of_host("graph.microsoft.com"), HostKind::Graph);
        assert_eq!(kind_of_host("dod-graph.microsoft.us"), HostKind::Graph);
        assert_eq!(kind_of_host("api.partnercenter.microsoft.com"), HostKind::OtherApi);
        assert_eq!(kind_of_host("learn.microsoft.com"), HostKind::Other);
        assert_eq!(kind_of_host("example.org"), HostKind::Other);
        assert_eq!(cloud_of_host("graph.microsoft.us"), Some("usgov"));
        assert_eq!(cloud_of_host("dod-graph.microsoft.us"), Some("usgov-dod"));
        assert_eq!(cloud_of_host("microsoftgraph.chinacloudapi.cn"), Some("china"));
        assert_eq!(cloud_of_host("graph.microsoft.com"), Some("global"));
        assert_eq!(cloud_of_host("example.org"), None);
    }

    #[test]
    fn tenant_is_read_from_token_urls() {
        assert_eq!(
            tenant_of_login_url("https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token")
                .as_deref(),
            Some("contoso.onmicrosoft.com")
        );
        assert_eq!(tenant_of_login_url("https://login.microsoftonline.com/error?code=50076"), None);
        assert_eq!(host_of("https://user@host.example:443/x").as_deref(), Some("host.example"));
    }
}
