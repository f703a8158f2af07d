"""The pipeline in one place: inputs -> frontend -> model -> analysis -> rules.

The CLI and the review/hook front ends call this; none of them reach into
the stages themselves.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from lockcheck.analysis.file import FileFacts, FlowMemo, analyse_file, unknown_predicates
from lockcheck.analysis.summaries import Summary, declared_summaries
from lockcheck.analysis.tree import (
    SummariseFile,
    TreeSummaries,
    content_key,
    defined_functions,
    file_summaries,
)
from lockcheck.errors import InputError, LockcheckError, RuleError
from lockcheck.frontend.constants import named_constants
from lockcheck.frontend.macros import CALLED_RE as _CALLED_RE
from lockcheck.frontend.macros import CALLED_TEXT_RE as _CALLED_TEXT_RE
from lockcheck.frontend.macros import IDENT_RE, Macro, function_macros, helper_source, value_macros
from lockcheck.frontend.parse import NORETURN, noreturn_names, parse_source
from lockcheck.inputs.files import collect_sources, read_c_source
from lockcheck.inputs.tree import (
    included_headers,
    kernel_root,
    local_includes,
    other_headers,
    relative_includes,
    subsystem_headers,
)
from lockcheck.model.extract import FileModel, LowerMemo, build_file_model
from lockcheck.model.finding import Finding
from lockcheck.model.ir import Call, Function
from lockcheck.order.claims import ClaimStats, check_comment_claims
from lockcheck.order.graph import OrderEdge, file_order_edges
from lockcheck.packs import Pack, Vocabulary
from lockcheck.rules.base import Rule, RuleContext
from lockcheck.rules.decide import decide
from lockcheck.rules.registry import Registry, load_registry

if TYPE_CHECKING:
    from lockcheck.cache import HeaderStore


# a plain prototype at a line's start (not `static`, not a `return` of a
# call), its name the word before its first `(`: a look-ahead, so that one
# spread over lines hides none that starts inside it
_PROTOTYPE_RE = re.compile(
    r"^(?=(?:extern\s+)?(?!return\b|static\b)[A-Za-z_][\w \t*]*?\b([A-Za-z_]\w*)"
    r"\s*\([^{};]*\)[^{};]*;)",
    re.M,
)
# local headers read for their macros, per file: a subsystem has a dozen
MAX_MACRO_HEADERS = 24


@dataclass(slots=True)
class Stats:
    files: int = 0
    functions: int = 0
    functions_analysed: int = 0
    parse_error_functions: int = 0
    budget_outs: int = 0
    parse_errors: int = 0
    input_errors: int = 0
    # comment claims ("called with X held") whose lock could not be resolved;
    # like any later field, listed only when non-zero so existing reports keep their shape
    unresolved_claims: int = 0

    def add(self, model: FileModel, facts: FileFacts) -> None:
        self.files += 1
        self.parse_errors += model.parse_errors
        for fn, ff in zip(model.functions, facts.functions, strict=True):
            self.functions += 1
            if fn.parse_errors:
                self.parse_error_functions += 1
            if ff.budget_exceeded:
                self.budget_outs += 1
            else:
                self.functions_analysed += 1

    def merge(self, other: Stats) -> None:
        """Add another part's counts: a file's, a worker's, a shard's."""
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @classmethod
    def from_dict(cls, data: dict[str, int]) -> Stats:
        return cls(**{k: int(v) for k, v in data.items() if k in cls.__dataclass_fields__})

    def as_dict(self) -> dict[str, int]:
        out = asdict(self)
        if not out["unresolved_claims"]:
            del out["unresolved_claims"]
        return out


@dataclass(slots=True)
class Analysis:
    path: str
    source: bytes
    model: FileModel
    facts: FileFacts


@dataclass(slots=True)
class CheckResult:
    findings: list[Finding]
    stats: Stats
    errors: list[LockcheckError] = field(default_factory=list)
    parts: list[FileResult] = field(default_factory=list)  # per file, sorted by path
    bad: list[str] = field(default_factory=list)  # operands that were not files to check


@dataclass(slots=True)
class FileResult:
    """Everything one file contributes to a run: the unit a worker, the cache
    and a shard hand back, so a run's report is the same however it was split."""

    path: str
    findings: list[Finding] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)
    errors: list[str] = field(default_factory=list)  # input errors, as their messages
    edges: list[OrderEdge] = field(default_factory=list)  # lock-order edges of its functions


