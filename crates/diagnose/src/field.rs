//! Recognisers for text from the field, kept as data tables under `data/`.
//!
//! Each table is a TSV file embedded at compile time and parsed once. The rules that use them
//! stay generic (find a phrase, a code, a status) so that teaching `explain` a new message is a
//! matter of adding a documented row, not a new pattern in code. The files say where their rows
//! come from; `docs/causes.md` describes how they are used.

use std::sync::OnceLock;

use aho_corasick::AhoCorasick;
use regex::Regex;

use crate::cause::Cause;
use crate::facts::TransportKind;

const PHRASES_TSV: &str = include_str!("../data/phrases.tsv");
const TOOL_MESSAGES_TSV: &str = include_str!("../data/tool_messages.tsv");
const NETWORK_TSV: &str = include_str!("../data/network_signatures.tsv");
const LOCALIZED_TSV: &str = include_str!("../data/localized_status.tsv");
const PARTNER_CENTER_TSV: &str = include_str!("../data/partner_center_codes.tsv");
const MSAL_TSV: &str = include_str!("../data/msal_errors.tsv");
const OVERRIDES_TSV: &str = include_str!("../data/code_overrides.tsv");

/// The data lines of a TSV table (comments and blank lines skipped), split into columns.
/// Columns are not trimmed: a signature may end in a space on purpose.
fn rows(tsv: &'static str) -> impl Iterator<Item = Vec<&'static str>> {
    tsv.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').collect())
}

/// How many data lines a table has; the unit tests compare it with what was parsed, so that a
/// malformed row is caught by `cargo test` rather than silently skipped.
#[cfg(test)]
fn data_lines(tsv: &'static str) -> usize {
    rows(tsv).count()
}

fn list(col: &'static str) -> Vec<&'static str> {
    if col.trim() == "-" {
        return Vec::new();
    }
    col.split(" | ").map(str::trim).filter(|p| !p.is_empty()).collect()
}

/// One automaton for all the patterns of a table, so that a text is scanned once per table
/// rather than once per pattern (`explain` must stay fast on a megabyte of input).
struct Scanner {
    ac: Option<AhoCorasick>,
}

impl Scanner {
    fn new<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Scanner {
        // The patterns are the tables' literals; building only fails on absurd sizes, and then
        // the table simply matches nothing.
        Scanner { ac: AhoCorasick::new(patterns).ok() }
    }

    /// Every (pattern index, start) found in `hay`, overlapping matches included.
    fn matches(&self, hay: &str) -> Vec<(usize, usize)> {
        match &self.ac {
            Some(ac) => ac.find_overlapping_iter(hay).map(|m| (m.pattern().as_usize(), m.start())).collect(),
            None => Vec::new(),
        }
    }
}

pub(crate) fn transport_kind(id: &str) -> Option<TransportKind> {
    Some(match id {
        "host_not_allowed" => TransportKind::HostNotAllowed,
        "dns" => TransportKind::Dns,
        "tls" => TransportKind::Tls,
        "connect" => TransportKind::Connect,
        "reset" => TransportKind::Reset,
        "timeout" => TransportKind::Timeout,
        _ => return None,
    })
}

// ----------------------------------------------------------------------------------------------
// Phrases
// ----------------------------------------------------------------------------------------------

/// One sign of `data/phrases.tsv`.
pub(crate) struct Phrase {
    pub any: Vec<&'static str>,
    pub with: Vec<&'static str>,
    pub cause: Cause,
    pub confidence: f32,
    pub summary: &'static str,
}

/// The signs of `data/phrases.tsv` followed by those of `data/tool_messages.tsv` (the messages
/// authentication libraries and Microsoft's command-line tools print in their own words); both
/// tables have the same columns and are read as one.
pub(crate) fn phrases() -> &'static [Phrase] {
    static TABLE: OnceLock<Vec<Phrase>> = OnceLock::new();
    TABLE.get_or_init(|| {
        rows(PHRASES_TSV)
            .chain(rows(TOOL_MESSAGES_TSV))
            .filter_map(|c| {
                let [cause, confidence, any, with, summary] = c.as_slice() else { return None };
                Some(Phrase {
                    cause: cause.trim().parse().ok()?,
                    confidence: confidence.trim().parse().ok()?,
                    any: list(any),
                    with: list(with),
                    summary: summary.trim(),
                })
            })
            .filter(|p| !p.any.is_empty())
            .collect()
    })
}

/// The automata of the phrase table: every `any` phrase and every `with` phrase, each mapped
/// back to its sign.
struct PhraseScanners {
    any: Scanner,
    any_owner: Vec<usize>,
    with: Scanner,
    with_owner: Vec<usize>,
}

fn phrase_scanners() -> &'static PhraseScanners {
    static SCANNERS: OnceLock<PhraseScanners> = OnceLock::new();
    SCANNERS.get_or_init(|| {
        let table = phrases();
        let any: Vec<(usize, &str)> =
            table.iter().enumerate().flat_map(|(i, p)| p.any.iter().map(move |a| (i, *a))).collect();
        let with: Vec<(usize, &str)> =
            table.iter().enumerate().flat_map(|(i, p)| p.with.iter().map(move |w| (i, *w))).collect();
        PhraseScanners {
            any: Scanner::new(any.iter().map(|(_, a)| *a)),
            any_owner: any.iter().map(|(i, _)| *i).collect(),
            with: Scanner::new(with.iter().map(|(_, w)| *w)),
            with_owner: with.iter().map(|(i, _)| *i).collect(),
        }
    })
}

