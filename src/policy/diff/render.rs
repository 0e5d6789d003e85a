//! Rendering a [`Diff`]: plain text for terminals and CI logs, Markdown for
//! a pull-request comment. Both follow the diff's (stable) order: risk
//! flags first, then subjects by name, entries by application and scope.

use std::fmt::Write as _;

use super::{Detail, Diff, EntryDiff, PathInfo, SubjectDiff, Summary};

/// Size the Markdown stays under (GitHub comments hold 65,536 characters):
/// subject sections stop before it is reached.
pub const MARKDOWN_BUDGET: usize = 60_000;
/// Risk flags listed in Markdown (the rest are counted).
pub const MARKDOWN_RISKS: usize = 50;

/// `binding: before → after`; a route alone for `path_added`/`path_removed`.
fn detail_text(x: &Detail) -> String {
    match (x.before.is_empty(), x.after.is_empty()) {
        (false, false) if x.after == x.binding => format!("{} ⇒ {}", x.before, x.after),
        (false, false) => format!("{}: {} ⇒ {}", x.binding, x.before, x.after),
        (true, _) => x.after.clone(),
        (_, true) => x.before.clone(),
    }
}

fn mark(change: &str) -> char {
    match change {
        "added" => '+',
        "removed" => '-',
        _ => '~',
    }
}

fn route(p: &PathInfo) -> String {
    format!("{} via {} [{}]", p.binding, p.path.join(" → "), p.conditions)
}

fn counts(s: &Summary) -> String {
    format!(
        "{} added, {} removed, {} weakened, {} strengthened, {} changed, {} risk flag(s)",
        s.added, s.removed, s.weakened, s.strengthened, s.changed, s.risks
    )
}

/// The diff as text: one block per subject, one line per entry.
pub fn render_text(d: &Diff) -> String {
    let mut out = format!("holdfast diff: {} → {}\n", d.base, d.head);
    if !d.risks.is_empty() {
        out.push_str("\nrisk flags:\n");
        for r in &d.risks {
            let _ = writeln!(out, "  {:<22} {}", r.flag, r.message);
        }
    }
    for s in &d.subjects {
        let _ = writeln!(out, "\n{}", s.subject);
        for e in &s.entries {
            text_entry(&mut out, e);
        }
    }
    if d.subjects.is_empty() {
        out.push_str("\nno access changes\n");
    }
    let s = &d.summary;
    let _ = writeln!(
        out,
        "\n{} subject(s) changed, {} evaluated ({} mode, {} changed tuple(s)): {}",
        s.subjects_changed,
        s.subjects_evaluated,
        s.mode,
        s.tuples_changed,
        counts(s)
    );
    out
}

fn text_entry(out: &mut String, e: &EntryDiff) {
    let _ = writeln!(out, "  {} {:<12} {} {}", mark(e.change), e.change, e.application, e.scope);
    for x in &e.details {
        let _ = writeln!(out, "      {}: {}", x.code, detail_text(x));
    }
    for p in &e.before {
        let _ = writeln!(out, "      before: {}", route(p));
    }
    for p in &e.after {
        let _ = writeln!(out, "      after:  {}", route(p));
    }
}

/// A Markdown table cell: pipes escaped, newlines flattened.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn md_paths(paths: &[PathInfo]) -> String {
    if paths.is_empty() {
        return "—".to_string();
    }
    paths
        .iter()
        .map(|p| format!("`{}` via {} ({})", p.binding, p.path.join(" → "), p.conditions))
        .collect::<Vec<_>>()
        .join("<br>")
}

/// The diff as Markdown, ready to post as a pull-request comment: a
/// summary table, the risk flags, then one section per subject, as many
/// as fit in [`MARKDOWN_BUDGET`].
pub fn render_markdown(d: &Diff) -> String {
    let s = &d.summary;
    let mut out = String::from("## Holdfast access diff\n\n");
    let _ = writeln!(out, "`{}` → `{}`\n", d.base, d.head);
    out.push_str("| added | removed | weakened | strengthened | changed | risk flags | subjects changed |\n");
    out.push_str("|---:|---:|---:|---:|---:|---:|---:|\n");
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} | {} | {} | {} |",
        s.added, s.removed, s.weakened, s.strengthened, s.changed, s.risks, s.subjects_changed
    );
    if !d.risks.is_empty() {
        out.push_str("\n### ⚠️ Risk flags\n\n| flag | target | detail |\n|---|---|---|\n");
        for r in d.risks.iter().take(MARKDOWN_RISKS) {
            let _ = writeln!(out, "| `{}` | `{}` | {} |", r.flag, cell(&r.target), cell(&r.message));
        }
        if d.risks.len() > MARKDOWN_RISKS {
            let _ = writeln!(out, "\n… and {} more risk flag(s).", d.risks.len() - MARKDOWN_RISKS);
        }
    }
    if d.subjects.is_empty() {
        out.push_str("\nNo access changes.\n");
    }
    let mut shown = 0;
    for sd in &d.subjects {
        let section = md_subject(sd);
        if out.len() + section.len() > MARKDOWN_BUDGET {
            break;
        }
        out.push_str(&section);
        shown += 1;
    }
    if shown < d.subjects.len() {
        let _ = writeln!(
            out,
            "\n… and {} more subject(s); run `holdfast diff --format json` for all of them.",
            d.subjects.len() - shown
        );
    }
    let _ = writeln!(
        out,
        "\n<sub>{} subject(s) evaluated ({} mode), {} changed tuple(s).</sub>",
        s.subjects_evaluated, s.mode, s.tuples_changed
    );
    out
}

fn md_subject(sd: &SubjectDiff) -> String {
    let mut out = format!("\n### `{}`\n\n", sd.subject);
    out.push_str("| change | application | scope | before | after |\n|---|---|---|---|---|\n");
    for e in &sd.entries {
        let _ = writeln!(
            out,
            "| {} | {} | `{}` | {} | {} |",
            e.change,
            cell(&e.application),
            cell(&e.scope),
            cell(&md_paths(&e.before)),
            cell(&md_paths(&e.after))
        );
    }
    md_details(&mut out, &sd.entries);
    out
}

fn md_details(out: &mut String, entries: &[EntryDiff]) {
    let lines: Vec<String> = entries
        .iter()
        .flat_map(|e| e.details.iter().map(move |x| format!("- `{}` `{}`: {}", e.scope, x.code, detail_text(x))))
        .collect();
    if !lines.is_empty() {
        out.push('\n');
        for l in lines {
            let _ = writeln!(out, "{l}");
        }
    }
}
