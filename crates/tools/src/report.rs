//! Pictures for people: the CA's status as one self-contained HTML page (`om-ca status
//! --html`) and bar charts as SVG (that page's, and `om-balance plan --chart`), drawn with
//! plotters' SVG backend. Nothing is fetched: no script, no font, no style from elsewhere
//! (the page's content security policy forbids it), and every text from the CA's database or
//! an inventory is escaped.

use std::fmt::Write as _;
use std::time::SystemTime;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::format_utc;
use crate::jobs::{Bucket, Status};

/// Escapes text for HTML and SVG, content and attribute values alike.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

fn drawing(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing the chart: {e}")
}

/// One series of a grouped bar chart: its name in the legend, its colour, a value per
/// category.
pub struct Series<'a> {
    /// The legend's text.
    pub name: &'a str,
    /// The bars' colour.
    pub colour: RGBColor,
    /// One value per category, in the categories' order.
    pub values: &'a [f64],
}

/// A bar chart as SVG: `categories` along the bottom, each with one bar per series side by
/// side, the value written above each bar; `limits` (one per category, when given) drawn as a
/// black line across the category (a server's capacity), and `marks` written under the
/// category's name (`RMS`, `unreachable`).
pub fn bar_chart(
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[Series<'_>],
    limits: Option<&[f64]>,
    marks: &[String],
    size: (u32, u32),
) -> Result<String> {
    let n = categories.len().max(1);
    let top = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .chain(limits.into_iter().flatten().copied())
        .fold(0.0f64, f64::max)
        .max(1.0)
        * 1.15;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(if marks.is_empty() { 40 } else { 56 })
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..n as f64, 0f64..top)
            .map_err(drawing)?;
        // Whole numbers on the value axis (these are counts), at most ten of them.
        let steps = (top.floor() as usize).clamp(1, 10);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .disable_x_axis()
            .light_line_style(WHITE)
            .y_labels(steps + 1)
            .y_label_formatter(&|v| {
                if (v - v.round()).abs() < 1e-9 {
                    format!("{v:.0}")
                } else {
                    String::new()
                }
            })
            .y_desc(y_label)
            .draw()
            .map_err(drawing)?;
        let width = 0.8 / series.len().max(1) as f64;
        for (k, s) in series.iter().enumerate() {
            let colour = s.colour;
            chart
                .draw_series(s.values.iter().enumerate().map(|(i, v)| {
                    let x0 = i as f64 + 0.1 + k as f64 * width;
                    Rectangle::new([(x0, 0.0), (x0 + width * 0.9, *v)], colour.filled())
                }))
                .map_err(drawing)?
                .label(s.name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled())
                });
            chart
                .draw_series(s.values.iter().enumerate().map(|(i, v)| {
                    let x = i as f64 + 0.1 + k as f64 * width + width * 0.45;
                    Text::new(
                        format!("{v}"),
                        (x, *v + top * 0.02),
                        ("sans-serif", 12).into_font().color(&BLACK).pos(
                            plotters::style::text_anchor::Pos::new(
                                plotters::style::text_anchor::HPos::Center,
                                plotters::style::text_anchor::VPos::Bottom,
                            ),
                        ),
                    )
                }))
                .map_err(drawing)?;
        }
        if let Some(limits) = limits {
            chart
                .draw_series(limits.iter().enumerate().map(|(i, l)| {
                    PathElement::new(
                        vec![(i as f64 + 0.05, *l), (i as f64 + 0.95, *l)],
                        BLACK.stroke_width(2),
                    )
                }))
                .map_err(drawing)?
                .label("capacity")
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 12, y)], BLACK.stroke_width(2))
                });
        }
        // The category names (and marks) under each group, centred.
        let (_, bottom) = chart.plotting_area().get_pixel_range();
        let pixel = |i: usize| {
            let (x, _) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
            x
        };
        for (i, name) in categories.iter().enumerate() {
            let style = ("sans-serif", 12).into_font().color(&BLACK).pos(
                plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Top,
                ),
            );
            root.draw(&Text::new(
                name.clone(),
                (pixel(i), bottom.end + 6),
                style.clone(),
            ))
            .map_err(drawing)?;
            if let Some(mark) = marks.get(i).filter(|m| !m.is_empty()) {
                root.draw(&Text::new(mark.clone(), (pixel(i), bottom.end + 22), style))
                    .map_err(drawing)?;
            }
        }
        // A legend where there is more than one thing to tell apart.
        if series.len() > 1 || limits.is_some() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(drawing)?;
        }
        root.present().map_err(drawing)?;
    }
    Ok(svg)
}

