"""The Streamlit app, ``streamlit run app`` (entry: ``app/streamlit_app.py``, the sidebar and the navigation).

The folder says whether a module imports Streamlit:

* ``views/``: one Streamlit script per page (layout only), run by the entry script's ``st.navigation``. Not
  ``pages/``: Streamlit (1.67) runs a ``pages/`` folder beside the entry script as a legacy multipage app until
  ``st.navigation`` has run once, so a server whose first request is a page's link (``/retrieval``) lists the
  files, not the pages, and never runs the entry script (no sidebar).
* ``widgets/``: Streamlit helpers the pages share: :mod:`~app.widgets.current` (the chosen model, bank and
  selection), :mod:`~app.widgets.clips` (players, clip cards, result lists), :mod:`~app.widgets.downloads`,
  :mod:`~app.widgets.view_url` (the view kept in the URL) and :mod:`~app.widgets.resources` (what is loaded once:
  model, bank, bounded upload caches).
* ``logic/``: plain modules, tested without Streamlit (none of them imports it: ``tests/test_app_layout.py``):
  :mod:`~app.logic.uploads` (checking uploads), :mod:`~app.logic.query_embedding` (decoding them like the bank's
  clips, embedding queries), :mod:`~app.logic.bank_search` (directions, search, percentiles, neighbours),
  :mod:`~app.logic.maps` (figures and selections), :mod:`~app.logic.clip_media` (playback, thumbnails,
  spectrograms), :mod:`~app.logic.bank_metrics`, :mod:`~app.logic.export`, :mod:`~app.logic.deflation_compare`,
  :mod:`~app.logic.model_card`, :mod:`~app.logic.tour_steps` (each page's logic) and :mod:`~app.logic.state`
  (paths and session keys).
"""
