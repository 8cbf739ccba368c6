//! Start and follow builds: executions of the build state machine. The CLI is
//! a client of the state machine, never a second orchestrator.
//!
//! A build's execution is named from the recipe and the fingerprint, so two
//! triggers for the same change start one build: the second finds the first.

use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent, HistoryEventType};

use crate::error::{Error, Result};
use crate::recipe::Recipe;
use crate::state::{BuildId, BuildInput, BuildState, Source};

/// The execution (build) name for building `recipe` from `source`. A forced
/// build gets its own name, since its inputs are the same as the last build's.
pub fn name(recipe: &Recipe, source: &Source, force: bool) -> String {
    let name = format!("{}-{}", recipe.name, source.fingerprint.short());
    if force {
        format!("{name}-forced-{}", source.started_at.as_second())
    } else {
        name
    }
}

/// A build that was started, or found already started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The execution.
    pub arn: String,
    /// Its name, the build id.
    pub name: String,
    /// True when the build already existed (same recipe and inputs).
    pub existing: bool,
}

/// Starts build `name` with `input` on `state_machine`, or finds the build
/// of that name already started (the name is what makes two triggers for
/// the same change one build).
pub async fn start(
    sfn: &aws_sdk_sfn::Client,
    state_machine: &str,
    name: &str,
    input: &BuildInput,
) -> Result<Started> {
    let name = name.to_owned();
    let input = serde_json::to_string(input).map_err(|err| Error::InvalidInput(err.to_string()))?;
    let arn = execution_arn(state_machine, &name)?;
    let started = sfn
        .start_execution()
        .state_machine_arn(state_machine)
        .name(&name)
        .input(input)
        .send()
        .await;
    match started {
        Ok(output) => Ok(Started {
            arn: output.execution_arn().to_owned(),
            name,
            existing: false,
        }),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_execution_already_exists()) =>
        {
            Ok(Started {
                arn,
                name,
                existing: true,
            })
        }
        Err(err) => Err(Error::aws("StartExecution", err)),
    }
}

/// The execution of `build` (a build name, or an execution ARN as is).
pub fn arn_of(state_machine: &str, build: &str) -> Result<String> {
    if build.starts_with("arn:") {
        Ok(build.to_owned())
    } else {
        execution_arn(state_machine, build)
    }
}

/// `arn:aws:states:R:A:stateMachine:M` + `N` -> `arn:aws:states:R:A:execution:M:N`.
fn execution_arn(state_machine: &str, name: &str) -> Result<String> {
    state_machine
        .split_once(":stateMachine:")
        .map(|(prefix, machine)| format!("{prefix}:execution:{machine}:{name}"))
        .ok_or_else(|| Error::InvalidInput(format!("{state_machine} is not a state machine ARN")))
}

/// One build, as listed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// The build's name.
    pub name: String,
    /// The execution.
    pub arn: String,
    /// RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED.
    pub status: String,
    /// When it started (RFC 3339).
    pub started: String,
    /// When it ended, if it did.
    pub stopped: Option<String>,
}

/// The newest builds on `state_machine` (of `recipe` when given), newest first.
pub async fn list(
    sfn: &aws_sdk_sfn::Client,
    state_machine: &str,
    recipe: Option<&str>,
    max: usize,
) -> Result<Vec<Summary>> {
    let prefix = recipe.map(|recipe| format!("{recipe}-"));
    let mut pages = sfn
        .list_executions()
        .state_machine_arn(state_machine)
        .into_paginator()
        .items()
        .send();
    let mut builds = Vec::new();
    while let Some(item) = pages.next().await {
        let item = item.map_err(|err| Error::aws("ListExecutions", err))?;
        if prefix
            .as_ref()
            .is_some_and(|p| !item.name().starts_with(p.as_str()))
        {
            continue;
        }
        builds.push(Summary {
            name: item.name().to_owned(),
            arn: item.execution_arn().to_owned(),
            status: item.status().as_str().to_owned(),
            started: rfc3339(item.start_date()),
            stopped: item.stop_date().map(rfc3339),
        });
    }
    builds.sort_by(|a, b| b.started.cmp(&a.started));
    builds.truncate(max);
    Ok(builds)
}

