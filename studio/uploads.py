"""Upload widgets whose failures reach the user as words: Gradio's own preprocessing raises a bare exception
for a file it cannot read, which the page would show only as a generic error."""

from __future__ import annotations

import gradio as gr


class ImageUpload(gr.Image):
    is_template = True

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except Exception:
            raise gr.Error("The uploaded file is not an image this app can read: use a PNG, JPEG or WebP file.", print_exception=False) from None


class VideoUpload(gr.Video):
    is_template = True

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except Exception:
            raise gr.Error("The uploaded file is not a video this app can read: use an MP4, WebM or MOV file.", print_exception=False) from None
