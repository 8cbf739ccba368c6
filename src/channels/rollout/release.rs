//! A release's state: what the release state machine carries from one step
//! to the next, and how a step ends.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::groups::Refresh;
use super::rivals::Winner;
use crate::channels::pointers::Written;
use crate::ids::{AmiId, Channel, RecipeName};
use crate::security::gate::Summary;
use crate::security::remediation::{Exposure, Remediation};

/// Who moves pointers in a release.
pub const ACTOR: &str = "kiln release";
/// Seconds, at most, between a pointer write and the read that confirms
/// it: SSM validates an image value in seconds.
pub const CONFIRM_SECONDS: u32 = 5;
/// Most syncs after a gate's rollback before the release ends with
/// pointers of other regions or accounts still behind (named in its
/// message): SSM validates a write in seconds.
pub const MAX_SETTLE_ROUNDS: u32 = 12;
/// Seconds between two checks of a release, unless its input says.
pub const DEFAULT_CHECK_SECONDS: u32 = 300;
/// Most checks of one soak: a standard execution's history holds at most
/// 25,000 events (a check costs about eight), so a long soak is checked less
/// often than the release's interval.
pub const MAX_SOAK_CHECKS: u32 = 200;

/// The state of a release: what the release state machine carries from one
/// [`super::advance`] to the next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// The recipe.
    pub recipe: RecipeName,
    /// The image released.
    pub image_id: AmiId,
    /// When the release started: the first stage's soak counts from it.
    pub started_at: Timestamp,
    /// Why it was started over a release of a newer image, when it was
    /// (`kiln rollout start --force`): see [`super::rivals`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forced: Option<String>,
    /// Why the image is on the security fast track (from its build): each
    /// stage soaks its `security_soak_hours`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast_track: Option<String>,
    /// The release state machine running it, whose other executions it
    /// yields to (none: it yields to nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_machine: Option<String>,
    /// Seconds between two checks (alarms, soak, refreshes).
    #[serde(default = "default_check_seconds")]
    pub check_seconds: u32,
    /// When the gates were last checked: the next check reads the alarms'
    /// history from then (from the start, before the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gates_checked_at: Option<Timestamp>,
    /// The stage of the policy in progress (0-based).
    #[serde(default)]
    pub stage: usize,
    /// Where the stage is.
    #[serde(default)]
    pub phase: Phase,
    /// How the release stands.
    #[serde(default)]
    pub status: Status,
    /// Seconds to wait before the next call, while [`Status::Waiting`].
    #[serde(default)]
    pub wait_seconds: u32,
    /// What is happening, in words.
    #[serde(default)]
    pub message: String,
    /// Why the release stopped, when it stopped short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<Stopped>,
    /// The refreshes that succeeded, per channel: what a rollback of the
    /// channel sends back to the version each group used before.
    #[serde(default)]
    pub rolled: BTreeMap<Channel, Vec<Refresh>>,
    /// What the scan before each channel's move found
    /// ([`crate::security::gate`]); the release's events carry it.
    #[serde(default)]
    pub security: BTreeMap<Channel, Summary>,
    /// What the release remedies, when its build was started by a security
    /// finding (from the build; null when not).
    #[serde(default)]
    pub exposure: Option<Exposure>,
    /// The remediation watch, once the release is done and remedies
    /// something: the release state machine runs it after its success event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation: Option<Remediation>,
}

fn default_check_seconds() -> u32 {
    DEFAULT_CHECK_SECONDS
}

impl Release {
    /// A release of `image` starting now.
    pub fn new(recipe: RecipeName, image_id: AmiId, check_seconds: u32) -> Self {
        Self {
            recipe,
            image_id,
            started_at: Timestamp::now(),
            forced: None,
            fast_track: None,
            state_machine: None,
            check_seconds,
            gates_checked_at: None,
            stage: 0,
            phase: Phase::Gate,
            status: Status::Waiting,
            wait_seconds: 0,
            message: String::new(),
            stopped: None,
            rolled: BTreeMap::new(),
            security: BTreeMap::new(),
            exposure: None,
            remediation: None,
        }
    }
}

/// Where a stage is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Phase {
    /// Soaking before the stage's channel is promoted, gates watched.
    #[default]
    Gate,
    /// The stage's channel was written to the image; SSM validates it
    /// before the rollout starts.
    Promoting {
        /// The write.
        written: Written,
    },
    /// A gate fired: the channel was written back (its groups were sent
    /// back already); SSM validates it, then the release ends.
    RollingBack {
        /// The write.
        written: Written,
        /// How the release stopped.
        stopped: Stopped,
    },
    /// A gate's rollback was accepted: the channel's pointers in other
    /// regions and accounts are synced again until they all follow it (at
    /// most `MAX_SETTLE_ROUNDS` times), then the release ends.
    Settling {
        /// How the release stopped.
        stopped: Stopped,
        /// What the rollback did, in words.
        moved: String,
        /// Syncs made so far.
        rounds: u32,
    },
    /// The stage's channel names the image; its groups roll wave by wave,
    /// region by region.
    Rollout {
        /// The region rolling (none: the build region).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        region: Option<String>,
        /// The wave in progress in that region, or the next to start.
        wave: u32,
        /// The refreshes of the wave in progress (none: it is not started).
        #[serde(default)]
        refreshes: Vec<Refresh>,
    },
}

/// How a release stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, strum::Display)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Status {
    /// Call again after `wait_seconds`.
    #[default]
    Waiting,
    /// Every stage's channel names the image and its groups run it.
    Done,
    /// A gate fired: a channel's pointer went back; no further stage or wave.
    RolledBack,
    /// Stopped without moving a pointer back (the world changed under the
    /// release, or a group cannot be rolled); see the message.
    Halted,
    /// Stopped where it stood, undoing nothing, for a release that wins over
    /// it ([`Stopped::superseded_by`]).
    Superseded,
}

/// Why a release stopped short.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stopped {
    /// The channel concerned.
    pub channel: Channel,
    /// Why, as recorded in the channel's history when its pointer moved.
    pub reason: String,
    /// The image the channel names now, when its pointer went back.
    #[serde(default)]
    pub rolled_back_to: Option<AmiId>,
    /// Refreshes of the wave in progress, as they stood (those still running
    /// were rolled back).
    #[serde(default)]
    pub refreshes: Vec<Refresh>,
    /// Refreshes started to send the channel's groups of earlier waves back
    /// to the version they used before (when its pointer went back).
    #[serde(default)]
    pub reverted: Vec<Refresh>,
    /// The release that won over this one, when it was superseded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<Winner>,
}

/// What a step of [`super::advance`] decided.
pub(super) enum Step {
    /// Go on with the next move now.
    Continue,
    /// Call again in this many seconds.
    Wait(u32, String),
    /// The release ended.
    End(Status, String, Option<Stopped>),
}
