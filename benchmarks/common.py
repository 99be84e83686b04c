"""What the benchmarks share: signed Twilio webhooks, a client that sends them, processes
started and stopped, a progress bar, and figures read from /proc.

aduan is treated as a black box here: processes started with its command line, figures
read from HTTP answers and from the case store's tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

AUTH_TOKEN = "benchmark-twilio-auth-token"  # noqa: S105 - a throwaway server's
ACCOUNT_SID = "AC" + "0" * 32
SMS_TO = "+14155550100"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'
# Per-sender and per-IP limits would measure themselves: one client sends everything.
NO_RATE_LIMITS = "ip=0/60,web=0/60,api=0/60,sms=0/60,whatsapp=0/60,email=0/60"
CONFIDENTIAL_TOPICS = ("pungli", "korupsi", "penyalahgunaan_wewenang")
FALLBACK_TEXTS = (
    "Jalan berlubang besar di Jl. Pajajaran depan Tugu Kujang, sudah 2 minggu.",
    "Sampah menumpuk di TPS Jl. Merdeka, bau busuk sampai ke rumah warga.",
    "Lampu PJU mati total di gang Mawar, gelap sekali kalau malam.",
)


def complaint_texts() -> list[str]:
    """Real-world complaint texts (the incident-linking set), without the confidential
    topics: their messages are sealed, and a benchmark counts messages by their SID."""
    path = ROOT / "benchmarks" / "incidents" / "complaints.jsonl"
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return list(FALLBACK_TEXTS)
    texts = [str(r["text"]) for r in rows if r.get("topic") not in CONFIDENTIAL_TOPICS]
    return texts or list(FALLBACK_TEXTS)


TEXTS = complaint_texts()


# Processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(
    url: str, process: subprocess.Popen[bytes], what: str, within: float = 60
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited at start (code {process.returncode}).")
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback
                return
        except OSError:
            time.sleep(0.1)
    stop(process)
    raise SystemExit(f"{what} did not answer {url} within {within:g} s.")


def stop(process: subprocess.Popen[bytes] | None, timeout: float = 30) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any aduan setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADUAN_")}
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    env.update(extra)
    return env


def aduan_env(
    data_dir: str, *, redis_url: str | None = None, database_url: str | None = None, **extra: str
) -> dict[str, str]:
    """Settings for an `aduan` process of the benchmark's (the embedded default unless
    `redis_url`/`database_url` name others)."""
    env = clean_env(
        ADUAN_DATA_DIR=data_dir,
        ADUAN_TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        ADUAN_LOG_LEVEL="WARNING",
        ADUAN_RATE_LIMITS=NO_RATE_LIMITS,
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    if database_url:
        env["DATABASE_URL"] = database_url
    env.update(extra)
    return env


def start_gateway(
    env: dict[str, str], log: Path | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """`aduan serve --no-worker` on a free loopback port; returns it and its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **env,
        "ADUAN_HTTP_PORT": str(port),
        "ADUAN_SMTP_PORT": str(free_port()),
        "ADUAN_PUBLIC_URL": url,
    }
    process = spawn([sys.executable, "-m", "gateway.cli", "serve", "--no-worker"], env, log)
    wait_until_up(f"{url}/healthz", process, "aduan serve --no-worker")
    return process, url


def start_worker(env: dict[str, str], log: Path | None = None) -> subprocess.Popen[bytes]:
    return spawn([sys.executable, "-m", "gateway.cli", "worker"], env, log)


def spawn(
    command: Sequence[str], env: dict[str, str], log: Path | None = None
) -> subprocess.Popen[bytes]:
    if log is None:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    with log.open("ab") as handle:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=handle,
            start_new_session=True,
        )


def bare_server(port: int) -> None:
    """The floor: an aiohttp handler that parses the form and answers empty TwiML."""
    from gateway.runtime import loop_factory, settle_memory

    async def handler(request: web.Request) -> web.Response:
        await request.post()
        return web.Response(text=EMPTY_TWIML, content_type="text/xml")

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def settle(app: web.Application) -> None:
        settle_memory()

    app = web.Application()
    app.router.add_post("/webhooks/twilio", handler)
    app.router.add_get("/healthz", healthz)
    app.on_startup.append(settle)
    # The same event loop and collector settings as `aduan serve`: the floor is measured
    # on the footing aduan stands on.
    factory = loop_factory()
    loop = factory() if factory else None
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, loop=loop)


def start_bare() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = spawn([sys.executable, "-m", "benchmarks.common", "bare", str(port)], clean_env())
    url = f"http://127.0.0.1:{port}"
    wait_until_up(f"{url}/healthz", process, "the bare server")
    return process, url


# Signed webhooks


@dataclass(frozen=True)
class Signed:
    sid: str
    sender: str
    body: bytes
    signature: str


class Senders:
    """Indonesian mobile numbers, each used once in a run: one message per reporter, so
    no message continues another's case (a burst) and every one gets its own reply."""

    def __init__(self, start: int = 0) -> None:
        self.next = start

    def take(self) -> str:
        number = f"+62812{self.next % 10**8:08d}"
        self.next += 1
        return number


def sid_of(tag: str, index: int) -> str:
    """`tag`: 8 hex digits that no other batch of the run shares; 32 hex digits in all."""
    return f"SM{tag}{index:024x}"


