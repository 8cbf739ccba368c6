"""The execution start time: in a state machine, `$$.Execution.StartTime` is
an ISO 8601 string (`2026-11-26T02:30:00.123Z`); moto passes a Python
datetime, which its own DescribeExecution then fails to serialize. The patch
makes it the string AWS gives.

AWS documentation:
  * AWS Step Functions Developer Guide, Accessing execution data from the
    Context object in Step Functions (Execution.StartTime, "Format: ISO 8601"):
    https://docs.aws.amazon.com/step-functions/latest/dg/input-output-contextobject.html
"""

from datetime import datetime, timezone

from moto.stepfunctions.parser.backend import execution_worker


def apply():
    """Give `$$.Execution.StartTime` as AWS does."""
    execution_data = execution_worker.ExecutionData

    def with_iso_start(**fields):
        start = fields.get("StartTime")
        if isinstance(start, datetime):
            start = start.astimezone(timezone.utc).isoformat(timespec="milliseconds")
            fields["StartTime"] = start.replace("+00:00", "Z")
        return execution_data(**fields)

    execution_worker.ExecutionData = with_iso_start
