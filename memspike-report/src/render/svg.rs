//! The SVG renderer: a [`Chart`] drawn with `plotters` (its SVG backend; text is left to the
//! viewer's sans-serif font, so no font file is read). Memory in MiB on the left axis, the
//! page-fault rate on the right, time in milliseconds along the bottom.

use plotters::{
    coord::Shift,
    prelude::*,
    style::{
        RGBColor, ShapeStyle,
        text_anchor::{HPos, Pos, VPos},
    },
};

use super::chart::{Chart, MarkKind, Rgb, Role, Series};

/// The picture's size in pixels.
pub const SIZE: (u32, u32) = (960, 480);

const MIB: f64 = 1_048_576.0;

fn colour(c: Rgb) -> RGBColor {
    RGBColor(c.0, c.1, c.2)
}

/// The chart as an SVG document. A chart that cannot be drawn (nothing to draw) is an SVG that
/// says so, never an error: the report's other files stand on their own.
pub fn render(chart: &Chart) -> String {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        if let Err(e) = draw(&root, chart) {
            let _ = root.fill(&WHITE);
            let _ = root.draw(&Text::new(
                format!("the chart could not be drawn: {e}"),
                (20, 40),
                ("sans-serif", 16).into_font(),
            ));
        }
        let _ = root.present();
    }
    out
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type DrawResult = Result<(), Box<dyn std::error::Error + 'static>>;

fn draw(root: &Area<'_>, chart: &Chart) -> DrawResult {
    root.fill(&WHITE)?;
    let t_max = chart.t_max().max(1.0);
    let y_max = (chart.y_max() / MIB * 1.08).max(1.0);
    let rate_max = chart
        .rate
        .as_ref()
        .map(|r| r.points.iter().map(|p| p.1).fold(0.0, f64::max) * 1.1)
        .filter(|m| *m > 0.0);
    let mut c = ChartBuilder::on(root)
        .caption(&chart.title, ("sans-serif", 18).into_font())
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .right_y_label_area_size(if rate_max.is_some() { 60 } else { 0 })
        .build_cartesian_2d(0f64..t_max, 0f64..y_max)?
        .set_secondary_coord(0f64..t_max, 0f64..rate_max.unwrap_or(1.0));
    c.configure_mesh()
        .x_desc(chart.x_label.as_str())
        .y_desc("MiB")
        .light_line_style(RGBColor(0xf0, 0xf2, 0xf5))
        .max_light_lines(2)
        .label_style(("sans-serif", 13).into_font())
        .draw()?;
    if rate_max.is_some() {
        c.configure_secondary_axes()
            .y_desc("page faults / ms")
            .label_style(("sans-serif", 13).into_font())
            .draw()?;
    }

    // The stack, top first, so each lower part paints over the one above it.
    for s in chart.stacked().iter().rev() {
        let col = colour(s.role.colour());
        // An opaque tint, so that each part hides the one above it where they overlap.
        let fill = tint(s.role.colour());
        c.draw_series(AreaSeries::new(mib(s), 0.0, fill).border_style(col.stroke_width(1)))?
            .label(s.label.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], fill.filled()));
    }
    for s in &chart.lines {
        let style = line_style(s.role);
        let points = mib(s);
        if s.role.dashed() {
            c.draw_series(DashedLineSeries::new(points, 7, 4, style))?
        } else {
            c.draw_series(LineSeries::new(points, style))?
        }
        .label(s.label.as_str())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
    }
    if let Some(rate) = &chart.rate {
        let style = line_style(rate.role);
        c.draw_secondary_series(LineSeries::new(rate.points.iter().copied(), style))?
            .label(rate.label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
    }
    // Kill labels step down the chart, so that several kills at about the same time (a
    // comparison's) stay readable.
    let mut kills = 0.0;
    for m in &chart.marks {
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
            [(m.t_ms, 0.0), (m.t_ms, y_max)],
            3,
            3,
            style,
        ))?;
        if m.kind == MarkKind::Oom {
            // Right-aligned, left of the line: the kill is usually the chart's right edge.
            let font = ("sans-serif", 13)
                .into_font()
                .color(&colour(Role::Limit.colour()))
                .pos(Pos::new(HPos::Right, VPos::Top));
            c.draw_series(std::iter::once(Text::new(
                format!("{} ", m.label),
                (m.t_ms, y_max * (0.99 - 0.05 * kills)),
                font,
            )))?;
            kills += 1.0;
        }
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(0xd4, 0xd9, 0xe0))
        .label_font(("sans-serif", 13).into_font())
        .draw()?;
    Ok(())
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

    #[test]
    fn a_chart_becomes_an_svg_with_its_legend() {
        let pts = |ys: &[f64]| {
            ys.iter()
                .enumerate()
                .map(|(i, y)| (i as f64 * 10.0, y * MIB))
                .collect::<Vec<_>>()
        };
        let chart = Chart {
            title: "test".into(),
            x_label: "ms".into(),
            stack: vec![Series::of(Role::Live, pts(&[1.0, 20.0]))],
            lines: vec![Series::of(Role::Limit, pts(&[32.0, 32.0]))],
            marks: vec![Mark {
                t_ms: 10.0,
                kind: MarkKind::Oom,
                label: "OOM kill".into(),
            }],
            rate: None,
        };
        let svg = render(&chart);
        assert!(svg.starts_with("<svg"), "{svg}");
        // plotters writes each text on its own line.
        for text in ["cgroup limit", "live"] {
            assert!(svg.contains(&format!(">\n{text}\n</text>")), "{text}");
        }
        assert!(svg.contains(">\nOOM kill"), "the kill is labelled");
        assert!(!svg.contains("could not be drawn"), "{svg}");
    }
}
