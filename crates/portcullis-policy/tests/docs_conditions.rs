//! Every condition in docs/policy.md compiles: the guide's examples are the ones users copy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use portcullis_policy::{Scope, When};

#[test]
fn every_when_in_the_policy_guide_compiles() {
    let guide = include_str!("../../../docs/policy.md");
    let mut blocks = guide.split("```toml\n").skip(1);
    let mut checked = 0;
    for block in blocks.by_ref() {
        let text = block.split("```").next().unwrap();
        let doc: toml::Table = toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let list = |key: &str| {
            doc.get(key)
                .and_then(|v| v.as_array())
                .cloned()
                .unwrap_or_default()
        };
        // The roles the examples assume are defined elsewhere in a config.
        let mut roles: Vec<String> = ["admin", "hr", "auditor", "user", "editor"]
            .map(String::from)
            .to_vec();
        for r in list("roles") {
            if let Some(name) = r.get("role").and_then(|v| v.as_str()) {
                roles.push(name.to_owned());
            }
            if let Some(w) = r.get("when").and_then(|v| v.as_str()) {
                When::compile(w, Scope::Role, &[]).unwrap_or_else(|e| panic!("{w}: {e}"));
                checked += 1;
            }
        }
        for r in list("rules") {
            if let Some(w) = r.get("when").and_then(|v| v.as_str()) {
                When::compile(w, Scope::Rule, &roles).unwrap_or_else(|e| panic!("{w}: {e}"));
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 7,
        "only {checked} conditions found in docs/policy.md"
    );
}
