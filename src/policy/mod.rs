//! Cache policies: which caching headers each response gets, from TOML files.
//!
//! Policies are data (issue 3): `policies/*.toml` holds `[[rule]]`s that match a response by
//! content type, extension, URL path glob or fingerprinted file name, a `[default]` for
//! everything no rule matches, an `[errors]` policy for 404s and directory redirects, and an
//! optional set-wide `[headers]` table (security headers such as HSTS, off unless written).
//! The format, the match order and the shipped defaults are documented in `docs/policies.md`.
//!
//! Design:
//! - **First match wins, in file order** (files in name order, rules in the order written),
//!   so the file reads like the decision it makes; `explain` shows the walk.
//! - **Everything is checked and rendered at load**: unknown keys, wrong types, contradictory
//!   directives (RFC 9111 section 5.2.2, RFC 5861, RFC 8246, RFC 9213) and long error
//!   lifetimes are refused with file, line, column and field; `Cache-Control`,
//!   `CDN-Cache-Control`, `Surrogate-Key` and extra headers become `HeaderValue`s once, so a
//!   request only clones them ([`Policy::apply`]).
//! - **Selection does not allocate**: conditions are precompiled (`matcher`) and the request
//!   side is borrowed slices.
//! - **Reload keeps the old set on failure** ([`PolicyHandle`], SIGHUP): a bad edit in
//!   production is logged and refused, never half-applied.

mod directives;
mod duration;
mod error;
mod matcher;
mod parse;
mod reload;
#[cfg(test)]
mod tests;
mod values;

pub use directives::{Directive, Directives};
pub use duration::parse_duration;
pub use error::{Location, PolicyError};
pub use matcher::is_fingerprinted;
pub use parse::ERRORS_MAX_LIFETIME;
pub use reload::{PolicyHandle, spawn_reload_on_sighup};

use http::header::CACHE_CONTROL;
use http::{HeaderMap, HeaderName, HeaderValue};
use matcher::{Matcher, Subject};
use parse::{Located, ParsedFile, PolicySpec};
use std::fmt::Write as _;
use std::path::Path;

/// `CDN-Cache-Control` (RFC 9213 section 3).
pub const CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");
/// `Surrogate-Key`: space-separated tags a CDN can purge by (Fastly's convention).
pub const SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");

/// The headers one rule gives a response, rendered at load.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Rule name for logs and `explain` (`default` and `errors` for the sections).
    pub name: String,
    /// `Cache-Control`, if the policy sets any directive.
    pub cache_control: Option<HeaderValue>,
    /// `CDN-Cache-Control`, if the policy has a `cdn-cache-control` table.
    pub cdn_cache_control: Option<HeaderValue>,
    /// `Surrogate-Key`, if the policy has tags.
    pub surrogate_key: Option<HeaderValue>,
    /// `no-transform` is set: do not compress on the fly (RFC 9110 section 7.7,
    /// RFC 9111 section 5.2.2.6).
    pub no_transform: bool,
    /// Extra response headers: the set-wide `[headers]` merged under the policy's own.
    pub extra_headers: Vec<(HeaderName, HeaderValue)>,
    /// The parsed Cache-Control directives (for freshness and stale serving decisions).
    pub directives: Directives,
    /// The parsed CDN-Cache-Control directives.
    pub cdn_directives: Option<Directives>,
    /// The fields of a short plain-text response under this policy (the error policy's 404s
    /// and friends), made by [`crate::response::plain`] the first time and copied after:
    /// without and with a `Cache-Status` slot.
    plain_fields: [std::sync::OnceLock<HeaderMap>; 2],
}

impl Policy {
    fn build(
        name: String,
        spec: PolicySpec,
        shared: &[(HeaderName, HeaderValue)],
        at: &Location,
    ) -> Result<Policy, PolicyError> {
        let value = |field: &str, text: Option<String>| {
            text.map(|t| {
                HeaderValue::try_from(t).map_err(|_| PolicyError::Value {
                    at: at.clone(),
                    field: field.to_owned(),
                    message: "renders to an invalid header value".to_owned(),
                })
            })
            .transpose()
        };
        let mut extra_headers: Vec<(HeaderName, HeaderValue)> = shared
            .iter()
            .filter(|(n, _)| !spec.headers.iter().any(|(own, _)| own == n))
            .cloned()
            .collect();
        extra_headers.extend(spec.headers);
        let keys = (!spec.surrogate_keys.is_empty()).then(|| spec.surrogate_keys.join(" "));
        Ok(Policy {
            name,
            cache_control: value("cache-control", spec.directives.render())?,
            cdn_cache_control: value(
                "cdn-cache-control",
                spec.cdn.as_ref().and_then(Directives::render),
            )?,
            surrogate_key: value("surrogate-key", keys)?,
            no_transform: spec.directives.no_transform,
            extra_headers,
            directives: spec.directives,
            cdn_directives: spec.cdn,
            plain_fields: Default::default(),
        })
    }

