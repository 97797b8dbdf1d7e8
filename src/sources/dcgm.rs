//! DCGM exporter scraping: the text exposition parser and the per-endpoint scraper.
