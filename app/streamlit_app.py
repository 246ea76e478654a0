"""mmv explorer: ``streamlit run app`` (from the repository root, so ``.streamlit/config.toml`` applies).

The entry script: page setup, the shared sidebar (checkpoint and bank, with a summary of the bank), and the
navigation over one file per page in ``app/views/``. To add a page, write ``app/views/<name>.py`` (layout only;
logic in ``app/logic/``) and list it in :data:`PAGES` (not in a ``pages/`` folder: see ``app/__init__.py``). The
model and the bank are loaded once per server (``app/widgets/resources.py``); the Spaces page needs only the bank,
so the first page renders without loading the model.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run app` puts app/ on the path, not the repository
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app.logic import state  # noqa: E402

#: ``(file, title, icon)`` of every page, in the order of the navigation; the first is the default.
PAGES = (
    ("views/spaces.py", "Spaces", ":material/scatter_plot:"),
    ("views/retrieval.py", "Retrieval", ":material/search:"),
    ("views/upload.py", "Upload", ":material/upload_file:"),
    ("views/metrics.py", "Metrics", ":material/leaderboard:"),
    ("views/deflation_lab.py", "Deflation lab", ":material/photo_camera:"),
    ("views/model.py", "Model", ":material/model_training:"),
    ("views/tour.py", "Tour", ":material/school:"),
)


@st.cache_data(ttl=30, show_spinner=False)
def _choices() -> tuple[list[str], list[str]]:
    return (
        state.options(state.find_checkpoints(), state.default_model()),
        state.options(state.find_banks(), state.default_bank()),
    )


def _bank_summary(bank_path: str, model_path: str) -> None:
    from app.widgets import resources

    if not state.is_bank(Path(bank_path)):
        st.warning(f"No bank at `{state.display_path(bank_path)}`.")
        return
    try:
        search = resources.load_bank(bank_path)
    except Exception as e:  # shown on the pages too; the sidebar only summarises
        st.warning(f"The bank cannot be loaded: {e}")
        return
    spaces = " \u00b7 ".join(f"S_{s}: {', '.join(m)}" for s, m in search.spaces.items())
    st.caption(f"{len(search.meta):,} clips \u00b7 {spaces}")
    built_from = search.bank.provenance.get("checkpoint", {})
    source = built_from.get("path") if isinstance(built_from, dict) else built_from
    if source:
        st.caption(f"Built from `{state.display_path(source)}`")
        try:
            same = Path(source).resolve() == Path(model_path).resolve()
        except OSError:
            same = True
        if not same:
            st.warning(
                "This bank was built with another checkpoint: queries embedded by the chosen model may not be "
                "comparable with its vectors."
            )


def sidebar() -> None:
    """The checkpoint and bank pickers (defaults: the demo's, or ``MMV_APP_MODEL`` / ``MMV_APP_BANK``)."""
    models, banks = _choices()
    with st.sidebar:
        st.selectbox(
            "Checkpoint",
            models,
            key=state.MODEL_PATH,
            format_func=state.display_path,
            accept_new_options=True,
            help="An mmv checkpoint directory (config.json + model.safetensors). Type a path to use another one.",
        )
        st.selectbox(
            "Embedding bank",
            banks,
            key=state.BANK_PATH,
            format_func=state.display_path,
            accept_new_options=True,
            help="A bank built by `python -m training.build_bank`. Type a path to use another one.",
        )
        _bank_summary(st.session_state[state.BANK_PATH], st.session_state[state.MODEL_PATH])


def main() -> None:
    # A local file, not a :material: or emoji icon: those make the browser fetch the favicon from a font or image
    # service on the internet, and the app must work offline.
    st.set_page_config(page_title="mmv explorer", page_icon=str(ROOT / "app" / "assets" / "icon.png"), layout="wide")
    pages = [st.Page(path, title=title, icon=icon, default=(i == 0)) for i, (path, title, icon) in enumerate(PAGES)]
    page = st.navigation(pages)
    sidebar()
    page.run()


main()
