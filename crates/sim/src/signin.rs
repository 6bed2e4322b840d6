//! The scripted user: completes a sign-in by driving the simulator's HTML pages over HTTPS, as a person
//! would, typing the password and the authenticator code and accepting consent.

use std::time::Duration;

use reqwest::{Client, Response, StatusCode, header};

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("sign-in failed with AADSTS{code}: {message}")]
    Aadsts { code: u32, message: String },
    #[error("the client's redirect URI reported an error: {error}: {description}")]
    Redirected { error: String, description: String },
    #[error("HTTP error talking to {url}: {message}")]
    Http { url: String, message: String },
    #[error("unexpected page at {url}: {what}")]
    UnexpectedPage { url: String, what: String },
    #[error("the user {0} has no authenticator registered but the sign-in asks for one")]
    NoAuthenticator(String),
    #[error("invalid CA certificate: {0}")]
    Ca(String),
}

#[derive(Debug, Clone)]
pub struct Person {
    pub upn: String,
    pub password: String,
    pub totp_secret: Option<String>,
    /// Accept consent when asked (a person who declines gives `access_denied`).
    pub accept_consent: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The device-code sign-in was approved; the waiting client may now poll for its tokens.
    DeviceApproved,
    /// The browser was sent back to the client with an authorization code (already delivered to it).
    CodeDelivered { redirect: String },
}

/// A form on a page: its id, action, and hidden fields.
#[derive(Debug, Clone, Default)]
struct Form {
    id: String,
    action: String,
    fields: Vec<(String, String)>,
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let needle = format!("{name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

fn forms(html: &str) -> Vec<Form> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("<form") {
        rest = &rest[i..];
        let Some(end_tag) = rest.find('>') else { break };
        let tag = &rest[..end_tag];
        let close = rest.find("</form>").unwrap_or(rest.len());
        let inner = &rest[end_tag..close];
        let mut form = Form {
            id: attr(tag, "id").unwrap_or_default(),
            action: attr(tag, "action").unwrap_or_default(),
            fields: Vec::new(),
        };
        let mut r = inner;
        while let Some(j) = r.find("<input") {
            r = &r[j..];
            let Some(e) = r.find('>') else { break };
            let input = &r[..e];
            if attr(input, "type").as_deref() == Some("hidden")
                && let Some(n) = attr(input, "name")
            {
                form.fields.push((n, attr(input, "value").unwrap_or_default()));
            }
            r = &r[e..];
        }
        out.push(form);
        rest = &rest[close.min(rest.len())..];
        if rest.len() <= 7 {
            break;
        }
        rest = &rest[7..];
    }
    out
}

fn page_error(html: &str) -> Option<(u32, String)> {
    let i = html.find("id=\"error\"")?;
    let tag_start = html[..i].rfind('<')?;
    let tag_end = html[i..].find('>')? + i;
    let code: u32 = attr(&html[tag_start..tag_end], "data-code")?.parse().ok()?;
    let text_start = html[tag_end..].find("AADSTS").map(|p| p + tag_end)?;
    let text_end = html[text_start..].find('<').map(|p| p + text_start).unwrap_or(html.len());
    let message = unescape(&html[text_start..text_end]);
    let message = message.split_once(": ").map(|(_, m)| m.to_string()).unwrap_or(message);
    Some((code, message))
}

pub struct Browser {
    client: Client,
    base_url: String,
}

impl Browser {
    /// A browser that trusts the simulator's CA.
    pub fn new(base_url: &str, ca_pem: &str) -> Result<Browser, SignInError> {
        let cert = reqwest::Certificate::from_pem(ca_pem.as_bytes()).map_err(|e| SignInError::Ca(e.to_string()))?;
        let client = Client::builder()
            .add_root_certificate(cert)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| SignInError::Ca(e.to_string()))?;
        Ok(Browser { client, base_url: base_url.trim_end_matches('/').to_string() })
    }

    fn absolute(&self, action: &str) -> String {
        if action.starts_with("http") { action.to_string() } else { format!("{}{}", self.base_url, action) }
    }

    async fn text(
        url: &str,
        resp: Result<Response, reqwest::Error>,
    ) -> Result<(StatusCode, Option<String>, String), SignInError> {
        let resp = resp.map_err(|e| SignInError::Http { url: url.to_string(), message: e.to_string() })?;
        let status = resp.status();
        let location = resp.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = resp.text().await.map_err(|e| SignInError::Http { url: url.to_string(), message: e.to_string() })?;
        Ok((status, location, body))
    }

    async fn get(&self, url: &str) -> Result<(StatusCode, Option<String>, String), SignInError> {
        Self::text(url, self.client.get(url).send().await).await
    }

    async fn post(
        &self,
        url: &str,
        fields: &[(String, String)],
    ) -> Result<(StatusCode, Option<String>, String), SignInError> {
        Self::text(url, self.client.post(url).form(fields).send().await).await
    }

    /// Enters a device code on the device-login page and signs in.
    pub async fn approve_device_code(&self, user_code: &str, person: &Person) -> Result<Outcome, SignInError> {
        let url = format!("{}/devicelogin", self.base_url);
        let (_, _, page) = self.get(&url).await?;
        let form = forms(&page)
            .into_iter()
            .find(|f| f.id == "device-form")
            .ok_or_else(|| SignInError::UnexpectedPage { url: url.clone(), what: "no device form".into() })?;
        let mut fields = form.fields.clone();
        fields.push(("code".into(), user_code.to_string()));
        let target = self.absolute(&form.action);
        let (_, _, page) = self.post(&target, &fields).await?;
        self.walk(page, person).await
    }

