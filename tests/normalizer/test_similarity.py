"""Incident linking, repeats and bursts (normalizer/similarity.py), and the evaluation set."""

from __future__ import annotations

import importlib.util
import math
import random
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from zoneinfo import ZoneInfo

import pytest

from channels.base import Location
from config.data import load_taxonomy
from normalizer import Rules, normalize
from normalizer.similarity import (
    EARTH_RADIUS_M,
    IncidentCandidate,
    IncidentIndex,
    LinkRules,
    analyse,
    assess,
    best_incident,
    choose_incident,
    contradicts,
    distance_m,
    incident_verdicts,
    is_repeat,
    looks_like_new_complaint,
    merge_verdicts,
    same_incident,
    similarity,
)
from tests.normalizer.corpus import message

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
# Tugu Kujang, Jl. Pajajaran
LAT, LON = -6.6010, 106.8058
METRES_PER_DEGREE = EARTH_RADIUS_M * math.pi / 180


def north(metres: float) -> tuple[float, float]:
    return LAT + metres / METRES_PER_DEGREE, LON


def report(text: str, topic: str = "infrastruktur", **values: object) -> IncidentCandidate:
    data: dict[str, object] = {"topic": topic, "text": text, "received_at": T0}
    data.update(values)
    return IncidentCandidate.from_values(data)


# --------------------------------------------------------------------------- distance


def test_distance_of_one_degree_along_the_equator_and_a_meridian() -> None:
    assert distance_m(0, 0, 0, 1) == pytest.approx(111_195.08, abs=0.5)
    assert distance_m(0, 0, 1, 0) == pytest.approx(111_195.08, abs=0.5)


def test_distance_of_a_quarter_and_half_of_the_earth() -> None:
    assert distance_m(0, 0, 90, 0) == pytest.approx(EARTH_RADIUS_M * math.pi / 2, rel=1e-9)
    assert distance_m(0, 0, 0, 180) == pytest.approx(EARTH_RADIUS_M * math.pi, rel=1e-9)
    assert distance_m(-6.6, 106.8, 6.6, -73.2) == pytest.approx(EARTH_RADIUS_M * math.pi)


def test_distance_in_bogor_is_symmetric_and_zero_for_one_point() -> None:
    # Tugu Kujang to Bogor station, about 1.3 km on the map
    there = (-6.5953, 106.7903)
    d = distance_m(LAT, LON, *there)
    assert d == pytest.approx(distance_m(*there, LAT, LON))
    assert 1_700 < d < 1_900
    assert distance_m(LAT, LON, LAT, LON) == 0.0
    # Longitude shrinks with the cosine of the latitude
    assert distance_m(60, 0, 60, 1) == pytest.approx(111_195.08 / 2, rel=2e-3)


# --------------------------------------------------------------------------- same incident

POTHOLE = "Jl. Pajajaran depan Tugu Kujang ada lubang besar, motor jatuh"


def test_candidate_from_a_complaint_and_from_stored_values() -> None:
    complaint = normalize(
        message(
            "Lampu PJU di Gang Mawar mati",
            location=Location(lat=-6.5835, lon=106.8045, address="Gang Mawar, Tegallega"),
        ),
        Rules(taxonomy=load_taxonomy()),
    )
    candidate = IncidentCandidate.from_complaint(complaint)
    assert candidate.topic == "penerangan"
    assert candidate.located
    assert candidate.address == "Gang Mawar, Tegallega"
    stored = IncidentCandidate.from_values(
        {
            "topic": "penerangan",
            "text": "Lampu PJU di Gang Mawar mati",
            "lat": "-6.5835",
            "lon": -6.5835 + 113.388,
            "address": "Gang Mawar, Tegallega",
            "received_at": complaint.received_at.isoformat(),
        }
    )
    assert stored.received_at == complaint.received_at
    assert same_incident(candidate, stored)
    assert not IncidentCandidate.from_values({"topic": "x", "text": "y"}).located


def test_different_topics_are_never_the_same_incident() -> None:
    a = report(POTHOLE, "infrastruktur", lat=LAT, lon=LON)
    b = report(POTHOLE, "drainase", lat=LAT, lon=LON)
    assert not same_incident(a, b)
    assert similarity(a, b) == 0.0
    assert contradicts(a, b)


