"""The Model page's card and the Tour: the logic on the tiny random model and its toy-world bank, then both pages
driven by Streamlit's AppTest.

What is checked: the parameter table's numbers are the counted parameters of each tower and head and sum to the
model's; the embedding-graph diagram has one arrow per head, the right ones for the shared, disjoint and FAC
graphs; curves are read back from a ``metrics.csv`` written by ``training.logs.CsvLog`` (and from TensorBoard
events when there is no CSV); the card reads a run directory laid out as ``training.main`` leaves it; the tour's
queries come from the bank, each of its four answers equals the live query made again here, and a bank without a
modality gives a message instead of an answer; the pages show exactly these numbers and hits.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from app_helpers import app_environment, tiny_model_and_bank

from app.logic import model_card
from app.logic import tour_steps as tour_logic

pytest.importorskip("streamlit.testing.v1")
from streamlit.testing.v1 import AppTest  # noqa: E402

ENTRY = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")
TIMEOUT = 120
METRICS = {"eval/t2v_r1": 0.25, "eval/t2v_r5": 0.5, "eval/t2v_r10": 0.75, "eval/t2v_medr": 3.0, "eval/a2v_r1": 0.125}


def _write_run(run: Path, model) -> Path:
    """A run directory as ``training.main`` leaves it: model/ (with its metadata), metrics.csv, summary.json."""
    from mmv.checkpoint import save_checkpoint
    from training.logs import CsvLog

    metadata = {
        "steps": 10,
        "data": [{"manifest": "data_samples/toyworld/manifest.parquet", "proportion": 1.0, "split": "train"}],
        "final_metrics": {"loss": 1.0, **METRICS},
        "run_config": {"data": {"batch_size": 4}, "optim": {"lr": 0.01, "warmup_steps": 2}, "train": {}},
    }
    save_checkpoint(model, run / "model", metadata)
    log = CsvLog(run / "metrics.csv")
    for step in range(1, 11):
        row = {"step": step, "time": 0.5 * step, "lr": 0.01, "loss": 10.0 - step, "va_loss": 5.0 - step / 2}
        if step in (5, 10):
            row |= {"eval/t2v_r10": step / 20, "eval/num_clips": 48.0}
        log.write(row)
    (run / "summary.json").write_text(json.dumps({"step": 10, "completed": True, "world_size": 1, "metrics": {}}))
    return run / "model"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny model copied into a run directory (the Model page's subject), and the tiny bank."""
    from mmv.checkpoint import load_checkpoint

    model_dir, bank_dir = tiny_model_and_bank(tmp_path_factory.mktemp("app"))
    run_model = _write_run(tmp_path_factory.mktemp("run"), load_checkpoint(model_dir))
    with app_environment(run_model, bank_dir, clear_choices=True):
        yield run_model, bank_dir


@pytest.fixture(scope="module")
def model(tiny):
    from mmv.checkpoint import load_checkpoint

    return load_checkpoint(tiny[0]).eval()


@pytest.fixture(scope="module")
def search(tiny):
    from app.logic.bank_search import BankSearch
    from mmv.bank import Bank

    return BankSearch(Bank.load(tiny[1]))


# ---------------------------------------------------------------------------------------------------
# The card
# ---------------------------------------------------------------------------------------------------


