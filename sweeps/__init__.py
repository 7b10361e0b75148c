"""Sweeps on Ray Tune: `engine` is the generic machinery; each sweep script declares its grid and stages."""
