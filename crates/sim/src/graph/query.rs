//! OData query options as Microsoft Graph's directory APIs accept them: `$select`, `$filter` (a subset),
//! `$top`, `$skiptoken`, `$count`, `$search`, `$expand`, `$orderby`, and the `ConsistencyLevel` rules.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::errors::GraphError;

#[derive(Debug, Clone, Default)]
pub(crate) struct Query {
    pub select: Option<Vec<String>>,
    pub filter: Option<String>,
    pub top: Option<usize>,
    pub skiptoken: Option<String>,
    pub count: bool,
    pub search: Option<String>,
    pub expand: Option<String>,
    pub orderby: Option<String>,
    pub deltatoken: Option<String>,
    /// The raw pairs, kept to rebuild `@odata.nextLink` with the same options.
    pub raw: Vec<(String, String)>,
    pub eventual: bool,
}

impl Query {
    pub(crate) fn parse(query: &str, eventual: bool) -> Result<Query, GraphError> {
        let mut q = Query { eventual, ..Query::default() };
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let (k, v) = (k.into_owned(), v.into_owned());
            let key = k.trim_start_matches('$').to_ascii_lowercase();
            match key.as_str() {
                "select" => {
                    q.select = Some(v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
                }
                "filter" => q.filter = Some(v.clone()),
                "top" => {
                    let n: i64 = v.trim().parse().map_err(|_| {
                        GraphError::bad_request(format!(
                            "Invalid page size specified: '{}'. Must be between 1 and 999 inclusive.",
                            crate::identity::truncate(&v, 20)
                        ))
                    })?;
                    if n < 1 {
                        return Err(GraphError::bad_request(format!(
                            "Invalid page size specified: '{n}'. Must be between 1 and 999 inclusive."
                        )));
                    }
                    q.top = Some(n.min(1_000_000) as usize);
                }
                "skiptoken" => q.skiptoken = Some(v.clone()),
                "count" => q.count = v.eq_ignore_ascii_case("true"),
                "search" => q.search = Some(v.clone()),
                "expand" => q.expand = Some(v.clone()),
                "orderby" => q.orderby = Some(v.clone()),
                "deltatoken" => q.deltatoken = Some(v.clone()),
                "skip" => {
                    return Err(GraphError::unsupported_query(
                        "'$skip' is not supported by this API. Use '$skiptoken' from '@odata.nextLink' to page.",
                    ));
                }
                _ => {}
            }
            if !key.eq_ignore_ascii_case("skiptoken") {
                q.raw.push((k, v));
            }
        }
        if q.search.is_some() && !eventual {
            return Err(GraphError::unsupported_query(
                "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'",
            ));
        }
        Ok(q)
    }

    /// The page size: `$top` within `1..=max`, or the API's default.
    pub(crate) fn page_size(&self, default: usize, max: usize) -> Result<usize, GraphError> {
        match self.top {
            None => Ok(default),
            Some(n) if n <= max => Ok(n),
            Some(n) => Err(GraphError::bad_request(format!(
                "Invalid page size specified: '{n}'. Must be between 1 and {max} inclusive."
            ))),
        }
    }

    pub(crate) fn offset(&self) -> Result<usize, GraphError> {
        match &self.skiptoken {
            None => Ok(0),
            Some(t) => decode_skiptoken(t).ok_or_else(|| {
                GraphError::bad_request(
                    "The specified page token value has expired and can no longer be included in your request.",
                )
            }),
        }
    }

    /// The request cost modifiers of Microsoft's directory throttling: `$select` -1, `$expand` +1, `$top` below 20 -1.
    pub(crate) fn cost_adjustment(&self) -> i32 {
        let mut adj = 0;
        if self.select.is_some() {
            adj -= 1;
        }
        if self.expand.is_some() {
            adj += 1;
        }
        if self.top.is_some_and(|t| t < 20) {
            adj -= 1;
        }
        adj
    }
}

/// A query string as Graph writes it in `@odata.nextLink` and `@odata.deltaLink`: OData option names keep
/// their literal `$`, and values are percent-encoded with `%20` for spaces.
pub(crate) fn odata_query<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20");
    pairs
        .map(|(k, v)| {
            let key = match k.strip_prefix('$') {
                Some(rest) => format!("${}", enc(rest)),
                None => enc(k),
            };
            format!("{key}={}", enc(v))
        })
        .collect::<Vec<_>>()
        .join("&")
}

pub(crate) fn encode_skiptoken(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("RFNwdAIAAQAAA:{offset}"))
}

fn decode_skiptoken(token: &str) -> Option<usize> {
    let bytes = URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix("RFNwdAIAAQAAA:")?.parse().ok()
}

