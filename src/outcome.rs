//! How a command ends, at the CLI edge: a [`Failure`] carries the exit code
//! it stands for (2 bad usage or file, 3 environment); output is written so
//! that a reader going away is no error. Also what every command that takes
//! an experiment file needs: reading it, bounded, with usage errors.

use std::path::Path;

use anyhow::{Context, anyhow};
use tcplab::experiment::spec::Experiment;
use tcplab::lab::error::LabError;

/// A command that did not complete, with the exit code to report.
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

const USAGE: u8 = 2;
const ENVIRONMENT: u8 = 3;

pub(crate) fn usage(error: anyhow::Error) -> Failure {
    Failure { code: USAGE, error }
}

pub(crate) fn environment(error: anyhow::Error) -> Failure {
    Failure {
        code: ENVIRONMENT,
        error,
    }
}

impl From<LabError> for Failure {
    fn from(error: LabError) -> Failure {
        Failure {
            code: error.exit_code(),
            error: error.into(),
        }
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(environment)
}

/// The largest experiment file read: the built-in ones are 2 KB.
const MAX_EXPERIMENT_BYTES: u64 = 1024 * 1024;

/// A built-in experiment by its name, or an experiment file: a path, or a
/// name ending in .toml. Anything else is a usage error with a
/// did-you-mean.
pub(crate) fn experiment_by_name_or_file(name: &str) -> Result<Experiment, Failure> {
    match tcplab::experiment::catalogue::find(name) {
        Some(found) => found.map_err(|e| usage(e.into())),
        None if name.contains('/') || name.ends_with(".toml") || Path::new(name).is_file() => {
            load_file(Path::new(name))
        }
        None => {
            let experiments = tcplab::experiment::catalogue::names().map(str::to_string);
            let guess = crate::did_you_mean::closest(name, experiments)
                .map(|guess| format!(" (did you mean '{guess}'?)"))
                .unwrap_or_default();
            Err(usage(anyhow::anyhow!(
                "no built-in experiment {name:?}{guess} and no such file; `tcplab list` shows them"
            )))
        }
    }
}

pub(crate) fn load_file(file: &Path) -> Result<Experiment, Failure> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: opening a FIFO with no writer would block before any
    // check could run; a regular file reads the same with or without it.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(file)
        .with_context(|| format!("cannot read experiment file {}", file.display()))
        .map_err(usage)?;
    let metadata = opened
        .metadata()
        .with_context(|| format!("cannot read experiment file {}", file.display()))
        .map_err(usage)?;
    // /dev/zero or a FIFO would be read forever: only regular files.
    if !metadata.is_file() {
        return Err(usage(anyhow!(
            "{}: not a regular file; an experiment is a TOML file",
            file.display()
        )));
    }
    if metadata.len() > MAX_EXPERIMENT_BYTES {
        return Err(usage(anyhow!(
            "{}: {} bytes; an experiment file has at most {MAX_EXPERIMENT_BYTES} bytes",
            file.display(),
            metadata.len()
        )));
    }
    let mut text = String::new();
    opened
        .take(MAX_EXPERIMENT_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| {
            format!(
                "cannot read experiment file {} as UTF-8 text",
                file.display()
            )
        })
        .map_err(usage)?;
    let name = file
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| "experiment".to_string());
    Experiment::parse(&name, &file.display().to_string(), &text).map_err(|e| usage(e.into()))
}

/// Writes a command's output. A reader that went away (`tcplab list | head`)
/// is no error worth a message, and must not make tcplab panic as `print!`
/// would: the rest of the output is simply dropped.
/// Human output (reports, tables, lists): text that came from agents is in
/// it, so controls are escaped (`tcplab::terminal_text`).
pub(crate) fn emit_human(text: &str) {
    let escaped = tcplab::terminal_text::escape_controls(text);
    emit(&crate::colour::paint(&escaped));
}

pub(crate) fn emit(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

/// A `--report FILE` for what is drawn as a page (`what`): a name that is
/// not a page's is a usage error at once.
pub(crate) fn refuse_unless_page(path: &Path, what: &str) -> Result<(), Failure> {
    let html = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm"));
    if !html {
        return Err(usage(anyhow::anyhow!(
            "--report {}: {what} is drawn as a page; give a file ending in .html",
            path.display()
        )));
    }
    Ok(())
}
