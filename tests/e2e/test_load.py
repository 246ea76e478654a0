"""The app under load: 8 browser sessions querying and uploading at the same time against one ``streamlit run app``.

One server (its own, so its log and process group are this test's) on loopback; 8 tabs of Chromium, each its own
Streamlit session. Four sessions type text queries on the Retrieval page, four upload files on the Upload page
(bundled toy-world clips, each a different file, and now and then a JPEG still), for :data:`LOAD_SECONDS`.
Playwright's sync API is not thread-safe, so one thread drives all tabs: each session is a generator that acts
(types, uploads) and yields a check; the driver polls every session's check in turn and resumes the session when
its answer is on the page, so the server always has several runs in flight.

Checked: every query issued got its answer (a query-specific mark on the page, then the run's end, then the right
number of results), within :data:`ANSWER_TIMEOUT`; no session shows an exception and the server log holds no
traceback; the model and the bank were each loaded once (``mmv.app.loads`` lines, ``app/widgets/resources.py``); the
upload directory stayed within ``state.MAX_UPLOAD_DIRS``; and the server's memory (RSS summed over its process
group, sampled from ``/proc`` every 0.2 s) grew by less than :data:`RSS_MARGIN_MIB` over its level once every
session had its first answer. Bounded to about a minute on 2 cores (``MMV_LOAD_SECONDS`` changes the load phase).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from app_helpers import TOYWORLD

from app.logic import state

from .conftest import IDLE, STARTUP_TIMEOUT, start_server, stop_server, wait_for_health

SESSIONS = 8
LOAD_SECONDS = float(os.environ.get("MMV_LOAD_SECONDS", "15"))
ANSWER_TIMEOUT = 45.0
#: Growth allowed above the warm level (MiB). Measured on the tiny model: the warm server holds ~450-470 MiB and
#: 15 s of load add 13-40 MiB (session states, prepared uploads, figures); a leak per query would pass it quickly.
RSS_MARGIN_MIB = 200
RESULT = re.compile(r"^\d+\. \S+ \u00b7 (video|audio|text) \u00b7 cosine")

Check = Callable[[], bool]


# ---------------------------------------------------------------------------------------------------
# Memory of the server's process group
# ---------------------------------------------------------------------------------------------------


def group_rss(pgid: int) -> int:
    """Resident memory (bytes) of every process in process group ``pgid``, read from ``/proc``."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
            if int(fields[2]) != pgid:  # state, ppid, pgrp
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):  # the process ended meanwhile
            continue
    return total


class RssSampler(threading.Thread):
    """Samples :func:`group_rss` every ``period`` seconds until stopped (no Playwright call: thread-safe)."""

    def __init__(self, pgid: int, period: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pgid, self.period = pgid, period
        self.samples: list[tuple[float, int]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.samples.append((time.monotonic(), group_rss(self.pgid)))
            self._stop_event.wait(self.period)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)

    def peak_after(self, t0: float) -> int:
        return max((rss for t, rss in self.samples if t >= t0), default=0)


# ---------------------------------------------------------------------------------------------------
# Sessions
# ---------------------------------------------------------------------------------------------------


def _idle(page) -> bool:
    return page.locator(IDLE).count() > 0


def _shows(page, text: str) -> bool:
    return page.get_by_text(text).count() > 0


def _results(page) -> list[str]:
    return page.get_by_text(RESULT).all_inner_texts()


def _word(n: int) -> str:
    """A word no vocabulary holds, unique per ``n`` (letters only, so the tokenizer keeps it whole)."""
    letters = ""
    n += 26 * 26
    while n:
        n, r = divmod(n, 26)
        letters += chr(ord("a") + r)
    return "qzx" + letters


@dataclass
class Session:
    """One tab: its generator of checks, and what it asked and got."""

    name: str
    page: object
    script: Generator[Check, None, None] | None = None
    check: Check | None = None
    since: float = 0.0
    asked: int = 0
    answered: int = 0
    latencies: list[float] = field(default_factory=list)
    done: bool = False
    stills: list[Path] = field(default_factory=list)  # JPEGs an upload session sends now and then


def text_session(session: Session, url: str, index: int, until: Callable[[], bool]) -> Generator[Check, None, None]:
    """Text queries on the Retrieval page: each carries an unknown word, which the page names once it is embedded."""
    page = session.page
    page.goto(f"{url}/retrieval")
    yield lambda: _shows(page, "text \u2192 video in S_vat: top 10") and _idle(page)
    n = 0
    while not until():
        word = _word(1000 * index + n)
        box = page.get_by_label("Text query")
        box.fill(f"a {('red', 'blue', 'green')[n % 3]} circle moves {word}")
        box.press("Enter")
        session.asked += 1
        yield lambda word=word: _shows(page, word) and _idle(page)
        assert len(_results(page)) == 10, f"{session.name}: query {n} did not list 10 results"
        session.answered += 1
        n += 1


def upload_session(session: Session, url: str, index: int, until: Callable[[], bool]) -> Generator[Check, None, None]:
    """Uploads on the Upload page: a clip (or every third time a JPEG still), then the file removed, again."""
    page = session.page
    page.goto(f"{url}/upload")
    yield lambda: _shows(page, "Choose a file.") and _idle(page)
    n = 0
    while not until():
        clip = (4 * n + index) % 48
        path = TOYWORLD / "clips" / f"{clip:06d}.mp4"
        jpeg = session.stills[clip % len(session.stills)] if n % 3 == 2 and session.stills else None
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(jpeg or path))
        session.asked += 1
        yield lambda: _shows(page, "Your query on the maps") and _idle(page)
        assert len(_results(page)) >= 2, f"{session.name}: upload {n} listed no results"
        session.answered += 1
        page.locator('[data-testid="stFileChipDeleteBtn"]').first.click()
        yield lambda: _shows(page, "Choose a file.") and not _shows(page, "Your query on the maps") and _idle(page)
        n += 1


