"""A ``tokenizer.json`` for SigLIP checkpoints that ship only the slow sentencepiece tokenizer.

The first SigLIP releases (``google/siglip-base-patch16-224`` and its siblings) ship ``spiece.model``
and transformers' ``SiglipTokenizer``, which has no fast counterpart. That tokenizer does three things
before sentencepiece runs, as big_vision's reference does: it removes ASCII punctuation
(``string.punctuation``), collapses every run of whitespace into one space and strips the ends; then
it encodes ``"▁" + text`` with sentencepiece's own normalisation, and appends ``</s>``. Each step has an
exact counterpart in the ``tokenizers`` library, so the converted file needs nothing of the runtime
beyond what every model's ``tokenizer.json`` gets; the export checks the converted tokens against
the slow tokenizer before it writes anything (``export.onnx_export``).

Texts holding a special token's own text differ, because a ``tokenizer.json`` cannot express two of the
slow tokenizer's rules: it appends no second ``</s>`` to a text that ends in one, and it drops the
word-start mark of the word after a special token.
"""

from __future__ import annotations

from typing import Any

from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
from transformers.convert_slow_tokenizer import SpmConverter

from assetlens.engine.tokens import canonicalizer


class SiglipConverter(SpmConverter):
    """transformers' sentencepiece converter with SiglipTokenizer's canonicalisation in front."""

    def normalizer(self, proto: Any) -> normalizers.Normalizer:
        steps = [normalizers.Lowercase()] if self.original_tokenizer.do_lower_case else []
        steps.append(canonicalizer())
        charsmap = proto.normalizer_spec.precompiled_charsmap
        if charsmap:
            steps.append(normalizers.Precompiled(charsmap))
        # sentencepiece's own whitespace rule: "▁" in the text is a space, runs collapse, the ends are stripped.
        steps += [normalizers.Replace("▁", " "), normalizers.Replace(Regex(" {2,}"), " "), normalizers.Strip()]
        return normalizers.Sequence(steps)

    def pre_tokenizer(self, replacement: str, add_prefix_space: bool) -> pre_tokenizers.PreTokenizer:
        return pre_tokenizers.Metaspace(replacement=replacement, prepend_scheme="always")

    def post_processor(self) -> processors.PostProcessor:
        eos = self.original_tokenizer.eos_token
        return processors.TemplateProcessing(
            single=["$A", eos],
            pair=["$A", eos, "$B", eos],
            special_tokens=[(eos, self.original_tokenizer.convert_tokens_to_ids(eos))],
        )


def fast_siglip_tokenizer(slow: Any) -> Any:
    """A ``PreTrainedTokenizerFast`` equivalent to ``slow`` (a ``SiglipTokenizer``), with its special tokens."""
    from transformers import PreTrainedTokenizerFast

    backend: Tokenizer = SiglipConverter(slow).converted()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=slow.eos_token,
        pad_token=slow.pad_token,
        unk_token=slow.unk_token,
        model_max_length=slow.model_max_length,
        padding_side=slow.padding_side,
    )
