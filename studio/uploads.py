"""Upload widgets whose failures reach the user as words: Gradio's own preprocessing raises a bare exception
for a file it cannot read, which the page would show only as a generic error."""

from __future__ import annotations

import gradio as gr


def _worded(component: type, message: str) -> type:
    class Worded(component):
        is_template = True  # the page renders it as `component`

        def preprocess(self, payload):
            try:
                return super().preprocess(payload)
            except Exception:
                raise gr.Error(message, print_exception=False) from None

    Worded.__name__ = Worded.__qualname__ = f"Worded{component.__name__}"
    return Worded


ImageUpload = _worded(gr.Image, "The uploaded file is not an image this app can read: use a PNG, JPEG or WebP file.")
VideoUpload = _worded(gr.Video, "The uploaded file is not a video this app can read: use an MP4, WebM or MOV file.")
