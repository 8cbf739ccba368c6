//! The fleet's adoption over time: each audit leaves a compact daily
//! summary of its channel (`<HISTORY><channel>/<YYYY-MM-DD>.json`, the day's
//! last audit), kept for years where full reports expire after 90 days. Per
//! recipe and region: instances on the recipe's images, how many run the
//! promoted one, and the pointer with when it moved; per service: who is
//! behind.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use super::report::Report;
use super::tally::Status;
use crate::aws::objects::{read, write};
use crate::error::{Error, Result};
use crate::ids::{Channel, RecipeName};

/// Where the daily summaries go in the audit bucket (outside `kiln/`, which
/// expires after 90 days).
pub const HISTORY: &str = "kiln-history/audit/";
/// The daily summary's format version.
pub const DAILY_VERSION: u32 = 1;
/// The most days a trend reads.
pub const MAX_DAYS: u32 = 366;

/// One day of a channel's fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Daily {
    /// The format version ([`DAILY_VERSION`]).
    pub version: u32,
    /// When the day's (last) audit ran.
    pub generated_at: Timestamp,
    /// The channel.
    pub channel: Channel,
    /// Per recipe, per region: its instances and pointer.
    pub recipes: BTreeMap<RecipeName, BTreeMap<String, RegionDay>>,
    /// Per service: its instances and how many are behind.
    pub services: BTreeMap<String, ServiceDay>,
}

/// A recipe's fleet in one region on one day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionDay {
    /// Instances on the recipe's images (of every audited account).
    pub instances: u64,
    /// Of which on the image the pointer names.
    pub current: u64,
    /// The pointer; none when the recipe has none in the region.
    pub pointer: Option<PointerDay>,
}

/// A pointer as a day saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointerDay {
    /// The image it names.
    pub image_id: String,
    /// When that image was created.
    pub created: Option<Timestamp>,
    /// When the pointer last moved.
    pub moved: Option<Timestamp>,
}

/// A service on one day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceDay {
    /// Its instances.
    pub instances: u64,
    /// Of which behind.
    pub behind: u64,
}

impl Daily {
    /// The summary of `report`.
    pub fn of(report: &Report) -> Self {
        let mut recipes: BTreeMap<RecipeName, BTreeMap<String, RegionDay>> = BTreeMap::new();
        for image in &report.images {
            if let Some(recipe) = &image.recipe {
                let day = recipes
                    .entry(recipe.clone())
                    .or_default()
                    .entry(image.region.clone())
                    .or_default();
                day.instances += image.instances;
                if image.status == Status::Current {
                    day.current += image.instances;
                }
            }
        }
        for pointer in &report.pointers {
            if let Some(image_id) = &pointer.image_id {
                recipes
                    .entry(pointer.recipe.clone())
                    .or_default()
                    .entry(pointer.region.clone())
                    .or_default()
                    .pointer = Some(PointerDay {
                    image_id: image_id.clone(),
                    created: pointer.created,
                    moved: pointer.moved,
                });
            }
        }
        let services = report
            .services
            .iter()
            .map(|row| {
                let day = ServiceDay {
                    instances: row.instances,
                    behind: row.behind,
                };
                (row.service.clone(), day)
            })
            .collect();
        Self {
            version: DAILY_VERSION,
            generated_at: report.generated_at,
            channel: report.channel.clone(),
            recipes,
            services,
        }
    }

    /// The day it summarises (UTC).
    pub fn date(&self) -> Date {
        utc_date(self.generated_at)
    }
}

/// The UTC date of `at`.
pub fn utc_date(at: Timestamp) -> Date {
    jiff::tz::Offset::UTC.to_datetime(at).date()
}

/// The key of `channel`'s summary of `date`.
pub fn key(channel: &Channel, date: Date) -> String {
    format!("{HISTORY}{channel}/{}.json", date.strftime("%Y-%m-%d"))
}

/// Writes `report`'s daily summary to `bucket`; returns its key.
pub async fn write_day(s3: &aws_sdk_s3::Client, bucket: &str, report: &Report) -> Result<String> {
    let daily = Daily::of(report);
    let key = key(&daily.channel, daily.date());
    let body = serde_json::to_vec(&daily).map_err(|err| {
        Error::InvalidInput(format!("the daily summary does not serialize: {err}"))
    })?;
    write(s3, bucket, &key, "application/json", body).await?;
    Ok(key)
}

/// `channel`'s summaries of the `days` days up to `until` (included), oldest
/// first; days without an audit are left out. More than [`MAX_DAYS`] is
/// refused before any call.
pub async fn read_days(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    channel: &Channel,
    days: u32,
    until: Date,
) -> Result<Vec<Daily>> {
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(Error::InvalidInput(format!(
            "a trend covers 1 to {MAX_DAYS} days, not {days}"
        )));
    }
    let mut found = Vec::new();
    for back in (0..days).rev() {
        let date = until
            .checked_sub(jiff::Span::new().days(i64::from(back)))
            .map_err(|err| {
                Error::InvalidInput(format!("no date {back} days before {until}: {err}"))
            })?;
        let key = key(channel, date);
        let Some(body) = read(s3, bucket, &key).await? else {
            continue;
        };
        let daily: Daily =
            serde_json::from_slice(&body).map_err(|err| Error::AuditReportUnreadable {
                report: format!("s3://{bucket}/{key}"),
                reason: err.to_string(),
            })?;
        found.push(daily);
    }
    Ok(found)
}
