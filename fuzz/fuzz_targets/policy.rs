//! `policy::PolicySet::from_str`, the policy-file loader, on any text.
//!
//! Policy files are written by operators, but a reload must never take the server down: any
//! text either loads or gives an error naming the place, never a panic. A set that loads must
//! select a policy for any path and type and render its headers.
#![no_main]

use cdn_origin::policy::PolicySet;
use http::HeaderMap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match PolicySet::from_str(text, "fuzz.toml") {
        Err(e) => {
            let _ = e.to_string();
            let _ = e.location();
        }
        Ok(set) => {
            for (path, mime) in [
                ("/", "text/html"),
                ("/assets/app.3f9a1c2e.js", "text/javascript"),
                ("/video/clip.mp4", "video/mp4"),
                ("/a/b/c.woff2", "font/woff2"),
                ("/%", ""),
            ] {
                let policy = set.select(path, mime);
                let mut headers = HeaderMap::new();
                policy.apply(&mut headers);
                let _ = policy.describe();
                let _ = set.explain(path, mime);
            }
            let mut headers = HeaderMap::new();
            set.error_policy().apply(&mut headers);
            let _ = set.default_policy().describe();
        }
    }
});
