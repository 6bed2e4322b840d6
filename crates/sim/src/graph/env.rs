//! The context of one Graph request and the response shapes every handler shares: the `@odata.context`
//! of an answer, single entities, paged collections with `$filter`, `$search`, `$orderby`, `$count`,
//! `$top` and `$skiptoken`, next links (and the faults that corrupt them), and `$select` applied after a
//! filter matched full objects.

use serde_json::{Value, json};

use super::objects;
use super::query::{Filter, Query, apply_select, check_filter, encode_skiptoken, odata_query, parse_filter};
use super::{GraphBody, GraphOk};
use crate::errors::GraphError;
use crate::state::{AccessClaims, Sim};
use crate::world::{Tenant, World};

/// Everything a handler needs to answer one request.
pub(super) struct Env<'a> {
    pub(super) sim: &'a Sim,
    pub(super) world: &'a World,
    pub(super) tenant: &'a Tenant,
    pub(super) claims: &'a AccessClaims,
    pub(super) q: &'a Query,
    pub(super) version: &'a str,
    pub(super) path: &'a str,
    pub(super) now: chrono::DateTime<chrono::Utc>,
    pub(super) faults: &'a crate::faults::FaultConfig,
}

impl Env<'_> {
    pub(super) fn context(&self, name: &str) -> String {
        format!("{}/{}/$metadata#{name}", self.graph_base(), self.version)
    }

    pub(super) fn graph_base(&self) -> &str {
        &self.sim.base_url
    }

    /// The link to the next page: same path and options, with a new `$skiptoken`.
    pub(super) fn next_link(&self, token: &str) -> String {
        // A delta round's pages are addressed by the skiptoken alone, so the old delta token is dropped.
        let kept = self.q.raw.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("$deltatoken"));
        let kept = kept.map(|(k, v)| (k.as_str(), v.as_str()));
        if self.faults.looping_next_link {
            let same = self.q.skiptoken.as_deref().map(|t| ("$skiptoken", t));
            return format!("{}/{}/{}?{}", self.graph_base(), self.version, self.path, odata_query(kept.chain(same)));
        }
        let base = if self.faults.foreign_next_link { "https://graph.attacker.example" } else { self.graph_base() };
        let query = odata_query(kept.chain(std::iter::once(("$skiptoken", token))));
        format!("{base}/{}/{}?{query}", self.version, self.path)
    }

    pub(super) fn filter(&self, allowed: &[&str], resource: &str) -> Result<Option<Filter>, GraphError> {
        match &self.q.filter {
            None => Ok(None),
            Some(text) => {
                let f = parse_filter(text)?;
                check_filter(&f, self.q, allowed, resource)?;
                Ok(Some(f))
            }
        }
    }

    /// Pages a collection: filters, counts and slices, building JSON only for what it must.
    pub(super) fn list<T>(
        &self,
        items: &[T],
        context: &str,
        default: usize,
        max: usize,
        filter: Option<&Filter>,
        to_json: impl Fn(&T) -> Result<Value, GraphError>,
    ) -> Result<GraphOk, GraphError> {
        let size = self.q.page_size(default, max)?;
        let offset = self.q.offset()?;
        let search = self.q.search.as_ref().map(|s| search_term(s));
        let (page, total) = if filter.is_some() || search.is_some() || self.q.orderby.is_some() {
            let mut all: Vec<Value> = Vec::new();
            for item in items {
                let full = to_json(item)?;
                if filter.is_some_and(|f| !f.matches(&full)) {
                    continue;
                }
                if let Some(Some((prop, term))) = &search {
                    let hit = full
                        .get(prop.as_str())
                        .and_then(Value::as_str)
                        .is_some_and(|v| v.to_ascii_lowercase().contains(term.as_str()));
                    if !hit {
                        continue;
                    }
                }
                all.push(full);
            }
            if let Some(order) = &self.q.orderby {
                let (prop, desc) = match order.split_once(' ') {
                    Some((p, d)) => (p.to_string(), d.eq_ignore_ascii_case("desc")),
                    None => (order.clone(), false),
                };
                all.sort_by(|a, b| {
                    let (x, y) = (a.get(&prop).map(Value::to_string), b.get(&prop).map(Value::to_string));
                    if desc { y.cmp(&x) } else { x.cmp(&y) }
                });
            }
            let total = all.len();
            (all.into_iter().skip(offset).take(size).collect::<Vec<_>>(), total)
        } else {
            let total = items.len();
            let page = items.iter().skip(offset).take(size).map(&to_json).collect::<Result<Vec<_>, _>>()?;
            (page, total)
        };
        let mut body = json!({ "@odata.context": self.context(context) });
        if self.q.count && self.q.eventual && offset == 0 {
            body["@odata.count"] = json!(total);
        }
        let end = offset + page.len();
        if end < total {
            body["@odata.nextLink"] = json!(self.next_link(&encode_skiptoken(end)));
        }
        body["value"] = Value::Array(page);
        // Keep the documented key order: context, count, nextLink, value.
        if let Some(next) = body.as_object_mut().and_then(|o| o.remove("@odata.nextLink")) {
            let value = body.as_object_mut().and_then(|o| o.remove("value")).unwrap_or(Value::Null);
            body["@odata.nextLink"] = next;
            body["value"] = value;
        }
        Ok(GraphOk::json(body))
    }

    pub(super) fn single(&self, context: &str, mut v: Value) -> GraphOk {
        if let Value::Object(map) = &mut v {
            let mut out = serde_json::Map::new();
            out.insert("@odata.context".into(), json!(self.context(context)));
            out.extend(std::mem::take(map));
            return GraphOk::json(Value::Object(out));
        }
        GraphOk::json(v)
    }

    /// Applies `$select` to the values of a page built from full objects (after `$filter` matched them).
    pub(super) fn reselect(
        &self,
        mut ok: GraphOk,
        known: &[&str],
        type_name: &str,
        default_users: bool,
    ) -> Result<GraphOk, GraphError> {
        if let GraphBody::Json(body) = &mut ok.body
            && let Some(Value::Array(items)) = body.get_mut("value")
        {
            for item in items.iter_mut() {
                let v = std::mem::take(item);
                *item = match &self.q.select {
                    Some(sel) => apply_select(v, Some(sel), known, type_name)?,
                    None if default_users => objects::user_default(v),
                    None => v,
                };
            }
        }
        Ok(ok)
    }
}

/// `$search="displayName:term"` as (property, lowercase term).
fn search_term(s: &str) -> Option<(String, String)> {
    let inner = s.trim().trim_matches('"');
    let (prop, term) = inner.split_once(':')?;
    Some((prop.trim().to_string(), term.trim().to_ascii_lowercase()))
}