fn rfc3339(time: &aws_smithy_types::DateTime) -> String {
    time.fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
}

/// A step of a build starting or ending, for a person watching it.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// A step started.
    Entered {
        /// The state's name.
        state: String,
    },
    /// A step ended.
    Exited {
        /// The state's name.
        state: String,
        /// How long it took, in seconds.
        seconds: f64,
        /// The state document it left, when it is one.
        output: Option<Box<BuildState>>,
    },
}

/// How a build ended, or stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    /// SUCCEEDED, FAILED, TIMED_OUT or ABORTED.
    pub status: String,
    /// The final state document (for a succeeded build).
    pub output: Option<BuildState>,
    /// The error name (for a failed build).
    pub error: Option<String>,
    /// The error's cause.
    pub cause: Option<String>,
}

/// Reports each new step of the build to `progress` as it happens, until the
/// build ends, polling the execution history every `interval`.
pub async fn follow(
    sfn: &aws_sdk_sfn::Client,
    arn: &str,
    interval: std::time::Duration,
    mut progress: impl FnMut(Progress),
) -> Result<Ended> {
    let mut seen = 0_i64;
    let mut entered = std::collections::HashMap::new();
    loop {
        let now = describe(sfn, arn).await?;
        let mut pages = sfn
            .get_execution_history()
            .execution_arn(arn)
            .into_paginator()
            .items()
            .send();
        while let Some(event) = pages.next().await {
            let event = event.map_err(|err| Error::aws("GetExecutionHistory", err))?;
            if event.id() <= seen {
                continue;
            }
            seen = event.id();
            report(&event, &mut entered, &mut progress);
        }
        if now.status != ExecutionStatus::Running.as_str() {
            return Ok(now);
        }
        tokio::time::sleep(interval).await;
    }
}

/// The status of build `build` on `state_machine` (RUNNING, SUCCEEDED,
/// FAILED, TIMED_OUT, ABORTED), or `None` when no such execution exists.
pub async fn status(
    sfn: &aws_sdk_sfn::Client,
    state_machine: &str,
    build: &BuildId,
) -> Result<Option<String>> {
    let arn = execution_arn(state_machine, build.as_str())?;
    match sfn.describe_execution().execution_arn(arn).send().await {
        Ok(described) => Ok(Some(described.status().as_str().to_owned())),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_execution_does_not_exist()) =>
        {
            Ok(None)
        }
        Err(err) => Err(Error::aws("DescribeExecution", err)),
    }
}

/// How the build stands now (`status` RUNNING while it runs).
pub async fn describe(sfn: &aws_sdk_sfn::Client, arn: &str) -> Result<Ended> {
    let described = sfn
        .describe_execution()
        .execution_arn(arn)
        .send()
        .await
        .map_err(|err| {
            if err
                .as_service_error()
                .is_some_and(|e| e.is_execution_does_not_exist())
            {
                Error::InvalidInput(format!("no build {arn}"))
            } else {
                Error::aws("DescribeExecution", err)
            }
        })?;
    Ok(Ended {
        status: described.status().as_str().to_owned(),
        output: described
            .output()
            .and_then(|o| serde_json::from_str(o).ok()),
        error: described.error().map(str::to_owned),
        cause: described.cause().map(str::to_owned),
    })
}

fn report(
    event: &HistoryEvent,
    entered: &mut std::collections::HashMap<String, f64>,
    progress: &mut impl FnMut(Progress),
) {
    // Task states are the steps; waits and choices are the machine's own.
    if !matches!(
        event.r#type(),
        HistoryEventType::TaskStateEntered | HistoryEventType::TaskStateExited
    ) {
        return;
    }
    let at = event.timestamp().as_secs_f64();
    if let Some(details) = event.state_entered_event_details() {
        entered.insert(details.name().to_owned(), at);
        progress(Progress::Entered {
            state: details.name().to_owned(),
        });
    } else if let Some(details) = event.state_exited_event_details() {
        let since = entered.remove(details.name()).unwrap_or(at);
        progress(Progress::Exited {
            state: details.name().to_owned(),
            seconds: at - since,
            output: details.output().and_then(|o| serde_json::from_str(o).ok()),
        });
    }
}
