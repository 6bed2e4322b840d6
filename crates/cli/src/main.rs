//! `tenantscope`: inspect the Microsoft 365 tenants an MSP manages, and say exactly why when Microsoft
//! says no. This binary is thin: it parses the command line, calls the library crates and prints.

// Everything this crate prints goes through `terminal`, which neutralises escape sequences and
// bidirectional overrides from tenant data; these shadow the standard macros in every module below.
macro_rules! print {
    ($($arg:tt)*) => { $crate::terminal::out(&format!($($arg)*)) };
}
macro_rules! println {
    () => { $crate::terminal::out("\n") };
    ($($arg:tt)*) => { $crate::terminal::out(&format!("{}\n", format_args!($($arg)*))) };
}
// Unused today, defined so that a later `eprint!` cannot bypass the filter.
#[allow(unused_macros)]
macro_rules! eprint {
    ($($arg:tt)*) => { $crate::terminal::err(&format!($($arg)*)) };
}
macro_rules! eprintln {
    () => { $crate::terminal::err("\n") };
    ($($arg:tt)*) => { $crate::terminal::err(&format!("{}\n", format_args!($($arg)*))) };
}

mod commands;
mod context;
mod terminal;

use clap::Parser;

fn main() -> std::process::ExitCode {
    quiet_on_closed_pipe();
    let cli = commands::Cli::parse();
    // The simulator serves many small requests from every thread and keeps glibc's default.
    if !matches!(cli.command, commands::Command::Sim(_)) {
        limit_malloc_arenas();
    }
    init_tracing(cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            std::process::ExitCode::from(2)
        }
    }
}

/// The error and its causes on one line, each said once. Library errors often repeat their
/// source's text in their own (`database error: {0}` over the SQLite error, over the I/O error),
/// so a cause whose text the line already holds adds nothing and is left out.
fn error_text(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Ends the process quietly with status 0 when standard output (or error) is closed early
/// (`tenantscope tenants | head -1`), as other command-line tools do, instead of panicking.
///
/// Rust ignores SIGPIPE, so a write to a closed pipe fails with EPIPE and `println!` panics with
/// "failed printing to stdout: Broken pipe". The panic hook recognises exactly that and exits; every
/// other panic is reported as before.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        let closed =
            message.starts_with("failed printing to stdout") || message.starts_with("failed printing to stderr");
        if closed && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// Caps glibc's malloc at two arenas, unless `MALLOC_ARENA_MAX` says otherwise. Called before the
/// runtime starts any thread.
///
/// glibc gives threads that contend for the allocator arenas of their own, up to eight per core, and
/// memory freed into one arena is not reused for another's allocations. An inspection parses and
/// drops large JSON documents on whichever runtime or blocking thread is free, so with the default
/// an unchanged run of the 1,000-customer benchmark peaked at 314 MiB; with two arenas, 185 to
/// 206 MiB, for 5 to 6 seconds more on a 22-second run (docs/performance.md). Scheduled runs are
/// mostly such runs, on machines where memory is the scarcer resource.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes a tunable of the allocator and is called before this process
        // starts any thread; its result only says whether the value was accepted.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,tenantscope=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TENANTSCOPE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).try_init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_cause_of_an_error_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "Permission denied (os error 13)");
        let e = anyhow::Error::new(io)
            .context("I/O error on /data/key: Permission denied (os error 13)")
            .context("cannot load the encryption key");
        assert_eq!(
            super::error_text(&e),
            "cannot load the encryption key: I/O error on /data/key: Permission denied (os error 13)"
        );
    }
}
