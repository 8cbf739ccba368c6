//! Kiln running on its own: what starts builds ([`trigger`]), and the
//! backstop that nothing a build launched outlives it ([`sweep`]). [`handle`]
//! is the `cleanup-build` Lambda. [`distribute`] brings a recipe's channels to
//! distribution regions added later (`kiln distribute`); [`restore`] brings
//! back an image retention retired (`kiln restore`).

pub mod distribute;
pub mod restore;
pub mod sweep;
pub mod trigger;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::aws::Context;
use crate::error::Result;
use crate::pipeline::cleanup;
use crate::pipeline::state::{Cleanup, Trigger};
use sweep::{ExecutionStatusChange, Sweep, SweptBuild};

/// The detail type of Step Functions' execution events.
pub const EXECUTION_STATUS_CHANGE: &str = "Step Functions Execution Status Change";

/// What `cleanup-build` is asked, told apart by the input's shape.
#[derive(Debug, Clone, PartialEq)]
pub enum CleanupRequest {
    /// The build state machine's catch-all (its trigger fields): its own
    /// failed build.
    FailedBuild(Trigger),
    /// An EventBridge `Step Functions Execution Status Change` event for a
    /// build that ended `ABORTED`, `TIMED_OUT` or `FAILED`.
    ExecutionEnded(ExecutionStatusChange),
    /// `{"action": "sweep", "dry_run"?}` (a schedule, or by hand).
    Sweep {
        /// Only report.
        dry_run: bool,
    },
}

/// A sweep request.
#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
enum Action {
    Sweep {
        #[serde(default)]
        dry_run: bool,
    },
}

/// An EventBridge event of the detail type checked before, as much of it as
/// a cleanup needs.
#[derive(Deserialize)]
struct Event {
    detail: ExecutionStatusChange,
}

impl<'de> Deserialize<'de> for CleanupRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        if let Some(detail_type) = value.get("detail-type") {
            if detail_type != EXECUTION_STATUS_CHANGE {
                return Err(D::Error::custom(format!(
                    "cleanup-build takes {EXECUTION_STATUS_CHANGE:?} events, not {detail_type}"
                )));
            }
            let event: Event = serde_json::from_value(value).map_err(D::Error::custom)?;
            Ok(Self::ExecutionEnded(event.detail))
        } else if value.get("action").is_some() {
            let Action::Sweep { dry_run } =
                serde_json::from_value(value).map_err(D::Error::custom)?;
            Ok(Self::Sweep { dry_run })
        } else {
            serde_json::from_value(value)
                .map(Self::FailedBuild)
                .map_err(D::Error::custom)
        }
    }
}

/// What `cleanup-build` answers, by request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum CleanupAnswer {
    /// What the cleanup of the failed build removed.
    FailedBuild(Cleanup),
    /// What the cleanup of the ended build removed.
    ExecutionEnded(SweptBuild),
    /// What the sweep removed.
    Sweep(Sweep),
}

/// The `cleanup-build` Lambda.
pub async fn handle(ctx: &Context, request: CleanupRequest) -> Result<CleanupAnswer> {
    Ok(match &request {
        CleanupRequest::FailedBuild(trigger) => {
            CleanupAnswer::FailedBuild(cleanup::failed_build(ctx, trigger).await?)
        }
        CleanupRequest::ExecutionEnded(change) => {
            CleanupAnswer::ExecutionEnded(sweep::execution_ended(ctx, change).await?)
        }
        CleanupRequest::Sweep { dry_run } => {
            CleanupAnswer::Sweep(sweep::sweep(ctx, *dry_run).await?)
        }
    })
}
