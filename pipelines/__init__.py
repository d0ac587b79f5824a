"""aqa.pipelines: end-to-end recipes (benchmark protocol x extractor x head x metric)."""
