"""Hypothesis strategies for hostile seccomp profiles: random JSON that
looks like a profile, and random mutations of Docker's default profile."""

from __future__ import annotations

import copy
import json
import os

from hypothesis import strategies as st

DOCKER = os.path.join(os.path.dirname(__file__), "profiles", "docker-default.json")

# Keys a profile uses, so that random objects often reach the checks behind them.
PROFILE_KEYS = (
    "defaultAction",
    "defaultErrnoRet",
    "architectures",
    "archMap",
    "syscalls",
    "names",
    "name",
    "action",
    "errnoRet",
    "args",
    "includes",
    "excludes",
    "index",
    "value",
    "valueTwo",
    "op",
    "caps",
    "arches",
    "minKernel",
    "flags",
    "architecture",
    "subArchitectures",
    "listenerPath",
    "listenerMetadata",
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "CAP_SYS_ADMIN", "5.13"])
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(PROFILE_KEYS) | st.text(max_size=4), inner, max_size=4
        )
    ),
    max_leaves=20,
)
DELETE = object()


def value_paths(value, prefix=()):
    """The path of every value inside decoded JSON *value*."""
    yield prefix
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, inner in items:
        yield from value_paths(inner, prefix + (key,))


with open(DOCKER, encoding="utf-8") as stream:
    DOCKER_DATA = json.load(stream)
DOCKER_PATHS = list(value_paths(DOCKER_DATA))[1:]


def mutated(data, mutations):
    """A copy of *data* with each (path, value) applied; DELETE removes."""
    data = copy.deepcopy(data)
    for path, value in mutations:
        parent = data
        try:
            for key in path[:-1]:
                parent = parent[key]
            if value is DELETE:
                del parent[path[-1]]
            else:
                parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed the place

    return data


MUTATIONS = st.lists(
    st.tuples(st.sampled_from(DOCKER_PATHS), JSON_VALUES | st.just(DELETE)),
    min_size=1,
    max_size=3,
)
