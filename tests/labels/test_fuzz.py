"""What printers and templates send back or put in is parsed without surprises (hypothesis, derandomized)."""
from __future__ import annotations

from hypothesis import given, strategies as st

from gateway.sinks.labels import ipp
from gateway.sinks.labels.printer import host_status_problem
from gateway.sinks.labels.template import fill
from gateway.sinks.labels.zpl import field_data
from tests.fuzz import FUZZ
from tests.labels.peers import zpl_labels


@FUZZ
@given(st.binary(max_size=300))
def test_any_answer_from_an_ipp_printer_decodes_or_is_an_ipp_error(data):
    try:
        resp = ipp.decode(data)
    except ipp.IppError:
        return
    assert isinstance(resp.status, int) and all(isinstance(g, dict) for _, g in resp.groups)


@FUZZ
@given(st.binary(max_size=200))
def test_any_host_status_answer_gives_ready_or_a_reason(data):
    problem = host_status_problem(data)
    assert problem is None or isinstance(problem, str)


@FUZZ
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=60))
def test_any_value_reaches_the_zpl_field_data_unchanged(value):
    zpl = ("^XA\n^FO0,0\n^A0N,20,20\n" + field_data(fill("lot {lot}", {"lot": value})) + "\n^XZ\n").encode()
    (label,) = zpl_labels(zpl)
    assert label["fields"] == [{"command": "^A0N,20,20", "data": f"lot {value}"}]


def test_a_printer_answer_cut_short_is_an_ipp_error():
    whole = ipp.encode(ipp.PRINT_JOB, 7, "ipp://p/printers/x", "u")
    for n in range(9, len(whole) - 1):
        try:
            ipp.decode(whole[:n])
        except ipp.IppError:
            pass



def _label_tree() -> dict:
    import tomllib
    from tests.labels.test_zpl import label_config
    return tomllib.loads(label_config("zpl://127.0.0.1", extra="status_check = true"))


def _leaf_paths(tree, prefix=()):
    out = [prefix] if prefix else []
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += _leaf_paths(v, prefix + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out += _leaf_paths(v, prefix + (i,))
    return out


_TREE = _label_tree()
_PATHS = [p for p in _leaf_paths(_TREE) if p[:2] == ("sinks", "zebra")]
_ANY = st.recursive(st.one_of(st.booleans(), st.integers(), st.floats(), st.text(max_size=30),
                              st.sampled_from(["{", "}", "{lot", "(", "zpl://", "ipp://h", "..", ""])),
                    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner,
                                                                                         max_size=3)),
                    max_leaves=6)


@FUZZ
@given(st.sampled_from(_PATHS), _ANY)
def test_a_label_printer_section_with_any_value_replaced_gives_a_config_or_errors_naming_it(path, value):
    import copy

    from gateway import config as config_mod
    from gateway.errors import ConfigError
    tree = copy.deepcopy(_TREE)
    node = tree
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    try:
        config_mod.validate(tree, "labels.toml")
    except ConfigError as exc:
        assert exc.problems and all(p.startswith("labels.toml: ") for p in exc.problems), exc.problems
