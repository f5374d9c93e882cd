"""Amaranth building blocks of ternary and binary network accelerators.

Nothing here knows of networks or their descriptions: blocks take weights, thresholds and
encodings as plain parameters.
"""
