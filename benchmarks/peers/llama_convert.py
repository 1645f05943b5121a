"""llama.cpp's HF -> GGUF converter for the peers benchmark's model: python llama_convert.py LLAMA_SRC HF_DIR OUT.

The converter identifies a BPE tokenizer by a hash of its output and refuses one it does not
know; the benchmark's model carries genfast's small test tokenizer (its vocabulary padded to
GPT-2's by the converter), so it is declared GPT-2-style here. Weights are converted unchanged (F32).
"""

import sys
from pathlib import Path

src, hf, out = sys.argv[1:4]
sys.path.insert(0, src)
sys.path.insert(1, str(Path(src) / "gguf-py"))
import conversion.base  # noqa: E402

conversion.base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
import convert_hf_to_gguf  # noqa: E402

sys.argv = ["convert_hf_to_gguf.py", hf, "--outfile", out, "--outtype", "f32"]
convert_hf_to_gguf.main()
