//! The emulator launcher: what it seeds, and its ENA patch behaving as AWS does.

use aws_sdk_ec2::types::InstanceType;
use kiln::aws::Context;
use kiln_testkit::Emulator;

async fn launch(ctx: &Context, image: &str, kind: InstanceType) -> String {
    ctx.ec2()
        .run_instances()
        .image_id(image)
        .instance_type(kind)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .expect("run")
        .instances()[0]
        .instance_id()
        .expect("id")
        .to_owned()
}

async fn image_ena(ctx: &Context, image: &str) -> Option<bool> {
    ctx.ec2()
        .describe_images()
        .image_ids(image)
        .send()
        .await
        .expect("describe")
        .images()[0]
        .ena_support()
}

async fn instance_ena(ctx: &Context, instance: &str) -> Option<bool> {
    ctx.ec2()
        .describe_instances()
        .instance_ids(instance)
        .send()
        .await
        .expect("describe")
        .reservations()[0]
        .instances()[0]
        .ena_support()
}

#[tokio::test]
async fn seeded_images_are_canonicals_and_ena_follows_the_image() {
    let emulator = Emulator::start().await;
    let ctx = emulator.context(std::path::Path::new("images"));
    let noble = &emulator.seeded.images["noble-24.04-x86_64-20261118"];
    let trusty = &emulator.seeded.images["trusty-14.04-x86_64-20160114"];

    let parameter = ctx
        .ssm()
        .get_parameter()
        .name(&emulator.seeded.source_parameter)
        .send()
        .await
        .expect("parameter");
    assert_eq!(
        parameter.parameter().and_then(|p| p.value()),
        Some(noble.as_str())
    );
    let described = ctx
        .ec2()
        .describe_images()
        .image_ids(noble)
        .send()
        .await
        .expect("describe");
    assert_eq!(described.images()[0].owner_id(), Some("099720109477"));

    assert_eq!(image_ena(&ctx, noble).await, Some(true), "seeded with ENA");
    assert_eq!(
        image_ena(&ctx, trusty).await,
        Some(false),
        "seeded without ENA"
    );

    let on_noble = launch(&ctx, noble, InstanceType::T3Micro).await;
    let needs_ena = ctx
        .ec2()
        .run_instances()
        .image_id(trusty)
        .instance_type(InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .send()
        .await;
    assert!(
        needs_ena.is_err(),
        "a t3 needs ENA, which the trusty image lacks: {needs_ena:?}"
    );
    let on_trusty = launch(&ctx, trusty, InstanceType::T2Micro).await;
    assert_eq!(
        instance_ena(&ctx, &on_noble).await,
        Some(true),
        "instances take ENA from their image"
    );
    assert_eq!(instance_ena(&ctx, &on_trusty).await, Some(false));

    let from_noble = ctx
        .ec2()
        .create_image()
        .instance_id(&on_noble)
        .name("a")
        .send()
        .await
        .expect("create");
    let from_trusty = ctx
        .ec2()
        .create_image()
        .instance_id(&on_trusty)
        .name("b")
        .send()
        .await
        .expect("create");
    assert_eq!(
        image_ena(&ctx, from_noble.image_id().expect("id")).await,
        Some(true),
        "CreateImage inherits"
    );
    assert_eq!(
        image_ena(&ctx, from_trusty.image_id().expect("id")).await,
        Some(false)
    );

    let copied = ctx
        .ec2()
        .copy_image()
        .source_image_id(noble)
        .source_region("us-east-1")
        .name("c")
        .send()
        .await;
    let copied = copied.expect("copy");
    assert_eq!(
        image_ena(&ctx, copied.image_id().expect("id")).await,
        Some(true),
        "CopyImage inherits"
    );
}
