//! Rule conditions: content-type patterns, extensions, path globs and fingerprinted names.
//!
//! A rule matches when every condition it gives holds (AND); a condition with a list holds
//! when any item does (OR). Matching is on the request's hot path, so everything is compiled
//! at load: patterns are lowercased once and compared with `eq_ignore_ascii_case`, globs are
//! one `GlobSet` per rule, and a [`Subject`] is computed once per request from borrowed
//! slices, without allocating.

use globset::{Candidate, GlobBuilder, GlobSet, GlobSetBuilder};

/// The request side of matching, computed once per request.
pub struct Subject<'a> {
    path: &'a str,
    file_name: &'a str,
    essence: &'a str,
    fingerprinted: bool,
    candidate: Candidate<'a>,
}

impl<'a> Subject<'a> {
    /// `url_path` like `/assets/app.3f9a1c2e.js`; `content_type` with or without parameters.
    pub fn new(url_path: &'a str, content_type: &'a str) -> Subject<'a> {
        let file_name = url_path.rsplit('/').next().unwrap_or(url_path);
        let essence = content_type.split(';').next().unwrap_or("").trim();
        Subject {
            path: url_path,
            file_name,
            essence,
            fingerprinted: is_fingerprinted(file_name),
            candidate: Candidate::from_bytes(url_path.as_bytes()),
        }
    }
}

/// Whether a file name carries a content hash: a dot-separated segment before the extension
/// made of 8 or more lowercase hex digits with at least one digit and one letter
/// (`app.3f9a1c2e.js`, `3f9a1c2e0b.css`, `chunk.3f9a1c2e.min.js`). Requiring both kinds of
/// character keeps dates and version numbers (`report.20240101.pdf`) and words spelled in hex
/// letters (`deadbeefcafe`) from passing for hashes; an all-digit hash (about 2 % of 8-digit
/// ones) is missed, which only costs a shorter lifetime.
pub fn is_fingerprinted(file_name: &str) -> bool {
    let Some((stem, _extension)) = file_name.rsplit_once('.') else {
        return false;
    };
    stem.split('.').any(|segment| {
        segment.len() >= 8
            && segment
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            && segment.bytes().any(|b| b.is_ascii_digit())
            && segment.bytes().any(|b| b.is_ascii_lowercase())
    })
}

/// A media-range-like pattern: `*/*`, `image/*` or `video/mp4` (lowercase).
#[derive(Debug, Clone, PartialEq, Eq)]
enum TypePattern {
    Any,
    Type(String),
    Exact(String),
}

impl TypePattern {
    fn parse(text: &str) -> Result<TypePattern, String> {
        let valid = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
        };
        let lower = text.to_ascii_lowercase();
        match lower.split_once('/') {
            Some(("*", "*")) => Ok(TypePattern::Any),
            Some((kind, "*")) if valid(kind) => Ok(TypePattern::Type(kind.to_owned())),
            Some((kind, sub)) if valid(kind) && valid(sub) => Ok(TypePattern::Exact(lower)),
            _ => Err(format!(
                "invalid content-type pattern {text:?}: expected \"type/subtype\", \"type/*\" \
                 or \"*/*\", without parameters"
            )),
        }
    }

    fn matches(&self, essence: &str) -> bool {
        match self {
            TypePattern::Any => essence.contains('/'),
            TypePattern::Type(kind) => essence
                .split_once('/')
                .is_some_and(|(k, sub)| k.eq_ignore_ascii_case(kind) && !sub.is_empty()),
            TypePattern::Exact(full) => essence.eq_ignore_ascii_case(full),
        }
    }
}

/// The compiled conditions of one rule.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    content_types: Vec<(String, TypePattern)>,
    extensions: Vec<String>,
    globs: Option<(GlobSet, Vec<String>)>,
    fingerprinted: Option<bool>,
}

impl Matcher {
    /// Adds a content-type pattern; the error says what is wrong.
    pub fn add_content_type(&mut self, text: &str) -> Result<(), String> {
        let pattern = TypePattern::parse(text)?;
        self.content_types.push((text.to_owned(), pattern));
        Ok(())
    }

    /// Adds an extension (`css`, `.css` and `tar.gz` are fine).
    pub fn add_extension(&mut self, text: &str) -> Result<(), String> {
        let ext = text.strip_prefix('.').unwrap_or(text);
        if ext.is_empty() || ext.starts_with('.') || ext.contains('/') || ext.contains('\\') {
            return Err(format!(
                "invalid extension {text:?}: expected a file extension such as \"css\""
            ));
        }
        self.extensions.push(ext.to_ascii_lowercase());
        Ok(())
    }

