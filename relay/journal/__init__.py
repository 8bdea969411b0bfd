"""The session journal (SQLite) and the post-show report: store.py records, review.py
reads a session back into figures and advice, charts.py draws, report.py writes the HTML."""
