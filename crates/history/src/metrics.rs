//! Metrics: JMESPath expressions over a dataprint.
//!
//! A metric is compiled once and evaluated against many dataprints. Each
//! evaluation sees the dataprint as it is, plus a top-level `now` string (the
//! caller's time, RFC 3339), and can use the extra functions listed in
//! [`crate::EXTRA_FUNCTIONS`] (`days_since`, `sub`, `unique`, ...).
//! Evaluation reads the dataprint in place (see `eval.rs`), and the counts
//! that many metrics take over the same collection are computed in one pass.
//!
//! A metric depends on the collections it reads. When one of them is absent
//! from the dataprint ("not known in this run") the metric's value is null,
//! not 0: a count over unknown data is unknown.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::dataprint::{Dataprint, check_schema};
use crate::error::HistoryError;
use crate::eval::{Ctx, Func, Node, Val, compile};
use crate::need::{Need, input_need};

/// A compiled JMESPath expression, evaluated in place over JSON.
///
/// It understands standard JMESPath (as the `jmespath` crate 0.5 does) plus
/// the functions of [`crate::EXTRA_FUNCTIONS`].
#[derive(Clone, PartialEq)]
pub struct Query {
    text: String,
    node: Node,
}

impl fmt::Debug for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Query").field(&self.text).finish()
    }
}

impl Query {
    /// Compiles an expression.
    ///
    /// # Errors
    ///
    /// Fails on a syntax error, an unknown function or a wrong number of
    /// arguments, with the message as the error text.
    pub fn new(text: &str) -> Result<Query, String> {
        let ast = jmespath::parse(text).map_err(|e| e.to_string())?;
        let node = compile(&ast)?;
        Ok(Query { text: text.to_owned(), node })
    }

    /// Evaluates the expression against any JSON document. `now` is what
    /// `days_since` and `days_until` measure from; without it they give
    /// null.
    ///
    /// # Errors
    ///
    /// Fails when a function gets an argument of the wrong type or a slice
    /// has a step of 0.
    pub fn search(&self, data: &Value, now: Option<DateTime<Utc>>) -> Result<Value, String> {
        let ctx = Ctx::new(now.map(|t| t.timestamp()));
        ctx.eval(&self.node, &Val::from_json(data)).map(|v| v.to_json()).map_err(|e| e.to_string())
    }
}

/// A compiled metric. It travels (to an agent that records history for the runs it does) as its
/// definition, and is compiled again on arrival.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "MetricSpec", into = "MetricSpec")]
pub struct Metric {
    name: String,
    query: String,
    description: String,
    unit: Option<String>,
    /// Each entry is a set of alternatives: the metric needs at least one of
    /// them present.
    requires: Vec<Vec<String>>,
    query_node: Query,
}

/// A metric's definition, as it travels.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricSpec {
    name: String,
    query: String,
    description: String,
    unit: Option<String>,
    requires: Vec<Vec<String>>,
}

impl From<Metric> for MetricSpec {
    fn from(m: Metric) -> MetricSpec {
        MetricSpec { name: m.name, query: m.query, description: m.description, unit: m.unit, requires: m.requires }
    }
}

impl TryFrom<MetricSpec> for Metric {
    type Error = HistoryError;

    fn try_from(spec: MetricSpec) -> Result<Metric, HistoryError> {
        let mut metric = Metric::new(&spec.name, &spec.query)?;
        metric.description = spec.description;
        metric.unit = spec.unit;
        metric.requires = spec.requires;
        Ok(metric)
    }
}

impl fmt::Debug for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metric")
            .field("name", &self.name)
            .field("query", &self.query)
            .field("unit", &self.unit)
            .field("requires", &self.requires)
            .finish_non_exhaustive()
    }
}