fn bucket_chart(
    title: &str,
    y_label: &str,
    buckets: &[Bucket],
    colour: RGBColor,
) -> Result<String> {
    let categories: Vec<String> = buckets.iter().map(|b| b.label.clone()).collect();
    let values: Vec<f64> = buckets.iter().map(|b| b.count as f64).collect();
    bar_chart(
        title,
        y_label,
        &categories,
        &[Series {
            name: y_label,
            colour,
            values: &values,
        }],
        None,
        &[],
        (960, 320),
    )
}

/// Days from `now` to `t`, in words: `in 12 days`, `3 days ago`, `today`.
fn days_from(now: SystemTime, t: SystemTime) -> String {
    match t.duration_since(now) {
        Ok(d) if d.as_secs() >= 86_400 => {
            format!("in {}", crate::days_in_words((d.as_secs() / 86_400) as u32))
        }
        Ok(_) => "today".to_owned(),
        Err(e) => {
            let days = e.duration().as_secs() / 86_400;
            if days == 0 {
                "today".to_owned()
            } else {
                format!("{} ago", crate::days_in_words(days as u32))
            }
        }
    }
}

fn row(out: &mut String, cells: &[&str]) {
    out.push_str("<tr>");
    for c in cells {
        let _ = write!(out, "<td>{}</td>", escape(c));
    }
    out.push_str("</tr>\n");
}

fn head(out: &mut String, cells: &[&str]) {
    out.push_str("<tr>");
    for c in cells {
        let _ = write!(out, "<th>{}</th>", escape(c));
    }
    out.push_str("</tr>\n");
}