def _numel(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_are_the_counted_parameters(model):
    table = model_card.parameter_counts(model).set_index("part")
    assert table.loc["video tower", "parameters"] == _numel(model.video) > 0
    assert table.loc["audio tower", "parameters"] == _numel(model.audio) > 0
    assert table.loc["text tower", "parameters"] == _numel(model.text) > 0
    assert table.loc["audio front end (log-mel)", "parameters"] == 0  # a fixed filter bank (buffers)
    for role, head in model.heads.items():
        assert table.loc[f"head {role}", "parameters"] == _numel(head) > 0
    assert set(model.heads) == {"video_va", "audio_va", "va_vat", "text_vat"}
    assert table["parameters"].sum() == _numel(model)
    np.testing.assert_allclose(table["share"].sum(), 100.0)


def test_frozen_word_vectors_are_counted_but_not_trainable():
    from mmv import create_model

    m = create_model("tiny_fac", text={"freeze_word_vectors": True, "vocab_size": 50})
    table = model_card.parameter_counts(m).set_index("part")
    frozen = 50 * m.config.text.word_dim
    text = table.loc["text tower"]
    assert text["parameters"] == _numel(m.text) and text["trainable"] == _numel(m.text) - frozen
    assert table["trainable"].sum() == sum(p.numel() for p in m.parameters() if p.requires_grad)


@pytest.mark.parametrize(
    ("overrides", "edges"),
    [
        ({"graph": "fac_relu"}, {("video", "S_va", "video_va"), ("audio", "S_va", "audio_va"),
                                 ("S_va", "S_vat", "va_vat"), ("text", "S_vat", "text_vat")}),
        ({"graph": "fac", "modalities": ["video", "audio"]}, {("video", "S_va", "video_va"),
                                                              ("audio", "S_va", "audio_va")}),
        ({"graph": "shared", "heads": {r: {"mode": "linear", "dim": 32} for r in ("video_va", "audio_va", "text_vat")}},
         {("video", "S", "video_va"), ("audio", "S", "audio_va"), ("text", "S", "text_vat")}),
        ({"graph": "disjoint"}, {("video", "S_va", "video_va"), ("audio", "S_va", "audio_va"),
                                 ("video", "S_vt", "va_vat"), ("text", "S_vt", "text_vat")}),
        ({"graph": "disjoint", "use_audio_text": True},
         {("video", "S_va", "video_va"), ("audio", "S_va", "audio_va"), ("video", "S_vt", "va_vat"),
          ("text", "S_vt", "text_vat"), ("audio", "S_at", "audio_text"), ("text", "S_at", "text_audio")}),
    ],
)  # fmt: skip
def test_graph_diagram_has_one_arrow_per_head(overrides, edges):
    from mmv import create_model

    m = create_model("tiny_fac", **overrides)
    found = model_card.graph_edges(m.config)
    assert {(e.source, e.target, e.head) for e in found} == edges
    assert {e.head for e in found} == set(m.heads)  # the heads the built model really has
    dot = model_card.graph_dot(m.config)
    arrows = [line for line in dot.splitlines() if "->" in line and "[label=" in line]
    assert len(arrows) == len(edges)
    for source, target, head in edges:
        assert any(a.strip().startswith(f'"{source}" -> "{target}" [label="{head}') for a in arrows), (source, head)
    for modality in m.config.modalities:
        assert f'"{modality}" [shape=box' in dot


def test_curves_are_read_from_metrics_csv(tmp_path, model):
    run_model = _write_run(tmp_path / "run", model)
    run = model_card.find_run_dir(run_model)
    assert run == (tmp_path / "run").resolve()
    frame, source = model_card.read_metrics(run)
    assert source == "metrics.csv"
    assert frame["step"].tolist() == list(range(1, 11))
    np.testing.assert_allclose(frame["loss"], 10.0 - np.arange(1, 11))
    groups = model_card.scalar_groups(frame)
    assert groups == {"losses": ["loss", "va_loss"], "training": ["time", "lr"], "evaluation": ["eval/t2v_r10"]}
    long = model_card.curves(frame, ["loss", "eval/t2v_r10"])
    evals = long[long["scalar"] == "eval/t2v_r10"]
    assert evals["step"].tolist() == [5, 10] and evals["value"].tolist() == [0.25, 0.5]
    assert (long["scalar"] == "loss").sum() == 10
    fig = model_card.curves_figure(frame, ["loss", "va_loss"], "Training")
    assert [t.name for t in fig.data] == ["loss", "va_loss"]
    np.testing.assert_allclose(fig.data[1].y, 5.0 - np.arange(1, 11) / 2)


def test_curves_fall_back_to_tensorboard_events(tmp_path):
    pytest.importorskip("tensorboard")
    from training.logs import TensorBoard

    writer = TensorBoard(tmp_path / "tensorboard")
    for step in (1, 2, 3):
        writer.write(step, {"step": step, "loss": 1.0 / step, "eval/t2v_r1": 0.1 * step})
    writer.close()
    frame, source = model_card.read_metrics(tmp_path)
    assert source == "tensorboard"
    assert frame["step"].tolist() == [1, 2, 3]
    np.testing.assert_allclose(frame["loss"], [1.0, 0.5, 1 / 3], rtol=1e-6)
    np.testing.assert_allclose(frame["eval/t2v_r1"], [0.1, 0.2, 0.3], rtol=1e-6)
    assert model_card.read_metrics(tmp_path / "nothing") == (None, None)


def test_card_reads_the_run(tiny, model):
    card = model_card.load_card(tiny[0], model)
    assert card.total == _numel(model) and card.run_dir == Path(tiny[0]).resolve().parent
    rows = dict(card.training)
    assert rows["steps"] == "10"
    assert rows["data"] == "data_samples/toyworld/manifest.parquet (split train, proportion 1)"
    assert rows["batch"] == "4 per process x 1 x 1 accum." and rows["completed"] == "yes"
    table = model_card.metric_table(card.final_metrics)
    assert table.loc["text \u2192 video"].tolist() == [25.0, 50.0, 75.0, 3.0]
    assert table.loc["audio \u2192 video", "R@1"] == 12.5 and np.isnan(table.loc["audio \u2192 video", "MedR"])
    settings = card.settings.set_index("setting")["value"]
    assert settings["backbone"].tolist() == ["S3D-G", "ResNet18 (width x0.25)"]
    assert settings["clip"] == "4 frames x 32 px at 4 fps"


# ---------------------------------------------------------------------------------------------------
# The tour's logic
# ---------------------------------------------------------------------------------------------------


def test_tour_queries_come_from_the_bank(search):
    q = tour_logic.choose_queries(search)
    meta = search.meta
    counts = meta["description"].value_counts()
    assert q.text == sorted(counts[counts == counts.max()].index)[0]
    assert meta["description"].iloc[q.text_row] == q.text
    assert meta["split"].iloc[q.audio_row] == "test" and meta["split"].iloc[q.photo_row] == "test"
    assert set(search.modalities_of(q.audio_row)) == {"video", "audio", "text"}
    assert q.photo_row != q.audio_row and "video" in search.modalities_of(q.photo_row)


def test_own_rank_counts_the_items_scoring_higher(search):
    row = 5
    own = search.vector("va", "video", row)
    assert tour_logic.own_rank(search, "va", own, "video", row) == 1  # its own vector scores 1, the maximum
    scores = np.asarray(search.bank.vectors("va", "video")) @ own
    worst = int(np.argmin(scores))
    assert tour_logic.own_rank(search, "va", own, "video", int(search.bank.rows("va", "video")[worst])) == len(scores)


def test_tour_answers_are_the_live_queries(model, search):
    from app.logic.query_embedding import embed_query, prepare_text

    answers = tour_logic.run_tour(model, search)
    assert [a.step.key for a in answers] == ["text_video", "sound_video", "audio_text", "photo_video"]
    assert all(a.missing is None and len(a.hits) == tour_logic.TOUR_K for a in answers)
    q = tour_logic.choose_queries(search)
    text, sound, a2t, photo = answers
    expected = search.search(embed_query(model, prepare_text(q.text, model.config))["text"], "text", "video", 5)
    assert text.hits["clip_id"].tolist() == expected["clip_id"].tolist() and text.space == "vat"
    expected = search.search(search.row_vectors(q.audio_row, "audio"), "audio", "video", 5)
    assert sound.hits["clip_id"].tolist() == expected["clip_id"].tolist() and sound.space == "va"
    expected = search.search(search.row_vectors(q.audio_row, "audio"), "audio", "text", 5)
    assert a2t.hits["clip_id"].tolist() == expected["clip_id"].tolist() and a2t.space == "vat"
    # the photo: the clip's middle frame through encode_image (naive deflation: the tiny model has no recalibration)
    frame = torch.from_numpy(tour_logic.bank_frame(search, q.photo_row, model.config.video.frame_size))
    assert tuple(frame.shape) == (32, 32, 3) and np.array_equal(frame.numpy(), photo.image)
    with torch.no_grad():
        va = model.encode_image(frame[None].float() / 255.0, mode="naive")["va"][0].double()
    va = (va / va.norm()).float().numpy()
    expected = search.search({"va": va}, "video", "video", 5)
    assert photo.hits["clip_id"].tolist() == expected["clip_id"].tolist()
    np.testing.assert_allclose(photo.hits["score"], expected["score"], atol=1e-5)
    assert photo.own_rank == tour_logic.own_rank(search, "va", va, "video", q.photo_row)
    # agreement with the query clip's labels, and what chance would give
    row = search.meta.iloc[q.audio_row]
    hits = search.meta.iloc[sound.hits["row"].to_numpy()]
    assert sound.agreement["colour"] == pytest.approx(np.mean(hits["label_colour"] == row["label_colour"]))
    assert sound.baseline["shape"] == pytest.approx(np.mean(search.meta["label_shape"] == row["label_shape"]))
    assert a2t.targets == int(search.meta["has_text"].sum())
    assert a2t.notes and "no loss paired audio with text" in a2t.notes[0]


def test_a_bank_without_a_modality_gets_messages_not_errors(model, search):
    answers = tour_logic.run_tour(model, search, queries=tour_logic.TourQueries())
    assert all(a.missing and a.hits.empty for a in answers)
    no_text = tour_logic.text_to_video(None, search, "a red circle")
    assert "no text tower" in no_text.missing
    unknown = tour_logic.text_to_video(model, search, "zzzz qqqq")
    assert "None of the words" in unknown.missing


# ---------------------------------------------------------------------------------------------------
# The pages
# ---------------------------------------------------------------------------------------------------


def _app(page: str) -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=TIMEOUT)
    at.run()
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_model_page_shows_the_card(tiny, model):
    at = _app("views/model.py")
    assert at.title[0].value == "Model" and not at.error
    assert [m.value for m in at.metric] == ["tiny_fac", "fac_relu", f"{_numel(model):,}", "10"]
    params = next(d.value for d in at.dataframe if "parameters" in d.value.columns)
    expected = model_card.parameter_counts(model)
    assert params["part"].tolist() == expected["part"].tolist()
    assert params["parameters"].tolist() == expected["parameters"].tolist()
    (diagram,) = at.get("graphviz_chart")
    assert diagram.proto.spec == model_card.graph_dot(model.config)
    metrics = next(d.value for d in at.dataframe if "R@1" in d.value.columns)
    assert metrics.loc["text \u2192 video"].tolist() == [25.0, 50.0, 75.0, 3.0]
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # training curves and the evaluation over steps
    assert at.multiselect(key="model_scalars").value == ["loss", "va_loss"]
    assert "10 logged steps" in " ".join(c.value for c in at.caption)
    at.multiselect(key="model_scalars").set_value(["lr"]).run()
    assert not at.exception and len(at.get("plotly_chart")) == 2


