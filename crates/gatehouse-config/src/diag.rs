//! Diagnostics: what is wrong, where (file:line:column), and how to fix it.
//!
//! Rendered like a compiler error, because that is the format people already read fluently:
//!
//! ```text
//! error: listener `edge/web` refers to backend `ap`, which is not defined
//!   --> gatehouse.yaml:7:18
//!    |
//!  7 |         backend: ap
//!    |                  ^
//!    = hint: did you mean `app`?
//! ```

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A configuration source: its name (a path, or `<demo>`) and text, and the other files it
/// reads that diagnostics can point into (Gateway API manifests, `gatewayApi.manifests`).
#[derive(Debug, Clone)]
pub struct Source {
    /// Shown in diagnostics.
    pub name: Arc<str>,
    /// The file's text.
    pub text: Arc<str>,
    /// The manifest files read with it: [`Pos::file`] `n` (from 1) is `files[n - 1]`.
    files: Arc<[Source]>,
}

impl Source {
    /// A source read from `path`.
    pub fn new(name: impl Into<Arc<str>>, text: impl Into<Arc<str>>) -> Self {
        Source {
            name: name.into(),
            text: text.into(),
            files: Arc::new([]),
        }
    }

    /// The same source with the manifest files it read (file 1, 2, ... of [`Pos::file`]).
    #[must_use]
    pub fn with_files(mut self, files: Vec<Source>) -> Self {
        self.files = files.into();
        self
    }

    /// The manifest files read with this source, in [`Pos::file`] order (file 1 first).
    pub fn files(&self) -> &[Source] {
        &self.files
    }

    /// The file a position is in: this source for file 0, a manifest file otherwise.
    pub fn file_of(&self, pos: Pos) -> &Source {
        match pos.file.checked_sub(1) {
            None => self,
            Some(i) => usize::try_from(i)
                .ok()
                .and_then(|i| self.files.get(i))
                .unwrap_or(self),
        }
    }

    fn line(&self, line: u64) -> Option<&str> {
        let index = usize::try_from(line.checked_sub(1)?).ok()?;
        self.text.lines().nth(index)
    }
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The config is refused.
    Error,
    /// The config runs, but probably not as intended.
    Warning,
}

/// A place in a source: 1-based line and column; 0 when unknown. `file` says which file: 0
/// is the config file itself, `n` its `n`th manifest file ([`Source::files`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub column: u64,
    /// 0 for the config file; `n` for its `n`th manifest file.
    pub file: u32,
}

impl Pos {
    /// `file:line:col`, or just `file` when the place is unknown (line 0).
    fn display_in(&self, source: &Source) -> String {
        let source = source.file_of(*self);
        if self.line == 0 {
            source.name.to_string()
        } else {
            format!("{}:{}:{}", source.name, self.line, self.column)
        }
    }
}

impl From<serde_saphyr::Location> for Pos {
    fn from(l: serde_saphyr::Location) -> Self {
        Pos {
            line: l.line(),
            column: l.column(),
            file: 0,
        }
    }
}

/// One finding about a config.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, in the user's words.
    pub message: String,
    /// Where.
    pub pos: Pos,
    /// Another place that matters (the first definition of a duplicate, say).
    pub related: Option<(Pos, String)>,
    /// How to fix it.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// An error at `pos`.
    pub fn error(pos: impl Into<Pos>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            pos: pos.into(),
            related: None,
            hint: None,
        }
    }

    /// A warning at `pos`.
    pub fn warning(pos: impl Into<Pos>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(pos, message)
        }
    }

    /// Sets the hint.
    pub fn hint(&mut self, hint: impl Into<String>) -> &mut Self {
        self.hint = Some(hint.into());
        self
    }

    /// Points at a second place that matters.
    pub fn note(&mut self, pos: impl Into<Pos>, note: impl Into<String>) -> &mut Self {
        self.related = Some((pos.into(), note.into()));
        self
    }

    /// The same diagnostic with a hint (for building one by value).
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// `file:line:col: error: message`, on one line (for logs). `source` is the config's
    /// source: a position in a manifest file names that file.
    pub fn one_line(&self, source: &Source) -> String {
        let mut s = format!(
            "{}: {}: {}",
            self.pos.display_in(source),
            self.severity_word(),
            self.message
        );
        if let Some(hint) = &self.hint {
            let _ = write!(s, " (hint: {hint})");
        }
        s
    }

    fn severity_word(&self) -> &'static str {
        match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }

    /// The multi-line, compiler-style rendering with the offending line quoted (from the
    /// manifest file the position is in, if it is in one of `source`'s files).
    pub fn render(&self, source: &Source) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}: {}", self.severity_word(), self.message);
        let gutter = self.pos.line.to_string().len().max(2);
        let _ = writeln!(out, "{:gutter$}--> {}", "", self.pos.display_in(source));
        if let Some(text) = source.file_of(self.pos).line(self.pos.line) {
            let _ = writeln!(out, "{:gutter$} |", "");
            let _ = writeln!(out, "{:>gutter$} | {}", self.pos.line, text);
            let col = usize::try_from(self.pos.column.max(1) - 1).unwrap_or(0);
            let _ = writeln!(out, "{:gutter$} | {:col$}^", "", "");
        }
        if let Some((pos, note)) = &self.related {
            let _ = writeln!(
                out,
                "{:gutter$} = note: {note} at {}",
                "",
                pos.display_in(source)
            );
        }
        if let Some(hint) = &self.hint {
            let _ = writeln!(out, "{:gutter$} = hint: {hint}", "");
        }
        out
    }
}

/// Everything found in one source.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    /// Where they were found.
    pub source: Source,
    /// Errors and warnings, in file order.
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Whether any of them refuses the config.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// Number of errors.
    pub fn error_count(&self) -> usize {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    /// The warnings only.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    /// Every diagnostic, rendered compiler-style, followed by a count.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for d in &self.items {
            out.push_str(&d.render(&self.source));
            out.push('\n');
        }
        let errors = self.error_count();
        if errors > 0 {
            let _ = writeln!(
                out,
                "{}: {} error{} in config",
                self.source.name,
                errors,
                if errors == 1 { "" } else { "s" }
            );
        }
        out
    }

    /// Every diagnostic on one line each, `; `-separated (for a log line).
    pub fn one_line(&self) -> String {
        let lines: Vec<String> = self
            .items
            .iter()
            .map(|d| d.one_line(&self.source))
            .collect();
        lines.join("; ")
    }

    /// A config that could not even be read.
    pub fn unreadable(path: &Path, err: &std::io::Error) -> Self {
        let source = Source::new(path.display().to_string(), "");
        Diagnostics {
            source,
            items: vec![
                Diagnostic::error(
                    Pos::default(),
                    format!("cannot read the config file: {err}"),
                )
                .with_hint(read_hint(path, err)),
            ],
        }
    }
}

fn read_hint(path: &Path, err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound => {
            let dir: PathBuf = path.parent().map(Path::to_path_buf).unwrap_or_default();
            format!(
                "check the path; the directory `{}` has no such file",
                dir.display()
            )
        }
        std::io::ErrorKind::PermissionDenied => "check the file's permissions".to_owned(),
        _ => "check that the path names a readable UTF-8 text file".to_owned(),
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

impl std::error::Error for Diagnostics {}