/// The CA's status as one HTML page: the same facts as `om-ca status`, and charts of the
/// certificates issued per week and of those ending per month ahead.
pub fn status_html(s: &Status) -> Result<String> {
    let mut h = String::new();
    let name = escape(&s.name);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{name}: certificate authority status, {at}</title>\n\
         <style>\n\
         body {{ font-family: sans-serif; margin: 2em; color: #222; max-width: 70em; }}\n\
         table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}\n\
         th, td {{ border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }}\n\
         th {{ background: #eee; }}\n\
         .warn {{ color: #a00; font-weight: bold; }}\n\
         svg {{ max-width: 100%; height: auto; }}\n\
         </style>\n</head>\n<body>\n\
         <h1>Certificate authority {name}</h1>\n<p>Status at {at}.</p>\n",
        at = escape(&format_utc(s.at))
    );
    let c = &s.counts;
    h.push_str("<h2>Requests</h2>\n<table>\n");
    head(
        &mut h,
        &["Pending", "Issued", "Current", "Denied", "Revoked"],
    );
    row(
        &mut h,
        &[
            &c.pending.to_string(),
            &c.issued.to_string(),
            &c.current.to_string(),
            &c.denied.to_string(),
            &c.revoked.to_string(),
        ],
    );
    h.push_str("</table>\n");

    h.push_str("<h2>Held for an operator</h2>\n");
    if s.held.is_empty() {
        h.push_str("<p>None.</p>\n");
    } else {
        h.push_str("<table>\n");
        head(
            &mut h,
            &["RequestId", "Host", "Waiting since", "Age", "Why"],
        );
        for x in &s.held {
            row(
                &mut h,
                &[
                    &x.id.to_string(),
                    &x.host,
                    &format_utc(x.received),
                    &crate::days_in_words(x.age_days as u32),
                    &x.reason,
                ],
            );
        }
        h.push_str("</table>\n");
    }

    h.push_str("<h2>Root</h2>\n<table>\n");
    row(&mut h, &["Subject", &s.root.subject]);
    row(&mut h, &["SHA-1 thumbprint", &s.root.thumbprint]);
    row(
        &mut h,
        &[
            "Expires",
            &format!(
                "{} ({})",
                format_utc(s.root.not_after),
                days_from(s.at, s.root.not_after)
            ),
        ],
    );
    h.push_str("</table>\n");

    h.push_str("<h2>Certificate revocation list</h2>\n");
    match &s.crl {
        None => h.push_str("<p class=\"warn\">No CRL has been published.</p>\n"),
        Some(crl) => {
            h.push_str("<table>\n");
            row(&mut h, &["Number", &crl.number.to_string()]);
            row(&mut h, &["This update", &format_utc(crl.this_update)]);
            let next = crl.next_update.map_or_else(
                || "none".to_owned(),
                |n| format!("{} ({})", format_utc(n), days_from(s.at, n)),
            );
            row(&mut h, &["Next update", &next]);
            h.push_str("</table>\n");
            if crl.overdue {
                h.push_str("<p class=\"warn\">The CRL's next update has passed: relying parties that check it refuse every certificate until a new one is published (om-ca crl).</p>\n");
            }
        }
    }

    let _ = writeln!(
        h,
        "<h2>Expiring within {}</h2>",
        escape(&crate::days_in_words(s.expiring_within_days))
    );
    if s.expiring.is_empty() {
        h.push_str("<p>None.</p>\n");
    } else {
        h.push_str("<table>\n");
        head(&mut h, &["RequestId", "Host", "Serial", "NotAfter", "Left"]);
        for e in &s.expiring {
            row(
                &mut h,
                &[
                    &e.id.to_string(),
                    &e.host,
                    &e.serial,
                    &format_utc(e.not_after),
                    &crate::days_in_words(e.days_left as u32),
                ],
            );
        }
        h.push_str("</table>\n");
    }

    h.push_str("<h2>Last batch</h2>\n");
    match &s.last_batch {
        None => h.push_str("<p>No batch has run.</p>\n"),
        Some(b) => {
            h.push_str("<table>\n");
            head(
                &mut h,
                &[
                    "At",
                    "Seconds",
                    "Processed",
                    "Issued",
                    "Pending",
                    "Rejected",
                    "Duplicates",
                    "Waiting",
                    "CRL",
                ],
            );
            row(
                &mut h,
                &[
                    &format_utc(b.at),
                    &format!("{:.2}", b.seconds),
                    &b.processed.to_string(),
                    &b.issued.to_string(),
                    &b.pending.to_string(),
                    &b.rejected.to_string(),
                    &b.duplicates.to_string(),
                    &b.waiting.to_string(),
                    &b.crl.map_or_else(|| "-".to_owned(), |n| n.to_string()),
                ],
            );
            h.push_str("</table>\n");
        }
    }

    h.push_str("<h2>Certificates issued per week</h2>\n");
    h.push_str(&bucket_chart(
        "Certificates issued per week (by the week's Monday)",
        "issued",
        &s.issued_per_week,
        RGBColor(0x2b, 0x6c, 0xb0),
    )?);
    h.push_str("\n<h2>Current certificates ending per month</h2>\n");
    h.push_str(&bucket_chart(
        "Current certificates ending per month",
        "ending",
        &s.expiries_per_month,
        RGBColor(0xc0, 0x56, 0x21),
    )?);
    h.push_str("\n</body>\n</html>\n");
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup_and_no_control_characters() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\"\n\u{1b}[2J"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;\\u{a}\\u{1b}[2J"
        );
    }

    /// Every category's name, mark and value is in the chart, and it parses as XML.
    #[test]
    fn a_bar_chart_carries_every_name_and_count() {
        let names = vec!["RMS.prod.local".to_owned(), "<MGT&01>".to_owned()];
        let svg = bar_chart(
            "t",
            "agents",
            &names,
            &[Series {
                name: "before",
                colour: BLUE,
                values: &[0.0, 1234.0],
            }],
            Some(&[500.0, 2000.0]),
            &["RMS".to_owned(), String::new()],
            (640, 320),
        )
        .unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let texts: Vec<String> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .map(|n| n.text().unwrap_or_default().trim().to_owned())
            .collect();
        for want in [
            "RMS.prod.local",
            "<MGT&01>",
            "RMS",
            "1234",
            "0",
            "before",
            "capacity",
        ] {
            assert!(texts.iter().any(|t| t == want), "{want} not in {texts:?}");
        }
    }
}
