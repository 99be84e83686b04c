"""Ticket numbers: Damm check digit, parsing as people type them back, typo detection."""

from __future__ import annotations

import itertools

import pytest

from normalizer.tickets import (
    _DAMM,
    TicketRef,
    check_digit,
    find_ticket,
    format_ticket,
    parse_ticket,
)

# (year, sequence, confidential) — the sequence of a confidential case is random digits.
SAMPLES = [
    (2026, 4217, False),
    (2026, 1, False),
    (2025, 999999, False),
    (2026, 100000, False),
    (2027, 31415, False),
    (2026, 482193, True),
    (2026, 70, True),
]


def _digits(ticket: str) -> str:
    return "".join(ch for ch in ticket if ch.isdigit())


def _with_digits(ticket: str, digits: str) -> str:
    """`ticket` with its digits replaced, in order, by `digits` (the separators kept)."""
    replacement = iter(digits)
    return "".join(next(replacement) if ch.isdigit() else ch for ch in ticket)


def test_damm_table_is_a_quasigroup_with_zero_diagonal() -> None:
    for row in _DAMM:
        assert sorted(row) == list(range(10))
    for column in zip(*_DAMM, strict=True):
        assert sorted(column) == list(range(10))
    assert all(_DAMM[i][i] == 0 for i in range(10))


def test_check_digit_known_value() -> None:
    assert check_digit("572") == 4  # the worked example of Damm's algorithm
    assert check_digit("5724") == 0  # a number followed by its check digit checks to zero


def test_format() -> None:
    assert format_ticket("BGR", 2026, 4217) == "BGR-2026-004217-5"
    assert format_ticket("BGR", 2026, 482193, confidential=True) == "BGR-2026-R482193-7"
    assert format_ticket("DPK", 2025, 1) == f"DPK-2025-000001-{check_digit('2025000001')}"


@pytest.mark.parametrize(("year", "number", "confidential"), SAMPLES)
def test_round_trip(year: int, number: int, confidential: bool) -> None:
    ticket = format_ticket("BGR", year, number, confidential)
    assert parse_ticket(ticket, "BGR") == TicketRef(ticket, True)
    assert parse_ticket(ticket.lower(), "BGR") == TicketRef(ticket, True)
    assert parse_ticket(ticket.replace("-", " "), "BGR") == TicketRef(ticket, True)
    assert find_ticket(f"Mau tanya status {ticket} ya", "BGR") == TicketRef(ticket, True)


def test_round_trip_over_many_sequences() -> None:
    for number in range(0, 1_000_000, 997):
        ticket = format_ticket("BGR", 2026, number)
        assert parse_ticket(ticket, "BGR") == TicketRef(ticket, True)


@pytest.mark.parametrize(("year", "number", "confidential"), SAMPLES)
def test_exactly_one_check_digit_is_valid(year: int, number: int, confidential: bool) -> None:
    ticket = format_ticket("BGR", year, number, confidential)
    valid = [
        c
        for c in "0123456789"
        if parse_ticket(ticket[:-1] + c, "BGR") == TicketRef(ticket[:-1] + c, True)
    ]
    assert valid == [ticket[-1]]


@pytest.mark.parametrize(("year", "number", "confidential"), SAMPLES)
def test_every_single_digit_typo_is_detected(year: int, number: int, confidential: bool) -> None:
    ticket = format_ticket("BGR", year, number, confidential)
    digits = _digits(ticket)
    assert len(digits) == 11  # year, six-digit sequence, check digit
    typos = 0
    for position, replacement in itertools.product(range(len(digits)), "0123456789"):
        if digits[position] == replacement:
            continue
        typed = _with_digits(ticket, digits[:position] + replacement + digits[position + 1 :])
        ref = parse_ticket(typed, "BGR")
        assert ref is not None, typed
        assert ref.canonical == typed
        assert ref.valid is False, typed
        typos += 1
    assert typos == 11 * 9


