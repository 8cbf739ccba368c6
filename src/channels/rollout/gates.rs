//! What holds a release back: the stage's CloudWatch alarms, a hold a
//! person put on the recipe (`kiln rollout pause`), and a vulnerability the
//! image would bring to a channel (`vulnerabilities`).

use aws_sdk_cloudwatch::types::{AlarmType, HistoryItemType, ScanBy, StateValue};
use aws_sdk_ssm::types::ParameterType;
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::release::Release;
use crate::aws::Context;
use crate::aws::sdk::{self, Answer};
use crate::channels::pointers::POINTER_ROOT;
use crate::error::{Error, Result};
use crate::ids::{AmiId, Channel, RecipeName};
use crate::security;

/// Scans the release's image and `channel`'s `current` image again before
/// the channel moves ([`security::gate`]), when kiln keeps SBOMs (an output
/// bucket): the verdict is kept on the release; a regression, or an image
/// without an SBOM to scan, is why the release must stop.
pub(super) async fn vulnerabilities(
    ctx: &Context,
    release: &mut Release,
    channel: &Channel,
    current: Option<&AmiId>,
) -> Result<Option<String>> {
    let Some(bucket) = ctx.settings.output_bucket.as_deref() else {
        return Ok(None);
    };
    let recipe = ctx.recipe(&release.recipe)?;
    let accept = &recipe.file.security.accept;
    let stops = format!("the release stops before {channel}");
    match security::gate::check(ctx, bucket, &release.image_id, current, accept).await? {
        Err(why) => Ok(Some(format!(
            "{why}: kiln cannot scan it for vulnerabilities; {stops}"
        ))),
        Ok(verdict) => {
            release.security.insert(channel.clone(), verdict.summary());
            Ok(verdict
                .regression()
                .map(|regression| format!("{regression}; {stops}")))
        }
    }
}

/// The alarms of a gate as CloudWatch reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Alarms {
    /// Alarms in ALARM now, or at a moment of the window checked (those
    /// with the time they went into ALARM).
    pub firing: Vec<String>,
    /// Alarms that do not exist: they cannot vouch for anything.
    pub missing: Vec<String>,
}

/// Where `names` stand (metric and composite alarms alike): in ALARM now,
/// or at any moment from `since` to now, as their history records it
/// (`DescribeAlarmHistory`), so an alarm that fired and cleared between
/// two checks still stops a release. An alarm with too little data does
/// not fire.
pub async fn alarms(ctx: &Context, names: &[String], since: Timestamp) -> Result<Alarms> {
    if names.is_empty() {
        return Ok(Alarms::default());
    }
    let until = Timestamp::now();
    let mut states = std::collections::BTreeMap::new();
    let pages = ctx
        .cloudwatch()
        .describe_alarms()
        .set_alarm_names(Some(names.to_vec()))
        .alarm_types(AlarmType::MetricAlarm)
        .alarm_types(AlarmType::CompositeAlarm)
        .into_paginator()
        .send();
    for page in sdk::all(pages, "DescribeAlarms").await? {
        let metric = page
            .metric_alarms()
            .iter()
            .map(|a| (a.alarm_name(), a.state_value()));
        let composite = page
            .composite_alarms()
            .iter()
            .map(|a| (a.alarm_name(), a.state_value()));
        for (name, state) in metric.chain(composite) {
            if let Some(name) = name {
                states.insert(name.to_owned(), state.cloned());
            }
        }
    }
    let mut found = Alarms::default();
    for name in names {
        match states.get(name) {
            None => found.missing.push(name.clone()),
            Some(Some(StateValue::Alarm)) => found.firing.push(name.clone()),
            Some(_) => {
                if let Some(at) = went_into_alarm(ctx, name, since, until).await? {
                    found
                        .firing
                        .push(format!("{name} (in ALARM at {at}, not any more)"));
                }
            }
        }
    }
    Ok(found)
}

/// When alarm `name` first went into ALARM between `since` and `until`, by
/// its state-change history.
async fn went_into_alarm(
    ctx: &Context,
    name: &str,
    since: Timestamp,
    until: Timestamp,
) -> Result<Option<String>> {
    let date = |at: Timestamp| DateTime::from_millis(at.as_millisecond());
    let pages = ctx
        .cloudwatch()
        .describe_alarm_history()
        .alarm_name(name)
        .alarm_types(AlarmType::MetricAlarm)
        .alarm_types(AlarmType::CompositeAlarm)
        .history_item_type(HistoryItemType::StateUpdate)
        .start_date(date(since))
        .end_date(date(until))
        .scan_by(ScanBy::TimestampAscending)
        .into_paginator()
        .items()
        .send();
    let items = sdk::all(pages, "DescribeAlarmHistory").await?;
    Ok(items
        .iter()
        .find(|item| item.history_data().is_some_and(into_alarm))
        .map(|item| {
            item.timestamp()
                .map(|t| t.fmt(Format::DateTime).unwrap_or_default())
                .unwrap_or_default()
        }))
}

/// Whether a state update's history data (JSON, as CloudWatch records it:
/// `{"oldState": {...}, "newState": {"stateValue": "ALARM", ...}}`) is a
/// change into ALARM.
fn into_alarm(data: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(data)
        .is_ok_and(|data| data["newState"]["stateValue"] == StateValue::Alarm.as_str())
}

/// Longest reason a hold keeps.
const MAX_REASON_LEN: usize = 600;
/// Longest actor a hold keeps.
const MAX_ACTOR_LEN: usize = 100;

/// A person's hold on a recipe's releases: no promotion and no new wave
/// until it is lifted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// Who put it.
    pub actor: String,
    /// Why.
    pub reason: String,
}

/// The parameter holding `recipe`'s hold (not a channel: a channel name
/// starts with a letter).
pub fn hold_parameter(recipe: &RecipeName) -> String {
    format!("{POINTER_ROOT}/{recipe}/_hold")
}

/// The hold on `recipe`, if there is one.
pub async fn hold(ctx: &Context, recipe: &RecipeName) -> Result<Option<Hold>> {
    let found = ctx.parameter(&hold_parameter(recipe)).await?;
    Ok(found.and_then(|p| p.value).map(|value| {
        serde_json::from_str(&value).unwrap_or(Hold {
            actor: "unknown".into(),
            reason: value,
        })
    }))
}

/// Puts a hold on `recipe` (replacing any), or lifts it with `None`.
pub async fn set_hold(ctx: &Context, recipe: &RecipeName, hold: Option<&Hold>) -> Result<()> {
    let name = hold_parameter(recipe);
    match hold {
        Some(hold) => {
            if hold.reason.trim().is_empty() {
                return Err(Error::InvalidInput(
                    "a reason is required: it is shown with the hold".into(),
                ));
            }
            let mut hold = hold.clone();
            crate::text::truncate(&mut hold.reason, MAX_REASON_LEN);
            crate::text::truncate(&mut hold.actor, MAX_ACTOR_LEN);
            let value = serde_json::to_string(&hold)
                .map_err(|err| Error::InvalidInput(format!("cannot record the hold: {err}")))?;
            ctx.ssm()
                .put_parameter()
                .name(name)
                .value(value)
                .r#type(ParameterType::String)
                .overwrite(true)
                .send()
                .await
                .map(drop)
                .or_aws("PutParameter")
        }
        None => ctx
            .ssm()
            .delete_parameter()
            .name(name)
            .send()
            .await
            .or_missing("DeleteParameter", |err| {
                err.as_service_error()
                    .is_some_and(|e| e.is_parameter_not_found())
            })
            .map(drop),
    }
}