/// Whether a name is a snake_case id: a lowercase letter, then lowercase
/// letters, digits and underscores, at most 64 characters.
pub(crate) fn is_snake_case(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl Metric {
    /// Compiles a metric. The collections it requires are inferred from the
    /// `collections.<name>` paths of the expression; built-in and configured
    /// metrics may state them instead (`requires`).
    ///
    /// # Errors
    ///
    /// Fails when the name is not snake_case or the query does not compile.
    pub fn new(name: &str, query: &str) -> Result<Metric, HistoryError> {
        if !is_snake_case(name) {
            return Err(HistoryError::Metric {
                name: name.to_owned(),
                message: "names are snake_case ids (a-z, 0-9, _; starting with a letter)".into(),
            });
        }
        let compiled = Query::new(query).map_err(|message| HistoryError::Metric { name: name.to_owned(), message })?;
        let mut reads = BTreeSet::new();
        scan(&compiled.node, &mut reads);
        Ok(Metric {
            name: name.to_owned(),
            query: query.to_owned(),
            description: String::new(),
            unit: None,
            requires: reads.into_iter().map(|c| vec![c]).collect(),
            query_node: compiled,
        })
    }

    /// Sets the description shown in listings.
    #[must_use]
    pub(crate) fn with_description(mut self, description: &str) -> Metric {
        description.clone_into(&mut self.description);
        self
    }

    /// Sets the unit (for example `users`, `%`, `licences`).
    #[must_use]
    pub(crate) fn with_unit(mut self, unit: Option<&str>) -> Metric {
        self.unit = unit.map(str::to_owned);
        self
    }

    /// Replaces the inferred requirements. Each entry names a collection, or
    /// alternatives separated by `|` of which one must be present (for
    /// example `directoryRoles|roleAssignments`). An empty list means the
    /// metric is always evaluated.
    #[must_use]
    pub(crate) fn with_requires<S: AsRef<str>>(mut self, requires: &[S]) -> Metric {
        self.requires = requires
            .iter()
            .map(|r| r.as_ref().split('|').map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()).collect::<Vec<_>>())
            .filter(|alternatives| !alternatives.is_empty())
            .collect();
        self
    }

    /// The metric's snake_case name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The JMESPath expression.
    pub fn query(&self) -> &str {
        &self.query
    }

    /// What the metric measures.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The unit of the value, if any.
    pub fn unit(&self) -> Option<&str> {
        self.unit.as_deref()
    }

    /// The collections the metric needs, one entry per requirement, with
    /// alternatives joined by `|`.
    pub fn requires(&self) -> Vec<String> {
        self.requires.iter().map(|alt| alt.join("|")).collect()
    }

    /// Every collection the metric can read, or `None` when it may read collections it does not
    /// name (`values(collections)`, `*`, `@` at the top level): a caller that loads a dataprint
    /// only to evaluate metrics can leave every other collection unread and get the same values.
    pub fn reads(&self) -> Option<BTreeSet<String>> {
        let mut reads = BTreeSet::new();
        reads_from(&self.query_node.node, true, &mut reads).then_some(reads)
    }

    /// The members of `collection`'s elements the metric can read, when it reads that collection
    /// only by counting it (`length(collections.NAME)`, `keys(collections.NAME)`) or counting its
    /// elements that pass a test (`length(values(collections.NAME)[?test])`) whose test reads
    /// members of the element by name: evaluated on a copy of the collection whose elements keep
    /// only these members (each whole), the metric has the same value. `None` when it may read the
    /// collection any other way, the element whole among them (`@`, `*`, `keys(@)`).
    pub fn element_fields(&self, collection: &str) -> Option<BTreeSet<String>> {
        self.element_needs(collection).map(|needs| needs.into_keys().collect())
    }

    /// What the metric needs of each of those members ([`Need`]), where it reads the collection as
    /// [`Metric::element_fields`] allows: evaluated on a copy of the collection whose elements keep
    /// only these members, each as [`Need::apply`] makes it, the metric has the same value.
    pub fn element_needs(&self, collection: &str) -> Option<BTreeMap<String, Need>> {
        let mut needs = Need::nothing();
        if self.reads().is_none() || !projectable(&self.query_node.node, true, collection, &mut needs) {
            return None;
        }
        match needs {
            Need::Members { members, .. } => Some(members),
            _ => None,
        }
    }

    /// Whether the value may depend on when it is computed as well as on the dataprint: the
    /// expression measures time (`days_since`, `days_until`) or reads `now`. A metric that does not,
    /// and whose collections did not change, keeps its value.
    pub fn uses_now(&self) -> bool {
        uses_now(&self.query_node.node)
    }

    fn requirements_met(&self, dp: &Dataprint<'_>) -> bool {
        self.requires.iter().all(|alternatives| alternatives.iter().any(|c| dp.collection(c).is_some()))
    }
}

