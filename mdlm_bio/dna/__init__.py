"""The DNA track's data layer: tokenizer, FASTA I/O, hg38 windows, and generation metrics."""
