"""The ML model that joins aggregation as one more annotator: features and out-of-fold training.

No Django here (like `quality.aggregation`), so the benchmarks train exactly what the product
trains. scikit-learn, numpy and Pillow only.
"""
