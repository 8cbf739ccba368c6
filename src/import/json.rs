//! Packer's legacy JSON templates: `variables`, `builders`, `provisioners`
//! and `post-processors`, with Packer's Go template functions resolved as
//! far as they are static (Packer documentation, "JSON Templates" and
//! "Template Engine"). Keys starting with `_` are comments, as Packer takes them.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use super::template::{
    BUILD_NAME, Build, DATE, Field, Finding, Item, Template, UNIQUE, is_dynamic, runtime,
};

/// The top-level keys of a JSON template the import reads or may ignore.
const KNOWN: &[&str] = &[
    "description",
    "variables",
    "sensitive-variables",
    "builders",
    "provisioners",
    "post-processors",
    "min_packer_version",
];

/// Reads a JSON template.
pub(super) fn parse(text: &str, template_dir: &Path) -> Result<Template, String> {
    let root: Value = serde_json::from_str(text).map_err(|err| format!("not valid JSON: {err}"))?;
    template(&root, template_dir)
}

fn template(root: &Value, template_dir: &Path) -> Result<Template, String> {
    let Some(top) = root.as_object() else {
        return Err("the JSON is not an object: not a Packer template".into());
    };
    let Some(Value::Array(builders)) = top.get("builders") else {
        return Err(
            "the JSON has no \"builders\" list: not a legacy Packer template (HCL2 in JSON \
             syntax, .pkr.json, is not read: use the .pkr.hcl form)"
                .into(),
        );
    };
    let mut engine = Engine {
        variables: BTreeMap::new(),
        template_dir: Some(template_dir.display().to_string()),
    };
    if let Some(Value::Object(variables)) = top.get("variables") {
        for (name, value) in variables {
            let resolved = match value {
                Value::Null => Err(format!("variable {name} has no default")),
                Value::String(s) => engine.interpolate(s, "").map(Value::String),
                other => Ok(other.clone()),
            };
            engine.variables.insert(name.clone(), resolved);
        }
    }
    let mut template = Template::default();
    let mut build = Build {
        description: top
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        ..Build::default()
    };
    for (i, builder) in builders.iter().enumerate() {
        let object = builder
            .as_object()
            .ok_or(format!("builders[{i}] is not an object"))?;
        let kind = object
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = object.get("name").and_then(Value::as_str).unwrap_or(kind);
        build.sources.push(name.to_owned());
        template
            .sources
            .push(engine.item(object, kind, name, name, format!("builders[{i}]")));
    }
    if let Some(Value::Array(provisioners)) = top.get("provisioners") {
        for (i, provisioner) in provisioners.iter().enumerate() {
            let object = provisioner
                .as_object()
                .ok_or(format!("provisioners[{i}] is not an object"))?;
            let kind = object
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            build.provisioners.push(engine.item(
                object,
                kind,
                "",
                BUILD_NAME,
                format!("provisioners[{i}]"),
            ));
        }
    }
    if let Some(Value::Array(chains)) = top.get("post-processors") {
        for (i, chain) in chains.iter().enumerate() {
            let links = match chain {
                Value::Array(links) => links.iter().collect(),
                single => vec![single],
            };
            for link in links {
                let (kind, fields) = match link {
                    Value::String(kind) => (kind.as_str(), Map::new()),
                    Value::Object(object) => (
                        object
                            .get("type")
                            .and_then(Value::as_str)
                            .unwrap_or_default(),
                        object.clone(),
                    ),
                    _ => ("", Map::new()),
                };
                build.post_processors.push(engine.item(
                    &fields,
                    kind,
                    "",
                    BUILD_NAME,
                    format!("post-processors[{i}]"),
                ));
            }
        }
    }
    for key in top.keys() {
        if !KNOWN.contains(&key.as_str()) && !key.starts_with('_') {
            template.findings.push(Finding::unknown(key.clone()));
        }
    }
    template.builds.push(build);
    Ok(template)
}

/// Packer's template engine, as far as it is static.
struct Engine {
    /// The user variables, resolved.
    variables: BTreeMap<String, Field>,
    /// `{{template_dir}}` (a JSON template's only).
    template_dir: Option<String>,
}

impl Engine {
    fn item(
        &self,
        object: &Map<String, Value>,
        kind: &str,
        reference: &str,
        build_name: &str,
        path: String,
    ) -> Item {
        let fields = object
            .iter()
            .filter(|(key, _)| !key.starts_with('_') && !matches!(key.as_str(), "type" | "name"))
            .map(|(key, value)| (key.clone(), self.value(value, build_name)))
            .collect();
        Item {
            kind: kind.to_owned(),
            reference: reference.to_owned(),
            path,
            fields,
        }
    }

