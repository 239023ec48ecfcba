"""The slow/fast case corpus: loading and checking cases (case), validating them (validate), running the
detectors on them (detectors, evaluate) and scoring what they found (score). The cases themselves live in
the repository's top-level ``corpus/`` folder, shipped as ``magneton.corpus_cases``."""
