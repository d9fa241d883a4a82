"""Declared options: help text, kind and valid range of a config field or a command-line number,
and the one check that enforces them.

A dataclass field declares itself with ``field(default=..., metadata=opt("help", lo=1))``;
:func:`check_fields` checks every declared field of a config in ``__post_init__``, and the command
line builds its options (flag, type, choices, help) and argparse types from the same declarations,
so an option cannot be added in one place and forgotten in the other.

Ranges: ``lo``/``hi`` are inclusive bounds, ``gt``/``lt`` exclusive ones; ``pow2`` asks for a power
of two (``zero_ok`` also allows 0, "automatic"). Every float must be finite (NaN and inf are refused).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence


class OptionError(ValueError):
    """A value outside its declared range; ``name`` is the field (``beta1``), ``flag`` its option."""

    def __init__(self, name: str, message: str):
        self.name = name
        self.message = message
        super().__init__(f"{name} {message}")

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def opt(
    help: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    gt: float | None = None,
    lt: float | None = None,
    pow2: bool = False,
    zero_ok: bool = False,
    choices: Sequence[str] | None = None,
    group: str = "run",
    check: Any = None,
) -> dict[str, Any]:
    """Field metadata: the help line, the valid range or choices, the help group, and an optional
    ``check(value) -> str | None`` (what is wrong with the value, or None) for what a range cannot say."""
    return {
        "help": help,
        "lo": lo,
        "hi": hi,
        "gt": gt,
        "lt": lt,
        "pow2": pow2,
        "zero_ok": zero_ok,
        "choices": None if choices is None else tuple(choices),
        "group": group,
        "check": check,
    }


def describe(meta: dict[str, Any]) -> str:
    """The range in words: ``in [0, 1)``, ``>= 1``, ``a power of two in [8, 256], or 0``."""
    lo = meta.get("lo") if meta.get("gt") is None else meta.get("gt")
    hi = meta.get("hi") if meta.get("lt") is None else meta.get("lt")
    left = "[" if meta.get("gt") is None else "("
    right = "]" if meta.get("lt") is None else ")"
    if lo is not None and hi is not None:
        text = f"in {left}{_num(lo)}, {_num(hi)}{right}"
    elif lo is not None:
        text = (">= " if left == "[" else "> ") + _num(lo)
    elif hi is not None:
        text = ("<= " if right == "]" else "< ") + _num(hi)
    else:
        text = "finite"
    if meta.get("pow2"):
        text = "a power of two " + text
    if meta.get("zero_ok"):
        text += ", or 0"
    return text


def _num(v: float) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        v = int(v)
    if isinstance(v, int) and v >= 2**20 and (v & (v - 1) == 0 or (v + 1) & v == 0):
        return f"2**{(v + 1).bit_length() - 1}" + ("" if v & (v - 1) == 0 else " - 1")
    return f"{v:,}" if isinstance(v, int) and abs(v) >= 100_000 else str(v)


def check_value(name: str, value: Any, meta: dict[str, Any]) -> None:
    """Raise :class:`OptionError` if ``value`` is outside ``meta``'s range or choices."""
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise OptionError(name, f"must be one of {', '.join(map(str, choices))}; got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise OptionError(name, f"must be a finite number, got {value}")
        if not (meta.get("zero_ok") and value == 0) and not _in_range(value, meta):
            raise OptionError(name, f"must be {describe(meta)}, got {value}")
    fn = meta.get("check")
    if fn is not None:
        msg = fn(value)
        if msg:
            raise OptionError(name, f"{value}: {msg}")


def _in_range(v: float, meta: dict[str, Any]) -> bool:
    lo, hi, gt, lt = (meta.get(k) for k in ("lo", "hi", "gt", "lt"))
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        return False
    if (gt is not None and v <= gt) or (lt is not None and v >= lt):
        return False
    if meta.get("pow2"):
        return isinstance(v, int) and v > 0 and v & (v - 1) == 0
    return True


_KINDS = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "bool | None": (bool, type(None))}


def kind_of(f: dataclasses.Field) -> str:
    """The field's kind from its annotation: int, float, bool, str, ``bool | None`` or ``tuple[str, ...]``."""
    t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    return t.replace("Optional[bool]", "bool | None")


def check_fields(obj: Any) -> None:
    """Check the kind and declared range of every field of the dataclass instance ``obj``."""
    for f in dataclasses.fields(obj):
        if "help" not in f.metadata:
            continue
        value = getattr(obj, f.name)
        kind = kind_of(f)
        ok = _KINDS.get(kind)
        if ok is not None and (not isinstance(value, ok) or (bool not in ok and isinstance(value, bool))):
            raise OptionError(f.name, f"must be {kind.replace(' | None', ' or None')}, got {value!r}")
        if kind.startswith("tuple"):
            if not all(isinstance(v, str) for v in value):
                raise OptionError(f.name, f"must be a list of names, got {value!r}")
            choices = f.metadata.get("choices")
            bad = [v for v in value if choices is not None and v not in choices]
            if bad:
                raise OptionError(f.name, f"has {bad[0]!r}: choose from {', '.join(choices)}")
            continue
        check_value(f.name, value, f.metadata)


def tuple_fields(cls: Any) -> tuple[str, ...]:
    """The names of the dataclass ``cls``'s list-of-names fields (``tuple[str, ...]``)."""
    return tuple(f.name for f in dataclasses.fields(cls) if kind_of(f).startswith("tuple"))


def normalise_tuples(obj: Any) -> None:
    """Make each list-of-names field of the (frozen) dataclass instance ``obj`` a tuple; a field with
    choices (a set of operations) also loses repeated names, first occurrence kept."""
    for f in dataclasses.fields(obj):
        if kind_of(f).startswith("tuple"):
            value = tuple(getattr(obj, f.name))
            object.__setattr__(obj, f.name, tuple(dict.fromkeys(value)) if f.metadata.get("choices") else value)


def to_plain_dict(obj: Any) -> dict[str, Any]:
    """``dataclasses.asdict(obj)`` with the list-of-names fields as lists (as JSON stores them)."""
    d = dataclasses.asdict(obj)
    for name in tuple_fields(type(obj)):
        d[name] = list(d[name])
    return d


def from_plain_dict(cls: Any, d: dict[str, Any]) -> Any:
    """``cls`` from :func:`to_plain_dict`'s dict (unknown keys, from older or newer versions, ignored)."""
    names = {f.name for f in dataclasses.fields(cls)}
    lists = set(tuple_fields(cls))
    return cls(**{k: (tuple(v) if k in lists else v) for k, v in d.items() if k in names})
