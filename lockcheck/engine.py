"""The pipeline in one place: inputs -> frontend -> model -> analysis -> rules.

The CLI and the review/hook front ends call this; none of them reach into
the stages themselves.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from lockcheck.analysis.file import FileFacts, analyse_file, library_summaries
from lockcheck.analysis.summaries import Summary
from lockcheck.analysis.tree import TreeSummaries, file_summaries
from lockcheck.errors import LockcheckError, RuleError
from lockcheck.frontend.parse import parse_source
from lockcheck.inputs.files import collect_sources, read_c_source
from lockcheck.inputs.tree import included_headers, kernel_root
from lockcheck.model.extract import FileModel, build_file_model
from lockcheck.model.finding import Finding
from lockcheck.order.claims import ClaimStats, check_comment_claims
from lockcheck.packs import Pack, Vocabulary
from lockcheck.rules.base import Rule, RuleContext
from lockcheck.rules.decide import decide
from lockcheck.rules.registry import Registry, load_registry


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


@dataclass(slots=True)
class Config:
    packs: list[str] = field(default_factory=lambda: ["mm"])
    select: set[str] | None = None
    baseline: set[str] | None = None
    max_nodes: int = 20000
    headers: bool = True  # summarise the kernel tree's header inlines a file includes
    disable: set[str] = field(default_factory=set)  # rule ids not run (a project's config)
    severity: dict[str, str] = field(default_factory=dict)  # rule id -> severity it reports


class Engine:
    def __init__(self, config: Config | None = None, registry: Registry | None = None) -> None:
        self.config = config or Config()
        self.registry = registry or load_registry()
        self.packs: list[Pack] = [self.registry.load(p) for p in self.config.packs]
        self.vocab = Vocabulary.merge(self.packs)
        self._headers: dict[Path, dict[str, Summary]] = {}
        self._tree = TreeSummaries(self._summarise_elsewhere)
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

    def analyse_source(self, path: str, source: bytes, tree: Path | None = None) -> Analysis:
        """Analyse one file; in a kernel tree, with its headers' inline helpers.

        `tree` is the kernel tree the file belongs to; without it one is
        looked for above `path` when it names a real file.
        """
        pf = parse_source(path, source)
        model = build_file_model(pf, self.vocab, self.config.max_nodes)
        library = self._header_summaries(path, source, tree) if self.config.headers else {}
        if self.config.headers:  # callees defined in other files beside this one (analysis/tree.py)
            where = tree / path if tree is not None and not Path(path).is_absolute() else Path(path)
            library = {**self._tree.library_for(where, model.functions, library), **library}
        return Analysis(path, source, model, analyse_file(model.functions, library))

    def _summarise_elsewhere(self, file: Path, data: bytes) -> dict[str, Summary]:
        """Summaries of another file's functions, for callers in this one."""
        model = build_file_model(parse_source(str(file), data), self.vocab, self.config.max_nodes)
        return file_summaries(model.functions, self._header_summaries(str(file), data, None))

    def _header_summaries(self, path: str, source: bytes, tree: Path | None) -> dict[str, Summary]:
        where = Path(path)
        if tree is not None and not where.is_absolute():
            where = tree / where
        root = tree or kernel_root(where)
        directory = where.parent if where.parent.is_dir() else None
        out: dict[str, Summary] = {}
        for header in included_headers(source, root, directory):
            for name, summ in self._header(header).items():
                out.setdefault(name, summ)
        return out

    def _header(self, header: Path) -> dict[str, Summary]:
        """Summaries of a header's `static inline` functions, computed once."""
        cached = self._headers.get(header)
        if cached is not None:
            return cached
        try:
            data = read_c_source(header)
        except LockcheckError:
            data = b""
        lines = data.decode("utf-8", "replace").splitlines()
        model = build_file_model(parse_source(str(header), data), self.vocab, self.config.max_nodes)
        inline = [
            fn
            for fn in model.functions
            if "inline" in " ".join(lines[fn.start_line - 1 : fn.start_line + 1])
        ]
        summaries = library_summaries(inline) if inline else {}
        self._headers[header] = summaries
        return summaries

    def findings_for(self, analysis: Analysis) -> list[Finding]:
        raw: list[Finding] = []
        for rule in self.rules:
            if self.config.select is not None and rule.spec.id not in self.config.select:
                continue
            ctx = RuleContext(
                rule.spec, analysis.path, analysis.facts, vocab=self.vocab, source=analysis.source
            )
            rule.run(ctx)
            raw.extend(ctx.findings)
        lines = analysis.source.decode("utf-8", "replace").splitlines()
        return decide(raw, lines, self.config.select, self.config.baseline)

    def check_paths(self, paths: list[Path]) -> CheckResult:
        files, bad = collect_sources(paths)
        errors: list[LockcheckError] = list(bad)
        stats = Stats()
        findings: list[Finding] = []
        for path in files:
            try:
                source = read_c_source(path)
            except LockcheckError as exc:
                errors.append(exc)
                continue
            analysis = self.analyse_source(str(path), source)
            stats.add(analysis.model, analysis.facts)
            claims = ClaimStats()
            check_comment_claims(analysis.facts, source, self.vocab, claims)
            stats.unresolved_claims += claims.unresolved
            findings.extend(self.findings_for(analysis))
        stats.input_errors = len(errors)
        findings.sort(key=Finding.sort_key)
        return CheckResult(findings, stats, errors)