/// The signs whose phrases appear in `lower` (lower case, whitespace squashed), in the order
/// their first phrase appears.
pub(crate) fn matching_phrases(lower: &str) -> Vec<&'static Phrase> {
    let table = phrases();
    let sc = phrase_scanners();
    let mut first: Vec<Option<usize>> = vec![None; table.len()];
    for (pat, start) in sc.any.matches(lower) {
        let slot = &mut first[sc.any_owner[pat]];
        if slot.is_none_or(|p| start < p) {
            *slot = Some(start);
        }
    }
    let mut with_seen = vec![false; table.len()];
    for (pat, _) in sc.with.matches(lower) {
        with_seen[sc.with_owner[pat]] = true;
    }
    let mut found: Vec<(usize, &Phrase)> = table
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let pos = first[i]?;
            (p.with.is_empty() || with_seen[i]).then_some((pos, p))
        })
        .collect();
    found.sort_by_key(|(pos, _)| *pos);
    found.into_iter().map(|(_, p)| p).collect()
}

// ----------------------------------------------------------------------------------------------
// Network signatures and localised texts
// ----------------------------------------------------------------------------------------------

fn network_signatures() -> &'static [(TransportKind, &'static str)] {
    static TABLE: OnceLock<Vec<(TransportKind, &'static str)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        rows(NETWORK_TSV)
            .filter_map(|c| {
                let [kind, sig] = c.as_slice() else { return None };
                Some((transport_kind(kind.trim())?, *sig))
            })
            .filter(|(_, sig)| !sig.is_empty())
            .collect()
    })
}

/// What a localised phrase means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Meaning {
    Status(u16),
    Transport(TransportKind),
}

struct Localized {
    meaning: Meaning,
    phrase: &'static str,
}

fn localized() -> &'static [Localized] {
    static TABLE: OnceLock<Vec<Localized>> = OnceLock::new();
    TABLE.get_or_init(|| {
        rows(LOCALIZED_TSV)
            .filter_map(|c| {
                let [_lang, meaning, phrase] = c.as_slice() else { return None };
                let meaning = match meaning.trim().parse::<u16>() {
                    Ok(n) if (400..600).contains(&n) => Meaning::Status(n),
                    Ok(_) => return None,
                    Err(_) => Meaning::Transport(transport_kind(meaning.trim())?),
                };
                Some(Localized { meaning, phrase: phrase.trim() })
            })
            .filter(|l| !l.phrase.is_empty())
            .collect()
    })
}

fn network_scanner() -> &'static Scanner {
    static SCANNER: OnceLock<Scanner> = OnceLock::new();
    SCANNER.get_or_init(|| Scanner::new(network_signatures().iter().map(|(_, sig)| *sig)))
}

fn localized_scanner() -> &'static Scanner {
    static SCANNER: OnceLock<Scanner> = OnceLock::new();
    SCANNER.get_or_init(|| Scanner::new(localized().iter().map(|l| l.phrase)))
}

/// The network failure named in `lower`: the English signatures first (in file order, which
/// puts the more specific kinds first), then the localised ones.
pub(crate) fn find_transport(lower: &str) -> Option<TransportKind> {
    let sigs = network_signatures();
    if let Some(i) = network_scanner().matches(lower).into_iter().map(|(i, _)| i).min() {
        return Some(sigs[i].0);
    }
    let table = localized();
    localized_scanner()
        .matches(lower)
        .into_iter()
        .filter_map(|(i, start)| match table[i].meaning {
            Meaning::Transport(kind) => Some((start, kind)),
            Meaning::Status(_) => None,
        })
        .min_by_key(|(start, _)| *start)
        .map(|(_, kind)| kind)
}

