"""A request's output text, one token at a time: incremental detokenization and stop strings.

Byte-level vocabularies (GPT-2, Llama 3, Qwen, the demo) go through an incremental UTF-8 decoder
over each token's bytes, without calling the tokenizer; others decode only a short window of ids
(the tokens since the last complete character, plus the token before them as context), as vLLM
does, instead of the whole output. Text that could still become the start of a stop string is
held back, so a streamed response never shows what the finished one cuts off.
"""

from __future__ import annotations

import codecs
from typing import Any

from genfast.serving.token_bytes import byte_table


class TextStream:
    """Feed token ids with ``add``; it returns the text that can be released now."""

    def __init__(self, tokenizer: Any, stops: list[str] | None = None, drop_prefix: str = "") -> None:
        self.tokenizer = tokenizer
        self.stops = [s for s in (stops or []) if s]
        self.drop_prefix = drop_prefix
        """Text the first tokens repeat from the prompt (token healing) and that is not output."""
        self.ids: list[int] = []
        self._bytes = byte_table(tokenizer)
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        self._prefix_offset = 0
        self._read_offset = 0
        self.text = ""
        """Every character decoded so far (after the dropped prefix; cut at a stop string)."""
        self.released = 0
        """How many characters of ``text`` were handed out."""
        self._searched = 0
        self.stopped = False

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def add(self, token: int) -> str:
        """Take one token; return the newly releasable text ('' while a character or stop is incomplete)."""
        if self.stopped:
            return ""
        self.ids.append(token)
        if self._bytes is not None:
            new = self._utf8.decode(self._bytes[token])  # "" while a character is unfinished
            if not new:
                return ""
            self.text += new
        else:
            before = self._decode(self.ids[self._prefix_offset:self._read_offset])
            after = self._decode(self.ids[self._prefix_offset:])
            if after.endswith("\ufffd") or not after.startswith(before):
                return ""  # an unfinished UTF-8 character: wait for the next token
            self.text += after[len(before):]
            self._prefix_offset, self._read_offset = self._read_offset, len(self.ids)
        if self.drop_prefix:
            if len(self.text) < len(self.drop_prefix) and self.drop_prefix.startswith(self.text):
                return ""
            if self.text.startswith(self.drop_prefix):
                self.text = self.text[len(self.drop_prefix):]
            self.drop_prefix = ""
        self._cut_at_stop()
        end = len(self.text) if self.stopped else len(self.text) - self._held_back()
        return self._release(end)

    def flush(self) -> str:
        """The request ended: everything held back is output, a last unfinished character as U+FFFD."""
        if not self.stopped and self._bytes is not None:
            self.text += self._utf8.decode(b"", final=True)
            self._cut_at_stop()
        elif not self.stopped and self._read_offset < len(self.ids):
            before = self._decode(self.ids[self._prefix_offset:self._read_offset])
            after = self._decode(self.ids[self._prefix_offset:])
            if after.startswith(before):
                self.text += after[len(before):]
                self._read_offset = len(self.ids)
                self._cut_at_stop()
        return self._release(len(self.text))

    def _release(self, end: int) -> str:
        delta = self.text[self.released:end] if end > self.released else ""
        self.released = max(self.released, end)
        return delta

    def _cut_at_stop(self) -> None:
        found = (self.text.find(stop, max(0, self._searched - len(stop) + 1)) for stop in self.stops)
        cuts = [cut for cut in found if cut != -1]
        if cuts:  # the earliest match, whichever stop string it is
            self.text, self.stopped = self.text[:min(cuts)], True
        self._searched = len(self.text)

    def _held_back(self) -> int:
        """Characters at the end of ``text`` that begin some stop string."""
        longest = 0
        for stop in self.stops:
            start = max(0, len(self.text) - len(stop) + 1)
            # candidates start where the stop's first character occurs; the first that matches is the longest
            i = self.text.find(stop[0], start)
            while i != -1 and len(self.text) - i > longest:
                if stop.startswith(self.text[i:]):
                    longest = len(self.text) - i
                    break
                i = self.text.find(stop[0], i + 1)
        return longest
