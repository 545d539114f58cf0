"""The hashtag corpus: posts (image + hashtags) in ArrayRecord shards with a manifest."""