class _StoredIndex(TreeSummaries):
    """The definition index, read from the engine's cache when it has one."""

    __slots__ = ("store",)

    def __init__(self, summarise: SummariseFile) -> None:
        super().__init__(summarise)
        self.store: HeaderStore | None = None

    def _build_index(self, directory: Path) -> dict[str, list[Path]]:
        if self.store is None:
            return super()._build_index(directory)
        stored = self.store.get_index(directory)
        if stored is not None:
            return stored
        built = super()._build_index(directory)
        self.store.put_index(directory, built)
        return built

    def summaries_of(self, file: Path) -> tuple[bytes, dict[str, Summary]] | None:
        """A file's summaries as `library_for` takes them, with their key."""
        try:
            data = file.read_bytes()
        except OSError:
            return None
        key = content_key(data)
        return key, self._summaries(file, data, key)

    def remember(self, key: bytes, summaries: dict[str, Summary]) -> None:
        """Summaries another process computed (`summaries_of`) for a file's bytes."""
        if key not in self._cache:
            self._cache[key] = summaries


@dataclass(slots=True)
class Config:
    packs: list[str] = field(default_factory=lambda: ["mm"])
    select: set[str] | None = None
    baseline: set[str] | None = None
    max_nodes: int = 20000
    headers: bool = True  # summarise the kernel tree's header inlines a file includes
    disable: set[str] = field(default_factory=set)  # rule ids not run (a project's config)
    severity: dict[str, str] = field(default_factory=dict)  # rule id -> severity it reports


@dataclass(frozen=True)
class HeaderFacts:
    """What the engine reads in a header besides its inline functions, from
    one read of its bytes; a header that cannot be read reads as empty.

    Every header a file includes gives its noreturn names and value macros;
    only a header of the file's own directory gives its function-like
    macros, and only a subsystem header its constants: those two are read
    on first use, from the bytes kept for them (most headers, the tree's
    `linux/` ones, never need them).
    """

    noreturn: frozenset[str]  # frontend/parse.py noreturn_names
    passes: dict[str, int]  # frontend/macros.py value_macros
    nested: tuple[Path, ...]  # the headers beside it that it includes
    source: bytes = field(repr=False)

    @classmethod
    def read(cls, header: Path) -> HeaderFacts:
        try:
            data = read_c_source(header)
        except (OSError, LockcheckError):
            data = b""
        nested = (header.parent / n.decode("ascii", "replace") for n in local_includes(data))
        return cls(
            noreturn_names(data), value_macros(data), tuple(h for h in nested if h.is_file()), data
        )

    @cached_property
    def macros(self) -> list[Macro]:
        """Its function-like macros (frontend/macros.py function_macros)."""
        return function_macros(self.source)

    @cached_property
    def constants(self) -> dict[str, int]:
        """The numbers of its named constants (frontend/constants.py)."""
        return named_constants(self.source)


def declared_names(header: str) -> frozenset[str]:
    """The names the header declares as plain prototypes. An inline of one
    of them is one `#ifdef` branch, typically the stub of a disabled option
    (`return -EAGAIN;`), and the real function is in a .c file: the stub's
    constant return would make the caller's code after the call look
    unreachable. One pass over the header for all its names: a pattern per
    name cost more than the header's summaries."""
    return frozenset(m.group(1) for m in _PROTOTYPE_RE.finditer(header))


_REAL: dict[tuple[Path, str], Path] = {}


