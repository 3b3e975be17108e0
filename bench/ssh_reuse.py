"""Pooled SSH executor vs one OpenSSH connection per command, measured in the same run.

    python bench/ssh_reuse.py [--runs 50]      (as root: it starts its own sshd on 127.0.0.1)

Prints the median per-run time of (a) a trivial bash event run N times sequentially on one
server through the SSH executor (staging, SFTP upload, run, collect, cleanup — on a pooled
connection), and (b) N x `ssh -o BatchMode=yes host 'echo hi'`; and the speed-up
(goal: the executor >= 2x faster per run). Also the same event through the whole
cronium-event flow, for reference.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]
from common import metric, prefect_api, summary, write_result  # noqa: E402

GOAL = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()

    from tests.sshd import USER, Sshd

    work = Path(tempfile.mkdtemp(prefix="cronium-bench-ssh-"))
    sshd = Sshd.create(work / "sshd")
    try:
        with prefect_api():
            figures = measure(sshd, USER, work, args.runs)
    finally:
        sshd.remove()
    ours, raw, flow = figures
    ratio = raw["median_s"] / ours["median_s"]
    result = {
        "ssh_executor": ours,
        "openssh_per_command": raw,
        "flow_over_ssh": flow,
        "speedup_median": round(ratio, 2),
        "goal": f">= {GOAL}x faster",
        "met": ratio >= GOAL,
    }
    rows = [
        metric(
            f"{ours['n']} sequential SSH runs, median per run",
            ours["median_s"],
            "s",
            f">= {GOAL}x faster",
            ratio >= GOAL,
            baseline=raw["median_s"],
            baseline_name="ssh -o BatchMode=yes host cmd",
            ratio=ratio,
        ),
        metric("the same through the whole flow, median", flow["median_s"], "s", "-", None),
    ]
    path = write_result("ssh_reuse", result, rows)
    print(f"SSH executor, pooled connection, median:   {ours['median_s']:.4f} s (n={ours['n']})")
    print(f"OpenSSH `ssh -o BatchMode=yes`, median:    {raw['median_s']:.4f} s (n={raw['n']})")
    print(f"speed-up: {ratio:.2f}x  (goal >= {GOAL}x: {'met' if ratio >= GOAL else 'NOT met'})")
    print(f"whole cronium-event flow over SSH, median: {flow['median_s']:.4f} s (n={flow['n']})")
    print(f"written to {path}")


def measure(sshd, user: str, work: Path, runs: int):
    from pydantic import SecretStr

    from cronium_prefect import parse_text
    from cronium_prefect.blocks import SSHServer
    from cronium_prefect.executors.base import ExecutionRequest
    from cronium_prefect.executors.ssh import SSHExecutor
    from cronium_prefect.executors.ssh_pool import ConnectionPool
    from cronium_prefect.flows import cronium_event
    from cronium_prefect.runtime_helpers.host import Staging

    server = SSHServer(
        host="127.0.0.1",
        port=sshd.port,
        username=user,
        private_key=SecretStr(sshd.client_key),
        host_key=sshd.host_key_line,
    )
    server.save("bench-ssh", overwrite=True, _sync=True)
    executor = SSHExecutor(server, "bench-ssh", ConnectionPool(), ".cronium/runs")

    def one_run() -> None:
        staging = Staging.create(work / "staging", "bash", "echo hi", None, {}, {})
        try:
            result = executor.run(
                ExecutionRequest(run_id="bench", language="bash", staging=staging, timeout=30)
            )
            assert result.succeeded, result.error
        finally:
            staging.remove()

    known_hosts = work / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {sshd.host_key_line}\n")
    key = work / "sshd" / "client_key"
    command = [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-i",
        str(key),
        "-p",
        str(sshd.port),
        f"{user}@127.0.0.1",
        "echo hi",
    ]
    one_run()
    subprocess.run(command, check=True, capture_output=True)
    ours, raw = [], []
    for _ in range(runs):  # alternate, so drift on the machine hits both alike
        began = time.perf_counter()
        one_run()
        ours.append(time.perf_counter() - began)
        began = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        raw.append(time.perf_counter() - began)

    (event,) = parse_text(
        "name: bench-ssh\ntype: bash\nrun_location: remote\nservers: [bench-ssh]\nscript: echo hi\n"
    )

    async def through_flow() -> list[float]:
        await cronium_event(event=event)
        samples = []
        for _ in range(min(runs, 20)):
            began = time.perf_counter()
            await cronium_event(event=event)
            samples.append(time.perf_counter() - began)
        return samples

    flow = asyncio.run(through_flow())
    return summary(ours), summary(raw), summary(flow)


if __name__ == "__main__":
    main()
