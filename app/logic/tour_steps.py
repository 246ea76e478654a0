"""The guided tour: the paper's four properties, each shown by one live query on the current model and bank.

The Tour page (``app/views/tour.py``) lays it out and caches :func:`run_tour` once per model and bank, so every
step answers at once. The steps (:data:`STEPS`):

1. **text -> video** (S_vat): a sentence finds the clips it describes.
2. **sound -> video** (S_va): a clip's sound finds videos that look like it sounds.
3. **audio -> text** (S_vat): in the FAC graph audio reaches S_vat only through the video's ``va_vat`` head, and
   no loss ever pairs audio with text, yet a sound finds narrations of clips like it.
4. **photo -> video** (S_va): one still frame, through the *deflated* video network (``MMV.encode_image``),
   finds the clip it was taken from and clips like it.

Every query comes from the bank itself (:func:`choose_queries`), so the tour runs offline on any bank: the text
is the commonest clean description of the bank's clips (``meta["description"]``, toy world), else the first
narration; the sound is a bank clip's stored audio embedding (what the model made of that clip's sound when the
bank was built); the photo is the middle frame of a bank clip, read from its video and put through the model's
evaluation crop. A step whose modality the model or the bank lacks is returned with ``missing`` set (the page
says why) instead of failing.

Each answer lists the top-k hits (:meth:`~app.logic.bank_search.BankSearch.search`), where the query's own clip ranks
among all targets, and, when the bank has toy-world labels, how many hits share the query clip's colour, shape and
motion against the share of the whole bank (what chance would give).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from app.logic.bank_search import BankSearch, QueryError, space_for

if TYPE_CHECKING:
    from mmv.models.mmv import MMV

#: Toy-world labels compared between a query clip and its hits: ``(meta column, name)``.
ATTRIBUTES = (("label_colour", "colour"), ("label_shape", "shape"), ("label_motion", "motion"))
TOUR_K = 5
#: Clips tried for the sound of steps 2 and 3 (:func:`choose_queries`).
SOUND_CANDIDATES = 64


@dataclass(frozen=True)
class Step:
    """The fixed text of one step.

    Attributes:
        key: ``text_video``, ``sound_video``, ``audio_text`` or ``photo_video``.
        title: short heading.
        query / target: the modalities (the photo searches as ``video``).
        claim: the property of the paper, one sentence.
        explanation: how the model does it (Markdown).
    """

    key: str
    title: str
    query: str
    target: str
    claim: str
    explanation: str


STEPS = (
    Step(
        "text_video", "Text finds video", "text", "video",
        "A sentence retrieves the clips it describes.",
        "The text tower (word vectors, a linear layer, max over words) and the video tower are trained so that a "
        "clip and its narration land close together in **S_vat**, the space of vision, audio *and* text. "
        "Here the query is a plain description; nothing in the bank was labelled for it.",
    ),
    Step(
        "sound_video", "Sound finds video", "audio", "video",
        "What a clip sounds like retrieves clips that look like it.",
        "Audio and video meet in the fine space **S_va**, trained on the natural correspondence between "
        "what is seen and what is heard. In the toy world the timbre follows the shape, the pitch the "
        "colour and the rhythm the motion, so a sound should bring back videos of the same kind of object.",
    ),
    Step(
        "audio_text", "Audio finds text it was never paired with", "audio", "text",
        "Audio and text meet in S_vat although no training pair ever put them together.",
        "In the **fine-and-coarse (FAC)** graph, audio enters S_va, and only the *video's* S_va \u2192 S_vat head "
        "leads on to the text space; the losses pair video with audio and video with text, never audio with "
        "text. Reusing that head for audio at evaluation is enough to compare a sound with narrations.",
    ),
    Step(
        "photo_video", "A photo finds video", "video", "video",
        "A still image, through the deflated video network, retrieves videos.",
        "**Deflation** turns the video network into an image network: each 3-D convolution's kernel is summed "
        "over time, so a single frame goes through the same weights (`MMV.encode_image`). Recalibrated "
        "BatchNorm parameters, learnt once, close the gap to a static clip. The photo here is the middle frame "
        "of a bank clip: motion cannot show in a still, so colour and shape should agree more than motion.",
    ),
)  # fmt: skip


@dataclass
class TourQueries:
    """The queries of the tour, picked from the bank (:func:`choose_queries`); ``None`` where none exists."""

    text: str | None = None
    text_row: int | None = None  # a clip the text describes (for the attribute comparison)
    audio_row: int | None = None
    photo_row: int | None = None


@dataclass
class TourAnswer:
    """The live result of one step.

    Attributes:
        step: the :class:`Step`.
        space: where the search ran (``None`` when the step could not run).
        hits: top-k (:data:`~app.logic.bank_search.HIT_COLUMNS`) plus ``shared``: the attribute names a hit shares
            with the query clip (empty strings without labels).
        query_row: the bank clip the query comes from (``None`` for a typed text).
        query_text: the text query, or the query clip's description.
        image: the photo as the model sees it, uint8 ``[S, S, 3]`` (photo step only).
        own_rank: rank (1 = first) of the query clip's own item among all targets of the bank, or ``None``.
        targets: how many items were searched.
        agreement: ``{attribute: share of hits with the query clip's value}``; ``baseline``: the share among all
            targets (chance).
        notes: what the page should say besides the hits (the image network used, ...).
        missing: why the step cannot run on this model and bank (then ``hits`` is empty).
        seconds: time the query took (embedding + search).
    """

    step: Step
    space: str | None = None
    hits: pd.DataFrame = field(default_factory=pd.DataFrame)
    query_row: int | None = None
    query_text: str | None = None
    image: np.ndarray | None = None
    own_rank: int | None = None
    targets: int = 0
    agreement: dict[str, float] = field(default_factory=dict)
    baseline: dict[str, float] = field(default_factory=dict)
    descriptions: list[tuple[str, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    missing: str | None = None
    seconds: float = 0.0


# ---------------------------------------------------------------------------------------------------
# Queries from the bank
# ---------------------------------------------------------------------------------------------------


def _rows_with(search: BankSearch, modality: str) -> set[int]:
    return {r for s, mods in search.spaces.items() if modality in mods for r in search.positions(s, modality)}


def _preferred(search: BankSearch, rows: set[int], prefer: dict[str, str] | None = None) -> list[int]:
    """``rows`` in order of preference: test-split clips first, then those whose labels match ``prefer``
    (e.g. one object, static), then by row number."""
    meta = search.meta
    split = meta["split"].astype(str).to_numpy() if "split" in meta else None
    wanted = [(meta[c].astype(str).to_numpy(), v) for c, v in (prefer or {}).items() if c in meta]

    def key(r: int) -> tuple:
        misses = sum(col[r] != v for col, v in wanted)
        return (split is None or split[r] != "test", misses, r)

    return sorted(rows, key=key)


def _own_ranks(search: BankSearch, rows: list[int], query: str, target: str) -> np.ndarray | None:
    """Rank (1-based) of each row's own ``target`` item for its ``query`` vector, over the bank's size (0-1]:
    float ``[len(rows)]``, ``1`` where a row lacks either vector; ``None`` when the modalities never meet."""
    space = space_for(search.spaces, query, target)
    if space is None:
        return None
    q_pos, t_pos = search.positions(space, query), search.positions(space, target)
    out = np.ones(len(rows))
    ok = [i for i, r in enumerate(rows) if r in q_pos and r in t_pos]
    if not ok:
        return out
    targets = np.asarray(search.bank.vectors(space, target), dtype=np.float32)  # [N, D]
    queries = np.asarray(search.bank.vectors(space, query), dtype=np.float32)[[q_pos[rows[i]] for i in ok]]
    scores = queries @ targets.T  # [C, N]
    own = scores[np.arange(len(ok)), [t_pos[rows[i]] for i in ok]]
    out[ok] = (1 + (scores > own[:, None]).sum(axis=1)) / len(targets)
    return out


def _split(search: BankSearch, row: int) -> str | None:
    return str(search.meta["split"].iloc[row]) if "split" in search.meta else None


def _clearest_sound(search: BankSearch, candidates: list[int]) -> int:
    """The candidate whose sound best finds its own video and its own narration (sum of their relative ranks)."""
    if len(candidates) < 2:
        return candidates[0]
    total = np.zeros(len(candidates))
    for target in ("video", "text"):
        ranks = _own_ranks(search, candidates, "audio", target)
        if ranks is not None:
            total += ranks
    return candidates[int(np.argmin(total))]  # the first of the best: deterministic


def choose_queries(search: BankSearch) -> TourQueries:
    """The tour's queries for a bank (deterministic: the same bank gives the same tour).

    * text: the commonest ``description`` among clips with a video (ties: alphabetical), with the first such
      clip; else the first narration line of the first clip with text.
    * sound: among the first :data:`SOUND_CANDIDATES` clips with audio, video and text (of the test split when
      there is one; single objects first), the one whose sound ranks its own video and its own narration
      highest: a clear example, as a teacher would pick one (the Metrics page gives the typical numbers).
    * photo: the first clip with a video file (test split, single object, static first: a still frame of a
      static clip shows all there is to see), other than the sound's clip when possible.
    """
    meta = search.meta
    out = TourQueries()
    video_rows = _rows_with(search, "video")
    if "description" in meta and video_rows:
        desc = meta["description"].iloc[sorted(video_rows)].dropna().astype(str)
        desc = desc[desc.str.strip() != ""]
        if len(desc):
            counts = desc.value_counts()
            best = sorted(counts[counts == counts.max()].index)[0]
            out.text, out.text_row = best, int(desc.index[desc.to_numpy() == best][0])
    if out.text is None:
        for row in sorted(_rows_with(search, "text")):
            line = search.clip_text(row)["narration"].split(" / ")[0].strip()
            if line:
                out.text, out.text_row = line, None
                break
    audio = _rows_with(search, "audio")
    both = audio & video_rows
    with_text = both & _rows_with(search, "text")
    single = {"label_n_objects": "1"}
    for pool in (with_text, both, audio):
        held_out = {r for r in pool if _split(search, r) == "test"}
        pool = held_out or pool  # clips the model was not trained on, when the bank says which
        if pool:
            out.audio_row = _clearest_sound(search, _preferred(search, pool, single)[:SOUND_CANDIDATES])
            break
    if "video_path" in meta:
        paths = meta["video_path"]
        has_file = {r for r in video_rows if isinstance(paths.iloc[r], str) and paths.iloc[r]}
        order = _preferred(search, has_file, {**single, "label_motion": "static"})
        others = [r for r in order if r != out.audio_row]
        out.photo_row = (others or order or [None])[0]
    return out


def bank_frame(search: BankSearch, row: int, frame_size: int) -> np.ndarray:
    """The middle frame of a bank clip's window after the model's evaluation crop: uint8 ``[S, S, 3]``.

    Read from the clip's source video (the bank's preview is re-encoded and smaller), resized on the short side
    to ``frame_size`` and centre-cropped, as an uploaded image is.
    """
    import torch

    from app.logic.clip_media import _resolve
    from mmv.data.media import read_frames_at
    from mmv.data.transforms import EvalVideoTransform

    rec = search.meta.iloc[int(row)]
    start = float(rec.get("start") or 0.0)
    end = rec.get("end")
    middle = start + (float(end) - start) / 2.0 if end is not None and not pd.isna(end) else start
    frame = read_frames_at(_resolve(search.bank, str(rec["video_path"])), [middle])  # [1, H, W, 3]
    return EvalVideoTransform(frame_size)(torch.from_numpy(np.ascontiguousarray(frame)))[0].numpy()


# ---------------------------------------------------------------------------------------------------
# The live queries
# ---------------------------------------------------------------------------------------------------


def own_rank(search: BankSearch, space: str, vector: np.ndarray, target: str, row: int) -> int | None:
    """Rank (1-based) of clip ``row``'s own ``target`` item among all ``target`` items for ``vector``, or ``None``."""
    pos = search.positions(space, target).get(int(row))
    if pos is None:
        return None
    scores = np.asarray(search.bank.vectors(space, target), dtype=np.float32) @ np.asarray(vector, np.float32)
    return int(1 + np.count_nonzero(scores > scores[pos]))


