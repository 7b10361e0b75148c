"""The replication audit: does a text-to-image model reproduce training images when a prompt holds certain words,
or draw objects its captions never named? (Naseh, Roh, Houmansadr, arXiv 2312.03692). Entry script:
`sweeps/replication.py`."""
