"""suppression-without-reason in process: where it points and what it says.

`make mutate` runs these first for lockcheck/rules/suppression.py.
"""

from __future__ import annotations

from lockcheck.engine import Config, Engine

CODE = """/* lockcheck: ignore lock-balance */
void f(spinlock_t *l) /* lockcheck: ignore a-rule */
{
	spin_lock(l); /* lockcheck: ignore lock-balance */
	/* lockcheck: ignore lock-order nested on purpose */ /* lockcheck: ignore b-rule */
	spin_unlock(l);
} /* lockcheck: ignore c-rule */
/*
lockcheck: ignore d-rule
*/
"""


def test_a_reasonless_suppression_is_reported_where_it_is() -> None:
    engine = Engine(Config(packs=["mm"], select={"suppression-without-reason"}, headers=False))
    found = engine.findings_for(engine.analyse_source("t.c", CODE.encode() + b"/* \xff */\n"))
    got = [(f.line, f.column, f.function) for f in found]
    assert got == [(1, 4, ""), (2, 26, "f"), (4, 19, "f"), (5, 5, "f"), (7, 6, "f"), (9, 1, "")]
    assert found[2].anchor == "spin_lock(l); /* lockcheck: ignore lock-balance */"
    assert [f.expected for f in found][:2] == [
        ("lockcheck: ignore lock-balance <reason>",),
        ("lockcheck: ignore a-rule <reason>",),
    ]
    assert found[0].message == (
        "the suppression of `lock-balance` gives no reason; "
        "write why the finding is accepted after the rule id"
    )
    assert engine.findings_for(engine.analyse_source("t.c", b"")) == []


def test_a_source_that_is_not_utf8_is_read_anyway() -> None:
    # a byte that is not UTF-8 before a reasonless suppression
    engine = Engine(Config(packs=["mm"], select={"suppression-without-reason"}, headers=False))
    source = b"/* caf\xe9 */\n/* lockcheck: ignore lock-balance */\n"
    found = engine.findings_for(engine.analyse_source("t.c", source))
    assert [(f.line, f.column) for f in found] == [(2, 4)]