    /// The fields of a plain response under this policy, with a `Cache-Status` slot or
    /// without, made by `make` the first time.
    pub fn plain_fields(
        &self,
        cache_status_slot: bool,
        make: impl FnOnce() -> HeaderMap,
    ) -> &HeaderMap {
        self.plain_fields[usize::from(cache_status_slot)].get_or_init(make)
    }

    /// Writes Cache-Control, CDN-Cache-Control, Surrogate-Key and the extra headers,
    /// replacing any earlier value of those fields. Only clones precomputed values.
    pub fn apply(&self, headers: &mut HeaderMap) {
        if let Some(v) = &self.cache_control {
            headers.insert(CACHE_CONTROL, v.clone());
        }
        if let Some(v) = &self.cdn_cache_control {
            headers.insert(CDN_CACHE_CONTROL, v.clone());
        }
        if let Some(v) = &self.surrogate_key {
            headers.insert(SURROGATE_KEY, v.clone());
        }
        for (name, value) in &self.extra_headers {
            headers.insert(name.clone(), value.clone());
        }
    }

    /// The headers [`apply`](Self::apply) writes, as `name: value` lines (for `explain`).
    pub fn describe(&self) -> String {
        let mut headers = HeaderMap::new();
        self.apply(&mut headers);
        let mut out = String::new();
        if headers.is_empty() {
            out.push_str("  (no headers)\n");
        }
        for (name, value) in &headers {
            let _ = writeln!(out, "  {name}: {}", value.to_str().unwrap_or("<binary>"));
        }
        out
    }
}

#[derive(Debug)]
struct Rule {
    policy: Policy,
    matcher: Matcher,
    at: Location,
}

/// A loaded, checked set of policies.
#[derive(Debug)]
pub struct PolicySet {
    /// Unique per loaded set (a process-wide counter), so a choice remembered for one set is
    /// never taken for another after a reload.
    id: u64,
    rules: Vec<Rule>,
    default: Policy,
    errors: Policy,
    sources: Vec<String>,
}

/// Which policy of a set applies: a rule by position, or the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyChoice {
    set: u64,
    rule: Option<usize>,
}

