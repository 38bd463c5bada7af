//! The SVG renderer: a [`Picture`] drawn with `plotters` (its SVG backend; text is left to the
//! viewer's sans-serif font, so no font file is read). A [`Chart`]: memory in MiB on the left
//! axis, page faults on the right; along the bottom a scenario's steps as shaded, named bands,
//! or wall time. A threshold's [`Outcomes`]: a row per policy along its knob. A sweep's
//! [`Grid`]: a cell per policy and limit. Text never overlaps other text or a line: the marks' labels are placed in
//! rows of a strip kept above the data (a collection's label is left out where there is no
//! room; a kill's always has one), the steps' names in rows below the axis, and the legend in
//! rows under the plot.

use plotters::{
    coord::Shift,
    prelude::*,
    style::{
        RGBColor, ShapeStyle,
        text_anchor::{HPos, Pos, VPos},
    },
};

use super::chart::{Chart, Grid, MarkKind, Outcomes, Picture, Rgb, Role, Series};
use super::story::Band;
use crate::format::{count, millis, per_ms};

/// A timeline's size in pixels; an outcome chart and a grid are as wide, and as tall as their
/// rows need.
pub const SIZE: (u32, u32) = (960, 540);

/// A row of an outcome chart, and of a grid, px.
const OUTCOME_ROW_PX: u32 = 90;
const GRID_ROW_PX: u32 = 48;

/// The picture's size in pixels: a timeline's is fixed; an outcome chart's and a grid's follow
/// their rows.
fn size(picture: &Picture) -> (u32, u32) {
    let rows = |n: usize, each: u32, rest: u32| (SIZE.0, (n.max(1) as u32 * each + rest).max(240));
    match picture {
        Picture::Timeline(_) => SIZE,
        Picture::Outcomes(o) => rows(o.rows.len(), OUTCOME_ROW_PX, 170),
        Picture::Grid(g) => rows(g.rows.len(), GRID_ROW_PX, 150),
    }
}

const MIB: f64 = 1_048_576.0;
/// Labels' font size, px.
const FONT: u32 = 13;
/// A character's width at [`FONT`] px in a sans-serif font, generously: labels are placed by
/// it (the browser test measures the real boxes).
const CHAR_PX: f64 = 7.6;
/// A row of text, px.
const ROW_PX: i32 = 18;
/// Rows for the marks' labels, above the data.
const LABEL_ROWS: i32 = 4;
/// Space kept between two labels of a row, px.
const GAP_PX: f64 = 10.0;
const MARGIN: i32 = 14;
const TITLE_PX: i32 = 30;
const Y_LABELS_PX: i32 = 64;

fn colour(c: Rgb) -> RGBColor {
    RGBColor(c.0, c.1, c.2)
}

/// The chart as an SVG document. A chart that cannot be drawn (nothing to draw) is an SVG that
/// says so, never an error: the report's other files stand on their own.
/// The plot's rectangle is marked with an invisible `<rect class="plot-area">`, for tools and
/// the layout tests that check what lies inside it.
pub fn render(picture: &Picture) -> String {
    let mut out = String::new();
    let plot = {
        let root = SVGBackend::with_string(&mut out, size(picture)).into_drawing_area();
        let plot = match picture {
            Picture::Timeline(chart) => draw(&root, chart),
            Picture::Outcomes(o) => outcomes(&root, o),
            Picture::Grid(g) => grid(&root, g),
        };
        if let Err(e) = &plot {
            let _ = root.fill(&WHITE);
            let _ = root.draw(&Text::new(
                format!("the chart could not be drawn: {e}"),
                (20, 40),
                font(),
            ));
        }
        let _ = root.present();
        plot.ok()
    };
    if let (Some([x0, y0, x1, y1]), Some(end)) = (plot, out.rfind("</svg>")) {
        out.insert_str(
            end,
            &format!(
                "<rect class=\"plot-area\" x=\"{x0}\" y=\"{y0}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"none\"/>\n",
                x1 - x0,
                y1 - y0
            ),
        );
    }
    out
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
/// The plot's rectangle in px, `[left, top, right, bottom]`, once drawn.
type DrawResult = Result<[i32; 4], Box<dyn std::error::Error + 'static>>;

fn font() -> TextStyle<'static> {
    ("sans-serif", FONT).into_font().into()
}

