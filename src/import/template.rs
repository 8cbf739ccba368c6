//! A Packer template as the import reads it, whichever its format: its
//! sources, builds (provisioners and post-processors), data sources and
//! what it has that kiln does not read, every value resolved as far as it is
//! static.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// A value of the template: resolved, or why it cannot be without running
/// Packer (it reads the environment, or calls a function at build time).
pub(super) type Field = Result<Value, String>;

/// Stands for "the time of the build" in a resolved value (Packer's
/// `{{timestamp}}`, `isotime`, HCL2's `timestamp()`, `formatdate`).
pub(super) const DATE: &str = "\u{1}date\u{1}";
/// Stands for a value unique to the build (`{{uuid}}`, `uuidv4()`).
pub(super) const UNIQUE: &str = "\u{1}unique\u{1}";

/// Stands for the name of the build a provisioner runs in (`{{build_name}}`).
pub(super) const BUILD_NAME: &str = "\u{1}build_name\u{1}";

/// Replaces `from` with `to` in every string of `value`.
pub(super) fn replace_in(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::String(s) if s.contains(from) => *s = s.replace(from, to),
        Value::Array(items) => items.iter_mut().for_each(|v| replace_in(v, from, to)),
        Value::Object(map) => map.values_mut().for_each(|v| replace_in(v, from, to)),
        _ => {}
    }
}

/// The stand-in for data source `kind.name`'s image id (`data.amazon-ami.x.id`).
pub(super) fn data_id(kind: &str, name: &str) -> String {
    format!("\u{1}data:{kind}.{name}\u{1}")
}

/// The stand-in for a value known only when Packer runs, and why.
pub(super) fn runtime(reason: &str) -> String {
    format!("\u{1}runtime:{reason}\u{1}")
}

/// Whether `text` holds a value known only when Packer runs.
pub(super) fn is_dynamic(text: &str) -> bool {
    text.contains('\u{1}')
}

/// A source (builder), provisioner, post-processor or data source.
#[derive(Debug, Clone)]
pub(super) struct Item {
    /// Its type (`amazon-ebs`, `shell`).
    pub kind: String,
    /// What provisioners' `only`/`except` name it by (`amazon-ebs.ubuntu`
    /// in HCL2, the builder's name in JSON).
    pub reference: String,
    /// Where it is in the template, for the report (`builders[0]`).
    pub path: String,
    /// Its fields; a nested block is an array of objects.
    pub fields: BTreeMap<String, Field>,
}

impl Item {
    /// The report's name for field `key`.
    pub fn field_path(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }
}

/// A build: the sources it runs and what it does on them.
#[derive(Debug, Clone, Default)]
pub(super) struct Build {
    /// References of the sources it runs (`amazon-ebs.ubuntu`).
    pub sources: Vec<String>,
    /// Field overrides for a source, by reference (HCL2's `source` blocks
    /// inside `build`).
    pub overrides: BTreeMap<String, BTreeMap<String, Field>>,
    /// Its provisioners, in order.
    pub provisioners: Vec<Item>,
    /// Its post-processors.
    pub post_processors: Vec<Item>,
    /// Its description.
    pub description: Option<String>,
}

/// A parsed template.
#[derive(Debug, Clone, Default)]
pub(super) struct Template {
    /// Every source (builder) of any type, in order.
    pub sources: Vec<Item>,
    /// Every build (a JSON template has one, running all its builders).
    pub builds: Vec<Build>,
    /// HCL2 data sources.
    pub data: Vec<Item>,
    /// What the template has that no recipe field takes.
    pub findings: Vec<Finding>,
}

/// How a field of the template fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::Display)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Outcome {
    /// Not carried over: kiln does it differently or not at all.
    Dropped,
    /// Carried over, with a difference the message names.
    Changed,
    /// Not a field the import knows: not carried over.
    Unknown,
}

/// One line of the import report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The field in the template (`builders[0].ssh_username`).
    pub field: String,
    /// How it fared.
    pub outcome: Outcome,
    /// What kiln does instead, or what to do.
    pub message: String,
}

