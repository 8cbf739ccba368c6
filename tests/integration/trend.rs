//! `kiln audit trend` against the emulator: ten days of daily summaries (one
//! promotion, one rollback, two regions) read back as the share on the
//! promoted image, the moves, each release's time to 50/90/100%, and the
//! services behind the longest; the page renders in headless Chromium.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::Date;
use kiln::fleet::history::{Daily, PointerDay, RegionDay, ServiceDay, key};
use kiln_testkit::{Emulator, channel};
use serde_json::Value;

const BUCKET: &str = "fleet-trend";
const EAST: &str = "us-east-1";
const WEST: &str = "eu-west-1";
const OLD: &str = "ami-0000000000000000a";
const NEW: &str = "ami-0000000000000000b";

fn today() -> Date {
    jiff::tz::Offset::UTC.to_datetime(Timestamp::now()).date()
}

/// `hh:mm` UTC on the day `back` days before today.
fn at(back: i64, hour: i8, minute: i8) -> Timestamp {
    let date = today()
        .checked_sub(jiff::Span::new().days(back))
        .expect("a date");
    jiff::tz::Offset::UTC
        .to_timestamp(date.at(hour, minute, 0, 0))
        .expect("a time")
}

fn created(image: &str) -> Timestamp {
    if image == OLD {
        "2026-10-01T00:00:00Z".parse().expect("time")
    } else {
        "2026-11-15T00:00:00Z".parse().expect("time")
    }
}

/// The day `back` days ago: the pointer on `image` (moved at `moved`), and
/// (current, instances) per region, services' (instances, behind).
fn day(
    back: i64,
    image: &str,
    moved: Timestamp,
    east: (u64, u64),
    west: (u64, u64),
    services: &[(&str, u64, u64)],
) -> Daily {
    let region = |(current, instances)| RegionDay {
        instances,
        current,
        pointer: Some(PointerDay {
            image_id: image.into(),
            created: Some(created(image)),
            moved: Some(moved),
        }),
    };
    Daily {
        version: 1,
        generated_at: at(back, 6, 30),
        channel: channel("prod"),
        recipes: BTreeMap::from([(
            "web".parse().expect("recipe"),
            BTreeMap::from([(EAST.into(), region(east)), (WEST.into(), region(west))]),
        )]),
        services: services
            .iter()
            .map(|(name, instances, behind)| {
                let day = ServiceDay {
                    instances: *instances,
                    behind: *behind,
                };
                ((*name).to_owned(), day)
            })
            .collect(),
    }
}

/// Ten days: on OLD until a promotion to NEW 6 days ago at 10:00, which
/// the fleet adopts (20%, 55%, 92.5%) until a rollback to OLD 3 days ago at
/// 14:00, which it adopts again (7.5%, 50%, 100%).
fn ten_days() -> Vec<Daily> {
    let first = at(30, 9, 0);
    let promoted = at(6, 10, 0);
    let rolled_back = at(3, 14, 0);
    let quiet = [("payments", 150, 0), ("search", 50, 0)];
    vec![
        day(9, OLD, first, (100, 100), (100, 100), &quiet),
        day(8, OLD, first, (100, 100), (100, 100), &quiet),
        day(7, OLD, first, (100, 100), (100, 100), &quiet),
        day(6, OLD, first, (100, 100), (100, 100), &[("legacy", 4, 4)]),
        day(
            5,
            NEW,
            promoted,
            (30, 100),
            (10, 100),
            &[("payments", 150, 120)],
        ),
        day(
            4,
            NEW,
            promoted,
            (60, 100),
            (50, 100),
            &[("payments", 150, 60)],
        ),
        day(
            3,
            NEW,
            promoted,
            (95, 100),
            (90, 100),
            &[("payments", 150, 9)],
        ),
        day(
            2,
            OLD,
            rolled_back,
            (5, 100),
            (10, 100),
            &[("payments", 150, 140)],
        ),
        day(
            1,
            OLD,
            rolled_back,
            (50, 100),
            (50, 100),
            &[("payments", 150, 70)],
        ),
        day(
            0,
            OLD,
            rolled_back,
            (100, 100),
            (100, 100),
            &[("payments", 150, 7), ("search", 50, 20)],
        ),
    ]
}

async fn seed(emu: &Emulator) {
    let s3 = emu.s3();
    emu.bucket(BUCKET).await;
    for daily in ten_days() {
        let date = jiff::tz::Offset::UTC.to_datetime(daily.generated_at).date();
        s3.put_object()
            .bucket(BUCKET)
            .key(key(&daily.channel, date))
            .body(serde_json::to_vec(&daily).expect("JSON").into())
            .send()
            .await
            .expect("PutObject");
    }
}

