"""The Hub layer: the Hub-layout export (Parquet shards, dataset card) and the push to a private Hub repo.
"""
