"""One module per job a user runs (train, sample and infill, score, finetune, guidance evaluation, text
perplexity, generative perplexity, report, demo): each `mdlm-bio` verb calls one function here."""
