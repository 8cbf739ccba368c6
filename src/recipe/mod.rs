//! The recipe: what to build from, how to build it, how to test it, what to call it.
//!
//! A recipe is a directory holding `recipe.toml` and the scripts it names. The
//! directory's name is the recipe's name. [`Recipe::load`] reads and checks all
//! of it and reports every problem it finds with the field it concerns; nothing
//! touches AWS with a recipe that did not load.

pub mod distribution;
pub mod fingerprint;
pub mod naming;
pub mod schema;
pub mod security;
mod source;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use naming::{NAME_PLACEHOLDERS, NameInputs};
pub use schema::*;
pub use security::{Acceptance, Security};

use crate::error::{Error, Result};
use crate::ids::{AmiId, Fingerprint, RecipeName};

/// A loaded, valid recipe: its file, what of it a build depends on, and
/// every script it names.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// The recipe's name (its directory name).
    pub name: RecipeName,
    /// The recipe directory.
    pub dir: PathBuf,
    /// The parsed recipe file.
    pub file: RecipeFile,
    /// The recipe file as the fingerprint hashes it: every section but the
    /// release policy and the distribution (which decide where an image
    /// goes, not what it is),
    /// written out again, so comments and layout do not count either.
    pub built_from: Vec<u8>,
    /// Every script the recipe names, by its path relative to `dir`.
    pub scripts: BTreeMap<String, Vec<u8>>,
}

impl Recipe {
    /// Reads and validates the recipe in `dir`, reporting every problem found.
    pub fn load(dir: &Path) -> Result<Self> {
        let loaded = validate::load(dir)?;
        Ok(Self {
            name: loaded.name,
            dir: dir.to_owned(),
            file: loaded.file,
            built_from: loaded.built_from,
            scripts: loaded.scripts,
        })
    }

    /// The image name of a build of this recipe (see `naming::image_name`).
    pub fn image_name(&self, inputs: NameInputs<'_>) -> Result<String> {
        naming::image_name(&self.file.image.name, &self.name, inputs)
    }

    /// The fingerprint of building this recipe from `source`.
    pub fn fingerprint(&self, source: &AmiId) -> Fingerprint {
        fingerprint::fingerprint(source, &self.built_from, &self.scripts)
    }

    /// The longest a build of this recipe can run: every step, the image and
    /// the test at their timeouts, plus an hour for launches and waits.
    pub fn max_build_seconds(&self) -> u64 {
        let steps: u64 = self
            .file
            .steps
            .iter()
            .map(|s| u64::from(s.timeout_seconds))
            .sum();
        steps
            + u64::from(self.file.image.timeout_seconds)
            + u64::from(self.file.test.timeout_seconds)
            + 3600
    }

    /// The script of `path` (as named in the recipe).
    pub fn script(&self, path: &str) -> &[u8] {
        self.scripts.get(path).map_or(&[], Vec::as_slice)
    }

    /// The provisioning step at `index`, or a clear error.
    pub fn step(&self, index: usize) -> Result<&StepSpec> {
        self.file.steps.get(index).ok_or_else(|| {
            Error::InvalidInput(format!(
                "step {index} does not exist: recipe {} has {} step(s)",
                self.name,
                self.file.steps.len()
            ))
        })
    }
}