/// Collects the collections an expression reads through
/// `collections.<name>`; these become the metric's default requirements.
fn scan(node: &Node, reads: &mut BTreeSet<String>) {
    match node {
        Node::Subexpr(lhs, rhs) => {
            if let (Node::Field(l, _), Node::Field(r, _)) = (&**lhs, &**rhs)
                && l == "collections"
            {
                reads.insert(r.clone());
                return;
            }
            scan(lhs, reads);
            scan(rhs, reads);
        }
        Node::Projection(a, b)
        | Node::CountProjection(a, b)
        | Node::Condition(a, b)
        | Node::Comparison(_, a, b)
        | Node::And(a, b)
        | Node::Or(a, b) => {
            scan(a, reads);
            scan(b, reads);
        }
        Node::ObjectValues(a) | Node::Flatten(a) | Node::Not(a) | Node::Expref(a) => {
            scan(a, reads);
        }
        Node::MultiList(items) | Node::Function(_, items) => {
            items.iter().for_each(|a| scan(a, reads));
        }
        Node::MultiHash(items) => items.iter().for_each(|(_, a)| scan(a, reads)),
        Node::Identity | Node::Field(..) | Node::Index(_) | Node::Slice { .. } | Node::Literal(_) => {}
    }
}

/// See [`Metric::uses_now`]; a field named `now` anywhere counts, read from the document or not.
fn uses_now(node: &Node) -> bool {
    match node {
        Node::Function(Func::DaysSince | Func::DaysUntil, _) => true,
        Node::Field(name, _) => name == "now",
        Node::Identity | Node::Index(_) | Node::Slice { .. } | Node::Literal(_) => false,
        Node::Subexpr(a, b)
        | Node::Projection(a, b)
        | Node::CountProjection(a, b)
        | Node::Condition(a, b)
        | Node::Comparison(_, a, b)
        | Node::And(a, b)
        | Node::Or(a, b) => uses_now(a) || uses_now(b),
        Node::ObjectValues(a) | Node::Flatten(a) | Node::Not(a) | Node::Expref(a) => uses_now(a),
        Node::MultiList(items) | Node::Function(_, items) => items.iter().any(uses_now),
        Node::MultiHash(items) => items.iter().any(|(_, a)| uses_now(a)),
    }
}

/// Adds to `reads` the collections `node` reads through `collections.<name>` from the document,
/// and says whether those are all it can read. `at_root` tells whether the node is evaluated against
/// the document itself: only the document's own `collections` member holds collections, and only
/// `@` (directly, or under `*` and the like) or `collections` taken whole hands it on unnamed. What
/// a right-hand side or an expression reference sees is part of a value read already.
fn reads_from(node: &Node, at_root: bool, reads: &mut BTreeSet<String>) -> bool {
    match node {
        Node::Identity => !at_root,
        Node::Field(name, _) => !(at_root && name == "collections"),
        Node::Index(_) | Node::Slice { .. } | Node::Literal(_) => true,
        Node::Subexpr(lhs, rhs) => {
            if at_root
                && let (Node::Field(l, _), Node::Field(r, _)) = (&**lhs, &**rhs)
                && l == "collections"
            {
                reads.insert(r.clone());
                return true;
            }
            reads_from(lhs, at_root, reads) & reads_from(rhs, false, reads)
        }
        Node::Projection(lhs, rhs) | Node::CountProjection(lhs, rhs) => {
            reads_from(lhs, at_root, reads) & reads_from(rhs, false, reads)
        }
        Node::Condition(a, b) | Node::Comparison(_, a, b) | Node::And(a, b) | Node::Or(a, b) => {
            reads_from(a, at_root, reads) & reads_from(b, at_root, reads)
        }
        Node::ObjectValues(a) | Node::Flatten(a) | Node::Not(a) => reads_from(a, at_root, reads),
        Node::Expref(a) => reads_from(a, false, reads),
        Node::MultiList(items) | Node::Function(_, items) => {
            items.iter().fold(true, |all, a| reads_from(a, at_root, reads) & all)
        }
        Node::MultiHash(items) => items.iter().fold(true, |all, (_, a)| reads_from(a, at_root, reads) & all),
    }
}

