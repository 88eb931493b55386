"""Tokenizer and text encoder trained from scratch on the licensed captions only.

No pretrained text model is used for ``base`` models: a byte-level BPE is learned from the
captions with the ``tokenizers`` library and handed to transformers' ``CLIPTokenizer`` as explicit
``vocab``/``merges`` (a ``vocab_file=`` path alone is silently ignored), and a small randomly
initialised ``CLIPTextModel`` is trained jointly with the UNet. ``text_encoder_origin`` records
where the text side came from, for the model's lineage.

Prompt encoding follows the pipeline the model is saved as, so training sees exactly what
inference will feed the UNet:

* IF-style pipelines lower-case and strip the prompt, pad to 77 tokens and pass the attention mask;
* Stable-Diffusion-style pipelines pad to ``tokenizer.model_max_length`` and pass the mask only
  when the text encoder's config asks for it.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, trainers
from tokenizers.models import BPE
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
END_OF_WORD = "</w>"
MAX_PROMPT_TOKENS = 77
"""IF and Stable Diffusion both encode prompts as 77 tokens."""

# The same splitting CLIPTokenizer applies before BPE, so the learned merges fit it exactly.
_CLIP_SPLIT_PATTERN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def _clip_style_bpe_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer(BPE(unk_token=EOS_TOKEN, continuing_subword_prefix="", end_of_word_suffix=END_OF_WORD))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_CLIP_SPLIT_PATTERN), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    return tokenizer


def train_caption_tokenizer(
    captions: Iterable[str], vocab_size: int, model_max_length: int = MAX_PROMPT_TOKENS
) -> CLIPTokenizer:
    """Learn a byte-level BPE on ``captions`` and wrap it as a CLIPTokenizer.

    The vocabulary is laid out like CLIP's: the 256 byte symbols, the same with the end-of-word
    mark, one entry per learned merge, then the two special tokens, so every string is encodable
    and the ids do not depend on the trainer's internal numbering.
    """
    captions = list(captions)
    byte_alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    fixed_entries = 2 * len(byte_alphabet) + 2
    merges: list[tuple[str, str]] = []
    if vocab_size > fixed_entries and captions:
        bpe = _clip_style_bpe_tokenizer()
        trainer = trainers.BpeTrainer(
            # The trainer's own vocab also holds the bare alphabet and specials; ask for enough
            # merges to fill the requested size once the end-of-word symbols are added below.
            vocab_size=vocab_size - len(byte_alphabet),
            special_tokens=[BOS_TOKEN, EOS_TOKEN],
            initial_alphabet=byte_alphabet,
            end_of_word_suffix=END_OF_WORD,
            show_progress=False,
        )
        bpe.train_from_iterator(captions, trainer)
        merges = [tuple(pair) for pair in json.loads(bpe.to_str())["model"]["merges"]]

    vocab: dict[str, int] = {}
    for symbol in byte_alphabet:
        vocab[symbol] = len(vocab)
    for symbol in byte_alphabet:
        vocab[symbol + END_OF_WORD] = len(vocab)
    kept_merges: list[tuple[str, str]] = []
    for left, right in merges:
        if len(vocab) >= vocab_size - 2:
            break
        if left + right in vocab:
            continue
        vocab[left + right] = len(vocab)
        kept_merges.append((left, right))
    vocab[BOS_TOKEN] = len(vocab)
    vocab[EOS_TOKEN] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=kept_merges, model_max_length=model_max_length)


def tokenizer_vocab_and_merges(tokenizer: CLIPTokenizer) -> tuple[dict[str, int], list[str]]:
    """The BPE model's vocabulary and merges, read back from the backing ``tokenizers`` object."""
    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    merges = [" ".join(pair) if isinstance(pair, list) else pair for pair in model["merges"]]
    return dict(model["vocab"]), merges


def save_tokenizer(tokenizer: CLIPTokenizer, directory: str | Path) -> Path:
    """``save_pretrained`` plus CLIP's classic ``vocab.json``/``merges.txt`` for older readers."""
    directory = Path(directory)
    tokenizer.save_pretrained(directory)
    write_classic_vocab_files(tokenizer, directory)
    return directory


def write_classic_vocab_files(tokenizer: CLIPTokenizer, directory: str | Path) -> None:
    directory = Path(directory)
    vocab, merges = tokenizer_vocab_and_merges(tokenizer)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n" + "".join(m + "\n" for m in merges), encoding="utf-8")


