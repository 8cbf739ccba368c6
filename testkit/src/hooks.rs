//! The emulator's test hooks: what a test sets that AWS would not let it
//! (an instance's age, a deprecation in the past, what a command prints,
//! the advisories Inspector's scan finds, the findings it holds), and what
//! the Lambda proxy recorded.

use crate::emulator::Emulator;

/// What tells the package listing's command (`kiln::security::sbom::LISTING`)
/// from the others.
const PACKAGE_LISTING_COMMAND: &str = "dpkg-query -W";

impl Emulator {
    /// Every AWS call the Lambda proxy passed on so far, as it recorded them
    /// (`scripts/kiln_emulator/calls.py` says what a record holds).
    pub fn calls(&self) -> serde_json::Value {
        let (status, body) = self.proxy("GET", "/_kiln/calls", "");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("the calls as JSON")
    }

    /// Dates `instance`'s launch `age` ago, through the proxy's test hook
    /// (`POST /_kiln/launch-time`, proxy.py): time a test cannot wait out.
    pub fn age_instance(&self, instance: &str, age: std::time::Duration) {
        let then = jiff::Timestamp::now() - jiff::SignedDuration::try_from(age).expect("an age");
        let body = serde_json::json!({"instance_id": instance, "launch_time": then.to_string()});
        let (status, answer) = self.proxy("POST", "/_kiln/launch-time", &body.to_string());
        assert_eq!(status, 204, "{answer}");
    }

    /// Makes `image` (of the default account, in `region`) deprecated since
    /// `age` ago, through the proxy's test hook (`POST
    /// /_kiln/deprecation-time`, proxy.py): EC2 refuses a deprecation time in
    /// the past, and a test cannot wait for one to pass.
    pub fn deprecated_since(&self, image: &str, region: &str, age: std::time::Duration) {
        let then = jiff::Timestamp::now() - jiff::SignedDuration::try_from(age).expect("an age");
        let body = serde_json::json!({
            "image_id": image, "deprecation_time": then.to_string(), "region": region,
        });
        let (status, answer) = self.proxy("POST", "/_kiln/deprecation-time", &body.to_string());
        assert_eq!(status, 204, "{answer}");
    }

    /// Makes the package listing of every test instance from now on (in the
    /// default account and region) print `listing`, through the proxy's
    /// test hook (`POST /_kiln/command-output`, proxy.py): nothing runs on
    /// an emulated instance.
    pub fn print_packages(&self, listing: &str) {
        assert!(kiln::security::sbom::LISTING.contains(PACKAGE_LISTING_COMMAND));
        let body = serde_json::json!({"contains": PACKAGE_LISTING_COMMAND, "stdout": listing});
        let (status, answer) = self.proxy("POST", "/_kiln/command-output", &body.to_string());
        assert_eq!(status, 204, "{answer}");
    }

    /// Makes every later `ScanSbom` find `advisory` (`{"id", "package",
    /// "fixed", "severity", "cvss", "exploit_available"[, "introduced"]}`,
    /// patches/scan_sbom.py): the emulator has no vulnerability database.
    pub fn advise(&self, advisory: &serde_json::Value) {
        let endpoint = self.seeded.endpoint.trim_start_matches("http://");
        let (status, answer) = http(
            endpoint,
            "POST",
            "/moto-api/kiln/advisories",
            "Content-Type: application/json\r\n",
            &advisory.to_string(),
        );
        assert_eq!(status, 204, "advisory {advisory}: {answer}");
    }

    /// Queues `snapshots` of the findings Inspector holds in the default
    /// account and region: each later listing of `ListFindings` reads the
    /// next one, the last one staying (patches/inspector_findings.py).
    /// Each finding is in the shape `ListFindings` answers.
    pub fn queue_findings(&self, snapshots: &[serde_json::Value]) {
        let endpoint = self.seeded.endpoint.trim_start_matches("http://");
        let body = serde_json::json!({
            "results": snapshots,
            "account_id": "123456789012",
            "region": self.seeded.region,
        });
        let (status, answer) = http(
            endpoint,
            "POST",
            "/moto-api/static/inspector2/findings-results",
            "Content-Type: application/json\r\n",
            &body.to_string(),
        );
        assert_eq!(status, 201, "findings: {answer}");
    }

    /// A new customer managed KMS key in `region` (of the default
    /// account): its ARN. (Through KMS's JSON API: moto reads the region
    /// from the credential scope and checks no signature.)
    pub fn kms_key(&self, region: &str) -> String {
        let endpoint = self.seeded.endpoint.trim_start_matches("http://");
        let headers = format!(
            "X-Amz-Target: TrentService.CreateKey\r\n\
             Content-Type: application/x-amz-json-1.1\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=testing/20261201/{region}/kms/aws4_request, \
             SignedHeaders=host, Signature=0\r\n"
        );
        let (status, answer) = http(endpoint, "POST", "/", &headers, "{}");
        assert_eq!(status, 200, "CreateKey: {answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).expect("CreateKey's JSON");
        answer["KeyMetadata"]["Arn"]
            .as_str()
            .expect("the key's ARN")
            .to_owned()
    }

    /// One request to the Lambda proxy's own paths: its status and body.
    fn proxy(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let proxy = self
            .seeded
            .lambda_proxy
            .as_deref()
            .expect("an emulator started with start_pipeline");
        http(proxy.trim_start_matches("http://"), method, path, "", body)
    }
}

/// One HTTP/1.1 request to `address` with `headers` (each line ending in
/// CRLF): the answer's status and body.
fn http(address: &str, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the emulator");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{headers}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("ask the emulator");
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .expect("the emulator's answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("an HTTP status");
    (status, body.to_owned())
}
