"""Linking complaints about the same thing: incidents, repeats and bursts. Pure functions.

Three questions, one analysis of the text:

- `same_incident`: do two complaints from different reporters describe the same problem at
  the same place (same topic, similar content, close together, within a few days)?
- `is_repeat`: is one reporter sending the same complaint again?
- `looks_like_new_complaint`: within a burst from one reporter, does a message start a new
  complaint, or does it add to the open one ("di Jl. Pajajaran depan Tugu Kujang", a photo)?

A text is read twice. Its *places* (streets, gangs, RT/RW, kelurahan, kecamatan and
landmarks such as "depan Tugu Kujang"; a geocoder's address too) say where; two reports that
name different streets are different incidents however alike their wording. Its *problem
words* (content words after case and accent folding, abbreviation expansion, stop-word
removal, light stemming and a small bilingual lexicon: "bolong", "berlubang" and "pothole"
are one word) say what; they are compared with rapidfuzz so that typos still match.

Two reports of one topic within `LinkRules.window_days` are one incident when:

- both have coordinates: they are at most `max_distance_m` apart, no street, gang,
  kelurahan or RW they name differs, and `problem_overlap` reaches `overlap_threshold`;
- otherwise, both name a place and the places agree (and `problem_overlap` reaches the
  threshold), or neither says where at all and `text_similarity` is nearly 1. One saying
  where and the other not ("lampu jalan mati") is not enough: it could be anywhere.

`similarity` ranks the incidents a complaint could join; `contradicts` says when one report
of an incident rules a complaint out whatever the others say.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

from rapidfuzz import fuzz

if TYPE_CHECKING:
    from normalizer.complaint import Complaint

__all__ = [
    "DEFAULT_RULES",
    "Assessment",
    "IncidentCandidate",
    "IncidentIndex",
    "LinkRules",
    "Place",
    "PlaceEvidence",
    "TextAnalysis",
    "analyse",
    "assess",
    "best_incident",
    "choose_incident",
    "contradicts",
    "distance_m",
    "incident_verdicts",
    "is_repeat",
    "looks_like_new_complaint",
    "merge_verdicts",
    "place_evidence",
    "problem_overlap",
    "same_incident",
    "similarity",
    "text_similarity",
]

_T = TypeVar("_T")

EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG)


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine on the mean Earth radius)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlambda = math.radians(lon2 - lon1)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class LinkRules:
    """What counts as the same incident. Which test the problem words must pass depends on
    what corroborates the place."""

    max_distance_m: float = 250.0  # FixMyStreet's radius for "nearby" reports
    window_days: float = 7.0
    # Where the place is settled (both located within max_distance_m, or a street, gang,
    # landmark or kelurahan named by both and none contradicting): the share of problem
    # words in common (`problem_overlap`) must reach this.
    overlap_threshold: float = 0.5
    # Neither says where (no coordinates, no place named): the wording must be very close.
    text_threshold_unplaced: float = 0.85
    # The same reporter again: nearly the same complaint.
    repeat_threshold: float = 0.8


DEFAULT_RULES = LinkRules()


# --------------------------------------------------------------------------- candidates


@dataclass(frozen=True)
class IncidentCandidate:
    """What the linking needs to know of a complaint or of a stored case's report."""

    topic: str
    text: str
    lat: float | None = None
    lon: float | None = None
    address: str | None = None
    received_at: datetime | None = None

    @property
    def located(self) -> bool:
        return self.lat is not None and self.lon is not None

    @cached_property
    def _link(self) -> _Linking:
        """What linking reads of this report, worked out once: the fields never change, and
        one stored report is compared with every complaint that comes after it."""
        return _Linking(self)

    def __getstate__(self) -> dict[str, Any]:
        # `_link` belongs to this process (its caches' objects): not pickled nor copied.
        return {name: value for name, value in self.__dict__.items() if name != "_link"}

    @classmethod
    def from_complaint(cls, complaint: Complaint) -> IncidentCandidate:
        location = complaint.location
        return cls(
            topic=complaint.topic,
            text=_join(complaint.subject, complaint.text),
            lat=None if location is None else location.lat,
            lon=None if location is None else location.lon,
            address=None if location is None else _join(location.address, location.label),
            received_at=complaint.received_at,
        )

    @classmethod
    def from_values(cls, data: Mapping[str, Any]) -> IncidentCandidate:
        """From plain stored values: topic, text, lat, lon, address, received_at (a datetime
        or an ISO 8601 string). Missing optional values are None."""
        received = data.get("received_at")
        if isinstance(received, str):
            received = datetime.fromisoformat(received)
        lat, lon = data.get("lat"), data.get("lon")
        return cls(
            topic=str(data["topic"]),
            text=str(data.get("text") or ""),
            lat=None if lat is None else float(lat),
            lon=None if lon is None else float(lon),
            address=data.get("address") or None,
            received_at=received,
        )


def _join(*parts: str | None) -> str:
    return "\n".join(p for p in parts if p)


# --------------------------------------------------------------------------- vocabulary

# Abbreviations and spelling variants, one token to one or more tokens.
_ABBREVIATIONS: dict[str, str] = {
    "jl": "jalan",
    "jln": "jalan",
    "jlan": "jalan",
    "jalan2": "jalan",
    "gg": "gang",
    "yg": "yang",
    "dgn": "dengan",
    "dg": "dengan",
    "utk": "untuk",
    "tdk": "tidak",
    "gak": "tidak",
    "ga": "tidak",
    "gk": "tidak",
    "nggak": "tidak",
    "ngga": "tidak",
    "enggak": "tidak",
    "engga": "tidak",
    "g": "tidak",
    "tak": "tidak",
    "kagak": "tidak",
    "blm": "belum",
    "sdh": "sudah",
    "udh": "sudah",
    "udah": "sudah",
    "dah": "sudah",
    "krn": "karena",
    "karna": "karena",
    "tp": "tapi",
    "jg": "juga",
    "lg": "lagi",
    "bgt": "banget",
    "bngt": "banget",
    "skrg": "sekarang",
    "kmrn": "kemarin",
    "kmarin": "kemarin",
    "td": "tadi",
    "dr": "dari",
    "pd": "pada",
    "sm": "sama",
    "dpn": "depan",
    "dkt": "dekat",
    "deket": "dekat",
    "dket": "dekat",
    "sblh": "sebelah",
    "samping2": "samping",
    "blkg": "belakang",
    "sbrg": "seberang",
    "psr": "pasar",
    "perum": "perumahan",
    "komp": "komplek",
    "kompleks": "komplek",
    "kel": "kelurahan",
    "kec": "kecamatan",
    "kp": "kampung",
    "jbt": "jembatan",
    "phn": "pohon",
    "tlg": "tolong",
    "mhn": "mohon",
    "trims": "terima",
    "makasih": "terima",
    "tks": "terima",
    "hr": "hari",
    "mgg": "minggu",
    "bln": "bulan",
    "thn": "tahun",
    "org": "orang",
    "klo": "kalau",
    "kalo": "kalau",
    "dmn": "mana",
    "dimana": "mana",
    "sy": "saya",
    "aq": "saya",
    "gw": "saya",
    "gue": "saya",
    "rmh": "rumah",
    "bnjr": "banjir",
    "bnjir": "banjir",
    "lmp": "lampu",
    "sdn": "sd",
    "smpn": "smp",
    "sman": "sma",
    "smkn": "smk",
    "puskes": "puskesmas",
    "apotik": "apotek",
    "ortu": "orangtua",
    "pk": "pak",
    "bpk": "pak",
    "ibu2": "ibu",
    "tpt": "tembok",
    "st": "street",
    "rd": "road",
    "sektor": "sektor",
    "kab": "kabupaten",
}

# Phrases rewritten before anything else (folded words, space separated).
_PHRASES: tuple[tuple[str, str], ...] = (
    ("kota bogor", ""),
    ("in front of", "depan"),
    ("next to", "samping"),
    ("across from", "seberang"),
    ("tidak menyala", "mati"),
    ("tidak nyala", "mati"),
    ("tidak berfungsi", "mati"),
    ("not working", "mati"),
    ("not on", "mati"),
    ("tidak mengalir", "mati"),
    ("tidak ngalir", "mati"),
    ("no water", "air mati"),
    ("cut off", "mati"),
    ("been out", "mati"),
    ("are off", "mati"),
    ("is off", "mati"),
    ("been off", "mati"),
    ("turned off", "mati"),
    ("switched off", "mati"),
    ("are out", "mati"),
    ("is out", "mati"),
    ("went out", "mati"),
    ("lampu merah", "lampumerah"),
    ("lampu lalu lintas", "lampumerah"),
    ("traffic lights", "lampumerah"),
    ("traffic light", "lampumerah"),
    ("street lights", "lampu"),
    ("street light", "lampu"),
    ("street lamps", "lampu"),
    ("street lamp", "lampu"),
    ("lampu jalan", "lampu"),
    ("lampu penerangan jalan", "lampu"),
    ("penerangan jalan umum", "lampu"),
    ("u turn", "putarbalik"),
    ("putar balik", "putarbalik"),
    ("putaran balik", "putarbalik"),
    ("demam berdarah", "dbd"),
    ("juru parkir", "jukir"),
    ("tukang parkir", "jukir"),
    ("parking attendant", "jukir"),
    ("pedagang kaki lima", "pkl"),
    ("street vendors", "pkl"),
    ("street vendor", "pkl"),
    ("satpol pp", "satpolpp"),
    ("municipal police", "satpolpp"),
    ("e ktp", "ktp"),
    ("id card", "ktp"),
    ("identity card", "ktp"),
    ("kartu tanda penduduk", "ktp"),
    ("kartu keluarga", "kk"),
    ("family card", "kk"),
    ("surat pengantar", "pengantar"),
    ("cover letter", "pengantar"),
    ("bantuan sosial", "bansos"),
    ("social aid", "bansos"),
    ("emergency room", "igd"),
    ("rumah sakit", "rs"),
    ("turned away", "tolak"),
    ("no beds", "penuh"),
    ("pom bensin", "spbu"),
    ("gas station", "spbu"),
    ("petrol station", "spbu"),
    ("retaining wall", "tembok"),
    ("tembok penahan tanah", "tembok"),
    ("waste water", "limbah"),
    ("air limbah", "limbah"),
    ("bongkar muat", "bongkar"),
    ("menunggu penumpang", "ngetem"),
    ("wait for passengers", "ngetem"),
    ("waiting for passengers", "ngetem"),
    ("mark up", "markup"),
    ("uji kir", "kir"),
    ("vehicle inspection", "kir"),
    ("pungutan liar", "pungli"),
    ("uang pelicin", "pungli"),
    ("minta uang", "bayar"),
    ("dimintai uang", "bayar"),
    ("diminta uang", "bayar"),
    ("asked for money", "bayar"),
    ("demanded money", "bayar"),
    ("gorong gorong", "selokan"),
    ("civil registry", "disdukcapil"),
    ("health centre", "puskesmas"),
    ("health center", "puskesmas"),
    ("community health center", "puskesmas"),
    ("village office", "kelurahan"),
    ("toll road", "tol"),
    ("air base", "lanud"),
    ("selamat pagi", ""),
    ("selamat siang", ""),
    ("selamat sore", ""),
    ("selamat malam", ""),
    ("terima kasih", ""),
    ("good morning", ""),
    ("good afternoon", ""),
    ("good evening", ""),
    ("thank you", ""),
)

