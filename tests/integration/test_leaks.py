"""No leaks across a test suite: 50 `TestClient` tests, each on a fresh store, in one pytest.

The acceptance point: an app's own test suite, written as FastAPI users write it (an app per
test, `TestClient(app)` without ``with`` for half of them, each test on a store of its own,
dropped after the test), ends with no thread left beyond the interpreter's own and with no
line at WARNING or above from afterward's loggers, during the run or at exit.

The suite is generated into a temporary folder and run by a pytest of its own, in a child
process, as an app's suite is. Its ``conftest.py`` records afterward's records at WARNING
and above from the start, and at the end of the session (after ``gc.collect()`` and up to
2 s for threads to end) lists the threads still alive and the records; either fails the
run. Records that come later (at exit) are printed as they come, and counted too. The Redis
store's warning about the test server's persistence settings (AOF off) is shown, not
counted: it is about the server, not a leak. The same suite with FastAPI's own
`BackgroundTasks` (only the import changed back) passes: what fails is afterward's.

Half the tests use zero configuration (`AFTERWARD_URL`), half `Afterward(url=...)` as the
app's lifespan; crossed with that, half call `TestClient(app)` bare, half ``with`` it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import STORE_PARAMS
from servers import drop_store_data

TESTS = Path(__file__).resolve().parents[1]
"""On the child's path, for `servers` (each test's store is dropped after it)."""

COUNT = 50
TIMEOUT = 600.0
"""Seconds the child's suite may take (it takes a few; a thread that blocks exit hangs it)."""

MARK = "AFTERWARD-LEAKS"
"""Starts every line the child's conftest.py writes about what it found."""

SUSPECT = re.compile(
    r"store unavailable|renewing leases failed|does not exist|cannot schedule new futures"
    r"|Exception in thread|\b(WARNING|ERROR|CRITICAL)\b.*\bafterward"
)
"""A line of the child's output, other than the conftest's own, that says afterward warned
or failed (printed by something else: Python's last-resort handler, a dying thread)."""

SERVER_SETTING = "may be lost on a Redis crash"
"""In the Redis store's warning at connect about the server's persistence settings (AOF
off here): a fact about the test server, not a leak, so shown but not counted."""

CONFTEST = f"""
\"\"\"Records afterward's warnings from the start; checks threads and records at the end.\"\"\"

from __future__ import annotations

import atexit
import gc
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import drop_store_data

MARK = {MARK!r}
SERVER_SETTING = {SERVER_SETTING!r}
URLS: dict[str, str] = json.loads((Path(__file__).parent / "urls.json").read_text())
RECORDS: list[logging.LogRecord] = []
SERVER_RECORDS: list[logging.LogRecord] = []
FINISHED = threading.Event()


def _line(record: logging.LogRecord) -> str:
    message = record.getMessage().replace("\\n", "\\\\n")
    return f"{{record.levelname}} {{record.name}} [{{record.threadName}}] {{message}}"


def _say(line: str) -> None:
    print(f"{{MARK}} {{line}}", file=sys.__stderr__, flush=True)


class Recorder(logging.Handler):
    \"\"\"Keeps afterward's records at WARNING and above; after the session, prints them.\"\"\"

    def emit(self, record: logging.LogRecord) -> None:
        if SERVER_SETTING in record.getMessage():
            SERVER_RECORDS.append(record)
            return
        RECORDS.append(record)
        if FINISHED.is_set():
            _say(f"late record: {{_line(record)}}")


logging.getLogger("afterward").addHandler(Recorder(logging.WARNING))


@atexit.register  # registered first, so it runs last: after afterward's own at-exit stops
def _at_exit() -> None:
    _say(f"records in all: {{len(RECORDS)}}")


@pytest.fixture
def fresh_url(request: pytest.FixtureRequest) -> Iterator[str]:
    \"\"\"This test's own store (a new SQLite file, PostgreSQL schema or Redis key prefix),
    dropped after the test as an app's suite does.\"\"\"
    url = URLS[request.node.name]
    yield url
    drop_store_data(url)


def _extra_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t is not threading.main_thread()]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    gc.collect()
    deadline = time.monotonic() + 2.0
    while _extra_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
        gc.collect()
    threads = _extra_threads()
    found = list(RECORDS)
    FINISHED.set()
    print(file=sys.__stderr__)
    _say(f"threads left: {{len(threads)}}")
    for thread in threads:
        _say(f"thread: {{thread.name}} (daemon={{thread.daemon}})")
    _say(f"records: {{len(found)}}")
    for record in found:
        _say(f"record: {{_line(record)}}")
    if SERVER_RECORDS:
        count = len(SERVER_RECORDS)
        _say(f"server-setting warnings, not counted: {{count}}, e.g. {{_line(SERVER_RECORDS[0])}}")
    if threads or found:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
"""

