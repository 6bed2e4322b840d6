//! What an expression needs of the values it reads, so that a collection can be handed to the
//! built-in metrics as a smaller copy that gives them the same values.
//!
//! [`crate::Metric::element_fields`] names the members of a collection's elements a metric reads,
//! each kept whole. That is the most a member can be asked for; the built-in metrics mostly ask for
//! less: `length(assignedLicenses || `[]`)` reads how many licences a user has, not what they are,
//! and `stale_accounts` reads whether a user's sign-in activity is empty and its last sign-in's
//! time, not the rest of it. Building the rest into trees was most of what the projection of users
//! cost a first run (docs/performance.md, "Inspection"). A [`Need`] says what an expression needs of
//! a value; [`Need::apply`] makes the smallest copy of a value that has it.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::eval::{Func, Node};

/// What an expression needs of a value it reads. The needs form a lattice ([`Need::join`]), from
/// needing nothing (an empty [`Need::Members`]) to needing the value whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Whether it is truthy, as JMESPath has it: not null, not false, not empty.
    Truth,
    /// Its length and whether it is truthy: an array's elements are not read.
    Shape,
    /// The members named, each as it says, when the value is an object; with `truth`, also whether
    /// the object is empty. A value that is not an object is kept whole.
    Members { members: BTreeMap<String, Need>, truth: bool },
    /// The value as it is.
    Whole,
}

impl Need {
    /// Needing nothing of the value.
    pub fn nothing() -> Need {
        Need::Members { members: BTreeMap::new(), truth: false }
    }

    /// The given members of an object, each whole: what [`crate::Metric::element_fields`] says.
    pub fn fields<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Need {
        Need::Members { members: names.into_iter().map(|n| (n.into(), Need::Whole)).collect(), truth: false }
    }

    fn is_nothing(&self) -> bool {
        matches!(self, Need::Members { members, truth: false } if members.is_empty())
    }

    /// What both needs need.
    pub fn join(self, other: Need) -> Need {
        if self.is_nothing() {
            return other;
        }
        if other.is_nothing() {
            return self;
        }
        match (self, other) {
            (Need::Whole, _) | (_, Need::Whole) => Need::Whole,
            (Need::Truth, Need::Truth) => Need::Truth,
            (Need::Truth | Need::Shape, Need::Truth | Need::Shape) => Need::Shape,
            (Need::Members { members, .. }, Need::Truth) | (Need::Truth, Need::Members { members, .. }) => {
                Need::Members { members, truth: true }
            }
            // An object's length counts members that are not read: it is kept whole.
            (Need::Members { .. }, Need::Shape) | (Need::Shape, Need::Members { .. }) => Need::Whole,
            (Need::Members { members: mut a, truth: ta }, Need::Members { members: b, truth: tb }) => {
                for (name, need) in b {
                    let joined = match a.remove(&name) {
                        Some(mine) => mine.join(need),
                        None => need,
                    };
                    a.insert(name, joined);
                }
                Need::Members { members: a, truth: ta || tb }
            }
        }
    }

    /// The smallest copy of `value` with what this needs: an array whose elements are not read
    /// becomes as many nulls; an object whose members are named keeps those, each as its need says,
    /// and, when its emptiness is read and none of them is there, one other member as null. Every
    /// value keeps its type, its null-ness and (where it is read) its length and truthiness.
    pub fn apply(&self, value: Value) -> Value {
        match (self, value) {
            (Need::Truth | Need::Shape, Value::Array(items)) => Value::Array(vec![Value::Null; items.len()]),
            (Need::Members { members, truth }, Value::Object(mut map)) => {
                let filler = if *truth { map.keys().next().cloned() } else { None };
                let mut kept = Map::new();
                for (name, need) in members {
                    if let Some(v) = map.remove(name) {
                        kept.insert(name.clone(), need.apply(v));
                    }
                }
                if let (true, Some(filler)) = (kept.is_empty(), filler) {
                    kept.insert(filler, Value::Null);
                }
                Value::Object(kept)
            }
            (_, value) => value,
        }
    }
}

/// A collection (an object of elements by key) whose elements keep what `element` needs of them.
pub fn project_elements(collection: Value, element: &Need) -> Value {
    match collection {
        Value::Object(elements) => {
            Value::Object(elements.into_iter().map(|(key, e)| (key, element.apply(e))).collect())
        }
        other => other,
    }
}

