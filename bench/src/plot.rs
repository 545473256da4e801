//! The SVG plot of the sweep: connects per second and p99 connect latency
//! against the number of concurrent clients, one line per target. The SVG
//! backend writes text as text elements, so no font is loaded or needed.

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use std::path::Path;

/// One target's medians: (clients, connects/s, p99 ms).
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64, f64)>,
}

pub fn write_svg(path: &Path, series: &[Series], title: &str) -> Result<()> {
    let root = SVGBackend::new(path, (1200, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let root = root
        .titled(title, ("sans-serif", 20))
        .map_err(|e| anyhow!("{e}"))?;
    let (left, right) = root.split_horizontally(600);
    panel(
        &left,
        "Connects per second (median)",
        series,
        |p| p.1,
        false,
    )?;
    panel(
        &right,
        "p99 connect latency, ms (median)",
        series,
        |p| p.2,
        true,
    )?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

fn panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    series: &[Series],
    y: impl Fn(&(f64, f64, f64)) -> f64,
    legend: bool,
) -> Result<()> {
    let mut xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let x_max = xs.last().copied().unwrap_or(2.0).max(2.0);
    let y_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(&y))
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (1f64..x_max * 1.05).log_scale().with_key_points(xs.clone()),
            0f64..y_max,
        )
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("concurrent clients")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0, y(p))).collect();
        let line = chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| anyhow!("{e}"))?;
        if legend {
            line.label(s.name.clone()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| anyhow!("{e}"))?;
    }
    if legend {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_an_svg_with_both_panels_and_every_series() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plot.svg");
        let series = vec![
            Series {
                name: "ceiling".into(),
                points: vec![(1.0, 900.0, 1.2), (8.0, 4000.0, 4.0), (32.0, 4100.0, 12.0)],
            },
            Series {
                name: "rust".into(),
                points: vec![(1.0, 400.0, 3.0), (8.0, 2100.0, 7.5), (32.0, 2200.0, 30.0)],
            },
        ];
        write_svg(&path, &series, "test").unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        for text in [
            "Connects per second",
            "p99 connect latency",
            "ceiling",
            "rust",
            "concurrent clients",
        ] {
            assert!(svg.contains(text), "missing {text:?}");
        }
    }
}
