//! Clouds: where to sign in and where Graph lives. The global cloud and the national clouds are built
//! in; anything else (a sovereign deployment, or the simulator) is described by a cloud file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::Error;

#[derive(Debug, Clone, PartialEq)]
pub struct Cloud {
    pub name: String,
    /// The identity platform, e.g. `https://login.microsoftonline.com`.
    pub login_url: Url,
    /// Microsoft Graph, e.g. `https://graph.microsoft.com`.
    pub graph_url: Url,
    /// The resource Graph tokens are requested for, e.g. `https://graph.microsoft.com`.
    pub graph_resource: String,
    /// An extra CA certificate (PEM) to trust for these hosts.
    pub ca_pem: Option<Vec<u8>>,
    pub ca_file: Option<PathBuf>,
}

/// The cloud file format (JSON), as `tenantscope sim serve` writes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CloudFile {
    pub name: String,
    pub login_url: String,
    pub graph_url: String,
    pub graph_resource: String,
    #[serde(default)]
    pub ca_file: Option<String>,
}

fn parse_https(text: &str, what: &str) -> Result<Url, Error> {
    let url = Url::parse(text).map_err(|e| Error::Config(format!("{what} '{text}' is not a URL: {e}")))?;
    if url.scheme() != "https" {
        return Err(Error::Config(format!("{what} '{text}' must use https: tokens never travel in the clear")));
    }
    if url.host_str().is_none() {
        return Err(Error::Config(format!("{what} '{text}' has no host")));
    }
    Ok(url)
}

impl Cloud {
    fn builtin(name: &str, login: &str, graph: &str, resource: &str) -> Cloud {
        Cloud {
            name: name.into(),
            login_url: Url::parse(login).expect("built-in login URLs are valid"),
            graph_url: Url::parse(graph).expect("built-in Graph URLs are valid"),
            graph_resource: resource.into(),
            ca_pem: None,
            ca_file: None,
        }
    }

    pub(crate) fn global() -> Cloud {
        Cloud::builtin(
            "global",
            "https://login.microsoftonline.com",
            "https://graph.microsoft.com",
            "https://graph.microsoft.com",
        )
    }

    /// US Government GCC High.
    pub(crate) fn usgov() -> Cloud {
        Cloud::builtin(
            "usgov",
            "https://login.microsoftonline.us",
            "https://graph.microsoft.us",
            "https://graph.microsoft.us",
        )
    }

    /// US Government DoD.
    pub(crate) fn usgov_dod() -> Cloud {
        Cloud::builtin(
            "usgov-dod",
            "https://login.microsoftonline.us",
            "https://dod-graph.microsoft.us",
            "https://dod-graph.microsoft.us",
        )
    }

    /// China, operated by 21Vianet.
    pub(crate) fn china() -> Cloud {
        Cloud::builtin(
            "china",
            "https://login.chinacloudapi.cn",
            "https://microsoftgraph.chinacloudapi.cn",
            "https://microsoftgraph.chinacloudapi.cn",
        )
    }

    /// A built-in cloud by name, or a cloud file by path.
    pub fn resolve(spec: &str) -> Result<Cloud, Error> {
        match spec.to_ascii_lowercase().as_str() {
            "global" | "public" | "azurecloud" => Ok(Cloud::global()),
            "usgov" | "gcchigh" | "usgovernment" => Ok(Cloud::usgov()),
            "usgov-dod" | "dod" => Ok(Cloud::usgov_dod()),
            "china" | "azurechinacloud" => Ok(Cloud::china()),
            _ => Cloud::from_file(Path::new(spec)),
        }
    }

