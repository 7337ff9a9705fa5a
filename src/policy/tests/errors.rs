//! Every error kind names the file, line, column and field.

use super::SECTIONS;
use crate::policy::{PolicyError, PolicySet};
use proptest::prelude::*;

/// Every error kind, with the position and field it must name.
#[test]
fn errors_name_file_line_column_and_field() {
    let rule = |body: &str| format!("[[rule]]\nname = \"r\"\n{body}\n{SECTIONS}");
    let table: Vec<(String, &str, &str)> = vec![
        // TOML syntax, with the key of the line when there is one
        (
            "[default]\nmax-age = 30d\n".into(),
            "t.toml:2:11: field `max-age`: TOML syntax",
            "",
        ),
        ("[default\n".into(), "t.toml:1:9: TOML syntax", ""),
        // unknown keys, wherever they are
        (
            "[default]\nmax_age = 60\n".into(),
            "t.toml:2:1: field `max_age`: unknown field in [default]",
            "`max-age`",
        ),
        (
            "[defaults]\n".into(),
            "t.toml:1:2: field `defaults`: unknown field in the top level",
            "`[default]`",
        ),
        (
            rule("colour = 1"),
            "t.toml:3:1: field `colour`: unknown field in [[rule]] 1",
            "`content-type`",
        ),
        (
            "[errors]\npath = \"/x\"\n".into(),
            "t.toml:2:1: field `path`: unknown field in [errors]",
            "conditions belong in [[rule]]",
        ),
        (
            rule("extension = \"js\"\ncdn-cache-control = { maxage = 1 }"),
            "t.toml:4:23: field `maxage`: unknown field in cdn-cache-control",
            "`s-maxage`",
        ),
        // wrong types
        (
            rule("extension = \"js\"\npublic = \"yes\""),
            "t.toml:4:10: field `public`: expected a boolean (true or false), found a string",
            "",
        ),
        (
            rule("extension = \"js\"\nmax-age = 1.5"),
            "t.toml:4:11: field `max-age`: expected a duration",
            "found a float",
        ),
        (
            rule("content-type = [\"image/*\", 3]"),
            "t.toml:3:28: field `content-type`: expected a string or an array of strings, found an integer",
            "",
        ),
        (
            "[rule]\nextension = \"js\"\n".into(),
            "t.toml:1:1: field `rule`: expected an array of tables ([[rule]]), found a table",
            "",
        ),
        (
            "default = 1\n".into(),
            "t.toml:1:11: field `default`: expected a table, found an integer",
            "",
        ),
        (
            rule("extension = \"js\"\nheaders = { X-A = 1 }"),
            "t.toml:4:19: field `headers.X-A`: expected a string, found an integer",
            "",
        ),
        // bad values
        (
            rule("extension = \"js\"\nmax-age = \"30 days\""),
            "t.toml:4:11: field `max-age`: invalid duration \"30 days\"",
            "\"30d\"",
        ),
        (
            rule("extension = \"js\"\nmax-age = -5"),
            "t.toml:4:11: field `max-age`: a duration cannot be negative",
            "",
        ),
        (
            rule("extension = \"js\"\ns-maxage = \"100000d\""),
            "t.toml:4:12: field `s-maxage`: duration 100000d is longer",
            "RFC 9111",
        ),
        (
            rule("content-type = \"image\""),
            "t.toml:3:16: field `content-type`: invalid content-type pattern \"image\"",
            "",
        ),
        (
            rule("extension = []"),
            "t.toml:3:13: field `extension`: empty list",
            "",
        ),
        (
            rule("path = [\"/ok/**\", \"assets/**\"]"),
            "t.toml:3:19: field `path`: path glob \"assets/**\" must start with /",
            "",
        ),
        (
            rule("path = \"/a/[\""),
            "t.toml:3:8: field `path`: invalid path glob \"/a/[\"",
            "",
        ),
        (
            rule("max-age = 5"),
            "t.toml:1:1: field `[[rule]]`: rule 1 has no condition",
            "[default]",
        ),
        (
            rule("extension = \"js\"\nsurrogate-key = [\"a b\"]"),
            "t.toml:4:18: field `surrogate-key`: invalid surrogate key \"a b\"",
            "",
        ),
        (
            rule("extension = \"js\"\nheaders = { \"Bad Name\" = \"x\" }"),
            "t.toml:4:13: field `headers.Bad Name`: invalid header name",
            "",
        ),
        (
            rule("extension = \"js\"\nheaders = { X-A = \"caf\\u00e9\" }"),
            "t.toml:4:19: field `headers.X-A`: invalid header value",
            "visible ASCII",
        ),
        (
            rule("extension = \"js\"\nheaders = { X-A = \"a\\u0001\" }"),
            "t.toml:4:19: field `headers.X-A`: invalid header value",
            "",
        ),
        (
            rule("extension = \"js\"\nheaders = { Cache-Control = \"no-store\" }"),
            "t.toml:4:13: field `headers.Cache-Control`: cache-control is set by the server",
            "",
        ),
        (
            rule("extension = \"js\"\nheaders = { X-Content-Type-Options = \"nosniff\" }"),
            "t.toml:4:13: field `headers.X-Content-Type-Options`",
            "set by the server",
        ),
        (
            // The server's own (RFC 9211); a policy's would be sent beside it.
            rule("extension = \"js\"\nheaders = { Cache-Status = \"x\" }"),
            "t.toml:4:13: field `headers.Cache-Status`: cache-status is set by the server",
            "",
        ),
        (
            rule("extension = \"js\"\nheaders = { X-A = \"1\", x-a = \"2\" }"),
            "t.toml:4:24: field `headers.x-a`: header x-a is given twice",
            "",
        ),
        (
            rule("extension = \"js\"\nimmutable = true"),
            "t.toml:4:1: field `immutable`: immutable only holds while fresh",
            "RFC 8246",
        ),
        (
            "[[rule]]\nname = \"default\"\nextension = \"js\"\n".into(),
            "t.toml:2:8: field `name`: rule name \"default\" is empty or reserved",
            "",
        ),
        (
            "[default]\n[errors]\nmax-age = \"2h\"\n".into(),
            "t.toml:3:1: field `max-age`: 7200s is too long for error responses",
            "",
        ),
        (
            "[default]\n[errors]\nmax-age = 60\ncdn-cache-control = { stale-if-error = \"1d\" }\n"
                .into(),
            "t.toml:4:23: field `cdn-cache-control.stale-if-error`: 86400s is too long",
            "",
        ),
        (
            "[default]\n[errors]\npublic = true\nmax-age = 60\nimmutable = true\n".into(),
            "t.toml:5:1: field `immutable`: ",
            "immutable",
        ),
        // conflicts name both fields and both positions
        (
            rule("extension = \"js\"\nmax-age = 60\nimmutable = true\nno-cache = true"),
            "t.toml:5:1: field `immutable`: conflicts with `no-cache` (t.toml:6:1)",
            "revalidates",
        ),
        (
            rule("extension = \"js\"\nno-store = true\nstale-if-error = 60"),
            "t.toml:5:1: field `stale-if-error`: conflicts with `no-store` (t.toml:4:1)",
            "",
        ),
        (
            rule("extension = \"js\"\npublic = true\nprivate = true"),
            "t.toml:5:1: field `private`: conflicts with `public` (t.toml:4:1)",
            "",
        ),
        (
            rule("extension = \"js\"\nno-store = true\nmax-age = 1"),
            "t.toml:5:1: field `max-age`: conflicts with `no-store` (t.toml:4:1)",
            "",
        ),
        (
            rule("extension = \"js\"\ncdn-cache-control = { no-store = true, max-age = 5 }"),
            "t.toml:4:40: field `cdn-cache-control.max-age`: conflicts with `cdn-cache-control.no-store` (t.toml:4:23)",
            "",
        ),
        (
            rule("extension = \"js\"\nprivate = true\ncdn-cache-control = { max-age = 5 }"),
            "t.toml:5:1: field `cdn-cache-control`: conflicts with `private` (t.toml:4:1)",
            "RFC 9213",
        ),
        // set-level problems
        ("[errors]\n".into(), "t.toml: no [default] section", ""),
        ("[default]\n".into(), "t.toml: no [errors] section", ""),
        (
            format!(
                "{SECTIONS}[[rule]]\nname = \"a\"\nextension = \"x\"\n[[rule]]\nname = \"a\"\nextension = \"y\"\n"
            ),
            "t.toml:9:1: field `name`: rule name \"a\" already defined at t.toml:5:1",
            "",
        ),
    ];
    let mut failures = Vec::new();
    for (text, prefix, also) in &table {
        match PolicySet::from_str(text, "t.toml") {
            Ok(_) => failures.push(format!("accepted:\n{text}")),
            Err(e) if !e.to_string().starts_with(prefix) || !e.to_string().contains(also) => {
                failures.push(format!("{text}\n  got:  {e}\n  want: {prefix}... {also}"));
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn error_kinds_are_distinct_variants() {
    let kind = |text: &str| match PolicySet::from_str(text, "t.toml").unwrap_err() {
        PolicyError::Syntax { .. } => "syntax",
        PolicyError::UnknownField { .. } => "unknown",
        PolicyError::Type { .. } => "type",
        PolicyError::Value { .. } => "value",
        PolicyError::Conflict { .. } => "conflict",
        PolicyError::Duplicate { .. } => "duplicate",
        PolicyError::Missing { .. } => "missing",
        PolicyError::Io { .. } => "io",
    };
    assert_eq!(kind("x ="), "syntax");
    assert_eq!(kind("[default]\nmaxage = 1"), "unknown");
    assert_eq!(kind("[default]\npublic = 1"), "type");
    assert_eq!(kind("[default]\nmax-age = \"1y\""), "value");
    assert_eq!(kind("[default]\npublic = true\nprivate = true"), "conflict");
    assert_eq!(kind("[default]\n"), "missing");
}

#[test]
fn sections_defined_twice_across_files_are_refused() {
    let files = [
        ("a.toml".to_owned(), SECTIONS.to_owned()),
        (
            "b.toml".to_owned(),
            "\n[default]\npublic = true\n".to_owned(),
        ),
    ];
    let err = PolicySet::from_files(&files, "dir")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "b.toml:2:2: field `[default]`: section [default] already defined at a.toml:1:2"
    );
    let err = PolicySet::from_files(&[], "dir").unwrap_err().to_string();
    assert_eq!(err, "dir: no *.toml policy files");
}

const SHIPPED: &str = include_str!("../../../policies/default.toml");

proptest! {
    /// The loader must never panic on a bad file: it refuses it with a positioned error.
    #[test]
    fn loader_never_panics_on_arbitrary_text(text in "[\\[\\]{}=\"a-z0-9 ,.*/\n-]{0,200}") {
        let _ = PolicySet::from_str(&text, "fuzz.toml");
    }

    /// Damaged versions of the shipped file: either they load or the error has a position
    /// inside the file (syntax and field errors) or names a missing section.
    #[test]
    fn damaged_shipped_file_is_refused_with_a_position(
        start in 0usize..SHIPPED.len(),
        len in 0usize..40,
        insert in "[\\[\\]{}=\"a-z0-9 ,.\n-]{0,6}",
    ) {
        let mut text = SHIPPED.to_owned();
        let start = (0..=start).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        let end = (start + len).min(text.len());
        let end = (end..=text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len());
        text.replace_range(start..end, &insert);
        if let Err(e) = PolicySet::from_str(&text, "d.toml") {
            match e.location() {
                Some(at) => {
                    prop_assert!(at.line >= 1 && at.line <= text.lines().count() + 1, "{}", e);
                    let prefix = format!("d.toml:{}:{}: ", at.line, at.column);
                    prop_assert!(e.to_string().starts_with(&prefix), "{}", e);
                }
                None => prop_assert!(matches!(e, PolicyError::Missing { .. }), "{}", e),
            }
        }
    }
}
