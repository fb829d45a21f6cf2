"""object.subset (topdown/object.go builtinObjectSubset), on Rego values so that sets stay sets.

- object ⊇ object: every key of `sub` is in `super`, with an equal value, or both values objects
  (recursively), both sets, or both arrays, subset by these rules;
- set ⊇ set: every element of `sub` is in `super`;
- array ⊇ array: `sub` appears in `super` as a contiguous run;
- array ⊇ set: OPA counts the elements of `super` that `sub` contains (duplicates too) and
  answers true as soon as that count reaches the size of `sub`; an empty `super` answers false,
  even for an empty `sub`. Reproduced as is;
- any other pair of types: a builtin error (undefined).

Equality is Rego's: numbers by value (`1` equals `1.0`), objects and sets regardless of order.
"""

from typing import Any

from sekisho.policy.wasm.builtins.registry import BuiltinError, HostBuiltin
from sekisho.policy.wasm.builtins.regotext import RegoObject, RegoSet, order_key


def _equal(a: Any, b: Any) -> bool:
    return order_key(a) == order_key(b)


def _object_subset(sup: RegoObject, sub: RegoObject) -> bool:
    entries = {_frozen(order_key(k)): v for k, v in sup.items}
    for key, value in sub.items:
        key_order = _frozen(order_key(key))
        if key_order not in entries:
            return False
        found = entries[key_order]
        if _equal(value, found):
            continue
        if not _nested_subset(found, value):
            return False
    return True


def _nested_subset(sup: Any, sub: Any) -> bool:
    if isinstance(sup, RegoObject) and isinstance(sub, RegoObject):
        return _object_subset(sup, sub)
    if isinstance(sup, RegoSet) and isinstance(sub, RegoSet):
        return _set_subset(sup, sub)
    if isinstance(sup, list) and isinstance(sub, list):
        return _array_subset(sup, sub)
    return False


def _set_subset(sup: RegoSet, sub: RegoSet) -> bool:
    members = {_frozen(order_key(v)) for v in sup.items}
    return all(_frozen(order_key(v)) in members for v in sub.items)


def _array_subset(sup: list[Any], sub: list[Any]) -> bool:
    if len(sub) > len(sup):
        return False
    keys = [order_key(v) for v in sup]
    wanted = [order_key(v) for v in sub]
    starts = range(len(sup) - len(sub) + 1)
    return any(keys[start : start + len(wanted)] == wanted for start in starts)


def _array_set_subset(sup: list[Any], sub: RegoSet) -> bool:
    members = {_frozen(order_key(v)) for v in sub.items}
    unmatched = len(members)
    for value in sup:
        if _frozen(order_key(value)) in members:
            unmatched -= 1
        if unmatched == 0:
            return True
    return False


def _frozen(key: Any) -> Any:
    """order_key holds lists; a hashable twin for set membership."""
    if isinstance(key, list | tuple):
        return tuple(_frozen(k) for k in key)
    return key


def _subset(sup: Any, sub: Any) -> bool:
    if isinstance(sup, list) and isinstance(sub, RegoSet):
        return _array_set_subset(sup, sub)
    if type(sup) is type(sub) and isinstance(sup, RegoObject | RegoSet | list):
        return _nested_subset(sup, sub)
    raise BuiltinError("both arguments object.subset must be of the same type or array and set")


BUILTINS = (HostBuiltin("object.subset", _subset, rego_text=True),)
