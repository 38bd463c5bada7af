//! The terminal renderer: a [`View`] as the headline, bordered tables and the verdict.

use std::fmt::Write as _;

use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};

use super::view::{Block, View};

/// The view as text for a terminal.
pub fn render(view: &View) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", view.headline);
    for block in &view.blocks {
        let mut t = Table::new();
        t.load_preset(UTF8_BORDERS_ONLY);
        match block {
            Block::Pairs(rows) => {
                for (k, v) in rows {
                    t.add_row(vec![k.clone(), v.clone()]);
                }
                let _ = writeln!(out, "{t}");
            }
            Block::Grid {
                caption,
                header,
                rows,
            } => {
                t.set_header(header.clone());
                for row in rows {
                    t.add_row(row.clone());
                }
                let _ = writeln!(out, "{caption}\n{t}");
            }
        }
    }
    if let Some(e) = &view.error {
        let _ = writeln!(out, "error: {e}");
    }
    let _ = writeln!(out, "verdict: {}", view.verdict);
    out
}