/// The HTTP status named by a localised phrase in `lower`, the earliest one when several are.
pub(crate) fn localized_status(lower: &str) -> Option<u16> {
    let table = localized();
    localized_scanner()
        .matches(lower)
        .into_iter()
        .filter_map(|(i, start)| match table[i].meaning {
            Meaning::Status(n) => Some((start, n)),
            Meaning::Transport(_) => None,
        })
        .min_by_key(|(start, _)| *start)
        .map(|(_, n)| n)
}

// ----------------------------------------------------------------------------------------------
// Partner Center codes
// ----------------------------------------------------------------------------------------------

/// One row of `data/partner_center_codes.tsv`.
pub(crate) struct PartnerCode {
    pub code: u32,
    pub cause: Cause,
    pub description: &'static str,
}

fn partner_center_codes() -> &'static [PartnerCode] {
    static TABLE: OnceLock<Vec<PartnerCode>> = OnceLock::new();
    TABLE.get_or_init(|| {
        rows(PARTNER_CENTER_TSV)
            .filter_map(|c| {
                let [code, cause, description] = c.as_slice() else { return None };
                Some(PartnerCode {
                    code: code.trim().parse().ok()?,
                    cause: cause.trim().parse().ok()?,
                    description: description.trim(),
                })
            })
            .collect()
    })
}

/// Words that only appear in text from Partner Center: its API host, the front door's `source`,
/// the SDK's and the PowerShell module's exception types, the module's `*-Partner*` cmdlets.
const PARTNER_CENTER_MARKERS: &[&str] = &[
    "api.partnercenter.microsoft.com",
    "partnercenter",
    "partner center",
    "partnerfd",
    "partnerexception",
    "partnerpsexception",
    "microsoft.store.partnercenter",
];

fn re_partner_cmdlet() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    // A literal pattern, checked by the unit tests.
    RE.get_or_init(|| Regex::new(r"\b(?:get|new|set|remove|add|connect|test|invoke)-partner[a-z]*\b").expect("valid"))
}

fn re_number() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r#"(code"?\s*[:=]\s*"?)?\b(\d{3,6})\b"#).expect("valid"))
}

/// Whether `lower` comes from Partner Center (its host, front door, SDK or PowerShell module).
pub(crate) fn is_partner_center_text(lower: &str) -> bool {
    PARTNER_CENTER_MARKERS.iter().any(|m| lower.contains(m)) || re_partner_cmdlet().is_match(lower)
}

/// The Partner Center code in `lower`, when the text is Partner Center's: either a documented
/// code followed by its documented description ("1002 Authorization Failed"), or a `code`
/// field holding a documented code in text that carries a Partner Center marker.
pub(crate) fn partner_center(lower: &str) -> Option<&'static PartnerCode> {
    let marked = is_partner_center_text(lower);
    for c in re_number().captures_iter(lower).take(64) {
        let (Some(m), field) = (c.get(2), c.get(1).is_some()) else { continue };
        let Ok(n) = m.as_str().parse::<u32>() else { continue };
        let Some(row) = partner_center_codes().iter().find(|r| r.code == n) else { continue };
        let after: String = lower[m.end()..].chars().take(120).collect();
        let description = row.description.to_lowercase();
        let described = after.contains(&description);
        if described && (marked || field || after.trim_start().starts_with(&description)) {
            return Some(row);
        }
        if marked && field {
            return Some(row);
        }
    }
    None
}

// ----------------------------------------------------------------------------------------------
// MSAL error codes
// ----------------------------------------------------------------------------------------------

/// One row of `data/msal_errors.tsv`.
pub(crate) struct MsalError {
    pub code: &'static str,
    pub cause: Cause,
    pub summary: &'static str,
}

fn msal_errors() -> &'static [MsalError] {
    static TABLE: OnceLock<Vec<MsalError>> = OnceLock::new();
    TABLE.get_or_init(|| {
        rows(MSAL_TSV)
            .filter_map(|c| {
                let [code, cause, _libraries, summary] = c.as_slice() else { return None };
                Some(MsalError { code: code.trim(), cause: cause.trim().parse().ok()?, summary: summary.trim() })
            })
            .collect()
    })
}

