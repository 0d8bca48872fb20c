"""Pretrained translators from other toolkits, imported as run directories of ours.

    marian_files.py  Marian / OPUS-MT models read in either published layout (Marian's npz,
                     Hugging Face's MarianMTModel), with numpy alone
    marian.py        their options as a TransformerConfig, their weights in our layers, their
                     vocabulary in our id layout; `import_marian` writes the run directory
"""