@pytest.mark.parametrize(("metres", "linked"), [(0, True), (200, True), (249, True),
                                                (251, False), (600, False)])
def test_located_reports_must_be_within_250_metres(metres: float, linked: bool) -> None:
    a = report(POTHOLE, lat=LAT, lon=LON)
    lat, lon = north(metres)
    b = report("lubang di jln pajajaran dpn tugu kujang makin lebar", lat=lat, lon=lon)
    assert same_incident(a, b) is linked
    assert same_incident(b, a) is linked


def test_the_distance_is_configurable() -> None:
    a = report(POTHOLE, lat=LAT, lon=LON)
    b = report("lubang di jln pajajaran dpn tugu kujang", lat=north(400)[0], lon=LON)
    assert not same_incident(a, b)
    assert same_incident(a, b, LinkRules(max_distance_m=500))


@pytest.mark.parametrize(("days", "linked"), [(0, True), (6.9, True), (7.1, False), (30, False)])
def test_reports_must_fall_within_the_time_window(days: float, linked: bool) -> None:
    a = report(POTHOLE)
    b = report("lubang di jln pajajaran dpn tugu kujang", received_at=T0 + timedelta(days=days))
    assert same_incident(a, b) is linked
    assert same_incident(b, a) is linked


def test_the_time_window_is_configurable() -> None:
    a = report(POTHOLE)
    b = report("lubang di jln pajajaran dpn tugu kujang", received_at=T0 + timedelta(days=10))
    assert not same_incident(a, b)
    assert same_incident(a, b, replace(LinkRules(), window_days=14))


LINKED = [
    # different people, different words, one place named differently
    (
        "infrastruktur",
        "Jl. Pajajaran depan Tugu Kujang ada lubang besar di lajur kiri, mohon ditambal",
        "Pothole on Pajajaran road right by the Kujang monument, my scooter almost fell",
    ),
    (
        "drainase",
        "Jl. Sudirman banjir setinggi lutut depan Sekolah Regina Pacis, selokan meluap",
        "bnjir lg di sudirman dpn regina pacis",
    ),
    (
        "penerangan",
        "Lampu PJU di Gang Mawar RT 03 RW 05 Tegallega mati sudah seminggu",
        "lampu jln gang mawar rt3/rw5 masih mati, gelap bgt",
    ),
    (
        "pungli",
        "Petugas Kelurahan Baranangsiang minta uang 50 ribu untuk surat pengantar KTP",
        "At Baranangsiang village office the clerk asked me to pay 50k for the ID card letter",
    ),
    (
        "sampah",
        "Sampah di TPS Jl. Merdeka sudah seminggu tidak diangkut, bau busuk",
        "tps merdeka numpuk sampahnya pak, bau bgt",
    ),
    (
        "pelayanan_publik",
        "Antrean di Disdukcapil Kota Bogor dari subuh, nomor antrian dibatasi 50",
        "pelayanan dukcapil lambat, kuota antrean cuma 50 orang sehari",
    ),
]

UNLINKED = [
    # same street, another problem
    (
        "infrastruktur",
        "Jl. Pajajaran depan Tugu Kujang ada lubang besar di lajur kiri",
        "Trotoar di Jl. Pajajaran depan Tugu Kujang ambles, paving lepas",
    ),
    # same problem, another street
    (
        "infrastruktur",
        "Jalan berlubang di Jl. Pajajaran depan Tugu Kujang",
        "Jalan berlubang di Jl. Sudirman depan Regina Pacis",
    ),
    # same street, other spots along it
    (
        "infrastruktur",
        "Jalan berlubang di Jl. Pajajaran depan Tugu Kujang",
        "Jalan berlubang di Jl. Pajajaran dekat Warung Jambu",
    ),
    # same gang name, another kelurahan
    (
        "penerangan",
        "Lampu PJU di Gang Mawar Kelurahan Tegallega mati",
        "Lampu jalan di Gang Mawar Kelurahan Cibogor mati",
    ),
    # same office, another complaint: the amounts and the documents differ
    (
        "pungli",
        "Petugas Kelurahan Baranangsiang minta uang 50 ribu untuk surat pengantar KTP",
        "Urus surat domisili usaha di Kelurahan Baranangsiang diminta bayar 200 ribu",
    ),
    (
        "pelayanan_publik",
        "Antrean di Disdukcapil dari subuh, nomor antrian dibatasi 50",
        "KTP elektronik saya 3 bulan belum jadi di Disdukcapil, blanko habis",
    ),
    # nothing says where: "lampu mati" could be anywhere in the city
    ("penerangan", "lampu jalan mati", "Lampu PJU di Gang Mawar mati"),
]


