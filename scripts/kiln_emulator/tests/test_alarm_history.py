"""CloudWatch alarm history (alarm_history.py): every state change is a
StateUpdate item, and DescribeAlarmHistory answers them with AWS's filters
and pages, to boto3 (CBOR) and to the awsQuery protocol kiln's SDK uses;
against the shared emulator (emulator.py)."""

import json
import unittest
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ElementTree
from datetime import datetime, timedelta, timezone

from botocore.exceptions import ClientError

from .emulator import EmulatorTestCase

QUERY_AUTH = "AWS4-HMAC-SHA256 Credential=testing/20261130/{}/monitoring/aws4_request, SignedHeaders=host, Signature=0"


class AlarmHistoryTest(EmulatorTestCase):
    def setUp(self):
        self.cloudwatch = self.client("cloudwatch")
        self.name = f"alarm-{uuid.uuid4()}"
        self.cloudwatch.put_metric_alarm(
            AlarmName=self.name, MetricName="errors", Namespace="kiln", Statistic="Sum", Period=60,
            EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold",
        )
        self.set("ALARM", "errors went up", '{"seen": 3}')
        self.set("ALARM", "still up")
        self.set("OK", "errors went down")

    def set(self, value, reason, data=None):
        extra = {"StateReasonData": data} if data else {}
        self.cloudwatch.set_alarm_state(AlarmName=self.name, StateValue=value, StateReason=reason, **extra)

    def history(self, **kwargs):
        return self.cloudwatch.describe_alarm_history(AlarmName=self.name, **kwargs)

    def test_each_state_change_is_a_state_update_newest_first(self):
        items = self.history()["AlarmHistoryItems"]
        self.assertEqual([i["HistorySummary"] for i in items],
                         ["Alarm updated from ALARM to OK", "Alarm updated from OK to ALARM"])
        self.assertEqual({(i["AlarmName"], i["AlarmType"], i["HistoryItemType"]) for i in items},
                         {(self.name, "MetricAlarm", "StateUpdate")})
        self.assertEqual(json.loads(items[1]["HistoryData"]), {
            "version": "1.0",
            "oldState": {"stateValue": "OK", "stateReason": "Unchecked: Initial alarm creation"},
            "newState": {"stateValue": "ALARM", "stateReason": "errors went up", "stateReasonData": {"seen": 3}},
        })
        self.assertEqual(json.loads(items[0]["HistoryData"])["oldState"],
                         {"stateValue": "ALARM", "stateReason": "still up"})
        self.assertGreaterEqual(items[0]["Timestamp"], items[1]["Timestamp"])
        ascending = self.history(ScanBy="TimestampAscending")["AlarmHistoryItems"]
        self.assertEqual(ascending, items[::-1])

    def test_filters_and_the_history_of_a_deleted_alarm(self):
        self.assertEqual(self.history(HistoryItemType="ConfigurationUpdate")["AlarmHistoryItems"], [])
        self.assertEqual(self.history(AlarmTypes=["CompositeAlarm"])["AlarmHistoryItems"], [])
        later = datetime.now(timezone.utc) + timedelta(hours=1)
        self.assertEqual(self.history(StartDate=later)["AlarmHistoryItems"], [])
        self.assertEqual(len(self.history(EndDate=later)["AlarmHistoryItems"]), 2)
        self.cloudwatch.delete_alarms(AlarmNames=[self.name])
        self.assertEqual(len(self.history()["AlarmHistoryItems"]), 2)

    def test_pages_and_tokens_not_handed_out(self):
        first = self.history(MaxRecords=1)
        second = self.history(MaxRecords=1, NextToken=first["NextToken"])
        self.assertEqual(
            [i["HistorySummary"] for i in first["AlarmHistoryItems"] + second["AlarmHistoryItems"]],
            ["Alarm updated from ALARM to OK", "Alarm updated from OK to ALARM"],
        )
        self.assertNotIn("NextToken", second)
        for token in ("bogus", "99999999"):
            with self.subTest(token), self.assertRaises(ClientError) as refused:
                self.history(NextToken=token)
            self.assertEqual(refused.exception.response["Error"]["Code"], "InvalidNextToken")

    def test_the_query_protocol_answers_the_same(self):
        form = {"Action": "DescribeAlarmHistory", "Version": "2010-08-01", "AlarmName": self.name, "MaxRecords": "1"}
        request = urllib.request.Request(
            self.info["endpoint"], data=urllib.parse.urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded",
                     "Authorization": QUERY_AUTH.format(self.info["region"])},
        )
        with urllib.request.urlopen(request) as answer:
            root = ElementTree.fromstring(answer.read())
        found = {element.tag.rsplit("}", 1)[-1]: element.text for element in root.iter()}
        self.assertEqual(found["HistorySummary"], "Alarm updated from ALARM to OK")
        self.assertEqual((found["AlarmName"], found["HistoryItemType"]), (self.name, "StateUpdate"))
        self.assertTrue(found["NextToken"])


if __name__ == "__main__":
    unittest.main()
