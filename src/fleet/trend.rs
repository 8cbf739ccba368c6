//! `kiln audit trend`: the share of each recipe's fleet on the promoted
//! image day by day, each promotion and rollback, for each release the time
//! until 50%, 90% and 100% of its fleet ran it (the first daily summary at
//! or above the mark, overall and per region), and the services behind the
//! longest. Computed from the daily summaries alone ([`super::history`]).

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use super::history::{Daily, PointerDay, RegionDay};
use super::report::percent;
use crate::ids::{Channel, RecipeName};

/// The marks a release's adoption is timed at, in percent.
pub const MARKS: [u8; 3] = [50, 90, 100];

/// A channel's adoption over the days read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// The channel.
    pub channel: Channel,
    /// The days with a summary, oldest first.
    pub days: Vec<Date>,
    /// Each recipe seen.
    pub recipes: Vec<RecipeTrend>,
    /// Services behind on the last day, the longest behind first.
    pub behind: Vec<ServiceBehind>,
}

/// One recipe's adoption.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipeTrend {
    /// The recipe.
    pub recipe: RecipeName,
    /// Its share on the promoted image, day by day (days it was seen).
    pub points: Vec<Point>,
    /// Each move of its pointers between two days.
    pub moves: Vec<Move>,
    /// Each promotion's adoption.
    pub releases: Vec<Release>,
}

/// One day of a recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// The day.
    pub date: Date,
    /// Instances on the recipe's images.
    pub instances: u64,
    /// Of which on the promoted image.
    pub current: u64,
    /// `current` in percent of `instances`, to one decimal.
    pub percent: f64,
}

/// Which way a pointer moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::Display)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum MoveKind {
    /// To a newer image (or the first image).
    Promotion,
    /// Back to an older image.
    Rollback,
}

/// A move of a recipe's pointers, seen between two daily summaries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// When (the pointers' last write; the day's audit when unknown).
    pub at: Timestamp,
    /// Promotion or rollback.
    pub kind: MoveKind,
    /// The images the pointers named after it, by region.
    pub images: BTreeMap<String, String>,
}

impl Move {
    /// The images it moved to, each once (a copy per region has its own id).
    pub fn distinct_images(&self) -> String {
        let images: std::collections::BTreeSet<&str> =
            self.images.values().map(String::as_str).collect();
        images.into_iter().collect::<Vec<_>>().join(" ")
    }
}

/// A promotion's adoption: hours from the move to each mark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    /// The promotion.
    pub promoted: Move,
    /// Hours until the recipe's whole fleet reached each mark; none when it
    /// has not (yet, or before the next move).
    pub hours: BTreeMap<u8, Option<f64>>,
    /// The same per region.
    pub regions: BTreeMap<String, BTreeMap<u8, Option<f64>>>,
}

/// A service behind on the last day, and for how long.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceBehind {
    /// The service.
    pub service: String,
    /// Instances behind on the last day.
    pub behind: u64,
    /// Days in a row it has been behind, up to the last day.
    pub days: usize,
    /// The first of those days.
    pub since: Date,
}

impl Trend {
    /// The trend of `days` (oldest first) of `channel`.
    pub fn of(channel: &Channel, days: &[Daily]) -> Self {
        let mut recipes: Vec<&RecipeName> = days.iter().flat_map(|d| d.recipes.keys()).collect();
        recipes.sort_unstable();
        recipes.dedup();
        Self {
            channel: channel.clone(),
            days: days.iter().map(Daily::date).collect(),
            recipes: recipes.into_iter().map(|r| recipe(r, days)).collect(),
            behind: behind(days),
        }
    }
}

/// A recipe's regions on one day.
type Regions = BTreeMap<String, RegionDay>;

fn share(regions: &Regions) -> (u64, u64) {
    regions
        .values()
        .fold((0, 0), |(n, c), day| (n + day.instances, c + day.current))
}