/// A label's estimated width, px.
fn text_px(s: &str) -> f64 {
    s.chars().count() as f64 * CHAR_PX
}

/// How a legend entry's swatch is drawn.
#[derive(Clone, Copy)]
enum Swatch {
    /// A stacked area's tint.
    Area(Role),
    /// A series' line, dashed as it is.
    Line(Role),
    /// A band of this colour.
    Band(RGBColor),
    /// A run's dot.
    Dot(RGBColor),
}

/// An entry of the legend: its label and its swatch.
struct Entry {
    label: String,
    swatch: Swatch,
}

fn entries(chart: &Chart) -> Vec<Entry> {
    let stack = chart.stack.iter().map(|s| Entry {
        label: s.label.clone(),
        swatch: Swatch::Area(s.role),
    });
    let lines = chart.lines.iter().chain(&chart.faults).map(|s| Entry {
        label: s.label.clone(),
        swatch: Swatch::Line(s.role),
    });
    stack.chain(lines).filter(|e| !e.label.is_empty()).collect()
}

const SWATCH_PX: f64 = 22.0;

fn entry_px(e: &Entry) -> f64 {
    SWATCH_PX + 6.0 + text_px(&e.label) + 18.0
}

/// The legend's entries in rows no wider than `width` px.
fn legend_rows(entries: &[Entry], width: f64) -> Vec<Vec<&Entry>> {
    let mut rows: Vec<Vec<&Entry>> = Vec::new();
    let mut used = f64::INFINITY;
    for e in entries {
        let w = entry_px(e);
        if used + w > width {
            rows.push(Vec::new());
            used = 0.0;
        }
        if let Some(row) = rows.last_mut() {
            row.push(e);
        }
        used += w;
    }
    rows
}

/// The legend's height in px, for `entries` laid out in rows.
fn legend_px(entries: &[Entry]) -> i32 {
    legend_rows(entries, f64::from(SIZE.0 as i32 - 2 * MARGIN)).len() as i32 * ROW_PX + 8
}