#[tokio::test]
async fn ten_days_of_summaries_give_the_curve_the_moves_and_the_time_to_each_mark() {
    let emu = Emulator::start().await;
    seed(&emu).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let page = dir.path().join("trend.html");
    let mut env = emu.env();
    env.push(("KILN_AUDIT_BUCKET", BUCKET.into()));
    let output = kiln_testkit::kiln()
        .envs(env.clone())
        .args([
            "audit", "trend", "--days", "10", "--output", "json", "--html",
        ])
        .arg(&page)
        .output()
        .expect("run kiln");
    assert!(output.status.success(), "{output:?}");
    let trend: Value = serde_json::from_slice(&output.stdout).expect("the trend as JSON");

    let expected = [
        100.0, 100.0, 100.0, 100.0, 20.0, 55.0, 92.5, 7.5, 50.0, 100.0,
    ];
    let web = &trend["recipes"][0];
    assert_eq!(web["recipe"], "web");
    let percents: Vec<f64> = web["points"]
        .as_array()
        .expect("points")
        .iter()
        .filter_map(|p| p["percent"].as_f64())
        .collect();
    assert_eq!(percents, expected);
    let moves: Vec<(&str, &str)> = web["moves"]
        .as_array()
        .expect("moves")
        .iter()
        .filter_map(|m| Some((m["kind"].as_str()?, m["images"][EAST].as_str()?)))
        .collect();
    assert_eq!(moves, [("promotion", NEW), ("rollback", OLD)]);
    // Promoted 6 days ago at 10:00: 55% at the audit 4 days ago at 06:30
    // (44.5 h), 92.5% 3 days ago at 06:30 (68.5 h); rolled back before 100%.
    let release = &web["releases"][0];
    assert_eq!(release["hours"]["50"], 44.5);
    assert_eq!(release["hours"]["90"], 68.5);
    assert_eq!(release["hours"]["100"], Value::Null);
    // West reached 50% exactly (50 of 100) 4 days ago, 90% 3 days ago.
    assert_eq!(release["regions"][WEST]["50"], 44.5);
    assert_eq!(release["regions"][WEST]["90"], 68.5);
    assert_eq!(
        web["releases"].as_array().map(Vec::len),
        Some(1),
        "a rollback is no release"
    );
    let behind: Vec<(&str, u64)> = trend["behind"]
        .as_array()
        .expect("behind")
        .iter()
        .filter_map(|b| Some((b["service"].as_str()?, b["days"].as_u64()?)))
        .collect();
    assert_eq!(behind, [("payments", 6), ("search", 1)]);

    let shot = dir.path().join("trend.png");
    let rendered = kiln_testkit::render_page(&page, &shot);
    assert_eq!(rendered["errors"], serde_json::json!([]), "{rendered}");
    assert_eq!(rendered["external_requests"], serde_json::json!([]));
    let plotted: Vec<f64> = rendered["points"]
        .as_array()
        .expect("plotted days")
        .iter()
        .filter_map(|p| p["percent"].as_f64())
        .collect();
    assert_eq!(plotted, expected, "{rendered}");
    let heights: Vec<f64> = rendered["points"]
        .as_array()
        .expect("plotted days")
        .iter()
        .filter_map(|p| p["y"].as_f64())
        .collect();
    assert!(
        heights[4] > heights[5] && heights[5] > heights[6] && heights[7] > heights[4],
        "higher shares are drawn higher: {heights:?}"
    );
    let kinds: Vec<&str> = rendered["moves"]
        .as_array()
        .expect("moves")
        .iter()
        .filter_map(|m| m["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["promotion", "rollback"]);
    let row = &rendered["releases"][0];
    assert_eq!(row[1], NEW);
    assert_eq!(
        (&row[3], &row[4], &row[5]),
        (
            &Value::from("44.5 h"),
            &Value::from("68.5 h"),
            &Value::from("not reached")
        )
    );
    assert_eq!(rendered["behind"][0][0], "payments");
    assert_eq!(rendered["behind"][0][1], "6");

    let text = kiln_testkit::kiln()
        .envs(env)
        .args(["audit", "trend", "--days", "10"])
        .output()
        .expect("run kiln");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("50% in 44.5 h, 90% in 68.5 h, 100% not reached"),
        "{text}"
    );
}

#[tokio::test]
async fn a_trend_without_a_bucket_or_beyond_a_year_is_refused() {
    let emu = Emulator::start().await;
    let refused = kiln_testkit::kiln()
        .envs(emu.env())
        .args(["audit", "trend"])
        .output()
        .expect("run kiln");
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("KILN_AUDIT_BUCKET"));
    let mut env = emu.env();
    env.push(("KILN_AUDIT_BUCKET", BUCKET.into()));
    let refused = kiln_testkit::kiln()
        .envs(env)
        .args(["audit", "trend", "--days", "400"])
        .output()
        .expect("run kiln");
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("1 to 366 days"));
}
