//! The HTML renderer: a [`View`] and its chart as one self-contained page (styles inline, the
//! SVG inline, no script, nothing fetched), so a report opens anywhere, offline, and can be
//! attached to an issue as one file.

use std::fmt::Write as _;

use super::view::{Block, Tone, View};

const STYLE: &str = r#"
:root { --text:#1b1f24; --muted:#555e69; --border:#d4d9e0; --bg:#f6f7f9; --card:#fff;
        --danger:#b3261e; --ok:#1d6b35; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--text);
       font:15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; }
main { max-width: 1040px; margin: 0 auto; padding: 24px 16px 48px; }
h1 { font-size: 1.25rem; margin: 0 0 8px; }
h1.bad { color: var(--danger); } h1.good { color: var(--ok); }
h2 { font-size: 1rem; margin: 24px 0 8px; }
section, figure { background:var(--card); border:1px solid var(--border); border-radius:8px;
                  padding:12px 16px; margin:16px 0; }
section { overflow-x: auto; }
td.label { overflow-wrap: anywhere; }
@media (max-width: 700px) { main { padding: 12px 8px 32px; } td.label { width: auto; } }
figure svg { width: 100%; height: auto; display: block; }
p.verdict { font-size: 1.05rem; margin: 0; }
p.error { color: var(--danger); }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; vertical-align: top; padding: 3px 10px 3px 0;
         border-bottom: 1px solid var(--border); white-space: pre-wrap; }
th { color: var(--muted); font-weight: 600; }
td.label { color: var(--muted); width: 14em; }
"#;

/// Text made safe inside HTML elements and double-quoted attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// The page: headline, verdict, the chart (`svg`, an SVG document from
/// [`svg::render`](super::svg::render)), then every block as a table.
pub fn render(view: &View, svg: Option<&str>) -> String {
    let tone = match view.tone {
        Tone::Bad => "bad",
        Tone::Good => "good",
        Tone::Neutral => "neutral",
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n\
         <h1 class=\"{tone}\">{}</h1>\n<section><p class=\"verdict\">{}</p>",
        escape(&view.headline),
        escape(&view.headline),
        escape(&view.verdict),
    );
    if let Some(e) = &view.error {
        let _ = write!(out, "<p class=\"error\">error: {}</p>", escape(e));
    }
    out.push_str("</section>\n");
    if let Some(svg) = svg {
        let _ = writeln!(
            out,
            "<figure aria-label=\"the report\u{2019}s picture\">{}</figure>",
            svg.trim_start_matches(|c: char| c != '<')
        );
    }
    for block in &view.blocks {
        out.push_str("<section>\n");
        match block {
            Block::Pairs(rows) => {
                out.push_str("<table>\n");
                for (k, v) in rows {
                    let _ = writeln!(
                        out,
                        "<tr><td class=\"label\">{}</td><td>{}</td></tr>",
                        escape(k),
                        escape(v)
                    );
                }
                out.push_str("</table>\n");
            }
            Block::Grid {
                caption,
                header,
                rows,
            } => {
                let _ = writeln!(out, "<h2>{}</h2>\n<table>\n<tr>", escape(caption));
                for h in header {
                    let _ = write!(out, "<th>{}</th>", escape(h));
                }
                out.push_str("</tr>\n");
                for row in rows {
                    out.push_str("<tr>");
                    let span = header.len().saturating_sub(row.len()) + 1;
                    for (i, cell) in row.iter().enumerate() {
                        if i + 1 == row.len() && span > 1 {
                            let _ = write!(out, "<td colspan=\"{span}\">{}</td>", escape(cell));
                        } else {
                            let _ = write!(out, "<td>{}</td>", escape(cell));
                        }
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</table>\n");
            }
        }
        out.push_str("</section>\n");
    }
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_short_rows_span_the_rest() {
        let view = View {
            headline: "memspike: <b>".into(),
            tone: Tone::Bad,
            blocks: vec![Block::Grid {
                caption: "t".into(),
                header: vec!["a".into(), "b".into(), "c".into()],
                rows: vec![vec!["…".into(), "3 omitted".into()]],
            }],
            error: None,
            verdict: "killed & \"explained\"".into(),
        };
        let html = render(&view, Some("<svg></svg>"));
        assert!(html.contains("<h1 class=\"bad\">memspike: &lt;b&gt;</h1>"));
        assert!(html.contains("killed &amp; &quot;explained&quot;"));
        assert!(html.contains("<td colspan=\"2\">3 omitted</td>"));
        assert!(
            html.contains(
                "<figure aria-label=\"the report\u{2019}s picture\"><svg></svg></figure>"
            )
        );
    }
}
