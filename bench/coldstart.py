"""Cold start and package size of kiln's ten Lambdas, against the floor and Python + boto3.

For each sample, every binary is started once as a custom runtime against a
fresh Lambda Runtime API on 127.0.0.1 (scripts/local_lambda.py), and timed:
  * init: spawn -> its first GET /runtime/invocation/next (runtime,
    configuration and clients ready), and
  * init + first event: spawn -> its answer to one real event, handled
    against the local emulator.

Every sample is fresh work: a build of its own (a new build id, and a recipe
copy whose setup script carries it, so a new fingerprint, and which
distributes to a second region), through all ten functions in order, each
event carrying the previous answers: start-build, resolve-source,
launch-builder, run-ssm-provision, create-image, test-image, copy-image
(`start`: the copy in the second region), promote (prod to the sample's
image), audit-fleet, cleanup-build (the image and its copy). No function
meets work it has done before.

The floor (bench/floor, `lambda-floor`) is a bare lambda_runtime function
with no AWS client, started the same way; every figure is also given as a
multiple of its. The emulator's (moto's) answer time is measured in a
second chain per sample, through a timing proxy in front of the emulator;
in that chain each function's own time is measured too: its wall time
minus the time it had a call outstanding at the proxy, per invocation.
CPU is the process's user + system time, init included.
The Python baseline (bench/baseline.py: resolve-source's client setup and
three calls in Python 3 + boto3) is compared with resolve-source only, the
one like-for-like pair. Sizes: each binary zipped as `bootstrap`.

Usage: .venv/bin/python bench/coldstart.py --target-dir target/release [--runs N] [--env NAME=VALUE ...]
(--env adds to the functions' environment: for example SSL_CERT_FILE=one.pem
to compare a trust store of one root with the compiled-in roots)
"""

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import local_lambda  # noqa: E402
from timing_proxy import TimingProxy  # noqa: E402

RECIPE = "ubuntu-base"
FLOOR = "lambda-floor"
PYTHON = "python+boto3"
# In the order a sample runs them.
FUNCTIONS = ["start-build", "resolve-source", "launch-builder", "run-ssm-provision",
             "create-image", "test-image", "copy-image", "promote", "audit-fleet", "cleanup-build"]
# The recipe's distribution region: copy-image copies each sample's image there.
AWAY = "eu-west-1"
# The function Python's baseline does the same calls as.
LIKE_FOR_LIKE = "resolve-source"


def run_once(command, env, event):
    """(init ms, init + first event ms, CPU ms, answer) of one cold start."""
    answer = local_lambda.invoke(command, env, json.dumps(event).encode(), timeout=60)
    if answer.error:
        sys.exit(f"{command[0]} answered an error: {answer.body.decode()}\n{answer.stderr[-2000:]}")
    return answer.ready_after * 1000, answer.answered_after * 1000, answer.cpu * 1000, json.loads(answer.body)


def zipped_size(binary):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        archive.writestr(info, binary.read_bytes(), compress_type=zipfile.ZIP_DEFLATED)
    return len(buffer.getvalue())