    pub fn from_file(path: &Path) -> Result<Cloud, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!(
                "'{}' is neither a built-in cloud (global, usgov, usgov-dod, china) nor a readable cloud file: {e}",
                path.display()
            ))
        })?;
        let file: CloudFile =
            serde_json::from_str(&text).map_err(|e| Error::Config(format!("cloud file {}: {e}", path.display())))?;
        let ca_file = file.ca_file.map(|c| {
            let p = PathBuf::from(&c);
            if p.is_relative() { path.parent().map(|d| d.join(&p)).unwrap_or(p) } else { p }
        });
        let ca_pem = match &ca_file {
            Some(p) => Some(std::fs::read(p).map_err(|e| {
                Error::Config(format!("CA file {} of cloud file {}: {e}", p.display(), path.display()))
            })?),
            None => None,
        };
        Ok(Cloud {
            name: file.name,
            login_url: parse_https(&file.login_url, "login_url")?,
            graph_url: parse_https(&file.graph_url, "graph_url")?,
            graph_resource: file.graph_resource,
            ca_pem,
            ca_file,
        })
    }

    /// Adds a CA certificate to trust (the `--ca-file` option), beside the cloud file's own.
    pub fn with_ca_file(mut self, path: &Path) -> Result<Cloud, Error> {
        let pem = std::fs::read(path).map_err(|e| Error::Config(format!("CA file {}: {e}", path.display())))?;
        self.ca_pem = Some(match self.ca_pem.take() {
            // PEM bundles concatenate; a newline keeps the two files' blocks apart.
            Some(mut existing) => {
                existing.push(b'\n');
                existing.extend_from_slice(&pem);
                existing
            }
            None => pem,
        });
        self.ca_file = Some(path.to_path_buf());
        Ok(self)
    }

    /// The scope that asks for every Graph permission the app was granted.
    pub(crate) fn graph_default_scope(&self) -> String {
        format!("{}/.default", self.graph_resource.trim_end_matches('/'))
    }

    pub(crate) fn token_endpoint(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.login_url.as_str().trim_end_matches('/'))
    }

    pub(crate) fn devicecode_endpoint(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/devicecode", self.login_url.as_str().trim_end_matches('/'))
    }

    pub(crate) fn authorize_endpoint(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/authorize", self.login_url.as_str().trim_end_matches('/'))
    }

    /// The Graph URL of a path relative to a version, e.g. `("v1.0", "users")`.
    pub(crate) fn graph(&self, version: &str, path: &str) -> String {
        format!("{}/{version}/{}", self.graph_url.as_str().trim_end_matches('/'), path.trim_start_matches('/'))
    }

    /// Whether a bearer token may be sent to `url`: https, and exactly the Graph host and port.
    pub(crate) fn is_graph_url(&self, url: &Url) -> bool {
        url.scheme() == "https"
            && url.host_str().map(str::to_ascii_lowercase) == self.graph_url.host_str().map(str::to_ascii_lowercase)
            && url.port_or_known_default() == self.graph_url.port_or_known_default()
            && url.username().is_empty()
            && url.password().is_none()
    }

    /// A stable key for the cache: tokens of one cloud never serve another. It covers the cloud's
    /// whole identity (sign-in URL, Graph URL, Graph resource, ports included), so a cloud file that
    /// keeps a name and a sign-in host but points Graph elsewhere never receives the tokens obtained
    /// for the original; the readable part lets [`Cloud::same_name_prefix`] find such a sign-in.
    pub(crate) fn cache_key(&self) -> String {
        use sha2::{Digest, Sha256};
        let identity = format!("{}\n{}\n{}", self.login_url, self.graph_url, self.graph_resource);
        let digest = Sha256::digest(identity.as_bytes());
        let short: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("{}#{short}", self.same_name_prefix())
    }

    /// The part of [`Cloud::cache_key`] that names the cloud without its identity.
    pub(crate) fn same_name_prefix(&self) -> String {
        format!("{}@{}", self.name, self.login_url.host_str().unwrap_or(""))
    }

    /// The cloud's identity as the user configured it, for messages.
    pub fn identity(&self) -> String {
        format!(
            "sign-in {}, Graph {} (resource {})",
            self.login_url.as_str().trim_end_matches('/'),
            self.graph_url.as_str().trim_end_matches('/'),
            self.graph_resource
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_extra_ca_file_is_added_to_the_cloud_files_own() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("own.pem"), "-----BEGIN CERTIFICATE-----\nOWN\n-----END CERTIFICATE-----")
            .unwrap();
        std::fs::write(dir.path().join("proxy.pem"), "-----BEGIN CERTIFICATE-----\nPROXY\n-----END CERTIFICATE-----\n")
            .unwrap();
        let file = dir.path().join("cloud.json");
        std::fs::write(
            &file,
            r#"{"name":"x","login_url":"https://login.example","graph_url":"https://graph.example","graph_resource":"https://graph.example","ca_file":"own.pem"}"#,
        )
        .unwrap();
        let cloud = Cloud::from_file(&file).unwrap().with_ca_file(&dir.path().join("proxy.pem")).unwrap();
        let pem = String::from_utf8(cloud.ca_pem.unwrap()).unwrap();
        assert!(pem.contains("OWN") && pem.contains("PROXY"), "{pem}");
        assert!(pem.contains("-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----"), "{pem}");
    }

    #[test]
    fn builtin_clouds_resolve() {
        assert_eq!(Cloud::resolve("global").unwrap().graph_url.as_str(), "https://graph.microsoft.com/");
        assert_eq!(Cloud::resolve("usgov-dod").unwrap().graph_url.host_str(), Some("dod-graph.microsoft.us"));
        assert!(Cloud::resolve("/no/such/file.json").is_err());
    }

    #[test]
    fn graph_host_allow_list_is_strict() {
        let c = Cloud::global();
        let ok = Url::parse("https://graph.microsoft.com/v1.0/users?$skiptoken=x").unwrap();
        assert!(c.is_graph_url(&ok));
        for bad in [
            "http://graph.microsoft.com/v1.0/users",
            "https://graph.microsoft.com.evil.example/v1.0/users",
            "https://evil.example/v1.0/users",
            "https://graph.microsoft.com:8443/v1.0/users",
            "https://user@graph.microsoft.com/v1.0/users",
        ] {
            assert!(!c.is_graph_url(&Url::parse(bad).unwrap()), "{bad}");
        }
    }

    #[test]
    fn cloud_files_must_use_https() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.json");
        std::fs::write(&p, r#"{"name":"x","login_url":"http://127.0.0.1:1","graph_url":"https://127.0.0.1:1","graph_resource":"https://graph.microsoft.com"}"#).unwrap();
        assert!(Cloud::from_file(&p).is_err());
        std::fs::write(&p, r#"{"name":"x","login_url":"https://127.0.0.1:1","graph_url":"https://127.0.0.1:1","graph_resource":"https://graph.microsoft.com"}"#).unwrap();
        let c = Cloud::from_file(&p).unwrap();
        assert_eq!(c.graph_default_scope(), "https://graph.microsoft.com/.default");
        assert_eq!(c.token_endpoint("common"), "https://127.0.0.1:1/common/oauth2/v2.0/token");
    }
}
