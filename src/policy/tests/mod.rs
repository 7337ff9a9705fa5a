//! Tests of whole policy sets: match order, rendering, explain and directory loading; the
//! error messages ([`errors`]) and the shipped files ([`shipped`]) have their own files.

mod errors;
mod shipped;

use super::*;

const SECTIONS: &str = "[default]\nmax-age = 60\n[errors]\nmax-age = 10\n";

fn set(text: &str) -> PolicySet {
    PolicySet::from_str(text, "t.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn header(value: &Option<HeaderValue>) -> Option<&str> {
    value.as_ref().map(|v| v.to_str().unwrap())
}

#[test]
fn first_matching_rule_wins_in_file_order() {
    let s = set(&format!(
        r#"
[[rule]]
name = "hashed"
fingerprinted = true
max-age = 1

[[rule]]
name = "assets"
path = "/assets/**"
max-age = 2

[[rule]]
name = "scripts"
content-type = "text/javascript"
extension = ["js", "mjs"]
max-age = 3

[[rule]]
name = "any-js"
extension = "js"
max-age = 4
{SECTIONS}"#
    ));
    let table = [
        ("/assets/app.3f9a1c2e.js", "text/javascript", "hashed"),
        ("/assets/app.js", "text/javascript", "assets"),
        ("/lib/app.js", "text/javascript; charset=utf-8", "scripts"),
        ("/lib/app.mjs", "TEXT/JavaScript", "scripts"),
        ("/lib/app.js", "application/octet-stream", "any-js"),
        ("/lib/app.css", "text/css", "default"),
        ("/", "", "default"),
    ];
    for (path, content_type, expected) in table {
        assert_eq!(
            s.select(path, content_type).name,
            expected,
            "{path} {content_type}"
        );
    }
    assert_eq!(s.error_policy().name, "errors");
    assert_eq!(s.rule_count(), 4);
    assert_eq!(s.policies().count(), 6);
}

#[test]
fn headers_are_rendered_once_and_applied() {
    let s = set(r#"
[headers]
Strict-Transport-Security = "max-age=63072000"
X-Frame-Options = "DENY"

[[rule]]
name = "img"
content-type = "image/*"
public = true
max-age = "1d"
stale-while-revalidate = 8640
no-transform = true
surrogate-key = ["images", "static"]
cdn-cache-control = { max-age = "30d", stale-if-error = "7d" }
headers = { X-Frame-Options = "SAMEORIGIN", Timing-Allow-Origin = "*" }

[default]

[errors]
no-store = true
"#);
    let img = s.select("/a.png", "image/png");
    assert_eq!(
        header(&img.cache_control),
        Some("public, no-transform, max-age=86400, stale-while-revalidate=8640")
    );
    assert_eq!(
        header(&img.cdn_cache_control),
        Some("max-age=2592000, stale-if-error=604800")
    );
    assert_eq!(header(&img.surrogate_key), Some("images static"));
    assert!(img.no_transform);
    assert_eq!(
        img.directives.max_age,
        Some(std::time::Duration::from_secs(86_400))
    );

    let mut headers = HeaderMap::new();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("stale"));
    img.apply(&mut headers);
    assert_eq!(headers[CACHE_CONTROL], img.cache_control.clone().unwrap());
    assert_eq!(
        headers[CDN_CACHE_CONTROL],
        "max-age=2592000, stale-if-error=604800"
    );
    assert_eq!(headers[SURROGATE_KEY], "images static");
    // the rule's own header wins over the set-wide one; the others are merged in
    assert_eq!(headers["x-frame-options"], "SAMEORIGIN");
    assert_eq!(headers["strict-transport-security"], "max-age=63072000");
    assert_eq!(headers["timing-allow-origin"], "*");
    assert_eq!(headers.len(), 6);

    // an empty [default] writes no caching header at all, only the set-wide ones
    let mut headers = HeaderMap::new();
    s.default_policy().apply(&mut headers);
    assert_eq!(headers.len(), 2);
    assert!(!headers.contains_key(CACHE_CONTROL));
    assert_eq!(header(&s.error_policy().cache_control), Some("no-store"));
}

#[test]
fn cdn_cache_control_works_as_a_sub_table_of_each_rule() {
    let s = set(&format!(
        "[[rule]]\nname = \"a\"\nextension = \"js\"\n[rule.cdn-cache-control]\nmax-age = \"1d\"\n\
         [[rule]]\nname = \"b\"\nextension = \"css\"\n[rule.cdn-cache-control]\nmax-age = 5\n{SECTIONS}"
    ));
    assert_eq!(
        header(&s.select("/a.js", "").cdn_cache_control),
        Some("max-age=86400")
    );
    assert_eq!(
        header(&s.select("/a.css", "").cdn_cache_control),
        Some("max-age=5")
    );
    assert_eq!(s.select("/a.css", "").cache_control, None);
}

#[test]
fn explain_tells_which_rule_matched_and_why_others_did_not() {
    let s = set(&format!(
        "[[rule]]\nname = \"html\"\ncontent-type = \"text/html\"\nno-cache = true\n\
         [[rule]]\nname = \"hashed\"\nfingerprinted = true\npublic = true\nmax-age = \"365d\"\n\
         immutable = true\n{SECTIONS}"
    ));
    let text = s.explain("/app.3f9a1c2e.js", "text/javascript");
    assert!(
        text.contains(
            "skip    \"html\" (t.toml:1:1): content type \"text/javascript\" not in [text/html]"
        ),
        "{text}"
    );
    assert!(
        text.contains("match   \"hashed\" (t.toml:5:1): file name is fingerprinted"),
        "{text}"
    );
    assert!(
        text.contains("cache-control: public, max-age=31536000, immutable"),
        "{text}"
    );
    assert!(
        text.contains("[errors]:\n  cache-control: max-age=10"),
        "{text}"
    );

    let text = s.explain("/data.json", "application/json");
    assert!(
        text.contains("no rule matched: [default] applies"),
        "{text}"
    );
    assert!(
        text.contains("policy \"default\" gives:\n  cache-control: max-age=60"),
        "{text}"
    );
}

#[test]
fn a_directory_loads_its_top_level_toml_files_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write("20-sections.toml", SECTIONS);
    write(
        "10-first.toml",
        "[[rule]]\nname = \"one\"\nextension = \"js\"\nmax-age = 1\n",
    );
    write(
        "30-last.toml",
        "[[rule]]\nname = \"two\"\nextension = [\"js\", \"css\"]\nmax-age = 2\n",
    );
    write("notes.txt", "not a policy");
    std::fs::create_dir(dir.path().join("examples")).unwrap();
    write("examples/broken.toml", "this is not toml");
    let s = PolicySet::load(dir.path()).unwrap();
    assert_eq!(s.select("/a.js", "").name, "one");
    assert_eq!(s.select("/a.css", "").name, "two");
    let names: Vec<String> = s
        .sources()
        .iter()
        .map(|p| p.rsplit('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["10-first.toml", "20-sections.toml", "30-last.toml"]);

    write("40-bad.toml", "[default]\n");
    let err = PolicySet::load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("40-bad.toml:1:2: field `[default]`: section [default] already defined at "),
        "{err}"
    );
    assert!(err.ends_with("20-sections.toml:1:2"), "{err}");

    let missing = dir.path().join("nope");
    let err = PolicySet::load(&missing).unwrap_err();
    assert!(matches!(err, PolicyError::Io { .. }), "{err}");
    assert!(err.to_string().contains("nope"), "{err}");
}
