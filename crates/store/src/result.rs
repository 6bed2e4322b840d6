//! The content-addressed part of a tenant result.
//!
//! Everything about a tenant's result that an unchanged tenant repeats run
//! after run (its status, its tenant-level diagnosis and error, and its
//! collector outcomes without `requests` and `duration_ms`) is serialized as
//! one JSON document, compressed, and stored once under the SHA-256 of that
//! JSON. A tenant run refers to it by key, and keeps its own figures in the
//! per-run part (`per_run.rs`). Failed tenants that fail the same way every
//! run share one row too.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::blob::{compress, decompress};
use crate::error::{Result, StoreError};
use crate::per_run::Numbers;
use crate::{CollectorOutcomeRecord, OutcomeStatus, RunId, TenantId, TenantRunRecord, TenantRunStatus};

/// What a tenant result repeats from run to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ResultContent {
    pub status: TenantRunStatus,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub diagnosis: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub error: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outcomes: Vec<OutcomeContent>,
}

/// A collector outcome without its per-run figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct OutcomeContent {
    pub collector: String,
    pub status: OutcomeStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub reason: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub error: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub diagnosis: Option<Value>,
}

/// A key that is present holds a value, even JSON `null`: serde would read
/// `null` as `None`, and the store must give back `Some(Null)` when given it.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

impl ResultContent {
    /// Splits a tenant result into its repeating content and its figures.
    pub(crate) fn from_records(
        tenant_run: &TenantRunRecord,
        outcomes: &[CollectorOutcomeRecord],
    ) -> (ResultContent, Vec<Numbers>) {
        let content = ResultContent {
            status: tenant_run.status,
            diagnosis: tenant_run.diagnosis.clone(),
            error: tenant_run.error.clone(),
            outcomes: outcomes
                .iter()
                .map(|o| OutcomeContent {
                    collector: o.collector.clone(),
                    status: o.status,
                    items: o.items,
                    reason: o.reason.clone(),
                    error: o.error.clone(),
                    diagnosis: o.diagnosis.clone(),
                })
                .collect(),
        };
        let numbers = outcomes.iter().map(|o| (o.requests, o.duration_ms)).collect();
        (content, numbers)
    }

    /// The collector names, in outcome order, for the per-run codec.
    pub(crate) fn collectors(&self) -> Vec<&str> {
        self.outcomes.iter().map(|o| o.collector.as_str()).collect()
    }

    /// The full outcome records of one run from this content and that run's
    /// figures.
    pub(crate) fn outcome_records(
        &self,
        run_id: &RunId,
        tenant_id: &TenantId,
        numbers: &[Numbers],
    ) -> Result<Vec<CollectorOutcomeRecord>> {
        if numbers.len() != self.outcomes.len() {
            return Err(StoreError::corrupt(format!(
                "tenant run {run_id}/{tenant_id}: {} outcome figures for {} outcomes",
                numbers.len(),
                self.outcomes.len()
            )));
        }
        Ok(self
            .outcomes
            .iter()
            .zip(numbers)
            .map(|(o, &(requests, duration_ms))| CollectorOutcomeRecord {
                run_id: run_id.clone(),
                tenant_id: tenant_id.clone(),
                collector: o.collector.clone(),
                status: o.status,
                items: o.items,
                reason: o.reason.clone(),
                error: o.error.clone(),
                diagnosis: o.diagnosis.clone(),
                requests,
                duration_ms,
            })
            .collect())
    }
}

/// A result ready to be stored: its key and compressed bytes.
pub(crate) struct EncodedResult {
    /// SHA-256 of `raw`.
    pub hash: Vec<u8>,
    /// Uncompressed length.
    pub raw_len: i64,
    /// Compressed data (a zstd frame, or zlib if written before zstd).
    pub data: Vec<u8>,
}

/// Domain separation, so the hash of a result can never equal that of
/// another kind of stored content.
const HASH_PREFIX: &[u8] = b"tenantscope.tenant-result/v1\n";

fn hash(raw: &[u8]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(HASH_PREFIX);
    hasher.update(raw);
    hasher.finalize().to_vec()
}

pub(crate) fn encode(content: &ResultContent) -> Result<EncodedResult> {
    let raw = serde_json::to_vec(content)?;
    Ok(EncodedResult { hash: hash(&raw), raw_len: raw.len() as i64, data: compress(&raw) })
}

/// Decompresses, verifies and parses a stored result.
pub(crate) fn decode(hash_bytes: &[u8], raw_len: i64, data: &[u8]) -> Result<ResultContent> {
    let what = format!("tenant result {}", hex::encode(hash_bytes));
    let raw = decompress(data, raw_len, &what)?;
    if hash(&raw) != hash_bytes {
        return Err(StoreError::corrupt(format!("{what}: content does not match its hash")));
    }
    serde_json::from_slice(&raw).map_err(|err| StoreError::corrupt(format!("{what}: invalid JSON: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;

    #[test]
    fn round_trip_keeps_explicit_nulls_and_figures() {
        let tenant_run = TenantRunRecord {
            run_id: "r".into(),
            tenant_id: "t".into(),
            status: TenantRunStatus::Partial,
            started_at: Utc::now(),
            finished_at: Utc::now(),
            diagnosis: Some(Value::Null),
            error: None,
            dataprint_id: None,
        };
        let outcomes = vec![CollectorOutcomeRecord {
            run_id: "r".into(),
            tenant_id: "t".into(),
            collector: "users".into(),
            status: OutcomeStatus::Failed,
            items: None,
            reason: None,
            error: Some(json!({"z": 1, "a": [null]})),
            diagnosis: Some(Value::Null),
            requests: 3,
            duration_ms: -1,
        }];
        let (content, numbers) = ResultContent::from_records(&tenant_run, &outcomes);
        let encoded = encode(&content).expect("encode");
        let back = decode(&encoded.hash, encoded.raw_len, &encoded.data).expect("decode");
        assert_eq!(back, content);
        assert_eq!(back.diagnosis, Some(Value::Null));
        assert_eq!(back.outcome_records(&"r".into(), &"t".into(), &numbers).expect("records"), outcomes);
        assert!(back.outcome_records(&"r".into(), &"t".into(), &[]).is_err());
        assert!(decode(&encoded.hash, encoded.raw_len, &compress(b"{}")).is_err());
    }
}