def drive(sessions: list[Session], poll: float = 0.05) -> None:
    """Resumes each session whenever its check passes, until every script has ended; fails on a late answer."""
    for s in sessions:
        s.check, s.since = next(s.script), time.monotonic()
    waiter = sessions[0].page
    while not all(s.done for s in sessions):
        for s in sessions:
            if s.done or not s.check():
                if not s.done and time.monotonic() - s.since > ANSWER_TIMEOUT:
                    body = s.page.inner_text("body")[-1500:]
                    pytest.fail(f"{s.name}: no answer within {ANSWER_TIMEOUT:.0f} s (asked {s.asked})\n{body}")
                continue
            s.latencies.append(time.monotonic() - s.since)
            try:
                s.check, s.since = next(s.script), time.monotonic()
            except StopIteration:
                s.done = True
        waiter.wait_for_timeout(poll * 1000)


def test_eight_sessions_query_and_upload_at_once(app_paths, browser, tmp_path):
    t_start = time.monotonic()
    log = tmp_path / "streamlit.log"
    stills = sorted((Path(app_paths[1]) / "thumbs").glob("*.jpg"))[:8]
    process, url = start_server(*app_paths, log)
    sampler = RssSampler(process.pid)  # start_new_session: the server's pid is its process group
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    try:
        wait_for_health(url, STARTUP_TIMEOUT, process)
        sampler.start()
        sessions = [Session(f"session {i}", context.new_page()) for i in range(SESSIONS)]
        for s in sessions:
            s.page.set_default_timeout(30_000)
            s.stills = stills
        warm = {"t": None}
        stop_at: dict[str, float] = {}

        def until() -> bool:  # the load phase starts once every session has its first page
            if warm["t"] is None and all(s.latencies for s in sessions):
                warm["t"] = time.monotonic()
                stop_at["t"] = warm["t"] + LOAD_SECONDS
            return "t" in stop_at and time.monotonic() > stop_at["t"]

        for i, s in enumerate(sessions):
            make = text_session if i % 2 == 0 else upload_session
            s.script = make(s, url, i, until)
        drive(sessions)
        warm_rss = min((rss for t, rss in sampler.samples if t >= warm["t"]), default=0)
        peak_rss = sampler.peak_after(warm["t"])
        for s in sessions:
            assert s.page.locator('[data-testid="stException"]').count() == 0, s.name
            assert "Traceback" not in s.page.inner_text("body"), s.name
    finally:
        context.close()
        sampler.stop()
        stop_server(process)
    text = log.read_text(errors="replace")
    elapsed = time.monotonic() - t_start
    asked, answered = sum(s.asked for s in sessions), sum(s.answered for s in sessions)
    uploads = sum(s.answered for i, s in enumerate(sessions) if i % 2 == 1)
    latencies = sorted(x for s in sessions for x in s.latencies[1:])
    print(
        f"\nload: {SESSIONS} sessions, {answered}/{asked} answers ({uploads} uploads) in {LOAD_SECONDS:.0f} s of load; "
        f"median answer {latencies[len(latencies) // 2]:.2f} s, slowest {latencies[-1]:.2f} s; RSS warm "
        f"{warm_rss / 2**20:.0f} MiB, peak {peak_rss / 2**20:.0f} MiB; test {elapsed:.1f} s"
    )
    assert answered == asked and asked >= SESSIONS, (answered, asked)
    assert all(s.answered >= 1 for s in sessions), [(s.name, s.answered) for s in sessions]
    assert "Traceback" not in text and " ERROR " not in text, text[-3000:]
    assert len(re.findall(r"mmv\.app\.loads: loaded the model ", text)) == 1, text[-3000:]
    assert len(re.findall(r"mmv\.app\.loads: loaded the bank ", text)) == 1, text[-3000:]
    upload_dirs = [p for p in (tmp_path / "uploads").iterdir() if p.is_dir()]
    assert 0 < len(upload_dirs) <= state.MAX_UPLOAD_DIRS
    assert peak_rss - warm_rss < RSS_MARGIN_MIB * 2**20, (warm_rss, peak_rss)
