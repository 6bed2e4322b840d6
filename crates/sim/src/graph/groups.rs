//! Groups: the collection, its delta rounds, one group, and its direct and transitive members.

use serde_json::json;
use uuid::Uuid;

use super::GraphOk;
use super::env::Env;
use super::objects;
use super::query::apply_select;
use crate::errors::GraphError;

/// `GET /groups`, with `$expand=members` (at most 20 of them, as Graph does).
pub(super) fn list(env: &Env<'_>) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    let f = env.faults;
    let filter = env.filter(&["displayName", "securityEnabled", "mailEnabled", "id", "groupTypes"], "Group")?;
    let expand_members = env.q.expand.as_deref().is_some_and(|e| e.eq_ignore_ascii_case("members"));
    if let Some(e) = &env.q.expand
        && !expand_members
    {
        return Err(GraphError::bad_request(format!(
            "Could not find a property named '{}' on type 'microsoft.graph.group'.",
            crate::identity::truncate(e, 80)
        )));
    }
    env.list(&t.groups, "groups", 100, 999, filter.as_ref(), |g| {
        let mut v = objects::group(g, t, f);
        if expand_members {
            v["members"] =
                json!(g.members.iter().filter_map(|m| objects::member_ref(t, *m, f)).take(20).collect::<Vec<_>>());
        }
        apply_select(v, env.q.select.as_deref(), objects::GROUP_PROPERTIES, "group")
    })
}

/// `GET /groups/delta`, with `members@delta` when `$select` asks for `members`.
pub(super) fn delta(env: &Env<'_>) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    let f = env.faults;
    let with_members = env.q.select.as_ref().is_some_and(|s| s.iter().any(|p| p.eq_ignore_ascii_case("members")));
    let items = t
        .groups
        .iter()
        .map(|g| {
            let mut v = objects::group(g, t, f);
            if with_members {
                v["members@delta"] = json!(g.members.iter().map(|m| json!({"@odata.type": if t.user(*m).is_some() { "#microsoft.graph.user" } else { "#microsoft.graph.group" }, "id": m.to_string()})).collect::<Vec<_>>());
            }
            let sel: Option<Vec<String>> = env.q.select.as_ref().map(|s| s.iter().filter(|p| !p.eq_ignore_ascii_case("members")).cloned().chain(std::iter::once("members@delta".to_string())).collect());
            let mut known: Vec<&str> = objects::GROUP_PROPERTIES.to_vec();
            known.push("members@delta");
            (g.id, apply_select(v, sel.as_deref(), &known, "group"))
        })
        .collect();
    env.delta("groups", items)
}

/// `GET /groups/{id}`.
pub(super) fn get(env: &Env<'_>, id: &str) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    let f = env.faults;
    let g = Uuid::parse_str(id).ok().and_then(|i| t.group(i)).ok_or_else(|| GraphError::not_found(id))?;
    Ok(env.single(
        "groups/$entity",
        apply_select(objects::group(g, t, f), env.q.select.as_deref(), objects::GROUP_PROPERTIES, "group")?,
    ))
}

/// `GET /groups/{id}/members` and `/transitiveMembers`.
pub(super) fn members(env: &Env<'_>, id: &str, transitive: bool) -> Result<GraphOk, GraphError> {
    let t = env.tenant;
    let f = env.faults;
    let g = Uuid::parse_str(id).ok().and_then(|i| t.group(i)).ok_or_else(|| GraphError::not_found(id))?;
    let ids: Vec<Uuid> = if transitive { t.transitive_members(g.id) } else { g.members.clone() };
    env.list(&ids, "directoryObjects", 100, 999, None, |m| {
        objects::member_ref(t, *m, f).ok_or_else(|| GraphError::not_found(&m.to_string()))
    })
}
