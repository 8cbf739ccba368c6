//! Reading and checking a recipe: every section on its own, so one mistake
//! hides no other, and every problem reported with the field it concerns.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path};

use serde::de::DeserializeOwned;

use super::naming::template_problems;
use super::schema::*;
use super::security::Security;
use crate::error::{Error, Problem, Result};
use crate::ids::RecipeName;
use crate::tags::RESERVED_PREFIXES;

/// Script contents by path relative to the recipe directory.
type Scripts = BTreeMap<String, Vec<u8>>;

/// What a valid recipe directory holds.
pub(super) struct Loaded {
    /// The recipe's name (its directory name).
    pub name: RecipeName,
    /// The parsed recipe file.
    pub file: RecipeFile,
    /// The recipe file as the fingerprint hashes it.
    pub built_from: Vec<u8>,
    /// Every script the recipe names.
    pub scripts: Scripts,
}

/// Reads and validates the recipe in `dir`, reporting every problem found.
pub(super) fn load(dir: &Path) -> Result<Loaded> {
    let mut problems = Problems::default();
    let name = recipe_name(dir, &mut problems);
    let path = dir.join(RECIPE_FILE);
    let raw = match std::fs::read(&path) {
        Ok(raw) => raw,
        Err(err) => {
            problems.add(
                RECIPE_FILE,
                format!("cannot read {}: {err}", path.display()),
            );
            return Err(problems.into_error(dir));
        }
    };
    let parsed = parse(dir, &raw, &mut problems);
    let (Some(name), Some((file, built_from, scripts))) = (name, parsed) else {
        return Err(problems.into_error(dir));
    };
    if problems.is_empty() {
        Ok(Loaded {
            name,
            file,
            built_from,
            scripts,
        })
    } else {
        Err(problems.into_error(dir))
    }
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            field: field.into(),
            message: message.into(),
        });
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn into_error(self, dir: &Path) -> Error {
        Error::InvalidRecipe {
            recipe: dir.display().to_string(),
            problems: self.0,
        }
    }
}

fn recipe_name(dir: &Path, problems: &mut Problems) -> Option<RecipeName> {
    let name = std::fs::canonicalize(dir)
        .ok()
        .and_then(|dir| dir.file_name().map(|n| n.to_string_lossy().into_owned()));
    match name.map(|n| n.parse::<RecipeName>()) {
        Some(Ok(name)) => Some(name),
        Some(Err(err)) => {
            problems.add("directory", err.to_string());
            None
        }
        None => {
            problems.add(
                "directory",
                format!("{} is not a readable directory", dir.display()),
            );
            None
        }
    }
}

