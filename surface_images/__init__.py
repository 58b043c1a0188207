"""Surface images as data: the synthetic DAGM-like generator and the readers of labelled image folders.

Shared by training (which learns from them) and producer_sim (which streams them as camera frames); it
imports only `line_contracts`.
"""
