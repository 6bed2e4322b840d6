//! Text from tenants and from diagnoses, made safe for HTML and readable.
//!
//! Everything that reaches a page is escaped: a customer's administrator can name a user
//! `<script>`. Fix steps and summaries are written with `backticked` commands and bare URLs;
//! [`rich`] escapes them and then shows commands in monospace and URLs as links.

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A word for a POSIX shell command line: as it is when it holds only safe characters, else in
/// single quotes (a quote inside closes, escapes and reopens them). The page escapes it for HTML
/// on top, so a name typed by an administrator is copied as one argument.
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "._-/:@=".contains(c)) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Escapes `text`, then turns `backticked` spans into `<code>` and `https://` URLs into links that
/// open in a new tab. The result is safe to insert unescaped.
pub fn rich(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in text.split('`').enumerate() {
        // Odd parts were between backticks; an unpaired backtick leaves the last part as text.
        if i % 2 == 1 && text.split('`').count() > i + 1 {
            out.push_str("<code>");
            out.push_str(&esc(part));
            out.push_str("</code>");
        } else {
            if i % 2 == 1 {
                out.push('`');
            }
            out.push_str(&linkify(part));
        }
    }
    out
}

/// Escapes text and links its `https://` URLs.
fn linkify(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("https://") {
        out.push_str(&esc(&rest[..at]));
        let tail = &rest[at..];
        let mut end =
            tail.find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\'')).unwrap_or(tail.len());
        // Sentence punctuation and a closing parenthesis that opened before the URL are not part of it.
        while end > 8 && tail[..end].ends_with(['.', ',', ';', ':', ')', ']']) {
            let last = &tail[end - 1..end];
            if last == ")" && tail[..end].matches('(').count() >= tail[..end].matches(')').count() {
                break;
            }
            end -= 1;
        }
        let url = &tail[..end];
        out.push_str(&format!("<a href=\"{0}\" rel=\"noopener noreferrer\" target=\"_blank\">{0}</a>", esc(url)));
        rest = &tail[end..];
    }
    out.push_str(&esc(rest));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_stay_one_argument() {
        assert_eq!(shell_quote("dc1-agent-1"), "dc1-agent-1");
        assert_eq!(shell_quote("https://ts.example.com:8443"), "https://ts.example.com:8443");
        assert_eq!(shell_quote("my agent"), "'my agent'");
        assert_eq!(shell_quote("a'b; rm -rf /"), "'a'\\''b; rm -rf /'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn commands_become_code_and_urls_links_and_nothing_escapes() {
        let r =
            rich("Run `tenantscope inspect --tenant <x>` then open https://entra.microsoft.com/#view/X (the portal).");
        assert_eq!(
            r,
            "Run <code>tenantscope inspect --tenant &lt;x&gt;</code> then open <a href=\"https://entra.microsoft.com/#view/X\" rel=\"noopener noreferrer\" target=\"_blank\">https://entra.microsoft.com/#view/X</a> (the portal)."
        );
        assert_eq!(rich("<script>alert(1)</script>"), "&lt;script&gt;alert(1)&lt;/script&gt;");
        assert_eq!(rich("a `b"), "a `b");
        assert!(!rich("https://x.example/\"onmouseover=alert(1)").contains("\"onmouseover"));
        // A URL inside parentheses keeps its own parentheses and drops the closing one.
        assert!(rich("(see https://aka.ms/mfasetup)").ends_with("</a>)"));
    }
}
