//! The audit report as one self-contained HTML page: no script, no external
//! asset (its content security policy forbids loading any), so it opens
//! from a mail attachment or an S3 link alike.

use std::fmt::Write as _;

use super::report::Report;
use super::tally::Status;
use crate::text::thousands;

/// Images drawn in the chart; the rest are counted in one line under it.
const CHART_IMAGES: usize = 40;
/// Chart geometry, in SVG user units.
const LABEL_WIDTH: u32 = 330;
const BAR_WIDTH: u32 = 420;
const ROW_HEIGHT: u32 = 22;

fn color(status: Status) -> &'static str {
    match status {
        Status::Current => "#2e7d32",
        Status::Newer => "#1565c0",
        Status::Previous => "#f9a825",
        Status::Stale => "#ef6c00",
        Status::Unpromoted => "#757575",
        Status::Foreign => "#6a1b9a",
        Status::Deregistered => "#c62828",
    }
}

/// The start of a self-contained page titled `title`, up to its body: its
/// content security policy lets it load nothing, and it runs no script.
pub(super) fn head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{}</title><style>{STYLE}</style></head><body>",
        escape(title)
    )
}

/// `text` safe in HTML text and attribute values.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem;color:#1b1b1b;max-width:1100px}\
h1{font-size:1.4rem;margin:0 0 .2rem}h2{font-size:1.1rem;margin:2rem 0 .6rem}\
.meta{color:#555;margin:0 0 1.2rem}\
.answer{display:flex;gap:1rem;flex-wrap:wrap}\
.tile{border:1px solid #ddd;border-radius:8px;padding:.8rem 1.1rem;min-width:9rem}\
.tile b{display:block;font-size:1.8rem}\
.legend span{display:inline-block;margin:.4rem 1rem 0 0}\
.dot{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;margin-right:.3rem;vertical-align:-1px}\
table{border-collapse:collapse;font-size:.9rem}th,td{padding:.25rem .7rem;text-align:left;border-bottom:1px solid #eee}\
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}\
.problem{color:#c62828}svg text{font-size:12px;font-family:inherit}";

/// The report as a self-contained HTML page.
pub fn render(report: &Report) -> String {
    let s = &report.summary;
    let mut page = head(&format!(
        "kiln fleet audit: {}% on {}",
        s.current_percent, report.channel
    ));
    let _ = write!(
        page,
        "<h1>Fleet audit against channel {channel}</h1>\
<p class=\"meta\">{accounts} account(s), {regions} region(s), generated {generated} ({provenance}) · report version {version}</p>\
<div class=\"answer\">\
<div class=\"tile\" id=\"instances\"><b>{instances}</b>instances</div>\
<div class=\"tile\" id=\"current\"><b>{percent}%</b>on the promoted image ({current})</div>\
<div class=\"tile\" id=\"behind\"><b>{behind}</b>behind</div></div>",
        percent = s.current_percent,
        channel = escape(report.channel.as_str()),
        accounts = s.accounts,
        regions = s.regions,
        generated = report.generated_at.strftime("%Y-%m-%d %H:%M UTC"),
        version = report.version,
        provenance = escape(&report.provenance()),
        instances = thousands(s.instances),
        current = thousands(s.current),
        behind = thousands(s.behind),
    );
    page.push_str("<div class=\"legend\">");
    for (status, n) in &s.by_status {
        let _ = write!(
            page,
            "<span><i class=\"dot\" style=\"background:{}\"></i>{status} {}</span>",
            color(*status),
            thousands(*n)
        );
    }
    page.push_str("</div>");
    chart(report, &mut page);
    drift(report, &mut page);
    pointers(report, &mut page);
    if let Some(blocked) = &report.would_block {
        page.push_str(
            "<h2>The guard</h2><p>Running instances that kiln's Allowed AMIs criteria \
             (<code>kiln guard</code>) would block, by account:</p><ul id=\"guard\">",
        );
        for (account, n) in blocked {
            let _ = write!(page, "<li>{}: {}</li>", escape(account), thousands(*n));
        }
        page.push_str("</ul>");
    }
    if !report.problems.is_empty() {
        page.push_str("<h2>Problems</h2><ul>");
        for problem in &report.problems {
            let _ = write!(
                page,
                "<li class=\"problem\"><b>{}</b>: {}</li>",
                problem.kind,
                escape(&problem.message)
            );
        }
        page.push_str("</ul>");
    }
    page.push_str("</body></html>\n");
    page
}

/// Instances per image as horizontal bars, coloured by status, with age.
fn chart(report: &Report, page: &mut String) {
    page.push_str("<h2>Instances per image</h2>");
    if report.images.is_empty() {
        page.push_str("<p>No instances.</p>");
        return;
    }
    let mut images: Vec<_> = report.images.iter().collect();
    images.sort_by_key(|image| std::cmp::Reverse(image.instances));
    let shown = &images[..images.len().min(CHART_IMAGES)];
    let most = shown.iter().map(|i| i.instances).max().unwrap_or(1).max(1);
    let height = ROW_HEIGHT * u32::try_from(shown.len()).unwrap_or(u32::MAX / ROW_HEIGHT);
    let _ = write!(
        page,
        "<svg role=\"img\" aria-label=\"instances per image\" width=\"{w}\" height=\"{height}\" viewBox=\"0 0 {w} {height}\">",
        w = LABEL_WIDTH + BAR_WIDTH + 170,
    );
    for (row, image) in (0u32..).zip(shown) {
        let y = row * ROW_HEIGHT;
        let scaled = image.instances * u64::from(BAR_WIDTH) / most;
        let width = u32::try_from(scaled).unwrap_or(BAR_WIDTH).max(1);
        let age = image
            .age_days
            .map_or_else(|| "age unknown".to_owned(), |d| format!("{d} d old"));
        let label = match &image.name {
            Some(name) => format!("{} {}", image.image_id, name),
            None => format!("{} (deregistered)", image.image_id),
        };
        let _ = write!(
            page,
            "<g><title>{title}</title><text x=\"0\" y=\"{ty}\">{label}</text>\
<rect x=\"{LABEL_WIDTH}\" y=\"{ry}\" width=\"{width}\" height=\"{bh}\" fill=\"{fill}\"></rect>\
<text x=\"{tx}\" y=\"{ty}\">{n} · {status} · {age}</text></g>",
            title = escape(&format!(
                "{} in {} ({}): {} instances, {}",
                image.image_id, image.region, image.account, image.instances, image.status
            )),
            ty = y + 15,
            label = escape(&shorten(&label, 44)),
            ry = y + 3,
            bh = ROW_HEIGHT - 6,
            fill = color(image.status),
            tx = LABEL_WIDTH + width + 6,
            n = thousands(image.instances),
            status = image.status,
        );
    }
    page.push_str("</svg>");
    if images.len() > shown.len() {
        let rest: u64 = images[shown.len()..].iter().map(|i| i.instances).sum();
        let _ = write!(
            page,
            "<p>and {} more images with {} instances (see the JSON report).</p>",
            images.len() - shown.len(),
            thousands(rest)
        );
    }
}

/// The services with instances behind, the most behind first.
fn drift(report: &Report, page: &mut String) {
    let _ = write!(
        page,
        "<h2>Behind, by service (tag {})</h2>",
        escape(&report.service_tag)
    );
    let behind: Vec<_> = report.services.iter().filter(|r| r.behind > 0).collect();
    if behind.is_empty() {
        page.push_str("<p>No service is behind the promoted image.</p>");
        return;
    }
    page.push_str(
        "<table id=\"drift\"><tr><th>service</th><th class=\"n\">instances</th><th class=\"n\">behind</th>",
    );
    for status in Status::all().filter(|s| s.is_behind()) {
        let _ = write!(page, "<th class=\"n\">{status}</th>");
    }
    page.push_str("</tr>");
    for row in behind {
        let _ = write!(
            page,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>",
            escape(&row.service),
            thousands(row.instances),
            thousands(row.behind)
        );
        for status in Status::all().filter(|s| s.is_behind()) {
            let n = row.by_status.get(&status).copied().unwrap_or(0);
            let _ = write!(page, "<td class=\"n\">{}</td>", thousands(n));
        }
        page.push_str("</tr>");
    }
    page.push_str("</table>");
}

fn pointers(report: &Report, page: &mut String) {
    let _ = write!(
        page,
        "<h2>Pointers ({})</h2>",
        escape(report.channel.as_str())
    );
    if report.pointers.is_empty() {
        page.push_str("<p>No kiln image runs in the audited regions.</p>");
        return;
    }
    page.push_str("<table><tr><th>recipe</th><th>region</th><th>image</th></tr>");
    for pointer in &report.pointers {
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(pointer.recipe.as_str()),
            escape(&pointer.region),
            escape(
                pointer
                    .image_id
                    .as_deref()
                    .unwrap_or("none: nothing promoted yet")
            )
        );
    }
    page.push_str("</table>");
}

/// `text` cut to `max` characters, with an ellipsis when cut.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_shortened() {
        assert_eq!(
            escape("<b>\"a\" & 'b'</b>"),
            "&lt;b&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/b&gt;"
        );
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abc", 4), "abc");
    }
}
