//! Sign-in log exports: the failures of a whole export, grouped by cause.
//!
//! Reads what the Microsoft Entra admin centre downloads from Monitoring & health > Sign-in
//! logs (JSON: an array of sign-in objects; CSV: one row per sign-in with the documented column
//! names such as "Date (UTC)", "Username", "Application", "IP address", "Status",
//! "Sign-in error code" and "Failure reason") and what Graph's `auditLogs/signIns` returns
//! (`{"value": [...]}`). Each failure's cause comes from its AADSTS code (the same mapping as
//! `explain`), refined by its failure reason where Microsoft reuses a code
//! (`data/code_overrides.tsv`), and from the reason's words when the code is unknown.
//!
//! Pure: the caller reads the file and hands over its bytes.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::cause::{Cause, Check};
use crate::{aadsts, advice, field, parse};

/// Exports larger than this are refused rather than read into memory.
pub const MAX_SIGN_IN_LOG_BYTES: usize = 512 * 1024 * 1024;

/// How many users, applications and IP addresses each cause lists.
const TOP: usize = 5;

/// Codes that Microsoft documents as interrupts: a step of a flow that continues, not a refusal
/// (the "Keep me signed in" prompt). They are counted apart from failures.
const INTERRUPT_CODES: &[u32] = &[50140];

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SignInLogError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is binary, not a sign-in log export (JSON or CSV text)")]
    Binary,
    #[error("the file is {0} bytes; sign-in log exports above {MAX_SIGN_IN_LOG_BYTES} bytes are not read")]
    TooLarge(usize),
    #[error("the JSON is not valid: {0}")]
    Json(String),
    #[error("the CSV is not valid: {0}")]
    Csv(String),
    #[error("this is not a sign-in log export: {0}")]
    NotSignInLog(String),
}

/// A value and how many failures had it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    pub value: String,
    pub count: usize,
}

/// The failures of one cause.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CauseGroup {
    pub cause: Cause,
    pub title: String,
    pub count: usize,
    /// The AADSTS codes seen for this cause, most frequent first.
    pub codes: Vec<Count>,
    pub top_users: Vec<Count>,
    pub top_applications: Vec<Count>,
    pub top_ips: Vec<Count>,
    pub first: Option<String>,
    pub last: Option<String>,
    /// Why these failures have this cause (the mapping's summary of the most frequent code).
    pub summary: String,
    pub fix: Vec<String>,
    pub check: Check,
    pub docs: String,
}

/// What an export says about failed sign-ins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignInSummary {
    /// `json` or `csv`.
    pub format: String,
    /// Sign-in entries read.
    pub entries: usize,
    pub failures: usize,
    /// Interrupted steps (Status "Interrupted", or a documented interrupt code).
    pub interrupted: usize,
    /// Entries without any field that tells success from failure.
    pub unreadable: usize,
    pub first: Option<String>,
    pub last: Option<String>,
    /// Failures by cause, the largest group first.
    pub causes: Vec<CauseGroup>,
}

/// One sign-in entry, whatever the format.
#[derive(Debug, Default)]
struct Entry {
    time: Option<String>,
    user: String,
    app: String,
    ip: String,
    code: Option<u32>,
    reason: String,
    status: Option<String>,
}

enum Outcome {
    Success,
    Failure(u32),
    Interrupted,
    Unreadable,
}

impl Entry {
    fn outcome(&self) -> Outcome {
        let status = self.status.as_deref().map(|s| s.trim().to_ascii_lowercase());
        if status.as_deref() == Some("interrupted") || self.code.is_some_and(|c| INTERRUPT_CODES.contains(&c)) {
            return Outcome::Interrupted;
        }
        match (self.code, status.as_deref()) {
            (Some(0), Some("failure")) => Outcome::Failure(0),
            (Some(0), _) => Outcome::Success,
            (Some(c), _) => Outcome::Failure(c),
            (None, Some("success")) => Outcome::Success,
            (None, Some("failure")) => Outcome::Failure(0),
            _ => Outcome::Unreadable,
        }
    }
}