def real_path(path: Path) -> Path:
    """`path` resolved, once per spelling (and working directory, for a
    relative one): every file names its headers."""
    key = (path, "" if path.is_absolute() else os.getcwd())
    real = _REAL.get(key)
    if real is None:
        try:
            real = path.resolve()
        except (OSError, RuntimeError):
            real = path
        _REAL[key] = real
    return real


def _in_tree(path: str, tree: Path | None) -> Path:
    """Where `path` is: a relative path names a file of `tree`, when one is given."""
    where = Path(path)
    return tree / where if tree is not None and not where.is_absolute() else where


class Engine:
    def __init__(self, config: Config | None = None, registry: Registry | None = None) -> None:
        self.config = config or Config()
        self.registry = registry or load_registry()
        self.packs: list[Pack] = [self.registry.load(p) for p in self.config.packs]
        self.vocab = Vocabulary.merge(self.packs)
        # the pack's read-only primitives (`test_bit`), as pure callees
        self._known_pure = {n: Summary(pure=True) for n in sorted(self.vocab.pure)}
        self._headers: dict[Path, dict[str, Summary]] = {}
        self._busy: set[Path] = set()  # headers whose summaries are in progress
        self._header_facts: dict[Path, HeaderFacts] = {}
        self._subsystem: dict[tuple[Path, tuple[bytes, ...]], list[Path]] = {}
        self._tree = _StoredIndex(self._summarise_elsewhere)
        self._includes: dict[tuple[str, str, Path | None, bytes], list[Path]] = {}
        self._roots: dict[tuple[str, Path], tuple[Path | None, bool]] = {}
        self._store: HeaderStore | None = None
        sev = self.config.severity
        self.rules: list[Rule] = [
            self.registry.instantiate(replace(spec, severity=sev.get(spec.id, spec.severity)))
            for pack in self.packs
            for spec in pack.rules
            if spec.id not in self.config.disable
        ]
        self.rules.sort(key=lambda r: r.spec.id)
        known = {r.spec.id for r in self.rules}
        if self.config.select is not None:
            unknown = sorted(self.config.select - known)
            if unknown:
                raise RuleError(f"unknown rule id '{unknown[0]}' (see `lockcheck rules list`)")

    def analyse_source(
        self,
        path: str,
        source: bytes,
        tree: Path | None = None,
        memo: FlowMemo | None = None,
        lowered: LowerMemo | None = None,
    ) -> Analysis:
        """Analyse one file; in a kernel tree, with its headers' inline helpers.

        `tree` is the kernel tree the file belongs to; without it one is
        looked for above `path` when it names a real file. `memo` and
        `lowered`: dataflows (analysis/file.py) and function models
        (model/extract.py) of another image of the file.
        """
        model, macros = self._file_model(path, source, tree, lowered)
        library = self._header_summaries(path, source, tree) if self.config.headers else {}
        if self.config.headers:  # callees defined in other files beside this one (analysis/tree.py)
            where = _in_tree(path, tree)
            root = tree or self._root_of(where)
            called = [*model.functions, *macros]
            library = {**self._tree.library_for(where, called, library, root), **library}
        library = {**self._known_pure, **declared_summaries(model.declared), **library}
        if self.config.headers:
            wanted = unknown_predicates(model.functions, library)
            if wanted:
                library = {**self._pure_elsewhere(path, source, tree, wanted), **library}
        library = {**library, **macro_summaries(macros, model.functions, library)}
        return Analysis(path, source, model, analyse_file(model.functions, library, memo))

    def _file_model(
        self,
        path: str,
        source: bytes,
        tree: Path | None,
        lowered: LowerMemo | None = None,
        callable_only: bool = False,
        names: frozenset[str] | None = None,
    ) -> tuple[FileModel, list[Function]]:
        """The file's functions, and its macros written out as functions
        (frontend/macros.py): a macro that runs an argument as a statement
        changes how the file's calls are lowered. `callable_only`: only the
        functions another file can call and those they reach (for their
        summaries), with what the file's macros name; `names`: only those
        functions and what they reach."""
        if b"{" not in source:
            # no function: nothing to lower, and the macros serve none (a
            # header of register numbers defines 100,000)
            pf = parse_source(path, source)
            return build_file_model(pf, self.vocab, self.config.max_nodes, NORETURN), []
        noreturn = self._noreturn(path, source, tree)
        found = self._macros(path, source, tree, noreturn)
        vocab = self._with_statement_args(found)
        numbers = self._constants(path, source, tree)
        if numbers:
            vocab = replace(vocab, constants=numbers)
        passes = self._passes(path, source, tree)
        if passes:
            vocab = replace(vocab, passes={**vocab.passes, **passes})
        pf = parse_source(path, source)
        used = _used_macros(source, found)
        roots = None
        if names is not None or callable_only:
            # what the file's macros name is reached too (their helpers call it)
            roots = frozenset(w for m in used for w in IDENT_RE.findall(m.body))
            roots |= names if names is not None else frozenset(defined_functions(source))
        model = build_file_model(
            pf, vocab, self.config.max_nodes, noreturn, lowered, roots, names is None
        )
        own = {f.name for f in model.functions} | model.left_out
        return model, self._macro_helpers(path, used, own, vocab, noreturn)

    def _constants(self, path: str, source: bytes, tree: Path | None) -> dict[str, int]:
        """The numbers of the named constants of the file and of the headers
        of its subsystem it includes (not the tree's `include/`: a file
        compares with its own driver's codes)."""
        out: dict[str, int] = {}
        clash: set[str] = set()  # two headers give two values: neither is known
        where = _in_tree(path, tree)
        headers = self._subsystem_headers(source, where.parent) if self.config.headers else []
        for header in headers:
            for name, value in self._facts(header).constants.items():
                if out.setdefault(name, value) != value:
                    clash.add(name)
        out = {k: v for k, v in out.items() if k not in clash}
        out.update(named_constants(source))  # the file's own definition is the one it sees
        return out

    def _subsystem_headers(self, source: bytes, directory: Path) -> list[Path]:
        """subsystem_headers(), once per directory and list of relative
        includes: a driver's files all include its same few headers."""
        key = (directory, tuple(relative_includes(source)))
        known = self._subsystem.get(key)
        if known is None:
            known = self._subsystem[key] = subsystem_headers(source, directory)
        return known

    def _macros(
        self, path: str, source: bytes, tree: Path | None, noreturn: frozenset[str]
    ) -> list[Macro]:
        """The function-like macros of the file and of the headers of its own
        directory (frontend/macros.py), the file's first. The pack's vocabulary
        and the calls that end a path keep their meaning: a macro of one of
        their names is not read."""
        vocab = self.vocab
        skip = set(noreturn) | vocab.api.keys() | vocab.guards.keys() | vocab.iterators.keys()
        found = function_macros(source, skip)
        own = {m.name for m in found}
        for header in self.macro_headers(path, source, tree):
            macros = [m for m in self._facts(header).macros if m.name not in skip]
            found += [m for m in macros if m.name not in own]
        return found

    def _facts(self, header: Path) -> HeaderFacts:
        """A header's facts, read once for all their users."""
        known = self._header_facts.get(header)
        if known is None:
            known = self._header_facts[header] = HeaderFacts.read(header)
        return known

    def macro_headers(self, path: str, source: bytes, tree: Path | None = None) -> list[Path]:
        """The headers of the file's own directory whose macros the analysis
        reads: those it includes, and those they include in turn (a subsystem's
        `"internal.h"` pulls in its `"locks.h"`), at most MAX_MACRO_HEADERS."""
        where = _in_tree(path, tree)
        todo = [h for h in self.headers_for(path, source, tree) if h.parent == where.parent]
        out: list[Path] = []
        while todo and len(out) < MAX_MACRO_HEADERS:
            header = todo.pop(0)
            if header in out:
                continue
            out.append(header)
            todo += self._facts(header).nested
        return out

    def _with_statement_args(self, macros: list[Macro]) -> Vocabulary:
        """The vocabulary, with the macros that run an argument as a statement."""
        runs = {m.name: m.statements for m in macros if m.statements}
        if not runs:
            return self.vocab
        return replace(self.vocab, statement_args={**self.vocab.statement_args, **runs})

    def _macro_helpers(
        self,
        path: str,
        macros: list[Macro],
        own: set[str],
        vocab: Vocabulary,
        noreturn: frozenset[str],
    ) -> list[Function]:
        """The macros as functions, except those the file defines (`own`) as functions."""
        text = helper_source([m for m in macros if m.name not in own])
        if not text:
            return []
        pf = parse_source(path, text)
        return build_file_model(pf, vocab, self.config.max_nodes, noreturn).functions

    def _summarise_elsewhere(
        self, file: Path, data: bytes, names: frozenset[str] | None = None
    ) -> dict[str, Summary]:
        """Summaries of another file's functions, for callers in this one
        (of `names` only, when given). Not stored while a header is in
        progress: what they read of it is incomplete."""
        store = None if self._tree.partial else self._store
        headers: list[Path] = []
        if store is not None:  # its headers, and those whose macros or pure inlines it reads
            headers = self.headers_for(str(file), data, None)
            headers += [h for h in self.macro_headers(str(file), data) if h not in headers]
            headers += [h for h in self.other_headers(str(file), data) if h not in headers]
            stored = store.get_file(file, data, headers, names)
            if stored is not None:
                return stored
        model, macros = self._file_model(str(file), data, None, callable_only=True, names=names)
        library = {**self._known_pure, **self._header_summaries(str(file), data, None)}
        # a predicate of that file that only reads is pure for its callers
        # when what it calls is: a subsystem header's inline (`<drm/...>`)
        wanted = frozenset(
            c
            for f in model.functions
            for c in (f.pure_calls or ())
            if c not in library or library[c].sign_only()
        ) - {f.name for f in model.functions}
        if wanted and self.config.headers:
            library = {**self._pure_elsewhere(str(file), data, None, wanted), **library}
        library = {**library, **macro_summaries(macros, model.functions, library)}
        # callees in other files stay unseen here (the depth bound)
        dirs = self._tree.search_dirs(file, self._root_of(file))
        out = file_summaries(
            model.functions, library, lambda name: bool(self._tree.defining(name, dirs))
        )
        if store is not None:
            store.put_file(file, data, headers, out, names)
        return out

    def _noreturn(self, path: str, source: bytes, tree: Path | None) -> frozenset[str]:
        """The calls that end a path in this file: its own `__noreturn`
        declarations and those of the headers it includes (a subsystem's
        panic helper is declared in its header, often behind a macro)."""
        known = NORETURN
        for header in self.headers_for(path, source, tree):
            known = known | self._facts(header).noreturn
        return noreturn_names(source, known)

    def _passes(self, path: str, source: bytes, tree: Path | None) -> dict[str, int]:
        """The macros of the file and of the headers it includes whose value
        is one of their arguments (frontend/macros.py value_macros); the
        pack's own names keep their meaning."""
        out: dict[str, int] = {}
        for header in self.headers_for(path, source, tree):
            for name, at in self._facts(header).passes.items():
                out.setdefault(name, at)
        out.update(value_macros(source))
        vocab = self.vocab
        return {n: i for n, i in out.items() if n not in vocab.api and n not in vocab.guards}

    def headers_for(self, path: str, source: bytes, tree: Path | None = None) -> list[Path]:
        """The headers whose inline helpers the analysis of `path` reads.

        Remembered per file text: a whole-tree run asks for the cache key,
        the pool's header phase and the analysis.
        """
        if not self.config.headers:
            return []
        # a relative path means what the working directory makes it mean
        here = os.getcwd()
        memo = (here, path, tree, hashlib.blake2b(source, digest_size=16).digest())
        known = self._includes.get(memo)
        if known is None:
            where = _in_tree(path, tree)
            parent = where.parent
            found, is_dir = self._root_and_dir(where)
            root = tree or found
            known = included_headers(source, root, parent if is_dir else None)
            self._includes[memo] = known
        return list(known)

    def other_headers(self, path: str, source: bytes, tree: Path | None = None) -> list[Path]:
        """The tree's headers outside `linux/` the file includes (`<drm/...>`):
        read for their pure inlines only, when a test made twice needs one."""
        if not self.config.headers:
            return []
        return other_headers(source, tree or self._root_of(_in_tree(path, tree)))

    def _pure_elsewhere(
        self, path: str, source: bytes, tree: Path | None, wanted: frozenset[str]
    ) -> dict[str, Summary]:
        """The pure summaries of `wanted` callees the file's other tree
        headers define, first definition in include order."""
        out: dict[str, Summary] = {}
        names = [n.encode() for n in sorted(wanted)]
        for header in self.other_headers(path, source, tree):
            if header not in self._headers:  # read a header only for a name it spells
                try:
                    data = header.read_bytes()
                except OSError:
                    continue
                if not any(n in data for n in names):
                    continue
            for name, summ in self._header(header).items():
                if name in wanted and summ.pure:
                    out.setdefault(name, summ)
            if len(out) == len(wanted):
                break
        return out

    def _header_summaries(self, path: str, source: bytes, tree: Path | None) -> dict[str, Summary]:
        out: dict[str, Summary] = {}
        for header in self.headers_for(path, source, tree):
            for name, summ in self._header(header).items():
                out.setdefault(name, summ)
        return out

    def callee_files(self, paths: list[Path]) -> list[Path]:
        """The other `.c` files beside `paths` that their calls may take summaries
        from (analysis/tree.py): every name written as a call that exactly one
        file of the directory defines. More than the analysis takes, never fewer,
        so a pool can summarise them once for all its workers."""
        if not self.config.headers:
            return []
        wanted: set[Path] = set()
        for path in paths:
            try:
                source = read_c_source(path)
            except LockcheckError:
                continue
            # `defining()` for every name, with the directories' indexes looked up once
            dirs = self._tree.search_dirs(path, self._root_of(path))
            indexes = [self._tree.index(d) for d in dirs]
            me = path.resolve()
            for name in {n.decode("ascii") for n in _CALLED_RE.findall(source)}:
                for index in indexes:
                    where = index.get(name)
                    if where:
                        if len(where) == 1 and where[0] != me:
                            wanted.add(where[0])
                        break
        return sorted(wanted)

    def _root_of(self, path: Path) -> Path | None:
        """The kernel tree `path` lies in."""
        return self._root_and_dir(path)[0]

    def _root_and_dir(self, path: Path) -> tuple[Path | None, bool]:
        """The kernel tree `path` lies in, and whether its directory exists
        (remembered per directory: every file of it asks)."""
        key = (os.getcwd(), path.parent)
        found = self._roots.get(key)
        if found is None:
            found = self._roots[key] = (kernel_root(path), path.parent.is_dir())
        return found

    def summaries_of(self, file: Path) -> tuple[bytes, dict[str, Summary]] | None:
        return self._tree.summaries_of(file)

    def add_file_summaries(self, known: list[tuple[bytes, dict[str, Summary]]]) -> None:
        """Summaries of callee files another process computed (`summaries_of`)."""
        for key, summaries in known:
            self._tree.remember(key, summaries)

    @contextmanager
    def callees_by_name(self) -> Iterator[None]:
        """Meanwhile, summarise another file only for the functions asked of
        it (analysis/tree.py `by_name`): a review's few files call a few
        functions of each file beside them. The summaries are the same."""
        before = self._tree.by_name
        self._tree.by_name = True
        try:
            yield
        finally:
            self._tree.by_name = before

    def header_summaries(self, header: Path) -> dict[str, Summary]:
        """A header's inline summaries, for a pool's first phase to share."""
        return self._header(header)

    def add_header_summaries(self, known: dict[Path, dict[str, Summary]]) -> None:
        """Summaries another process computed: they are the same wherever computed."""
        for header, summaries in known.items():
            self._headers.setdefault(header, summaries)

    def _header(self, header: Path) -> dict[str, Summary]:
        """Summaries of a header's `static inline` functions, computed once
        whatever the path that names it (a checked file's relative includes,
        a callee file's absolute ones)."""
        cached = self._headers.get(header)
        if cached is not None:
            return cached
        real = real_path(header)
        if real != header:
            cached = self._header(real)
            if real not in self._busy:  # not its in-progress {}
                self._headers[header] = cached
            return cached
        self._busy.add(header)
        try:
            return self._header_of(header)
        finally:
            self._busy.discard(header)

    def _header_of(self, header: Path) -> dict[str, Summary]:
        """`_header()` of a header named by its real path."""
        self._headers[header] = {}  # in progress: a header reached again sees none
        try:
            data = read_c_source(header)
        except LockcheckError:
            data = b""
        if self._store is not None:
            stored = self._store.get(header, data)
            if stored is not None:
                self._headers[header] = stored
                return stored
        lines = data.decode("utf-8", "replace").splitlines()
        model = build_file_model(parse_source(str(header), data), self.vocab, self.config.max_nodes)
        prototypes = declared_names("\n".join(lines)) if model.functions else frozenset()
        inline = [
            fn
            for fn in model.functions
            if "inline" in " ".join(lines[fn.start_line - 1 : fn.start_line + 1])
            and fn.name not in prototypes
        ]
        # an inline wrapping a function of a .c file beside the header
        # (xfs_trans_ail_update() -> xfs_trans_ail_update_bulk())
        self._tree.partial += 1  # this header reads as {} meanwhile
        try:
            elsewhere = self._tree.library_for(header, inline, {}) if inline else {}
        finally:
            self._tree.partial -= 1
        elsewhere = {**self._known_pure, **elsewhere}
        # and what the header's annotated prototypes declare (an inline
        # wrapping one, and includers calling them, see the same contract)
        declared = declared_summaries(model.declared)
        summaries = analyse_file(inline, {**declared, **elsewhere}).summaries if inline else {}
        summaries = {**declared, **summaries}
        self._headers[header] = summaries
        if self._store is not None:
            self._store.put(header, data, summaries)
        return summaries

    def use_cache(self, directory: Path | None) -> None:
        """Keep header summaries in `directory` across runs (None: not at all).

        Every review or hook run in a kernel tree would otherwise summarise
        the same hundred headers again.
        """
        if directory is None:
            self._store = self._tree.store = None
            return
        from lockcheck.cache import HeaderStore

        self._store = self._tree.store = HeaderStore(directory, self)

    def flow_memo(self) -> FlowMemo:
        """Where a review keeps function dataflows between a file's images:
        in memory, and on disk when the engine has a cache (cache.FlowStore)."""
        if self._store is None:
            return {}
        from lockcheck.cache import FlowStore

        return FlowStore(self._store)

    def lower_memo(self) -> LowerMemo:
        """Where a review keeps a file's lowered functions between its images
        and, when the engine has a cache, between runs (cache.LowerStore)."""
        if self._store is None:
            return {}
        from lockcheck.cache import LowerStore

        return LowerStore(self._store)

    def findings_for(self, analysis: Analysis) -> list[Finding]:
        raw: list[Finding] = []
        for rule in self.rules:
            if self.config.select is not None and rule.spec.id not in self.config.select:
                continue
            ctx = RuleContext(
                rule.spec,
                analysis.path,
                analysis.facts,
                vocab=self.vocab,
                source=analysis.source,
                ops=analysis.model.ops,
            )
            rule.run(ctx)
            raw.extend(ctx.findings)
        lines = analysis.source.decode("utf-8", "replace").splitlines()
        return decide(raw, lines, self.config.select, self.config.baseline)

    def check_file(self, path: Path) -> FileResult:
        """One file's part of a check: the unit of work of every backend."""
        out = FileResult(str(path))
        try:
            source = read_c_source(path)
        except LockcheckError as exc:
            out.errors.append(str(exc))
            return out
        analysis = self.analyse_source(str(path), source)
        out.stats.add(analysis.model, analysis.facts)
        claims = ClaimStats()
        check_comment_claims(analysis.facts, source, self.vocab, claims)
        out.stats.unresolved_claims += claims.unresolved
        out.findings = self.findings_for(analysis)
        out.edges = file_order_edges(str(path), analysis.facts, self.vocab, source)
        return out

    def check_paths(self, paths: list[Path]) -> CheckResult:
        files, bad = collect_sources(paths)
        return combine([self.check_file(path) for path in files], [str(e) for e in bad])


