"""kiln's local AWS emulator: moto server, seeded and patched for kiln.

  serve   run it; print one JSON line (endpoint, seeded names, ...) once
          seeded; stop when stdin closes (unless --detach) or on a signal
  env     read that line on stdin; print it as shell exports
"""

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path

from . import INSTANCE_PROFILE, REGION, SOURCE_PARAMETER, patches
from .pipeline import BUILD_MACHINE, RELEASE_MACHINE, create_audit_machine, create_pipeline
from .proxy import LambdaProxy
from .seed import seed, seed_images


def serve(args):
    seed_file = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump(seed_images(), seed_file)
    seed_file.close()
    # moto reads MOTO_AMIS_PATH as it is imported: name the file first.
    os.environ["MOTO_AMIS_PATH"] = seed_file.name
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")

    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    patches.apply_all()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    info = seed(endpoint, builder_profile=not args.no_builder_profile)
    os.unlink(seed_file.name)
    if args.functions:
        function_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            # The proxy adds AWS_ENDPOINT_URL (itself) and, per function,
            # AWS_ACCESS_KEY_ID kiln-function-NAME: it records their calls.
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": REGION,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "KILN_RECIPE_ROOT": str(Path(args.recipe_root).resolve()),
            "KILN_SOURCE_PARAMETER": SOURCE_PARAMETER,
            "KILN_INSTANCE_PROFILE": INSTANCE_PROFILE,
            **dict(setting.split("=", 1) for setting in args.function_env),
        }
        faults = [tuple((fault.split(":") + ["", ""])[:3]) for fault in args.fault]
        faults = [(f, a, e) if e else (f, "", a) for f, a, e in faults]
        proxy = LambdaProxy(args.functions, port, function_env, faults)
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        # moto's Step Functions executor makes its service calls to this port.
        os.environ["MOTO_PORT"] = str(proxy.server_address[1])
        urllib.request.urlopen(urllib.request.Request(
            f"{endpoint}/moto-api/config", method="POST",
            data=json.dumps({"stepfunctions": {"execute_state_machine": True},
                             "lambda": {"use_docker": False}}).encode(),
            headers={"Content-Type": "application/json"})).read()
        info["lambda_proxy"] = proxy.url
        if args.pipeline:
            machines = create_pipeline(endpoint, args.pipeline)
            info["state_machine_arn"] = machines[BUILD_MACHINE]
            if RELEASE_MACHINE in machines:
                info["release_state_machine_arn"] = machines[RELEASE_MACHINE]
        if args.audit_machine:
            bucket = function_env.get("KILN_AUDIT_BUCKET")
            if not bucket:
                sys.exit("--audit-machine needs --function-env KILN_AUDIT_BUCKET=...")
            info["audit_state_machine_arn"] = create_audit_machine(endpoint, args.audit_machine, bucket)
    print(json.dumps(info), flush=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if not args.detach:
        # The parent holds our stdin: when it exits, however it exits, we stop.
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait()
    server.stop()


def env():
    info = json.loads(sys.stdin.readline())
    lines = {
        "AWS_ENDPOINT_URL": info["endpoint"],
        "AWS_REGION": info["region"],
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "KILN_SOURCE_PARAMETER": info["source_parameter"],
    }
    if "state_machine_arn" in info:
        lines["KILN_STATE_MACHINE_ARN"] = info["state_machine_arn"]
    if "release_state_machine_arn" in info:
        lines["KILN_RELEASE_STATE_MACHINE_ARN"] = info["release_state_machine_arn"]
    for key, value in lines.items():
        print(f"export {key}={value}")


def main():
    parser = argparse.ArgumentParser(prog="python -m kiln_emulator", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve")
    serve_parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve_parser.add_argument("--detach", action="store_true", help="ignore stdin")
    serve_parser.add_argument(
        "--no-builder-profile", action="store_true",
        help="do not seed the kiln-builder instance profile (a stack of infra/ creates it)",
    )
    serve_parser.add_argument("--functions", help="directory of Lambda binaries to run Step Functions with")
    serve_parser.add_argument("--recipe-root", default="images", help="KILN_RECIPE_ROOT for the functions")
    serve_parser.add_argument("--pipeline", help="state machine definition to create (needs --functions)")
    serve_parser.add_argument(
        "--audit-machine", help="audit state machine definition to create, in its local form (needs --functions)")
    serve_parser.add_argument(
        "--function-env", action="append", default=[], metavar="NAME=VALUE",
        help="a setting every function runs with (e.g. KILN_OUTPUT_BUCKET=...), besides the emulator's",
    )
    serve_parser.add_argument(
        "--fault", action="append", default=[], metavar="FUNCTION[:ACTION]:ERROR",
        help="tests: FUNCTION runs, then answers the function error ERROR instead (for events with ACTION)",
    )
    commands.add_parser("env")
    args = parser.parse_args()
    if args.command == "serve":
        serve(args)
    else:
        env()
