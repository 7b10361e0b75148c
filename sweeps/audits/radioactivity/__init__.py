"""The radioactivity audit: was model B trained on text that our watermarked model A wrote? (Sander et al.,
"Watermarking Makes Language Models Radioactive", NeurIPS 2024). Entry script: `sweeps/ablation.py`."""
