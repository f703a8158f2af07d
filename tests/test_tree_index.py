"""The tree-wide definition index and cross-file summaries (analysis/tree.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockcheck.analysis.summaries import Summary
from lockcheck.analysis.tree import SummariseFile, TreeSummaries, defined_functions, file_summaries
from lockcheck.engine import Config, Engine
from lockcheck.model.ir import Function, LockRef
from tests.helpers import FIXTURES

C_TEXT = b"""
static int hidden(int a)
{
    return a;
}

static void
hidden_too(void)
{
}

int
visible_below(struct mm_struct *mm,
          unsigned long addr)
{
    return 0;
}

void visible(struct pool *p)
    __releases(&p->lock)
{
    spin_unlock(&p->lock);
}

int prototype_only(int x);
EXPORT_SYMBOL(visible);
#define not_a_function(x) ((x) + 1)
"""


def test_index_lists_non_static_definitions_only() -> None:
    assert defined_functions(C_TEXT) == ["visible_below", "visible"]


def _write(d: Path, name: str, text: str) -> Path:
    p = d / name
    p.write_text(text)
    return p


HELPER = """
void finish_it(struct pool *p)
{
    spin_unlock(&p->lock);
}
"""
USER = """
static void user(struct pool *p)
{
    spin_lock(&p->lock);
    if (p->busy) {
        finish_it(p);
        return;
    }
    spin_unlock(&p->lock);
}
"""


def test_a_callee_in_a_sibling_file_is_summarised(tmp_path: Path) -> None:
    _write(tmp_path, "helper.c", HELPER)
    user = _write(tmp_path, "user.c", USER)
    result = Engine().check_paths([user])
    assert [f.rule for f in result.findings] == []
    # without the sibling the release is unknown and the early return leaks
    (tmp_path / "helper.c").unlink()
    again = Engine().check_paths([user])
    assert [f.rule for f in again.findings] == ["lock-balance"]


def test_names_defined_twice_are_not_used(tmp_path: Path) -> None:
    _write(tmp_path, "helper.c", HELPER)
    _write(tmp_path, "helper_arch.c", HELPER.replace("spin_unlock", "other_unlock"))
    user = _write(tmp_path, "user.c", USER)
    result = Engine().check_paths([user])
    assert [f.rule for f in result.findings] == ["lock-balance"]


def test_files_are_summarised_once_per_content_and_bounded(tmp_path: Path) -> None:
    calls: list[str] = []

    def summarise(path: Path, data: bytes, names: frozenset[str] | None) -> dict[str, Summary]:
        calls.append(path.name)
        return {}

    for i in range(5):
        _write(tmp_path, f"h{i}.c", HELPER.replace("finish_it", f"finish_{i}"))
    user = "\n".join(f"static void u{i}(struct pool *p) {{ finish_{i}(p); }}" for i in range(5))
    user_path = _write(tmp_path, "user.c", user)
    engine = Engine()
    model = engine.analyse_source(str(user_path), user_path.read_bytes()).model
    tree = TreeSummaries(summarise, max_callee_files=3)
    tree.library_for(user_path, model.functions, {})
    assert calls == ["h0.c", "h1.c", "h2.c"]
    tree.library_for(user_path, model.functions, {})
    assert calls == ["h0.c", "h1.c", "h2.c"]  # cached by content


def test_crossfile_fixture_uses_its_sibling() -> None:
    users = FIXTURES / "kernel612" / "crossfile" / "users.c"
    engine = Engine()
    analysis = engine.analyse_source(str(users), users.read_bytes())
    assert "drop_range" in analysis.facts.summaries
    assert "finish_and_unlock" in analysis.facts.summaries


# -- the definition heads, one shape at a time (analysis/tree.py's own runner)


@pytest.mark.parametrize("word", ["if", "for", "while", "switch", "return", "sizeof"])
def test_keywords_at_column_zero_are_not_definitions(word: str) -> None:
    assert defined_functions(f"{word} (x) {{\n}}\nint real(void) {{\n}}\n".encode()) == ["real"]


def test_a_brace_or_semicolon_inside_the_parentheses_is_not_a_head() -> None:
    assert defined_functions(b"WRAP(a, { b }) {\n}\n") == []
    assert defined_functions(b"WRAP(a; b) {\n}\n") == []
    assert defined_functions(b"WRAP(a, } b) {\n}\n") == []
    assert defined_functions(b"WRAP(a, { b) {\n}\n") == []
    # a head that is not one does not end the search
    assert defined_functions(b"WRAP(a; b)\nint g(void)\n{\n}\n") == ["g"]
    # deeper than the parameter list itself: an argument's own braces
    assert defined_functions(b"outer(inner({ 1 })) {\n}\n") == ["outer"]


def test_a_head_is_looked_for_within_4000_bytes() -> None:
    # the `(` is at index 5; its `)` must come before index 5 + 4000
    assert defined_functions(b"int f(" + b" " * 3998 + b")\n{\n}\n") == ["f"]
    assert defined_functions(b"int f(" + b" " * 3999 + b")\n{\n}\n") == []


def test_heads_that_end_early_or_run_out() -> None:
    assert defined_functions(b"int f(void)") == []
    assert defined_functions(b"int f(void) ") == []
    assert defined_functions(b"int f(int a") == []
    assert defined_functions(b"int f(void);\nint g(void)\n{\n}\n") == ["g"]
    assert defined_functions(b"int f(void){\n}\n") == ["f"]  # the brace right after


def test_annotations_between_the_head_and_its_body() -> None:
    text = b"void f(struct p *p)\n\t__must_hold(&p->a) __releases(&p->b)\n{\n}\n"
    assert defined_functions(text) == ["f"]
    assert defined_functions(b"void g(void) __cold {\n}\n") == ["g"]


def test_static_or_extern_on_the_line_above_hides_a_definition() -> None:
    assert defined_functions(b"extern int\nhidden(void)\n{\n}\n") == []
    assert defined_functions(b"static\nhidden(void)\n{\n}\n") == []
    # only the line right above counts
    assert defined_functions(b"static int x;\n\nint\nshown(void)\n{\n}\n") == ["shown"]
    assert defined_functions(b"int\nfirst(void)\n{\n}\n") == ["first"]
    # a type on the line of the name: the line above is another statement
    assert defined_functions(b"static int x;\nint shown(void)\n{\n}\n") == ["shown"]


# -- the index and the per-file cache


def _fake(calls: list[str]) -> SummariseFile:
    def summarise(path: Path, data: bytes, names: frozenset[str] | None) -> dict[str, Summary]:
        calls.append(path.name)
        return {n: Summary(returns=path.name) for n in defined_functions(data)}

    return summarise


def test_the_index_reads_c_files_of_the_directory_only(tmp_path: Path) -> None:
    _write(tmp_path, "a.c", HELPER + HELPER.replace("spin_unlock", "other_unlock"))
    _write(tmp_path, "b.h", "void in_header(void)\n{\n}\n")
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "sub", "c.c", "void below(void)\n{\n}\n")
    (tmp_path / "dir.c").mkdir()
    tree = TreeSummaries(_fake([]))
    idx = tree.index(tmp_path)
    # two #ifdef variants in one file are one file
    assert idx == {"finish_it": [(tmp_path / "a.c").resolve()]}
    assert tree.index(tmp_path) is idx  # built once per directory
    assert TreeSummaries(_fake([])).index(tmp_path / "missing") == {}


def test_the_index_reads_at_most_max_files(tmp_path: Path) -> None:
    for i in range(4):
        _write(tmp_path, f"f{i}.c", f"void def{i}(void)\n{{\n}}\n")
    assert sorted(TreeSummaries(_fake([]), max_files=2).index(tmp_path)) == ["def0", "def1"]


def _user(tmp_path: Path, body: str) -> tuple[Path, list[Function]]:
    path = _write(tmp_path, "user.c", body)
    return path, Engine().analyse_source(str(path), path.read_bytes()).model.functions


def test_what_a_file_needs_from_its_siblings(tmp_path: Path) -> None:
    for name in ("called", "callback", "known", "local"):
        _write(tmp_path, f"{name}.c", f"void {name}(void)\n{{\n}}\n")
    path, functions = _user(
        tmp_path,
        "void local(void)\n{\n}\n"
        "static void u(struct x *x)\n{\n\tcalled();\n\tknown();\n\tlocal();\n"
        "\tkref_put(&x->ref, callback);\n}\n",
    )
    calls: list[str] = []
    tree = TreeSummaries(_fake(calls))
    got = tree.library_for(path, functions, {"known": Summary()})
    # a callback passed by name is a callee too; the file's own and the
    # already known are not looked for
    assert got == {"callback": Summary(returns="callback.c"), "called": Summary(returns="called.c")}
    assert calls == ["callback.c", "called.c"]
    every = {n: Summary() for n in ("called", "callback", "known")}
    assert tree.library_for(path, functions, every) == {}
    assert len(calls) == 2


def test_a_file_does_not_summarise_itself(tmp_path: Path) -> None:
    _write(tmp_path, "helper.c", HELPER)
    user, functions = _user(tmp_path, USER)
    calls: list[str] = []
    tree = TreeSummaries(_fake(calls))
    # the user's calls, but as if helper.c were the file checked
    assert tree.library_for(tmp_path / "helper.c", functions, {}) == {}
    assert calls == []
    assert tree.library_for(user, functions, {}) == {"finish_it": Summary(returns="helper.c")}


def test_a_file_gone_since_indexing_gives_nothing(tmp_path: Path) -> None:
    _write(tmp_path, "helper.c", HELPER)
    user, functions = _user(tmp_path, USER)
    calls: list[str] = []
    tree = TreeSummaries(_fake(calls))
    tree.index(tmp_path)
    (tmp_path / "helper.c").unlink()
    assert tree.library_for(user, functions, {}) == {}
    assert calls == []


def test_the_cache_keeps_the_last_used_files(tmp_path: Path) -> None:
    a = _write(tmp_path, "a.c", "void fa(void)\n{\n}\n")
    b = _write(tmp_path, "b.c", "void fb(void)\n{\n}\n")
    c = _write(tmp_path, "c.c", "void fc(void)\n{\n}\n")
    calls: list[str] = []
    tree = TreeSummaries(_fake(calls), max_cached=2)
    for f in (a, b, a, c, a, b):
        tree._file(f)
    # c pushed out b (a was used again after it), then b came back
    assert calls == ["a.c", "b.c", "c.c", "b.c"]
    assert list(tree._cache.values()) == [
        {"fa": Summary(returns="a.c")},
        {"fb": Summary(returns="b.c")},
    ]


def test_summaries_computed_while_partial_are_not_kept(tmp_path: Path) -> None:
    a = _write(tmp_path, "a.c", "void fa(void)\n{\n}\n")
    calls: list[str] = []
    tree = TreeSummaries(_fake(calls))
    tree.partial = 1
    assert tree._file(a) == {"fa": Summary(returns="a.c")}
    tree.partial = 0
    tree._file(a)
    tree._file(a)
    assert calls == ["a.c", "a.c"]


def test_file_summaries_keep_the_files_own_functions_with_effects() -> None:
    engine = Engine(Config(headers=False))
    text = HELPER + "void quiet(void)\n{\n}\nvoid calls(struct pool *p)\n{\n\tlib_drop(p);\n}\n"
    functions = engine.analyse_source("h.c", text.encode()).model.functions
    lib = {"lib_drop": Summary(releases=(LockRef("p->lock", "spinlock"),), params=("p",))}
    got = file_summaries(functions, lib)
    # `quiet` changes nothing: kept only as pure (a test of it is stable)
    assert [n for n in got if not got[n].pure] == ["calls", "finish_it"]
    assert got["quiet"].pure and not got["quiet"].releases and not got["calls"].pure


# -- callees in an ancestor directory of a kernel tree


def _kernel(tmp_path: Path) -> Path:
    """A kernel-shaped tree: `include/linux/` at its top marks it."""
    (tmp_path / "include" / "linux").mkdir(parents=True)
    (tmp_path / "fs" / "sub" / "deeper").mkdir(parents=True)
    return tmp_path


def test_a_callee_in_an_ancestor_directory_is_summarised(tmp_path: Path) -> None:
    root = _kernel(tmp_path)
    _write(root / "fs", "core.c", HELPER)
    user = _write(root / "fs" / "sub", "user.c", USER)
    result = Engine().check_paths([user])
    assert [f.rule for f in result.findings] == []
    # two levels up is still below the top
    deep = _write(root / "fs" / "sub" / "deeper", "user.c", USER)
    assert [f.rule for f in Engine().check_paths([deep]).findings] == []
    # outside a kernel tree only the file's own directory counts
    (root / "include" / "linux").rmdir()
    assert [f.rule for f in Engine().check_paths([user]).findings] == ["lock-balance"]


def test_the_nearest_directory_decides(tmp_path: Path) -> None:
    root = _kernel(tmp_path)
    _write(root / "fs", "core.c", HELPER)
    # the subsystem's own finish_it() does not unlock: it hides the core's
    _write(root / "fs" / "sub", "own.c", HELPER.replace("spin_unlock", "other_unlock"))
    user = _write(root / "fs" / "sub", "user.c", USER)
    assert [f.rule for f in Engine().check_paths([user]).findings] == ["lock-balance"]
    # two definitions in the nearest directory: neither is used, nor is the core's
    (root / "fs" / "sub" / "own.c").write_text(HELPER)
    _write(root / "fs" / "sub", "own_arch.c", HELPER)
    assert [f.rule for f in Engine().check_paths([user]).findings] == ["lock-balance"]


def test_the_search_stops_below_the_top_and_after_max_up(tmp_path: Path) -> None:
    root = _kernel(tmp_path)
    _write(root, "top.c", HELPER)  # files at the very top are not looked at
    user = _write(root / "fs" / "sub" / "deeper", "user.c", USER)
    assert [f.rule for f in Engine().check_paths([user]).findings] == ["lock-balance"]
    tree = TreeSummaries(_fake([]), max_up=1)
    got = tree.search_dirs(user, root)
    assert got == [(root / "fs" / "sub" / "deeper").resolve(), (root / "fs" / "sub").resolve()]
    assert TreeSummaries(_fake([])).search_dirs(user, root)[-1] == (root / "fs").resolve()
    assert TreeSummaries(_fake([])).search_dirs(user, None) == [user.parent.resolve()]
    elsewhere = tmp_path.parent / "elsewhere.c"
    assert TreeSummaries(_fake([])).search_dirs(elsewhere, root) == [tmp_path.parent.resolve()]


def test_by_default_three_ancestors_are_searched(tmp_path: Path) -> None:
    # drivers/net/ethernet/<vendor>/<chip>/x.c reaches drivers/net/, not drivers/
    root = _kernel(tmp_path)
    chip = root / "a" / "b" / "c" / "d" / "e"
    chip.mkdir(parents=True)
    got = TreeSummaries(_fake([])).search_dirs(chip / "x.c", root)
    assert got == [chip.resolve(), *list(chip.resolve().parents)[:3]]
    assert got[-1] == (root / "a" / "b").resolve()


def test_the_pool_prefetches_ancestor_callee_files(tmp_path: Path) -> None:
    root = _kernel(tmp_path)
    core = _write(root / "fs", "core.c", HELPER)
    user = _write(root / "fs" / "sub", "user.c", USER)
    assert Engine().callee_files([user]) == [core.resolve()]


@pytest.mark.skipif(not Path("/proc/self/mem").is_file(), reason="needs Linux's /proc/self/mem")
def test_a_file_the_index_cannot_read_is_skipped_not_the_rest(tmp_path: Path) -> None:
    # a regular file that fails to read even as root: /proc/self/mem at offset 0
    (tmp_path / "a.c").symlink_to("/proc/self/mem")
    _write(tmp_path, "b.c", "void after(void)\n{\n}\n")
    assert TreeSummaries(_fake([])).index(tmp_path) == {"after": [(tmp_path / "b.c").resolve()]}


# -- summarised by name (a review's or one file's callees) ----------------------


def _named_fake(calls: list[tuple[str, frozenset[str] | None]]) -> SummariseFile:
    def summarise(path: Path, data: bytes, names: frozenset[str] | None) -> dict[str, Summary]:
        calls.append((path.name, names))
        wanted = [n for n in defined_functions(data) if not names or n in names]
        return {n: Summary(returns=path.name) for n in wanted}

    return summarise


TWO = "void fa(void)\n{\n}\nvoid fb(void)\n{\n}\n"


def test_by_name_summarises_only_the_names_asked_and_keeps_them(tmp_path: Path) -> None:
    a = _write(tmp_path, "a.c", TWO)
    calls: list[tuple[str, frozenset[str] | None]] = []
    tree = TreeSummaries(_named_fake(calls), by_name=True)
    assert tree._file(a, frozenset({"fa"})) == {"fa": Summary(returns="a.c")}
    tree._file(a, frozenset({"fa"}))  # kept by the bytes and the names
    assert tree._file(a, frozenset({"fb"})) == {"fb": Summary(returns="a.c")}
    assert calls == [("a.c", frozenset({"fa"})), ("a.c", frozenset({"fb"}))]
    assert not tree._cache  # nothing was summarised whole
    # a whole file's summaries, once known, answer for any names
    tree._cache[next(iter(tree._named))[0]] = {"fa": Summary(), "fb": Summary()}
    assert tree._file(a, frozenset({"fb"})) == {"fa": Summary(), "fb": Summary()}
    assert len(calls) == 2


def test_without_by_name_a_file_is_summarised_whole_once(tmp_path: Path) -> None:
    a = _write(tmp_path, "a.c", TWO)
    calls: list[tuple[str, frozenset[str] | None]] = []
    tree = TreeSummaries(_named_fake(calls))
    tree._file(a, frozenset({"fa"}))
    tree._file(a, frozenset({"fb"}))
    assert calls == [("a.c", None)]


def test_by_name_keeps_at_most_max_cached(tmp_path: Path) -> None:
    a = _write(tmp_path, "a.c", TWO)
    calls: list[tuple[str, frozenset[str] | None]] = []
    tree = TreeSummaries(_named_fake(calls), by_name=True, max_cached=1)
    for names in ({"fa"}, {"fb"}, {"fa"}):
        tree._file(a, frozenset(names))
    assert len(calls) == 3 and len(tree._named) == 1


SIBLING = """
static void undo(struct pool *p)
{
    spin_unlock(&p->lock);
}