# Concept lexicon: every variant (Indonesian, informal, English) → one canonical word.
_CONCEPTS: dict[str, tuple[str, ...]] = {
    "lubang": (
        "lubang",
        "berlubang",
        "bolong",
        "bolongan",
        "lobang",
        "pothole",
        "potholes",
        "hole",
        "holes",
        "potholed",
    ),
    "aspal": ("aspal", "asphalt", "tarmac", "diaspal"),
    "rusak": ("rusak", "broken", "damaged", "hancur", "ancur", "jebol", "rusaknya"),
    "retak": ("retak", "retakan", "crack", "cracks", "cracked", "cracking", "keretakan"),
    "ambles": ("ambles", "amblas", "ambrol", "sunk", "sinking", "sank", "caving", "subsided"),
    "roboh": (
        "roboh",
        "ambruk",
        "runtuh",
        "tumbang",
        "collapse",
        "collapsed",
        "collapsing",
        "fallen",
        "toppled",
        "rubuh",
    ),
    "trotoar": ("trotoar", "sidewalk", "sidewalks", "pavement", "footpath"),
    "paving": ("paving", "conblock", "stones"),
    "jembatan": ("jembatan", "bridge", "bridges"),
    "tembok": ("tembok", "wall", "walls", "dinding"),
    "longsor": ("longsor", "landslide", "landslip"),
    "pohon": ("pohon", "tree", "trees"),
    "banjir": (
        "banjir",
        "kebanjiran",
        "flood",
        "floods",
        "flooded",
        "flooding",
        "genangan",
        "genang",
        "tergenang",
        "menggenang",
        "puddle",
        "puddles",
        "waterlogged",
        "kolam",
        "banjirnya",
    ),
    "selokan": (
        "selokan",
        "got",
        "saluran",
        "drainase",
        "drain",
        "drains",
        "drainage",
        "gutter",
        "gutters",
        "parit",
        "gorong",
        "sewer",
        "culvert",
        "goronggorong",
    ),
    "mampet": ("mampet", "tersumbat", "sumbat", "clogged", "blocked", "buntu", "mampat"),
    "meluap": (
        "meluap",
        "luapan",
        "meluber",
        "luber",
        "overflow",
        "overflows",
        "overflowing",
        "overflowed",
    ),
    "sampah": ("sampah", "garbage", "trash", "rubbish", "refuse", "litter", "sampahnya"),
    "tumpuk": (
        "tumpuk",
        "numpuk",
        "menumpuk",
        "tumpukan",
        "menggunung",
        "gunungan",
        "pile",
        "piles",
        "piled",
        "heap",
        "heaps",
        "dump",
    ),
    "angkut": (
        "angkut",
        "diangkut",
        "pengangkutan",
        "pengangkut",
        "collected",
        "collect",
        "collection",
        "picked",
        "pickup",
    ),
    "bau": (
        "bau",
        "busuk",
        "smell",
        "smells",
        "smelly",
        "stink",
        "stinks",
        "stinking",
        "odor",
        "odour",
        "menyengat",
        "baunya",
    ),
    "limbah": ("limbah", "sewage", "wastewater", "effluent", "waste"),
    "lampu": (
        "lampu",
        "pju",
        "lamp",
        "lamps",
        "light",
        "lights",
        "streetlight",
        "streetlights",
        "penerangan",
        "lampunya",
    ),
    "mati": ("mati", "padam", "dead", "kering", "matot"),
    "gelap": ("gelap", "dark", "darkness", "gulita"),
    "tiang": ("tiang", "pole", "poles"),
    "miring": ("miring", "leaning", "tilted", "tilting"),
    "lampumerah": ("lampumerah", "apill", "bangjo"),
    "macet": ("macet", "kemacetan", "jam", "jams", "congestion", "congested", "stuck", "gridlock"),
    "angkot": ("angkot", "angkots", "minibus", "minibuses", "mikrolet"),
    "parkir": ("parkir", "parking", "parked", "parkiran"),
    "liar": ("liar", "illegal", "ilegal", "illegally"),
    "pkl": ("pkl", "pedagang", "vendors", "vendor", "hawkers", "hawker"),
    "truk": ("truk", "truck", "trucks", "lorry", "lorries"),
    "bongkar": ("bongkar", "unloading", "unload", "unloads"),
    "pungli": (
        "pungli",
        "extortion",
        "extort",
        "extorted",
        "palak",
        "dipalak",
        "pemalakan",
        "bribe",
        "bribes",
    ),
    "bayar": (
        "bayar",
        "pay",
        "paid",
        "payment",
        "biaya",
        "fee",
        "fees",
        "charge",
        "charged",
        "bayaran",
        "uang",
        "money",
        "tarif",
        "setor",
        "setoran",
    ),
    "kuitansi": (
        "kuitansi",
        "kwitansi",
        "receipt",
        "receipts",
        "karcis",
        "ticket",
        "tickets",
        "struk",
    ),
    "pengantar": ("pengantar",),
    "antre": (
        "antre",
        "antri",
        "antrean",
        "antrian",
        "queue",
        "queues",
        "queuing",
        "queueing",
        "antrinya",
        "mengantre",
        "ngantri",
    ),
    "kuota": ("kuota", "quota", "dibatasi", "limited", "limit"),
    "blanko": ("blanko", "blangko", "blank"),
    "cetak": ("cetak", "dicetak", "printed", "print", "printing"),
    "lambat": ("lambat", "slow", "lelet"),
    "air": ("air", "water"),
    "pdam": ("pdam", "tirta"),
    "keruh": ("keruh", "murky", "cloudy", "muddy"),
    "dbd": ("dbd", "dengue"),
    "fogging": ("fogging", "pengasapan", "fumigation"),
    "nyamuk": ("nyamuk", "mosquito", "mosquitoes", "mosquitos", "jentik"),
    "vaksin": (
        "vaksin",
        "imunisasi",
        "vaccine",
        "vaccines",
        "vaccination",
        "immunisation",
        "immunization",
        "vaksinnya",
    ),
    "obat": ("obat", "medicine", "medicines", "drugs", "medication"),
    "tolak": ("tolak", "ditolak", "nolak", "menolak", "refused", "rejected"),
    "penuh": ("penuh", "full"),
    "pasien": ("pasien", "patient", "patients"),
    "atap": ("atap", "roof", "roofs", "plafon", "ceiling", "atapnya"),
    "bocor": ("bocor", "leak", "leaks", "leaking", "leaky"),
    "kelas": ("kelas", "classroom", "classrooms", "kelasnya"),
    "murid": ("murid", "siswa", "pupil", "pupils", "student", "students"),
    "seragam": ("seragam", "uniform", "uniforms"),
    "buku": ("buku", "lks", "book", "books", "textbooks"),
    "guru": ("guru", "teacher", "teachers"),
    "korupsi": ("korupsi", "corruption", "corrupt", "dikorupsi", "penggelapan", "embezzlement"),
    "markup": ("markup", "penggelembungan", "inflated"),
    "proyek": ("proyek", "project", "projects"),
    "potong": ("potong", "dipotong", "deducted", "cut", "sunat", "disunat"),
    "ancam": (
        "ancam",
        "mengancam",
        "diancam",
        "intimidasi",
        "diintimidasi",
        "threaten",
        "threatened",
        "threatening",
        "intimidate",
        "intimidated",
        "intimidating",
    ),
    "rampas": (
        "rampas",
        "merampas",
        "dirampas",
        "sita",
        "menyita",
        "disita",
        "took",
        "seized",
        "confiscated",
        "diambil",
    ),
    "dagangan": ("dagangan", "goods", "gerobak", "wares"),
    "tutup": ("tutup", "closed", "tertutup"),
    "kir": ("kir",),
    "hujan": ("hujan", "rain", "rains", "raining", "rainy"),
    "kabel": ("kabel", "cable", "cables", "wire", "wires"),
    "putarbalik": ("putarbalik", "uturn"),
    "ngetem": ("ngetem",),
    "kasar": (
        "kasar",
        "bentak",
        "membentak",
        "dibentak",
        "judes",
        "ketus",
        "rude",
        "impolite",
        "shouted",
        "yelled",
        "ramah",
        "unfriendly",
        "marah",
        "dimarahi",
    ),
    "pagar": ("pagar", "pembatas", "railing", "railings", "fence", "fences", "guardrail"),
    "patah": ("patah", "snapped", "bent", "bengkok"),
}