def _labels(search: BankSearch) -> list[tuple[str, str]]:
    return [(col, name) for col, name in ATTRIBUTES if col in search.meta]


def _compare(search: BankSearch, answer: TourAnswer, row: int | None, space: str, target: str) -> None:
    """Fills ``shared``, ``agreement`` and ``baseline`` from the toy-world labels of the query clip ``row``."""
    labels = _labels(search)
    answer.hits["shared"] = ""
    if row is None or not labels or answer.hits.empty:
        return
    meta = search.meta
    hit_rows = answer.hits["row"].to_numpy()
    targets = np.fromiter(search.positions(space, target), dtype=np.int64)
    shared = [[] for _ in hit_rows]
    for col, name in labels:
        value = meta[col].iloc[row]
        same = meta[col].iloc[hit_rows].to_numpy() == value
        for i, s in enumerate(same):
            if s:
                shared[i].append(name)
        answer.agreement[name] = float(same.mean())
        answer.baseline[name] = float((meta[col].iloc[targets].to_numpy() == value).mean())
    answer.hits["shared"] = [", ".join(s) for s in shared]


def _search(
    search: BankSearch, answer: TourAnswer, vectors: dict[str, np.ndarray], k: int, own: int | None, like: int | None
) -> None:
    """Top-k in the step's direction; ``own``: the clip whose item is ranked; ``like``: whose labels are compared."""
    step = answer.step
    answer.space = space_for(search.spaces, step.query, step.target)
    if answer.space is None or answer.space not in vectors:
        answer.missing = f"This bank has no space where {step.query} and {step.target} meet."
        return
    answer.hits = search.search(vectors, step.query, step.target, k).reset_index(drop=True)
    answer.targets = len(search.positions(answer.space, step.target))
    if own is not None:
        answer.own_rank = own_rank(search, answer.space, vectors[answer.space], step.target, own)
    _compare(search, answer, like, answer.space, step.target)


