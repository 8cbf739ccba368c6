"""CloudWatch DescribeAlarmHistory: moto does not implement it (the action
is unknown to its CloudWatch), and keeps no history AWS would show; it does
not evaluate alarms on PutMetricData either, so an alarm's state changes
only by SetAlarmState. On AWS every change of an alarm's state is a
StateUpdate history item (Timestamp, AlarmName, AlarmType, HistoryItemType,
HistorySummary "Alarm updated from OK to ALARM", HistoryData: JSON with
"version" "1.0", "oldState" and "newState", each with stateValue,
stateReason and, when there is one, stateReasonData), kept even after the
alarm is deleted.

The patch records one StateUpdate item for every change of an alarm's state
value (moto's Alarm.update_state, which SetAlarmState goes through; a
SetAlarmState to the state the alarm is already in changes nothing and
records nothing, the documentation saying nothing of it), per account and
region, and answers DescribeAlarmHistory from it with AWS's filters:
AlarmName, AlarmTypes (MetricAlarm only when omitted, as documented),
HistoryItemType, StartDate and EndDate (inclusive), ScanBy
(TimestampDescending by default, or TimestampAscending), MaxRecords (1 to
100; 100 when omitted, the documentation naming no default) and NextToken: a
token the emulator did not hand out is InvalidNextToken ("The next token
specified is invalid.", the error's documented description), never a
restart. No ConfigurationUpdate or Action items are recorded. moto's
CloudWatch answers both the awsQuery protocol (kiln's SDK) and the JSON/CBOR
ones (boto3's) from the same action, so this one does too.

AWS documentation:
  * Amazon CloudWatch API Reference, DescribeAlarmHistory (the parameters;
    "CloudWatch retains the history of an alarm even if you delete the
    alarm"; InvalidNextToken):
    https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_DescribeAlarmHistory.html
  * Amazon CloudWatch API Reference, AlarmHistoryItem:
    https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_AlarmHistoryItem.html
  * Amazon CloudWatch API Reference, SetAlarmState:
    https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_SetAlarmState.html
  * AWS CLI Command Reference, cloudwatch describe-alarm-history (the
    example output: HistoryData and HistorySummary as AWS writes them):
    https://docs.aws.amazon.com/cli/latest/reference/cloudwatch/describe-alarm-history.html
"""

import json
from datetime import datetime, timezone

from moto.cloudwatch.exceptions import CloudWatchException, ValidationError
from moto.cloudwatch.models import Alarm, CloudWatchBackend, cloudwatch_backends
from moto.cloudwatch.responses import CloudWatchResponse
from moto.core.responses import ActionResult

SCANS = ("TimestampDescending", "TimestampAscending")
MAX_RECORDS = 100


class InvalidNextToken(CloudWatchException):
    code = "InvalidNextToken"
    message = "The next token specified is invalid."


def utc(moment):
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def state(value, reason, reason_data):
    """A state as HistoryData gives it."""
    shown = {"stateValue": value, "stateReason": reason}
    try:
        data = json.loads(reason_data or "{}")
    except ValueError:
        data = None
    if data:
        shown["stateReasonData"] = data
    return shown


def record(alarm, old):
    """Records the change of `alarm`'s state from `old` (value, reason, data)."""
    backend = cloudwatch_backends[alarm.alarm_arn.split(":")[4]][alarm.region_name]
    new = (alarm.state_value, alarm.state_reason, alarm.state_reason_data)
    data = {"version": "1.0", "oldState": state(*old), "newState": state(*new)}
    backend.alarm_history.append({
        "AlarmName": alarm.name,
        "AlarmType": "CompositeAlarm" if alarm.rule else "MetricAlarm",
        "Timestamp": alarm.state_updated_timestamp,
        "HistoryItemType": "StateUpdate",
        "HistorySummary": f"Alarm updated from {old[0]} to {new[0]}",
        "HistoryData": json.dumps(data, separators=(",", ":")),
    })


def matches(item, name, types, item_type, start, end):
    moment = utc(item["Timestamp"])
    return (
        (not name or item["AlarmName"] == name)
        and item["AlarmType"] in types
        and (not item_type or item["HistoryItemType"] == item_type)
        and (start is None or moment >= utc(start))
        and (end is None or moment <= utc(end))
    )


def describe_alarm_history(self):
    history = self.cloudwatch_backend.alarm_history
    scan = self._get_param("ScanBy") or SCANS[0]
    if scan not in SCANS:
        raise ValidationError(
            f"1 validation error detected: Value '{scan}' at 'scanBy' failed to satisfy constraint:"
            f" Member must satisfy enum value set: [{', '.join(SCANS)}]"
        )
    limit = self._get_int_param("MaxRecords")
    if limit is not None and not 1 <= limit <= MAX_RECORDS:
        bound = "greater than or equal to 1" if limit < 1 else f"less than or equal to {MAX_RECORDS}"
        raise ValidationError(
            f"1 validation error detected: Value '{limit}' at 'maxRecords' failed to satisfy constraint:"
            f" Member must have value {bound}"
        )
    order = list(range(len(history)))
    if scan == SCANS[0]:
        order.reverse()
    token, position = self._get_param("NextToken"), 0
    if token:
        if not token.isdigit() or int(token) >= len(history):
            raise InvalidNextToken()
        position = order.index(int(token)) + 1
    wanted = (
        self._get_param("AlarmName"), self._get_param("AlarmTypes") or ["MetricAlarm"],
        self._get_param("HistoryItemType"), self._get_param("StartDate"), self._get_param("EndDate"),
    )
    found = [i for i in order[position:] if matches(history[i], *wanted)]
    page = found[: limit or MAX_RECORDS]
    more = len(found) > len(page)
    return ActionResult({
        "AlarmHistoryItems": [history[i] for i in page],
        "NextToken": str(page[-1]) if more else None,
    })


def apply():
    """Record alarm state changes and answer DescribeAlarmHistory."""
    backend_init = CloudWatchBackend.__init__

    def with_history(self, *args, **kwargs):
        backend_init(self, *args, **kwargs)
        self.alarm_history = []

    CloudWatchBackend.__init__ = with_history
    update_state = Alarm.update_state

    def recorded(self, reason, reason_data, state_value):
        old = (self.state_value, self.state_reason, self.state_reason_data)
        update_state(self, reason, reason_data, state_value)
        if state_value != old[0]:
            record(self, old)

    Alarm.update_state = recorded
    CloudWatchResponse.describe_alarm_history = describe_alarm_history
