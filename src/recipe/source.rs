//! How a recipe finds its source image, checked: an SSM parameter among
//! AWS's public ones, or an image name pattern, and the owners it trusts.

use super::schema::{PUBLIC_PARAMETERS, SourceSpec};

/// Problems found, as (field, message).
#[derive(Default)]
struct Problems(Vec<(String, String)>);

impl Problems {
    fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push((field.to_owned(), message.into()));
    }
}

/// Every problem of the `[source]` section.
pub(super) fn problems(source: &SourceSpec) -> Vec<(String, String)> {
    let mut problems = Problems::default();
    match (&source.parameter, &source.name_pattern) {
        (Some(_), Some(_)) => problems.add(
            "source.name_pattern",
            "give parameter or name_pattern, not both: one way to find the source",
        ),
        (Some(parameter), None) => check_parameter(parameter, &mut problems),
        (None, Some(pattern)) => check_name_pattern(pattern, &mut problems),
        (None, None) => {}
    }
    if source.owners.is_empty() {
        problems.add("source.owners", "must list at least one trusted account");
    }
    for owner in &source.owners {
        if owner.len() != 12 || !owner.bytes().all(|b| b.is_ascii_digit()) {
            problems.add(
                "source.owners",
                format!("{owner:?} is not a 12-digit AWS account id"),
            );
        }
    }
    problems.0
}

fn check_parameter(parameter: &str, problems: &mut Problems) {
    let parameter_chars = |c: char| c.is_ascii_alphanumeric() || "/_.-".contains(c);
    if !parameter.starts_with('/') || !parameter.chars().all(parameter_chars) {
        problems.add(
            "source.parameter",
            "must be an SSM parameter path starting with '/' (letters, digits, '/', '_', '.', '-')",
        );
    } else if !parameter.starts_with(PUBLIC_PARAMETERS) {
        problems.add(
            "source.parameter",
            format!(
                "must be one of AWS's public parameters ({PUBLIC_PARAMETERS}...): a deployed kiln \
                 reads only those; a private mirror is the deployment's KILN_SOURCE_PARAMETER"
            ),
        );
    }
}

/// An image name pattern as EC2's `name` filter takes it: an image name
/// (3-128 of letters, digits and `( ) [ ] . / - ' @ _`, spaces) with `*` and
/// `?` wildcards (Amazon EC2 API Reference, DescribeImages and CreateImage).
fn check_name_pattern(pattern: &str, problems: &mut Problems) {
    let chars_ok = pattern
        .chars()
        .all(|c| super::naming::is_image_name_char(c) || c == '*' || c == '?');
    if !(3..=128).contains(&pattern.len()) || !chars_ok {
        problems.add(
            "source.name_pattern",
            "must be an image name pattern: 3-128 of letters, digits, spaces, ()[]./-'@_ and the \
             wildcards * and ?",
        );
    } else if pattern.chars().all(|c| c == '*' || c == '?') {
        problems.add(
            "source.name_pattern",
            "matches any image: name the images to build from",
        );
    }
}
