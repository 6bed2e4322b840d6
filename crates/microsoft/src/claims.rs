//! Reading the claims of a token without verifying its signature.
//!
//! Graph access tokens cannot be verified by anyone but Graph (their header carries a nonce), and
//! tenantscope never needs to: it reads the claims only to explain what the token allows. Both the v1
//! and the v2 shapes are read. A malformed token is an error, never a panic.

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Error;

/// The claims tenantscope keeps for diagnosis; nothing in it is secret.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub aud: Option<String>,
    pub iss: Option<String>,
    pub tid: Option<String>,
    pub oid: Option<String>,
    pub upn: Option<String>,
    pub name: Option<String>,
    pub appid: Option<String>,
    pub app_displayname: Option<String>,
    pub idtyp: Option<String>,
    pub idp: Option<String>,
    pub ipaddr: Option<String>,
    #[serde(default)]
    pub amr: Vec<String>,
    #[serde(default)]
    pub scp: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub wids: Vec<String>,
    pub iat: Option<i64>,
    pub nbf: Option<i64>,
    pub exp: Option<i64>,
    pub ver: Option<String>,
}

impl Claims {
    /// Whether the token says MFA was performed (`mfa`, or `ngcmfa` for Windows Hello).
    pub fn has_mfa(&self) -> bool {
        self.amr.iter().any(|a| a == "mfa" || a == "ngcmfa")
    }

    pub fn is_app_only(&self) -> bool {
        self.idtyp.as_deref() == Some("app") || (self.scp.is_empty() && self.upn.is_none() && !self.roles.is_empty())
    }
}

fn string(v: &Value, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match v.get(*k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

fn list(v: &Value, key: &str) -> Vec<String> {
    match v.get(key) {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

fn number(v: &Value, key: &str) -> Option<i64> {
    match v.get(key) {
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
}

/// The largest token we agree to decode; real tokens are a few kilobytes.
const MAX_TOKEN: usize = 64 * 1024;

/// Decodes the payload of a JWT (JWS compact form) into [`Claims`].
pub(crate) fn decode(token: &str) -> Result<Claims, Error> {
    let token = token.trim();
    if token.len() > MAX_TOKEN {
        return Err(Error::Claims(format!("the token is {} bytes long, more than any real token", token.len())));
    }
    let mut parts = token.split('.');
    let (Some(_header), Some(payload), Some(_sig), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::Claims("a JWT has three parts separated by dots".into()));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .or_else(|_| URL_SAFE.decode(payload))
        .map_err(|_| Error::Claims("the payload is not base64url".into()))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| Error::Claims("the payload is not JSON".into()))?;
    if !value.is_object() {
        return Err(Error::Claims("the payload is not a JSON object".into()));
    }
    Ok(Claims {
        aud: string(&value, &["aud"]),
        iss: string(&value, &["iss"]),
        tid: string(&value, &["tid"]),
        oid: string(&value, &["oid"]),
        upn: string(&value, &["upn", "unique_name", "preferred_username"]),
        name: string(&value, &["name"]),
        appid: string(&value, &["appid", "azp"]),
        app_displayname: string(&value, &["app_displayname"]),
        idtyp: string(&value, &["idtyp"]),
        idp: string(&value, &["idp"]),
        ipaddr: string(&value, &["ipaddr"]),
        amr: list(&value, "amr"),
        scp: list(&value, "scp"),
        roles: list(&value, "roles"),
        wids: list(&value, "wids"),
        iat: number(&value, "iat"),
        nbf: number(&value, "nbf"),
        exp: number(&value, "exp"),
        ver: string(&value, &["ver"]),
    })
}

/// The raw JSON payload, for `id_token` checks that need claims outside [`Claims`] (such as `nonce`).
pub(crate) fn payload(token: &str) -> Result<Value, Error> {
    let payload = token.split('.').nth(1).ok_or_else(|| Error::Claims("not a JWT".into()))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| Error::Claims("the payload is not base64url".into()))?;
    serde_json::from_slice(&bytes).map_err(|_| Error::Claims("the payload is not JSON".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn jwt(payload: &str) -> String {
        format!("eyJhbGciOiJSUzI1NiJ9.{}.sig", URL_SAFE_NO_PAD.encode(payload))
    }

    #[test]
    fn v1_and_v2_shapes_are_read() {
        let v1 = decode(&jwt(r#"{"aud":"https://graph.microsoft.com","tid":"t","amr":["pwd","mfa"],"scp":"User.Read Directory.Read.All","wids":["62e90394-69f5-4237-9190-012177145e10"],"upn":"a@b","ipaddr":"1.2.3.4","exp":10,"ver":"1.0"}"#)).unwrap();
        assert!(v1.has_mfa());
        assert_eq!(v1.scp, vec!["User.Read", "Directory.Read.All"]);
        assert_eq!(v1.exp, Some(10));
        let v2 = decode(&jwt(
            r#"{"aud":"x","azp":"app","preferred_username":"u@d","roles":["User.Read.All"],"idtyp":"app","ver":"2.0"}"#,
        ))
        .unwrap();
        assert_eq!(v2.appid.as_deref(), Some("app"));
        assert_eq!(v2.upn.as_deref(), Some("u@d"));
        assert!(v2.is_app_only());
        assert!(!v2.has_mfa());
    }

    #[test]
    fn malformed_tokens_are_errors() {
        for bad in ["", "abc", "a.b", "a.b.c.d", "a.!!!.c", &jwt("not json"), &jwt("[1,2]"), &"a".repeat(100_000)] {
            assert!(decode(bad).is_err(), "{bad:.40}");
        }
    }

    proptest! {
        #[test]
        fn decode_never_panics(s in ".{0,400}") {
            let _ = decode(&s);
        }

        #[test]
        fn decode_never_panics_on_dotted_garbage(a in "[A-Za-z0-9_-]{0,60}", b in "[A-Za-z0-9_=-]{0,200}", c in "[A-Za-z0-9_-]{0,60}") {
            let _ = decode(&format!("{a}.{b}.{c}"));
        }
    }
}
