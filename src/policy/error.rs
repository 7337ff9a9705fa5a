//! Errors from loading policy files, each naming the file, line, column and field.
//!
//! A bad policy file stops the start (or is refused at reload), so the message must let the
//! user fix it without guessing: `policies/default.toml:12:5: field `max-age`: ...`. Positions
//! come from the spans the TOML parser keeps for every key and value; byte offsets become
//! 1-based lines and columns (in characters) here, in one place.

use std::fmt;
use std::path::PathBuf;

/// A position in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file name as given (or the `origin` passed to `PolicySet::from_str`).
    pub origin: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
}

impl Location {
    /// The location of byte `offset` in `text` (clamped to the text).
    pub(crate) fn of(origin: &str, text: &str, offset: usize) -> Location {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Location {
            origin: origin.to_owned(),
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.origin, self.line, self.column)
    }
}

/// Why a policy file or set was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A file or directory could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{at}: {}TOML syntax: {message}", field_prefix(field))]
    Syntax {
        /// Where the parser stopped.
        at: Location,
        /// The key on that line, when there is one.
        field: Option<String>,
        /// The parser's description.
        message: String,
    },
    /// A key this format does not know (typos are errors, never silently ignored).
    #[error("{at}: field `{field}`: unknown field in {section}; expected one of {expected}")]
    UnknownField {
        /// Where the key is.
        at: Location,
        /// The key as written.
        field: String,
        /// Where it was found (`[[rule]] "images"`, `[default]`, ...).
        section: String,
        /// The keys allowed there.
        expected: String,
    },
    /// A value of the wrong TOML type.
    #[error("{at}: field `{field}`: expected {expected}, found {found}")]
    Type {
        /// Where the value is.
        at: Location,
        /// The key.
        field: String,
        /// The type wanted.
        expected: &'static str,
        /// The type written.
        found: &'static str,
    },
    /// A value of the right type that is not acceptable (bad duration, glob, header, ...).
    #[error("{at}: field `{field}`: {message}")]
    Value {
        /// Where the value is.
        at: Location,
        /// The key.
        field: String,
        /// What is wrong and what would be right.
        message: String,
    },
    /// Two directives that contradict each other (RFC 9111 section 5.2.2).
    #[error("{at}: field `{field}`: conflicts with `{other}` ({other_at}): {reason}")]
    Conflict {
        /// Where the first of the two is.
        at: Location,
        /// Its key.
        field: String,
        /// The other key.
        other: String,
        /// Where the other key is (boxed to keep the error small).
        other_at: Box<Location>,
        /// Why they cannot go together.
        reason: &'static str,
    },
    /// A section or rule name defined twice across the set.
    #[error("{at}: field `{field}`: {what} already defined at {first}")]
    Duplicate {
        /// The second definition.
        at: Location,
        /// The key or section.
        field: String,
        /// What is duplicated (`section [default]`, `rule name "images"`).
        what: String,
        /// The first definition (boxed to keep the error small).
        first: Box<Location>,
    },
    /// Something the whole set needs is missing (no `[default]`, no files in the directory).
    #[error("{origin}: {message}")]
    Missing {
        /// The file or directory loaded.
        origin: String,
        /// What is missing.
        message: String,
    },
}

fn field_prefix(field: &Option<String>) -> String {
    match field {
        Some(field) => format!("field `{field}`: "),
        None => String::new(),
    }
}

impl PolicyError {
    /// Where the error is, when it is inside a file.
    pub fn location(&self) -> Option<&Location> {
        match self {
            PolicyError::Syntax { at, .. }
            | PolicyError::UnknownField { at, .. }
            | PolicyError::Type { at, .. }
            | PolicyError::Value { at, .. }
            | PolicyError::Conflict { at, .. }
            | PolicyError::Duplicate { at, .. } => Some(at),
            PolicyError::Io { .. } | PolicyError::Missing { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_offsets_become_lines_and_character_columns() {
        let text = "a = 1\n\nkey = \"é\" x\nlast";
        let table = [
            (0, 1, 1),
            (4, 1, 5),
            (6, 2, 1),
            (7, 3, 1),
            (13, 3, 7),
            // after the two-byte é, the column counts one character
            (17, 3, 10),
            (text.len(), 4, 5),
            (text.len() + 10, 4, 5),
        ];
        for (offset, line, column) in table {
            let at = Location::of("f.toml", text, offset);
            assert_eq!((at.line, at.column), (line, column), "offset {offset}");
        }
        // an offset inside a multi-byte character does not panic
        assert_eq!(Location::of("f.toml", text, 15).line, 3);
    }

    #[test]
    fn display_starts_with_file_line_column_and_field() {
        let at = Location::of("policies/default.toml", "\n\n    x", 6);
        let err = PolicyError::Value {
            at,
            field: "max-age".into(),
            message: "bad".into(),
        };
        assert_eq!(
            err.to_string(),
            "policies/default.toml:3:5: field `max-age`: bad"
        );
        assert_eq!(err.location().map(|l| l.line), Some(3));
    }
}
