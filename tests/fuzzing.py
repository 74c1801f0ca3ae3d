"""Shared fuzzing helpers: byte-level mutations of valid messages (set, insert, delete,
truncate), for the codecs' fuzz tests."""

from __future__ import annotations

from hypothesis import strategies as st

MUTATIONS = st.lists(st.tuples(st.sampled_from(["set", "insert", "delete", "truncate"]),
                               st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=4)


def mutate(wire: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    mutated = bytearray(wire)
    for operation, position, value in mutations:
        index = position % (len(mutated) + 1)
        if operation == "set" and index < len(mutated):
            mutated[index] = value
        elif operation == "insert":
            mutated.insert(index, value)
        elif operation == "delete" and index < len(mutated):
            del mutated[index]
        elif operation == "truncate":
            del mutated[index:]
    return bytes(mutated)