def signed_requests(
    base_url: str, count: int, tag: str, senders: Senders | None = None
) -> list[Signed]:
    """Bodies and signatures made before the clock starts, by the twilio package itself."""
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(AUTH_TOKEN)
    url = f"{base_url}/webhooks/twilio"
    senders = senders or Senders()
    signed = []
    for i in range(count):
        sid = sid_of(tag, i)
        sender = senders.take()
        fields = {
            "ToCountry": "US",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "SmsSid": sid,
            "SmsStatus": "received",
            "Body": TEXTS[i % len(TEXTS)],
            "FromCountry": "ID",
            "To": SMS_TO,
            "NumSegments": "1",
            "MessageSid": sid,
            "AccountSid": ACCOUNT_SID,
            "From": sender,
            "ApiVersion": "2010-04-01",
        }
        signature = validator.compute_signature(url, fields)
        signed.append(Signed(sid, sender, urlencode(fields).encode(), signature))
    return signed


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


@dataclass
class Result:
    name: str
    seconds: float
    latencies: list[float]
    failures: int
    acknowledged: list[str] = field(default_factory=list)  # MessageSids answered 200

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """Milliseconds."""
        return percentile(self.latencies, p) * 1000


async def post_webhook(
    session: aiohttp.ClientSession, url: str, item: Signed
) -> tuple[bool, float]:
    """One signed webhook; (acknowledged with empty TwiML, seconds)."""
    started = time.perf_counter()
    try:
        async with session.post(
            f"{url}/webhooks/twilio",
            data=item.body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": item.signature,
            },
        ) as response:
            text = await response.text()
            ok = response.status == 200 and text == EMPTY_TWIML
    except (aiohttp.ClientError, TimeoutError):
        ok = False
    return ok, time.perf_counter() - started


async def hammer(
    name: str,
    url: str,
    requests: Sequence[Signed],
    concurrency: int,
    on_answer: Callable[[bool], None] | None = None,
) -> Result:
    """Closed loop: `concurrency` clients, each sending its next request once answered."""
    latencies: list[float] = []
    acknowledged: list[str] = []
    failures = 0
    pending = iter(requests)
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def client() -> None:
            nonlocal failures
            for item in pending:
                ok, elapsed = await post_webhook(session, url, item)
                if ok:
                    latencies.append(elapsed)
                    acknowledged.append(item.sid)
                else:
                    failures += 1
                if on_answer is not None:
                    on_answer(ok)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return Result(name, seconds, latencies, failures, acknowledged)


# Progress


class Bar:
    """A one-line progress bar on stderr. On a terminal it redraws in place (at most ten
    times a second); otherwise it writes a line at each quarter, so logs stay readable."""

    WIDTH = 28

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = max(total, 1)
        self.done = 0
        self.note = ""
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self._drawn = 0.0
        self._quarter = -1
        self._closed = False
        self._width = 0
        self.draw(force=True)

    def update(self, done: int, note: str = "") -> None:
        self.done = done
        self.note = note
        self.draw()

    def advance(self, by: int = 1) -> None:
        self.update(self.done + by, self.note)

    def tick(self, ok: bool = True) -> None:
        """One more answer (a `hammer` callback)."""
        self.advance()

    def draw(self, force: bool = False) -> None:
        if self._closed:
            return
        now = time.monotonic()
        fraction = min(1.0, self.done / self.total)
        if self.tty:
            if not force and now - self._drawn < 0.1:
                return
            self._drawn = now
            filled = int(self.WIDTH * fraction)
            rate = self.done / max(now - self.started, 1e-9)
            line = (
                f"\r{self.label:<34} [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
                f"{self.done}/{self.total} {rate:7.0f}/s {now - self.started:6.1f}s {self.note}"
            )
            self.stream.write(line + " " * max(0, self._width - len(line)))
            self._width = len(line)
            self.stream.flush()
            return
        quarter = int(fraction * 4)
        if force or self._quarter < quarter < 4:
            self._quarter = quarter
            self.stream.write(
                f"{self.label}: {self.done}/{self.total} after {now - self.started:.1f}s "
                f"{self.note}\n"
            )
            self.stream.flush()

    def close(self, note: str | None = None) -> None:
        if self._closed:
            return
        if note is not None:
            self.note = note
        self.draw(force=True)
        self._closed = True
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def say(text: str) -> None:
    """A status line on stderr, away from the final table on stdout."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


# /proc


def vm_hwm(pid: int) -> int | None:
    """Peak resident set size (VmHWM) of a running process, in bytes."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _processes() -> list[tuple[int, str, list[str]]]:
    """(pid, command name, the fields after it in /proc/<pid>/stat) of every process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid …": comm may hold spaces and parentheses.
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        found.append((int(entry.name), name, stat[stat.rindex(")") + 2 :].split()))
    return found


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, command name) of the processes whose parent is `pid`."""
    return [
        (p, name) for p, name, fields in _processes() if len(fields) > 1 and fields[1] == str(pid)
    ]


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def cpu_seconds(pids: Sequence[int]) -> float:
    """CPU seconds (user + system) the processes have used so far."""
    wanted = set(pids)
    return sum(_cpu(fields) for pid, _, fields in _processes() if pid in wanted)


def cpu_seconds_of(name: str) -> float:
    """CPU seconds used so far by every process with this command name (a database
    server's backends, which the benchmark did not start)."""
    return sum(_cpu(fields) for _, comm, fields in _processes() if comm == name)


def machine() -> dict[str, str]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except (OSError, ValueError):
        pass
    load = ""
    with contextlib.suppress(OSError):
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model or platform.processor() or "unknown",
        "memory": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load average at start": load,
    }


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "bare":
        bare_server(int(sys.argv[2]))
    else:
        raise SystemExit("usage: python -m benchmarks.common bare PORT")
