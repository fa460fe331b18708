"""Schemathesis against a real ``robochem serve`` on the simulated lab: no 5xx, ever.

Run::

    .venv/bin/python -m benchmarks.api_fuzz --cases 3000      # the acceptance run
    .venv/bin/python -m benchmarks.api_fuzz --cases 300       # a quick one

Starts ``robochem sim --json --platform-out FILE`` and ``robochem serve --platform FILE``
as subprocesses (the console script, as a lab runs it) on a temporary SQLite database
(``ROBOCHEM_DATABASE_URL``), makes an admin with ``robochem user add NAME --role admin
--password-stdin`` and a token with ``robochem user token NAME``, seeds one valid campaign
(the shipped ``hat-alkylation`` example, through the API), then runs the schemathesis CLI
over ``/openapi.json`` with ``--checks all`` twice: anonymously and with the admin's token
(``Authorization: Bearer``). Each mode runs every phase (examples, coverage, fuzzing,
stateful) over every operation (with the token, ``PATCH /api/users/{name}`` runs last, on
its own: see OWN_ACCOUNT), with ``--max-examples`` sized so that it generates at least
``--cases`` test cases; every request and answer is read back from the HAR report and
counted by status, the checks' findings from the JSON report.
It prints a table of statuses per mode and what each schemathesis check reported, and
exits 1 on any 5xx (or if a mode made fewer requests than asked).

DELETE operations are left out, as in tests/web/test_openapi_fuzz.py: ``DELETE
/api/tokens/{id}`` would revoke the run's own token (ids are small integers) and the rest
of the run would test 401s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
ROBOCHEM = str(Path(sys.executable).with_name("robochem"))
SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
ADMIN = "fuzz-admin-q7"  # a name the fuzzer will not guess when it patches users
PASSWORD = "fuzzing password 1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServedLab:
    """A running ``robochem sim`` + ``robochem serve`` pair."""

    base: str
    folder: Path
    env: dict[str, str]
    serve: subprocess.Popen[bytes]
    serve_log: Path
    tokens: dict[str, str] = field(default_factory=dict)  # user -> bearer token

    def bearer(self, user: str = ADMIN) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def log_text(self) -> str:
        return self.serve_log.read_text(errors="replace")


def _env(folder: Path) -> dict[str, str]:
    """This machine's environment without robochem settings, plus a database of our own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROBOCHEM_")}
    env.update(
        ROBOCHEM_DATABASE_URL=f"sqlite:///{folder / 'robochem.db'}",
        ROBOCHEM_DATA_DIR=str(folder / "data"),
        XDG_CONFIG_HOME=str(folder / "config"),  # no settings file of this machine's user
    )
    return env


def _robochem(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [ROBOCHEM, *args], input=stdin, capture_output=True, text=True, env=env, timeout=120,
        check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"robochem {' '.join(args)}: {done.stderr}")
    return done.stdout


def add_user(lab: ServedLab, name: str, role: str) -> str:
    """A user of ``role`` and their API token (through the CLI, as an administrator does)."""
    _robochem(lab.env, "user", "add", name, "--role", role, "--password-stdin", stdin=PASSWORD)
    token = _robochem(lab.env, "user", "token", name).strip().split()[-1]
    lab.tokens[name] = token
    return token


