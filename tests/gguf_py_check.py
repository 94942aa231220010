# A converted GGUF read by llama.cpp's own Python reader (the gguf package): every tensor and
# key parses, the names, types and metadata are what llama.cpp's loader expects, and the F32 /
# Q8_0 data decode to finite values. Exit 77 (CTest: skipped) when the package is absent.
import sys

try:
    import gguf
    import numpy as np
except ImportError:
    print("skipped: the gguf Python package is not installed (pip install gguf)")
    sys.exit(77)

path = sys.argv[1]
r = gguf.GGUFReader(path)
f = r.fields
val = lambda k: f[k].contents()
assert val("general.architecture") == "llama", val("general.architecture")
assert val("general.alignment") == 32
n_layers = val("llama.block_count")
for k in ["llama.context_length", "llama.embedding_length", "llama.feed_forward_length", "llama.attention.head_count",
          "llama.attention.head_count_kv", "llama.rope.freq_base", "llama.attention.layer_norm_rms_epsilon",
          "llama.rope.dimension_count", "general.file_type", "tokenizer.ggml.model", "tokenizer.ggml.tokens",
          "tokenizer.ggml.scores", "tokenizer.ggml.token_type", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"]:
    assert k in f, "missing " + k
tokens = val("tokenizer.ggml.tokens")
names = {t.name: t for t in r.tensors}
want = ["token_embd.weight", "output_norm.weight"]
for i in range(n_layers):
    want += ["blk.%d.%s.weight" % (i, n) for n in
             ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_down", "ffn_up"]]
for n in want:
    assert n in names, "missing tensor " + n
assert int(names["token_embd.weight"].shape[1]) == len(tokens)
for t in r.tensors:
    if t.name.endswith("norm.weight"):
        assert t.tensor_type == gguf.GGMLQuantizationType.F32, t.name
    if t.tensor_type in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.Q8_0):
        x = gguf.quants.dequantize(t.data, t.tensor_type)
        assert np.isfinite(x).all(), t.name
        assert x.size == int(np.prod(t.shape)), t.name
print("%s: %d tensors, %d keys, %d tokens read by gguf %s" % (path, len(r.tensors), len(f), len(tokens),
                                                          getattr(gguf, "__version__", "?")))
