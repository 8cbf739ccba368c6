//! `kiln import packer`: a Packer template (legacy JSON or HCL2) and its
//! scripts as a kiln recipe directory, with a report of every field that
//! did not carry over and what to do instead.
//!
//! Nothing is written unless the whole recipe is: it is made in a temporary
//! directory beside the target, loaded as `kiln validate` loads it, and only
//! then moved into place.

mod ebs;
mod hcl;
mod json;
mod share;
mod shell;
mod source;
mod template;
mod write;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use template::{Finding, Outcome};

use crate::error::{Error, Result};
use crate::ids::RecipeName;
use template::{Item, Template};

/// What to import, and where to.
#[derive(Debug, Clone)]
pub struct Request {
    /// The Packer template.
    pub template: PathBuf,
    /// The recipe directory to make (`./<name>` when absent).
    pub out: Option<PathBuf>,
    /// The recipe's name (the directory's name when absent).
    pub name: Option<String>,
    /// The amazon-ebs source to import, when the template has several.
    pub source: Option<String>,
    /// Where Packer runs: relative script paths are read from here.
    pub cwd: PathBuf,
}

/// A recipe made from a template.
#[derive(Debug, Clone, Serialize)]
pub struct Imported {
    /// The recipe's name.
    pub recipe: RecipeName,
    /// Its directory.
    pub dir: PathBuf,
    /// The source imported (`amazon-ebs.ubuntu`).
    pub source: String,
    /// The steps, in order.
    pub steps: Vec<String>,
    /// Every field that did not carry over, or did differently.
    pub report: Vec<Finding>,
}

/// Imports `request.template` as a recipe; nothing is written on any error.
pub fn packer(request: &Request) -> Result<Imported> {
    let shown = request.template.display().to_string();
    let (dir, name) = target(request)?;
    let text = std::fs::read(&request.template)
        .map_err(|err| unreadable(&shown, err.to_string()))
        .and_then(|bytes| {
            String::from_utf8(bytes).map_err(|_| unreadable(&shown, "not UTF-8 text".into()))
        })?;
    let template_dir = request
        .template
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned()))
        .unwrap_or_default();
    // A JSON template is an object; an HCL2 body cannot start with a brace.
    let template = if text.trim_start().starts_with('{') {
        json::parse(&text, &template_dir)
    } else {
        read_hcl(&text, &template_dir)
    }
    .map_err(|reason| unreadable(&shown, reason))?;
    if template.sources.is_empty() && template.builds.iter().all(|b| b.sources.is_empty()) {
        return Err(unreadable(
            &shown,
            "it has no builders or sources: not a Packer template".into(),
        ));
    }
    let source = choose(&template, request.source.as_deref(), &shown)?;
    let mut report = template.findings.clone();
    report.extend(variable_files(&template_dir));
    let mut builds = template
        .builds
        .iter()
        .enumerate()
        .filter(|(_, b)| b.sources.contains(&source.reference));
    let build = builds.next().map(|(_, b)| b);
    for (i, _) in builds {
        report.push(Finding::dropped(
            format!("build[{i}]"),
            format!(
                "also builds {}: one recipe per build, the first is imported",
                source.reference
            ),
        ));
    }
    let mut chosen = source.clone();
    if let Some(overrides) = build.and_then(|b| b.overrides.get(&source.reference)) {
        chosen.fields.extend(overrides.clone());
    }
    // Packer takes an empty string for an unset field (a variable's "" default).
    chosen
        .fields
        .retain(|_, f| !matches!(f, Ok(serde_json::Value::String(s)) if s.is_empty()));
    // A build may rename its source: provisioners name it by the new name.
    let renamed = chosen
        .fields
        .remove("name")
        .and_then(|f| template::text(&f).ok().map(str::to_owned));
    let label = source.reference.rsplit('.').next().unwrap_or_default();
    let build_name = renamed.clone().unwrap_or_else(|| label.to_owned());
    let mut names = vec![source.reference.clone()];
    if let Some(renamed) = &renamed {
        names.push(format!("{}.{renamed}", source.kind));
    }
    for other in template
        .sources
        .iter()
        .filter(|s| s.reference != source.reference)
    {
        report.push(Finding::dropped(
            other.path.clone(),
            format!(
                "a {} source: one recipe per amazon-ebs source (--source)",
                other.kind
            ),
        ));
    }
    let parts = ebs::translate(&chosen, &template.data, &mut report);
    for data in &template.data {
        let used = chosen
            .fields
            .get("source_ami")
            .and_then(|f| f.as_ref().ok())
            .and_then(|v| v.as_str())
            == data
                .reference
                .split_once('.')
                .map(|(k, n)| template::data_id(k, n))
                .as_deref();
        if !used {
            report.push(Finding::dropped(
                data.path.clone(),
                "kiln reads no data sources",
            ));
        }
    }
    let mut provisioners: Vec<&Item> = Vec::new();
    for provisioner in build.iter().flat_map(|b| b.provisioners.iter()) {
        if runs_on(provisioner, &names) {
            provisioners.push(provisioner);
        } else {
            report.push(Finding::dropped(
                format!("{} ({})", provisioner.path, provisioner.kind),
                format!(
                    "runs only on other sources (only/except), not on {}",
                    source.reference
                ),
            ));
        }
    }
    let mut steps = shell::steps(&provisioners, &request.cwd, &build_name, &mut report)?;
    if steps.steps.is_empty() {
        shell::placeholder(&mut steps);
        report.push(Finding::changed(
            "provisioners",
            format!(
                "no shell provisioner runs on {}: step {} is a placeholder that fails until \
                 you write your steps",
                source.reference,
                shell::PLACEHOLDER
            ),
        ));
    }
    for post in build.iter().flat_map(|b| b.post_processors.iter()) {
        report.push(Finding::dropped(
            format!("{} ({})", post.path, post.kind),
            "kiln has no post-processors: `kiln build --output json` gives the image, the \
             channels and their history say where it went",
        ));
    }
    let description = build.and_then(|b| b.description.clone());
    let draft = write::Draft {
        template: &request.template,
        description,
        parts,
        steps,
    };
    write::recipe(&draft, &dir, &name)?;
    Ok(Imported {
        recipe: name,
        dir,
        source: source.reference.clone(),
        steps: draft.steps.steps.iter().map(|s| s.name.clone()).collect(),
        report,
    })
}

