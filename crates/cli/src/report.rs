//! Errors as people read them: the message, then each cause that adds something, and never
//! a stack backtrace (whatever `RUST_BACKTRACE` says). Used by `acr` and `cargo xtask`.

use std::error::Error;

/// The message of `error`, then the messages of its causes (`source()` chain), leaving out a
/// cause whose text an earlier line already contains (errors that print their cause inline).
///
/// ```
/// use acr_import_cli::report::error_lines;
///
/// let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
/// #[derive(Debug)]
/// struct Reading(std::io::Error);
/// impl std::fmt::Display for Reading {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("reading the batch file")
///     }
/// }
/// impl std::error::Error for Reading {
///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
///         Some(&self.0)
///     }
/// }
/// assert_eq!(error_lines(&Reading(io)), ["reading the batch file", "no such file"]);
/// ```
pub fn error_lines(error: &(dyn Error + 'static)) -> Vec<String> {
    let mut lines = vec![error.to_string()];
    let mut cause = error.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !text.is_empty() && !lines.iter().any(|l| l.contains(&text)) {
            lines.push(text);
        }
        cause = c.source();
    }
    lines
}

/// Writes `error` to standard error as `{label}: message` and one `  caused by: …` line per
/// cause.
pub fn print_error(label: &str, error: &(dyn Error + 'static)) {
    let lines = error_lines(error);
    let mut lines = lines.iter();
    if let Some(first) = lines.next() {
        eprintln!("{label}: {first}");
    }
    for cause in lines {
        eprintln!("  caused by: {cause}");
    }
}

/// Replaces the panic message with one line, `{label}: internal error: … at file:line`,
/// and no backtrace: a panic is a bug to report, not something to debug from a user's
/// terminal. A panic while writing to a closed pipe (`acr … | head -1`) ends the process
/// quietly with status 0, as the reader asked for no more.
pub fn quiet_panics(label: &'static str) {
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        if message.contains("Broken pipe") || message.contains("os error 32") {
            std::process::exit(0);
        }
        match info.location() {
            Some(l) => eprintln!(
                "{label}: internal error: {message} at {}:{}",
                l.file(),
                l.line()
            ),
            None => eprintln!("{label}: internal error: {message}"),
        }
    }));
}