@contextlib.contextmanager
def served_lab(
    speed: float = 100.0, folder: Path | None = None, settings: dict[str, str] | None = None
) -> Iterator[ServedLab]:
    """The simulated lab and the dashboard serving it, each in its own process; ``settings``
    are extra environment variables (e.g. ``{"ROBOCHEM_CHECK_TIMEOUT_S": "2"}``)."""
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rc-fuzz-")))
        env = {**_env(folder), **(settings or {})}
        platform = folder / "platform.yaml"
        sim = subprocess.Popen(
            [ROBOCHEM, "sim", "--json", "--platform-out", str(platform), "--speed", str(speed),
             "--data-dir", str(folder / "nmr"), "--seed", "3"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )  # fmt: skip
        stack.callback(_stop, sim)
        assert sim.stdout is not None
        if not sim.stdout.readline():  # the JSON line: its servers are up
            raise RuntimeError("robochem sim did not start")
        port = free_port()
        serve_log = folder / "serve.log"
        log = stack.enter_context(serve_log.open("wb"))
        serve = subprocess.Popen(
            [ROBOCHEM, "serve", "--platform", str(platform), "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        stack.callback(_stop, serve)
        lab = ServedLab(f"http://127.0.0.1:{port}", folder, env, serve, serve_log)
        add_user(lab, ADMIN, "admin")
        deadline = time.monotonic() + 90
        while True:
            if serve.poll() is not None:
                raise RuntimeError(f"robochem serve exited:\n{lab.log_text()}")
            try:
                if httpx.get(f"{lab.base}/api/status", headers=lab.bearer(), timeout=5).is_success:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"robochem serve did not answer in 90 s:\n{lab.log_text()}")
            time.sleep(0.2)
        yield lab


def _stop(process: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)  # both leave the (virtual) lab safe on Ctrl-C
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# -- fuzzing -----------------------------------------------------------------------------------


@dataclass
class FuzzResult:
    mode: str
    cases: int  # test cases schemathesis generated
    statuses: Counter[int]  # of every request made (some checks send more than one)
    findings: Counter[str]  # schemathesis failure (code and title) -> cases
    server_errors: list[str]  # "METHOD URL -> status: body" of every 5xx
    seconds: float

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def __add__(self, other: FuzzResult) -> FuzzResult:
        return FuzzResult(
            self.mode, self.cases + other.cases, self.statuses + other.statuses,
            self.findings + other.findings, self.server_errors + other.server_errors,
            self.seconds + other.seconds,
        )  # fmt: skip


def seed_campaign(lab: ServedLab) -> int:
    """One valid campaign (created, not started), so ids 1.. reach a real row."""
    text = (ROOT / "protocols" / "examples" / "hat-alkylation.yaml").read_text()
    r = httpx.post(
        f"{lab.base}/api/campaigns", json={"protocol_yaml": text}, headers=lab.bearer(),
        timeout=60,
    )  # fmt: skip
    r.raise_for_status()
    return int(r.json()["id"])


#: Schemathesis learns values from responses (and follows links in its stateful phase): it
#: finds the run's own user name in GET /api/me and, once it has made another admin (so
#: the last-admin rule holds), disables or demotes it, after which the rest of the run only
#: tests 401s. With the admin's token this operation therefore runs last, on its own.
OWN_ACCOUNT = "change_user_api_users__name__patch"  # PATCH /api/users/{name}
PHASES = "examples,coverage,fuzzing,stateful"


def fuzz_mode(lab: ServedLab, *, anonymous: bool, max_examples: int, seed: int) -> FuzzResult:
    """Every phase over every operation (with the token: OWN_ACCOUNT in a second run)."""
    if anonymous:
        return run_schemathesis(lab, anonymous=True, max_examples=max_examples, seed=seed)
    first = run_schemathesis(
        lab, anonymous=False, max_examples=max_examples, seed=seed,
        operations=("--exclude-operation-id", OWN_ACCOUNT),
    )  # fmt: skip
    return first + run_schemathesis(
        lab, anonymous=False, max_examples=max_examples, seed=seed,
        operations=("--include-operation-id", OWN_ACCOUNT),
    )  # fmt: skip


def run_schemathesis(
    lab: ServedLab,
    *,
    anonymous: bool,
    max_examples: int,
    seed: int = 1,
    operations: tuple[str, ...] = (),
) -> FuzzResult:
    """One schemathesis CLI run with all checks and phases, every response counted by
    status; ``operations`` are extra CLI filter options."""
    mode = "anonymous" if anonymous else "admin token"
    name = "-".join(["schemathesis", mode.split()[0], *operations[:1]]).replace("--", "")
    har, report = lab.folder / f"{name}.har", lab.folder / f"{name}.json"
    command = [
        SCHEMATHESIS, "run", f"{lab.base}/openapi.json", "--checks", "all", "--phases", PHASES,
        "--exclude-method", "DELETE", "--max-examples", str(max_examples), "--seed", str(seed),
        "--workers", "1", "--no-shrink", "--continue-on-failure", "--request-timeout", "30",
        "--report", "har,json", "--report-har-path", str(har), "--report-json-path", str(report),
        *operations,
    ]  # fmt: skip
    if not anonymous:
        command += ["--header", f"Authorization: Bearer {lab.tokens[ADMIN]}"]
    start = time.monotonic()
    subprocess.run(
        command, capture_output=True, cwd=lab.folder, check=False,
        env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"},
    )  # fmt: skip
    seconds = time.monotonic() - start
    statuses: Counter[int] = Counter()
    server_errors = []
    for entry in json.loads(har.read_text())["log"]["entries"]:
        status = int(entry["response"]["status"])
        statuses[status] += 1
        if status >= 500:
            body = entry["response"].get("content", {}).get("text", "")[:300]
            request = entry["request"]
            server_errors.append(f"{request['method']} {request['url']} -> {status}: {body}")
    summary = json.loads(report.read_text())
    findings = Counter(
        {f"{f['code']} {f['title']}": int(f["count"]) for f in summary.get("failures", [])}
    )
    cases = int(summary["test_cases"]["generated"])
    return FuzzResult(mode, cases, statuses, findings, server_errors, seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=3000, help="requests per mode, at least")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="keep the run's folder (logs, HAR files) here")
    args = parser.parse_args(argv)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    results = []
    with served_lab(folder=args.keep) as lab:
        seed_campaign(lab)
        for anonymous in (True, False):
            results.append(fuzz_until(lab, anonymous=anonymous, cases=args.cases, seed=args.seed))
        token_works = httpx.get(f"{lab.base}/api/me", headers=lab.bearer()).status_code == 200
        log = lab.log_text()
    print_table(results)
    tracebacks = log.count("Traceback (most recent call last)")
    unretrieved = log.count("exception was never retrieved")
    print(f"\nserver log: {tracebacks} tracebacks, {unretrieved} unretrieved task exceptions")
    print(f"the admin's token still works after the run: {token_works}")
    failed = [r for r in results if r.server_errors or r.cases < args.cases]
    for r in results:
        for line in r.server_errors[:20]:
            print(f"5xx ({r.mode}): {line}")
    return 1 if failed else 0


def fuzz_until(lab: ServedLab, *, anonymous: bool, cases: int, seed: int) -> FuzzResult:
    """Runs with a growing ``--max-examples`` until one generates at least ``cases`` cases."""
    max_examples = max(2, cases // 250)
    while True:
        result = fuzz_mode(lab, anonymous=anonymous, max_examples=max_examples, seed=seed)
        if result.cases >= cases or result.server_errors or max_examples > cases:
            return result
        max_examples = int(max_examples * 1.2 * cases / max(result.cases, 1)) + 1


def print_table(results: list[FuzzResult]) -> None:
    codes = sorted({code for r in results for code in r.statuses})
    print(f"\n{'mode':<13}{'cases':>7}{'requests':>9}{'5xx':>5}{'s':>6}  requests by status")
    for r in results:
        fives = sum(n for code, n in r.statuses.items() if code >= 500)
        spread = ", ".join(f"{code}: {r.statuses[code]}" for code in codes if r.statuses[code])
        print(f"{r.mode:<13}{r.cases:>7}{r.requests:>9}{fives:>5}{r.seconds:>6.0f}  {spread}")
    print("\nschemathesis findings other than 5xx (failure: cases)")
    for r in results:
        found = "; ".join(f"{k}: {n}" for k, n in sorted(r.findings.items())) or "none"
        print(f"  {r.mode}: {found}")


if __name__ == "__main__":
    sys.exit(main())
