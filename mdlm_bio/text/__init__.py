"""The text track: tokenizers, corpora (OpenWebText, LM1B, zero-shot sets), detokenizers, block pipelines."""
