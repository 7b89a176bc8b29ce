"""The Gradio annotation app (imports da2k's storage layer, nothing else of it).

>>> from da2k.annotator_app import build_app
>>> build_app("da2k.db", images_root="photos/").launch(server_name="127.0.0.1", server_port=7860)
"""

import os

# The app runs offline: no usage analytics or version checks (set before gradio is imported).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from da2k.annotator_app.app import AnnotatorBlocks, build_app, read_auth_file  # noqa: E402

__all__ = ["AnnotatorBlocks", "build_app", "read_auth_file"]
