//! Shell completions and man pages, checked the way a user meets them: the script is
//! loaded by the real shell and asked for completions, the pages are rendered by `man`.

// Test helpers: a failed setup step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{Sandbox, text};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// Loads `portcullis completions bash` into a non-interactive bash, completes the command
/// line `words` (the last word is the one being completed) and returns COMPREPLY. The
/// first line of the result is what `complete -p portcullis` printed.
fn bash_complete(words: &[&str]) -> Vec<String> {
    let script = r#"
        source <("$PORTCULLIS" completions bash) || exit 1
        complete -p portcullis || exit 1
        fn=$(complete -p portcullis | sed -E 's/.* -F ([^ ]+) .*/\1/')
        COMP_WORDS=("$@")
        COMP_CWORD=$(( $# - 1 ))
        COMP_LINE="$*"
        COMP_POINT=${#COMP_LINE}
        prev=""
        (( COMP_CWORD > 0 )) && prev=${COMP_WORDS[COMP_CWORD-1]}
        "$fn" portcullis "${COMP_WORDS[COMP_CWORD]}" "$prev"
        printf '%s\n' "${COMPREPLY[@]}"
    "#;
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", script, "bash"])
        .args(words)
        .env("PORTCULLIS", BIN)
        .output()
        .expect("run bash");
    assert!(out.status.success(), "bash failed:\n{}", text(&out));
    assert!(out.stderr.is_empty(), "bash complained:\n{}", text(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completion_registers_for_portcullis_and_offers_subcommands() {
    let reply = bash_complete(&["portcullis", "pki", "is"]);
    let (spec, offered) = reply.split_first().expect("complete -p printed nothing");
    assert!(
        spec.starts_with("complete ") && spec.ends_with(" portcullis"),
        "unexpected completion spec: {spec}"
    );
    assert_eq!(offered, ["issue"], "completing `portcullis pki is`");

    let reply = bash_complete(&["portcullis", "pki", "issue", ""]);
    for sub in ["server", "client"] {
        assert!(reply.iter().any(|w| w == sub), "no {sub} in {reply:?}");
    }
}

#[test]
fn bash_completion_offers_a_subcommands_own_and_global_flags() {
    let reply = bash_complete(&["portcullis", "pki", "issue", "client", "--em"]);
    assert_eq!(&reply[1..], ["--email"]);
    // --dir is defined once on `pki` (global) and completes in every pki subcommand.
    let reply = bash_complete(&["portcullis", "pki", "issue", "client", "--di"]);
    assert_eq!(&reply[1..], ["--dir"]);
}

/// zsh is installed by scripts/setup. Completion itself needs an interactive zsh, so this
/// loads the script as compinit would, checks it registered for `portcullis`, and lists
/// the subcommands the `pki` completer would offer (with `_describe` replaced by a stub
/// that prints its candidates).
#[test]
fn zsh_completion_loads_and_lists_pki_subcommands() {
    let sb = Sandbox::new();
    let script = r#"
        autoload -Uz compinit && compinit -u -d "$ZCOMPDUMP" || exit 1
        source <("$PORTCULLIS" completions zsh) || exit 1
        print -r -- "registered: $_comps[portcullis]"
        _describe() { local name=$4; print -rl -- ${(P)name} }
        _portcullis__subcmd__pki_commands
    "#;
    let out = Command::new("zsh")
        .args(["-f", "-c", script])
        .env("PORTCULLIS", BIN)
        .env("ZCOMPDUMP", sb.path("zcompdump"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run zsh ({e}); run scripts/setup"));
    let printed = text(&out);
    assert!(out.status.success(), "zsh failed:\n{printed}");
    let mut lines = printed.lines();
    assert_eq!(lines.next(), Some("registered: _portcullis"), "{printed}");
    let offered: Vec<&str> = lines.filter_map(|l| l.split(':').next()).collect();
    for sub in [
        "init",
        "issue",
        "csr",
        "sign",
        "revoke",
        "crl",
        "renew",
        "needs-renewal",
        "list",
        "inspect",
        "trust",
    ] {
        assert!(offered.contains(&sub), "no {sub} in {offered:?}");
    }
}

/// fish, elvish and PowerShell are not installed here: the scripts must at least exist and
/// know the subcommands and their help. (clap_complete's fish script stops at two levels:
/// `pki issue` completes, the flags of `pki issue client` do not.)
#[test]
fn other_shells_get_scripts_naming_the_subcommands() {
    let sb = Sandbox::new();
    for shell in ["fish", "elvish", "powershell"] {
        let script = sb.ok(&["completions", shell]);
        for needle in [
            "portcullis",
            "issue",
            "inspect",
            "doctor",
            "The CA directory",
        ] {
            assert!(script.contains(needle), "{shell} script lacks {needle:?}");
        }
    }
}

#[test]
fn completions_for_an_unknown_shell_is_an_error_listing_the_shells() {
    let err = Sandbox::new().fails(&["completions", "tcsh"]);
    assert!(
        err.contains("bash") && err.contains("zsh") && err.contains("fish"),
        "{err}"
    );
}

/// Renders a page with `man` as a user would, without hyphenation or justification so
/// that words and flags stay whole.
fn render(page: &std::path::Path) -> String {
    let out = Command::new("man")
        .args(["--nh", "--nj", "-l"])
        .arg(page)
        .env("MANWIDTH", "100")
        .env("LC_ALL", "C")
        .env("MANPAGER", "cat")
        .output()
        .expect("run man");
    assert!(
        out.status.success(),
        "man -l {}:\n{}",
        page.display(),
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn man_writes_one_page_per_subcommand_and_each_renders() {
    let sb = Sandbox::new();
    let printed = sb.ok(&["man", "--out", "man/man1"]);
    let mut pages: Vec<String> = std::fs::read_dir(sb.path("man/man1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    pages.sort();
    let expected = [
        "portcullis-check.1",
        "portcullis-completions.1",
        "portcullis-doctor-audit.1",
        "portcullis-doctor-capture.1",
        "portcullis-doctor-compare-captures.1",
        "portcullis-doctor-explain.1",
        "portcullis-doctor.1",
        "portcullis-enroll.1",
        "portcullis-man.1",
        "portcullis-pki-crl.1",
        "portcullis-pki-csr.1",
        "portcullis-pki-enroll-create.1",
        "portcullis-pki-enroll-list.1",
        "portcullis-pki-enroll-revoke.1",
        "portcullis-pki-enroll.1",
        "portcullis-pki-init.1",
        "portcullis-pki-inspect.1",
        "portcullis-pki-issue-client.1",
        "portcullis-pki-issue-server.1",
        "portcullis-pki-issue.1",
        "portcullis-pki-list.1",
        "portcullis-pki-needs-renewal.1",
        "portcullis-pki-renew.1",
        "portcullis-pki-revoke.1",
        "portcullis-pki-sign.1",
        "portcullis-pki-trust-install.1",
        "portcullis-pki-trust-uninstall.1",
        "portcullis-pki-trust.1",
        "portcullis-pki.1",
        "portcullis-policy-test.1",
        "portcullis-policy.1",
        "portcullis-renew.1",
        "portcullis-serve.1",
        "portcullis.1",
    ];
    assert_eq!(
        pages, expected,
        "no page for `help`, one for everything else"
    );
    assert!(
        printed.contains(&format!("wrote {} man pages", expected.len())),
        "{printed}"
    );

    for page in &pages {
        let shown = render(&sb.path(&format!("man/man1/{page}")));
        let name = page.trim_end_matches(".1");
        assert!(
            shown.contains("NAME") && shown.contains(name),
            "{page}:\n{shown}"
        );
        assert!(
            shown.contains("portcullis 0.1.0"),
            "{page} footer:\n{shown}"
        );
    }
}

#[test]
fn man_page_of_pki_lists_its_subcommands_and_options() {
    let sb = Sandbox::new();
    sb.ok(&["man", "--out", "pages"]);

    let pki = render(&sb.path("pages/portcullis-pki.1"));
    for sub in [
        "init",
        "issue",
        "csr",
        "sign",
        "revoke",
        "crl",
        "renew",
        "needs-renewal",
        "list",
        "inspect",
        "trust",
    ] {
        assert!(
            pki.contains(&format!("portcullis-pki-{sub}(1)")),
            "no {sub}:\n{pki}"
        );
    }
    assert!(
        pki.contains("--dir <DIR>") && pki.contains("The CA directory"),
        "{pki}"
    );

    let client = render(&sb.path("pages/portcullis-pki-issue-client.1"));
    assert!(client.contains("--email <EMAIL>"), "{client}");
    assert!(
        client.contains("Email address (emailAddress, and an rfc822Name SAN in client"),
        "{client}"
    );
    // Flattened and global flags appear on the leaf page too.
    assert!(client.contains("--ca-passphrase-file <FILE>"), "{client}");
    assert!(client.contains("--dir <DIR>"), "{client}");
}

#[test]
fn man_into_a_path_that_is_a_file_is_an_error_naming_it() {
    let sb = Sandbox::new();
    std::fs::write(sb.path("taken"), "").unwrap();
    let err = sb.fails(&["man", "--out", "taken"]);
    assert!(err.contains("taken"), "{err}");
}