@pytest.mark.parametrize(("topic", "a", "b"), LINKED)
def test_realistic_reports_of_one_incident_are_linked(topic: str, a: str, b: str) -> None:
    first, second = report(a, topic), report(b, topic)
    assert same_incident(first, second), (analyse(a), analyse(b))
    assert same_incident(second, first)
    assert 0 < similarity(first, second) <= 1


@pytest.mark.parametrize(("topic", "a", "b"), UNLINKED)
def test_realistic_near_misses_are_not_linked(topic: str, a: str, b: str) -> None:
    first, second = report(a, topic), report(b, topic)
    assert not same_incident(first, second), (analyse(a), analyse(b))
    assert not same_incident(second, first)


def test_coordinates_settle_the_place_but_the_problem_must_agree() -> None:
    lubang = report("lubang besar di jalan, motor jatuh", lat=LAT, lon=LON)
    also_lubang = report("Pothole here, please fix", lat=north(80)[0], lon=LON)
    trotoar = report("trotoar ambles, paving lepas", lat=north(80)[0], lon=LON)
    assert same_incident(lubang, also_lubang)
    assert not same_incident(lubang, trotoar)


def test_an_address_names_the_street_when_the_text_does_not() -> None:
    a = report("lubang besar di depan toko saya", address="Jl. Raya Pajajaran No.12, Kota Bogor")
    b = report("Jl. Pajajaran berlubang, bahaya")
    c = report("Jl. Sudirman berlubang, bahaya")
    assert same_incident(a, b)
    assert not same_incident(a, c)


def test_analysis_folds_abbreviations_and_finds_places() -> None:
    result = analyse("Jln. Pajajaran dpn Tugu Kujang bolong, gg. Mawar RT 03/RW 05 jg ga nyala")
    kinds = {(p.kind, p.name) for p in result.places}
    assert ("street", ("pajajaran",)) in kinds
    assert ("gang", ("mawar",)) in kinds
    assert ("rt", ("3",)) in kinds and ("rw", ("5",)) in kinds
    assert "lubang" in result.problem and "mati" in result.problem
    assert not {"dpn", "depan", "jg", "ga", "tidak", "pajajaran"} & set(result.problem)


# --------------------------------------------------------------------------- one reporter


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Lampu PJU di Gang Mawar mati seminggu", "lampu pju gg mawar masih mati, sdh seminggu"),
        ("Jalan berlubang di Jl. Pajajaran", "jalan bolong di jln pajajaran, tolong diperbaiki"),
        ("banjir di jl sudirman", "BANJIR DI JL SUDIRMAN!!"),
        ("The streetlight in Gang Mawar is out", "Lampu jalan gang mawar mati"),
    ],
)
def test_the_same_complaint_again_is_a_repeat(a: str, b: str) -> None:
    assert is_repeat(a, b)
    assert is_repeat(b, a)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Lampu jalan di Gang Mawar mati", "Lampu jalan di Gang Melati mati"),
        ("Jalan berlubang di Jl. Pajajaran", "Trotoar rusak di Jl. Pajajaran"),
        ("Jalan berlubang di Jl. Pajajaran", "Sampah menumpuk di Jl. Pajajaran"),
        ("Pungli di kelurahan Baranangsiang 50rb", "pungli kel baranangsiang minta 200rb"),
        ("", ""),
    ],
)
def test_another_complaint_is_no_repeat(a: str, b: str) -> None:
    assert not is_repeat(a, b)


