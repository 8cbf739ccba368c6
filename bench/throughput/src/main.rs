//! In-process audit throughput: 1,000,000 synthetic instance records (200
//! images, 35 services, each with the tags a real instance carries) folded
//! into a tally and classified, without AWS. Prints instances per second.
//!
//! `cargo run --release -p audit-throughput` (`make bench` runs it).

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

use aws_sdk_ec2::types::{Instance, Tag};
use kiln::fleet::tally::{self, ImageFacts, Pointer, Status, Tally};
use kiln::ids::Channel;

const RECORDS: usize = 1_000_000;
const IMAGES: usize = 200;
const SERVICES: usize = 35;
/// Distinct records, cycled: enough to defeat caching of one record.
const DISTINCT: usize = 7_000;
const RUNS: usize = 5;

fn image_id(i: usize) -> String {
    format!("ami-{i:017x}")
}

fn record(i: usize) -> Instance {
    let tag = |k: &str, v: String| Tag::builder().key(k).value(v).build();
    Instance::builder()
        .instance_id(format!("i-{i:017x}"))
        .image_id(image_id(i % IMAGES))
        .tags(tag("Name", format!("host-{i}")))
        .tags(tag("team", format!("team-{}", i % 9)))
        .tags(tag("Service", format!("service-{:02}", i % SERVICES)))
        .build()
}

fn main() {
    let channel: Channel = "prod".parse().expect("channel");
    let records: Vec<Instance> = (0..DISTINCT).map(record).collect();
    let facts: HashMap<String, ImageFacts> = (0..IMAGES)
        .map(|i| {
            let facts = ImageFacts {
                recipe: (i % 4 != 3).then(|| "web".parse().expect("recipe")),
                created: Some(
                    jiff::Timestamp::from_second(1_700_000_000 + i as i64 * 86_400).expect("time"),
                ),
                ..ImageFacts::default()
            };
            (image_id(i), facts)
        })
        .collect();
    let pointers = HashMap::from([(
        "web".parse().expect("recipe"),
        Pointer {
            image_id: image_id(100),
            created: facts[&image_id(100)].created,
        },
    )]);
    let mut rates = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let mut tally = Tally::default();
        for i in 0..RECORDS {
            tally.add_instance(&records[i % DISTINCT], "Service");
        }
        let mut by_status: HashMap<Status, u64> = HashMap::new();
        for image in tally.images() {
            let status = tally::classify(image, facts.get(image), &pointers, &channel);
            *by_status.entry(status).or_default() +=
                tally.services(image).map(|(_, n)| n).sum::<u64>();
        }
        let seconds = started.elapsed().as_secs_f64();
        black_box(&by_status);
        assert_eq!(by_status.values().sum::<u64>(), RECORDS as u64);
        rates.push(RECORDS as f64 / seconds);
    }
    rates.sort_by(f64::total_cmp);
    let median = rates[RUNS / 2];
    println!(
        "audit throughput: {:.2} M instances/s classified (median of {RUNS} runs of {RECORDS} records; {IMAGES} images, {SERVICES} services)",
        median / 1e6
    );
}
