//! audit-fleet: which images the fleet runs against each recipe's channel
//! pointer (`kiln::fleet::handle`). Input: an audit request, every field
//! optional (`{regions, all_regions, account_roles, channel, service_tag,
//! concurrency}`; regions and roles default to `KILN_AUDIT_REGIONS` and
//! `KILN_AUDIT_ROLES`, the channel to prod). Puts the metrics
//! (`Kiln/Fleet`), writes the JSON and HTML reports to `KILN_AUDIT_BUCKET`
//! when set, and answers the summary, the problems and where the reports
//! went.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    kiln::lambda::run(kiln::fleet::handle).await
}

#[cfg(test)]
mod tests {
    use kiln::fleet::handle;
    use kiln::lambda::answer;
    use serde_json::json;

    #[tokio::test]
    async fn a_contradicting_request_is_refused_before_any_call() {
        let ctx = kiln_testkit::mocked(std::path::Path::new("."), &[], &[]);
        let event = json!({"regions": ["us-east-1"], "all_regions": true});
        let err = answer(&handle, &ctx, event).await.expect_err("refused");
        assert_eq!(err.name(), "InvalidInput");
        let event = json!({"region": "us-east-1"});
        let err = answer(&handle, &ctx, event)
            .await
            .expect_err("unknown field");
        assert!(err.to_string().contains("unknown field `region`"), "{err}");
    }
}
