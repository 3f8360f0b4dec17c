"""Gradient Lab's window: shows and asks; every number comes from `engine`."""