_LEXICON: dict[str, str] = {
    variant: canonical for canonical, variants in _CONCEPTS.items() for variant in variants
}


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that say nothing about which problem it is: function words, greetings, politeness,
# the boilerplate of complaints, time words, prepositions, the city's own name.
_STOPWORDS: frozenset[str] = _wordset(
    """
    yang dan di ke dari ini itu untuk dengan pada ada adalah akan sudah telah belum masih
    juga saja aja lagi sangat sekali banget tidak bukan karena jadi kalau kita kami saya aku
    kamu anda mereka dia nya pun lah kah dong deh sih nih tuh ya yah kok kan tapi tetapi
    atau oleh sebagai dalam bisa dapat harus mau ingin perlu para semua smua setiap tiap
    sejak selama hingga sampai sampe baru lama hari minggu bulan tahun jam pagi siang sore
    malam malem kemarin tadi sekarang terus trus sering selalu kadang sana sini situ
    tersebut mana apa siapa kapan bagaimana gimana kenapa mengapa agar supaya biar sehingga
    seperti kayak kaya hal bapak ibu pak bu admin min kak mas mbak bang selamat
    assalamualaikum alaikum wr wb salam halo hallo hai mohon tolong terima kasih thanks thx
    segera ditindaklanjuti tindak lanjut tindaklanjuti diperbaiki perbaiki perbaikan dicek
    cek ditangani tangani penanganan perhatian pemkot pemerintah dinas bogor warga
    masyarakat laporan lapor melaporkan aduan keluhan mengeluhkan kondisi kondisinya keadaan
    lebih kurang sekitar kira orang banyak beberapa hampir cukup amat benar betul memang
    emang sama tsb dll dsb pas gara soalnya katanya kata bilang mohonn pls please plz asap
    gan sob bro kakak mulu melulu doang cuma cuman hanya tolongin bantu dibantu makin
    semakin tambah bertambah jadinya jd sdg sedang mulai terjadi akibat menjadi membuat
    bikin buat dibuat kena terkena mengakibatkan tanpa padahal per ikut sendiri sendirian
    minta meminta diminta dimintai urus mengurus diurus kapan pernah sebelum sesudah setelah
    lalu nanti besok sudahlah terlalu agak sedikit segala seluruh sepanjang depan dekat
    samping sebelah seberang belakang arah menuju sekali2 tiap2 karna dtg datang dateng kok
    kenapa2 dgn krn apakah ialah yaitu yakni maupun serta bahwa jika bila apabila ketika
    saat waktu sewaktu kemana kemari mana2 satu dua tiga empat lima enam tujuh delapan
    sembilan sepuluh ribu juta hr x kali2 nomor no the a an is are was were be been being it
    its this that these those there here of in on at to for from with by and or but not no
    nor so very really just also now already yet still again always every time when who
    which what about around almost same since i we our my me us they them their you your he
    she his her has have had do does did can could would should will shall may might must
    someone anyone nobody everyone hi hello dear sir madam good morning afternoon evening
    thank thanks city report reporting complaint issue problem fix fixed repair repaired
    please kindly help days day weeks week months month hours hour yesterday today tonight
    evenings mornings nights night whole all some any more most one two three four five six
    seven eight nine ten after before outside inside into onto out up down over under below
    above right left as how if then than because while during near along across behind
    beside opposite next front get gets getting said says say tell told know let lets make
    makes made go goes going went come comes came see seen look looks like also only even
    much many lot lots bit really too extra part am pm via per there's it's don't doesn't
    isn't hasn't haven't wasn't aren't can't won't hasn haven isn wasn aren don doesn didn
    won t s ll ve d re m monday tuesday wednesday thursday friday saturday sunday senin
    selasa rabu kamis jumat sabtu minggu weekday weekend
    """
)

# Topic-generic words: they count, but little.
_WEAK: frozenset[str] = _wordset(
    """
    jalan rusak parah besar kecil bahaya berbahaya membahayakan warga rumah motor mobil
    kendaraan total tinggi lebar panjang gede lewat hujan air luar anak pengendara pejalan
    kaki dangerous big huge bad large road street danger people petugas staff officers oknum
    bayar banjir lampu sampah macet pungli korupsi pdam pasien jembatan
    """
)

# The words that say which topic a complaint is about, and little more: a text that has only
# these ("banjir di jalan sudirman") is compared on them.
_TOPIC_WORDS = _wordset(
    """
    banjir lampu sampah macet pungli korupsi pdam rusak bayar pasien jembatan
    """
)

# Place vocabulary.
_HONORIFICS = _wordset(
    """
    raya jend jenderal jendral kh dr ir h haji kapten kapt kolonel kol mayor letnan brigjen
    prof r re mh mr hj ki nyi kyai
    """
)
# Kinds of landmark, Indonesian (the name follows: "Pasar Anyar") and English (the name
# comes first: "Bogor station").
_LANDMARK_HEADS: dict[str, str] = {
    "pasar": "pasar",
    "stasiun": "stasiun",
    "terminal": "terminal",
    "tugu": "tugu",
    "masjid": "masjid",
    "mesjid": "masjid",
    "musholla": "masjid",
    "mushola": "masjid",
    "sekolah": "sekolah",
    "sd": "sd",
    "smp": "smp",
    "sma": "sma",
    "smk": "smk",
    "puskesmas": "puskesmas",
    "rsud": "rsud",
    "rs": "rs",
    "perumahan": "perumahan",
    "komplek": "komplek",
    "taman": "taman",
    "plaza": "plaza",
    "mall": "mall",
    "spbu": "spbu",
    "halte": "halte",
    "tps": "tps",
    "sungai": "sungai",
    "kali": "sungai",
    "pertigaan": "simpang",
    "perempatan": "simpang",
    "simpang": "simpang",
    "persimpangan": "simpang",
    "bundaran": "simpang",
    "lapangan": "lapangan",
    "kampus": "kampus",
    "gereja": "gereja",
    "vihara": "vihara",
    "klenteng": "vihara",
    "hotel": "hotel",
    "lanud": "lanud",
    "kolong": "kolong",
    "tol": "tol",
    "posyandu": "posyandu",
    "koperasi": "koperasi",
    "apotek": "apotek",
    "kantor": "kantor",
    "kampung": "kampung",
    "blok": "blok",
    "disdukcapil": "disdukcapil",
    "dukcapil": "disdukcapil",
    "dishub": "dishub",
    "igd": "rsud",
    "jembatan": "jembatan",
}
_EN_HEADS: dict[str, str] = {
    "market": "pasar",
    "station": "stasiun",
    "monument": "tugu",
    "mosque": "masjid",
    "school": "sekolah",
    "hospital": "rs",
    "housing": "perumahan",
    "estate": "perumahan",
    "park": "taman",
    "square": "plaza",
    "mall": "mall",
    "river": "sungai",
    "intersection": "simpang",
    "junction": "simpang",
    "roundabout": "simpang",
    "church": "gereja",
    "underpass": "kolong",
    "pharmacy": "apotek",
    "office": "kantor",
    "bridge": "jembatan",
}
# Heads that name the place *and* the thing complained about: they stay problem words.
_OBJECT_HEADS = frozenset({"jembatan", "tps", "sungai", "posyandu", "apotek", "koperasi"})
# One of a kind in the city: the head alone is the place ("di Disdukcapil").
_UNIQUE_HEADS = frozenset({"disdukcapil", "dishub", "rsud", "lanud", "tol"})
# Too common to place anything without a name ("di komplek saya", "dekat masjid").
_VAGUE_HEADS = frozenset(
    {
        "komplek",
        "perumahan",
        "kampung",
        "blok",
        "kantor",
        "sekolah",
        "masjid",
        "taman",
        "lapangan",
        "sungai",
        "simpang",
        "jembatan",
        "halte",
        "gereja",
        "kolong",
        "apotek",
        "koperasi",
        "posyandu",
        "rs",
        "hotel",
        "sd",
        "smp",
        "sma",
        "smk",
        "plaza",
        "mall",
    }
)
_COMPATIBLE_HEADS = {
    frozenset({"rs", "rsud"}),
    frozenset({"sekolah", "sd"}),
    frozenset({"sekolah", "smp"}),
    frozenset({"sekolah", "sma"}),
    frozenset({"sekolah", "smk"}),
    frozenset({"plaza", "mall"}),
}
_PREPOSITIONS = _wordset(
    """
    depan dekat samping sebelah seberang belakang sekitar arah near opposite beside behind
    along at on by di in sepanjang ujung dari
    """
)
# After these a name must be capitalised ("on Dewi Sartika", not "on the road"); after "di"
# an informal lower-case name is taken too ("di tajur", "di kedung badak").
_WEAK_PREPOSITIONS = frozenset({"di", "at", "on", "by", "along", "sepanjang", "in", "dari"})
_STREET_SUFFIXES = frozenset({"street", "road", "avenue"})
_EITHER_ORDER = frozenset({"plaza", "mall", "tol", "terminal", "hotel"})
# Words that never begin a name: where on or around a place, not which place.
_NOT_A_NAME = _wordset(
    """
    badan tengah pinggir pinggiran bawah atas luar dalam rumah tempat ujung sisi area
    kawasan wilayah lokasi daerah lingkungan lajur bahu tebing bantaran jalur lantai bagian
    parah berat kotor ruang gedung situ sana sini kota jalanan sekolah kali muka mulut
    gerbang pintu sekitar seputaran samping dpn belakang tepi trotoar got selokan saluran rt
    rw kel kec sana2 licin sempit becek sepi ramai utama protokol umum alternatif setapak
    kiri kanan the this that our my your their a an
    """
)
_NAME_STOP = (
    _STOPWORDS
    | frozenset(_LANDMARK_HEADS)
    | frozenset(_EN_HEADS)
    | _PREPOSITIONS
    | _NOT_A_NAME
    | _STREET_SUFFIXES
    | (_WEAK - {"air"})
    | _wordset("jalan gang rt rw kelurahan kecamatan desa village district")
) - frozenset({"bogor", "baru", "barat", "timur", "utara", "selatan", "tengah"})
_NUMBER_WORDS = {
    "satu": "1",
    "dua": "2",
    "tiga": "3",
    "empat": "4",
    "lima": "5",
    "enam": "6",
    "tujuh": "7",
    "delapan": "8",
    "sembilan": "9",
    "sepuluh": "10",
    "i": "1",
    "ii": "2",
    "iii": "3",
    "iv": "4",
    "v": "5",
    "vi": "6",
    "vii": "7",
    "viii": "8",
    "ix": "9",
    "x": "10",
}
_GENERIC_NAME_WORDS = frozenset({"negeri", "kota"})
# Words that start many names and identify nothing alone ("Bogor Barat", "Tanah Baru").
_AREA_WORDS = _wordset(
    """
    bogor kota baru barat timur utara selatan tengah raya tanah kebon kampung pasir
    """
)
_VERB_PREFIXES = ("di", "ber", "ter")