/// Whether `node` is `collections.NAME`, read from the document.
fn is_collection(node: &Node, name: &str) -> bool {
    matches!(node, Node::Subexpr(l, r)
        if matches!(&**l, Node::Field(c, _) if c == "collections") && matches!(&**r, Node::Field(n, _) if n == name))
}

/// See [`Metric::element_fields`]: whether `node` reads the collection `name` only in the ways that
/// method allows, joining to `needs` what it needs of its elements ([`Metric::element_needs`]).
/// `at_root` is as in [`reads_from`].
fn projectable(node: &Node, at_root: bool, name: &str, needs: &mut Need) -> bool {
    match node {
        // `length(values(collections.NAME)[?test])`, or `[*].expression`: each element's test, or
        // whether the expression is null on it, decides.
        Node::CountProjection(lhs, rhs)
            if at_root
                && matches!(&**lhs, Node::Function(Func::Values, a) if matches!(a.as_slice(), [c] if is_collection(c, name))) =>
        {
            let need = match &**rhs {
                // The element itself is the result, counted whatever it holds: only the test reads it.
                Node::Condition(test, then) if matches!(**then, Node::Identity) => input_need(test, Need::Truth),
                other => input_need(other, Need::Whole),
            };
            // Only members of the element may be read, never the element itself (its emptiness
            // included): a copy keeps only those.
            match need {
                need @ Need::Members { truth: false, .. } => {
                    *needs = std::mem::replace(needs, Need::nothing()).join(need);
                    true
                }
                _ => false,
            }
        }
        // The collection's size and ids: every element is kept, under its id.
        Node::Function(Func::Length | Func::Keys, args)
            if at_root && matches!(args.as_slice(), [c] if is_collection(c, name)) =>
        {
            true
        }
        _ if at_root && is_collection(node, name) => false,
        // Another collection, read as the metric likes.
        Node::Subexpr(lhs, rhs)
            if at_root
                && matches!(&**lhs, Node::Field(c, _) if c == "collections")
                && matches!(&**rhs, Node::Field(..)) =>
        {
            true
        }
        Node::Identity => !at_root,
        Node::Field(field, _) => !(at_root && field == "collections"),
        Node::Index(_) | Node::Slice { .. } | Node::Literal(_) => true,
        Node::Subexpr(lhs, rhs) | Node::Projection(lhs, rhs) | Node::CountProjection(lhs, rhs) => {
            projectable(lhs, at_root, name, needs) & projectable(rhs, false, name, needs)
        }
        Node::Condition(a, b) | Node::Comparison(_, a, b) | Node::And(a, b) | Node::Or(a, b) => {
            projectable(a, at_root, name, needs) & projectable(b, at_root, name, needs)
        }
        Node::ObjectValues(a) | Node::Flatten(a) | Node::Not(a) => projectable(a, at_root, name, needs),
        Node::Expref(a) => projectable(a, false, name, needs),
        Node::MultiList(items) | Node::Function(_, items) => {
            items.iter().fold(true, |all, a| projectable(a, at_root, name, needs) & all)
        }
        Node::MultiHash(items) => items.iter().fold(true, |all, (_, a)| projectable(a, at_root, name, needs) & all),
    }
}

/// The value of one metric for one dataprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricValue {
    /// The metric's name.
    pub name: String,
    /// The result; null when a required collection is absent or on error.
    pub value: Value,
    /// Why the metric could not be computed, if it could not.
    #[serde(default)]
    pub error: Option<String>,
}

/// The document metrics see: the dataprint's top-level fields, borrowed,
/// plus `now`.
fn document<'a>(dp: &Dataprint<'a>, now: &'a str) -> Val<'a> {
    let mut root: BTreeMap<String, Val<'a>> = dp.root().iter().map(|(k, v)| (k.clone(), Val::from_json(v))).collect();
    root.insert("now".to_owned(), Val::Str(std::borrow::Cow::Borrowed(now)));
    Val::Obj(root)
}

