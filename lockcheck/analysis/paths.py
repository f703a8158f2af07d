"""Per-path facts: branch outcomes, constants and releases a path has seen.

They let the fixed point skip edges a path cannot take, so that
`if (!nolock) spin_lock(l); ... if (!nolock) spin_unlock(l);` stays balanced.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from lockcheck.analysis.state import Held, LockState, join, mentions
from lockcheck.analysis.transfer import Transfer
from lockcheck.frontend.macros import IDENT_RE
from lockcheck.model.ir import (
    ERR_CODE,
    Acquire,
    Assign,
    Atom,
    Call,
    Event,
    LockRef,
    Release,
    is_constant,
)

ZERO_VALUES = frozenset({"0", "0UL", "0L", "0U", "NULL", "false"})
MAX_PATHS = 8  # distinct lock states kept apart per node before they are merged


@dataclass(frozen=True, slots=True)
class Facts:
    """What a path has learnt: branch outcomes and constant assignments.

    They let the analysis skip edges a path cannot take, which is how
    `if (!nolock) spin_lock(l); ... if (!nolock) spin_unlock(l);` and
    `locked = true; ... if (locked) unlock` stay balanced.
    """

    atoms: frozenset[tuple[str, bool, tuple[str, ...]]] = frozenset()
    consts: frozenset[tuple[str, str]] = frozenset()
    released: frozenset[str] = frozenset()  # locks this path has surely released
    # (lock, released lock): `lock` was taken after this path released the
    # other one, so learning later that both are one lock says nothing
    taken_after: frozenset[tuple[str, str]] = frozenset()

    def meet(self, other: Facts) -> Facts:
        # `ret = 0` on one path and `if (ret)` false on the other agree that
        # ret is zero: compare constants as the truth facts they imply too
        return Facts(
            self._truths() & other._truths(),
            self.consts & other.consts,
            self.released & other.released,
            self.taken_after & other.taken_after,
        )

    def _truths(self) -> frozenset[tuple[str, bool, tuple[str, ...]]]:
        implied = {(var, value not in ZERO_VALUES, (var,)) for var, value in self.consts}
        # `v = ERR_PTR(-E)` and a taken `if (IS_ERR(v))` agree that v is an error
        implied |= {
            (f"IS_ERR({var})", True, (var,))
            for var, value in self.consts
            if value.startswith("ERR_PTR(")
        }
        return self.atoms | implied if implied else self.atoms

    def assign(self, var: str, value: str | None, bits: str | None = None) -> Facts:
        ored = _mask_test(f"{var}&{bits}") if bits is not None else None
        # a field (`c->flags`) is not among the names a test reads: its text is
        field = not IDENT_RE.fullmatch(var)

        def about(atom: tuple[str, bool, tuple[str, ...]]) -> bool:
            return var in atom[2] or (field and _reads_field(atom[0], var))

        if ored is not None:
            # `var |= MASK`: bit tests of `var` found set stay set
            atoms = frozenset(
                a for a in self.atoms if not about(a) or (a[1] and _set_bits(a[0], var))
            )
            atoms |= {(f"{var}&{bit}", True, (var,)) for bit in ored[1]}
        else:
            atoms = frozenset(a for a in self.atoms if not about(a))
        consts = frozenset(c for c in self.consts if c[0] != var)
        if value == ERR_CODE:
            # `err = PTR_ERR(p)`: non-zero and negative, but not a constant
            # that an equality test (`err == -ENOSPC`) could decide
            atoms = atoms | {(var, True, (var,)), (f"{var}<0", True, (var,))}
        elif value is not None:
            consts = consts | {(var, value)}
        # `folio = next` after `folio_unlock(folio)`: the new folio is not released
        released = frozenset(r for r in self.released if not mentions(r, var))
        if atoms == self.atoms and consts == self.consts and released == self.released:
            return self
        return Facts(atoms, consts, released, self.taken_after)

    def handed(self, call: Call) -> Facts:
        """Forget the tests of calls that read through an address this call
        is handed (`clear_bit(UP, &d->state)` after `if (test_bit(UP,
        &d->state))`): it may write there. Asking the same thing again
        (a test of the same function) changes nothing."""
        if not call.addressed or not self.atoms:
            return self
        needles = [
            "&" + call.args[i] for i in call.addressed if i < len(call.args) and call.args[i]
        ]
        same = call.callee + "(" if call.result == "#atom" else None

        def read_through(text: str) -> bool:
            if not text.endswith(")") or "&" not in text or (same and text.startswith(same)):
                return False
            return any(_handed_re(n).search(text) for n in needles)

        atoms = frozenset(a for a in self.atoms if not read_through(a[0]))
        if len(atoms) == len(self.atoms):
            return self
        return Facts(atoms, self.consts, self.released, self.taken_after)

    def const(self, name: str) -> str | None:
        for var, value in self.consts:
            if var == name:
                return value
        return None

    def decide(self, atom: Atom) -> bool | None:
        """The atom's outcome if this path already knows it."""
        if atom.factable:
            for text, truth, _vars in self.atoms:
                if text == atom.text:
                    return truth
            if "&" in atom.text and (asked := _mask_test(atom.text)) is not None:
                # `x & A` after `x & (A | B)` was found clear: clear too; and
                # `x & (A | B)` after `x & A` was found set: set too
                for text, truth, _vars in self.atoms:
                    known = _mask_test(text) if "&" in text else None
                    if known is None or known[0] != asked[0]:
                        continue
                    if not truth and asked[1] <= known[1]:
                        return False
                    if truth and known[1] <= asked[1]:
                        return True
        if atom.kind == "opaque" and len(atom.vars) == 1:
            bits = _bit_test(atom.text, atom.vars[0], self.const(atom.vars[0]))
            if bits is not None:
                return bits
        if atom.num is not None and atom.factable:
            bounded = _decide_number(atom.num, self.atoms)
            if bounded is not None:
                return bounded
        if atom.kind == "value" and atom.a and atom.text == atom.a and self._nonpos(atom.a):
            # `x = f()` with `f` never positive: a sign test and a zero test
            # of `x` tell each other (not negative is zero)
            other = f"{atom.a}<0" if not atom.sign else atom.a
            for text, truth, _vars in self.atoms:
                if text == other:
                    return truth
        if atom.kind == "value" and atom.a != "#atom":
            value = self.const(atom.a)
            if value is not None:
                if not atom.factable and not (value in ZERO_VALUES or value.startswith("-")):
                    return None  # a sign test (`ret < 0`) of a positive value
                return value not in ZERO_VALUES
        if atom.kind == "eq":
            a = self.const(atom.a) or (atom.a if is_constant(atom.a) else None)
            b = self.const(atom.b) or (atom.b if is_constant(atom.b) else None)
            if a is not None and b is not None:
                return a == b or (a in ZERO_VALUES and b in ZERO_VALUES)
            # `ret == -ENOSPC` on a path that knows `ret` is zero
            for var, const in ((atom.a, b), (atom.b, a)):
                if const is not None and const not in ZERO_VALUES and self._known_zero(var):
                    return False
        return None

    def _nonpos(self, var: str) -> bool:
        return (f"{var}>0", False, (var,)) in self.atoms

    def _known_zero(self, var: str) -> bool:
        return any(text == var and not truth for text, truth, _ in self.atoms)

    def describe_value(self, expr: str) -> str:
        """A returned expression, refined by what the path knows about it:
        `vma` becomes `vma:zero` after `if (!vma)`, `NULL` after `vma = NULL`."""
        value = self.const(expr)
        if value is not None:
            return value
        sign = {truth for text, truth, _vars in self.atoms if text == f"{expr}<0"}
        if sign == {True}:
            return f"{expr}:neg"  # an error code
        for text, truth, _vars in self.atoms:
            if text == expr:
                return f"{expr}:{'nonzero' if truth else 'zero'}"
            if truth and text == f"IS_ERR({expr})":
                return f"{expr}:err"  # an ERR_PTR() the caller tests with IS_ERR()
        if sign == {False}:
            return f"{expr}:nonneg"
        return expr

    def learn(self, atom: Atom, truth: bool) -> Facts:
        if atom.sign and atom.kind == "value" and atom.text:
            # `if (ret < 0)` taken: ret is non-zero (an error code); not
            # taken: ret is not an error (0 or a count), which is all it says
            sign = (f"{atom.text}<0", truth, atom.vars)
            known = {sign, (atom.text, True, atom.vars)} if truth else {sign}
            return Facts(self.atoms | known, self.consts, self.released, self.taken_after)
        if not atom.factable or not atom.text:
            return self
        learnt = {(atom.text, truth, atom.vars)}
        if atom.num is not None:
            # `code >= 5` false: `code < 5`, kept as a bound on `code`
            value, op, n = atom.num
            learnt.add((f"#num:{value}{op if truth else _NEGATED[op]}{n}", True, atom.vars))
        if atom.kind == "eq":
            # `mode == 0` (a `case 0:`) is also `!mode`; `mode == 1` is `mode`
            for var, other in ((atom.a, atom.b), (atom.b, atom.a)):
                if is_constant(other) and not is_constant(var) and var in atom.vars:
                    if other in ZERO_VALUES:
                        learnt.add((var, not truth, (var,)))
                    elif truth:
                        learnt.add((var, True, (var,)))
        return Facts(self.atoms | learnt, self.consts, self.released, self.taken_after)