def text_to_video(model: MMV, search: BankSearch, text: str, row: int | None = None, k: int = TOUR_K) -> TourAnswer:
    """Step 1: the text embedded by the model (as the Retrieval page does), top-k videos in S_vat.

    ``row``: a clip the text describes; its labels are compared with the hits' (its own rank is not: a
    description is not the clip's narration).
    """
    from app.logic.query_embedding import embed_query, prepare_text
    from app.logic.uploads import UploadError

    answer = TourAnswer(STEPS[0], query_text=text)
    if model is None or "text" not in model.config.modalities or model.vocab is None:
        answer.missing = "This model has no text tower (or no vocabulary): it cannot read a sentence."
        return answer
    t0 = time.perf_counter()
    try:
        vectors = embed_query(model, prepare_text(text, model.config))["text"]
    except UploadError as e:
        answer.missing = str(e)
        return answer
    _search(search, answer, vectors, k, None, row)
    answer.seconds = time.perf_counter() - t0
    return answer


def sound_to_video(search: BankSearch, row: int, k: int = TOUR_K) -> TourAnswer:
    """Step 2: bank clip ``row``'s audio embedding, top-k videos in S_va; where its own video ranks."""
    t0 = time.perf_counter()
    answer = TourAnswer(STEPS[1], query_row=int(row), query_text=search.clip_text(row)["description"] or None)
    _search(search, answer, search.row_vectors(row, "audio"), k, int(row), int(row))
    answer.seconds = time.perf_counter() - t0
    return answer