fn msal_scanner() -> &'static Scanner {
    static SCANNER: OnceLock<Scanner> = OnceLock::new();
    SCANNER.get_or_init(|| Scanner::new(msal_errors().iter().map(|e| e.code)))
}

/// The MSAL error codes named in `lower` as whole identifiers, earliest first, each once.
pub(crate) fn msal_errors_in(lower: &str) -> Vec<&'static MsalError> {
    let table = msal_errors();
    let mut found: Vec<(usize, usize)> = msal_scanner()
        .matches(lower)
        .into_iter()
        .filter(|(i, start)| is_whole_word(lower, *start, table[*i].code.len()))
        .map(|(i, start)| (start, i))
        .collect();
    found.sort_unstable();
    let mut seen = Vec::new();
    found
        .into_iter()
        .filter_map(|(_, i)| {
            if seen.contains(&i) {
                return None;
            }
            seen.push(i);
            Some(&table[i])
        })
        .collect()
}

// ----------------------------------------------------------------------------------------------
// AADSTS codes whose meaning depends on their text
// ----------------------------------------------------------------------------------------------

/// One row of `data/code_overrides.tsv`.
pub(crate) struct Override {
    pub code: u32,
    pub phrase: &'static str,
    pub cause: Cause,
    pub summary: &'static str,
}

fn overrides() -> &'static [Override] {
    static TABLE: OnceLock<Vec<Override>> = OnceLock::new();
    TABLE.get_or_init(|| {
        rows(OVERRIDES_TSV)
            .filter_map(|c| {
                let [code, phrase, cause, summary] = c.as_slice() else { return None };
                Some(Override {
                    code: code.trim().parse().ok()?,
                    phrase: phrase.trim(),
                    cause: cause.trim().parse().ok()?,
                    summary: summary.trim(),
                })
            })
            .collect()
    })
}

/// The override for `code` when its description or failure reason (`lower`) says so.
pub(crate) fn override_for(code: u32, lower: &str) -> Option<&'static Override> {
    overrides().iter().find(|o| o.code == code && lower.contains(o.phrase))
}

// ----------------------------------------------------------------------------------------------
// AADSTS names
// ----------------------------------------------------------------------------------------------

/// Microsoft's internal names of AADSTS codes (`UserStrongAuthExpired`), lower-cased, for the
/// names that belong to exactly one code and are long enough not to be ordinary words. Audit
/// logs and some libraries print the name without the number.
fn aadsts_names() -> &'static [(String, u32)] {
    static TABLE: OnceLock<Vec<(String, u32)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let table = crate::aadsts::reference_table();
        let mut names: Vec<(String, u32)> = Vec::new();
        for e in table {
            let name = e.name.trim();
            if name.len() < 14 || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
                continue;
            }
            if table.iter().filter(|o| o.name.eq_ignore_ascii_case(name)).count() == 1 {
                names.push((name.to_ascii_lowercase(), e.code));
            }
        }
        names
    })
}

fn names_scanner() -> &'static Scanner {
    static SCANNER: OnceLock<Scanner> = OnceLock::new();
    SCANNER.get_or_init(|| Scanner::new(aadsts_names().iter().map(|(n, _)| n.as_str())))
}

/// The AADSTS code whose name appears in `lower` as a whole identifier, the earliest one.
pub(crate) fn aadsts_by_name(lower: &str) -> Option<u32> {
    let names = aadsts_names();
    names_scanner()
        .matches(lower)
        .into_iter()
        .filter(|(i, start)| is_whole_word(lower, *start, names[*i].0.len()))
        .min_by_key(|(_, start)| *start)
        .map(|(i, _)| names[i].1)
}

