//! Every fuzz target's oracle, run on its seed corpus and on every input kept under
//! `fuzz/corpus/TARGET/` and `fuzz/artifacts/TARGET/` (crashes the fuzzer saved): the
//! fuzzers' findings stay tests on the stable toolchain, without running a fuzzer.

use std::path::PathBuf;

fn kept(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut out = Vec::new();
    for dir in ["corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in entries.flatten() {
            if let Ok(bytes) = std::fs::read(e.path()) {
                out.push((e.path(), bytes));
            }
        }
    }
    out
}

#[test]
fn every_target_holds_on_its_seeds_and_kept_inputs() {
    for target in portcullis_fuzz::TARGETS {
        let seeds = portcullis_fuzz::seeds::seeds(target.name);
        assert!(!seeds.is_empty(), "{} has no seeds", target.name);
        for seed in &seeds {
            (target.run)(seed);
        }
        for (path, input) in kept(target.name) {
            eprintln!("replaying {}", path.display());
            (target.run)(&input);
        }
    }
}