Path = tuple[LockState, Facts]

_INT_RE = re.compile(r"^(0x[0-9a-fA-F]+|\d+)[UuLl]*$")


def _int(text: str) -> int | None:
    m = _INT_RE.match(text)
    return int(m.group(1), 0) if m else None


def _bit_test(text: str, var: str, value: str | None) -> bool | None:
    """`seq & 1` on a path where `seq` is a known number: whether a bit is set.

    The read-or-lock retry idiom keeps its mode in the low bit of a local
    (0 on the first, lockless pass; 1 once it retries under the lock) and
    tests it twice, so the pass that took the lock is the one that drops it.
    """
    if value is None:
        return None
    left, amp, right = text.partition("&")
    if not amp or "&" in right:
        return None
    sides = {left, right}
    if var not in sides:
        return None
    mask = _int((sides - {var}).pop()) if len(sides) == 2 else None
    num = 0 if value in ZERO_VALUES else _int(value)
    if mask is None or num is None:
        return None
    return bool(num & mask)


# one name of a mask: a constant name (`__GFP_IO`, `BIT(3)`) or a literal
_MASK_PART_RE = re.compile(
    r"^(?:[A-Z_][A-Z0-9_]*(?:\([A-Z0-9_x|<]*\))?|\d+[UuLl]*|0x[0-9a-fA-F]+[UuLl]*)$"
)


