"""Form inputs whose bad values reach the user as words. Gradio checks an input twice before our handler sees it,
against the component's data model and in its preprocessing; a bare exception from either (an API client sending
text for a number, a server path for an upload, a timeline that is not rows) would show only as a generic error."""

from __future__ import annotations

import gradio as gr

from helios.limits import MAX_SEED

from .form import RESOLUTIONS


def worded(component: type, message: str, keep_gradio_errors: bool = True) -> type:
    """`component` with `message` in place of any failure; Gradio's own `gr.Error`s are kept where they are words
    (a slider's range), replaced where they quote Python (a choice's type)."""

    def refused():
        return gr.Error(message, print_exception=False)

    model = getattr(component, "data_model", None)
    if model is not None:
        def model_validate(cls, obj, *args, **kwargs):
            try:
                return super(checked, cls).model_validate(obj, *args, **kwargs)
            except Exception:
                raise refused() from None

        checked = type(model.__name__, (model,), {"model_validate": classmethod(model_validate)})

    class Worded(component):
        is_template = True  # the page renders it as `component`
        if model is not None:
            data_model = checked

        def preprocess(self, payload):
            try:
                return super().preprocess(payload)
            except gr.Error:
                if keep_gradio_errors:
                    raise
                raise refused() from None
            except Exception:
                raise refused() from None

    Worded.__name__ = Worded.__qualname__ = f"Worded{component.__name__}"
    return Worded

ImageUpload = worded(
    gr.Image, "The image could not be read: upload a PNG, JPEG or WebP file (server paths and URLs are not read)."
)
VideoUpload = worded(
    gr.Video, "The video could not be read: upload an MP4, WebM or MOV file (server paths and URLs are not read)."
)
TimelineRows = worded(gr.Dataframe, "The timeline must be rows of a start (a number) and a prompt (text).")
Crossfade = worded(gr.Slider, "Crossfade must be a whole number of segments from 0 to 6.")
Segments = worded(gr.Slider, "Length must be a whole number of segments, within the slider's range.")
Seed = worded(gr.Number, f"The seed must be a whole number from 0 to {MAX_SEED}.")
RunNumber = worded(gr.Number, "The run must be a whole number from the table of this session's runs.")
StartUnit = worded(gr.Radio, "Start in must be seconds or segments.", keep_gradio_errors=False)
Resolution = worded(gr.Dropdown, f"Resolution must be one of {', '.join(RESOLUTIONS)}.", keep_gradio_errors=False)
Checkpoint = worded(gr.Dropdown, "The checkpoint must be one of those the Compare tab lists.", keep_gradio_errors=False)
WeightsChoice = worded(gr.Radio, "Weights must be bf16 or FP8.", keep_gradio_errors=False)
EngineChoice = worded(gr.Radio, "The engine must be ours or diffusers.", keep_gradio_errors=False)