def start_emulator():
    process = subprocess.Popen(
        [str(ROOT / "scripts/emulator"), "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    seeded = json.loads(process.stdout.readline())
    return process, seeded


class Bench:
    def __init__(self, target, env, seeded, recipes):
        self.target = target
        self.env = env
        self.recipes = recipes
        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                region_name=seeded["region"])
        self.ec2 = session.client("ec2", endpoint_url=seeded["endpoint"])
        self.ssm = session.client("ssm", endpoint_url=seeded["endpoint"])
        self.ec2_away = session.client("ec2", endpoint_url=seeded["endpoint"], region_name=AWAY)

    def recipe_root(self, build_id):
        """A copy of the recipe whose setup script names `build_id`: a new fingerprint."""
        root = self.recipes / build_id
        shutil.copytree(ROOT / "images" / RECIPE, root / RECIPE)
        with open(root / RECIPE / "setup.sh", "a") as script:
            script.write(f"\n# bench sample {build_id}\n")
        with open(root / RECIPE / "recipe.toml", "a") as recipe:
            recipe.write(f'\n[distribution]\nregions = ["{AWAY}"]\n')
        return root

    def chain(self, build_id, endpoint, step):
        """Runs every function once for a build of its own; `step(name, command, env, event)`
        runs one and returns its answer."""
        env = dict(self.env, AWS_ENDPOINT_URL=endpoint,
                   KILN_RECIPE_ROOT=str(self.recipe_root(build_id)))
        run = lambda name, event: step(name, [str(self.target / name)], env, event)  # noqa: E731
        started = run("start-build", {"recipe": RECIPE, "reason": "schedule", "wait_seconds": 0})
        assert started[0]["build"] and not started[0]["existing"], started
        state = {"recipe": RECIPE, "build_id": build_id, "reason": "manual"}
        state["source"] = run("resolve-source", state)
        assert not state["source"]["skip"], state["source"]
        state["builder"] = run("launch-builder", state)
        state["provision"] = run("run-ssm-provision", dict(state, action="start"))
        image = run("create-image", dict(state, action="start"))
        # The emulator makes images at once; the test launches from it.
        state["image"] = dict(image, state="available")
        state["test"] = run("test-image", dict(state, action="launch"))
        # What the test's passing poll does: the image may now be promoted.
        self.ec2.create_tags(Resources=[image["image_id"]], Tags=[{"Key": "kiln:stage", "Value": "tested"}])
        state["distribution"] = run("copy-image", dict(state, action="start"))
        # What the copies' polls find: the copy is available (promote refuses
        # an image without one in every distribution region).
        copied = [c["image_id"] for c in state["distribution"]["copies"]]
        while any(i["State"] != "available" for i in self.ec2_away.describe_images(ImageIds=copied)["Images"]):
            time.sleep(0.05)
        moved = run("promote", {"action": "promote", "recipe": RECIPE, "channel": "prod",
                                "image_id": image["image_id"], "reason": f"bench {build_id}"})
        assert moved["status"] == "written", moved
        # The emulator validates the pointer on its second read (as the
        # release machine's confirm would find it): the next sample's move
        # starts from a validated pointer.
        for _ in range(5):
            try:
                if self.ssm.get_parameter(Name=f"/kiln/{RECIPE}/prod")["Parameter"]["Value"] == image["image_id"]:
                    break
            except self.ssm.exceptions.ParameterNotFound:
                pass
        run("audit-fleet", {"channel": "prod"})
        run("cleanup-build", dict(state, error={"Error": "Bench", "Cause": "the benchmark's cleanup"}))
        return state


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-dir", default=str(ROOT / "target/release"))
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="set in every function's environment (repeatable)")
    args = parser.parse_args()
    if any("=" not in item for item in args.env):
        parser.error("--env takes NAME=VALUE")
    extra = dict(item.split("=", 1) for item in args.env)
    target = Path(args.target_dir)

    emulator, seeded = start_emulator()
    proxy = TimingProxy(seeded["endpoint"])
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "AWS_REGION": seeded["region"],
        "AWS_DEFAULT_REGION": seeded["region"],
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": seeded["endpoint"],
        "KILN_RECIPE_ROOT": str(ROOT / "images"),
        "KILN_SOURCE_PARAMETER": seeded["source_parameter"],
        "KILN_INSTANCE_PROFILE": seeded["instance_profile"],
        **extra,
    }
    samples = {name: [] for name in [FLOOR, *FUNCTIONS, PYTHON]}
    emulator_time = {name: [] for name in FUNCTIONS}
    run_tag = uuid.uuid4().hex[:6]
    try:
        sfn = boto3.client("stepfunctions", endpoint_url=seeded["endpoint"], region_name=seeded["region"],
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        # A build state machine that only records its executions.
        env["KILN_STATE_MACHINE_ARN"] = sfn.create_state_machine(
            name="kiln-bench", roleArn=f"arn:aws:iam::{seeded['account']}:role/kiln-bench",
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}),
        )["stateMachineArn"]
        with tempfile.TemporaryDirectory(prefix="kiln-bench-") as recipes:
            bench = Bench(target, env, seeded, Path(recipes))

            def timed(name, command, env, event):
                *sample, answer = run_once(command, env, event)
                samples[name].append(sample)
                return answer

            def accounted(name, command, env, event):
                proxy.take()
                answer = local_lambda.invoke(command, env, json.dumps(event).encode(), timeout=60)
                if answer.error:
                    sys.exit(f"{name} answered an error: {answer.body.decode()}")
                emu_ms, calls, held_ms = proxy.take()
                emulator_time[name].append((emu_ms, calls, answer.answered_after * 1000 - held_ms))
                return json.loads(answer.body)

            for i in range(args.runs):
                samples[FLOOR].append(run_once([str(target / FLOOR)], env, {"sample": i})[:3])
                state = bench.chain(f"bench-{run_tag}-{i:02}", seeded["endpoint"], timed)
                trigger = {k: state[k] for k in ("recipe", "build_id", "reason")}
                python = [str(Path(sys.executable)), str(ROOT / "bench/baseline.py")]
                samples[PYTHON].append(run_once(python, env, trigger)[:3])
                bench.chain(f"bench-{run_tag}-{i:02}-proxied", proxy.url, accounted)
    finally:
        proxy.shutdown()
        emulator.stdin.close()
        emulator.wait(10)

    report(samples, emulator_time, target, args.runs)


