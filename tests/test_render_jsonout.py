"""The JSON writer: deterministic, exact, scalar arrays and objects on one line."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.findings import WITNESSES_SHOWN, InvariantResult
from analyzer.render.jsonout import dumps

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
_documents = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=20)


@given(_documents)
@settings(max_examples=200, deadline=None)
def test_dumps_reads_back_as_the_same_data_sorted(document):
    text = dumps(document)
    assert text.endswith("\n")
    assert json.loads(text) == document
    again = json.loads(text)
    assert dumps(again) == text  # deterministic: the same data gives the same text


def test_scalar_arrays_and_leaf_objects_take_one_line_nested_ones_are_indented():
    text = dumps({"b": {"ids": ["z", "a"], "loc": {"line": 3, "file": "r.yaml"}}, "a": [{"x": 1}, [2]]})
    assert text == ('{\n  "a": [\n    {"x": 1},\n    [2]\n  ],\n'
                    '  "b": {\n    "ids": ["z", "a"],\n    "loc": {"file": "r.yaml", "line": 3}\n  }\n}\n')


def test_markup_and_non_ascii_are_kept_verbatim_and_escaped_as_json():
    text = dumps({"name": "<script>é\"\n"})
    assert json.loads(text) == {"name": "<script>é\"\n"} and "\\n" in text and "é" in text


def test_an_invariant_writes_a_capped_list_of_witnesses_and_says_how_many_it_left_out():
    witnesses = tuple({"call": {"tool": f"t{i:02d}"}, "path": [], "location": None} for i in range(WITNESSES_SHOWN + 5))
    data = InvariantResult("no-ungated-high-risk", "violated", witnesses, "r", witnesses).to_json()
    assert data["witnesses"] == list(witnesses[:WITNESSES_SHOWN])
    assert data["witnesses_omitted"] == 5 and data["witness_classes"] == len(witnesses)
    few = InvariantResult("no-ungated-high-risk", "violated", witnesses[:3], "r", witnesses[:3]).to_json()
    assert "witnesses_omitted" not in few and len(few["witnesses"]) == 3
