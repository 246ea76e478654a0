"""Datasets: the clip manifest, readers of public dataset layouts, media decoding and sampling."""
