//! The messages between the server and its agents, under `/api/v1/agent`. The agent always
//! calls; the server never connects to an agent. Every call but enrollment carries a fresh token
//! signed with the agent's key ([`crate::keys`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Where the agent API lives.
pub const PREFIX: &str = "/api/v1/agent";

/// The problem code of a call from a revoked agent: it must stop.
pub const CODE_REVOKED: &str = "revoked";

/// The problem code of a call from an agent the server does not know: it must stop.
pub const CODE_UNKNOWN_AGENT: &str = "unknown_agent";

/// The problem code of a call whose token is not valid now (most often a clock off by minutes):
/// the agent corrects its clock from the answer's `Date` and tries again.
pub const CODE_TOKEN: &str = "token";

/// The longest a claim waits for a job before answering that there is none.
pub const MAX_WAIT_SECONDS: u64 = 30;

/// An agent's first call: it spends a one-time token and presents its public keys.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The one-time enrollment token an admin created.
    pub token: String,
    /// A name for the agent; the token's when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// Ed25519 public key (base64) that verifies the agent's tokens.
    pub signing_key: String,
    /// X25519 public key (base64) that secrets are sealed to.
    pub sealing_key: String,
    /// The agent's version.
    pub version: String,
}

/// Who the agent now is.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EnrollResponse {
    pub agent_id: String,
    pub name: String,
    pub pool: String,
}

/// Whether a host answered the agent, and how.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Reachability {
    pub ok: bool,
    /// What went wrong (DNS, TCP, TLS, a proxy's refusal), when it did.
    #[serde(default)]
    pub error: Option<String>,
    pub millis: u64,
}

/// The last job an agent finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LastJob {
    pub id: String,
    pub status: String,
    pub finished_at: DateTime<Utc>,
    #[serde(default)]
    pub error: Option<String>,
}

/// What an agent reports with each heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    pub version: String,
    pub started_at: DateTime<Utc>,
    /// The agent's clock when it sent the heartbeat; the server compares it with its own.
    pub now: DateTime<Utc>,
    /// The local address the agent binds its connections to, when it chose one.
    #[serde(default)]
    pub bind_address: Option<String>,
    /// The address Microsoft saw the agent's last sign-in from (the `ipaddr` claim of its own
    /// tokens), once it has signed in.
    #[serde(default)]
    pub egress_address: Option<String>,
    /// Whether the identity platform's host answered (the doctor's sixth check, run on the agent).
    #[serde(default)]
    pub login: Option<Reachability>,
    /// Whether Graph's host answered.
    #[serde(default)]
    pub graph: Option<Reachability>,
    #[serde(default)]
    pub last_job: Option<LastJob>,
    pub jobs_in_flight: u32,
}

/// The server's answer to a heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatResponse {
    pub server_time: DateTime<Utc>,
    /// `healthy`, `degraded` or `offline`, as the server sees the agent.
    pub state: String,
    #[serde(default)]
    pub reason: Option<String>,
    /// Set when the agent should be upgraded, with why.
    #[serde(default)]
    pub upgrade: Option<String>,
}

/// A claim: the agent waits up to `wait_seconds` for a job of its pool.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    #[serde(default)]
    pub wait_seconds: u64,
}

/// How the agent reaches Microsoft for the server's partner connection.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MicrosoftWire {
    pub cloud: String,
    pub login_url: String,
    pub graph_url: String,
    pub graph_resource: String,
    /// The CA the server trusts for this cloud (PEM), when it is not a public one.
    #[serde(default)]
    pub ca_pem: Option<String>,
    pub client_id: String,
}

