//! Every `tenantscope` command the README and docs/ show is held to the binary, so that the two
//! cannot drift apart:
//!
//! - each one is checked against the command's own `--help`: the subcommands exist, every option it
//!   names exists, and it gives no more bare arguments than the command takes;
//! - each one without a placeholder (`T`, `<id>`, `DATE`, ...) and that neither signs in nor starts
//!   a server is run against the demo world, signed in and inspected, and must not fail to run (exit
//!   status 2) or panic.
//!
//! Examples come from fenced `sh` blocks (lines that start with `tenantscope`) and from inline code
//! spans that start with `tenantscope`.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{DEMO_CLIENT, Env, MEGAN};
use sim::WorldSource;

#[derive(Debug, Clone)]
struct Example {
    place: String,
    text: String,
    /// In a fenced block: an example to run. Inline, a command named in prose, which is run only
    /// when it gives options or arguments.
    fenced: bool,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn documents() -> Vec<PathBuf> {
    let root = repo_root();
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The examples of one document: fenced `sh` lines and inline spans that start with `tenantscope`.
fn examples_of(name: &str, text: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut fence: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let place = format!("{name}:{}", n + 1);
        let trimmed = line.trim_start();
        if let Some(lang) = trimmed.strip_prefix("```") {
            fence = if fence.is_some() { None } else { Some(lang.trim().to_string()) };
            continue;
        }
        match &fence {
            Some(lang) if lang == "sh" => {
                if trimmed.starts_with("tenantscope ") {
                    // A comment starts at a `#` after whitespace; none of the examples quote one.
                    let command = match trimmed.find(" #") {
                        Some(i) => &trimmed[..i],
                        None => trimmed,
                    };
                    out.push(Example { place, text: command.trim().to_string(), fenced: true });
                }
            }
            Some(_) => {}
            None => {
                let mut rest = line;
                while let Some(start) = rest.find('`') {
                    let after = &rest[start + 1..];
                    let Some(end) = after.find('`') else { break };
                    let span = &after[..end];
                    if span.starts_with("tenantscope ") {
                        out.push(Example { place: place.clone(), text: span.to_string(), fenced: false });
                    }
                    rest = &after[end + 1..];
                }
            }
        }
    }
    out
}

fn all_examples() -> Vec<Example> {
    let root = repo_root();
    documents()
        .iter()
        .flat_map(|path| {
            let text = std::fs::read_to_string(path).expect("readable");
            let name = path.strip_prefix(&root).unwrap_or(path).display().to_string();
            examples_of(&name, &text)
        })
        .collect()
}

/// What `--help` says of a command: its subcommands, its options (and whether each takes a value),
/// and how many bare arguments it takes (`None`: any number).
#[derive(Debug, Default)]
struct Help {
    subcommands: Vec<String>,
    options: HashMap<String, bool>,
    positionals: Option<usize>,
}

fn help(path: &[String]) -> Help {
    let out = std::process::Command::new(common::BIN).args(path).arg("--help").output().expect("help runs");
    assert!(out.status.success(), "`tenantscope {} --help` fails", path.join(" "));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut h = Help::default();
    let mut section = "";
    for line in text.lines() {
        if let Some(usage) = line.strip_prefix("Usage: ") {
            let words: Vec<&str> = usage.split_whitespace().collect();
            let mut count = 0;
            let mut any = false;
            for (i, w) in words.iter().enumerate() {
                let is_value = i > 0 && words[i - 1].starts_with("--");
                if (w.starts_with('<') || w.starts_with('[')) && !is_value && *w != "[OPTIONS]" && *w != "<COMMAND>" {
                    count += 1;
                    any |= w.contains("...");
                }
            }
            h.positionals = if any { None } else { Some(count) };
            continue;
        }
        if line.ends_with(':') && !line.starts_with(' ') {
            section = line.trim_end_matches(':');
            continue;
        }
        let t = line.trim_start();
        match section {
            "Commands" if line.starts_with("  ") && !line.starts_with("      ") => {
                if let Some(name) = t.split_whitespace().next() {
                    h.subcommands.push(name.to_string());
                }
            }
            "Options" if t.starts_with('-') => {
                let mut words = t.split_whitespace().peekable();
                while let Some(w) = words.next() {
                    let w = w.trim_end_matches(',');
                    if !w.starts_with('-') {
                        break;
                    }
                    let takes = words.peek().is_some_and(|n| n.starts_with('<') || n.starts_with('['));
                    h.options.insert(w.to_string(), takes);
                }
            }
            _ => {}
        }
    }
    h
}

/// A synopsis's words without its notation: brackets and groups dropped, a repetition mark (`...`
/// after a word or a bracket) dropped, a `...` standing alone kept as a value (`--tenant ...`), a
/// `<placeholder with spaces>` kept as one word, and of `a|b` alternatives the first kept.
fn words(text: &str) -> Vec<String> {
    let mut joined = String::new();
    let mut in_angle = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '<' if !in_angle && chars.peek().is_some_and(|n| !n.is_whitespace()) => in_angle = true,
            '>' if in_angle => in_angle = false,
            ' ' if in_angle => {
                joined.push('_');
                continue;
            }
            _ => {}
        }
        joined.push(c);
    }
    // Repetition marks go first (`]...`, `word...`), then the brackets; a `...` left standing alone
    // stands for a value.
    let cleaned: String = joined
        .replace('…', "...")
        .replace("]...", "]")
        .replace(")...", ")")
        .split_whitespace()
        .map(|w| match w.trim_start_matches(['[', '(']).trim_end_matches([']', ')']) {
            "..." => w.to_string(),
            _ => w.replace("...", ""),
        })
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .map(|c| if matches!(c, '[' | ']' | '(' | ')') { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .map(|w| if w == "..." { "VALUE" } else { w })
        .collect::<Vec<_>>()
        .join(" ");
    let words = shlex::split(&cleaned).unwrap_or_else(|| cleaned.split_whitespace().map(String::from).collect());
    words
        .into_iter()
        .filter(|w| w != "|")
        .map(|w| match w.find('|') {
            Some(0) | None => w,
            Some(i) => w[..i].to_string(),
        })
        .collect()
}

/// A word that stands for a value rather than being one.
fn is_placeholder(word: &str) -> bool {
    let bare = word.trim_end_matches(".pem");
    (word.starts_with('<') && word.ends_with('>'))
        || word.contains('{')
        || (!bare.is_empty() && bare.chars().all(|c| c.is_ascii_uppercase() || c == '_' || c == '-'))
}

/// Checks an example against `--help`; returns its words after `tenantscope` and whether it names a
/// placeholder, or what is wrong.
fn check(e: &Example, helps: &mut HashMap<Vec<String>, Help>) -> Result<(Vec<String>, bool), String> {
    let all = words(&e.text);
    let args: Vec<String> = all.into_iter().skip(1).collect();
    let mut path: Vec<String> = Vec::new();
    let mut i = 0;
    let mut positionals = 0;
    let mut placeholder = false;
    loop {
        let h = helps.entry(path.clone()).or_insert_with(|| help(&path));
        match args.get(i) {
            Some(w) if !w.starts_with('-') && h.subcommands.iter().any(|s| s == w) => {
                path.push(w.clone());
                i += 1;
            }
            Some(w) if path.is_empty() && !w.starts_with('-') => {
                // A synopsis such as `tenantscope [GLOBAL OPTIONS] <COMMAND>` names no command.
                if is_placeholder(w) {
                    return Ok((Vec::new(), true));
                }
                return Err(format!("`{w}` is not a tenantscope command"));
            }
            _ => break,
        }
    }
    let h = helps.entry(path.clone()).or_insert_with(|| help(&path));
    while let Some(w) = args.get(i) {
        i += 1;
        if w == "<" {
            // A shell redirection: the file is standard input, not an argument.
            i += 1;
            continue;
        }
        if w.starts_with('-') && w.len() > 1 {
            let (flag, inline) = match w.split_once('=') {
                Some((f, _)) => (f, true),
                None => (w.as_str(), false),
            };
            let Some(&takes) = h.options.get(flag) else {
                return Err(format!("`tenantscope {}` has no option {flag}", path.join(" ")));
            };
            if takes && !inline {
                match args.get(i) {
                    Some(v) => {
                        placeholder |= is_placeholder(v);
                        i += 1;
                    }
                    None => return Err(format!("{flag} needs a value")),
                }
            }
            continue;
        }
        placeholder |= is_placeholder(w);
        positionals += 1;
    }
    if let Some(max) = h.positionals
        && positionals > max
    {
        return Err(format!(
            "`tenantscope {}` takes {max} bare argument(s); the example gives {positionals}",
            path.join(" ")
        ));
    }
    Ok((args, placeholder))
}

/// How many of the words name (sub)commands.
fn command_path_len(args: &[String], helps: &mut HashMap<Vec<String>, Help>) -> usize {
    let mut path: Vec<String> = Vec::new();
    for a in args {
        let h = helps.entry(path.clone()).or_insert_with(|| help(&path));
        if !h.subcommands.iter().any(|s| s == a) {
            break;
        }
        path.push(a.clone());
    }
    path.len()
}

/// Commands that sign in, sign out, start a server, an agent (which reaches a server) or the demo,
/// and those that delete data or write files wherever the example says (`forget`, `db`): checked,
/// not run. Their own tests run them.
fn runnable(args: &[String]) -> bool {
    !matches!(
        args.first().map(String::as_str),
        Some("login" | "logout" | "demo" | "sim" | "serve" | "hash-password" | "agent" | "forget" | "db") | None
    )
}

#[test]
fn every_documented_command_matches_the_cli() {
    let examples = all_examples();
    assert!(examples.len() > 40, "the docs show commands: found {}", examples.len());
    let mut helps = HashMap::new();
    let problems: Vec<String> = examples
        .iter()
        .filter_map(|e| check(e, &mut helps).err().map(|why| format!("{}: `{}`: {why}", e.place, e.text)))
        .collect();
    assert!(problems.is_empty(), "documented commands the CLI does not accept:\n{}", problems.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_concrete_documented_command_runs_against_the_demo_world() {
    let env = Env::start(WorldSource::Demo).await;
    env.login(MEGAN, &[]).await;
    let first = env.run(&["inspect", "--json"]);
    assert!(first.status.code().is_some_and(|c| c < 2), "{}", String::from_utf8_lossy(&first.stderr));
    let cwd = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        cwd.path().join("error.txt"),
        "AADSTS50076: Due to a configuration change made by your administrator, or because you moved to a new \
         location, you must use multi-factor authentication to access '00000003-0000-0000-c000-000000000000'.",
    )
    .expect("fixture");
    let mut helps = HashMap::new();
    let mut ran = 0;
    let mut failures = Vec::new();
    for e in all_examples() {
        let Ok((args, placeholder)) = check(&e, &mut helps) else { continue };
        let names_only = args.iter().all(|a| !a.starts_with('-')) && !e.text.contains(['<', '=']);
        let mentioned = !e.fenced && names_only && command_path_len(&args, &mut helps) == args.len();
        if placeholder || mentioned || !runnable(&args) {
            continue;
        }
        let args: Vec<String> = args.into_iter().map(|a| a.replace("<your_app_id>", DEMO_CLIENT)).collect();
        let (args, stdin) = match args.iter().position(|a| a == "<") {
            Some(at) => {
                let file = std::fs::File::open(cwd.path().join(&args[at + 1])).expect("stdin fixture");
                (args[..at].to_vec(), Stdio::from(file))
            }
            None => (args, Stdio::null()),
        };
        let out = env.command().args(&args).current_dir(cwd.path()).stdin(stdin).output().expect("binary runs");
        ran += 1;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code().is_none_or(|c| c >= 2) || stderr.contains("panicked") {
            failures.push(format!("{}: `{}` exited {:?}: {}", e.place, e.text, out.status.code(), stderr.trim()));
        }
    }
    assert!(ran >= 10, "only {ran} documented commands were concrete enough to run");
    assert!(failures.is_empty(), "documented commands that fail against the demo world:\n{}", failures.join("\n"));
}
