//! Finding a tenant's id from one of its domains, as Microsoft's own tools do: the tenant's OpenID
//! Connect discovery document names its issuer, and the issuer carries the tenant id. No sign-in is
//! needed, so an engineer can name a customer by its domain before tenantscope has ever read it.

use serde_json::Value;
use url::Url;

use crate::cloud::Cloud;
use crate::error::Error;
use crate::http::{Request, Transport};
use crate::retry::RetryPolicy;

/// The tenant id behind `domain` in `cloud`, or `None` when the identity platform knows no such
/// tenant (AADSTS90002 and the other "not found" answers). Other failures (the network, a malformed
/// answer) are errors.
pub async fn tenant_id_of_domain(transport: &Transport, cloud: &Cloud, domain: &str) -> Result<Option<String>, Error> {
    let domain = domain.trim().trim_end_matches('.');
    let valid = !domain.is_empty()
        && domain.len() <= 253
        && domain.contains('.')
        && domain.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if !valid {
        return Err(Error::Config(format!("'{domain}' is not a domain name")));
    }
    let text =
        format!("{}/{domain}/v2.0/.well-known/openid-configuration", cloud.login_url.as_str().trim_end_matches('/'));
    let url = Url::parse(&text).map_err(|e| Error::Config(format!("bad discovery URL {text}: {e}")))?;
    let resp = RetryPolicy::default().run(&transport.stats, || transport.send(Request::get(url.clone()))).await?;
    match resp.status {
        200 => {}
        400 | 404 => return Ok(None),
        _ => return Err(Error::Token(Box::new(crate::oauth::token_error(&resp, Some(domain))))),
    }
    let doc: Value = serde_json::from_slice(&resp.body)
        .map_err(|_| Error::Protocol { url: resp.url.clone(), message: "the discovery document is not JSON".into() })?;
    let issuer = doc.get("issuer").and_then(Value::as_str).unwrap_or_default();
    // The issuer is `https://<login host>/<tenant id>/v2.0`; its first path segment is the id.
    let tenant = Url::parse(issuer)
        .ok()
        .and_then(|u| u.path_segments().and_then(|mut s| s.next()).map(str::to_string))
        .filter(|t| t.len() == 36 && t.chars().all(|c| c.is_ascii_hexdigit() || c == '-'));
    match tenant {
        Some(id) => Ok(Some(id.to_ascii_lowercase())),
        None => Err(Error::Protocol {
            url: resp.url.clone(),
            message: format!("the discovery document's issuer '{issuer}' names no tenant id"),
        }),
    }
}
