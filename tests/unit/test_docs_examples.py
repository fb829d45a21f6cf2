"""The examples in README.md and docs/ are what users copy: each one must still fit the code.

- Every ```toml block is a valid configuration on its own (`Settings`, the model
  `load_settings` validates a file with): no renamed key, wrong type or unsafe combination.
- Every ```python block parses (top-level `await` allowed: they are fragments of async code),
  every module and name it imports exists, and every call it makes to something it imported
  (or to a method of an object built from it: `client = Client(...)`, `await client.call(...)`)
  binds to that callable's signature: no renamed keyword, no extra positional argument.

- Every `sekisho …` command in a shell block parses with the CLI's own argument parser.
- A `sekisho policy eval --input docs/examples/…` block followed by a ```json block: the JSON
  is what the command prints for that input.

Names a fragment uses without importing them (`user_token`, `redis`) are the reader's own and
are not checked.
"""

import ast
import contextlib
import importlib
import inspect
import io
import json
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sekisho.cli import build_parser
from sekisho.config import Settings

REPO = Path(__file__).resolve().parents[2]
_FENCE = re.compile(r"^```(python|toml)\n(.*?)^```", re.S | re.M)


def _blocks(kind: str) -> list[tuple[str, str]]:
    """(`file:line`, source) of every ```kind block in README.md and docs/*.md."""
    found = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            if match.group(1) == kind:
                line = text.count("\n", 0, match.start()) + 1
                found.append((f"{path.relative_to(REPO)}:{line}", match.group(2)))
    return found


