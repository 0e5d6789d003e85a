//! Start-up time of a store: `target/release/examples/restart USERS DIR`
//! fills DIR with a generated tenant (synced commits of 50k) if it is empty,
//! then times opening it to the first answered check.
use std::time::Instant;

use holdfast::model::{Context, Timestamp};
use holdfast::query;
use holdfast::service::Holdfast;
use holdfast::store::Durability;
use holdfast::workload::{self, Shape};
use rand::rngs::SmallRng;
use rand::SeedableRng;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let users: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "restart-data".into()));
    let shape = Shape::for_users(users, 1);
    if !dir.exists() {
        let hf = Holdfast::open(&dir, Durability::Sync).expect("open");
        let changes = workload::generate(&shape);
        for chunk in changes.chunks(50_000) {
            hf.write("bench", chunk.to_vec(), &[], "bench", 0).expect("write");
        }
        hf.flush().expect("flush");
    }
    let t = Instant::now();
    let hf = Holdfast::open(&dir, Durability::Sync).expect("open");
    let opened = t.elapsed();
    let tenant = hf.tenant("bench").expect("tenant");
    let (s, app, scope) = workload::random_check(&shape, &mut SmallRng::seed_from_u64(1));
    let d =
        query::check(tenant.read().facts(), &s, &app, &scope, &Context::at(Timestamp(1_800_000_000))).expect("check");
    let first = t.elapsed();
    let tuples = tenant.read().facts().tuple_count();
    println!(
        "{tuples} tuples: open {:.3} s, first check ({:?}) at {:.3} s",
        opened.as_secs_f64(),
        d.decision,
        first.as_secs_f64()
    );
}