@pytest.mark.parametrize(("year", "number", "confidential"), SAMPLES)
def test_every_adjacent_transposition_is_detected(
    year: int, number: int, confidential: bool
) -> None:
    ticket = format_ticket("BGR", year, number, confidential)
    digits = _digits(ticket)
    swaps = 0
    for i in range(len(digits) - 1):
        if digits[i] == digits[i + 1]:
            continue
        swapped = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2 :]
        typed = _with_digits(ticket, swapped)
        ref = parse_ticket(typed, "BGR")
        assert ref is not None and ref.canonical == typed
        assert ref.valid is False, typed
        swaps += 1
    assert swaps > 0


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("bgr 2026 004217 3", "BGR-2026-004217-3"),
        ("BGR-2026-0042173", "BGR-2026-004217-3"),
        ("Re: [BGR-2026-004217-3] Jalan masih rusak", "BGR-2026-004217-3"),
        ("cek bgr2026 0042173", "BGR-2026-004217-3"),
        ("BGR-2026-R482193-5", "BGR-2026-R482193-5"),
        ("bgr 2026 004217 5", "BGR-2026-004217-5"),
        ("BGR-2026-0042175", "BGR-2026-004217-5"),
        ("Re: [BGR-2026-004217-5] Jalan masih rusak", "BGR-2026-004217-5"),
        ("BGR/2026/004217/5", "BGR-2026-004217-5"),
        ("BGR20260042175", "BGR-2026-004217-5"),
        ("BGR-2026-4217-5", "BGR-2026-004217-5"),  # leading zeros dropped
        ("laporan saya BGR-2026-R482193-7 kok belum ada kabar", "BGR-2026-R482193-7"),
        ("bgr 2026 r 482193 7", "BGR-2026-R482193-7"),
        ("bgr2026r4821937", "BGR-2026-R482193-7"),
        ("tiket BGR-2026-004217-5.", "BGR-2026-004217-5"),
        ("(BGR-2026-004217-5)", "BGR-2026-004217-5"),
    ],
)
def test_find_ticket_as_typed(text: str, canonical: str) -> None:
    ref = find_ticket(text, "BGR")
    assert ref is not None
    assert ref.canonical == canonical
    # The examples with -3 and R482193-5 carry a wrong check digit: found, and flagged.
    assert ref.valid is (check_digit(_digits(canonical)[:-1]) == int(canonical[-1]))


def test_find_ticket_flags_the_wrong_check_digit() -> None:
    assert find_ticket("STATUS BGR-2026-004217-3", "BGR") == TicketRef("BGR-2026-004217-3", False)
    assert find_ticket("STATUS BGR-2026-004217-5", "BGR") == TicketRef("BGR-2026-004217-5", True)


def test_find_ticket_returns_the_first() -> None:
    text = "Ini lanjutan BGR-2026-000001-{} dan BGR-2026-004217-5".format(check_digit("2026000001"))
    ref = find_ticket(text, "BGR")
    assert ref is not None and ref.canonical.startswith("BGR-2026-000001-")


def test_a_missing_check_digit_is_never_read_from_the_sequence() -> None:
    # Without a check digit, "004217" must not become case 000421 with check digit 7.
    ref = find_ticket("status BGR-2026-004217 dong", "BGR")
    assert ref == TicketRef("BGR-2026-004217", False)


@pytest.mark.parametrize(
    "text",
    [
        "BGR 2026 004217 30 hari gak ada kabar",  # "30" is not a check digit
        "BGR-2026-004217-35",
    ],
)
def test_trailing_digits_are_not_split_into_another_ticket(text: str) -> None:
    ref = find_ticket(text, "BGR")
    assert ref is None or not ref.canonical.startswith("BGR-2026-000421")


@pytest.mark.parametrize(
    "text",
    [
        "Hubungi saya di 0812-3456-7890 atau 0251-8321075",
        "Surat No. 2026/004217/3 tanggal 12-03-2026",
        "Jl. Raya Pajajaran No. 2026, RT 004 RW 217, Kode Pos 16143",
        "NIK 3271042004170003, KK 3271040101260005",
        "Transfer Rp 2.026.004.217 ke rekening 004217-3",
        "ABGR-2026-004217-5",  # the prefix inside another word
        "BGR-26-004217-5",  # a two-digit year
        "BGR-2026-42-5",  # too short a sequence
        "Plat nomor F 1234 BGR, tahun 2026",
        "BOGOR 2026 004217 5",
        "DPK-2026-004217-5",  # another city's prefix
    ],
)
def test_no_ticket_in_unrelated_numbers(text: str) -> None:
    assert find_ticket(text, "BGR") is None


def test_parse_ticket_wants_the_whole_text() -> None:
    assert parse_ticket("  bgr-2026-004217-5 ", "BGR") == TicketRef("BGR-2026-004217-5", True)
    assert parse_ticket("BGR-2026-004217-5 tolong", "BGR") is None
    assert parse_ticket("x BGR-2026-004217-5", "BGR") is None
    assert parse_ticket("", "BGR") is None


def test_other_prefix() -> None:
    ticket = format_ticket("DPK", 2026, 4217)
    assert find_ticket(ticket.lower(), "DPK") == TicketRef(ticket, True)
    assert find_ticket(ticket, "dpk") == TicketRef(ticket, True)
