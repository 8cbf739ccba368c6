//! The recipe file's sections as parsed: every field with its default, and
//! the limits the validation (`validate`) enforces.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::security::Security;
use crate::ids::Channel;

/// The recipe file inside a recipe directory.
pub const RECIPE_FILE: &str = "recipe.toml";
/// Canonical's public parameter for the current Ubuntu 24.04 LTS amd64 gp3 image.
pub const CANONICAL_PARAMETER: &str =
    "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id";
/// Where AWS's public parameters live (Canonical's among them): the only
/// source parameters a recipe may name, and the only ones kiln's roles read.
pub const PUBLIC_PARAMETERS: &str = "/aws/service/";
/// Canonical's AWS account, the owner of official Ubuntu images.
pub const CANONICAL_OWNER: &str = "099720109477";
/// Largest script kiln sends through Run Command. SSM caps a command's
/// parameters; this leaves room for the wrapper and the other parameters.
pub const MAX_SCRIPT_BYTES: usize = 48 * 1024;
/// Most a step's environment may hold, names and values together: with a
/// script of [`MAX_SCRIPT_BYTES`], the command stays within Run Command's limit.
pub const MAX_ENVIRONMENT_BYTES: usize = 4 * 1024;
/// Longest `executionTimeout` SSM Run Command accepts (48 h).
pub const MAX_TIMEOUT_SECONDS: u32 = 172_800;

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

/// Where the source image comes from: an SSM parameter naming it (AWS's
/// public parameters: Canonical's by default), or the newest available image
/// of the trusted owners whose name matches a pattern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// SSM parameter whose value is the source image id ([`CANONICAL_PARAMETER`]
    /// when neither this nor `name_pattern` is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    /// Image name pattern (`*` and `?` wildcards, as EC2's `name` filter
    /// takes them): the newest available image of `owners` matching it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_pattern: Option<String>,
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
            parameter: None,
            name_pattern: None,
            owners: default_owners(),
            architecture: Architecture::default(),
        }
    }
}

/// How a recipe's source image is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceLookup<'a> {
    /// The image an SSM parameter names.
    Parameter(&'a str),
    /// The newest available image of the recipe's owners with a matching name.
    NamePattern(&'a str),
}

impl SourceSpec {
    /// How the source image is found.
    pub fn lookup(&self) -> SourceLookup<'_> {
        match (&self.name_pattern, &self.parameter) {
            (Some(pattern), None) => SourceLookup::NamePattern(pattern),
            (_, parameter) => {
                SourceLookup::Parameter(parameter.as_deref().unwrap_or(CANONICAL_PARAMETER))
            }
        }
    }
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
    /// Instance profile giving the builder SSM access; the deployment's own
    /// (`KILN_INSTANCE_PROFILE`) when absent.
    #[serde(default)]
    pub instance_profile: Option<String>,
    /// Root volume.
    #[serde(default)]
    pub root_volume: RootVolume,
    /// Extra tags for the builder and test instances and their volumes (a
    /// `Name` replaces kiln's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
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
    /// Environment variables the script runs with.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
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
    /// Name template; placeholders in braces, see [`NAME_PLACEHOLDERS`](super::NAME_PLACEHOLDERS). Must use `{build_id}`.
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
    /// Mark the image as needing IMDSv2 (`ImdsSupport = v2.0`): instances
    /// launched from it require session tokens for instance metadata unless
    /// their launch says otherwise. AWS allows no way back for an image.
    #[serde(default = "yes")]
    pub require_imdsv2: bool,
    /// Extra tags for the image.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// The longest soak a release stage may ask for: 30 days.
pub const MAX_SOAK_HOURS: u32 = 720;
/// Gate alarms per release stage: the stage's instance refreshes watch them
/// all, and a refresh's `AlarmSpecification` takes "up to 10 alarms"
/// (Amazon EC2 Auto Scaling API Reference, AlarmSpecification).
pub const MAX_GATE_ALARMS: usize = 10;

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
    /// The soak of a security fast track (a build for a finding whose
    /// exploit is available, or above `[security] fast_track_cvss`), at most
    /// `soak_hours`; none: the fast track soaks `soak_hours` here too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_soak_hours: Option<u32>,
}

impl ReleaseStage {
    /// Hours of this stage's soak: the security soak on a fast track.
    pub fn soak_for(&self, fast_track: bool) -> u32 {
        match self.security_soak_hours {
            Some(hours) if fast_track => hours,
            _ => self.soak_hours,
        }
    }
}

/// Where the image goes besides the build region (`[distribution]`): a copy
/// in each region, launch permission for accounts and organizational units.
/// Not part of the fingerprint: it says where an image goes, not what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Distribution {
    /// Regions that get a copy, in the order releases roll them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// Account ids given launch permission, in every region.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<String>,
    /// Organizational unit ARNs given launch permission, in every region.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizational_units: Vec<String>,
    /// The KMS key (ARN) each region's copy is encrypted with, by region
    /// (the build region's is `builder.root_volume.kms_key_id`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kms_keys: BTreeMap<String, String>,
    /// Roles (ARNs, one per member account) kiln assumes to keep the
    /// channel's pointers in that account too, in the build region and every
    /// distribution region.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pointer_roles: Vec<String>,
    /// Seconds a copy may stay pending before the build fails (default 4 h).
    #[serde(default = "default_copy_timeout")]
    pub copy_timeout_seconds: u32,
}

fn default_copy_timeout() -> u32 {
    4 * 3600
}

impl Default for Distribution {
    fn default() -> Self {
        Self {
            regions: Vec::new(),
            accounts: Vec::new(),
            organizational_units: Vec::new(),
            kms_keys: BTreeMap::new(),
            pointer_roles: Vec::new(),
            copy_timeout_seconds: default_copy_timeout(),
        }
    }
}

impl Distribution {
    /// Whether images are shared with other accounts.
    pub fn shares(&self) -> bool {
        !self.accounts.is_empty() || !self.organizational_units.is_empty()
    }

    /// Whether a tested image is copied or shared at all.
    pub fn distributes(&self) -> bool {
        !self.regions.is_empty() || self.shares()
    }
}

/// Longest grace period or use window `[retention]` takes, in days.
pub const MAX_RETENTION_DAYS: u32 = 3650;

/// How retention retires the recipe's images (`[retention]`): an image no
/// rule keeps is deprecated, then disabled, then deregistered with its
/// snapshots `grace_days` after it was disabled. Not part of the
/// fingerprint: it says how long an image lives, not what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Days a disabled image waits before it is deregistered (`kiln
    /// restore` brings it back until then).
    #[serde(default = "default_grace_days")]
    pub grace_days: u32,
    /// An image launched within this many days (EC2's `LastLaunchedTime`)
    /// counts as used.
    #[serde(default = "default_used_within_days")]
    pub used_within_days: u32,
}

fn default_grace_days() -> u32 {
    14
}

fn default_used_within_days() -> u32 {
    30
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            grace_days: default_grace_days(),
            used_within_days: default_used_within_days(),
        }
    }
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
    /// Copies and sharing (`[distribution]`; none: the build region only).
    pub distribution: Distribution,
    /// How old images are retired (`[retention]`; none: the defaults).
    pub retention: Retention,
    /// Vulnerabilities a release accepts (`[security]`; none: none).
    pub security: Security,
}
