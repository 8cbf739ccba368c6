"""The parameters of `states:startExecution`: a state machine starts another
with `arn:aws:states:::states:startExecution` and the API's own parameter
names (`StateMachineArn`, `Name`, `Input`), as AWS documents. moto's executor
hands them to boto3 unchanged, whose Step Functions model spells them
`stateMachineArn`, `name`, `input`, so every such task failed
(States.Runtime 'StateMachineArn'). The patch renames each parameter to its
model member, matching case-insensitively.

AWS documentation:
  * AWS Step Functions Developer Guide, Start a new AWS Step Functions state
    machine from a running execution:
    https://docs.aws.amazon.com/step-functions/latest/dg/connect-stepfunctions.html
  * AWS Step Functions API Reference, StartExecution:
    https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html
"""

import botocore.session
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_sfn as sfn,
)


def apply():
    """Name `states:startExecution` parameters as boto3 does."""
    normalise = sfn.StateTaskServiceSfn._normalise_parameters

    def with_model_names(self, parameters, boto_service_name=None, service_action_name=None):
        normalise(self, parameters, boto_service_name, service_action_name)
        if self._get_boto_service_action() != "start_execution":
            return
        shape = botocore.session.get_session().get_service_model("stepfunctions").operation_model(
            "StartExecution").input_shape
        members = {name.lower(): name for name in shape.members}
        for key in list(parameters):
            member = members.get(key.lower())
            if member and member != key:
                parameters[member] = parameters.pop(key)

    sfn.StateTaskServiceSfn._normalise_parameters = with_model_names