@dataclass(frozen=True)
class TextEncoderShape:
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int


def build_text_encoder(
    tokenizer: CLIPTokenizer, shape: TextEncoderShape, *, vocab_size: int | None = None
) -> CLIPTextModel:
    """A randomly initialised CLIP text transformer sized to ``tokenizer`` (or to ``vocab_size`` embedding
    rows, at least the tokenizer's); seed torch first."""
    config = CLIPTextConfig(
        vocab_size=len(tokenizer) if vocab_size is None else max(vocab_size, len(tokenizer)),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        max_position_embeddings=MAX_PROMPT_TOKENS,
        projection_dim=shape.hidden_size,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(config)


def captions_sha256(captions: Iterable[str]) -> str:
    """Order-independent digest of the caption multiset the tokenizer was learned from."""
    digest = hashlib.sha256()
    for caption in sorted(captions):
        encoded = caption.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "big"))
        digest.update(encoded)
    return digest.hexdigest()


def scratch_text_encoder_origin(
    captions: Sequence[str], tokenizer: CLIPTokenizer, text_encoder: CLIPTextModel, seed: int
) -> dict[str, Any]:
    """Lineage record for a tokenizer and text encoder that were trained here from nothing."""
    config = text_encoder.config
    return {
        "kind": "trained_from_scratch",
        "tokenizer": "byte-level BPE (CLIP layout)",
        "captions_sha256": captions_sha256(captions),
        "caption_count": len(captions),
        "vocab_size": len(tokenizer),
        "text_encoder": "CLIPTextModel",
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_hidden_layers,
        "init_seed": seed,
        "trained_jointly_with_unet": True,
    }


def inherited_text_encoder_origin(base_model: str, text_encoder: torch.nn.Module, trained: bool) -> dict[str, Any]:
    """Lineage record for a text encoder taken over from the base pipeline."""
    return {
        "kind": "fine_tuned_from_base" if trained else "inherited_frozen",
        "base_model": str(base_model),
        "text_encoder": type(text_encoder).__name__,
        "parameters_sha256": module_parameters_sha256(text_encoder),
    }


def module_parameters_sha256(module: torch.nn.Module) -> str:
    """Digest of a module's state dict (names, dtypes, shapes and bytes) in sorted-name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class PromptStyle(enum.Enum):
    """How a pipeline family turns prompts into UNet conditioning."""

    IF = "if"
    STABLE_DIFFUSION = "stable_diffusion"

    @classmethod
    def for_pipeline_class(cls, class_name: str) -> PromptStyle:
        return cls.IF if class_name.startswith("IF") else cls.STABLE_DIFFUSION


@dataclass
class TokenizedPrompts:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor | None


def tokenize_prompts(tokenizer: CLIPTokenizer, prompts: Sequence[str], style: PromptStyle) -> TokenizedPrompts:
    if style is PromptStyle.IF:
        # IFPipeline._text_preprocessing with clean_caption=False.
        prompts = [p.lower().strip() for p in prompts]
        max_length = MAX_PROMPT_TOKENS
    else:
        max_length = tokenizer.model_max_length
    tokens = tokenizer(
        list(prompts),
        padding="max_length",
        max_length=max_length,
        truncation=True,
        return_tensors="pt",
    )
    return TokenizedPrompts(tokens.input_ids, tokens.attention_mask)


def encode_prompts(
    text_encoder: torch.nn.Module, tokens: TokenizedPrompts, style: PromptStyle, device: torch.device
) -> torch.Tensor:
    """Last hidden states, as the pipelines feed them to the UNet's cross-attention."""
    if style is PromptStyle.IF or getattr(_unwrapped_config(text_encoder), "use_attention_mask", False):
        mask = tokens.attention_mask.to(device) if tokens.attention_mask is not None else None
    else:
        mask = None
    return text_encoder(tokens.input_ids.to(device), attention_mask=mask)[0]


def _unwrapped_config(module: torch.nn.Module) -> Any:
    return getattr(getattr(module, "module", module), "config", None)


__all__ = [
    "MAX_PROMPT_TOKENS",
    "PromptStyle",
    "TextEncoderShape",
    "TokenizedPrompts",
    "build_text_encoder",
    "captions_sha256",
    "encode_prompts",
    "inherited_text_encoder_origin",
    "module_parameters_sha256",
    "save_tokenizer",
    "scratch_text_encoder_origin",
    "tokenize_prompts",
    "train_caption_tokenizer",
    "write_classic_vocab_files",
]
