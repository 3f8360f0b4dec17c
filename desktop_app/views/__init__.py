"""The window's views: each wraps one kind of data and draws it (no training maths)."""
