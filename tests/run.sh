#!/usr/bin/env bash
# The one command that passes the tests on a fresh Debian machine (as root) or a laptop:
# installs what the tests need, installs the project into .venv, starts dockerd when it is
# not running, builds the offline test image, runs ruff, builds the docs (mkdocs --strict:
# a broken link or page fails the run) and runs pytest. Extra arguments go to
# pytest. Without -n of their own, the tests run in parallel: pytest-xdist workers, each
# with its own Prefect server, sshd, ports and directories (CRONIUM_TEST_WORKERS, default
# one more than the cores, at most 8: the tests mostly wait on Prefect, Docker and sshd). A test
# module stays on one worker: its tests may build on what the earlier ones saved.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
began=$SECONDS
phase_began=$SECONDS
timings=()
phase_done() {
  timings+=("$(printf '%-8s %5d s' "$1" $((SECONDS - phase_began)))")
  phase_began=$SECONDS
}

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
  command -v chromium >/dev/null || missing+=(chromium)
  command -v chromedriver >/dev/null || missing+=(chromium-driver)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  command -v redis-server >/dev/null || missing+=(redis-server)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  python3 -m venv .venv
fi
echo "== installing the project"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[test]"
phase_done install

# The package as a user gets it: the sdist, the wheel built from it, installed with its
# dependencies into a fresh venv outside the checkout, then the cronium image built from
# it (tests/wheel/ uses both). In the background: the installs download for minutes while
# the test image, ruff, docs and the other tests go on.
wheel_dir=$(mktemp -d "${TMPDIR:-/tmp}/cronium-wheel-XXXXXX")
export CRONIUM_WHEEL_DIR=$wheel_dir
# Gone with this script, however it ends (a venv is large); a build still going is stopped,
# and so is the dockerd watcher below. (Each step `|| true`: under set -e a failed step here
# would become the script's status.)
watcher=
cleanup() {
  [ -z "$watcher" ] || kill "$watcher" 2>/dev/null || true
  kill "$wheel_job" 2>/dev/null || true
  wait "$wheel_job" 2>/dev/null || true
  rm -rf "$wheel_dir" || true
}
trap cleanup EXIT
(
  trap - EXIT  # the cleanup above is the script's, not this job's
  status=0
  {
    .venv/bin/python -m build --outdir "$wheel_dir/dist" "$root" &&
      python3 -m venv "$wheel_dir/venv" &&
      "$wheel_dir/venv/bin/python" -m pip install -q "$wheel_dir"/dist/*.whl
  } >"$wheel_dir/build.log" 2>&1 || status=$?
  echo "$status" >"$wheel_dir/done"
  # The cronium image (../Dockerfile) from that wheel, and an sshd image, on the offline
  # test image: the deploy tests run them. Once the image phase below has built the base.
  image=1
  if [ "$status" = 0 ] && command -v docker >/dev/null; then
    for _ in $(seq 600); do
      docker image inspect "${CRONIUM_TEST_IMAGE:-cronium-test:bookworm}" >/dev/null 2>&1 && break
      sleep 1
    done
    # Every dependency as a wheel from here: containers do not trust this machine's
    # registry proxy. The base's python3 is 3.11.2, which also needs async-timeout.
    mkdir -p "$wheel_dir/context/dist" && cp Dockerfile "$wheel_dir/context/" &&
      .venv/bin/python -m pip wheel -q --wheel-dir "$wheel_dir/context/dist" \
        "$wheel_dir"/dist/*.whl "async-timeout>=4.0.3" >"$wheel_dir/image.log" 2>&1 &&
      docker build -q -t cronium:test --build-arg PIP_NO_INDEX=1 \
        --build-arg BASE_IMAGE="${CRONIUM_TEST_IMAGE:-cronium-test:bookworm}" \
        "$wheel_dir/context" >>"$wheel_dir/image.log" 2>&1 &&
      docker build -q -t cronium-sshd:test -f tests/images/sshd.Dockerfile \
        --build-arg BASE_IMAGE="${CRONIUM_TEST_IMAGE:-cronium-test:bookworm}" \
        tests/images >>"$wheel_dir/image.log" 2>&1 && image=0
  fi
  echo "$image" >"$wheel_dir/image.done"
) &
wheel_job=$!

if command -v dockerd >/dev/null && ! docker info >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "== starting dockerd"
  nohup dockerd >/var/log/cronium-dockerd.log 2>&1 &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
fi
if docker info >/dev/null 2>&1; then
  bash tests/images/build.sh "${CRONIUM_TEST_IMAGE:-cronium-test:bookworm}"
fi
phase_done image

echo "== ruff"
.venv/bin/ruff check "$root"
phase_done ruff

echo "== docs"
site=$(mktemp -d)
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --site-dir "$site"
rm -rf "$site"
phase_done docs

parallel=()
case " $* " in
  *" -n "* | *" -n"[0-9]* | *"--numprocesses"* | *"no:xdist"*) ;;
  *)
    workers=$(($(nproc) + 1))
    [ "$workers" -gt 8 ] && workers=8
    workers=${CRONIUM_TEST_WORKERS:-$workers}
    parallel=(-n "$workers" --dist loadfile --no-loadscope-reorder)
    ;;
esac
# Once in CI, the machine's dockerd stopped answering mid-run and every Docker test after
# failed, with nothing in its log to say why. While pytest runs, a watcher asks it every
# 30 s; the first time it does not answer in 60 s, its goroutine stacks (SIGUSR1) are saved
# to /var/log/cronium-dockerd-stacks.log and the run's output says so at the end. (Its
# output goes to a file: a `sleep` it leaves behind must not hold this script's pipes.)
watch_dockerd() {
  local pid stacks=
  while sleep 30; do
    timeout 60 docker version >/dev/null 2>&1 && continue
    pid=$(cat /var/run/docker.pid 2>/dev/null) || return 0
    # A stale pid file could name another process now: SIGUSR1 would end it.
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] || return 0
    kill -USR1 "$pid" 2>/dev/null || return 0
    sleep 5
    stacks=$(ls -t /var/run/docker/goroutine-stacks-*.log 2>/dev/null | head -1) || true
    if [ -n "$stacks" ] && cp "$stacks" /var/log/cronium-dockerd-stacks.log; then
      echo "== dockerd (pid $pid) stopped answering at $(date -u +%T):" \
        "its goroutine stacks are in /var/log/cronium-dockerd-stacks.log"
    else
      echo "== dockerd (pid $pid) stopped answering at $(date -u +%T); it wrote no stacks"
    fi
    return 0
  done
}
watch_note=$(mktemp)
if [ "$(id -u)" = 0 ] && docker info >/dev/null 2>&1; then
  watch_dockerd >"$watch_note" 2>&1 &
  watcher=$!
fi
echo "== pytest ${parallel[*]}"
status=0
.venv/bin/python -m pytest "${parallel[@]}" "$@" || status=$?
[ -z "$watcher" ] || kill "$watcher" 2>/dev/null || true
cat "$watch_note" && rm -f "$watch_note"
phase_done pytest

echo "== wall time per phase"
printf '   %s\n' "${timings[@]}"
printf '   %-8s %5d s\n' total $((SECONDS - began))
exit "$status"