impl Finding {
    /// A field not carried over.
    pub(super) fn dropped(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(field, Outcome::Dropped, message)
    }

    /// A field carried over differently.
    pub(super) fn changed(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(field, Outcome::Changed, message)
    }

    /// A field the import does not know.
    pub(super) fn unknown(field: impl Into<String>) -> Self {
        Self::new(
            field,
            Outcome::Unknown,
            "not a field kiln's import knows: not carried over",
        )
    }

    fn new(field: impl Into<String>, outcome: Outcome, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            outcome,
            message: message.into(),
        }
    }
}

/// A string field, or why it is not one.
pub(super) fn text(field: &Field) -> Result<&str, String> {
    match field {
        Ok(Value::String(s)) => Ok(s),
        Ok(other) => Err(format!("is {other}, not a string")),
        Err(reason) => Err(reason.clone()),
    }
}

/// A list of strings (a single string counts as a list of one).
pub(super) fn texts(field: &Field) -> Result<Vec<String>, String> {
    match field {
        Ok(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!("holds {other}, not a string")),
            })
            .collect(),
        Ok(Value::String(s)) => Ok(vec![s.clone()]),
        Ok(other) => Err(format!("is {other}, not a list of strings")),
        Err(reason) => Err(reason.clone()),
    }
}

/// A boolean field (Packer's JSON templates often quote them).
pub(super) fn flag(field: &Field) -> Result<bool, String> {
    match field {
        Ok(Value::Bool(b)) => Ok(*b),
        Ok(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
        Ok(other) => Err(format!("is {other}, not true or false")),
        Err(reason) => Err(reason.clone()),
    }
}

/// A number field (or a string holding one).
pub(super) fn number(field: &Field) -> Result<i64, String> {
    match field {
        Ok(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| format!("{n} is not a whole number")),
        Ok(Value::String(s)) => s.parse().map_err(|_| format!("{s:?} is not a number")),
        Ok(other) => Err(format!("is {other}, not a number")),
        Err(reason) => Err(reason.clone()),
    }
}

/// The objects of a nested block or object field: one block or object is a
/// list of one.
pub(super) fn objects(field: &Field) -> Result<Vec<&serde_json::Map<String, Value>>, String> {
    match field {
        Ok(Value::Object(map)) => Ok(vec![map]),
        Ok(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_object()
                    .ok_or_else(|| format!("holds {v}, not a block"))
            })
            .collect(),
        Ok(other) => Err(format!("is {other}, not a block")),
        Err(reason) => Err(reason.clone()),
    }
}

/// A map of strings (tags, `env`).
pub(super) fn string_map(field: &Field) -> Result<BTreeMap<String, String>, String> {
    let maps = objects(field)?;
    let mut out = BTreeMap::new();
    for map in maps {
        for (key, value) in map {
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Number(_) | Value::Bool(_) => value.to_string(),
                other => return Err(format!("{key} is {other}, not a string")),
            };
            out.insert(key.clone(), value);
        }
    }
    Ok(out)
}

/// A Go duration (`5m`, `1h30m`, `90s`) in seconds.
pub(super) fn duration_seconds(text: &str) -> Option<u64> {
    let mut total = 0.0_f64;
    let mut number = String::new();
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while let Some(c) = rest.chars().next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            rest = &rest[1..];
            continue;
        }
        let (unit, scale) = [("ms", 0.001), ("h", 3600.0), ("m", 60.0), ("s", 1.0)]
            .into_iter()
            .find(|(unit, _)| rest.starts_with(unit))?;
        total += number.parse::<f64>().ok()? * scale;
        number.clear();
        rest = &rest[unit.len()..];
    }
    if !number.is_empty() {
        return None;
    }
    Some(total.ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_are_read() {
        assert_eq!(duration_seconds("5m"), Some(300));
        assert_eq!(duration_seconds("1h30m"), Some(5400));
        assert_eq!(duration_seconds("90s"), Some(90));
        assert_eq!(duration_seconds("1.5m"), Some(90));
        assert_eq!(duration_seconds("10"), None);
        assert_eq!(duration_seconds("5 minutes"), None);
    }
}
