"""The app's logic: plain modules that never import Streamlit (``tests/test_app_layout.py`` checks it).

Tested without a server; the pages (``app/views/``) and the widgets (``app/widgets/``) lay them out.
"""