    /// Compiles the path globs (`*` stays within a segment, `**` crosses them).
    pub fn set_globs(&mut self, patterns: &[String]) -> Result<(), (usize, String)> {
        let mut builder = GlobSetBuilder::new();
        for (i, pattern) in patterns.iter().enumerate() {
            if !pattern.starts_with('/') && !pattern.starts_with("**") {
                return Err((
                    i,
                    format!("path glob {pattern:?} must start with / (URL paths do) or **"),
                ));
            }
            let glob = GlobBuilder::new(pattern)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| (i, format!("invalid path glob {pattern:?}: {}", e.kind())))?;
            builder.add(glob);
        }
        let set = builder
            .build()
            .map_err(|e| (0, format!("invalid path globs: {e}")))?;
        self.globs = Some((set, patterns.to_vec()));
        Ok(())
    }

    /// Requires the file name to be fingerprinted (or not).
    pub fn set_fingerprinted(&mut self, wanted: bool) {
        self.fingerprinted = Some(wanted);
    }

    /// Whether the rule has any condition at all.
    pub fn is_empty(&self) -> bool {
        self.content_types.is_empty()
            && self.extensions.is_empty()
            && self.globs.is_none()
            && self.fingerprinted.is_none()
    }

    /// Whether every condition holds for `subject`. Cheapest conditions first.
    pub fn matches(&self, subject: &Subject<'_>) -> bool {
        self.fingerprint_ok(subject)
            && self.extension_ok(subject)
            && self.content_type_ok(subject)
            && self.glob_ok(subject)
    }

    fn fingerprint_ok(&self, s: &Subject<'_>) -> bool {
        self.fingerprinted
            .is_none_or(|wanted| wanted == s.fingerprinted)
    }

    fn extension_ok(&self, s: &Subject<'_>) -> bool {
        self.extensions.is_empty()
            || self
                .extensions
                .iter()
                .any(|ext| has_extension(s.file_name, ext))
    }

    fn content_type_ok(&self, s: &Subject<'_>) -> bool {
        self.content_types.is_empty()
            || self.content_types.iter().any(|(_, p)| p.matches(s.essence))
    }

    fn glob_ok(&self, s: &Subject<'_>) -> bool {
        self.globs
            .as_ref()
            .is_none_or(|(set, _)| set.is_match_candidate(&s.candidate))
    }

    /// For `explain`: `Ok(conditions that held)` or `Err(the first condition that failed)`.
    pub fn explain(&self, s: &Subject<'_>) -> Result<String, String> {
        let mut held = Vec::new();
        if let Some(wanted) = self.fingerprinted {
            let what = if wanted {
                "fingerprinted"
            } else {
                "not fingerprinted"
            };
            if !self.fingerprint_ok(s) {
                return Err(format!("file name {:?} is not {what}", s.file_name));
            }
            held.push(format!("file name is {what}"));
        }
        if !self.extensions.is_empty() {
            let list = self.extensions.join(", ");
            if !self.extension_ok(s) {
                return Err(format!(
                    "file name {:?} has no extension in [{list}]",
                    s.file_name
                ));
            }
            held.push(format!("extension in [{list}]"));
        }
        if !self.content_types.is_empty() {
            let list: Vec<&str> = self.content_types.iter().map(|(t, _)| t.as_str()).collect();
            let list = list.join(", ");
            if !self.content_type_ok(s) {
                return Err(format!("content type {:?} not in [{list}]", s.essence));
            }
            held.push(format!("content type {:?} in [{list}]", s.essence));
        }
        if let Some((_, patterns)) = &self.globs {
            let list = patterns.join(", ");
            if !self.glob_ok(s) {
                return Err(format!("path {:?} matches none of [{list}]", s.path));
            }
            held.push(format!("path matches one of [{list}]"));
        }
        Ok(held.join("; "))
    }
}