MODULE_HEAD = '''
"""{count} tests as an app's suite has them: an app each, on a store of its own."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

{imports}

EVENTS: list[str] = []


def record_sync(n: int) -> None:
    EVENTS.append(f"sync {{n}}")


async def record_async(n: int) -> None:
    EVENTS.append(f"async {{n}}")


def routes(app: FastAPI) -> FastAPI:
    @app.post("/items/{{n}}")
    def create_item(n: int, background_tasks: BackgroundTasks) -> dict[str, int]:
        background_tasks.add_task(record_sync, n)
        background_tasks.add_task(record_async, n)
        return {{"created": n}}

    return app


def zero_config_app() -> FastAPI:
    return routes(FastAPI())


{configured}


def check(client: TestClient, n: int) -> None:
    for item in (n, n + 1000):
        EVENTS.clear()
        response = client.post(f"/items/{{item}}")
        assert response.status_code == 200
        assert response.json() == {{"created": item}}
        assert EVENTS == [f"sync {{item}}", f"async {{item}}"]
'''

AFTERWARD_IMPORTS = "from afterward import Afterward\nfrom afterward.fastapi import BackgroundTasks"
AFTERWARD_CONFIGURED = """def configured_app(url: str) -> FastAPI:
    afterward = Afterward(url=url)
    return routes(FastAPI(lifespan=afterward.lifespan))"""

FASTAPI_IMPORTS = "from fastapi import BackgroundTasks"
FASTAPI_CONFIGURED = """def configured_app(url: str) -> FastAPI:
    return routes(FastAPI())  # FastAPI's own BackgroundTasks: no store to configure"""