/// A claimed job, with all the agent needs to run it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClaimedJob {
    pub id: String,
    pub kind: String,
    #[schema(value_type = Object)]
    pub params: Value,
    pub attempts: i64,
    /// The claim's fence: every later call about the job carries it, and is refused once another
    /// worker has claimed the job since.
    pub fence: i64,
    /// How long the lease lasts without a heartbeat, and how often to send one.
    pub lease_seconds: u64,
    pub heartbeat_seconds: u64,
    pub microsoft: MicrosoftWire,
    /// What history to record, as the server's configuration says.
    #[schema(value_type = Object)]
    pub history: Option<Value>,
    /// The partner connection's tokens ([`SecretBundle`]), sealed to the agent's key.
    pub sealed: String,
}

/// The secrets a job needs, as they travel inside a sealed box.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SecretBundle {
    pub tokens: Vec<TokenWire>,
}

/// A token cache entry as it travels between the server and an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenWire {
    pub key: String,
    pub tenant_id: String,
    pub kind: String,
    pub client_id: String,
    #[serde(default)]
    pub home_account: Option<String>,
    pub scopes: String,
    pub secret: String,
    #[serde(default)]
    pub issued_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub claims: Option<Value>,
}

/// A job heartbeat, with the agent's progress.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobHeartbeat {
    pub fence: i64,
    #[schema(value_type = Object)]
    pub progress: Value,
}

/// Whether to stop.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobHeartbeatResponse {
    pub cancel: bool,
}

/// A store call of the job's run ([`inspect::storage::Call`]).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreRequest {
    pub fence: i64,
    #[schema(value_type = Object)]
    #[serde(deserialize_with = "inspect::storage::deserialize_call")]
    pub call: inspect::storage::Call,
}

/// An app credential sealed to the agent's key ([`inspect::storage::CredentialWire`]); absent
/// when the tenant has none.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SealedCredential {
    pub sealed: Option<String>,
}

/// A refresh token (or account) the agent obtained while it worked: the partner connection's
/// rotated tokens go back to the server.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenSave {
    pub fence: i64,
    pub token: TokenWire,
}

/// How an attempt ended.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case", deny_unknown_fields)]
pub enum Finish {
    Succeeded {
        #[schema(value_type = Object)]
        result: Value,
    },
    Failed {
        error: String,
    },
    Cancelled,
}

/// The end of an attempt.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinishRequest {
    pub fence: i64,
    pub outcome: Finish,
}

/// The kinds of token cache entries an agent may hand back: never access tokens, which stay
/// with the agent that obtained them.
pub const RETURNED_KINDS: &[&str] = &["refresh", "account", "id"];

/// Whether an agent of version `agent` may work for a server of version `server`: the same major
/// version, and a minor version at most one behind (or ahead). `Err` says why not.
pub fn compatible(server: &str, agent: &str) -> Result<(), String> {
    let parse = |v: &str| -> Option<(u64, u64)> {
        let mut parts = v.trim().trim_start_matches('v').split(['.', '-', '+']);
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    };
    let (Some((smaj, smin)), Some((amaj, amin))) = (parse(server), parse(agent)) else {
        return Err(format!("the agent's version {agent:?} is not a version this server understands"));
    };
    if smaj != amaj || smin.abs_diff(amin) > 1 {
        let advice = if (amaj, amin) < (smaj, smin) {
            "upgrade the agent"
        } else {
            "upgrade the server, or run an agent of the server's version"
        };
        return Err(format!(
            "the agent runs {agent} and the server {server}: agents must be within one minor version of the server; {advice}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_within_one_minor_version_are_accepted() {
        assert!(compatible("1.4.2", "1.4.0").is_ok());
        assert!(compatible("1.4.2", "1.3.9").is_ok());
        assert!(compatible("1.4.2", "1.5.0").is_ok());
        assert!(compatible("1.4.2", "1.2.0").unwrap_err().contains("upgrade the agent"));
        assert!(compatible("1.4.2", "2.4.0").unwrap_err().contains("upgrade the server"));
        assert!(compatible("1.4.2", "banana").is_err());
        assert!(compatible("0.1.0", "0.1.0-dev").is_ok());
    }
}
