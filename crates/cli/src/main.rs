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

// An inspection parses, hashes and drops hundreds of megabytes of small JSON values on every runtime
// thread; with mimalloc it takes about a fifth less CPU than with glibc's malloc (docs/performance.md,
// "Inspection").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    quiet_on_closed_pipe();
    let cli = commands::Cli::parse();
    // The simulator serves many small requests from every thread and keeps the allocators' defaults.
    if !matches!(cli.command, commands::Command::Sim(_)) {
        limit_malloc_arenas();
        return_memory_promptly();
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
/// Rust's allocations go to mimalloc; what still uses glibc's malloc is the C code, SQLite's page
/// cache and statements above all. glibc gives threads that contend for the allocator arenas of their
/// own, up to eight per core, and memory freed into one arena is not reused for another's
/// allocations; SQLite's work moves between sqlx's worker threads, so the cap keeps its memory in two.
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

/// mimalloc's purge delay, by its index in `mi_option_t` (mimalloc v3, the version libmimalloc-sys
/// builds by default), which the sys crate does not name; a test checks it against its default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Has mimalloc hand freed memory back at once, and the process use ordinary pages, unless
/// `MIMALLOC_PURGE_DELAY` or `MIMALLOC_ALLOW_THP` say otherwise.
///
/// By default mimalloc keeps freed memory for a second and asks for 2 MiB transparent huge pages for
/// its arenas, each resident as a whole once touched: the first run of the 1,000-customer benchmark
/// then peaked at 364 to 397 MiB (docs/performance.md, "Inspection"). The arena is reserved by the
/// first allocation, before `main`, so huge pages are turned off for the process itself
/// (`PR_SET_THP_DISABLE`, which page faults from then on obey) rather than through mimalloc's option,
/// which would come too late. The simulator keeps the defaults.
fn return_memory_promptly() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: setting an option only changes a tunable mimalloc reads each time it purges.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: PR_SET_THP_DISABLE takes plain integers and only sets a flag of this process; its
        // result only says whether the kernel knows the flag.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
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
    fn mimalloc_purge_delay_is_the_option_meant() {
        // Its default identifies it: a mimalloc whose enumeration moved fails here instead of
        // silently setting some other option.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: reading an option has no effect beyond initialising it from the environment.
            assert_eq!(unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) }, 1000);
        }
    }

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