# --------------------------------------------------------------------------- analysis


@dataclass(frozen=True)
class Place:
    """A place a text names. kind: street, gang, landmark, kelurahan, kecamatan, rt, rw.
    For a landmark, head is its kind of place ("pasar", "tugu"), possibly empty."""

    kind: str
    name: tuple[str, ...]
    head: str = ""


@dataclass(frozen=True)
class TextAnalysis:
    problem: tuple[str, ...]  # canonical problem words, in order, without duplicates
    places: frozenset[Place]


@dataclass(frozen=True)
class _Token:
    word: str
    capital: bool  # written with a capital letter (a name, in most texts)
    abbreviated: bool = False  # "Jl.", "jln": surely a street marker


_DOTTED = re.compile(
    r"(?i)\b(jl|jln|gg|no|kel|kec|dr|jend|kh|ir|h|kol|kapt|psr|perum|jbt|st|rd|kp|komp|"
    r"sdn|smpn|sman|ds|tim|bar|sel|ut|teng|hj|mr)\.(?=\s|\w|$)"
)
_MONEY = re.compile(
    r"(?i)\b(?:rp\.?\s*)?(\d{1,3}(?:[.,]\d{3})+|\d+)\s*(rb|ribu|rebu|k|jt|juta|million)\b"
    r"|\brp\.?\s*(\d{1,3}(?:[.,]\d{3})+|\d+)\b"
)
_CLAUSE = re.compile(r"[.,;:!?()\[\]{}\"/+&|\n*#=<>]+|\s[-–—]\s")
_TOKEN = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*", re.UNICODE)
_RTRW = re.compile(r"^(rt|rw)0*(\d{1,3})$")
_REDUP = re.compile(r"^([a-z]{3,})2(an|nya)?$")
_MULTIPLIERS = {
    "rb": 1_000,
    "ribu": 1_000,
    "rebu": 1_000,
    "k": 1_000,
    "jt": 1_000_000,
    "juta": 1_000_000,
    "million": 1_000_000,
}


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _money(match: re.Match[str]) -> str:
    """ "50rb", "50 ribu", "50k" and "Rp 50.000" are one amount: "rp50000"."""
    digits = match.group(1) or match.group(3)
    value = int(re.sub(r"[.,]", "", digits))
    unit = (match.group(2) or "").casefold()
    return f" rp{value * _MULTIPLIERS.get(unit, 1)} "


def _tokens(clause: str) -> list[_Token]:
    out: list[_Token] = []
    for raw in _TOKEN.findall(clause):
        for part in re.split(r"[-']", raw):
            if not part:
                continue
            capital = part[0].isupper()
            word = part.casefold()
            if word == "s" and out:  # "Pajajaran's"
                continue
            rtrw = _RTRW.match(word)
            if rtrw:
                out.append(_Token(rtrw.group(1), capital))
                out.append(_Token(rtrw.group(2), False))
                continue
            redup = _REDUP.match(word)
            if redup:
                word = redup.group(1) + (redup.group(2) or "")
            abbreviated = word in ("jl", "jln", "gg")
            if capital and word in _HONORIFICS:  # "Dr." before a name is no "dari"
                out.append(_Token(word, capital))
                continue
            expansion = _ABBREVIATIONS.get(word, word)
            out.extend(_Token(w, capital, abbreviated) for w in expansion.split())
    return _apply_phrases(out)


def _apply_phrases(tokens: list[_Token]) -> list[_Token]:
    words = [t.word for t in tokens]
    out: list[_Token] = []
    i = 0
    while i < len(tokens):
        for phrase, replacement in _PHRASES_BY_FIRST_WORD.get(words[i], ()):
            n = len(phrase)
            if tuple(words[i : i + n]) == phrase:
                out.extend(_Token(w, tokens[i].capital) for w in replacement)
                i += n
                break
        else:
            out.append(tokens[i])
            i += 1
    return out


_PHRASE_TABLE: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = tuple(
    sorted(
        ((tuple(p.split()), tuple(r.split())) for p, r in _PHRASES),
        key=lambda pr: -len(pr[0]),
    )
)


def _by_first_word(
    table: Iterable[tuple[tuple[str, ...], tuple[str, ...]]],
) -> dict[str, list[tuple[tuple[str, ...], tuple[str, ...]]]]:
    by_word: dict[str, list[tuple[tuple[str, ...], tuple[str, ...]]]] = {}
    for phrase, replacement in table:
        by_word.setdefault(phrase[0], []).append((phrase, replacement))
    return by_word


# The table by its phrases' first word, in the table's order (longest first): only these
# can start at a word.
_PHRASES_BY_FIRST_WORD = _by_first_word(_PHRASE_TABLE)


def _name_word(token: _Token, capital_mode: bool) -> bool:
    """Can this token be part of a name? In a capitalised name only capitalised words are;
    in informal lower-case text, anything but function, problem and verb-like words."""
    word = token.word
    if word in _NAME_STOP or not word.isalpha():
        return False
    if capital_mode:
        return token.capital
    if _canonical(word) in _CONCEPTS:
        return False
    return not (len(word) >= 7 and word.startswith(_VERB_PREFIXES))


def _name_after(tokens: list[_Token], start: int, limit: int = 3) -> tuple[list[str], int]:
    """Name words from `start`: honorifics skipped; a number ends the name ("SDN Polisi 1")."""
    name: list[str] = []
    i = start
    n = len(tokens)
    while i < n and tokens[i].word in _HONORIFICS:
        i += 1
    if i >= n or tokens[i].word in _NOT_A_NAME:
        return [], start
    capital_mode = tokens[i].capital
    while i < n and len(name) < limit:
        token = tokens[i]
        word = token.word
        if name and (word.isdigit() or word in _NUMBER_WORDS):
            name.append(_NUMBER_WORDS.get(word, str(int(word)) if word.isdigit() else word))
            i += 1
            break
        initial = len(word) == 1 and word.isalpha() and not name and i + 1 < n
        if initial and _name_word(tokens[i + 1], capital_mode):  # "jln a yani"
            name.append(word)
            i += 1
            continue
        if not _name_word(token, capital_mode):
            break
        name.append(word)
        i += 1
    while name and name[-1] in _HONORIFICS:
        name.pop()
    return name, i


def _name_before(tokens: list[_Token], end: int, limit: int = 2) -> list[str]:
    """Capitalised name words just before `end` ("Pajajaran road", "Kujang monument")."""
    name: list[str] = []
    i = end - 1
    while i >= 0 and len(name) < limit:
        token = tokens[i]
        if token.capital and token.word in _NUMBER_WORDS and i > 0 and tokens[i - 1].capital:
            name.insert(0, _NUMBER_WORDS[token.word])  # "Jambu Dua intersection"
            i -= 1
            continue
        if not token.capital or token.word in _NAME_STOP or not token.word.isalpha():
            break
        if _canonical(token.word) in _CONCEPTS:  # "Antrean Disdukcapil": no name
            break
        name.insert(0, token.word)
        i -= 1
    while name and name[0] in _HONORIFICS:
        name.pop(0)
    return name


def _clean_name(name: list[str]) -> tuple[str, ...]:
    kept = [w for w in name if w not in _HONORIFICS]
    if len(kept) > 1:
        kept = [w for w in kept if w not in _GENERIC_NAME_WORDS] or kept
    return tuple(kept)