def _split_top(text: str, op: str) -> list[str]:
    """`text` split at the single `op` (`&`, `|`) outside brackets, not `&&`/`||`."""
    parts: list[str] = []
    depth = 0
    cur = 0
    for i, c in enumerate(text):
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif (
            c == op
            and depth == 0
            and text[i - 1 : i] != op
            and text[i + 1 : i + 2] not in (op, "=")
        ):
            parts.append(text[cur:i])
            cur = i + 1
    parts.append(text[cur:])
    return parts


def _strip_parens(text: str) -> str:
    """`text` without parentheses around all of it."""
    while text.startswith("(") and text.endswith(")"):
        depth = 0
        for i, c in enumerate(text):
            depth += (c == "(") - (c == ")")
            if depth == 0 and i < len(text) - 1:
                return text  # `(a) & (b)`: the first closes early
        text = text[1:-1]
    return text


@functools.lru_cache(maxsize=1 << 12)
def _mask_test(text: str) -> tuple[str, frozenset[str]] | None:
    """`x & (A | B)` (spelt without spaces) as (`x`, {A, B}): a test of some
    bits of a word, each named by a constant. Which bits a name stands for
    does not matter: a mask of more names covers every bit of one of fewer."""
    sides = _split_top(_strip_parens(text), "&")
    if len(sides) != 2:
        return None
    for word, mask in (sides, sides[::-1]):
        names = [_strip_parens(p) for p in _split_top(_strip_parens(mask), "|")]
        word = _strip_parens(word)
        if (
            word
            and not _MASK_PART_RE.match(word)
            and all(_MASK_PART_RE.match(n) for n in names)
        ):
            return word, frozenset(names)
    return None


@functools.lru_cache(maxsize=1 << 12)
def _field_re(field: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w>.])" + re.escape(field) + r"(?![\w])")


def _reads_field(text: str, field: str) -> bool:
    """Does a test's text read the field `field` (`c->flags`, not `c->flags2`)?"""
    return field in text and _field_re(field).search(text) is not None


def _set_bits(text: str, var: str) -> bool:
    """Is `text` a test of bits of `var` itself (`var & MASK`)?"""
    test = _mask_test(text) if "&" in text else None
    return test is not None and test[0] == var


