"""Schemathesis against /openapi.json with an operator's API token: no 5xx anywhere.

The app runs in-process (ASGI) with FakeLab, FakeEngine and a seeded campaign (ids 1..),
so generated requests reach real rows as well as missing ones, on SQLite and on
PostgreSQL (the ``db_url`` fixture; PostgreSQL is the stricter one: 32-bit integers, no
NUL bytes). For every operation, schemathesis generates valid requests (positive mode)
and invalid ones (negative mode, which also drops the Authorization header now and then:
those answer 401); every response must not be a server error and must match the schema
declared for its status code. The operator's run is followed by an admin's run over
user management, which the operator may only see refused (403).

The loop over operations is written out with hypothesis rather than with
``schemathesis.pytest.from_fixture``, whose lazy parametrization does not run on pytest 9.

DELETE operations are left out: ``DELETE /api/tokens/{id}`` would sooner or later revoke
the very token the run authenticates with (ids are small integers), after which every
request answers 401 and the run tests nothing. Revocation is covered by test_web_api.py
and the authorization matrix.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import schemathesis
from dashboard_kit import World, client_for, make_world, seed_campaign
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import HypothesisException
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance

from robochem.storage.db import Database
from robochem.storage.models import Campaign

EXAMPLES_PER_MODE = 15
# Random ids rarely hit a stored row, so operations on a campaign or an experiment are also
# fuzzed with each seeded id pinned (valid requests only, a few each).
KNOWN_IDS = {"campaign_id": range(1, 6), "experiment_id": range(1, 8)}
EXAMPLES_PER_KNOWN_ID = 3


def describe(case: schemathesis.Case) -> str:
    body = "" if type(case.body).__name__ == "NotSet" else f" body={case.body!r}"
    return f"{case.method} {case.formatted_path} query={case.query}{body}"


def fuzz_operation(
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    headers: dict[str, str],
    statuses: Counter[int],
    *,
    path_parameters: dict[str, int] | None = None,
    examples: int = EXAMPLES_PER_MODE,
) -> None:
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

    @given(case=strategy)
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,  # the same requests on every run: a failure is reproducible
        phases=[Phase.explicit, Phase.generate],  # no shrinking: report the first failure
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def run(case: schemathesis.Case) -> None:
        try:
            response = case.call(headers=headers)
        except Exception as error:  # the in-process client re-raises what became a 500
            raise AssertionError(f"{describe(case)}: 500, {error!r}") from error
        statuses[response.status_code] += 1
        assert response.status_code < 500, (
            f"{describe(case)}: {response.status_code} {response.text[:500]}"
        )
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    run()


async def token_works(world: World, role: str) -> int:
    async with client_for(world.app) as client:
        return (await client.get("/api/me", headers=world.bearer(role))).status_code


def fuzz(schema: schemathesis.BaseSchema, headers: dict[str, str]) -> Counter[int]:
    """Every operation of ``schema`` in both modes; the status codes seen."""
    failures, tried = [], []
    statuses: Counter[int] = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        tried.append(operation.label)
        runs: list[tuple[str, dict[str, Any]]] = [
            (mode.value, {"mode": mode})
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ]
        for name, ids in KNOWN_IDS.items():
            if "{" + name + "}" in operation.path:
                runs += [
                    (
                        f"{name}={i}",
                        {
                            "mode": GenerationMode.POSITIVE,
                            "path_parameters": {name: i},
                            "examples": EXAMPLES_PER_KNOWN_ID,
                        },
                    )
                    for i in ids
                ]
        for label, options in runs:
            try:
                fuzz_operation(operation, headers=headers, statuses=statuses, **options)
            except (AssertionError, FailureGroup, HypothesisException) as error:
                # a failing check, a schema violation or hypothesis giving up: collect
                # every operation's failure, then report them all
                failures.append(f"{operation.label} ({label}): {error}")
    assert not failures, "\n\n".join(failures)
    assert tried, "no operation selected"
    return statuses


def seed_odd_campaigns(database: Database) -> None:
    """Campaigns whose stored protocol is not a mapping or not YAML at all (an engine
    without validation could store them): routes that parse it must cope."""
    with database.session() as s:
        for text in ("just a sentence\n", "name: [unclosed\n", "- a\n- list\n", ""):
            s.add(Campaign(name="odd", protocol_text=text, protocol_sha256="0" * 64))


def test_no_server_error_for_an_operator_or_an_admin(db_url: str) -> None:
    world = make_world(db_url)
    try:
        seed_campaign(world.database)  # id 1, experiments 1..7
        seed_odd_campaigns(world.database)  # ids 2..5
        schema = schemathesis.openapi.from_asgi("/openapi.json", world.app)
        statuses = fuzz(schema.exclude(method="DELETE"), world.bearer("operator"))
        # the run reached the handlers (not only validation) and never locked itself out
        assert statuses[200] + statuses[201] >= 100, statuses
        assert asyncio.run(token_works(world, "operator")) == 200
        # user management needs the admin role: the operator only ever got 403 there
        statuses += fuzz(
            schema.include(tag="users").exclude(method="DELETE"), world.bearer("admin")
        )
        assert asyncio.run(token_works(world, "admin")) == 200
    finally:
        world.database.dispose()