void finish_it(struct pool *p)
{
    p->busy = 0;
    undo(p);
}

void take_it(struct pool *p)
{
    spin_lock(&p->lock);
}

void unrelated(struct pool *p)
{
    spin_lock(&p->other);
    spin_unlock(&p->other);
}
"""
CALLER = """
static void user(struct pool *p)
{
    take_it(p);
    if (p->busy) {
        finish_it(p);
        return;
    }
    finish_it(p);
}

static void leaks(struct pool *p)
{
    take_it(p);
    if (p->busy)
        return;
    finish_it(p);
}
"""


def test_by_name_gives_the_whole_files_summaries_and_findings(tmp_path: Path) -> None:
    # the names a caller asks for, and the same-file helpers they reach, are
    # summarised as in the whole file: same facts, summaries and findings
    _write(tmp_path, "sibling.c", SIBLING)
    user = _write(tmp_path, "user.c", CALLER)
    whole, named = Engine(), Engine()
    a = whole.analyse_source(str(user), user.read_bytes())
    with named.callees_by_name():
        b = named.analyse_source(str(user), user.read_bytes())
    assert not named._tree.by_name  # only meanwhile
    assert named._tree._named and not named._tree._cache
    assert whole._tree._cache and not whole._tree._named
    assert repr(a.facts.summaries) == repr(b.facts.summaries)
    states = [repr(f.before) for f in a.facts.functions]
    assert states == [repr(f.before) for f in b.facts.functions]
    found = [(f.function, f.rule) for f in whole.findings_for(a)]
    assert found == [(f.function, f.rule) for f in named.findings_for(b)]
    assert found == [("leaks", "lock-balance")]
