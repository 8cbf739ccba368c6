//! Where the `audit-fleet` Lambda puts a report: S3 (the JSON and the HTML
//! page, dated and as `latest`) and CloudWatch metrics an alarm can watch.

use std::collections::{BTreeMap, BTreeSet};

use aws_config::SdkConfig;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use aws_smithy_types::DateTime;
use serde::{Deserialize, Serialize};

use super::history;
use super::html;
use super::report::Report;
use super::tally::Status;
use super::trend::{DEFAULT_DAYS, Trend};
use super::trend_page;
use crate::aws::objects::{read, write};
use crate::aws::sdk::Answer;
use crate::error::{Error, Result};

/// The CloudWatch namespace of the fleet metrics.
pub const NAMESPACE: &str = "Kiln/Fleet";
/// Instances, by `Channel` and `Status`, and by `Channel`, `Recipe` and `Status`.
pub const INSTANCES: &str = "Instances";
/// The share of the fleet on the promoted image, by `Channel`.
pub const CURRENT_PERCENT: &str = "CurrentPercent";
/// Parts of the fleet the audit could not reach, by `Channel`: alarm on it
/// too, or a failing role or region hides drift.
pub const UNAUDITED: &str = "UnauditedParts";
/// The key prefix of reports in the bucket.
pub const PREFIX: &str = "kiln/audit/";
/// Metric values per `PutMetricData` call (the API's maximum).
const METRICS_PER_CALL: usize = 1000;

/// The audit's latest report, `<PREFIX>latest.json` in the audit bucket
/// (`KILN_AUDIT_BUCKET`), with where it was read (`s3://bucket/key`):
/// nothing when no bucket is set or no audit has written one yet. A report
/// that exists but cannot be read is `AuditReportUnreadable`: what reads it
/// (retention, the guard) must not act on a fleet it cannot see.
pub async fn latest(ctx: &crate::aws::Context) -> Result<Option<(String, Report)>> {
    let Some(bucket) = ctx.settings.audit_bucket.as_deref() else {
        return Ok(None);
    };
    let key = format!("{PREFIX}latest.json");
    let location = format!("s3://{bucket}/{key}");
    let unreadable = |reason: String| Error::AuditReportUnreadable {
        report: location.clone(),
        reason,
    };
    let s3 = aws_sdk_s3::Client::new(&ctx.config);
    let Some(body) = read(&s3, bucket, &key).await? else {
        return Ok(None);
    };
    let report = serde_json::from_slice(&body).map_err(|err| unreadable(err.to_string()))?;
    Ok(Some((location, report)))
}

/// Writes the report as JSON and HTML to `bucket`, under a dated key and as
/// `latest`, its daily summary, and the trend page of the last
/// [`DEFAULT_DAYS`] (`trend.html`); returns the keys written.
pub async fn to_s3(s3: &aws_sdk_s3::Client, bucket: &str, report: &Report) -> Result<Vec<String>> {
    let json = serde_json::to_vec_pretty(report)
        .map_err(|err| Error::InvalidInput(format!("the report does not serialize: {err}")))?;
    let page = html::render(report).into_bytes();
    let dated = report.generated_at.strftime("%Y/%m/%d/%H%M%SZ").to_string();
    let mut keys = Vec::new();
    for name in [dated.as_str(), "latest"] {
        for (extension, content_type, body) in [
            ("json", "application/json", &json),
            ("html", "text/html; charset=utf-8", &page),
        ] {
            let key = format!("{PREFIX}{name}.{extension}");
            write(s3, bucket, &key, content_type, body.clone()).await?;
            keys.push(key);
        }
    }
    keys.push(history::write_day(s3, bucket, report).await?);
    let today = history::utc_date(report.generated_at);
    let days = history::read_days(s3, bucket, &report.channel, DEFAULT_DAYS, today).await?;
    let page = trend_page::render(&Trend::of(&report.channel, &days));
    let key = format!("{PREFIX}trend.html");
    write(
        s3,
        bucket,
        &key,
        "text/html; charset=utf-8",
        page.into_bytes(),
    )
    .await?;
    keys.push(key);
    Ok(keys)
}

