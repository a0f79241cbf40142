"""Every route pvesim serves must exist in the official PVE 9.1 schema, with the same parameters.

Per route: the path and method exist; each declared parameter exists with a compatible type;
parameters the schema requires are required here (and the reverse, path parameters aside); declared
enums are subsets of the schema's; `allowtoken` agrees. Run with -s (or read the terminal summary)
for pvesim's coverage of the schema.
"""

from __future__ import annotations

import re

import pytest

from .schema import SchemaMissing, coverage, endpoints, served_routes

ROUTES = served_routes()


@pytest.fixture(scope="module")
def schema():
    try:
        return endpoints()
    except SchemaMissing as exc:
        pytest.fail(str(exc), pytrace=False)


def test_schema_is_readable(schema):
    assert "/cluster/resources" in schema and "GET" in schema["/cluster/resources"]


def test_registry_is_not_empty():
    assert len(ROUTES) > 50, "pvesim.api registered suspiciously few routes"


def test_no_route_is_declared_twice():
    seen: dict[tuple[str, str], str] = {}
    dupes = []
    for route in ROUTES:
        key = (route.method, route.path)
        if key in seen:
            dupes.append(f"{route.method} {route.path} ({seen[key]} and {route.handler.__module__})")
        seen[key] = route.handler.__module__
    assert not dupes, "declared twice: " + "; ".join(dupes)


@pytest.mark.parametrize("route", ROUTES, ids=[f"{r.method} {r.path}" for r in ROUTES])
def test_route_matches_schema(schema, route):
    problems = route_problems(schema, route)
    assert not problems, f"{route.method} {route.path} ({route.handler.__module__}):\n  " + "\n  ".join(problems)


def route_problems(schema: dict, route) -> list[str]:
    methods = schema.get(route.path)
    if methods is None:
        return [f"path {route.path} is not in the PVE schema"]
    info = methods.get(route.method)
    if info is None:
        return [f"{route.method} is not allowed on {route.path} (schema has {', '.join(sorted(methods))})"]
    props = (info.get("parameters") or {}).get("properties") or {}
    path_params = set(re.findall(r"\{([^}]+)\}", route.path))
    problems = []
    for name, ours in route.params.items():
        theirs = props.get(name)
        if theirs is None:
            problems.append(f"parameter '{name}' is not in the schema")
            continue
        their_type = theirs.get("type", "string")
        if ours.type != their_type:
            problems.append(f"parameter '{name}': declared {ours.type}, schema says {their_type}")
        if ours.enum is not None and theirs.get("enum") is not None:
            extra = set(ours.enum) - set(theirs["enum"])
            if extra:
                problems.append(f"parameter '{name}': enum values {sorted(extra)} are not in the schema's {theirs['enum']}")
        if name in path_params:
            continue
        their_required = not theirs.get("optional")
        if their_required and ours.optional:
            problems.append(f"parameter '{name}' is required by the schema but optional here")
        if not their_required and not ours.optional:
            problems.append(f"parameter '{name}' is optional in the schema but required here")
    for name, theirs in props.items():
        if name not in route.params and not theirs.get("optional") and name not in path_params:
            problems.append(f"required schema parameter '{name}' is not declared")
    their_allowtoken = info.get("allowtoken", 1) != 0
    if their_allowtoken != route.allowtoken:
        problems.append(f"allowtoken: schema says {int(their_allowtoken)}, route says {int(route.allowtoken)}")
    return problems


def test_coverage_is_reported(schema, capsys):
    paths, all_paths, pairs, all_pairs = coverage()
    with capsys.disabled():
        print(f"\npvesim serves {paths}/{all_paths} schema paths and {pairs}/{all_pairs} path+method pairs "
              f"({100 * pairs / all_pairs:.1f}%)")
    assert pairs > 0
