//! Reading single values of a policy file, each error placed at the value's span.
//!
//! Split from `parse` so the walk over tables reads on its own: these helpers turn one TOML
//! value into a Rust value (boolean, duration, list of strings, header table) or into an
//! error naming the file, line, column and field.

use super::directives::{Directive, Directives};
use super::duration::{from_seconds, parse_duration};
use super::error::{Location, PolicyError};
use http::{HeaderName, HeaderValue};
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

/// Headers the server manages itself; a policy may not set them through `headers`.
const MANAGED_HEADERS: [&str; 25] = [
    "accept-ranges",
    "age",
    "cache-control",
    "cache-status",
    "cdn-cache-control",
    "connection",
    "content-encoding",
    "content-length",
    "content-location",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expires",
    "keep-alive",
    "last-modified",
    "location",
    "pragma",
    "set-cookie",
    "surrogate-key",
    "te",
    "trailer",
    "transfer-encoding",
    "vary",
    "x-content-type-options",
];

type Entry<'d, 'i> = (&'d Spanned<DeString<'i>>, &'d Spanned<DeValue<'i>>);

/// A table's entries in file order (the parsed map is sorted by key), so the first error
/// reported is the first in the file.
pub(super) fn in_file_order<'d, 'i>(table: &'d DeTable<'i>) -> Vec<Entry<'d, 'i>> {
    let mut entries: Vec<Entry<'d, 'i>> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    entries
}

/// The file being read: its name for messages and its text for positions.
pub(super) struct Ctx<'a> {
    pub(super) origin: &'a str,
    pub(super) text: &'a str,
}

