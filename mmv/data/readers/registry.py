"""The registry of dataset layouts: ``name -> Layout``, the reader of the layout with the arguments it takes.

Both command lines dispatch through it: ``python -m training.prepare <layout> PATH... [--option ...]`` builds
one subcommand per layout from its :attr:`Layout.paths` and :attr:`Layout.options`, and ``python -m
training.evaluate --dataset <layout>`` offers :data:`EVALUATION_LAYOUTS` (``--root`` and ``--annotations`` are
the layout's two paths). In code::

    from mmv.data.readers.registry import LAYOUTS, read_layout

    df = read_layout("ucf101", "UCF-101", "ucfTrainTestlist", split_index=2)
    df = LAYOUTS["esc50"].read("ESC-50-master", test_fold=5)

Every reader returns a clip manifest (``docs/formats.md``); the layouts on disk are in each reader's docstring.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pandas as pd

from mmv.data.manifest import SPLITS
from mmv.data.readers.audioset import read_audioset
from mmv.data.readers.esc50 import read_esc50
from mmv.data.readers.folders import read_class_folders, read_video_folder
from mmv.data.readers.howto100m import read_howto100m
from mmv.data.readers.msrvtt import read_msrvtt
from mmv.data.readers.toyworld import read_toyworld
from mmv.data.readers.ucf_hmdb import read_ucf_hmdb
from mmv.data.readers.youcook2 import read_youcook2


@dataclass(frozen=True)
class Argument:
    """An argument of a layout: one of its paths (positional, required) or one of its options.

    Attributes:
        name: A Python identifier: the keyword of :meth:`Layout.read`, and with ``-`` for ``_`` the option's
            command-line spelling (``split_index``: ``--split-index``).
        help: One line for a command line's help.
        keyword: The reader's keyword argument the value fills (default: ``name``).
        type: Turns a command-line string into the value.
        default: The value when the option is not given: the reader's default.
        choices: The values allowed, or ``None`` for any.
        switch: An option without a value: given (true), the reader gets ``when_set`` as ``keyword``; not given,
            nothing. A switch that is on wins over another option filling the same keyword.
        when_set: See ``switch``.
        group: Options of one group exclude each other on a command line.
    """

    name: str
    help: str | None = None
    keyword: str | None = None
    type: Callable[[str], Any] = str
    default: Any = None
    choices: tuple[Any, ...] | None = None
    switch: bool = False
    when_set: Any = True
    group: str | None = None

    @property
    def target(self) -> str:
        """The reader's keyword argument."""
        return self.keyword or self.name