/// Parses and checks each section on its own, and reads the scripts named by
/// the sections that parsed, so a mistake in one place hides no other.
fn parse(
    dir: &Path,
    raw: &[u8],
    problems: &mut Problems,
) -> Option<(RecipeFile, Vec<u8>, Scripts)> {
    let text = match std::str::from_utf8(raw) {
        Ok(text) => text,
        Err(err) => {
            problems.add(RECIPE_FILE, format!("not UTF-8: {err}"));
            return None;
        }
    };
    let mut table = match text.parse::<toml::Table>() {
        Ok(table) => table,
        Err(err) => {
            problems.add(RECIPE_FILE, err.to_string().trim_end());
            return None;
        }
    };
    let mut built_from = table.clone();
    built_from.remove("release");
    built_from.remove("distribution");
    built_from.remove("retention");
    built_from.remove("security");
    let built_from = toml::to_string(&built_from).map_or_else(
        |err| {
            problems.add(RECIPE_FILE, format!("cannot write it out again: {err}"));
            Vec::new()
        },
        String::into_bytes,
    );
    let description = section::<String>(&mut table, "description", problems);
    let source =
        section::<SourceSpec>(&mut table, "source", problems).map(Option::unwrap_or_default);
    if let Ok(source) = &source {
        check_source(source, problems);
    }
    let builder = required::<BuilderSpec>(&mut table, "builder", problems);
    if let Some(builder) = &builder {
        check_builder(builder, problems);
    }
    let steps = required::<Vec<StepSpec>>(&mut table, "steps", problems);
    if let Some(steps) = &steps {
        check_steps(steps, problems);
    }
    let test = required::<TestSpec>(&mut table, "test", problems);
    if let Some(test) = &test {
        check_timeout("test.timeout_seconds", test.timeout_seconds, problems);
    }
    let image = required::<ImageSpec>(&mut table, "image", problems);
    if let Some(image) = &image {
        check_image(image, problems);
    }
    let release = section::<Vec<ReleaseStage>>(&mut table, "release", problems)
        .map(Option::unwrap_or_default);
    if let Ok(release) = &release {
        check_release(release, problems);
    }
    let distribution = section::<Distribution>(&mut table, "distribution", problems)
        .map(Option::unwrap_or_default);
    if let (Ok(distribution), Some(builder)) = (&distribution, &builder) {
        for (field, message) in super::distribution::problems(distribution, &builder.root_volume) {
            problems.add(field, message);
        }
    }
    if let Ok(distribution) = &distribution {
        check_timeout(
            "distribution.copy_timeout_seconds",
            distribution.copy_timeout_seconds,
            problems,
        );
    }
    let retention =
        section::<Retention>(&mut table, "retention", problems).map(Option::unwrap_or_default);
    if let Ok(retention) = &retention {
        for (field, days) in [
            ("retention.grace_days", retention.grace_days),
            ("retention.used_within_days", retention.used_within_days),
        ] {
            if !(1..=MAX_RETENTION_DAYS).contains(&days) {
                problems.add(field, format!("must be 1 to {MAX_RETENTION_DAYS} days"));
            }
        }
    }
    let security =
        section::<Security>(&mut table, "security", problems).map(Option::unwrap_or_default);
    if let Ok(security) = &security {
        for (field, message) in super::security::problems(security) {
            problems.add(field, message);
        }
    }
    let scripts = read_scripts(
        dir,
        steps.as_deref().unwrap_or_default(),
        test.as_ref(),
        problems,
    );
    for unknown in table.keys() {
        problems.add(
            unknown.as_str(),
            "unknown field; expected one of description, source, builder, steps, test, image, release, \
             distribution, retention, security",
        );
    }
    let file = RecipeFile {
        description: description.ok()?,
        source: source.ok()?,
        builder: builder?,
        steps: steps?,
        test: test?,
        image: image?,
        release: release.ok()?,
        distribution: distribution.ok()?,
        retention: retention.ok()?,
        security: security.ok()?,
    };
    Some((file, built_from, scripts))
}

/// Takes `key` out of `table`: `Ok(None)` when absent, `Err(())` when present
/// but invalid (the problem is recorded with its field path).
fn section<T: DeserializeOwned>(
    table: &mut toml::Table,
    key: &str,
    problems: &mut Problems,
) -> std::result::Result<Option<T>, ()> {
    let Some(value) = table.remove(key) else {
        return Ok(None);
    };
    serde_path_to_error::deserialize(value)
        .map(Some)
        .map_err(|err| {
            let inner = err.path().to_string();
            let field = if inner == "." {
                key.to_owned()
            } else if inner.starts_with('[') {
                format!("{key}{inner}")
            } else {
                format!("{key}.{inner}")
            };
            problems.add(field, err.into_inner().to_string().trim_end());
        })
}

/// Like [`section`], for a section the recipe must have.
fn required<T: DeserializeOwned>(
    table: &mut toml::Table,
    key: &str,
    problems: &mut Problems,
) -> Option<T> {
    match section(table, key, problems) {
        Ok(Some(value)) => Some(value),
        Ok(None) => {
            problems.add(key, "missing; this section is required");
            None
        }
        Err(()) => None,
    }
}

fn check_source(source: &SourceSpec, problems: &mut Problems) {
    for (field, message) in super::source::problems(source) {
        problems.add(field, message);
    }
}

fn check_builder(builder: &BuilderSpec, problems: &mut Problems) {
    if builder.instance_types.is_empty() {
        problems.add(
            "builder.instance_types",
            "must list at least one instance type",
        );
    }
    let mut seen = BTreeSet::new();
    for instance_type in &builder.instance_types {
        if !is_instance_type(instance_type) {
            problems.add(
                "builder.instance_types",
                format!("{instance_type:?} is not an instance type like \"t3.small\""),
            );
        }
        if !seen.insert(instance_type) {
            problems.add(
                "builder.instance_types",
                format!("{instance_type:?} is listed twice"),
            );
        }
    }
    if let Some(subnet) = &builder.subnet_id {
        check_resource_id("builder.subnet_id", subnet, "subnet-", problems);
    }
    if let Some(group) = &builder.security_group_id {
        check_resource_id("builder.security_group_id", group, "sg-", problems);
    }
    let profile_chars = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
    let named = builder.instance_profile.as_deref();
    if named.is_some_and(|p| p.is_empty() || p.len() > 128 || !p.chars().all(profile_chars)) {
        problems.add(
            "builder.instance_profile",
            "must be an instance profile name (1-128 of letters, digits, +=,.@_-)",
        );
    }
    check_tags("builder.tags", &builder.tags, problems);
    let volume = &builder.root_volume;
    if !(8..=16_384).contains(&volume.size_gib) {
        problems.add(
            "builder.root_volume.size_gib",
            "must be between 8 and 16384 GiB",
        );
    }
    if !volume.encrypted {
        problems.add(
            "builder.root_volume.encrypted",
            "must be true: kiln images and their snapshots are encrypted at rest",
        );
    }
}