/// The metrics of a report: instances per status fleet-wide and per recipe
/// (every status, zeros included, so an alarm always has data; deregistered
/// images have lost the tag naming their recipe, so they count fleet-wide
/// only), and the share on the promoted image.
pub fn metrics(report: &Report) -> Vec<MetricDatum> {
    let at = DateTime::from_secs(report.generated_at.as_second());
    let channel = report.channel.as_str();
    let datum = |name: &str, value: f64, unit: StandardUnit, dimensions: &[(&str, &str)]| {
        MetricDatum::builder()
            .metric_name(name)
            .timestamp(at)
            .value(value)
            .unit(unit)
            .set_dimensions(Some(
                dimensions
                    .iter()
                    .map(|(name, value)| Dimension::builder().name(*name).value(*value).build())
                    .collect(),
            ))
            .build()
    };
    let count = |n: u64| {
        // Instance counts stay far below 2^53: exact in an f64.
        f64::from(u32::try_from(n).unwrap_or(u32::MAX))
    };
    let mut data = vec![
        datum(
            CURRENT_PERCENT,
            report.summary.current_percent,
            StandardUnit::Percent,
            &[("Channel", channel)],
        ),
        datum(
            UNAUDITED,
            count(u64::try_from(report.incomplete()).unwrap_or(u64::MAX)),
            StandardUnit::Count,
            &[("Channel", channel)],
        ),
    ];
    for (status, n) in &report.summary.by_status {
        data.push(datum(
            INSTANCES,
            count(*n),
            StandardUnit::Count,
            &[("Channel", channel), ("Status", status.as_ref())],
        ));
    }
    let mut by_recipe: BTreeMap<&str, BTreeMap<Status, u64>> = BTreeMap::new();
    let recipes: BTreeSet<&str> = report
        .images
        .iter()
        .filter_map(|i| i.recipe.as_ref())
        .chain(report.pointers.iter().map(|p| &p.recipe))
        .map(|r| r.as_str())
        .collect();
    for recipe in recipes {
        by_recipe.insert(
            recipe,
            Status::all()
                .filter(|s| *s != Status::Foreign && *s != Status::Deregistered)
                .map(|s| (s, 0))
                .collect(),
        );
    }
    for image in &report.images {
        if let Some(recipe) = &image.recipe
            && let Some(counts) = by_recipe.get_mut(recipe.as_str())
        {
            *counts.entry(image.status).or_default() += image.instances;
        }
    }
    for (recipe, counts) in by_recipe {
        for (status, n) in counts {
            data.push(datum(
                INSTANCES,
                count(n),
                StandardUnit::Count,
                &[
                    ("Channel", channel),
                    ("Recipe", recipe),
                    ("Status", status.as_ref()),
                ],
            ));
        }
    }
    data
}

/// Puts the report's [`metrics`]; returns how many values were put.
pub async fn to_cloudwatch(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    report: &Report,
) -> Result<usize> {
    let data = metrics(report);
    for batch in data.chunks(METRICS_PER_CALL) {
        cloudwatch
            .put_metric_data()
            .namespace(NAMESPACE)
            .set_metric_data(Some(batch.to_vec()))
            .send()
            .await
            .or_aws("PutMetricData")?;
    }
    Ok(data.len())
}

/// Where a report went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// The bucket, when one is configured.
    pub bucket: Option<String>,
    /// The keys written in it.
    pub keys: Vec<String>,
    /// Metric values put.
    pub metrics: usize,
}

/// Puts the report's metrics, and writes it to `bucket` when one is given.
pub async fn publish(
    config: &SdkConfig,
    report: &Report,
    bucket: Option<&str>,
) -> Result<Published> {
    let metrics = to_cloudwatch(&aws_sdk_cloudwatch::Client::new(config), report).await?;
    let keys = match bucket {
        Some(bucket) => to_s3(&aws_sdk_s3::Client::new(config), bucket, report).await?,
        None => Vec::new(),
    };
    Ok(Published {
        bucket: bucket.map(str::to_owned),
        keys,
        metrics,
    })
}
