"""A self-contained HTML page to explore one translation's attention: pick the kind, layer and
head, hover a cell to read its weight.

One file, no network and no server: the weights are embedded as JSON and drawn as SVG by a
few lines of plain JavaScript.
"""

import html
import json

import numpy as np

from keras_transformer.generation.attention_maps import KINDS

# matplotlib's viridis at 9 evenly spaced points, as in the PNG figures
VIRIDIS = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962",
           "#addc30", "#fde725"]
MASKED_COLOUR = "#d9d9d9"

EXPLANATIONS = {
    "self": "Each source token (row) looks at every source token (column). Rows sum to 1.",
    "masked": "Step t (row) may only look at the decoder inputs up to itself: the future "
              "(grey) has score -inf before the softmax, so its weight is exactly 0. "
              "Rows sum to 1.",
    "cross": "Each generated token (row) looks at the source (columns) through the "
             "encoder's keys and values. Rows sum to 1.",
}


def _weights(array):
    """(N, h, rows, columns) -> nested lists of floats with 6 significant digits (a weight
    of 3e-9 stays 3e-9: small is not the same as the masked exact 0)."""
    return np.vectorize(lambda w: float(f"{w:.6g}"), otypes=[float])(array).tolist()


def page_data(maps):
    """What the page embeds: tokens, and per kind its labels, masked cells and weights."""
    kinds = {}
    for kind, (name, row_label, column_label) in KINDS.items():
        rows, columns = maps.labels(kind)
        kinds[kind] = {"name": name, "rowLabel": row_label, "columnLabel": column_label,
                       "rows": rows, "columns": columns,
                       "explanation": EXPLANATIONS[kind],
                       "masked": maps.masked_cells(kind).astype(int).tolist(),
                       "weights": _weights(maps.weights(kind))}
    return {"sentence": maps.sentence, "translation": maps.output_tokens,
            "layers": maps.num_layers, "heads": maps.num_heads, "kinds": kinds}


def attention_page(maps):
    """The page's HTML text for an `AttentionMaps`."""
    data = json.dumps(page_data(maps), ensure_ascii=False).replace("</", "<\\/")
    return (PAGE.replace("{{title}}", html.escape(maps.sentence))
            .replace("{{viridis}}", json.dumps(VIRIDIS))
            .replace("{{masked_colour}}", MASKED_COLOUR)
            .replace("{{data}}", data))


