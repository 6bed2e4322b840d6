//! Delta queries (`users/delta`, `groups/delta`): their server-side state, and the pages of a round.
//!
//! A delta token remembers a fingerprint of every object as the client last saw it; the next request
//! compares them with the current world to find what was added, changed or removed. A round of pages
//! is computed once, at its first page, and served from memory until its delta link.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::GraphOk;
use super::env::Env;
use super::query::odata_query;
use crate::errors::GraphError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    Changed(Uuid),
    Removed(Uuid),
}

struct Token {
    tenant: Uuid,
    collection: String,
    created: DateTime<Utc>,
    state: HashMap<Uuid, u64>,
}

struct Round {
    tenant: Uuid,
    collection: String,
    created: DateTime<Utc>,
    entries: Vec<Entry>,
    next_state: HashMap<Uuid, u64>,
}

#[derive(Default)]
pub(crate) struct DeltaStore {
    tokens: HashMap<String, Token>,
    rounds: HashMap<String, Round>,
    /// Delta tokens older than this are refused with `resyncRequired`.
    pub token_lifetime_days: Option<i64>,
    /// The tenants and collections whose last page was already lost once under the
    /// `delta_last_page_lost` fault: each loses it only once.
    lost_last_pages: HashSet<(Uuid, String)>,
}

pub(crate) fn fingerprint(value: &serde_json::Value) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.to_string().hash(&mut h);
    h.finish()
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DeltaError {
    /// The token is unknown, expired or belongs to another tenant or collection.
    ResyncRequired,
}

impl DeltaStore {
    fn lifetime(&self) -> Duration {
        Duration::days(self.token_lifetime_days.unwrap_or(7))
    }

    /// Starts a round: from nothing (a full sync) or from a delta token.
    pub(crate) fn start(
        &mut self,
        tenant: Uuid,
        collection: &str,
        token: Option<&str>,
        current: HashMap<Uuid, u64>,
        order: &[Uuid],
        now: DateTime<Utc>,
    ) -> Result<String, DeltaError> {
        self.gc(now);
        let entries = match token {
            None => order.iter().map(|id| Entry::Changed(*id)).collect(),
            Some(t) => {
                let old = self.tokens.get(t).ok_or(DeltaError::ResyncRequired)?;
                if old.tenant != tenant || old.collection != collection || now - old.created > self.lifetime() {
                    return Err(DeltaError::ResyncRequired);
                }
                let mut entries: Vec<Entry> = order
                    .iter()
                    .filter(|id| old.state.get(id) != current.get(id))
                    .map(|id| Entry::Changed(*id))
                    .collect();
                let mut removed: Vec<Uuid> = old.state.keys().filter(|id| !current.contains_key(id)).copied().collect();
                removed.sort();
                entries.extend(removed.into_iter().map(Entry::Removed));
                entries
            }
        };
        let id = crate::state::opaque("", 18);
        self.rounds.insert(
            id.clone(),
            Round { tenant, collection: collection.to_string(), created: now, entries, next_state: current },
        );
        Ok(id)
    }

    /// A round that is empty by construction: `$deltatoken=latest` starts from now.
    pub(crate) fn latest(
        &mut self,
        tenant: Uuid,
        collection: &str,
        current: HashMap<Uuid, u64>,
        now: DateTime<Utc>,
    ) -> String {
        self.issue(tenant, collection, current, now)
    }

    pub(crate) fn page(
        &self,
        round: &str,
        tenant: Uuid,
        collection: &str,
        offset: usize,
        size: usize,
    ) -> Result<(Vec<Entry>, bool), DeltaError> {
        let r = self.rounds.get(round).ok_or(DeltaError::ResyncRequired)?;
        if r.tenant != tenant || r.collection != collection {
            return Err(DeltaError::ResyncRequired);
        }
        let end = offset.saturating_add(size).min(r.entries.len());
        let slice = r.entries.get(offset.min(end)..end).unwrap_or_default().to_vec();
        Ok((slice, end >= r.entries.len()))
    }

    /// Ends a round and issues the delta token for the state the client now has.
    pub(crate) fn finish(&mut self, round: &str, now: DateTime<Utc>) -> Result<String, DeltaError> {
        let r = self.rounds.remove(round).ok_or(DeltaError::ResyncRequired)?;
        Ok(self.issue(r.tenant, &r.collection, r.next_state, now))
    }

    fn issue(&mut self, tenant: Uuid, collection: &str, state: HashMap<Uuid, u64>, now: DateTime<Utc>) -> String {
        let id = crate::state::opaque("", 24);
        self.tokens.insert(id.clone(), Token { tenant, collection: collection.to_string(), created: now, state });
        // Keep only the newest few tokens per tenant and collection: clients only use their latest.
        let mut mine: Vec<(DateTime<Utc>, String)> = self
            .tokens
            .iter()
            .filter(|(_, t)| t.tenant == tenant && t.collection == collection)
            .map(|(k, t)| (t.created, k.clone()))
            .collect();
        if mine.len() > 4 {
            mine.sort();
            for (_, k) in mine.iter().take(mine.len() - 4) {
                self.tokens.remove(k);
            }
        }
        id
    }

    /// Forgets every token, so that the next delta request must resync.
    pub(crate) fn expire_all(&mut self) {
        self.tokens.clear();
        self.rounds.clear();
    }