def _name(i: int) -> str:
    config = "zero_config" if i % 2 == 0 else "configured"
    client = "plain_client" if (i // 2) % 2 == 0 else "with_client"
    return f"test_{i:02d}_{config}_{client}"


def _test_source(i: int) -> str:
    """Test `i`: zero configuration (`AFTERWARD_URL`) or `Afterward(url=...)` as the app's
    lifespan; `TestClient(app)` as FastAPI's docs write it, or ``with TestClient(app)``."""
    name = _name(i)
    if "zero_config" in name:
        params = "fresh_url: str, monkeypatch: pytest.MonkeyPatch"
        body = ['monkeypatch.setenv("AFTERWARD_URL", fresh_url)', "app = zero_config_app()"]
    else:
        params = "fresh_url: str"
        body = ["app = configured_app(fresh_url)"]
    if "plain_client" in name:
        body += ["client = TestClient(app)", f"check(client, {i})"]
    else:
        body += ["with TestClient(app) as client:", f"    check(client, {i})"]
    lines = "\n".join(f"    {line}" for line in body)
    return f"\n\ndef {name}({params}) -> None:\n{lines}\n"


def write_suite(folder: Path, urls: dict[str, str], *, with_afterward: bool) -> Path:
    """The generated suite in `folder`; returns its test module."""
    folder.mkdir()
    (folder / "pytest.ini").write_text("[pytest]\n")  # not the repository's settings
    (folder / "urls.json").write_text(json.dumps(urls))
    (folder / "conftest.py").write_text(CONFTEST.lstrip())
    head = MODULE_HEAD.format(
        count=COUNT,
        imports=AFTERWARD_IMPORTS if with_afterward else FASTAPI_IMPORTS,
        configured=AFTERWARD_CONFIGURED if with_afterward else FASTAPI_CONFIGURED,
    )
    module = folder / "test_fifty_apps.py"
    module.write_text(head.lstrip() + "".join(_test_source(i) for i in range(COUNT)))
    return module


def run_suite(module: Path) -> tuple[int, str]:
    """Run the suite with a pytest of its own; its exit code and its whole output (also
    kept in ``output.txt`` beside it)."""
    env = {k: v for k, v in os.environ.items() if not _inherited_setting(k)}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:asyncio", "-q"]
    command.append(module.name)  # sync tests: pytest-asyncio (and its notice) not needed
    kept = module.parent / "output.txt"
    try:
        done = subprocess.run(
            command, cwd=module.parent, env=env, capture_output=True, text=True, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired as exc:
        kept.write_text(_text(exc.stdout) + _text(exc.stderr))
        pytest.fail(f"the suite did not end within {TIMEOUT} s (its output: {kept})")
    kept.write_text(done.stdout + done.stderr)
    return done.returncode, done.stdout + done.stderr


def _inherited_setting(name: str) -> bool:
    """Set by this session or its caller and not for the child: afterward's settings
    (this session's store, a log level), pytest's own."""
    if name.startswith("AFTERWARD_"):
        return not name.startswith("AFTERWARD_TEST_")  # the servers' URLs are kept
    return name.startswith("PYTEST_")


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


SUMMARY = re.compile(r"^(\d+ \w+, )*\d+ \w+ in [\d.]+s", re.MULTILINE)
"""pytest's last line under ``-q``: ``50 passed in 6.01s``, ``3 failed, 47 passed, ...``."""


def problems(output: str) -> list[str]:
    """What the child's output says is wrong; empty if the suite was clean."""
    found = []
    if not re.search(rf"^{COUNT} passed(, \d+ warnings?)? in ", output, re.MULTILINE):
        summary = SUMMARY.search(output)
        found.append(f"not all {COUNT} tests passed ({summary[0] if summary else 'no summary'})")
    for line in ("threads left: 0", "records: 0", "records in all: 0"):
        if f"{MARK} {line}\n" not in output:
            found.append(f"no '{MARK} {line}'")
    if any(SUSPECT.search(line) for line in _others(output)):
        found.append("afterward warning or error lines in the output")
    if "would not be durable" in output:
        found.append("tasks ran in memory, not stored")
    return found


def _others(output: str) -> list[str]:
    return [line for line in output.splitlines() if not line.startswith(MARK)]


def report(output: str, limit: int = 40) -> str:
    """The child's findings, each distinct line once with its count (ids and store names
    differ from line to line: they are shown as ``…``), then the start of its other lines."""
    marked = [line for line in output.splitlines() if line.startswith(MARK)]
    marked += [f"(suspect) {line}" for line in _others(output) if SUSPECT.search(line)]
    counts = Counter(
        re.sub(r"\b[0-9a-f]{16,}\b|aw_test_[0-9a-f]+|/stores/\d+/", "…", line) for line in marked
    )
    shown = [f"{n:4d}x {line}" for line, n in list(counts.items())[:limit]]
    if len(counts) > limit:
        shown.append(f"     … and {len(counts) - limit} more distinct lines")
    rest = "\n".join(_others(output))
    return "\n".join([*shown, "-- the rest of the output (its start):", rest[:4000]])


def check(module: Path) -> None:
    """Run the suite of `module`; fail with what it found, unless it was clean."""
    code, output = run_suite(module)
    found = problems(output)
    if found or code != 0:
        kept = module.parent / "output.txt"
        pytest.fail(f"exit code {code}; {'; '.join(found)} (output: {kept}):\n{report(output)}")


@pytest.mark.slow
@pytest.mark.parametrize("make_url", STORE_PARAMS)
def test_fifty_testclient_tests_leave_no_thread_and_log_no_warning(
    make_url: Callable[[Path], str], tmp_path: Path
) -> None:
    # Given a suite of 50 TestClient tests, each building an app on a fresh store
    stores = tmp_path / "stores"
    urls: dict[str, str] = {}
    for i in range(COUNT):
        (stores / f"{i:02d}").mkdir(parents=True)
        urls[_name(i)] = make_url(stores / f"{i:02d}")
    module = write_suite(tmp_path / "suite", urls, with_afterward=True)
    try:
        # When it runs in one pytest process, Then every test passed, no thread was left
        # and afterward logged no warning
        check(module)
    finally:
        for url in urls.values():  # what a thread left running may have made again
            drop_store_data(url)


def test_the_same_suite_with_fastapis_background_tasks_passes(tmp_path: Path) -> None:
    # Given the same suite with only the import changed back to FastAPI's BackgroundTasks
    urls = {_name(i): f"sqlite:///{tmp_path / f'{i:02d}.db'}" for i in range(COUNT)}
    module = write_suite(tmp_path / "suite", urls, with_afterward=False)
    # When it runs, Then it passes: the checks themselves find nothing to fail on
    check(module)
