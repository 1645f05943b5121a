import pytest

from genfast.serving.text_stream import TextStream

TEXT = "def fibonacci(n):\n    return a list of the numbers, é and 日本 too\n"


def stream_all(tokenizer, ids, **kw):
    ts = TextStream(tokenizer, **kw)
    deltas = [ts.add(i) for i in ids]
    deltas.append(ts.flush())
    return ts, deltas


def test_incremental_text_equals_whole_decode(tokenizer):
    ids = tokenizer(TEXT)["input_ids"]
    ts, deltas = stream_all(tokenizer, ids)
    assert "".join(deltas) == tokenizer.decode(ids) == ts.text


@pytest.mark.parametrize("stop", ["of the", "a list", "n):\n", "日本", "é and", "numbers, é", "never there"])
def test_streamed_text_never_shows_what_a_stop_string_cuts(tokenizer, stop):
    ids = tokenizer(TEXT)["input_ids"]
    ts, deltas = stream_all(tokenizer, ids, stops=[stop])
    whole = tokenizer.decode(ids)
    expected = whole[:whole.find(stop)] if stop in whole else whole
    assert ts.text == expected
    assert "".join(deltas) == expected  # nothing past the cut was ever released
    assert ts.stopped == (stop in whole)


def test_stop_strings_that_span_tokens_are_held_back_then_released(tokenizer):
    ids = tokenizer(TEXT)["input_ids"]
    ts = TextStream(tokenizer, stops=["return a lisp"])  # shares a long prefix with the text
    released = "".join(ts.add(i) for i in ids)
    assert not ts.stopped and released + ts.flush() == tokenizer.decode(ids)


def test_healed_prefix_is_not_output(tokenizer):
    ids = tokenizer(" fibonacci(n)")["input_ids"]
    ts, deltas = stream_all(tokenizer, ids, drop_prefix=" ")
    assert "".join(deltas) == "fibonacci(n)"


def test_the_earliest_of_several_stop_strings_cuts(tokenizer):
    ids = tokenizer(TEXT)["input_ids"]
    whole = tokenizer.decode(ids)
    ts, deltas = stream_all(tokenizer, ids, stops=["numbers", "return"])  # "return" comes first in the text
    assert ts.text == whole[:whole.find("return")] == "".join(deltas)


def test_a_character_cut_by_the_end_is_not_dropped(tokenizer):
    ids = tokenizer("a日")["input_ids"]
    ts, deltas = stream_all(tokenizer, ids[:-1])  # the last byte of 日 never comes
    assert "".join(deltas) == tokenizer.decode(ids[:-1]) and deltas[-1].endswith("\ufffd")


class WindowOnly:
    """The tokenizer without its vocabulary's token strings: TextStream must decode id windows."""

    def __init__(self, tokenizer):
        self.inner = tokenizer

    def decode(self, ids, skip_special_tokens=True):
        return self.inner.decode(ids, skip_special_tokens=skip_special_tokens)


@pytest.mark.parametrize("stops", [[], ["of the"], ["日本", "numbers, é"]])
def test_byte_and_window_decoding_agree(tokenizer, stops):
    from genfast.serving.token_bytes import byte_table

    assert byte_table(tokenizer) is not None and byte_table(WindowOnly(tokenizer)) is None
    ids = tokenizer(TEXT + "日")["input_ids"][:-1]  # ends inside a character
    fast, fast_deltas = stream_all(tokenizer, ids, stops=stops)
    slow, slow_deltas = stream_all(WindowOnly(tokenizer), ids, stops=stops)
    assert fast.text == slow.text and "".join(fast_deltas) == "".join(slow_deltas)