    fn gc(&mut self, now: DateTime<Utc>) {
        if self.rounds.len() > 5000 {
            self.rounds.retain(|_, r| now - r.created < Duration::hours(1));
        }
    }
}

impl Env<'_> {
    /// Serves one page of a delta round, starting the round on its first request.
    pub(super) fn delta(
        &self,
        collection: &str,
        items: Vec<(Uuid, Result<Value, GraphError>)>,
    ) -> Result<GraphOk, GraphError> {
        let size = 200usize.min(self.q.top.unwrap_or(200).max(1));
        let mut objects: HashMap<Uuid, Value> = HashMap::with_capacity(items.len());
        let mut order = Vec::with_capacity(items.len());
        for (id, v) in items {
            objects.insert(id, v?);
            order.push(id);
        }
        let resync = || {
            GraphError::new(
                410,
                "resyncRequired",
                "Resync required. Replace any local items with the server's version (including deletes) if you're sure that the service was up to date with your local changes when you last sync'd. Upload any local changes that the server doesn't know about.",
            )
        };
        let mut store = self.sim.delta.lock().unwrap_or_else(|e| e.into_inner());
        let context = collection.to_string();
        let (round, offset) = match (&self.q.skiptoken, &self.q.deltatoken) {
            (Some(skip), _) => {
                let text =
                    String::from_utf8(URL_SAFE_NO_PAD.decode(skip).map_err(|_| resync())?).map_err(|_| resync())?;
                let (round, offset) = text.split_once(':').ok_or_else(resync)?;
                (round.to_string(), offset.parse::<usize>().map_err(|_| resync())?)
            }
            (None, Some(token)) if token.eq_ignore_ascii_case("latest") => {
                let state = objects.iter().map(|(k, v)| (*k, fingerprint(v))).collect();
                let new = store.latest(self.tenant.id, collection, state, self.now);
                return Ok(GraphOk::json(json!({
                    "@odata.context": self.context(&context),
                    "@odata.deltaLink": self.delta_link(&new),
                    "value": [],
                })));
            }
            (None, token) => {
                let state = objects.iter().map(|(k, v)| (*k, fingerprint(v))).collect();
                let round = store
                    .start(self.tenant.id, collection, token.as_deref(), state, &order, self.now)
                    .map_err(|DeltaError::ResyncRequired| resync())?;
                (round, 0)
            }
        };
        let (entries, last) = store.page(&round, self.tenant.id, collection, offset, size).map_err(|_| resync())?;
        let value: Vec<Value> = entries
            .iter()
            .map(|e| match e {
                Entry::Changed(id) => objects
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| json!({"id": id.to_string(), "@removed": {"reason": "deleted"}})),
                Entry::Removed(id) => json!({"id": id.to_string(), "@removed": {"reason": "deleted"}}),
            })
            .collect();
        let mut body = json!({ "@odata.context": self.context(&context) });
        if last {
            let token = store.finish(&round, self.now).map_err(|_| resync())?;
            // The round is finished and its state consumed, but the answer never reaches the
            // client: its retry of this page finds no round and is told to resync.
            if self.faults.delta_last_page_lost
                && self.faults.applies_to(&self.tenant.id.to_string())
                && store.lost_last_pages.insert((self.tenant.id, collection.to_string()))
            {
                return Err(super::injected_graph_error(503, None));
            }
            body["@odata.deltaLink"] = json!(self.delta_link(&token));
        } else {
            let skip = URL_SAFE_NO_PAD.encode(format!("{round}:{}", offset + entries.len()));
            body["@odata.nextLink"] = json!(self.next_link(&skip));
        }
        body["value"] = Value::Array(value);
        Ok(GraphOk::json(body))
    }

    fn delta_link(&self, token: &str) -> String {
        let kept = self.q.raw.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("$deltatoken"));
        let query =
            odata_query(kept.map(|(k, v)| (k.as_str(), v.as_str())).chain(std::iter::once(("$deltatoken", token))));
        format!("{}/{}/{}?{query}", self.graph_base(), self.version, self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_and_removals_are_found() {
        let mut store = DeltaStore::default();
        let now = Utc::now();
        let (t, a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let first: HashMap<Uuid, u64> = [(a, 1), (b, 2)].into();
        let round = store.start(t, "users", None, first.clone(), &[a, b], now).unwrap();
        let (entries, last) = store.page(&round, t, "users", 0, 10).unwrap();
        assert_eq!(entries.len(), 2);
        assert!(last);
        let token = store.finish(&round, now).unwrap();
        let second: HashMap<Uuid, u64> = [(a, 1), (c, 3)].into();
        let round = store.start(t, "users", Some(&token), second, &[a, c], now).unwrap();
        let (entries, _) = store.page(&round, t, "users", 0, 10).unwrap();
        assert_eq!(entries, vec![Entry::Changed(c), Entry::Removed(b)]);
        assert_eq!(store.start(t, "groups", Some(&token), HashMap::new(), &[], now), Err(DeltaError::ResyncRequired));
        assert_eq!(
            store.start(t, "users", Some(&token), HashMap::new(), &[], now + Duration::days(8)),
            Err(DeltaError::ResyncRequired)
        );
    }
}