def _places_in(tokens: list[_Token], used: set[int]) -> set[Place]:
    places: set[Place] = set()
    i = 0
    n = len(tokens)
    while i < n:
        token = tokens[i]
        word = token.word
        prev = tokens[i - 1].word if i else ""
        if word == "jalan":
            explicit = token.abbreviated or token.capital or prev in _PREPOSITIONS
            name, end = _name_after(tokens, i + 1, 2)
            if name and (explicit or prev not in ("", "ini", "itu")):
                places.add(Place("street", _clean_name(name)))
                used.update(range(i, end))
                i = end
                continue
        elif word == "gang":
            name, end = _name_after(tokens, i + 1, 2)
            if name:
                places.add(Place("gang", _clean_name(name)))
                used.update(range(i, end))
                i = end
                continue
        elif word in ("rt", "rw") and i + 1 < n and tokens[i + 1].word.isdigit():
            places.add(Place(word, (str(int(tokens[i + 1].word)),)))
            used.update((i, i + 1))
            i += 2
            informal = not any(t.capital for t in tokens)
            if word == "rw" and i < n and (tokens[i].capital or informal):  # "RW 05 Tegallega"
                name, end = _name_after(tokens, i, 2)
                if name:
                    places.add(Place("kelurahan", _clean_name(name)))
                    used.update(range(i, end))
                    i = end
            continue
        elif word in ("kelurahan", "desa", "kecamatan"):
            kind = "kecamatan" if word == "kecamatan" else "kelurahan"
            name, end = _name_after(tokens, i + 1, 2)
            before = [] if name else _name_before(tokens, i)  # "Sempur village office"
            used.add(i)
            if name or before:
                places.add(Place(kind, _clean_name(name or before)))
                used.update(range(i + 1, end))
                used.update(range(i - len(before), i))
                i = max(end, i + 1)
                continue
        elif word in _STREET_SUFFIXES or word in ("village", "district"):
            name = _name_before(tokens, i)
            if name:
                kind = {"village": "kelurahan", "district": "kecamatan"}.get(word, "street")
                places.add(Place(kind, _clean_name(name)))
                used.update(range(i - len(name), i + 1))
        elif word in _LANDMARK_HEADS or word in _EN_HEADS:
            english = word not in _LANDMARK_HEADS
            head = _EN_HEADS[word] if english else _LANDMARK_HEADS[word]
            if head == "kantor":  # "Kantor Kelurahan X", "kantor Disdukcapil": what follows
                used.add(i)
                i += 1
                continue
            before = _name_before(tokens, i) if english else []
            name, end = ([], i + 1) if before else _name_after(tokens, i + 1, 3)
            if english and name and not tokens[i + 1].capital:
                name, end = [], i + 1
            if not name and not before and word in _EITHER_ORDER:  # "Ekalokasari Plaza"
                before = _name_before(tokens, i)
            if name or before or head in _UNIQUE_HEADS or head not in _VAGUE_HEADS:
                places.add(Place("landmark", _clean_name(name or before), head))
                if head not in _OBJECT_HEADS:
                    used.add(i)
                used.update(range(i + 1, end))
                used.update(range(i - len(before), i))
                i = max(end, i + 1)
                continue
        elif word in _PREPOSITIONS and i + 1 < n:
            nxt = tokens[i + 1]
            weak = word in _WEAK_PREPOSITIONS
            if (not weak or nxt.capital or word == "di") and nxt.word not in (
                "jalan",
                "gang",
                "kelurahan",
                "kecamatan",
            ):
                name, end = _name_after(tokens, i + 1, 3)
                followed = end < n and (
                    tokens[end].word in _EN_HEADS
                    or tokens[end].word in _STREET_SUFFIXES
                    or tokens[end].word in ("village", "district", "kelurahan")
                )
                short = not nxt.capital and len(name[0]) < (4 if weak else 3) if name else True
                if name and not followed and not short:
                    places.add(Place("landmark", _clean_name(name)))
                    used.update(range(i + 1, end))
                    i = end
                    continue
        i += 1
    return places


def _address_places(address: str) -> set[Place]:
    """A geocoder's address: "Jl. X No.1, Kelurahan, Kec. Y, Kota Bogor, Jawa Barat"."""
    places: set[Place] = set()
    segments = [s.strip() for s in _fold(address).split(",") if s.strip()]
    for index, segment in enumerate(segments):
        tokens = _tokens(_DOTTED.sub(r"\1 ", segment))
        if not tokens:
            continue
        found = _places_in(tokens, set())
        places |= found
        following = segments[index + 1].casefold() if index + 1 < len(segments) else ""
        if not found and following.startswith(("kec", "kecamatan")):
            name = [t.word for t in tokens if t.word not in _NAME_STOP][:2]
            if name:
                places.add(Place("kelurahan", tuple(name)))
    return places


_SUFFIXES = ("nya", "kan", "an")
_PREFIXES = (
    "meng",
    "mem",
    "men",
    "peng",
    "pem",
    "pen",
    "ter",
    "ber",
    "per",
    "di",
    "ke",
    "se",
    "me",
)
_EN_SUFFIXES = ("ing", "ed", "es", "s")


def _canonical(word: str) -> str:
    """The lexicon's word for `word`, else `word` without an Indonesian suffix."""
    if word in _LEXICON:
        return _LEXICON[word]
    stem = word
    for suffix in _SUFFIXES:
        if stem.endswith(suffix) and len(stem) - len(suffix) >= (3 if suffix == "nya" else 4):
            stem = stem[: -len(suffix)]
            break
    if stem in _LEXICON:
        return _LEXICON[stem]
    for base in (stem, word):
        for prefix in _PREFIXES:
            if base.startswith(prefix) and len(base) - len(prefix) >= 3:  # "berbau"
                candidate = base[len(prefix) :]
                if candidate in _LEXICON:
                    return _LEXICON[candidate]
    for suffix in _EN_SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            candidate = word[: -len(suffix)]
            if candidate in _LEXICON:
                return _LEXICON[candidate]
    return stem


@lru_cache(maxsize=4096)
def analyse(text: str, address: str | None = None) -> TextAnalysis:
    """The problem words and the places of a complaint (its text and, if any, its address)."""
    prepared = _DOTTED.sub(r"\1 ", _MONEY.sub(_money, _fold(text)))
    problem: list[str] = []
    places: set[Place] = set()
    for clause in _CLAUSE.split(prepared):
        tokens = _tokens(clause)
        used: set[int] = set()
        places |= _places_in(tokens, used)
        for index, token in enumerate(tokens):
            if index in used:
                continue
            word = token.word
            if word in _STOPWORDS or len(word) < 2:
                continue
            head = _LANDMARK_HEADS.get(word) or _EN_HEADS.get(word)
            if head and head not in _OBJECT_HEADS:
                continue  # "dekat masjid": a place too vague to place, and no problem
            if not word.isalpha() and not (word.startswith("rp") and word[2:].isdigit()):
                continue
            canonical = _canonical(word)
            if canonical in _STOPWORDS or not canonical:
                continue
            if canonical not in problem:
                problem.append(canonical)
    if address:
        places |= _address_places(address)
    return TextAnalysis(tuple(problem), frozenset(places))


# --------------------------------------------------------------------------- comparison

WEAK_WEIGHT = 0.3
OTHER_WEIGHT = 0.25


@lru_cache(maxsize=65536)
def _word_match(a: str, b: str) -> float:
    if a == b:
        return 1.0
    if min(len(a), len(b)) < 4:
        return 0.0
    short, long_ = sorted((a, b), key=len)
    if long_.startswith(short) or long_.endswith(short):
        return 0.9
    score = fuzz.ratio(a, b) / 100.0
    return score if score >= 0.8 else 0.0


def _is_amount(word: str) -> bool:
    return word.startswith("rp") and word[2:].isdigit()


def _weight(word: str) -> float:
    """What a word says about which problem it is: the lexicon's problem words (and amounts
    of money) most, other words (details, names, typos the lexicon does not know) less,
    words common to every complaint of a topic ("banjir", "lampu", "rusak") least."""
    if word in _WEAK:
        return WEAK_WEIGHT
    if word in _CONCEPTS or _is_amount(word):
        return 1.0
    return OTHER_WEIGHT


def _coverage(these: Iterable[str], others: tuple[str, ...]) -> float:
    total = 0.0
    matched = 0.0
    for word in these:
        weight = _weight(word)
        total += weight
        matched += weight * max((_word_match(word, o) for o in others), default=0.0)
    return matched / total if total else 0.0


@lru_cache(maxsize=65536)
def text_similarity(a: TextAnalysis, b: TextAnalysis) -> float:
    """How alike the problem words are, 0–1: the mean of how much of each one the other
    covers, so a terse report of the same problem still scores well ("lampu mati" against
    a long description of the dead street lights) while extra, different content lowers it.
    """
    if not a.problem or not b.problem:
        return 0.0
    ab = _coverage(a.problem, b.problem)
    ba = _coverage(b.problem, a.problem)
    penalty = 0.3 if _amounts_differ(a, b) else 1.0
    short = min(sum(_weight(w) for w in a.problem), sum(_weight(w) for w in b.problem))
    # A very short text (one weak word) cannot vouch much for being the same problem.
    confidence = min(1.0, short / 1.5)
    return (0.5 * max(ab, ba) + 0.5 * min(ab, ba)) * (0.6 + 0.4 * confidence) * penalty


def _specific_word(word: str) -> bool:
    return (word in _CONCEPTS and word not in _WEAK) or _is_amount(word)


def _amounts_differ(a: TextAnalysis, b: TextAnalysis) -> bool:
    amounts_a = {w for w in a.problem if _is_amount(w)}
    amounts_b = {w for w in b.problem if _is_amount(w)}
    return bool(amounts_a and amounts_b and not amounts_a & amounts_b)


def _found(word: str, others: Iterable[str]) -> bool:
    return any(_word_match(word, o) > 0 for o in others)


