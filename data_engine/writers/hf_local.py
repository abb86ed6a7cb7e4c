"""Writer backed by a local Hugging Face chat model (``AutoModelForCausalLM`` + its chat template).

The model is loaded from a local folder only (``local_files_only``; never ``trust_remote_code``).
Requests are rendered with the same prompt templates as the API writer, batched (left padding) and
generated together; each reply is parsed as the requested JSON object. Malformed replies are retried
(up to ``malformed_retries`` more times, in later batches, with sampling) and then reported as
:class:`WriterFailure`. Chat templates that reject a system turn (Gemma's) get the system prompt
prepended to the user turn instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_engine.prompts import render_messages, templates_version
from data_engine.writers.base import (
    MalformedReply,
    TextWriter,
    WriterFailure,
    WriterFatalError,
    WriterRequest,
    WriterResponse,
    parse_json_reply,
)
from models.common.io import fingerprint_files

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HFSettings:
    model_path: str
    batch_size: int = 8
    max_new_tokens: int = 512
    temperature: float = 0.7  # 0: greedy decoding
    top_p: float = 0.95
    malformed_retries: int = 2
    device: str = "cpu"
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    seed: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_new_tokens < 1 or self.malformed_retries < 0:
            raise ValueError("batch_size and max_new_tokens must be >= 1, malformed_retries >= 0")


class HFLocalWriter(TextWriter):
    """Batched generation with a local chat model (module docstring)."""

    kind = "hf"

    def __init__(self, settings: HFSettings) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = Path(settings.model_path)
        if not folder.is_dir():
            raise WriterFatalError(f"--hf-model must be a local model folder; {folder} does not exist")
        self.settings = settings
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        if self.tokenizer.chat_template is None:
            raise WriterFatalError(
                f"{folder}: the tokenizer has no chat template; use an instruction-tuned model"
            )
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        dtype = {
            "auto": "auto",
            "float32": torch.float32,
            "bfloat16": torch.bfloat16,
            "float16": torch.float16,
        }[settings.dtype]
        self.model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=dtype)
        self.model.to(settings.device).eval()
        self._system_role = self._accepts_system_role()
        files = [p for p in folder.iterdir() if p.is_file() and p.suffix in (".json", ".safetensors", ".bin")]
        self._model_id = f"hf:{folder.name}:{fingerprint_files(files, root=folder)[:12]}"
        self._torch = torch

    def _accepts_system_role(self) -> bool:
        try:
            self.tokenizer.apply_chat_template(
                [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}], tokenize=False
            )
        except Exception:  # noqa: BLE001 - jinja's TemplateError (raise_exception) or a template bug
            return False
        return True

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def template_version(self) -> str:
        return templates_version()

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {
            "kind": self.kind,
            "model": self.model_id,
            "template_version": self.template_version,
            "temperature": s.temperature,
            "max_new_tokens": s.max_new_tokens,
        }

    def prompt_text(self, request: WriterRequest) -> str:
        """The chat-templated prompt string of ``request`` (generation prompt appended)."""
        messages = render_messages(request)
        if not self._system_role:
            system, user = messages
            messages = [{"role": "user", "content": f"{system['content']}\n\n{user['content']}"}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _generate_batch(self, prompts: list[str], sample: bool) -> list[str]:
        torch = self._torch
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        batch = {k: v.to(self.settings.device) for k, v in batch.items()}
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.settings.max_new_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if sample:
            kwargs.update(
                do_sample=True, temperature=max(self.settings.temperature, 1e-3), top_p=self.settings.top_p
            )
        else:
            kwargs.update(do_sample=False)
        with torch.inference_mode():
            output = self.model.generate(**batch, **kwargs)
        new_tokens = output[:, batch["input_ids"].shape[1] :]
        return self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)

    def generate(
        self, requests: Sequence[WriterRequest]
    ) -> Iterator[tuple[int, WriterResponse | WriterFailure]]:
        torch = self._torch
        attempts = [0] * len(requests)
        problems = [""] * len(requests)
        queue = list(range(len(requests)))
        round_index = 0
        while queue:
            retry: list[int] = []
            for start in range(0, len(queue), self.settings.batch_size):
                indices = queue[start : start + self.settings.batch_size]
                torch.manual_seed(self.settings.seed + round_index)
                sample = self.settings.temperature > 0 or round_index > 0
                replies = self._generate_batch([self.prompt_text(requests[i]) for i in indices], sample)
                for index, reply in zip(indices, replies, strict=True):
                    attempts[index] += 1
                    try:
                        yield index, requests[index].parse_reply(parse_json_reply(reply))
                    except MalformedReply as err:
                        problems[index] = str(err)
                        if attempts[index] > self.settings.malformed_retries:
                            yield (
                                index,
                                WriterFailure(
                                    f"malformed reply after {attempts[index]} attempts: {problems[index]}",
                                    attempts[index],
                                ),
                            )
                        else:
                            retry.append(index)
            queue = retry
            round_index += 1
