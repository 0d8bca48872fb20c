"""The attention page: one self-contained file, explored in a real headless browser."""

import dataclasses
import json
import re
import shutil

import numpy as np
import pytest

from keras_transformer.viz.attention_page import attention_page, write_attention_page

DATA = re.compile(r'<script type="application/json" id="attention-data">(.*?)</script>', re.S)


def test_page_embeds_every_weight_and_refers_to_nothing_outside(attention_maps):
    maps, _ = attention_maps
    maps = dataclasses.replace(maps, sentence='</script><script>alert("x")</script> & more')
    text = attention_page(maps)
    data = json.loads(DATA.search(text).group(1))
    assert data["sentence"] == maps.sentence and data["translation"] == maps.output_tokens
    for kind in ("self", "masked", "cross"):
        np.testing.assert_allclose(data["kinds"][kind]["weights"], maps.weights(kind),
                                   rtol=1e-5)
        assert data["kinds"][kind]["rows"] == maps.labels(kind)[0]
    masked = np.array(data["kinds"]["masked"]["weights"])
    assert np.all(np.triu(masked, k=1) == 0.0)
    assert text.count("</script>") == 2  # the sentence cannot close a script
    for outside in ("src=", "href=", "<link", "@import", "url(", "fetch("):
        assert outside not in text


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    path = _chromium()
    if path is None:
        pytest.skip("no Chromium installed (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path)
        yield browser
        browser.close()


def test_page_in_a_headless_browser(attention_maps, browser, tmp_path):
    maps, _ = attention_maps
    path = write_attention_page(maps, tmp_path / "attention.html")
    page = browser.new_page()
    problems, requests = [], []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(path.as_uri())

    def drawn():
        cells = page.eval_on_selector_all(
            "#matrix rect.cell",
            "cells => cells.map(c => [+c.dataset.row, +c.dataset.column, +c.dataset.weight])")
        rows, columns = max(c[0] for c in cells) + 1, max(c[1] for c in cells) + 1
        assert len(cells) == rows * columns
        matrix = np.zeros((rows, columns))
        for row, column, weight in cells:
            matrix[row, column] = weight
        return matrix

    # it opens on the encoder's self-attention, last layer, head 1
    assert page.inner_text("#sentence") == maps.sentence  # shown as text, not markup
    first = drawn()
    np.testing.assert_allclose(first, maps.encoder[-1, 0], rtol=1e-5)
    page.select_option("#head", index=1)
    second = drawn()
    assert not np.allclose(second, first)
    np.testing.assert_allclose(second, maps.encoder[-1, 1], rtol=1e-5)

    page.select_option("#kind", value="masked")
    page.select_option("#layer", index=0)
    masked = drawn()
    np.testing.assert_allclose(masked, maps.masked[0, 1], rtol=1e-5)
    assert np.all(np.triu(masked, k=1) == 0.0)
    steps = len(maps.output_tokens)
    assert page.locator("#matrix rect.cell.masked").count() == steps * (steps - 1) // 2
    page.hover("#matrix rect.cell[data-row='2'][data-column='1']")
    readout = page.inner_text("#readout")
    assert readout.endswith(f": {masked[2, 1]:.6g}") and "head 2" in readout

    page.select_option("#kind", value="cross")
    np.testing.assert_allclose(drawn(), maps.cross[0, 1], rtol=1e-5)
    assert problems == []
    assert requests == [path.as_uri()]  # nothing else loaded: no network, no files
