"""Auto Scaling instance refreshes (instance_refresh.py): the steps, the
instances replaced at each, rollbacks manual and automatic, and AWS's rules
on when a rollback is possible; against the shared emulator (emulator.py)."""

import unittest
import uuid

from botocore.exceptions import ClientError

from .emulator import CURRENT, PREVIOUS, EmulatorTestCase


class InstanceRefreshTest(EmulatorTestCase):
    def setUp(self):
        self.ec2, self.autoscaling = self.client("ec2"), self.client("autoscaling")
        self.name = f"refreshed-{uuid.uuid4()}"

    def group_of(self, version="1", first_image=None):
        """A group of two instances on `version` of a template whose version 1
        launches PREVIOUS (or `first_image`) and version 2 CURRENT."""
        self.ec2.create_launch_template(
            LaunchTemplateName=self.name, LaunchTemplateData={"ImageId": first_image or self.image(PREVIOUS)}
        )
        self.ec2.create_launch_template_version(
            LaunchTemplateName=self.name, LaunchTemplateData={"ImageId": self.image(CURRENT)}
        )
        self.autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=self.name, LaunchTemplate={"LaunchTemplateName": self.name, "Version": version},
            MinSize=2, MaxSize=2, DesiredCapacity=2, AvailabilityZones=[f"{self.info['region']}a"],
        )

    def start(self, version="2", **preferences):
        desired = {"LaunchTemplate": {"LaunchTemplateName": self.name, "Version": version}}
        return self.autoscaling.start_instance_refresh(
            AutoScalingGroupName=self.name, DesiredConfiguration=desired, Preferences=preferences
        )["InstanceRefreshId"]

    def step(self):
        """One DescribeInstanceRefreshes: the refresh after its next step."""
        return self.autoscaling.describe_instance_refreshes(AutoScalingGroupName=self.name)["InstanceRefreshes"][0]

    def group(self):
        """The group's launch template version, and its instances' images by id."""
        group = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[self.name])["AutoScalingGroups"][0]
        ids = [instance["InstanceId"] for instance in group["Instances"]]
        reservations = self.ec2.describe_instances(InstanceIds=ids)["Reservations"]
        images = {i["InstanceId"]: i["ImageId"] for r in reservations for i in r["Instances"]}
        return group["LaunchTemplate"]["Version"], images

    def state(self, instance_id):
        reservation = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]
        return reservation["Instances"][0]["State"]["Name"]

    def refused(self, call, code):
        with self.assertRaises(ClientError) as refused:
            call()
        self.assertEqual(refused.exception.response["Error"]["Code"], code)
        return refused.exception.response["Error"]["Message"]

    def test_half_the_instances_at_50_percent_the_rest_and_the_version_at_successful(self):
        self.group_of()
        _, before = self.group()
        self.start()
        self.refused(self.start, "InstanceRefreshInProgress")
        self.assertEqual((self.step()["Status"], self.step()["PercentageComplete"]), ("InProgress", 50))
        version, half = self.group()
        self.assertEqual(version, "1")
        self.assertEqual(sorted(half.values()), sorted([self.image(PREVIOUS), self.image(CURRENT)]))
        self.assertEqual(len(set(half) & set(before)), 1)
        refresh = self.step()
        self.assertEqual((refresh["Status"], refresh["PercentageComplete"]), ("Successful", 100))
        self.assertEqual(self.step()["Status"], "Successful")
        version, after = self.group()
        self.assertEqual((version, set(after.values())), ("2", {self.image(CURRENT)}))
        self.assertFalse(set(after) & set(before))
        self.assertEqual({self.state(i) for i in before}, {"terminated"})

    def test_a_manual_rollback_sends_the_replaced_instances_back_and_only_once(self):
        self.group_of()
        self.start()
        self.step(), self.step()
        _, half = self.group()
        new = [i for i, image in half.items() if image == self.image(CURRENT)]
        self.autoscaling.rollback_instance_refresh(AutoScalingGroupName=self.name)
        self.refused(lambda: self.autoscaling.rollback_instance_refresh(AutoScalingGroupName=self.name),
                     "ActiveInstanceRefreshNotFound")
        rolling = self.step()
        self.assertEqual(rolling["Status"], "RollbackSuccessful")
        details = rolling["RollbackDetails"]
        self.assertEqual((details["PercentageCompleteOnRollback"], details["InstancesToUpdateOnRollback"]), (50, 1))
        version, after = self.group()
        self.assertEqual((version, set(after.values()), len(after)), ("1", {self.image(PREVIOUS)}, 2))
        self.assertEqual(self.state(new[0]), "terminated")
        self.refused(lambda: self.autoscaling.rollback_instance_refresh(AutoScalingGroupName=self.name),
                     "ActiveInstanceRefreshNotFound")

    def test_an_alarm_rolls_back_through_rollback_in_progress(self):
        cloudwatch = self.client("cloudwatch")
        cloudwatch.put_metric_alarm(
            AlarmName=self.name, MetricName="errors", Namespace="kiln", Statistic="Sum", Period=60,
            EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold",
        )
        self.group_of()
        self.start(AutoRollback=True, AlarmSpecification={"Alarms": [self.name]})
        self.step(), self.step()
        cloudwatch.set_alarm_state(AlarmName=self.name, StateValue="ALARM", StateReason="test")
        rolling = self.step()
        self.assertEqual(rolling["Status"], "RollbackInProgress")
        self.assertIn(self.name, rolling["StatusReason"])
        self.assertEqual(rolling["RollbackDetails"]["PercentageCompleteOnRollback"], 50)
        self.assertIn(self.image(CURRENT), self.group()[1].values())
        self.refused(lambda: self.autoscaling.rollback_instance_refresh(AutoScalingGroupName=self.name),
                     "ActiveInstanceRefreshNotFound")
        self.assertEqual(self.step()["Status"], "RollbackSuccessful")
        version, after = self.group()
        self.assertEqual((version, set(after.values())), ("1", {self.image(PREVIOUS)}))

    def test_a_rollback_needs_the_group_s_current_version_numbered_and_its_image_literal(self):
        for version, image in (("$Latest", None), ("$Default", None), ("1", "resolve:ssm:/kiln/base/prod")):
            with self.subTest(version=version, image=image):
                self.name = f"refreshed-{uuid.uuid4()}"
                self.group_of(version, image)
                message = self.refused(lambda: self.start(AutoRollback=True), "ValidationError")
                self.assertIn("AutoRollback", message)
                self.start()
                self.step()
                self.refused(lambda: self.autoscaling.rollback_instance_refresh(AutoScalingGroupName=self.name),
                             "IrreversibleInstanceRefresh")
                self.assertEqual(self.step()["PercentageComplete"], 50)

    def test_auto_rollback_needs_a_desired_configuration_and_not_a_fixed_desired_version(self):
        self.group_of()
        message = self.refused(
            lambda: self.autoscaling.start_instance_refresh(
                AutoScalingGroupName=self.name, Preferences={"AutoRollback": True}),
            "ValidationError",
        )
        self.assertIn("DesiredConfiguration parameter is empty", message)
        self.start("$Latest", AutoRollback=True)
        self.assertEqual(self.step()["Status"], "InProgress")

    def test_at_most_10_alarms(self):
        self.group_of()
        alarms = [f"alarm-{n}" for n in range(11)]
        message = self.refused(lambda: self.start(AlarmSpecification={"Alarms": alarms}), "ValidationError")
        self.assertIn("10", message)
        self.assertEqual(
            self.autoscaling.describe_instance_refreshes(AutoScalingGroupName=self.name)["InstanceRefreshes"], [])
        self.start(AlarmSpecification={"Alarms": alarms[:10]})
        self.assertEqual(self.step()["Preferences"]["AlarmSpecification"]["Alarms"], alarms[:10])

    def test_a_token_not_handed_out_is_an_error(self):
        self.group_of()
        self.start()
        self.refused(
            lambda: self.autoscaling.describe_instance_refreshes(AutoScalingGroupName=self.name, NextToken="bogus"),
            "InvalidNextToken",
        )


if __name__ == "__main__":
    unittest.main()
