//! Wraps the Datalog program in `rules/holdfast.dl` into `crepe!`
//! invocations that `src/engine/rules.rs` includes, so the rules file stays
//! the one source of truth for the semantics.
//!
//! Two programs are generated from the one file: `core` (everything above
//! the `@explain` marker line) answers checks and listings; `full` (the whole
//! file) adds the explain verdicts. The explain rules only read relations of
//! the core, so both derive the same core facts.
use std::{env, fs, path::PathBuf};

const MARKER: &str = "// @explain";

fn main() {
    let rules = "rules/holdfast.dl";
    println!("cargo:rerun-if-changed={rules}");
    let text = fs::read_to_string(rules).expect("rules/holdfast.dl is readable");
    let core = match text.find(MARKER) {
        Some(i) => &text[..i],
        None => panic!("rules/holdfast.dl lacks the `{MARKER}` line that starts the explain rules"),
    };
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out.join("rules_core.rs"), format!("crepe::crepe! {{\n{core}\n}}\n")).expect("OUT_DIR is writable");
    fs::write(out.join("rules_full.rs"), format!("crepe::crepe! {{\n{text}\n}}\n")).expect("OUT_DIR is writable");
}
