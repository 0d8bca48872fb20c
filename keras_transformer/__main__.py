import os

# TensorFlow's C++ start-up chatter (CPU features, CUDA probing) hides the job's output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_transformer.cli import main  # noqa: E402

raise SystemExit(main())
