"""Pictures of the model: what `generation.attention_maps` holds, drawn.

    plots.py           attention heatmaps and the positional encoding (matplotlib)
    attention_page.py  a self-contained HTML page to explore every layer, head and kind
"""