def write_attention_page(maps, path):
    """Write `attention_page(maps)` to `path` (UTF-8). Returns the path."""
    with open(path, "w", encoding="utf-8") as file:
        file.write(attention_page(maps))
    return path


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>attention: {{title}}</title>
<style>
  body { font-family: sans-serif; margin: 1.5em; color: #222; }
  .controls label { margin-right: 1.2em; }
  #readout { font-family: monospace; min-height: 1.4em; margin: 0.6em 0; }
  #explanation { max-width: 50em; color: #555; }
  svg text { font-size: 12px; fill: #222; }
  rect.cell:hover { stroke: #e4572e; stroke-width: 2; }
</style>
</head>
<body>
<h2 id="sentence"></h2>
<p>Translation: <b id="translation"></b></p>
<div class="controls">
  <label>kind <select id="kind"></select></label>
  <label>layer <select id="layer"></select></label>
  <label>head <select id="head"></select></label>
</div>
<p id="explanation"></p>
<div id="readout">hover a cell to read its weight</div>
<svg id="matrix" xmlns="http://www.w3.org/2000/svg"></svg>
<script type="application/json" id="attention-data">{{data}}</script>
<script>
"use strict";
const DATA = JSON.parse(document.getElementById("attention-data").textContent);
const VIRIDIS = {{viridis}};
const MASKED = "{{masked_colour}}";
const SVG = "http://www.w3.org/2000/svg";
const CELL = 26, BAR = 16;

function colour(weight) {  // linear interpolation between the viridis points
  const x = Math.min(Math.max(weight, 0), 1) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(x), VIRIDIS.length - 2), f = x - i;
  const a = VIRIDIS[i], b = VIRIDIS[i + 1];
  const channel = k => Math.round(parseInt(a.substr(k, 2), 16) * (1 - f)
                                  + parseInt(b.substr(k, 2), 16) * f);
  return "rgb(" + channel(1) + "," + channel(3) + "," + channel(5) + ")";
}

function element(name, attributes, parent) {
  const node = document.createElementNS(SVG, name);
  for (const key in attributes) node.setAttribute(key, attributes[key]);
  parent.appendChild(node);
  return node;
}

function options(select, values, labels) {
  values.forEach((value, i) => {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = labels[i];
    select.appendChild(option);
  });
}

function textWidth(tokens) {
  return 8 + 7.5 * Math.max(...tokens.map(token => token.length));
}

function draw() {
  const kind = DATA.kinds[document.getElementById("kind").value];
  const layer = +document.getElementById("layer").value;
  const head = +document.getElementById("head").value;
  const weights = kind.weights[layer][head];
  const svg = document.getElementById("matrix");
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  document.getElementById("explanation").textContent = kind.explanation;
  const left = textWidth(kind.rows) + 20, top = textWidth(kind.columns) + 20;
  const width = kind.columns.length * CELL, height = kind.rows.length * CELL;
  svg.setAttribute("width", left + width + 90);
  svg.setAttribute("height", top + Math.max(height, 160) + 40);
  element("text", {x: 2, y: 14}, svg).textContent = "rows: " + kind.rowLabel
      + ", columns: " + kind.columnLabel;
  kind.columns.forEach((token, j) => {
    const x = left + j * CELL + CELL / 2 + 4, y = top - 6;
    element("text", {x: x, y: y, transform: "rotate(-90 " + x + " " + y + ")",
                     class: "column-token"}, svg).textContent = token;
  });
  kind.rows.forEach((token, i) => {
    element("text", {x: left - 6, y: top + i * CELL + CELL / 2 + 4, "text-anchor": "end",
                     class: "row-token"}, svg).textContent = token;
  });
  const readout = document.getElementById("readout");
  weights.forEach((row, i) => row.forEach((weight, j) => {
    const masked = kind.masked[i][j] === 1;
    const cell = element("rect", {x: left + j * CELL, y: top + i * CELL, width: CELL - 1,
                                  height: CELL - 1, fill: masked ? MASKED : colour(weight),
                                  class: masked ? "cell masked" : "cell",
                                  "data-row": i, "data-column": j, "data-weight": weight},
                         svg);
    cell.addEventListener("mouseenter", () => {
      readout.textContent = kind.name + ", layer " + (layer + 1) + ", head " + (head + 1)
          + ": " + kind.rows[i] + " (row " + (i + 1) + ") \u2192 " + kind.columns[j]
          + " (column " + (j + 1) + "): " + weight + (masked ? " (masked: exactly 0)" : "");
    });
  }));
  // colour bar: 0 at the bottom, 1 at the top
  const barLeft = left + width + 24, barHeight = Math.max(height, 160);
  for (let k = 0; k < 50; k++) {
    element("rect", {x: barLeft, y: top + barHeight * (1 - (k + 1) / 50), width: BAR,
                     height: barHeight / 50 + 0.5, fill: colour((k + 0.5) / 50)}, svg);
  }
  [0, 0.5, 1].forEach(value => {
    element("text", {x: barLeft + BAR + 4, y: top + barHeight * (1 - value) + 4}, svg)
        .textContent = String(value);
  });
  element("rect", {x: barLeft, y: top + barHeight + 12, width: BAR, height: BAR,
                   fill: MASKED}, svg);
  element("text", {x: barLeft + BAR + 4, y: top + barHeight + 25}, svg).textContent =
      "masked";
}

document.getElementById("sentence").textContent = DATA.sentence;
document.getElementById("translation").textContent = DATA.translation.join(" ");
const kinds = Object.keys(DATA.kinds);
options(document.getElementById("kind"), kinds, kinds.map(k => DATA.kinds[k].name));
const layers = [...Array(DATA.layers).keys()];
options(document.getElementById("layer"), layers, layers.map(i => String(i + 1)));
const heads = [...Array(DATA.heads).keys()];
options(document.getElementById("head"), heads, heads.map(i => String(i + 1)));
document.getElementById("layer").value = String(DATA.layers - 1);
for (const id of ["kind", "layer", "head"]) {
  document.getElementById(id).addEventListener("change", draw);
}
draw();
</script>
</body>
</html>
"""
