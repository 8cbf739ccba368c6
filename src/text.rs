//! Text for people: values cut to an AWS length limit, numbers with
//! thousands separators, and the one table renderer every table uses.

/// Shortens `text` to at most `max_bytes` bytes, on a character boundary.
pub(crate) fn truncate(text: &mut String, max_bytes: usize) {
    if text.len() > max_bytes {
        let mut end = max_bytes;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// `n` with thousands separators: 12,345.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A header row from its column names.
pub fn header(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

/// Rows (the first one the header) as aligned columns, each cell two spaces
/// in: a column of numbers to the right, any other to the left. Widths count
/// characters, so values of any width and script line up. Every row has the
/// header's number of cells.
pub fn table(rows: &[Vec<String>]) -> String {
    let width = rows.first().map_or(0, Vec::len);
    let cell = |row: &Vec<String>, c: usize| row.get(c).map_or("", String::as_str).to_owned();
    let widths: Vec<usize> = (0..width)
        .map(|c| {
            rows.iter()
                .map(|r| cell(r, c).chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let numeric: Vec<bool> = (0..width)
        .map(|c| {
            rows.iter().skip(1).all(|r| {
                cell(r, c)
                    .chars()
                    .all(|ch| ch.is_ascii_digit() || ch == ',')
            })
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        for (c, &column_width) in widths.iter().enumerate() {
            let value = cell(row, c);
            let pad = " ".repeat(column_width - value.chars().count());
            out.push_str("  ");
            if numeric[c] {
                out.push_str(&pad);
                out.push_str(&value);
            } else {
                out.push_str(&value);
                if c + 1 < width {
                    out.push_str(&pad);
                }
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_a_character_boundary() {
        let mut text = "ab\u{e9}cd".to_owned();
        truncate(&mut text, 3);
        assert_eq!(text, "ab");
        let mut short = "abc".to_owned();
        truncate(&mut short, 10);
        assert_eq!(short, "abc");
    }

    #[test]
    fn numbers_read_at_a_glance() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn columns_align_numbers_right() {
        let rows = vec![
            header(&["NAME", "N"]),
            vec!["web".into(), "1,200".into()],
            vec!["payments".into(), "7".into()],
        ];
        assert_eq!(
            table(&rows),
            "  NAME          N\n  web       1,200\n  payments      7\n"
        );
    }

    #[test]
    fn long_short_and_wide_values_line_up() {
        let rows = vec![
            header(&["GROUP", "WHEN", "IMAGE"]),
            vec![
                "a-very-long-auto-scaling-group-name".into(),
                "2026-11-30T10:00:00.123456789Z".into(),
                "ami-0123456789abcdef0 (current)".into(),
            ],
            vec!["w".into(), "-".into(), "\u{e9}t\u{e9}".into()],
        ];
        let rendered = table(&rows);
        let starts = |line: &str, value: &str| line.find(value).map(|b| line[..b].chars().count());
        let lines: Vec<&str> = rendered.lines().collect();
        assert_eq!(starts(lines[0], "WHEN"), starts(lines[1], "2026"));
        assert_eq!(starts(lines[0], "WHEN"), starts(lines[2], "-"));
        assert_eq!(starts(lines[0], "IMAGE"), starts(lines[1], "ami-"));
        assert_eq!(starts(lines[0], "IMAGE"), starts(lines[2], "\u{e9}t\u{e9}"));
    }
}
