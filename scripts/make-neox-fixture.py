#!/usr/bin/env python3
"""Writes tests/fixtures/neox-tiny{,-sequential}/: tiny random GPT-NeoX checkpoints (the Pythia
architecture: LayerNorm with bias, biased projections, partial rotary, GELU, parallel residual; the
second one with the sequential residual, full rotary and tanh GELU) in Hugging Face's own format,
with a byte-level BPE tokenizer.json, and reference.json: what Python transformers computes from
them. tests/model.rs checks memaudit's forward and greedy decoding against it.

Run once by a developer (the fixtures are committed); torch from Debian, transformers from PyPI:
  apt-get install python3-torch
  /usr/bin/python3 -m venv --system-site-packages /tmp/hfref
  /tmp/hfref/bin/pip install transformers==4.44.2
  /tmp/hfref/bin/python scripts/make-neox-fixture.py
"""
import codecs
import json
import os
import this

import tokenizers
import torch
import transformers
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

ZEN = codecs.decode(this.s, "rot13")
TEXTS = [
    "Beautiful is better than ugly.\nExplicit is better than implicit.",
    "memaudit scores every token: 0xDEADBEEF, naïve café, 2026-12-03",
]
STEPS = 8  # greedy continuation length
VARIANTS = {
    "neox-tiny": dict(use_parallel_residual=True, rotary_pct=0.25, hidden_act="gelu"),
    "neox-tiny-sequential": dict(use_parallel_residual=False, rotary_pct=1.0, hidden_act="gelu_new"),
}


def tokenizer(path):
    tok = tokenizers.ByteLevelBPETokenizer()
    tok.train_from_iterator([ZEN], vocab_size=320, min_frequency=2, special_tokens=["<|endoftext|>"])
    tok.save(path)
    return tokenizers.Tokenizer.from_file(path)


def main():
    torch.manual_seed(2026)
    for name, variant in VARIANTS.items():
        out = os.path.join("tests", "fixtures", name)
        os.makedirs(out, exist_ok=True)
        tok = tokenizer(os.path.join(out, "tokenizer.json"))
        config = GPTNeoXConfig(
            vocab_size=tok.get_vocab_size(),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=128,
            rotary_emb_base=10000,
            max_position_embeddings=128,
            layer_norm_eps=1e-5,
            tie_word_embeddings=False,
            bos_token_id=0,
            eos_token_id=0,
            **variant,
        )
        model = GPTNeoXForCausalLM(config).eval()
        # Large random weights, so the distributions are peaked and a wiring mistake shows.
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if "layernorm" in pname or "layer_norm" in pname:
                    p.copy_((1.0 if pname.endswith("weight") else 0.0) + 0.2 * torch.randn_like(p))
                else:
                    p.copy_(0.3 * torch.randn_like(p))
        model.save_pretrained(out, safe_serialization=True)
        rows = []
        # Each text plain, then after the document-start token (id 0), as memaudit's probe
        # scores it.
        for text, start in [(t, s) for t in TEXTS for s in (False, True)]:
            ids = [0] * start + tok.encode(text).ids
            x = torch.tensor([ids])
            with torch.no_grad():
                logits = model(x).logits[0].float()
                gen = model.generate(
                    x, max_new_tokens=STEPS, do_sample=False, min_new_tokens=STEPS, pad_token_id=0
                )[0, len(ids):].tolist()
            lp = torch.log_softmax(logits, -1)
            rows.append({
                "text": text,
                "start": start,
                "ids": ids,
                # Rounded: the check allows 1e-4.
                "log_probs": [[round(v, 6) for v in row] for row in lp.tolist()],
                "greedy": gen,
            })
        ref = {
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "config": variant,
            "steps": STEPS,
            "texts": rows,
        }
        with open(os.path.join(out, "reference.json"), "w", encoding="utf-8") as fh:
            json.dump(ref, fh, ensure_ascii=False)
            fh.write("\n")
        print(out, sum(p.numel() for p in model.parameters()), "parameters")


if __name__ == "__main__":
    main()
