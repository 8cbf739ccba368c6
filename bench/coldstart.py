"""Cold start and package size of kiln's Lambda binaries, against Python + boto3.

For each release binary, N times: start a Lambda Runtime API on 127.0.0.1
(scripts/local_lambda.py), spawn the binary as a custom runtime, and time
  * init: spawn -> its first GET /runtime/invocation/next (runtime, config and
    clients ready), and
  * first event: spawn -> the response to one real event, handled against the
    local emulator (the events chain: resolve -> launch -> provision -> image
    -> test -> cleanup).
The baseline (bench/baseline.py) is resolve-source in Python 3 + boto3 with
the same client setup and calls, measured the same way. Reports medians, the
ratios, and each binary stripped and zipped as a Lambda package (`bootstrap`).

Usage: .venv/bin/python bench/coldstart.py --target-dir target/release [--runs N]
"""

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import local_lambda  # noqa: E402
# In build order: each function's answer is part of the next one's event.
FUNCTIONS = ["resolve-source", "launch-builder", "run-ssm-provision", "create-image",
             "test-image", "cleanup-build"]
ACTIONS = {"run-ssm-provision": "start", "create-image": "start", "test-image": "launch"}
RESULT_KEYS = {"resolve-source": "source", "launch-builder": "builder",
               "run-ssm-provision": "provision", "create-image": "image",
               "test-image": "test", "cleanup-build": "cleanup"}


def run_once(command, env, event):
    answer = local_lambda.invoke(command, env, json.dumps(event).encode(), timeout=60)
    if answer.error:
        sys.exit(f"{command[0]} answered an error: {answer.body.decode()}\n{answer.stderr[-2000:]}")
    return answer.ready_after * 1000, answer.answered_after * 1000, json.loads(answer.body)


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-dir", default=str(ROOT / "target/release"))
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    target = Path(args.target_dir)

    emulator, seeded = start_emulator()
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
    }

    state = {"recipe": "ubuntu-base", "build_id": "bench-coldstart", "reason": "manual"}
    results = {}
    try:
        for name in FUNCTIONS:
            event = dict(state)
            if name in ACTIONS:
                event["action"] = ACTIONS[name]
            samples = [run_once([str(target / name)], env, event) for _ in range(args.runs)]
            answer = samples[-1][2]
            if name == "create-image":
                # The emulator makes images at once; the test launches from it.
                answer["state"] = "available"
            state[RESULT_KEYS[name]] = answer
            results[name] = samples
        python = [str(Path(sys.executable)), str(ROOT / "bench/baseline.py")]
        results["python+boto3"] = [run_once(python, env, state) for _ in range(args.runs)]
    finally:
        emulator.stdin.close()
        emulator.wait(10)

    def median(samples, i):
        return statistics.median(s[i] for s in samples)

    base_init = median(results["python+boto3"], 0)
    base_total = median(results["python+boto3"], 1)
    print(f"cold start, median of {args.runs} runs each (spawn -> first /next, spawn -> first event answered)")
    print(f"{'function':<20}{'init ms':>10}{'event ms':>10}{'init x':>9}{'event x':>9}{'zipped MB':>11}")
    for name, samples in results.items():
        init, total = median(samples, 0), median(samples, 1)
        if name == "python+boto3":
            print(f"{name:<20}{init:>10.1f}{total:>10.1f}{'1.0':>9}{'1.0':>9}{'-':>11}")
            continue
        size = zipped_size(target / name) / 1e6
        print(f"{name:<20}{init:>10.1f}{total:>10.1f}{base_init / init:>9.1f}{base_total / total:>9.1f}{size:>11.2f}")
    print("x = Python+boto3 median / ours (higher is faster). The baseline handles a resolve-source event;")
    print("each function's event is its own real step against the local emulator.")


if __name__ == "__main__":
    main()
