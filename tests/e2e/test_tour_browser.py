"""The Tour and Model pages in a real browser (``streamlit run app`` through Debian's Chromium with Playwright).

Checks, as a person would see them: the tour opens on step 1 and "Next" walks through all four steps, each showing
the hits :func:`app.logic.tour_steps.run_tour` computes for this model and bank (thumbnails for videos,
narrations for text); presentation mode enlarges the type, hides the sidebar and the step picker, and keeps the
step; the Model page shows the card (preset, parameter count of the loaded model, the embedding graph drawn as SVG
with its spaces).
Screenshots: ``tour``, ``tour-presentation``, ``model``.
"""

from __future__ import annotations

import re

import pytest

from .conftest import settle

HIT = re.compile(r"^(\d+)\. (\S+)$")


@pytest.fixture(scope="module")
def answers(app_paths):
    import torch

    from app.logic.bank_search import BankSearch
    from app.logic.tour_steps import run_tour
    from mmv.bank import Bank
    from mmv.checkpoint import load_checkpoint

    torch.set_num_threads(1)  # as the server (app/widgets/resources.py): the same sums, so the same order of near ties
    model = load_checkpoint(app_paths[0]).eval()
    return run_tour(model, BankSearch(Bank.load(app_paths[1])))


def _shown_hits(page) -> list[str]:
    texts = page.locator('[data-testid="stMarkdownContainer"] strong').all_inner_texts()
    return [m.group(2) for m in (HIT.match(t.strip()) for t in texts) if m]


def _root_font_px(page) -> float:
    return float(page.evaluate("parseFloat(getComputedStyle(document.documentElement).fontSize)"))


def test_the_tour_runs_through_all_steps(server, page, shoot, answers):
    page.set_viewport_size({"width": 1400, "height": 1600})
    page.goto(f"{server}/tour")
    for i, answer in enumerate(answers):
        step = answer.step
        settle(page, f"{i + 1} / 4 \u00b7 {step.title}")
        assert answer.missing is None
        assert page.get_by_text(f"Result: {step.query} \u2192 {step.target} in S_{answer.space}").count() == 1
        assert _shown_hits(page) == answer.hits["clip_id"].tolist()
        if answer.own_rank is not None:
            assert page.get_by_text(f"of {answer.targets:,}", exact=False).count() >= 1
        if step.key == "photo_video":
            assert page.get_by_text("A still frame of").count() == 1
        if i == 0:
            shoot(page, "tour")
        if i < len(answers) - 1:
            page.get_by_role("button", name="Next \u2192").click()
    assert page.get_by_role("button", name="Next \u2192").is_disabled()
    assert "Traceback" not in page.inner_text("body")


def test_presentation_mode_enlarges_the_type_and_hides_controls(server, page, shoot, answers):
    page.set_viewport_size({"width": 1400, "height": 1400})
    page.goto(f"{server}/tour")
    settle(page, f"1 / 4 \u00b7 {answers[0].step.title}")
    page.get_by_role("button", name="Next \u2192").click()
    settle(page, f"2 / 4 \u00b7 {answers[1].step.title}")
    normal = _root_font_px(page)
    assert page.locator('[data-testid="stSidebar"]').is_visible()
    assert page.get_by_text("Details").count() == 1  # the hits' table, in normal mode only
    page.get_by_text("Presentation mode").click()
    page.wait_for_function("parseFloat(getComputedStyle(document.documentElement).fontSize) > 20")
    settle(page)
    assert _root_font_px(page) == 22.0 > normal
    assert not page.locator('[data-testid="stSidebar"]').is_visible()
    assert page.get_by_text("Details").count() == 0
    assert page.get_by_text(f"2 / 4 \u00b7 {answers[1].step.title}").count() == 1  # the step is kept
    assert _shown_hits(page) == answers[1].hits["clip_id"].tolist()
    shoot(page, "tour-presentation")
    page.get_by_text("Presentation mode").click()
    page.wait_for_function("parseFloat(getComputedStyle(document.documentElement).fontSize) < 20")
    settle(page)
    assert page.locator('[data-testid="stSidebar"]').is_visible() and _root_font_px(page) == normal


def test_the_model_page_shows_the_card(server, page, shoot, app_paths):
    from app.logic.model_card import find_run_dir, graph_edges
    from mmv.checkpoint import load_checkpoint

    model = load_checkpoint(app_paths[0]).eval()
    total = sum(p.numel() for p in model.parameters())
    page.set_viewport_size({"width": 1400, "height": 2000})
    page.goto(f"{server}/model")
    settle(page, "Embedding graph")
    # Retried until the page shows them (a first read once caught the header half drawn, on CI).
    expect = pytest.importorskip("playwright.sync_api").expect
    values = page.locator('[data-testid="stMetricValue"]')
    for i, value in enumerate([model.config.name, model.config.graph, f"{total:,}"]):
        expect(values.nth(i)).to_have_text(value)
    svg = page.locator('[data-testid="stGraphVizChart"] svg')
    svg.wait_for()
    edges = graph_edges(model.config)
    drawn = set(svg.locator("g.edge > title").all_text_contents())  # graphviz titles an edge "tail->head"
    assert drawn == {f"{e.source}->{e.target}" for e in edges}
    labels = svg.text_content()
    assert all(e.head in labels for e in edges)
    assert page.get_by_text("Parameters", exact=True).count() >= 1
    if find_run_dir(app_paths[0]) is None:  # the tests' tiny model: no run beside it
        assert page.get_by_text("No training run beside this checkpoint").count() == 1
    else:  # e.g. MMV_E2E_MODEL=data_samples/demo_model: its curves
        page.locator(".js-plotly-plot").first.wait_for()
    shoot(page, "model")
