"""The application icon (drawn by packaging/make_icon.py)."""
