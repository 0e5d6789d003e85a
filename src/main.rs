//! The `holdfast` command line.
use std::process::ExitCode;

mod cli;

// crepe allocates a few hash tables per evaluation; mimalloc halves their cost.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cli::main()
}
