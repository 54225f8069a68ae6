"""Sentinel keeps a review-sentiment classifier fresh: intake → drift → retrain → gate → registry."""

__version__ = "0.1.0"