def report(samples, emulator_time, target, runs):
    def med(name, i):
        return statistics.median(s[i] for s in samples[name])

    def emulated(name, i):
        return statistics.median(e[i] for e in emulator_time[name])

    floor_init, floor_total, floor_cpu = med(FLOOR, 0), med(FLOOR, 1), med(FLOOR, 2)
    py_init, py_total, py_cpu = med(PYTHON, 0), med(PYTHON, 1), med(PYTHON, 2)
    print(f"cold start, medians of {runs} samples, each a build of its own (fresh work)")
    print("| function | init ms | init / floor | init + first event ms | (init + event) / floor "
          "| emulator ms (calls) | own ms (no call outstanding), / floor | CPU ms, / floor "
          "| Python / kiln (like-for-like) | zipped MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    size = zipped_size(target / FLOOR) / 1e6
    print(f"| floor (bare lambda_runtime) | {floor_init:.1f} | 1.0x | {floor_total:.1f} | 1.0x | 0 (0) "
          f"| {floor_total:.1f}, 1.0x | {floor_cpu:.1f}, 1.0x | — | {size:.2f} |")
    for name in FUNCTIONS:
        init, total, cpu = med(name, 0), med(name, 1), med(name, 2)
        emu_ms, calls, own = emulated(name, 0), emulated(name, 1), emulated(name, 2)
        if name == LIKE_FOR_LIKE:
            python = f"init {py_init / init:.1f}x, init + event {py_total / total:.1f}x, CPU {py_cpu / cpu:.1f}x"
        else:
            python = "— (no baseline)"
        size = zipped_size(target / name) / 1e6
        print(f"| {name} | {init:.1f} | {init / floor_init:.2f}x | {total:.1f} | {total / floor_total:.2f}x "
              f"| {emu_ms:.1f} ({calls:g}) | {own:.1f}, {own / floor_total:.2f}x | {cpu:.1f}, {cpu / floor_cpu:.2f}x "
              f"| {python} | {size:.2f} |")
    print(f"| Python 3 + boto3, resolve-source's calls | {py_init:.1f} | {py_init / floor_init:.1f}x "
          f"| {py_total:.1f} | {py_total / floor_total:.1f}x | | | {py_cpu:.1f}, {py_cpu / floor_cpu:.1f}x "
          "| 1.0x | — |")
    spread = {name: (min(s[1] for s in samples[name]), max(s[1] for s in samples[name])) for name in samples}
    print("init + first event, min-max over the samples: "
          + ", ".join(f"{name} {lo:.1f}-{hi:.1f}" for name, (lo, hi) in spread.items()))
    own = {name: (min(e[2] for e in emulator_time[name]), max(e[2] for e in emulator_time[name]))
           for name in FUNCTIONS}
    print("own time, min-max over the samples: "
          + ", ".join(f"{name} {lo:.1f}-{hi:.1f}" for name, (lo, hi) in own.items()))


if __name__ == "__main__":
    main()