@dataclass(frozen=True)
class Layout:
    """A dataset layout on disk and its reader.

    Attributes:
        name: The layout's name (``training.prepare``'s subcommand, ``training.evaluate``'s ``--dataset``).
        reader: The function that reads it into a clip manifest.
        summary: One line: what the layout is.
        paths: The paths the reader needs, in command-line order.
        options: The reader's other arguments.
        fixed: Keyword arguments always passed (one reader serving two layouts: ``dataset="hmdb51"``).
        evaluation: Whether ``training.evaluate --dataset`` offers it.
    """

    name: str
    reader: Callable[..., pd.DataFrame]
    summary: str
    paths: tuple[Argument, ...]
    options: tuple[Argument, ...] = ()
    fixed: Mapping[str, Any] = field(default_factory=dict)
    evaluation: bool = False

    def pick(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The entries of ``values`` that are options of this layout (one set of values serving every layout)."""
        names = {arg.name for arg in self.options}
        return {key: value for key, value in values.items() if key in names}

    def read(self, *paths: Any, **options: Any) -> pd.DataFrame:
        """Runs the reader.

        Args:
            paths: The layout's paths, in the order of :attr:`paths`; trailing ``None`` are ignored (a caller
                whose paths serve several layouts).
            options: Options by :attr:`Argument.name`; those not given take the reader's default.

        Raises:
            ValueError: A path is missing, there are too many, or an option is unknown.
        """
        return self.reader(**self.fixed, **self._path_keywords(paths), **self._option_keywords(options))

    def _path_keywords(self, paths: tuple[Any, ...]) -> dict[str, Any]:
        names = ", ".join(arg.name for arg in self.paths)
        if any(p is not None for p in paths[len(self.paths) :]):
            raise ValueError(f"{self.name} takes {len(self.paths)} path(s) ({names}), got {len(paths)}")
        keywords = {}
        for i, arg in enumerate(self.paths):
            if i >= len(paths) or paths[i] is None:
                raise ValueError(f"{self.name}: missing the {arg.help} (path {i + 1}, {arg.name})")
            keywords[arg.target] = paths[i]
        return keywords

    def _option_keywords(self, options: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(options) - {arg.name for arg in self.options})
        if unknown:
            takes = ", ".join(arg.name for arg in self.options) or "none"
            raise ValueError(f"{self.name}: unknown option(s) {', '.join(unknown)} (it takes: {takes})")
        keywords = {arg.target: options[arg.name] for arg in self.options if not arg.switch and arg.name in options}
        keywords.update({arg.target: arg.when_set for arg in self.options if arg.switch and options.get(arg.name)})
        return keywords


def _split(default: str | None, help: str = "split of every row") -> Argument:
    return Argument("split", help, choices=SPLITS, default=default)


def _split_index() -> Argument:
    return Argument("split_index", "official split 1, 2 or 3", keyword="split", type=int, default=1, choices=(1, 2, 3))


_HOWTO_OPTIONS = (
    Argument("clip_seconds", "minimum clip length (default 3.2)", type=float, default=3.2, group="length"),
    Argument(
        "per_video",
        "one row per video instead of per caption",
        keyword="clip_seconds",
        switch=True,
        when_set=None,
        default=False,
        group="length",
    ),
    Argument("split_seed", "seed of the video-id hash that assigns the splits", type=int, default=0),
    Argument("val_fraction", "expected fraction of videos in val", type=float, default=0.01),
    Argument("test_fraction", "expected fraction of videos in test", type=float, default=0.0),
)

_AUDIOSET_OPTIONS = (
    Argument("labels", "class_labels_indices.csv (display names)", keyword="labels_csv"),
    _split(None, "default: test for *eval* CSVs, else train"),
    Argument("full_videos", "<YTID>.<ext> files are whole videos", switch=True, default=False),
)

_CLASSES_OPTIONS = (
    Argument("modality", "what the class folders hold", choices=("video", "audio", "image"), default="video"),
    _split("train", "split when ROOT has no split folders"),
)

_LAYOUTS = (
    Layout(
        "toyworld",
        read_toyworld,
        "ToyWorld: ROOT/manifest.parquet",
        (Argument("root", "toy world folder (holding manifest.parquet) or the manifest file"),),
    ),
    Layout(
        "howto100m",
        read_howto100m,
        "HowTo100M videos + caption.json or captions CSV",
        (
            Argument("videos_dir", "folder of the videos (searched recursively)"),
            Argument("captions", "caption.json or a video_id,start,end,text CSV", keyword="captions_path"),
        ),
        _HOWTO_OPTIONS,
    ),
    Layout(
        "audioset",
        read_audioset,
        "AudioSet segments CSV + downloaded clips",
        (
            Argument("segments_csv", "segments CSV (YTID, start_seconds, end_seconds, positive_labels)"),
            Argument("clips_dir", "folder of the downloaded clips (searched recursively)"),
        ),
        _AUDIOSET_OPTIONS,
    ),
    Layout(
        "folder",
        read_video_folder,
        "every video under ROOT, with .srt/.vtt sidecars",
        (Argument("root", "folder of videos (searched recursively)"),),
        (_split("train"),),
    ),
    Layout(
        "classes",
        read_class_folders,
        "ROOT/[split/]<class>/<file>",
        (Argument("root", "folder of class folders (or of split folders of class folders)"),),
        _CLASSES_OPTIONS,
        evaluation=True,
    ),
    Layout(
        "esc50",
        read_esc50,
        "ESC-50: ROOT/meta/esc50.csv + ROOT/audio",
        (Argument("root", "ESC-50 checkout (meta/esc50.csv, audio/)"),),
        (Argument("test_fold", "fold put in the test split", type=int, choices=(1, 2, 3, 4, 5)),),
        evaluation=True,
    ),
    Layout(
        "ucf101",
        read_ucf_hmdb,
        "UCF101 videos + official split lists",
        (
            Argument("videos_root", "videos folder (<Class>/<file>.avi or flat)"),
            Argument("splits_dir", "split-files folder (classInd.txt, trainlist0N.txt, testlist0N.txt)"),
        ),
        (_split_index(),),
        fixed=MappingProxyType({"dataset": "ucf101"}),
        evaluation=True,
    ),
    Layout(
        "hmdb51",
        read_ucf_hmdb,
        "HMDB51 videos + official split lists",
        (
            Argument("videos_root", "videos folder (<class>/<file>.avi or flat)"),
            Argument("splits_dir", "split-files folder (<class>_test_split<N>.txt)"),
        ),
        (_split_index(),),
        fixed=MappingProxyType({"dataset": "hmdb51"}),
        evaluation=True,
    ),
    Layout(
        "msrvtt",
        read_msrvtt,
        "MSR-VTT videos + caption CSV (one row per caption)",
        (
            Argument("videos_dir", "folder of the videos (searched recursively)"),
            Argument("csv", "caption CSV (key,vid_key,video_id,sentence or video_id,sentence)", keyword="csv_path"),
        ),
        (_split("test"),),
        evaluation=True,
    ),
    Layout(
        "youcook2",
        read_youcook2,
        "YouCook2 videos + validation segments (CSV or annotations JSON)",
        (
            Argument("videos_dir", "folder of the videos (searched recursively)"),
            Argument("annotations", "validation_youcook.csv or the annotations JSON", keyword="csv_path"),
        ),
        (_split("test"),),
        evaluation=True,
    ),
)

#: Every layout by name, in a fixed order (``training.prepare``'s subcommands).
LAYOUTS: Mapping[str, Layout] = MappingProxyType({layout.name: layout for layout in _LAYOUTS})

#: The layouts ``training.evaluate --dataset`` reads: the evaluation benchmarks and class folders.
EVALUATION_LAYOUTS: tuple[str, ...] = tuple(name for name, layout in LAYOUTS.items() if layout.evaluation)


def read_layout(name: str, *paths: Any, **options: Any) -> pd.DataFrame:
    """Reads a layout by name: ``LAYOUTS[name].read(*paths, **options)`` (:meth:`Layout.read`).

    Raises:
        ValueError: ``name`` is not a layout, or the arguments do not fit it.
    """
    if name not in LAYOUTS:
        raise ValueError(f"unknown dataset kind {name!r}; choose from {', '.join(LAYOUTS)}")
    return LAYOUTS[name].read(*paths, **options)