def _imported(tree: ast.AST) -> tuple[dict[str, Any], list[str]]:
    """The names the fragment imports, bound to their objects, and the imports that failed."""
    names: dict[str, Any] = {}
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            try:
                module = importlib.import_module(node.module)
            except ImportError as exc:
                problems.append(f"line {node.lineno}: cannot import {node.module}: {exc}")
                continue
            for alias in node.names:
                if not hasattr(module, alias.name):
                    problems.append(f"line {node.lineno}: {node.module} has no {alias.name}")
                else:
                    names[alias.asname or alias.name] = getattr(module, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                try:
                    importlib.import_module(alias.name)
                except ImportError as exc:
                    problems.append(f"line {node.lineno}: cannot import {alias.name}: {exc}")
    return names, problems


def _built(tree: ast.AST, names: dict[str, Any]) -> dict[str, type]:
    """Variables assigned an instance of an imported class: `x = Cls(...)` / `await Cls(...)`."""
    instances: dict[str, type] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
            if isinstance(value, ast.Await):
                value = value.value
            if (
                isinstance(target, ast.Name)
                and isinstance(value, ast.Call)
                and isinstance(value.func, ast.Name)
                and isinstance(names.get(value.func.id), type)
            ):
                instances[target.id] = names[value.func.id]
    return instances


def _method(cls: type, name: str) -> tuple[Any, bool] | None:
    """(callable, whether it takes `self`) for `instance.name(...)`, None if not a method."""
    raw = inspect.getattr_static(cls, name)
    if isinstance(raw, staticmethod):
        return raw.__func__, False
    if isinstance(raw, classmethod):
        return getattr(cls, name), False
    if inspect.isfunction(raw):
        return raw, True
    return None


def _binds(target: Any, call: ast.Call, *, with_self: bool) -> str | None:
    """Why `call`'s arguments do not bind to `target`'s signature, or None if they do."""
    if any(isinstance(arg, ast.Starred) for arg in call.args) or any(
        keyword.arg is None for keyword in call.keywords
    ):
        return None  # *args / **kwargs: not checkable statically
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return None  # a builtin without a signature
    positional = [object()] * (len(call.args) + with_self)
    try:
        signature.bind_partial(*positional, **{k.arg: None for k in call.keywords if k.arg})
    except TypeError as exc:
        return str(exc)
    return None


def _calls(tree: ast.AST, names: dict[str, Any]) -> Iterator[str]:
    """A problem per call to an imported callable, or to a built object's method, that does not
    bind to its signature (or names a method the class does not have)."""
    instances = _built(tree, names)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and callable(names.get(func.id)):
            why = _binds(names[func.id], node, with_self=False)
            if why:
                yield f"line {node.lineno}: {func.id}(...): {why}"
        elif (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id in instances
        ):
            cls = instances[func.value.id]
            if not hasattr(cls, func.attr):
                yield f"line {node.lineno}: {cls.__name__} has no {func.attr}"
                continue
            method = _method(cls, func.attr)
            if method is not None:
                why = _binds(method[0], node, with_self=method[1])
                if why:
                    yield f"line {node.lineno}: {cls.__name__}.{func.attr}(...): {why}"


def python_problems(source: str) -> list[str]:
    """What is wrong with a ```python example against the installed code (empty: nothing)."""
    try:
        tree = compile(
            source, "<example>", "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        )
    except SyntaxError as exc:
        return [f"line {exc.lineno}: not Python: {exc.msg}"]
    names, problems = _imported(tree)
    return problems + list(_calls(tree, names))


def toml_problem(source: str) -> str | None:
    """Why a ```toml example is not a valid configuration on its own, or None."""
    try:
        Settings(**tomllib.loads(source))
    except (tomllib.TOMLDecodeError, ValueError) as exc:  # pydantic.ValidationError included
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.mark.parametrize(
    ("where", "source"), _blocks("python"), ids=[w for w, _ in _blocks("python")]
)
def test_python_examples_fit_the_code(where: str, source: str) -> None:
    assert python_problems(source) == [], where


@pytest.mark.parametrize(("where", "source"), _blocks("toml"), ids=[w for w, _ in _blocks("toml")])
def test_toml_examples_are_valid_configurations(where: str, source: str) -> None:
    assert toml_problem(source) is None, where


def test_the_docs_have_examples_of_both_kinds() -> None:
    assert len(_blocks("python")) >= 5
    assert len(_blocks("toml")) >= 10


def test_the_python_check_sees_drift() -> None:
    good = (
        "from sekisho.client import TokenExchangeClient\n"
        "client = TokenExchangeClient('localhost:50051', timeout_seconds=2.0)\n"
        "token = await client.exchange('t', 'https://a.example', scopes=['x'])\n"
    )
    assert python_problems(good) == []
    renamed = good.replace("timeout_seconds", "timeout")
    assert "unexpected keyword argument 'timeout'" in python_problems(renamed)[0]
    method_kw = good.replace("scopes=", "scope=")
    assert "TokenExchangeClient.exchange" in python_problems(method_kw)[0]
    assert (
        "has no exchange_token"
        in python_problems(good.replace(".exchange(", ".exchange_token("))[0]
    )
    assert "has no NoSuchClient" in python_problems("from sekisho.client import NoSuchClient\n")[0]
    assert "cannot import" in python_problems("import sekisho.no_such_module\n")[0]
    assert "not Python" in python_problems("async with a as b ...\n")[0]
    too_many = (
        "from sekisho.verify import InMemoryReplayCache\nInMemoryReplayCache(1, 2, 3, 4, 5)\n"
    )
    assert "too many positional" in python_problems(too_many)[0]


def test_the_toml_check_sees_drift() -> None:
    assert toml_problem('[server]\ngrpc_listen = "127.0.0.1:50051"\n') is None
    assert "grpc_listn" in (toml_problem('[server]\ngrpc_listn = "127.0.0.1:50051"\n') or "")
    assert toml_problem("[server]\nworkers = 'two'\n") is not None
    assert toml_problem('[server]\ngrpc_listen = "0.0.0.0:50051"\n') is not None  # no TLS


_SHELL_FENCE = re.compile(r"^```(?:sh|bash|console|shell)\n(.*?)^```", re.S | re.M)
# `sekisho` as a command word: at the start, after whitespace or `$(`, maybe as `…bin/sekisho`.
_COMMAND = re.compile(r"(?:^|(?<=[\s(]))(?:[\w./-]*bin/)?sekisho\s+(?=[a-z-])")


def _joined(block: str) -> Iterator[tuple[str, int]]:
    """The block's commands with `\\` continuations joined, each with its first line's offset."""
    start, parts = 1, []
    for offset, line in enumerate(block.split("\n"), start=1):
        if not parts:
            start = offset
        if line.endswith("\\"):
            parts.append(line[:-1])
            continue
        yield " ".join([*parts, line]), start
        parts = []
    if parts:
        yield " ".join(parts), start


def _cli_commands() -> list[tuple[str, list[str]]]:
    """(`file:line`, argv after `sekisho`) of every `sekisho …` command in the shell blocks."""
    found = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for block in _SHELL_FENCE.finditer(text):
            number = text.count("\n", 0, block.start()) + 1
            for line, offset in _joined(block.group(1)):
                for match in _COMMAND.finditer(line):
                    # inside `$(…)`: right after it, or after a pipe in it (`$(echo … | sekisho …)`)
                    before = line[: match.start()]
                    nested = before.count("$(") > before.count(")")
                    rest = line[match.end() :]
                    if nested:
                        rest = rest.split(")", 1)[0]
                    words = shlex.split(re.split(r"\s(?:\||;|&&)\s", rest)[0], comments=True)
                    found.append((f"{path.relative_to(REPO)}:{number + offset}", words))
    return found


def cli_problem(argv: list[str]) -> str | None:
    """What `sekisho`'s own argument parser says about `argv`, or None if it parses."""
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            build_parser().parse_args(argv)
    except SystemExit:
        return errors.getvalue().strip().splitlines()[-1]
    return None


@pytest.mark.parametrize(("where", "argv"), _cli_commands(), ids=[w for w, _ in _cli_commands()])
def test_cli_examples_parse(where: str, argv: list[str]) -> None:
    assert cli_problem(argv) is None, where


def test_the_cli_check_sees_drift() -> None:
    assert len(_cli_commands()) >= 30
    assert cli_problem(["policy", "eval", "--input", "x.json"]) is None
    assert "invalid choice" in (cli_problem(["policy", "evaluate", "--input", "x.json"]) or "")
    assert "unrecognized arguments" in (cli_problem(["keys", "init", "--if-absent"]) or "")


_EVAL_EXAMPLE = re.compile(
    r"^```sh\n[^`]*sekisho policy eval [^`]*--input (docs/examples/[\w.-]+\.json)\n```\s*\n"
    r"```json\n(.*?)^```",
    re.S | re.M,
)


def _eval_examples() -> list[tuple[str, str, str]]:
    """(`file:line`, input file, printed decision) of every `sekisho policy eval --input
    docs/examples/…` block followed by the ```json block that shows its output."""
    found = []
    for path in sorted((REPO / "docs").glob("*.md")):
        text = path.read_text(encoding="utf-8")
        for match in _EVAL_EXAMPLE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{path.relative_to(REPO)}:{line}", match.group(1), match.group(2)))
    return found


def test_there_is_an_eval_example() -> None:
    assert _eval_examples()


@pytest.mark.parametrize(
    ("where", "document", "shown"), _eval_examples(), ids=[w for w, _, _ in _eval_examples()]
)
def test_eval_examples_show_what_eval_prints(
    where: str, document: str, shown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Walkthrough, session 11: the policy-authors example lacked "cache_ttl_seconds": 60, which
    # the shipped registry has given every grant since decision caching came in.
    from sekisho.cli import main

    argv = ["policy", "eval", "--config", str(REPO / "config" / "example.toml")]
    assert main([*argv, "--input", str(REPO / document)]) == 0, where
    assert json.loads(capsys.readouterr().out) == json.loads(shown), where
