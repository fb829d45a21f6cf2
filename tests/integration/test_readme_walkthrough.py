"""The README's first hour, run verbatim: `make run`, then every shell block of "Try it" pasted in
order into one second terminal, then SIGTERM to make.

It runs in a private network namespace (`unshare -rn`: its own loopback, no root needed) so the
README's fixed ports (50051, 8080, 9400) never collide with anything else on the machine, on a
copy of the repository (mtimes kept, .venv and bin/ shared) so `make run` finds setup done.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.repo_copy import copy_repository

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
MARK = "=== README block"

DRIVER = r"""
set -u
ip link set lo up
cd "$COPY"
start=$(date +%s%N)
make run > "$OUT/run.log" 2>&1 &
make_pid=$!
ready=0
for _ in $(seq 1 1200); do
    if curl -sf http://127.0.0.1:8080/healthz >/dev/null \
        && curl -sf http://127.0.0.1:9400/.well-known/openid-configuration >/dev/null; then
        ready=1; break
    fi
    sleep 0.05
done
echo "$ready $(( ($(date +%s%N) - start) / 1000000 ))" > "$OUT/ready"
service=$(pgrep -P "$make_pid" -f 'sekisho serve')
idp=$(pgrep -P "$service" -f 'sekisho dev-idp')
bash "$OUT/walkthrough.sh" > "$OUT/walkthrough.out" 2>&1
kill -TERM "$make_pid"
# Until make, the service and the dev IdP have all exited (30 s hang guard): a fixed 0.5 s
# after make's exit could end before the dev IdP's on a loaded host, which would then still serve.
stopped=0
for _ in $(seq 1 600); do
    if ! kill -0 "$make_pid" 2>/dev/null && ! kill -0 "$service" 2>/dev/null \
        && ! kill -0 "$idp" 2>/dev/null; then
        stopped=1; break
    fi
    sleep 0.05
done
echo "$stopped" > "$OUT/stopped"
for url in http://127.0.0.1:8080/healthz http://127.0.0.1:9400/.well-known/openid-configuration; do
    curl -s -o /dev/null --max-time 2 "$url" && echo "still serving: $url"
done > "$OUT/after"
exit 0
"""


def try_it_blocks(markdown: str) -> list[str]:
    """The ```sh blocks of the "Try it" section, in order, exactly as written."""
    section = markdown.split("\n## Try it\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.fail("util-linux unshare and iproute2 ip are needed to run the README walkthrough")
    copy, out = tmp_path_factory.mktemp("clone"), tmp_path_factory.mktemp("out")
    copy_repository(copy)
    blocks = try_it_blocks(README.read_text(encoding="utf-8"))
    script = "".join(f"printf '\\n{MARK} {i}\\n'\n{block}" for i, block in enumerate(blocks))
    (out / "walkthrough.sh").write_text(script, encoding="utf-8")
    env = {**os.environ, "COPY": str(copy), "OUT": str(out)}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    subprocess.run(["unshare", "-rn", "bash", "-c", DRIVER], env=env, check=True, timeout=280)
    return out


def _outputs(out: Path) -> list[str]:
    text = (out / "walkthrough.out").read_text()
    return [part.split("\n", 1)[1] if "\n" in part else "" for part in text.split(MARK)[1:]]


def test_make_run_becomes_ready(walkthrough: Path) -> None:
    ready, millis = (walkthrough / "ready").read_text().split()
    assert ready == "1", (walkthrough / "run.log").read_text()[-3000:]
    print(f"make run ready after {int(millis)} ms (setup already done)")


def test_run_prints_what_it_does(walkthrough: Path) -> None:
    log = (walkthrough / "run.log").read_text()
    assert "==> " in log  # each step announces itself


def test_every_block_does_what_the_readme_says(walkthrough: Path) -> None:
    outputs = _outputs(walkthrough)
    assert len(outputs) == len(try_it_blocks(README.read_text(encoding="utf-8")))
    first, more, *rest = outputs
    assert "crm.read" in first and "oauth-id-jag+jwt" in first
    assert "crm.write" in more  # bob, sales-admin
    assert "at+jwt" in more  # the access-token profile
    assert "access_denied" in more  # carol of another tenant
    assert '"decision_id"' in more.split("access_denied", 1)[1]  # the ids she can quote
    assert '"event": "token_rejected"' in more  # `sekisho audit show --last`: her audit line
    assert '"keys"' in more  # the JWKS
    grpcurl = rest[-1]
    assert '"access_token"' in grpcurl, grpcurl  # the grpcurl block exchanges its own user's token


def test_sigterm_to_make_stops_service_and_dev_idp(walkthrough: Path) -> None:
    stopped = (walkthrough / "stopped").read_text().strip()
    assert stopped == "1", "make, the service or the dev IdP did not exit on SIGTERM"
    assert (walkthrough / "after").read_text() == ""
