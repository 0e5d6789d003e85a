//! Resident memory of a loaded tenant, with the generated input freed first:
//! `target/release/examples/memory 100000`.
use holdfast::service::Holdfast;
use holdfast::workload::{self, Shape};

fn rss() -> usize {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    s.split_whitespace().nth(1).and_then(|p| p.parse::<usize>().ok()).unwrap_or(0) * 4096
}

fn main() {
    let users = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let shape = Shape::for_users(users, 1);
    let r0 = rss();
    let hf = Holdfast::in_memory();
    // Load in slices so the generated input is never all alive at once.
    let changes = workload::generate(&shape);
    let r1 = rss();
    hf.write("bench", changes, &[], "bench", 0).expect("load");
    let r2 = rss();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let r3 = rss();
    // Return freed pages to the OS.
    unsafe { libmimalloc_sys::mi_collect(true) };
    let r4 = rss();
    println!(
        "after mi_collect {} MiB = {:.0} B/tuple",
        r4 >> 20,
        (r4 - r0) as f64 / hf.tenant("bench").unwrap().read().facts().tuple_count() as f64
    );
    let tenant = hf.tenant("bench").expect("tenant");
    let tuples = tenant.read().facts().tuple_count();
    println!("tuples {tuples}; rss before {} MiB, after generate {} MiB, after load {} MiB, +0.5s {} MiB; loaded - before = {:.0} B/tuple",
        r0 >> 20, r1 >> 20, r2 >> 20, r3 >> 20, (r3 - r0) as f64 / tuples as f64);
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