/// Reads a sign-in log export (JSON or CSV bytes) and groups its failures by cause.
pub fn summarize_sign_in_logs(bytes: &[u8]) -> Result<SignInSummary, SignInLogError> {
    if bytes.len() > MAX_SIGN_IN_LOG_BYTES {
        return Err(SignInLogError::TooLarge(bytes.len()));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(SignInLogError::Empty);
    }
    if looks_binary(bytes) {
        return Err(SignInLogError::Binary);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| SignInLogError::Binary)?;
    let trimmed = text.trim_start();
    let (format, entries) = if trimmed.starts_with('[') || trimmed.starts_with('{') {
        ("json", json_entries(trimmed)?)
    } else {
        ("csv", csv_entries(text)?)
    };
    Ok(summarize(format, &entries))
}

/// NUL bytes, or mostly control characters, in the first kilobytes: not a text export.
fn looks_binary(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(8192)];
    if head.contains(&0) {
        return true;
    }
    let odd = head.iter().filter(|b| b.is_ascii_control() && !matches!(b, b'\n' | b'\r' | b'\t')).count();
    odd * 10 > head.len()
}

fn json_entries(text: &str) -> Result<Vec<Entry>, SignInLogError> {
    let value: Value = serde_json::from_str(text).map_err(|e| SignInLogError::Json(e.to_string()))?;
    let items = match &value {
        Value::Array(items) => items,
        Value::Object(obj) => match obj.get("value") {
            Some(Value::Array(items)) => items,
            _ if obj.contains_key("status") || obj.contains_key("createdDateTime") => std::slice::from_ref(&value),
            _ => {
                return Err(SignInLogError::NotSignInLog(
                    "a JSON object without a `value` array of sign-ins".to_string(),
                ));
            }
        },
        _ => return Err(SignInLogError::NotSignInLog("JSON that is neither an array nor an object".to_string())),
    };
    let entries: Vec<Entry> = items.iter().filter_map(Value::as_object).map(json_entry).collect();
    if !items.is_empty() && entries.iter().all(|e| e.code.is_none() && e.status.is_none()) {
        return Err(SignInLogError::NotSignInLog(
            "no entry has `status.errorCode`; is this the sign-in log download?".to_string(),
        ));
    }
    Ok(entries)
}

fn json_entry(obj: &serde_json::Map<String, Value>) -> Entry {
    let s = |key: &str| obj.get(key).and_then(Value::as_str).map(str::to_string);
    let status = obj.get("status").and_then(Value::as_object);
    let code = status.and_then(|st| st.get("errorCode")).or_else(|| obj.get("errorCode")).and_then(number);
    let reason = status
        .and_then(|st| st.get("failureReason"))
        .or_else(|| obj.get("failureReason"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Entry {
        time: s("createdDateTime"),
        user: s("userPrincipalName").or_else(|| s("userDisplayName")).unwrap_or_default(),
        app: s("appDisplayName").or_else(|| s("appId")).unwrap_or_default(),
        ip: s("ipAddress").unwrap_or_default(),
        code,
        reason,
        status: None,
    }
}

fn number(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|n| u32::try_from(n).ok()).or_else(|| v.as_str()?.trim().parse().ok())
}

/// Column names of the CSV download, as the admin centre writes them (and the Graph property
/// names some tools use when they convert the JSON to CSV).
const TIME_COLUMNS: &[&str] = &["date (utc)", "date", "createddatetime", "time"];
const USER_COLUMNS: &[&str] = &["username", "user principal name", "userprincipalname", "user"];
const APP_COLUMNS: &[&str] = &["application", "appdisplayname", "app"];
const IP_COLUMNS: &[&str] = &["ip address", "ipaddress", "ip"];
const CODE_COLUMNS: &[&str] = &["sign-in error code", "sign in error code", "errorcode", "error code"];
const REASON_COLUMNS: &[&str] = &["failure reason", "failurereason"];
const STATUS_COLUMNS: &[&str] = &["status"];

fn csv_entries(text: &str) -> Result<Vec<Entry>, SignInLogError> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| SignInLogError::Csv(e.to_string()))?
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase())
        .collect();
    let col = |names: &[&str]| names.iter().find_map(|n| headers.iter().position(|h| h == n));
    let (code_col, status_col) = (col(CODE_COLUMNS), col(STATUS_COLUMNS));
    if code_col.is_none() && status_col.is_none() {
        return Err(SignInLogError::NotSignInLog(
            "the CSV has neither a \"Sign-in error code\" nor a \"Status\" column".to_string(),
        ));
    }
    let (time_col, user_col, app_col, ip_col, reason_col) =
        (col(TIME_COLUMNS), col(USER_COLUMNS), col(APP_COLUMNS), col(IP_COLUMNS), col(REASON_COLUMNS));
    let mut entries = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| SignInLogError::Csv(e.to_string()))?;
        let get = |c: Option<usize>| c.and_then(|i| record.get(i)).map(str::trim).unwrap_or_default().to_string();
        let code_text = get(code_col);
        entries.push(Entry {
            time: Some(get(time_col)).filter(|t| !t.is_empty()),
            user: get(user_col),
            app: get(app_col),
            ip: get(ip_col),
            code: code_text.parse().ok(),
            reason: get(reason_col),
            status: Some(get(status_col)).filter(|s| !s.is_empty()),
        });
    }
    Ok(entries)
}

