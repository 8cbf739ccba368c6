"""The audit machine's local form (pipeline.local_form): a Distributed Map's
ItemBatcher becomes the ItemSelector that builds AWS's batch input, the
tolerance moto cannot read goes, and nothing else changes."""

import json
import unittest

from kiln_emulator.pipeline import local_form

MAP = {
    "Type": "Map",
    "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "Parameters": {"Bucket": "b", "Key.$": "$.items"}},
    "ItemBatcher": {"MaxItemsPerBatch": 10, "BatchInput": {"run.$": "$.run"}},
    "ToleratedFailurePercentage": 10,
    "MaxConcurrency": 10,
    "ItemProcessor": {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
        "StartAt": "Part",
        "States": {"Part": {"Type": "Pass", "End": True}},
    },
    "End": True,
}


class LocalFormTest(unittest.TestCase):
    def test_a_batcher_becomes_the_selector_of_a_one_item_batch(self):
        local = json.loads(local_form(json.dumps({"StartAt": "Accounts", "States": {"Accounts": MAP}})))
        state = local["States"]["Accounts"]
        self.assertNotIn("ItemBatcher", state)
        self.assertNotIn("ToleratedFailurePercentage", state)
        self.assertEqual(state["ItemSelector"], {
            "Items.$": "States.Array($$.Map.Item.Value)",
            "BatchInput": {"run.$": "$.run"},
        })
        kept = {k: v for k, v in MAP.items() if k not in ("ItemBatcher", "ToleratedFailurePercentage")}
        self.assertEqual({k: v for k, v in state.items() if k != "ItemSelector"}, kept)

    def test_a_definition_without_a_batcher_is_unchanged(self):
        plain = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
        self.assertEqual(json.loads(local_form(json.dumps(plain))), plain)


if __name__ == "__main__":
    unittest.main()