/// Keeps only the `$select`ed properties (plus `id` and OData annotations), and rejects unknown ones.
pub(crate) fn apply_select(
    obj: Value,
    select: Option<&[String]>,
    known: &[&str],
    type_name: &str,
) -> Result<Value, GraphError> {
    let Some(select) = select else { return Ok(obj) };
    for s in select {
        if !known.iter().any(|k| k.eq_ignore_ascii_case(s)) && s != "*" {
            return Err(GraphError::bad_request(format!(
                "Could not find a property named '{}' on type 'microsoft.graph.{type_name}'.",
                crate::identity::truncate(s, 80)
            )));
        }
    }
    if select.iter().any(|s| s == "*") {
        return Ok(obj);
    }
    let Value::Object(map) = obj else { return Ok(obj) };
    let mut out = Map::new();
    for (k, v) in map {
        if k == "id" || k.starts_with("@odata") || select.iter().any(|s| s.eq_ignore_ascii_case(&k)) {
            out.insert(k, v);
        }
    }
    Ok(Value::Object(out))
}

/// One clause of the supported `$filter` subset.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Clause {
    Eq(String, Literal),
    Ne(String, Literal),
    Le(String, Literal),
    Ge(String, Literal),
    StartsWith(String, String),
    EndsWith(String, String),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Str(String),
    Bool(bool),
    Null,
    Other(String),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Filter {
    All(Vec<Clause>),
    Any(Vec<Clause>),
}

impl Clause {
    pub(crate) fn property(&self) -> &str {
        match self {
            Clause::Eq(p, _) | Clause::Ne(p, _) | Clause::Le(p, _) | Clause::Ge(p, _) => p,
            Clause::StartsWith(p, _) | Clause::EndsWith(p, _) => p,
        }
    }

    /// Whether the clause needs the advanced query capabilities (`ConsistencyLevel: eventual` and `$count=true`).
    pub(crate) fn advanced(&self) -> bool {
        matches!(self, Clause::Ne(..) | Clause::EndsWith(..))
    }

    pub(crate) fn matches(&self, obj: &Value) -> bool {
        let get = |p: &str| -> Option<&Value> {
            let mut cur = obj;
            for part in p.split('/') {
                cur = cur.get(part)?;
            }
            Some(cur)
        };
        let as_lit = |v: Option<&Value>| match v {
            None | Some(Value::Null) => Literal::Null,
            Some(Value::Bool(b)) => Literal::Bool(*b),
            Some(Value::String(s)) => Literal::Str(s.to_ascii_lowercase()),
            Some(other) => Literal::Other(other.to_string()),
        };
        let norm = |l: &Literal| match l {
            Literal::Str(s) => Literal::Str(s.to_ascii_lowercase()),
            other => other.clone(),
        };
        match self {
            Clause::Eq(p, l) => as_lit(get(p)) == norm(l),
            Clause::Ne(p, l) => as_lit(get(p)) != norm(l),
            Clause::Le(p, Literal::Other(v)) | Clause::Le(p, Literal::Str(v)) => {
                get(p).and_then(Value::as_str).is_some_and(|s| s <= v.as_str())
            }
            Clause::Ge(p, Literal::Other(v)) | Clause::Ge(p, Literal::Str(v)) => {
                get(p).and_then(Value::as_str).is_some_and(|s| s >= v.as_str())
            }
            Clause::Le(..) | Clause::Ge(..) => false,
            Clause::StartsWith(p, s) => get(p)
                .and_then(Value::as_str)
                .is_some_and(|v| v.to_ascii_lowercase().starts_with(&s.to_ascii_lowercase())),
            Clause::EndsWith(p, s) => get(p)
                .and_then(Value::as_str)
                .is_some_and(|v| v.to_ascii_lowercase().ends_with(&s.to_ascii_lowercase())),
        }
    }
}

impl Filter {
    pub(crate) fn clauses(&self) -> &[Clause] {
        match self {
            Filter::All(c) | Filter::Any(c) => c,
        }
    }

    pub(crate) fn matches(&self, obj: &Value) -> bool {
        match self {
            Filter::All(c) => c.iter().all(|c| c.matches(obj)),
            Filter::Any(c) => c.iter().any(|c| c.matches(obj)),
        }
    }
}

fn unsupported_filter() -> GraphError {
    GraphError::unsupported_query("Unsupported or invalid query filter clause specified.")
}

fn parse_literal(text: &str) -> Result<Literal, GraphError> {
    let t = text.trim();
    if let Some(inner) = t.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        return Ok(Literal::Str(inner.replace("''", "'")));
    }
    match t {
        "true" => Ok(Literal::Bool(true)),
        "false" => Ok(Literal::Bool(false)),
        "null" => Ok(Literal::Null),
        _ if !t.is_empty() && !t.contains(' ') => Ok(Literal::Other(t.to_string())),
        _ => Err(unsupported_filter()),
    }
}