fn is_instance_type(value: &str) -> bool {
    let Some((family, size)) = value.split_once('.') else {
        return false;
    };
    let part = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    family.starts_with(|c: char| c.is_ascii_lowercase()) && part(family) && part(size)
}

fn check_resource_id(field: &str, value: &str, prefix: &str, problems: &mut Problems) {
    let valid = value
        .strip_prefix(prefix)
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_hexdigit()));
    if !valid {
        problems.add(
            field,
            format!("{value:?} is not an id like \"{prefix}0123456789abcdef0\""),
        );
    }
}

fn check_steps(steps: &[StepSpec], problems: &mut Problems) {
    if steps.is_empty() {
        problems.add(
            "steps",
            "must list at least one provisioning step ([[steps]])",
        );
    }
    let mut names = BTreeSet::new();
    for (i, step) in steps.iter().enumerate() {
        let name_ok = !step.name.is_empty()
            && step.name.len() <= 32
            && step
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            problems.add(
                format!("steps[{i}].name"),
                "must be 1-32 letters, digits, '-' or '_'",
            );
        }
        if !names.insert(&step.name) {
            problems.add(
                format!("steps[{i}].name"),
                format!("{:?} is used by an earlier step", step.name),
            );
        }
        check_timeout(
            &format!("steps[{i}].timeout_seconds"),
            step.timeout_seconds,
            problems,
        );
        check_environment(i, &step.environment, problems);
    }
}

/// Variable names as a shell takes them; `KILN_` is kiln's own (every step
/// gets `KILN_RECIPE`, `KILN_BUILD_ID` and `KILN_STEP`).
fn check_environment(step: usize, environment: &BTreeMap<String, String>, problems: &mut Problems) {
    let field = format!("steps[{step}].environment");
    for (name, value) in environment {
        let name_ok = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !name_ok {
            problems.add(
                &field,
                format!("{name:?} is not a variable name (letters, digits and '_', not starting with a digit)"),
            );
        } else if name.starts_with("KILN_") {
            problems.add(
                &field,
                format!("{name}: names starting with KILN_ are kiln's own"),
            );
        }
        if value.contains('\0') {
            problems.add(
                &field,
                format!("{name}: a value cannot hold a NUL character"),
            );
        }
    }
    // As the command carries them: ` NAME='value'`, each quote in a value
    // written as four bytes.
    let bytes: usize = environment
        .iter()
        .map(|(k, v)| k.len() + v.len() + 3 * v.matches('\'').count() + 4)
        .sum();
    if bytes > MAX_ENVIRONMENT_BYTES {
        problems.add(
            field,
            format!(
                "{bytes} bytes of names and values; at most {MAX_ENVIRONMENT_BYTES}, so the command \
                 stays within Run Command's limit"
            ),
        );
    }
}

fn check_timeout(field: &str, seconds: u32, problems: &mut Problems) {
    if !(1..=MAX_TIMEOUT_SECONDS).contains(&seconds) {
        problems.add(
            field,
            format!("must be between 1 and {MAX_TIMEOUT_SECONDS} seconds"),
        );
    }
}