/// Whether the `len` bytes at `start` of `hay` stand as a whole identifier.
fn is_whole_word(hay: &str, start: usize, len: usize) -> bool {
    let bytes = hay.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let end = start + len;
    (start == 0 || !is_ident(bytes[start - 1])) && (end >= bytes.len() || !is_ident(bytes[end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_row_parses() {
        assert_eq!(
            phrases().len(),
            data_lines(PHRASES_TSV) + data_lines(TOOL_MESSAGES_TSV),
            "a row of phrases.tsv or tool_messages.tsv does not parse"
        );
        assert_eq!(
            network_signatures().len(),
            data_lines(NETWORK_TSV),
            "a row of network_signatures.tsv does not parse"
        );
        assert_eq!(localized().len(), data_lines(LOCALIZED_TSV), "a row of localized_status.tsv does not parse");
        assert_eq!(
            partner_center_codes().len(),
            data_lines(PARTNER_CENTER_TSV),
            "a row of partner_center_codes.tsv does not parse"
        );
        assert_eq!(msal_errors().len(), data_lines(MSAL_TSV), "a row of msal_errors.tsv does not parse");
        assert_eq!(overrides().len(), data_lines(OVERRIDES_TSV), "a row of code_overrides.tsv does not parse");
        assert!(re_partner_cmdlet().is_match("get-partnercustomer"));
    }

    #[test]
    fn phrase_phrases_are_lower_case() {
        for p in phrases() {
            for a in p.any.iter().chain(&p.with) {
                assert_eq!(*a, a.to_lowercase(), "phrase {a:?} must be lower case");
            }
            assert!(p.confidence > 0.0 && p.confidence <= 0.76, "{:?} confidence out of range", p.any);
        }
    }

    #[test]
    fn codes_and_signatures_are_lower_case() {
        for e in msal_errors() {
            assert_eq!(e.code, e.code.to_lowercase(), "MSAL/ADAL code {:?} must be lower case", e.code);
        }
        for (_, sig) in network_signatures() {
            assert_eq!(*sig, sig.to_lowercase(), "network signature {sig:?} must be lower case");
        }
    }

    #[test]
    fn localized_texts_name_statuses_and_failures() {
        assert_eq!(localized_status("le serveur distant a retourné une erreur : (403) interdit."), Some(403));
        assert_eq!(
            localized_status("de externe server heeft een fout geretourneerd: (401) niet gemachtigd"),
            Some(401)
        );
        assert_eq!(
            find_transport("der remotename konnte nicht aufgelöst werden: 'graph.microsoft.com'"),
            Some(TransportKind::Dns)
        );
        assert_eq!(
            find_transport("curl: (7) failed to connect to graph.microsoft.com port 443"),
            Some(TransportKind::Connect)
        );
    }

    #[test]
    fn windows_network_texts_name_failures() {
        let cases = [
            ("winhttpexception: the server name or address could not be resolved", TransportKind::Dns),
            ("exception from hresult: 0x80072ee7", TransportKind::Dns),
            (
                "the winrm client cannot process the request because the server name cannot be resolved.",
                TransportKind::Dns,
            ),
            ("winhttpexception: a connection with the server could not be established", TransportKind::Connect),
            ("the client cannot connect to the destination specified in the request.", TransportKind::Connect),
            ("winhttpexception: the connection with the server was terminated abnormally", TransportKind::Reset),
            ("system.net.http.winhttpexception: a security error occurred", TransportKind::Tls),
            ("schannel: next initializesecuritycontext failed: sec_e_untrusted_root (0x80090325)", TransportKind::Tls),
            (
                "the client and server cannot communicate, because they do not possess a common algorithm",
                TransportKind::Tls,
            ),
            (
                "winrm cannot complete the operation. verify that the specified computer name is valid, that the computer is accessible over the network",
                TransportKind::Timeout,
            ),
        ];
        for (text, kind) in cases {
            assert_eq!(find_transport(text), Some(kind), "{text}");
        }
    }

    #[test]
    fn partner_center_codes_need_partner_center_text() {
        assert_eq!(partner_center("get-partnercustomer : 1002 authorization failed").map(|r| r.code), Some(1002));
        assert_eq!(
            partner_center(
                r#"{"code":20002,"description":"no relationship between caller and account.","source":"partnerfd"}"#
            )
            .map(|r| r.code),
            Some(20002)
        );
        assert!(partner_center("http 400 bad request from graph").is_none());
        assert!(partner_center("error 1002 in line 12").is_none());
    }

    #[test]
    fn msal_codes_and_aadsts_names() {
        let found = msal_errors_in("clientautherror: endpoints_resolution_error: endpoints cannot be resolved");
        assert_eq!(found.first().map(|e| e.cause), Some(Cause::NetworkUnreachable));
        assert_eq!(aadsts_by_name("i'm getting a `userstrongauthexpired` (50078)"), Some(50078));
        // ADAL's codes, its upper-case enum names read in lower case.
        let found = msal_errors_in("authenticationexception: developer_authority_is_not_valid_instance");
        assert_eq!(found.first().map(|e| e.cause), Some(Cause::WrongCloud));
        let found = msal_errors_in("adalexception: authority_not_in_valid_list: 'authority' is not in the list");
        assert_eq!(found.first().map(|e| e.cause), Some(Cause::WrongCloud));
        assert!(msal_errors_in("my_authority_not_in_valid_list_helper").is_empty());
    }
}
