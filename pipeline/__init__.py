"""thumbnail-ingest: bulk-load person photos into NAVER Cloud Media Intelligence."""
