//! The warm check path alone, for instruction counts on a noisy machine:
//! `valgrind --tool=callgrind target/release/examples/warm_check 10000 200000`
//! (users, warm checks). Prints ns/check as well.
use holdfast::model::{Context, Timestamp};
use holdfast::query;
use holdfast::service::Holdfast;
use holdfast::workload::{self, Shape};
use rand::rngs::SmallRng;
use rand::SeedableRng;

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("a number"));
    let users = args.next().unwrap_or(10_000);
    let n = args.next().unwrap_or(1_000_000);
    let shape = Shape::for_users(users, 1);
    let hf = Holdfast::in_memory();
    hf.write("bench", workload::generate(&shape), &[], "bench", 0).expect("load");
    let tenant = hf.tenant("bench").expect("tenant");
    let st = tenant.read();
    let mut rng = SmallRng::seed_from_u64(7);
    let nq = args.next().unwrap_or(4096);
    let qs: Vec<_> = (0..nq).map(|_| workload::random_check(&shape, &mut rng)).collect();
    let ctx = Context::at(Timestamp(1_800_000_000));
    for (s, a, x) in &qs {
        let _ = query::check(st.facts(), s, a, x, &ctx);
    }
    let t = std::time::Instant::now();
    let mut allow = 0usize;
    for i in 0..n {
        let (s, a, x) = &qs[i % qs.len()];
        let r = query::check(st.facts(), s, a, x, &ctx).expect("check");
        allow += usize::from(r.decision == query::Decision::Allow);
    }
    let el = t.elapsed();
    println!(
        "{n} warm checks over {} subjects: {:.0} ns/check ({allow} allowed)",
        qs.len(),
        el.as_nanos() as f64 / n as f64
    );
}
