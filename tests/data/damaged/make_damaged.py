# Writes the damaged model files that the CLI tests (examples/CMakeLists.txt, cli_run_damaged_*)
# hand to `edgeq run -m`: each must give exit code 1 and one line of error. Needs the gguf
# Python package (pip install gguf); run from this folder.
import json, os, struct

import gguf
import numpy as np


def tiny(path, cols=64):
    # Metadata of a 1-layer llama and only token_embd [8, cols]: enough to reach each check.
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(1); w.add_context_length(16); w.add_embedding_length(64); w.add_feed_forward_length(96)
    w.add_head_count(2); w.add_head_count_kv(2)
    w.add_tensor("token_embd.weight", np.full((8, cols), 0.01, dtype=np.float32))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()


tiny("missing_tensor.gguf")
good = open("missing_tensor.gguf", "rb").read()
tiny("wrong_shape.gguf", cols=32)
open("bad_magic.gguf", "wb").write(b"GGUX" + good[4:200])
open("truncated.gguf", "wb").write(good[: len(good) // 2])
b = bytearray(good[:300]); b[8:16] = b"\xff" * 8; open("huge_tensor_count.gguf", "wb").write(b)
b = bytearray(good[:300]); b[16:24] = b"\x7f" * 8; open("huge_kv_count.gguf", "wb").write(b)
t = good.find(b"token_embd.weight") + 17 + 4 + 16  # name, n_dims, 2 dims: the type
b = bytearray(good[: t + 12]); b[t : t + 4] = struct.pack("<I", 200); open("unknown_type.gguf", "wb").write(b)
b = bytearray(good); b[t + 4 : t + 12] = struct.pack("<Q", 1 << 40); open("offset_past_end.gguf", "wb").write(b)
open("truncated_llama2c.bin", "wb").write(struct.pack("<7i", 64, 96, 1, 2, 2, 32, 16) + b"\0" * 100)
open("huge_llama2c.bin", "wb").write(struct.pack("<7i", 1 << 24, 1 << 24, 1 << 24, 1 << 22, 1 << 22, 1 << 24, 1 << 24))
os.makedirs("bad_safetensors", exist_ok=True)
json.dump({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 1,
           "num_attention_heads": 2, "vocab_size": 32, "tie_word_embeddings": True}, open("bad_safetensors/config.json", "w"))
h = json.dumps({"model.embed_tokens.weight": {"dtype": "F32", "shape": [32, 64], "data_offsets": [0, 8192]}}).encode()
open("bad_safetensors/model.safetensors", "wb").write(struct.pack("<Q", len(h)) + h + b"\0" * 100)