@lru_cache(maxsize=65536)
def problem_overlap(a: TextAnalysis, b: TextAnalysis) -> float:
    """Do two texts name the same problem, 0–1? Once the place is settled, what matters is
    not how alike two descriptions read but whether they describe different problems.

    The lexicon's specific problem words ("lubang", "trotoar", "antre", "blanko") decide:
    the share of the shorter list that the other text also has, so "lubang" against "aspal
    berlubang dekat lampu merah" is 1 and "lubang" against "trotoar ambles" is 0. A text
    with no specific word (a terse "banjir di jalan sudirman") is measured by its topic
    words ("banjir", "lampu", "sampah") instead. Different amounts of money (50 ribu,
    200 ribu) make two extortion reports different."""
    strong_a = [w for w in a.problem if _specific_word(w)]
    strong_b = [w for w in b.problem if _specific_word(w)]
    if strong_a and strong_b:
        share = max(
            sum(_found(w, strong_b) for w in strong_a) / len(strong_a),
            sum(_found(w, strong_a) for w in strong_b) / len(strong_b),
        )
    else:
        vague, other = (a, b) if not strong_a else (b, a)
        topical = [w for w in vague.problem if w in _TOPIC_WORDS]
        if topical:
            share = sum(_found(w, other.problem) for w in topical) / len(topical)
        elif not strong_a and not strong_b:
            share = text_similarity(a, b)  # the lexicon knows neither: the words decide
        else:
            return 0.0
    return share * (0.3 if _amounts_differ(a, b) else 1.0)