_NEGATED = {"==": "!=", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
_BOUND_RE = re.compile(r"^#num:(.+?)(==|!=|<=|>=|<|>)(-?\d+)$")


def _decide_number(
    num: tuple[str, str, int], atoms: frozenset[tuple[str, bool, tuple[str, ...]]]
) -> bool | None:
    """`value op n` from the bounds the path learnt on `value`: after
    `code >= 5` was found true, `code == 2` is false."""
    value, op, n = num
    lo: int | None = None
    hi: int | None = None
    not_eq: set[int] = set()
    for text, _truth, _vars in atoms:
        m = _BOUND_RE.match(text) if text.startswith("#num:") else None
        if m is None or m.group(1) != value:
            continue
        kop, k = m.group(2), int(m.group(3))
        if kop == "!=":
            not_eq.add(k)
        if kop in ("==", ">=", ">"):
            lo = max(lo, k + (kop == ">")) if lo is not None else k + (kop == ">")
        if kop in ("==", "<=", "<"):
            hi = min(hi, k - (kop == "<")) if hi is not None else k - (kop == "<")
    if op in ("==", "!="):
        equal: bool | None = None
        if (lo is not None and n < lo) or (hi is not None and n > hi) or n in not_eq:
            equal = False
        elif lo == hi == n:
            equal = True
        return equal if equal is None or op == "==" else not equal
    # an order: true or false over every value the bounds leave
    least = {"<": n - 1, "<=": n, ">": n + 1, ">=": n}[op]
    if op in ("<", "<="):  # value <= least
        if hi is not None and hi <= least:
            return True
        return False if lo is not None and lo > least else None
    if lo is not None and lo >= least:  # value >= least
        return True
    return False if hi is not None and hi < least else None


@functools.lru_cache(maxsize=1 << 12)
def _handed_re(needle: str) -> re.Pattern[str]:
    """`&d->state` as a whole argument of a call's text: not `&d->state2`."""
    return re.compile(r"[(,]" + re.escape(needle) + r"[,)]")


def _path_key(st: LockState) -> tuple[frozenset[tuple[str, str, str | None]], ...]:
    def keys(d: Mapping[LockRef, Held]) -> frozenset[tuple[str, str, str | None]]:
        return frozenset((r.inst, h.mode, h.cond_var) for r, h in d.items())

    return (keys(st.must), keys(st.may))


def merge_paths(paths: Iterable[Path]) -> Path | None:
    out: Path | None = None
    for st, facts in paths:
        if out is None:
            out = (st, facts)
        else:
            merged = join(out[0], st)
            assert merged is not None
            out = (merged, out[1].meet(facts))
    return out


@functools.lru_cache(maxsize=1 << 16)
def _stable_key(key: object) -> str:
    """A path key's spelling that does not depend on the hash seed: the
    `repr()` of a frozenset lists its members in hash order. Remembered: the
    same keys come back at every node and every pass of the fixpoint."""
    if isinstance(key, frozenset):
        return "{" + ", ".join(sorted(_stable_key(k) for k in key)) + "}"
    if isinstance(key, tuple):
        return "(" + ", ".join(_stable_key(k) for k in key) + ")"
    return repr(key)


class NodePaths:
    """The paths reaching one node, kept apart while their lock states differ."""

    __slots__ = ("paths", "collapsed", "retested", "gating", "limit")

    def __init__(
        self,
        retested: frozenset[str] = frozenset(),
        gating: frozenset[str] = frozenset(),
        limit: int = MAX_PATHS,
    ) -> None:
        self.paths: dict[object, Path] = {}
        self.limit = limit  # paths kept apart before they are merged
        self.collapsed = False
        # conditions the function tests more than once: paths that know
        # different outcomes stay apart even with equal lock states, so that
        # `if (a || b) lock; ... if (a || b) unlock;` stays balanced
        self.retested = retested
        # those of them that decide a lock event: kept apart longest
        self.gating = gating & retested

    def _key(self, path: Path) -> object:
        key: object = _path_key(path[0])
        if self.retested:
            known = tuple(sorted((t, v) for t, v, _ in path[1].atoms if t in self.retested))
            key = (key, known)
        return key

    def _rekey(self, retested: frozenset[str]) -> None:
        """Keep paths apart by fewer conditions, joining those that now agree."""
        self.retested = retested
        kept = self.ordered()
        self.paths = {}
        for old in kept:
            k = self._key(old)
            had = self.paths.get(k)
            joined = merge_paths((had, old)) if had is not None else old
            assert joined is not None
            self.paths[k] = joined

    def add(self, path: Path) -> bool:
        if self.collapsed:
            old = next(iter(self.paths.values()))
            merged = merge_paths((old, path))
            assert merged is not None
            if merged == old:
                return False
            self.paths = {"*": merged}
            return True
        key = self._key(path)
        prev = self.paths.get(key)
        if prev is None:
            self.paths[key] = path
            if len(self.paths) > self.limit and self.retested != self.gating:
                # too many: keep apart only by the conditions that decide a
                # lock event (`if (a == X || b == X) down_read(..)`)
                self._rekey(self.gating)
            if len(self.paths) > self.limit and self.retested:
                # still too many: keep apart by lock state only, as without them
                self._rekey(frozenset())
            if len(self.paths) > self.limit:
                merged = merge_paths(self.paths.values())
                assert merged is not None
                self.paths = {"*": merged}
                self.collapsed = True
            return True
        merged = merge_paths((prev, path))
        assert merged is not None
        if merged == prev:
            return False
        self.paths[key] = merged
        return True

    def ordered(self) -> list[Path]:
        if len(self.paths) == 1:  # the usual case: nothing to order
            return list(self.paths.values())
        return [self.paths[k] for k in sorted(self.paths, key=_stable_key)]

    def merged(self) -> LockState | None:
        m = merge_paths(self.ordered())
        return m[0] if m is not None else None


def apply_event(tr: Transfer, path: Path, ev: Event) -> Path:
    st, facts = path
    if isinstance(ev, Assign):
        facts = facts.assign(ev.var, ev.value, ev.bits)
    elif isinstance(ev, Call):
        facts = facts.handed(ev)
        if ev.nonpos and ev.result:
            # the callee never returns a positive value (analysis/summaries.py)
            known = (f"{ev.result}>0", False, (ev.result,))
            facts = Facts(
                facts.atoms | {known}, facts.consts, facts.released, facts.taken_after
            )
    elif isinstance(ev, Release) and not ev.maybe and ev.lock.inst not in facts.released:
        facts = Facts(
            facts.atoms, facts.consts, facts.released | {ev.lock.inst}, facts.taken_after
        )
    elif isinstance(ev, Acquire) and facts.released:
        # taken again: no longer a lock this path has released; and taken
        # after every lock it has released
        inst = ev.lock.inst
        after = facts.taken_after | {(inst, r) for r in facts.released if r != inst}
        facts = Facts(facts.atoms, facts.consts, facts.released - {inst}, after)
    return tr.event(st, ev), facts


def _locked_through(st: LockState, name: str) -> bool:
    """Is a lock surely held through pointer `name`, or through a pointer it
    was copied from (`cur = op;` with `op->lock` held)? Then it is not NULL."""
    if not name or name.startswith("#"):
        return False
    names = {name} | {n for pair in st.eqs if name in pair for n in pair}
    for r, h in st.must.items():
        if h.cond_var is not None or h.escaped or h.assumed or "@" in r.inst:
            continue
        if any(r.inst.startswith((n + "->", n + ".")) for n in names):
            return True
    return False


def take_edge(tr: Transfer, path: Path, atom: Atom | None, label: bool | None) -> Path | None:
    """The path along one edge, or None when its facts rule the edge out."""
    st, facts = path
    if atom is not None and label is not None:
        known = facts.decide(atom)
        if known is not None and known != label:
            return None
        if (
            not label
            and atom.kind == "value"
            and any(
                r.inst == atom.a and h.cond_var is None and not h.escaped
                for r, h in st.must.items()
            )
        ):
            return None  # `if (!pml)` while pml is a held lock: not this path
        if not label and atom.kind == "value" and _locked_through(st, atom.a):
            return None  # `if (!cur)` after `cur = op` with `op->lock` held
        facts = facts.learn(atom, label)
    st = tr.edge(st, atom, label)
    if atom is not None and atom.kind == "eq" and label and {atom.a, atom.b} & facts.released:
        # `pml == ptl` learnt after `ptl` was released: `pml` went with it,
        # unless `pml` was taken after that release (then both name it, held)
        gone = {atom.a, atom.b}
        if any(
            other in facts.released and (name, other) in facts.taken_after
            for name, other in ((atom.a, atom.b), (atom.b, atom.a))
        ):
            gone = set()
        st = st.without(lambda ref, _h: ref.inst in gone)
    return st, facts
