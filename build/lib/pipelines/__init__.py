"""Data pipelines: parallel text -> subword ids -> tf.data batches.

`default_data` and `readers` are plain Python; `tokenizers` and `batching` import TensorFlow, so import
the module you need (nothing is imported here).
"""
