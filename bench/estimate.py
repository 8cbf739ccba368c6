"""The organization audit's wall time at 500 accounts x 17 regions on each
path, estimated from what bench/org_audit.py measured (kiln's own CPU per
DescribeInstances page, the calls each path made, per account and per
account and region) and from AWS's documented rates and limits, never from
the emulator's latencies. Each constant says where it comes from: AWS's
documentation, kiln's own configuration, or an assumption.

Usage: python bench/estimate.py FILE (what `bench/org_audit.py --save FILE`
wrote), after changing an assumption; org_audit.py prints it as it ends.
"""

import json
import math
import sys
from dataclasses import dataclass

# The organization estimated: as many instances per account and region as
# the benchmark's (500: one DescribeInstances page of at most 1,000 each).
ACCOUNTS = 500
REGIONS = 17

# --- AWS's documentation ------------------------------------------------------
# Lambda: "At 1,769 MB, a function has the equivalent of one vCPU"
# (Lambda developer guide, "Lambda function memory" / resource model).
VCPU_MB = 1769
# Lambda: timeout "up to a maximum value of 900 seconds (15 minutes)".
LAMBDA_TIMEOUT_S = 900
# Lambda: memory from 128 MB to 10,240 MB (Lambda developer guide, "Configure
# Lambda function memory").
LAMBDA_MAX_MB = 10240
# EC2 API throttling, per account and Region: paginated or filtered
# non-mutating actions (Describe*) draw on a bucket of 100 tokens refilled at
# 20 per second (EC2 developer guide, "Request throttling").
EC2_DESCRIBE_REFILL = 20
# STS: "the default request quota is 600 requests per second, per account,
# per Region"; only the account making the AssumeRole counts (IAM and STS
# quotas).
STS_RATE = 600
# Organizations: ListAccounts 8 per second per account, pages of at most 20
# (Organizations quotas; the API's MaxResults).
ORG_PAGE = 20
ORG_LIST_RATE = 8
# Step Functions: a Map Run dispatches standard child executions "at up to
# 100 TPS"; state transitions of standard workflows 5,000 per second in
# us-east-1 (Step Functions service quotas).
MAP_DISPATCH_RATE = 100
# S3: 5,500 GET and 3,500 PUT per second per partitioned prefix (S3
# performance guidelines).
S3_GET_RATE = 5500

# --- kiln's own configuration ----------------------------------------------
AUDIT_MEMORY_MB = 512  # infra/template.yaml, AuditFleetFunction
AUDIT_TIMEOUT_S = 600  # infra/template.yaml, AuditFleetFunction (Lambda allows up to 900)
DIRECT_CONCURRENCY = 8  # fleet::DEFAULT_CONCURRENCY: accounts' set-up and regions at once
BATCH = 10  # statemachine/audit.asl.json: ItemBatcher MaxItemsPerBatch (accounts)
MAP_CONCURRENCY = 10  # statemachine/audit.asl.json: MaxConcurrency
FOLD_READS = 16  # fleet::fanout: parts the fold reads at once

# --- assumptions (AWS documents no latencies) --------------------------------
PAGE_S = 1.0  # one DescribeInstances page of up to 1,000 instances
CALL_S = 0.1  # any other call
# The CPU of this machine's core and of a Lambda vCPU are taken as equal.

# How each call scales: per run, per Organizations page, per account (the
# management account's included), per member account, per account and region.
SCALE = {
    "DescribeInstances": "account-region", "DescribeImages": "account-region",
    "GetParameters": "account-region", "DescribeRegions": "account", "AssumeRole": "member",
    "ListAccounts": "org-page", "ListAccountsForParent": "org-page", "ListChildren": "org-page",
}


@dataclass
class Measured:
    """One path's run: kiln's own CPU seconds (on this machine) of each of
    its invocations in order, the calls its functions made by operation,
    and the organization's shape."""

    cpu: list
    calls: dict
    accounts: int
    regions: int

    def units(self, accounts, regions):
        return {"run": 1, "org-page": math.ceil(accounts / ORG_PAGE), "account": accounts,
                "member": accounts - 1, "account-region": accounts * regions}

    def scaled(self, accounts, regions, per_account=()):
        """The calls at `accounts` x `regions`: each operation scaled by its
        unit (`per_account` operations per account, the rest per run)."""
        here, there = self.units(self.accounts, self.regions), self.units(accounts, regions)
        calls = {}
        for action, count in self.calls.items():
            unit = SCALE.get(action, "account" if action in per_account else "run")
            calls[action] = count / here[unit] * there[unit]
        return calls

    @property
    def pages(self):
        return self.calls["DescribeInstances"]


def latency(calls):
    return sum(n * (PAGE_S if action == "DescribeInstances" else CALL_S) for action, n in calls.items())


def share():
    """The vCPUs of the audit function (CPU in proportion to memory)."""
    return AUDIT_MEMORY_MB / VCPU_MB


def direct_estimate(direct):
    """The single Lambda: every account and region in one invocation, at
    most DIRECT_CONCURRENCY calls' worth of work at once; CPU and waiting
    overlap (one async process), so the longer of the two is the bound."""
    calls = direct.scaled(ACCOUNTS, REGIONS)
    cpu_here = sum(direct.cpu) / direct.pages * calls["DescribeInstances"]
    cpu = cpu_here / share()
    org = calls.get("ListAccounts", 0)
    serial = org * max(CALL_S, 1 / ORG_LIST_RATE)
    waiting = latency({a: n for a, n in calls.items() if SCALE.get(a) in ("account", "member", "account-region")})
    wall = serial + max(cpu, waiting / DIRECT_CONCURRENCY)
    # What it would take to fit Lambda's longest timeout, with no margin: the
    # memory (so the CPU) and the concurrency (so the waiting).
    left = LAMBDA_TIMEOUT_S - serial
    return {"calls": calls, "cpu": cpu, "waiting": waiting / DIRECT_CONCURRENCY, "wall": wall,
            "fits": wall <= AUDIT_TIMEOUT_S, "memory": math.ceil(cpu_here / left * VCPU_MB),
            "concurrency": math.ceil(waiting / left)}


