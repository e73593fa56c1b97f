"""UMT5 prompt embeddings, computed once per distinct prompt and kept on the device."""

from __future__ import annotations

import html
import re
from collections import OrderedDict

import ftfy
import torch

from .errors import BadInput
from .limits import MAX_PROMPT_TOKENS


def clean_prompt(text: str) -> str:
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return re.sub(r"\s+", " ", text).strip()


class PromptEncoder:
    """Encodes as the reference pipelines do (cleaned text, padded to a fixed length, zeros past the tokens): mirrors
    `HeliosPipeline._get_t5_prompt_embeds` of diffusers 0.42.1, with the embeddings of each prompt kept."""

    def __init__(self, tokenizer, text_encoder, device, dtype, capacity: int = 32):
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder
        self.device = device
        self.dtype = dtype
        self.capacity = capacity
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    def check_length(self, prompt: str) -> None:
        """The model reads MAX_PROMPT_TOKENS tokens: a longer prompt is refused, not silently cut."""
        if prompt in self._cache:
            return
        text = clean_prompt(prompt)
        count = MAX_PROMPT_TOKENS + 1 if len(text) > 64 * MAX_PROMPT_TOKENS else len(self.tokenizer(text).input_ids)
        if count > MAX_PROMPT_TOKENS:
            raise BadInput(
                f"The prompt starting {text[:40]!r} is longer than the {MAX_PROMPT_TOKENS} tokens the model reads: "
                "shorten it."
            )

    @torch.no_grad()
    def encode(self, prompt: str) -> torch.Tensor:
        if prompt in self._cache:
            self._cache.move_to_end(prompt)
            return self._cache[prompt]
        inputs = self.tokenizer(
            [clean_prompt(prompt)], padding="max_length", max_length=MAX_PROMPT_TOKENS, truncation=True,
            add_special_tokens=True, return_attention_mask=True, return_tensors="pt",
        )
        mask = inputs.attention_mask
        length = int(mask.gt(0).sum())
        hidden = self.text_encoder(inputs.input_ids.to(self.device), mask.to(self.device)).last_hidden_state
        hidden = hidden.to(device=self.device, dtype=self.dtype)
        embeds = torch.zeros_like(hidden)
        embeds[:, :length] = hidden[:, :length]
        self._cache[prompt] = embeds
        if len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        return embeds

    def remember(self, prompt: str, embeds: torch.Tensor) -> None:
        """Use precomputed embeddings for `prompt` (benchmarks, callers with their own text encoder)."""
        self._cache[prompt] = embeds.to(device=self.device, dtype=self.dtype)

    def mix(self, weighted: tuple[tuple[str, float], ...]) -> torch.Tensor:
        """The linear blend of the prompts' embeddings: the cross-fade between timeline entries."""
        (first, w0), *rest = weighted
        if not rest:
            return self.encode(first)
        out = self.encode(first).float() * w0
        for prompt, weight in rest:
            out = out + self.encode(prompt).float() * weight
        return out.to(self.dtype)