/// Evaluates metrics against one dataprint at time `now`.
///
/// The result has one entry per metric, in order. A metric whose required
/// collection is absent yields null without error; a metric that fails to
/// evaluate yields null with the error. A document that is not a supported
/// dataprint gives every metric that error.
pub fn evaluate(metrics: &[Metric], dataprint: &Value, now: DateTime<Utc>) -> Vec<MetricValue> {
    let dp = match check_schema(dataprint) {
        Ok(dp) => dp,
        Err(e) => {
            return metrics
                .iter()
                .map(|m| MetricValue { name: m.name.clone(), value: Value::Null, error: Some(e.to_string()) })
                .collect();
        }
    };
    let now_text = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let doc = document(&dp, &now_text);
    // One context for all metrics, so that what it learns about the
    // document's collections is learnt once, and the counts over
    // collections are computed together.
    let ctx = Ctx::new(Some(now.timestamp()));
    let ready: Vec<&Node> = metrics.iter().filter(|m| m.requirements_met(&dp)).map(|m| &m.query_node.node).collect();
    ctx.prepare(&ready, &doc);
    metrics
        .iter()
        .map(|m| {
            if !m.requirements_met(&dp) {
                return MetricValue { name: m.name.clone(), value: Value::Null, error: None };
            }
            match ctx.eval(&m.query_node.node, &doc) {
                Ok(v) => MetricValue { name: m.name.clone(), value: v.to_json(), error: None },
                Err(e) => MetricValue { name: m.name.clone(), value: Value::Null, error: Some(e.to_string()) },
            }
        })
        .collect()
}

/// The object `--where` filters are evaluated against: metric names mapped
/// to their values, for example `{"global_admins": 3, "security_defaults":
/// false}`.
pub fn metric_object(values: &[MetricValue]) -> Value {
    Value::Object(values.iter().map(|v| (v.name.clone(), v.value.clone())).collect::<Map<String, Value>>())
}

/// A compiled `--where` expression that selects tenants by their metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct WhereFilter {
    query: Query,
}

impl WhereFilter {
    /// Compiles a filter.
    ///
    /// # Errors
    ///
    /// Fails when the expression does not compile.
    pub fn new(expression: &str) -> Result<WhereFilter, HistoryError> {
        Query::new(expression).map(|query| WhereFilter { query }).map_err(HistoryError::Where)
    }