def fanned_estimate(fanned, direct):
    """The state machine: Plan, then batches of BATCH accounts, at most
    MAP_CONCURRENCY at once (each a Lambda auditing its accounts as the
    single Lambda does, at DIRECT_CONCURRENCY), then Fold reading every part."""
    s3 = ("GetObject", "PutObject")
    extra = {a: fanned.calls.get(a, 0) - direct.calls.get(a, 0) for a in s3}
    base = Measured(cpu=fanned.cpu, calls={a: n for a, n in fanned.calls.items() if a not in s3},
                    accounts=fanned.accounts, regions=fanned.regions)
    calls = base.scaled(ACCOUNTS, REGIONS)
    for action in s3:
        run = direct.calls.get(action, 0)
        calls[action] = run + extra[action] / fanned.accounts * ACCOUNTS
    plan_cpu, parts_cpu, fold_cpu = fanned.cpu[0], sum(fanned.cpu[1:-1]), fanned.cpu[-1]
    batches = math.ceil(ACCOUNTS / BATCH)
    waves = math.ceil(batches / MAP_CONCURRENCY)
    # One batch: BATCH accounts' share of the work, as one invocation.
    per_batch = {a: n / batches for a, n in calls.items() if SCALE.get(a) in ("account", "member", "account-region")}
    batch_pages = per_batch["DescribeInstances"]
    batch_cpu = parts_cpu / fanned.pages * batch_pages / share()
    batch_waiting = (latency(per_batch) + BATCH * CALL_S) / DIRECT_CONCURRENCY  # + each account's part
    batch = max(batch_cpu, batch_waiting)
    org = calls.get("ListAccounts", 0)
    plan = org * max(CALL_S, 1 / ORG_LIST_RATE) + plan_cpu / share() + 2 * CALL_S
    dispatch = batches / MAP_DISPATCH_RATE
    fold_reads = math.ceil(ACCOUNTS / FOLD_READS) * CALL_S
    fold = fold_reads + fold_cpu / fanned.accounts * ACCOUNTS / share()
    wall = plan + dispatch + waves * batch + fold
    return {"calls": calls, "batches": batches, "waves": waves, "batch": batch, "batch_cpu": batch_cpu,
            "batch_waiting": batch_waiting, "plan": plan, "fold": fold, "wall": wall,
            "fits": max(batch, fold) <= AUDIT_TIMEOUT_S, "invocations": batches + 2}


def report(direct, fanned):
    d, f = direct_estimate(direct), fanned_estimate(fanned, direct)
    pages = d["calls"]["DescribeInstances"]
    print(f"\nestimate for {ACCOUNTS} accounts x {REGIONS} regions ({ACCOUNTS * REGIONS:,} account-regions,"
          f" {pages:,.0f} DescribeInstances pages; assumed {PAGE_S} s per page, {CALL_S} s per other call;"
          f" Lambda of {AUDIT_MEMORY_MB} MB = {share():.3f} vCPU):")
    print(f"  single Lambda: {sum(d['calls'].values()):,.0f} calls in one invocation; kiln CPU {d['cpu']:.0f} s,"
          f" waiting {d['waiting']:.0f} s at concurrency {DIRECT_CONCURRENCY}: about {d['wall']:.0f} s"
          f" -> {'fits' if d['fits'] else 'does NOT fit'} the function's {AUDIT_TIMEOUT_S} s"
          f" (to end just within Lambda's longest, {LAMBDA_TIMEOUT_S} s, with no room for retries, it needs"
          f" at least {d['memory']:,} MB of the {LAMBDA_MAX_MB:,} allowed and concurrency {d['concurrency']})")
    print(f"  state machine: {sum(f['calls'].values()):,.0f} calls in {f['invocations']} invocations;"
          f" {f['batches']} batches of {BATCH} accounts, {f['waves']} waves of {MAP_CONCURRENCY};"
          f" a batch {f['batch']:.0f} s (CPU {f['batch_cpu']:.1f} s, waiting {f['batch_waiting']:.1f} s),"
          f" plan {f['plan']:.1f} s, fold {f['fold']:.1f} s: about {f['wall']:.0f} s"
          f" -> {'every invocation fits' if f['fits'] else 'an invocation does NOT fit'} the function's"
          f" {AUDIT_TIMEOUT_S} s")
    account_region = d["calls"]["DescribeInstances"] / (ACCOUNTS * REGIONS)
    ec2 = sum(n for a, n in d["calls"].items() if a.startswith("Describe")) / (ACCOUNTS * REGIONS)
    print(f"  rates: {ec2:.1f} EC2 Describe calls per account and region against a refill of"
          f" {EC2_DESCRIBE_REFILL}/s each ({account_region:.1f} pages); {ACCOUNTS - 1} AssumeRole from one account"
          f" against {STS_RATE}/s; {d['calls'].get('ListAccounts', 0):.0f} ListAccounts pages at {ORG_LIST_RATE}/s;"
          f" {f['calls'].get('GetObject', 0):.0f} S3 reads against {S3_GET_RATE}/s per prefix: none binds")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("Usage: ")[1])
    saved = json.loads(open(sys.argv[1]).read())
    report(Measured(**saved["direct"]), Measured(**saved["fanned"]))
