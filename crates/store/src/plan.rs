//! The backend-independent steps of committing and reading a tenant result:
//! deciding whether a dataprint is new or confirms the tenant's latest one,
//! and encoding or decoding the tenant run's per-run part.
//!
//! A commit decides twice. First outside the transaction (outside SQLite's
//! write lock), against the latest dataprint a reader sees, so that the
//! expensive work (compressing a new dataprint, or decoding the reference
//! `run` member) is done without holding anything. Then inside the
//! transaction against the latest dataprint at that moment; when another
//! commit changed it in between (or this commit replaced the result that
//! created it), the decision is redone there.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::blob::{self, PreparedDataprint, SplitDataprint};
use crate::common::micros;
use crate::error::Result;
use crate::per_run::{self, Context, Decoded, Numbers};
use crate::result::{self, EncodedResult, ResultContent};
use crate::{CollectorOutcomeRecord, RunId, TenantId, TenantRunRecord, TenantRunStatus};

/// The latest dataprint of a tenant, as the identity check needs it.
pub(crate) struct Latest {
    pub key: i64,
    pub id: String,
    pub content_hash: Vec<u8>,
    pub status: TenantRunStatus,
    pub taken_at: DateTime<Utc>,
}

/// A dataprint's stored envelope, compressed.
pub(crate) struct Envelope {
    pub id: String,
    pub data: Vec<u8>,
    pub len: i64,
}

impl Envelope {
    /// The reference `run` member it holds.
    pub(crate) fn run(&self) -> Result<Option<Value>> {
        blob::envelope_run(&self.data, self.len, &self.id)
    }
}

/// A tenant result being committed.
pub(crate) struct Incoming {
    /// Microseconds from the tenant run's start to its end.
    pub elapsed_micros: i64,
    pub result: EncodedResult,
    pub content: ResultContent,
    pub numbers: Vec<Numbers>,
    pub doc: Doc,
}

/// The dataprint of a tenant result being committed.
pub(crate) enum Doc {
    /// None is stored (a failed result, or none given).
    None,
    /// Expected to confirm dataprint `key`, with the per-run part already
    /// encoded against it.
    Confirm { split: SplitDataprint, key: i64, id: String, per_run: Vec<u8> },
    /// Expected to be new: split and compressed.
    Insert(PreparedDataprint),
}

/// What the transaction does with the dataprint.
pub(crate) enum Decision {
    /// No dataprint; the per-run part.
    None(Vec<u8>),
    /// Point at an existing dataprint.
    Confirm { key: i64, id: String, per_run: Vec<u8> },
    /// Insert this one.
    Insert(PreparedDataprint),
}

impl Incoming {
    /// Splits a tenant result into what is stored once and what is stored
    /// per run; the dataprint is split but not yet compressed.
    pub(crate) fn new(
        tenant_run: &TenantRunRecord,
        outcomes: &[CollectorOutcomeRecord],
        dataprint: Option<&Value>,
        known: &blob::Known,
        unparsed: &[crate::model::UnparsedCollection],
    ) -> Result<(Incoming, Option<SplitDataprint>)> {
        let (content, numbers) = ResultContent::from_records(tenant_run, outcomes);
        let result = result::encode(&content)?;
        // A failed tenant result stores no dataprint, so it can never become
        // the tenant's last good one.
        let split = match (tenant_run.status, dataprint) {
            (TenantRunStatus::Failed, _) | (_, None) => None,
            (_, Some(doc)) => Some(blob::split_with(doc, known, unparsed)?),
        };
        let elapsed_micros =
            (micros(tenant_run.finished_at) - micros(tenant_run.started_at)).num_microseconds().unwrap_or(i64::MAX);
        Ok((Incoming { elapsed_micros, result, content, numbers, doc: Doc::None }, split))
    }

    /// The per-run part of a tenant run with no dataprint.
    pub(crate) fn bare_per_run(&self, tenant_run: &TenantRunRecord) -> Result<Vec<u8>> {
        let ctx = Context { run_id: tenant_run.run_id.as_str(), shift_micros: 0 };
        per_run::encode(self.elapsed_micros, &self.numbers, &self.content.collectors(), None, None, &ctx)
    }

    /// The per-run part of a tenant run whose dataprint is `split` as
    /// stored by `reference` (the dataprint's `run` member and `taken_at`).
    pub(crate) fn per_run_against(
        &self,
        tenant_run: &TenantRunRecord,
        split: &SplitDataprint,
        reference: Option<&Value>,
        taken_at: DateTime<Utc>,
    ) -> Result<Vec<u8>> {
        let ctx = context(tenant_run.run_id.as_str(), micros(tenant_run.finished_at), taken_at);
        let collectors = self.content.collectors();
        per_run::encode(self.elapsed_micros, &self.numbers, &collectors, split.run.as_ref(), reference, &ctx)
    }