@lru_cache(maxsize=65536)
def _names_match(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """Two spellings of one name: "Pajajaran"/"Padjajaran", "Sindang Barang"/"Sindangbarang",
    "A Yani"/"Ahmad Yani", "Aut"/"Aut Suryakencana"."""
    if not a or not b:
        return False
    joined_a, joined_b = "".join(a), "".join(b)
    if fuzz.ratio(joined_a, joined_b) >= 85:
        return True
    short, long_ = sorted((a, b), key=len)
    if (
        len(short) < len(long_)
        and not set(short) <= _AREA_WORDS
        and all(fuzz.ratio(x, y) >= 85 for x, y in zip(short, long_, strict=False))
    ):
        return True  # one name starts the other
    last_a, last_b = a[-1], b[-1]
    if len(a) > 1 and len(b) > 1 and min(len(last_a), len(last_b)) >= 4:
        # Same surname, same initial: "a yani"/"ahmad yani", "kh sholeh"/"soleh iskandar".
        return fuzz.ratio(last_a, last_b) >= 88 and a[0][0] == b[0][0]
    return False


def _heads_compatible(a: str, b: str) -> bool:
    return not a or not b or a == b or frozenset({a, b}) in _COMPATIBLE_HEADS


def _landmarks_match(a: Place, b: Place) -> bool:
    if not _heads_compatible(a.head, b.head):
        return False
    if a.head and a.head == b.head and a.head in _UNIQUE_HEADS:
        return True  # "di Disdukcapil", "Disdukcapil Kota Bogor": one office
    if not a.name or not b.name:
        # A head alone ("dekat SPBU", "dpn stasiun") against the same kind of place.
        return bool(a.head) and a.head == b.head and a.head not in _VAGUE_HEADS
    return _names_match(a.name, b.name)


@dataclass(frozen=True)
class PlaceEvidence:
    match: bool  # a place named by both, and nothing that says they are apart
    conflict: bool  # a street, gang, kelurahan, kecamatan or RW named by both that differs
    spot_conflict: bool = False  # both name landmarks, and none of them agree
    strength: int = 0  # how many kinds of place agree (street, landmark, RT/RW, …)


_AREA_KINDS = ("street", "gang", "kelurahan", "kecamatan")


@dataclass(frozen=True)
class _PlaceIndex:
    """One text's places sorted the way `place_evidence` reads them, built once per text."""

    by_kind: Mapping[str, tuple[Place, ...]]  # street, gang, kelurahan, kecamatan, rw
    rt: frozenset[tuple[str, ...]]
    rw: frozenset[tuple[str, ...]]
    named: tuple[Place, ...]  # areas, and landmarks with a name
    areas: tuple[Place, ...]
    landmarks: tuple[Place, ...]


@lru_cache(maxsize=16384)
def _place_index(places: frozenset[Place]) -> _PlaceIndex:
    by_kind: dict[str, list[Place]] = {}
    for place in places:
        if place.kind in _AREA_KINDS or place.kind == "rw":
            by_kind.setdefault(place.kind, []).append(place)
    return _PlaceIndex(
        by_kind={kind: tuple(found) for kind, found in by_kind.items()},
        rt=frozenset(p.name for p in places if p.kind == "rt"),
        rw=frozenset(p.name for p in places if p.kind == "rw"),
        named=tuple(
            p for p in places if p.kind in _AREA_KINDS or (p.kind == "landmark" and p.name)
        ),
        areas=tuple(p for p in places if p.kind in _AREA_KINDS),
        landmarks=tuple(p for p in places if p.kind == "landmark"),
    )


def _area_conflict(ia: _PlaceIndex, ib: _PlaceIndex) -> bool:
    """A street, gang, kelurahan, kecamatan or RW named by both, and none of them agree;
    or the same RW with different RTs."""
    for kind, these in ia.by_kind.items():
        those = ib.by_kind.get(kind)
        if those and not any(_names_match(x.name, y.name) for x in these for y in those):
            return True
    return bool(ia.rt and ib.rt and not ia.rt & ib.rt and ia.rw & ib.rw)


@lru_cache(maxsize=65536)
def _places_conflict(a: frozenset[Place], b: frozenset[Place]) -> bool:
    """`_area_conflict` of two texts' places."""
    return _area_conflict(_place_index(a), _place_index(b))


@lru_cache(maxsize=65536)
def place_evidence(a: frozenset[Place], b: frozenset[Place]) -> PlaceEvidence:
    """Compare what two texts say about where. Streets, gangs, kelurahan, kecamatan and RW
    contradict when both name one and none agree; landmarks match or weaken a match."""
    ia, ib = _place_index(a), _place_index(b)
    conflict = False
    match = False
    strength = 0
    for kind in (*_AREA_KINDS, "rw"):
        these = ia.by_kind.get(kind, ())
        those = ib.by_kind.get(kind, ())
        if these and those:
            if any(_names_match(x.name, y.name) for x in these for y in those):
                match = match or kind != "rw"
                strength += 1
            else:
                conflict = True
    if ia.rt & ib.rt and ia.rw & ib.rw:
        match = True
    if ia.rt and ib.rt and not ia.rt & ib.rt and ia.rw & ib.rw:
        conflict = True
    # A place named as a street in one text may be a bare name in the other ("Jl. Katulampa",
    # "at Katulampa"; "Jl. Sudirman", "di sudirman").
    cross_match = any(
        x.kind != y.kind and _heads_compatible(x.head, y.head) and _names_match(x.name, y.name)
        for x in ia.named
        for y in ib.named
    )
    # Spots: landmarks that are not just another way of naming a street or area of either.
    areas = (*ia.areas, *ib.areas)
    spots_a = [p for p in ia.landmarks if not _names_an_area(p, areas)]
    spots_b = [p for p in ib.landmarks if not _names_an_area(p, areas)]
    spot_match = any(_landmarks_match(x, y) for x in spots_a for y in spots_b)
    # Each names a spot the other does not know: two spots (one text naming two landmarks
    # where the other names one of them is no contradiction).
    spot_conflict = _lone_spots(spots_a, spots_b) and _lone_spots(spots_b, spots_a)
    match = match or spot_match or cross_match
    strength += spot_match + cross_match
    return PlaceEvidence(
        match=match and not spot_conflict,
        conflict=conflict,
        spot_conflict=spot_conflict,
        strength=strength,
    )


def _lone_spots(these: list[Place], those: list[Place]) -> bool:
    """Does one of `these` name a spot (by name, or a one-of-a-kind office) none of `those`
    names?"""
    return any(
        (p.name or p.head in _UNIQUE_HEADS) and not any(_landmarks_match(p, q) for q in those)
        for p in these
    )


def _names_an_area(landmark: Place, areas: Iterable[Place]) -> bool:
    return not landmark.head and any(_names_match(landmark.name, p.name) for p in areas)


def _names_places(analysis: TextAnalysis) -> bool:
    """Does the text say where, by a name (not "dekat masjid")?"""
    return any(
        p.kind in _AREA_KINDS or (p.kind == "landmark" and (p.name or p.head in _UNIQUE_HEADS))
        for p in analysis.places
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_DAY_US = 86_400_000_000


def _within_window(a: IncidentCandidate, b: IncidentCandidate, rules: LinkRules) -> bool:
    return _links_within(a._link, b._link, rules.window_days)


def _links_within(a: _Linking, b: _Linking, window_days: float) -> bool:
    """Whether two reports' times are a window apart at most (either may have none)."""
    if a.stamp is not None and b.stamp is not None:
        return abs(a.stamp - b.stamp) <= window_days * _DAY_US
    if a.moment is None or b.moment is None:
        return True
    # A zone with summer time: Python subtracts two times of one such zone as wall-clock
    # times, and linking has always done as Python does.
    return abs((a.moment - b.moment).total_seconds()) <= window_days * 86_400


def _aware(moment: datetime) -> datetime:
    """A stored time without a zone is UTC, as everything the gateway stores."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _distance(a: IncidentCandidate, b: IncidentCandidate) -> float | None:
    if a.lat is None or a.lon is None or b.lat is None or b.lon is None:
        return None
    return distance_m(a.lat, a.lon, b.lat, b.lon)


def _analysis(candidate: IncidentCandidate) -> TextAnalysis:
    return candidate._link.analysis


# One object for equal values (analyses, place sets), so that the caches keyed by them
# find them by identity instead of comparing them field by field; and for the reports that
# read alike at one place, (topic, lat, lon, analysis), one pair of keys: `choose_incident`
# gives them one verdict (the first key within the window, the other outside). Emptied when
# full: what comes afterwards gets objects of its own, compared by value or at worst
# assessed again, never mistaken for something else.
_SHARED: dict[Any, Any] = {}
_ALIKE: dict[tuple[Any, ...], tuple[object, object]] = {}
_SHARED_MAX = 32_768


def _shared(value: _T) -> _T:
    found: _T | None = _SHARED.get(value)
    if found is None:
        if len(_SHARED) >= _SHARED_MAX:
            _SHARED.clear()
        found = _SHARED[value] = value
    return found


class _Linking:
    """What linking reads of one report: its analysis, its places, its time and the
    keys of the reports that read alike at its place (see `IncidentCandidate._link`)."""

    __slots__ = ("analysis", "inside", "moment", "named", "outside", "place_set", "stamp")

    def __init__(self, candidate: IncidentCandidate) -> None:
        analysis = _shared(analyse(candidate.text, candidate.address))
        self.analysis = analysis
        self.place_set = _shared(analysis.places)
        self.named = _names_places(analysis)
        received = candidate.received_at
        self.moment = None if received is None else _aware(received)
        # A time with a fixed offset (UTC, as stored) as a whole number of microseconds:
        # exact, and compared with every candidate far more cheaply than two datetimes.
        self.stamp = None
        if self.moment is not None and isinstance(self.moment.tzinfo, timezone):
            self.stamp = (self.moment - _EPOCH) // _MICROSECOND
        alike = (candidate.topic, candidate.lat, candidate.lon, analysis)
        keys = _ALIKE.get(alike)
        if keys is None:
            if len(_ALIKE) >= _SHARED_MAX:
                _ALIKE.clear()
            keys = _ALIKE[alike] = (object(), object())
        self.inside, self.outside = keys


def _decide(
    la: _Linking,
    lb: _Linking,
    places: PlaceEvidence,
    distance: float | None,
    rules: LinkRules,
) -> tuple[float, float] | None:
    """(the score, the threshold it must reach) for two reports of one topic, within the
    window and not placed apart; None when they cannot be linked."""
    ta, tb = la.analysis, lb.analysis
    if distance is not None or places.match:
        return problem_overlap(ta, tb), rules.overlap_threshold
    if places.spot_conflict or la.named or lb.named:
        # Both say where, and not the same place; or one says where and the other could be
        # anywhere in the city ("lampu jalan mati").
        return None
    if problem_overlap(ta, tb) < rules.overlap_threshold:
        return None
    return text_similarity(ta, tb), rules.text_threshold_unplaced


def _score(
    ta: TextAnalysis,
    tb: TextAnalysis,
    places: PlaceEvidence,
    distance: float | None,
    rules: LinkRules,
) -> float:
    location = 0.0
    if distance is not None:
        location = 1.0 - distance / rules.max_distance_m
    if places.match:
        location = max(location, min(1.0, 0.6 + 0.2 * places.strength))
    text = text_similarity(ta, tb)
    overlap = problem_overlap(ta, tb)
    return round(0.4 * overlap + 0.3 * text + 0.3 * location, 6)


@dataclass(frozen=True)
class Assessment:
    """One complaint against one stored report, everything linking asks, read once:
    `contradicts`, `same_incident` and `similarity` agree with these fields."""

    contradicts: bool
    same_incident: bool
    score: float


_APART = Assessment(contradicts=True, same_incident=False, score=0.0)
_UNRELATED = Assessment(contradicts=False, same_incident=False, score=0.0)


def assess(
    a: IncidentCandidate, b: IncidentCandidate, rules: LinkRules = DEFAULT_RULES
) -> Assessment:
    """Compare two reports once. The cheapest refusals come first (topic, distance, a
    street or gang named differently), so the many unrelated reports of a flood cost little;
    the problem words are compared only for reports that could be the same incident."""
    return _assess(a, b, rules)


def _assess(
    a: IncidentCandidate, b: IncidentCandidate, rules: LinkRules, within: bool | None = None
) -> Assessment:
    """`assess`, `within` the window or not when the caller knows already."""
    if a.topic != b.topic:
        return _APART
    distance = _distance(a, b)
    if distance is not None and distance > rules.max_distance_m:
        return _APART
    la, lb = a._link, b._link
    if _places_conflict(la.place_set, lb.place_set):
        return _APART
    if within is None:
        within = _within_window(a, b, rules)
    if not within:
        return _UNRELATED
    places = place_evidence(la.place_set, lb.place_set)
    decided = _decide(la, lb, places, distance, rules)
    if decided is None or decided[0] < decided[1]:
        return _UNRELATED
    return Assessment(False, True, _score(la.analysis, lb.analysis, places, distance, rules))


def choose_incident(
    new: IncidentCandidate,
    incidents: Mapping[int, Iterable[IncidentCandidate]],
    rules: LinkRules = DEFAULT_RULES,
) -> tuple[float, int] | None:
    """The incident a new report joins: (score, its key), or None. An incident is refused
    when any of its reports contradicts the new one (one report matching is not enough);
    among the others that have a report of the same incident, the best such match wins."""
    return best_incident(incident_verdicts(new, incidents, rules))


# The verdicts on the reports a new report was compared with, by what it reads like (its
# `_Linking.inside` key) and then by theirs, kept per process: in a flood or a campaign the
# same wordings come again and again, and each pair is assessed once. The keys are the
# shared objects of `_ALIKE` (held here, so never mistaken for others). Emptied once it
# holds _VERDICTS_MAX verdicts (a few megabytes).
_VERDICTS: dict[LinkRules, dict[object, dict[object, Assessment]]] = {}
_VERDICTS_MAX = 100_000
_verdicts_held = 0


def _verdicts_for(mine: _Linking, rules: LinkRules) -> dict[object, Assessment]:
    global _verdicts_held
    if _verdicts_held >= _VERDICTS_MAX:
        _VERDICTS.clear()
        _verdicts_held = 0
    by_new = _VERDICTS.get(rules)
    if by_new is None:
        by_new = _VERDICTS[rules] = {}
    found = by_new.get(mine.inside)
    if found is None:
        found = by_new[mine.inside] = {}
    return found


def incident_verdicts(
    new: IncidentCandidate,
    incidents: Mapping[int, Iterable[IncidentCandidate]],
    rules: LinkRules = DEFAULT_RULES,
) -> dict[int, float | None]:
    """What each incident makes of a new report: the best score of its reports that are
    the same incident, or None when one of its reports contradicts the new one. Incidents
    with neither are left out. Verdicts on two sets of an incident's reports add up
    (`merge_verdicts`): the same as a verdict on both sets at once."""
    found: dict[int, float | None] = {}
    # Reports that read alike at one place get one verdict: a flood of "jalan berlubang di
    # Jl. Pajajaran" is compared once per different wording, not once per report. A
    # verdict's key stands for (topic, lat, lon, analysis) and whether the report is within
    # the window; what a report's key needs is worked out once per report (`_link`).
    global _verdicts_held
    mine, window = new._link, rules.window_days
    verdicts = _verdicts_for(mine, rules)
    stamp, limit = mine.stamp, window * _DAY_US
    for key, reports in incidents.items():
        score: float | None = None
        for report in reports:
            link = report._link
            # `_links_within`, written out for the usual case: hundreds of reports per call.
            if stamp is not None and link.stamp is not None:
                within = -limit <= stamp - link.stamp <= limit
            else:
                within = _links_within(mine, link, window)
            alike = link.inside if within else link.outside
            verdict = verdicts.get(alike)
            if verdict is None:
                verdict = verdicts[alike] = _assess(new, report, rules, within)
                _verdicts_held += 1
            if verdict.contradicts:
                found[key] = None
                break
            if verdict.same_incident and (score is None or verdict.score > score):
                score = verdict.score
        else:
            if score is not None:
                found[key] = score
    return found


class _Alike:
    """The reports of one incident that read alike at one place (one `_Linking.inside`
    key): one verdict each, inside the window or out of it. `lo` and `hi` bound the
    stamps of those that have one; `untimed` counts those that have none."""

    __slots__ = ("hi", "links", "lo", "report", "untimed")

    def __init__(self, report: IncidentCandidate) -> None:
        self.report = report  # any one of them: they are all assessed alike
        self.links: list[_Linking] = []  # oldest first
        self.lo: int | None = None
        self.hi: int | None = None
        self.untimed = 0

    def add(self, link: _Linking, *, oldest: bool = False) -> None:
        if oldest:
            self.links.insert(0, link)
        else:
            self.links.append(link)
        stamp = link.stamp
        if stamp is None:
            self.untimed += 1
        else:
            self.lo = stamp if self.lo is None else min(self.lo, stamp)
            self.hi = stamp if self.hi is None else max(self.hi, stamp)

    def remove(self, link: _Linking) -> None:
        self.links.remove(link)
        if link.stamp is None:
            self.untimed -= 1
        elif link.stamp in (self.lo, self.hi):
            stamps = [other.stamp for other in self.links if other.stamp is not None]
            self.lo, self.hi = (min(stamps), max(stamps)) if stamps else (None, None)


class IncidentIndex:
    """The reports of a pool of incidents, grouped by incident and by what they read like:
    `verdicts` gives what `incident_verdicts` gives on the same reports, with one verdict
    looked up per wording of each incident instead of one per report. A worker compares
    every complaint of a topic with the same few hundred reports; most of an incident's
    reports read like others of it (a flood reported again and again in the same words).

    Reports come newest first: `add_newest` puts one before all the others, `add_oldest`
    after them, `drop` takes one out. The incidents keep the order of their newest
    reports, as in the mapping `incident_verdicts` is given."""

    __slots__ = ("_added", "_incidents", "_newest", "_oldest")

    def __init__(self, newest_first: Iterable[tuple[int, IncidentCandidate]] = ()) -> None:
        self._incidents: dict[int, dict[object, _Alike]] = {}
        self._newest: dict[int, int] = {}  # an incident's newest report, by when it came
        self._added = 0  # counts up for reports put first
        self._oldest = 0  # counts down for reports put last
        for incident, report in reversed(list(newest_first)):
            self.add_newest(incident, report)

    def _alike(self, incident: int, link: _Linking, report: IncidentCandidate) -> _Alike:
        alikes = self._incidents.get(incident)
        if alikes is None:
            alikes = self._incidents[incident] = {}
        alike = alikes.get(link.inside)
        if alike is None:
            alike = alikes[link.inside] = _Alike(report)
        return alike

    def add_newest(self, incident: int, report: IncidentCandidate) -> int | None:
        """Returns what `drop` needs to take it out again as if it had never come."""
        link = report._link
        self._alike(incident, link, report).add(link)
        before = self._newest.get(incident)
        self._added += 1
        self._newest[incident] = self._added
        return before

    def add_oldest(self, incident: int, report: IncidentCandidate) -> None:
        link = report._link
        self._alike(incident, link, report).add(link, oldest=True)
        if incident not in self._newest:
            self._oldest -= 1
            self._newest[incident] = self._oldest

    def drop(self, incident: int, report: IncidentCandidate, before: int | None = None) -> None:
        """Take out one report of an incident: one older than the incident's newest, or
        the newest of all with `before` from when it was added (undone in the reverse
        order of what was done since)."""
        link = report._link
        alikes = self._incidents[incident]
        alike = alikes[link.inside]
        alike.remove(link)
        if not alike.links:
            del alikes[link.inside]
        if not alikes:
            del self._incidents[incident]
            del self._newest[incident]
        elif before is not None:
            self._newest[incident] = before

    def verdicts(
        self, new: IncidentCandidate, rules: LinkRules = DEFAULT_RULES
    ) -> dict[int, float | None]:
        """`incident_verdicts(new, <these reports by incident>, rules)`."""
        global _verdicts_held
        mine, window = new._link, rules.window_days
        verdicts = _verdicts_for(mine, rules)
        stamp, limit = mine.stamp, window * _DAY_US
        found: dict[int, float | None] = {}
        newest = self._newest
        for incident in sorted(newest, key=newest.__getitem__, reverse=True):
            score: float | None = None
            refused = False
            for key, alike in self._incidents[incident].items():
                inside = outside = False
                lo, hi = alike.lo, alike.hi
                if stamp is not None and not alike.untimed and lo is not None and hi is not None:
                    if stamp - lo <= limit and stamp - hi >= -limit:
                        inside = True
                    elif stamp - hi > limit or stamp - lo < -limit:
                        outside = True
                if not (inside or outside):  # some in the window and some not, or untimed
                    for link in alike.links:
                        if _links_within(mine, link, window):
                            inside = True
                        else:
                            outside = True
                for within, on in ((True, inside), (False, outside)):
                    if not on:
                        continue
                    alike_key = key if within else alike.links[0].outside
                    verdict = verdicts.get(alike_key)
                    if verdict is None:
                        verdict = verdicts[alike_key] = _assess(new, alike.report, rules, within)
                        _verdicts_held += 1
                    if verdict.contradicts:
                        refused = True
                        break
                    if verdict.same_incident and (score is None or verdict.score > score):
                        score = verdict.score
                if refused:
                    break
            if refused:
                found[incident] = None
            elif score is not None:
                found[incident] = score
        return found


def merge_verdicts(
    into: dict[int, float | None], more: Mapping[int, float | None]
) -> dict[int, float | None]:
    """`into`, with the verdicts of `more` on other reports of the same or other incidents
    added: an incident refused by either is refused, else its best score stands."""
    for key, score in more.items():
        if key not in into:
            into[key] = score
        else:
            known = into[key]
            into[key] = None if known is None or score is None else max(known, score)
    return into


def best_incident(verdicts: Mapping[int, float | None]) -> tuple[float, int] | None:
    """The incident with the best score that is not refused: (score, its key), or None.
    Of equal scores, the first."""
    best: tuple[float, int] | None = None
    for key, score in verdicts.items():
        if score is not None and (best is None or score > best[0]):
            best = (score, key)
    return best


def _threshold(
    a: IncidentCandidate, b: IncidentCandidate, rules: LinkRules
) -> tuple[float, float] | None:
    """(the score, the threshold it must reach), or None when they cannot be linked."""
    if a.topic != b.topic or not _within_window(a, b, rules):
        return None
    la, lb = a._link, b._link
    places = place_evidence(la.place_set, lb.place_set)
    if places.conflict:
        return None
    distance = _distance(a, b)
    if distance is not None and distance > rules.max_distance_m:
        return None
    return _decide(la, lb, places, distance, rules)


def contradicts(
    a: IncidentCandidate, b: IncidentCandidate, rules: LinkRules = DEFAULT_RULES
) -> bool:
    """Hard evidence that two reports are apart, whatever their wording: different topics,
    coordinates more than max_distance_m apart, or different streets, gangs, kelurahan
    or RW. A store linking a complaint to an incident should refuse the incident when any of
    its reports contradicts the complaint (one report matching is not enough)."""
    if a.topic != b.topic:
        return True
    distance = _distance(a, b)
    if distance is not None and distance > rules.max_distance_m:
        return True
    return place_evidence(_analysis(a).places, _analysis(b).places).conflict


def same_incident(
    a: IncidentCandidate, b: IncidentCandidate, rules: LinkRules = DEFAULT_RULES
) -> bool:
    """Two reports (from different reporters) of one problem: same topic, within the time
    window, not placed apart (coordinates farther than max_distance_m, or different streets,
    gangs, kelurahan), and problem words alike enough for what corroborates the place."""
    decided = _threshold(a, b, rules)
    return decided is not None and decided[0] >= decided[1]


def similarity(
    a: IncidentCandidate, b: IncidentCandidate, rules: LinkRules = DEFAULT_RULES
) -> float:
    """A 0–1 score to rank candidate incidents: the problem words' similarity, raised by a
    shared place or nearness and zero when the two cannot be linked at all."""
    if a.topic != b.topic or not _within_window(a, b, rules):
        return 0.0
    ta, tb = _analysis(a), _analysis(b)
    places = place_evidence(ta.places, tb.places)
    distance = _distance(a, b)
    if places.conflict or (distance is not None and distance > rules.max_distance_m):
        return 0.0
    return _score(ta, tb, places, distance, rules)


# --------------------------------------------------------------------------- one reporter


def is_repeat(a_text: str, b_text: str, rules: LinkRules = DEFAULT_RULES) -> bool:
    """The same reporter sending the same complaint again (in other words, with typos, with
    or without the place): the same problem words, and nothing that says another place."""
    ta, tb = analyse(a_text), analyse(b_text)
    if not ta.problem or not tb.problem:
        return False
    places = place_evidence(ta.places, tb.places)
    if places.conflict or places.spot_conflict:
        return False
    if _names_places(ta) and _names_places(tb) and not places.match:
        return False
    if ta.problem == tb.problem:
        return True
    if problem_overlap(ta, tb) < rules.overlap_threshold:
        return False
    return (
        text_similarity(ta, tb) >= rules.repeat_threshold
        or fuzz.token_sort_ratio(" ".join(ta.problem), " ".join(tb.problem))
        >= 100 * rules.repeat_threshold
    )


# A follow-up carries few problem words of its own: a place, "ini fotonya", "sudah 3 hari".
_FRAGMENT_WORDS = 2


def looks_like_new_complaint(
    previous_case_text: str,
    new_text: str,
    topic_prev: str,
    topic_new: str,
    *,
    fallback_topic: str = "lainnya",
) -> bool:
    """Within a burst from one reporter: does `new_text` start a new complaint, or does it
    add to the open case (`previous_case_text`, all of its messages so far)?

    Belongs to the case: an empty text (a photo), a place ("di Jl. Pajajaran depan Tugu
    Kujang"), a short remark ("sudah 3 hari", "ini fotonya"), more of the same problem, or
    the complaint itself after a bare greeting. New: a description of another problem of its
    own, under another topic, or under the same topic at another street or with none of the
    case's problem words."""
    new = analyse(new_text)
    if not new.problem:
        return False
    prev = analyse(previous_case_text)
    if topic_prev == fallback_topic and not prev.problem:
        return False  # "selamat pagi, mau lapor" and then the complaint itself
    own = [w for w in new.problem if w not in _WEAK]
    if len(own) <= _FRAGMENT_WORDS and topic_new in (fallback_topic, topic_prev):
        return False
    alike = max(text_similarity(prev, new), problem_overlap(prev, new))
    if topic_new not in (fallback_topic, topic_prev):
        return alike < 0.5 and len(new.problem) >= 2
    if place_evidence(prev.places, new.places).conflict:
        return alike < 0.8 and len(own) > _FRAGMENT_WORDS
    return bool(prev.problem) and alike < 0.2 and len(own) > _FRAGMENT_WORDS + 1
