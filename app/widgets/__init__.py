"""Streamlit helpers the pages (``app/views/``) share; the logic behind them is in ``app/logic/``."""
