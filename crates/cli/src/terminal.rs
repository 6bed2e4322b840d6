//! What the binary prints. Every `print!`, `println!`, `eprint!` and `eprintln!` of this crate
//! comes here (`main.rs` shadows the standard macros), because much of what is printed comes from
//! customer tenants: a customer's admin names the tenant, its users, groups and apps, and a name
//! can hold escape sequences that recolour, retitle or rewrite the operator's terminal, or
//! bidirectional overrides that make text read differently from what it is.
//!
//! Such characters are written as `\uXXXX`: visible and harmless on a terminal, and, inside a JSON
//! string of `--json` output, the JSON escape of the very same character, so data stays exact.

use std::borrow::Cow;

/// Whether a character must not reach a terminal as itself.
fn dangerous(c: char) -> bool {
    match c {
        '\n' | '\t' => false,
        // C0 and C1 controls (ESC starts ANSI and OSC sequences, CR rewrites the line) and DEL.
        c if c.is_control() => true,
        // Bidirectional marks, embeddings, overrides and isolates.
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => true,
        _ => false,
    }
}

/// `text` with every dangerous character written as `\uXXXX`.
pub fn safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(dangerous) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if dangerous(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Writes to standard output (a closed pipe ends the process quietly, see `main.rs`).
pub fn out(text: &str) {
    ::std::print!("{}", safe(text));
}

/// Writes to standard error.
pub fn err(text: &str) {
    ::std::eprint!("{}", safe(text));
}

#[cfg(test)]
mod tests {
    use super::safe;

    #[test]
    fn escapes_and_overrides_are_made_visible() {
        assert_eq!(safe("Contoso \u{1b}]0;pwned\u{7}Ltd"), "Contoso \\u001b]0;pwned\\u0007Ltd");
        assert_eq!(safe("\u{1b}[2J\u{1b}[31mred"), "\\u001b[2J\\u001b[31mred");
        assert_eq!(safe("admin\u{202E}txt.exe"), "admin\\u202etxt.exe");
        assert_eq!(safe("a\rb\u{0}c\u{9b}d"), "a\\u000db\\u0000c\\u009bd");
        assert_eq!(safe("line\n\tindented"), "line\n\tindented");
        // Ordinary text, accents, scripts and emoji pass untouched (and unallocated).
        for fine in ["Café Zürich", "株式会社", "👩‍💻 team", "שלום"] {
            assert!(matches!(safe(fine), std::borrow::Cow::Borrowed(_)), "{fine}");
        }
    }

    #[test]
    fn json_output_keeps_its_data() {
        let value = serde_json::json!({"name": "evil\u{202E}name", "esc": "\u{1b}[31m"});
        let printed = safe(&serde_json::to_string(&value).expect("json")).into_owned();
        let back: serde_json::Value = serde_json::from_str(&printed).expect("still JSON");
        assert_eq!(back, value);
        assert!(!printed.contains('\u{202E}') && !printed.contains('\u{1b}'));
    }
}
