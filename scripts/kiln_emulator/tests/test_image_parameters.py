"""`aws:ec2:image` parameters validated asynchronously (image_parameters.py):
the new version shows from the second read after the put, an invalid value
never does; against the shared emulator (emulator.py)."""

import unittest
import uuid

from botocore.exceptions import ClientError

from .emulator import CURRENT, PREVIOUS, EmulatorTestCase


class ImageParameterTest(EmulatorTestCase):
    def setUp(self):
        self.ssm = self.client("ssm")
        self.name = f"/kiln-test/{uuid.uuid4()}/prod"

    def put(self, value, data_type="aws:ec2:image", ssm=None):
        return (ssm or self.ssm).put_parameter(
            Name=self.name, Value=value, Type="String", DataType=data_type, Overwrite=True
        )["Version"]

    def current(self, ssm=None):
        """GetParameter: (version, value), or None for ParameterNotFound."""
        try:
            found = (ssm or self.ssm).get_parameter(Name=self.name)["Parameter"]
        except ClientError as error:
            self.assertEqual(error.response["Error"]["Code"], "ParameterNotFound")
            return None
        return found["Version"], found["Value"]

    def history(self):
        return [(p["Version"], p["Value"]) for p in self.ssm.get_parameter_history(Name=self.name)["Parameters"]]

    def test_a_new_parameter_shows_from_the_second_read(self):
        self.assertEqual(self.put(self.image(CURRENT)), 1)
        self.assertIsNone(self.current())
        self.assertEqual(self.current(), (1, self.image(CURRENT)))
        self.assertEqual(self.current(), (1, self.image(CURRENT)))

    def test_an_update_shows_from_the_second_read_of_any_kind(self):
        self.put(self.image(PREVIOUS))
        self.current(), self.current()
        self.assertEqual(self.put(self.image(CURRENT)), 2)
        self.assertEqual(self.history(), [(1, self.image(PREVIOUS))])
        parameters = self.ssm.get_parameters_by_path(Path=self.name.rsplit("/", 1)[0])["Parameters"]
        self.assertEqual([(p["Version"], p["Value"]) for p in parameters], [(2, self.image(CURRENT))])
        self.assertEqual(self.ssm.get_parameters(Names=[self.name])["Parameters"][0]["Version"], 2)

    def test_an_invalid_value_is_never_shown_nor_its_version(self):
        self.put(self.image(PREVIOUS))
        self.current(), self.current()
        for invalid in ("ami-0123456789abcdef0", "not-an-image"):
            with self.subTest(invalid):
                self.put(invalid)
                self.current(), self.current(), self.current()
                self.assertEqual(self.current(), (1, self.image(PREVIOUS)))
        self.assertEqual(self.put(self.image(CURRENT)), 4)
        self.history(), self.history()
        self.assertEqual(self.history(), [(1, self.image(PREVIOUS)), (4, self.image(CURRENT))])

    def test_a_new_parameter_with_an_invalid_value_is_never_created(self):
        self.assertEqual(self.put("ami-0123456789abcdef0"), 1)
        self.current(), self.current()
        self.assertIsNone(self.current())
        self.assertEqual(self.ssm.get_parameters(Names=[self.name])["InvalidParameters"], [self.name])
        self.assertEqual(self.put(self.image(CURRENT)), 1)

    def test_an_image_of_another_account_is_invalid(self):
        other = self.client("ec2", account=str(uuid.uuid4().int)[:12])
        launched = other.run_instances(ImageId=self.image(CURRENT), MinCount=1, MaxCount=1)["Instances"][0]
        private = other.create_image(InstanceId=launched["InstanceId"], Name="private")["ImageId"]
        self.put(private)
        self.current(), self.current()
        self.assertIsNone(self.current())

    def test_a_put_while_validating_is_refused_and_text_is_shown_at_once(self):
        self.put(self.image(PREVIOUS))
        for data_type in ("aws:ec2:image", "text"):
            with self.subTest(data_type), self.assertRaises(ClientError) as refused:
                self.put(self.image(CURRENT), data_type)
            self.assertEqual(refused.exception.response["Error"]["Code"], "TooManyUpdates")
        self.current(), self.current()
        self.assertEqual(self.put("plain text", "text"), 2)
        self.assertEqual(self.current(), (2, "plain text"))


if __name__ == "__main__":
    unittest.main()