/// Parses the times the exports use, so that first and last are chronological, not textual.
fn parse_time(t: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y, %I:%M:%S %p"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(t, f) {
            return Some(n.and_utc());
        }
    }
    None
}

/// The cause of one failure, and the summary and fix that go with it.
#[derive(Clone)]
struct Classified {
    cause: Cause,
    summary: String,
    fix: Vec<String>,
}

fn classify(code: u32, reason: &str) -> Classified {
    let lower = parse::squash(reason);
    if let Some(o) = field::override_for(code, &lower) {
        return Classified { cause: o.cause, summary: o.summary.to_string(), fix: advice::default_fix(o.cause) };
    }
    if let Some(rule) = aadsts::rule_for(code) {
        // The rule's own steps come before the cause's default fix, as in `explain`.
        let fix = rule.fix.iter().map(|s| (*s).to_string()).chain(advice::default_fix(rule.cause)).collect();
        return Classified { cause: rule.cause, summary: rule.summary.to_string(), fix };
    }
    if let Some(p) = field::matching_phrases(&lower).into_iter().max_by(|a, b| a.confidence.total_cmp(&b.confidence)) {
        return Classified { cause: p.cause, summary: p.summary.to_string(), fix: advice::default_fix(p.cause) };
    }
    let summary = match aadsts::reference(code) {
        Some(e) if code != 0 => format!("AADSTS{code}: {}", e.description),
        _ if code != 0 => format!(
            "AADSTS{code}: a code tenantscope does not map; https://login.microsoftonline.com/error?code={code} explains it."
        ),
        _ => "The sign-in failed without an error code.".to_string(),
    };
    Classified { cause: Cause::Unknown, summary, fix: advice::default_fix(Cause::Unknown) }
}

/// A parsed time with the text it was read from, which is what the summary shows.
type Stamp = (DateTime<Utc>, String);

#[derive(Default)]
struct Group {
    count: usize,
    codes: HashMap<String, usize>,
    users: HashMap<String, usize>,
    apps: HashMap<String, usize>,
    ips: HashMap<String, usize>,
    first: Option<Stamp>,
    last: Option<Stamp>,
    /// The summary and fix of each code seen, to report those of the most frequent code.
    texts: HashMap<String, (String, Vec<String>)>,
}

fn bump(map: &mut HashMap<String, usize>, value: &str) {
    if !value.is_empty() {
        *map.entry(value.to_string()).or_default() += 1;
    }
}

