"""Locks held across a function boundary by a protocol the code states: a
header comment saying the caller holds the lock while the function drops it
through a table slot it filled with the lock's owner.

The flag, cookie and open/close shapes are annotated fixtures
(fixtures/locking/{continuation_cookie,static_state_flag,gate_by_argument,
commit_keyed_on_null,flag_out_param_trylock,documented_entry_held}.c); a
header comment's claim is reported on the comment, which a fixture marker
cannot aim at, so it is tested here, on the fixture.
"""

from __future__ import annotations

from functools import cache

from lockcheck.engine import Config, Engine
from lockcheck.model.finding import Finding
from tests.helpers import FIXTURES

# the fixture's run loops fill their table's slot 0 with their own queue
ENTRY_HELD = (FIXTURES / "locking" / "documented_entry_held.c").read_text()
FILL_SLOT = "\trun_set_init(&set, rq);\n"


@cache
def _engine() -> Engine:
    return Engine(Config(packs=["mm"], select={"claim-mismatch"}, headers=False))


def claims(code: str) -> dict[str, Finding]:
    engine = _engine()
    return {f.function: f for f in engine.findings_for(engine.analyse_source("t.c", code.encode()))}


def test_a_slot_of_a_table_filled_with_the_owner_may_be_the_claimed_lock() -> None:
    assert claims(ENTRY_HELD) == {}
    # without the line filling it, the table never received `rq`: taking
    # `rq->lock` again contradicts the comment
    assert ENTRY_HELD.count(FILL_SLOT) == 2
    found = claims(ENTRY_HELD.replace(FILL_SLOT, ""))
    assert sorted(found) == ["runq_run", "runq_run_leaky"]
    assert all("taken again" in f.message for f in found.values())


FLAG_BEFORE_UNLOCK = """
static DEFINE_MUTEX(pump_mutex);

int pump(void)
{
	static struct {
		bool busy;
		int got;
	} st;
	int err;

	if (!st.busy) {
		mutex_lock(&pump_mutex);
		st.busy = true;
	}
	err = pump_read(&st.got);
	if (err > 0)
		return 0;
	st.busy = false;
	mutex_unlock(&pump_mutex);
	return err;
}

int pump_forgetful(void)
{
	static struct {
		bool busy;
		int got;
	} st;
	int err;

	if (!st.busy) {
		mutex_lock(&pump_mutex);
		st.busy = true;
	}
	err = pump_read(&st.got);
	if (err > 0) {
		st.busy = false;
		return 0;
	}
	st.busy = false;
	mutex_unlock(&pump_mutex);
	return err;
}
"""


@cache
def _balance_engine() -> Engine:
    return Engine(Config(packs=["mm"], select={"lock-balance"}, headers=False))


def test_a_static_flag_cleared_right_before_the_unlock_records_the_lock() -> None:
    engine = _balance_engine()
    found = engine.findings_for(engine.analyse_source("t.c", FLAG_BEFORE_UNLOCK.encode()))
    # set right after the lock, kept on the early return: the next call releases it
    assert [f.function for f in found] == ["pump_forgetful"]
    assert "still held" in found[0].message


BUSY_FIELD = """
struct dev {
	struct mutex lock;
	int busy;
	void __iomem *regs;
};

int dev_start(struct dev *dev)
{
	mutex_lock(&dev->lock);
	dev->busy = 1;
	if (hw_kick(dev->regs) < 0)
		return -EIO;
	hw_wait(dev->regs);
	dev->busy = 0;
	mutex_unlock(&dev->lock);
	return 0;
}
"""


def test_a_state_field_set_beside_the_lock_but_never_asked_records_nothing() -> None:
    engine = _balance_engine()
    found = engine.findings_for(engine.analyse_source("t.c", BUSY_FIELD.encode()))
    # `busy` is set with the lock and cleared with it, but no test of it
    # decides the lock: the failure return leaks it
    assert [f.function for f in found] == ["dev_start"]