    /// Opens an authorization URL, signs in, and follows the redirect back to the client.
    pub async fn complete_authorize(&self, authorize_url: &str, person: &Person) -> Result<Outcome, SignInError> {
        let (status, _, page) = self.get(authorize_url).await?;
        if status.is_redirection() {
            return Err(SignInError::UnexpectedPage {
                url: authorize_url.into(),
                what: "redirected before sign-in".into(),
            });
        }
        self.walk(page, person).await
    }

    /// Submits the login, MFA and consent steps until the sign-in ends.
    async fn walk(&self, mut page: String, person: &Person) -> Result<Outcome, SignInError> {
        for _ in 0..8 {
            if let Some((code, message)) = page_error(&page)
                && forms(&page).iter().all(|f| f.id != "login-form" && f.id != "mfa-form")
            {
                return Err(SignInError::Aadsts { code, message });
            }
            if page.contains("id=\"done\"") {
                return Ok(Outcome::DeviceApproved);
            }
            let all = forms(&page);
            let Some(form) = all.first().cloned() else {
                return Err(SignInError::UnexpectedPage {
                    url: self.base_url.clone(),
                    what: "no form and no result".into(),
                });
            };
            let mut fields = form.fields.clone();
            match form.id.as_str() {
                "login-form" => {
                    if let Some((code, message)) = page_error(&page) {
                        return Err(SignInError::Aadsts { code, message });
                    }
                    fields.push(("login".into(), person.upn.clone()));
                    fields.push(("passwd".into(), person.password.clone()));
                    fields.push(("action".into(), "signin".into()));
                }
                "mfa-form" => {
                    if let Some((code, message)) = page_error(&page) {
                        return Err(SignInError::Aadsts { code, message });
                    }
                    let secret = person
                        .totp_secret
                        .as_deref()
                        .ok_or_else(|| SignInError::NoAuthenticator(person.upn.clone()))?;
                    fields.push((
                        "otc".into(),
                        totp_now(secret).ok_or_else(|| SignInError::NoAuthenticator(person.upn.clone()))?,
                    ));
                }
                "consent-form" => {
                    fields.push(("action".into(), if person.accept_consent { "accept" } else { "cancel" }.into()));
                }
                "form_post" => {
                    let (_, _, _) =
                        Self::text(&form.action, self.client.post(&form.action).form(&fields).send().await).await?;
                    return Ok(Outcome::CodeDelivered { redirect: form.action });
                }
                other => {
                    return Err(SignInError::UnexpectedPage {
                        url: self.base_url.clone(),
                        what: format!("form '{other}'"),
                    });
                }
            }
            let target = self.absolute(&form.action);
            let (status, location, next) = self.post(&target, &fields).await?;
            if status.is_redirection() {
                let location = location.ok_or_else(|| SignInError::UnexpectedPage {
                    url: target.clone(),
                    what: "redirect without location".into(),
                })?;
                return self.deliver(&location).await;
            }
            page = next;
        }
        Err(SignInError::UnexpectedPage { url: self.base_url.clone(), what: "too many steps".into() })
    }

    /// Follows the redirect back to the client (its loopback listener), as a browser does.
    async fn deliver(&self, location: &str) -> Result<Outcome, SignInError> {
        let parsed = url::Url::parse(location)
            .map_err(|e| SignInError::UnexpectedPage { url: location.into(), what: e.to_string() })?;
        let params: Vec<(String, String)> = parsed
            .query_pairs()
            .chain(parsed.fragment().map(|f| url::form_urlencoded::parse(f.as_bytes())).into_iter().flatten())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        // The browser shows the client whatever happened; an error is still delivered to it.
        let plain =
            Client::builder().timeout(Duration::from_secs(30)).build().map_err(|e| SignInError::Ca(e.to_string()))?;
        let _ = plain.get(location).send().await;
        if let Some(error) = get("error") {
            return Err(SignInError::Redirected { error, description: get("error_description").unwrap_or_default() });
        }
        Ok(Outcome::CodeDelivered { redirect: location.to_string() })
    }
}

/// The current TOTP code of a base32 seed (SHA-1, 6 digits, 30 seconds), as an authenticator app shows it.
pub fn totp_now(secret: &str) -> Option<String> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some(totp(secret)?.generate(now).to_string())
}

/// The authenticator for a base32 seed: SHA-1, 6 digits, 30-second steps, one step of skew.
pub(crate) fn totp(secret: &str) -> Option<totp_rs::Totp> {
    let secret = totp_rs::Secret::try_from_base32(secret.trim()).ok()?;
    Some(
        totp_rs::Builder::new()
            .with_algorithm(totp_rs::Algorithm::SHA1)
            .with_digits(6)
            .with_skew(1)
            .with_step_duration(30)
            .with_secret(secret)
            .build_noncompliant(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_errors_are_read_from_pages() {
        let html = r#"<p class="error" id="error" data-code="50126">AADSTS50126: Your account &amp; password</p>
            <form id="login-form" method="post" action="/signin/login"><input type="hidden" name="flow" value="f-1">
            <input type="email" name="login"></form>"#;
        let f = forms(html);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].id, "login-form");
        assert_eq!(f[0].fields, vec![("flow".to_string(), "f-1".to_string())]);
        assert_eq!(page_error(html), Some((50126, "Your account & password".to_string())));
        assert!(forms("<form").is_empty() || forms("<form").len() == 1);
        assert_eq!(page_error("<p>nothing</p>"), None);
    }

    #[test]
    fn totp_codes_have_six_digits() {
        let code = totp_now("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").unwrap();
        assert_eq!(code.len(), 6);
        assert!(totp_now("not base32!").is_none());
    }
}