fn kind(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

impl Ctx<'_> {
    pub(super) fn at(&self, span: Range<usize>) -> Location {
        Location::of(self.origin, self.text, span.start)
    }

    pub(super) fn syntax(&self, e: &toml::de::Error) -> PolicyError {
        let offset = e.span().map_or(0, |s| s.start);
        let at = self.at(offset..offset);
        // The key on the failing line, if it has one (`max-age = 30d` -> `max-age`).
        let line = self.text.lines().nth(at.line - 1).unwrap_or("");
        let field = line
            .split_once('=')
            .map(|(key, _)| key.trim().trim_matches(['"', '\'']).to_owned())
            .filter(|key| !key.is_empty() && !key.starts_with('['));
        PolicyError::Syntax {
            at,
            field,
            message: e.message().trim().to_owned(),
        }
    }

    pub(super) fn type_error(
        &self,
        field: &str,
        value: &Spanned<DeValue<'_>>,
        expected: &'static str,
    ) -> PolicyError {
        PolicyError::Type {
            at: self.at(value.span()),
            field: field.to_owned(),
            expected,
            found: kind(value.get_ref()),
        }
    }

    pub(super) fn value_error(
        &self,
        field: &str,
        span: Range<usize>,
        message: String,
    ) -> PolicyError {
        PolicyError::Value {
            at: self.at(span),
            field: field.to_owned(),
            message,
        }
    }

    pub(super) fn table<'d, 'i>(
        &self,
        field: &str,
        value: &'d Spanned<DeValue<'i>>,
    ) -> Result<&'d DeTable<'i>, PolicyError> {
        match value.get_ref() {
            DeValue::Table(table) => Ok(table),
            _ => Err(self.type_error(field, value, "a table")),
        }
    }

    pub(super) fn string<'d>(
        &self,
        field: &str,
        value: &'d Spanned<DeValue<'_>>,
    ) -> Result<&'d str, PolicyError> {
        match value.get_ref() {
            DeValue::String(s) => Ok(s.as_ref()),
            _ => Err(self.type_error(field, value, "a string")),
        }
    }

    pub(super) fn boolean(
        &self,
        field: &str,
        value: &Spanned<DeValue<'_>>,
    ) -> Result<bool, PolicyError> {
        match value.get_ref() {
            DeValue::Boolean(b) => Ok(*b),
            _ => Err(self.type_error(field, value, "a boolean (true or false)")),
        }
    }

    /// A string or a non-empty array of strings, each with its span.
    pub(super) fn strings(
        &self,
        field: &str,
        value: &Spanned<DeValue<'_>>,
    ) -> Result<Vec<(String, Range<usize>)>, PolicyError> {
        const EXPECTED: &str = "a string or an array of strings";
        match value.get_ref() {
            DeValue::String(s) => Ok(vec![(s.to_string(), value.span())]),
            DeValue::Array(items) if items.is_empty() => Err(self.value_error(
                field,
                value.span(),
                "empty list: give at least one value or remove the key".to_owned(),
            )),
            DeValue::Array(items) => items
                .iter()
                .map(|item| match item.get_ref() {
                    DeValue::String(s) => Ok((s.to_string(), item.span())),
                    _ => Err(self.type_error(field, item, EXPECTED)),
                })
                .collect(),
            _ => Err(self.type_error(field, value, EXPECTED)),
        }
    }

    pub(super) fn duration(
        &self,
        field: &str,
        value: &Spanned<DeValue<'_>>,
    ) -> Result<Duration, PolicyError> {
        let parsed = match value.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .map_err(|_| format!("integer {} is out of range", i.as_str()))
                .and_then(from_seconds),
            DeValue::String(s) => parse_duration(s),
            _ => {
                return Err(self.type_error(
                    field,
                    value,
                    "a duration (3600 or \"30d\", \"12h\", \"5m\", \"90s\")",
                ));
            }
        };
        parsed.map_err(|message| self.value_error(field, value.span(), message))
    }

    pub(super) fn directive(
        &self,
        field: &str,
        d: Directive,
        value: &Spanned<DeValue<'_>>,
        into: &mut Directives,
    ) -> Result<(), PolicyError> {
        if d.takes_duration() {
            into.set_duration(d, self.duration(field, value)?);
        } else {
            into.set_flag(d, self.boolean(field, value)?);
        }
        Ok(())
    }

    pub(super) fn surrogate_keys(
        &self,
        field: &str,
        value: &Spanned<DeValue<'_>>,
    ) -> Result<Vec<String>, PolicyError> {
        let items = self.strings(field, value)?;
        for (tag, span) in &items {
            if tag.is_empty() || !tag.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
                let msg = format!(
                    "invalid surrogate key {tag:?}: visible ASCII without spaces or commas"
                );
                return Err(self.value_error(field, span.clone(), msg));
            }
        }
        Ok(items.into_iter().map(|(tag, _)| tag).collect())
    }

    pub(super) fn headers(
        &self,
        table_name: &str,
        table: &DeTable<'_>,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, PolicyError> {
        let mut out: Vec<(HeaderName, HeaderValue)> = Vec::new();
        for (k, v) in in_file_order(table) {
            let raw = k.get_ref().as_ref();
            let field = format!("{table_name}.{raw}");
            let name = HeaderName::from_bytes(raw.as_bytes()).map_err(|_| {
                self.value_error(&field, k.span(), format!("invalid header name {raw:?}"))
            })?;
            if MANAGED_HEADERS.contains(&name.as_str()) {
                let msg = format!("{name} is set by the server, not by policy headers");
                return Err(self.value_error(&field, k.span(), msg));
            }
            if out.iter().any(|(n, _)| *n == name) {
                let msg = format!("header {name} is given twice (names ignore case)");
                return Err(self.value_error(&field, k.span(), msg));
            }
            let text = self.string(&field, v)?;
            // RFC 9110 section 5.5: new field values are ASCII (obs-text is obsolete).
            let ascii = text
                .bytes()
                .all(|b| b == b'\t' || (0x20..0x7f).contains(&b));
            let value = HeaderValue::from_str(text)
                .ok()
                .filter(|_| ascii)
                .ok_or_else(|| {
                    self.value_error(
                        &field,
                        v.span(),
                        format!("invalid header value {text:?}: visible ASCII only"),
                    )
                })?;
            out.push((name, value));
        }
        Ok(out)
    }
}