    /// Whether a tenant's metric object (see [`metric_object`]) is selected:
    /// the expression's result is truthy in the JMESPath sense (not null,
    /// false, an empty string, array or object).
    ///
    /// # Errors
    ///
    /// Fails when the expression cannot be evaluated, for example a function
    /// called with the wrong type.
    pub fn matches(&self, metrics: &Value) -> Result<bool, HistoryError> {
        let ctx = Ctx::new(None);
        ctx.eval(&self.query.node, &Val::from_json(metrics))
            .map(|v| v.is_truthy())
            .map_err(|e| HistoryError::Where(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compiled_expressions_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Metric>();
        shareable::<Query>();
        shareable::<WhereFilter>();
    }

    #[test]
    fn names_are_snake_case() {
        assert!(is_snake_case("global_admins"));
        assert!(is_snake_case("a1"));
        assert!(!is_snake_case("GlobalAdmins"));
        assert!(!is_snake_case("1a"));
        assert!(!is_snake_case("a-b"));
        assert!(!is_snake_case(""));
        assert!(Metric::new("Bad Name", "a").is_err());
        assert!(Metric::new("ok", "a[").is_err());
    }

    #[test]
    fn inferred_requirements() {
        let m = Metric::new("x", "length(values(collections.users)[?contains(keys(collections.groups), id)])").unwrap();
        assert_eq!(m.requires(), ["groups", "users"]);
        let all = Metric::new("y", "length(keys(collections))").unwrap();
        assert!(all.requires().is_empty());
        let explicit = m.with_requires(&["directoryRoles|roleAssignments"]);
        assert_eq!(explicit.requires(), ["directoryRoles|roleAssignments"]);
    }

    #[test]
    fn reads_names_every_collection_or_says_it_cannot() {
        let reads = |q: &str| Metric::new("x", q).unwrap().reads().map(|r| r.into_iter().collect::<Vec<_>>());
        assert_eq!(reads("length(collections.users)"), Some(vec!["users".to_string()]));
        // Inside a filter, `collections.groups` is read from each user, not from the document.
        assert_eq!(
            reads("length(values(collections.users)[?contains(keys(collections.groups), id)])"),
            Some(vec!["users".to_string()])
        );
        assert_eq!(
            reads("max_by(values(collections.secureScores), &createdDateTime) | currentScore"),
            Some(vec!["secureScores".to_string()])
        );
        assert_eq!(reads("summary.users"), Some(vec![]));
        for wide in [
            "length(keys(collections))",
            "length(values(collections)[0])",
            "length(*.devices)",
            "length(@.collections.devices)",
            "map(&collections.devices, [@])",
            "{c: collections}.c.devices",
            "collections.*",
            "collections.users || collections",
        ] {
            assert_eq!(reads(wide), None, "{wide}");
        }
        let now = |q: &str| Metric::new("x", q).unwrap().uses_now();
        assert!(now("length(values(collections.users)[?days_since(createdDateTime) > `90`])"));
        assert!(now("days_until(summary.expiry)"));
        assert!(now("now"));
        assert!(!now("length(values(collections.users)[?accountEnabled])"));
        // Every built-in metric names what it reads, so that a run can leave the rest unread.
        for m in crate::builtin_metrics() {
            assert!(m.reads().is_some(), "{}", m.name());
        }
    }

    #[test]
    fn element_fields_are_what_counts_read_of_each_element() {
        let fields =
            |q: &str| Metric::new("x", q).unwrap().element_fields("users").map(|f| f.into_iter().collect::<Vec<_>>());
        assert_eq!(fields("length(collections.users)"), Some(vec![]));
        assert_eq!(fields("length(keys(collections.users))"), Some(vec![]));
        assert_eq!(fields("length(collections.groups)"), Some(vec![]), "another collection is not this one");
        assert_eq!(
            fields("length(values(collections.users)[?accountEnabled == `true` && signInActivity.lastSignInDateTime])"),
            Some(vec!["accountEnabled".to_string(), "signInActivity".into()])
        );
        assert_eq!(
            fields("length(values(collections.users)[?length(assignedLicenses || `[]`) > `0`])"),
            Some(vec!["assignedLicenses".to_string()])
        );
        assert_eq!(
            fields("length(values(collections.users)[*].signInActivity)"),
            Some(vec!["signInActivity".to_string()])
        );
        // A projection inside a test reads its left-hand side whole.
        assert_eq!(
            fields("length(values(collections.users)[?assignedLicenses[*].skuId])"),
            Some(vec!["assignedLicenses".to_string()])
        );
        // Inside a test, `collections.groups` is a member of the user.
        assert_eq!(
            fields("length(values(collections.users)[?contains(keys(collections.groups), id)])"),
            Some(vec!["collections".to_string(), "id".into()])
        );
        for whole in [
            "collections.users",
            "values(collections.users)",
            "length(values(collections.users)[?length(@) > `3`])",
            "length(values(collections.users)[?keys(@)])",
            "length(values(collections.users)[?to_string(@) == 'x'])",
            "length(values(collections.users)[*].*)",
            "max_by(values(collections.users), &createdDateTime)",
            "length(values(collections.users)[0])",
            "collections.users.u1.displayName",
            "length(keys(collections))",
        ] {
            assert_eq!(fields(whole), None, "{whole}");
        }
        let stale = crate::builtin_metrics().into_iter().find(|m| m.name() == "stale_accounts").unwrap();
        assert_eq!(
            stale.element_fields("users").map(|f| f.into_iter().collect::<Vec<_>>()),
            Some(vec!["accountEnabled".to_string(), "createdDateTime".into(), "signInActivity".into()])
        );
    }

    #[test]
    fn where_truthiness() {
        let f = WhereFilter::new("global_admins > `2` && !security_defaults").unwrap();
        assert!(f.matches(&json!({"global_admins": 3, "security_defaults": false})).unwrap());
        assert!(!f.matches(&json!({"global_admins": 3, "security_defaults": true})).unwrap());
        assert!(!f.matches(&json!({"global_admins": null, "security_defaults": false})).unwrap());
        assert!(WhereFilter::new("a[").is_err());
        assert!(WhereFilter::new("length(`1`)").unwrap().matches(&json!({})).is_err());
    }
}
