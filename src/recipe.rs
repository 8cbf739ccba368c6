//! The recipe: what to build from, how to build it, how to test it, what to call it.
//!
//! A recipe is a directory holding `recipe.toml` and the scripts it names. The
//! directory's name is the recipe's name. [`Recipe::load`] reads and checks all
//! of it and reports every problem it finds with the field it concerns; nothing
//! touches AWS with a recipe that did not load.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::state::{AmiId, Channel, Fingerprint, RecipeName};
use crate::tags::RESERVED_PREFIXES;

/// The recipe file inside a recipe directory.
pub const RECIPE_FILE: &str = "recipe.toml";
/// Canonical's public parameter for the current Ubuntu 24.04 LTS amd64 gp3 image.
pub const CANONICAL_PARAMETER: &str =
    "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id";
/// Canonical's AWS account, the owner of official Ubuntu images.
pub const CANONICAL_OWNER: &str = "099720109477";
/// Largest script kiln sends through Run Command. SSM caps a command's
/// parameters; this leaves room for the wrapper and the other parameters.
pub const MAX_SCRIPT_BYTES: usize = 48 * 1024;
/// Longest `executionTimeout` SSM Run Command accepts (48 h).
pub const MAX_TIMEOUT_SECONDS: u32 = 172_800;
/// The placeholders an image name template may use.
pub const NAME_PLACEHOLDERS: &[&str] = &["recipe", "build_id", "date", "fingerprint", "source_ami"];

/// One thing wrong with a recipe, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The field, as a dotted path (`builder.root_volume.size_gib`), or the file.
    pub field: String,
    /// What is wrong, in words a person can act on.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// CPU architecture of the source and the image.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::Display,
    strum::AsRefStr,
)]
pub enum Architecture {
    /// 64-bit x86.
    #[default]
    #[serde(rename = "x86_64")]
    #[strum(serialize = "x86_64")]
    X86_64,
    /// 64-bit ARM (Graviton).
    #[serde(rename = "arm64")]
    #[strum(serialize = "arm64")]
    Arm64,
}

/// Where the source image comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// SSM parameter whose value is the source image id.
    #[serde(default = "default_parameter")]
    pub parameter: String,
    /// Accounts trusted to own the source image.
    #[serde(default = "default_owners")]
    pub owners: Vec<String>,
    /// Required architecture of the source image.
    #[serde(default)]
    pub architecture: Architecture,
}

impl Default for SourceSpec {
    fn default() -> Self {
        Self {
            parameter: default_parameter(),
            owners: default_owners(),
            architecture: Architecture::default(),
        }
    }
}

fn default_parameter() -> String {
    CANONICAL_PARAMETER.to_owned()
}

fn default_owners() -> Vec<String> {
    vec![CANONICAL_OWNER.to_owned()]
}

/// EBS volume types a root volume may have.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::Display,
    strum::AsRefStr,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum VolumeType {
    /// General purpose SSD, current generation.
    #[default]
    Gp3,
    /// General purpose SSD, previous generation.
    Gp2,
    /// Provisioned IOPS SSD.
    Io1,
    /// Provisioned IOPS SSD, current generation.
    Io2,
}

/// The builder's root volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootVolume {
    /// Size in GiB.
    #[serde(default = "default_volume_size")]
    pub size_gib: i32,
    /// Volume type.
    #[serde(default, rename = "type")]
    pub volume_type: VolumeType,
    /// Encrypt the volume (and so the image's snapshots). Must be true; the
    /// field exists so a recipe can say so explicitly.
    #[serde(default = "yes")]
    pub encrypted: bool,
    /// KMS key for encryption; the account's default EBS key when absent.
    #[serde(default)]
    pub kms_key_id: Option<String>,
}

impl Default for RootVolume {
    fn default() -> Self {
        Self {
            size_gib: default_volume_size(),
            volume_type: VolumeType::default(),
            encrypted: true,
            kms_key_id: None,
        }
    }
}

fn default_volume_size() -> i32 {
    16
}

fn yes() -> bool {
    true
}

/// The instance the image is built on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuilderSpec {
    /// Instance types in order of preference; the next is tried when one has no capacity.
    pub instance_types: Vec<String>,
    /// Subnet to launch in; the default VPC's default subnet when absent.
    #[serde(default)]
    pub subnet_id: Option<String>,
    /// Security group; kiln creates one with no inbound rules when absent.
    #[serde(default)]
    pub security_group_id: Option<String>,
    /// Instance profile giving the builder SSM access.
    pub instance_profile: String,
    /// Root volume.
    #[serde(default)]
    pub root_volume: RootVolume,
}

/// One provisioning step: a script run as root through SSM Run Command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// Short name shown in progress and errors.
    pub name: String,
    /// Script path, relative to the recipe directory.
    pub script: String,
    /// Longest the script may run.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u32,
    /// Reboot the builder after the script succeeds.
    #[serde(default)]
    pub reboot: bool,
}

fn default_timeout() -> u32 {
    3600
}

fn default_image_timeout() -> u32 {
    4 * 3600
}

/// How the image is tested before anyone may use it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    /// Script path, relative to the recipe directory; exits non-zero when the image is unsound.
    pub script: String,
    /// Longest the script may run.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u32,
}