def _shown_hits(at: AppTest) -> list[str]:
    return [
        re.match(r"^\*\*\d+\. (\S+)\*\*", m.value).group(1) for m in at.markdown if re.match(r"^\*\*\d+\. ", m.value)
    ]


def test_tour_page_shows_the_live_answers_and_presents(tiny, model, search):
    answers = tour_logic.run_tour(model, search)
    at = _app("views/tour.py")
    assert at.title[0].value == "Tour" and not at.error
    for i, answer in enumerate(answers):
        assert at.header[0].value == f"{i + 1} / 4 \u00b7 {answer.step.title}"
        assert at.subheader[0].value.startswith(f"Result: {answer.step.query} \u2192 {answer.step.target}")
        assert _shown_hits(at) == answer.hits["clip_id"].tolist()
        metrics = [m.value for m in at.metric]
        assert [f"{100 * s:.0f} %" for s in answer.agreement.values()] == metrics[: len(answer.agreement)]
        if answer.own_rank is not None:
            assert metrics[-1].split(" of ")[1] == f"{answer.targets:,}"
        if i < 3:
            at.button(key="tour_next").click().run()
            assert not at.exception
    assert at.button(key="tour_next").disabled
    images = at.get("image")  # the photo, then the hits' thumbnails
    clip = search.meta.iloc[answers[3].query_row]["clip_id"]
    assert images[0].captions == [f"A still frame of {clip}"] and len(images) == 1 + tour_logic.TOUR_K
    # presentation mode: the CSS is injected, the step picker and the details are gone, the step is kept
    assert at.get("button_group") and at.expander
    at.toggle(key="tour_present").set_value(True).run()
    assert any("font-size: 22px" in m.value for m in at.markdown)
    assert not at.get("button_group") and not at.expander
    assert at.header[0].value.startswith("4 / 4")
    at.button(key="tour_prev").click().run()
    assert at.header[0].value.startswith("3 / 4") and _shown_hits(at) == answers[2].hits["clip_id"].tolist()
    at.toggle(key="tour_present").set_value(False).run()
    assert at.get("button_group") and at.header[0].value.startswith("3 / 4")