def _used_macros(source: bytes, macros: list[Macro]) -> list[Macro]:
    """The macros the file can reach: those it calls, and those their bodies
    call in turn. A subsystem header's macros come with every file that
    includes it, and writing out the hundreds a file never calls as
    functions costs a lowering and a dataflow each."""
    if not macros:
        return macros
    by_name = {m.name: m for m in macros}
    called = {n.decode("ascii") for n in _CALLED_RE.findall(source)}
    todo = sorted(called & by_name.keys())
    reached = set(todo)
    while todo:
        for name in _CALLED_TEXT_RE.findall(by_name[todo.pop()].body):
            if name in by_name and name not in reached:
                reached.add(name)
                todo.append(name)
    return [m for m in macros if m.name in reached]


def macro_summaries(
    macros: list[Function], functions: list[Function], library: dict[str, Summary]
) -> dict[str, Summary]:
    """Summaries of a file's macros as functions, for the file's callers.

    A macro may call the file's own helpers (`_proc_unlock(p, __LINE__)`), so
    those it reaches are analysed with it, callees first; the rest of the
    file is not, and is analysed once afterwards with the macros' summaries.
    A macro with no lock effect gets none: a call to it stays an unknown call.
    """
    if not macros:
        return {}
    by_name: dict[str, list[Function]] = {}
    for fn in functions:
        by_name.setdefault(fn.name, []).append(fn)
    reached: list[Function] = []
    seen: set[str] = set()
    stack = list(macros)
    while stack:
        fn = stack.pop()
        for node in fn.cfg.nodes:
            for ev in node.events:
                if not isinstance(ev, Call):
                    continue
                for name in (ev.callee, ev.callback):
                    if name and name in by_name and name not in seen:
                        seen.add(name)
                        reached += by_name[name]
                        stack += by_name[name]
    reached.sort(key=lambda f: f.start_line)
    names = {m.name for m in macros}
    facts = analyse_file([*reached, *macros], library)
    return {n: s for n, s in sorted(facts.summaries.items()) if n in names}


def combine(parts: list[FileResult], bad: list[str] | None = None) -> CheckResult:
    """One run's result from its files' parts, in any order: sorted, so the same
    whatever the job count, the shards or the backend."""
    errors: list[LockcheckError] = [InputError(m) for m in bad or []]
    stats = Stats()
    findings: list[Finding] = []
    parts = sorted(parts, key=lambda p: p.path)
    for part in parts:
        errors.extend(InputError(m) for m in part.errors)
        if not part.errors:
            stats.merge(part.stats)
        findings.extend(part.findings)
    stats.input_errors = len(errors)
    findings.sort(key=Finding.sort_key)
    return CheckResult(findings, stats, errors, parts, list(bad or []))