fn recipe(name: &RecipeName, days: &[Daily]) -> RecipeTrend {
    let seen: Vec<(&Daily, &BTreeMap<String, RegionDay>)> = days
        .iter()
        .filter_map(|day| Some((day, day.recipes.get(name)?)))
        .collect();
    let points = seen
        .iter()
        .map(|(day, regions)| {
            let (instances, current) = share(regions);
            Point {
                date: day.date(),
                instances,
                current,
                percent: percent(current, instances),
            }
        })
        .collect();
    let mut moves = Vec::new();
    let mut releases = Vec::new();
    for (i, pair) in seen.windows(2).enumerate() {
        let [(_, before), (day, after)] = pair else {
            continue;
        };
        let Some(found) = moved(before, after, day.generated_at) else {
            continue;
        };
        if found.kind == MoveKind::Promotion {
            releases.push(release(&found, &seen[i + 1..]));
        }
        moves.push(found);
    }
    RecipeTrend {
        recipe: name.clone(),
        points,
        moves,
        releases,
    }
}

fn pointer(regions: &BTreeMap<String, RegionDay>, region: &str) -> Option<PointerDay> {
    regions.get(region).and_then(|day| day.pointer.clone())
}

/// The move of the pointers between two days, if any: a rollback when a
/// pointer went back to an older image, else a promotion.
fn moved(
    before: &BTreeMap<String, RegionDay>,
    after: &BTreeMap<String, RegionDay>,
    seen_at: Timestamp,
) -> Option<Move> {
    let mut images = BTreeMap::new();
    let mut at: Option<Timestamp> = None;
    let mut back = false;
    for (region, day) in after {
        let Some(now) = &day.pointer else { continue };
        let then = pointer(before, region);
        if then
            .as_ref()
            .is_some_and(|then| then.image_id == now.image_id)
        {
            continue;
        }
        images.insert(region.clone(), now.image_id.clone());
        at = Some(at.map_or(now.moved.unwrap_or(seen_at), |a| {
            a.min(now.moved.unwrap_or(seen_at))
        }));
        if let (Some(then), Some(now_created)) = (then.and_then(|t| t.created), now.created) {
            back |= now_created < then;
        }
    }
    Some(Move {
        at: at?,
        kind: if back {
            MoveKind::Rollback
        } else {
            MoveKind::Promotion
        },
        images,
    })
}

/// The adoption of promotion `promoted` over the days from its own on.
fn release(promoted: &Move, days: &[(&Daily, &BTreeMap<String, RegionDay>)]) -> Release {
    let still = |regions: &BTreeMap<String, RegionDay>| {
        promoted
            .images
            .iter()
            .all(|(region, image)| pointer(regions, region).is_some_and(|p| p.image_id == *image))
    };
    let hours_since = |at: Timestamp| {
        let seconds = at.duration_since(promoted.at).as_secs_f64();
        (seconds / 36.0).round() / 100.0
    };
    let first = |value: &dyn Fn(&Regions) -> (u64, u64), mark: u8| {
        days.iter()
            .take_while(|(_, regions)| still(regions))
            .find(|(_, regions)| {
                let (instances, current) = value(regions);
                instances > 0 && percent(current, instances) >= f64::from(mark)
            })
            .map(|(day, _)| hours_since(day.generated_at))
    };
    let hours = MARKS.iter().map(|m| (*m, first(&share, *m))).collect();
    let regions = promoted
        .images
        .keys()
        .map(|region| {
            let in_region = |regions: &BTreeMap<String, RegionDay>| {
                regions
                    .get(region)
                    .map_or((0, 0), |day| (day.instances, day.current))
            };
            let marks = MARKS.iter().map(|m| (*m, first(&in_region, *m))).collect();
            (region.clone(), marks)
        })
        .collect();
    Release {
        promoted: promoted.clone(),
        hours,
        regions,
    }
}