/// The image to make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// Name template; placeholders in braces, see [`NAME_PLACEHOLDERS`]. Must use `{build_id}`.
    pub name: String,
    /// Image description.
    #[serde(default)]
    pub description: Option<String>,
    /// Refuse an image without ENA support.
    #[serde(default = "yes")]
    pub ena_required: bool,
    /// Longest EC2 may take to make the image (large volumes take hours).
    #[serde(default = "default_image_timeout")]
    pub timeout_seconds: u32,
    /// Keep an image that failed its test (tagged `kiln:stage=failed`) for
    /// inspection instead of deregistering it.
    #[serde(default)]
    pub keep_failed: bool,
    /// Extra tags for the image.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// The longest soak a release stage may ask for: 30 days.
pub const MAX_SOAK_HOURS: u32 = 720;
/// Gate alarms per release stage (`DescribeAlarms` takes 100 names).
pub const MAX_GATE_ALARMS: usize = 100;

/// One stage of a recipe's release policy: a channel the image moves to,
/// after how long in the stage before, unless a gate fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseStage {
    /// The channel promoted at this stage.
    pub channel: Channel,
    /// Hours the image must spend in the previous stage's channel (or, for
    /// the first stage, since its test passed) with no gate firing.
    #[serde(default)]
    pub soak_hours: u32,
    /// CloudWatch alarm names: any in ALARM during the soak stops the release.
    #[serde(default)]
    pub alarms: Vec<String>,
}

/// The parsed `recipe.toml`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecipeFile {
    /// Free text describing the recipe.
    pub description: Option<String>,
    /// The source image.
    pub source: SourceSpec,
    /// The builder.
    pub builder: BuilderSpec,
    /// Provisioning steps, in order.
    pub steps: Vec<StepSpec>,
    /// The image test.
    pub test: TestSpec,
    /// The image.
    pub image: ImageSpec,
    /// The release policy: the channels a tested image moves through, in
    /// order (`[[release]]`; none: images are promoted by hand).
    pub release: Vec<ReleaseStage>,
}

/// Script contents by path relative to the recipe directory.
type Scripts = BTreeMap<String, Vec<u8>>;

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
    /// release policy (which decides where an image goes, not what it is),
    /// written out again, so comments and layout do not count either.
    pub built_from: Vec<u8>,
    /// Every script the recipe names, by its path relative to `dir`.
    pub scripts: BTreeMap<String, Vec<u8>>,
}

impl Recipe {
    /// Reads and validates the recipe in `dir`, reporting every problem found.
    pub fn load(dir: &Path) -> Result<Self> {
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
            Ok(Self {
                name,
                dir: dir.to_owned(),
                file,
                built_from,
                scripts,
            })
        } else {
            Err(problems.into_error(dir))
        }
    }

    /// The fingerprint of building this recipe from `source`.
    pub fn fingerprint(&self, source: &AmiId) -> Fingerprint {
        crate::fingerprint::fingerprint(source, &self.built_from, &self.scripts)
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
    let scripts = read_scripts(
        dir,
        steps.as_deref().unwrap_or_default(),
        test.as_ref(),
        problems,
    );
    for unknown in table.keys() {
        problems.add(
            unknown.as_str(),
            "unknown field; expected one of description, source, builder, steps, test, image, release",
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
    let parameter_chars = |c: char| c.is_ascii_alphanumeric() || "/_.-".contains(c);
    if !source.parameter.starts_with('/') || !source.parameter.chars().all(parameter_chars) {
        problems.add(
            "source.parameter",
            "must be an SSM parameter path starting with '/' (letters, digits, '/', '_', '.', '-')",
        );
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
    let profile = &builder.instance_profile;
    let profile_chars = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
    if profile.is_empty() || profile.len() > 128 || !profile.chars().all(profile_chars) {
        problems.add(
            "builder.instance_profile",
            "must be an instance profile name (1-128 of letters, digits, +=,.@_-)",
        );
    }
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
        if stage.alarms.len() > MAX_GATE_ALARMS {
            problems.add(
                format!("release[{i}].alarms"),
                format!("at most {MAX_GATE_ALARMS} alarms"),
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
    match placeholders(&image.name) {
        Ok(used) => {
            if let Some(unknown) = used.iter().find(|p| !NAME_PLACEHOLDERS.contains(p)) {
                problems.add(
                    "image.name",
                    format!(
                        "unknown placeholder {{{unknown}}}; known: {}",
                        NAME_PLACEHOLDERS.join(", ")
                    ),
                );
            }
            if !used.contains(&"build_id") {
                problems.add(
                    "image.name",
                    "must contain {build_id} so every build's image name is unique",
                );
            }
        }
        Err(message) => problems.add("image.name", message),
    }
    let literal: String = literal_text(&image.name);
    if let Some(bad) = literal.chars().find(|&c| !is_image_name_char(c)) {
        problems.add(
            "image.name",
            format!("{bad:?} is not allowed in an image name (letters, digits, ( ) [ ] space . / - ' @ _)"),
        );
    }
    if image.description.as_ref().is_some_and(|d| d.len() > 255) {
        problems.add("image.description", "must be at most 255 characters");
    }
    for (key, value) in &image.tags {
        if RESERVED_PREFIXES.iter().any(|p| key.starts_with(p)) {
            problems.add(
                format!("image.tags.{key}"),
                "keys starting with kiln: or aws: are reserved",
            );
        }
        if key.is_empty() || key.len() > 128 || value.len() > 256 {
            problems.add(
                format!("image.tags.{key}"),
                "keys are 1-128 characters, values at most 256",
            );
        }
    }
    if image.tags.len() > 40 {
        problems.add(
            "image.tags",
            "at most 40 extra tags (EC2 allows 50 and kiln uses the rest)",
        );
    }
}

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
