"""The Streamlit app, ``streamlit run app`` (entry: ``app/streamlit_app.py``; one file per page in ``app_pages/``).

Pages hold layout only; the logic lives in plain modules tested without Streamlit: :mod:`app.uploads` (checking
uploads), :mod:`app.prepare` (decoding them like the bank's clips, embedding queries), :mod:`app.logic`
(directions, search, percentiles, neighbours), :mod:`app.maps` (figures and selections), :mod:`app.media`
(playback, thumbnails, spectrograms), :mod:`app.state` (paths and session keys). :mod:`app.resources` holds what
is loaded once (model, bank, bounded upload caches) and :mod:`app.ui` the Streamlit pieces the pages share.
"""