/// `name` ends with `.ext` (case-insensitively) and has something before the dot.
fn has_extension(name: &str, ext: &str) -> bool {
    let n = name.len();
    n > ext.len() + 1
        && name.is_char_boundary(n - ext.len() - 1)
        && name.as_bytes()[n - ext.len() - 1] == b'.'
        && name[n - ext.len()..].eq_ignore_ascii_case(ext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprinted_names() {
        let table = [
            ("app.3f9a1c2e.js", true),
            ("app.3f9a1c2e0b7d4a1f.css", true),
            ("3f9a1c2e.js", true),
            ("chunk.3f9a1c2e.min.js", true),
            ("logo.abcdef12.png", true),
            ("app.3f9a1c2.js", false), // 7 hex digits
            ("app.js", false),
            ("app.3F9A1C2E.js", false), // uppercase is not what bundlers write
            ("report.20240101.pdf", false), // a date
            ("app.deadbeefcafe.js", false), // letters only
            ("app.3f9a1c2e", false),    // the hash is the extension
            ("3f9a1c2e", false),
            ("app-3f9a1c2e.js", false), // not dot-separated
            ("app.3f9a1c2g.js", false),
            ("", false),
        ];
        for (name, expected) in table {
            assert_eq!(is_fingerprinted(name), expected, "{name:?}");
        }
    }

    #[test]
    fn content_type_patterns() {
        let table = [
            ("image/*", "image/png", true),
            ("image/*", "IMAGE/PNG; q=1", true),
            ("image/*", "video/mp4", false),
            ("image/*", "image/", false),
            ("video/mp4", "video/mp4", true),
            ("video/mp4", "video/mp4;codecs=avc1", true),
            ("Video/MP4", "video/mp4", true),
            ("video/mp4", "video/mp4v", false),
            ("*/*", "application/octet-stream", true),
            ("*/*", "", false),
            ("text/html", "text/htmlx", false),
        ];
        for (pattern, content_type, expected) in table {
            let mut m = Matcher::default();
            m.add_content_type(pattern).unwrap();
            let s = Subject::new("/x", content_type);
            assert_eq!(m.matches(&s), expected, "{pattern} vs {content_type}");
        }
        for bad in [
            "image",
            "*/png",
            "image/png; charset=x",
            "",
            "/",
            "image/ *",
        ] {
            assert!(Matcher::default().add_content_type(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn extensions() {
        let table = [
            ("css", "/a/style.css", true),
            (".css", "/a/STYLE.CSS", true),
            ("css", "/a/style.scss", false),
            ("css", "/a/.css", false),
            ("css", "/css", false),
            ("css", "/a.css/b", false),
            ("tar.gz", "/dl/x.tar.gz", true),
            ("gz", "/dl/x.tar.gz", true),
            ("js", "/é.js", true),
        ];
        for (ext, path, expected) in table {
            let mut m = Matcher::default();
            m.add_extension(ext).unwrap();
            assert_eq!(
                m.matches(&Subject::new(path, "")),
                expected,
                "{ext} vs {path}"
            );
        }
        for bad in ["", ".", "..css", "a/b", "a\\b"] {
            assert!(Matcher::default().add_extension(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn path_globs() {
        let table = [
            ("/assets/**", "/assets/app.js", true),
            ("/assets/**", "/assets/js/deep/app.js", true),
            ("/assets/**", "/other/assets/app.js", false),
            ("/assets/*", "/assets/js/app.js", false), // * stays within a segment
            ("/*.html", "/index.html", true),
            ("**/*.map", "/a/b/app.js.map", true),
            ("/downloads/*.{zip,gz}", "/downloads/x.gz", true),
        ];
        for (glob, path, expected) in table {
            let mut m = Matcher::default();
            m.set_globs(&[glob.to_owned()]).unwrap();
            assert_eq!(
                m.matches(&Subject::new(path, "")),
                expected,
                "{glob} vs {path}"
            );
        }
        let err = Matcher::default()
            .set_globs(&["/ok/**".to_owned(), "assets/**".to_owned()])
            .unwrap_err();
        assert_eq!(err.0, 1);
        assert!(Matcher::default().set_globs(&["/a/[".to_owned()]).is_err());
    }

    #[test]
    fn all_conditions_must_hold() {
        let mut m = Matcher::default();
        m.add_content_type("text/javascript").unwrap();
        m.set_globs(&["/assets/**".to_owned()]).unwrap();
        m.set_fingerprinted(true);
        assert!(m.matches(&Subject::new("/assets/app.3f9a1c2e.js", "text/javascript")));
        assert!(!m.matches(&Subject::new("/assets/app.js", "text/javascript")));
        assert!(!m.matches(&Subject::new("/assets/app.3f9a1c2e.js", "text/css")));
        assert!(!m.matches(&Subject::new("/app.3f9a1c2e.js", "text/javascript")));
        let why = m.explain(&Subject::new("/app.3f9a1c2e.js", "text/javascript"));
        assert!(why.unwrap_err().contains("matches none of [/assets/**]"));
        let why = m.explain(&Subject::new("/assets/app.3f9a1c2e.js", "text/javascript"));
        assert!(why.unwrap().contains("fingerprinted"));
    }

    #[test]
    fn not_fingerprinted_condition() {
        let mut m = Matcher::default();
        m.set_fingerprinted(false);
        assert!(m.matches(&Subject::new("/app.js", "")));
        assert!(!m.matches(&Subject::new("/app.3f9a1c2e.js", "")));
        assert!(!m.is_empty());
        assert!(Matcher::default().is_empty());
    }
}