/// An HCL2 template. hcl-rs panics on some arithmetic (a remainder by
/// zero): a template that makes it panic is one it cannot read, said
/// without the panic's own message.
fn read_hcl(text: &str, template_dir: &Path) -> std::result::Result<template::Template, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let parsed = std::panic::catch_unwind(|| hcl::parse(text, template_dir));
    std::panic::set_hook(hook);
    match parsed {
        Ok(Ok(template)) => Ok(template),
        Ok(Err(err)) => {
            let first = err
                .lines()
                .map(|l| l.trim().trim_start_matches("-->").trim())
                .find(|l| !l.is_empty())
                .unwrap_or_default();
            Err(format!("neither JSON nor HCL2 ({first})"))
        }
        Err(_) => Err("its expressions cannot be evaluated (an arithmetic error)".into()),
    }
}

/// Packer's variable files beside the template (`*.auto.pkrvars.hcl`,
/// loaded when Packer builds the folder): their values are not read.
fn variable_files(dir: &Path) -> Vec<Finding> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".auto.pkrvars.hcl") || n.ends_with(".auto.pkrvars.json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            Finding::dropped(
                file,
                "variable values are not read: the recipe takes the template's defaults; put \
                 the values in the defaults, or edit the recipe",
            )
        })
        .collect()
}

fn unreadable(template: &str, reason: String) -> Error {
    Error::TemplateUnreadable {
        template: template.to_owned(),
        reason,
    }
}

/// The recipe directory and name, or why not: the name is the directory's
/// (kiln names a recipe by its directory), which must not exist.
fn target(request: &Request) -> Result<(PathBuf, RecipeName)> {
    let dir = match (&request.out, &request.name) {
        (Some(out), _) => out.clone(),
        (None, Some(name)) => PathBuf::from(name),
        (None, None) => {
            let stem = request
                .template
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            PathBuf::from(
                stem.trim_end_matches(".pkr")
                    .to_lowercase()
                    .replace(['_', '.', ' '], "-"),
            )
        }
    };
    let refuse = |reason: String| write::refuse(&dir, reason);
    let dir_name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(name) = &request.name
        && *name != dir_name
    {
        return Err(refuse(format!(
            "--name {name} differs from the directory's name {dir_name:?}: kiln names a recipe by its directory"
        )));
    }
    let name = dir_name
        .parse::<RecipeName>()
        .map_err(|err| refuse(err.to_string()))?;
    if dir.exists() {
        return Err(refuse(write::EXISTS.into()));
    }
    Ok((dir, name))
}

/// The amazon-ebs source to import: the only one, or the one `wanted` names.
fn choose<'a>(template: &'a Template, wanted: Option<&str>, shown: &str) -> Result<&'a Item> {
    let ebs: Vec<&Item> = template
        .sources
        .iter()
        .filter(|s| s.kind == "amazon-ebs")
        .collect();
    let names = || {
        ebs.iter()
            .map(|s| s.reference.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let fail = |reason: String| Error::NoAmazonEbsSource {
        template: shown.to_owned(),
        reason,
    };
    match (wanted, ebs.as_slice()) {
        (_, []) => {
            let kinds: Vec<&str> = template.sources.iter().map(|s| s.kind.as_str()).collect();
            Err(fail(format!(
                "it has no amazon-ebs source (it has: {}); kiln builds EBS-backed AMIs",
                if kinds.is_empty() {
                    "none".to_owned()
                } else {
                    kinds.join(", ")
                }
            )))
        }
        (None, [only]) => Ok(only),
        (None, _) => Err(fail(format!(
            "it has several amazon-ebs sources ({}): choose one with --source",
            names()
        ))),
        (Some(wanted), _) => ebs
            .iter()
            .find(|s| s.reference == wanted || s.reference.rsplit('.').next() == Some(wanted))
            .copied()
            .ok_or_else(|| {
                fail(format!(
                    "it has no amazon-ebs source {wanted} (it has: {})",
                    names()
                ))
            }),
    }
}

/// Whether a provisioner runs on the source `names` name (`only` and `except`).
fn runs_on(provisioner: &Item, names: &[String]) -> bool {
    let listed = |key: &str| {
        provisioner
            .fields
            .get(key)
            .and_then(|f| template::texts(f).ok())
            .map(|listed| {
                listed.iter().any(|n| {
                    names
                        .iter()
                        .any(|name| n.trim_start_matches("source.") == name)
                })
            })
    };
    listed("only").unwrap_or(true) && !listed("except").unwrap_or(false)
}
