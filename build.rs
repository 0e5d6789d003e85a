//! Wraps the Datalog program in `rules/` into a `crepe!` invocation that
//! `src/engine/rules.rs` includes, so the rules file stays the one source of
//! truth for the semantics.
use std::{env, fs, path::PathBuf};

fn main() {
    let rules = "rules/holdfast.dl";
    println!("cargo:rerun-if-changed={rules}");
    let text = fs::read_to_string(rules).expect("rules/holdfast.dl is readable");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("rules.rs");
    fs::write(out, format!("crepe::crepe! {{\n{text}\n}}\n")).expect("OUT_DIR is writable");
}
