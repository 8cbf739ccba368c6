//! copy-image: `start` copies the tested image to each of the recipe's
//! distribution regions; `poll` reports until every copy is available, then
//! shares the image and its copies with the recipe's accounts and OUs.
//! Input: the state with `$.source` and `$.image` (and `$.distribution` to
//! poll); output: `$.distribution` (`kiln::pipeline::copies`).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    kiln::lambda::run(kiln::pipeline::copies::handle).await
}

#[cfg(test)]
mod tests {
    use kiln::lambda::answer;
    use kiln::pipeline::copies::handle;
    use kiln::pipeline::state::Distribution;
    use serde_json::{Value, json};

    fn event(action: &str, state: &str) -> Value {
        json!({
            "action": action,
            "recipe": "ubuntu-base",
            "build_id": "b1",
            "source": kiln_testkit::source(),
            "image": {"image_id": "ami-0fedcba9876543210", "image_name": "kiln/ubuntu-base/1",
                      "state": state, "since": "2026-11-25T10:00:00Z", "wait_seconds": 30},
        })
    }

    #[tokio::test]
    async fn nothing_is_copied_from_an_image_not_available_nor_polled_without_its_copies() {
        let ctx = kiln_testkit::mocked(&kiln_testkit::recipe_root(), &[], &[]);

        let err = answer::<_, Distribution, _>(&handle, &ctx, event("start", "pending"))
            .await
            .expect_err("a pending image is not copied");
        assert_eq!(err.name(), "InvalidInput");
        assert!(err.to_string().contains("not available"), "{err}");

        let err = answer::<_, Distribution, _>(&handle, &ctx, event("poll", "available"))
            .await
            .expect_err("poll needs $.distribution");
        assert_eq!(err.name(), "InvalidInput");
        assert!(
            err.to_string().contains("`distribution` is required"),
            "{err}"
        );
    }
}
