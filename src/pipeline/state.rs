//! The JSON document that flows through the build state machine.
//!
//! The trigger fields sit at the top level; each step adds its result under
//! its own key (`source`, `builder`, `provision`, `image`), so no step
//! overwrites another's output. Each Lambda reads its request type
//! ([`super::requests`]), which ignores fields it does not need.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{AmiId, BuildId, CommandId, Fingerprint, InstanceId, RecipeName};
use crate::recipe::{NameInputs, Recipe};
use crate::security::remediation::Exposure;

/// Why a build was started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, strum::Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Reason {
    /// The nightly schedule.
    Schedule,
    /// A new source image was released.
    Release,
    /// A security finding or advisory.
    Security,
    /// Started by a person.
    #[default]
    Manual,
}

/// The input a build execution starts with. Only `recipe` is required: the
/// state machine fills in the others with [`Trigger`]'s defaults (a test
/// checks they agree).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildInput {
    /// The recipe to build.
    pub recipe: RecipeName,
    /// Why the build runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Build even when an image with the same fingerprint exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
    /// Seconds before the first poll of each piece of work.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_seconds: Option<u32>,
    /// Why the build is on the security fast track, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fast_track: Option<String>,
    /// The vulnerabilities a security build remedies: its release ends by
    /// watching them leave the fleet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposure: Option<Exposure>,
}

impl BuildInput {
    /// The input of a build of `recipe` for `reason`.
    pub fn new(recipe: &Recipe, reason: Reason, force: bool, wait_seconds: Option<u32>) -> Self {
        Self {
            recipe: recipe.name.clone(),
            reason: Some(reason),
            force: Some(force),
            wait_seconds,
            fast_track: None,
            exposure: None,
        }
    }
}

/// What starts a build: the top level of the state document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    /// The recipe to build (a directory under the recipe root).
    pub recipe: RecipeName,
    /// This build's id; every resource the build creates is tagged with it.
    pub build_id: BuildId,
    /// Why the build runs.
    #[serde(default)]
    pub reason: Reason,
    /// Build even when an image with the same fingerprint exists.
    #[serde(default)]
    pub force: bool,
    /// Seconds to wait before the first poll of each piece of work; later
    /// polls wait longer as the work runs on (see [`Polling`]).
    #[serde(default = "default_wait_seconds")]
    pub wait_seconds: u32,
    /// When the build started (the execution's start time), for durations.
    #[serde(default)]
    pub started_at: Option<jiff::Timestamp>,
    /// Why the build is on the security fast track (a finding whose exploit
    /// is available, or above the recipe's `fast_track_cvss`): its release
    /// soaks each stage's `security_soak_hours`. Always written (null when
    /// not), since the pipeline hands it to the release.
    #[serde(default)]
    pub fast_track: Option<String>,
    /// What a security build remedies (always written, null when nothing),
    /// handed to the release like `fast_track`.
    #[serde(default)]
    pub exposure: Option<Exposure>,
}

fn default_wait_seconds() -> u32 {
    30
}

/// Longest wait between two polls of the same work.
pub const MAX_WAIT_SECONDS: u32 = 300;

impl Trigger {
    /// Whole seconds since the build started, when the start is known.
    pub fn elapsed_seconds(&self) -> Option<u64> {
        let started = self.started_at?;
        let elapsed = jiff::Timestamp::now().duration_since(started);
        Some(u64::try_from(elapsed.as_secs()).unwrap_or(0))
    }

    /// Pacing for work that starts now.
    pub fn begin(&self) -> Polling {
        Polling {
            since: jiff::Timestamp::now(),
            wait_seconds: self.wait_seconds,
        }
    }

    /// Pacing for the next poll of work begun at `polling.since`: the
    /// trigger's interval while the work is young, then a tenth of the time
    /// it has run so far, at most [`MAX_WAIT_SECONDS`]. So the number of polls
    /// grows with the logarithm of the time and then linearly at one per five
    /// minutes: a 48 h step costs a few hundred polls, far below Step
    /// Functions' 25,000-event execution history.
    pub fn pace(&self, polling: &Polling) -> Polling {
        self.pace_at(polling, jiff::Timestamp::now())
    }

