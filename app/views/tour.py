"""Tour: the paper's four properties, one step each, every step ending in a live result on the current bank."""

from __future__ import annotations

import logging

import streamlit as st

from app.logic.clip_media import audio_config, clip_audio, thumbnail
from app.logic.tour_steps import STEPS, TOUR_K, TourAnswer, run_tour
from app.widgets import clips, current, resources

logger = logging.getLogger(__name__)
INDEX = "tour_index"  # the step shown: an index into STEPS (kept apart from the widgets that change it)
PICKER = "tour_picker"
PRESENT = "tour_present"
#: Presentation mode: larger type, no sidebar, no header toolbar (Streamlit sizes its text in rem).
PRESENTATION_CSS = """<style>
html { font-size: 22px; }
section[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], [data-testid="stToolbar"],
[data-testid="stSidebarNav"] { display: none !important; }
[data-testid="stMainBlockContainer"] { max-width: 1300px; padding-top: 2rem; }
</style>"""


@st.cache_resource(show_spinner=False, max_entries=4)
def tour_answers(model_path: str, bank_path: str) -> list[TourAnswer]:
    """The four steps' answers, computed once per model and bank for every session (so each step is instant)."""
    return run_tour(resources.load_model(model_path), resources.load_bank(bank_path), TOUR_K)


def _clamp(i: object) -> int:
    return max(0, min(len(STEPS) - 1, int(i) if isinstance(i, int) else 0))


def _go(delta: int) -> None:
    st.session_state[INDEX] = _clamp(st.session_state.get(INDEX, 0) + delta)


def _pick() -> None:
    if st.session_state.get(PICKER) is not None:  # clicking the selected step again unselects it: stay there
        st.session_state[INDEX] = _clamp(st.session_state[PICKER])


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n:,}{suffix}"


def _query(answer: TourAnswer, bank_path: str, present: bool) -> None:
    """What the step asks with: the sentence, the sound (player + spectrogram) or the photo."""
    search = resources.load_bank(bank_path)
    key = answer.step.key
    if key == "text_video":
        st.markdown(f"### \u201c{answer.query_text}\u201d")
        return
    row = answer.query_row
    clip = str(search.meta.iloc[row]["clip_id"])
    if key in ("sound_video", "audio_text"):
        cfg = audio_config(search.bank)
        wave = clip_audio(search.bank, row, cfg)
        if wave is not None:
            st.audio(wave, sample_rate=int(cfg.sample_rate))
        spec = clips.spectrogram(bank_path, int(row))
        if spec is not None:
            st.image(spec, caption=f"The sound of {clip} (log-mel spectrogram)", width=480)
    elif answer.image is not None:
        st.image(answer.image, caption=f"A still frame of {clip}", width=256 if not present else 320)
    if answer.query_text and not present:
        st.caption(f"The clip shows: *{answer.query_text}* (hidden from the model: its labels are only used to "
                   "score the answer).")  # fmt: skip


def _result(answer: TourAnswer, bank_path: str, present: bool) -> None:
    """The live answer: the top-k hits (thumbnails or narrations), the own-item rank and the agreement."""
    search = resources.load_bank(bank_path)
    step = answer.step
    st.subheader(f"Result: {step.query} \u2192 {step.target} in S_{answer.space}")
    hits = answer.hits
    if step.target == "video":
        cols = st.columns(len(hits))
        for col, hit in zip(cols, hits.itertuples(index=False)):
            with col:
                thumb = thumbnail(search.bank, int(hit.row))
                if thumb is not None:
                    st.image(str(thumb), width="stretch")
                st.markdown(f"**{hit.rank}. {hit.clip_id}**")
                st.caption(f"cosine {hit.score:.3f}" + (f" \u00b7 same {hit.shared}" if hit.shared else ""))
                if hit.description and not present:
                    st.caption(f"*{hit.description}*")
    else:
        for hit in hits.itertuples(index=False):
            st.markdown(f"**{hit.rank}. {hit.clip_id}** \u00b7 cosine {hit.score:.3f}: {hit.narration}")
            if hit.shared or (hit.description and not present):
                st.caption(f"narration of a clip showing *{hit.description}*"
                           + (f" (same {hit.shared})" if hit.shared else ""))  # fmt: skip
    if answer.agreement:
        cols = st.columns(len(answer.agreement) + (answer.own_rank is not None))
        for col, (name, share) in zip(cols, answer.agreement.items()):
            chance = answer.baseline.get(name, 0.0)
            col.metric(
                f"same {name} in the top {len(hits)}",
                _pct(share),
                f"{100 * (share - chance):+.0f} pts vs chance",
                help=f"{_pct(chance)} of the bank's {step.target} items share it",
            )
        if answer.own_rank is not None:
            cols[-1].metric(f"its own {step.target}", f"{_ordinal(answer.own_rank)} of {answer.targets:,}")
    elif answer.own_rank is not None:
        st.metric(f"its own {step.target}", f"{_ordinal(answer.own_rank)} of {answer.targets:,}")
    if answer.descriptions:
        nearest = "; ".join(f"*{t}* ({s:.3f})" for t, s in answer.descriptions)
        st.markdown(f"Nearest descriptions to this sound: {nearest}")
    for note in answer.notes:
        st.caption(note)


st.title("Tour")
present = st.toggle("Presentation mode", key=PRESENT, help="Larger type, no sidebar, fewer controls.")
if present:
    st.markdown(PRESENTATION_CSS, unsafe_allow_html=True)
else:
    st.caption(
        "Four properties of multimodal versatile networks, each shown live on the model and bank chosen in the "
        "sidebar. Every query comes from the bank itself; the four answers are computed once when the tour opens, "
        "so each step answers at once."
    )

model_path, bank_path = current.paths()
current.bank()
current.model()
try:
    with st.spinner("Preparing the tour's four queries\u2026"):
        answers = tour_answers(model_path, bank_path)
except Exception as e:  # e.g. a bank built by another model: say so, never a traceback
    logger.exception("tour on %s / %s", model_path, bank_path)
    st.error(f"The tour cannot run on this model and bank: {type(e).__name__}: {e}")
    st.stop()

index = _clamp(st.session_state.get(INDEX, 0))
if not present:
    st.session_state[PICKER] = index  # in step with Previous / Next
    st.segmented_control(
        "Step", list(range(len(STEPS))), key=PICKER, on_change=_pick, label_visibility="collapsed",
        format_func=lambda i: f"{i + 1}. {STEPS[i].title}",
    )  # fmt: skip
answer = answers[index]
step = answer.step

st.header(f"{index + 1} / {len(STEPS)} \u00b7 {step.title}")
st.markdown(f"#### {step.claim}")
if not present:
    st.markdown(step.explanation)

if answer.missing:
    st.info(f"This step cannot run here: {answer.missing}")
else:
    _query(answer, bank_path, present)
    _result(answer, bank_path, present)
    if not present:
        with st.expander("Details"):
            st.dataframe(clips.hits_table(answer.hits).assign(shared=answer.hits["shared"]), hide_index=True,
                         key=f"tour_details_{step.key}")  # fmt: skip
            st.caption(f"Answered in {1000 * answer.seconds:.0f} ms when the tour was prepared, shown from the cache.")

prev_col, _, next_col = st.columns([1, 4, 1])
prev_col.button("\u2190 Previous", key="tour_prev", on_click=_go, args=(-1,), disabled=index == 0, width="stretch")
next_col.button("Next \u2192", key="tour_next", on_click=_go, args=(1,), disabled=index == len(STEPS) - 1,
                width="stretch")  # fmt: skip
