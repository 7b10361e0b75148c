"""The text-to-image replication audit (Naseh, Roh, Houmansadr, arXiv 2312.03692): corpus access, keyword filter,
image and text embedders, clustering, thresholds under named rules, prompt sets, object detectors, statistics,
and the synthetic LAION-like corpus of the embedded default.

Modules are imported one by one (`from radio.replication.corpus import load_corpus`); this package imports
nothing, so that `import radio.replication` never pulls torch or scikit-learn.
"""
