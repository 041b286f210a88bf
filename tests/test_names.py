"""Finding and searching entities by key, readable label or shown name."""

import pytest

from gr_core.errors import UnknownNameError
from gr_core.names import AmbiguousNameError, Names

KEYS = ("m1", "m2", "m3", "m4", "m5")
LABELS = ("Run", "run", "Running Man", "Dry Run", "m5")


def test_search_ranks_equal_then_prefix_then_substring_shorter_first():
    names = Names("entity", KEYS, LABELS)
    # "Run" and "run" are different labels, so neither carries its key.
    assert names.shown == LABELS
    found = [KEYS[i] for i in names.search("RUN")]
    expected = sorted(["m1", "m2"]) + ["m3", "m4"]  # equal (case ignored), prefix, substring
    assert found == expected
    assert names.search("m5") == [4]  # the key matches too
    assert names.search("zzz") == []


def test_shared_label_is_shown_with_its_key_and_found_back():
    names = Names("entity", ("a", "b", "c"), ("Elm", "Elm", "Oak"))
    assert names.shown == ("Elm (a)", "Elm (b)", "Oak")
    assert [names.find(name) for name in names.shown] == [0, 1, 2]
    assert names.search("elm (b") == [1]
    with pytest.raises(AmbiguousNameError, match="'Elm \\(a\\)'"):
        names.find("Elm")
    with pytest.raises(UnknownNameError):
        names.find("Ash")
