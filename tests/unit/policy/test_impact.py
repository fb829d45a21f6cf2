"""Impact replay without a service: reading decision files, reproduction of recorded results
(Sekisho's and OPA's raw shape), and who gains or loses what."""

import json
from pathlib import Path
from typing import Any

import pytest
from sekisho.commands.policy_impact import impact_document, impact_text
from sekisho.components import build_policy_engine
from sekisho.config import Settings
from sekisho.models import Decision
from sekisho.policy import impact as impact_module
from sekisho.policy.difference import decision_document
from sekisho.policy.engine import PolicyRuntime
from sekisho.policy.impact import (
    DecisionFileError,
    DecisionReader,
    Impact,
    Recorded,
    UserChange,
    replay,
    user_of,
)

from tests.fakes.clock import FakeClock
from tests.fakes.loops import RecordedFailures
from tests.unit.policy.inputs import CRM, POLICIES, UNKNOWN, policy_input

PATH = "sekisho/exchange/decision"


class FixedEngine:
    """A candidate that always decides the same (its rules are not what is tested here)."""

    ready = True

    def __init__(self, decision: Decision) -> None:
        self._decision = decision
        self.calls = 0

    async def decide(self, document: dict[str, Any]) -> Decision:
        self.calls += 1
        return self._decision


@pytest.fixture
async def live() -> PolicyRuntime:
    engine = build_policy_engine(
        Settings(policy={"path": str(POLICIES)}), FakeClock(), RecordedFailures()
    )
    await engine.start()
    return engine


def _write(path: Path, *events: object) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events) + "\n")
    return path


def test_a_malformed_line_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.jsonl", {"input": policy_input(CRM)})
    with path.open("a") as lines:
        lines.write("{not json\n")
    with pytest.raises(DecisionFileError, match=r"d.jsonl:3: not a JSON line"):
        list(DecisionReader([path], PATH))


def test_lines_that_are_not_decisions_of_the_query_are_skipped_and_counted(
    tmp_path: Path,
) -> None:
    # OPA's console decision log: server messages, data API reads, decisions of other paths.
    document = policy_input(CRM)
    path = _write(
        tmp_path / "opa.log",
        {"level": "info", "msg": "Initializing server."},
        {"decision_id": "1", "path": "sekisho/registry", "result": {}},
        {"decision_id": "2", "path": "other/decision", "input": document, "result": {}},
        {"decision_id": "3", "path": PATH, "input": document, "result": {"allow": False}},
        {"decision_id": "4", "input": document},  # Sekisho's own records always name the path
    )
    reader = DecisionReader([path], PATH)
    records = list(reader)
    assert [r.result for r in records] == [{"allow": False}, None]
    assert reader.skipped == 3


def test_go_log_lines_from_opas_stderr_are_skipped_and_counted(tmp_path: Path) -> None:
    # OPA's runtime writes some messages through Go's log package, as plain text on stderr: a
    # decision log collected with stderr has them (seen in CI: `http: superfluous
    # response.WriteHeader call`). Any other text stays an error (above).
    document = policy_input(CRM)
    path = _write(tmp_path / "opa.log", {"path": PATH, "input": document, "result": {}})
    with path.open("a") as lines:
        lines.write(
            "2026/12/03 04:39:12 http: superfluous response.WriteHeader call from "
            "github.com/open-policy-agent/opa/v1/runtime.(*recorder).WriteHeader (logging.go:289)\n"
        )
        lines.write(json.dumps({"path": PATH, "input": document}) + "\n")
    reader = DecisionReader([path], PATH)
    assert len(list(reader)) == 2
    assert reader.skipped == 1


async def test_recorded_results_are_reproduced_in_either_shape(live: PolicyRuntime) -> None:
    document = policy_input(CRM, groups=["sales"], scopes=["crm.read"])
    recorded = decision_document(await live.decide(document))
    raw = {key: value for key, value in recorded.items() if value not in ("", 0, {}, [])}
    other = dict(recorded, scopes=["crm.write"])  # written by another policy version
    records = [
        Recorded(document, recorded),
        Recorded(document, raw),  # as OPA's decision log records the policy's own output
        Recorded(document, other),
        Recorded(document, None),  # the engine could not answer then
    ]
    impact = await replay(records, live, live)
    assert (impact.replayed, impact.reproduced, impact.changed) == (4, 2, 0)


async def test_losing_access_loses_every_scope_and_is_counted_per_audience(
    live: PolicyRuntime,
) -> None:
    granted = policy_input(CRM, groups=["sales-admin"], scopes=["crm.read", "crm.write"])
    denied = policy_input(UNKNOWN, groups=["sales"])
    records = [Recorded(granted, None), Recorded(granted, None), Recorded(denied, None)]
    impact = await replay(records, live, FixedEngine(Decision(allow=False, error="access_denied")))
    assert impact.changed == 2
    assert impact.by_audience == {CRM: {"allow": 2}}
    (((user, audience), change),) = impact.users.items()
    assert (user, audience) == ("alice@example.com", CRM)
    assert (change.gained, change.lost, change.decisions) == (set(), {"crm.read", "crm.write"}, 2)


