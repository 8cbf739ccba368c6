"""AssumeRole by the role's trust policy (assume_role.py), against the shared
emulator (emulator.py): the caller is the `testing` key (account
123456789012), an IAM user's key, or a role session."""

import json
import unittest
import uuid

import boto3
from botocore.exceptions import ClientError

from .emulator import EmulatorTestCase

MEMBER = "210987654321"


def trust(principal, **extra):
    statement = {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole", **extra}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


class AssumeRoleTest(EmulatorTestCase):
    def setUp(self):
        self.iam, self.sts = self.client("iam", account=MEMBER), self.client("sts")

    def role(self, policy):
        name = f"trusting-{uuid.uuid4()}"
        return self.iam.create_role(RoleName=name, AssumeRolePolicyDocument=policy)["Role"]["Arn"]

    def assume(self, role_arn, sts=None, **kwargs):
        return (sts or self.sts).assume_role(RoleArn=role_arn, RoleSessionName="test", **kwargs)

    def denied(self, role_arn, sts=None, **kwargs):
        with self.assertRaises(ClientError) as denied:
            self.assume(role_arn, sts, **kwargs)
        self.assertEqual(denied.exception.response["Error"]["Code"], "AccessDenied")
        return denied.exception.response["Error"]["Message"]

    def sts_of(self, credentials):
        session = boto3.Session(
            aws_access_key_id=credentials["AccessKeyId"], aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials.get("SessionToken"), region_name=self.info["region"],
        )
        return session.client("sts", endpoint_url=self.info["endpoint"])

    def test_a_missing_role_is_denied_and_the_seeded_member_role_assumed(self):
        self.denied(f"arn:aws:iam::{self.info['account']}:role/missing")
        assumed = self.assume(self.info["member_role"])
        self.assertEqual(
            assumed["AssumedRoleUser"]["Arn"], "arn:aws:sts::210987654321:assumed-role/kiln-audit/test"
        )

    def test_the_caller_s_account_must_be_trusted(self):
        account = self.info["account"]
        for principal in ({"AWS": account}, {"AWS": f"arn:aws:iam::{account}:root"}, {"AWS": "*"}, "*"):
            with self.subTest(principal):
                self.assume(self.role(trust(principal)))
        for principal in ({"AWS": "arn:aws:iam::999999999999:root"}, {"Service": "ec2.amazonaws.com"},
                          {"AWS": f"arn:aws:iam::{account}:user/alice"}):
            with self.subTest(principal):
                role_arn = self.role(trust(principal))
                message = self.denied(role_arn)
                self.assertEqual(
                    message,
                    f"User: arn:aws:sts::{account}:user/moto is not authorized to perform: sts:AssumeRole"
                    f" on resource: {role_arn}",
                )

    def test_a_user_or_role_principal_trusts_that_user_or_role_only(self):
        iam = self.client("iam")
        user = iam.create_user(UserName=f"user-{uuid.uuid4()}")["User"]
        alice = self.sts_of(iam.create_access_key(UserName=user["UserName"])["AccessKey"])
        by_user = self.role(trust({"AWS": user["Arn"]}))
        self.assume(by_user, alice)
        self.denied(by_user)
        first = self.role(trust({"AWS": self.info["account"]}))
        session = self.sts_of(self.assume(first)["Credentials"])
        by_role = self.role(trust({"AWS": first}))
        self.assume(by_role, session)
        self.denied(by_role)

    def test_an_external_id_condition_and_a_deny(self):
        external = self.role(trust(
            {"AWS": self.info["account"]}, Condition={"StringEquals": {"sts:ExternalId": "kiln"}}
        ))
        self.denied(external)
        self.denied(external, ExternalId="other")
        self.assume(external, ExternalId="kiln")
        statements = [
            {"Effect": "Allow", "Principal": {"AWS": self.info["account"]}, "Action": "sts:AssumeRole"},
            {"Effect": "Deny", "Principal": "*", "Action": "sts:*"},
        ]
        self.denied(self.role(json.dumps({"Version": "2012-10-17", "Statement": statements})))


if __name__ == "__main__":
    unittest.main()
