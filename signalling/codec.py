"""JSON text <-> message dataclasses, with the validation rules of docs/protocol.md §1.

A peer's message is untrusted input: decoding it must end in a message or a
``ProtocolError`` with a stable code, never in another exception, and its cost
must be bounded by its size. So:

- the JSON parser's own failures (bad syntax, invalid UTF-8, nesting so deep that
  it would exhaust the stack, integers of thousands of digits) become ``bad-json``;
- each field is checked against its type and its bounds (``field(metadata=...)``,
  see ``text``, ``items`` and ``number``); a list's length is checked before its
  items, so a peer cannot make us validate more than the bound;
- integers are limited to what JSON exchanges reliably (±(2**53 - 1), RFC 7493
  §2.2) and floats to finite values of at most ``MAX_FLOAT`` unless a field says
  otherwise, so later arithmetic (``datetime.fromtimestamp``, sums) cannot overflow;
- strings must be valid Unicode: JSON can spell a lone surrogate (``"\\ud800"``),
  which no UTF-8 encoder, database or hash accepts.

Validators are compiled once per dataclass from its type hints, so decoding a
message walks plain closures instead of inspecting types each time.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, Union

from signalling.errors import ErrorCode, ProtocolError

MAX_ID_LENGTH: Final = 64
MAX_SAFE_INTEGER: Final = 2**53 - 1
MAX_FLOAT: Final = 1e15
"""The largest magnitude a float field accepts unless its bounds say otherwise."""

Validator = Callable[[Any, str], Any]

WIRE_RENAMES: Final = {"from_": "from"}


# --- field bounds -------------------------------------------------------------------------


def text(max_length: int, *, min_length: int = 0) -> dict[str, Any]:
    """Metadata for a string field of ``min_length`` to ``max_length`` characters."""
    return {"max_length": max_length, "min_length": min_length}


def items(max_items: int, *, min_items: int = 0) -> dict[str, Any]:
    """Metadata for a list field of ``min_items`` to ``max_items`` items."""
    return {"max_items": max_items, "min_items": min_items}


def number(low: float, high: float) -> dict[str, Any]:
    """Metadata for a number field within ``[low, high]``."""
    return {"range": (low, high)}


def _shown(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else repr(bound)


def _bad(where: str, what: str) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_MESSAGE, f"{where}: {what}")


def has_lone_surrogate(value: str) -> bool:
    """True when ``value`` holds a UTF-16 surrogate, which UTF-8 cannot encode."""
    if value.isascii():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


# --- compiled validators ------------------------------------------------------------------


def _string(meta: Mapping[str, Any]) -> Validator:
    low = meta.get("min_length", 0)
    high = meta.get("max_length")

    def check(value: Any, where: str) -> Any:
        if type(value) is not str:
            raise _bad(where, "expected a string")
        if high is not None and len(value) > high:
            raise _bad(where, f"at most {high} characters")
        if len(value) < low:
            raise _bad(where, f"at least {low} character(s)")
        if has_lone_surrogate(value):
            raise _bad(where, "not valid Unicode (a lone surrogate)")
        return value

    return check


def _integer(meta: Mapping[str, Any]) -> Validator:
    low, high = meta.get("range", (-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER))

    def check(value: Any, where: str) -> Any:
        if type(value) is not int:
            raise _bad(where, "expected an integer")
        if not low <= value <= high:
            raise _bad(where, f"out of range [{_shown(low)}, {_shown(high)}]")
        return value

    return check


def _float(meta: Mapping[str, Any]) -> Validator:
    low, high = meta.get("range", (-MAX_FLOAT, MAX_FLOAT))

    def check(value: Any, where: str) -> Any:
        kind = type(value)
        if kind is int:
            # float() of a huge integer raises OverflowError: compare as integers first.
            if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
                raise _bad(where, f"out of range [{_shown(low)}, {_shown(high)}]")
            value = float(value)
        elif kind is not float:
            raise _bad(where, "expected a number")
        elif not math.isfinite(value):
            raise _bad(where, "expected a finite number")
        if not low <= value <= high:
            raise _bad(where, f"out of range [{_shown(low)}, {_shown(high)}]")
        return value

    return check


def _boolean(value: Any, where: str) -> Any:
    if type(value) is not bool:
        raise _bad(where, "expected a boolean")
    return value


def _anything(value: Any, where: str) -> Any:
    return value


def _literal(options: tuple[Any, ...]) -> Validator:
    allowed = frozenset(options)

    def check(value: Any, where: str) -> Any:
        if type(value) is not str or value not in allowed:
            raise _bad(where, "unexpected value")
        return value

    return check


def _optional(inner: Validator) -> Validator:
    def check(value: Any, where: str) -> Any:
        return None if value is None else inner(value, where)

    return check


def _union(options: list[Validator]) -> Validator:
    def check(value: Any, where: str) -> Any:
        for option in options:
            try:
                return option(value, where)
            except ProtocolError:
                continue
        raise _bad(where, "wrong type")

    return check


def _list(inner: Validator, meta: Mapping[str, Any]) -> Validator:
    low = meta.get("min_items", 0)
    high = meta.get("max_items")

    def check(value: Any, where: str) -> Any:
        if type(value) is not list:
            raise _bad(where, "expected a list")
        # The length first: a peer cannot make us validate more than the bound.
        if high is not None and len(value) > high:
            raise _bad(where, f"at most {high} items")
        if len(value) < low:
            raise _bad(where, f"at least {low} item(s)")
        return [inner(v, f"{where}[{i}]") for i, v in enumerate(value)]

    return check


def _mapping(inner: Validator) -> Validator:
    key = _string({})

    def check(value: Any, where: str) -> Any:
        if type(value) is not dict:
            raise _bad(where, "expected an object")
        return {key(k, where): inner(v, f"{where}.{k}") for k, v in value.items()}

    return check


def _compile(tp: Any, meta: Mapping[str, Any]) -> Validator:
    origin = typing.get_origin(tp)
    if tp is Any:
        return _anything
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        present = [a for a in args if a is not type(None)]
        if len(present) == 1 and len(args) == 2:
            return _optional(_compile(present[0], meta))
        return _union([_compile(a, meta) for a in args])
    if origin is Literal:
        return _literal(typing.get_args(tp))
    if tp is type(None):

        def null(value: Any, where: str) -> Any:
            if value is not None:
                raise _bad(where, "expected null")
            return None

        return null
    if origin is dict:
        return _mapping(_compile(typing.get_args(tp)[1], {}))
    if origin is list:
        return _list(_compile(typing.get_args(tp)[0], {}), meta)
    if tp is float:
        return _float(meta)
    if tp is int:
        return _integer(meta)
    if tp is bool:
        return _boolean
    if tp is str:
        return _string(meta)
    if dataclasses.is_dataclass(tp):
        build = builder(typing.cast(type[Any], tp))

        def nested(value: Any, where: str) -> Any:
            if type(value) is not dict:
                raise _bad(where, "expected an object")
            return build(value, where)

        return nested
    raise TypeError(f"unsupported field type {tp!r}")  # a bug in the models, not input


Builder = Callable[[dict[str, Any], str], Any]
_BUILDERS: dict[type[Any], Builder] = {}


def builder(cls: type[Any]) -> Builder:
    """The function that builds a ``cls`` from a decoded JSON object (cached)."""
    found = _BUILDERS.get(cls)
    if found is not None:
        return found
    hints = typing.get_type_hints(cls)
    plan: list[tuple[str, str, Validator, bool]] = []
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        plan.append(
            (
                f.name,
                WIRE_RENAMES.get(f.name, f.name),
                _compile(hints[f.name], f.metadata),
                required,
            )
        )

    def build(data: dict[str, Any], where: str) -> Any:
        kwargs: dict[str, Any] = {}
        for name, wire_name, check, required in plan:
            if wire_name in data:
                kwargs[name] = check(data[wire_name], f"{where}.{wire_name}")
            elif required:
                raise _bad(where, f"missing field '{wire_name}'")
        # Unknown fields are ignored so that newer peers can add optional fields.
        return cls(**kwargs)

    _BUILDERS[cls] = build
    return build


# --- encoding and decoding ----------------------------------------------------------------


def _to_wire(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        msg_type = getattr(type(value), "type", None)
        if isinstance(msg_type, str):
            out["type"] = msg_type
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if item is None and f.default is None:
                continue  # optional and absent: keep messages small
            out[WIRE_RENAMES.get(f.name, f.name)] = _to_wire(item)
        return out
    if isinstance(value, list):
        return [_to_wire(v) for v in value]
    return value


def encode(message: Any) -> str:
    """Serialise a message dataclass to its JSON text."""
    return json.dumps(_to_wire(message), separators=(",", ":"), allow_nan=False)


def to_dict(message: Any) -> dict[str, Any]:
    wire = _to_wire(message)
    assert isinstance(wire, dict)
    return wire


def parse_json(raw: str | bytes) -> Any:
    """``json.loads`` whose every failure is ``bad-json``: bad syntax, invalid UTF-8,
    nesting deep enough to exhaust the parser's recursion limit, integers of more
    than 4,300 digits (Python's limit)."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise ProtocolError(ErrorCode.BAD_JSON, "not valid JSON: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(
            ErrorCode.BAD_JSON, f"not valid JSON: {exc.__class__.__name__}"
        ) from None


def decode(raw: str | bytes, table: Mapping[str, type[Any]]) -> Any:
    """Parse and validate one message whose ``type`` is a key of ``table``;
    raises ProtocolError, carrying the message's ``id`` as ``ref`` once it is known."""
    data = parse_json(raw)
    if type(data) is not dict:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "a message is a JSON object")
    ref = data.get("id")
    if ref is not None and (
        type(ref) is not str or len(ref) > MAX_ID_LENGTH or has_lone_surrogate(ref)
    ):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "id must be a string of at most 64 characters")
    msg_type = data.get("type")
    if type(msg_type) is not str:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "missing field 'type'", ref)
    cls = table.get(msg_type)
    if cls is None:
        shown = msg_type[:40].encode("ascii", "backslashreplace").decode("ascii")
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {shown!r}", ref)
    try:
        return builder(cls)(data, msg_type)
    except ProtocolError as exc:
        raise ProtocolError(exc.code, exc.message, ref) from None
