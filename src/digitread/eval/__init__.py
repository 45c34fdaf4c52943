"""Evaluation: metrics (numpy and scikit-learn) and reports (matplotlib, imported only in report.py)."""
