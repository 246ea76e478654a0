"""Readers of dataset layouts on disk: each returns a clip manifest (``docs/formats.md``, :mod:`mmv.data.manifest`).

One module per layout, helpers in :mod:`~mmv.data.readers.common`, and one registry
(:mod:`~mmv.data.readers.registry`: name -> reader, its paths and options) that ``training.prepare`` and
``training.evaluate`` dispatch through:

========================  ==========================  ==================================================
layout                    module                      reader
========================  ==========================  ==================================================
``toyworld``              ``toyworld``                :func:`~mmv.data.readers.toyworld.read_toyworld`
``howto100m``             ``howto100m``               :func:`~mmv.data.readers.howto100m.read_howto100m`
``audioset``              ``audioset``                :func:`~mmv.data.readers.audioset.read_audioset`
``folder``, ``classes``   ``folders``                 :func:`~mmv.data.readers.folders.read_video_folder`,
                                                      :func:`~mmv.data.readers.folders.read_class_folders`
``esc50``                 ``esc50``                   :func:`~mmv.data.readers.esc50.read_esc50`
``ucf101``, ``hmdb51``    ``ucf_hmdb``                :func:`~mmv.data.readers.ucf_hmdb.read_ucf_hmdb`
``msrvtt``                ``msrvtt``                  :func:`~mmv.data.readers.msrvtt.read_msrvtt`
``youcook2``              ``youcook2``                :func:`~mmv.data.readers.youcook2.read_youcook2`
(sidecars of ``folder``)  ``subtitles``               :func:`~mmv.data.readers.subtitles.parse_srt`,
                                                      :func:`~mmv.data.readers.subtitles.parse_vtt`
========================  ==========================  ==================================================

No reader decodes media: they list directories, read index files and check that files exist, so they run in
seconds even on large sets. Paths in the result are absolute. Entries whose media file is missing are dropped
and counted in ``df.attrs["skipped"]`` (and logged); ``df.attrs["root"]`` is the directory the paths came from.

Import from the modules (``from mmv.data.readers.esc50 import read_esc50``); this package exports nothing.
"""
