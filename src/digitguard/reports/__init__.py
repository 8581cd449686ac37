"""Reports that gather measured numbers into Markdown, JSON and PNGs."""