    /// [`Trigger::pace`] as it would be at `now`.
    pub fn pace_at(&self, polling: &Polling, now: jiff::Timestamp) -> Polling {
        let running = now.duration_since(polling.since);
        let tenth = u32::try_from(running.as_secs().max(0) / 10).unwrap_or(MAX_WAIT_SECONDS);
        Polling {
            since: polling.since,
            wait_seconds: tenth.clamp(self.wait_seconds, MAX_WAIT_SECONDS.max(self.wait_seconds)),
        }
    }
}

/// When a polled piece of work (a step, the image, the test) began, and how
/// long the state machine waits before polling it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Polling {
    /// When the work began.
    pub since: jiff::Timestamp,
    /// Seconds the next Wait state waits.
    pub wait_seconds: u32,
}

impl Polling {
    /// Whether the work has run longer than `timeout_seconds` by now.
    pub fn overdue(&self, timeout_seconds: u32) -> bool {
        jiff::Timestamp::now().duration_since(self.since).as_secs() > i64::from(timeout_seconds)
    }
}

/// The output of resolve-source, stored at `$.source`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// The source image the build starts from.
    pub source_ami: AmiId,
    /// The source image's name.
    pub source_name: String,
    /// The release serial in the source image's name (Canonical's `20241109.1`), if any.
    pub serial: Option<String>,
    /// The source image's root device name, for the builder's block device mapping.
    pub root_device_name: String,
    /// Hash of the source image id, the recipe file and every script.
    pub fingerprint: Fingerprint,
    /// True when an image with this fingerprint exists and the build is not forced.
    pub skip: bool,
    /// The existing image when `skip` is true.
    pub existing_image_id: Option<AmiId>,
    /// When the build started; names and durations derive from it so retries agree.
    pub started_at: jiff::Timestamp,
    /// Seconds since the build started when the source was resolved (the
    /// whole build's duration when it is skipped).
    pub duration_seconds: Option<u64>,
    /// The regions the tested image is copied to: the recipe's
    /// `distribution.regions`, as resolve-source checked them against the
    /// account's regions.
    #[serde(default)]
    pub copy_regions: Vec<String>,
    /// Whether the tested image is copied or shared at all (the build's
    /// distribution steps run).
    #[serde(default)]
    pub distributes: bool,
}

impl Source {
    /// What the image name of build `build_id` from this source is made of.
    pub fn name_inputs<'a>(&'a self, build_id: &'a BuildId) -> NameInputs<'a> {
        NameInputs {
            build_id,
            started_at: self.started_at,
            fingerprint: &self.fingerprint,
            source_ami: &self.source_ami,
        }
    }
}

/// The output of launch-builder, stored at `$.builder`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Builder {
    /// The builder instance.
    pub builder_instance_id: InstanceId,
    /// The instance type it got.
    pub instance_type: String,
}

/// Where provisioning stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum StepStatus {
    /// The step has not been sent yet.
    Pending,
    /// The step's command is running.
    InProgress,
    /// Every step has succeeded.
    Done,
}

/// The output of run-ssm-provision, stored at `$.provision`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provision {
    /// Index of the current step in the recipe's `steps`.
    pub step: usize,
    /// How many steps the recipe has.
    pub steps: usize,
    /// The current step's name.
    pub step_name: String,
    /// The command running the current step, once sent.
    pub command_id: Option<CommandId>,
    /// Where the current step stands.
    pub status: StepStatus,
    /// When the current step was sent and when to poll it next.
    #[serde(flatten)]
    pub polling: Polling,
}

/// Where the new image stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ImageState {
    /// EC2 is still making the image.
    Pending,
    /// The image is available, verified and tagged; the builder is terminated.
    Available,
}

/// The output of create-image, stored at `$.image`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// The new image.
    pub image_id: AmiId,
    /// Its name.
    pub image_name: String,
    /// Where it stands.
    pub state: ImageState,
    /// When the image was requested and when to poll it next.
    #[serde(flatten)]
    pub polling: Polling,
}

