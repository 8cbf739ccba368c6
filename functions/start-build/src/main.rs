//! start-build: what the triggers call (`kiln::ops::trigger`). Input: a
//! schedule's constant input `{"recipe", "reason":
//! "schedule"|"release"|"security"|"manual", "wait_seconds"?}`, an Amazon
//! Inspector finding (`Inspector2 Finding`) about an instance running a kiln
//! image, or kiln's `Security Update Available` event. Schedules and releases
//! start a build only when the recipe is not up to date; security findings
//! force one per recipe per debounce window. Output: per recipe, the build
//! started or found, or the up-to-date image.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    kiln::lambda::run(kiln::ops::trigger::handle).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use kiln::lambda::answer;
    use kiln::ops::trigger::handle;

    #[tokio::test]
    async fn bad_input_is_refused_before_any_call() {
        let ctx = kiln_testkit::mocked(&kiln_testkit::recipe_root(), &[], &[]);
        for (payload, expected) in [
            (
                json!({"recipe": "ubuntu-base", "reason": "nightly"}),
                "nightly",
            ),
            (json!({"recipe": "ubuntu-base"}), "reason"),
            (
                json!({"detail-type": "EC2 Instance State-change Notification", "detail": {}}),
                "not \"EC2",
            ),
            (
                json!({"detail-type": "Security Update Available", "detail": {}}),
                "detail.recipe",
            ),
            (
                json!({"recipe": "no-such-recipe", "reason": "schedule"}),
                "no-such-recipe",
            ),
        ] {
            let err = answer(&handle, &ctx, payload).await.expect_err("refused");
            assert!(
                matches!(err.name(), "InvalidInput" | "InvalidRecipe"),
                "{err}"
            );
            assert!(err.to_string().contains(expected), "{expected}: {err}");
        }
    }
}
