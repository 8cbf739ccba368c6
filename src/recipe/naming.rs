//! Image names: the recipe's name template, its placeholders, and the name a
//! build's image gets.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::ids::{AmiId, BuildId, Fingerprint, RecipeName};

/// The placeholders an image name template may use.
pub const NAME_PLACEHOLDERS: &[&str] = &["recipe", "build_id", "date", "fingerprint", "source_ami"];
/// Longest image name EC2 accepts.
const MAX_NAME_LEN: usize = 128;

/// AMI names allow letters, digits, spaces and `( ) [ ] . / - ' @ _`.
pub fn is_image_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "()[] ./-'@_".contains(c)
}

/// The placeholders a template uses, or why the template is malformed.
fn placeholders(template: &str) -> std::result::Result<Vec<&str>, String> {
    let mut used = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or("unclosed '{'")?;
        let name = &after[..close];
        if name.contains('{') {
            return Err("nested '{'".into());
        }
        used.push(name);
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err("'}' without '{'".into());
    }
    Ok(used)
}

fn literal_text(template: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in template.chars() {
        match c {
            '{' => inside = true,
            '}' => inside = false,
            _ if !inside => out.push(c),
            _ => {}
        }
    }
    out
}

/// Fills a validated name template. Unknown placeholders cannot occur: the
/// recipe did not load with one.
pub fn render_name(template: &str, values: &BTreeMap<&str, String>) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}').unwrap_or(after.len());
        if let Some(value) = values.get(&after[..close]) {
            out.push_str(value);
        }
        rest = after.get(close + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

/// What is wrong with an image name template, one message per problem.
pub(crate) fn template_problems(template: &str) -> Vec<String> {
    let mut problems = Vec::new();
    match placeholders(template) {
        Ok(used) => {
            if let Some(unknown) = used.iter().find(|p| !NAME_PLACEHOLDERS.contains(p)) {
                problems.push(format!(
                    "unknown placeholder {{{unknown}}}; known: {}",
                    NAME_PLACEHOLDERS.join(", ")
                ));
            }
            if !used.contains(&"build_id") {
                problems.push(
                    "must contain {build_id} so every build's image name is unique".to_owned(),
                );
            }
        }
        Err(message) => problems.push(message),
    }
    if let Some(bad) = literal_text(template)
        .chars()
        .find(|&c| !is_image_name_char(c))
    {
        problems.push(format!(
            "{bad:?} is not allowed in an image name (letters, digits, ( ) [ ] space . / - ' @ _)"
        ));
    }
    problems
}

/// What a build's image name is made of.
#[derive(Debug, Clone, Copy)]
pub struct NameInputs<'a> {
    /// The build.
    pub build_id: &'a BuildId,
    /// When the build started (its date names the image).
    pub started_at: jiff::Timestamp,
    /// The build's fingerprint.
    pub fingerprint: &'a Fingerprint,
    /// The source image.
    pub source_ami: &'a AmiId,
}

/// The image name `template` gives a build of `recipe`. Deterministic for a
/// build, so a retried call finds the image it already made; a name EC2
/// would refuse (the build id made it too long) is an error before anything
/// is launched.
pub(crate) fn image_name(
    template: &str,
    recipe: &RecipeName,
    inputs: NameInputs<'_>,
) -> Result<String> {
    let values = BTreeMap::from([
        ("recipe", recipe.to_string()),
        ("build_id", inputs.build_id.to_string()),
        ("date", inputs.started_at.strftime("%Y%m%d").to_string()),
        ("fingerprint", inputs.fingerprint.short().to_owned()),
        ("source_ami", inputs.source_ami.to_string()),
    ]);
    let name = render_name(template, &values);
    if name.len() < 3 || name.len() > MAX_NAME_LEN || !name.chars().all(is_image_name_char) {
        return Err(Error::InvalidInput(format!(
            "image name {name:?} is not a valid AMI name (3-{MAX_NAME_LEN} characters); shorten image.name or the build id"
        )));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_found_and_malformed_templates_refused() {
        assert_eq!(
            placeholders("kiln-{recipe}-{build_id}"),
            Ok(vec!["recipe", "build_id"])
        );
        assert!(placeholders("kiln-{recipe").is_err());
        assert!(placeholders("kiln-recipe}").is_err());
        assert!(placeholders("kiln-{re{cipe}}").is_err());
    }

    #[test]
    fn names_render_every_placeholder() {
        let values = BTreeMap::from([("recipe", "base".to_owned()), ("build_id", "b1".to_owned())]);
        assert_eq!(
            render_name("kiln/{recipe}/{build_id}", &values),
            "kiln/base/b1"
        );
    }
}