    /// Decides, inside the transaction, against the tenant's latest
    /// dataprint at that moment. `load_envelope` reads a dataprint's
    /// envelope in the transaction, needed only when the early decision no
    /// longer holds.
    pub(crate) async fn decide<F, Fut>(
        &mut self,
        tenant_run: &TenantRunRecord,
        latest: Option<Latest>,
        load_envelope: F,
    ) -> Result<Decision>
    where
        F: FnOnce(i64) -> Fut,
        Fut: std::future::Future<Output = Result<Envelope>>,
    {
        let split = match std::mem::replace(&mut self.doc, Doc::None) {
            Doc::None => return Ok(Decision::None(self.bare_per_run(tenant_run)?)),
            Doc::Confirm { split, key, id, per_run } => {
                if latest.as_ref().is_some_and(|l| l.key == key && matches(&split, tenant_run.status, l)) {
                    return Ok(Decision::Confirm { key, id, per_run });
                }
                split
            }
            Doc::Insert(prepared) => {
                if !latest.as_ref().is_some_and(|l| matches(&prepared.split, tenant_run.status, l)) {
                    return Ok(Decision::Insert(prepared));
                }
                prepared.split
            }
        };
        // The early decision no longer holds: another commit changed the
        // tenant's latest dataprint, or this one replaced the result that
        // created it.
        match latest {
            Some(latest) if matches(&split, tenant_run.status, &latest) => {
                let reference = load_envelope(latest.key).await?.run()?;
                let per_run = self.per_run_against(tenant_run, &split, reference.as_ref(), latest.taken_at)?;
                Ok(Decision::Confirm { key: latest.key, id: latest.id, per_run })
            }
            // Compressing here is the rare path: the early check expected
            // to confirm a dataprint that another commit has since replaced.
            _ => Ok(Decision::Insert(blob::prepare_now(split))),
        }
    }
}

/// Whether a new dataprint has the content and status of a stored one.
pub(crate) fn matches(split: &SplitDataprint, status: TenantRunStatus, latest: &Latest) -> bool {
    latest.content_hash == split.content_hash && latest.status == status
}

fn context(run_id: &str, finished_at: DateTime<Utc>, taken_at: DateTime<Utc>) -> Context<'_> {
    let shift_micros = (finished_at - taken_at).num_microseconds().unwrap_or(0);
    Context { run_id, shift_micros }
}

/// A stored tenant run, as needed to rebuild its outcomes and `run` member.
pub(crate) struct StoredRun {
    pub run_id: RunId,
    pub tenant_id: TenantId,
    pub finished_at: DateTime<Utc>,
    pub content: ResultContent,
    pub per_run: Vec<u8>,
}

impl StoredRun {
    /// Whether decoding needs the dataprint's envelope.
    pub(crate) fn needs_reference(&self) -> bool {
        per_run::needs_reference(&self.per_run)
    }

    /// Decodes the per-run part; `reference` is the dataprint's `run`
    /// member and `taken_at`, when the tenant run has a dataprint.
    pub(crate) fn decode(&self, reference: Option<(Option<&Value>, DateTime<Utc>)>) -> Result<Decoded> {
        let (run, taken_at) = reference.unwrap_or((None, self.finished_at));
        let ctx = context(self.run_id.as_str(), self.finished_at, taken_at);
        per_run::decode(&self.per_run, &self.content.collectors(), run, &ctx)
    }

    /// The complete outcomes of this tenant run.
    pub(crate) fn outcomes(&self, decoded: &Decoded) -> Result<Vec<CollectorOutcomeRecord>> {
        self.content.outcome_records(&self.run_id, &self.tenant_id, &decoded.numbers)
    }

    /// The per-run part once the dataprint is gone: the figures only, which
    /// need no reference to decode.
    pub(crate) fn detached(&self, decoded: &Decoded) -> Result<Vec<u8>> {
        let ctx = Context { run_id: self.run_id.as_str(), shift_micros: 0 };
        per_run::encode(decoded.elapsed_micros, &decoded.numbers, &self.content.collectors(), None, None, &ctx)
    }
}

/// Puts a run's own `run` member into the stored document, at the member's
/// place.
pub(crate) fn with_run(mut doc: Value, run: Option<Value>) -> Value {
    if let (Some(top), Some(run)) = (doc.as_object_mut(), run)
        && let Some(slot) = top.get_mut(blob::RUN)
    {
        *slot = run;
    }
    doc
}
