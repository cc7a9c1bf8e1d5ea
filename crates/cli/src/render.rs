//! Output: formats, progress, logging.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use acr_import_transfer::RateLimitWait;
use acr_import_transfer::copy::{BlobAction, Progress, human_bytes};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tokio::sync::mpsc::UnboundedReceiver;

use acr_import_cli::args::{Global, OutputFormat};

pub fn init_logging(g: &Global) {
    // --debug: each request (method, URL without secrets, status, duration) and what our
    // crates say at debug level, not the connection pool's chatter (RUST_LOG shows that).
    let default = if g.debug {
        "warn,acr_import::http=debug,acr_import_transfer=debug,acr_import_acr=debug,acr_import_auth=debug,acr=debug"
    } else if g.verbose {
        "info"
    } else if g.only_show_errors {
        "error"
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Writes `bytes` to standard output. A closed pipe (`acr … | head -1`) is not an error:
/// the reader wanted no more.
pub fn out(bytes: &[u8]) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(bytes).and_then(|()| stdout.flush());
}

/// Writes one line to standard output (see [`out`]).
pub fn line(text: &str) {
    out(format!("{text}\n").as_bytes());
}

/// Warnings go to stderr unless `--only-show-errors`.
pub fn warn(g: &Global, text: &str) {
    if !g.only_show_errors {
        eprintln!("WARNING: {text}");
    }
}

/// Prints `value` in the chosen format (`default` when none was chosen).
pub fn print<T: Serialize>(value: &T, format: OutputFormat) -> Result<(), crate::Failure> {
    let mut out = std::io::stdout().lock();
    let text = match format {
        OutputFormat::None => return Ok(()),
        OutputFormat::Json | OutputFormat::Jsonc => serde_json::to_string_pretty(value)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string()),
        OutputFormat::Yaml => serde_norway::to_string(value).map_err(|e| e.to_string()),
        OutputFormat::Table => to_rows(value).map(|rows| table(&rows)),
        OutputFormat::Tsv => to_rows(value).map(|rows| {
            rows.iter()
                .skip(1)
                .map(|r| r.join("\t") + "\n")
                .collect::<String>()
        }),
    }
    .map_err(|e| {
        crate::Failure::new(
            crate::exit::FAILED,
            format!("cannot render the output: {e}"),
        )
    })?;
    let _ = out.write_all(text.as_bytes());
    Ok(())
}

/// Rows for table/tsv: a header from the first object's keys, one row per object, as `az`
/// flattens lists of objects (nested values shown as JSON).
fn to_rows<T: Serialize>(value: &T) -> Result<Vec<Vec<String>>, String> {
    let v = serde_json::to_value(value).map_err(|e| e.to_string())?;
    let items: Vec<serde_json::Value> = match v {
        serde_json::Value::Array(a) => a,
        other => vec![other],
    };
    let mut header: Vec<String> = Vec::new();
    for item in &items {
        if let serde_json::Value::Object(m) = item {
            for k in m.keys() {
                if !header.contains(k) {
                    header.push(k.clone());
                }
            }
        }
    }
    if header.is_empty() {
        return Ok(std::iter::once(vec!["Result".to_owned()])
            .chain(items.iter().map(|i| vec![cell(i)]))
            .collect());
    }
    let mut rows = vec![header.iter().map(|h| title(h)).collect::<Vec<_>>()];
    for item in &items {
        rows.push(
            header
                .iter()
                .map(|h| item.get(h).map(cell).unwrap_or_default())
                .collect(),
        );
    }
    Ok(rows)
}

fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        serde_json::Value::Array(a) if a.iter().all(|x| x.is_string()) => a
            .iter()
            .filter_map(|x| x.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

fn title(key: &str) -> String {
    let mut out = String::new();
    let mut upper = true;
    for c in key.chars() {
        if c == '_' || c == '-' {
            upper = true;
            continue;
        }
        if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn table(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (n, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if n == 0 {
            out.push_str(
                &widths
                    .iter()
                    .map(|w| "-".repeat(*w))
                    .collect::<Vec<_>>()
                    .join("  "),
            );
            out.push('\n');
        }
    }
    out
}

/// The progress frame: the bars and the overall line that ticks on its own.
#[derive(Clone, Debug)]
pub struct ProgressDisplay {
    multi: MultiProgress,
    overall: ProgressBar,
}

impl ProgressDisplay {
    /// Bars on standard error when it is a terminal (and not `quiet`), nowhere otherwise.
    pub fn new(quiet: bool) -> Self {
        let tty = std::io::stderr().is_terminal() && !quiet;
        Self::with_target(if tty {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        })
    }

    fn with_target(target: ProgressDrawTarget) -> Self {
        let multi = MultiProgress::with_draw_target(target);
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template(
                "{spinner} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self { multi, overall }
    }

    /// Removes the frame from the terminal for good (before an interrupt's message): the
    /// ticking stops, the lines drawn are cleared, and nothing draws again.
    pub fn clear(&self) {
        self.overall.disable_steady_tick();
        let _ = self.multi.clear();
        self.multi.set_draw_target(ProgressDrawTarget::hidden());
    }
}

/// Renders progress events: bars on a terminal, plain lines (with `--verbose`) otherwise.
pub async fn progress(
    mut rx: UnboundedReceiver<Progress>,
    display: ProgressDisplay,
    g_verbose: bool,
    quiet: bool,
) {
    let ProgressDisplay { multi, overall } = display;
    let tty = !multi.is_hidden();
    overall.enable_steady_tick(Duration::from_millis(200));
    let mut bars: std::collections::HashMap<String, ProgressBar> = std::collections::HashMap::new();
    let mut waited: Option<String> = None;
    while let Some(event) = rx.recv().await {
        match event {
            Progress::Planned { blobs, bytes } => {
                overall.set_length(bytes);
                overall.set_message(format!("{blobs} blobs"));
            }
            Progress::BlobStarted { digest, size } => {
                let bar = multi.add(ProgressBar::new(size));
                bar.set_style(
                    ProgressStyle::with_template("  {msg:19} {bar:30} {bytes}/{total_bytes}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.set_message(short(&digest));
                bars.insert(digest, bar);
            }
            Progress::BlobBytes { digest, bytes } => {
                overall.inc(bytes);
                if let Some(b) = bars.get(&digest) {
                    b.inc(bytes);
                }
            }
            Progress::BlobDone { digest, action } => {
                if let Some(b) = bars.remove(&digest) {
                    b.finish_and_clear();
                    multi.remove(&b);
                }
                if !tty && g_verbose && !quiet {
                    eprintln!("{} {}", action_word(action), short(&digest));
                }
            }
            Progress::BlobRetried { digest, error } if !quiet => {
                let _ = multi.println(format!("retrying {}: {error}", short(&digest)));
                if !tty {
                    eprintln!("retrying {}: {error}", short(&digest));
                }
            }
            Progress::Note(n) if !quiet && (g_verbose || !n.starts_with("referrer ")) => {
                if tty {
                    let _ = multi.println(format!("note: {n}"));
                } else {
                    eprintln!("note: {n}");
                }
            }
            Progress::TagWritten { target } if !tty && g_verbose && !quiet => {
                eprintln!("tagged {target}");
            }
            Progress::RateLimitWait(w) if !quiet => countdown(&overall, &w, tty, &mut waited),
            _ => {}
        }
    }
    overall.finish_and_clear();
}

/// A rate-limit wait: the countdown on the progress line of a terminal; otherwise a line when
/// a wait starts and then once a minute.
fn countdown(overall: &ProgressBar, w: &RateLimitWait, tty: bool, waited: &mut Option<String>) {
    let text = w.to_string();
    if tty {
        overall.set_message(text);
        return;
    }
    let first = waited.as_deref() != Some(w.registry.as_str());
    if first || w.left.as_secs().is_multiple_of(60) {
        eprintln!("{text}");
    }
    *waited = Some(w.registry.clone());
}

fn action_word(a: BlobAction) -> &'static str {
    match a {
        BlobAction::Copied => "copied",
        BlobAction::Mounted => "mounted",
        BlobAction::Skipped => "skipped",
        BlobAction::Foreign => "foreign",
        BlobAction::WouldCopy => "would copy",
        BlobAction::WouldMount => "would mount",
    }
}

fn short(digest: &str) -> String {
    digest.chars().take(19).collect()
}

/// `12.3 MiB`, re-exported for the summary.
pub fn bytes(n: u64) -> String {
    human_bytes(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A terminal that keeps what is on screen, line by line.
    #[derive(Debug, Default, Clone)]
    struct Screen(std::sync::Arc<std::sync::Mutex<(Vec<String>, usize)>>);

    impl Screen {
        fn visible(&self) -> Vec<String> {
            let s = self.0.lock().unwrap();
            s.0.iter().filter(|l| !l.is_empty()).cloned().collect()
        }
        fn edit(&self, f: impl FnOnce(&mut Vec<String>, &mut usize)) -> std::io::Result<()> {
            let mut s = self.0.lock().unwrap();
            let (lines, row) = &mut *s;
            f(lines, row);
            Ok(())
        }
    }

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            80
        }
        fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
            self.edit(|_, row| *row = row.saturating_sub(n))
        }
        fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
            self.edit(|_, row| *row += n)
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, text: &str) -> std::io::Result<()> {
            self.write_str(text)?;
            self.edit(|_, row| *row += 1)
        }
        fn write_str(&self, text: &str) -> std::io::Result<()> {
            self.edit(|lines, row| {
                if lines.len() <= *row {
                    lines.resize(*row + 1, String::new());
                }
                lines[*row].push_str(text);
            })
        }
        fn clear_line(&self) -> std::io::Result<()> {
            self.edit(|lines, row| {
                if let Some(l) = lines.get_mut(*row) {
                    l.clear();
                }
            })
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn clearing_the_frame_leaves_nothing_on_screen() {
        let screen = Screen::default();
        let display =
            ProgressDisplay::with_target(ProgressDrawTarget::term_like(Box::new(screen.clone())));
        let blob = display.multi.add(ProgressBar::new(100));
        display.overall.set_length(100);
        display.overall.set_message("3 blobs");
        blob.set_position(40);
        display
            .overall
            .enable_steady_tick(Duration::from_millis(10));
        let frame = |lines: Vec<String>| lines.into_iter().any(|l| l.contains("3 blobs"));
        for _ in 0..500 {
            if frame(screen.visible()) {
                break;
            }
            display.overall.tick();
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(frame(screen.visible()), "drawn: {:?}", screen.visible());
        display.clear();
        assert!(!frame(screen.visible()), "{:?}", screen.visible());
        // And the ticking does not draw it again.
        std::thread::sleep(Duration::from_millis(50));
        assert!(!frame(screen.visible()), "{:?}", screen.visible());
    }

    #[test]
    fn tables_flatten_lists_of_objects() {
        let v = serde_json::json!([{"digest": "sha256:a", "tags": ["v1", "latest"], "timestamp": "t"}, {"digest": "sha256:b", "tags": [], "timestamp": ""}]);
        let rows = to_rows(&v).unwrap();
        assert_eq!(rows[0], ["Digest", "Tags", "Timestamp"]);
        assert_eq!(rows[1], ["sha256:a", "v1, latest", "t"]);
        let t = table(&rows);
        assert!(t.lines().nth(1).unwrap().starts_with("--------"));
    }
}