/// The legend in rows at the picture's bottom.
fn legend(root: &Area<'_>, entries: &[Entry]) -> Result<(), Box<dyn std::error::Error>> {
    let rows = legend_rows(entries, f64::from(SIZE.0 as i32 - 2 * MARGIN));
    let top = root.dim_in_pixel().1 as i32 - legend_px(entries) + 2;
    for (r, row) in rows.iter().enumerate() {
        let y = top + r as i32 * ROW_PX + ROW_PX / 2;
        let mut x = f64::from(MARGIN);
        for e in row {
            let x0 = x as i32;
            let sw = SWATCH_PX as i32;
            match e.swatch {
                Swatch::Area(role) => root.draw(&Rectangle::new(
                    [(x0, y - 5), (x0 + sw, y + 5)],
                    tint(role.colour()).filled(),
                ))?,
                Swatch::Band(c) => {
                    root.draw(&Rectangle::new([(x0, y - 6), (x0 + sw, y + 6)], c.filled()))?
                }
                Swatch::Dot(c) => root.draw(&Circle::new((x0 + sw / 2, y), 5, c.filled()))?,
                Swatch::Line(role) => {
                    let style = line_style(role);
                    if role.dashed() {
                        root.draw(&PathElement::new(vec![(x0, y), (x0 + 8, y)], style))?;
                        root.draw(&PathElement::new(vec![(x0 + 13, y), (x0 + sw, y)], style))?;
                    } else {
                        root.draw(&PathElement::new(vec![(x0, y), (x0 + sw, y)], style))?;
                    }
                }
            }
            root.draw(&Text::new(
                e.label.clone(),
                (x0 + sw + 6, y),
                font().pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
            x += entry_px(e);
        }
    }
    Ok(())
}

/// The picture's title, at its top left.
fn title(root: &Area<'_>, text: &str) -> Result<(), Box<dyn std::error::Error>> {
    root.draw(&Text::new(
        text.to_owned(),
        (MARGIN, MARGIN),
        TextStyle::from(("sans-serif", 17).into_font()).pos(Pos::new(HPos::Left, VPos::Top)),
    ))?;
    Ok(())
}

fn draw(root: &Area<'_>, chart: &Chart) -> DrawResult {
    root.fill(&WHITE)?;
    let height = SIZE.1 as i32;
    let entries = entries(chart);
    let legend_px = legend_px(&entries);
    let story = !chart.bands.is_empty();
    // Below the plot: the steps' names in two rows (or the time's labels), and the axis's
    // description.
    let x_labels_px = if story { 2 * ROW_PX + 26 } else { 44 };
    let faults_max = chart
        .faults
        .as_ref()
        .map(|r| r.points.iter().map(|p| p.1).fold(0.0, f64::max))
        .filter(|m| *m > 0.0);
    let right_px = if faults_max.is_some() { Y_LABELS_PX } else { 0 };

    title(root, &chart.title)?;
    let area = root.margin(TITLE_PX, legend_px, 0, 0);
    // The plot's height, and the data's top so that the label rows lie above it.
    let plot_px = f64::from(height - TITLE_PX - legend_px - 2 * MARGIN - x_labels_px);
    let strip_px = f64::from(LABEL_ROWS * ROW_PX + 8);
    let data_top = (chart.y_max() / MIB).max(1.0);
    // Both axes keep the strip free.
    let headroom = plot_px / (plot_px - strip_px).max(1.0);
    let y_top = data_top * headroom;
    let x_max = chart.x_max().max(1.0);

    let mut c = ChartBuilder::on(&area)
        .margin(MARGIN)
        .x_label_area_size(x_labels_px)
        .y_label_area_size(Y_LABELS_PX)
        .right_y_label_area_size(right_px)
        .build_cartesian_2d(0f64..x_max, 0f64..y_top)?
        .set_secondary_coord(0f64..x_max, 0f64..faults_max.unwrap_or(1.0) * headroom);
    let time_label = |v: &f64| millis(*v);
    let mut mesh = c.configure_mesh();
    mesh.x_desc(chart.x_label.as_str())
        .y_desc("MiB")
        .light_line_style(RGBColor(0xf0, 0xf2, 0xf5))
        .max_light_lines(2)
        .label_style(font());
    if story {
        mesh.x_labels(0).disable_x_mesh();
    } else {
        mesh.x_labels(8).x_label_formatter(&time_label);
    }
    mesh.draw()?;
    if faults_max.is_some() {
        // Per millisecond over wall time; a count so far along a story.
        let per = chart.bands.is_empty();
        c.configure_secondary_axes()
            .y_desc("page faults")
            .y_label_formatter(&|v| if per { per_ms(*v) } else { count(*v) })
            .label_style(font())
            .draw()?;
    }
    // The plot's corners in the picture's pixels.
    let (x0, y0) = c.backend_coord(&(0.0, 0.0));
    let (x1, y1) = c.backend_coord(&(x_max, y_top));
    let (left, right) = (f64::from(x0), f64::from(x1));
    let (plot_top, plot_bottom) = (y1, y0);

    // The steps: every other band shaded, each named below the axis.
    for (i, band) in chart.bands.iter().enumerate() {
        if i % 2 == 1 {
            c.draw_series(std::iter::once(Rectangle::new(
                [(band.from, 0.0), (band.to, y_top)],
                RGBColor(0xee, 0xf1, 0xf5).filled(),
            )))?;
        }
    }
    // The x-axis is linear: an x in px.
    let px = move |x: f64| (left + (right - left) * x / x_max).round() as i32;
    for (name, x, row) in band_names(&chart.bands, &px) {
        root.draw(&Text::new(
            name,
            (x, plot_bottom + 6 + row * ROW_PX),
            font().pos(Pos::new(HPos::Center, VPos::Top)),
        ))?;
    }

    // The stack, top first, so each lower part paints over the one above it.
    for s in chart.stacked().iter().rev() {
        let col = colour(s.role.colour());
        // An opaque tint, so that each part hides the one above it where they overlap.
        c.draw_series(
            AreaSeries::new(mib(s), 0.0, tint(s.role.colour())).border_style(col.stroke_width(1)),
        )?;
    }
    for s in &chart.lines {
        let style = line_style(s.role);
        if let [(x, v)] = s.points[..] {
            // One point is no line: a dot.
            c.draw_series(std::iter::once(Circle::new(
                (x, v / MIB),
                4,
                style.filled(),
            )))?;
        } else if s.role.dashed() {
            c.draw_series(DashedLineSeries::new(mib(s), 7, 4, style))?;
        } else {
            c.draw_series(LineSeries::new(mib(s), style))?;
        }
    }
    if let Some(faults) = &chart.faults {
        let style = line_style(faults.role);
        c.draw_secondary_series(LineSeries::new(faults.points.iter().copied(), style))?;
    }

    // The marks: lines up to the data's top; their labels in the strip above it.
    let mut marks: Vec<_> = chart.marks.iter().collect();
    // Kills first: theirs are the labels that must find room.
    marks.sort_by_key(|m| m.kind != MarkKind::Oom);
    let mut placed = Placed::default();
    for m in marks {
        let (col, width) = match m.kind {
            MarkKind::Gc => (colour(Rgb(0x55, 0x5e, 0x69)).mix(0.5), 1),
            MarkKind::Oom => (colour(Role::Limit.colour()).mix(1.0), 2),
        };
        let style = ShapeStyle {
            color: col,
            filled: false,
            stroke_width: width,
        };
        c.draw_series(DashedLineSeries::new(
            [(m.x, 0.0), (m.x, data_top)],
            3,
            3,
            style,
        ))?;
        let anchor = f64::from(px(m.x));
        let must = m.kind == MarkKind::Oom;
        let Some((x, row)) = placed.place(anchor, text_px(&m.label), left, right, must) else {
            continue;
        };
        let text_colour = match m.kind {
            MarkKind::Gc => colour(Rgb(0x55, 0x5e, 0x69)),
            MarkKind::Oom => colour(Role::Limit.colour()),
        };
        root.draw(&Text::new(
            m.label.clone(),
            (x as i32, plot_top + 4 + row * ROW_PX),
            font()
                .color(&text_colour)
                .pos(Pos::new(HPos::Left, VPos::Top)),
        ))?;
    }

    legend(root, &entries)?;
    Ok([x0, plot_top, x1, plot_bottom])
}

const SURVIVED: RGBColor = RGBColor(0x1d, 0x7a, 0x45);
const KILLED: RGBColor = RGBColor(0xc6, 0x28, 0x28);
const FLIPPED: RGBColor = RGBColor(0xf3, 0xc9, 0x7a);
const MARGINAL: RGBColor = RGBColor(0xb9, 0xc8, 0xe6);

/// The width of the widest of `names`, px, for the column that holds them.
fn names_px(names: impl Iterator<Item = String>) -> i32 {
    names.map(|n| text_px(&n) as i32).max().unwrap_or(0) + 16
}

/// `threshold`'s picture: a row per policy along the knob, each run a dot (survived or
/// killed), the band where real runs flipped (upper half of the row), the band where the
/// model's draws disagreed (lower half), the answer as a dashed tick.
fn outcomes(root: &Area<'_>, o: &Outcomes) -> DrawResult {
    root.fill(&WHITE)?;
    let entries = [
        ("run survived", Swatch::Dot(SURVIVED)),
        ("run OOM-killed", Swatch::Dot(KILLED)),
        ("real runs flipped", Swatch::Band(FLIPPED)),
        ("the model's draws disagree", Swatch::Band(MARGINAL)),
        ("every run survived to here", Swatch::Line(Role::Policy(7))),
    ]
    .map(|(label, swatch)| Entry {
        label: label.to_owned(),
        swatch,
    });
    title(root, &o.title)?;
    let area = root.margin(TITLE_PX, legend_px(&entries), 0, 0);
    let n = o.rows.len().max(1) as f64;
    // A knob searched on a geometric scale is drawn on one: x is its logarithm.
    let log = o.knob.geometric() && o.range.0 > 0.0 && o.range.1 > 0.0;
    let to_x = |v: f64| if log { v.ln() } else { v };
    let (lo, hi) = (
        to_x(o.range.0.min(o.range.1)),
        to_x(o.range.0.max(o.range.1)),
    );
    let span = (hi - lo).max(f64::EPSILON);
    let names = names_px(o.rows.iter().map(|r| r.name.clone()));
    let knob = o.knob;
    let mut c = ChartBuilder::on(&area)
        .margin(MARGIN)
        .x_label_area_size(44)
        .y_label_area_size(names.max(Y_LABELS_PX))
        .build_cartesian_2d(lo - span * 0.02..hi + span * 0.02, 0f64..n)?;
    let value = |x: &f64| knob.format(if log { x.exp() } else { *x });
    let scale = if log { " (logarithmic scale)" } else { "" };
    c.configure_mesh()
        .x_desc(format!("{knob}: {}{scale}", o.knob.goal()))
        .x_labels(8)
        .x_label_formatter(&value)
        .y_labels(0)
        .disable_y_mesh()
        .light_line_style(RGBColor(0xf0, 0xf2, 0xf5))
        .label_style(font())
        .draw()?;
    // Row i (from the top) spans [n-1-i, n-i].
    for (i, row) in o.rows.iter().enumerate() {
        let base = n - 1.0 - i as f64;
        if i % 2 == 1 {
            c.draw_series(std::iter::once(Rectangle::new(
                [(lo - span * 0.02, base), (hi + span * 0.02, base + 1.0)],
                RGBColor(0xf4, 0xf6, 0xf9).filled(),
            )))?;
        }
        let band = |(a, b): (f64, f64), y0: f64, y1: f64, colour: RGBColor| {
            Rectangle::new(
                [(a.min(b), base + y0), (a.max(b), base + y1)],
                colour.filled(),
            )
        };
        let on_x = |(a, b): (f64, f64)| (to_x(a), to_x(b));
        if let Some(f) = row.flipped {
            c.draw_series(std::iter::once(band(on_x(f), 0.5, 0.9, FLIPPED)))?;
        }
        if let Some(m) = row.marginal {
            c.draw_series(std::iter::once(band(on_x(m), 0.1, 0.5, MARGINAL)))?;
        }
        if let Some(v) = row.survives.map(to_x) {
            c.draw_series(DashedLineSeries::new(
                [(v, base + 0.08), (v, base + 0.92)],
                4,
                3,
                line_style(Role::Policy(7)),
            ))?;
        }
        // Runs at one value side by side, up and down the row's middle.
        let mut seen: Vec<(f64, usize)> = Vec::new();
        for &(v, survived) in &row.runs {
            let v = to_x(v);
            let k = match seen.iter_mut().find(|(x, _)| (*x - v).abs() < span * 1e-9) {
                Some((_, k)) => {
                    *k += 1;
                    *k
                }
                None => {
                    seen.push((v, 0));
                    0
                }
            };
            let offset = if k % 2 == 0 { 1.0 } else { -1.0 } * (k.div_ceil(2) as f64) * 0.07;
            let colour = if survived { SURVIVED } else { KILLED };
            c.draw_series(std::iter::once(Circle::new(
                (v, base + 0.5 + offset.clamp(-0.4, 0.4)),
                4,
                colour.filled(),
            )))?;
        }
    }
    let (x0, y0) = c.backend_coord(&(lo - span * 0.02, 0.0));
    let (x1, y1) = c.backend_coord(&(hi + span * 0.02, n));
    let row_px = f64::from(y0 - y1) / n;
    for (i, row) in o.rows.iter().enumerate() {
        let y = f64::from(y1) + row_px * (i as f64 + 0.5);
        root.draw(&Text::new(
            row.name.clone(),
            (x0 - 8, y as i32),
            font().pos(Pos::new(HPos::Right, VPos::Center)),
        ))?;
    }
    legend(root, &entries)?;
    Ok([x0, y1, x1, y0])
}

/// The colour of a cell where `share` of the runs survived: red through amber to green.
fn share_colour(share: f64) -> RGBColor {
    let mix = |a: u8, b: u8, t: f64| (f64::from(a) + (f64::from(b) - f64::from(a)) * t) as u8;
    let (from, to, t) = if share < 0.5 {
        ((0xe5, 0x73, 0x73), (0xf3, 0xc9, 0x7a), share * 2.0)
    } else {
        ((0xf3, 0xc9, 0x7a), (0x81, 0xc7, 0x84), share * 2.0 - 1.0)
    };
    RGBColor(
        mix(from.0, to.0, t),
        mix(from.1, to.1, t),
        mix(from.2, to.2, t),
    )
}

/// `sweep merge`'s picture: a cell per policy and column, coloured by the share of its runs
/// that survived, with `k/N` in it.
fn grid(root: &Area<'_>, g: &Grid) -> DrawResult {
    root.fill(&WHITE)?;
    let entries = [
        ("none survived", share_colour(0.0)),
        ("half survived", share_colour(0.5)),
        ("all survived", share_colour(1.0)),
    ]
    .map(|(label, c)| Entry {
        label: label.to_owned(),
        swatch: Swatch::Band(c),
    });
    title(root, &g.title)?;
    let top = TITLE_PX + MARGIN + 2 * ROW_PX;
    let bottom = root.dim_in_pixel().1 as i32 - legend_px(&entries) - MARGIN;
    let left = MARGIN + names_px(g.rows.iter().map(|r| r.name.clone()));
    let right = SIZE.0 as i32 - MARGIN;
    let (cols, rows) = (g.columns.len().max(1) as i32, g.rows.len().max(1) as i32);
    let (w, h) = (
        (right - left) / cols,
        ((bottom - top) / rows).min(GRID_ROW_PX as i32),
    );
    for (j, name) in g.columns.iter().enumerate() {
        // A column's name on up to two lines (the scenario, then the limit).
        let x = left + w * j as i32 + w / 2;
        let (a, b) = name.split_once('\n').unwrap_or((name, ""));
        for (line, text) in [a, b].iter().enumerate().filter(|(_, t)| !t.is_empty()) {
            let room = ((w - 6) as f64 / CHAR_PX) as usize;
            let shown: String = if text.chars().count() > room {
                text.chars()
                    .take(room.saturating_sub(1))
                    .chain(['…'])
                    .collect()
            } else {
                (*text).to_owned()
            };
            root.draw(&Text::new(
                shown,
                (x, top - 2 * ROW_PX + line as i32 * ROW_PX + 2),
                font().pos(Pos::new(HPos::Center, VPos::Top)),
            ))?;
        }
    }
    for (i, row) in g.rows.iter().enumerate() {
        let y = top + h * i as i32;
        root.draw(&Text::new(
            row.name.clone(),
            (left - 8, y + h / 2),
            font().pos(Pos::new(HPos::Right, VPos::Center)),
        ))?;
        for (j, cell) in row.cells.iter().enumerate() {
            let x = left + w * j as i32;
            let corners = [(x + 1, y + 1), (x + w - 1, y + h - 1)];
            let Some((survived, runs)) = *cell else {
                root.draw(&Rectangle::new(
                    corners,
                    RGBColor(0xf4, 0xf6, 0xf9).filled(),
                ))?;
                continue;
            };
            let share = f64::from(survived) / f64::from(runs.max(1));
            root.draw(&Rectangle::new(corners, share_colour(share).filled()))?;
            root.draw(&Text::new(
                format!("{survived}/{runs}"),
                (x + w / 2, y + h / 2),
                font().pos(Pos::new(HPos::Center, VPos::Center)),
            ))?;
        }
    }
    legend(root, &entries)?;
    Ok([left, top, left + w * cols, top + h * rows])
}

/// Labels placed so far, by row: `(left, right)` in px.
#[derive(Default)]
struct Placed {
    rows: Vec<Vec<(f64, f64)>>,
}

impl Placed {
    /// Where a label `w` px wide for a mark at `anchor` px goes between `left` and `right`:
    /// its left edge and row, the first row and position that overlaps nothing placed (centred
    /// on the mark, else ending at it, else starting at it). `None` where none is free, unless
    /// it `must` be shown: then the last row, centred.
    fn place(
        &mut self,
        anchor: f64,
        w: f64,
        left: f64,
        right: f64,
        must: bool,
    ) -> Option<(f64, i32)> {
        let clamp = |x: f64| x.max(left).min((right - w).max(left));
        let candidates = [clamp(anchor - w / 2.0), clamp(anchor - w), clamp(anchor)];
        self.rows.resize(LABEL_ROWS as usize, Vec::new());
        for (r, row) in self.rows.iter_mut().enumerate() {
            let free = |x: f64| {
                row.iter()
                    .all(|&(a, b)| x + w + GAP_PX <= a || x >= b + GAP_PX)
            };
            if let Some(&x) = candidates.iter().find(|&&x| free(x)) {
                row.push((x, x + w));
                return Some((x, r as i32));
            }
        }
        must.then(|| {
            let r = LABEL_ROWS as usize - 1;
            self.rows[r].push((candidates[0], candidates[0] + w));
            (candidates[0], r as i32)
        })
    }
}

/// The bands' names, each centred under its band, in the first of two rows where it overlaps
/// no other name; a name that fits neither is cut short to its band's width (`…`), or left
/// out when not even that fits. `(text, centre px, row)`.
fn band_names(bands: &[Band], px: &dyn Fn(f64) -> i32) -> Vec<(String, i32, i32)> {
    let mut rows: [Vec<(f64, f64)>; 2] = [Vec::new(), Vec::new()];
    let mut out = Vec::new();
    for band in bands {
        let (a, b) = (f64::from(px(band.from)), f64::from(px(band.to)));
        let centre = (a + b) / 2.0;
        let fits = |row: &Vec<(f64, f64)>, lo: f64, hi: f64| {
            row.iter()
                .all(|&(x, y)| hi + GAP_PX <= x || lo >= y + GAP_PX)
        };
        let w = text_px(&band.name);
        let (lo, hi) = (centre - w / 2.0, centre + w / 2.0);
        if let Some(r) = (0..2).find(|&r| fits(&rows[r], lo, hi)) {
            rows[r].push((lo, hi));
            out.push((band.name.clone(), centre as i32, r as i32));
            continue;
        }
        let room = ((b - a - GAP_PX) / CHAR_PX).floor() as usize;
        if room >= 2 {
            let cut: String = band.name.chars().take(room - 1).chain(['…']).collect();
            let w = text_px(&cut);
            let (lo, hi) = (centre - w / 2.0, centre + w / 2.0);
            if let Some(r) = (0..2).find(|&r| fits(&rows[r], lo, hi)) {
                rows[r].push((lo, hi));
                out.push((cut, centre as i32, r as i32));
            }
        }
    }
    out
}

/// The colour at 55 % over white.
fn tint(c: Rgb) -> RGBColor {
    let mix = |v: u8| (f64::from(v) * 0.55 + 255.0 * 0.45).round() as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

fn line_style(role: Role) -> ShapeStyle {
    ShapeStyle {
        color: colour(role.colour()).mix(1.0),
        filled: false,
        stroke_width: 2,
    }
}

fn mib(s: &Series) -> Vec<(f64, f64)> {
    s.points.iter().map(|&(t, v)| (t, v / MIB)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::chart::{Mark, Series};

    fn chart() -> Chart {
        let pts = |ys: &[f64]| {
            ys.iter()
                .enumerate()
                .map(|(i, y)| (i as f64 * 50.0, y * MIB))
                .collect::<Vec<_>>()
        };
        Chart {
            title: "test".into(),
            x_label: "steps".into(),
            bands: vec![
                Band {
                    name: "spike".into(),
                    from: 0.0,
                    to: 60.0,
                    ..Band::default()
                },
                Band {
                    name: "release".into(),
                    from: 60.0,
                    to: 80.0,
                    ..Band::default()
                },
                Band {
                    name: "remainder".into(),
                    from: 80.0,
                    to: 100.0,
                    ..Band::default()
                },
            ],
            stack: vec![Series::of(Role::Live, pts(&[1.0, 20.0, 1.0]))],
            lines: vec![Series::of(Role::Limit, pts(&[32.0, 32.0, 32.0]))],
            marks: vec![
                Mark {
                    x: 60.0,
                    kind: MarkKind::Gc,
                    label: "gc 1: goal 57.8 MiB".into(),
                },
                Mark {
                    x: 90.0,
                    kind: MarkKind::Oom,
                    label: "OOM kill in remainder".into(),
                },
            ],
            faults: None,
        }
    }

    #[test]
    fn a_chart_becomes_an_svg_with_its_bands_marks_and_legend() {
        let svg = render(&Picture::Timeline(chart()));
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(!svg.contains("could not be drawn"), "{svg}");
        assert!(svg.contains("<rect class=\"plot-area\""), "{svg}");
        // plotters writes each text on its own line.
        for text in [
            "cgroup limit",
            "live",
            "spike",
            "release",
            "remainder",
            "gc 1: goal 57.8 MiB",
            "OOM kill in remainder",
        ] {
            assert!(
                svg.contains(&format!(">\n{text}\n</text>")),
                "{text}: {svg}"
            );
        }
    }

    /// Labels of marks close together go to other rows; past the rows, a collection's is
    /// left out and a kill's still shown.
    #[test]
    fn labels_take_free_rows_and_only_a_kills_must_be_shown() {
        let mut p = Placed::default();
        let rows: Vec<_> = (0..LABEL_ROWS)
            .map(|_| p.place(500.0, 100.0, 0.0, 960.0, false).map(|(_, r)| r))
            .collect();
        assert_eq!(rows, (0..LABEL_ROWS).map(Some).collect::<Vec<_>>());
        assert_eq!(p.place(500.0, 100.0, 0.0, 960.0, false), None);
        assert_eq!(
            p.place(500.0, 100.0, 0.0, 960.0, true).map(|(_, r)| r),
            Some(LABEL_ROWS - 1)
        );
        // A mark 80 px away: its label starts at it, beside the first, in the first row.
        let mut q = Placed::default();
        q.place(500.0, 100.0, 0.0, 960.0, false);
        assert_eq!(q.place(580.0, 100.0, 0.0, 960.0, false), Some((580.0, 0)));
        // Kept inside the plot.
        let (x, _) = Placed::default()
            .place(955.0, 100.0, 0.0, 960.0, false)
            .unwrap();
        assert!(x + 100.0 <= 960.0);
    }

    /// A name wider than its band takes the second row or is cut short; names never share
    /// a row where they would overlap.
    #[test]
    fn band_names_never_overlap() {
        let bands: Vec<Band> = ["alpha-step", "b", "a-rather-long-step-name", "d"]
            .iter()
            .enumerate()
            .map(|(i, n)| Band {
                name: (*n).into(),
                from: i as f64 * 5.0,
                to: i as f64 * 5.0 + 5.0,
                ..Band::default()
            })
            .collect();
        let names = band_names(&bands, &|x| (x * 8.0) as i32);
        for (i, (a, xa, ra)) in names.iter().enumerate() {
            for (b, xb, rb) in &names[i + 1..] {
                if ra == rb {
                    let (wa, wb) = (text_px(a) / 2.0, text_px(b) / 2.0);
                    let apart = f64::from((xa - xb).abs());
                    assert!(apart >= wa + wb, "{a} and {b} overlap: {names:?}");
                }
            }
        }
        assert!(names.iter().any(|(n, _, _)| n == "b"), "{names:?}");
    }
}
