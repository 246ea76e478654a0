"""The registry of layouts (mmv.data.readers.registry): it lists every reader, its argument spec matches the
reader, and both command lines (``training.prepare``, ``training.evaluate --dataset``) take their choices from it."""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
from pathlib import Path

import pandas as pd
import pytest
from layouts import esc50_layout, howto_layout, touch, ucf101_layout

import mmv.data.readers
from mmv.data.readers.esc50 import read_esc50
from mmv.data.readers.howto100m import read_howto100m
from mmv.data.readers.msrvtt import read_msrvtt
from mmv.data.readers.registry import EVALUATION_LAYOUTS, LAYOUTS, read_layout
from mmv.data.readers.ucf_hmdb import read_ucf_hmdb
from mmv.data.readers.youcook2 import read_youcook2

#: Every layout, by the module that reads it.
EXPECTED = {
    "toyworld": "toyworld",
    "howto100m": "howto100m",
    "audioset": "audioset",
    "folder": "folders",
    "classes": "folders",
    "esc50": "esc50",
    "ucf101": "ucf_hmdb",
    "hmdb51": "ucf_hmdb",
    "msrvtt": "msrvtt",
    "youcook2": "youcook2",
}
NOT_LAYOUT_READERS = {"read_subtitles", "read_text", "read_csv_table", "read_layout"}  # helpers, not layouts
PREPARE_OWN = {"help", "out", "probe", "no_progress", "source"}


def test_registry_lists_every_layout_and_every_reader() -> None:
    assert dict(LAYOUTS) == {name: LAYOUTS[name] for name in EXPECTED}
    for name, module in EXPECTED.items():
        assert LAYOUTS[name].name == name and LAYOUTS[name].reader.__module__ == f"mmv.data.readers.{module}"
    # every public read_* function of the package is some layout's reader
    registered = {layout.reader for layout in LAYOUTS.values()}
    for info in pkgutil.iter_modules(mmv.data.readers.__path__):
        module = importlib.import_module(f"mmv.data.readers.{info.name}")
        for fname, func in inspect.getmembers(module, inspect.isfunction):
            if fname.startswith("read_") and fname not in NOT_LAYOUT_READERS and func.__module__ == module.__name__:
                assert func in registered, f"{module.__name__}.{fname} is not in the registry"
    assert set(EVALUATION_LAYOUTS) == {"classes", "esc50", "ucf101", "hmdb51", "msrvtt", "youcook2"}


def test_argument_specs_match_the_readers() -> None:
    for layout in LAYOUTS.values():
        params = inspect.signature(layout.reader).parameters
        assert set(layout.fixed) <= set(params)
        for arg in layout.paths:
            assert params[arg.target].default is inspect.Parameter.empty, (layout.name, arg.name)
            assert arg.help, (layout.name, arg.name)
        for arg in layout.options:
            assert arg.target in params and arg.help, (layout.name, arg.name)
            if not arg.switch:
                assert params[arg.target].default == arg.default, (layout.name, arg.name)
        names = [arg.name for arg in layout.paths + layout.options]
        assert len(set(names)) == len(names) and not set(names) & PREPARE_OWN, layout.name
        required = {n for n, p in params.items() if p.default is inspect.Parameter.empty}
        assert required <= {arg.target for arg in layout.paths}, layout.name


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_prepare_subcommands_come_from_the_registry() -> None:
    from training.prepare import _build_parser

    subcommands = _subcommands(_build_parser())
    assert list(subcommands) == list(LAYOUTS)
    for name, parser in subcommands.items():
        layout = LAYOUTS[name]
        actions = parser._actions
        assert [a.dest for a in actions if not a.option_strings] == [arg.name for arg in layout.paths]
        options = {a.dest: a for a in actions if a.option_strings and a.dest not in PREPARE_OWN}
        assert list(options) == [arg.name for arg in layout.options]
        for arg in layout.options:
            assert options[arg.name].option_strings == ["--" + arg.name.replace("_", "-")]
            assert options[arg.name].default == arg.default and options[arg.name].choices == arg.choices


def test_evaluate_datasets_come_from_the_registry() -> None:
    from training.evaluate import _build_parser

    for parser in _subcommands(_build_parser()).values():
        (dataset,) = [a for a in parser._actions if a.dest == "dataset"]
        assert tuple(dataset.choices) == EVALUATION_LAYOUTS


def test_read_layout_dispatches(tmp_path: Path) -> None:
    esc = read_layout("esc50", esc50_layout(tmp_path / "esc"))
    assert len(esc) == 4 and set(esc["split"]) == {"train"} and esc["fold"].tolist() == [1, 1, 2, 5]
    touch(tmp_path / "pets", "cat/a.jpg", "dog/b.png")
    pets = read_layout("classes", tmp_path / "pets", modality="image")
    assert pets["label_class"].tolist() == ["cat", "dog"] and pets["image_path"].notna().all()
    with pytest.raises(ValueError, match="split-files folder"):
        read_layout("ucf101", tmp_path)
    with pytest.raises(ValueError, match="unknown dataset kind"):
        read_layout("kinetics", tmp_path)


def test_layouts_read_as_their_readers(tmp_path: Path) -> None:
    root = esc50_layout(tmp_path / "esc")
    pd.testing.assert_frame_equal(read_layout("esc50", root, test_fold=2), read_esc50(root, test_fold=2))
    videos, lists = ucf101_layout(tmp_path)
    assert LAYOUTS["ucf101"].read(videos, lists, split_index=1).equals(read_ucf_hmdb(videos, lists, "ucf101", 1))
    # paths in command-line order (videos first), whatever the reader's order
    touch(tmp_path / "msr", "v1.mp4")
    (tmp_path / "msr.csv").write_text("video_id,sentence\nv1,a cat\n")
    got = read_layout("msrvtt", tmp_path / "msr", tmp_path / "msr.csv")
    assert got.equals(read_msrvtt(tmp_path / "msr.csv", tmp_path / "msr"))
    (tmp_path / "yc.csv").write_text("video_id,start,end,text\nv1,1,2,stir\n")
    got = read_layout("youcook2", tmp_path / "msr", tmp_path / "yc.csv", split="val")
    assert got.equals(read_youcook2(tmp_path / "yc.csv", tmp_path / "msr", split="val"))


def test_layout_arguments_are_checked(tmp_path: Path) -> None:
    videos, captions = howto_layout(tmp_path, "json")
    howto = LAYOUTS["howto100m"]
    # a switch on wins over the option filling the same keyword (--per-video over --clip-seconds' default)
    per_video = howto.read(videos, captions, clip_seconds=3.2, per_video=True)
    assert per_video.equals(read_howto100m(videos, captions, clip_seconds=None))
    assert howto.read(videos, captions, per_video=False).equals(read_howto100m(videos, captions))
    # trailing None paths are ignored (a caller whose --annotations serves other layouts)
    assert LAYOUTS["esc50"].read(esc50_layout(tmp_path / "esc"), None).equals(read_esc50(tmp_path / "esc"))
    with pytest.raises(ValueError, match=r"esc50 takes 1 path\(s\) \(root\)"):
        LAYOUTS["esc50"].read(tmp_path / "esc", tmp_path)
    with pytest.raises(ValueError, match=r"unknown option\(s\) fold \(it takes: test_fold\)"):
        LAYOUTS["esc50"].read(tmp_path / "esc", fold=1)
    assert LAYOUTS["ucf101"].pick({"split_index": 2, "modality": "image", "out": "x"}) == {"split_index": 2}
