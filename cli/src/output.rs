//! How the CLI answers: JSON for scripts, text for people (every table
//! through `kiln::text::table`), and errors under their stable names.

use kiln::Error;
use serde::Serialize;

use crate::args::Output;

/// Prints `value` as JSON, or `text()` for people.
pub fn print<T: Serialize>(output: Output, value: &T, text: impl FnOnce() -> String) {
    match output {
        Output::Json => match serde_json::to_string_pretty(value) {
            Ok(json) => println!("{json}"),
            Err(err) => eprintln!("cannot encode the result as JSON: {err}"),
        },
        Output::Text => println!("{}", text()),
    }
}

/// A table: the header, then one row per item, aligned.
pub fn table<T>(header: &[&str], items: &[T], row: impl Fn(&T) -> Vec<String>) -> String {
    let mut rows = vec![kiln::text::header(header)];
    rows.extend(items.iter().map(row));
    kiln::text::table(&rows).trim_end().to_owned()
}

/// `items` joined, or `none`.
pub fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// Reports a failed command.
pub fn report(output: Output, err: &Error) {
    match output {
        // The build's or audit's own JSON document already said how it ended.
        Output::Json
            if matches!(
                err,
                Error::BuildFailed { .. } | Error::AuditIncomplete { .. }
            ) => {}
        Output::Json => {
            let problems = match err {
                Error::InvalidRecipe { problems, .. } => {
                    serde_json::to_value(problems).unwrap_or_default()
                }
                _ => serde_json::Value::Null,
            };
            let json = serde_json::json!({"error": err.name(), "message": err.to_string(), "problems": problems});
            println!("{json}");
        }
        Output::Text => eprintln!("error[{}]: {err}", err.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_long_and_short_values() {
        let rows = [
            (
                "web",
                "2026-11-30T10:00:00Z",
                "ami-0123456789abcdef0 (current)",
            ),
            ("a_much_longer_group_name", "never", "none"),
        ];
        let text = table(&["GROUP", "WHEN", "IMAGE"], &rows, |(g, w, i)| {
            vec![(*g).into(), (*w).into(), (*i).into()]
        });
        let lines: Vec<&str> = text.lines().collect();
        let column = |line: &str, value: &str| line.find(value).expect(value);
        assert_eq!(column(lines[0], "WHEN"), column(lines[1], "2026"));
        assert_eq!(column(lines[0], "WHEN"), column(lines[2], "never"));
        assert_eq!(column(lines[0], "IMAGE"), column(lines[1], "ami-"));
        assert_eq!(column(lines[0], "IMAGE"), column(lines[2], "none"));
    }
}