static NEXT_SET_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl PolicySet {
    /// Loads a file, or a directory's top-level `*.toml` files in name order (rules
    /// concatenated; subdirectories such as `examples/` are not read). Blocking file IO:
    /// call at startup or from `spawn_blocking`.
    pub fn load(path: &Path) -> Result<PolicySet, PolicyError> {
        let io = |source| PolicyError::Io {
            path: path.to_owned(),
            source,
        };
        let files = if std::fs::metadata(path).map_err(io)?.is_dir() {
            let mut files = Vec::new();
            for entry in std::fs::read_dir(path).map_err(io)? {
                let file = entry.map_err(io)?.path();
                if file.extension().is_some_and(|e| e == "toml") && file.is_file() {
                    files.push(file);
                }
            }
            files.sort();
            files
        } else {
            vec![path.to_owned()]
        };
        let mut texts = Vec::with_capacity(files.len());
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|source| PolicyError::Io {
                path: file.clone(),
                source,
            })?;
            texts.push((file.display().to_string(), text));
        }
        PolicySet::from_files(&texts, &path.display().to_string())
    }

    /// Parses one file's text; `origin` names it in error messages.
    pub fn from_str(text: &str, origin: &str) -> Result<PolicySet, PolicyError> {
        PolicySet::from_files(&[(origin.to_owned(), text.to_owned())], origin)
    }

    /// Parses several files as one set: `(origin, text)` in order; `set_origin` names the
    /// set in errors about it as a whole.
    pub fn from_files(
        files: &[(String, String)],
        set_origin: &str,
    ) -> Result<PolicySet, PolicyError> {
        let mut default: Option<Located<PolicySpec>> = None;
        let mut errors: Option<Located<PolicySpec>> = None;
        let mut shared: Option<Located<Vec<(HeaderName, HeaderValue)>>> = None;
        let mut parsed_rules = Vec::new();
        for (origin, text) in files {
            let file: ParsedFile = parse::parse_file(text, origin)?;
            once(&mut default, file.default, "default")?;
            once(&mut errors, file.errors, "errors")?;
            once(&mut shared, file.headers, "headers")?;
            parsed_rules.extend(file.rules);
        }
        let missing = |section: &str, why: &str| PolicyError::Missing {
            origin: set_origin.to_owned(),
            message: format!("no [{section}] section in the policy files: {why}"),
        };
        if files.is_empty() {
            return Err(PolicyError::Missing {
                origin: set_origin.to_owned(),
                message: "no *.toml policy files".to_owned(),
            });
        }
        let default =
            default.ok_or_else(|| missing("default", "it applies when no rule matches"))?;
        let errors =
            errors.ok_or_else(|| missing("errors", "it applies to 404 and other errors"))?;
        let shared = shared.map(|s| s.value).unwrap_or_default();
        let mut rules: Vec<Rule> = Vec::with_capacity(parsed_rules.len());
        for rule in parsed_rules {
            if let Some(first) = rules.iter().find(|r| r.policy.name == rule.name.value) {
                return Err(PolicyError::Duplicate {
                    at: rule.name.at,
                    field: "name".to_owned(),
                    what: format!("rule name {:?}", rule.name.value),
                    first: Box::new(first.at.clone()),
                });
            }
            let policy = Policy::build(rule.name.value, rule.spec, &shared, &rule.at)?;
            rules.push(Rule {
                policy,
                matcher: rule.matcher,
                at: rule.at,
            });
        }
        Ok(PolicySet {
            id: NEXT_SET_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            rules,
            default: Policy::build("default".to_owned(), default.value, &shared, &default.at)?,
            errors: Policy::build("errors".to_owned(), errors.value, &shared, &errors.at)?,
            sources: files.iter().map(|(origin, _)| origin.clone()).collect(),
        })
    }

    /// The policy for a successful response: the first rule whose conditions all hold, else
    /// the default. `url_path` like `/assets/app.3f9a1c2e.js`; `content_type` as sent.
    pub fn select(&self, url_path: &str, content_type: &str) -> &Policy {
        self.choose(url_path, content_type).1
    }

    /// [`select`](Self::select)'s answer, with the choice as a small value that can be
    /// remembered (with the object, see [`crate::object::Object::choose`]) and turned back into
    /// the policy by [`chosen`](Self::chosen) while this set is current.
    pub fn choose(&self, url_path: &str, content_type: &str) -> (PolicyChoice, &Policy) {
        let subject = Subject::new(url_path, content_type);
        let rule = self
            .rules
            .iter()
            .position(|rule| rule.matcher.matches(&subject));
        let choice = PolicyChoice { set: self.id, rule };
        (choice, self.by_rule(rule))
    }

    /// The policy of a choice made by this set; `None` for a choice made by another set (before
    /// a reload).
    pub fn chosen(&self, choice: PolicyChoice) -> Option<&Policy> {
        (choice.set == self.id).then(|| self.by_rule(choice.rule))
    }

    fn by_rule(&self, rule: Option<usize>) -> &Policy {
        rule.and_then(|i| self.rules.get(i))
            .map_or(&self.default, |r| &r.policy)
    }

    /// The policy for 404s and directory redirects (`[errors]`); other errors are `no-store`.
    pub fn error_policy(&self) -> &Policy {
        &self.errors
    }

    /// The default policy (`[default]`).
    pub fn default_policy(&self) -> &Policy {
        &self.default
    }

    /// Every policy: the rules in match order, then the default and the errors policy.
    pub fn policies(&self) -> impl Iterator<Item = &Policy> {
        self.rules
            .iter()
            .map(|r| &r.policy)
            .chain([&self.default, &self.errors])
    }

    /// How many `[[rule]]`s the set has.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// The files this set was loaded from, in load order.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }

    /// A human-readable account of the match: each rule tried with why it did or did not
    /// match, and the headers the response gets.
    pub fn explain(&self, url_path: &str, content_type: &str) -> String {
        let subject = Subject::new(url_path, content_type);
        let mut out = format!("path {url_path:?}, content type {content_type:?}\n");
        let mut chosen = &self.default;
        for rule in &self.rules {
            let name = &rule.policy.name;
            match rule.matcher.explain(&subject) {
                Ok(why) => {
                    let _ = writeln!(out, "  match   {name:?} ({}): {why}", rule.at);
                    chosen = &rule.policy;
                    break;
                }
                Err(why) => {
                    let _ = writeln!(out, "  skip    {name:?} ({}): {why}", rule.at);
                }
            }
        }
        if std::ptr::eq(chosen, &self.default) {
            out.push_str("  no rule matched: [default] applies\n");
        }
        let _ = writeln!(out, "policy {:?} gives:", chosen.name);
        out.push_str(&chosen.describe());
        out.push_str("404s and directory redirects (308) get [errors]:\n");
        out.push_str(&self.errors.describe());
        out
    }
}

/// Keeps the first definition of a section and refuses a second one.
fn once<T>(
    slot: &mut Option<Located<T>>,
    new: Option<Located<T>>,
    section: &str,
) -> Result<(), PolicyError> {
    match (slot.as_ref(), new) {
        (Some(first), Some(second)) => Err(PolicyError::Duplicate {
            at: second.at,
            field: format!("[{section}]"),
            what: format!("section [{section}]"),
            first: Box::new(first.at.clone()),
        }),
        (None, Some(new)) => {
            *slot = Some(new);
            Ok(())
        }
        (_, None) => Ok(()),
    }
}
