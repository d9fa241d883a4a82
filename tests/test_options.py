"""The shared option checks (gan3d.options) for list-of-names fields."""

import json
from dataclasses import dataclass, field

import pytest

from gan3d.options import OptionError, check_fields, from_plain_dict, normalise_tuples, opt, to_plain_dict
from gan3d.train.config import TrainConfig


@dataclass(frozen=True)
class Toy:
    ops: tuple[str, ...] = field(default=(), metadata=opt("operations", choices=("a", "b")))
    names: tuple[str, ...] = field(default=(), metadata=opt("free names"))
    n: int = field(default=1, metadata=opt("a count", lo=1))

    def __post_init__(self):
        normalise_tuples(self)
        check_fields(self)


def test_a_list_field_with_choices_refuses_other_names_and_drops_repeats():
    assert Toy(ops=["b", "a", "b"]).ops == ("b", "a")  # a list becomes a tuple; the repeat goes, order kept
    assert Toy(names=["x", "x"]).names == ("x", "x")  # no choices: the names are kept as given
    with pytest.raises(OptionError, match=r"ops has 'c': choose from a, b"):
        Toy(ops=("a", "c"))
    with pytest.raises(OptionError, match="list of names"):
        Toy(names=("x", 3))


def test_plain_dicts_round_trip_through_json():
    t = Toy(ops=("b",), names=("x", "y"), n=3)
    d = json.loads(json.dumps(to_plain_dict(t)))
    assert d["ops"] == ["b"] and from_plain_dict(Toy, {**d, "from_a_newer_version": 1}) == t
    cfg = TrainConfig(classes=("chair",), diffaugment=("flip", "translation"))
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
