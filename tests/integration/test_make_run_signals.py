"""`make run` stops cleanly however it is signalled (issue 18): SIGINT to make's PID alone (GNU
make does not pass it on), `timeout -s INT make run`, SIGINT to the service, and make killed
outright. Each time the service drains (`service_stopped` in its log), the dev IdP exits with it,
make exits, and both ports are free. (SIGTERM to make: test_readme_walkthrough.py.)

As in test_readme_walkthrough.py: a private network namespace for the fixed ports, a copy of the
repository with setup done. `set -m` gives make what a terminal gives it (SIGINT not ignored, its
own process group); a script without job control starts `make run &` with SIGINT ignored, which
nothing can change (README "Quickstart": how to stop it).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.repo_copy import copy_repository

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

DRIVER = r"""
set -u -m
ip link set lo up
cd "$COPY"
: > var/sekisho.log 2>/dev/null || true
if [ "$HOW" = timeout ]; then
    timeout -s INT 600 make run > "$OUT/run.log" 2>&1 &
else
    make run > "$OUT/run.log" 2>&1 &
fi
job=$!
ready=0
for _ in $(seq 1 2400); do
    if curl -sf http://127.0.0.1:8080/healthz >/dev/null \
        && curl -sf http://127.0.0.1:9400/.well-known/openid-configuration >/dev/null; then
        ready=1; break
    fi
    sleep 0.05
done
echo "$ready" > "$OUT/ready"
make_pid=$job
[ "$HOW" = timeout ] && make_pid=$(pgrep -P "$job" -x make)
service=$(pgrep -P "$make_pid" -f 'sekisho serve')
idp=$(pgrep -P "$service" -f 'sekisho dev-idp')
# The log's tee (the recipe's process substitution, forked before the shell became the service)
# may write the service's last lines after the service has exited: var/sekisho.log is complete
# once it has exited too.
tee=$(pgrep -P "$service" -x tee)
echo "$service $idp" > "$OUT/pids"
case "$HOW" in
    int-make) kill -INT "$make_pid" ;;
    # timeout's timer is SIGALRM: delivering it now is the timer running out, minus the wait.
    timeout) kill -ALRM "$job" ;;
    int-service) kill -INT "$service" ;;
    kill-make) kill -KILL "$make_pid" ;;
esac
stopped=0
for _ in $(seq 1 600); do
    if ! kill -0 "$job" 2>/dev/null && ! kill -0 "$service" 2>/dev/null \
        && ! kill -0 "$idp" 2>/dev/null && ! kill -0 "$tee" 2>/dev/null; then
        stopped=1; break
    fi
    sleep 0.05
done
echo "$stopped" > "$OUT/stopped"
for url in http://127.0.0.1:8080/healthz http://127.0.0.1:9400/.well-known/openid-configuration; do
    curl -s -o /dev/null --max-time 2 "$url" && echo "still serving: $url"
done > "$OUT/after"
cp var/sekisho.log "$OUT/sekisho.log" 2>/dev/null
kill -KILL "$service" "$idp" 2>/dev/null
exit 0
"""

HOW = ["int-make", "timeout", "int-service", "kill-make"]


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.fail("util-linux unshare and iproute2 ip are needed to run `make run` on loopback")
    target = tmp_path_factory.mktemp("clone")
    copy_repository(target)
    return target


@pytest.mark.parametrize("how", HOW)
def test_make_run_stops_cleanly(copy: Path, tmp_path: Path, how: str) -> None:
    env = {**os.environ, "COPY": str(copy), "OUT": str(tmp_path), "HOW": how}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    subprocess.run(["unshare", "-rn", "bash", "-c", DRIVER], env=env, check=True, timeout=580)
    run_log = (tmp_path / "run.log").read_text()
    assert (tmp_path / "ready").read_text().strip() == "1", run_log[-3000:]
    assert (tmp_path / "stopped").read_text().strip() == "1", f"{how}: still running\n{run_log}"
    assert (tmp_path / "after").read_text() == ""
    log = (tmp_path / "sekisho.log").read_text()
    assert '"service_stopped"' in log, f"{how}: the service did not drain\n{log[-3000:]}"
    assert "Traceback" not in run_log, run_log
