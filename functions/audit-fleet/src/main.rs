//! audit-fleet: which images the fleet runs against each recipe's channel
//! pointer (see `kiln::audit`). Input: an audit request, every field
//! optional (`{regions, all_regions, account_roles, channel, service_tag,
//! concurrency}`; regions and roles default to `KILN_AUDIT_REGIONS` and
//! `KILN_AUDIT_ROLES`, the channel to prod). Puts the metrics
//! (`Kiln/Fleet`), writes the JSON and HTML reports to `KILN_AUDIT_BUCKET`
//! when set, and answers the summary, the problems and where the reports
//! went. Parts that cannot be audited are problems in the report and the
//! `UnauditedParts` metric, not a failed invocation: a retry would audit the
//! whole fleet again to meet the same problem.

use kiln::audit::publish::{self, Published};
use kiln::audit::report::{Problem, Summary};
use kiln::audit::{self, Request};
use kiln::aws::Context;
use kiln::lambda::{self, LambdaEvent, Value};
use serde::Serialize;

/// What one audit found, and where its reports went.
#[derive(Debug, Serialize)]
struct Answer {
    summary: Summary,
    problems: Vec<Problem>,
    published: Published,
}

async fn handler(ctx: &Context, event: LambdaEvent<Value>) -> kiln::Result<Answer> {
    let request: Request = if event.payload.is_null() {
        Request::default()
    } else {
        lambda::parse(event)?
    };
    let scope = request.or_defaults(&ctx.settings).scope()?;
    let report = audit::audit(&ctx.config, &scope).await;
    let published =
        publish::publish(&ctx.config, &report, ctx.settings.audit_bucket.as_deref()).await?;
    Ok(Answer {
        summary: report.summary,
        problems: report.problems,
        published,
    })
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run(handler).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn a_contradicting_request_is_refused_before_any_call() {
        let ctx = kiln_testkit::mocked(std::path::Path::new("."), &[], &[]);
        let event = LambdaEvent::new(
            json!({"regions": ["us-east-1"], "all_regions": true}),
            lambda_runtime::Context::default(),
        );
        let err = handler(&ctx, event).await.expect_err("refused");
        assert_eq!(err.name(), "InvalidInput");
        let event = LambdaEvent::new(
            json!({"region": "us-east-1"}),
            lambda_runtime::Context::default(),
        );
        let err = handler(&ctx, event).await.expect_err("unknown field");
        assert!(err.to_string().contains("unknown field `region`"), "{err}");
    }

    #[test]
    fn the_deployment_fills_in_regions_and_roles_a_request_leaves_out() {
        let settings = kiln::aws::Settings {
            audit_regions: vec!["us-east-1".into(), "eu-west-1".into()],
            audit_roles: vec!["arn:aws:iam::210987654321:role/kiln-audit".into()],
            ..kiln::aws::Settings::default()
        };
        let filled = Request::default().or_defaults(&settings);
        assert_eq!(filled.regions, settings.audit_regions);
        assert_eq!(filled.account_roles, settings.audit_roles);
        let asked = Request {
            regions: vec!["ap-south-1".into()],
            ..Request::default()
        };
        assert_eq!(asked.or_defaults(&settings).regions, ["ap-south-1"]);
        let twice = Request {
            regions: vec!["eu-west-1".into(), "us-east-1".into(), "eu-west-1".into()],
            ..Request::default()
        };
        let scope = twice.scope().expect("a scope");
        assert_eq!(
            scope.regions,
            kiln::audit::Regions::List(vec!["eu-west-1".into(), "us-east-1".into()]),
            "each region once, in the order given"
        );
        let all = kiln::aws::Settings {
            audit_regions: vec!["all".into()],
            ..kiln::aws::Settings::default()
        };
        let filled = Request::default().or_defaults(&all);
        assert!(filled.all_regions && filled.regions.is_empty());
    }
}