impl Image {
    /// Refuses work that needs the image available (`what` it is for) while
    /// it is not.
    pub fn require_available(&self, what: &str) -> Result<()> {
        if self.state == ImageState::Available {
            return Ok(());
        }
        Err(Error::InvalidInput(format!(
            "image {} is {}, not available: nothing to {what} yet",
            self.image_id, self.state
        )))
    }
}

/// One distribution region's copy of the build's image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionCopy {
    /// The region the copy is in.
    pub region: String,
    /// The copy.
    pub image_id: AmiId,
    /// Where it stands.
    pub state: ImageState,
}

/// The output of copy-image, stored at `$.distribution`: the image's copies
/// and who may launch them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    /// One copy per distribution region, in the recipe's order.
    pub copies: Vec<RegionCopy>,
    /// Pending until every copy is available and the image and its copies
    /// are shared.
    pub state: ImageState,
    /// The accounts and organizational units given launch permission on
    /// the image and every copy (once available).
    pub shared_with: Vec<String>,
    /// When the copies were started and when to poll them next.
    #[serde(flatten)]
    pub polling: Polling,
}

/// Where the image test stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum TestStatus {
    /// The test instance is launched; the script is not sent yet.
    Launched,
    /// The test script is running.
    InProgress,
    /// The test passed: the image is tagged `tested`, the instance terminated.
    Passed,
}

/// The image test, stored at `$.test`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestRun {
    /// The instance running the test.
    pub test_instance_id: InstanceId,
    /// Its instance type.
    pub instance_type: String,
    /// The command listing the image's packages (its SBOM's source), once
    /// sent: before the test script, when kiln has an output bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages_command_id: Option<CommandId>,
    /// The image's SBOM, once written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom: Option<Sbom>,
    /// The command running the test script, once sent.
    pub command_id: Option<CommandId>,
    /// Where the test stands.
    pub status: TestStatus,
    /// When the test instance was launched and when to poll the test next.
    #[serde(flatten)]
    pub polling: Polling,
    /// Seconds since the build started, once the test passed.
    pub duration_seconds: Option<u64>,
}

/// The image's SBOM (`kiln::security::sbom`), as the test step wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sbom {
    /// Where: `s3://<output bucket>/kiln-sbom/<image id>/sbom.cdx.json`.
    pub location: String,
    /// The SHA-256 of its bytes (also the image's `kiln:sbom-sha256` tag).
    pub sha256: String,
    /// The installed packages it lists.
    pub packages: usize,
    /// Where Inspector's findings in it are kept:
    /// `s3://<output bucket>/kiln-sbom/<image id>/findings.json`.
    pub findings: String,
    /// The CRITICAL findings (also in the image's `kiln:findings` tag).
    pub critical: usize,
    /// The HIGH findings.
    pub high: usize,
}

/// What a cleanup did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cleanup {
    /// Instances terminated (builders and test instances).
    pub terminated: Vec<InstanceId>,
    /// The build's images, deregistered.
    pub deregistered: Vec<AmiId>,
    /// Their snapshots, deleted.
    pub deleted_snapshots: Vec<String>,
    /// The build's images kept for inspection, tagged `kiln:stage=failed`.
    pub kept_failed: Vec<AmiId>,
    /// Seconds since the build started, when the start is known.
    pub duration_seconds: Option<u64>,
}

impl Cleanup {
    /// Adds what `other` (another region's cleanup) removed.
    pub fn absorb(&mut self, other: Self) {
        self.terminated.extend(other.terminated);
        self.deregistered.extend(other.deregistered);
        self.deleted_snapshots.extend(other.deleted_snapshots);
        self.kept_failed.extend(other.kept_failed);
    }
}

/// An error a `Catch` caught, as Step Functions records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaughtError {
    /// The error name: a kiln error's stable name, or a `States.*` error.
    #[serde(rename = "Error")]
    pub error: String,
    /// The error message.
    #[serde(rename = "Cause")]
    pub cause: String,
}