/// What `node`, evaluated on a value, needs of that value for its result to have what `demand`
/// asks of it. Whatever it cannot account for precisely it needs whole.
pub(crate) fn input_need(node: &Node, demand: Need) -> Need {
    match node {
        Node::Identity => demand,
        Node::Field(name, _) => {
            if demand.is_nothing() {
                return Need::nothing();
            }
            Need::Members { members: BTreeMap::from([(name.clone(), demand)]), truth: false }
        }
        Node::Literal(_) => Need::nothing(),
        // The right-hand side is evaluated on what the left-hand side gives.
        Node::Subexpr(lhs, rhs) => input_need(lhs, input_need(rhs, demand)),
        // `[?test]` applied to one value: the test decides whether `then` is its result.
        Node::Condition(test, then) => input_need(test, Need::Truth).join(input_need(then, demand)),
        Node::Comparison(_, a, b) => input_need(a, Need::Whole).join(input_need(b, Need::Whole)),
        // `a || b` is `a` when it is truthy and `b` otherwise; `a && b` is `a` when it is falsy.
        Node::And(a, b) | Node::Or(a, b) => input_need(a, demand.clone().join(Need::Truth)).join(input_need(b, demand)),
        Node::Not(a) => input_need(a, Need::Truth),
        // A string's length counts its characters, so `Shape` keeps strings whole; an object's
        // counts its members, so `Shape` keeps objects whole.
        Node::Function(Func::Length, args) => {
            args.iter().fold(Need::nothing(), |need, a| need.join(input_need(a, Need::Shape)))
        }
        // An expression reference is applied by its function to elements of another argument,
        // which that argument's own need (whole) covers: of the value itself it reads nothing.
        Node::Expref(_) => Need::nothing(),
        Node::Function(_, args) | Node::MultiList(args) => {
            args.iter().fold(Need::nothing(), |need, a| need.join(input_need(a, Need::Whole)))
        }
        Node::MultiHash(items) => {
            items.iter().fold(Need::nothing(), |need, (_, a)| need.join(input_need(a, Need::Whole)))
        }
        // The right-hand side of a projection is evaluated on the elements of what the left-hand
        // side gives, which is kept whole.
        Node::Projection(lhs, _) | Node::CountProjection(lhs, _) | Node::Flatten(lhs) | Node::ObjectValues(lhs) => {
            input_need(lhs, Need::Whole)
        }
        // An index or a slice reads the value itself.
        Node::Index(_) | Node::Slice { .. } => Need::Whole,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn needs_join_as_a_lattice() {
        let m = |names: &[&str], truth| Need::Members {
            members: names.iter().map(|n| (n.to_string(), Need::Whole)).collect(),
            truth,
        };
        assert_eq!(Need::nothing().join(Need::Shape), Need::Shape);
        assert_eq!(Need::Truth.join(Need::nothing()), Need::Truth);
        assert_eq!(Need::Truth.join(Need::Shape), Need::Shape);
        assert_eq!(m(&["a"], false).join(Need::Truth), m(&["a"], true));
        assert_eq!(m(&["a"], false).join(Need::Shape), Need::Whole);
        assert_eq!(m(&["a"], false).join(m(&["b"], true)), m(&["a", "b"], true));
        assert_eq!(Need::Whole.join(Need::Truth), Need::Whole);
    }

    #[test]
    fn a_copy_keeps_what_is_needed_and_no_more() {
        let licences = json!([{"skuId": "a", "disabledPlans": []}, {"skuId": "b", "disabledPlans": ["x"]}]);
        assert_eq!(Need::Shape.apply(licences.clone()), json!([null, null]));
        assert_eq!(Need::Whole.apply(licences.clone()), licences);
        assert_eq!(Need::Shape.apply(json!("text")), json!("text"), "a string's length is its characters'");
        let activity =
            Need::Members { members: BTreeMap::from([("lastSignInDateTime".to_string(), Need::Whole)]), truth: true };
        assert_eq!(
            activity.apply(json!({"lastSignInDateTime": "t", "lastSignInRequestId": "r"})),
            json!({"lastSignInDateTime": "t"})
        );
        assert_eq!(
            activity.apply(json!({"lastSignInRequestId": "r", "z": 1})),
            json!({"lastSignInRequestId": null}),
            "an object that was not empty stays so"
        );
        assert_eq!(activity.apply(json!({})), json!({}));
        assert_eq!(activity.apply(json!(null)), json!(null));
        assert_eq!(activity.apply(json!([1])), json!([1]), "what is not an object is kept");
    }

    #[test]
    fn the_built_in_metrics_need_licences_counted_and_the_last_sign_in() {
        let mut users = Need::nothing();
        for m in crate::builtin_metrics() {
            if let Some(members) = m.element_needs("users") {
                users = users.join(Need::Members { members, truth: false });
            }
        }
        let expected = Need::Members {
            members: BTreeMap::from([
                ("accountEnabled".to_string(), Need::Whole),
                ("assignedLicenses".to_string(), Need::Shape),
                ("createdDateTime".to_string(), Need::Whole),
                (
                    "signInActivity".to_string(),
                    Need::Members {
                        members: BTreeMap::from([("lastSignInDateTime".to_string(), Need::Whole)]),
                        truth: true,
                    },
                ),
                ("userType".to_string(), Need::Whole),
            ]),
            truth: false,
        };
        assert_eq!(users, expected);
    }

    /// A value of any type, with the shapes users' members take among them.
    fn any_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-3i64..200).prop_map(|n| json!(n)),
            prop::sample::select(vec![
                "",
                "Guest",
                "Member",
                "breakglass1",
                "2020-01-01T00:00:00Z",
                "2026-11-30T08:00:00Z",
                "x"
            ])
            .prop_map(|s| json!(s)),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            let key = prop::sample::select(vec![
                "lastSignInDateTime",
                "lastNonInteractiveSignInDateTime",
                "skuId",
                "disabledPlans",
                "a",
            ]);
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(key.prop_map(String::from), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn any_user() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let member = prop::sample::select(vec![
            "accountEnabled",
            "userType",
            "assignedLicenses",
            "signInActivity",
            "createdDateTime",
            "userPrincipalName",
            "id",
            "displayName",
        ]);
        prop_oneof![
            9 => prop::collection::btree_map(member.prop_map(String::from), any_value(), 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            1 => any_value(),
        ]
    }

    /// Metrics reading users' members in the ways the analysis tells apart.
    fn metrics() -> Vec<crate::Metric> {
        let mut metrics: Vec<crate::Metric> = crate::builtin_metrics();
        for (i, q) in [
            "length(values(collections.users)[?signInActivity && !signInActivity.lastSignInDateTime])",
            "length(values(collections.users)[?length(signInActivity || `{}`) > `1`])",
            "length(values(collections.users)[?length(assignedLicenses) == `2`])",
            "length(values(collections.users)[?assignedLicenses[0].skuId == 'x'])",
            "length(values(collections.users)[?!assignedLicenses])",
            "length(values(collections.users)[?signInActivity.lastSignInDateTime || signInActivity.a])",
            "length(values(collections.users)[?contains(keys(signInActivity || `{}`), 'a')])",
            "length(values(collections.users)[?starts_with(userPrincipalName, 'breakglass')])",
            "length(values(collections.users)[?signInActivity.a.skuId && assignedLicenses])",
            "length(values(collections.users)[*].signInActivity)",
            "length(values(collections.users)[?(assignedLicenses && userType) == 'Guest'])",
            "length(values(collections.users)[?assignedLicenses[*].skuId])",
            "length(values(collections.users)[?length(signInActivity.*) > `1`])",
            "length(values(collections.users)[?[signInActivity.a, userType][0]])",
            "length(values(collections.users)[?{a: signInActivity.a}.a])",
            "length(values(collections.users)[?assignedLicenses[][]])",
        ]
        .into_iter()
        .enumerate()
        {
            metrics.push(crate::Metric::new(&format!("m{i}"), q).unwrap());
        }
        metrics
    }

    proptest::proptest! {
        /// Each metric that reads users by members has the same value on a copy of them that keeps
        /// what it needs, as on the users whole.
        #[test]
        fn a_copy_with_what_a_metric_needs_gives_its_value(users in proptest::collection::vec(any_user(), 0..12)) {
            let collection = Value::Object(users.into_iter().enumerate().map(|(i, u)| (format!("u{i}"), u)).collect());
            let doc = |users: Value| json!({"schema": "tenantscope.dataprint/1", "tenant": {"id": "t"}, "collections": {"users": users}});
            let now = chrono::DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap().to_utc();
            let mut checked = 0;
            for m in metrics() {
                let Some(needs) = m.element_needs("users") else { continue };
                checked += 1;
                let projected = project_elements(collection.clone(), &Need::Members { members: needs, truth: false });
                let whole = crate::evaluate(std::slice::from_ref(&m), &doc(collection.clone()), now);
                let copy = crate::evaluate(std::slice::from_ref(&m), &doc(projected), now);
                proptest::prop_assert_eq!(whole, copy, "{}", m.name());
            }
            proptest::prop_assert!(checked >= 15, "the metrics are projectable: {}", checked);
        }
    }
}
