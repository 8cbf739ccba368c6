//! What each build step's Lambda takes: the state document as the build
//! state machine passes it. Steps with phases take an `action` whose variant
//! carries exactly what that phase needs, so an invalid combination (a poll
//! without the work it polls) cannot be represented: it is refused when the
//! event is parsed, naming the missing field.

use serde::{Deserialize, Serialize};

use super::state::{Builder, Distribution, Image, Provision, Source, TestRun, Trigger};

/// The phases of a step, as an event's `action` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, strum::Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
enum Phase {
    Launch,
    Start,
    Poll,
}

/// The refusal of an event whose `action` is not one of `allowed`, or
/// lacks `field`.
fn refused(phase: Phase, field: &str, allowed: &str) -> String {
    format!("action {phase}: {field}; the actions here are {allowed}")
}

/// Input of launch-builder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaunchRequest {
    /// The trigger fields.
    #[serde(flatten)]
    pub trigger: Trigger,
    /// The resolved source.
    pub source: Source,
}

/// Input of run-ssm-provision.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProvisionRequest {
    /// The trigger fields.
    #[serde(flatten)]
    pub trigger: Trigger,
    /// The builder to provision.
    pub builder: Builder,
    /// What to do.
    #[serde(flatten)]
    pub action: ProvisionAction,
}

/// What run-ssm-provision does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", try_from = "RawProvision")]
pub enum ProvisionAction {
    /// Send the step at `provision.step` (step 0 when there is no provisioning yet).
    Start {
        /// Provisioning so far.
        provision: Option<Provision>,
    },
    /// Report on the step running.
    Poll {
        /// Provisioning so far.
        provision: Provision,
    },
}

#[derive(Deserialize)]
struct RawProvision {
    action: Phase,
    #[serde(default)]
    provision: Option<Provision>,
}

impl TryFrom<RawProvision> for ProvisionAction {
    type Error = String;

    fn try_from(raw: RawProvision) -> Result<Self, String> {
        match (raw.action, raw.provision) {
            (Phase::Start, provision) => Ok(Self::Start { provision }),
            (Phase::Poll, Some(provision)) => Ok(Self::Poll { provision }),
            (Phase::Poll, None) => Err(refused(
                raw.action,
                "`provision` is required",
                "start, poll",
            )),
            (phase, _) => Err(refused(phase, "unknown", "start, poll")),
        }
    }
}

/// The phase of a step with only `start` and `poll`: `None` to start,
/// the work (the event's `field`) to poll.
fn start_or_poll<T>(phase: Phase, work: Option<T>, field: &str) -> Result<Option<T>, String> {
    match (phase, work) {
        (Phase::Start, _) => Ok(None),
        (Phase::Poll, Some(work)) => Ok(Some(work)),
        (Phase::Poll, None) => Err(refused(
            phase,
            &format!("`{field}` is required"),
            "start, poll",
        )),
        (phase, _) => Err(refused(phase, "unknown", "start, poll")),
    }
}

/// Input of create-image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRequest {
    /// The trigger fields.
    #[serde(flatten)]
    pub trigger: Trigger,
    /// The resolved source.
    pub source: Source,
    /// The builder to image.
    pub builder: Builder,
    /// What to do.
    #[serde(flatten)]
    pub action: ImageAction,
}

/// What create-image does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", try_from = "RawImage")]
pub enum ImageAction {
    /// Image the builder.
    Start,
    /// Report on the image started earlier.
    Poll {
        /// The image.
        image: Image,
    },
}

#[derive(Deserialize)]
struct RawImage {
    action: Phase,
    #[serde(default)]
    image: Option<Image>,
}

impl TryFrom<RawImage> for ImageAction {
    type Error = String;

    fn try_from(raw: RawImage) -> Result<Self, String> {
        Ok(match start_or_poll(raw.action, raw.image, "image")? {
            None => Self::Start,
            Some(image) => Self::Poll { image },
        })
    }
}

/// Input of copy-image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CopyRequest {
    /// The trigger fields.
    #[serde(flatten)]
    pub trigger: Trigger,
    /// The resolved source (its `copy_regions`).
    pub source: Source,
    /// The tested image.
    pub image: Image,
    /// What to do.
    #[serde(flatten)]
    pub action: CopyAction,
}

/// What copy-image does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", try_from = "RawCopy")]
pub enum CopyAction {
    /// Start the copies (or share at once when there is none to make).
    Start,
    /// Report on the copies started earlier; share once all are available.
    Poll {
        /// The copies.
        distribution: Distribution,
    },
}

#[derive(Deserialize)]
struct RawCopy {
    action: Phase,
    #[serde(default)]
    distribution: Option<Distribution>,
}

impl TryFrom<RawCopy> for CopyAction {
    type Error = String;

    fn try_from(raw: RawCopy) -> Result<Self, String> {
        Ok(
            match start_or_poll(raw.action, raw.distribution, "distribution")? {
                None => Self::Start,
                Some(distribution) => Self::Poll { distribution },
            },
        )
    }
}

/// Input of test-image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestRequest {
    /// The trigger fields.
    #[serde(flatten)]
    pub trigger: Trigger,
    /// The resolved source.
    pub source: Source,
    /// The image under test.
    pub image: Image,
    /// What to do.
    #[serde(flatten)]
    pub action: TestAction,
}

/// What test-image does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", try_from = "RawTest")]
pub enum TestAction {
    /// Launch the test instance from the image.
    Launch,
    /// Send the test script.
    Start {
        /// The test so far.
        test: TestRun,
    },
    /// Report on the test.
    Poll {
        /// The test so far.
        test: TestRun,
    },
}

#[derive(Deserialize)]
struct RawTest {
    action: Phase,
    #[serde(default)]
    test: Option<TestRun>,
}

impl TryFrom<RawTest> for TestAction {
    type Error = String;

    fn try_from(raw: RawTest) -> Result<Self, String> {
        match (raw.action, raw.test) {
            (Phase::Launch, _) => Ok(Self::Launch),
            (Phase::Start, Some(test)) => Ok(Self::Start { test }),
            (Phase::Poll, Some(test)) => Ok(Self::Poll { test }),
            (phase, None) => Err(refused(phase, "`test` is required", "launch, start, poll")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger() -> serde_json::Value {
        serde_json::json!({"recipe": "ubuntu-base", "build_id": "b1",
            "builder": {"builder_instance_id": "i-0123456789abcdef0", "instance_type": "t3.small"}})
    }

    #[test]
    fn a_poll_without_its_work_names_the_missing_field() {
        let mut event = trigger();
        event["action"] = "poll".into();
        let err = serde_json::from_value::<ProvisionRequest>(event.clone()).expect_err("refused");
        assert!(err.to_string().contains("`provision` is required"), "{err}");
        event["action"] = "launch".into();
        let err = serde_json::from_value::<ProvisionRequest>(event).expect_err("refused");
        assert!(err.to_string().contains("start, poll"), "{err}");
    }

    #[test]
    fn a_first_start_needs_no_provisioning_yet() {
        let mut event = trigger();
        event["action"] = "start".into();
        event["provision"] = serde_json::Value::Null;
        let request = serde_json::from_value::<ProvisionRequest>(event).expect("a request");
        assert!(matches!(
            request.action,
            ProvisionAction::Start { provision: None }
        ));
    }
}
