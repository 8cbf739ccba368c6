//! Step Functions executions: start one under a name (or find the one of
//! that name already started), list, describe and follow them. Builds and
//! releases are executions; the CLI is a client of the state machines, never
//! a second orchestrator.

use std::collections::HashMap;

use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent, HistoryEventType};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::sdk::{self, Answer};
use crate::error::{Error, Result};

/// An execution that was started, or found already started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The execution.
    pub arn: String,
    /// Its name.
    pub name: String,
    /// True when an execution of that name existed already.
    pub existing: bool,
}

/// Starts execution `name` of `state_machine` with `input`, or finds the one
/// of that name already started: a name is what makes two requests for the
/// same work one execution.
pub async fn start(
    sfn: &aws_sdk_sfn::Client,
    state_machine: &str,
    name: &str,
    input: &impl Serialize,
) -> Result<Started> {
    let input = serde_json::to_string(input).map_err(|err| Error::InvalidInput(err.to_string()))?;
    let arn = execution_arn(state_machine, name)?;
    let started = sfn
        .start_execution()
        .state_machine_arn(state_machine)
        .name(name)
        .input(input)
        .send()
        .await
        .or_missing("StartExecution", |err| {
            err.as_service_error()
                .is_some_and(|e| e.is_execution_already_exists())
        })?;
    Ok(Started {
        existing: started.is_none(),
        arn: started.map_or(arn, |output| output.execution_arn().to_owned()),
        name: name.to_owned(),
    })
}

/// The execution `name` of `state_machine` (a name, or an execution ARN as is).
pub fn arn_of(state_machine: &str, name: &str) -> Result<String> {
    if name.starts_with("arn:") {
        Ok(name.to_owned())
    } else {
        execution_arn(state_machine, name)
    }
}

/// `arn:aws:states:R:A:stateMachine:M` + `N` -> `arn:aws:states:R:A:execution:M:N`.
fn execution_arn(state_machine: &str, name: &str) -> Result<String> {
    state_machine
        .split_once(":stateMachine:")
        .map(|(prefix, machine)| format!("{prefix}:execution:{machine}:{name}"))
        .ok_or_else(|| Error::InvalidInput(format!("{state_machine} is not a state machine ARN")))
}

/// One execution, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Its name.
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

/// The newest executions of `state_machine` whose names start with
/// `prefix` (all when `None`), newest first, at most `max`.
pub async fn list(
    sfn: &aws_sdk_sfn::Client,
    state_machine: &str,
    prefix: Option<&str>,
    max: usize,
) -> Result<Vec<Summary>> {
    let pages = sfn
        .list_executions()
        .state_machine_arn(state_machine)
        .into_paginator()
        .items()
        .send();
    let mut found: Vec<Summary> = sdk::all(pages, "ListExecutions")
        .await?
        .into_iter()
        .filter(|item| prefix.is_none_or(|p| item.name().starts_with(p)))
        .map(|item| Summary {
            name: item.name().to_owned(),
            arn: item.execution_arn().to_owned(),
            status: item.status().as_str().to_owned(),
            started: rfc3339(item.start_date()),
            stopped: item.stop_date().map(rfc3339),
        })
        .collect();
    found.sort_by(|a, b| b.started.cmp(&a.started));
    found.truncate(max);
    Ok(found)
}

/// An execution running now, with the input it started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    /// Its name.
    pub name: String,
    /// The execution.
    pub arn: String,
    /// When it started (RFC 3339).
    pub started: String,
    /// Its input (a JSON document).
    pub input: Option<String>,
}

/// Every execution of `state_machine` running now, with its input.
pub async fn running(sfn: &aws_sdk_sfn::Client, state_machine: &str) -> Result<Vec<Running>> {
    let pages = sfn
        .list_executions()
        .state_machine_arn(state_machine)
        .status_filter(ExecutionStatus::Running)
        .into_paginator()
        .items()
        .send();
    let mut found = Vec::new();
    for item in sdk::all(pages, "ListExecutions").await? {
        let described = sfn
            .describe_execution()
            .execution_arn(item.execution_arn())
            .send()
            .await
            .or_aws("DescribeExecution")?;
        found.push(Running {
            name: item.name().to_owned(),
            arn: item.execution_arn().to_owned(),
            started: rfc3339(item.start_date()),
            input: described.input,
        });
    }
    Ok(found)
}

fn rfc3339(time: &aws_smithy_types::DateTime) -> String {
    time.fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
}

/// A state of an execution starting or ending, for a person watching it.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress<T> {
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
        /// The document it left, when it is one of `T`.
        output: Option<Box<T>>,
    },
}

/// How an execution ended, or stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended<T> {
    /// Running, or how it ended.
    pub status: ExecutionStatus,
    /// Its output, when it is one of `T` (a succeeded execution's).
    pub output: Option<T>,
    /// The error name (of a failed execution).
    pub error: Option<String>,
    /// The error's cause.
    pub cause: Option<String>,
}

/// Reports each task state of the execution to `progress` as it starts and
/// ends, until the execution ends, reading its history every `interval`.
pub async fn follow<T: DeserializeOwned>(
    sfn: &aws_sdk_sfn::Client,
    arn: &str,
    interval: std::time::Duration,
    mut progress: impl FnMut(Progress<T>),
) -> Result<Ended<T>> {
    let mut seen = 0_i64;
    let mut entered = HashMap::new();
    loop {
        let now = describe(sfn, arn).await?;
        let pages = sfn
            .get_execution_history()
            .execution_arn(arn)
            .into_paginator()
            .items()
            .send();
        for event in sdk::all(pages, "GetExecutionHistory").await? {
            if event.id() <= seen {
                continue;
            }
            seen = event.id();
            report(&event, &mut entered, &mut progress);
        }
        if now.status != ExecutionStatus::Running {
            return Ok(now);
        }
        tokio::time::sleep(interval).await;
    }
}

/// The status of execution `name` of `state_machine`, or `None` when no
/// such execution exists.
pub async fn status(
    sfn: &aws_sdk_sfn::Client,
    state_machine: &str,
    name: &str,
) -> Result<Option<ExecutionStatus>> {
    let described = sfn
        .describe_execution()
        .execution_arn(execution_arn(state_machine, name)?)
        .send()
        .await
        .or_missing("DescribeExecution", |err| {
            err.as_service_error()
                .is_some_and(|e| e.is_execution_does_not_exist())
        })?;
    Ok(described.map(|d| d.status().clone()))
}

/// How the execution stands now (running while it runs).
pub async fn describe<T: DeserializeOwned>(
    sfn: &aws_sdk_sfn::Client,
    arn: &str,
) -> Result<Ended<T>> {
    let described = sfn
        .describe_execution()
        .execution_arn(arn)
        .send()
        .await
        .or_missing("DescribeExecution", |err| {
            err.as_service_error()
                .is_some_and(|e| e.is_execution_does_not_exist())
        })?
        .ok_or_else(|| Error::InvalidInput(format!("no execution {arn}")))?;
    Ok(Ended {
        status: described.status().clone(),
        output: described
            .output()
            .and_then(|o| serde_json::from_str(o).ok()),
        error: described.error().map(str::to_owned),
        cause: described.cause().map(str::to_owned),
    })
}

fn report<T: DeserializeOwned>(
    event: &HistoryEvent,
    entered: &mut HashMap<String, f64>,
    progress: &mut impl FnMut(Progress<T>),
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