fn parse_clause(text: &str) -> Result<Clause, GraphError> {
    let t = text.trim();
    for (func, build) in [("startswith(", 0), ("endswith(", 1)] {
        if t.to_ascii_lowercase().starts_with(func) {
            let inner = t[func.len()..].strip_suffix(')').ok_or_else(unsupported_filter)?;
            let (prop, lit) = inner.split_once(',').ok_or_else(unsupported_filter)?;
            let Literal::Str(s) = parse_literal(lit)? else { return Err(unsupported_filter()) };
            let prop = prop.trim().to_string();
            return Ok(if build == 0 { Clause::StartsWith(prop, s) } else { Clause::EndsWith(prop, s) });
        }
    }
    let mut parts = t.splitn(3, ' ');
    let (Some(prop), Some(op), Some(lit)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(unsupported_filter());
    };
    let prop = prop.to_string();
    let lit = parse_literal(lit)?;
    match op.to_ascii_lowercase().as_str() {
        "eq" => Ok(Clause::Eq(prop, lit)),
        "ne" => Ok(Clause::Ne(prop, lit)),
        "le" | "lt" => Ok(Clause::Le(prop, lit)),
        "ge" | "gt" => Ok(Clause::Ge(prop, lit)),
        _ => Err(unsupported_filter()),
    }
}

/// Parses the supported subset: clauses joined by `and` or by `or` (not both, no parentheses).
pub(crate) fn parse_filter(text: &str) -> Result<Filter, GraphError> {
    if text.len() > 2048 {
        return Err(unsupported_filter());
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains(" and ") && lower.contains(" or ") {
        return Err(unsupported_filter());
    }
    let split = |sep: &str| -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(i) = rest.to_ascii_lowercase().find(sep) {
            out.push(rest[..i].to_string());
            rest = &rest[i + sep.len()..];
        }
        out.push(rest.to_string());
        out
    };
    if lower.contains(" or ") {
        Ok(Filter::Any(split(" or ").iter().map(|c| parse_clause(c)).collect::<Result<_, _>>()?))
    } else {
        Ok(Filter::All(split(" and ").iter().map(|c| parse_clause(c)).collect::<Result<_, _>>()?))
    }
}

/// Checks a filter against the properties an endpoint can filter on, and the advanced-query rules.
pub(crate) fn check_filter(filter: &Filter, q: &Query, allowed: &[&str], resource: &str) -> Result<(), GraphError> {
    for c in filter.clauses() {
        let prop = c.property();
        if !allowed.iter().any(|a| a.eq_ignore_ascii_case(prop)) {
            return Err(GraphError::unsupported_query(format!(
                "Unsupported or invalid query filter clause specified for property '{}' of resource '{resource}'.",
                crate::identity::truncate(prop, 80)
            )));
        }
        if c.advanced() && !(q.eventual && q.count) {
            return Err(GraphError::unsupported_query("Unsupported Query."));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_parse_and_match() {
        let f = parse_filter("accountEnabled eq true and startswith(displayName,'Meg')").unwrap();
        assert!(f.matches(&json!({"accountEnabled": true, "displayName": "Megan Bowen"})));
        assert!(!f.matches(&json!({"accountEnabled": false, "displayName": "Megan Bowen"})));
        let f = parse_filter("userType eq 'Guest' or userType eq 'guest'").unwrap();
        assert!(f.matches(&json!({"userType": "Guest"})));
        assert!(parse_filter("a eq").is_err());
        assert!(parse_filter("(a eq 1) and (b eq 2) or c eq 3").is_err());
        let f = parse_filter("name eq 'O''Brien'").unwrap();
        assert!(f.matches(&json!({"name": "o'brien"})));
    }

    #[test]
    fn advanced_clauses_need_eventual_consistency() {
        let f = parse_filter("endswith(mail,'@contoso.com')").unwrap();
        let plain = Query::parse("", false).unwrap();
        assert!(check_filter(&f, &plain, &["mail"], "User").is_err());
        let adv = Query::parse("$count=true", true).unwrap();
        assert!(check_filter(&f, &adv, &["mail"], "User").is_ok());
    }

    #[test]
    fn links_keep_dollar_names_and_encode_values() {
        let q = odata_query([("$filter", "accountEnabled eq true"), ("$top", "5"), ("x y", "a+b&c")].into_iter());
        assert_eq!(q, "$filter=accountEnabled%20eq%20true&$top=5&x%20y=a%2Bb%26c");
        let parsed: Vec<(String, String)> =
            form_urlencoded::parse(q.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        assert_eq!(parsed[0], ("$filter".to_string(), "accountEnabled eq true".to_string()));
        assert_eq!(parsed[2], ("x y".to_string(), "a+b&c".to_string()));
    }

    #[test]
    fn top_and_skiptokens() {
        let q = Query::parse("$top=1000", false).unwrap();
        assert!(q.page_size(100, 999).is_err());
        assert!(Query::parse("$top=0", false).is_err());
        assert!(Query::parse("$top=abc", false).is_err());
        let tok = encode_skiptoken(300);
        let q = Query::parse(&format!("$skiptoken={tok}"), false).unwrap();
        assert_eq!(q.offset().unwrap(), 300);
        let q = Query::parse("$skiptoken=garbage", false).unwrap();
        assert!(q.offset().is_err());
        assert!(Query::parse("$search=\"displayName:a\"", false).is_err());
    }
}
