"""One module per scenario; each has `async def run(bench) -> <its result>`, a frozen dataclass."""