def audio_to_text(search: BankSearch, row: int, k: int = TOUR_K, graph: str | None = None) -> TourAnswer:
    """Step 3: bank clip ``row``'s audio in S_vat, top-k narrations; its own narration's rank; the nearest
    clean descriptions of the bank (toy world) to the sound."""
    t0 = time.perf_counter()
    answer = TourAnswer(STEPS[2], query_row=int(row), query_text=search.clip_text(row)["description"] or None)
    vectors = search.row_vectors(row, "audio")
    _search(search, answer, vectors, k, int(row), int(row))
    if answer.missing is None and answer.space is not None:
        sentences, table = search.bank.descriptions()
        if sentences and table.shape[1] == len(vectors[answer.space]):
            scores = np.asarray(table, np.float32) @ vectors[answer.space]
            best = np.argsort(-scores, kind="stable")[:3]
            answer.descriptions = [(sentences[i], float(scores[i])) for i in best]
    if graph is not None and graph.startswith("fac"):
        answer.notes.append(
            "FAC: the sound reached S_vat through the video's S_va \u2192 S_vat head; no loss paired audio with text."
        )
    elif graph == "shared":
        answer.notes.append("Shared graph: audio and text live in the same single space, so this pairing is direct.")
    answer.seconds = time.perf_counter() - t0
    return answer


