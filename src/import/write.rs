//! Writing an imported recipe: `recipe.toml`, the scripts, and a first
//! image test, made beside the target and moved into place only once the
//! recipe loads as `kiln validate` loads it.

use std::path::Path;

use serde::Serialize;

use super::ebs::Parts;
use super::shell::Steps;
use crate::error::{Error, Result};
use crate::ids::RecipeName;
use crate::recipe::{RECIPE_FILE, Recipe, TestSpec};

/// The image test an imported recipe starts with: Packer has none.
const TEST_SCRIPT: &str = "#!/bin/bash\n\
# kiln tests every image on a fresh instance before it can be promoted.\n\
# Packer had no such test: this one checks the instance booted cleanly.\n\
# Add your own checks (services running, versions installed).\n\
set -euo pipefail\n\
state=$(systemctl is-system-running --wait || true)\n\
if [ \"$state\" != running ]; then\n\
  echo \"system is $state after boot; failed units:\" >&2\n\
  systemctl --failed --no-legend >&2\n\
  exit 1\n\
fi\n";

/// Everything an imported recipe holds.
pub(super) struct Draft<'a> {
    /// The template it came from.
    pub template: &'a Path,
    /// The build's description.
    pub description: Option<String>,
    /// The source, builder, image and distribution.
    pub parts: Parts,
    /// The steps and their scripts.
    pub steps: Steps,
}

/// Writes `draft` as the recipe `name` in `dir`, or nothing: the recipe is
/// made in a private directory beside `dir`, loaded as `kiln validate`
/// loads it, and moved into `dir`, which the import claims first (so an
/// existing one is never replaced); every directory made is removed on any
/// failure.
pub(super) fn recipe(draft: &Draft<'_>, dir: &Path, name: &RecipeName) -> Result<()> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let first_made = parent
        .ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
        .last()
        .map(Path::to_owned);
    let written = std::fs::create_dir_all(parent)
        .map_err(|err| refuse(dir, err.to_string()))
        .and_then(|()| stage_and_move(draft, parent, dir, name));
    if written.is_err()
        && let Some(made) = first_made
    {
        let _ = std::fs::remove_dir_all(made);
    }
    written
}

/// Why an existing recipe directory is not imported into.
pub(super) const EXISTS: &str = "it exists: import into a new directory";

/// The import would not write `dir`, and why.
pub(super) fn refuse(dir: &Path, reason: String) -> Error {
    Error::ImportRefused {
        dir: dir.display().to_string(),
        reason,
    }
}

fn stage_and_move(draft: &Draft<'_>, parent: &Path, dir: &Path, name: &RecipeName) -> Result<()> {
    let refuse = |reason: String| refuse(dir, reason);
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}.kiln-import-"))
        .tempdir_in(parent)
        .map_err(|err| refuse(err.to_string()))?;
    let made = staging.path().join(name.as_str());
    write_all(draft, &made).map_err(|err| refuse(err.to_string()))?;
    Recipe::load(&made).map_err(|err| match err {
        Error::InvalidRecipe { problems, .. } => Error::InvalidRecipe {
            recipe: dir.display().to_string(),
            problems,
        },
        other => other,
    })?;
    std::fs::create_dir(dir).map_err(|err| match err.kind() {
        std::io::ErrorKind::AlreadyExists => refuse(EXISTS.into()),
        _ => refuse(err.to_string()),
    })?;
    std::fs::rename(&made, dir).map_err(|err| {
        let _ = std::fs::remove_dir(dir);
        refuse(err.to_string())
    })
}

fn write_all(draft: &Draft<'_>, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut test_file = "test.sh".to_owned();
    while draft.steps.scripts.contains_key(&test_file) {
        test_file.insert_str(0, "kiln-");
    }
    for (file, bytes) in &draft.steps.scripts {
        std::fs::write(dir.join(file), bytes)?;
    }
    std::fs::write(dir.join(&test_file), TEST_SCRIPT)?;
    let test = TestSpec {
        script: test_file,
        timeout_seconds: 600,
    };
    std::fs::write(dir.join(RECIPE_FILE), document(draft, &test)?)
}

/// `recipe.toml`: a header, then each section in the order the README gives them.
fn document(draft: &Draft<'_>, test: &TestSpec) -> std::io::Result<String> {
    let from = draft
        .template
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut out = format!(
        "# Imported from the Packer template {from} by `kiln import packer`:\n\
         # its report lists what did not carry over. See the README for every field.\n\n"
    );
    let parts = &draft.parts;
    if let Some(description) = &draft.description {
        out.push_str(&section("description", description)?);
    }
    out.push_str(&section("source", &parts.source)?);
    out.push_str(&section("builder", &parts.builder)?);
    out.push_str(&section("steps", &draft.steps.steps)?);
    out.push_str(&section("test", test)?);
    out.push_str(&section("image", &parts.image)?);
    if parts.distribution.distributes() {
        out.push_str(&section("distribution", &parts.distribution)?);
    }
    Ok(out)
}

/// One top-level key and its value as TOML, fields in the schema's order.
fn section(key: &str, value: &impl Serialize) -> std::io::Result<String> {
    let table = std::collections::BTreeMap::from([(key, value)]);
    toml::to_string(&table)
        .map(|text| format!("{text}\n"))
        .map_err(|err| std::io::Error::other(err.to_string()))
}