fn check_release(stages: &[ReleaseStage], problems: &mut Problems) {
    let mut channels = BTreeSet::new();
    for (i, stage) in stages.iter().enumerate() {
        if !channels.insert(&stage.channel) {
            problems.add(
                format!("release[{i}].channel"),
                format!("{} is already a stage: each channel once", stage.channel),
            );
        }
        if stage.soak_hours > MAX_SOAK_HOURS {
            problems.add(
                format!("release[{i}].soak_hours"),
                format!("must be at most {MAX_SOAK_HOURS} (30 days)"),
            );
        }
        if stage
            .security_soak_hours
            .is_some_and(|h| h > stage.soak_hours)
        {
            problems.add(
                format!("release[{i}].security_soak_hours"),
                "must be at most soak_hours: a fast track is never slower",
            );
        }
        if stage.alarms.len() > MAX_GATE_ALARMS {
            problems.add(
                format!("release[{i}].alarms"),
                format!(
                    "at most {MAX_GATE_ALARMS} alarms, {} listed: the stage's instance refreshes \
                     watch them, and an instance refresh takes up to {MAX_GATE_ALARMS}",
                    stage.alarms.len()
                ),
            );
        }
        let mut alarms = BTreeSet::new();
        for alarm in &stage.alarms {
            if alarm.trim().is_empty() || alarm.len() > 255 || alarm.chars().any(char::is_control) {
                problems.add(
                    format!("release[{i}].alarms"),
                    format!("{alarm:?} is not a CloudWatch alarm name (1-255 characters, no control characters)"),
                );
            }
            if !alarms.insert(alarm) {
                problems.add(
                    format!("release[{i}].alarms"),
                    format!("{alarm:?} is listed twice"),
                );
            }
        }
    }
}

fn check_image(image: &ImageSpec, problems: &mut Problems) {
    check_timeout("image.timeout_seconds", image.timeout_seconds, problems);
    for message in template_problems(&image.name) {
        problems.add("image.name", message);
    }
    if image.description.as_ref().is_some_and(|d| d.len() > 255) {
        problems.add("image.description", "must be at most 255 characters");
    }
    check_tags("image.tags", &image.tags, problems);
}

/// Extra tags: kiln's and AWS's prefixes reserved, EC2's lengths, and room
/// left for kiln's own among EC2's 50 per resource.
fn check_tags(field: &str, tags: &BTreeMap<String, String>, problems: &mut Problems) {
    for (key, value) in tags {
        if RESERVED_PREFIXES.iter().any(|p| key.starts_with(p)) {
            problems.add(
                format!("{field}.{key}"),
                "keys starting with kiln: or aws: are reserved",
            );
        }
        if key.is_empty() || key.len() > 128 || value.len() > 256 {
            problems.add(
                format!("{field}.{key}"),
                "keys are 1-128 characters, values at most 256",
            );
        }
    }
    if tags.len() > 40 {
        problems.add(
            field,
            "at most 40 extra tags (EC2 allows 50 and kiln uses the rest)",
        );
    }
}

fn read_scripts(
    dir: &Path,
    steps: &[StepSpec],
    test: Option<&TestSpec>,
    problems: &mut Problems,
) -> BTreeMap<String, Vec<u8>> {
    let named = steps
        .iter()
        .enumerate()
        .map(|(i, step)| (format!("steps[{i}].script"), &step.script))
        .chain(test.map(|test| ("test.script".to_owned(), &test.script)));
    let mut scripts = BTreeMap::new();
    for (field, script) in named {
        if scripts.contains_key(script) {
            continue;
        }
        if let Some(bytes) = read_script(dir, &field, script, problems) {
            scripts.insert(script.clone(), bytes);
        }
    }
    scripts
}

fn read_script(dir: &Path, field: &str, script: &str, problems: &mut Problems) -> Option<Vec<u8>> {
    let relative = Path::new(script);
    if script.is_empty()
        || !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    {
        problems.add(
            field,
            format!("{script:?} must be a path inside the recipe directory"),
        );
        return None;
    }
    let bytes = match std::fs::read(dir.join(relative)) {
        Ok(bytes) => bytes,
        Err(err) => {
            problems.add(field, format!("cannot read {script}: {err}"));
            return None;
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        problems.add(field, format!("{script} is empty"));
    } else if bytes.len() > MAX_SCRIPT_BYTES {
        problems.add(
            field,
            format!(
                "{script} is {} bytes; Run Command takes at most {MAX_SCRIPT_BYTES}",
                bytes.len()
            ),
        );
    } else if std::str::from_utf8(&bytes).is_err() {
        problems.add(field, format!("{script} is not UTF-8 text"));
    } else {
        return Some(bytes);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_types_are_recognised() {
        for good in [
            "t3.small",
            "m7i-flex.large",
            "c7g.metal-48xl",
            "u-6tb1.metal",
        ] {
            assert!(is_instance_type(good), "{good}");
        }
        for bad in ["t3", ".small", "T3.small", "t3.", "t3 small"] {
            assert!(!is_instance_type(bad), "{bad}");
        }
    }
}
