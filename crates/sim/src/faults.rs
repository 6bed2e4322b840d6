//! Injected faults: latency, server errors, connection resets, broken bodies and hostile data, decided
//! per request from a seeded random source so that a failing run can be replayed.

use std::sync::Mutex;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Seed of the random source that decides which requests fail.
    pub seed: u64,
    /// Latency added to every affected request, in milliseconds.
    pub latency_ms: u64,
    /// Share (0 to 1) of requests answered with one of `error_statuses`.
    pub error_rate: f64,
    /// Statuses to pick from; empty means 500, 502, 503 and 504.
    pub error_statuses: Vec<u16>,
    /// `Retry-After` seconds sent with injected 503 responses.
    pub retry_after: Option<u64>,
    /// Share of requests whose connection is dropped before any response.
    pub reset_rate: f64,
    /// Share of responses whose body is cut short.
    pub truncate_rate: f64,
    /// Share of responses whose body trickles out slowly.
    pub slow_body_rate: f64,
    pub slow_body_ms: u64,
    /// Paged lists point their `@odata.nextLink` at another host.
    pub foreign_next_link: bool,
    /// Paged lists point their `@odata.nextLink` back at the same page forever.
    pub looping_next_link: bool,
    /// Display names become very long strings.
    pub long_strings: bool,
    /// Display names carry unusual Unicode (bidirectional overrides, zero-width joiners, emoji, NUL).
    pub unusual_unicode: bool,
    /// Faults also apply to the identity endpoints, not only to Graph.
    pub identity: bool,
    /// The answer to the last page of a delta round is lost (503) after the round was finished,
    /// once per tenant and collection: the client's retry of that page is told to resync.
    pub delta_last_page_lost: bool,
    /// Restrict faults to these tenants (ids); empty means every tenant.
    pub tenants: Vec<String>,
}

impl FaultConfig {
    /// Whether the faults apply to a tenant (by id): every tenant when none is named.
    pub(crate) fn applies_to(&self, tenant_id: &str) -> bool {
        self.tenants.is_empty() || self.tenants.iter().any(|t| t.eq_ignore_ascii_case(tenant_id))
    }

    pub(crate) fn is_active(&self) -> bool {
        self.latency_ms > 0
            || self.error_rate > 0.0
            || self.reset_rate > 0.0
            || self.truncate_rate > 0.0
            || self.slow_body_rate > 0.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Normal,
    Status(u16),
    Reset,
    Truncate,
    SlowBody,
}

#[derive(Debug, Clone, Copy)]
pub struct Decision {
    pub latency: Duration,
    pub outcome: Outcome,
}

/// The random source behind fault decisions; reseeded from `seed` whenever the configuration changes, so
/// that the same configuration applied to a fresh sequence of requests faults the same requests.
pub struct FaultDice {
    state: Mutex<(FaultConfig, ChaCha8Rng)>,
}

impl Default for FaultDice {
    fn default() -> Self {
        FaultDice { state: Mutex::new((FaultConfig::default(), ChaCha8Rng::seed_from_u64(0))) }
    }
}

/// The fault decided for one request where it entered the server, carried to the handler in the request's
/// extensions so that each request rolls the dice exactly once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Injected {
    pub decision: Decision,
    pub retry_after: Option<u64>,
    pub slow_body: Duration,
}

impl FaultDice {
    pub fn decide(&self, config: &FaultConfig) -> Decision {
        let latency = Duration::from_millis(config.latency_ms);
        if !config.is_active() {
            return Decision { latency, outcome: Outcome::Normal };
        }
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if guard.0 != *config {
            *guard = (config.clone(), ChaCha8Rng::seed_from_u64(config.seed));
        }
        let rng = &mut guard.1;
        let roll: f64 = rng.random();
        let mut edge = config.reset_rate;
        let outcome = if roll < edge {
            Outcome::Reset
        } else if roll < {
            edge += config.error_rate;
            edge
        } {
            let statuses: &[u16] =
                if config.error_statuses.is_empty() { &[500, 502, 503, 504] } else { &config.error_statuses };
            Outcome::Status(statuses[rng.random_range(0..statuses.len())])
        } else if roll < {
            edge += config.truncate_rate;
            edge
        } {
            Outcome::Truncate
        } else if roll < {
            edge += config.slow_body_rate;
            edge
        } {
            Outcome::SlowBody
        } else {
            Outcome::Normal
        };
        Decision { latency, outcome }
    }
}

/// Cuts a response's body in half and then fails the stream, so that the client sees a connection that
/// broke in the middle of a body whose `Content-Length` promised more.
pub(crate) async fn truncate(resp: Response) -> Response {
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let cut = bytes.slice(0..bytes.len() / 2);
    // The pause lets the server flush the headers and the first half before the stream fails; failing at
    // once would drop the connection before anything was sent, which is a reset, not a truncation.
    let stream = futures::stream::unfold(0u8, move |step| {
        let cut = cut.clone();
        async move {
            match step {
                0 => Some((Ok::<Bytes, std::io::Error>(cut), 1)),
                1 => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Some((Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected truncation")), 2))
                }
                _ => None,
            }
        }
    });
    let mut resp = Response::from_parts(parts, Body::from_stream(stream));
    if let Ok(v) = HeaderValue::from_str(&bytes.len().to_string()) {
        resp.headers_mut().insert(header::CONTENT_LENGTH, v);
    }
    resp
}

/// Sends a response's body in 256-byte chunks with `delay` before each.
pub(crate) async fn slow(resp: Response, delay: Duration) -> Response {
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let chunks: Vec<Bytes> = bytes.chunks(256).map(Bytes::copy_from_slice).collect();
    let stream = futures::stream::unfold(chunks.into_iter(), move |mut it| async move {
        let next = it.next()?;
        tokio::time::sleep(delay).await;
        Some((Ok::<Bytes, std::io::Error>(next), it))
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

/// Hostile text for display names when the world asks for it.
pub(crate) fn hostile_name(config: &FaultConfig, name: &str) -> Option<String> {
    if config.long_strings {
        return Some(format!("{name} {}", "\u{1F4A5}long".repeat(8192)));
    }
    if config.unusual_unicode {
        // Bidirectional overrides, joiners and emoji, NUL, combining marks, terminal escapes (an
        // OSC title change and an erase-screen), and markup that a careless page would run: all
        // valid in a Graph string.
        return Some(format!(
            "\u{202E}{name}\u{202C} \u{200D}\u{1F469}\u{200D}\u{1F4BB} \u{0000}Z\u{0301}\u{0301} \u{1b}]0;owned\u{7}\u{1b}[2J <img src=x onerror=alert(1)>"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_respected_and_replayable() {
        let config = FaultConfig { seed: 9, error_rate: 0.25, reset_rate: 0.05, ..FaultConfig::default() };
        let dice = FaultDice::default();
        let first: Vec<Outcome> = (0..4000).map(|_| dice.decide(&config).outcome).collect();
        let errors = first.iter().filter(|o| matches!(o, Outcome::Status(_))).count();
        let resets = first.iter().filter(|o| **o == Outcome::Reset).count();
        assert!((800..1200).contains(&errors), "{errors} errors");
        assert!((120..290).contains(&resets), "{resets} resets");
        let again = FaultDice::default();
        let second: Vec<Outcome> = (0..4000).map(|_| again.decide(&config).outcome).collect();
        assert_eq!(first, second);
    }

    #[test]
    fn inactive_config_never_faults() {
        let dice = FaultDice::default();
        assert!((0..100).all(|_| dice.decide(&FaultConfig::default()).outcome == Outcome::Normal));
    }
}
