//! Reading one policy file: TOML text to checked rules and sections.
//!
//! The file is parsed into toml's spanned document tree (`DeTable`) and walked by hand rather
//! than through serde derive: every key and value keeps its byte span, so each error can name
//! the file, line, column and field, type errors can say which field wanted what, and unknown
//! keys list the keys allowed in that very place. Keys are visited in file order so the first
//! error reported is the first in the file. This module walks the tables (rules, sections,
//! `cdn-cache-control`) and checks directive combinations; `values` reads single values.

use super::directives::{Directive, Directives, Invalid};
use super::error::{Location, PolicyError};
use super::matcher::Matcher;
use super::values::{Ctx, in_file_order};
use http::{HeaderName, HeaderValue};
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

/// Error responses may not be cached longer than this (issue 3: "never a long lifetime").
pub const ERRORS_MAX_LIFETIME: Duration = Duration::from_secs(3600);

/// What a policy sets, before rendering into header values.
#[derive(Debug, Clone, Default)]
pub struct PolicySpec {
    /// Cache-Control directives.
    pub directives: Directives,
    /// CDN-Cache-Control directives, when given.
    pub cdn: Option<Directives>,
    /// Surrogate-Key tags.
    pub surrogate_keys: Vec<String>,
    /// Extra response headers, in key order.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// A value with the location of its key.
#[derive(Debug)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Where its key (or table header) is.
    pub at: Location,
}

/// One `[[rule]]`.
#[derive(Debug)]
pub struct ParsedRule {
    /// The `name`, or `<file> rule <n>`.
    pub name: Located<String>,
    /// Where the rule starts.
    pub at: Location,
    /// Its conditions.
    pub matcher: Matcher,
    /// What it sets.
    pub spec: PolicySpec,
}

/// Everything one file defines.
#[derive(Debug, Default)]
pub struct ParsedFile {
    /// `[default]`.
    pub default: Option<Located<PolicySpec>>,
    /// `[errors]`.
    pub errors: Option<Located<PolicySpec>>,
    /// Top-level `[headers]`, added to every policy of the set.
    pub headers: Option<Located<Vec<(HeaderName, HeaderValue)>>>,
    /// `[[rule]]`s in file order.
    pub rules: Vec<ParsedRule>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Rule,
    Default,
    Errors,
    Cdn,
}

/// The key span of each directive set in a table, to place conflict errors.
type DirectiveSpans = Vec<(Directive, Range<usize>)>;

/// What walking a rule or section table yields.
struct Walked {
    spec: PolicySpec,
    matcher: Matcher,
    name: Option<Located<String>>,
}

/// Parses and checks one file. `origin` names it in errors.
pub fn parse_file(text: &str, origin: &str) -> Result<ParsedFile, PolicyError> {
    let cx = Ctx { origin, text };
    let doc = DeTable::parse(text).map_err(|e| cx.syntax(&e))?;
    let mut file = ParsedFile::default();
    for (key, value) in in_file_order(doc.get_ref()) {
        let at = cx.at(key.span());
        match key.get_ref().as_ref() {
            "default" => file.default = Some(cx.section(key, value, Section::Default, 0)?),
            "errors" => file.errors = Some(cx.section(key, value, Section::Errors, 0)?),
            "headers" => {
                let headers = cx.headers("headers", cx.table("headers", value)?)?;
                file.headers = Some(Located { value: headers, at });
            }
            "rule" => {
                let DeValue::Array(items) = value.get_ref() else {
                    return Err(cx.type_error("rule", value, "an array of tables ([[rule]])"));
                };
                for item in items.iter() {
                    file.rules.push(cx.rule(key, item, file.rules.len() + 1)?);
                }
            }
            other => {
                return Err(PolicyError::UnknownField {
                    at,
                    field: other.to_owned(),
                    section: "the top level".to_owned(),
                    expected: "`[[rule]]`, `[default]`, `[errors]`, `[headers]`".to_owned(),
                });
            }
        }
    }
    Ok(file)
}