@pytest.mark.parametrize(
    ("previous", "new", "topic_new"),
    [
        ("jalan berlubang", "di Jl. Pajajaran depan Tugu Kujang", "lainnya"),
        ("jalan berlubang\ndi Jl. Pajajaran depan Tugu Kujang", "", "lainnya"),  # the photo
        ("jalan berlubang di Jl. Pajajaran", "ini fotonya pak", "lainnya"),
        ("jalan berlubang di Jl. Pajajaran", "sudah 3 hari belum diperbaiki", "lainnya"),
        ("jalan berlubang di Jl. Pajajaran", "lubangnya makin besar, motor jatuh", "infrastruktur"),
        ("jalan berlubang di Jl. Pajajaran", "terima kasih", "lainnya"),
    ],
)
def test_a_burst_fragment_belongs_to_the_open_case(previous: str, new: str, topic_new: str) -> None:
    assert not looks_like_new_complaint(previous, new, "infrastruktur", topic_new)


def test_the_complaint_after_a_greeting_belongs_to_the_case() -> None:
    assert not looks_like_new_complaint(
        "Selamat pagi admin, mau lapor", "jalan berlubang di Jl. Pajajaran", "lainnya",
        "infrastruktur",
    )


@pytest.mark.parametrize(
    ("new", "topic_new"),
    [
        ("Satu lagi pak, sampah di TPS Jl. Merdeka sudah seminggu tidak diangkut", "sampah"),
        ("lampu jalan di gang mawar juga mati sudah seminggu", "penerangan"),
        ("Trotoar di Jl. Sudirman depan Regina Pacis juga ambles, paving lepas", "infrastruktur"),
    ],
)
def test_a_clearly_different_complaint_is_new(new: str, topic_new: str) -> None:
    previous = "jalan berlubang di Jl. Pajajaran depan Tugu Kujang"
    assert looks_like_new_complaint(previous, new, "infrastruktur", topic_new)


# --------------------------------------------------------------------------- evaluation


def _evaluation_module() -> ModuleType:
    path = ROOT / "benchmarks" / "incidents" / "evaluate.py"
    spec = importlib.util.spec_from_file_location("incident_evaluation", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


def test_the_evaluation_set_is_large_and_varied() -> None:
    evaluation = _evaluation_module()
    items = evaluation.load()
    incidents: dict[str, int] = {}
    for item in items:
        incidents[item.incident] = incidents.get(item.incident, 0) + 1
    assert len(items) >= 180
    assert sum(1 for n in incidents.values() if n >= 2) >= 40
    assert sum(1 for n in incidents.values() if n == 1) >= 40
    assert max(incidents.values()) >= 8
    assert len({i.candidate.topic for i in items}) >= 10
    assert sum(i.candidate.located for i in items) >= 60
    assert sum(not i.candidate.located for i in items) >= 60


def test_linking_precision_and_recall_on_the_evaluation_set() -> None:
    result = _evaluation_module().evaluate()
    assert result.precision >= 0.95, result.wrong_same
    assert result.recall >= 0.85, len(result.missed)


def test_the_one_pass_assessment_agrees_with_each_question_on_every_pair() -> None:
    """The store links with `assess` (one comparison per pair, cheapest refusals first);
    it must say exactly what `contradicts`, `same_incident` and `similarity` say, on every
    pair of the evaluation set and of the held-out set (about 62,000 ordered pairs)."""
    evaluation = _evaluation_module()
    items = evaluation.load() + evaluation.load(evaluation.HOLDOUT)
    linked = 0
    for a in items:
        for b in items:
            if a is b:
                continue
            verdict = assess(a.candidate, b.candidate)
            assert verdict.contradicts == contradicts(a.candidate, b.candidate), (a.id, b.id)
            same = same_incident(a.candidate, b.candidate)
            assert verdict.same_incident == same, (a.id, b.id)
            if same:
                assert verdict.score == similarity(a.candidate, b.candidate), (a.id, b.id)
                linked += 1
    assert linked >= 400  # the check compared real matches, not only refusals


def test_a_stored_time_without_a_zone_is_taken_as_utc() -> None:
    aware = report(POTHOLE)
    naive = report(
        "lubang di jln pajajaran dpn tugu kujang", received_at=datetime(2026, 3, 3, 8, 30)
    )
    assert same_incident(aware, naive)


WIB = timezone(timedelta(hours=7))
WEEK = timedelta(days=7)
MICROSECOND = timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("received_at", "linked"),
    [
        (T0 + WEEK, True),
        (T0 - WEEK, True),
        (T0 + WEEK + MICROSECOND, False),
        (T0 - WEEK - MICROSECOND, False),
        ((T0 + WEEK).astimezone(WIB), True),
        ((T0 + WEEK + MICROSECOND).astimezone(WIB), False),
        ((T0 + WEEK).replace(tzinfo=None), True),
        ((T0 + WEEK + MICROSECOND).replace(tzinfo=None), False),
        (None, True),
    ],
)
def test_choose_incident_reads_the_window_to_the_microsecond_as_assess_does(
    received_at: datetime | None, linked: bool
) -> None:
    """choose_incident works out each report's time once; at the window's edge, in another
    zone or without one, it says what `assess` (and `same_incident`) says."""
    new = report(POTHOLE)
    old = report("lubang di jln pajajaran dpn tugu kujang", received_at=received_at)
    assert same_incident(new, old) is linked
    assert assess(new, old).same_incident is linked
    chosen = choose_incident(new, {7: [old]})
    assert (chosen is not None) is linked
    if chosen is not None:
        assert chosen == (assess(new, old).score, 7)


