"""Named constants read from the text: enumerators and integer `#define`s."""

from __future__ import annotations

from lockcheck.frontend.constants import named_constants


def test_enumerators_count_on_from_the_last_given_value() -> None:
    src = b"enum ev { EV_NONE, EV_DONE, EV_RING = 0x5, EV_BELL, EV_BAD = EV_DONE };"
    got = named_constants(src)
    assert got == {"EV_NONE": 0, "EV_DONE": 1, "EV_RING": 5, "EV_BELL": 6, "EV_BAD": 1}


def test_defines_and_a_name_given_two_values_under_an_ifdef() -> None:
    src = (
        b"#define RING_SLOTS (16)\n"
        b"#ifdef CONFIG_BIG\n#define RING_MAX 64\n#else\n#define RING_MAX 8\n#endif\n"
        b"#define RING_NAME \"ring\"\n"
        b"/* enum hidden { H_A = 3 }; */\n"
    )
    assert named_constants(src) == {"RING_SLOTS": 16}


def test_an_enum_with_a_conditional_entry_is_not_numbered() -> None:
    src = b"enum st {\n\tST_A,\n#ifdef CONFIG_X\n\tST_X,\n#endif\n\tST_B,\n};\n"
    assert named_constants(src) == {}
