//! `request::map_path`: URL path to store key, the traversal guard (issue 2, point 3).
//!
//! The input becomes a request target the way hyper builds one (`Uri::from_maybe_shared`); the
//! first byte says whether dotfiles are served. Besides "never panics", every key that maps must
//! be safe to join under a local root: relative, made only of normal components (no `..`, `.`,
//! root or empty segment), with no backslash, NUL or control character, no dotfile unless they
//! are served (`.well-known` excepted), and within the length limit.
#![no_main]

use std::path::{Component, Path};

use cdn_origin::request::{MAX_PATH_LEN, PathError, map_path};
use http::Uri;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, target)) = data.split_first() else {
        return;
    };
    let serve_dotfiles = flags & 1 == 1;
    let Ok(uri) = Uri::from_maybe_shared(target.to_vec()) else {
        return;
    };
    let mapped = match map_path(&uri, serve_dotfiles) {
        Ok(m) => m,
        Err(PathError::Bad(_) | PathError::Hidden(_) | PathError::TooLong) => return,
    };
    let key = mapped.key();
    assert!(!key.is_empty(), "empty key for {uri}");
    assert!(
        mapped.path().starts_with('/'),
        "path without a leading slash: {:?}",
        mapped.path()
    );
    assert!(mapped.path().len() <= MAX_PATH_LEN, "over-long path accepted");
    assert!(!key.contains('\\'), "backslash in key {key:?}");
    assert!(
        !key.chars().any(char::is_control),
        "control character in key {key:?}"
    );
    for segment in key.split('/') {
        assert!(!segment.is_empty(), "empty segment in key {key:?}");
        assert!(
            segment != "." && segment != "..",
            "dot segment in key {key:?}"
        );
        if !serve_dotfiles && segment != ".well-known" {
            assert!(!segment.starts_with('.'), "dotfile in key {key:?}");
        }
    }
    for component in Path::new(key).components() {
        assert!(
            matches!(component, Component::Normal(_)),
            "key {key:?} leaves its root"
        );
    }
    if mapped.is_index {
        assert!(
            key == "index.html" || key.ends_with("/index.html"),
            "index key {key:?}"
        );
    }
});