fn top(map: &HashMap<String, usize>, n: usize) -> Vec<Count> {
    let mut v: Vec<Count> = map.iter().map(|(value, count)| Count { value: value.clone(), count: *count }).collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    v.truncate(n);
    v
}

fn widen(slot: &mut Option<Stamp>, t: DateTime<Utc>, raw: &str, later: bool) {
    let replace = match slot {
        None => true,
        Some((cur, _)) => (later && t > *cur) || (!later && t < *cur),
    };
    if replace {
        *slot = Some((t, raw.to_string()));
    }
}

fn summarize(format: &str, entries: &[Entry]) -> SignInSummary {
    let mut groups: BTreeMap<Cause, Group> = BTreeMap::new();
    let mut cache: HashMap<(u32, String), Classified> = HashMap::new();
    let (mut failures, mut interrupted, mut unreadable) = (0, 0, 0);
    let (mut first, mut last): (Option<Stamp>, Option<Stamp>) = (None, None);
    for e in entries {
        let time = e.time.as_deref().and_then(|raw| parse_time(raw).map(|t| (t, raw)));
        if let Some((t, raw)) = time {
            widen(&mut first, t, raw, false);
            widen(&mut last, t, raw, true);
        }
        let code = match e.outcome() {
            Outcome::Success => continue,
            Outcome::Interrupted => {
                interrupted += 1;
                continue;
            }
            Outcome::Unreadable => {
                unreadable += 1;
                continue;
            }
            Outcome::Failure(code) => code,
        };
        failures += 1;
        let c = cache.entry((code, e.reason.clone())).or_insert_with(|| classify(code, &e.reason)).clone();
        let g = groups.entry(c.cause).or_default();
        g.count += 1;
        let code_label = if code == 0 { "none".to_string() } else { code.to_string() };
        g.texts.entry(code_label.clone()).or_insert((c.summary, c.fix));
        bump(&mut g.codes, &code_label);
        bump(&mut g.users, &e.user);
        bump(&mut g.apps, &e.app);
        bump(&mut g.ips, &e.ip);
        if let Some((t, raw)) = time {
            widen(&mut g.first, t, raw, false);
            widen(&mut g.last, t, raw, true);
        }
    }
    let mut causes: Vec<CauseGroup> = groups
        .into_iter()
        .map(|(cause, g)| {
            let codes = top(&g.codes, usize::MAX);
            let (summary, fix) = codes
                .first()
                .and_then(|c| g.texts.get(&c.value).cloned())
                .unwrap_or_else(|| (advice::default_summary(cause).to_string(), advice::default_fix(cause)));
            CauseGroup {
                cause,
                title: cause.title().to_string(),
                count: g.count,
                codes,
                top_users: top(&g.users, TOP),
                top_applications: top(&g.apps, TOP),
                top_ips: top(&g.ips, TOP),
                first: g.first.map(|(_, raw)| raw),
                last: g.last.map(|(_, raw)| raw),
                summary,
                fix,
                check: cause.check(),
                docs: cause.docs(),
            }
        })
        .collect();
    causes.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.cause.cmp(&b.cause)));
    SignInSummary {
        format: format.to_string(),
        entries: entries.len(),
        failures,
        interrupted,
        unreadable,
        first: first.map(|(_, raw)| raw),
        last: last.map(|(_, raw)| raw),
        causes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = r#"[
      {"createdDateTime":"2024-07-23T15:19:52Z","userPrincipalName":"a@contoso.com","appDisplayName":"Azure Portal","ipAddress":"10.1.1.1","conditionalAccessStatus":"success","status":{"errorCode":0}},
      {"createdDateTime":"2024-07-23T16:00:00Z","userPrincipalName":"b@contoso.com","appDisplayName":"Azure Portal","ipAddress":"10.1.1.2","status":{"errorCode":50126,"failureReason":"Error validating credentials due to invalid username or password."}},
      {"createdDateTime":"2024-07-22T09:00:00Z","userPrincipalName":"b@contoso.com","appDisplayName":"Outlook","ipAddress":"10.1.1.2","status":{"errorCode":50126,"failureReason":"Error validating credentials due to invalid username or password."}},
      {"createdDateTime":"2024-07-24T09:00:00Z","userPrincipalName":"c@contoso.com","appDisplayName":"Outlook","ipAddress":"203.0.113.9","status":{"errorCode":50053,"failureReason":"Sign-in was blocked because it came from an IP address with malicious activity."}},
      {"createdDateTime":"2024-07-24T09:01:00Z","userPrincipalName":"c@contoso.com","appDisplayName":"Outlook","ipAddress":"203.0.113.9","status":{"errorCode":50140,"failureReason":"This error occurred due to 'Keep me signed in' interrupt when the user was signing in."}}
    ]"#;

    #[test]
    fn json_export_groups_failures_by_cause() {
        let s = summarize_sign_in_logs(JSON.as_bytes()).expect("valid export");
        assert_eq!((s.format.as_str(), s.entries, s.failures, s.interrupted), ("json", 5, 3, 1));
        assert_eq!(s.causes[0].cause, Cause::InvalidCredentials);
        assert_eq!(s.causes[0].count, 2);
        assert_eq!(s.causes[0].top_users[0], Count { value: "b@contoso.com".into(), count: 2 });
        assert_eq!(s.causes[0].first.as_deref(), Some("2024-07-22T09:00:00Z"));
        assert_eq!(s.causes[0].last.as_deref(), Some("2024-07-23T16:00:00Z"));
        assert_eq!(s.causes[1].cause, Cause::AccountLocked);
        assert!(!s.causes[1].fix.is_empty());
        assert_eq!(s.first.as_deref(), Some("2024-07-22T09:00:00Z"));
    }

    #[test]
    fn graph_value_shape_is_read() {
        let body = format!(r#"{{"@odata.context":"x","value":{JSON}}}"#);
        assert_eq!(summarize_sign_in_logs(body.as_bytes()).map(|s| s.failures), Ok(3));
    }

    #[test]
    fn csv_export_with_documented_columns() {
        let csv = "\u{feff}Date (UTC),Request ID,User,Username,User ID,Application,IP address,Location,Status,Sign-in error code,Failure reason,Conditional Access\n\
2024-07-23T15:19:52Z,r1,Ann,a@contoso.com,u1,Azure Portal,10.1.1.1,\"Paris, FR\",Success,,,Not Applied\n\
2024-07-23T16:00:00Z,r2,Bob,b@contoso.com,u2,Outlook,10.1.1.2,\"Lyon, FR\",Failure,53003,Access has been blocked by Conditional Access policies.,Failure\n\
2024-07-23T16:05:00Z,r3,Bob,b@contoso.com,u2,Outlook,10.1.1.2,\"Lyon, FR\",Interrupted,50074,Strong Authentication is required.,Not Applied\n";
        let s = summarize_sign_in_logs(csv.as_bytes()).expect("valid export");
        assert_eq!((s.format.as_str(), s.entries, s.failures, s.interrupted), ("csv", 3, 1, 1));
        assert_eq!(s.causes[0].cause, Cause::ConditionalAccessBlocked);
        assert_eq!(s.causes[0].top_applications[0].value, "Outlook");
    }

    #[test]
    fn bad_input_gives_clear_errors() {
        assert_eq!(summarize_sign_in_logs(b"  \n"), Err(SignInLogError::Empty));
        assert_eq!(summarize_sign_in_logs(b"\x00\x01\x02binary"), Err(SignInLogError::Binary));
        assert!(matches!(summarize_sign_in_logs(b"{\"a\": 1}"), Err(SignInLogError::NotSignInLog(_))));
        assert!(matches!(summarize_sign_in_logs(b"[{\"a\": 1"), Err(SignInLogError::Json(_))));
        assert!(matches!(summarize_sign_in_logs(b"name,age\nx,1\n"), Err(SignInLogError::NotSignInLog(_))));
    }
}