/// The services behind on the last day, the longest behind first.
fn behind(days: &[Daily]) -> Vec<ServiceBehind> {
    let Some(last) = days.last() else {
        return Vec::new();
    };
    let mut rows: Vec<ServiceBehind> = last
        .services
        .iter()
        .filter(|(_, day)| day.behind > 0)
        .map(|(service, day)| {
            let run: Vec<&Daily> = days
                .iter()
                .rev()
                .take_while(|d| d.services.get(service).is_some_and(|s| s.behind > 0))
                .collect();
            ServiceBehind {
                service: service.clone(),
                behind: day.behind,
                days: run.len(),
                since: run.last().map_or_else(|| last.date(), |d| d.date()),
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        (
            std::cmp::Reverse(a.days),
            std::cmp::Reverse(a.behind),
            &a.service,
        )
            .cmp(&(
                std::cmp::Reverse(b.days),
                std::cmp::Reverse(b.behind),
                &b.service,
            ))
    });
    rows
}

/// Days a trend covers unless told otherwise.
pub const DEFAULT_DAYS: u32 = 30;

/// `channel`'s trend over the `days` days up to today, from the daily
/// summaries in the audit bucket (`KILN_AUDIT_BUCKET`).
pub async fn read(
    ctx: &crate::aws::Context,
    channel: &Channel,
    days: u32,
) -> crate::error::Result<Trend> {
    let bucket = ctx.settings.audit_bucket.as_deref().ok_or_else(|| {
        crate::error::Error::InvalidInput(
            "the trend reads the daily summaries in KILN_AUDIT_BUCKET, which is not set".into(),
        )
    })?;
    let today = super::history::utc_date(Timestamp::now());
    let s3 = aws_sdk_s3::Client::new(&ctx.config);
    let summaries = super::history::read_days(&s3, bucket, channel, days, today).await?;
    Ok(Trend::of(channel, &summaries))
}

impl Trend {
    /// The trend for a terminal: each recipe's share day by day with its
    /// moves, each release's time to the marks, who is behind the longest.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let (Some(first), Some(last)) = (self.days.first(), self.days.last()) else {
            return format!("No daily audit summary of channel {} yet.\n", self.channel);
        };
        let _ = writeln!(
            out,
            "Adoption of channel {} · {first} to {last} · {} day(s) audited",
            self.channel,
            self.days.len()
        );
        for recipe in &self.recipes {
            let _ = writeln!(out, "\n{}:", recipe.recipe);
            for point in &recipe.points {
                let bar = "#".repeat(
                    usize::try_from(point.current * 40 / point.instances.max(1)).unwrap_or(40),
                );
                let _ = writeln!(
                    out,
                    "  {} {:>5.1}% {bar:<40} {} of {}",
                    point.date,
                    point.percent,
                    crate::text::thousands(point.current),
                    crate::text::thousands(point.instances)
                );
            }
            for mark in &recipe.moves {
                let _ = writeln!(
                    out,
                    "  {} {} to {}",
                    mark.at,
                    mark.kind,
                    mark.distinct_images()
                );
            }
            for release in &recipe.releases {
                let reached: Vec<String> = MARKS
                    .iter()
                    .map(|m| match release.hours.get(m).copied().flatten() {
                        Some(h) => format!("{m}% in {h} h"),
                        None => format!("{m}% not reached"),
                    })
                    .collect();
                let _ = writeln!(
                    out,
                    "  release of {}: {}",
                    release.promoted.at,
                    reached.join(", ")
                );
            }
        }
        if !self.behind.is_empty() {
            out.push_str("\nBehind the longest, by service:\n");
            for row in &self.behind {
                let _ = writeln!(
                    out,
                    "  {}: {} day(s), since {}, {} behind",
                    row.service,
                    row.days,
                    row.since,
                    crate::text::thousands(row.behind)
                );
            }
        }
        out
    }
}