def test_choose_incident_subtracts_times_of_one_zone_with_summer_time_as_python_does() -> None:
    """Two times of one zone with summer time subtract as wall-clock times (Python's
    datetime); times of different zones, as instants. The clocks went forward on 29 March
    2026 in Berlin: 7 days 30 minutes on the clock are 6 days 23 hours 30 minutes."""
    berlin = ZoneInfo("Europe/Berlin")
    after = datetime(2026, 3, 29, 12, 0, tzinfo=berlin)
    before = datetime(2026, 3, 22, 11, 30, tzinfo=berlin)
    new = report(POTHOLE, received_at=after)
    for received_at, linked in [
        (before, False),
        (before.astimezone(UTC), True),
        (before.astimezone(WIB), True),
    ]:
        old = report("lubang di jln pajajaran dpn tugu kujang", received_at=received_at)
        assert assess(new, old).same_incident is linked
        assert (choose_incident(new, {1: [old]}) is not None) is linked
        # and the same report again, its time already worked out
        assert (choose_incident(new, {1: [old], 2: [old]}) is not None) is linked


def test_choose_incident_gives_reports_alike_one_verdict_but_not_across_the_window() -> None:
    """Reports of one wording at one place share a verdict; one of them outside the window
    does not take the verdict of those inside it, and a contradicting report still refuses
    its incident."""
    new = report(POTHOLE, lat=LAT, lon=LON)
    inside = report("lubang di jln pajajaran dpn tugu kujang", lat=LAT, lon=LON)
    outside = replace(inside, received_at=T0 + WEEK + MICROSECOND)
    elsewhere = report("lubang di Jl. Sudirman", lat=LAT, lon=LON)
    score = assess(new, inside).score
    assert choose_incident(new, {1: [outside, inside]}) == (score, 1)
    assert choose_incident(new, {1: [outside], 2: [inside, outside]}) == (score, 2)
    assert choose_incident(new, {1: [inside, elsewhere], 2: [outside]}) is None


def test_verdicts_on_an_incidents_reports_add_up_to_the_verdict_on_all_of_them() -> None:
    """A worker judges an incident's reports it read ahead, then those added since, and adds
    the two verdicts up: one contradicting report refuses the incident whichever set it is
    in, and the best score of the others stands, as if all were judged at once."""
    at = {"lat": -6.5901, "lon": 106.7801}
    unplaced = report("Banjir setinggi lutut di Jl. Sempur Kaler, got meluap", "banjir")
    near = report("Tolong, Jl. Sempur Kaler banjir, got mampet dan meluap", "banjir", **at)
    elsewhere = report("Banjir di Jl. Sempur Kaler, got meluap", "banjir", lat=-6.60, lon=106.79)
    new = report("Jl. Sempur Kaler banjir lagi, got meluap", "banjir", **at)
    reports = {1: [unplaced, near], 2: [elsewhere], 3: [near, unplaced]}
    everything = incident_verdicts(new, reports)
    assert everything[1] is not None and everything[2] is None  # 2 lies 1.4 km away
    for split in range(3):
        ahead = {key: found[:split] for key, found in reports.items()}
        since = {key: found[split:] for key, found in reports.items()}
        merged = merge_verdicts(incident_verdicts(new, ahead), incident_verdicts(new, since))
        assert merged == everything
        assert best_incident(merged) == choose_incident(new, reports) == (everything[1], 1)
    refused = {1: [unplaced], 2: [elsewhere]}
    assert merge_verdicts(incident_verdicts(new, refused), {1: None}) == {1: None, 2: None}
    assert best_incident({1: None, 2: None}) is None


