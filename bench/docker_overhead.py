"""In-process event run overhead vs raw `docker run --rm`, measured in the same run.

    python bench/docker_overhead.py [--runs 20] [--image cronium-test:bookworm]

Prints the median per-run time of (a) a trivial bash event run N times through the
cronium-event flow in one warm process, against a real Prefect server, and (b) N x
`docker run --rm IMAGE bash -c 'echo hi'`; their ratio (goal <= 1.3x); and the wall time
of `cronium run FILE` as a whole process (imports, API calls, the run, exit).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import metric, parse_with_image, prefect_api, summary, write_result  # noqa: E402

GOAL = 1.3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--cli-runs", type=int, default=5)
    args = parse_with_image(parser)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

    with prefect_api() as api:
        from cronium_prefect import parse_text
        from cronium_prefect.flows import cronium_event

        (event,) = parse_text("name: bench-trivial\ntype: bash\nscript: echo hi\n")

        raw_command = ["docker", "run", "--rm", args.image, "bash", "-c", "echo hi"]

        async def measure() -> tuple[list[float], list[float]]:
            # Warm both paths, then alternate them so drift on the machine hits both alike.
            await cronium_event(event=event)
            subprocess.run(raw_command, check=True, capture_output=True)
            ours, raw = [], []
            for _ in range(args.runs):
                began = time.perf_counter()
                state = await cronium_event(event=event, return_state=True)
                ours.append(time.perf_counter() - began)
                assert state.is_completed(), state
                began = time.perf_counter()
                subprocess.run(raw_command, check=True, capture_output=True)
                raw.append(time.perf_counter() - began)
            return ours, raw

        ours, raw = asyncio.run(measure())

        definition = Path(tempfile.mkdtemp()) / "trivial.yaml"
        definition.write_text("name: bench-cli\ntype: bash\nscript: echo hi\n")
        cli = []
        for _ in range(args.cli_runs):
            began = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "cronium_prefect.cli", "run", str(definition)],
                check=True,
                capture_output=True,
                env={**os.environ, "PREFECT_API_URL": api},
            )
            cli.append(time.perf_counter() - began)

    ours_s, raw_s, cli_s = summary(ours), summary(raw), summary(cli)
    ratio = ours_s["median_s"] / raw_s["median_s"]
    result = {
        "flow_run_in_process": ours_s,
        "raw_docker_run": raw_s,
        "ratio_median": round(ratio, 3),
        "goal": f"<= {GOAL}x",
        "met": ratio <= GOAL,
        "cronium_run_process": cli_s,
    }
    rows = [
        metric(
            "in-process event run (bash, Docker), median",
            ours_s["median_s"],
            "s",
            f"<= {GOAL}x",
            ratio <= GOAL,
            baseline=raw_s["median_s"],
            baseline_name="docker run --rm, same image and command",
            ratio=ratio,
        ),
        metric("`cronium run FILE` as a whole process, median", cli_s["median_s"], "s", "-", None),
    ]
    path = write_result("docker_overhead", result, rows)
    print(
        f"event run through the flow (warm process), median: {ours_s['median_s']:.3f} s "
        f"(p95 {ours_s['p95_s']:.3f} s, n={ours_s['n']})"
    )
    print(
        f"raw `docker run --rm`, median:                 {raw_s['median_s']:.3f} s "
        f"(p95 {raw_s['p95_s']:.3f} s, n={raw_s['n']})"
    )
    print(f"ratio: {ratio:.2f}x  (goal <= {GOAL}x: {'met' if ratio <= GOAL else 'NOT met'})")
    print(f"`cronium run FILE` whole process, median: {cli_s['median_s']:.3f} s (n={cli_s['n']})")
    print(f"written to {path}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