def photo_to_video(model: MMV, search: BankSearch, row: int, k: int = TOUR_K) -> TourAnswer:
    """Step 4: the middle frame of clip ``row`` through ``model.encode_image`` (calibrated deflation when the
    checkpoint has it, else naive), top-k videos in S_va; where the frame's own clip ranks."""
    import torch

    from app.logic.query_embedding import PreparedQuery, embed_query

    answer = TourAnswer(STEPS[3], query_row=int(row), query_text=search.clip_text(row)["description"] or None)
    if model is None or "video" not in model.config.modalities:
        answer.missing = "This model has no video tower, so no image network to deflate."
        return answer
    t0 = time.perf_counter()
    try:
        image = bank_frame(search, row, model.config.video.frame_size)
    except Exception as e:  # a missing or unreadable source video: the step says so
        answer.missing = f"The clip's video cannot be read ({type(e).__name__}: {e})."
        return answer
    answer.image = image
    calibrated = model.calibrated_deflation is not None
    photo = PreparedQuery(
        kind="image", name=f"frame of row {row}", digest=f"bank-frame-{row}", image=torch.from_numpy(image)
    )
    vectors = embed_query(model, photo)["video"]  # encode_image, exactly as an uploaded image
    answer.notes.append(
        "Image network: the deflated video network with its recalibrated BatchNorm."
        if calibrated
        else "Image network: naive deflation (this checkpoint has no recalibration: `python -m training.deflate`)."
    )
    try:
        _search(search, answer, vectors, k, int(row), int(row))
    except QueryError as e:
        answer.missing = str(e)
    answer.seconds = time.perf_counter() - t0
    return answer


def run_tour(model: MMV, search: BankSearch, k: int = TOUR_K, queries: TourQueries | None = None) -> list[TourAnswer]:
    """All four steps' answers (in :data:`STEPS` order) for a model and its bank."""
    q = queries or choose_queries(search)
    graph = getattr(getattr(model, "config", None), "graph", None)
    answers = []
    if q.text is None:
        answers.append(TourAnswer(STEPS[0], missing="The bank has no description or narration to build a text from."))
    else:
        answers.append(text_to_video(model, search, q.text, q.text_row, k))
    if q.audio_row is None:
        answers.append(TourAnswer(STEPS[1], missing="The bank has no clip with sound."))
        answers.append(TourAnswer(STEPS[2], missing="The bank has no clip with sound."))
    else:
        answers.append(sound_to_video(search, q.audio_row, k))
        answers.append(audio_to_text(search, q.audio_row, k, graph))
    if q.photo_row is None:
        answers.append(TourAnswer(STEPS[3], missing="The bank has no clip with a video file to take a frame from."))
    else:
        answers.append(photo_to_video(model, search, q.photo_row, k))
    return answers