/// The whole state document between two states of the build state machine:
/// the trigger, then each step's result under its own key. The machine's
/// `$.paths` all name fields of this type (a test checks it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildState {
    /// The trigger fields.
    #[serde(flatten)]
    pub trigger: Trigger,
    /// Set by resolve-source.
    pub source: Option<Source>,
    /// Set by launch-builder.
    pub builder: Option<Builder>,
    /// Set by run-ssm-provision.
    pub provision: Option<Provision>,
    /// Set by create-image.
    pub image: Option<Image>,
    /// Set by test-image.
    pub test: Option<TestRun>,
    /// Set by copy-image.
    pub distribution: Option<Distribution>,
    /// The error that sent the build to cleanup.
    pub error: Option<CaughtError>,
    /// Set by cleanup-build.
    pub cleanup: Option<Cleanup>,
    /// The error of a cleanup that failed itself.
    pub cleanup_error: Option<CaughtError>,
    /// The error of an event that could not be published.
    pub notify_error: Option<CaughtError>,
    /// The error of a release that could not be started.
    pub release_error: Option<CaughtError>,
}

/// Returns the value of a field the work requires, or a clear error.
pub(crate) fn required<T>(value: Option<T>, field: &str) -> Result<T> {
    value.ok_or_else(|| Error::InvalidInput(format!("`{field}` is required for this action")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal_trigger() -> Trigger {
        serde_json::from_str(r#"{"recipe":"ubuntu-base","build_id":"b1"}"#).expect("parses")
    }

    #[test]
    fn trigger_defaults_reason_and_force() {
        let trigger = minimal_trigger();
        assert_eq!(trigger.reason, Reason::Manual);
        assert!(!trigger.force);
        assert_eq!(trigger.wait_seconds, 30);
        assert_eq!(trigger.elapsed_seconds(), None);
    }

    #[test]
    fn polls_of_the_longest_step_stay_far_below_the_history_limit() {
        // Step Functions keeps at most 25,000 events per execution; one
        // Wait/Task/Choice round adds 9 (entered/exited of each state, the
        // task's scheduled/started/succeeded).
        const EVENTS_PER_POLL: u64 = 9;
        let longest = crate::recipe::MAX_TIMEOUT_SECONDS;
        for base in [0, 1, 30, 60] {
            let trigger = Trigger {
                wait_seconds: base,
                ..minimal_trigger()
            };
            let start = jiff::Timestamp::UNIX_EPOCH;
            let mut polling = Polling {
                since: start,
                wait_seconds: base,
            };
            let (mut now, mut polls) = (start, 0_u64);
            while now.duration_since(start).as_secs() < i64::from(longest) {
                now += jiff::SignedDuration::from_secs(i64::from(polling.wait_seconds.max(1)));
                polling = trigger.pace_at(&polling, now);
                polls += 1;
                assert!(polling.wait_seconds <= MAX_WAIT_SECONDS.max(base));
            }
            assert!(
                polls * EVENTS_PER_POLL < 8_000,
                "base {base}s: {polls} polls for a {longest}s step"
            );
        }
    }

    #[test]
    fn polls_start_at_the_interval_and_slow_down() {
        let trigger = minimal_trigger();
        let since = jiff::Timestamp::UNIX_EPOCH;
        let polling = Polling {
            since,
            wait_seconds: 30,
        };
        let after = |secs| trigger.pace_at(&polling, since + jiff::SignedDuration::from_secs(secs));
        assert_eq!(after(60).wait_seconds, 30);
        assert_eq!(after(1_200).wait_seconds, 120);
        assert_eq!(after(86_400).wait_seconds, MAX_WAIT_SECONDS);
    }

    #[test]
    fn a_bad_id_in_json_is_refused() {
        let err = serde_json::from_str::<Trigger>(r#"{"recipe":"../x","build_id":"b1"}"#)
            .expect_err("refused");
        assert!(err.to_string().contains("recipe name"), "{err}");
    }
}