impl Ctx<'_> {
    fn rule(
        &self,
        key: &Spanned<DeString<'_>>,
        item: &Spanned<DeValue<'_>>,
        n: usize,
    ) -> Result<ParsedRule, PolicyError> {
        let label = format!("rule {n}");
        let Located {
            value:
                Walked {
                    spec,
                    matcher,
                    name,
                },
            at,
        } = self.policy_table(key, item, Section::Rule, n)?;
        let name = name.unwrap_or_else(|| Located {
            value: format!("{} {label}", self.origin),
            at: at.clone(),
        });
        if matcher.is_empty() {
            return Err(PolicyError::Value {
                at,
                field: "[[rule]]".to_owned(),
                message: format!(
                    "{label} has no condition: give `content-type`, `extension`, `path` or \
                     `fingerprinted` (use [default] for everything else)"
                ),
            });
        }
        Ok(ParsedRule {
            name,
            at,
            matcher,
            spec,
        })
    }

    fn section(
        &self,
        key: &Spanned<DeString<'_>>,
        value: &Spanned<DeValue<'_>>,
        section: Section,
        n: usize,
    ) -> Result<Located<PolicySpec>, PolicyError> {
        let Located {
            value: Walked { spec, .. },
            at,
        } = self.policy_table(key, value, section, n)?;
        Ok(Located { value: spec, at })
    }

    /// The common walk of a rule, `[default]` and `[errors]`.
    fn policy_table(
        &self,
        key: &Spanned<DeString<'_>>,
        value: &Spanned<DeValue<'_>>,
        section: Section,
        n: usize,
    ) -> Result<Located<Walked>, PolicyError> {
        let table_name = key.get_ref().as_ref();
        let table = self.table(table_name, value)?;
        let at = self.at(if section == Section::Rule {
            value.span()
        } else {
            key.span()
        });
        let mut spec = PolicySpec::default();
        let mut matcher = Matcher::default();
        let mut name = None;
        let mut spans: DirectiveSpans = Vec::new();
        let mut cdn_span = None;
        for (k, v) in in_file_order(table) {
            let field = k.get_ref().as_ref();
            if let Some(d) = Directive::from_name(field) {
                self.directive(field, d, v, &mut spec.directives)?;
                spans.push((d, k.span()));
                continue;
            }
            match field {
                "cdn-cache-control" => {
                    let (cdn, cdn_spans) = self.cdn(v)?;
                    self.check(&cdn, &cdn_spans, "cdn-cache-control.", section)?;
                    spec.cdn = Some(cdn);
                    cdn_span = Some(k.span());
                }
                "surrogate-key" => spec.surrogate_keys = self.surrogate_keys(field, v)?,
                "headers" => spec.headers = self.headers(field, self.table(field, v)?)?,
                "name" if section == Section::Rule => {
                    let text = self.string(field, v)?;
                    if text.trim().is_empty() || text == "default" || text == "errors" {
                        let msg = format!("rule name {text:?} is empty or reserved");
                        return Err(self.value_error(field, v.span(), msg));
                    }
                    name = Some(Located {
                        value: text.to_owned(),
                        at: self.at(k.span()),
                    });
                }
                "content-type" | "extension" if section == Section::Rule => {
                    for (item, span) in self.strings(field, v)? {
                        let added = if field == "extension" {
                            matcher.add_extension(&item)
                        } else {
                            matcher.add_content_type(&item)
                        };
                        added.map_err(|m| self.value_error(field, span, m))?;
                    }
                }
                "path" if section == Section::Rule => {
                    let items = self.strings(field, v)?;
                    let patterns: Vec<String> = items.iter().map(|(p, _)| p.clone()).collect();
                    matcher.set_globs(&patterns).map_err(|(i, m)| {
                        let span = items.get(i).map_or(v.span(), |(_, s)| s.clone());
                        self.value_error(field, span, m)
                    })?;
                }
                "fingerprinted" if section == Section::Rule => {
                    matcher.set_fingerprinted(self.boolean(field, v)?);
                }
                _ => return Err(self.unknown(field, k.span(), section, n)),
            }
        }
        self.check(&spec.directives, &spans, "", section)?;
        if let (Some(cdn_span), Some((_, private_span))) = (
            cdn_span,
            spans
                .iter()
                .find(|(d, _)| *d == Directive::Private && spec.directives.private),
        ) {
            return Err(PolicyError::Conflict {
                at: self.at(cdn_span),
                field: "cdn-cache-control".to_owned(),
                other: "private".to_owned(),
                other_at: Box::new(self.at(private_span.clone())),
                reason: "a CDN obeys CDN-Cache-Control instead of Cache-Control (RFC 9213 \
                         section 2.2), so it would store this private response",
            });
        }
        Ok(Located {
            value: Walked {
                spec,
                matcher,
                name,
            },
            at,
        })
    }

    fn unknown(&self, field: &str, span: Range<usize>, section: Section, n: usize) -> PolicyError {
        let directives: Vec<String> = Directive::ALL
            .iter()
            .map(|d| format!("`{}`", d.name()))
            .collect();
        let directives = directives.join(", ");
        let (where_, expected) = match section {
            Section::Rule => (
                format!("[[rule]] {n}"),
                format!(
                    "`name`, `content-type`, `extension`, `path`, `fingerprinted`, {directives}, `cdn-cache-control`, `surrogate-key`, `headers`"
                ),
            ),
            Section::Default | Section::Errors => (
                if section == Section::Default {
                    "[default]"
                } else {
                    "[errors]"
                }
                .to_owned(),
                format!(
                    "{directives}, `cdn-cache-control`, `surrogate-key`, `headers` (conditions belong in [[rule]])"
                ),
            ),
            Section::Cdn => ("cdn-cache-control".to_owned(), directives),
        };
        PolicyError::UnknownField {
            at: self.at(span),
            field: field.to_owned(),
            section: where_,
            expected,
        }
    }

    fn cdn(
        &self,
        value: &Spanned<DeValue<'_>>,
    ) -> Result<(Directives, DirectiveSpans), PolicyError> {
        let mut cdn = Directives::default();
        let mut spans = Vec::new();
        for (k, v) in in_file_order(self.table("cdn-cache-control", value)?) {
            let name = k.get_ref().as_ref();
            let field = format!("cdn-cache-control.{name}");
            let Some(d) = Directive::from_name(name) else {
                return Err(self.unknown(name, k.span(), Section::Cdn, 0));
            };
            self.directive(&field, d, v, &mut cdn)?;
            spans.push((d, k.span()));
        }
        Ok((cdn, spans))
    }

    /// Conflicts within one directive set, and the limits on `[errors]`.
    fn check(
        &self,
        d: &Directives,
        spans: &[(Directive, Range<usize>)],
        prefix: &str,
        section: Section,
    ) -> Result<(), PolicyError> {
        let span_of = |dir: Directive| {
            spans
                .iter()
                .rev()
                .find(|(x, _)| *x == dir)
                .map_or(0..0, |(_, s)| s.clone())
        };
        if let Err(Invalid {
            field,
            other,
            reason,
        }) = d.validate()
        {
            let at = self.at(span_of(field));
            let field_name = format!("{prefix}{}", field.name());
            return Err(match other {
                Some(other) => PolicyError::Conflict {
                    at,
                    field: field_name,
                    other: format!("{prefix}{}", other.name()),
                    other_at: Box::new(self.at(span_of(other))),
                    reason,
                },
                None => PolicyError::Value {
                    at,
                    field: field_name,
                    message: reason.to_owned(),
                },
            });
        }
        if section == Section::Errors {
            if d.immutable {
                let msg = "error responses must never be immutable".to_owned();
                return Err(self.value_error(
                    &format!("{prefix}immutable"),
                    span_of(Directive::Immutable),
                    msg,
                ));
            }
            if let Some((dir, value)) = d.longest().filter(|(_, v)| *v > ERRORS_MAX_LIFETIME) {
                let msg = format!(
                    "{}s is too long for error responses (at most {}s): a fixed file must not stay hidden",
                    value.as_secs(),
                    ERRORS_MAX_LIFETIME.as_secs()
                );
                return Err(self.value_error(
                    &format!("{prefix}{}", dir.name()),
                    span_of(dir),
                    msg,
                ));
            }
        }
        Ok(())
    }
}