    /// `value` with every string interpolated.
    fn value(&self, value: &Value, build_name: &str) -> Field {
        Ok(match value {
            Value::String(s) => Value::String(self.interpolate(s, build_name)?),
            // An item or key whose value needs Packer's run keeps a
            // stand-in, so the others (tags, variables, lines) still carry over.
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.known_or_stand_in(v, build_name))
                    .collect(),
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.known_or_stand_in(v, build_name)))
                    .collect(),
            ),
            other => other.clone(),
        })
    }

    fn known_or_stand_in(&self, value: &Value, build_name: &str) -> Value {
        self.value(value, build_name)
            .unwrap_or_else(|reason| Value::String(runtime(&reason)))
    }

    /// `text` with its `{{ ... }}` actions replaced.
    fn interpolate(&self, text: &str, build_name: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            out.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or("an unclosed {{")?;
            out.push_str(&self.action(after[..close].trim(), build_name)?);
            rest = &after[close + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// One action: a function and the functions its result is piped through.
    fn action(&self, action: &str, build_name: &str) -> Result<String, String> {
        let mut stages = action.split('|').map(str::trim);
        let first = words(stages.next().unwrap_or_default());
        let mut value = match first.as_slice() {
            ["user", name] => match self.variables.get(*name) {
                Some(Ok(Value::String(s))) => s.clone(),
                Some(Ok(other)) => other.to_string(),
                Some(Err(reason)) => return Err(reason.clone()),
                None => return Err(format!("names variable {name}, which is not declared")),
            },
            ["timestamp"] | ["isotime", ..] => DATE.to_owned(),
            ["uuid"] => UNIQUE.to_owned(),
            ["template_dir"] => self
                .template_dir
                .clone()
                .ok_or("{{template_dir}} is for JSON templates: HCL2 has path.root")?,
            ["build_name"] => build_name.to_owned(),
            ["env", name] => return Err(format!("reads environment variable {name}")),
            _ => {
                return Err(format!(
                    "{{{{{action}}}}} is evaluated by Packer when it runs"
                ));
            }
        };
        for stage in stages {
            value = match stage {
                "lower" => value.to_lowercase(),
                "upper" => value.to_uppercase(),
                "clean_resource_name" | "clean_ami_name" if is_dynamic(&value) => value,
                "clean_resource_name" | "clean_ami_name" => value
                    .chars()
                    .map(|c| {
                        if crate::recipe::naming::is_image_name_char(c) {
                            c
                        } else {
                            '-'
                        }
                    })
                    .collect(),
                other => {
                    return Err(format!(
                        "the function {other} is evaluated by Packer when it runs"
                    ));
                }
            };
        }
        Ok(value)
    }
}

/// `value` with the Go template actions Packer's amazon plugin still
/// interpolates in an HCL2 source's fields (`ami_name = "app-{{timestamp}}"`).
pub(super) fn expand(value: &Value) -> Field {
    Engine {
        variables: BTreeMap::new(),
        template_dir: None,
    }
    .value(value, "")
}

/// The words of an action: bare words, and strings in backquotes or double quotes.
fn words(action: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = action.trim();
    while !rest.is_empty() {
        let (word, after) = match rest.chars().next() {
            Some(quote @ ('`' | '"')) => {
                let inner = &rest[1..];
                let end = inner.find(quote).unwrap_or(inner.len());
                (&inner[..end], inner.get(end + 1..).unwrap_or_default())
            }
            _ => {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            }
        };
        out.push(word);
        rest = after.trim_start();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        Engine {
            variables: BTreeMap::from([
                ("region".to_owned(), Ok(Value::String("us-east-1".into()))),
                (
                    "secret".to_owned(),
                    Err("reads environment variable X".into()),
                ),
            ]),
            template_dir: Some("/t".into()),
        }
    }

    #[test]
    fn static_actions_resolve_and_runtime_ones_are_marked_or_refused() {
        let e = engine();
        assert_eq!(
            e.interpolate("base-{{user `region`}}-{{timestamp}}", "b")
                .as_deref(),
            Ok(format!("base-us-east-1-{DATE}").as_str())
        );
        assert_eq!(
            e.interpolate("{{ isotime \"2006-01-02\" | clean_resource_name }}", "b"),
            Ok(DATE.to_owned())
        );
        assert_eq!(
            e.interpolate("{{template_dir}}/x.sh", "b").as_deref(),
            Ok("/t/x.sh")
        );
        assert_eq!(
            e.interpolate("{{user `secret`}}", "b"),
            Err("reads environment variable X".to_owned())
        );
        assert!(e.interpolate("{{ .Path }}", "b").is_err());
        assert!(e.interpolate("{{user `nope`}}", "b").is_err());
        assert!(e.interpolate("{{timestamp", "b").is_err());
    }
}
