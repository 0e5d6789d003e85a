//! Tuple listing pages (`GET .../tuples`, `TenantState::tuples_matching`)
//! select each page without sorting the tenant; they must equal the sorted
//! full listing (`TenantState::tuples`), filtered and cut into pages.

use holdfast::model::{Conditions, Tuple};
use holdfast::service::{Holdfast, TenantState};
use holdfast::workload::{self, Shape};

type Listed = Vec<(Tuple, Option<Conditions>)>;

fn pages(st: &TenantState, o: Option<&str>, r: Option<&str>, s: Option<&str>, size: usize) -> Listed {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (page, more) = st.tuples_matching(o, r, s, after.as_deref(), size);
        assert!(page.len() <= size);
        assert!(!more || page.len() == size, "a page that is not full has nothing after it");
        after = page.last().map(|(t, _)| t.to_string());
        out.extend(page);
        if !more {
            return out;
        }
    }
}

#[test]
fn pages_equal_the_sorted_full_listing() {
    let shape = Shape::for_users(2_000, 5);
    let hf = Holdfast::in_memory();
    hf.write("g", workload::generate(&shape), &[], "test", 0).unwrap();
    let t = hf.tenant("g").unwrap();
    let st = t.read();
    let all = st.tuples();
    assert!(all.iter().any(|(_, c)| c.is_some()), "the workload has conditions");
    assert!(all.iter().any(|(t, _)| t.object.to_string() == "tenant"), "and tenant-wide bindings");
    for size in [1, 7, 1000, 100_000] {
        let listed =
            if size == 1 { pages(&st, None, Some("grants"), None, 1) } else { pages(&st, None, None, None, size) };
        let expected: Listed =
            if size == 1 { all.iter().filter(|(t, _)| t.relation == "grants").cloned().collect() } else { all.clone() };
        assert_eq!(listed, expected, "page size {size}");
    }
    let (a_binding, _) = all.iter().find(|(t, c)| t.relation.starts_with("role") && c.is_some()).unwrap().clone();
    for (o, r, s) in [
        (Some("group:g3"), None, None),
        (None, Some("member"), Some("user:u5")),
        (Some("tenant"), None, None),
        (None, Some(a_binding.relation.as_str()), None),
        (Some(&*a_binding.object.to_string()), None, Some(&*a_binding.subject.to_string())),
        (None, Some("supports"), Some("scope:nope")),
    ] {
        let expected: Listed = all
            .iter()
            .filter(|(t, _)| {
                o.is_none_or(|o| o == t.object.to_string())
                    && r.is_none_or(|r| r == t.relation)
                    && s.is_none_or(|s| s == t.subject.to_string())
            })
            .cloned()
            .collect();
        assert_eq!(pages(&st, o, r, s, 3), expected, "{o:?} {r:?} {s:?}");
    }
}