HASH = "hmac:4be1" + "0" * 28


@pytest.mark.parametrize(
    ("subject", "named"),
    [
        pytest.param({"email": "a@example.com", "sub": "alice"}, "a@example.com", id="clear"),
        pytest.param({"email": "", "sub": "alice"}, "alice", id="no-email"),
        # Walkthrough, session 14: the default hash_fields hash the email only, and the report
        # named every user "hmac:…" although the log held each sub in clear.
        pytest.param({"email": HASH, "sub": "alice"}, f"alice ({HASH})", id="email-hashed"),
        pytest.param({"email": HASH, "sub": "salted:" + "1" * 32}, HASH, id="both-hashed"),
        pytest.param({"email": HASH}, HASH, id="no-sub"),
    ],
)
def test_a_user_is_named_by_what_the_log_holds_in_clear(
    subject: dict[str, str], named: str
) -> None:
    assert user_of({"subject": subject}) == named


def test_the_report_counts_one_decision_in_the_singular() -> None:
    # Walkthrough, session 11: "(1 decisions)".
    impact = Impact(replayed=1, changed=1)
    impact.users[("alice@example.com", CRM)] = UserChange(lost={"crm.read"}, decisions=1)
    text = impact_text(impact, None, exceeded=False)
    assert "== replayed 1 decision (0 other lines skipped)" in text
    assert "-crm.read  (1 decision)" in text
    impact.users[("alice@example.com", CRM)].decisions = 2
    assert "(2 decisions)" in impact_text(impact, None, exceeded=False)


def _with(document: dict[str, Any], part: str, value: Any) -> dict[str, Any]:
    """`document` with `part` ("request" or "request.scopes") set to `value`."""
    edited = json.loads(json.dumps(document))
    *parents, name = part.split(".")
    target = edited
    for parent in parents:
        target = target[parent]
    target[name] = value
    return edited


MALFORMED = [
    ("request", "crm", "input.request is not an object"),
    ("request", ["crm"], "input.request is not an object"),
    ("subject", "alice", "input.subject is not an object"),
    ("request.scopes", "crm.read", "input.request.scopes is not a list of strings"),
    ("request.scopes", [{"s": 1}], "input.request.scopes is not a list of strings"),
    ("request.audience", 7, "input.request.audience is not a string"),
]


async def test_decisions_whose_input_is_malformed_are_counted_named_and_skipped(
    tmp_path: Path, live: PolicyRuntime
) -> None:
    """Red team session 13: a record whose `request` was not an object ended the run with an
    AttributeError. Now it is skipped, counted, and its file and line named (the first five)."""
    good = policy_input(CRM, groups=["sales"], scopes=["crm.read"])
    events = [{"path": PATH, "input": good}]
    for part, value, _ in MALFORMED:
        events.append({"path": PATH, "input": _with(good, part, value)})
    events.append({"path": PATH, "input": _with(good, "request.scopes", None)})  # null: none
    reader = DecisionReader([_write(tmp_path / "d.jsonl", *events)], PATH)
    impact = await replay(reader, live, FixedEngine(Decision(allow=False)))
    assert (impact.replayed, impact.changed, reader.malformed) == (2, 2, 6)
    assert reader.malformed_at == [
        f"{tmp_path / 'd.jsonl'}:{line}: {why}" for line, (_, _, why) in enumerate(MALFORMED[:5], 2)
    ]
    impact.malformed, impact.malformed_at = reader.malformed, reader.malformed_at
    text = impact_text(impact, None, exceeded=False)
    assert (
        f"== not replayed: 6 malformed decisions, skipped (first: {reader.malformed_at[0]};" in text
    )
    assert impact_document(impact)["malformed"] == 6


async def test_the_replay_keeps_the_last_inputs_not_every_input_of_the_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Red team session 13: every distinct input was kept for the run (`now` makes almost every
    record distinct), so memory grew with the log. The reader yields one record at a time and
    the replay keeps the decisions of the last MEMO_ENTRIES inputs only: an input logged twice in
    a row is decided once, one seen before the last MEMO_ENTRIES again."""
    monkeypatch.setattr(impact_module, "MEMO_ENTRIES", 3, raising=False)
    engine = FixedEngine(Decision(allow=True, scopes=("crm.read",)))
    inputs = [dict(policy_input(CRM, scopes=["crm.read"]), now=now) for now in range(50)]
    records = [Recorded(document, None) for document in inputs for _ in range(2)]
    records.append(Recorded(inputs[-3], None))  # among the last 3: kept
    records.append(Recorded(inputs[0], None))  # 49 inputs ago: forgotten, decided again
    impact = await replay(records, engine, engine)
    assert impact.replayed == 102
    assert engine.calls == 2 * 51  # live and candidate, once per input kept, and inputs[0] again