def _by_incident(
    newest_first: list[tuple[int, IncidentCandidate]],
) -> dict[int, list[IncidentCandidate]]:
    grouped: dict[int, list[IncidentCandidate]] = {}
    for incident, found in newest_first:
        grouped.setdefault(incident, []).append(found)
    return grouped


def test_an_index_of_a_pool_gives_the_verdicts_of_its_reports_one_by_one() -> None:
    """A worker keeps its pool of a topic's reports as an index, grouped by incident and
    wording, and adds and drops reports as cases come and go: for every new report, the
    index gives what judging the pool's reports one by one gives, in the same order (the
    first of equal scores wins), through reports in and out of the window, without a time,
    placed and unplaced, and a batch's additions taken back out."""
    rnd = random.Random(8)
    wordings = [
        "Banjir setinggi lutut di Jl. Sempur Kaler, got meluap",
        "Tolong, Jl. Sempur Kaler banjir, got mampet dan meluap",
        "Banjir di Jl. Sempur Kaler, got meluap",
        "Jl. Sempur Kaler banjir lagi, got meluap",
        "Banjir di Jl. Pajajaran depan Tugu Kujang",
        "got mampet, air masuk rumah warga",
        "Banjir lagi di gang Mawar, selokan tidak mengalir",
    ]
    places = [{}, {"lat": -6.5901, "lon": 106.7801}, {"lat": -6.60, "lon": 106.79}]

    def made(step: int) -> IncidentCandidate:
        values: dict[str, object] = {"received_at": T0 + timedelta(days=step * 0.35)}
        if rnd.random() < 0.1:
            values["received_at"] = None
        values.update(rnd.choice(places))
        return report(rnd.choice(wordings), "banjir", **values)

    pool: list[tuple[int, IncidentCandidate]] = [(rnd.randrange(6), made(i)) for i in range(30)]
    pool.reverse()  # newest first
    index = IncidentIndex(pool)
    compared = 0
    for step in range(30, 90):
        new = made(step)
        want = incident_verdicts(new, _by_incident(pool))
        assert list(index.verdicts(new).items()) == list(want.items())
        compared += len(want)
        # The new report joins the pool, and the oldest leaves it past 30 reports.
        incident = rnd.randrange(8)
        before = index.add_newest(incident, new)
        pool.insert(0, (incident, new))
        gone = pool.pop() if len(pool) > 30 else None
        if gone is not None:
            index.drop(*gone)
        if step % 7 == 0:  # a batch's addition taken back out, as a worker does
            if gone is not None:
                index.add_oldest(*gone)
                pool.append(gone)
            index.drop(incident, new, before)
            pool.pop(0)
    assert compared > 100
    new = made(90)
    want = incident_verdicts(new, _by_incident(pool))
    assert list(index.verdicts(new).items()) == list(want.items())


def test_verdicts_kept_between_complaints_follow_the_rules_and_the_place() -> None:
    """A worker keeps the verdicts on pairs of wordings from one complaint to the next (a
    flood repeats itself): the same pair judged under other rules, or the same wording
    from another place, is judged again, not answered from what was kept."""
    old = report(POTHOLE, lat=LAT, lon=LON)
    lat, lon = north(200)
    new = report(POTHOLE, lat=lat, lon=lon)
    near, strict = LinkRules(), LinkRules(max_distance_m=150)
    for _ in range(2):
        assert choose_incident(new, {1: [old]}, near) is not None
        assert choose_incident(new, {1: [old]}, strict) is None
    lat, lon = north(400)
    further = report(POTHOLE, lat=lat, lon=lon)
    assert choose_incident(further, {1: [old]}, near) is None
    assert choose_incident(new, {1: [old]}, near) is not None
