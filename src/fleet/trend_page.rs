//! The trend as one self-contained HTML page: a line per recipe of the share
//! on the promoted image (inline SVG, each day a point carrying its numbers),
//! promotions and rollbacks marked on it, each release's time to 50%, 90%
//! and 100%, and the services behind the longest. No script, no external
//! asset.

use std::fmt::Write as _;

use super::history::utc_date;
use super::html::{escape, head};
use super::trend::{MARKS, MoveKind, RecipeTrend, Release, Trend};
use crate::text::thousands;

/// Chart geometry, in SVG user units.
const WIDTH: u32 = 760;
const HEIGHT: u32 = 220;
const LEFT: u32 = 44;
const TOP: u32 = 12;
const PLOT_WIDTH: u32 = 680;
const PLOT_HEIGHT: u32 = 170;

/// The trend as a self-contained HTML page.
pub fn render(trend: &Trend) -> String {
    let mut page = head(&format!("kiln fleet adoption on {}", trend.channel));
    let span = match (trend.days.first(), trend.days.last()) {
        (Some(first), Some(last)) => {
            format!("{first} to {last}, {} day(s) audited", trend.days.len())
        }
        _ => "no audit yet".to_owned(),
    };
    let _ = write!(
        page,
        "<h1>Adoption of channel {}</h1><p class=\"meta\">{}</p>",
        escape(trend.channel.as_str()),
        escape(&span)
    );
    for recipe in &trend.recipes {
        chart(trend, recipe, &mut page);
    }
    releases(trend, &mut page);
    behind(trend, &mut page);
    page.push_str("</body></html>\n");
    page
}

/// The x of day `index` of `days`.
fn x(index: usize, days: usize) -> f64 {
    let steps = days.saturating_sub(1).max(1);
    f64::from(LEFT) + f64::from(PLOT_WIDTH) * to_f64(index) / to_f64(steps)
}

fn to_f64(n: usize) -> f64 {
    f64::from(u32::try_from(n).unwrap_or(u32::MAX))
}

fn y(percent: f64) -> f64 {
    f64::from(TOP) + f64::from(PLOT_HEIGHT) * (100.0 - percent) / 100.0
}

fn chart(trend: &Trend, recipe: &RecipeTrend, page: &mut String) {
    let name = escape(recipe.recipe.as_str());
    let _ = write!(
        page,
        "<h2>{name}</h2><svg class=\"trend\" data-recipe=\"{name}\" role=\"img\" \
aria-label=\"share of {name} on the promoted image, day by day\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\">"
    );
    for percent in [0.0, 50.0, 90.0, 100.0] {
        let _ = write!(
            page,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"></line>\
<text x=\"0\" y=\"{:.1}\">{percent}%</text>",
            LEFT + PLOT_WIDTH,
            y(percent) + 4.0,
            y = y(percent),
        );
    }
    let days = trend.days.len();
    let at = |date| trend.days.iter().position(|d| *d == date).unwrap_or(0);
    for mark in &recipe.moves {
        let date = utc_date(mark.at);
        let index = trend
            .days
            .iter()
            .position(|d| *d >= date)
            .unwrap_or(days.saturating_sub(1));
        let (color, label) = match mark.kind {
            MoveKind::Promotion => ("#2e7d32", "promoted"),
            MoveKind::Rollback => ("#c62828", "rolled back"),
        };
        let _ = write!(
            page,
            "<g class=\"move {kind}\" data-at=\"{at}\"><title>{label} {at}</title>\
<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{bottom}\" stroke=\"{color}\" stroke-dasharray=\"4 3\"></line>\
<text x=\"{tx:.1}\" y=\"{ty}\" fill=\"{color}\">{label}</text></g>",
            kind = mark.kind,
            at = mark.at,
            x = x(index, days),
            bottom = TOP + PLOT_HEIGHT,
            tx = x(index, days) + 3.0,
            ty = TOP + 10,
        );
    }
    let line: Vec<String> = recipe
        .points
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(at(p.date), days), y(p.percent)))
        .collect();
    let _ = write!(
        page,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#1565c0\" stroke-width=\"2\"></polyline>",
        line.join(" ")
    );
    for point in &recipe.points {
        let _ = write!(
            page,
            "<circle class=\"day\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"#1565c0\" \
data-date=\"{date}\" data-percent=\"{percent}\"><title>{date}: {percent}% ({current} of {instances})</title></circle>",
            x(at(point.date), days),
            y(point.percent),
            date = point.date,
            percent = point.percent,
            current = thousands(point.current),
            instances = thousands(point.instances),
        );
    }
    page.push_str("</svg>");
}

fn hours(value: Option<f64>) -> String {
    value.map_or_else(|| "not reached".to_owned(), |h| format!("{h} h"))
}

fn release_row(recipe: &RecipeTrend, release: &Release, page: &mut String) {
    let _ = write!(
        page,
        "<tr><td>{}</td><td>{}</td><td>{}</td>",
        escape(recipe.recipe.as_str()),
        escape(&release.promoted.distinct_images()),
        release.promoted.at
    );
    for mark in MARKS {
        let _ = write!(
            page,
            "<td class=\"n\">{}</td>",
            hours(release.hours.get(&mark).copied().flatten())
        );
    }
    page.push_str("</tr>");
}

fn releases(trend: &Trend, page: &mut String) {
    page.push_str("<h2>Releases: time until the fleet ran them</h2>");
    if trend.recipes.iter().all(|r| r.releases.is_empty()) {
        page.push_str("<p>No promotion in these days.</p>");
        return;
    }
    page.push_str("<table id=\"releases\"><tr><th>recipe</th><th>image</th><th>promoted</th>");
    for mark in MARKS {
        let _ = write!(page, "<th class=\"n\">{mark}%</th>");
    }
    page.push_str("</tr>");
    for recipe in &trend.recipes {
        for release in &recipe.releases {
            release_row(recipe, release, page);
        }
    }
    page.push_str("</table>");
}

fn behind(trend: &Trend, page: &mut String) {
    page.push_str("<h2>Behind the longest, by service</h2>");
    if trend.behind.is_empty() {
        page.push_str("<p>No service is behind.</p>");
        return;
    }
    page.push_str(
        "<table id=\"behind-longest\"><tr><th>service</th><th class=\"n\">days</th><th>since</th><th class=\"n\">behind</th></tr>",
    );
    for row in &trend.behind {
        let _ = write!(
            page,
            "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
            escape(&row.service),
            row.days,
            row.since,
            thousands(row.behind)
        );
    }
    page.push_str("</table>");
}
