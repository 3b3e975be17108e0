"""Pooled SSH executor vs one OpenSSH connection per command, measured in the same run.

    python bench/ssh_reuse.py [--runs 50]      (as root: it starts its own sshd on 127.0.0.1)

Prints the median per-run time of (a) a trivial bash event run N times sequentially on one
server through the SSH executor (staging, SFTP upload, run, collect, cleanup — on a pooled
connection), and (b) N x `ssh -o BatchMode=yes host 'echo hi'`; and the speed-up
(goal: the executor >= 2x faster per run). Also (c) the same runs against an sshd
without SFTP, whose files go over exec channels (goal: at most 1.5x the SFTP run), and
the same event through the whole cronium-event flow, for reference.
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
EXEC_GOAL = 1.5  # the exec-channel path per run, at most this times the SFTP path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()

    from tests.sshd import USER, Sshd

    work = Path(tempfile.mkdtemp(prefix="cronium-bench-ssh-"))
    sshd = Sshd.create(work / "sshd")
    bare = Sshd.create(work / "sshd-bare", sftp=False)
    try:
        with prefect_api():
            figures = measure(sshd, bare, USER, work, args.runs)
    finally:
        sshd.remove()
        bare.remove()
    ours, raw, exec_path, flow = figures
    ratio = raw["median_s"] / ours["median_s"]
    exec_ratio = exec_path["median_s"] / ours["median_s"]
    result = {
        "ssh_executor": ours,
        "openssh_per_command": raw,
        "exec_channels": exec_path,
        "exec_over_sftp": round(exec_ratio, 2),
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
        metric(
            "the same on a server without SFTP (exec channels), median",
            exec_path["median_s"],
            "s",
            f"<= {EXEC_GOAL}x the SFTP run",
            exec_ratio <= EXEC_GOAL,
            baseline=ours["median_s"],
            baseline_name="the SFTP run",
            ratio=exec_ratio,
        ),
        metric("the same through the whole flow, median", flow["median_s"], "s", "-", None),
    ]
    path = write_result("ssh_reuse", result, rows)
    print(f"SSH executor, pooled connection, median:   {ours['median_s']:.4f} s (n={ours['n']})")
    print(f"OpenSSH `ssh -o BatchMode=yes`, median:    {raw['median_s']:.4f} s (n={raw['n']})")
    print(f"speed-up: {ratio:.2f}x  (goal >= {GOAL}x: {'met' if ratio >= GOAL else 'NOT met'})")
    print(
        f"no SFTP (exec channels), median:           {exec_path['median_s']:.4f} s "
        f"({exec_ratio:.2f}x the SFTP run; goal <= {EXEC_GOAL}x)"
    )
    print(f"whole cronium-event flow over SSH, median: {flow['median_s']:.4f} s (n={flow['n']})")
    print(f"written to {path}")


def measure(sshd, bare, user: str, work: Path, runs: int):
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
    bare_server = server.model_copy(update={"port": bare.port, "host_key": bare.host_key_line})
    bare_server = bare_server.model_copy(update={"private_key": SecretStr(bare.client_key)})
    bare_executor = SSHExecutor(bare_server, "bench-bare", ConnectionPool(), ".cronium/runs")

    def one_run(executor=executor) -> None:
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
    one_run(bare_executor)
    subprocess.run(command, check=True, capture_output=True)
    ours, raw, exec_path = [], [], []
    for _ in range(runs):  # alternate, so drift on the machine hits all alike
        began = time.perf_counter()
        one_run()
        ours.append(time.perf_counter() - began)
        began = time.perf_counter()
        one_run(bare_executor)
        exec_path.append(time.perf_counter() - began)
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
    return summary(ours), summary(raw), summary(exec_path), summary(flow)


if __name__ == "__main__":
    main()
