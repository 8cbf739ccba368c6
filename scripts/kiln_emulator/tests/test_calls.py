"""The calls the Lambda proxy records (proxy.py, calls.py): the functions'
own, made with their kiln-function-NAME key through the proxy, and calls
made directly to it; against the shared emulator (emulator.py). Then what
calls.record makes of requests no test here sends."""

import http.client
import json
import unittest
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from email.message import Message

from kiln_emulator.calls import record

from .emulator import CURRENT, EmulatorTestCase


def headers(**values):
    message = Message()
    for name, value in values.items():
        message[name.replace("_", "-")] = value
    return message


SIGNED = "AWS4-HMAC-SHA256 Credential=AKID/20261126/eu-west-1/{}/aws4_request, SignedHeaders=host, Signature=0"


class RecordedCallsTest(EmulatorTestCase):
    def calls(self, method="GET"):
        request = urllib.request.Request(f"{self.info['lambda_proxy']}/_kiln/calls", method=method)
        with urllib.request.urlopen(request) as answer:
            return json.loads(answer.read() or b"null")

    def test_a_function_calls_through_the_proxy_with_its_own_key(self):
        lambda_ = self.client("lambda", self.info["lambda_proxy"])
        event = {"name": self.info["source_parameter"]}
        answer = json.load(lambda_.invoke(FunctionName="caller", Payload=json.dumps(event))["Payload"])
        # moto takes the unknown key for its default account: the seeded parameter is found.
        self.assertEqual(answer, {"value": self.image(CURRENT), "account": self.info["account"],
                                  "key": "kiln-function-caller", "endpoint": self.info["lambda_proxy"]})
        calls = self.calls()
        cpu = [c.pop("cpu") for c in calls if c["action"] == "InvokeFunction"]
        self.assertGreater(cpu[-1], 0, "the function's own CPU seconds")
        statuses = {c.pop("status") for c in calls if c["key"] == "kiln-function-caller"}
        self.assertEqual(statuses, {200}, "what moto answered each forwarded call")
        calls = [{k: v for k, v in c.items() if k != "status"} for c in calls]
        invoke = {"key": "testing", "service": "lambda", "region": self.info["region"],
                  "action": "InvokeFunction", "params": {"FunctionName": "caller"}}
        get = {"key": "kiln-function-caller", "service": "ssm", "region": self.info["region"],
               "action": "GetParameter", "params": {"Name": self.info["source_parameter"]}}
        self.assertIn(invoke, calls)
        self.assertIn(get, calls)
        self.assertLess(calls.index(invoke), calls.index(get))
        functions = [c["action"] for c in calls if c["key"] == "kiln-function-caller"]
        self.assertEqual(functions[-2:], ["GetParameter", "GetCallerIdentity"])

    def test_the_state_machines_invokes_are_recorded(self):
        sfn = self.client("stepfunctions")
        arn = f"arn:aws:lambda:{self.info['region']}:{self.info['account']}:function:echo"
        task = {"Type": "Task", "Resource": arn, "End": True}
        machine = sfn.create_state_machine(
            name=f"invokes-{uuid.uuid4()}", roleArn=f"arn:aws:iam::{self.info['account']}:role/kiln-pipeline",
            definition=json.dumps({"StartAt": "Echo", "States": {"Echo": task}}),
        )["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=machine, input='{"action": "build"}')["executionArn"]
        ended = self.wait_for(
            lambda: (d := sfn.describe_execution(executionArn=execution))["status"] != "RUNNING" and d
        )
        self.assertEqual(ended["status"], "SUCCEEDED", ended.get("cause"))
        invokes = [c for c in self.calls() if c["params"] == {"FunctionName": arn}]
        self.assertEqual([(c["service"], c["action"]) for c in invokes], [("lambda", "InvokeFunction")])
        self.assertIsNotNone(invokes[0]["key"])  # moto's executor signs with a key of its own

    def test_calls_made_directly_are_recorded_by_protocol(self):
        proxy, bucket, key = self.info["lambda_proxy"], f"calls-{uuid.uuid4()}", "reports/a b.json"
        self.client("ec2", proxy).describe_images(ImageIds=[self.image(CURRENT)])
        s3 = self.client("s3", proxy)
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
        with self.assertRaises(s3.exceptions.NoSuchKey):
            s3.get_object(Bucket=bucket, Key="missing")
        self.client("ssm", proxy).get_parameter(Name=self.info["source_parameter"])
        recorded = self.calls()
        missing = [c["status"] for c in recorded if c["params"] == {"Bucket": bucket, "Key": "missing"}]
        self.assertEqual(missing, [404], "a missing key's status")
        calls = [(c["key"], c["service"], c["action"], c["params"]) for c in recorded]
        query = {"Action": "DescribeImages", "Version": "2016-11-15", "ImageId.1": self.image(CURRENT)}
        self.assertIn(("testing", "ec2", "DescribeImages", query), calls)
        self.assertIn(("testing", "s3", "CreateBucket", {"Bucket": bucket}), calls)
        self.assertIn(("testing", "s3", "PutObject", {"Bucket": bucket, "Key": key}), calls)
        self.assertIn(("testing", "ssm", "GetParameter", {"Name": self.info["source_parameter"]}), calls)

    def test_delete_empties_the_record_and_moto_api_is_not_recorded(self):
        self.client("sts", self.info["lambda_proxy"]).get_caller_identity()
        self.assertTrue(self.calls())
        self.calls("DELETE")
        urllib.request.urlopen(f"{self.info['lambda_proxy']}/moto-api/data.json").read()
        self.assertNotIn("/moto-api", json.dumps(self.calls()))

    def test_head_and_chunked_uploads_pass_through(self):
        s3, bucket = self.client("s3", self.info["lambda_proxy"]), f"chunked-{uuid.uuid4()}"
        s3.create_bucket(Bucket=bucket)
        proxy = http.client.HTTPConnection(self.info["lambda_proxy"].removeprefix("http://"))
        proxy.putrequest("PUT", f"/{bucket}/chunked")
        proxy.putheader("Transfer-Encoding", "chunked")
        proxy.endheaders()
        for chunk in (b"hello, ", b"world", b""):
            proxy.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.assertEqual(proxy.getresponse().status, 200)
        proxy.close()
        self.assertEqual(s3.get_object(Bucket=bucket, Key="chunked")["Body"].read(), b"hello, world")
        self.assertEqual(s3.head_object(Bucket=bucket, Key="chunked")["ContentLength"], 12)


class RecordTest(unittest.TestCase):
    """calls.record alone, for requests the tests above do not send."""

    def test_s3_operations_from_method_path_and_query(self):
        auth = SIGNED.format("s3")
        cases = [
            ("GET", "/", {}, "ListBuckets", {}),
            ("GET", "/b?list-type=2&prefix=x", {}, "ListObjectsV2", {"Bucket": "b"}),
            ("GET", "/b?encryption", {}, "GetBucketEncryption", {"Bucket": "b"}),
            ("PUT", "/b?policy", {}, "PutBucketPolicy", {"Bucket": "b"}),
            ("HEAD", "/b", {}, "HeadBucket", {"Bucket": "b"}),
            ("HEAD", "/b/k", {}, "HeadObject", {"Bucket": "b", "Key": "k"}),
            ("GET", "/b/dir/k%20x", {}, "GetObject", {"Bucket": "b", "Key": "dir/k x"}),
            ("DELETE", "/b/k", {}, "DeleteObject", {"Bucket": "b", "Key": "k"}),
            ("PUT", "/b/k", {"x_amz_copy_source": "/a/k"}, "CopyObject", {"Bucket": "b", "Key": "k"}),
            ("PUT", "/b/k?partNumber=1&uploadId=u", {}, "UploadPart", {"Bucket": "b", "Key": "k"}),
            ("GET", "/k", {"Host": "b.localhost:4566"}, "GetObject", {"Bucket": "b", "Key": "k"}),
        ]
        for method, path, extra, action, params in cases:
            with self.subTest(f"{method} {path}"):
                call = record(method, path, headers(Authorization=auth, **extra), b"")
                self.assertEqual((call["key"], call["service"], call["region"]), ("AKID", "s3", "eu-west-1"))
                self.assertEqual((call["action"], call["params"]), (action, params))

    def test_query_form_json_and_unsigned_requests(self):
        form = headers(Authorization=SIGNED.format("monitoring"), Content_Type="application/x-www-form-urlencoded")
        call = record("POST", "/", form, b"Action=PutMetricData&Namespace=kiln&MetricData.member.1.MetricName=m")
        self.assertEqual((call["service"], call["action"]), ("monitoring", "PutMetricData"))
        self.assertEqual(call["params"]["MetricData.member.1.MetricName"], "m")
        json_ = headers(Authorization=SIGNED.format("states"), X_Amz_Target="AWSStepFunctions.StartExecution")
        call = record("POST", "/", json_, b'{"stateMachineArn": "arn"}')
        self.assertEqual((call["action"], call["params"]), ("StartExecution", {"stateMachineArn": "arn"}))
        call = record("POST", "/service/GraniteServiceVersion20100801/operation/GetMetricData", headers(), b"")
        self.assertEqual(call, {"key": None, "service": None, "region": None, "action": "GetMetricData",
                                "params": {}})
        call = record("POST", "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A1%3Afunction%3Af/"
                      "invocations?Qualifier=1", headers(Authorization=SIGNED.format("lambda")), b"{}")
        function = {"FunctionName": "arn:aws:lambda:us-east-1:1:function:f", "Qualifier": "1"}
        self.assertEqual((call["action"], call["params"]), ("InvokeFunction", function))
        scan = headers(Authorization=SIGNED.format("inspector-scan"), Content_Type="application/json")
        call = record("POST", "/scan/sbom", scan, b'{"sbom": {"components": []}}')
        self.assertEqual((call["service"], call["action"], call["params"]), ("inspector-scan", "ScanSbom", {}))
        findings = headers(Authorization=SIGNED.format("inspector2"), Content_Type="application/json")
        call = record("POST", "/findings/list", findings, b'{"maxResults": 100}')
        self.assertEqual((call["service"], call["action"]), ("inspector2", "ListFindings"))
        call = record("POST", "/scan/other", scan, b'{"a": 1}')
        self.assertEqual((call["action"], call["params"]), (None, {"a": 1}))


if __name__ == "__main__":
    unittest.main()


class LaunchTimeTest(EmulatorTestCase):
    """POST /_kiln/launch-time on the proxy dates an instance's launch."""

    def setUp(self):
        self.account = str(uuid.uuid4().int)[:12]
        self.ec2 = self.client("ec2", account=self.account)

    def post(self, hook="launch-time", **body):
        request = urllib.request.Request(
            f"{self.info['lambda_proxy']}/_kiln/{hook}", method="POST",
            data=json.dumps(dict(body, account=self.account)).encode(),
        )
        try:
            with urllib.request.urlopen(request) as answer:
                return answer.status
        except urllib.error.HTTPError as error:
            return error.code

    def launched(self, instance_id):
        reservations = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        return reservations[0]["Instances"][0]["LaunchTime"]

    def test_an_instance_is_dated_to_the_time_given_and_nothing_else_changes(self):
        instance = self.ec2.run_instances(ImageId=self.image(CURRENT), MinCount=1, MaxCount=1)["Instances"][0]
        before = self.ec2.describe_instances(InstanceIds=[instance["InstanceId"]])["Reservations"][0]["Instances"][0]
        self.assertEqual(self.post(instance_id=instance["InstanceId"], launch_time="2026-11-01T08:30:00Z"), 204)
        self.assertEqual(self.launched(instance["InstanceId"]), datetime(2026, 11, 1, 8, 30, tzinfo=timezone.utc))
        after = self.ec2.describe_instances(InstanceIds=[instance["InstanceId"]])["Reservations"][0]["Instances"][0]
        self.assertEqual({**after, "LaunchTime": None}, {**before, "LaunchTime": None})

    def test_a_missing_instance_a_time_without_offset_or_in_the_future_is_refused(self):
        instance = self.ec2.run_instances(ImageId=self.image(CURRENT), MinCount=1, MaxCount=1)["Instances"][0]
        launched = self.launched(instance["InstanceId"])
        future = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
        for body in (
            {"instance_id": "i-00000000000000000", "launch_time": "2026-11-01T08:30:00Z"},
            {"instance_id": instance["InstanceId"], "launch_time": "2026-11-01T08:30:00"},
            {"instance_id": instance["InstanceId"], "launch_time": future},
            {"instance_id": instance["InstanceId"]},
        ):
            with self.subTest(body):
                self.assertEqual(self.post(**body), 400)
        self.assertEqual(self.launched(instance["InstanceId"]), launched)

    def test_an_image_is_deprecated_since_the_time_given_and_a_future_time_is_refused(self):
        instance = self.ec2.run_instances(ImageId=self.image(CURRENT), MinCount=1, MaxCount=1)["Instances"][0]
        image_id = self.ec2.create_image(InstanceId=instance["InstanceId"], Name=f"dated-{uuid.uuid4()}")["ImageId"]
        future = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
        self.assertEqual(self.post("deprecation-time", image_id=image_id, deprecation_time=future), 400)
        self.assertEqual(self.post("deprecation-time", image_id="ami-00000000000000000",
                                   deprecation_time="2026-11-01T08:30:00Z"), 400)
        self.assertEqual(self.post("deprecation-time", image_id=image_id, deprecation_time="2026-11-01T08:30:00Z"), 204)
        image = self.ec2.describe_images(ImageIds=[image_id])["Images"][0]
        self.assertEqual(image["DeprecationTime"], "2026-11-01T08:30:00.000Z")
